import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PanListCore
import _NIOFileSystem
#if canImport(Glibc)
import Glibc
#endif

struct CreateData: Decodable {
    var fileID: Int64?
    var reuse: Bool?
    var preuploadID: String?
    var sliceSize: Int64?
    var servers: [String]?
}

struct CompleteData: Decodable {
    var completed: Bool?
    var fileID: Int64?
}

/// Uploads through the v2 slice flow: spool to temp_dir while hashing (one pass), `create` (instant upload
/// when 123 already has the content), slices with `UploadThread` workers (each with its MD5, 3 tries),
/// then `upload_complete` polled once a second. The spool file is removed on every exit path. With an
/// `UploadCheckpoint` (a task's copy), the session and the slices 123 acknowledged are noted as they go, and
/// the next attempt at the same file sends only the rest (a fresh session if 123 refuses the old one).
struct Uploader {
    static let maxSize: Int64 = 10 << 30
    /// The slice size each server last asked for (123 documents 16 MiB), so slice MD5s can be computed while spooling.
    static let sliceSizeGuess = NIOLockedValueBox<[String: Int64]>([:])

    let client: Open123Client
    let tempDir: String
    let threads: Int

    /// Uploads `stream` into the folder `parentID`; returns the new file's id, its size and its MD5.
    func upload(_ stream: UploadStream, parentID: Int64) async throws -> (id: Int64, size: Int64, md5: String) {
        if let size = stream.size, size > Self.maxSize {
            throw FSError.tooLarge("123 Open accepts files up to 10 GiB; \(stream.name) has \(size) bytes")
        }
        var stream = stream
        // The SHA-1 known before any byte is read (declared with the upload, or hashed from the Local source of a
        // copy): when 123 has that content already, the file appears and not one byte is read or sent.
        if stream.sha1 == nil, let local = stream.localSource, let size = stream.size,
           let h = try? await Self.hashFile(local), h.size == size {
            stream.sha1 = h.sha1
            // The spool checks the bytes it reads against this MD5 (the source changed in between: a clear error).
            if stream.md5 == nil { stream.md5 = h.md5 }
        }
        if let sha1 = stream.sha1, let size = stream.size, let id = await sha1Reuse(parentID: parentID, name: stream.name, sha1: sha1, size: size) {
            if let checkpoint = stream.checkpoint, !checkpoint.saved.isEmpty { await checkpoint.save("") }
            return (id, size, stream.md5 ?? "")
        }
        let guess = Self.sliceSizeGuess.withLockedValue { $0[client.baseURL] } ?? (16 << 20)
        // A resumable upload's file, already whole and checked, its MD5 computed as it arrived, is read in place
        // (slice MD5s are computed as the slices go), never copied, and left to its owner.
        let inPlace = stream.staged != nil && stream.md5 != nil && stream.size != nil
        let spool = inPlace ? stream.staged ?? "" : tempDir + "/123open-upload-" + UUID().uuidString
        defer { if !inPlace { try? FileManager.default.removeItem(atPath: spool) } }
        let (size, md5, digests) = inPlace ? (stream.size ?? 0, stream.md5 ?? "", [])
            : try await spoolAndHash(stream, to: spool, pieceSize: guess)
        guard size <= Self.maxSize else { throw FSError.tooLarge("123 Open accepts files up to 10 GiB") }

        // A task's earlier attempt at the same bytes into the same folder left a session: continue it.
        let checkpoint = stream.checkpoint
        if let checkpoint, let saved = try? JSONDecoder().decode(SliceSession.self, from: Data(checkpoint.saved.utf8)),
           saved.parentID == parentID, saved.name == stream.name, saved.md5 == md5, saved.size == size, saved.sliceSize > 0 {
            do {
                return try await send(saved, spool: spool, digests: saved.sliceSize == guess ? digests : [], resumed: true, checkpoint: checkpoint)
            } catch SessionGone.gone {
                // 123 no longer takes that session (expired, or forgotten): start over below.
                await checkpoint.save("")
            }
        }

        switch try await create(parentID: parentID, name: stream.name, size: size, md5: md5) {
        case .reused(let id):
            if let checkpoint, !checkpoint.saved.isEmpty { await checkpoint.save("") }
            return (id, size, md5)
        case .session(let session):
            if let checkpoint { await checkpoint.save(session.encoded) }
            // Slice digests computed while spooling, when the slice size was the expected one.
            return try await send(session, spool: spool, digests: session.sliceSize == guess ? digests : [], resumed: false, checkpoint: checkpoint)
        }
    }

    enum Created { case reused(Int64), session(SliceSession) }

    /// `upload/v2/file/create`, replacing a file of that name: the file's id when 123 has the content already
    /// (instant upload), else the session to send slices into.
    func create(parentID: Int64, name: String, size: Int64, md5: String) async throws -> Created {
        guard let created = try await client.call(.POST, "/upload/v2/file/create", json: [
            "parentFileID": parentID, "filename": name, "etag": md5, "size": size, "duplicate": 2,
        ], as: CreateData.self) else { throw FSError.upstream(code: 1, message: "123 Open did not answer the upload request") }
        if created.reuse == true, let id = created.fileID, id != 0 { return .reused(id) }
        guard let pre = created.preuploadID, !pre.isEmpty, let sliceSize = created.sliceSize, sliceSize > 0 else {
            throw FSError.upstream(code: 1, message: "123 Open gave no upload session")
        }
        Self.sliceSizeGuess.withLockedValue { $0[client.baseURL] = sliceSize }
        // `servers` may be missing, null or empty: then the upload servers come from `upload/v2/file/domain`.
        var servers = (created.servers ?? []).filter { !$0.isEmpty }
        if servers.isEmpty { servers = try await uploadDomains() }
        return .session(SliceSession(preuploadID: pre, parentID: parentID, name: name, md5: md5, size: size, sliceSize: sliceSize,
                                     server: servers.first ?? client.baseURL, sent: [], servers: servers))
    }

    /// `GET /upload/v2/file/domain`: the upload servers' base URLs.
    func uploadDomains() async throws -> [String] {
        let list = (try await client.call(.GET, "/upload/v2/file/domain", as: [String].self) ?? []).filter { !$0.isEmpty }
        guard !list.isEmpty else {
            throw FSError.upstream(code: 1, message: "123 Open named no upload server (neither in create nor at /upload/v2/file/domain)")
        }
        return list
    }

    /// `upload/v2/file/sha1_reuse` (replacing a file of that name): the new file's id when 123 has content with
    /// this SHA-1 and size. Any failure means "no": the MD5 path follows and reports what is wrong.
    func sha1Reuse(parentID: Int64, name: String, sha1: String, size: Int64) async -> Int64? {
        guard size <= Self.maxSize, sha1.count == 40 else { return nil }
        let answer = try? await client.call(.POST, "/upload/v2/file/sha1_reuse", json: [
            "parentFileID": parentID, "filename": name, "sha1": sha1.lowercased(), "size": size, "duplicate": 2,
        ], as: SHA1ReuseData.self)
        guard let answer, answer.reuse == true, let id = answer.fileID?.value, id != 0 else { return nil }
        return id
    }

    /// The size, MD5 and SHA-1 of a file on this machine, read once (a stop of the task stops it).
    static func hashFile(_ path: String) async throws -> (size: Int64, md5: String, sha1: String) {
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { h in
            var md5 = Insecure.MD5(), sha1 = Insecure.SHA1()
            var size: Int64 = 0
            for try await chunk in h.readChunks(chunkLength: .mebibytes(1)) {
                try Task.checkCancellation()
                chunk.withUnsafeReadableBytes { md5.update(bufferPointer: $0); sha1.update(bufferPointer: $0) }
                size += Int64(chunk.readableBytes)
            }
            return (size, md5.finalize().hexString, sha1.finalize().hexString)
        }
    }

    /// Polls `upload_complete` (20103 and `completed: false` both mean "not yet"; the budget grows with the
    /// size): the new file's id. `pending` is told each time 123 says it is still verifying.
    func complete(_ session: SliceSession, pending: () -> Void = {}) async throws -> Int64 {
        let budget = 60 + Int(session.size / (20 << 20))
        for _ in 0..<budget {
            do {
                if let r = try await client.call(.POST, "/upload/v2/file/upload_complete", json: ["preuploadID": session.preuploadID], as: CompleteData.self),
                   r.completed == true, let id = r.fileID, id != 0 {
                    return id
                }
            } catch let e as FSError {
                guard case .upstream(20103, _) = e else { throw e }
                pending()
            }
            try await Task.sleep(for: .seconds(1))
        }
        throw FSError.upstream(code: 20103, message: "123 Open is still verifying \(session.name) after \(budget) s; it may appear later")
    }

    /// One slice of a sliced upload driven from outside (a resumable upload): all its bytes in memory.
    func sendSlice(_ n: Int, bytes: ByteBuffer, of session: SliceSession) async throws {
        let md5 = bytes.withUnsafeReadableBytes { Insecure.MD5.hash(data: $0).hexString }
        try await post(n, md5: md5, servers: ServerPicker(session.serverList), name: session.name, pre: session.preuploadID, body: { head, tail in
            // The form head, the slice's bytes and the closing boundary, sent as they are (no copy of the slice).
            let parts = [head, bytes, tail]
            return .stream(ByteStream.buffers(parts), length: .known(Int64(parts.reduce(0) { $0 + $1.readableBytes })))
        })
    }

    /// An upload session as a task keeps it: enough to send the slices 123 has not acknowledged yet and
    /// to complete, after an interruption (the same file, re-spooled, must have the same MD5 and size).
    struct SliceSession: Codable {
        var preuploadID: String
        var parentID: Int64
        var name: String
        var md5: String
        var size: Int64
        var sliceSize: Int64
        /// The first upload server (sessions saved before `servers` existed name only this one).
        var server: String
        /// Slices 123 answered with success.
        var sent: [Int]
        /// Attempts at this session that 123 refused before any slice got through.
        var refusals: Int? = nil
        /// Every upload server 123 named; slices are spread over them.
        var servers: [String]? = nil
        var serverList: [String] {
            if let servers, !servers.isEmpty { return servers }
            return [server]
        }
        var encoded: String { (try? JSONEncoder().encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "" }
    }

    enum SessionGone: Error { case gone }

    /// 123 answered with an error of its own (a JSON envelope): not the network (-1), not an HTTP failure,
    /// not a busy server (429, 5xx, 20103) and not the token (401).
    static func isRefusal(_ e: FSError) -> Bool {
        guard case .upstream(let code, let message) = e else { return false }
        if code <= 0 || code == 401 || code == 429 || code == 20103 || (500...599).contains(code) { return false }
        return !message.hasPrefix("slice upload answered HTTP") && !message.hasPrefix("unexpected answer from 123 Open")
    }

    /// 123's words for an upload session it does not have (unknown or expired `preuploadID`).
    static func saysSessionUnknown(_ e: FSError) -> Bool {
        guard case .upstream(_, let message) = e else { return false }
        let m = message.lowercased()
        return m.contains("preupload") || m.contains("过期") || m.contains("不存在")
    }

    /// Sends the slices of `session` not sent yet (noting each in `checkpoint` as 123 acknowledges it), then
    /// completes. A resumed session that 123 refuses before any slice got through throws `SessionGone`.
    private func send(_ session: SliceSession, spool: String, digests: [String], resumed: Bool,
                      checkpoint: UploadCheckpoint?) async throws -> (id: Int64, size: Int64, md5: String) {
        var session = session
        let size = session.size, sliceSize = session.sliceSize, pre = session.preuploadID, name = session.name
        let servers = ServerPicker(session.serverList)
        let count = size == 0 ? 1 : Int((size + sliceSize - 1) / sliceSize)
        let known = digests.count == count ? digests : nil
        let done = Set(session.sent)
        let todo = (1...count).filter { !done.contains($0) }
        var progressed = false
        do {
            try await withThrowingTaskGroup(of: Int.self) { group in
                var next = 0
                func add() {
                    guard next < todo.count else { return }
                    let n = todo[next]
                    next += 1
                    group.addTask {
                        try await sendSlice(n, of: size, sliceSize: sliceSize, md5: known?[n - 1], spool: spool, pre: pre, servers: servers, name: name)
                        return n
                    }
                }
                for _ in 0..<min(threads, todo.count) { add() }
                while let n = try await group.next() {
                    progressed = true
                    session.sent.append(n)
                    session.refusals = nil
                    add()
                    if let checkpoint { await checkpoint.save(session.encoded) }
                }
            }
            let id = try await complete(session) { progressed = true }
            if let checkpoint { await checkpoint.save("") }
            return (id, size, session.md5)
        } catch let e as FSError {
            // A resumed session that 123 itself refuses before anything got through: dropped when 123 says it
            // does not know it, or when it refused it on the previous attempt too (123's wording for an expired
            // session is not documented). The network, a busy or broken server, the token and a stop keep it.
            if resumed, !progressed, !Task.isCancelled, Self.isRefusal(e) {
                if Self.saysSessionUnknown(e) || (session.refusals ?? 0) >= 1 { throw SessionGone.gone }
                session.refusals = (session.refusals ?? 0) + 1
                if let checkpoint { await checkpoint.save(session.encoded) }
            }
            throw e
        }
    }

    /// Writes the body to `path`, hashing it as it goes, and checks the declared size and hashes.
    /// The whole-file MD5 is computed here (unless the client declared one, which the verifier checks);
    /// the MD5s of `pieceSize` slices are computed by the background writes, on the other core.
    func spoolAndHash(_ stream: UploadStream, to path: String, pieceSize: Int64) async throws -> (Int64, String, [String]) {
        var verifier = UploadVerifier(stream)
        var md5 = stream.md5 == nil ? Insecure.MD5() : nil
        let pieces = PieceHasher(pieceSize: pieceSize)
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forWritingAt: FilePath(path), options: .newFile(replaceExisting: true)) { h in
            try await OverlappedWriter.with(handle: h, sideWork: { pieces.update($0) }) { w in
                for try await buffer in stream.body {
                    try verifier.update(buffer)
                    if verifier.written > Self.maxSize { throw FSError.tooLarge("123 Open accepts files up to 10 GiB") }
                    if md5 != nil { buffer.withUnsafeReadableBytes { md5?.update(bufferPointer: $0) } }
                    try await w.write(buffer)
                }
            }
        }
        try verifier.finish()
        let digest = md5?.finalize().hexString ?? stream.md5?.lowercased() ?? ""
        return (verifier.written, digest, pieces.finish())
    }

    func sendSlice(_ n: Int, of size: Int64, sliceSize: Int64, md5 known: String?, spool: String, pre: String, servers: ServerPicker, name: String) async throws {
        let offset = Int64(n - 1) * sliceSize
        let length = min(sliceSize, size - offset)
        // The slice's MD5 was computed while spooling, unless the server chose another slice size: then one read now.
        let md5: String
        if let known {
            md5 = known
        } else {
            md5 = try await NIOThreadPool.singleton.runIfActive {
                var h = Insecure.MD5()
                do {
                    try FileRegion.read(spool, offset: offset, length: length) { h.update(bufferPointer: $0) }
                } catch {
                    throw FSError.internalError("the upload spool file is gone or short: \(FSError.from(error).message)")
                }
                return h.finalize().hexString
            }
        }
        try await post(n, md5: md5, servers: servers, name: name, pre: pre, body: { head, tail in
            let slice = SpoolRegion(path: spool, offset: offset, length: length, head: head, tail: tail)
            return .stream(slice, length: .known(slice.totalLength))
        })
    }

    /// Posts slice `n` as multipart/form-data (the form head, the bytes `body` makes around it, the closing
    /// boundary), up to 3 tries (more with more servers): each try at the next upload server when one fails.
    private func post(_ n: Int, md5: String, servers: ServerPicker, name: String, pre: String,
                      body: @escaping @Sendable (ByteBuffer, ByteBuffer) -> HTTPClientRequest.Body) async throws {
        let boundary = "panlist-" + UUID().uuidString
        let head = [("preuploadID", pre), ("sliceNo", String(n)), ("sliceMD5", md5)].map {
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\($0.0)\"\r\n\r\n\($0.1)\r\n"
        }.joined() + "--\(boundary)\r\nContent-Disposition: form-data; name=\"slice\"; filename=\"\(name).part\(n)\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        let (h, t) = (ByteBuffer(string: head), ByteBuffer(string: "\r\n--\(boundary)--\r\n"))
        var lastError: (any Error)?
        let attempts = max(3, servers.count)
        for attempt in 0..<attempts {
            let server = servers.server(slice: n, attempt: attempt)
            do {
                try await client.postSlice(server: server, boundary: boundary, body: { body(h, t) })
                return
            } catch {
                if Task.isCancelled { throw error }
                lastError = error
                servers.failed(server)
                // Another server is tried at once; the same one again after a pause.
                if attempt < attempts - 1, servers.count == 1 { try await Task.sleep(for: .milliseconds(300 * (attempt + 1))) }
            }
        }
        throw lastError ?? FSError.upstream(code: 1, message: "slice \(n) failed")
    }
}

/// A multipart slice body streamed from the spool file: the form head, the slice's bytes read 1 MiB at a time
/// (so memory does not grow with the slice size the server asks for), then the closing boundary.
struct SpoolRegion: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    static let chunk = 1 << 20
    let path: String
    let offset: Int64
    let length: Int64
    let head: ByteBuffer
    let tail: ByteBuffer

    var totalLength: Int64 { Int64(head.readableBytes) + length + Int64(tail.readableBytes) }

    struct AsyncIterator: AsyncIteratorProtocol {
        let region: SpoolRegion
        var sentHead = false
        var done: Int64 = 0
        var sentTail = false

        mutating func next() async throws -> ByteBuffer? {
            if !sentHead { sentHead = true; return region.head }
            if done < region.length {
                let at = region.offset + done
                let want = Int(Swift.min(Int64(SpoolRegion.chunk), region.length - done))
                let path = region.path
                let buffer = try await NIOThreadPool.singleton.runIfActive { () throws -> ByteBuffer in
                    let fd = open(path, O_RDONLY | O_CLOEXEC)
                    guard fd >= 0 else { throw FSError.internalError("the upload spool file is gone") }
                    defer { close(fd) }
                    var b = ByteBufferAllocator().buffer(capacity: want)
                    var read = 0
                    while read < want {
                        let got = b.writeWithUnsafeMutableBytes(minimumWritableBytes: want - read) { ptr in
                            Swift.max(0, pread(fd, ptr.baseAddress, Swift.min(ptr.count, want - read), off_t(at) + off_t(read)))
                        }
                        if got == 0 { throw FSError.internalError("the upload spool file is shorter than expected") }
                        read += got
                    }
                    return b
                }
                done += Int64(want)
                return buffer
            }
            if !sentTail { sentTail = true; return region.tail }
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(region: self) }
}

extension Open123Client {
    /// `POST {server}/upload/v2/file/slice` as multipart/form-data streamed from the spool; one refresh on 401.
    func postSlice(server: String, boundary: String, body: () -> HTTPClientRequest.Body) async throws {
        var refreshed = false
        while true {
            let token = try await tokens.current()
            var req = HTTPClientRequest(url: (server.hasSuffix("/") ? String(server.dropLast()) : server) + "/upload/v2/file/slice")
            req.method = .POST
            req.headers.add(name: "Platform", value: "open_platform")
            req.headers.add(name: "Authorization", value: "Bearer " + token)
            req.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
            req.body = body()
            let res = try await Self.http.execute(req, timeout: .seconds(300))
            let answer = try await res.body.collect(upTo: 1 << 20)
            guard res.status == .ok, let env = try? JSONDecoder().decode(APIEnvelope<Nothing>.self, from: Data(answer.readableBytesView)) else {
                throw FSError.upstream(code: Int(res.status.code), message: "slice upload answered HTTP \(res.status.code)")
            }
            if env.code == 0 { return }
            if env.code == 401 && !refreshed {
                refreshed = true
                await tokens.invalidate(token)
                continue
            }
            throw FSError.upstream(code: env.code, message: env.message)
        }
    }
}

/// The upload servers of one session: slices spread over them round-robin by slice number; a server that failed
/// is passed over while another has not failed, and the next try of a slice goes to the next server.
final class ServerPicker: Sendable {
    let servers: [String]
    private let failures = NIOLockedValueBox<Set<Int>>([])

    init(_ servers: [String]) { self.servers = servers }

    var count: Int { servers.count }

    /// The server for try `attempt` (0-based) of slice `n` (1-based).
    func server(slice n: Int, attempt: Int) -> String {
        guard !servers.isEmpty else { return "" }
        let failed = failures.withLockedValue { $0 }
        let healthy = servers.indices.filter { !failed.contains($0) }
        let pool = healthy.isEmpty ? Array(servers.indices) : healthy
        return servers[pool[(n - 1 + attempt) % pool.count]]
    }

    func failed(_ server: String) {
        guard servers.count > 1, let i = servers.firstIndex(of: server) else { return }
        failures.withLockedValue { $0.insert(i) }
    }
}
