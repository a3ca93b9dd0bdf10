import Foundation

/// Browsing inside archives and extracting them safely, over libarchive.
///
/// Every call opens its own libarchive handle, so calls may run on several threads at once. All
/// calls block: run them on a thread pool, not on an event loop.
public enum ArchiveReader {
    /// File name endings of the archives this reader opens (lowercase, without the dot), checked
    /// against Debian 12's libarchive 3.6.2: each kind is read in the tests except rar (nothing
    /// free writes rar; libarchive reads RAR 4 and RAR 5, but not encrypted ones).
    public static let extensions: [String] = [
        "zip", "7z", "rar",
        "tar", "tar.gz", "tgz", "tar.bz2", "tbz2", "tbz", "tar.xz", "txz", "tar.zst", "tzst",
        "tar.lz4", "tar.lzma", "tlz", "tar.z", "taz",
        "iso", "cpio", "cab", "lzh", "lha",
        // zips and rars under other names
        "jar", "cbz", "cbr", "cb7", "cbt",
    ]

    /// Lists the members, in archive order. Special files (devices, fifos, sockets) and the
    /// archive root entry ("./") are left out. Member paths must be safe (see `ArchivePath`);
    /// symlink targets are reported as stored, not checked (nothing is followed when listing).
    /// For a zip only the central directory and the local headers are read.
    public static func list(
        _ source: any ArchiveSource, password: String?, limits: ArchiveLimits = .init(),
        isCancelled: () -> Bool = { false }
    ) throws -> [ArchiveMember] {
        try UTF8Locale.with { try withoutActuallyEscaping(isCancelled) { isCancelled in
            let session = try ArchiveSession(source: source, password: password, isCancelled: isCancelled)
            var members: [ArchiveMember] = []
            var fileSizes: [String: Int64] = [:]  // for the sizes of hard links
            var count = 0, nameBytes = 0
            while let entry = try session.nextEntry() {
                if session.wasCancelled { throw ArchiveError.cancelled }
                count += 1
                if count > limits.maxEntries { throw ArchiveError.tooManyEntries(limit: limits.maxEntries) }
                guard var member = try member(EntryInfo(entry)) else { continue }
                if member.isHardLink, let target = member.linkTarget {
                    let size = fileSizes[target] ?? -1
                    member.size = max(0, size)
                    member.sizeKnown = size >= 0
                } else if member.isFile {
                    fileSizes[member.path] = member.sizeKnown ? member.size : -1
                }
                nameBytes += member.path.utf8.count + (member.linkTarget?.utf8.count ?? 0)
                if nameBytes > limits.maxNameBytes { throw ArchiveError.namesTooLong(limit: limits.maxNameBytes) }
                members.append(member)
            }
            return members
        } }
    }

    /// Streams one member's bytes to `sink` in chunks of at most 64 KiB, and returns the member.
    ///
    /// `member` is normalized like member paths (so "./a/b" finds "a/b"); the first member with
    /// that path is used. A hard link gives the bytes of the file it links to. Directories and
    /// symlinks throw `notAFile` (a symlink's target is in `list`'s `linkTarget`).
    /// Limits: the member's declared and produced size against `maxTotalSize`, and the ratio.
    @discardableResult
    public static func extract(
        _ source: any ArchiveSource, member path: String, password: String?, limits: ArchiveLimits = .init(),
        isCancelled: () -> Bool = { false }, sink: ArchiveSink
    ) throws -> ArchiveMember {
        guard case .path(let wanted) = ArchivePath.normalize(path), !wanted.isEmpty else {
            throw ArchiveError.memberNotFound(path: path)
        }
        var wantedPath = wanted
        // A hard link in a tar names an earlier member; follow it (with a new pass, since the
        // target's data has been passed already). Links to links are followed a few times.
        for _ in 0..<8 {
            let found: ArchiveMember = try UTF8Locale.with { try withoutActuallyEscaping(isCancelled) { isCancelled in
                let session = try ArchiveSession(source: source, password: password, isCancelled: isCancelled)
                var count = 0
                while let entry = try session.nextEntry() {
                    if session.wasCancelled { throw ArchiveError.cancelled }
                    count += 1
                    if count > limits.maxEntries { throw ArchiveError.tooManyEntries(limit: limits.maxEntries) }
                    let info = EntryInfo(entry)
                    guard let member = try member(info), member.path == wantedPath else { continue }
                    if member.isHardLink { return member }
                    guard member.isFile else { throw ArchiveError.notAFile(path: member.path) }
                    if member.size > limits.maxTotalSize { throw ArchiveError.tooLarge(limit: limits.maxTotalSize) }
                    var meter = OutputMeter(limits: limits, session: session)
                    meter.beginMember(declaredSize: info.declaredSize, path: member.path)
                    try session.readData(
                        encrypted: member.isEncrypted, progress: { try meter.check(memberTotal: $0) }, sink: sink)
                    return member
                }
                throw ArchiveError.memberNotFound(path: path)
            } }
            guard found.isHardLink else { return found }
            guard let target = found.linkTarget else { throw ArchiveError.memberNotFound(path: path) }
            wantedPath = target
        }
        throw ArchiveError.unsafeMember(path: path, reason: "is a chain of hard links too long to follow")
    }

    /// Walks all members in archive order for an extraction into a folder, handing each one to
    /// `handler` (see `ArchiveExtractHandler`) after the safety checks:
    /// - paths: no absolute paths, drive letters or ".." (`unsafeMember`);
    /// - symlinks: the target must resolve inside the root; no member may lie under an earlier
    ///   symlink or have the same path as one (writing there would follow it);
    /// - hard links: the target must be an earlier regular file of the archive;
    /// - special files (devices, fifos, sockets) are skipped;
    /// - limits: entry count, declared sizes added up, bytes produced (total and per member: a
    ///   member producing more than it declared is `damaged`), and the expansion ratio.
    /// Anything thrown leaves the extraction half done: the caller removes what it wrote.
    public static func extractAll(
        _ source: any ArchiveSource, password: String?, limits: ArchiveLimits = .init(),
        isCancelled: () -> Bool = { false }, handler: some ArchiveExtractHandler
    ) throws {
        try UTF8Locale.with { try withoutActuallyEscaping(isCancelled) { isCancelled in
            let session = try ArchiveSession(source: source, password: password, isCancelled: isCancelled)
            var meter = OutputMeter(limits: limits, session: session)
            var symlinks = Set<String>()
            var files = Set<String>()
            var count = 0
            var declaredTotal: Int64 = 0
            while let entry = try session.nextEntry() {
                if session.wasCancelled { throw ArchiveError.cancelled }
                count += 1
                if count > limits.maxEntries { throw ArchiveError.tooManyEntries(limit: limits.maxEntries) }
                let info = EntryInfo(entry)
                guard let member = try member(info), !member.path.isEmpty else { continue }

                if symlinks.contains(member.path) {
                    throw ArchiveError.unsafeMember(path: member.path, reason: "replaces a symbolic link")
                }
                if let link = firstSymlinkAncestor(of: member.path, in: symlinks) {
                    throw ArchiveError.unsafeMember(path: member.path, reason: "lies under the symbolic link \"\(link)\"")
                }
                if member.isSymlink {
                    if let problem = ArchivePath.symlinkProblem(memberPath: member.path, target: member.linkTarget ?? "") {
                        throw ArchiveError.unsafeMember(path: member.path, reason: problem)
                    }
                    symlinks.insert(member.path)
                } else if member.isHardLink {
                    guard let target = member.linkTarget, files.contains(target) else {
                        throw ArchiveError.unsafeMember(
                            path: member.path, reason: "is a hard link to something that is not an earlier file of the archive")
                    }
                }

                declaredTotal += max(0, member.size)
                if declaredTotal > limits.maxTotalSize { throw ArchiveError.tooLarge(limit: limits.maxTotalSize) }

                let sink = try handler.entry(member)
                guard member.isFile else { continue }
                files.insert(member.path)
                guard let sink else { continue }
                meter.beginMember(declaredSize: info.declaredSize, path: member.path)
                try session.readData(
                    encrypted: member.isEncrypted, progress: { try meter.check(memberTotal: $0) }, sink: sink)
                meter.endMember()
                try handler.done(member)
            }
        } }
    }

    // MARK: - Helpers

    /// The member for an entry, or nil for entries that are not listed (special files, the root).
    private static func member(_ info: EntryInfo) throws -> ArchiveMember? {
        guard let rawPath = info.rawPath else { throw ArchiveError.damaged("an entry's name can't be read") }
        let path: String
        switch ArchivePath.normalize(rawPath) {
        case .unsafe(let reason): throw ArchiveError.unsafeMember(path: rawPath, reason: reason)
        case .path(let p): path = p
        }
        if path.isEmpty { return nil }
        var member = ArchiveMember(path: path, modified: info.modified, isEncrypted: info.isEncrypted)
        if let hardlink = info.hardlink {
            // A hard link's target is another member's path, so it follows the same rules.
            guard case .path(let target) = ArchivePath.normalize(hardlink), !target.isEmpty else {
                throw ArchiveError.unsafeMember(path: path, reason: "is a hard link pointing outside the archive (\(hardlink))")
            }
            member.isHardLink = true
            member.linkTarget = target
            return member
        }
        switch info.type {
        case EntryType.directory:
            member.isDirectory = true
        case EntryType.symlink:
            member.isSymlink = true
            member.linkTarget = info.symlink ?? ""
        case EntryType.regular:
            member.size = max(0, info.declaredSize ?? 0)
            member.sizeKnown = info.declaredSize != nil
        default:
            return nil  // device, fifo, socket
        }
        return member
    }

    private static func firstSymlinkAncestor(of path: String, in symlinks: Set<String>) -> String? {
        guard !symlinks.isEmpty else { return nil }
        var prefix = ""
        for part in path.split(separator: "/").dropLast() {
            prefix = prefix.isEmpty ? String(part) : prefix + "/" + part
            if symlinks.contains(prefix) { return prefix }
        }
        return nil
    }
}

/// Live checks of the bytes an extraction produces: total size, per-member size, and the ratio of
/// bytes produced to compressed bytes consumed.
struct OutputMeter {
    let limits: ArchiveLimits
    let session: ArchiveSession
    /// Produced by finished members, and compressed bytes they consumed.
    private var producedBefore: Int64 = 0
    private var consumedBefore: Int64 = 0
    private var memberStart: Int64 = 0
    private var memberProduced: Int64 = 0
    private var declaredSize: Int64?
    private var path = ""

    init(limits: ArchiveLimits, session: ArchiveSession) {
        self.limits = limits
        self.session = session
    }

    mutating func beginMember(declaredSize: Int64?, path: String) {
        memberStart = session.consumedPosition
        memberProduced = 0
        self.declaredSize = declaredSize
        self.path = path
    }

    mutating func endMember() {
        producedBefore += memberProduced
        consumedBefore += max(0, session.consumedPosition - memberStart)
        memberProduced = 0
    }

    /// Called with the member's running total before each chunk goes out.
    mutating func check(memberTotal: Int64) throws {
        memberProduced = memberTotal
        let produced = producedBefore + memberTotal
        if produced > limits.maxTotalSize { throw ArchiveError.tooLarge(limit: limits.maxTotalSize) }
        // Formats that declare sizes (all but some streamed zips) must keep to them; a member
        // that inflates past its declared size is lying about what it holds.
        if let declaredSize, declaredSize >= 0, memberTotal > declaredSize {
            throw ArchiveError.damaged("\"\(path)\" holds more data than its header says")
        }
        guard produced > limits.ratioGrace else { return }
        // Consumed counts the compressed bytes libarchive has taken in for this member (its
        // position may jump with seeks, so only differences taken around the data are used),
        // plus a little slack for the header bytes that share the first block.
        let memberConsumed = max(0, session.consumedPosition - memberStart) + 1024
        let ratio = Int64(limits.maxRatio)
        if memberTotal > limits.ratioGrace, memberTotal / memberConsumed >= ratio {
            throw ArchiveError.ratioExceeded(limit: limits.maxRatio)
        }
        if produced / (consumedBefore + memberConsumed) >= ratio {
            throw ArchiveError.ratioExceeded(limit: limits.maxRatio)
        }
    }
}
