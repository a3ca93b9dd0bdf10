import Crypto
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PanListCore
import _NIOFileSystem

/// An error a resumable-upload route answers with a status (tus) or envelope code (OpenList) of its own.
struct UploadError: Error {
    var code: Int
    var message: String
    var headers: [(String, String)] = []

    static func offset(_ sent: Int64, _ have: Int64) -> UploadError {
        UploadError(code: 409, message: "the upload is at byte \(have), not \(sent); ask for the offset (HEAD) and go on from there")
    }
    static let busy = UploadError(code: 409, message: "another request is writing this upload now; ask for the offset (HEAD) and go on from there")
    static let checksum = UploadError(code: 460, message: "the checksum does not match the bytes received; the chunk was discarded, send it again")
    static let gone = UploadError(code: 410, message: "this upload ended (completed, deleted or expired); start a new one")
}

/// Resumable uploads (tus and OpenList's chunked routes) over the sessions in the store.
///
/// Where the bytes go: a target whose driver can stage (Local) gets them in a hidden file beside the target,
/// renamed into place when whole and checked; any other target (123 Open) gets them in this instance's spool
/// (`temp_dir/uploads/<id>`), with the MD5 computed as they arrive so the driver does not read them twice.
/// One request writes a session at a time (`takeUploadSession`, renewed while it writes); OpenList's chunks
/// are claimed one by one (`claimUploadChunk`), so several go at once. The last write stores the file
/// through `FileSystem.put` (the same checks and writers as `/api/fs/put`) while still holding the session:
/// when that fails, the last chunk is not counted and its resend tries again.
struct ResumableUploads: Sendable {
    let state: ServerState

    static let holdMs: Int64 = 120_000
    static let writeSize = 1 << 20
    /// This process among the runs of its instance: a hold's writer is `<instance>/<process>/<random>`, so that
    /// at start an instance lets go of the holds its previous run left (killed mid-request).
    static let processToken = RandomString.make(8)
    func newWriter() -> String { state.config.instanceID + "/" + Self.processToken + "/" + RandomString.make(12) }
    static let spoolName = "uploads"

    // MARK: settings

    var maxSize: Int64? {
        guard let gb = state.setting("upload_max_size_gb").flatMap(Int64.init), gb > 0 else { return nil }
        return gb << 30
    }
    var lifetimeMs: Int64 { Int64(max(1, Int(state.setting("upload_session_hours") ?? "") ?? 24)) * 3_600_000 }
    var perUser: Int { max(1, Int(state.setting("upload_sessions_per_user") ?? "") ?? 20) }
    var enabled: Bool { state.setting("multipart_enabled") != "false" }
    /// OpenList's `multipart_chunk_size`, in MB: the largest chunk a client may use.
    var chunkLimit: Int64 { Int64(max(1, Int(state.setting("multipart_chunk_size") ?? "") ?? 10)) << 20 }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: opening

    struct Target {
        var path: String
        var size: Int64
        var overwrite: Bool
        var md5 = "", sha1 = "", sha256 = ""
        var modifiedMs: Int64 = 0
        var mime = ""
    }

    /// Checks `target` as `/api/fs/put` would (`path` already resolved for `user`) and the limits, then opens a
    /// session (the staging or spool file made empty).
    func open(_ t: Target, for user: User, proto: String, chunkSize: Int64 = 0, metadata: String = "",
              password: String?, ip: String) async throws -> UploadSession {
        guard enabled else { throw FSError.notSupported("resumable uploads are turned off (setting multipart_enabled)") }
        guard t.path != "/", !VirtualPath.base(t.path).isEmpty else { throw FSError.badRequest("the upload must name a file") }
        try VirtualPath.validateName(VirtualPath.base(t.path))
        try state.checkCreate(user, t.path, password: password, ip: ip)
        try await checkTarget(t.path, overwrite: t.overwrite, for: user, password: password, ip: ip)
        if let max = maxSize, t.size > max {
            throw UploadError(code: 413, message: "uploads may be at most \(max) bytes (setting upload_max_size_gb)")
        }
        if t.size > 0, let free = await state.fs.freeSpace(at: t.path), t.size > free {
            throw UploadError(code: 413, message: "\(t.size) bytes do not fit: the storage has \(free) bytes free")
        }
        guard try await state.store.openUploadSessions(creator: user.id) < perUser else {
            throw UploadError(code: 429, message: "\(user.username) has \(perUser) resumable uploads open (setting upload_sessions_per_user); finish or delete one first")
        }
        let id = RandomString.make(24)
        let dir = VirtualPath.parent(t.path), name = VirtualPath.base(t.path)
        let staged = await state.fs.stagingPath(for: dir, name: name, id: id)
        var s = UploadSession(id: id, proto: proto, creator: user.id, dir: dir, name: name, size: t.size,
                              spool: staged ?? state.uploadSpool + "/" + id, instance: staged == nil ? state.config.instanceID : "",
                              expiresMs: Self.nowMs() + lifetimeMs)
        s.md5 = t.md5; s.sha1 = t.sha1; s.sha256 = t.sha256; s.modified_ms = t.modifiedMs; s.mime = t.mime
        s.overwrite = t.overwrite; s.metadata = metadata; s.chunk_size = chunkSize
        // A cloud target that takes slices, the size and MD5 known: no file at all. The cloud session begins now
        // (instant when it has the content: the upload is complete before any byte is sent).
        if staged == nil, proto == "tus", t.size > 0, !t.md5.isEmpty, t.sha1.isEmpty, t.sha256.isEmpty,
           let start = try await state.fs.beginSliced(target(s, body: .empty), into: dir, overwrite: t.overwrite) {
            s.spool = ""
            switch start {
            case .stored:
                s.state = UploadSession.State.complete.rawValue
                s.received = t.size
            case .session(let cloud, let sliceSize):
                s.upstream = Streamed(state: cloud, sliceSize: sliceSize, slices: 0).encoded
            }
            try await state.store.insertUploadSession(s)
            return s
        }
        // The row first: a crash before the file is made leaves a row the sweeper ends, never a file no row names.
        try await state.store.insertUploadSession(s)
        let spool = state.uploadSpool, path = s.spool
        let made = try? await NIOThreadPool.singleton.runIfActive { () -> Bool in
            if staged == nil { try PrivateFiles.makeFolder(spool) }
            return FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: staged == nil ? 0o600 : 0o644])
        }
        guard made == true else {
            try? await state.store.deleteUploadSession(id: id)
            throw FSError.internalError("cannot make the upload's file in \(VirtualPath.parent(path))")
        }
        return s
    }

    /// What `/api/fs/put` checks of an existing target: a folder is in the way; a file needs `overwrite` and
    /// the right to replace.
    func checkTarget(_ path: String, overwrite: Bool, for user: User, password: String?, ip: String) async throws {
        guard let existing = try? await state.fs.get(path).0 else { return }
        if existing.isDir { throw FSError.conflict("\(Access.userPath(path, for: user)) is a folder") }
        if !overwrite { throw FSError.alreadyExists("\(Access.userPath(path, for: user)) already exists") }
        if !Access.can(user, .replace) { try state.check(user, .replace, VirtualPath.parent(path), password: password, ip: ip) }
    }

    static func remove(_ path: String) async {
        _ = try? await NIOThreadPool.singleton.runIfActive { try? FileManager.default.removeItem(atPath: path) }
    }

    /// The session `id` if it is `user`'s and of `proto` (404 otherwise; 410 once ended).
    func session(_ id: String, of user: User, proto: String, allowEnded: Bool = false) async throws -> UploadSession {
        guard !id.isEmpty, let s = try await state.store.uploadSession(id: id), s.creator_id == user.id, s.proto == proto else {
            throw UploadError(code: 404, message: "no such upload")
        }
        if !allowEnded, s.sessionState != .open || s.expires_ms <= Self.nowMs() { throw UploadError.gone }
        return s
    }

    // MARK: holding

    /// Holds the session for one writer while `body` runs, renewing the hold every 30 s (a slow client may
    /// take long over one chunk); `body` gets the writer and a test of whether the hold was lost meanwhile.
    /// Someone else holding it or its offset moved: 409; ended: 410.
    func holding<R: Sendable>(_ s: UploadSession, at offset: Int64, _ body: (String, Lost) async throws -> R) async throws -> R {
        guard s.instance.isEmpty || s.instance == state.config.instanceID else {
            throw FSError.unavailable("this upload's bytes are on another PanList instance (\(s.instance)); send it there")
        }
        let writer = newWriter()
        guard try await state.store.takeUploadSession(id: s.id, at: offset, writer: writer, forMs: Self.holdMs) != nil else {
            guard let now = try await state.store.uploadSession(id: s.id), now.sessionState == .open, now.expires_ms > Self.nowMs() else {
                throw UploadError.gone
            }
            if now.received != offset { throw UploadError.offset(offset, now.received) }
            throw UploadError.busy
        }
        let lost = Lost()
        let renew = renewing(lost) { try await state.store.extendUploadSession(id: s.id, writer: writer, forMs: Self.holdMs) }
        defer { renew.cancel() }
        return try await body(writer, lost)
    }

    /// Whether a writer lost its hold (or claim) while it wrote: it stops at the next buffer.
    final class Lost: Sendable {
        let flag = NIOLockedValueBox(false)
        var isLost: Bool { flag.withLockedValue { $0 } }
    }

    /// Every 30 s, `extend`; when it says the hold is gone, `lost` is set.
    func renewing(_ lost: Lost, _ extend: @escaping @Sendable () async throws -> Bool) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(30))
                if Task.isCancelled { break }
                if (try? await extend()) == false { lost.flag.withLockedValue { $0 = true }; break }
            }
        }
    }

    // MARK: hashes as the bytes arrive

    /// The running hashes of a session's bytes so far, kept per process between requests (a session's writes
    /// are one at a time). After a restart, or on another instance, they are computed again from the file.
    struct Running: @unchecked Sendable {
        var offset: Int64 = 0
        var md5: Insecure.MD5?
        var sha1: Insecure.SHA1?
        var sha256: SHA256?

        mutating func update(_ p: UnsafeRawBufferPointer) {
            md5?.update(bufferPointer: p); sha1?.update(bufferPointer: p); sha256?.update(bufferPointer: p)
        }
    }

    /// Which hashes a session keeps: the declared ones, and the MD5 when the bytes are spooled (123 Open needs it).
    static func fresh(_ s: UploadSession) -> Running {
        Running(md5: !s.md5.isEmpty || !s.instance.isEmpty ? Insecure.MD5() : nil,
                sha1: s.sha1.isEmpty ? nil : Insecure.SHA1(), sha256: s.sha256.isEmpty ? nil : SHA256())
    }

    /// The running hashes at `offset`: kept ones, or computed from the file's first `offset` bytes.
    func running(_ s: UploadSession, at offset: Int64) async throws -> Running {
        if let kept = state.uploadHashes.withLockedValue({ $0.removeValue(forKey: s.id) }), kept.offset == offset { return kept }
        var start = Self.fresh(s)
        guard offset > 0, start.md5 != nil || start.sha1 != nil || start.sha256 != nil else { start.offset = offset; return start }
        let path = s.spool, first = start
        return try await NIOThreadPool.singleton.runIfActive {
            var r = first
            do {
                try FileRegion.read(path, offset: 0, length: offset) { r.update($0) }
            } catch {
                throw FSError.internalError("the upload's file is gone or short: \(FSError.from(error).message)")
            }
            r.offset = offset
            return r
        }
    }

    // MARK: writing (tus)

    struct ChunkCheck { var algorithm: String; var digest: Data }

    /// Appends `body` at `offset` (tus PATCH, or a POST with creation-with-upload): at most up to the declared
    /// size (or the largest allowed while it is deferred), checked against `check` when given, and stores the
    /// file when the last byte arrived. Returns the new offset. A request cut off midway keeps what arrived
    /// (unless it carried a checksum, which then cannot be checked): the client asks HEAD and goes on from there.
    func append(_ body: RequestBody, to s: UploadSession, at offset: Int64, length: Int64? = nil, check: ChunkCheck?,
                user: User) async throws -> Int64 {
        if !s.upstream.isEmpty { return try await appendStreamed(body, to: s, at: offset, length: length, check: check, user: user) }
        return try await holding(s, at: offset) { writer, lost in
            func release(_ to: Int64) async throws -> Bool {
                try await state.store.releaseUploadSession(id: s.id, writer: writer, offset: to, expiresMs: Self.nowMs() + lifetimeMs)
            }
            // A file shorter than the offset (a crash before the bytes reached the disk): the offset goes back to it.
            let have = await Self.size(of: s.spool)
            guard let have else {
                _ = try? await release(offset)
                throw UploadError(code: 410, message: "the upload's file is gone; start a new upload")
            }
            if have < offset {
                state.uploadHashes.withLockedValue { _ = $0.removeValue(forKey: s.id) }
                _ = try? await release(have)
                throw UploadError.offset(offset, have)
            }
            var run = try await running(s, at: offset)
            let before = run
            var newOffset = offset
            do {
                let limit = s.size >= 0 ? s.size - offset : (maxSize.map { $0 - offset } ?? Int64.max)
                let w = try await Self.write(body, to: s.spool, at: offset, limit: limit, hashing: check?.algorithm, running: &run, lost: lost)
                if let cut = w.cut {
                    // Cut off: what arrived (and reached the disk) counts, when no checksum needs the whole chunk.
                    let kept = check == nil ? offset + w.n : offset
                    run.offset = kept
                    if kept > offset, try await release(kept) { state.uploadHashes.withLockedValue { $0[s.id] = run } } else {
                        state.uploadHashes.withLockedValue { $0[s.id] = before }
                        _ = try? await release(offset)
                    }
                    throw cut
                }
                if let check, w.digest != check.digest { throw UploadError.checksum }
                newOffset = offset + w.n
                run.offset = newOffset
                if s.size >= 0, newOffset == s.size {
                    try await finish(s, run, user: user)
                    try await state.store.setUploadSessionState(id: s.id, state: .complete)
                }
            } catch let e as Written.Cut {
                throw e.error
            } catch {
                // Nothing of this request counts: the offset stays, the hashes as they were before it.
                state.uploadHashes.withLockedValue { $0[s.id] = before }
                _ = try? await release(offset)
                throw error
            }
            guard try await release(newOffset) else { throw UploadError.busy }
            if s.size < 0 || newOffset < s.size { state.uploadHashes.withLockedValue { $0[s.id] = run } }
            return newOffset
        }
    }

    static func size(of path: String) async -> Int64? {
        try? await NIOThreadPool.singleton.runIfActive { () -> Int64? in
            (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
        }
    }

    struct Written {
        var n: Int64
        var digest: Data?
        /// The body ended with an error after `n` bytes were written (the client went away).
        var cut: Cut?
        struct Cut: Error { var error: any Error }
    }

    /// Writes `body` into `path` from `offset` (dropping what a cut request left after it first, unless
    /// `exactly`: a chunk in its place), at most `limit` bytes (more: 413, nothing kept), updating `running`
    /// with what was written; the chunk's own digest when asked for. The bytes are not synced one by one (an fsync
    /// per chunk cost a third of the speed): a process that dies leaves them in the page cache, and after a
    /// power loss a file found shorter than its offset moves the offset back (`append`). Stops (409) when `lost`
    /// says the hold went to another request.
    static func write(_ body: RequestBody, to path: String, at offset: Int64, limit: Int64, exactly: Bool = false,
                      hashing algorithm: String?, running: inout Running, lost: Lost) async throws -> Written {
        var md5 = algorithm == "md5" ? Insecure.MD5() : nil
        var sha1 = algorithm == "sha1" ? Insecure.SHA1() : nil
        var sha256 = algorithm == "sha256" ? SHA256() : nil
        var run = running
        let result: (Int64, Written.Cut?)
        do {
            result = try await _NIOFileSystem.FileSystem.shared.withFileHandle(
                forReadingAndWritingAt: FilePath(path), options: .modifyFile(createIfNecessary: false)
            ) { h in
                if !exactly { try await h.resize(to: .bytes(offset)) }
                // The network's small buffers are gathered into 1 MiB writes (one trip to the I/O threads each).
                var n: Int64 = 0
                var pending = ByteBufferAllocator().buffer(capacity: Self.writeSize)
                var cut: Written.Cut?
                var iterator = body.makeAsyncIterator()
                while true {
                    let next: ByteBuffer?
                    do { next = try await iterator.next() } catch { cut = Written.Cut(error: error); break }
                    guard var buffer = next else { break }
                    if n + Int64(pending.readableBytes + buffer.readableBytes) > limit {
                        if !exactly { try await h.resize(to: .bytes(offset)) }
                        throw UploadError(code: 413, message: "the chunk goes beyond the upload's declared length (\(limit) bytes left)")
                    }
                    if lost.isLost { throw UploadError.busy }
                    buffer.withUnsafeReadableBytes { p in
                        md5?.update(bufferPointer: p); sha1?.update(bufferPointer: p); sha256?.update(bufferPointer: p)
                        run.update(p)
                    }
                    pending.writeBuffer(&buffer)
                    if pending.readableBytes >= Self.writeSize {
                        try await h.write(contentsOf: pending.readableBytesView, toAbsoluteOffset: offset + n)
                        n += Int64(pending.readableBytes)
                        pending.clear()
                    }
                }
                if pending.readableBytes > 0 {
                    try await h.write(contentsOf: pending.readableBytesView, toAbsoluteOffset: offset + n)
                    n += Int64(pending.readableBytes)
                }
                return (n, cut)
            }
        } catch let e as FileSystemError where e.code == .notFound {
            throw UploadError(code: 410, message: "the upload's file is gone; start a new upload")
        }
        running = run
        let digest = md5.map { Data($0.finalize()) } ?? sha1.map { Data($0.finalize()) } ?? sha256.map { Data($0.finalize()) }
        return Written(n: result.0, digest: digest, cut: result.1)
    }

    // MARK: finishing

    /// All bytes are there: the declared hashes are checked against the computed ones, the creator's right to
    /// write there once more, and the file is stored (linked into place when staged).
    func finish(_ s: UploadSession, _ run: Running, user: User) async throws {
        var md5 = s.md5, sha1 = s.sha1, sha256 = s.sha256
        func check(_ name: String, _ declared: inout String, _ computed: String?) throws {
            guard let computed else { return }
            if !declared.isEmpty, declared != computed {
                throw UploadError(code: 460, message: "the file's \(name) is \(computed), not the declared \(declared); delete this upload and start again")
            }
            declared = computed
        }
        try check("MD5", &md5, run.md5?.finalize().hexString)
        try check("SHA-1", &sha1, run.sha1?.finalize().hexString)
        try check("SHA-256", &sha256, run.sha256?.finalize().hexString)
        try await recheck(s, user)
        let path = s.spool
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
            var stream = target(s, body: ByteStream(handle.readChunks(chunkLength: .mebibytes(1))))
            stream.md5 = md5.isEmpty ? nil : md5; stream.sha1 = sha1.isEmpty ? nil : sha1; stream.sha256 = sha256.isEmpty ? nil : sha256
            stream.staged = path
            _ = try await state.fs.put(stream, into: s.dir, overwrite: s.overwrite)
        }
        // Staged: renamed into place (gone); spooled: read by the driver and removed now.
        await Self.remove(path)
        state.uploadHashes.withLockedValue { _ = $0.removeValue(forKey: s.id) }
    }

    /// The session's file as an upload: name, size, time, type and declared hashes, with `body`.
    func target(_ s: UploadSession, body: ByteStream) -> UploadStream {
        UploadStream(name: s.name, size: s.size, modified: s.modified_ms > 0 ? Date(timeIntervalSince1970: Double(s.modified_ms) / 1000) : nil,
                     mimeType: s.mime.isEmpty ? nil : s.mime, md5: s.md5.isEmpty ? nil : s.md5,
                     sha1: s.sha1.isEmpty ? nil : s.sha1, sha256: s.sha256.isEmpty ? nil : s.sha256, body: body)
    }

    /// Before the file is stored: the creator may have lost the right to write there since it began (a
    /// folder password was checked at the start), or a file may have appeared that it may not replace.
    func recheck(_ s: UploadSession, _ user: User) async throws {
        do {
            try state.checkCreate(user, s.path, password: nil, ip: "")
            try await checkTarget(s.path, overwrite: s.overwrite, for: user, password: nil, ip: "")
        } catch {
            if case .permissionDenied(let m)? = error as? FSError, m == Access.passwordMessage {} else { throw error }
        }
    }

    // MARK: streamed into the cloud (no file)

    /// A streamed upload's cloud session: the driver's state, its slice size, and how many slices (from the
    /// first, in order) it acknowledged. Those bytes are safe whatever happens to PanList.
    struct Streamed: Codable {
        var state: String
        var sliceSize: Int64
        var slices: Int
        var encoded: String { (try? JSONEncoder().encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "" }
        static func decode(_ text: String) throws -> Streamed {
            guard let s = try? JSONDecoder().decode(Streamed.self, from: Data(text.utf8)) else {
                throw FSError.internalError("a streamed upload's state could not be read")
            }
            return s
        }
        func durable(_ size: Int64) -> Int64 { min(size, Int64(slices) * sliceSize) }
    }

    /// The bytes of a streamed upload after its last acknowledged slice (less than a slice, or a checked
    /// chunk's worth more), in this process's memory between requests, with the MD5 of everything so far when
    /// this process saw it all.
    struct Tail: @unchecked Sendable {
        var offset: Int64
        /// The slices acknowledged when the buffer's first byte was the next to send.
        var slices: Int
        var buffer: ByteBuffer
        var md5: Insecure.MD5?
    }

    /// The offset a streamed session really has: after a restart the bytes past the last acknowledged slice
    /// are gone, so the stored offset goes back to it (HEAD answers that, and the client sends from there).
    func reconcile(_ s: UploadSession) async -> UploadSession {
        guard !s.upstream.isEmpty, s.sessionState == .open, s.instance == state.config.instanceID, let up = try? Streamed.decode(s.upstream),
              s.received != up.durable(s.size), state.uploadTails.withLockedValue({ $0[s.id] }) == nil else { return s }
        let writer = newWriter()
        guard (try? await state.store.takeUploadSession(id: s.id, at: s.received, writer: writer, forMs: Self.holdMs)) != nil,
              (try? await state.store.releaseUploadSession(id: s.id, writer: writer, offset: up.durable(s.size), expiresMs: Self.nowMs() + lifetimeMs)) == true
        else { return s }
        var fixed = s
        fixed.received = up.durable(s.size)
        return fixed
    }

    /// Appends to a streamed upload: each slice goes to the cloud as soon as it is whole, the last one and the
    /// completion when the final byte arrived. Whatever arrived stays (in memory) when the request is cut off
    /// or a slice fails; a request with `Upload-Checksum` counts whole or not at all (a mismatch puts the
    /// session back to where it began: 123 takes a slice sent twice), and so does the request that brings the
    /// last byte when the completion fails.
    func appendStreamed(_ body: RequestBody, to s: UploadSession, at offset: Int64, length: Int64?, check: ChunkCheck?,
                        user: User) async throws -> Int64 {
        try await holding(s, at: offset) { writer, lost in
            func release(_ to: Int64) async throws -> Bool {
                try await state.store.releaseUploadSession(id: s.id, writer: writer, offset: to, expiresMs: Self.nowMs() + lifetimeMs)
            }
            /// Kept for the next request (at most a slice and a network buffer's room), then the session let go at
            /// its end; false when the session was not this writer's any more.
            func keep(_ tail: Tail) async -> Bool {
                state.uploadTails.withLockedValue { $0[s.id] = tail }
                guard (try? await release(tail.offset)) == true else {
                    state.uploadTails.withLockedValue { _ = $0.removeValue(forKey: s.id) }
                    return false
                }
                return true
            }
            var up = try Streamed.decode(s.upstream)
            let durable = up.durable(s.size)
            var t: Tail
            if let kept = state.uploadTails.withLockedValue({ $0.removeValue(forKey: s.id) }), kept.offset == offset, kept.slices == up.slices {
                t = kept
            } else {
                // The bytes after the last acknowledged slice were in another run's memory: gone.
                guard offset == durable else {
                    _ = try? await release(durable)
                    throw UploadError.offset(offset, durable)
                }
                t = Tail(offset: durable, slices: up.slices, buffer: ByteBuffer(), md5: durable == 0 ? Insecure.MD5() : nil)
            }
            // Room for a slice and a network buffer, so the buffer does not grow by doubling past it.
            t.buffer.reserveCapacity(Int(up.sliceSize) + (1 << 20))
            // The session as it was, for a request that counts whole or not at all: one with a checksum, or one
            // that may bring the last byte. Any other keeps what arrived and needs no copy of the bytes held.
            let mayEnd = check != nil || length.map { offset + $0 >= s.size } ?? true
            let before: Tail? = mayEnd ? t : nil, upBefore = up
            var wholeOrNothing = check != nil, ended = false
            func flush(final: Bool) async throws {
                while t.buffer.readableBytes >= up.sliceSize || (final && t.buffer.readableBytes > 0) {
                    let length = Int(min(up.sliceSize, Int64(t.buffer.readableBytes)))
                    var next = up
                    // The slice shares the buffer's memory only while it is sent: no reference outlives this call, so
                    // moving the remaining bytes to the front below copies them alone, not the whole buffer.
                    next.state = try await sendSlice(t.buffer.getSlice(at: t.buffer.readerIndex, length: length), number: up.slices + 1, state: up.state)
                    next.slices += 1
                    // Recorded first, then dropped from memory: the two never disagree.
                    guard try await state.store.setUploadSessionUpstream(id: s.id, writer: writer, upstream: next.encoded) else { throw UploadError.busy }
                    up = next
                    t.slices = next.slices
                    t.buffer.moveReaderIndex(forwardBy: length)
                    t.buffer.discardReadBytes()
                }
            }
            func sendSlice(_ bytes: ByteBuffer?, number: Int, state cloud: String) async throws -> String {
                guard let bytes else { throw FSError.internalError("a streamed upload's buffer is shorter than it should be") }
                return try await state.fs.sendSlice(into: s.dir, state: cloud, number: number, bytes: bytes)
            }
            var chunkMD5 = check?.algorithm == "md5" ? Insecure.MD5() : nil
            var chunkSHA1 = check?.algorithm == "sha1" ? Insecure.SHA1() : nil
            var chunkSHA256 = check?.algorithm == "sha256" ? SHA256() : nil
            do {
                var iterator = body.makeAsyncIterator()
                var cut: (any Error)?
                while true {
                    let next: ByteBuffer?
                    do { next = try await iterator.next() } catch { cut = error; break }
                    guard var buffer = next else { break }
                    if t.offset + Int64(buffer.readableBytes) > s.size {
                        throw UploadError(code: 413, message: "the chunk goes beyond the upload's declared length (\(s.size - t.offset) bytes left)")
                    }
                    if lost.isLost { throw UploadError.busy }
                    buffer.withUnsafeReadableBytes { p in
                        chunkMD5?.update(bufferPointer: p); chunkSHA1?.update(bufferPointer: p); chunkSHA256?.update(bufferPointer: p)
                        t.md5?.update(bufferPointer: p)
                    }
                    t.offset += Int64(buffer.readableBytes)
                    t.buffer.writeBuffer(&buffer)
                    try await flush(final: false)
                }
                if let cut { throw cut }
                if let check {
                    let digest = chunkMD5.map { Data($0.finalize()) } ?? chunkSHA1.map { Data($0.finalize()) } ?? chunkSHA256.map { Data($0.finalize()) }
                    if digest != check.digest { throw UploadError.checksum }
                }
                if t.offset == s.size {
                    wholeOrNothing = true
                    try await flush(final: true)
                    if let md5 = t.md5?.finalize().hexString, md5 != s.md5 {
                        ended = true
                        try? await terminate(s)
                        _ = try? await release(offset)
                        throw UploadError(code: 460, message: "the file's MD5 is \(md5), not the declared \(s.md5); delete this upload and start again")
                    }
                    try await recheck(s, user)
                    do {
                        try await state.fs.completeSliced(target(s, body: .empty), into: s.dir, state: up.state)
                    } catch let e as FSError {
                        // 123 refused the whole file (its MD5 is not the declared one, seen only by 123 after a restart).
                        if case .upstream(let code, let message) = e, code > 0, code != 401, code != 429, code != 20103, !(500...599).contains(code) {
                            ended = true
                            try? await terminate(s)
                            _ = try? await release(offset)
                            throw UploadError(code: 460, message: "123 Open refused the file (\(message)); its bytes are not what the declared MD5 says; start again")
                        }
                        throw e
                    }
                    try await state.store.setUploadSessionState(id: s.id, state: .complete)
                }
            } catch {
                if ended { throw error }
                if wholeOrNothing, let before {
                    // This request does not count: the session goes back to where it began.
                    var restored = up.slices == upBefore.slices
                    if !restored {
                        restored = (try? await state.store.setUploadSessionUpstream(id: s.id, writer: writer, upstream: upBefore.encoded)) == true
                    }
                    if restored {
                        _ = await keep(before)
                    } else {
                        _ = try? await release(up.durable(s.size))
                    }
                } else {
                    _ = await keep(t)
                }
                throw error
            }
            if t.offset < s.size {
                guard await keep(t) else { throw UploadError.busy }
            } else {
                guard try await release(t.offset) else { throw UploadError.busy }
            }
            return t.offset
        }
    }

    // MARK: chunks (OpenList)

    /// Stores chunk `index` (exactly its length). A resend of a stored chunk is drained and accepted.
    func putChunk(_ body: RequestBody, to s: UploadSession, index: Int) async throws -> ChunkClaim {
        guard s.instance.isEmpty || s.instance == state.config.instanceID else {
            throw FSError.unavailable("this upload's bytes are on another PanList instance (\(s.instance)); send it there")
        }
        let count = s.chunkCount
        guard index >= 0, index < count else { throw FSError.badRequest("chunk index \(index) is out of range (0…\(count - 1))") }
        let start = Int64(index) * s.chunk_size
        let length = min(s.chunk_size, s.size - start)
        let writer = newWriter()
        let claim = try await state.store.claimUploadChunk(id: s.id, index: index, writer: writer, forMs: Self.holdMs)
        guard claim == .claimed else {
            for try await _ in body {}
            return claim
        }
        let lost = Lost()
        let renew = renewing(lost) { try await state.store.extendUploadChunk(id: s.id, index: index, writer: writer, forMs: Self.holdMs) }
        defer { renew.cancel() }
        var none = Running()
        do {
            let w = try await Self.write(body, to: s.spool, at: start, limit: length, exactly: true, hashing: nil, running: &none, lost: lost)
            if let cut = w.cut { throw cut.error }
            guard w.n == length else { throw FSError.badRequest("incomplete chunk: \(w.n) of \(length) bytes") }
        } catch {
            _ = try? await state.store.endUploadChunk(id: s.id, index: index, writer: writer, done: false)
            if let e = error as? UploadError, e.code == 413 { throw FSError.badRequest("chunk \(index) is larger than \(length) bytes") }
            throw error
        }
        guard try await state.store.endUploadChunk(id: s.id, index: index, writer: writer, done: true) else {
            throw UploadError(code: 409, message: "chunk \(index) was taken over by another request meanwhile")
        }
        try? await state.store.touchUploadSession(id: s.id, expiresMs: Self.nowMs() + lifetimeMs)
        return .claimed
    }

    /// Every chunk is there: hashes computed from the file (in one read) and the file stored, while holding
    /// the session.
    func completeChunks(_ s: UploadSession, user: User) async throws {
        try await holding(s, at: 0) { writer, _ in
            do {
                let have = try await state.store.uploadChunks(id: s.id)
                guard have.count == s.chunkCount else {
                    let bytes = have.reduce(Int64(0)) { $0 + min(s.chunk_size, s.size - Int64($1) * s.chunk_size) }
                    throw FSError.badRequest("cannot complete: \(bytes) of \(s.size) bytes received")
                }
                let run = try await running(s, at: s.size)
                try await finish(s, run, user: user)
                try await state.store.setUploadSessionState(id: s.id, state: .complete)
                _ = try await state.store.releaseUploadSession(id: s.id, writer: writer, offset: s.size, expiresMs: Self.nowMs() + lifetimeMs)
            } catch {
                _ = try? await state.store.releaseUploadSession(id: s.id, writer: writer, offset: 0, expiresMs: Self.nowMs() + lifetimeMs)
                throw error
            }
        }
    }

    // MARK: ending

    func terminate(_ s: UploadSession) async throws {
        try await state.store.setUploadSessionState(id: s.id, state: .terminated)
        if !s.spool.isEmpty { await Self.remove(s.spool) }
        state.uploadHashes.withLockedValue { _ = $0.removeValue(forKey: s.id) }
        state.uploadTails.withLockedValue { _ = $0.removeValue(forKey: s.id) }
    }
}

extension ServerState {
    var uploadSpool: String { config.tempDir + "/" + ResumableUploads.spoolName }

    /// Once at start and then once a minute: expired upload sessions go with their files (a spooled one only
    /// on its own instance), and spool files without an open session of this instance (a crash between the
    /// two) go too.
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
        if orphans {
            _ = try? await store.releaseUploadHolds(writerPrefix: me + "/", except: me + "/" + ResumableUploads.processToken + "/")
        }
        while let expired = try? await store.expiredUploadSessions(instances: [me, ""], limit: 100), !expired.isEmpty {
            var removed = 0
            for s in expired {
                if s.sessionState == .open, !s.spool.isEmpty { await ResumableUploads.remove(s.spool) }
                uploadHashes.withLockedValue { _ = $0.removeValue(forKey: s.id) }
                uploadTails.withLockedValue { _ = $0.removeValue(forKey: s.id) }
                if (try? await store.deleteUploadSession(id: s.id)) != nil { removed += 1 }
            }
            if removed == 0 { break }
        }
        let spool = uploadSpool
        guard orphans, let names = try? await NIOThreadPool.singleton.runIfActive({ try FileManager.default.contentsOfDirectory(atPath: spool) })
        else { return }
        for name in names {
            let s = try? await store.uploadSession(id: name)
            if s == nil || s?.sessionState != .open || s?.instance != me { await ResumableUploads.remove(spool + "/" + name) }
        }
    }
}
