import Foundation

/// One entry of an archive.
public struct ArchiveMember: Sendable, Equatable {
    /// Normalized: "/"-separated (backslashes count as separators), no leading "/", no "." or ".."
    /// components, no trailing "/", valid UTF-8.
    public var path: String
    public var isDirectory: Bool
    /// Uncompressed size as declared by the archive (0 for directories and links). For a hard
    /// link listed by `list`, the size of the file it links to.
    public var size: Int64
    public var modified: Date?
    public var isSymlink: Bool
    /// A symlink's target as stored (not checked by `list`), or a hard link's normalized target path.
    public var linkTarget: String?
    /// A hard link to an earlier member (`linkTarget`); its bytes are that member's.
    public var isHardLink: Bool
    /// The member's data is encrypted (a password is needed to read it).
    public var isEncrypted: Bool
    /// The archive declares the file's size (`size`); when it does not (some streamed zips, some cpio),
    /// `size` is 0 and the bytes are only known by reading them.
    public var sizeKnown: Bool = true

    public init(
        path: String, isDirectory: Bool = false, size: Int64 = 0, modified: Date? = nil,
        isSymlink: Bool = false, linkTarget: String? = nil, isHardLink: Bool = false, isEncrypted: Bool = false
    ) {
        self.path = path
        self.isDirectory = isDirectory
        self.size = size
        self.modified = modified
        self.isSymlink = isSymlink
        self.linkTarget = linkTarget
        self.isHardLink = isHardLink
        self.isEncrypted = isEncrypted
    }

    /// A regular file (not a directory or a link).
    public var isFile: Bool { !isDirectory && !isSymlink && !isHardLink }
}

/// Limits that keep a hostile archive from exhausting the server.
public struct ArchiveLimits: Sendable, Equatable {
    /// Most entries an archive may have (list and extraction).
    public var maxEntries: Int
    /// Most bytes an extraction may produce: the declared sizes added up before anything is
    /// handed out, and the bytes actually produced while extracting.
    public var maxTotalSize: Int64
    /// Most bytes produced per compressed byte consumed. Checked live while extracting, against
    /// the compressed bytes read so far (for the member and for the whole extraction), so a bomb is
    /// stopped after `ratioGrace` bytes rather than after producing `maxRatio` times the archive.
    public var maxRatio: Int
    /// Bytes an extraction may produce before the ratio is checked (small, highly compressible
    /// files are common and harmless).
    public var ratioGrace: Int64
    /// Most bytes the members' paths (and link targets) of one listing may add up to: what a listing
    /// holds in memory is bounded by this, whatever the names.
    public var maxNameBytes: Int

    public init(
        maxEntries: Int = 100_000, maxTotalSize: Int64 = 64 << 30, maxRatio: Int = 1000,
        ratioGrace: Int64 = 16 << 20, maxNameBytes: Int = 32 << 20
    ) {
        self.maxNameBytes = maxNameBytes
        self.maxEntries = maxEntries
        self.maxTotalSize = maxTotalSize
        self.maxRatio = maxRatio
        self.ratioGrace = ratioGrace
    }
}

/// Why an archive could not be read. `description` is a short sentence for the person who asked.
public enum ArchiveError: Error, Sendable, Equatable, CustomStringConvertible {
    case notAnArchive
    case passwordRequired
    case wrongPassword
    case unsafeMember(path: String, reason: String)
    case tooManyEntries(limit: Int)
    case namesTooLong(limit: Int)
    case tooLarge(limit: Int64)
    case ratioExceeded(limit: Int)
    case memberNotFound(path: String)
    /// The member is a directory, a link or a special file, not a file to download.
    case notAFile(path: String)
    case unsupported(String)
    case damaged(String)
    /// The archive's bytes could not be read (the source failed).
    case readFailed(String)
    case cancelled

    public var description: String {
        switch self {
        case .notAnArchive:
            return "This file is not an archive in a supported format (zip, 7z, rar, tar, iso...)."
        case .passwordRequired:
            return "This archive is password-protected: enter its password."
        case .wrongPassword:
            return "The password is wrong: check it and try again."
        case .unsafeMember(let path, let reason):
            return "The archive was not extracted: its entry \"\(path)\" \(reason)."
        case .tooManyEntries(let limit):
            return "The archive has more than \(limit) entries, more than this server handles."
        case .namesTooLong(let limit):
            return "The names in the archive add up to more than \(Self.bytes(Int64(limit))), more than this server lists."
        case .tooLarge(let limit):
            return "The archive's contents are larger than the \(Self.bytes(limit)) this server extracts."
        case .ratioExceeded(let limit):
            return "The archive expands more than \(limit) times its size (a zip bomb?); it was not extracted."
        case .memberNotFound(let path):
            return "\"\(path)\" is not in this archive."
        case .notAFile(let path):
            return "\"\(path)\" is a folder or a link in the archive, not a file."
        case .unsupported(let what):
            return "This archive can't be opened here: \(what)."
        case .damaged(let detail):
            return "The archive is damaged or incomplete (\(detail))."
        case .readFailed(let detail):
            return "The archive could not be read (\(detail)); try again later."
        case .cancelled:
            return "Cancelled."
        }
    }

    private static func bytes(_ n: Int64) -> String {
        if n >= 1 << 30, n % (1 << 30) == 0 { return "\(n >> 30) GiB" }
        if n >= 1 << 20, n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
        return "\(n) bytes"
    }
}

/// Receives a file member's bytes, in order, in chunks of at most 64 KiB.
public typealias ArchiveSink = (UnsafeRawBufferPointer) throws -> Void

/// What `ArchiveReader.extractAll` hands each member to, in archive order.
///
/// Every member has passed the safety checks before `entry` sees it: its path stays inside the
/// extraction root, a symlink's target resolves inside it, a hard link names an earlier file, and
/// no member lies under (or replaces) an earlier symlink. Special files (devices, fifos, sockets)
/// are skipped without a call. To stop, throw from any method (the error comes out of
/// `extractAll` unchanged) or make `isCancelled` return true; then clean up what was written.
public protocol ArchiveExtractHandler {
    /// Called once per member. For a regular file, return a sink for its bytes or nil to skip it;
    /// for a directory, symlink (`linkTarget`) or hard link (`linkTarget` is the earlier member's
    /// path), create it here (the return value is ignored).
    func entry(_ member: ArchiveMember) throws -> ArchiveSink?
    /// Called after the last byte of a file whose `entry` returned a sink, when the member's data
    /// was complete and intact (a write to a temp file can be moved into place now).
    func done(_ member: ArchiveMember) throws
}

/// An `ArchiveExtractHandler` made of two closures.
public struct ClosureExtractHandler: ArchiveExtractHandler {
    private let onEntry: (ArchiveMember) throws -> ArchiveSink?
    private let onDone: (ArchiveMember) throws -> Void

    public init(
        entry: @escaping (ArchiveMember) throws -> ArchiveSink?,
        done: @escaping (ArchiveMember) throws -> Void = { _ in }
    ) {
        self.onEntry = entry
        self.onDone = done
    }

    public func entry(_ member: ArchiveMember) throws -> ArchiveSink? { try onEntry(member) }
    public func done(_ member: ArchiveMember) throws { try onDone(member) }
}
