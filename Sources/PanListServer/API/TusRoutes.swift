import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore

/// tus 1.0 (core, creation, creation-with-upload, creation-defer-length, termination, checksum, expiration)
/// at `/api/fs/tus/`, over the resumable upload sessions (`ResumableUploads`). Authentication as for
/// `/api/fs/put` (the `Authorization` token); the target and times in `Upload-Metadata`. Errors answer plain
/// HTTP statuses (tus clients read statuses, not the envelope) with the message as text.
struct TusRoutes: Sendable {
    let state: ServerState
    var uploads: ResumableUploads { ResumableUploads(state: state) }

    static let version = "1.0.0"
    static let extensions = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration"
    static let algorithms = "md5,sha1,sha256"

    func register(on router: Router<AppContext>) {
        let tus = router.group("api/fs/tus")
        tus.on("", method: .options) { _, _ in options() }
        tus.on("{id}", method: .options) { _, _ in options() }
        tus.post("") { req, ctx in try await answer(req) { try await create(req, ctx) } }
        tus.head("{id}") { req, ctx in try await answer(req) { try await head(req, ctx) } }
        tus.patch("{id}") { req, ctx in try await answer(req) { try await patch(req, ctx) } }
        tus.delete("{id}") { req, ctx in try await answer(req) { try await terminate(req, ctx) } }
    }

    // MARK: answers

    func headers(_ extra: [(String, String)] = []) -> HTTPFields {
        var h = HTTPFields()
        h[HTTPField.Name("Tus-Resumable")!] = Self.version
        h[.cacheControl] = "no-store"
        h[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        for (k, v) in extra { if let name = HTTPField.Name(k) { h[name] = v } }
        return h
    }

    func options() -> Response {
        var extra = [("Tus-Version", Self.version), ("Tus-Extension", Self.extensions), ("Tus-Checksum-Algorithm", Self.algorithms)]
        if let max = uploads.maxSize { extra.append(("Tus-Max-Size", String(max))) }
        return Response(status: .noContent, headers: headers(extra))
    }

    /// An error as tus wants it: the status the core's error maps to (the one HTTP mapping, as WebDAV's) or
    /// the upload's own, the message as text. The body of a refused PATCH is not read on: the connection closes.
    func answer(_ req: Request, _ body: () async throws -> Response) async throws -> Response {
        let status: HTTPResponse.Status, message: String, extra: [(String, String)]
        do {
            return try await body()
        } catch let e as UploadError {
            status = e.code == 460 ? HTTPResponse.Status(code: 460, reasonPhrase: "Checksum Mismatch") : HTTPResponse.Status(code: e.code)
            (message, extra) = (e.message, e.headers)
        } catch {
            let e = FSError.from(error)
            (status, message, extra) = (e.httpStatus, e.message, [])
        }
        return Response(status: status, headers: headers([("Content-Type", "text/plain; charset=utf-8")] + extra),
                        body: ResponseBody(byteBuffer: ByteBuffer(string: message + "\n")))
    }

    static func httpDate(_ ms: Int64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    // MARK: requests

    func header(_ req: Request, _ name: String) -> String? { HTTPField.Name(name).flatMap { req.headers[$0] } }

    func checkVersion(_ req: Request) throws {
        guard header(req, "Tus-Resumable") == Self.version else {
            throw UploadError(code: 412, message: "Tus-Resumable \(Self.version) is required", headers: [("Tus-Version", Self.version)])
        }
    }

    /// `Upload-Metadata`: comma-separated `key base64value` pairs (a key alone for an empty value).
    static func metadata(_ text: String) throws -> [(key: String, value: String, raw: String)] {
        var out: [(key: String, value: String, raw: String)] = []
        for pair in text.split(separator: ",") {
            let raw = pair.trimmingCharacters(in: .whitespaces)
            let parts = raw.split(separator: " ", maxSplits: 1)
            guard let key = parts.first.map(String.init), !key.isEmpty else { continue }
            guard !out.contains(where: { $0.key == key }) else { throw FSError.badRequest("Upload-Metadata names \(key) twice") }
            var value = ""
            if parts.count == 2 {
                guard let data = Data(base64Encoded: String(parts[1])), let v = String(data: data, encoding: .utf8) else {
                    throw FSError.badRequest("Upload-Metadata: the value of \(key) is not Base64 of UTF-8 text")
                }
                value = v
            }
            out.append((key, value, raw))
        }
        return out
    }

    func create(_ req: Request, _ ctx: AppContext) async throws -> Response {
        try checkVersion(req)
        let user = try await state.authenticate(req)
        let pairs = try Self.metadata(header(req, "Upload-Metadata") ?? "")
        let meta = Dictionary(pairs.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        // The target: `path` (as the user sees it), or `filename` (+ `dir`).
        let given = meta["path"] ?? meta["filepath"] ?? VirtualPath.join(meta["dir"] ?? "/", meta["filename"] ?? meta["name"] ?? "")
        guard !VirtualPath.base(given).isEmpty else { throw FSError.badRequest("Upload-Metadata must name the file: path, or filename (and dir)") }
        var size: Int64 = -1
        if let l = header(req, "Upload-Length") {
            guard header(req, "Upload-Defer-Length") == nil else { throw FSError.badRequest("send Upload-Length or Upload-Defer-Length, not both") }
            guard let n = Int64(l), n >= 0 else { throw FSError.badRequest("Upload-Length must be a number of bytes") }
            size = n
        } else {
            guard header(req, "Upload-Defer-Length") == "1" else { throw FSError.badRequest("Upload-Length (or Upload-Defer-Length: 1) is required") }
        }
        func hex(_ key: String, _ length: Int) throws -> String {
            guard let v = meta[key]?.lowercased(), !v.isEmpty else { return "" }
            guard v.count == length, v.allSatisfy(\.isHexDigit) else { throw FSError.badRequest("Upload-Metadata \(key) must be \(length) hex digits") }
            return v
        }
        var t = ResumableUploads.Target(path: try Access.resolve(given, for: user), size: size,
                                        overwrite: meta["overwrite"]?.lowercased() != "false")
        t.md5 = try hex("md5", 32); t.sha1 = try hex("sha1", 40); t.sha256 = try hex("sha256", 64)
        t.modifiedMs = (meta["lastModified"] ?? meta["modified"]).flatMap { ModifiedTime.secondsOrMilliseconds(text: $0) }
            .map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
        t.mime = meta["filetype"] ?? meta["type"] ?? ""
        // The folder password is checked now and never kept (HEAD answers the metadata without it).
        let kept = pairs.filter { $0.key != "password" }.map(\.raw).joined(separator: ",")
        let s = try await uploads.open(t, for: user, proto: "tus", metadata: kept, password: meta["password"], ip: ctx.clientIP)
        var extra = [("Location", "/api/fs/tus/" + s.id), ("Upload-Expires", Self.httpDate(s.expires_ms))]
        // creation-with-upload: a body goes in as the first PATCH would. An empty file is complete at once.
        if req.headers[.contentType]?.lowercased().hasPrefix("application/offset+octet-stream") == true || size == 0
            || s.sessionState == .complete {
            do {
                var offset = s.size
                if s.sessionState == .complete {
                    for try await _ in req.body {}
                } else {
                    offset = try await uploads.append(req.body, to: s, at: 0, length: req.headers[.contentLength].flatMap { Int64($0) },
                                                      check: try Self.checksum(header(req, "Upload-Checksum")), user: user)
                }
                extra.append(("Upload-Offset", String(offset)))
            } catch {
                // The client never learns this upload's address: nothing of it stays.
                try? await uploads.terminate(s)
                throw error
            }
        }
        return Response(status: .created, headers: headers(extra))
    }

    func head(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        var s = try await uploads.session(ctx.parameters.get("id") ?? "", of: user, proto: "tus", allowEnded: true)
        if s.sessionState == .terminated || (s.sessionState == .open && s.expires_ms <= ResumableUploads.nowMs()) { throw UploadError.gone }
        s = await uploads.reconcile(s)
        var extra = [("Upload-Offset", String(s.received)), ("Upload-Expires", Self.httpDate(s.expires_ms))]
        extra.append(s.size >= 0 ? ("Upload-Length", String(s.size)) : ("Upload-Defer-Length", "1"))
        if !s.metadata.isEmpty { extra.append(("Upload-Metadata", s.metadata)) }
        return Response(status: .ok, headers: headers(extra))
    }

    func patch(_ req: Request, _ ctx: AppContext) async throws -> Response {
        try checkVersion(req)
        guard req.headers[.contentType]?.lowercased().hasPrefix("application/offset+octet-stream") == true else {
            throw UploadError(code: 415, message: "a PATCH carries Content-Type: application/offset+octet-stream")
        }
        let user = try await state.authenticate(req)
        let id = ctx.parameters.get("id") ?? ""
        guard let o = header(req, "Upload-Offset").flatMap(Int64.init), o >= 0 else {
            throw FSError.badRequest("Upload-Offset must be a number of bytes")
        }
        // An instant upload (the cloud had the content) is complete before the first PATCH: its bytes are not
        // needed; the client learns the end offset.
        if let done = try? await uploads.session(id, of: user, proto: "tus", allowEnded: true), done.sessionState == .complete,
           done.spool.isEmpty, done.upstream.isEmpty, done.received == done.size, o <= done.size {
            for try await _ in req.body {}
            return Response(status: .noContent, headers: headers([("Upload-Offset", String(done.size))]))
        }
        var s = try await uploads.session(id, of: user, proto: "tus")
        guard o == s.received else { throw UploadError.offset(o, s.received) }
        let check = try Self.checksum(header(req, "Upload-Checksum"))
        if let l = header(req, "Upload-Length") {
            guard let n = Int64(l), n >= o else { throw FSError.badRequest("Upload-Length must be a number of bytes, at least the offset") }
            if s.size < 0 {
                if let max = uploads.maxSize, n > max { throw UploadError(code: 413, message: "uploads may be at most \(max) bytes") }
                if !(try await state.store.setUploadSessionSize(id: s.id, size: n)) {
                    s.size = try await state.store.uploadSession(id: s.id)?.size ?? -1
                } else {
                    s.size = n
                }
            }
            guard s.size == n else { throw FSError.badRequest("Upload-Length \(n) differs from the upload's length \(s.size); it cannot change") }
        }
        let offset = try await uploads.append(req.body, to: s, at: o, length: req.headers[.contentLength].flatMap { Int64($0) },
                                              check: check, user: user)
        let expires = ResumableUploads.nowMs() + uploads.lifetimeMs
        return Response(status: .noContent, headers: headers([("Upload-Offset", String(offset)), ("Upload-Expires", Self.httpDate(expires))]))
    }

    static func checksum(_ header: String?) throws -> ResumableUploads.ChunkCheck? {
        guard let header, !header.isEmpty else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["md5", "sha1", "sha256"].contains(parts[0].lowercased()), let d = Data(base64Encoded: parts[1]) else {
            throw FSError.badRequest("Upload-Checksum must be `md5|sha1|sha256 <base64 digest>`")
        }
        return .init(algorithm: parts[0].lowercased(), digest: d)
    }

    func terminate(_ req: Request, _ ctx: AppContext) async throws -> Response {
        try checkVersion(req)
        let user = try await state.authenticate(req)
        let s = try await uploads.session(ctx.parameters.get("id") ?? "", of: user, proto: "tus")
        try await uploads.terminate(s)
        return Response(status: .noContent, headers: headers())
    }
}
