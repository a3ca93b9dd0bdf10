import CArchive
import Foundation

/// State shared with libarchive's C callbacks (passed to them as an unretained pointer). Lives
/// only for one session, on one thread.
final class ReadContext {
    let source: any ArchiveSource
    let size: Int64
    var position: Int64 = 0
    /// Where the read callback hands bytes to libarchive; valid until the next callback.
    let buffer: UnsafeMutableRawBufferPointer
    /// The source's error, kept so that it is reported as itself rather than as libarchive's text.
    var sourceError: (any Error)?
    var cancelled = false
    let isCancelled: () -> Bool

    init(source: any ArchiveSource, isCancelled: @escaping () -> Bool) {
        self.source = source
        self.size = source.size
        self.isCancelled = isCancelled
        self.buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit { buffer.deallocate() }
}

/// One libarchive read handle over an `ArchiveSource`. Not thread-safe: each call of
/// `ArchiveReader` makes its own.
final class ArchiveSession {
    private let archive: OpaquePointer
    private let context: ReadContext
    let hasPassword: Bool

    /// The bytes produced by `readData` are handed out in chunks of this size at most.
    static let chunkSize = 64 * 1024

    init(source: any ArchiveSource, password: String?, isCancelled: @escaping () -> Bool) throws {
        guard let a = archive_read_new() else { throw ArchiveError.damaged("out of memory") }
        archive = a
        context = ReadContext(source: source, isCancelled: isCancelled)
        hasPassword = !(password ?? "").isEmpty

        // Formats and filters are enabled one by one rather than with *_all: "all" also enables
        // mtree (whose entries name files on the server's disk, which libarchive then opens) and
        // filters that run external programs (lrzip, lzop, grzip). Debian's libarchive has zlib,
        // bzip2, liblzma, zstd and lz4 built in, so none of these falls back to a program.
        for enable in [
            archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
            archive_read_support_filter_xz, archive_read_support_filter_lzma,
            archive_read_support_filter_zstd, archive_read_support_filter_lz4,
            archive_read_support_filter_compress,
            // zip enables both zip readers; with a seek callback the seekable one wins the bid and
            // reads the central directory instead of scanning the whole file.
            archive_read_support_format_zip, archive_read_support_format_7zip,
            archive_read_support_format_rar, archive_read_support_format_rar5,
            archive_read_support_format_tar, archive_read_support_format_iso9660,
            archive_read_support_format_cpio, archive_read_support_format_cab,
            archive_read_support_format_lha,
        ] {
            _ = enable(a)
        }
        if let password, !password.isEmpty {
            archive_read_add_passphrase(a, password)
        }

        archive_read_set_callback_data(a, Unmanaged.passUnretained(context).toOpaque())
        archive_read_set_read_callback(a) { _, data, out in
            guard let data, let out else { return -1 }
            let ctx = Unmanaged<ReadContext>.fromOpaque(data).takeUnretainedValue()
            if ctx.isCancelled() {
                ctx.cancelled = true
                return -1
            }
            guard ctx.position < ctx.size else { return 0 }
            do {
                let n = try ctx.source.read(at: ctx.position, into: ctx.buffer)
                if n <= 0 {  // the source ended before its declared size
                    ctx.sourceError = ArchiveSourceError("the archive ended early, at byte \(ctx.position)")
                    return -1
                }
                ctx.position += Int64(n)
                out.pointee = UnsafeRawPointer(ctx.buffer.baseAddress)
                return n
            } catch {
                ctx.sourceError = error
                return -1
            }
        }
        archive_read_set_seek_callback(a) { _, data, offset, whence in
            guard let data else { return -1 }
            let ctx = Unmanaged<ReadContext>.fromOpaque(data).takeUnretainedValue()
            let base: Int64
            switch whence {
            case SEEK_SET: base = 0
            case SEEK_CUR: base = ctx.position
            case SEEK_END: base = ctx.size
            default: return Int64(ARCHIVE_FATAL)
            }
            let (target, overflow) = base.addingReportingOverflow(offset)
            guard !overflow, target >= 0 else { return Int64(ARCHIVE_FATAL) }
            ctx.position = target
            return target
        }
        archive_read_set_skip_callback(a) { _, data, request in
            guard let data, request > 0 else { return 0 }
            let ctx = Unmanaged<ReadContext>.fromOpaque(data).takeUnretainedValue()
            let n = min(request, max(0, ctx.size - ctx.position))
            ctx.position += n
            return n
        }
        let r = archive_read_open1(a)
        // On a throw, deinit still runs (every property is set) and frees the handle.
        if r != ARCHIVE_OK { throw self.error(r, encryptedEntry: false) }
    }

    deinit { archive_read_free(archive) }

    var wasCancelled: Bool { context.cancelled || context.isCancelled() }

    /// Bytes of the archive libarchive has consumed so far (seeks included: use differences
    /// taken around a member's data only).
    var consumedPosition: Int64 { archive_filter_bytes(archive, -1) }

    /// The next entry's header, or nil at the end.
    func nextEntry() throws -> OpaquePointer? {
        var entry: OpaquePointer?
        let r = archive_read_next_header(archive, &entry)
        switch r {
        case ARCHIVE_EOF: return nil
        case ARCHIVE_OK, ARCHIVE_WARN:  // WARN: e.g. a name that did not convert; we decode it ourselves
            guard let entry else { throw ArchiveError.damaged("missing entry") }
            return entry
        default:
            throw error(r, encryptedEntry: false)
        }
    }

    /// Streams the current entry's data to `sink` in chunks, calling `progress` with the running
    /// total before each chunk goes out (it throws to stop).
    func readData(
        encrypted: Bool, progress: (Int64) throws -> Void, sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            if context.isCancelled() { throw ArchiveError.cancelled }
            let n = archive_read_data(archive, buffer.baseAddress, buffer.count)
            if n == 0 { return }
            if n < 0 { throw error(Int32(truncatingIfNeeded: n), encryptedEntry: encrypted) }
            total += Int64(n)
            try progress(total)
            try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// Maps a libarchive failure to an `ArchiveError`. libarchive reports most problems only as
    /// text (archive_errno is mostly ARCHIVE_ERRNO_MISC or -1), so the text is matched; the
    /// strings are those of libarchive 3.6/3.7.
    func error(_ code: Int32, encryptedEntry: Bool) -> ArchiveError {
        if context.cancelled { return .cancelled }
        if let e = context.sourceError {
            return .readFailed((e as? ArchiveSourceError)?.description ?? String(describing: e))
        }
        let message = archive_error_string(archive).map { String(cString: $0) } ?? ""
        let lower = message.lowercased()
        let passwordIssue = hasPassword ? ArchiveError.wrongPassword : .passwordRequired
        if lower.contains("passphrase required") || lower.contains("incorrect passphrase")
            || lower.contains("too many incorrect passphrases") || lower.contains("decryption failed") {
            return passwordIssue
        }
        if lower.contains("encrypted, but currently not supported") {  // 7z with AES
            return .unsupported("it is a password-protected 7z archive, which this server can't decrypt; extract it on a computer")
        }
        if lower.contains("encryption") && (lower.contains("not supported") || lower.contains("unavailable")
            || lower.contains("unsupported")) {  // RAR encryption, PKWARE strong encryption
            return .unsupported("its encryption method is not supported; extract it on a computer")
        }
        if lower.contains("unrecognized archive format") { return .notAnArchive }
        // A wrong ZipCrypto password passes the 1-byte check once in 256 tries and then fails as
        // bad data (CRC or inflate errors): for an encrypted entry, data errors mean the password.
        if encryptedEntry { return passwordIssue }
        if lower.contains("truncated") || lower.contains("premature") || lower.contains("unexpected end") {
            return .damaged("it ends too early")
        }
        if message.isEmpty { return .damaged("error \(code)") }
        return .damaged(message)
    }
}

/// File-type bits of `archive_entry_filetype` (the AE_IF* macros are casts Swift can't import).
enum EntryType {
    static let mask: UInt32 = 0o170000
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
}

/// Reads the fields of a libarchive entry.
struct EntryInfo {
    /// nil when libarchive has no name it could convert.
    let rawPath: String?
    let type: UInt32
    let declaredSize: Int64?
    let modified: Date?
    let symlink: String?
    let hardlink: String?
    let isEncrypted: Bool

    init(_ entry: OpaquePointer) {
        rawPath = EntryInfo.name(archive_entry_pathname_utf8(entry), archive_entry_pathname(entry))
        type = UInt32(archive_entry_filetype(entry)) & EntryType.mask
        declaredSize = archive_entry_size_is_set(entry) != 0 ? archive_entry_size(entry) : nil
        if archive_entry_mtime_is_set(entry) != 0 {
            let seconds = Double(archive_entry_mtime(entry)) + Double(archive_entry_mtime_nsec(entry)) / 1e9
            // Years 1 to 9999 only: a tar may carry any 64-bit time, which later formatting cannot hold.
            modified = seconds >= -62_135_596_800 && seconds <= 253_402_300_799 ? Date(timeIntervalSince1970: seconds) : nil
        } else {
            modified = nil
        }
        symlink = EntryInfo.name(archive_entry_symlink_utf8(entry), archive_entry_symlink(entry))
        hardlink = EntryInfo.name(archive_entry_hardlink_utf8(entry), archive_entry_hardlink(entry))
        isEncrypted = archive_entry_is_encrypted(entry) != 0
    }

    /// libarchive's UTF-8 form when it has one (zip names with the UTF-8 flag, pax, 7z, rar5...);
    /// otherwise the raw bytes (which libarchive can't convert in the C locale the server runs
    /// in), decoded by `NameDecoding`.
    private static func name(_ utf8: UnsafePointer<CChar>?, _ raw: UnsafePointer<CChar>?) -> String? {
        if let utf8 { return NameDecoding.decode(cString: utf8) }
        if let raw { return NameDecoding.decode(cString: raw) }
        return nil
    }
}
