import Crypto
import Foundation
import PanListCore
import NIOPosix

/// Everything the emulator knows, behind one actor: the tree, blobs, tokens, uploads, knobs and counters.
actor EmulatorState {
    var config: EmulatorConfig
    var snap = Snapshot()
    let root: String
    let ownsRoot: Bool

    // Not persisted.
    var evicted: Set<String> = []
    var calls: [String: Int] = [:]
    var forced429 = 0
    /// Expire every token when `path` has been called `after` more times (a deterministic "expires mid-way").
    var expireAfter: (path: String, after: Int)?
    var completePending = 0
    var failSlices = 0
    var dropNextBody = false
    /// CDN: downloads being sent right now, bytes sent in all, and injected failures.
    var cdnActive = 0
    var cdnBytes: Int64 = 0
    var cdnFail: (count: Int, status: Int, code: Int, message: String)?
    var downloadedToday: Int64 = 0
    var buckets: [String: (tokens: Double, at: ContinuousClock.Instant)] = [:]
    var uploads: [String: Upload] = [:]
    /// Offline downloads, upload servers: their knobs and counters (OfflineDownloads.swift).
    var extras = EmulatorExtras()
    var cdnLinks: [String: (md5: String, size: Int64, name: String, expires: Date)] = [:]
    var copyTasks: [Int64: Int] = [:]
    var nextTask: Int64 = 1
    /// Refresh tokens, authorization codes and renewal counters (OAuth.swift).
    var oauth = OAuthBook()

    struct Upload {
        var id: String
        var parent: Int64
        var name: String
        var md5: String
        var size: Int64
        var sliceSize: Int64
        var duplicate: Int
        var slices: [Int: String] = [:]
        var fileID: Int64?
        var failed: String?
        var pendingPolls: Int
        var v1: Bool = false
        var dir: String
        /// Slices being written into the data file right now.
        var receiving: Set<Int> = []
        /// The whole file's MD5, advanced over slices 1…hashedThrough while the others arrive.
        var running = RunningMD5()
        var hashedThrough = 0
        var hashing = false
        var sliceCount: Int { size == 0 ? 1 : Int((size + sliceSize - 1) / sliceSize) }
        func sliceLength(_ n: Int) -> Int64 { n < sliceCount ? sliceSize : size - Int64(n - 1) * sliceSize }
    }

    init(config: EmulatorConfig) throws {
        self.config = config
        if let dir = config.dataDir {
            root = dir
            ownsRoot = false
        } else {
            root = NSTemporaryDirectory() + "open123-emulator-" + UUID().uuidString
            ownsRoot = true
        }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/blobs", withIntermediateDirectories: true)
        try? fm.removeItem(atPath: root + "/uploads")
        try fm.createDirectory(atPath: root + "/uploads", withIntermediateDirectories: true)
        if config.dataDir != nil, let data = fm.contents(atPath: root + "/state.json") {
            snap = try JSONDecoder().decode(Snapshot.self, from: data)
        }
    }

    func shutdown() {
        if ownsRoot { try? FileManager.default.removeItem(atPath: root) }
    }

    /// Set while many changes are made at once (a seed of many files): one save at the end, not one each.
    private var saveHeld = false

    func save() {
        guard config.dataDir != nil, !saveHeld, let data = try? JSONEncoder().encode(snap) else { return }
        try? data.write(to: URL(fileURLWithPath: root + "/state.json"), options: .atomic)
    }

    func blobPath(_ md5: String, _ size: Int64) -> String { root + "/blobs/\(md5)-\(size)" }

    // MARK: calls, rate limits, tokens

    /// Counts the call, applies injected and configured rate limits.
    func admit(_ path: String) throws(APIFailure) {
        calls[path, default: 0] += 1
        if let e = expireAfter, e.path == path {
            if e.after == 0 {
                expireAfter = nil
                expireAllTokens()
            } else {
                expireAfter = (path, e.after - 1)
            }
        }
        if forced429 > 0 {
            forced429 -= 1
            throw .tooFrequent
        }
        guard let qps = config.rateLimits.qps(for: path, vip: config.vip) else { return }
        let now = ContinuousClock.now
        let capacity = max(1, qps)
        var b = buckets[path] ?? (capacity, now)
        let elapsed = Double((now - b.at).components.seconds) + Double((now - b.at).components.attoseconds) / 1e18
        b.tokens = min(capacity, b.tokens + elapsed * qps)
        b.at = now
        guard b.tokens >= 1 else {
            buckets[path] = b
            throw .tooFrequent
        }
        b.tokens -= 1
        buckets[path] = b
    }

    /// Knob: the developer reset the application's secret: every token stops working and the old secret
    /// gets no new one.
    func rotateClientSecret(_ secret: String) {
        config.clientSecret = secret
        revokeAllTokens()
    }

    func issueToken(clientID: String, secret: String) throws(APIFailure) -> Token {
        guard clientID == config.clientID, secret == config.clientSecret else {
            throw APIFailure(code: 1, message: "clientID or clientSecret is invalid")
        }
        let now = Date()
        snap.tokens.removeAll { $0.expiresAt <= now }
        let token = Token(value: Self.randomToken(), clientID: clientID, expiresAt: now.addingTimeInterval(config.tokenTTL), issued: now)
        snap.tokens.append(token)
        let mine = snap.tokens.filter { $0.clientID == clientID }.sorted { $0.issued < $1.issued }
        if mine.count > config.maxTokens {
            for old in mine.prefix(mine.count - config.maxTokens) {
                evicted.insert(old.value)
                snap.tokens.removeAll { $0.value == old.value }
            }
        }
        save()
        return token
    }

    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<48).map { _ in UInt8.random(in: 0...255, using: &g) }
        return "eyJ" + Data(bytes).base64EncodedString().replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "=", with: "")
    }

    func authorize(_ header: String?) throws(APIFailure) {
        guard let header, header.lowercased().hasPrefix("bearer ") else { throw .invalidToken }
        let value = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        if evicted.contains(value) { throw .evictedToken }
        guard let token = snap.tokens.first(where: { $0.value == value }) else { throw .invalidToken }
        if token.expiresAt <= Date() { throw .expiredToken }
    }

    // MARK: knobs

    func expireAllTokens() {
        for i in snap.tokens.indices { snap.tokens[i].expiresAt = Date(timeIntervalSince1970: 0) }
        save()
    }

    func expireTokens(after calls: Int, of path: String) {
        expireAfter = (path, max(0, calls))
    }

    func revokeAllTokens() {
        for t in snap.tokens { evicted.insert(t.value) }
        snap.tokens = []
        save()
    }

    func setForced429(_ n: Int) { forced429 = n }
    func setCompletePending(_ n: Int) { completePending = n }
    func setFailSlices(_ n: Int) { failSlices = n }
    /// Knob: slices still accepted before every further one fails (nil: no limit).
    var sliceBudget: Int?
    func setSliceBudget(_ n: Int?) { sliceBudget = n }
    /// Slices accepted (recorded for the first time) so far, over all uploads.
    var slicesAccepted = 0
    /// Slice requests received for a known upload session, accepted or not, repeats included.
    var slicesReceived = 0
    /// Knob: every upload session is forgotten (as when 123 lets a preuploadID expire).
    func forgetUploads() {
        for u in uploads.values { try? FileManager.default.removeItem(atPath: u.dir) }
        uploads = [:]
    }
    func setDropNextBody() { dropNextBody = true }
    func takeDropNextBody() -> Bool { defer { dropNextBody = false }; return dropNextBody }
    /// Knob: CDN downloads send at most this many bytes a second each (nil: as fast as they can).
    var cdnRate: Int64?
    func setCDNRate(_ r: Int64?) { cdnRate = r }
    /// GET downloads begun, by blob (`<md5>-<size>`).
    var cdnCounts: [String: Int] = [:]
    func countDownload(_ blob: String) { cdnCounts[blob, default: 0] += 1 }
    /// `cdnCounts` by the content's MD5 (the first part of the blob's name).
    func downloadCounts() -> [String: Int] {
        var out: [String: Int] = [:]
        for (blob, n) in cdnCounts { out[String(blob.split(separator: "-").first ?? ""), default: 0] += n }
        return out
    }
    func cdnStarted() { cdnActive += 1 }
    func cdnFinished(bytes: Int64) { cdnActive -= 1; cdnBytes += bytes }
    func setCDNFailure(count: Int, status: Int, code: Int, message: String) {
        cdnFail = count > 0 ? (count, status, code, message) : nil
    }
    /// The next injected CDN failure, if any: (HTTP status, 123 code, message).
    func takeCDNFailure() -> (status: Int, code: Int, message: String)? {
        guard var f = cdnFail else { return nil }
        f.count -= 1
        cdnFail = f.count > 0 ? f : nil
        return (f.status, f.code, f.message)
    }
    /// Every download URL handed out so far stops working (as 123's do after a while).
    func expireDownloadLinks() {
        for k in cdnLinks.keys { cdnLinks[k]?.expires = Date(timeIntervalSince1970: 0) }
    }
    func setQuota(daily: Int64?, used: Int64?) {
        if let daily { config.dailyDownloadQuota = daily }
        if let used { downloadedToday = used }
    }
    func setPrivateKey(_ key: String?) { config.privateKey = key }
    func callCounts() -> [String: Int] { calls }
    func resetCalls() { calls = [:] }

    // MARK: tree

    func node(_ id: Int64) throws(APIFailure) -> Node {
        guard let n = snap.nodes[id] else { throw .fileNotFound }
        return n
    }

    func children(of parent: Int64, includeTrashed: Bool = true) -> [Node] {
        snap.nodes.values.filter { $0.parent == parent && (includeTrashed || !$0.trashed) }.sorted { $0.id < $1.id }
    }

    func folderExists(_ id: Int64) -> Bool { id == 0 || (snap.nodes[id].map { $0.isDir && !$0.trashed } ?? false) }

    func sibling(named name: String, in parent: Int64) -> Node? {
        snap.nodes.values.first { $0.parent == parent && !$0.trashed && $0.name == name }
    }

    func newID() -> Int64 {
        snap.nextID += 1
        return snap.nextID
    }

    func list(parent: Int64, limit: Int, after: Int64, search: String?, exact: Bool) throws(APIFailure) -> (items: [Node], last: Int64) {
        guard limit >= 1, limit <= 100 else { throw .bad("limit参数错误，最大值为100") }
        var all: [Node]
        if let search, !search.isEmpty {
            all = snap.nodes.values.filter { exact ? $0.name == search : $0.name.localizedCaseInsensitiveContains(search) }
                .sorted { $0.id < $1.id }
        } else {
            guard parent == 0 || snap.nodes[parent]?.isDir == true else { throw .fileNotFound }
            all = children(of: parent)
        }
        let rest = all.filter { $0.id > after }
        let page = Array(rest.prefix(limit))
        let last: Int64 = rest.count > limit ? (page.last?.id ?? -1) : -1
        return (page, last)
    }

    func accumulatedSize(_ n: Node) -> Int64 {
        guard n.isDir else { return n.size }
        return children(of: n.id).reduce(0) { $0 + accumulatedSize($1) }
    }

    func path(of id: Int64) -> [Node] {
        var chain: [Node] = []
        var cur = snap.nodes[id]
        while let n = cur { chain.insert(n, at: 0); cur = n.parent == 0 ? nil : snap.nodes[n.parent] }
        return chain
    }

    func mkdir(name: String, parent: Int64) throws(APIFailure) -> Int64 {
        try Names.check(name)
        guard folderExists(parent) else { throw .bad("父目录不存在") }
        if sibling(named: name, in: parent) != nil { throw .dirExists }
        let now = Date()
        let id = newID()
        snap.nodes[id] = Node(id: id, parent: parent, name: name, isDir: true, size: 0, md5: "", created: now, updated: now, trashed: false)
        save()
        return id
    }

    /// Creates the folders of `path` under `parent` (for `containDir`) and returns the last folder's id.
    func ensureDirs(_ components: [String], under parent: Int64) throws(APIFailure) -> Int64 {
        var cur = parent
        for c in components where !c.isEmpty {
            if let existing = sibling(named: c, in: cur) {
                guard existing.isDir else { throw .bad("路径中存在同名文件") }
                cur = existing.id
            } else {
                cur = try mkdir(name: c, parent: cur)
            }
        }
        return cur
    }

    func rename(_ id: Int64, to name: String) throws(APIFailure) {
        try Names.check(name)
        var n = try node(id)
        if let other = sibling(named: name, in: n.parent), other.id != id { throw .bad("该目录下已经有同名文件") }
        n.name = name
        n.updated = Date()
        snap.nodes[id] = n
        save()
    }

    func move(_ ids: [Int64], to parent: Int64) throws(APIFailure) {
        guard ids.count <= 100 else { throw .bad("一次最多移动100个文件") }
        guard folderExists(parent) else { throw .bad("目标目录不存在") }
        for id in ids {
            let n = try node(id)
            if path(of: parent).contains(where: { $0.id == id }) { throw .bad("不能移动到自身或子目录下") }
            if let other = sibling(named: n.name, in: parent), other.id != id { throw .bad("目标目录下已经有同名文件") }
        }
        for id in ids {
            snap.nodes[id]?.parent = parent
            snap.nodes[id]?.updated = Date()
        }
        save()
    }

    func trash(_ ids: [Int64]) throws(APIFailure) {
        guard ids.count <= 100 else { throw .bad("一次最多操作100个文件") }
        for id in ids { _ = try node(id) }
        for id in ids { snap.nodes[id]?.trashed = true }
        save()
    }

    func delete(_ ids: [Int64]) throws(APIFailure) {
        guard ids.count <= 100 else { throw .bad("一次最多操作100个文件") }
        for id in ids {
            guard try node(id).trashed else { throw .bad("文件不在回收站中，无法彻底删除") }
        }
        for id in ids { removeSubtree(id) }
        save()
    }

    private func removeSubtree(_ id: Int64) {
        for c in children(of: id) { removeSubtree(c.id) }
        snap.nodes[id] = nil
    }

    func recover(_ ids: [Int64]) throws(APIFailure) -> [Int64] {
        var abnormal: [Int64] = []
        for id in ids {
            let n = try node(id)
            if !folderExists(n.parent) { abnormal.append(id); continue }
            snap.nodes[id]?.trashed = false
        }
        save()
        return abnormal
    }

    func copy(_ id: Int64, to parent: Int64) throws(APIFailure) -> Int64 {
        let n = try node(id)
        guard folderExists(parent) else { throw .bad("目标目录不存在") }
        if path(of: parent).contains(where: { $0.id == id }) { throw .bad("不能复制到自身或子目录下") }
        var name = n.name
        var i = 1
        while sibling(named: name, in: parent) != nil { name = Names.suffixed(n.name, i); i += 1 }
        return copyTree(n, to: parent, name: name)
    }

    private func copyTree(_ n: Node, to parent: Int64, name: String) -> Int64 {
        let id = newID()
        var c = n
        c.id = id
        c.parent = parent
        c.name = name
        c.created = Date()
        c.updated = c.created
        snap.nodes[id] = c
        if n.isDir { for child in children(of: n.id, includeTrashed: false) { _ = copyTree(child, to: id, name: child.name) } }
        save()
        return id
    }

    func startCopyTask(_ ids: [Int64], to parent: Int64) throws(APIFailure) -> Int64 {
        guard ids.count <= 3000 else { throw .bad("一次最多复制3000个文件") }
        for id in ids { _ = try node(id) }
        guard folderExists(parent) else { throw .bad("目标目录不存在") }
        let task = nextTask
        nextTask += 1
        var status = 2
        for id in ids { if (try? copy(id, to: parent)) == nil { status = 3 } }
        copyTasks[task] = status
        return task
    }

    func copyTaskStatus(_ task: Int64) throws(APIFailure) -> Int {
        guard let s = copyTasks[task] else { throw .bad("任务不存在") }
        return s
    }

    // MARK: files and blobs

    /// Adds a file node for a stored blob, honouring `duplicate` (1 keep both, 2 overwrite, else error).
    func addFile(name: String, parent: Int64, md5: String, size: Int64, duplicate: Int) throws(APIFailure) -> Int64 {
        try Names.check(name)
        guard folderExists(parent) else { throw .bad("父目录不存在") }
        var finalName = name
        if let existing = sibling(named: name, in: parent) {
            switch duplicate {
            case 1:
                var i = 1
                while sibling(named: finalName, in: parent) != nil { finalName = Names.suffixed(name, i); i += 1 }
            case 2:
                guard !existing.isDir else { throw .bad("该目录下已经有同名文件夹") }
                removeSubtree(existing.id)
            default:
                throw .bad("该目录下已经有同名文件")
            }
        }
        let now = Date()
        let id = newID()
        snap.nodes[id] = Node(id: id, parent: parent, name: finalName, isDir: false, size: size, md5: md5, created: now, updated: now, trashed: false)
        save()
        return id
    }

    func hasBlob(_ md5: String, _ size: Int64) -> Bool { snap.blobs["\(md5)-\(size)"] != nil }

    /// The blob with this SHA-1 and size; SHA-1s not known yet are computed for the blobs of that size.
    func blob(sha1: String, size: Int64) -> Blob? {
        for (key, b) in snap.blobs where b.size == size && b.sha1 == nil {
            guard let fd = FileHandle(forReadingAtPath: blobPath(b.md5, b.size)) else { continue }
            defer { try? fd.close() }
            var h = Insecure.SHA1()
            while let chunk = try? fd.read(upToCount: 1 << 20), !chunk.isEmpty { h.update(data: chunk) }
            snap.blobs[key]?.sha1 = h.finalize().hexString
        }
        return snap.blobs.values.first { $0.sha1 == sha1 && $0.size == size }
    }

    func registerBlob(_ b: Blob) {
        snap.blobs["\(b.md5)-\(b.size)"] = b
        save()
    }

    func downloadLink(_ id: Int64, base: String) throws(APIFailure) -> String {
        guard let n = snap.nodes[id], !n.isDir, !n.trashed else { throw .fileNotFound }
        if downloadedToday + n.size > config.dailyDownloadQuota && !config.vip { throw .quotaExceeded }
        downloadedToday += n.size
        let token = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        cdnLinks[token] = (n.md5, n.size, n.name, Date().addingTimeInterval(3600))
        let etag8 = String(n.md5.prefix(8))
        let encoded = n.name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? "file"
        return "\(base)/cdn/\(token)/123-61/\(etag8)/\(encoded)"
    }

    func cdn(_ token: String) -> (path: String, size: Int64, name: String)? {
        guard let l = cdnLinks[token], l.expires > Date() else { return nil }
        return (blobPath(l.md5, l.size), l.size, l.name)
    }

    /// Puts several files into the drive with one save of the state.
    func seed(paths: [String], data: Data) throws -> [Int64] {
        saveHeld = true
        defer { saveHeld = false; save() }
        return try paths.map { try seed(path: $0, data: data) }
    }

    /// Puts a file into the drive directly (demo content, test fixtures): folders of `path` are created.
    func seed(path: String, data: Data) throws -> Int64 {
        let parts = path.split(separator: "/").map(String.init)
        guard let name = parts.last else { throw APIFailure.bad("empty path") }
        let parent = try ensureDirs(Array(parts.dropLast()), under: 0)
        let md5 = Insecure.MD5.hash(data: data).hexString
        if !hasBlob(md5, Int64(data.count)) {
            try data.write(to: URL(fileURLWithPath: blobPath(md5, Int64(data.count))))
            registerBlob(Blob(md5: md5, size: Int64(data.count), sha1: nil))
        }
        return try addFile(name: name, parent: parent, md5: md5, size: Int64(data.count), duplicate: 2)
    }

    // MARK: direct links

    func setDirectLink(_ id: Int64, enabled: Bool) throws(APIFailure) -> String {
        let n = try node(id)
        guard n.isDir, n.parent == 0 else { throw .bad("只能对根目录下的文件夹开启直链空间") }
        if enabled { snap.directLinkFolders.insert(id) } else { snap.directLinkFolders.remove(id) }
        save()
        return n.name
    }

    func directLinkPath(_ id: Int64) throws(APIFailure) -> String {
        guard let n = snap.nodes[id], !n.isDir, !n.trashed else { throw .fileNotFound }
        let chain = path(of: id)
        guard let top = chain.first, snap.directLinkFolders.contains(top.id) else {
            throw .bad("该文件不在直链空间内，请先开启直链空间")
        }
        return "/\(config.uid)/" + chain.map(\.name).joined(separator: "/")
    }

    /// The blob behind a direct-link path (`/<uid>/<folder>/…/<file>`), if it is inside an enabled space.
    func directLinkTarget(_ path: String) -> (path: String, size: Int64, name: String)? {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count >= 3, parts[0] == String(config.uid) else { return nil }
        var cur: Int64 = 0
        var found: Node?
        for (i, name) in parts.dropFirst().enumerated() {
            guard let n = sibling(named: name, in: cur) else { return nil }
            if i == 0 && !snap.directLinkFolders.contains(n.id) { return nil }
            cur = n.id
            found = n
        }
        guard let f = found, !f.isDir else { return nil }
        return (blobPath(f.md5, f.size), f.size, f.name)
    }

    func userInfo() -> sending [String: Any] {
        let used = snap.nodes.values.filter { !$0.isDir }.reduce(Int64(0)) { $0 + $1.size }
        var info: [String: Any] = [
            "uid": config.uid, "nickname": "emulator", "headImage": "", "passport": "15100000000", "mail": "",
            "spaceUsed": used, "spacePermanent": config.spacePermanent, "spaceTemp": 0, "spaceTempExpr": 0,
            "vip": config.vip, "directTraffic": Int64(1) << 40, "isHideUID": false, "httpsCount": 9_999_999,
            "developerInfo": ["startTime": "2025-07-16 17:27:53", "endTime": "2027-07-16 17:27:52"],
        ]
        info["vipInfo"] = config.vip ? [["vipLevel": 1, "vipLabel": "VIP", "startTime": "2025-07-06 11:12:53", "endTime": "2027-05-14 14:13:05"]] : NSNull()
        return info
    }
}
