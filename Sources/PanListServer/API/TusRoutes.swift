import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore
import _NIOFileSystem

/// tus 1.0 (core, creation, creation-with-upload, termination, checksum, expiration) at `/api/fs/tus/`.
/// Sessions are rows in the store (`UploadSession`); the bytes are spooled in this instance's
/// `temp_dir/uploads/<id>` and stored with `FileSystem.put` once the last byte arrived (the same checks
/// and writers as `/api/fs/put`: nothing partial is visible under the target name).
/// Errors answer plain HTTP statuses (tus clients read statuses, not the envelope).
///
/// WORK IN PROGRESS (issue 16): Local targets will write into the target folder and 123 Open targets will
/// stream slices while chunks arrive; OpenList's multipart routes to come.
struct TusRoutes: Sendable {
    let state: ServerState

    static let version = "1.0.0"
    static let extensions = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration"
    static let algorithms = "md5,sha1,sha256"
    static let spoolName = "uploads"

    var spoolFolder: String { state.uploadSpool }

    func register(on router: Router<AppContext>) {
        let tus = router.group("api/fs/tus")
        tus.on("", method: .options) { _, _ in options() }
        tus.on("{id}", method: .options) { _, _ in options() }
        tus.post("") { req, ctx in try await answer { try await create(req, ctx) } }
        tus.head("{id}") { req, ctx in try await answer { try await head(req, ctx) } }
        tus.patch("{id}") { req, ctx in try await answer { try await patch(req, ctx) } }
        tus.delete("{id}") { req, ctx in try await answer { try await terminate(req, ctx) } }
    }

    // MARK: answers

    func headers(_ extra: [(String, String)] = []) -> HTTPFields {
        var h = HTTPFields()
        h[HTTPField.Name("Tus-Resumable")!] = Self.version
        h[.cacheControl] = "no-store"
        h[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        for (k, v) in extra { h[HTTPField.Name(k)!] = v }
        return h
    }

    func options() -> Response {
        var extra = [("Tus-Version", Self.version), ("Tus-Extension", Self.extensions), ("Tus-Checksum-Algorithm", Self.algorithms)]
        if let max = maxSize { extra.append(("Tus-Max-Size", String(max))) }
        return Response(status: .noContent, headers: headers(extra))
    }

    /// A tus error: the status the core's error maps to (the one HTTP mapping, as WebDAV's), the message as text.
    func answer(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let e as TusError {
            return Response(status: e.status, headers: headers([("Content-Type", "text/plain; charset=utf-8")] + e.headers),
                            body: ResponseBody(byteBuffer: ByteBuffer(string: e.message + "\n")))
        } catch {
            let e = FSError.from(error)
            return Response(status: e.davStatus, headers: headers([("Content-Type", "text/plain; charset=utf-8")]),
                            body: ResponseBody(byteBuffer: ByteBuffer(string: e.message + "\n")))
        }
    }

    struct TusError: Error {
        var status: HTTPResponse.Status
        var message: String
        var headers: [(String, String)] = []
        static let checksumMismatch = HTTPResponse.Status(code: 460, reasonPhrase: "Checksum Mismatch")
    }

    // MARK: settings

    var maxSize: Int64? {
        guard let gb = state.setting("upload_max_size_gb").flatMap(Int64.init), gb > 0 else { return nil }
        return gb << 30
    }
    var lifetimeMs: Int64 { Int64(max(1, Int(state.setting("upload_session_hours") ?? "") ?? 24)) * 3_600_000 }
    var perUser: Int { max(1, Int(state.setting("upload_sessions_per_user") ?? "") ?? 20) }
    var enabled: Bool { state.setting("multipart_enabled") != "false" }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func httpDate(_ ms: Int64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    // MARK: requests

    func checkVersion(_ req: Request) throws {
        guard req.headers[HTTPField.Name("Tus-Resumable")!] == Self.version else {
            throw TusError(status: .preconditionFailed, message: "Tus-Resumable \(Self.version) is required",
                           headers: [("Tus-Version", Self.version)])
        }
    }

    /// `Upload-Metadata`: comma-separated `key base64value` pairs (a key alone for an empty value).
    static func metadata(_ text: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: ",") {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
            guard let key = parts.first.map(String.init), !key.isEmpty else { continue }
            guard out[key] == nil else { throw FSError.badRequest("Upload-Metadata names \(key) twice") }
            if parts.count == 2 {
                guard let data = Data(base64Encoded: String(parts[1])), let value = String(data: data, encoding: .utf8) else {
                    throw FSError.badRequest("Upload-Metadata: the value of \(key) is not Base64 of UTF-8 text")
                }
                out[key] = value
            } else {
                out[key] = ""
            }
        }
        return out
    }

    func session(_ ctx: AppContext, _ user: User) async throws -> UploadSession {
        let id = ctx.parameters.get("id") ?? ""
        guard let s = try await state.store.uploadSession(id: id), s.creator_id == user.id, s.proto == "tus" else {
            throw TusError(status: .notFound, message: "no such upload")
        }
        if s.sessionState == .terminated || s.expires_ms <= Self.nowMs() {
            throw TusError(status: .gone, message: "this upload ended (terminated or expired); start a new one")
        }
        return s
    }

    func create(_ req: Request, _ ctx: AppContext) async throws -> Response {
        try checkVersion(req)
        guard enabled else { throw FSError.notSupported("resumable uploads are turned off (setting multipart_enabled)") }
        let user = try await state.authenticate(req)
        let meta = try Self.metadata(req.headers[HTTPField.Name("Upload-Metadata")!] ?? "")
        // The target: `path` (as the user sees it), or `filename` (+ `dir`).
        let given = meta["path"] ?? meta["filepath"] ?? VirtualPath.join(meta["dir"] ?? "/", meta["filename"] ?? meta["name"] ?? "")
        let path = try Access.resolve(given, for: user)
        guard path != "/", !VirtualPath.base(path).isEmpty else { throw FSError.badRequest("Upload-Metadata must name the file: path, or filename (and dir)") }
        try VirtualPath.validateName(VirtualPath.base(path))
        let pw = meta["password"]
        try state.checkCreate(user, path, password: pw, ip: ctx.clientIP)
        let overwrite = meta["overwrite"]?.lowercased() != "false"
        if let existing = try? await state.fs.get(path).0 {
            if existing.isDir { throw FSError.conflict("\(Access.userPath(path, for: user)) is a folder") }
            if !overwrite { throw FSError.alreadyExists("\(Access.userPath(path, for: user)) already exists") }
            if !Access.can(user, .replace) { try state.check(user, .replace, VirtualPath.parent(path), password: pw, ip: ctx.clientIP) }
        }
        var size: Int64 = -1
        if let l = req.headers[HTTPField.Name("Upload-Length")!] {
            guard req.headers[HTTPField.Name("Upload-Defer-Length")!] == nil else { throw FSError.badRequest("send Upload-Length or Upload-Defer-Length, not both") }
            guard let n = Int64(l), n >= 0 else { throw FSError.badRequest("Upload-Length must be a number of bytes") }
            size = n
        } else {
            guard req.headers[HTTPField.Name("Upload-Defer-Length")!] == "1" else { throw FSError.badRequest("Upload-Length (or Upload-Defer-Length: 1) is required") }
        }
        if let max = maxSize, size > max { throw TusError(status: .contentTooLarge, message: "uploads may be at most \(max) bytes") }
        guard try await state.store.openUploadSessions(creator: user.id) < perUser else {
            throw TusError(status: .tooManyRequests, message: "\(user.username) has \(perUser) resumable uploads open; finish or delete one first")
        }
        func hex(_ key: String, _ length: Int) throws -> String {
            guard let v = meta[key]?.lowercased(), !v.isEmpty else { return "" }
            guard v.count == length, v.allSatisfy(\.isHexDigit) else { throw FSError.badRequest("Upload-Metadata \(key) must be \(length) hex digits") }
            return v
        }
        let id = RandomString.make(24)
        var s = UploadSession(id: id, proto: "tus", creator: user.id, dir: VirtualPath.parent(path), name: VirtualPath.base(path), size: size,
                              spool: id, instance: state.config.instanceID, expiresMs: Self.nowMs() + lifetimeMs)
        s.md5 = try hex("md5", 32); s.sha1 = try hex("sha1", 40); s.sha256 = try hex("sha256", 64)
        s.modified_ms = (meta["lastModified"] ?? meta["modified"]).flatMap { ModifiedTime.secondsOrMilliseconds(text: $0) }
            .map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
        s.mime = meta["filetype"] ?? meta["type"] ?? ""
        s.overwrite = overwrite
        s.metadata = req.headers[HTTPField.Name("Upload-Metadata")!] ?? ""
        try PrivateFiles.makeFolder(spoolFolder)
        _ = FileManager.default.createFile(atPath: spoolFolder + "/" + id, contents: nil, attributes: [.posixPermissions: 0o600])
        try await state.store.insertUploadSession(s)
        var extra = [("Location", "/api/fs/tus/" + id), ("Upload-Expires", Self.httpDate(s.expires_ms))]
        // creation-with-upload: a body goes in as the first PATCH would.
        if req.headers[.contentType]?.lowercased().hasPrefix("application/offset+octet-stream") == true {
            let (offset, _) = try await write(req, s, at: 0)
            extra.append(("Upload-Offset", String(offset)))
        }
        return Response(status: .created, headers: headers(extra))
    }

    func head(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let s = try await session(ctx, user)
        var extra = [("Upload-Offset", String(s.received)), ("Upload-Expires", Self.httpDate(s.expires_ms))]
        extra.append(s.size >= 0 ? ("Upload-Length", String(s.size)) : ("Upload-Defer-Length", "1"))
        if !s.metadata.isEmpty { extra.append(("Upload-Metadata", s.metadata)) }
        return Response(status: .ok, headers: headers(extra))
    }

    func patch(_ req: Request, _ ctx: AppContext) async throws -> Response {
        try checkVersion(req)
        guard req.headers[.contentType]?.lowercased().hasPrefix("application/offset+octet-stream") == true else {
            throw TusError(status: .unsupportedMediaType, message: "a PATCH carries Content-Type: application/offset+octet-stream")
        }
        let user = try await state.authenticate(req)
        var s = try await session(ctx, user)
        guard let o = req.headers[HTTPField.Name("Upload-Offset")!].flatMap(Int64.init), o >= 0 else {
            throw FSError.badRequest("Upload-Offset must be a number of bytes")
        }
        guard o == s.received else {
            throw TusError(status: .conflict, message: "Upload-Offset \(o) does not match the upload's offset \(s.received)")
        }
        if s.size < 0, let l = req.headers[HTTPField.Name("Upload-Length")!].flatMap(Int64.init), l >= o {
            if let max = maxSize, l > max { throw TusError(status: .contentTooLarge, message: "uploads may be at most \(max) bytes") }
            _ = try await state.store.setUploadSessionSize(id: s.id, size: l)
            s.size = l
        }
        let (offset, expires) = try await write(req, s, at: o)
        return Response(status: .noContent, headers: headers([("Upload-Offset", String(offset)), ("Upload-Expires", Self.httpDate(expires))]))
    }

    /// Appends the body at `offset` while holding the session (one writer at a time; a second gets 409),
    /// checks `Upload-Checksum` and the declared length, and stores the file once it is whole.
    func write(_ req: Request, _ s: UploadSession, at offset: Int64) async throws -> (Int64, Int64) {
        guard s.instance == state.config.instanceID else {
            throw FSError.unavailable("this upload's bytes are on another PanList instance (\(s.instance)); send it there")
        }
        let writer = RandomString.make(16)
        guard try await state.store.takeUploadSession(id: s.id, at: offset, writer: writer, forMs: 120_000) != nil else {
            throw TusError(status: .conflict, message: "another request is writing this upload, or its offset moved; ask HEAD for the offset")
        }
        var newOffset = offset
        let expires = Self.nowMs() + lifetimeMs
        do {
            let checksum = try Self.checksum(req.headers[HTTPField.Name("Upload-Checksum")!])
            let path = spoolFolder + "/" + s.spool
            let limit = s.size >= 0 ? s.size - offset : Int64.max
            let (written, digest) = try await Self.append(req.body, to: path, at: offset, limit: limit, hashing: checksum?.algorithm)
            if let checksum, digest != checksum.digest {
                throw TusError(status: TusError.checksumMismatch, message: "Upload-Checksum does not match the bytes received; the chunk was discarded")
            }
            newOffset = offset + written
        } catch {
            _ = try? await state.store.releaseUploadSession(id: s.id, writer: writer, offset: offset, expiresMs: expires)
            throw error
        }
        guard try await state.store.releaseUploadSession(id: s.id, writer: writer, offset: newOffset, expiresMs: expires) else {
            throw TusError(status: .conflict, message: "the upload was taken by another request meanwhile")
        }
        if s.size >= 0, newOffset == s.size { try await finish(s) }
        return (newOffset, expires)
    }

    struct Checksum { var algorithm: String; var digest: Data }

    static func checksum(_ header: String?) throws -> Checksum? {
        guard let header, !header.isEmpty else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["md5", "sha1", "sha256"].contains(parts[0].lowercased()), let d = Data(base64Encoded: parts[1]) else {
            throw FSError.badRequest("Upload-Checksum must be `md5|sha1|sha256 <base64 digest>`")
        }
        return Checksum(algorithm: parts[0].lowercased(), digest: d)
    }

    /// Writes `body` into `path` from `offset` (dropping anything after it first, left by a cut request),
    /// at most `limit` bytes (more: 413, nothing kept); the digest of the bytes when asked for.
    static func append(_ body: RequestBody, to path: String, at offset: Int64, limit: Int64,
                       hashing algorithm: String?) async throws -> (Int64, Data?) {
        var md5 = algorithm == "md5" ? Insecure.MD5() : nil
        var sha1 = algorithm == "sha1" ? Insecure.SHA1() : nil
        var sha256 = algorithm == "sha256" ? SHA256() : nil
        let written: Int64 = try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAndWritingAt: FilePath(path),
                                                                                       options: .modifyFile(createIfNecessary: false)) { h in
            try await h.resize(to: .bytes(offset))
            var n: Int64 = 0
            for try await buffer in body {
                n += Int64(buffer.readableBytes)
                if n > limit {
                    try await h.resize(to: .bytes(offset))
                    throw TusError(status: .contentTooLarge, message: "the chunk goes beyond the upload's declared length")
                }
                buffer.withUnsafeReadableBytes { p in
                    md5?.update(bufferPointer: p); sha1?.update(bufferPointer: p); sha256?.update(bufferPointer: p)
                }
                try await h.write(contentsOf: buffer.readableBytesView, toAbsoluteOffset: offset + n - Int64(buffer.readableBytes))
            }
            return n
        }
        let digest = md5.map { Data($0.finalize()) } ?? sha1.map { Data($0.finalize()) } ?? sha256.map { Data($0.finalize()) }
        return (written, digest)
    }

    /// The last byte arrived: the file is stored through the file system (its writers verify the declared
    /// hashes), the spool is removed and the session marked complete.
    func finish(_ s: UploadSession) async throws {
        let path = spoolFolder + "/" + s.spool
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
            let stream = UploadStream(name: s.name, size: s.size,
                                      modified: s.modified_ms > 0 ? Date(timeIntervalSince1970: Double(s.modified_ms) / 1000) : nil,
                                      mimeType: s.mime.isEmpty ? nil : s.mime, md5: s.md5.isEmpty ? nil : s.md5,
                                      sha1: s.sha1.isEmpty ? nil : s.sha1, sha256: s.sha256.isEmpty ? nil : s.sha256,
                                      body: ByteStream(handle.readChunks(chunkLength: .mebibytes(1))))
            try await state.fs.put(stream, into: s.dir, overwrite: s.overwrite)
        }
        try await state.store.setUploadSessionState(id: s.id, state: .complete)
        _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(path), recursively: false)
    }

    func terminate(_ req: Request, _ ctx: AppContext) async throws -> Response {
        try checkVersion(req)
        let user = try await state.authenticate(req)
        let s = try await session(ctx, user)
        try await state.store.setUploadSessionState(id: s.id, state: .terminated)
        _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(spoolFolder + "/" + s.spool), recursively: false)
        return Response(status: .noContent, headers: headers())
    }
}

extension ServerState {
    var uploadSpool: String { config.tempDir + "/" + TusRoutes.spoolName }

    /// Once at start and then once a minute: expired upload sessions of this instance go with their spool,
    /// and spool files without an open session of this instance (a crash between the two) go too.
    func startUploadSweeper() {
        let work = Task { [self] in
            await sweepUploads(orphans: true)
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(60))
                if Task.isCancelled { break }
                await sweepUploads(orphans: false)
            }
        }
        uploadSweeper.withLockedValue { $0?.cancel(); $0 = work }
    }

    func sweepUploads(orphans: Bool) async {
        let me = config.instanceID
        while let expired = try? await store.expiredUploadSessions(limit: 100), !expired.isEmpty {
            var removed = 0
            for s in expired where s.instance == me || s.instance.isEmpty {
                try? FileManager.default.removeItem(atPath: uploadSpool + "/" + s.spool)
                if (try? await store.deleteUploadSession(id: s.id)) != nil { removed += 1 }
            }
            if removed == 0 { break }
        }
        guard orphans, let names = try? FileManager.default.contentsOfDirectory(atPath: uploadSpool) else { return }
        for name in names {
            let s = try? await store.uploadSession(id: name)
            if s == nil || s?.sessionState != .open || s?.instance != me {
                try? FileManager.default.removeItem(atPath: uploadSpool + "/" + name)
            }
        }
    }
}
