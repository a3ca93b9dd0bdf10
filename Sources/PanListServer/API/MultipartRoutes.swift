import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore

/// OpenList's chunked upload routes (`/api/fs/multipart/{init,chunk,complete,status,abort}`, OpenList 4.2.5),
/// over the same resumable upload sessions as tus (`ResumableUploads`): kept in the store (they survive a
/// restart), chunks written where they belong in the session's file (several at once, in any order), the
/// file stored when `complete` finds every chunk. Answers are Alist envelopes (HTTP 200, the code inside).
struct MultipartRoutes: Sendable {
    let state: ServerState
    var uploads: ResumableUploads { ResumableUploads(state: state) }

    func register(on router: Router<AppContext>) {
        let m = router.group("api/fs/multipart")
        m.post("init") { req, ctx in await answer { try await initialize(req, ctx) } }
        m.put("chunk") { req, ctx in await answer { try await chunk(req, ctx) } }
        m.post("complete") { req, ctx in await answer { try await complete(req, ctx) } }
        m.get("status") { req, ctx in await answer { try await status(req, ctx) } }
        m.post("abort") { req, ctx in await answer { try await abort(req, ctx) } }
    }

    func answer(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let e as UploadError {
            return APIResponse.json(Envelope<Null>(code: e.code == 410 ? 404 : e.code, message: e.message, data: nil),
                                    status: e.code == 503 ? .serviceUnavailable : .ok)
        } catch {
            return APIResponse.error(FSError.from(error))
        }
    }

    /// OpenList's session snapshot.
    struct Snapshot: Encodable {
        var upload_id: String
        var state: String
        var attempt = 1
        var path: String
        var size: Int64
        var chunk_size: Int64
        var total_chunks: Int
        var received: [[Int]]
        var received_bytes: Int64
        var frontier: Int
        var storage_progress: Double
        var resumed: Bool?
    }

    func snapshot(_ s: UploadSession, _ user: User, resumed: Bool? = nil) async throws -> Snapshot {
        let total = s.chunkCount
        let complete = s.sessionState == .complete
        let have = complete ? Array(0..<total) : try await state.store.uploadChunks(id: s.id)
        var ranges: [[Int]] = []
        for i in have {
            if let last = ranges.last, last[1] == i - 1 { ranges[ranges.count - 1][1] = i } else { ranges.append([i, i]) }
        }
        var frontier = 0
        while frontier < have.count, have[frontier] == frontier { frontier += 1 }
        let bytes = have.reduce(Int64(0)) { $0 + min(s.chunk_size, s.size - Int64($1) * s.chunk_size) }
        let name = switch s.sessionState { case .open: "receiving"; case .complete: "completed"; case .terminated: "aborted" }
        return Snapshot(upload_id: s.id, state: name, path: Access.userPath(s.path, for: user), size: s.size, chunk_size: s.chunk_size,
                        total_chunks: total, received: ranges, received_bytes: bytes, frontier: frontier,
                        storage_progress: complete ? 100 : 0, resumed: resumed)
    }

    func header(_ req: Request, _ name: String) -> String? { HTTPField.Name(name).flatMap { req.headers[$0] } }

    /// The session named by `X-Upload-Id`: 404 unknown, 403 another user's.
    func session(_ req: Request, _ user: User) async throws -> UploadSession {
        try await session(header(req, "X-Upload-Id") ?? "", user)
    }

    func session(_ id: String, _ user: User) async throws -> UploadSession {
        guard !id.isEmpty, let s = try await state.store.uploadSession(id: id), s.proto == "multipart", s.sessionState != .terminated else {
            throw UploadError(code: 404, message: "no such upload session")
        }
        guard s.creator_id == user.id else { throw UploadError(code: 403, message: "this upload session is another user's") }
        return s
    }

    func initialize(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        guard uploads.enabled else { throw UploadError(code: 403, message: "multipart upload is disabled") }
        guard let raw = header(req, "File-Path"), let given = raw.removingPercentEncoding, !given.isEmpty else {
            throw FSError.badRequest("File-Path (the URL-encoded path of the file) is required")
        }
        guard let size = header(req, "X-File-Size").flatMap(Int64.init), size > 0 else {
            throw FSError.badRequest("X-File-Size must be a number of bytes above 0 (upload empty files with /api/fs/put)")
        }
        var chunk = uploads.chunkLimit
        if let c = header(req, "X-Chunk-Size") {
            guard let n = Int64(c) else { throw FSError.badRequest("X-Chunk-Size must be a number of bytes") }
            chunk = min(max(n, 1 << 20), uploads.chunkLimit)
        }
        func hex(_ name: String, _ length: Int) throws -> String {
            guard let v = header(req, name)?.lowercased(), !v.isEmpty else { return "" }
            guard v.count == length, v.allSatisfy(\.isHexDigit) else { throw FSError.badRequest("\(name) must be \(length) hex digits") }
            return v
        }
        var t = ResumableUploads.Target(path: try Access.resolve(given, for: user), size: size,
                                        overwrite: header(req, "Overwrite")?.lowercased() != "false")
        t.md5 = try hex("X-File-Md5", 32); t.sha1 = try hex("X-File-Sha1", 40); t.sha256 = try hex("X-File-Sha256", 64)
        t.modifiedMs = header(req, "Last-Modified").flatMap { ModifiedTime.secondsOrMilliseconds(text: $0) }
            .map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
        t.mime = header(req, "Content-Type") ?? ""
        // The same user, path and size with agreeing hashes: that session goes on (`resumed`); one without
        // hashes to agree on is replaced.
        if let old = try await state.store.findUploadSession(creator: user.id, proto: "multipart", dir: VirtualPath.parent(t.path),
                                                             name: VirtualPath.base(t.path), size: size) {
            let pairs = [(old.md5, t.md5), (old.sha1, t.sha1), (old.sha256, t.sha256)].filter { !$0.0.isEmpty && !$0.1.isEmpty }
            if !pairs.isEmpty, pairs.allSatisfy({ $0.0 == $0.1 }), old.chunk_size == chunk || header(req, "X-Chunk-Size") == nil {
                try state.checkCreate(user, t.path, password: header(req, "Password"), ip: ctx.clientIP)
                return APIResponse.ok(try await snapshot(old, user, resumed: true))
            }
            try await uploads.terminate(old)
        }
        let s = try await uploads.open(t, for: user, proto: "multipart", chunkSize: chunk, password: header(req, "Password"), ip: ctx.clientIP)
        return APIResponse.ok(try await snapshot(s, user, resumed: false))
    }

    func chunk(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let s = try await session(req, user)
        guard let index = header(req, "X-Chunk-Index").flatMap(Int.init) else { throw FSError.badRequest("invalid X-Chunk-Index header") }
        if s.sessionState == .complete {
            for try await _ in req.body {}
            return APIResponse.ok(try await snapshot(s, user))
        }
        guard s.expires_ms > ResumableUploads.nowMs() else { throw UploadError(code: 404, message: "the upload session expired; start a new one") }
        switch try await uploads.putChunk(req.body, to: s, index: index) {
        case .busy: throw UploadError(code: 409, message: "chunk \(index) is being uploaded by another request")
        case .claimed, .done: return APIResponse.ok(try await snapshot(s, user))
        }
    }

    func complete(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        var s = try await session(req, user)
        if s.sessionState == .open {
            try await uploads.completeChunks(s, user: user)
            s.state = UploadSession.State.complete.rawValue
        }
        let snap = try await snapshot(s, user)
        // Done with: a later status answers 404, which OpenList's clients take as success.
        try await state.store.deleteUploadSession(id: s.id)
        return APIResponse.ok(snap)
    }

    func status(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let q = req.uri.queryParameters
        if let id = q["upload_id"].map(String.init), !id.isEmpty {
            return APIResponse.ok(try await snapshot(try await session(id, user), user))
        }
        guard let given = q["path"].map(String.init), let size = q["size"].flatMap({ Int64(String($0)) }) else {
            throw FSError.badRequest("status lookup requires upload_id, or path and size")
        }
        let path = try Access.resolve(given, for: user)
        guard let s = try await state.store.findUploadSession(creator: user.id, proto: "multipart", dir: VirtualPath.parent(path),
                                                               name: VirtualPath.base(path), size: size) else {
            throw UploadError(code: 404, message: "no upload session for \(given) of \(size) bytes")
        }
        return APIResponse.ok(try await snapshot(s, user))
    }

    func abort(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let s = try await session(req, user)
        try await uploads.terminate(s)
        try await state.store.deleteUploadSession(id: s.id)
        return APIResponse.ok()
    }
}
