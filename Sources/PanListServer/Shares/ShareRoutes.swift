import Foundation
import HTTPTypes
import Hummingbird
import PanListCore

/// What the owners' routes take (OpenList's field names, plus PanList's).
struct ShareRequest: Decodable {
    var id: String?
    var files: [String]?
    var pwd: String?
    /// RFC 3339; "" or null: never.
    var expires: String?
    var maxAccessed: Int64?
    var allowPreview: Bool?
    var allowDownload: Bool?
    var disabled: Bool?
    var readme: String?
    var header: String?
    var remark: String?
    /// The password of a guarded folder the shared items lie in (for a creator who needs one to open it).
    var folderPassword: String?
    var resetAccessed: Bool?
    /// The version the client's form was made from (optional): a share changed since is not overwritten.
    var version: Int64?
    enum CodingKeys: String, CodingKey {
        case id, files, pwd, expires, readme, header, remark, disabled, version
        case maxAccessed = "max_accessed", allowPreview = "allow_preview", allowDownload = "allow_download"
        case folderPassword = "folder_password", resetAccessed = "reset_accessed"
    }
}

/// A share as its owner (or an admin) sees it.
struct ShareJSON: Encodable {
    var id: String
    var url: String
    var files: [String]
    var expires: String
    var has_password: Bool
    var max_accessed: Int64
    var accessed: Int64
    var allow_preview: Bool
    var allow_download: Bool
    var disabled: Bool
    var readme: String
    var header: String
    var remark: String
    var creator: String
    var creator_id: Int
    var created: String
    var updated: String
    /// active, disabled, expired, exhausted (every open used) or unavailable (its owner can no longer share).
    var state: String
    var state_message: String
    /// Send it back with an update: a share changed since is then not overwritten.
    var version: Int64
}

/// What visitors are told of a share before opening it.
struct ShareInfoJSON: Encodable {
    var id: String
    var title: String
    var has_password: Bool
    var expires: String
    var allow_preview: Bool
    var allow_download: Bool
    var items: Int
    var is_dir: Bool
}

struct ShareEntryJSON: Encodable {
    var name: String
    var size: Int64
    var is_dir: Bool
    var modified: String
    var type: Int
    /// The `/sd` link's sign ("" for folders, or when the share serves no bytes of this file).
    var sign: String
}

struct ShareVisitRequest: Decodable {
    var id: String?
    var token: String?
    var path: String?
    var password: String?
    var page: Int?
    var perPage: Int?
    enum CodingKeys: String, CodingKey { case id, token, path, password, page, perPage = "per_page" }
}

struct ShareRoutes: Sendable {
    let state: ServerState
    var gate: ShareGate { ShareGate(state: state) }

    static let maxItems = 100
    static let maxText = 64 * 1024

    func register(api: RouterGroup<AppContext>, router: Router<AppContext>) {
        for method in [HTTPRequest.Method.get, .post] {
            api.on("share/list", method: method) { req, _ in try await list(req) }
            api.on("share/get", method: method) { req, _ in APIResponse.ok(try await json(try await ownerShare(req).1)) }
        }
        api.post("share/create") { req, ctx in try await create(req, ctx) }
        api.post("share/update") { req, ctx in try await update(req, ctx) }
        api.post("share/delete") { req, _ in
            let (_, share) = try await ownerShare(req)
            try await state.store.deleteShare(id: share.id)
            return APIResponse.ok()
        }
        for (route, disabled) in [("share/enable", false), ("share/disable", true)] {
            api.post(RouterPath(route)) { req, _ in
                var (_, share) = try await ownerShare(req)
                share.setDisabled(disabled)
                share.updated_ms = Self.nowMs()
                try await save(share, resetAccessed: false)
                share.version += 1
                return APIResponse.ok(try await json(share))
            }
        }

        for method in [HTTPRequest.Method.get, .post] {
            api.on("public/share/info", method: method) { req, _ in try await info(req) }
            api.on("public/share/list", method: method) { req, ctx in try await visitList(req, ctx) }
            api.on("public/share/get", method: method) { req, ctx in try await visitGet(req, ctx) }
        }
        api.post("public/share/auth") { req, ctx in try await auth(req, ctx) }

        for (prefix, proxy) in [("sd", false), ("sp", true)] {
            for method in [HTTPRequest.Method.get, .head] {
                router.on(RouterPath("\(prefix)/:id/**"), method: method) { req, ctx in
                    do { return try await download(req, ctx, prefix: prefix, proxy: proxy) } catch { return DownloadRoutes.failure(error, req) }
                }
            }
        }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: owners

    /// The signed-in user, if they may make shares.
    func sharer(_ req: Request) async throws -> User {
        let user = try await state.authenticate(req)
        if user.isGuest { throw FSError.unauthorized("log in to share files") }
        guard ShareGate.mayShare(user) else {
            throw FSError.permissionDenied("permission denied: you may not share files (ask an admin for the share permission)")
        }
        return user
    }

    func decode(_ req: Request) async throws -> ShareRequest {
        var body = try await req.json(ShareRequest.self, limit: state.config.maxRequestBody)
        if body.id == nil { body.id = req.uri.queryParameters.get("id") }
        return body
    }

    /// The share named by `id` (query or body) if the caller owns it or is an admin.
    func ownerShare(_ req: Request, body given: ShareRequest? = nil) async throws -> (User, Share) {
        let user = try await state.authenticate(req)
        if user.isGuest { throw FSError.unauthorized("log in to manage shares") }
        let body: ShareRequest
        if let given { body = given } else { body = try await decode(req) }
        guard let id = body.id, !id.isEmpty else { throw FSError.badRequest("id: which share") }
        guard ShareGate.validID(id), let share = try await state.store.share(id: id),
              user.isAdmin || share.creator_id == user.id else { throw FSError.noSuchRecord(ShareGate.missing) }
        return (user, share)
    }

    func list(_ req: Request) async throws -> Response {
        let user = try await state.authenticate(req)
        if user.isGuest { throw FSError.unauthorized("log in to manage shares") }
        let q = req.uri.queryParameters
        struct ListPaging: Decodable { var page: Int?; var per_page: Int? }
        let body = try await req.json(ListPaging.self, limit: 4096)
        let all = try await state.store.shares(creator: user.isAdmin ? nil : user.id)
        let range = Paging.range(count: all.count, page: body.page ?? q.get("page", as: Int.self), perPage: body.per_page ?? q.get("per_page", as: Int.self))
        let slice = range.map { all[$0] } ?? all[...]
        var content: [ShareJSON] = []
        var creators: [Int: User?] = [:]   // (an admin's list: each creator looked up once)
        for s in slice {
            if creators[s.creator_id] == nil { creators[s.creator_id] = .some(try await state.store.user(id: s.creator_id)?.user) }
            content.append(json(s, creator: creators[s.creator_id] ?? nil))
        }
        struct Page: Encodable { var content: [ShareJSON]; var total: Int }
        return APIResponse.ok(Page(content: content, total: all.count))
    }

    func json(_ share: Share) async throws -> ShareJSON {
        json(share, creator: try await state.store.user(id: share.creator_id)?.user)
    }

    func json(_ s: Share, creator: User?) -> ShareJSON {
        var stateName = "active", message = ""
        if let closed = s.closedReason() {
            stateName = closed.rawValue; message = closed.message
        } else if creator.map(ShareGate.mayShare) != true {
            stateName = "unavailable"; message = "its owner can no longer share files"
        }
        let files = s.paths.map { p in creator.map { Access.userPath(p, for: $0) } ?? p }
        return ShareJSON(id: s.id, url: "/@s/" + s.id, files: files,
                         expires: s.expires_ms > 0 ? TimeFormat.rfc3339(ms: s.expires_ms) : "",
                         has_password: s.hasPassword, max_accessed: s.max_accessed, accessed: s.accessed,
                         allow_preview: s.allow_preview, allow_download: s.allow_download, disabled: s.disabled,
                         readme: s.readme, header: s.header, remark: s.remark, creator: creator?.username ?? "", creator_id: s.creator_id,
                         created: TimeFormat.rfc3339(ms: s.created_ms), updated: TimeFormat.rfc3339(ms: s.updated_ms),
                         state: stateName, state_message: message, version: s.version)
    }

    static func parseExpiry(_ text: String?) throws(FSError) -> Int64? {
        guard let text else { return nil }
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return 0 }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var date = f.date(from: t)
        if date == nil { f.formatOptions = [.withInternetDateTime]; date = f.date(from: t) }
        guard let date else { throw .badRequest("expires: \(t) is not a time like 2027-01-31T18:00:00Z") }
        guard date > Date() else { throw .badRequest("expires: \(t) has passed; choose a time in the future") }
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    /// Applies the request's fields to `share` (made or kept by `creator`), checking each.
    func apply(_ body: ShareRequest, to share: inout Share, creator: User, ip: String) async throws {
        if let files = body.files {
            guard !files.isEmpty else { throw FSError.badRequest("files: choose at least one file or folder") }
            guard files.count <= Self.maxItems else { throw FSError.badRequest("files: at most \(Self.maxItems) items in one share") }
            var paths: [String] = []
            for f in files {
                let p = try Access.resolve(f, for: creator)
                if !paths.contains(p) { paths.append(p) }
            }
            if paths.count > 1 {
                if paths.contains("/") { throw FSError.badRequest("files: / is shared alone") }
                var seen: Set<String> = []
                for p in paths where !seen.insert(VirtualPath.base(p)).inserted {
                    throw FSError.badRequest("files: two items are named \(VirtualPath.base(p)); a share holds each name once")
                }
            }
            let rules = state.rules
            var proofs: [String: String] = [:]
            let old = share.proofs
            for p in paths {
                if rules.isHidden(p) { throw FSError.badRequest("files: \(Access.userPath(p, for: creator)) is hidden by a folder rule and cannot be shared") }
                let known = rules.passwordRule(for: p).flatMap { r in
                    old[r.path].map { Access.constantTimeEqual($0, ShareGate.proof(share: share.id, rulePath: r.path, password: r.password)) ? r.password : nil } ?? nil
                }
                try state.check(creator, .read, p, password: body.folderPassword ?? known, ip: ip)
                let (obj, _) = try await state.fs.get(p)
                share.single_folder = paths.count == 1 && obj.isDir
                if !creator.isAdmin && !creator.permission.contains(.accessWithoutPassword), let r = rules.passwordRule(for: p) {
                    proofs[r.path] = ShareGate.proof(share: share.id, rulePath: r.path, password: r.password)
                }
            }
            if paths != share.paths { share.nonce = Share.newNonce() }
            share.paths = paths
            share.proofs = proofs
        }
        if let pwd = body.pwd {
            guard pwd.utf8.count <= 256 else { throw FSError.badRequest("pwd: at most 256 bytes") }
            if pwd.isEmpty { share.password_hash = ""; share.password_salt = "" } else {
                (share.password_hash, share.password_salt) = try await Passwords.makeAsync(pwd)
            }
            share.nonce = Share.newNonce()
        }
        if let e = try Self.parseExpiry(body.expires) { share.expires_ms = e }
        if let m = body.maxAccessed {
            guard (0...1_000_000_000).contains(m) else { throw FSError.badRequest("max_accessed: 0 (no limit) to 1,000,000,000") }
            share.max_accessed = m
        }
        if let v = body.allowPreview { share.allow_preview = v }
        if let v = body.allowDownload { share.allow_download = v }
        if let v = body.disabled { share.setDisabled(v) }
        func text(_ name: String, _ value: String?, limit: Int) throws -> String? {
            guard let value, value.utf8.count > limit else { return value }
            throw FSError.badRequest("\(name): at most \(limit) bytes")
        }
        if let t = try text("readme", body.readme, limit: Self.maxText) { share.readme = t }
        if let t = try text("header", body.header, limit: Self.maxText) { share.header = t }
        if let t = try text("remark", body.remark, limit: 1024) { share.remark = t }
    }

    func create(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await sharer(req)
        let body = try await decode(req)
        guard body.files != nil else { throw FSError.badRequest("files: choose at least one file or folder") }
        var id = ShareGate.randomID()
        // (59 random bits: drawn again if taken all the same.)
        for _ in 0..<3 where try await state.store.share(id: id) != nil { id = ShareGate.randomID() }
        if let custom = body.id, !custom.isEmpty {
            guard user.isAdmin || user.permission.contains(.customShareID) else {
                throw FSError.permissionDenied("permission denied: you may not choose share ids (leave id empty for a random one)")
            }
            guard ShareGate.validID(custom) else { throw FSError.badRequest("id: 3 to 64 of A-Z, a-z, 0-9, _ and -") }
            id = custom
        }
        var share = Share(id: id, creator: user.id, paths: [])
        try await apply(body, to: &share, creator: user, ip: ctx.clientIP)
        try await state.store.createShare(share)
        state.logger.info("share \(share.id) made by \(LogText.quoted(user.username)) of \(share.paths.count) item(s)")
        return APIResponse.ok(try await json(share) as ShareJSON)
    }

    func update(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let body = try await decode(req)
        let (user, old) = try await ownerShare(req, body: body)
        var share = old
        if let v = body.version, v != old.version { throw Self.changedMeanwhile }
        var creator = user
        if share.creator_id != user.id {
            // An admin edits another's share: the items are checked against the creator's rights, not the admin's.
            guard let stored = try await state.store.user(id: share.creator_id) else { throw FSError.noSuchRecord(ShareGate.missing) }
            creator = stored.user
        }
        try await apply(body, to: &share, creator: creator, ip: ctx.clientIP)
        share.updated_ms = Self.nowMs()
        try await save(share, resetAccessed: body.resetAccessed == true)
        share.version += 1
        if body.resetAccessed == true { share.accessed = 0 }
        return APIResponse.ok(try await json(share) as ShareJSON)
    }

    /// Writes a changed share if no one changed it since it was read.
    func save(_ share: Share, resetAccessed: Bool) async throws {
        guard try await state.store.updateShare(share, resetAccessed: resetAccessed) else {
            if try await state.store.share(id: share.id) == nil { throw FSError.noSuchRecord(ShareGate.missing) }
            throw Self.changedMeanwhile
        }
    }

    static let changedMeanwhile = FSError.conflict("the share was changed meanwhile (by its owner or an admin); load it again and retry")

    // MARK: visitors

    func visitBody(_ req: Request) async throws -> ShareVisitRequest {
        var body = try await req.json(ShareVisitRequest.self, limit: 64 * 1024)
        let q = req.uri.queryParameters
        if body.id == nil { body.id = q.get("id") }
        if body.path == nil { body.path = q.get("path") }
        if body.token == nil { body.token = q.get("token") ?? req.headers[.shareToken] }
        if body.password == nil { body.password = req.headers[.folderPassword] }
        if body.page == nil { body.page = q.get("page", as: Int.self) }
        if body.perPage == nil { body.perPage = q.get("per_page", as: Int.self) }
        return body
    }

    func info(_ req: Request) async throws -> Response {
        let body = try await visitBody(req)
        let o = try await gate.open(body.id ?? "")
        let s = o.share
        // Nothing of the content before the password: not even the names.
        var title = o.items.count == 1 ? o.items[0].name : "\(o.items.count) items"
        if o.items.count == 1, o.items[0].path == "/" || o.singleFolder == Access.resolve(root: o.creator) { title = "Shared files" }
        if s.hasPassword { title = "Shared files" }
        return APIResponse.ok(ShareInfoJSON(
            id: s.id, title: title, has_password: s.hasPassword,
            expires: s.expires_ms > 0 ? TimeFormat.rfc3339(ms: s.expires_ms) : "",
            allow_preview: s.allow_preview, allow_download: s.allow_download, items: o.items.count,
            is_dir: o.singleFolder != nil || o.items.count > 1))
    }

    /// Opening a share: its password (tried under the limiter: per share and address, and per share), then one
    /// open counted against its limit, atomically on every instance. Answers the session token.
    func auth(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let body = try await visitBody(req)
        let o = try await gate.open(body.id ?? "")
        let s = o.share
        if s.hasPassword {
            // No password at all is not a guess: asked for, not counted.
            guard let given = body.password, !given.isEmpty else { throw FSError.permissionDenied("this share needs its password") }
            let limiter = state.loginLimiter
            let keys = [LoginLimiter.Key(kind: .folderPassword, name: "s\(LoginLimiter.addressKey(ctx.clientIP)) \(s.id)", limit: limiter.userAddressLimit),
                        LoginLimiter.Key(kind: .folderPassword, name: "S \(s.id)", limit: limiter.addressLimit)]
            let attempt = try limiter.begin(keys)
            var right = false
            if given.utf8.count <= 256 {
                right = await Passwords.verifyAsync(staticHash: Passwords.staticHash(given), hash: s.password_hash, salt: s.password_salt)
            }
            if !right {
                state.logger.warning("wrong share password for \(s.id) from \(ctx.clientIP)")
                let reached = limiter.end(attempt, .failed)
                await state.countFailures(attempt.keys, locallyReached: reached, unit: "failed attempts") { k in
                    k.name.hasPrefix("S ") ? "every password attempt on share \(s.id)" : "share password attempts from \(ctx.clientIP) on \(s.id)"
                }
                throw FSError.permissionDenied("the share's password is wrong")
            }
            limiter.end(attempt, .neither)
        }
        guard try await state.store.countShareOpen(id: s.id) != nil else {
            // Closed between the look and the count (another visitor took the last open, or it expired).
            let now = try await state.store.share(id: s.id)
            throw FSError.permissionDenied(now?.closedReason()?.message ?? ShareGate.missing)
        }
        let expire = ShareGate.sessionExpiry(s)
        struct Session: Encodable { var token: String; var expires: String }
        return APIResponse.ok(Session(token: gate.sessionToken(s, expire: expire),
                                      expires: TimeFormat.rfc3339(ms: expire * 1000)))
    }

    /// A visitor's request: the share open (a session, once opened, outlives the open limit being reached),
    /// the session valid, the path inside the share and readable.
    func visit(_ req: Request, _ ctx: AppContext) async throws -> (ShareGate.Opened, ShareVisitRequest, Int64, String, (item: String, absolute: String)?) {
        let body = try await visitBody(req)
        let o = try await gate.open(body.id ?? "", ignoreLimit: true)
        do { return try await visit(o, body, ctx) } catch { throw gate.inShareTerms(error, o, asked: body.path ?? "/") }
    }

    func visit(_ o: ShareGate.Opened, _ body: ShareVisitRequest, _ ctx: AppContext) async throws
        -> (ShareGate.Opened, ShareVisitRequest, Int64, String, (item: String, absolute: String)?) {
        let expire = try gate.verifySession(o, token: body.token)
        let sharePath = try VirtualPath.normalize(body.path ?? "/")
        let at = try gate.resolve(o, sharePath)
        if let at {
            try gate.check(o, item: at.item, absolute: at.absolute, password: body.password, ip: ctx.clientIP)
        }
        return (o, body, expire, sharePath, at)
    }

    /// Whether `/sd` serves this file's bytes: with downloads allowed, any file; with previews only, the kinds
    /// the web UI shows (video, audio, text, images, PDF).
    func serves(_ share: Share, _ obj: Obj) -> Bool {
        if obj.isDir { return false }
        if share.allow_download { return true }
        guard share.allow_preview else { return false }
        if (2...5).contains(state.fileTypes.type(of: obj)) { return true }
        return obj.name.lowercased().hasSuffix(".pdf")
    }

    /// Entries as visitors see them: `objects` with the item each lies in and its real path (for the sign).
    /// A file guarded by a folder password inside the share is signed only when `password` (the visitor's)
    /// is that guard's: a rule may sit on one file of a folder whose listing needed another password or none.
    func entries(_ o: ShareGate.Opened, folder sharePath: String, objects: [(obj: Obj, item: String, absolute: String)],
                 password: String?, expire: Int64) -> [ShareEntryJSON] {
        let types = state.fileTypes
        let rules = state.rules
        return objects.map { e in
            let obj = e.obj
            let p = sharePath == "/" ? "/" + obj.name : sharePath + "/" + obj.name
            var sign = ""
            if serves(o.share, obj) {
                let guarded = gate.linkGuard(o, item: e.item, absolute: e.absolute, rules: rules)
                if guarded.password == nil || Access.constantTimeEqual(password ?? "", guarded.password ?? "") {
                    sign = gate.linkSign(o.share, sharePath: p, guard: guarded.mark, expire: expire)
                }
            }
            return ShareEntryJSON(name: obj.name, size: obj.isDir ? 0 : obj.size, is_dir: obj.isDir, modified: TimeFormat.rfc3339(obj.modified),
                                  type: types.type(of: obj), sign: sign)
        }
    }

    func visitList(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let (o, body, expire, sharePath, at) = try await visit(req, ctx)
        do { return try await visitList(o, body, expire, sharePath, at, ctx) } catch { throw gate.inShareTerms(error, o, asked: sharePath) }
    }

    func visitList(_ o: ShareGate.Opened, _ body: ShareVisitRequest, _ expire: Int64, _ sharePath: String,
                   _ at: (item: String, absolute: String)?, _ ctx: AppContext) async throws -> Response {
        var objs: [(obj: Obj, item: String, absolute: String)]
        var readme = o.share.readme, header = o.share.header
        if let at {
            let (obj, _) = try await state.fs.get(at.absolute)
            guard obj.isDir else { throw FSError.badRequest("\(sharePath) is a file; open it with get") }
            let rules = state.rules
            var listed = try await state.fs.list(at.absolute).objects
            if let visible = rules.visibility(in: at.absolute) { listed = listed.filter { visible($0.name) } }
            objs = listed.map { ($0, at.item, VirtualPath.join(at.absolute, $0.name)) }
            // The share's own readme and header at its top; the folders' own (their rules') below.
            if sharePath != "/" || readme.isEmpty { readme = rules.readme(for: at.absolute) }
            if sharePath != "/" || header.isEmpty { header = rules.header(for: at.absolute) }
        } else {
            // The items themselves: each still there and readable, or left out.
            objs = []
            var lastError: (any Error)?
            for item in o.items {
                do {
                    try gate.check(o, item: item.path, absolute: item.path, password: nil, ip: ctx.clientIP)
                    var obj = try await state.fs.get(item.path).0
                    obj.name = item.name
                    objs.append((obj, item.path, item.path))
                } catch {
                    lastError = error
                }
            }
            // Nothing left that the creator may still share: said, not an empty folder.
            if objs.isEmpty, let lastError { throw lastError }
        }
        let total = objs.count
        let page = Paging.range(count: objs.count, page: body.page, perPage: body.perPage).map { Array(objs[$0]) } ?? objs
        struct ListJSON: Encodable {
            var content: [ShareEntryJSON]
            var total: Int
            var readme: String
            var header: String
            var write: Bool
        }
        return APIResponse.ok(ListJSON(content: entries(o, folder: sharePath, objects: page, password: body.password, expire: expire), total: total,
                                       readme: readme, header: header, write: false))
    }

    func visitGet(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let (o, body, expire, sharePath, at) = try await visit(req, ctx)
        do { return try await visitGet(o, body, expire, sharePath, at, req) } catch { throw gate.inShareTerms(error, o, asked: sharePath) }
    }

    func visitGet(_ o: ShareGate.Opened, _ body: ShareVisitRequest, _ expire: Int64, _ sharePath: String,
                  _ at: (item: String, absolute: String)?, _ req: Request) async throws -> Response {
        guard let at else {
            struct Root: Encodable { var name: String; var is_dir: Bool; var size: Int64; var modified: String; var type: Int; var sign: String; var raw_url: String }
            return APIResponse.ok(Root(name: "/", is_dir: true, size: 0, modified: "", type: 1, sign: "", raw_url: ""))
        }
        var (obj, _) = try await state.fs.get(at.absolute)
        if sharePath != "/" { obj.name = VirtualPath.base(sharePath) } else if let item = o.items.first(where: { $0.path == at.item }) { obj.name = item.name }
        let folder = VirtualPath.parent(sharePath)
        let entry = entries(o, folder: folder, objects: [(obj, at.item, at.absolute)], password: body.password, expire: expire)[0]
        let linkPath = sharePath
        // The share's own readme and header at its top; the folders' own (their rules') below, as `list` answers.
        let rules = state.rules
        let dir = obj.isDir ? at.absolute : VirtualPath.parent(at.absolute)
        let top = obj.isDir ? sharePath == "/" : folder == "/"
        // A shared file's own folder is outside the share: its rules' texts are not shown.
        let outside = !obj.isDir && at.absolute == at.item
        let readme = (top && !o.share.readme.isEmpty) || outside ? o.share.readme : rules.readme(for: dir)
        let header = (top && !o.share.header.isEmpty) || outside ? o.share.header : rules.header(for: dir)
        let raw = entry.sign.isEmpty ? "" : state.baseURL(req) + "/sd/" + o.share.id + URLPath.encode(linkPath) + "?sign=" + entry.sign
        struct GetJSON: Encodable {
            var name: String; var size: Int64; var is_dir: Bool; var modified: String; var type: Int; var sign: String
            var raw_url: String; var readme: String; var header: String
        }
        return APIResponse.ok(GetJSON(name: entry.name, size: entry.size, is_dir: entry.is_dir, modified: entry.modified, type: entry.type,
                                      sign: entry.sign, raw_url: raw, readme: readme, header: header))
    }

    /// `/sd/<id>/<path>` (the storage's download policy: a 302 to the cloud or streamed) and `/sp/<id>/<path>`
    /// (always streamed by PanList), with a sign from `list` or `get`. Every request is checked again: a share
    /// disabled, expired or deleted, or a creator who lost the path, stops its links at once.
    func download(_ req: Request, _ ctx: AppContext, prefix: String, proxy: Bool) async throws -> Response {
        guard let id = ctx.parameters.get("id") else { throw FSError.noSuchRecord(ShareGate.missing) }
        let raw = req.uri.path.dropFirst(prefix.count + 2 + id.utf8.count)
        guard let decoded = URLPath.decode(raw) else { throw FSError.badRequest("the path is not valid percent-encoded UTF-8") }
        let sharePath = try VirtualPath.normalize(decoded)
        let o = try await gate.open(id, ignoreLimit: true)
        do { return try await download(o, sharePath, req, ctx, proxy: proxy) } catch { throw gate.inShareTerms(error, o, asked: sharePath) }
    }

    func download(_ o: ShareGate.Opened, _ sharePath: String, _ req: Request, _ ctx: AppContext, proxy: Bool) async throws -> Response {
        guard let sign = req.uri.queryParameters.get("sign"), !sign.isEmpty else { throw FSError.unauthorized("sign missing: open the share to get a link") }
        guard let at = try gate.resolve(o, sharePath) else { throw FSError.badRequest("/ is not a file") }
        // A file in a folder guarded inside the share: the link carries the proof of the password the visitor
        // gave (while it is still the folder's password), as the link itself has none.
        // (One snapshot of the rules for the guard and its password: a change in between fails closed in check.)
        let guarded = gate.linkGuard(o, item: at.item, absolute: at.absolute, rules: state.rules)
        try gate.verifyLink(o.share, sharePath: sharePath, guard: guarded.mark, sign: sign)
        // The password is the server's (proven by the link), not a visitor's attempt: not counted.
        try gate.check(o, item: at.item, absolute: at.absolute, password: guarded.password, ip: guarded.password == nil ? ctx.clientIP : nil)
        let (obj, storage) = try await state.fs.get(at.absolute)
        guard serves(o.share, obj) else {
            throw FSError.permissionDenied(obj.isDir ? "\(sharePath) is a folder" : "this share does not allow downloads")
        }
        // Never the storage's download proxy: its link would carry a plain `/d` sign of the file's real path,
        // good after the share ends. Streamed by PanList instead.
        var entry: DeliveryPolicy.Entry = proxy ? .proxy(fromProxy: true) : .direct
        if let storage, case .redirectToProxyURL = Delivery(state: state).decision(entry, path: at.absolute, storage: storage) {
            entry = .proxy(fromProxy: true)
        }
        return try await Delivery(state: state).respond(req, path: at.absolute, storage: storage, entry: entry, clientIP: ctx.clientIP)
    }
}

extension HTTPField.Name {
    static let shareToken = Self("Share-Token")!
}
