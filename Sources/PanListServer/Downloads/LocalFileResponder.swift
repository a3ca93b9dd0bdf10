import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore
import _NIOFileSystem
import NIOPosix
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// Serves a file from disk with Range (206, 416), HEAD, ETag/Last-Modified and the conditional headers,
/// streaming it in chunks: the client's pace sets the read pace, and nothing holds the whole file.
enum LocalFileResponder {
    static let chunk = 512 * 1024

    /// Files up to this size are opened, stat'ed and read in one trip to the thread pool.
    static let smallFile = 256 * 1024

    struct Opened: Sendable {
        var size: Int64
        var mtimeSeconds: Int
        var mtimeNanoseconds: Int
        var isRegular: Bool
        /// The whole file, when it is small.
        var bytes: ByteBuffer?
        /// What the answer says about the file (validators, type, disposition), worked out once per opening:
        /// a small file served again and again from `SmallFileCache` does not format them per request.
        var described: Described?

        var modified: Date { Date(timeIntervalSince1970: Double(mtimeSeconds) + Double(mtimeNanoseconds) / 1e9) }
    }

    struct Described: Sendable {
        var name: String
        var etag: String
        var lastModified: String
        var contentType: String
        var disposition: String

        init(_ o: Opened, name: String) {
            self.name = name
            etag = EntityTag.of(modified: o.modified, size: o.size)
            lastModified = HTTPDate.format(o.modified)
            contentType = ContentTypes.forName(name)
            disposition = ContentTypes.disposition(name: name, inline: ContentTypes.isSafeInline(contentType))
        }
    }

    /// open + fstat (+ read when small), all on the thread pool, never on an event loop.
    static func open(_ path: String) async throws -> Opened {
        try await NIOThreadPool.singleton.runIfActive { () throws -> Opened in
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw FSError.objectNotFound(VirtualPath.base(path)) }
            defer { Glibc.close(fd) }
            var st = Glibc.stat()
            guard fstat(fd, &st) == 0 else { throw FSError.objectNotFound(VirtualPath.base(path)) }
            var o = Opened(size: Int64(st.st_size), mtimeSeconds: Int(st.st_mtim.tv_sec), mtimeNanoseconds: Int(st.st_mtim.tv_nsec),
                           isRegular: (st.st_mode & S_IFMT) == S_IFREG, bytes: nil)
            if o.isRegular && o.size <= Int64(smallFile) {
                var buffer = ByteBufferAllocator().buffer(capacity: Int(o.size))
                var total = 0
                while total < Int(o.size) {
                    let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { ptr in
                        Glibc.read(fd, ptr.baseAddress, ptr.count)
                    }
                    if n <= 0 { break }
                    total += n
                }
                o.size = Int64(total)
                o.bytes = buffer
            }
            return o
        }
    }

    /// `whole` is told the answer when it is a whole small file from the small-file cache (status 200, its
    /// headers and bytes, and until when the cache keeps those bytes), so a caller may keep it as long.
    static func respond(_ req: Request, diskPath: String, name: String, cache: SmallFileCache? = nil, generation: Int = 0,
                        whole: (@Sendable (HTTPResponse.Status, HTTPFields, ByteBuffer, ContinuousClock.Instant) -> Void)? = nil)
        async throws -> Response {
        var opened: Opened
        var readUntil = ContinuousClock.now + SmallFileCache.ttl
        if let cache, let hit = cache.get(diskPath, generation: generation), hit.opened.described?.name == name {
            opened = hit.opened
            readUntil = hit.until
        } else {
            opened = try await open(diskPath)
            if opened.isRegular { opened.described = Described(opened, name: name) }
            cache?.put(diskPath, opened, generation: generation)
        }
        guard opened.isRegular, let described = opened.described else { throw FSError.objectNotFound(name) }
        let size = opened.size
        let modified = opened.modified
        let etag = described.etag

        var headers = HTTPFields()
        headers.reserveCapacity(9)
        headers[.acceptRanges] = "bytes"
        headers[.eTag] = etag
        headers[.lastModified] = described.lastModified
        headers[.contentType] = described.contentType
        headers[.contentDisposition] = described.disposition

        switch Conditional.evaluate(req.headers, etag: etag, modified: modified) {
        case .notModified: return Response(status: .notModified, headers: headers)
        case .preconditionFailed: return Response(status: .preconditionFailed, headers: headers)
        case .proceed: break
        }

        var range: ClosedRange<Int64>? = nil
        if let header = req.headers[.range], Conditional.ifRangeAllows(req.headers, etag: etag, modified: modified) {
            switch ByteRange.parse(header, size: size) {
            case .full: break
            case .partial(let r): range = r
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(size)"
                headers[.contentType] = nil
                headers[.contentLength] = "0"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
        }
        let status: HTTPResponse.Status = range == nil ? .ok : .partialContent
        let span = range ?? (size > 0 ? 0...(size - 1) : nil)
        if let range { headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)" }
        let length = span.map { $0.upperBound - $0.lowerBound + 1 } ?? 0
        headers[.contentLength] = String(length)
        if req.method == .head || length == 0 {
            return Response(status: status, headers: headers, body: .init())
        }
        if let bytes = opened.bytes, let span {
            let slice = bytes.getSlice(at: bytes.readerIndex + Int(span.lowerBound), length: Int(length)) ?? ByteBuffer()
            if status == .ok, Int64(slice.readableBytes) == size, size <= SmallFileCache.maxFile, let whole {
                whole(status, headers, slice, readUntil)
            }
            return Response(status: status, headers: headers, body: .init(byteBuffer: slice))
        }
        let body = ResponseBody(contentLength: Int(length)) { writer in
            try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(diskPath)) { handle in
                for try await chunk in PrefetchingChunks(handle: handle, range: span!, chunkLength: Int64(chunk), depth: 6) {
                    try await writer.write(chunk)
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }
}

/// The strong ETag of a file known by its modification time and size: `"<µs since 1970, hex>-<size hex>"`.
/// The same function serves `/d`, `/p`, WebDAV's `getetag` and its `If` headers, so they always agree.
enum EntityTag {
    static func of(modified: Date, size: Int64) -> String {
        "\"\(String(micros(modified), radix: 16))-\(String(size, radix: 16))\""
    }

    /// The time part: microseconds since 1970, rounded.
    static func micros(_ modified: Date) -> Int64 { Int64((modified.timeIntervalSince1970 * 1_000_000).rounded()) }
}

/// Small files (up to 64 KiB, 32 MiB in all) read in the last second, like nginx's open_file_cache:
/// a hot small file is served without a trip to the thread pool. An entry is dropped after a second or
/// as soon as a write through PanList finished (the file system's write generation moved).
final class SmallFileCache: Sendable {
    static let maxFile: Int64 = 64 * 1024
    static let maxTotal = 32 << 20
    static let ttl: Duration = .seconds(1)

    struct Entry {
        var opened: LocalFileResponder.Opened
        var until: ContinuousClock.Instant
        var generation: Int
    }
    struct Contents {
        var entries: [String: Entry] = [:]
        var bytes = 0
    }
    private let box = NIOLockedValueBox(Contents())

    func get(_ path: String, generation: Int) -> Entry? {
        box.withLockedValue { state in
            guard let e = state.entries[path], e.until > .now, e.generation == generation else { return nil }
            return e
        }
    }

    func put(_ path: String, _ opened: LocalFileResponder.Opened, generation: Int) {
        guard opened.isRegular, opened.size <= Self.maxFile, opened.bytes != nil else { return }
        box.withLockedValue { state in
            if state.bytes + Int(opened.size) > Self.maxTotal { state = Contents() }
            let old = state.entries.updateValue(Entry(opened: opened, until: .now + Self.ttl, generation: generation), forKey: path)
            state.bytes += Int(opened.size) - Int(old?.opened.size ?? 0)
        }
    }
}

/// RFC 9110 conditional requests for a representation with a strong ETag and a modification time.
enum Conditional {
    enum Outcome { case proceed, notModified, preconditionFailed }

    static func matches(_ list: String, _ etag: String) -> Bool {
        list.split(separator: ",").contains { item in
            let t = item.trimmingCharacters(in: .whitespaces)
            return t == "*" || t == etag || t == "W/" + etag
        }
    }

    static func evaluate(_ h: HTTPFields, etag: String, modified: Date) -> Outcome {
        let seconds = modified.timeIntervalSince1970.rounded(.down)
        if let im = h[.ifMatch] {
            if !matches(im, etag) { return .preconditionFailed }
        } else if let ius = h[.ifUnmodifiedSince], let d = HTTPDate.parse(ius), seconds > d.timeIntervalSince1970 {
            return .preconditionFailed
        }
        if let inm = h[.ifNoneMatch] {
            if matches(inm, etag) { return .notModified }
        } else if let ims = h[.ifModifiedSince], let d = HTTPDate.parse(ims), seconds <= d.timeIntervalSince1970 {
            return .notModified
        }
        return .proceed
    }

    /// With `If-Range`, a Range applies only if the validator still matches; otherwise the whole file is sent.
    static func ifRangeAllows(_ h: HTTPFields, etag: String, modified: Date) -> Bool {
        guard let ir = h[.ifRange]?.trimmingCharacters(in: .whitespaces) else { return true }
        if ir.hasPrefix("\"") || ir.hasPrefix("W/") { return ir == etag }
        guard let d = HTTPDate.parse(ir) else { return false }
        return modified.timeIntervalSince1970.rounded(.down) == d.timeIntervalSince1970
    }
}

enum HTTPDate {
    static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static let dayBytes = days.map { Array($0.utf8) }
    static let monthBytes = months.map { Array($0.utf8) }

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    static let length = 29

    /// The IMF-fixdate form, built byte by byte (listings format thousands).
    static func format(_ date: Date) -> String {
        String(unsafeUninitializedCapacity: length) { format(date, into: UnsafeMutableRawBufferPointer($0)) }
    }

    /// Writes the IMF-fixdate form into `out` (at least 29 bytes); returns 29.
    static func format(_ date: Date, into out: UnsafeMutableRawBufferPointer) -> Int {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func put(_ value: Int, _ at: Int, _ digits: Int) {
            var v = value
            for i in stride(from: at + digits - 1, through: at, by: -1) { out[i] = UInt8(48 + v % 10); v /= 10 }
        }
        let d = dayBytes[Int(tm.tm_wday)], m = monthBytes[Int(tm.tm_mon)]
        out[0] = d[0]; out[1] = d[1]; out[2] = d[2]; out[3] = UInt8(ascii: ","); out[4] = 0x20
        put(Int(tm.tm_mday), 5, 2); out[7] = 0x20
        out[8] = m[0]; out[9] = m[1]; out[10] = m[2]; out[11] = 0x20
        put(Int(tm.tm_year) + 1900, 12, 4); out[16] = 0x20
        put(Int(tm.tm_hour), 17, 2); out[19] = UInt8(ascii: ":"); put(Int(tm.tm_min), 20, 2); out[22] = UInt8(ascii: ":")
        put(Int(tm.tm_sec), 23, 2); out[25] = 0x20
        out[26] = UInt8(ascii: "G"); out[27] = UInt8(ascii: "M"); out[28] = UInt8(ascii: "T")
        return length
    }

    /// Parses the IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`).
    static func parse(_ s: String) -> Date? {
        let parts = s.split(separator: " ")
        guard parts.count == 6, let day = Int(parts[1]), let month = months.firstIndex(of: String(parts[2])),
              let year = Int(parts[3]) else { return nil }
        let hms = parts[4].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3 else { return nil }
        var tm = tm()
        tm.tm_year = Int32(year - 1900); tm.tm_mon = Int32(month); tm.tm_mday = Int32(day)
        tm.tm_hour = Int32(hms[0]); tm.tm_min = Int32(hms[1]); tm.tm_sec = Int32(hms[2])
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm)))
    }
}

enum ContentTypes {
    static func forName(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "application/octet-stream" }
        let ext = String(name[name.index(after: dot)...])
        if let hit = memo.withLockedValue({ $0[ext] }) { return hit }
        let lower = ext.lowercased()
        let mime = extras[lower] ?? MediaType.getMediaType(forExtension: lower)?.description ?? "application/octet-stream"
        memo.withLockedValue { m in
            if m.count > 4096 { m.removeAll() }
            m[ext] = mime
        }
        return mime
    }

    /// Extension → type, remembered (a WebDAV listing asks for thousands).
    static let memo = NIOLockedValueBox<[String: String]>([:])

    static let extras = ["mkv": "video/x-matroska", "flac": "audio/flac", "m4a": "audio/mp4", "srt": "text/plain",
                         "ass": "text/plain", "vtt": "text/vtt", "lrc": "text/plain", "md": "text/markdown",
                         "heic": "image/heic", "avif": "image/avif", "webp": "image/webp", "opus": "audio/opus"]

    /// Types a browser shows without running anything: never HTML, SVG, XML or scripts.
    static func isSafeInline(_ mime: String) -> Bool {
        let m = mime.lowercased()
        if m.hasPrefix("image/svg") { return false }
        return m.hasPrefix("image/") || m.hasPrefix("video/") || m.hasPrefix("audio/") || m.hasPrefix("text/plain")
            || m == "application/pdf"
    }

    /// `Content-Disposition` with an ASCII fallback and the RFC 5987 `filename*` for any name.
    static func disposition(name: String, inline: Bool) -> String {
        let ascii = String(name.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 ? Character($0) : "_" })
        return "\(inline ? "inline" : "attachment"); filename=\"\(ascii)\"; filename*=UTF-8''\(URLPath.encode(name, keepSlash: false))"
    }
}
