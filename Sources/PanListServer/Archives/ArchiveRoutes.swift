import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListArchive
import PanListCore

/// Inside archives, in OpenList's terms: `/api/fs/archive/{meta,list}`, `/api/public/archive_extensions`, and
/// one member's bytes through `/ae`, `/ad` and `/ap` (`?inner=<member>&pass=<archive password>&sign=…`; all
/// three stream the member: no cloud links to a file inside an archive). Reading needs the read check of the
/// archive's path (folder password included) and permission bit 12; a member's link is signed for that
/// archive and that member by the listing that handed it out.
struct ArchiveRoutes: Sendable {
    let state: ServerState
    var archives: Archives { Archives(state: state) }

    struct Ask: Decodable {
        var path: String?
        var password: String?
        var archivePass: String?
        var innerPath: String?
        var page: Int?
        var perPage: Int?
        var refresh: Bool?
        enum CodingKeys: String, CodingKey {
            case path, password, page, refresh
            case archivePass = "archive_pass", innerPath = "inner_path", perPage = "per_page"
        }
    }

    func register(api: RouterGroup<AppContext>, router: Router<AppContext>) {
        api.get("public/archive_extensions") { _, _ in APIResponse.ok(ArchiveReader.extensions) }
        api.post("fs/archive/meta") { req, ctx in try await meta(req, ctx) }
        api.post("fs/archive/list") { req, ctx in try await list(req, ctx) }
        api.post("fs/archive/decompress") { req, ctx in try await decompress(req, ctx) }
        for prefix in ["ae", "ad", "ap"] {
            for method in [HTTPRequest.Method.get, .head] {
                router.on(RouterPath("\(prefix)/**"), method: method) { req, ctx in
                    do { return try await member(req, ctx, prefix: prefix) } catch { return DownloadRoutes.failure(error, req) }
                }
            }
        }
    }

    /// The user, the archive's absolute path and the request, checked: read (with the folder password) and bit 12.
    func open(_ req: Request, _ ctx: AppContext) async throws -> (User, String, Ask) {
        let user = try await state.authenticate(req)
        let ask = try await req.json(Ask.self, limit: state.config.maxRequestBody)
        let path = try Access.resolve(ask.path ?? "/", for: user)
        let password = ask.password.flatMap { $0.isEmpty ? nil : $0 } ?? req.headers[.folderPassword]
        try state.check(user, .read, path, password: password, ip: ctx.clientIP)
        try state.check(user, .readArchive, path, password: password)
        return (user, path, ask)
    }

    static func archivePassword(_ p: String?) -> String? { p.flatMap { $0.isEmpty ? nil : $0 } }

    struct Node: Encodable {
        var name: String
        var size: Int64
        var isDir: Bool
        var modified: String
        var children: [Node]?
        enum CodingKeys: String, CodingKey { case name, size, modified, children, isDir = "is_dir" }
    }

    /// The archive's tree: `{comment, encrypted, content: [{name, size, is_dir, modified, children}], raw_url}`.
    func meta(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let (_, path, ask) = try await open(req, ctx)
        let (members, archive) = try await archives.members(path, password: Self.archivePassword(ask.archivePass), clientIP: ctx.clientIP,
                                                            refresh: ask.refresh == true)
        struct Meta: Encodable {
            var comment = ""
            var encrypted: Bool
            var content: [Node]
            var rawURL: String
            enum CodingKeys: String, CodingKey { case comment, encrypted, content, rawURL = "raw_url" }
        }
        return APIResponse.ok(Meta(encrypted: members.contains { $0.isEncrypted }, content: Self.tree(members, undated: archive.modified),
                                   rawURL: state.baseURL(req) + "/ae" + URLPath.encode(path)))
    }

    /// One folder inside the archive: `{content: [{name, size, is_dir, modified, sign}], total}`; a file's
    /// `sign` goes with `/ae<archive>?inner=<member>&sign=…`.
    func list(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let (_, path, ask) = try await open(req, ctx)
        let (members, archive) = try await archives.members(path, password: Self.archivePassword(ask.archivePass), clientIP: ctx.clientIP,
                                                            refresh: ask.refresh == true)
        let inner = Self.innerPath(ask.innerPath ?? "/")
        let entries = try Self.children(of: inner, in: members)
        struct Item: Encodable {
            var name: String
            var size: Int64
            var isDir: Bool
            var modified: String
            var sign: String
            /// Alist's file type (1 folder, 2 video, 3 audio, 4 text, 5 image, 0 other), as in fs/list.
            var type: Int
            enum CodingKeys: String, CodingKey { case name, size, modified, sign, type, isDir = "is_dir" }
        }
        let types = state.fileTypes
        let expire = Int64(Date().timeIntervalSince1970) + Self.linkLifetime
        let items = entries.map { e in
            Item(name: e.name, size: e.size, isDir: e.isDir, modified: TimeFormat.rfc3339(e.modified ?? archive.modified),
                 sign: e.isDir ? "" : state.signer.sign(message: Self.signMessage(path, inner.isEmpty ? e.name : inner + "/" + e.name), expire: expire),
                 type: types.type(of: Obj(id: "", path: "", name: e.name, size: e.size, modified: Date(), isDir: e.isDir)))
        }
        let page = Paging.range(count: items.count, page: ask.page, perPage: ask.perPage).map { Array(items[$0]) } ?? items
        /// `encrypted`: some files need the archive's password (a zip lists its names without it).
        struct Page: Encodable { var content: [Item]; var total: Int; var encrypted: Bool }
        return APIResponse.ok(Page(content: page, total: items.count, encrypted: members.contains { $0.isEncrypted }))
    }

    /// How long a member's link from a listing works.
    static let linkLifetime: Int64 = 24 * 3600

    struct DecompressAsk: Decodable {
        var srcDir: String
        var dstDir: String
        var name: [String]
        var archivePass: String?
        var innerPath: String?
        var putIntoNewDir: Bool?
        var overwrite: Bool?
        var password: String?
        enum CodingKeys: String, CodingKey {
            case name, overwrite, password
            case srcDir = "src_dir", dstDir = "dst_dir", archivePass = "archive_pass", innerPath = "inner_path",
                 putIntoNewDir = "put_into_new_dir"
        }
    }

    /// Queues one extraction task per archive named (each checked first: reading and extracting archives at the
    /// source, writing at the destination, the archive opening with its password): `{tasks: [...]}`.
    func decompress(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let ask = try await req.json(DecompressAsk.self, limit: state.config.maxRequestBody)
        let (src, dst) = try (Access.resolve(ask.srcDir, for: user), Access.resolve(ask.dstDir, for: user))
        let pw = ask.password.flatMap { $0.isEmpty ? nil : $0 } ?? req.headers[.folderPassword]
        guard !ask.name.isEmpty else { throw FSError.badRequest("name: which archive to extract?") }
        try state.check(user, .write, dst, password: pw, ip: ctx.clientIP)
        var params: [DecompressParams] = []
        for n in ask.name {
            try VirtualPath.validateName(n)
            let path = VirtualPath.join(src, n)
            try state.check(user, .read, path, password: pw, ip: ctx.clientIP)
            try state.check(user, .readArchive, path, password: pw)
            try state.check(user, .decompress, path, password: pw)
            params.append(DecompressParams(src: path, dst: dst, inner: Self.innerPath(ask.innerPath ?? "/"), password: ask.archivePass ?? "",
                                           overwrite: ask.overwrite == true, newFolder: ask.putIntoNewDir == true))
        }
        var queued: [TaskRecord] = []
        for p in params { queued.append(try await state.queueDecompress(user, params: p, clientIP: ctx.clientIP)) }
        struct Tasks: Encodable { var tasks: [TaskInfoJSON] }
        return APIResponse.ok(Tasks(tasks: queued.map(TaskInfoJSON.init)))
    }

    static func signMessage(_ archive: String, _ member: String) -> String { "archive:" + archive + "\n" + member }

    /// A member path as the archive names it: no leading or trailing `/`, "" for the archive's top.
    static func innerPath(_ raw: String) -> String {
        raw.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.joined(separator: "/")
    }

    struct Entry { var name: String; var size: Int64; var isDir: Bool; var modified: Date? }

    /// The entries directly inside `folder` ("" for the top), folders first; folders that the archive only
    /// implies (a member `a/b/c.txt` without an `a/b/` entry) included.
    static func children(of folder: String, in members: [ArchiveMember]) throws -> [Entry] {
        let prefix = folder.isEmpty ? "" : folder + "/"
        var byName: [String: Entry] = [:]
        var exists = folder.isEmpty
        for m in members where m.path.hasPrefix(prefix) && m.path.count > prefix.count {
            exists = true
            let rest = m.path.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") {
                let name = String(rest[..<slash])
                if byName[name] == nil { byName[name] = Entry(name: name, size: 0, isDir: true, modified: nil) }
            } else {
                let name = String(rest)
                byName[name] = Entry(name: name, size: m.isDirectory ? 0 : m.size, isDir: m.isDirectory, modified: m.modified)
            }
        }
        if !exists {
            // A folder the archive names but that holds nothing: empty, not missing.
            if members.contains(where: { $0.path == folder && $0.isDirectory }) { return [] }
            if members.contains(where: { $0.path == folder && !$0.isDirectory }) {
                throw FSError.badRequest("“\(folder)” is a file in the archive, not a folder")
            }
            throw FSError.objectNotFound("/" + folder)
        }
        return byName.values.sorted { ($0.isDir ? 0 : 1, $0.name) < ($1.isDir ? 0 : 1, $1.name) }
    }

    /// The whole tree, made in one pass over the members. `undated`: the time of folders the archive only
    /// implies (the archive's own).
    static func tree(_ members: [ArchiveMember], undated: Date) -> [Node] {
        // Folder path ("" for the top) → its entries by name; a later member of a name wins, as in `children`.
        var folders: [String: [String: Entry]] = [:]
        for m in members {
            let parts = m.path.split(separator: "/")
            var parent = ""
            for (i, part) in parts.enumerated() {
                let name = String(part)
                if i == parts.count - 1 {
                    folders[parent, default: [:]][name] = Entry(name: name, size: m.isDirectory ? 0 : m.size, isDir: m.isDirectory, modified: m.modified)
                } else if folders[parent]?[name] == nil {
                    folders[parent, default: [:]][name] = Entry(name: name, size: 0, isDir: true, modified: nil)
                }
                parent = parent.isEmpty ? name : parent + "/" + name
            }
        }
        func nodes(_ folder: String) -> [Node] {
            (folders[folder] ?? [:]).values.sorted { ($0.isDir ? 0 : 1, $0.name) < ($1.isDir ? 0 : 1, $1.name) }.map { e in
                Node(name: e.name, size: e.size, isDir: e.isDir, modified: TimeFormat.rfc3339(e.modified ?? undated),
                     children: e.isDir ? nodes(folder.isEmpty ? e.name : folder + "/" + e.name) : nil)
            }
        }
        return nodes("")
    }

    /// `/ae<archive path>?inner=<member>&pass=…&sign=…`: the member's bytes, streamed as libarchive extracts them.
    func member(_ req: Request, _ ctx: AppContext, prefix: String) async throws -> Response {
        let path = try DownloadRoutes(state: state).virtualPath(req, prefix: prefix)
        let q = req.uri.queryParameters
        guard let rawInner = q.get("inner") else { throw FSError.badRequest("which file of the archive? (the `inner` parameter is missing)") }
        let inner = Self.innerPath(rawInner)
        guard !inner.isEmpty else { throw FSError.badRequest("`inner` names no file of the archive") }
        if let sign = q.get("sign"), !sign.isEmpty {
            try state.signer.verify(path: Self.signMessage(path, inner), sign: sign)
        } else {
            // As `/d`: where links must be signed (sign_all, a storage's enable_sign), only credentials stand in.
            let hasCredentials = !(req.headers[.authorization] ?? "").isEmpty
            if state.signRequired(state.fs.resolve(path)?.0, path: path) && !hasCredentials {
                throw FSError.unauthorized("sign missing: this link needs a valid sign")
            }
            let user = try await state.authenticate(req)
            try state.check(user, .read, path, password: nil)
            try state.check(user, .readArchive, path, password: nil)
        }
        let password = Self.archivePassword(q.get("pass"))
        let archives = self.archives
        let (members, _) = try await archives.members(path, password: password, clientIP: ctx.clientIP)
        guard let m = members.first(where: { $0.path == inner }) else {
            if members.contains(where: { $0.path.hasPrefix(inner + "/") }) { throw FSError.badRequest(ArchiveError.notAFile(path: inner).description) }
            throw FSError.objectNotFound("/" + inner)
        }
        guard m.isFile || m.isHardLink else { throw FSError.badRequest(ArchiveError.notAFile(path: inner).description) }
        let (source, _) = try await archives.source(path, clientIP: ctx.clientIP)
        let slot = req.method == .head ? nil : try Archives.memberSlots.take()
        if m.isEncrypted && req.method != .head {
            // The password is only proven by decrypting: tried on the first bytes before the answer starts (an
            // error after the headers could only cut the download short).
            struct Enough: Error {}
            do {
                _ = try await Archives.run(.list) { isCancelled in
                    try ArchiveReader.extract(source, member: inner, password: password, limits: Archives.limits,
                                              isCancelled: isCancelled) { _ in throw Enough() }
                }
            } catch is Enough {}
        }
        let name = String(inner.split(separator: "/").last ?? Substring(inner))
        let mime = ContentTypes.forName(name)
        var headers = HTTPFields()
        headers[.contentType] = mime
        headers[.contentDisposition] = ContentTypes.disposition(name: name, inline: prefix != "ad" && ContentTypes.isSafeInline(mime))
        // A member whose size the archive does not declare is sent without a length (chunked).
        if m.sizeKnown { headers[.contentLength] = String(m.size) }
        headers[.acceptRanges] = "none"
        headers[.cacheControl] = "private, max-age=0"
        if req.method == .head || (m.sizeKnown && m.size == 0) {
            // No body, and for a size not known no length either (an empty body would say 0).
            let none = m.sizeKnown ? ResponseBody() : ResponseBody { try await $0.finish(nil) }
            return Response(status: .ok, headers: headers, body: none)
        }
        let size = m.size, known = m.sizeKnown, logger = state.logger
        let stream: @Sendable (inout any ResponseBodyWriter) async throws -> Void = { writer in
            let pipe = ChunkPipe()
            let producer = Task {
                do {
                    _ = try await Archives.run(.member) { isCancelled in
                        try ArchiveReader.extract(source, member: inner, password: password, limits: Archives.limits,
                                                  isCancelled: { isCancelled() || pipe.isGone }) { try pipe.send($0, isCancelled: isCancelled) }
                    }
                    pipe.finish()
                } catch { pipe.finish(error) }
                // The slot stands for the thread of the member pool: free once the extraction has let it go.
                slot?.release()
            }
            defer { pipe.abandon(); producer.cancel() }
            var sent: Int64 = 0
            do {
                for try await chunk in pipe.stream {
                    pipe.took()
                    sent += Int64(chunk.readableBytes)
                    try await writer.write(chunk)
                }
                guard !known || sent == size else { throw FSError.conflict("\(inner) gave \(sent) of its \(size) bytes") }
            } catch {
                if !(error is CancellationError) {
                    logger.warning("\(LogText.quoted(inner)) of \(LogText.quoted(path)) cut off after \(sent) of \(size) bytes: \(ErrorText.describe(error))")
                }
                throw error
            }
            try await writer.finish(nil)
        }
        let body = known ? ResponseBody(contentLength: Int(size)) { try await stream(&$0) } : ResponseBody { try await stream(&$0) }
        return Response(status: .ok, headers: headers, body: body)
    }
}
