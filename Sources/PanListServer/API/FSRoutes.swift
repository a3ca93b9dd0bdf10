import Foundation
import HTTPTypes
import Hummingbird
import MultipartKit
import NIOCore
import PanListCore
import _NIOFileSystem

struct PathRequest: Decodable {
    var path: String?
    var password: String?
    var page: Int?
    var perPage: Int?
    var refresh: Bool?
    var forceRoot: Bool?
    enum CodingKeys: String, CodingKey {
        case path, password, page, refresh
        case perPage = "per_page", forceRoot = "force_root"
    }
}

/// Changes may carry the folder password in `password` (PanList's UI) or the `Password` header (as uploads do).
struct RenameRequest: Decodable { var path: String; var name: String; var password: String? }
struct MkdirRequest: Decodable { var path: String; var password: String? }
struct BatchRequest: Decodable {
    var srcDir: String
    var dstDir: String
    var names: [String]
    var password: String?
    /// The destination folder's password, when it differs from the source's.
    var dstPassword: String?
    /// Passwords of entries guarded by their own rule, by name (PanList's UI sends those it knows).
    var passwords: [String: String]?
    /// At the destination, for copies and moves between storages (tasks): `fail` (the default: the name must
    /// not exist), `overwrite`, `skip` (keep existing files) or `merge` (keep files of the same size). OpenList's
    /// `overwrite` and `skip_existing` booleans say the same.
    var conflict: String?
    var overwrite: Bool?
    var skipExisting: Bool?
    enum CodingKeys: String, CodingKey {
        case names, password, passwords, conflict, overwrite, srcDir = "src_dir", dstDir = "dst_dir", dstPassword = "dst_password"
        case skipExisting = "skip_existing"
    }

    func conflictPolicy() throws -> ConflictPolicy {
        if let c = conflict, !c.isEmpty {
            guard let p = ConflictPolicy(rawValue: c) else {
                throw FSError.badRequest("conflict must be fail, overwrite, skip or merge, not '\(c)'")
            }
            return p
        }
        if skipExisting == true { return .skip }
        if overwrite == true { return .overwrite }
        return .fail
    }
}
struct RemoveRequest: Decodable { var dir: String; var names: [String]; var password: String?; var passwords: [String: String]? }

/// A listing's `data`, written by hand: `{content, total, readme, header, write, provider}`. Entries are
/// written straight from the listing's objects (streamed in parts for big folders); mount points and virtual
/// folders carry `extras`.
struct ListPage: JSONWritable {
    var objects: ArraySlice<Obj>
    var folder: String
    var total: Int
    var readme: String
    var header: String
    var write: Bool
    var provider: String
    /// Which files get a sign: all of them (`sign_all`, the storage's `enable_sign`) or those `signs` says.
    var signAll: Bool
    var signs: @Sendable (String) -> Bool
    var signer: FolderSigner
    var types: FileTypes.Memo
    /// Mount points and virtual folders, by name.
    var extras: [String: (mount: MountJSON, details: MountDetailsJSON?)]
    private var next: Int?

    init(objects: ArraySlice<Obj>, folder: String, total: Int, readme: String, header: String, write: Bool, provider: String,
         signAll: Bool, signs: @escaping @Sendable (String) -> Bool, signer: FolderSigner, types: FileTypes,
         extras: [String: (mount: MountJSON, details: MountDetailsJSON?)]) {
        self.objects = objects; self.folder = folder; self.total = total; self.readme = readme; self.header = header
        self.write = write; self.provider = provider; self.signAll = signAll; self.signs = signs; self.signer = signer
        self.types = FileTypes.Memo(types); self.extras = extras
    }

    mutating func write(into out: inout JSONOut, limit: Int) -> Bool {
        var i: Int
        if let next { i = next - objects.startIndex } else {
            out.raw("{\"content\":[")
            i = 0
        }
        // The objects are read in place (copying each out of the array costs more than writing it).
        let stopped: Int? = objects.withUnsafeBufferPointer { all in
            while i < all.count {
                if out.count >= limit { return i }
                if i > 0 { out.byte(UInt8(ascii: ",")) }
                var sign = ""
                if !all[i].isDir && (signAll || signs(VirtualPath.join(folder, all[i].name))) { sign = signer.sign(all[i].name) }
                if all[i].isDir, let extra = extras[all[i].name] {
                    var e = ObjJSON(all[i], sign: sign, type: 1)
                    e.mount = extra.mount
                    e.mountDetails = extra.details
                    e.write(&out)
                } else {
                    ObjJSON.write(all[i], sign: sign, type: types.type(of: all[i]), into: &out)
                }
                i += 1
            }
            return nil
        }
        if let stopped { next = objects.startIndex + stopped; return false }
        next = objects.endIndex
        signer.keep()
        out.raw("],\"total\":"); out.int(total)
        out.raw(",\"readme\":"); out.string(readme)
        out.raw(",\"header\":"); out.string(header)
        out.raw(",\"write\":"); out.bool(write)
        out.raw(",\"provider\":"); out.string(provider)
        out.raw("}")
        return true
    }
}

/// `fs/get`'s `data`: the object's fields with `raw_url`, `readme`, `header`, `provider` and `related`.
struct GetPage: JSONWritable {
    var obj: ObjJSON
    var rawURL: String
    var readme = ""
    var header = ""
    var provider: String
    var related: [ObjJSON]

    mutating func write(into out: inout JSONOut, limit: Int) -> Bool {
        var head = JSONOut(capacity: 512)
        obj.write(&head)
        // The object's fields, then ours in the same object (its closing brace left out).
        out.append(head.bytes.dropLast())
        out.raw(",\"raw_url\":"); out.string(rawURL)
        out.raw(",\"readme\":"); out.string(readme)
        out.raw(",\"header\":"); out.string(header)
        out.raw(",\"provider\":"); out.string(provider)
        out.raw(",\"related\":[")
        for (i, r) in related.enumerated() {
            if i > 0 { out.raw(",") }
            r.write(&out)
        }
        out.raw("]}")
        return true
    }
}

extension HTTPField.Name {
    static let filePath = Self("File-Path")!
    static let overwrite = Self("Overwrite")!
    static let fileMD5 = Self("X-File-Md5")!
    static let asTask = Self("As-Task")!
    static let fileSHA1 = Self("X-File-Sha1")!
    static let fileSHA256 = Self("X-File-Sha256")!
    static let fileSize = Self("X-File-Size")!
    static let folderPassword = Self("Password")!
}

extension APIRoutes {
    func addFSRoutes(to api: RouterGroup<AppContext>) {
        for method in [HTTPRequest.Method.get, .post] {
            api.on("fs/list", method: method) { req, ctx in try await list(req, ctx) }
            api.on("fs/get", method: method) { req, ctx in try await get(req, ctx) }
            api.on("fs/dirs", method: method) { req, ctx in try await dirs(req, ctx) }
        }
        // For download proxies (down_proxy_url): the admin asks for the link behind a file, `{url, header}`.
        // Files this server must stream (Local) give `<site>/p<path>?d&sign=…`, which the proxy fetches.
        api.post("fs/link") { req, _ in
            let (user, body) = try await pathRequest(req)
            guard user.isAdmin else { throw FSError.permissionDenied("fs/link is for admins only") }
            let path = try VirtualPath.normalize(body.path ?? "/")
            let (link, _, _) = try await state.fs.cachedLink(path, args: LinkArgs(clientIP: "", headers: [:]))
            struct LinkJSON: Encodable {
                var url: String
                var header: [String: [String]]
                var expiration: Int64?
            }
            switch link {
            case .url(let url, let headers, let expires):
                return APIResponse.ok(LinkJSON(url: url, header: headers.mapValues { [$0] },
                                               expiration: expires.map { Int64($0.timeIntervalSince1970) }))
            case .localFile:
                let url = state.baseURL(req) + "/p" + URLPath.encode(path) + "?d&sign=" + URLPath.encode(state.sign(path), keepSlash: false)
                return APIResponse.ok(LinkJSON(url: url, header: [:], expiration: nil))
            }
        }
        api.post("fs/mkdir") { req, ctx in
            let (user, body) = try await decode(req, MkdirRequest.self)
            let path = try Access.resolve(body.path, for: user)
            guard path != Access.resolve(root: user) else { throw FSError.alreadyExists("/ already exists") }
            try state.checkCreate(user, path, password: password(req, body.password), ip: ctx.clientIP)
            try await state.fs.makeDir(path)
            return APIResponse.ok()
        }
        api.post("fs/rename") { req, ctx in
            let (user, body) = try await decode(req, RenameRequest.self)
            let path = try Access.resolve(body.path, for: user)
            try VirtualPath.validateName(body.name)
            let target = VirtualPath.join(VirtualPath.parent(path), body.name)
            try state.check(user, .rename, path, password: password(req, body.password), ip: ctx.clientIP)
            try Access.checkVisible(user, target, rules: state.rules)
            try await state.transfer(from: path, to: target, move: true) { try await state.fs.rename(path, to: body.name) }
            return APIResponse.ok()
        }
        // Within one storage at once; between storages as tasks (`{tasks: [...]}`, one per name).
        struct Tasks: Encodable { var tasks: [TaskInfoJSON] }
        api.post("fs/move") { req, ctx in
            let queued = try await batch(req, ctx, .move) { src, dst in try await state.fs.move(src, toDir: VirtualPath.parent(dst)) }
            return APIResponse.ok(Tasks(tasks: queued.map(TaskInfoJSON.init)))
        }
        api.post("fs/copy") { req, ctx in
            let queued = try await batch(req, ctx, .copy) { src, dst in try await state.fs.copy(src, toDir: VirtualPath.parent(dst)) }
            return APIResponse.ok(Tasks(tasks: queued.map(TaskInfoJSON.init)))
        }
        api.post("fs/remove") { req, ctx in
            let (user, body) = try await decode(req, RemoveRequest.self)
            let dir = try Access.resolve(body.dir, for: user)
            let pw = password(req, body.password)
            try state.check(user, .remove, dir, password: pw, ip: ctx.clientIP)
            for name in body.names {
                try VirtualPath.validateName(name)
                let path = VirtualPath.join(dir, name)
                try state.check(user, .remove, path, password: body.passwords?[name] ?? pw, ip: ctx.clientIP)
                try await state.remove(path)
            }
            return APIResponse.ok()
        }
        api.put("fs/put") { req, ctx in try await put(req, ctx) }
        api.put("fs/form") { req, ctx in try await form(req, ctx) }
        api.post("fs/form") { req, ctx in try await form(req, ctx) }
    }

    /// Move or copy: `names` from `src_dir` into `dst_dir`. `action` is checked on both folders and on every
    /// entry and its new place (a hidden or guarded entry is not reachable just because its folder is);
    /// the folder password of the destination may differ (`dst_password`). Folder rules travel along.
    /// Between two storages each name becomes a task (returned), queued once every name passed its checks.
    func batch(_ req: Request, _ ctx: AppContext, _ action: Action,
               _ op: @escaping (_ src: String, _ dst: String) async throws -> Void) async throws -> [TaskRecord] {
        let (user, body) = try await decode(req, BatchRequest.self)
        let conflict = try body.conflictPolicy()
        let (src, dst) = try (Access.resolve(body.srcDir, for: user), Access.resolve(body.dstDir, for: user))
        let pw = password(req, body.password)
        let dstPW = body.dstPassword.flatMap { $0.isEmpty ? nil : $0 } ?? pw
        try state.check(user, action, src, password: pw, ip: ctx.clientIP)
        try state.check(user, action, dst, password: dstPW, ip: ctx.clientIP)
        for name in body.names {
            try VirtualPath.validateName(name)
            let from = VirtualPath.join(src, name), to = VirtualPath.join(dst, name)
            try state.check(user, action, from, password: body.passwords?[name] ?? pw, ip: ctx.clientIP)
            try Access.checkVisible(user, to, rules: state.rules)
            try await Access.checkTransfer(user, from: from, to: to, rules: state.rules, fs: state.fs)
            if state.crossesStorages(from, dst) {
                try await state.checkTransferable(user, move: action == .move, src: from, dst: dst, conflict: conflict)
            }
        }
        var queued: [TaskRecord] = []
        for name in body.names {
            let from = VirtualPath.join(src, name), to = VirtualPath.join(dst, name)
            if state.crossesStorages(from, dst) {
                queued.append(try await state.queueTransfer(user, move: action == .move, src: from, dst: dst, conflict: conflict))
            } else {
                try await state.transfer(from: from, to: to, move: action == .move) { try await op(from, to) }
            }
        }
        return queued
    }

    func decode<T: Decodable>(_ req: Request, _ type: T.Type) async throws -> (User, T) {
        let user = try await state.authenticate(req)
        return (user, try await req.json(T.self, limit: state.config.maxRequestBody))
    }

    /// The read routes accept a JSON body (any method, as Alist) or, for GET, query parameters.
    func pathRequest(_ req: Request) async throws -> (User, PathRequest) {
        var (user, body) = try await decode(req, PathRequest.self)
        let q = req.uri.queryParameters
        if body.path == nil, let p = q.get("path") { body.path = p }
        if body.page == nil { body.page = q.get("page", as: Int.self) }
        if body.perPage == nil { body.perPage = q.get("per_page", as: Int.self) }
        if body.refresh == nil { body.refresh = q.get("refresh").map { $0 == "true" } }
        if body.password == nil { body.password = q.get("password") }
        return (user, body)
    }

    /// The folder password sent with a request: the body's `password`, else the `Password` header.
    func password(_ req: Request, _ fromBody: String?) -> String? {
        if let p = fromBody, !p.isEmpty { return p }
        return req.headers[.folderPassword]
    }

    func list(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let (user, body) = try await pathRequest(req)
        let path = try Access.resolve(body.path ?? "/", for: user)
        let pw = password(req, body.password)
        let rules = state.rules
        try state.check(user, .read, path, password: pw, ip: ctx.clientIP)
        if body.refresh == true { try state.check(user, .refresh, path, password: pw) }
        let listing = try await state.fs.list(path, refresh: body.refresh == true)
        var objs = listing.objects
        if let visible = Access.visibility(user, in: path, rules: rules) { objs = objs.filter { visible($0.name) } }
        let total = objs.count
        let page = Paging.range(count: objs.count, page: body.page, perPage: body.perPage).map { objs[$0] } ?? objs[...]
        // Mount points and virtual folders say so; working mount points show their space (fetched together,
        // cached, time-bounded).
        let fs = state.fs
        var extras: [String: (mount: MountJSON, details: MountDetailsJSON?)] = [:]
        let mountPoints = Dictionary(fs.storages.filter { VirtualPath.parent($0.mountPath) == path && $0.mountPath != path }
                                        .map { (VirtualPath.base($0.mountPath), $0) }, uniquingKeysWith: { a, _ in a })
        if !mountPoints.isEmpty || !listing.virtualNames.isEmpty {
            for o in page where o.isDir {
                if let m = mountPoints[o.name] { extras[o.name] = (MountJSON(m, admin: user.isAdmin), nil) }
                else if listing.virtualNames.contains(o.name) { extras[o.name] = (.virtualFolder, nil) }
            }
            let working = extras.keys.filter { mountPoints[$0]?.isWorking == true }
            let found = await withTaskGroup(of: (String, MountDetailsJSON?).self) { group in
                for name in working {
                    let p = VirtualPath.join(path, name)
                    group.addTask { (name, await MountDetailsJSON.of(fs, at: p)) }
                }
                var all: [(String, MountDetailsJSON?)] = []
                for await r in group { all.append(r) }
                return all
            }
            for (name, d) in found { extras[name]?.details = d }
        }
        let (signAll, signs) = state.signRules(listing.storage)
        return APIResponse.ok(writing: ListPage(
            objects: page, folder: path, total: total, readme: rules.readme(for: path), header: rules.header(for: path),
            write: Access.allows(user, .write, path, rules: rules, password: pw), provider: listing.storage?.record.driver ?? "unknown",
            signAll: signAll, signs: signs, signer: state.signer.folder(path, expire: state.signExpiry), types: state.fileTypes,
            extras: extras))
    }

    func get(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let (user, body) = try await pathRequest(req)
        let path = try Access.resolve(body.path ?? "/", for: user)
        let rules = state.rules
        try state.check(user, .read, path, password: password(req, body.password), ip: ctx.clientIP)
        let (obj, storage) = try await state.fs.get(path)
        let types = state.fileTypes
        let signs = state.signRequired(storage, path: path)
        var named = obj
        if path == "/" { named.name = "root" }
        let sign = signs && !obj.isDir ? state.sign(path) : ""
        var rawURL = ""
        var related: [ObjJSON] = []
        if !obj.isDir, let storage {
            // The same decision `/d` makes: the cloud's link via /d, the storage's download proxy, or /p.
            switch Delivery(state: state).decision(.direct, path: path, storage: storage) {
            case .redirectToLink:
                rawURL = state.baseURL(req) + "/d" + URLPath.encode(path) + (sign.isEmpty ? "" : "?sign=" + sign)
            case .redirectToProxyURL(let base):
                rawURL = base + URLPath.encode(path) + "?sign=" + (sign.isEmpty ? state.sign(path) : sign)
            case .stream:
                rawURL = state.baseURL(req) + "/p" + URLPath.encode(path) + (sign.isEmpty ? "" : "?sign=" + sign)
            }
            let stem = obj.name.split(separator: ".", omittingEmptySubsequences: false).dropLast().joined(separator: ".")
            if !stem.isEmpty, let siblings = try? await state.fs.list(VirtualPath.parent(path)).objects {
                let parent = VirtualPath.parent(path)
                let visible = Access.visibility(user, in: parent, rules: rules) ?? { _ in true }
                let signsHere = state.signRule(storage)
                related = siblings.filter { !$0.isDir && $0.name != obj.name && $0.name.hasPrefix(stem) && visible($0.name) }.map {
                    let p = VirtualPath.join(parent, $0.name)
                    return ObjJSON($0, sign: signsHere(p) ? state.sign(p) : "", types: types)
                }
            }
        }
        var objJSON = ObjJSON(named, sign: sign, types: types)
        if obj.isDir {
            objJSON.mountDetails = await MountDetailsJSON.of(state.fs, at: path)
            if let m = state.fs.storage(anyStateAt: path) { objJSON.mount = MountJSON(m, admin: user.isAdmin) }
            else if storage == nil && path != "/" { objJSON.mount = .virtualFolder }
        }
        return APIResponse.ok(writing: GetPage(obj: objJSON, rawURL: rawURL, readme: rules.readme(for: path), header: rules.header(for: path),
                                      provider: storage?.record.driver ?? "unknown", related: related))
    }

    func dirs(_ req: Request, _ ctx: AppContext) async throws -> Response {
        var (user, body) = try await pathRequest(req)
        if body.forceRoot == true {
            guard user.isAdmin else { throw FSError.permissionDenied("force_root is for admins only") }
            user.basePath = "/"
        }
        let path = try Access.resolve(body.path ?? "/", for: user)
        let rules = state.rules
        try state.check(user, .read, path, password: password(req, body.password), ip: ctx.clientIP)
        struct Dir: Encodable { var name: String; var modified: String }
        let visible = Access.visibility(user, in: path, rules: rules) ?? { _ in true }
        let dirs = try await state.fs.list(path).objects.filter { $0.isDir && visible($0.name) }.map {
            Dir(name: $0.name, modified: TimeFormat.rfc3339($0.modified))
        }
        return APIResponse.ok(dirs)
    }

    /// The upload target from `File-Path` (percent-decoded once), authorised for writing.
    func uploadTarget(_ req: Request, _ user: User, ip: String) async throws -> (dir: String, name: String) {
        guard let raw = req.headers[.filePath], !raw.isEmpty else { throw FSError.badRequest("the File-Path header is required") }
        guard let decoded = URLPath.decode(raw) else { throw FSError.badRequest("the File-Path header is not valid percent-encoded UTF-8") }
        let path = try Access.resolve(decoded, for: user)
        guard path != "/" else { throw FSError.badRequest("File-Path must name a file") }
        let dir = VirtualPath.parent(path)
        let pw = req.headers[.folderPassword]
        try state.checkCreate(user, path, password: pw, ip: ip)
        // Over an existing file: the write bit itself (a folder rule's write grant only lets people add files).
        if !Access.can(user, .replace), (try? await state.fs.get(path)) != nil {
            try state.check(user, .replace, dir, password: pw, ip: ip)
        }
        return (dir, VirtualPath.base(path))
    }

    /// `Last-Modified` in milliseconds (most clients) or seconds (some), told apart by magnitude.
    func uploadModified(_ req: Request) -> Date? {
        req.headers[.lastModified].flatMap(ModifiedTime.secondsOrMilliseconds(text:))
    }

    func uploadStream(_ req: Request, name: String, size: Int64?, body: ByteStream) throws -> UploadStream {
        func hash(_ field: HTTPField.Name, length: Int) throws -> String? {
            guard let v = req.headers[field]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            guard v.count == length, v.allSatisfy(\.isHexDigit) else { throw FSError.badRequest("\(field) must be \(length) hex digits") }
            return v
        }
        return UploadStream(name: name, size: size, modified: uploadModified(req), mimeType: req.headers[.contentType],
                            md5: try hash(.fileMD5, length: 32), sha1: try hash(.fileSHA1, length: 40),
                            sha256: try hash(.fileSHA256, length: 64), body: body)
    }

    func put(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let (dir, name) = try await uploadTarget(req, user, ip: ctx.clientIP)
        var size: Int64?
        if let cl = req.headers[.contentLength] {
            guard let n = Int64(cl), n >= 0 else { throw FSError.badRequest("invalid Content-Length") }
            size = n
        } else if let xs = req.headers[.fileSize], let n = Int64(xs), n >= 0 {
            size = n
        }
        if Self.asTask(req) {
            return try await queued(req, user, dir: dir, name: name) { path in
                let written = try await Self.spoolBody(req.body, to: path)
                if let size, size != written {
                    throw FSError.badRequest("the upload was cut off: \(written) of \(size) bytes arrived")
                }
                return written
            }
        }
        let stream = try uploadStream(req, name: name, size: size, body: ByteStream(req.body))
        try await state.fs.put(stream, into: dir, overwrite: req.headers[.overwrite]?.lowercased() != "false")
        return APIResponse.ok()
    }

    /// `As-Task: true`: the body is spooled and stored by an upload task; the answer is `{task: {...}}`.
    static func asTask(_ req: Request) -> Bool {
        ["true", "1", "yes"].contains(req.headers[.asTask]?.lowercased().trimmingCharacters(in: .whitespaces) ?? "")
    }

    /// Spools the body with `spool` (given the file's path in the task spool; the bytes written) and queues its
    /// upload; a spool that fails or is refused is deleted.
    private func queued(_ req: Request, _ user: User, dir: String, name: String,
                        spool: (String) async throws -> Int64) async throws -> Response {
        let file = RandomString.make(24)
        let path = state.taskSpool + "/" + file
        try PrivateFiles.makeFolder(state.taskSpool)
        do {
            let size = try await spool(path)
            let stream = try uploadStream(req, name: name, size: size, body: .empty)
            let record = try await state.queueUpload(user, dir: dir, stream: stream, spool: file, size: size,
                                                     overwrite: req.headers[.overwrite]?.lowercased() != "false")
            struct Queued: Encodable { var task: TaskInfoJSON }
            return APIResponse.ok(Queued(task: TaskInfoJSON(record)))
        } catch {
            _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(path), recursively: false)
            throw error
        }
    }

    /// Writes a request body to a new file at `path`; the bytes written.
    static func spoolBody(_ body: RequestBody, to path: String) async throws -> Int64 {
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forWritingAt: FilePath(path), options: .newFile(replaceExisting: false)) { handle in
            var n: Int64 = 0
            try await handle.withBufferedWriter(capacity: .mebibytes(1)) { writer in
                for try await buffer in body {
                    n += Int64(buffer.readableBytes)
                    try await writer.write(contentsOf: buffer)
                }
            }
            return n
        }
    }

    /// `multipart/form-data` upload: the part named `file` is streamed to a spool file in temp_dir, then stored.
    func form(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let (dir, name) = try await uploadTarget(req, user, ip: ctx.clientIP)
        guard let contentType = req.headers[.contentType], contentType.lowercased().hasPrefix("multipart/form-data"),
              let boundary = Self.boundary(contentType)
        else { throw FSError.badRequest("the body must be multipart/form-data with a boundary") }
        if Self.asTask(req) {
            return try await queued(req, user, dir: dir, name: name) { try await Self.spoolFilePart(req.body, boundary: boundary, to: $0) }
        }
        let spool = state.config.tempDir + "/form-" + RandomString.make(20)
        do {
            let size = try await Self.spoolFilePart(req.body, boundary: boundary, to: spool)
            try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(spool)) { handle in
                let stream = try uploadStream(req, name: name, size: size, body: ByteStream(handle.readChunks(chunkLength: .mebibytes(1))))
                try await state.fs.put(stream, into: dir, overwrite: req.headers[.overwrite]?.lowercased() != "false")
            }
        } catch {
            _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(spool), recursively: false)
            throw error
        }
        _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(spool), recursively: false)
        return APIResponse.ok()
    }

    static func boundary(_ contentType: String) -> String? {
        for param in contentType.split(separator: ";").dropFirst() {
            let kv = param.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                let v = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return v.isEmpty ? nil : v
            }
        }
        return nil
    }

    /// Parses the multipart body as it arrives and writes the `file` part's bytes to `path`; returns their count.
    static func spoolFilePart(_ body: RequestBody, boundary: String, to path: String) async throws -> Int64 {
        final class PartState {
            var headers: [(String, String)] = []
            var isFile = false
            var sawFile = false
            var fileDone = false
            var pending: [ByteBuffer] = []
        }
        let parser = MultipartParser(boundary: boundary)
        let st = PartState()
        parser.onHeader = { name, value in
            st.headers.append((name, value))
            if name.lowercased() == "content-disposition", !st.fileDone,
               value.range(of: #"(^|;)\s*name="?file"?(;|$)"#, options: .regularExpression) != nil {
                st.isFile = true
                st.sawFile = true
            }
        }
        parser.onBody = { buffer in if st.isFile { st.pending.append(buffer) } }
        parser.onPartComplete = {
            if st.isFile { st.fileDone = true }
            st.isFile = false
            st.headers = []
        }
        var written: Int64 = 0
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forWritingAt: FilePath(path), options: .newFile(replaceExisting: true)) { handle in
            try await handle.withBufferedWriter(capacity: .mebibytes(1)) { writer in
                for try await chunk in body {
                    do { try parser.execute(chunk) } catch { throw FSError.badRequest("malformed multipart body") }
                    for b in st.pending {
                        written += Int64(b.readableBytes)
                        _ = try await writer.write(contentsOf: b)
                    }
                    st.pending.removeAll(keepingCapacity: true)
                }
            }
            guard st.sawFile else { throw FSError.badRequest("the multipart body has no part named 'file'") }
            guard st.fileDone else { throw FSError.badRequest("the multipart body was cut off") }
        }
        return written
    }
}
