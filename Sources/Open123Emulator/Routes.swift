import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore
import _NIOFileSystem

typealias Ctx = BasicRequestContext

extension HTTPField.Name {
    static let platform = Self("Platform")!
}

/// The emulator's HTTP surface: the main API host, the upload host and both CDNs on one listener.
struct Routes: Sendable {
    let state: EmulatorState
    let base: @Sendable () -> String

    typealias Handler = @Sendable (Request, Body) async throws -> Any?

    /// Registers a 123 JSON endpoint: Platform header, call counting and rate limit, Bearer token (unless `auth` is false),
    /// the body (JSON, form or query), and the envelope around the result.
    func api(_ router: Router<Ctx>, _ method: HTTPRequest.Method, _ path: String, auth: Bool = true, _ handler: @escaping Handler) {
        router.on(RouterPath(path), method: method) { req, _ in
            do {
                guard req.headers[.platform]?.lowercased() == "open_platform" else {
                    throw APIFailure.bad("Platform请求头缺失或错误，应为open_platform")
                }
                try await state.admit(path)
                if auth { try await state.authorize(req.headers[.authorization]) }
                let body: Body
                if method == .get {
                    var q: [String: Any] = [:]
                    for (k, v) in req.uri.queryParameters { q[String(k)] = String(v) }
                    body = Body(q)
                } else if req.headers[.contentType]?.lowercased().hasPrefix("multipart/") == true {
                    body = Body([:])
                } else {
                    let buffer = try await req.body.collect(upTo: 1 << 20)
                    body = try Body.parse(buffer, contentType: req.headers[.contentType])
                }
                return Wire.ok(try await handler(req, body))
            } catch let f as APIFailure {
                return Wire.fail(f)
            } catch {
                return Wire.fail(.bad("\(error)"))
            }
        }
    }

    /// Query parameters are case-sensitive on the real service.
    static func query(_ req: Request, _ name: String) -> String? {
        req.uri.queryParameters.get(name).flatMap { $0.isEmpty ? nil : $0 }
    }

    static func queryInt(_ req: Request, _ name: String) -> Int64? { query(req, name).flatMap { Int64($0) } }

    func register(_ router: Router<Ctx>) {
        api(router, .post, "/api/v1/access_token", auth: false) { _, body in
            let t = try await state.issueToken(clientID: body.string("clientID") ?? "", secret: body.string("clientSecret") ?? "")
            return ["accessToken": t.value, "expiredAt": Wire.rfc3339Beijing(t.expiresAt)]
        }
        api(router, .get, "/api/v1/user/info") { _, _ in await state.userInfo() }

        api(router, .get, "/api/v2/file/list") { req, _ in
            guard let parent = Self.queryInt(req, "parentFileId") ?? (Self.query(req, "parentFileId") == nil ? nil : -1), parent >= 0 else {
                throw APIFailure.bad("parentFileId参数错误")
            }
            guard let limit = Self.queryInt(req, "limit") else { throw APIFailure.bad("limit参数错误") }
            let after = Self.queryInt(req, "lastFileId") ?? 0
            let exact = Self.query(req, "searchMode") == "1"
            let page = try await state.list(parent: parent, limit: Int(limit), after: after,
                                            search: Self.query(req, "searchData"), exact: exact)
            return ["lastFileId": page.last, "fileList": page.items.map { $0.listItem() }] as [String: Any]
        }
        api(router, .get, "/api/v1/file/list") { req, _ in
            let parent = Self.queryInt(req, "parentFileId") ?? 0
            let page = max(1, Int(Self.queryInt(req, "page") ?? 1))
            let limit = Int(Self.queryInt(req, "limit") ?? 100)
            guard limit >= 1, limit <= 100 else { throw APIFailure.bad("limit参数错误，最大值为100") }
            let trashed = Self.query(req, "trashed") == "true"
            let (all, parentName) = try await state.v1List(parent: parent, trashed: trashed, search: Self.query(req, "searchData"),
                                                           orderBy: Self.query(req, "orderBy") ?? "file_id",
                                                           desc: Self.query(req, "orderDirection") == "desc")
            let slice = all.dropFirst((page - 1) * limit).prefix(limit)
            return ["total": all.count, "fileList": slice.map { $0.v1Item(parentName: parentName) }] as [String: Any]
        }
        api(router, .get, "/api/v1/file/detail") { req, _ in
            guard let id = Self.queryInt(req, "fileID") else { throw APIFailure.bad("fileID参数错误") }
            let n = try await state.node(id)
            return n.detail(size: await state.accumulatedSize(n))
        }
        api(router, .post, "/api/v1/file/infos") { _, body in
            guard let ids = body.ints("fileIds") ?? body.ints("fileIDs") else { throw APIFailure.bad("fileIds参数错误") }
            var items: [[String: Any]] = []
            for id in ids { if let n = try? await state.node(id) { items.append(n.listItem()) } }
            return ["fileList": items]
        }
        api(router, .post, "/upload/v1/file/mkdir") { _, body in
            guard let name = body.string("name") else { throw APIFailure.bad("name参数错误") }
            return ["dirID": try await state.mkdir(name: name, parent: body.int("parentID") ?? 0)]
        }
        api(router, .put, "/api/v1/file/name") { _, body in
            guard let id = body.int("fileId"), let name = body.string("fileName") else { throw APIFailure.bad("参数错误") }
            try await state.rename(id, to: name)
            return nil
        }
        api(router, .post, "/api/v1/file/rename") { _, body in
            guard let list = body.strings("renameList"), list.count <= 30 else { throw APIFailure.bad("renameList参数错误，最多30个") }
            var success: [[String: Any]] = [], failed: [[String: Any]] = []
            for item in list {
                let parts = item.split(separator: "|", maxSplits: 1).map(String.init)
                guard parts.count == 2, let id = Int64(parts[0]) else { failed.append(["fileID": 0, "message": "格式错误"]); continue }
                do {
                    try await state.rename(id, to: parts[1])
                    success.append(["fileID": id, "updateAt": Wire.beijing(Date())])
                } catch let f as APIFailure {
                    failed.append(["fileID": id, "message": f.message])
                }
            }
            return ["successList": success, "failList": failed] as [String: Any]
        }
        api(router, .post, "/api/v1/file/move") { _, body in
            guard let ids = body.ints("fileIDs") else { throw APIFailure.bad("fileIDs参数错误") }
            try await state.move(ids, to: body.int("toParentFileID") ?? 0)
            return nil
        }
        api(router, .post, "/api/v1/file/trash") { _, body in
            guard let ids = body.ints("fileIDs") else { throw APIFailure.bad("fileIDs参数错误") }
            try await state.trash(ids)
            return nil
        }
        api(router, .post, "/api/v1/file/delete") { _, body in
            guard let ids = body.ints("fileIDs") else { throw APIFailure.bad("fileIDs参数错误") }
            try await state.delete(ids)
            return nil
        }
        api(router, .post, "/api/v1/file/recover") { _, body in
            guard let ids = body.ints("fileIDs") else { throw APIFailure.bad("fileIDs参数错误") }
            return ["abnormalFileIDs": try await state.recover(ids)]
        }
        api(router, .get, "/api/v1/file/download_info") { req, _ in
            guard let id = Self.queryInt(req, "fileId") else { throw APIFailure.fileNotFound }
            return ["downloadUrl": try await state.downloadLink(id, base: base())]
        }
        api(router, .post, "/api/v1/direct-link/enable") { _, body in
            guard let id = body.int("fileID") else { throw APIFailure.bad("fileID参数错误") }
            return ["filename": try await state.setDirectLink(id, enabled: true)]
        }
        api(router, .post, "/api/v1/direct-link/disable") { _, body in
            guard let id = body.int("fileID") else { throw APIFailure.bad("fileID参数错误") }
            return ["filename": try await state.setDirectLink(id, enabled: false)]
        }
        api(router, .get, "/api/v1/direct-link/url") { req, _ in
            guard let id = Self.queryInt(req, "fileID") else { throw APIFailure.bad("fileID参数错误") }
            let path = try await state.directLinkPath(id)
            let encoded = path.split(separator: "/").map { URLPathEncoding.encode(String($0)) }.joined(separator: "/")
            return ["url": base() + "/" + encoded]
        }

        registerCopy(router)
        registerOAuth(router)
        registerUploads(router)
        registerCDN(router)
        registerKnobs(router)
        registerCloudExtras(router)
    }

    // MARK: CDN

    func registerCDN(_ router: Router<Ctx>) {
        for method in [HTTPRequest.Method.get, .head] {
            router.on("/cdn/{token}/**", method: method) { req, ctx in
                guard let token = ctx.parameters.get("token"), let target = await state.cdn(token) else {
                    return Response(status: .forbidden, body: .init(byteBuffer: ByteBuffer(string: "link expired or invalid")))
                }
                return try await serve(req, target)
            }
            router.on("/{uid}/**", method: method) { req, _ in
                let rawPath = req.uri.path
                let decoded = rawPath.removingPercentEncoding ?? rawPath
                if let key = await state.config.privateKey {
                    guard Self.verifyAuthKey(req.uri.queryParameters.get("auth_key"), path: decoded, raw: rawPath,
                                             uid: await state.config.uid, key: key) else {
                        return Response(status: .forbidden, body: .init(byteBuffer: ByteBuffer(string: "auth_key invalid or expired")))
                    }
                }
                guard let target = await state.directLinkTarget(decoded) else {
                    return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: "not found")))
                }
                return try await serve(req, target)
            }
        }
    }

    /// `auth_key=ts-rand-uid-md5(path-ts-rand-uid-key)`; the path decoded (as the Go drivers sign it) or raw.
    static func verifyAuthKey(_ authKey: String?, path: String, raw: String, uid: Int64, key: String) -> Bool {
        guard let parts = authKey?.split(separator: "-").map(String.init), parts.count == 4,
              let ts = Int64(parts[0]), String(uid) == parts[2] else { return false }
        if Int64(Date().timeIntervalSince1970) > ts { return false }
        for p in [path, raw] {
            let text = "\(p)-\(parts[0])-\(parts[1])-\(parts[2])-\(key)"
            let md5 = Insecure.MD5.hash(data: Data(text.utf8)).hexString
            if md5 == parts[3] { return true }
        }
        return false
    }

    /// Serves a stored blob with Range (206, Content-Range, 416), HEAD and Content-Length, streaming from disk.
    func serve(_ req: Request, _ target: (path: String, size: Int64, name: String)) async throws -> Response {
        if let f = await state.takeCDNFailure() {
            var h = HTTPFields()
            h[.contentType] = "application/json; charset=utf-8"
            let body = (try? JSONSerialization.data(withJSONObject: ["code": f.code, "message": f.message])) ?? Data()
            return Response(status: .init(code: f.status), headers: h, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        var headers = HTTPFields()
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = "application/octet-stream"
        // Blobs are stored as <md5>-<size>: the MD5 is the ETag, as on 123's CDN.
        let blobName = target.path.split(separator: "/").last.map(String.init) ?? ""
        if let md5 = blobName.split(separator: "-").first { headers[.eTag] = "\"\(md5)\"" }
        if let inm = req.headers[.ifNoneMatch], let etag = headers[.eTag],
           inm.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag }) {
            return Response(status: .notModified, headers: headers)
        }
        var span: ClosedRange<Int64>? = target.size > 0 ? 0...(target.size - 1) : nil
        var status = HTTPResponse.Status.ok
        if let r = req.headers[.range] {
            switch ByteRange.parse(r, size: target.size) {
            case .full: break
            case .partial(let range):
                span = range
                status = .partialContent
                headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(target.size)"
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(target.size)"
                headers[.contentLength] = "0"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
        }
        let length = span.map { $0.upperBound - $0.lowerBound + 1 } ?? 0
        headers[.contentLength] = String(length)
        guard req.method != .head, let span else { return Response(status: status, headers: headers) }
        let path = target.path
        // Knob: send about half of the body, then drop the connection.
        let cutAt: Int64? = await state.takeDropNextBody() ? max(1, length / 2) : nil
        await state.countDownload(blobName)
        let rate = await state.cdnRate
        let state = self.state
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(length)) { writer in
            var sent: Int64 = 0
            await state.cdnStarted()
            do {
                try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { h in
                    for try await chunk in h.readChunks(in: span, chunkLength: .kibibytes(64)) {
                        if let cutAt, sent + Int64(chunk.readableBytes) >= cutAt {
                            try await writer.write(chunk.getSlice(at: chunk.readerIndex, length: Int(cutAt - sent)) ?? chunk)
                            throw DroppedConnection()
                        }
                        // The pace before each chunk: even a file smaller than one chunk is in flight a while.
                        if let rate, rate > 0 {
                            try await Task.sleep(for: .microseconds(Int64(chunk.readableBytes) * 1_000_000 / rate))
                        }
                        sent += Int64(chunk.readableBytes)
                        try await writer.write(chunk)
                    }
                }
                try await writer.finish(nil)
            } catch {
                await state.cdnFinished(bytes: sent)
                throw error
            }
            await state.cdnFinished(bytes: sent)
        })
    }
}

/// Thrown to cut a response short (the drop-connection knob).
struct DroppedConnection: Error {}

enum URLPathEncoding {
    static let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
    static func encode(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s }
}
