import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1

/// 123's offline download ("离线下载"): the cloud fetches a URL itself and the file appears in a folder.
/// `POST /api/v1/offline/download {url, fileName?, dirID?, callBackUrl?}` → `{taskID}`;
/// `GET /api/v1/offline/download/process?taskID=` → `{process: 0…100, status: 0 running | 1 failed | 2 done | 3 retrying}`.
/// The emulator really fetches the URL (over HTTP, redirects followed), hashes it and stores it like an upload.
struct OfflineTask: Sendable {
    var id: Int64
    var url: String
    var fileName: String?
    var dirID: Int64
    var callBack: String?
    var status = 0
    var process: Double = 0
    var failReason = ""
    var fileID: Int64 = 0
    /// Knobs taken when the task began: its first attempt fails and it shows `retrying` for this many polls
    /// before the second attempt; it fails for good with this reason.
    var retryPolls = 0
    var failWith: String?
}

/// Knob state and counters of the offline download, the upload servers and SHA-1 reuse (not persisted).
struct EmulatorExtras: Sendable {
    var offline: [Int64: OfflineTask] = [:]
    var nextOffline: Int64 = 7_000_001
    /// The next `offlineFailures` downloads fail with `offlineFailReason`.
    var offlineFailures = 0
    var offlineFailReason = "下载失败"
    /// The next `offlineRetries` downloads fail once and go through `retrying` (status 3) for `offlineRetryPolls` polls.
    var offlineRetries = 0
    var offlineRetryPolls = 1
    /// Bytes per second each offline download fetches at most (nil: as fast as it can).
    var offlineRate: Int64?
    /// Upload servers (1-based) whose slice requests fail, as an unreachable or broken server.
    var downServers: Set<Int> = []
    /// Slices accepted, by upload server (1-based; only counted with several servers).
    var slicesByServer: [Int: Int] = [:]
}

/// Which upload servers `upload/v2/file/create` names (the spec: `servers` may be null; clients then ask `domain`).
public enum CreateServers: String, Sendable {
    /// Every upload server (the default).
    case listed
    /// `servers: []`.
    case empty
    /// `servers: null`.
    case null
}

extension EmulatorState {
    static let offlineFolderName = "来自:离线下载"

    /// The upload servers' base URLs: the listener itself when there is one, else `<base>/upload-server/<n>` for
    /// each (all on the same listener).
    func uploadServerList(base: String) -> [String] {
        let n = max(1, config.uploadServers)
        return n == 1 ? [base] : (1...n).map { "\(base)/upload-server/\($0)" }
    }

    /// `servers` as `create` answers it (nil: `null`).
    func createServers(base: String) -> [String]? {
        switch config.createServers {
        case .listed: return uploadServerList(base: base)
        case .empty: return []
        case .null: return nil
        }
    }

    func setUploadServers(count: Int?, create: CreateServers?, down: Set<Int>?) {
        if let count { config.uploadServers = max(1, count) }
        if let create { config.createServers = create }
        if let down { extras.downServers = down }
    }

    /// A slice request at upload server `n`: refused when that server is down (knob).
    func checkUploadServer(_ n: Int) throws(APIFailure) {
        guard n >= 1, n <= max(1, config.uploadServers) else { throw .bad("upload server \(n) does not exist") }
        if extras.downServers.contains(n) { throw APIFailure(code: 503, message: "上传服务器暂不可用 (upload server \(n) is down)") }
    }

    /// With several upload servers the listener's own paths play the main API host only, which takes no slices.
    func checkListenerTakesSlices() throws(APIFailure) {
        if config.uploadServers > 1 { throw .bad("请使用上传域名上传分片 (this is the API host; send slices to an upload server)") }
    }

    func countServerSlice(_ n: Int) { extras.slicesByServer[n, default: 0] += 1 }

    // MARK: offline download

    func startOffline(_ body: Body) throws(APIFailure) -> Int64 {
        guard let url = body.string("url"), let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
              ["http", "https"].contains(scheme), parsed.host != nil else {
            throw .bad("url参数错误，仅支持http/https链接")
        }
        let name = body.string("fileName").flatMap { $0.isEmpty ? nil : $0 }
        if let name { try Names.check(name) }
        let dir: Int64
        if body.has("dirID") {
            guard let d = body.int("dirID") else { throw .bad("dirID参数错误") }
            guard d != 0 else { throw .bad("离线下载不支持保存到根目录，请指定文件夹") }
            guard folderExists(d) else { throw .bad("目标文件夹不存在") }
            dir = d
        } else {
            dir = offlineFolder()
        }
        let id = extras.nextOffline
        extras.nextOffline += 1
        var task = OfflineTask(id: id, url: url, fileName: name, dirID: dir, callBack: body.string("callBackUrl").flatMap { $0.isEmpty ? nil : $0 })
        if extras.offlineFailures > 0 {
            extras.offlineFailures -= 1
            task.failWith = extras.offlineFailReason
        }
        if extras.offlineRetries > 0 {
            extras.offlineRetries -= 1
            task.retryPolls = max(1, extras.offlineRetryPolls)
        }
        extras.offline[id] = task
        Task { await self.runOffline(id) }
        return id
    }

    /// Without `dirID` the file goes to a `来自:离线下载` folder at the root (made when missing).
    private func offlineFolder() -> Int64 {
        if let f = sibling(named: Self.offlineFolderName, in: 0), f.isDir { return f.id }
        let now = Date()
        let id = newID()
        snap.nodes[id] = Node(id: id, parent: 0, name: Self.offlineFolderName, isDir: true, size: 0, md5: "", created: now, updated: now, trashed: false)
        save()
        return id
    }

    func offlineProcess(_ id: Int64?) throws(APIFailure) -> sending [String: Any] {
        guard let id, var t = extras.offline[id] else { throw .bad("taskID参数错误或任务不存在") }
        if t.status == 3, t.retryPolls > 0 {
            t.retryPolls -= 1
            extras.offline[id] = t
        }
        return ["process": t.process, "status": t.status]
    }

    func setOfflineKnobs(fail: Int?, reason: String?, retry: Int?, retryPolls: Int?, rate: Int64??) {
        if let fail { extras.offlineFailures = max(0, fail) }
        if let reason { extras.offlineFailReason = reason }
        if let retry { extras.offlineRetries = max(0, retry) }
        if let retryPolls { extras.offlineRetryPolls = max(1, retryPolls) }
        if let rate { extras.offlineRate = rate }
    }

    func offlineTasks() -> [OfflineTask] { extras.offline.values.sorted { $0.id < $1.id } }

    private func update(_ id: Int64, _ change: (inout OfflineTask) -> Void) {
        guard var t = extras.offline[id] else { return }
        change(&t)
        extras.offline[id] = t
    }

    private func setProcess(_ id: Int64, _ p: Double) { update(id) { $0.process = p } }

    /// Fetches the task's URL (a first failed attempt and `retrying` first when the knob says so) and stores the file.
    private func runOffline(_ id: Int64) async {
        guard let task = extras.offline[id] else { return }
        let spool = root + "/uploads/offline-\(id)"
        defer { try? FileManager.default.removeItem(atPath: spool) }
        if task.retryPolls > 0 {
            // The first attempt breaks off; 123 says "retrying" (progress back to 0) and tries again.
            _ = try? await fetch(task.url, to: spool, id: id, limit: 1)
            update(id) { $0.status = 3; $0.process = 0 }
            let deadline = ContinuousClock.now + .seconds(60)
            while let t = extras.offline[id], t.retryPolls > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            update(id) { $0.status = 0 }
        }
        if let reason = task.failWith {
            finish(id, failure: reason)
            return
        }
        do {
            let (size, md5) = try await fetch(task.url, to: spool, id: id, limit: nil)
            if !hasBlob(md5, size) {
                try? FileManager.default.removeItem(atPath: blobPath(md5, size))
                do { try FileManager.default.moveItem(atPath: spool, toPath: blobPath(md5, size)) } catch { throw APIFailure.bad("文件保存失败") }
                registerBlob(Blob(md5: md5, size: size, sha1: nil))
            }
            let name = task.fileName ?? Self.fileName(of: task.url)
            let fid = try addFile(name: name, parent: task.dirID, md5: md5, size: size, duplicate: 1)
            update(id) { $0.status = 2; $0.process = 100; $0.fileID = fid }
            callBack(id)
        } catch let f as APIFailure {
            finish(id, failure: f.message)
        } catch {
            finish(id, failure: "下载失败: \(error)")
        }
    }

    private func finish(_ id: Int64, failure: String) {
        update(id) { $0.status = 1; $0.process = 0; $0.failReason = failure }
        callBack(id)
    }

    /// The callback 123 sends when a download ends: `{url, status: 0 ok | 1 failed, failReason, fileID}`.
    private func callBack(_ id: Int64) {
        guard let t = extras.offline[id], let url = t.callBack else { return }
        let payload: [String: Any] = ["url": t.url, "status": t.status == 2 ? 0 : 1, "failReason": t.failReason, "fileID": t.fileID]
        guard let data = try? JSONSerialization.data(withJSONObject: payload) else { return }
        Task {
            var req = HTTPClientRequest(url: url)
            req.method = .POST
            req.headers.add(name: "Content-Type", value: "application/json")
            req.body = .bytes(ByteBuffer(bytes: data))
            _ = try? await HTTPClient.shared.execute(req, timeout: .seconds(10))
        }
    }

    /// The last path segment of the URL, decoded; `download` when there is none.
    static func fileName(of url: String) -> String {
        let last = URL(string: url)?.lastPathComponent ?? ""
        let name = (last.removingPercentEncoding ?? last).filter { !Names.forbidden.contains($0) }
        return name.isEmpty || name == "/" ? "download" : name
    }

    /// GETs `url` into `path` at the knob's rate, updating the progress; the size and MD5. `limit`: stop after that many bytes.
    private func fetch(_ url: String, to path: String, id: Int64, limit: Int64?) async throws -> (Int64, String) {
        var req = HTTPClientRequest(url: url)
        req.method = .GET
        let res = try await HTTPClient.shared.execute(req, timeout: .seconds(300))
        guard (200..<300).contains(res.status.code) else {
            throw APIFailure.bad("下载失败: 源站返回HTTP \(res.status.code)")
        }
        let total = res.headers.first(name: "Content-Length").flatMap { Int64($0) }
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else {
            throw APIFailure.bad("文件保存失败")
        }
        defer { try? out.close() }
        var md5 = Insecure.MD5()
        var got: Int64 = 0
        let rate = extras.offlineRate
        for try await chunk in res.body {
            if let rate, rate > 0 {
                try await Task.sleep(for: .microseconds(Int64(chunk.readableBytes) * 1_000_000 / rate))
            }
            chunk.withUnsafeReadableBytes { md5.update(bufferPointer: $0) }
            try out.write(contentsOf: Data(chunk.readableBytesView))
            got += Int64(chunk.readableBytes)
            if let total, total > 0 { setProcess(id, min(99, Double(got) * 100 / Double(total))) }
            if let limit, got >= limit { break }
            guard got <= 10 << 30 else { throw APIFailure.bad("文件大小超过限制") }
        }
        if let total, limit == nil, got != total { throw APIFailure.bad("下载失败: 连接中断") }
        return (got, md5.finalize().hexString)
    }
}

extension Routes {
    /// The offline download, the extra upload servers, and their knobs.
    func registerCloudExtras(_ router: Router<Ctx>) {
        api(router, .post, "/api/v1/offline/download") { _, body in
            ["taskID": try await state.startOffline(body)]
        }
        api(router, .get, "/api/v1/offline/download/process") { req, _ in
            try await state.offlineProcess(Self.queryInt(req, "taskID"))
        }
        // Upload servers 1…n of several: each takes slices (and completions) like the listener's own paths.
        api(router, .post, "/upload-server/{n}/upload/v2/file/slice") { req, _ in
            let n = Self.serverNumber(req)
            try await state.checkUploadServer(n)
            let r = try await receiveSlice(req)
            await state.countServerSlice(n)
            return r
        }
        api(router, .post, "/upload-server/{n}/upload/v2/file/upload_complete") { req, body in
            try await state.checkUploadServer(Self.serverNumber(req))
            return try await state.complete(body.string("preuploadID"))
        }

        // {"fail": N, "reason": "…", "retry": N, "retry_polls": K, "bytes_per_second": R (0: no limit)}
        knob(router, "offline") { b in
            let rate: Int64?? = b.has("bytes_per_second") ? .some(b.int("bytes_per_second").flatMap { $0 > 0 ? $0 : nil }) : .none
            await state.setOfflineKnobs(fail: b.int("fail").map(Int.init), reason: b.string("reason"), retry: b.int("retry").map(Int.init),
                                        retryPolls: b.int("retry_polls").map(Int.init), rate: rate)
            return nil
        }
        // {"count": N, "create": "listed" | "empty" | "null", "down": [k, …]}
        knob(router, "upload/servers") { b in
            let create = b.string("create").flatMap(CreateServers.init(rawValue:))
            let down = b.ints("down").map { Set($0.map(Int.init)) }
            await state.setUploadServers(count: b.int("count").map(Int.init), create: create, down: down)
            return ["servers": await state.uploadServerList(base: base())]
        }
        router.get("/__emulator/upload/servers") { _, _ in
            Wire.ok(["slices": Dictionary(uniqueKeysWithValues: await state.extras.slicesByServer.map { (String($0.key), $0.value) })])
        }
    }

    static func serverNumber(_ req: Request) -> Int {
        let parts = req.uri.path.split(separator: "/")
        return parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    }
}

extension Open123Emulator {
    /// The next `count` offline downloads fail (status 1) with `reason`.
    public func failNextOfflineDownloads(_ count: Int = 1, reason: String = "下载失败") async {
        await state.setOfflineKnobs(fail: count, reason: reason, retry: nil, retryPolls: nil, rate: nil)
    }
    /// The next `count` offline downloads fail once and show `retrying` (status 3) for `polls` process polls, then succeed.
    public func retryNextOfflineDownloads(_ count: Int = 1, polls: Int = 1) async {
        await state.setOfflineKnobs(fail: nil, reason: nil, retry: count, retryPolls: polls, rate: nil)
    }
    /// Each offline download fetches at most `bytesPerSecond` (nil: no limit).
    public func setOfflineRate(_ bytesPerSecond: Int64?) async {
        await state.setOfflineKnobs(fail: nil, reason: nil, retry: nil, retryPolls: nil, rate: .some(bytesPerSecond))
    }
    /// Offline downloads so far: (taskID, url, status, file ID once done).
    public func offlineDownloads() async -> [(id: Int64, url: String, status: Int, fileID: Int64)] {
        await state.offlineTasks().map { ($0.id, $0.url, $0.status, $0.fileID) }
    }
    /// Upload servers: how many `create` and `domain` name, whether `create` names them, and which are down (1-based).
    public func setUploadServers(count: Int? = nil, create: CreateServers? = nil, down: Set<Int>? = nil) async {
        await state.setUploadServers(count: count, create: create, down: down)
    }
    /// The upload servers' base URLs as `domain` answers.
    public var uploadServers: [String] { get async { await state.uploadServerList(base: baseURL) } }
    /// Slices accepted by each upload server (1-based), when there are several.
    public func slicesByServer() async -> [Int: Int] { await state.extras.slicesByServer }
}
