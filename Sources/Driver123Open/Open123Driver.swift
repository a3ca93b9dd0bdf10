import Crypto
import Foundation
import NIOCore
import NIOConcurrencyHelpers
import PanListCore

/// The `123 Open` storage's settings (`addition`), with the JSON names of its form items.
struct Open123Addition: Decodable {
    var clientID = ""
    var clientSecret = ""
    var rootFolderID = "0"
    var uploadThread = 3
    var directLink = false
    var directLinkPrivateKey = ""
    var directLinkValidDuration = 30
    var baseURL = "https://open-api.123pan.com"
    /// client_credentials, access_token or refresh_token (empty: client_credentials).
    var authMode = ""
    var accessToken = ""
    var accessTokenExpiry = ""
    var refreshToken = ""
    var rateLimits = ""

    enum CodingKeys: String, CodingKey {
        case clientID = "ClientID", clientSecret = "ClientSecret", rootFolderID = "RootFolderID", uploadThread = "UploadThread"
        case directLink = "DirectLink", directLinkPrivateKey = "DirectLinkPrivateKey"
        case directLinkValidDuration = "DirectLinkValidDuration", baseURL = "base_url"
        case authMode = "auth_mode", accessToken = "AccessToken", accessTokenExpiry = "AccessTokenExpiry"
        case refreshToken = "RefreshToken", rateLimits = "rate_limits"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func str(_ k: CodingKeys) -> String? {
            if let s = try? c.decode(String.self, forKey: k) { return s }
            if let i = try? c.decode(Int64.self, forKey: k) { return String(i) }
            return nil
        }
        func int(_ k: CodingKeys) -> Int? { (try? c.decode(Int.self, forKey: k)) ?? str(k).flatMap { Int($0) } }
        clientID = str(.clientID) ?? ""
        clientSecret = str(.clientSecret) ?? ""
        rootFolderID = str(.rootFolderID).flatMap { $0.isEmpty ? nil : $0 } ?? "0"
        uploadThread = int(.uploadThread) ?? 3
        directLink = (try? c.decode(Bool.self, forKey: .directLink)) ?? (str(.directLink) == "true")
        directLinkPrivateKey = str(.directLinkPrivateKey) ?? ""
        directLinkValidDuration = int(.directLinkValidDuration) ?? 30
        baseURL = str(.baseURL).flatMap { $0.isEmpty ? nil : $0 } ?? baseURL
        authMode = (str(.authMode) ?? "").trimmingCharacters(in: .whitespaces)
        accessToken = (str(.accessToken) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        accessTokenExpiry = str(.accessTokenExpiry) ?? ""
        refreshToken = (str(.refreshToken) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        rateLimits = str(.rateLimits) ?? ""
    }

    /// The auth mode and its credentials, with a clear error for what is missing.
    func auth() throws(FSError) -> Open123Auth {
        switch authMode.isEmpty ? "client_credentials" : authMode {
        case "client_credentials":
            for (name, value) in [("ClientID", clientID), ("ClientSecret", clientSecret)] where value.isEmpty {
                throw .badRequest("\(name) is required for auth_mode client_credentials (from the 123 developer platform, which needs its paid developer package since 2026); without one, use auth_mode refresh_token or access_token")
            }
            return .clientCredentials(clientID: clientID, clientSecret: clientSecret)
        case "refresh_token":
            for (name, value) in [("ClientID", clientID), ("ClientSecret", clientSecret), ("RefreshToken", refreshToken)] where value.isEmpty {
                throw .badRequest("\(name) is required for auth_mode refresh_token (the client_id and client_secret of your own 123 OAuth app, and a refresh token it was given)")
            }
            return .refreshToken(clientID: clientID, clientSecret: clientSecret, refreshToken: refreshToken)
        case "access_token":
            guard !accessToken.isEmpty else { throw .badRequest("AccessToken is required for auth_mode access_token (paste a 123 access token)") }
            var expires = Open123Auth.jwtExpiry(accessToken)
            if !accessTokenExpiry.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let given = Open123Auth.parseExpiry(accessTokenExpiry) else {
                    throw .badRequest("AccessTokenExpiry '\(accessTokenExpiry)' is not a time: write it as 2026-12-31T23:59:59+08:00, 2026-12-31 15:59:59 (UTC) or Unix seconds, or leave it empty")
                }
                expires = given
            }
            return .accessToken(token: accessToken, expires: expires)
        default:
            throw .badRequest("auth_mode must be one of \(Open123Auth.modes.joined(separator: ", ")), not '\(authMode)'")
        }
    }
}

/// A 123 Cloud Drive through the 123 Open Platform API, with the Client ID and Secret of a developer application.
public final class Open123Driver: Driver, StatusNoting, MakeDirCapable, RenameCapable, MoveCapable, CopyCapable, RemoveCapable, DetailsCapable, PutCapable,
                                  SlicedUploadCapable {
    public static let name = "123 Open"
    public static let factory = DriverFactory(
        config: DriverConfig(name: name, localSort: true, defaultRoot: "0"),
        additional: [
            DriverItem(name: "auth_mode", type: "select", default: "client_credentials", options: Open123Auth.modes.joined(separator: ","),
                       help: "client_credentials: a developer application's Client ID and Secret (123's paid developer package); "
                           + "refresh_token: your own OAuth app's Client ID and Secret and a refresh token (renewed automatically); "
                           + "access_token: a pasted access token (simplest; stops working when it expires)"),
            DriverItem(name: "ClientID", type: "string", help: "client_credentials: Client ID of your 123 developer application; refresh_token: client_id of your OAuth app"),
            DriverItem(name: "ClientSecret", type: "string", help: "client_credentials: Client Secret of your 123 developer application; refresh_token: client_secret of your OAuth app"),
            DriverItem(name: "RefreshToken", type: "string", help: "refresh_token: the refresh token your OAuth app was given; PanList keeps the renewed one (123 gives a new one at each renewal)"),
            DriverItem(name: "AccessToken", type: "string", help: "access_token: the pasted access token"),
            DriverItem(name: "AccessTokenExpiry", type: "string",
                       help: "access_token: when the pasted token expires (2026-12-31T23:59:59+08:00, UTC 2026-12-31 15:59:59, or Unix seconds); empty: read from the token when it is a JWT"),
            DriverItem(name: "RootFolderID", type: "string", default: "0", help: "ID of the folder used as this storage's root (0 = the whole drive)"),
            DriverItem(name: "UploadThread", type: "number", default: "3", help: "concurrent slice uploads (1–32)"),
            DriverItem(name: "DirectLink", type: "bool", default: "false",
                       help: "use direct links (needs a direct-link space enabled on a top-level folder in 123's web UI)"),
            DriverItem(name: "DirectLinkPrivateKey", type: "string", help: "the URL-authentication key of your direct-link space, if set"),
            DriverItem(name: "DirectLinkValidDuration", type: "number", default: "30", help: "minutes a signed direct link stays valid"),
            DriverItem(name: "base_url", type: "string", default: "https://open-api.123pan.com",
                       help: "the API address; change it only for the open123-emulator"),
            DriverItem(name: "rate_limits", type: "text",
                       help: "requests per second per endpoint, overriding the defaults: one PATH=QPS a line, e.g. /api/v2/file/list=3 (0 = not paced); pacing also slows an endpoint down by itself when 123 answers 429"),
        ],
        secretFields: ["ClientSecret", "DirectLinkPrivateKey", "AccessToken", "RefreshToken"],
        deliveryHelp: "Downloads are redirected to 123's own link by default, which costs this server no traffic. "
            + "123's links only work from the city of the address that asked for them (this server's), so people "
            + "elsewhere may be refused: then let PanList stream the files (the web proxy for the web UI and links; "
            + "streaming for WebDAV), or send downloads to a separate download proxy. Direct links (DirectLink) are "
            + "not tied to an address and work well with redirects.",
        check: { text in
            let a = try decodeAddition(Open123Addition.self, from: text)
            _ = try a.auth()
            _ = try RateLimiter.table(overriding: a.rateLimits)
        },
        make: { record, env in try Open123Driver(record: record, env: env) }
    )

    public let config: DriverConfig
    let addition: Open123Addition
    let client: Open123Client
    let rootID: Int64
    let tempDir: String
    private let uidBox = NIOLockedValueBox<Int64?>(nil)

    init(record: StorageRecord, env: DriverEnvironment) throws {
        config = Self.factory.config
        addition = try decodeAddition(Open123Addition.self, from: record.addition)
        let auth = try addition.auth()
        let rates = try RateLimiter.table(overriding: addition.rateLimits)
        guard let root = Int64(addition.rootFolderID), root >= 0 else { throw FSError.badRequest("RootFolderID must be a folder ID such as 0") }
        guard (1...32).contains(addition.uploadThread) else { throw FSError.badRequest("UploadThread must be between 1 and 32") }
        rootID = root
        tempDir = env.tempDir
        client = Open123Client(baseURL: addition.baseURL, auth: auth, rates: rates, state: env.state)
    }

    /// access_token: the pasted token's expiry, or why it no longer works; refresh_token and client credentials: a
    /// refused renewal.
    public func statusNote() -> StatusNote? {
        let status = client.authStatus
        switch client.auth {
        case .clientCredentials:
            return status.problem.map { .failing($0) }
        case .refreshToken:
            if let problem = status.problem { return .failing(problem) }
            guard let expires = status.expires else { return nil }
            return .note("access token renewed with the refresh token; valid until \(Open123Auth.utc(expires))")
        case .accessToken(_, let expires):
            if let problem = status.problem { return .failing(problem) }
            guard let expires else { return .note("pasted access token, expiry unknown: when it lapses, paste a new one") }
            if expires <= Date() {
                return .failing("the pasted 123 access token expired at \(Open123Auth.utc(expires)); paste a new access token in this storage's settings (AccessToken)")
            }
            let days = Int(expires.timeIntervalSinceNow / 86400)
            let left = days == 0 ? "less than a day" : days == 1 ? "1 day" : "\(days) days"
            return .note("pasted access token expires \(Open123Auth.utc(expires)), in \(left)")
        }
    }

    /// Checks the credentials (a token) and the root folder.
    public func initialize() async throws {
        _ = try await client.tokens.current()
        // A token taken from the store (no renewal in this process yet) still shows its expiry.
        if case .refreshToken = client.auth, client.authStatus.expires == nil, let saved = await client.tokens.snapshot {
            client.authStatus.renewed(expires: saved.expires)
        }
        if rootID != 0 {
            guard let d = try await client.call(.GET, "/api/v1/file/detail", query: [("fileID", String(rootID))], as: DetailData.self),
                  d.type == 1, d.trashed ?? 0 == 0
            else { throw FSError.badRequest("RootFolderID \(rootID) is not a folder of this drive") }
        } else {
            _ = try await client.call(.GET, "/api/v2/file/list", query: [("parentFileId", "0"), ("limit", "1")], as: ListData.self)
        }
    }

    public func drop() async {}

    static func id(_ obj: Obj) throws -> Int64 {
        guard let id = Int64(obj.id) else { throw FSError.internalError("\(obj.path) has no 123 file ID") }
        return id
    }

    public func root() async throws -> Obj {
        Obj(id: String(rootID), path: "/", name: "root", size: 0, modified: Date(timeIntervalSince1970: 0), isDir: true)
    }

    func obj(_ f: FileItem, in dir: String) -> Obj {
        let modified = BeijingTime.parse(f.updateAt) ?? BeijingTime.parse(f.createAt) ?? Date(timeIntervalSince1970: 0)
        let md5 = (f.etag ?? "").lowercased()
        return Obj(id: String(f.fileId), path: VirtualPath.join(dir, f.filename), name: f.filename, size: f.size,
                   modified: modified, created: BeijingTime.parse(f.createAt), isDir: f.type == 1,
                   hashes: f.type == 1 || md5.isEmpty ? [:] : ["md5": md5])
    }

    /// Every page (100 items each) until `lastFileId` is -1 or a page comes back empty; trashed items dropped.
    public func list(dir: Obj) async throws -> [Obj] {
        let parent = try Self.id(dir)
        var out: [Obj] = []
        var cursor: Int64 = 0
        for _ in 0..<100_000 {
            var query = [("parentFileId", String(parent)), ("limit", "100")]
            if cursor > 0 { query.append(("lastFileId", String(cursor))) }
            guard let page = try await client.call(.GET, "/api/v2/file/list", query: query, as: ListData.self) else { break }
            let items = page.fileList ?? []
            out += items.filter { ($0.trashed ?? 0) == 0 }.map { obj($0, in: dir.path) }
            if page.lastFileId == -1 || items.isEmpty || page.lastFileId <= cursor { break }
            cursor = page.lastFileId
        }
        return out
    }

    public func link(file: Obj, args: LinkArgs) async throws -> Link {
        let id = try Self.id(file)
        if addition.directLink {
            let data: DirectLinkData?
            do {
                data = try await client.call(.GET, "/api/v1/direct-link/url", query: [("fileID", String(id))], as: DirectLinkData.self)
            } catch let e as FSError {
                if case .upstream(_, let message) = e {
                    throw FSError.upstream(code: 1, message: "\(message) — direct links work only for files inside a direct-link space: enable one on a top-level folder in 123's web UI (Direct Link), or turn DirectLink off for this storage")
                }
                throw e
            }
            guard let url = data?.url else { throw FSError.upstream(code: 1, message: "123 Open gave no direct link") }
            let expires = Date().addingTimeInterval(Double(addition.directLinkValidDuration) * 60)
            if addition.directLinkPrivateKey.isEmpty { return .url(url, headers: [:], expiresAt: nil) }
            return .url(try await sign(url, expires: expires), headers: [:], expiresAt: expires)
        }
        guard let data = try await client.call(.GET, "/api/v1/file/download_info", query: [("fileId", String(id))], as: DownloadData.self) else {
            throw FSError.upstream(code: 1, message: "123 Open gave no download URL")
        }
        return .url(data.downloadUrl, headers: [:], expiresAt: Date().addingTimeInterval(240))
    }

    func uid() async throws -> Int64 {
        if let u = uidBox.withLockedValue({ $0 }) { return u }
        guard let info = try await client.call(.GET, "/api/v1/user/info", as: UserInfoData.self) else {
            throw FSError.upstream(code: 1, message: "123 Open gave no user info")
        }
        uidBox.withLockedValue { $0 = info.uid }
        return info.uid
    }

    /// `auth_key=ts-rand-uid-md5(path-ts-rand-uid-key)` over the decoded path (spec §9).
    func sign(_ url: String, expires: Date) async throws -> String {
        guard var comps = URLComponents(string: url) else { throw FSError.upstream(code: 1, message: "invalid direct link \(url)") }
        let ts = Int64(expires.timeIntervalSince1970)
        let rand = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let uid = try await uid()
        let text = "\(comps.path)-\(ts)-\(rand)-\(uid)-\(addition.directLinkPrivateKey)"
        let md5 = Insecure.MD5.hash(data: Data(text.utf8)).hexString
        comps.queryItems = (comps.queryItems ?? []) + [URLQueryItem(name: "auth_key", value: "\(ts)-\(rand)-\(uid)-\(md5)")]
        return comps.string ?? url
    }

    public func makeDir(parent: Obj, name: String) async throws -> Obj {
        guard let d = try await client.call(.POST, "/upload/v1/file/mkdir", json: ["name": name, "parentID": try Self.id(parent)], as: MkdirData.self) else {
            throw FSError.upstream(code: 1, message: "123 Open did not return the new folder's ID")
        }
        return Obj(id: String(d.dirID), path: VirtualPath.join(parent.path, name), name: name, size: 0, modified: Date(), isDir: true)
    }

    public func rename(_ obj: Obj, to newName: String) async throws -> Obj {
        _ = try await client.call(.PUT, "/api/v1/file/name", json: ["fileId": try Self.id(obj), "fileName": newName], as: Nothing.self)
        var o = obj
        o.name = newName
        o.path = VirtualPath.join(VirtualPath.parent(obj.path), newName)
        return o
    }

    public func move(_ obj: Obj, to dstDir: Obj) async throws -> Obj {
        _ = try await client.call(.POST, "/api/v1/file/move", json: ["fileIDs": [try Self.id(obj)], "toParentFileID": try Self.id(dstDir)], as: Nothing.self)
        var o = obj
        o.path = VirtualPath.join(dstDir.path, obj.name)
        return o
    }

    /// Files with the synchronous copy; folders with the asynchronous copy, polled once a second (up to 10 minutes).
    /// The target goes under both casings 123 shows (`targetDirId` in the doc, `targetDirID` in its example),
    /// so a server reading either finds it; see `copyProgress` for the progress request.
    public func copy(_ obj: Obj, to dstDir: Obj) async throws -> Obj {
        let id = try Self.id(obj), target = try Self.id(dstDir)
        if !obj.isDir {
            let d = try await client.call(.POST, "/api/v1/file/copy", json: ["fileId": id, "targetDirId": target, "targetDirID": target], as: CopyData.self)
            var o = obj
            o.id = d?.targetFileId.map(String.init) ?? obj.id
            o.path = VirtualPath.join(dstDir.path, obj.name)
            return o
        }
        guard let task = try await client.call(.POST, "/api/v1/file/async/copy",
                                               json: ["fileIds": [id], "fileIDs": [id], "targetDirId": target, "targetDirID": target],
                                               as: AsyncCopyData.self) else {
            throw FSError.upstream(code: 1, message: "123 Open did not start the copy")
        }
        for _ in 0..<600 {
            let p = try await copyProgress(task.taskId)
            switch p?.status {
            case 2:
                var o = obj
                o.path = VirtualPath.join(dstDir.path, obj.name)
                return o
            case 3: throw FSError.upstream(code: 1, message: "123 Open could not copy \(obj.name)")
            default: try await Task.sleep(for: .seconds(1))
            }
        }
        throw FSError.upstream(code: 1, message: "123 Open's copy of \(obj.name) did not finish within 10 minutes")
    }

    /// Whether the progress request must be a POST (a GET with its JSON body was refused once).
    private let progressByPost = NIOLockedValueBox(false)

    /// `async/copy/process` is documented as a GET with a JSON body, while clients send the query string: a GET
    /// carries both; if 123 (or a proxy that drops GET bodies) refuses it, a POST with the JSON body follows,
    /// and this storage keeps to the form that worked.
    func copyProgress(_ task: Int64) async throws -> CopyProcessData? {
        let path = "/api/v1/file/async/copy/process"
        if !progressByPost.withLockedValue({ $0 }) {
            do {
                return try await client.call(.GET, path, query: [("taskId", String(task))], json: ["taskId": task], as: CopyProcessData.self)
            } catch let e as FSError {
                guard case .upstream(let code, _) = e, code != 401, code != 429, code != -1 else { throw e }
            }
        }
        let r = try await client.call(.POST, path, json: ["taskId": task], as: CopyProcessData.self)
        progressByPost.withLockedValue { $0 = true }
        return r
    }

    /// Moves to the recycle bin (123 deletes for good only from there).
    public func remove(_ obj: Obj) async throws {
        _ = try await client.call(.POST, "/api/v1/file/trash", json: ["fileIDs": [try Self.id(obj)]], as: Nothing.self)
    }

    /// Uploads into `dir`, replacing a file of the same name (`duplicate: 2`).
    public func put(dir: Obj, stream: UploadStream, replacing existing: Obj?) async throws -> Obj {
        let uploader = Uploader(client: client, tempDir: tempDir, threads: addition.uploadThread)
        let (id, size, md5) = try await uploader.upload(stream, parentID: try Self.id(dir))
        return Obj(id: String(id), path: VirtualPath.join(dir.path, stream.name), name: stream.name, size: size,
                   modified: Date(), isDir: false, hashes: md5.isEmpty ? [:] : ["md5": md5])
    }

    // MARK: sliced uploads (a resumable upload sends slices as its bytes arrive)

    var uploader: Uploader { Uploader(client: client, tempDir: tempDir, threads: addition.uploadThread) }

    public func beginSliced(dir: Obj, name: String, size: Int64, md5: String) async throws -> SlicedStart {
        if size > Uploader.maxSize { throw FSError.tooLarge("123 Open accepts files up to 10 GiB; \(name) has \(size) bytes") }
        switch try await uploader.create(parentID: try Self.id(dir), name: name, size: size, md5: md5.lowercased()) {
        case .reused(let id):
            return .stored(Obj(id: String(id), path: VirtualPath.join(dir.path, name), name: name, size: size,
                               modified: Date(), isDir: false, hashes: ["md5": md5.lowercased()]))
        case .session(let session):
            return .session(state: session.encoded, sliceSize: session.sliceSize)
        }
    }

    static func session(_ state: String) throws -> Uploader.SliceSession {
        guard let s = try? JSONDecoder().decode(Uploader.SliceSession.self, from: Data(state.utf8)) else {
            throw FSError.internalError("a sliced upload's state could not be read")
        }
        return s
    }

    public func sendSlice(state: String, number: Int, bytes: ByteBuffer) async throws -> String {
        var session = try Self.session(state)
        try await uploader.sendSlice(number, bytes: bytes, of: session)
        session.sent.append(number)
        return session.encoded
    }

    public func completeSliced(state: String) async throws -> Obj {
        let session = try Self.session(state)
        let id = try await uploader.complete(session)
        // The folder's path is not in the session: the caller (FileSystem) knows where it put it.
        return Obj(id: String(id), path: "/" + session.name, name: session.name, size: session.size,
                   modified: Date(), isDir: false, hashes: ["md5": session.md5])
    }

    public func details() async throws -> StorageDetails {
        guard let info = try await client.call(.GET, "/api/v1/user/info", as: UserInfoData.self) else {
            throw FSError.upstream(code: 1, message: "123 Open gave no user info")
        }
        uidBox.withLockedValue { $0 = info.uid }
        let total = info.spacePermanent + (info.spaceTemp ?? 0)
        return StorageDetails(totalSpace: total, freeSpace: max(0, total - info.spaceUsed))
    }
}
