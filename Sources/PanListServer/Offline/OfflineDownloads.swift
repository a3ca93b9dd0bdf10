import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import PanListCore
import PanListStore
import _NIOFileSystem

/// What happens to a downloaded file once it was stored in its target (Alist's values).
enum DeletePolicy: String, Codable, Sendable, CaseIterable {
    case deleteOnUploadSucceed = "delete_on_upload_succeed"
    case deleteOnUploadFailed = "delete_on_upload_failed"
    case deleteNever = "delete_never"
    case deleteAlways = "delete_always"
    /// SimpleHttp only: no download folder; the transfer streams the URL into the target.
    case uploadDownloadStream = "upload_download_stream"

    /// Whether the downloaded file goes once its transfer ended this way.
    func deletes(succeeded: Bool) -> Bool {
        switch self {
        case .deleteOnUploadSucceed: succeeded
        case .deleteOnUploadFailed: !succeeded
        case .deleteNever: false
        case .deleteAlways, .uploadDownloadStream: true
        }
    }
}

/// The offline download tools, by the names Alist's clients send.
enum OfflineTool: String, Codable, Sendable, CaseIterable {
    case simpleHttp = "SimpleHttp"
    case aria2 = "aria2"
    case cloud123 = "123 Open"

    /// Schemes the tool takes.
    var schemes: Set<String> {
        switch self {
        case .simpleHttp, .cloud123: ["http", "https"]
        case .aria2: ["http", "https", "ftp", "magnet"]
        }
    }
}

/// An `offline_download` task: fetch `url` with `tool` into the folder `dst`.
struct OfflineParams: Codable, Sendable {
    var url: String
    var dst: String
    var tool: OfflineTool
    var policy: DeletePolicy
}

/// An `offline_download_transfer` task: store one downloaded file (or, streaming, the URL itself) in `dst`.
struct OfflineTransferParams: Codable, Sendable {
    /// The download task whose folder holds the file.
    var download: String
    /// The file, relative to that folder ("" when streaming `url`).
    var file: String
    var url: String?
    var dst: String
    var name: String
    /// -1: unknown.
    var size: Int64
    var md5: String?
    var sha1: String?
    var policy: DeletePolicy
}

/// How far a download got, kept in its task's item (so that a run taken up again resumes, and queues the
/// transfers once).
struct OfflineCheckpoint: Codable, Sendable {
    /// SimpleHttp: the file's name in the folder, and the validators of the response it came from.
    var name: String?
    var etag: String?
    var lastModified: String?
    var total: Int64?
    /// aria2's GID, or the cloud's id of its download.
    var remote: String?
    /// aria2: the other downloads a Metalink brought, followed after `remote`.
    var more: [String]?
    /// The transfers were queued: the download is done.
    var queued: Bool?
}

extension ServerState {
    /// Where downloads wait for their transfer: `temp_dir/offline/<download task id>/` (kept by the start-up
    /// sweep while the download or one of its transfers is listed).
    var offlineRoot: String { config.tempDir + "/" + Bootstrap.offlineFolderName }
    func offlineFolder(_ task: String) -> String { offlineRoot + "/" + task }

    var outboundGuard: OutboundGuard {
        (try? OutboundGuard(setting: setting(OutboundGuard.settingKey) ?? "")) ?? OutboundGuard()
    }

    var aria2: Aria2Client? {
        let uri = (setting("aria2_uri") ?? "").trimmingCharacters(in: .whitespaces)
        return uri.isEmpty ? nil : Aria2Client(uri: uri, secret: setting("aria2_secret") ?? "")
    }

    /// How long an aria2 or cloud download may go without progress (`offline_stall_minutes`; nil: for ever).
    var offlineStallLimit: Duration? {
        let minutes = Double(setting("offline_stall_minutes") ?? "") ?? 30
        return minutes > 0 ? .milliseconds(Int64(minutes * 60_000)) : nil
    }

    /// The guarded proxy aria2's connections go through, checking with the outbound guard of the moment.
    func aria2Proxy() async throws -> GuardedProxy {
        try await aria2ProxyHolder.get(currentGuard: { [weak self] in self?.outboundGuard ?? OutboundGuard() })
    }

    /// Bytes a SimpleHttp download may have (`offline_max_size_gb`; nil: no limit).
    var offlineMaxSize: Int64? {
        let gb = Double(setting("offline_max_size_gb") ?? "") ?? 0
        return gb > 0 ? Int64(gb * 1_073_741_824) : nil
    }

    // MARK: queueing

    /// The tools usable now (for `path`, when given: the cloud's own tool only where its storage is).
    func offlineTools(for path: String?) -> [String] {
        var out = [OfflineTool.simpleHttp.rawValue]
        if aria2 != nil { out.append(OfflineTool.aria2.rawValue) }
        let cloud: Bool
        if let path {
            cloud = fs.resolve(path).map { $0.0.driver is any CloudDownloadCapable } ?? false
        } else {
            cloud = fs.storages.contains { $0.driver is any CloudDownloadCapable }
        }
        if cloud { out.append(OfflineTool.cloud123.rawValue) }
        return out.sorted()
    }

    /// Checks everything a request to download `urls` into `dst` needs before anything is queued (bad input
    /// changes nothing), then queues one `offline_download` task per URL.
    func queueOfflineDownloads(_ user: User, urls rawURLs: [String], dst: String, tool rawTool: String, policy rawPolicy: String,
                               password: String?, ip: String) async throws -> [TaskRecord] {
        guard user.isAdmin || user.permission.contains(.offlineDownload) else {
            throw FSError.permissionDenied("\(user.username) may not add offline downloads")
        }
        try check(user, .write, dst, password: password, ip: ip)
        guard let tool = OfflineTool(rawValue: rawTool) else {
            throw FSError.badRequest("tool \(rawTool.debugDescription) is not one of \(OfflineTool.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let policyText = rawPolicy.isEmpty ? DeletePolicy.deleteOnUploadSucceed.rawValue : rawPolicy
        guard let policy = DeletePolicy(rawValue: policyText) else {
            throw FSError.badRequest("delete_policy \(rawPolicy.debugDescription) is not one of \(DeletePolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if policy == .uploadDownloadStream && tool != .simpleHttp {
            throw FSError.badRequest("upload_download_stream works with SimpleHttp only")
        }
        if let (obj, _) = try? await fs.get(dst), !obj.isDir {
            throw FSError.conflict("\(Access.userPath(dst, for: user)) is a file, not a folder")
        }
        switch tool {
        case .simpleHttp: break
        case .aria2:
            guard let aria2 else { throw FSError.notSupported("aria2 is not set up; an admin sets its address in the offline download settings") }
            do { _ = try await aria2.version() } catch {
                logger.warning("aria2 did not answer: \(ErrorText.describe(error))")
                throw FSError.unavailable("aria2 does not answer" + (user.isAdmin ? " at \(aria2.uri): \(FSError.from(error).message)" : "; ask the admin to check it"))
            }
        case .cloud123:
            guard let (m, _) = fs.resolve(dst), m.driver is any CloudDownloadCapable else {
                throw FSError.badRequest("the 123 Open tool downloads only into a 123 Open storage; \(Access.userPath(dst, for: user)) is not in one (use SimpleHttp or aria2)")
            }
        }
        let urls = rawURLs.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        guard !urls.isEmpty else { throw FSError.badRequest("give at least one URL") }
        guard urls.count <= 100 else { throw FSError.badRequest("at most 100 URLs at once (\(urls.count) given)") }
        var parsed: [URL] = []
        for text in urls {
            let url = try GuardedHTTP.parse(text)
            let scheme = url.scheme?.lowercased() ?? ""
            guard tool.schemes.contains(scheme) else {
                throw FSError.badRequest("\(tool.rawValue) does not take \(scheme): links (\(text)); it takes \(tool.schemes.sorted().joined(separator: ", "))"
                                         + (scheme == "magnet" ? ". Use aria2 for magnet links" : ""))
            }
            // PanList (SimpleHttp) or aria2 beside it fetches: the host must not be an internal address. The cloud
            // fetches from its own network.
            if tool != .cloud123 && scheme != "magnet" { _ = try await GuardedHTTP.check(url, guard: outboundGuard, schemes: tool.schemes) }
            parsed.append(url)
        }
        var out: [TaskRecord] = []
        for url in parsed {
            let params = OfflineParams(url: url.absoluteString, dst: dst, tool: tool, policy: policy)
            let record = TaskRecord(id: RandomString.make(16), kind: "offline_download",
                                    name: "download \(url.absoluteString) to (\(Access.userPath(dst, for: user)))", creator: user,
                                    params: String(decoding: try JSONEncoder().encode(params), as: UTF8.self))
            out.append(try await tasks.submit(record))
        }
        return out
    }

    /// The creator may still add offline downloads into `dst`.
    func recheckOffline(_ user: User, _ dst: String) throws(FSError) {
        guard user.isAdmin || user.permission.contains(.offlineDownload) else {
            throw .permissionDenied("\(user.username) may no longer add offline downloads")
        }
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard VirtualPath.isWithin(dst, base) else {
            throw .permissionDenied("\(user.username) may no longer reach \(dst): it is outside their base path now")
        }
        try Access.checkVisible(user, dst, rules: rules)
        guard Access.can(user, .write) || rules.grantsWrite(dst) else {
            throw .permissionDenied("\(user.username) may no longer write to \(Access.userPath(dst, for: user))")
        }
    }

    // MARK: the kinds

    func offlineDownloadKind() -> TaskKind {
        TaskKind(name: "offline_download", run: { [self] run in
            try await inCreatorsTerms(run) { try await runOfflineDownload(run) }
        }, discard: { [self] record in
            // A download that did not finish leaves nothing behind (a finished one's files belong to its transfers).
            guard record.taskState != .succeeded else { return }
            if let p = try? JSONDecoder().decode(OfflineParams.self, from: Data(record.params.utf8)), p.tool == .aria2,
               let cp = try? await offlineCheckpoint(record.id), let gid = cp.remote, let aria2 {
                await Task { for g in [gid] + (cp.more ?? []) { await aria2.forget(g, stop: true) } }.value
            }
            try? FileManager.default.removeItem(atPath: offlineFolder(record.id))
            dropOfflineRootIfEmpty()
        })
    }

    func offlineTransferKind() -> TaskKind {
        TaskKind(name: "offline_download_transfer", run: { [self] run in
            try await inCreatorsTerms(run) { try await runOfflineTransfer(run) }
        }, discard: { [self] record in
            guard let p = try? JSONDecoder().decode(OfflineTransferParams.self, from: Data(record.params.utf8)) else { return }
            if p.policy.deletes(succeeded: record.taskState == .succeeded) { removeDownloaded(p) }
        }, deleted: { [self] record in
            // A deleted transfer cannot be retried: its downloaded file goes whatever the policy (delete_never keeps
            // it while the task is listed).
            guard let p = try? JSONDecoder().decode(OfflineTransferParams.self, from: Data(record.params.utf8)) else { return }
            removeDownloaded(p)
        })
    }

    private func offlineCheckpoint(_ task: String) async throws -> OfflineCheckpoint {
        guard let item = try await store.taskItems(task: task).first, !item.checkpoint.isEmpty else { return OfflineCheckpoint() }
        return (try? JSONDecoder().decode(OfflineCheckpoint.self, from: Data(item.checkpoint.utf8))) ?? OfflineCheckpoint()
    }

    private func saveOfflineCheckpoint(_ task: String, _ cp: OfflineCheckpoint) async throws {
        if try await store.taskItems(task: task).isEmpty {
            try await store.addTaskItems([TaskItem(task: task, seq: 0, path: "", isDir: false, size: 0)])
        }
        try await store.setTaskItemCheckpoint(task: task, seq: 0, checkpoint: String(decoding: try JSONEncoder().encode(cp), as: UTF8.self))
    }

    private func runOfflineDownload(_ run: TaskRun) async throws {
        let p = try JSONDecoder().decode(OfflineParams.self, from: run.params)
        let user = try await taskUser(run.record)
        try recheckOffline(user, p.dst)
        guard let url = URL(string: p.url) else { throw FSError.badRequest("\(p.url) is not a URL") }
        var cp = try await offlineCheckpoint(run.record.id)
        if cp.queued == true { return }
        switch p.tool {
        case .simpleHttp:
            if p.policy == .uploadDownloadStream {
                try await queueOfflineTransfers(run, p, user, files: [(file: "", name: "", size: -1, md5: nil, sha1: nil)], cp: &cp)
                return
            }
            let got = try await simpleHttpDownload(url, run: run, cp: &cp)
            try await queueOfflineTransfers(run, p, user, files: [(file: got.name, name: got.name, size: got.size, md5: got.md5, sha1: got.sha1)], cp: &cp)
        case .aria2:
            let files = try await aria2Download(url, run: run, cp: &cp)
            try await queueOfflineTransfers(run, p, user, files: files.map { (file: $0.0, name: VirtualPath.base("/" + $0.0), size: $0.1, md5: nil, sha1: nil) }, cp: &cp)
        case .cloud123:
            try await cloudDownload(url, into: p.dst, run: run, cp: &cp)
        }
    }

    /// Queues one transfer per downloaded file (into `dst`, keeping the folders a torrent brought), pinned to
    /// this instance whose disk holds the files, and notes it so that a run taken up again does not queue twice.
    private func queueOfflineTransfers(_ run: TaskRun, _ p: OfflineParams, _ user: User,
                                       files: [(file: String, name: String, size: Int64, md5: String?, sha1: String?)],
                                       cp: inout OfflineCheckpoint) async throws {
        // The folders and names a torrent (or the server) brings must not reach past what the request was checked
        // for: a folder password below the target (that password was never given), a hidden name.
        for f in files {
            let sub = VirtualPath.parent("/" + f.file)
            let dst = sub == "/" ? p.dst : VirtualPath.join(p.dst, String(sub.dropFirst()))
            if dst != p.dst, !user.isAdmin, !user.permission.contains(.accessWithoutPassword),
               rules.passwordRule(for: dst)?.path != rules.passwordRule(for: p.dst)?.path {
                throw FSError.permissionDenied("the download brings the folder \(Access.userPath(dst, for: user)), which a folder password guards; download into it directly")
            }
            try Access.checkVisible(user, VirtualPath.join(dst, f.name.isEmpty ? "x" : f.name), rules: rules)
        }
        for (index, f) in files.enumerated() {
            let sub = VirtualPath.parent("/" + f.file)
            let dst = sub == "/" ? p.dst : VirtualPath.join(p.dst, String(sub.dropFirst()))
            let params = OfflineTransferParams(download: run.record.id, file: f.file, url: f.file.isEmpty ? p.url : nil, dst: dst,
                                               name: f.name, size: f.size, md5: f.md5, sha1: f.sha1, policy: p.policy)
            let what = f.file.isEmpty ? "upload [\(p.url)]" : "transfer [\(f.file)]"
            // The id follows from the download's and the file's place: a run taken up again after a crash between
            // queueing and noting it finds the transfer there already, instead of storing the file twice.
            var record = TaskRecord(id: run.record.id + "t" + String(index), kind: "offline_download_transfer",
                                    name: "\(what) to [\(Access.userPath(dst, for: user))]", creator: user,
                                    params: String(decoding: try JSONEncoder().encode(params), as: UTF8.self),
                                    pinned: f.file.isEmpty ? "" : config.instanceID)
            record.total_bytes = max(0, f.size)
            record.total_files = 1
            if try await store.task(id: record.id) != nil { continue }
            do { _ = try await tasks.submit(record) } catch where SQLStore.isUniqueViolation(error) {}
        }
        cp.queued = true
        try await saveOfflineCheckpoint(run.record.id, cp)
        run.update { $0.status = files.count == 1 ? "downloaded; storing it is a transfer task" : "downloaded; \(files.count) transfer tasks store the files" }
    }

    // MARK: SimpleHttp

    struct Downloaded { var name: String; var size: Int64; var md5: String; var sha1: String }

    /// Fetches `url` into the task's folder: the name from the first answer, resumed with Range/If-Range after a
    /// dropped connection (up to 5 times without progress) and when the task is taken up again on this instance;
    /// a server that ignores the range starts the file over. The size limit applies as bytes arrive.
    private func simpleHttpDownload(_ url: URL, run: TaskRun, cp: inout OfflineCheckpoint) async throws -> Downloaded {
        let folder = offlineFolder(run.record.id)
        try makeOfflineFolder(folder)
        let limit = offlineMaxSize
        var failures = 0
        var lastError: (any Error)?
        /// What one request came to.
        enum Step { case whole, again, failed(any Error), dropped(any Error, progressed: Bool) }
        while failures <= 5 {
            try Task.checkCancellation()
            var have: Int64 = 0
            if let name = cp.name, let st = fileStat(folder + "/" + name) { have = st.size }
            if cp.name != nil, let total = cp.total, total >= 0, have == total, have > 0 {
                return try await finishDownload(folder, cp, run: run)
            }
            var headers: [(String, String)] = [("Accept-Encoding", "identity")]
            if have > 0 {
                headers.append(("Range", "bytes=\(have)-"))
                if let etag = cp.etag, !etag.hasPrefix("W/") { headers.append(("If-Range", etag)) }
                else if let lm = cp.lastModified { headers.append(("If-Range", lm)) }
            }
            let step: Step
            do {
                var known = cp
                step = try await GuardedHTTP.with(url, headers: headers, guard: outboundGuard) { opened -> Step in
                    let res = opened.response
                    let code = Int(res.status.code)
                    var append = false
                    switch code {
                    case 206 where have > 0:
                        guard (res.headers.first(name: "Content-Range") ?? "").hasPrefix("bytes \(have)-") else {
                            // Not the part asked for: start over without a range.
                            if let old = known.name { try? FileManager.default.removeItem(atPath: folder + "/" + old) }
                            known.name = nil
                            return .failed(FSError.upstream(code: code, message: "the server sent another part than the one asked for"))
                        }
                        append = true
                    case 416 where have > 0:
                        // Asked past the end: the file is whole when its length is what we have.
                        if let total = Int64(res.headers.first(name: "Content-Range")?.split(separator: "/").last ?? ""), total == have {
                            known.total = total
                            return .whole
                        }
                        if let old = known.name { try? FileManager.default.removeItem(atPath: folder + "/" + old) }
                        known.name = nil
                        return .again
                    case 200...299: break
                    default:
                        let words = "\(opened.url.host ?? "the server") answered \(code) \(res.status.reasonPhrase)"
                        if code >= 500 || code == 429 || code == 408 { return .failed(FSError.upstream(code: code, message: words)) }
                        throw code == 404 || code == 410 ? FSError.notFound(words) : FSError.badRequest(words)
                    }
                    let length = res.headers.first(name: "Content-Length").flatMap { Int64($0) }
                    var from = have
                    if !append {
                        // A new file (the first answer, or the server sent it all again): its name and validators.
                        if let old = known.name { try? FileManager.default.removeItem(atPath: folder + "/" + old) }
                        let fallback = "download-" + (opened.url.host ?? "file").replacingOccurrences(of: ".", with: "_") + "-" + RandomString.make(6)
                        let name = GuardedHTTP.fileName(disposition: res.headers.first(name: "Content-Disposition"), url: opened.url, fallback: fallback)
                        known = OfflineCheckpoint(name: name, etag: res.headers.first(name: "ETag"), lastModified: res.headers.first(name: "Last-Modified"),
                                                  total: length, remote: nil, queued: nil)
                        from = 0
                        try await saveOfflineCheckpoint(run.record.id, known)
                    }
                    let total = append ? known.total : length
                    if let limit, let total, total > limit {
                        throw FSError.tooLarge("the file is \(total) bytes, more than offline_max_size_gb allows (\(limit) bytes)")
                    }
                    guard let name = known.name else { return .again }
                    let path = folder + "/" + name
                    // The name is one safe component: the path stays inside the task's folder.
                    guard VirtualPath.base("/" + name) == name, (path as NSString).standardizingPath.hasPrefix(folder + "/") else {
                        throw FSError.badRequest("the server named the file \(name.debugDescription), which is not a file name")
                    }
                    run.update { $0.totalBytes = total ?? 0; $0.doneBytes = from; $0.totalFiles = 1; $0.current = name; $0.status = "downloading \(name)" }
                    let counter = WriteCounter()
                    do {
                        try await writeBody(res.body, to: path, at: from, limit: limit, run: run, counter: counter)
                    } catch let e as FSError {
                        throw e
                    } catch {
                        if error is CancellationError || Task.isCancelled || run.stop != nil { throw CancellationError() }
                        return .dropped(error, progressed: counter.n > 0)
                    }
                    let now = from + counter.n
                    if let total, now < total {
                        return .dropped(FSError.upstream(code: 0, message: "the connection ended after \(now) of \(total) bytes"), progressed: counter.n > 0)
                    }
                    known.total = now
                    return .whole
                }
                cp = known
            } catch let e as FSError {
                guard case .upstream = e else { throw e }
                step = .failed(e)
            }
            switch step {
            case .whole: return try await finishDownload(folder, cp, run: run)
            case .again: continue
            case .failed(let e):
                lastError = e
                failures += 1
                try await pause(failures)
            case .dropped(let e, let progressed):
                // Resumed from what arrived.
                lastError = e
                failures = progressed ? 1 : failures + 1
                try await pause(failures)
            }
        }
        throw FSError.upstream(code: 0, message: "the download kept failing: " + (lastError.map { ErrorText.describe($0) } ?? "no answer"))
    }

    private func pause(_ failures: Int) async throws {
        try await Task.sleep(for: .milliseconds(min(8000, 250 << min(failures, 5))))
    }

    /// Appends `body` to `path` from `offset` (the file cut there first), counting progress; the bytes written.
    /// A body that breaks off throws after writing what arrived (`written` holds the count through the file).
    private func writeBody(_ body: HTTPClientResponse.Body, to path: String, at offset: Int64, limit: Int64?, run: TaskRun,
                           counter: WriteCounter) async throws {
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(
            forReadingAndWritingAt: FilePath(path), options: .modifyFile(createIfNecessary: true)
        ) { h in
            try await h.resize(to: .bytes(offset))
            var n: Int64 = 0
            var pending = ByteBufferAllocator().buffer(capacity: 1 << 20)
            do {
                for try await var buffer in body {
                    if let limit, offset + n + Int64(pending.readableBytes + buffer.readableBytes) > limit {
                        throw FSError.tooLarge("the file is larger than offline_max_size_gb allows (\(limit) bytes)")
                    }
                    try run.addBytes(buffer.readableBytes)
                    pending.writeBuffer(&buffer)
                    if pending.readableBytes >= 1 << 20 {
                        try await h.write(contentsOf: pending.readableBytesView, toAbsoluteOffset: offset + n)
                        n += Int64(pending.readableBytes)
                        counter.n = n
                        pending.clear()
                    }
                }
            } catch {
                if pending.readableBytes > 0, !(error is FSError),
                   (try? await h.write(contentsOf: pending.readableBytesView, toAbsoluteOffset: offset + n)) != nil {
                    counter.n = n + Int64(pending.readableBytes)
                }
                throw error
            }
            if pending.readableBytes > 0 {
                try await h.write(contentsOf: pending.readableBytesView, toAbsoluteOffset: offset + n)
                n += Int64(pending.readableBytes)
            }
            counter.n = n
        }
    }

    /// Bytes a body write got onto the disk, also when it broke off.
    final class WriteCounter: @unchecked Sendable { var n: Int64 = 0 }

    /// The finished file's size and hashes (read once more: a resumed file's start came from an earlier answer).
    private func finishDownload(_ folder: String, _ cp: OfflineCheckpoint, run: TaskRun) async throws -> Downloaded {
        guard let name = cp.name else { throw FSError.internalError("the download has no file name") }
        let path = folder + "/" + name
        run.update { $0.status = "checking \(name)" }
        var md5 = Insecure.MD5()
        var sha1 = Insecure.SHA1()
        var size: Int64 = 0
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { h in
            for try await chunk in h.readChunks(chunkLength: .mebibytes(1)) {
                try Task.checkCancellation()
                chunk.withUnsafeReadableBytes { md5.update(bufferPointer: $0); sha1.update(bufferPointer: $0) }
                size += Int64(chunk.readableBytes)
            }
        }
        run.update { $0.totalBytes = size; $0.doneBytes = size; $0.doneFiles = 1 }
        return Downloaded(name: name, size: size, md5: md5.finalize().hexString, sha1: sha1.finalize().hexString)
    }

    // MARK: aria2

    /// Hands the link to aria2 (into the task's folder) and follows it to the end (a magnet's metadata download
    /// is followed by the real one); the files it wrote, relative to the folder, with their sizes.
    private func aria2Download(_ url: URL, run: TaskRun, cp: inout OfflineCheckpoint) async throws -> [(String, Int64)] {
        guard let aria2 else { throw FSError.notSupported("aria2 is no longer set up") }
        let folder = offlineFolder(run.record.id)
        try makeOfflineFolder(folder)
        var gid = cp.remote
        let stallLimit = offlineStallLimit
        var progress: (gid: String, bytes: Int64, at: ContinuousClock.Instant)?
        // Taken up after PanList restarted: aria2 kept the downloads, pointed at the proxy of before (another port
        // and secret). Point them at this one.
        if let gid, aria2.isLocal {
            let proxy = try await aria2Proxy()
            for g in [gid] + (cp.more ?? []) { _ = try? await aria2.call("aria2.changeOption", [g, proxy.aria2Options(task: run.record.id)]) }
        }
        do {
            while true {
                if gid == nil {
                    var link = url
                    if let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" {
                        // aria2 follows redirects itself: PanList follows them first, each hop checked, and hands it the end.
                        link = try await GuardedHTTP.with(url, method: .HEAD, guard: outboundGuard) { $0.url }
                    } else if url.scheme?.lowercased() == "ftp" {
                        _ = try await GuardedHTTP.check(url, guard: outboundGuard, schemes: ["ftp"])
                    }
                    // Every connection aria2 makes for it goes through the guarded proxy (when aria2 runs here).
                    var options: [String: String] = [:]
                    if aria2.isLocal {
                        let proxy = try await aria2Proxy()
                        proxy.forget(run.record.id)
                        options = proxy.aria2Options(task: run.record.id)
                    }
                    let new = try await aria2.addUri(link.absoluteString, dir: folder, options: options)
                    gid = new
                    cp.remote = new
                    try await saveOfflineCheckpoint(run.record.id, cp)
                    run.update { $0.status = "queued in aria2" }
                }
                guard let current = gid else { continue }
                let s: Aria2Client.Status
                do {
                    s = try await aria2.tellStatus(current)
                } catch let e as FSError {
                    if case .upstream(_, let m) = e, m.contains("is not found") {
                        // aria2 was restarted and forgot it: add it again (aria2 continues a partial file).
                        gid = nil
                        continue
                    }
                    throw e
                }
                run.update {
                    $0.totalBytes = s.totalLength; $0.doneBytes = s.completedLength; $0.totalFiles = 1
                    $0.status = "aria2: \(s.status)"
                }
                // No progress for too long (a magnet without peers, a link that stopped answering): give up.
                if progress?.gid != current || progress?.bytes != s.completedLength {
                    progress = (current, s.completedLength, .now)
                } else if let stallLimit, let since = progress?.at, ContinuousClock.now - since > stallLimit, s.status != "complete" {
                    await aria2.forget(current, stop: true)
                    for g in cp.more ?? [] { await aria2.forget(g, stop: true) }
                    cp.remote = nil; cp.more = nil
                    try await saveOfflineCheckpoint(run.record.id, cp)
                    throw FSError.upstream(code: 1, message: "aria2 made no progress for \(Self.words(stallLimit)) (no sources?); see offline_stall_minutes")
                }
                switch s.status {
                case "complete":
                    if !s.followedBy.isEmpty {
                        // What a torrent or Metalink brought waits paused: every link it names is checked like the
                        // first one (a Metalink's mirrors, a torrent's web seeds), then it runs.
                        do {
                            for g in s.followedBy {
                                for u in try await aria2.uris(g) {
                                    guard let link = URL(string: u) else { throw FSError.badRequest("the download names a link that is not a URL") }
                                    _ = try await GuardedHTTP.check(link, guard: outboundGuard, schemes: ["http", "https", "ftp"])
                                }
                            }
                            for g in s.followedBy { try await aria2.unpause(g) }
                        } catch {
                            for g in s.followedBy { await aria2.forget(g, stop: true) }
                            await aria2.forget(current, stop: false)
                            throw error
                        }
                        await aria2.forget(current, stop: false)
                        cp.more = (cp.more ?? []) + s.followedBy.dropFirst()
                        gid = s.followedBy.first
                        cp.remote = gid
                        try await saveOfflineCheckpoint(run.record.id, cp)
                        continue
                    }
                    if let next = cp.more?.first {
                        // The next download a Metalink brought (each one's files must be whole before the transfers).
                        await aria2.forget(current, stop: false)
                        cp.more = Array((cp.more ?? []).dropFirst())
                        gid = next
                        cp.remote = next
                        try await saveOfflineCheckpoint(run.record.id, cp)
                        continue
                    }
                case "error":
                    await aria2.forget(current, stop: false)
                    cp.remote = nil
                    try await saveOfflineCheckpoint(run.record.id, cp)
                    // The guarded proxy refused a connection (a redirect or a name to an internal address): say that.
                    if let why = await aria2ProxyHolder.refusal(run.record.id) { throw FSError.badRequest(why) }
                    throw FSError.upstream(code: Int(s.errorCode) ?? 1, message: "aria2: " + (s.errorMessage.isEmpty ? "the download failed" : s.errorMessage))
                case "removed":
                    throw FSError.conflict("the download was removed in aria2")
                case "active" where s.seeder:
                    await aria2.forget(current, stop: true)
                default:
                    try await Task.sleep(for: .seconds(1))
                    continue
                }
                if s.status != "active" { await aria2.forget(current, stop: false) }
                break
            }
        } catch {
            if let gid, error is CancellationError || run.stop != nil {
                // Cancelled, paused or lost: a cancel stops aria2 (the discard does too); otherwise it goes on.
                if run.stop == .cancel {
                    let others = cp.more ?? []
                    await Task { for g in [gid] + others { await aria2.forget(g, stop: true) } }.value
                }
            }
            throw error
        }
        // Every file aria2 left in the folder, but its control files.
        var out: [(String, Int64)] = []
        let base = URL(fileURLWithPath: folder)
        if let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey]) {
            for case let u as URL in walker {
                let values = try? u.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
                guard values?.isRegularFile == true, u.pathExtension != "aria2" else { continue }
                let rel = String(u.standardizedFileURL.path.dropFirst(base.standardizedFileURL.path.count + 1))
                out.append((rel, Int64(values?.fileSize ?? 0)))
            }
        }
        guard !out.isEmpty else { throw FSError.upstream(code: 1, message: "aria2 finished but left no file") }
        return out.sorted { $0.0 < $1.0 }
    }

    // MARK: the cloud's own

    private func cloudDownload(_ url: URL, into dst: String, run: TaskRun, cp: inout OfflineCheckpoint) async throws {
        guard let (m, _) = fs.resolve(dst), let driver = m.driver as? any CloudDownloadCapable else {
            throw FSError.badRequest("\(dst) is no longer in a storage whose cloud downloads by itself")
        }
        run.update { $0.totalBytes = 0; $0.totalFiles = 1; $0.status = "asking the cloud to fetch it" }
        if cp.remote == nil {
            let dir = try await fs.makeDir(dst)
            let id = try await driver.startCloudDownload(url: url.absoluteString, name: nil, into: dir)
            cp.remote = id
            try await saveOfflineCheckpoint(run.record.id, cp)
        }
        guard let id = cp.remote else { return }
        let stallLimit = offlineStallLimit
        var progress: (percent: Double, at: ContinuousClock.Instant)?
        while true {
            let s = try await driver.cloudDownloadStatus(id: id)
            switch s.state {
            case .done:
                await fs.changedOutside(dst)
                cp.queued = true
                try await saveOfflineCheckpoint(run.record.id, cp)
                run.update { $0.doneFiles = 1; $0.status = "the cloud fetched it" }
                return
            case .failed(let why):
                // A retry asks the cloud again.
                cp.remote = nil
                try await saveOfflineCheckpoint(run.record.id, cp)
                throw FSError.upstream(code: 1, message: why)
            case .running, .retrying:
                let pct = max(0, min(100, s.percent))
                if progress?.percent != pct { progress = (pct, .now) } else if let stallLimit, let since = progress?.at,
                    ContinuousClock.now - since > stallLimit {
                    cp.remote = nil
                    try await saveOfflineCheckpoint(run.record.id, cp)
                    throw FSError.upstream(code: 1, message: "the cloud made no progress for \(Self.words(stallLimit)); see offline_stall_minutes")
                }
                run.update { $0.status = s.state == .retrying ? "the cloud is trying again (\(Int(pct))%)" : "the cloud is fetching it (\(Int(pct))%)" }
                try await Task.sleep(for: .seconds(2))
            }
        }
    }

    // MARK: transfer

    private func runOfflineTransfer(_ run: TaskRun) async throws {
        let p = try JSONDecoder().decode(OfflineTransferParams.self, from: run.params)
        let user = try await taskUser(run.record)
        try recheckOffline(user, p.dst)
        let id = run.record.id
        let item: TaskItem
        if let stored = try await store.taskItems(task: id).first { item = stored } else {
            item = TaskItem(task: id, seq: 0, path: p.file, isDir: false, size: max(0, p.size))
            try await store.addTaskItems([item])
        }
        if let url = p.url, p.file.isEmpty {
            // Streamed: the URL goes straight into the target.
            guard let u = URL(string: url) else { throw FSError.badRequest("\(url) is not a URL") }
            let wanted = p
            try await GuardedHTTP.with(u, headers: [("Accept-Encoding", "identity")], guard: outboundGuard) { opened in
                let res = opened.response
                guard (200...299).contains(Int(res.status.code)) else {
                    throw FSError.upstream(code: Int(res.status.code), message: "\(opened.url.host ?? "the server") answered \(res.status.code) \(res.status.reasonPhrase)")
                }
                let length = res.headers.first(name: "Content-Length").flatMap { Int64($0) }
                if let limit = offlineMaxSize, let length, length > limit {
                    throw FSError.tooLarge("the file is \(length) bytes, more than offline_max_size_gb allows (\(limit) bytes)")
                }
                let fallback = "download-" + (opened.url.host ?? "file").replacingOccurrences(of: ".", with: "_") + "-" + RandomString.make(6)
                let name = try await freeName(GuardedHTTP.fileName(disposition: res.headers.first(name: "Content-Disposition"), url: opened.url, fallback: fallback),
                                              in: wanted.dst)
                try Access.checkVisible(user, VirtualPath.join(wanted.dst, name), rules: rules)
                run.update { $0.totalBytes = length ?? 0; $0.doneBytes = 0; $0.current = name; $0.status = "storing \(name)" }
                // The size limit holds as the bytes come too (a chunked answer says no length).
                let limit = offlineMaxSize
                let seen = NIOLockedValueBox<Int64>(0)
                let body = ByteStream(CountingBytes(base: ByteStream(res.body), counted: { n in
                    let total = seen.withLockedValue { $0 += Int64(n); return $0 }
                    if let limit, total > limit {
                        throw FSError.tooLarge("the file is larger than offline_max_size_gb allows (\(limit) bytes)")
                    }
                    try run.addBytes(n)
                }))
                try await fs.put(UploadStream(name: name, size: length, body: body), into: wanted.dst, overwrite: false)
            }
        } else {
            let path = offlineFolder(p.download) + "/" + p.file
            guard let st = fileStat(path), !st.isDir else {
                throw FSError.notFound("the downloaded file \(p.name) is gone (its download was deleted, or PanList's temp folder emptied); download it again")
            }
            let name = try await freeName(p.name, in: p.dst)
            run.update { $0.totalBytes = st.size; $0.doneBytes = 0; $0.totalFiles = 1; $0.current = name; $0.status = "storing \(name)" }
            let checkpoint = checkpoint(of: item, in: run)
            try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
                let body = ByteStream(CountingBytes(base: ByteStream(handle.readChunks(chunkLength: .mebibytes(1))), counted: { try run.addBytes($0) }))
                var stream = UploadStream(name: name, size: st.size, md5: p.md5, sha1: p.sha1, body: body)
                if p.md5 != nil { stream.staged = path }
                stream.checkpoint = checkpoint
                try await fs.put(stream, into: p.dst, overwrite: false)
            }
        }
        try? await store.setTaskItem(task: id, seq: 0, state: .done, note: "")
        run.update { $0.doneFiles = 1; $0.doneBytes = max($0.doneBytes, $0.totalBytes); $0.current = ""; $0.status = "done" }
        if p.policy.deletes(succeeded: true) { removeDownloaded(p) }
    }

    /// `name`, or `name (1).ext`, `name (2).ext`… when a file or folder of that name is in `dir` already.
    private func freeName(_ name: String, in dir: String) async throws -> String {
        if (try? await fs.get(VirtualPath.join(dir, name))) == nil { return name }
        let ext = (name as NSString).pathExtension
        let stem = ext.isEmpty ? name : String(name.dropLast(ext.count + 1))
        for i in 1...999 {
            let candidate = ext.isEmpty ? "\(stem) (\(i))" : "\(stem) (\(i)).\(ext)"
            if (try? await fs.get(VirtualPath.join(dir, candidate))) == nil { return candidate }
        }
        throw FSError.alreadyExists("\(name) and 999 numbered names like it already exist in \(dir)")
    }

    /// Deletes a transfer's downloaded file, and its download's folder once nothing is left in it.
    private func removeDownloaded(_ p: OfflineTransferParams) {
        guard !p.file.isEmpty else { return }
        let folder = offlineFolder(p.download)
        try? FileManager.default.removeItem(atPath: folder + "/" + p.file)
        // Empty folders a torrent brought, then the download's own.
        var dir = VirtualPath.parent("/" + p.file)
        while dir != "/" {
            let full = folder + dir
            if (try? FileManager.default.contentsOfDirectory(atPath: full))?.isEmpty == true { try? FileManager.default.removeItem(atPath: full) }
            dir = VirtualPath.parent(dir)
        }
        if (try? FileManager.default.contentsOfDirectory(atPath: folder))?.isEmpty == true { try? FileManager.default.removeItem(atPath: folder) }
        dropOfflineRootIfEmpty()
    }

    /// "30 minutes", "1 minute", "45 seconds".
    static func words(_ d: Duration) -> String {
        let seconds = Int(d.components.seconds)
        if seconds % 60 == 0 { return seconds == 60 ? "1 minute" : "\(seconds / 60) minutes" }
        return "\(seconds) seconds"
    }

    /// `temp_dir/offline` goes with its last download (rmdir: only when empty, so a download starting at that
    /// moment keeps it or makes it again).
    func dropOfflineRootIfEmpty() {
        _ = rmdir(offlineRoot)
    }

    /// Makes a download's folder; once more if the root went in between (`dropOfflineRootIfEmpty` elsewhere).
    func makeOfflineFolder(_ folder: String) throws {
        if (try? PrivateFiles.makeFolder(folder)) != nil { return }
        try PrivateFiles.makeFolder(folder)
    }

    /// A file's size and kind (nil: nothing there).
    private func fileStat(_ path: String) -> (size: Int64, isDir: Bool)? {
        guard let a = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return ((a[.size] as? NSNumber)?.int64Value ?? 0, (a[.type] as? FileAttributeType) == .typeDirectory)
    }

    /// Deletes download folders no listed task refers to any more (a task deleted on another instance, a crash).
    func sweepOfflineFolders() async {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: offlineRoot), !names.isEmpty else { return }
        guard let downloads = try? await store.tasks(kind: "offline_download", states: TaskState.allCases, creator: nil),
              let transfers = try? await store.tasks(kind: "offline_download_transfer", states: TaskState.allCases, creator: nil) else { return }
        var keep = Set(downloads.map(\.id))
        for t in transfers {
            if let p = try? JSONDecoder().decode(OfflineTransferParams.self, from: Data(t.params.utf8)) { keep.insert(p.download) }
        }
        for name in names where !keep.contains(name) { try? fm.removeItem(atPath: offlineRoot + "/" + name) }
    }
}
