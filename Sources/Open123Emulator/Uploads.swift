import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import MultipartKit
import NIOConcurrencyHelpers
import NIOCore
import PanListCore
import NIOPosix
import _NIOFileSystem

func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 { d.hexString }

/// A multipart body parsed as it streams: small text fields kept, the file part written to disk and hashed.
/// Where a file part's bytes go when the form fields before it say which slice it is: straight into the
/// upload's data file at the slice's offset, so completing an upload needs no merge copy.
struct Placement: Sendable {
    var id: String
    var sliceNo: Int
    var path: String
    var offset: Int64
    var limit: Int64
}

/// A multipart form read as it streams: text fields kept, the file part hashed (MD5) and written either
/// to its placement or to a spool file at `path`.
struct SpooledForm {
    var fields: [String: String] = [:]
    var fileBytes: Int64 = 0
    var md5 = ""
    var hadFile = false
    var placement: Placement?

    static func read(_ body: RequestBody, contentType: String?, filePart: Set<String>, to path: String,
                     place: (([String: String]) async -> Placement?)? = nil) async throws -> SpooledForm {
        guard let ct = contentType, ct.lowercased().hasPrefix("multipart/form-data"),
              let b = ct.split(separator: ";").dropFirst().compactMap({ p -> String? in
                  let kv = p.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                  return kv.count == 2 && kv[0].lowercased() == "boundary" ? kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) : nil
              }).first
        else { throw APIFailure.bad("请使用multipart/form-data上传") }
        final class St {
            var name: String?
            var isFile = false
            var inFile = false
            var text = ByteBuffer()
            var pending: [ByteBuffer] = []
            var form = SpooledForm()
            var md5 = Insecure.MD5()
        }
        let st = St()
        let parser = MultipartParser(boundary: b)
        parser.onHeader = { name, value in
            guard name.lowercased() == "content-disposition" else { return }
            for param in value.split(separator: ";") {
                let kv = param.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0].lowercased() == "name" { st.name = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
            st.isFile = st.name.map { filePart.contains($0) } ?? false || value.contains("filename=")
            if st.isFile { st.inFile = true }
        }
        parser.onBody = { buf in
            if st.isFile { st.pending.append(buf) } else { var b = buf; st.text.writeBuffer(&b) }
        }
        parser.onPartComplete = {
            if st.isFile { st.form.hadFile = true }
            else if let n = st.name { st.form.fields[n] = String(buffer: st.text) }
            st.name = nil; st.isFile = false; st.text.clear()
        }
        var chunks = body.makeAsyncIterator()
        func feed(_ chunk: ByteBuffer) throws {
            do { try parser.execute(chunk) } catch { throw APIFailure.bad("multipart格式错误") }
        }
        // Fields first, until the file part begins (or the body ends).
        while !st.inFile, let chunk = try await chunks.next() { try feed(chunk) }
        guard st.inFile else { return st.form }
        let placement = await place?(st.form.fields)
        st.form.placement = placement
        let target = placement?.path ?? path
        let options: OpenOptions.Write = placement == nil ? .newFile(replaceExisting: true) : .modifyFile(createIfNecessary: true)
        let limit = placement?.limit ?? .max
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forWritingAt: FilePath(target), options: options) { h in
            try await OverlappedWriter.with(handle: h, offset: placement?.offset ?? 0) { w in
                while true {
                    for p in st.pending {
                        p.withUnsafeReadableBytes { st.md5.update(bufferPointer: $0) }
                        // Bytes past the slice's length are counted (the size check refuses them), never written.
                        let room = limit - st.form.fileBytes
                        if room >= Int64(p.readableBytes) { try await w.write(p) }
                        else if room > 0 { try await w.write(p.getSlice(at: p.readerIndex, length: Int(room)) ?? ByteBuffer()) }
                        st.form.fileBytes += Int64(p.readableBytes)
                    }
                    st.pending.removeAll()
                    guard let chunk = try await chunks.next() else { break }
                    try feed(chunk)
                }
            }
        }
        st.form.md5 = st.md5.finalize().hexString
        return st.form
    }
}

/// The running MD5 of an upload's data file, advanced slice by slice in order by one task at a time.
final class RunningMD5: @unchecked Sendable {
    var md5 = Insecure.MD5()
}

extension EmulatorState {
    static let md5Pattern = try! NSRegularExpression(pattern: "^[0-9a-f]{32}$")

    static func checkEtag(_ etag: String?) throws(APIFailure) -> String {
        guard let etag, md5Pattern.firstMatch(in: etag, range: NSRange(etag.startIndex..., in: etag)) != nil else {
            throw .bad("Etag格式异常")
        }
        return etag
    }

    /// Resolves `containDir` paths and the parent, and checks the name and a clash without `duplicate`.
    func uploadTarget(parent: Int64, filename: String, containDir: Bool, duplicate: Int) throws(APIFailure) -> (Int64, String) {
        var parent = parent
        var name = filename
        if containDir {
            let parts = filename.split(separator: "/").map(String.init)
            guard let last = parts.last else { throw .bad("文件名不能为空") }
            parent = try ensureDirs(Array(parts.dropLast()), under: parent)
            name = last
        }
        try Names.check(name)
        guard folderExists(parent) else { throw .bad("父目录不存在") }
        if duplicate != 1 && duplicate != 2, sibling(named: name, in: parent) != nil { throw .bad("该目录下已经有同名文件") }
        return (parent, name)
    }

    func createUpload(parent: Int64, filename: String, etag: String?, size: Int64?, duplicate: Int, containDir: Bool, v1: Bool,
                      base: String) throws(APIFailure) -> sending [String: Any] {
        let md5 = try Self.checkEtag(etag)
        guard let size, size >= 0 else { throw .bad("size参数错误") }
        guard size <= 10 << 30 else { throw .bad("文件大小不能超过10GB") }
        let (p, name) = try uploadTarget(parent: parent, filename: filename, containDir: containDir, duplicate: duplicate)
        if hasBlob(md5, size) {
            let id = try addFile(name: name, parent: p, md5: md5, size: size, duplicate: duplicate)
            var r: [String: Any] = ["fileID": id, "reuse": true, "preuploadID": "", "sliceSize": 0]
            if !v1 { r["servers"] = NSNull() }
            return r
        }
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let dir = root + "/uploads/" + id
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir + "/data", contents: nil)
        uploads[id] = Upload(id: id, parent: p, name: name, md5: md5, size: size, sliceSize: config.sliceSize,
                             duplicate: duplicate, pendingPolls: completePending, v1: v1, dir: dir)
        var r: [String: Any] = ["fileID": 0, "reuse": false, "preuploadID": id, "sliceSize": config.sliceSize]
        if !v1 { r["servers"] = createServers(base: base) ?? NSNull() }
        return r
    }

    func upload(_ id: String?) throws(APIFailure) -> Upload {
        guard let id, let u = uploads[id] else { throw .bad("preuploadID不存在或已过期") }
        return u
    }

    /// Where slice bytes of this form go: into the data file, when the fields name a known upload and a
    /// slice that is neither recorded nor being received by another request. Otherwise nil (spooled).
    func placeSlice(_ fields: [String: String]) -> Placement? {
        let f = Body(fields)
        guard let id = f.string("preuploadID"), let u = uploads[id], u.fileID == nil,
              let n = f.int("sliceNo").map(Int.init), n >= 1, n <= u.sliceCount,
              u.slices[n] == nil, !u.receiving.contains(n) else { return nil }
        uploads[id]?.receiving.insert(n)
        return Placement(id: id, sliceNo: n, path: u.dir + "/data", offset: Int64(n - 1) * u.sliceSize, limit: u.sliceLength(n))
    }

    /// A placed slice whose request ended (accepted or not) frees its place.
    func releasePlacement(_ p: Placement?) {
        guard let p else { return }
        uploads[p.id]?.receiving.remove(p.sliceNo)
    }

    /// Checks a received slice (in its placement, or spooled at `path`) and records it.
    func acceptSlice(_ id: String?, sliceNo: Int?, md5: String?, received: SpooledForm, path: String) throws(APIFailure) {
        defer { releasePlacement(received.placement) }
        let u = try upload(id)
        slicesReceived += 1
        if failSlices > 0 {
            failSlices -= 1
            throw .bad("分片上传失败，请重试")
        }
        guard let n = sliceNo, n >= 1, n <= u.sliceCount else { throw .bad("sliceNo参数错误") }
        if let p = received.placement, p.id != u.id || p.sliceNo != n { throw .bad("sliceNo参数错误") }
        guard received.hadFile, received.fileBytes == u.sliceLength(n) else { throw .bad("分片大小错误") }
        guard let md5, md5.lowercased() == received.md5 else { throw .bad("分片MD5校验失败") }
        if u.slices[n] != nil { return }  // already recorded: the same bytes (its MD5 matched)
        if let budget = sliceBudget {
            guard budget > 0 else { throw .bad("分片上传失败，请重试") }
            sliceBudget = budget - 1
        }
        if received.placement == nil {
            // Spooled (fields after the file part, or a V1 presigned PUT): copy into the data file.
            guard let input = FileHandle(forReadingAtPath: path), let out = FileHandle(forWritingAtPath: u.dir + "/data") else {
                throw .bad("分片保存失败")
            }
            defer { try? input.close(); try? out.close() }
            do {
                try out.seek(toOffset: UInt64((n - 1)) * UInt64(u.sliceSize))
                while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty { try out.write(contentsOf: chunk) }
            } catch { throw .bad("分片保存失败") }
        }
        uploads[u.id]?.slices[n] = received.md5
        slicesAccepted += 1
        kickHasher(u.id)
    }

    /// Starts hashing the data file's next slices in order, if they are recorded and nobody hashes yet.
    func kickHasher(_ id: String) {
        guard let u = uploads[id], !u.hashing, u.hashedThrough < u.sliceCount, u.slices[u.hashedThrough + 1] != nil else { return }
        uploads[id]?.hashing = true
        Task { await self.runHasher(id) }
    }

    private func runHasher(_ id: String) async {
        while let u = uploads[id], u.hashedThrough < u.sliceCount, u.slices[u.hashedThrough + 1] != nil {
            let n = u.hashedThrough + 1
            let offset = Int64(n - 1) * u.sliceSize, length = u.sliceLength(n)
            let path = u.dir + "/data", running = u.running
            let ok = (try? await NIOThreadPool.singleton.runIfActive { () throws -> Bool in
                try FileRegion.read(path, offset: offset, length: length) { running.md5.update(bufferPointer: $0) }
                return true
            }) ?? false
            guard ok else {
                uploads[id]?.failed = "合并分片失败"
                break
            }
            uploads[id]?.hashedThrough = n
        }
        uploads[id]?.hashing = false
    }

    /// `upload_complete`: pending polls (knob), missing slices, the whole file's MD5 check, then the file node.
    /// The MD5 runs while slices arrive; if it is still behind, this waits for it up to 5 s, then answers 20103.
    func complete(_ id: String?) async throws(APIFailure) -> sending [String: Any] {
        var u = try upload(id)
        if let fid = u.fileID { return ["completed": true, "fileID": fid, "async": false] }
        if let failed = u.failed { throw .bad(failed) }
        guard u.slices.count == u.sliceCount else { throw .bad("分片不完整，请上传全部分片后再完成上传") }
        if u.pendingPolls > 0 {
            uploads[u.id]?.pendingPolls -= 1
            if u.pendingPolls % 2 == 1 { throw APIFailure(code: 20103, message: "文件正在校验中,请间隔1秒后再试") }
            return ["completed": false, "fileID": 0, "async": true]
        }
        kickHasher(u.id)
        let deadline = ContinuousClock.now + .seconds(5)
        while let now = uploads[u.id], now.hashedThrough < now.sliceCount, now.failed == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        guard let current = uploads[u.id] else { throw .bad("preuploadID不存在或已过期") }
        u = current
        if let fid = u.fileID { return ["completed": true, "fileID": fid, "async": false] }
        if let failed = u.failed { throw .bad(failed) }
        guard u.hashedThrough == u.sliceCount else { throw APIFailure(code: 20103, message: "文件正在校验中,请间隔1秒后再试") }
        guard u.running.md5.finalize().hexString == u.md5 else {
            uploads[u.id]?.failed = "文件上传失败"
            throw .bad("文件上传失败")
        }
        if !hasBlob(u.md5, u.size) {
            try? FileManager.default.removeItem(atPath: blobPath(u.md5, u.size))
            do { try FileManager.default.moveItem(atPath: u.dir + "/data", toPath: blobPath(u.md5, u.size)) } catch { throw .bad("文件保存失败") }
            registerBlob(Blob(md5: u.md5, size: u.size, sha1: nil))
        }
        let fid = try addFile(name: u.name, parent: u.parent, md5: u.md5, size: u.size, duplicate: u.duplicate)
        u.fileID = fid
        uploads[u.id] = u
        try? FileManager.default.removeItem(atPath: u.dir)
        return ["completed": true, "fileID": fid, "async": false]
    }

    func listParts(_ id: String?) throws(APIFailure) -> sending [[String: Any]] {
        let u = try upload(id)
        return u.slices.keys.sorted().map { n in
            ["partNumber": String(n), "size": u.sliceLength(n), "etag": u.slices[n] ?? ""]
        }
    }

    /// `single/create`: the whole file arrived at `path`; check it and store it.
    func singleCreate(_ form: SpooledForm, path: String) throws(APIFailure) -> sending [String: Any] {
        let f = Body(form.fields)
        let md5 = try Self.checkEtag(f.string("etag"))
        guard let size = f.int("size"), size >= 0 else { throw .bad("size参数错误") }
        guard size <= 1 << 30 else { throw .bad("单步上传文件大小不能超过1GB") }
        let dup = Int(f.int("duplicate") ?? 0)
        let (p, name) = try uploadTarget(parent: f.int("parentFileID") ?? 0, filename: f.string("filename") ?? "",
                                         containDir: f.bool("containDir") ?? false, duplicate: dup)
        guard form.hadFile, form.fileBytes == size else { throw .bad("文件大小与size参数不一致") }
        guard form.md5 == md5 else { throw .bad("文件上传失败") }
        if !hasBlob(md5, size) {
            do { try FileManager.default.moveItem(atPath: path, toPath: blobPath(md5, size)) } catch { throw .bad("文件保存失败") }
            registerBlob(Blob(md5: md5, size: size, sha1: nil))
        }
        return ["fileID": try addFile(name: name, parent: p, md5: md5, size: size, duplicate: dup), "completed": true]
    }

    func sha1Reuse(_ body: Body) throws(APIFailure) -> sending [String: Any] {
        guard let sha1 = body.string("sha1")?.lowercased(), let size = body.int("size") else { throw .bad("参数错误") }
        let dup = Int(body.int("duplicate") ?? 0)
        let (p, name) = try uploadTarget(parent: body.int("parentFileID") ?? 0, filename: body.string("filename") ?? "",
                                         containDir: false, duplicate: dup)
        guard let b = blob(sha1: sha1, size: size) else { return ["fileID": 0, "reuse": false] }
        return ["fileID": try addFile(name: name, parent: p, md5: b.md5, size: size, duplicate: dup), "reuse": true]
    }

    func v1List(parent: Int64, trashed: Bool, search: String?, orderBy: String, desc: Bool) throws(APIFailure) -> ([Node], String) {
        var all: [Node]
        if let search, !search.isEmpty {
            all = snap.nodes.values.filter { $0.name.localizedCaseInsensitiveContains(search) && $0.trashed == trashed }
        } else {
            guard parent == 0 || snap.nodes[parent]?.isDir == true else { throw .fileNotFound }
            all = children(of: parent).filter { $0.trashed == trashed }
        }
        switch orderBy {
        case "size": all.sort { $0.size < $1.size }
        case "file_name": all.sort { $0.name < $1.name }
        case "update_at": all.sort { $0.updated < $1.updated }
        default: all.sort { $0.id < $1.id }
        }
        if desc { all.reverse() }
        return (all, parent == 0 ? "" : (snap.nodes[parent]?.name ?? ""))
    }
}

extension Routes {
    func spoolPath() async -> String { state.root + "/uploads/spool-" + UUID().uuidString }

    /// `POST …/upload/v2/file/slice`: the form streamed into its place (or a spool file), then checked and recorded.
    func receiveSlice(_ req: Request) async throws -> Any? {
        let path = await spoolPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let placed = NIOLockedValueBox<Placement?>(nil)
        let form: SpooledForm
        do {
            form = try await SpooledForm.read(req.body, contentType: req.headers[.contentType], filePart: ["slice"], to: path) { fields in
                let p = await state.placeSlice(fields)
                placed.withLockedValue { $0 = p }
                return p
            }
        } catch {
            await state.releasePlacement(placed.withLockedValue { $0 })
            throw error
        }
        let f = Body(form.fields)
        try await state.acceptSlice(f.string("preuploadID"), sliceNo: f.int("sliceNo").map(Int.init),
                                    md5: f.string("sliceMD5"), received: form, path: path)
        return nil
    }

    func registerUploads(_ router: Router<Ctx>) {
        for v1 in [false, true] {
            api(router, .post, v1 ? "/upload/v1/file/create" : "/upload/v2/file/create") { _, body in
                try await state.createUpload(parent: body.int("parentFileID") ?? 0, filename: body.string("filename") ?? "",
                                             etag: body.string("etag"), size: body.int("size"), duplicate: Int(body.int("duplicate") ?? 0),
                                             containDir: body.bool("containDir") ?? false, v1: v1, base: base())
            }
        }
        api(router, .get, "/upload/v2/file/domain") { _, _ in await state.uploadServerList(base: base()) }
        api(router, .post, "/upload/v2/file/slice") { req, _ in
            try await state.checkListenerTakesSlices()
            return try await receiveSlice(req)
        }
        for path in ["/upload/v2/file/upload_complete", "/upload/v1/file/upload_complete"] {
            api(router, .post, path) { _, body in try await state.complete(body.string("preuploadID")) }
        }
        api(router, .post, "/upload/v1/file/upload_async_result") { _, body in
            let r = try await state.complete(body.string("preuploadID"))
            return ["completed": r["completed"] ?? false, "fileID": r["fileID"] ?? 0] as [String: Any]
        }
        api(router, .post, "/upload/v2/file/single/create") { req, _ in
            let path = await spoolPath()
            defer { try? FileManager.default.removeItem(atPath: path) }
            let form = try await SpooledForm.read(req.body, contentType: req.headers[.contentType], filePart: ["file"], to: path)
            return try await state.singleCreate(form, path: path)
        }
        api(router, .post, "/upload/v2/file/sha1_reuse") { _, body in try await state.sha1Reuse(body) }
        api(router, .post, "/upload/v1/file/get_upload_url") { _, body in
            let u = try await state.upload(body.string("preuploadID"))
            guard let n = body.int("sliceNo"), n >= 1, n <= Int64(u.sliceCount) else { throw APIFailure.bad("sliceNo参数错误") }
            return ["presignedURL": base() + "/presigned/\(u.id)/\(n)", "isMultipart": u.sliceCount > 1] as [String: Any]
        }
        api(router, .post, "/upload/v1/file/list_upload_parts") { _, body in
            ["parts": try await state.listParts(body.string("preuploadID"))]
        }
        // The V1 presigned PUT: raw bytes, and neither Authorization nor Platform may be sent.
        router.put("/presigned/{id}/{n}") { req, ctx in
            if req.headers[.authorization] != nil || req.headers[.platform] != nil {
                return Response(status: .forbidden, body: .init(byteBuffer: ByteBuffer(string: "SignatureDoesNotMatch")))
            }
            let path = await spoolPath()
            defer { try? FileManager.default.removeItem(atPath: path) }
            var md5 = Insecure.MD5()
            var bytes: Int64 = 0
            try await _NIOFileSystem.FileSystem.shared.withFileHandle(forWritingAt: FilePath(path), options: .newFile(replaceExisting: true)) { h in
                try await h.withBufferedWriter { w in
                    for try await chunk in req.body {
                        chunk.withUnsafeReadableBytes { md5.update(bufferPointer: $0) }
                        bytes += Int64(chunk.readableBytes)
                        _ = try await w.write(contentsOf: chunk)
                    }
                }
            }
            var form = SpooledForm()
            form.hadFile = true
            form.fileBytes = bytes
            form.md5 = md5.finalize().hexString
            do {
                try await state.acceptSlice(ctx.parameters.get("id"), sliceNo: ctx.parameters.get("n").flatMap { Int($0) },
                                            md5: form.md5, received: form, path: path)
            } catch let f as APIFailure {
                return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: f.message)))
            }
            return Response(status: .ok)
        }
    }

    // MARK: knobs

    /// A test knob at `/__emulator/<name>`: `body` gets the parsed request body; its result is the answer's data.
    func knob(_ router: Router<Ctx>, _ name: String, _ body: @escaping @Sendable (Body) async throws -> Any?) {
        router.post(RouterPath("/__emulator/\(name)")) { req, _ in
            do {
                let b = try Body.parse(try await req.body.collect(upTo: 1 << 20), contentType: req.headers[.contentType])
                return Wire.ok(try await body(b))
            } catch let f as APIFailure {
                return Wire.fail(f)
            }
        }
    }

    /// Test knobs under `/__emulator/…` (no Platform or token needed; loopback use only).
    func registerKnobs(_ router: Router<Ctx>) {
        knob(router, "tokens/expire") { b in
            if let after = b.int("after_calls"), let path = b.string("path") { await state.expireTokens(after: Int(after), of: path) }
            else { await state.expireAllTokens() }
            return nil
        }
        knob(router, "cdn/fail-next") { b in
            await state.setCDNFailure(count: Int(b.int("count") ?? 1), status: Int(b.int("status") ?? 500),
                                      code: Int(b.int("code") ?? 1), message: b.string("message") ?? "error")
            return nil
        }
        knob(router, "cdn/expire-links") { _ in await state.expireDownloadLinks(); return nil }
        knob(router, "cdn/stats") { _ in ["active": await state.cdnActive, "bytes": await state.cdnBytes] }
        knob(router, "tokens/revoke") { _ in await state.revokeAllTokens(); return nil }
        // {"secret": "…"}: the application's secret is reset (tokens revoked, the old secret refused).
        knob(router, "credentials/rotate") { b in await state.rotateClientSecret(b.string("secret") ?? "rotated"); return nil }
        knob(router, "rate-limit/next") { b in await state.setForced429(Int(b.int("count") ?? 1)); return nil }
        knob(router, "upload/pending") { b in await state.setCompletePending(Int(b.int("polls") ?? 1)); return nil }
        knob(router, "upload/fail-slices") { b in await state.setFailSlices(Int(b.int("count") ?? 1)); return nil }
        // {"accept": N}: N more slices are accepted, then every slice fails until {} (no limit) is sent.
        knob(router, "upload/slice-budget") { b in await state.setSliceBudget(b.int("accept").map(Int.init)); return nil }
        knob(router, "upload/forget") { _ in await state.forgetUploads(); return nil }
        knob(router, "upload/stats") { _ in ["slices_accepted": await state.slicesAccepted, "slices_received": await state.slicesReceived] }
        knob(router, "quota") { b in await state.setQuota(daily: b.int("daily"), used: b.int("used")); return nil }
        knob(router, "direct-link/enable") { b in
            guard let id = b.int("fileID") else { throw APIFailure.bad("fileID required") }
            return ["filename": try await state.setDirectLink(id, enabled: true)]
        }
        knob(router, "drop-next-body") { _ in await state.setDropNextBody(); return nil }
        knob(router, "seed") { b in
            // {"paths": ["/a/b.txt", …], "content": "text"}: files put into the drive directly.
            let content = Data((b.string("content") ?? "").utf8)
            return ["fileIDs": try await state.seed(paths: b.strings("paths") ?? [], data: content)]
        }
        knob(router, "private-key") { b in await state.setPrivateKey(b.string("key").flatMap { $0.isEmpty ? nil : $0 }); return nil }
        knob(router, "calls/reset") { _ in await state.resetCalls(); return nil }
        // {"bytes_per_second": N} (0 or absent: no limit): each CDN download sends at most that.
        knob(router, "cdn/rate") { b in
            let r = b.int("bytes_per_second") ?? 0
            await state.setCDNRate(r > 0 ? r : nil)
            return nil
        }
        // CDN GET downloads begun so far, by file content MD5.
        router.get("/__emulator/cdn/downloads") { _, _ in Wire.ok(await state.downloadCounts()) }
        router.get("/__emulator/calls") { _, _ in Wire.ok(await state.callCounts()) }
    }
}
