import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore

/// Folders and selections downloaded as one ZIP, written on the fly (`ZipStream`): stored entries, so the
/// exact length is known once the tree is listed, and nothing is kept on disk or in memory but the plan.
///
/// `POST /api/fs/zip {dir, names, password}` checks that the user may read what they asked for and answers
/// with a signed URL, `/z/<name>.zip?t=<ticket>&sign=<sign>`, that a browser or a download manager fetches
/// without credentials. The ticket names the user (and their password change stamp), the folder (as the user
/// sees it, relative to their base folder), the names and a keyed digest (HMAC with the signing key) of the
/// folder password they gave; the sign (the same key as `/d` links, 24 hours) binds them.
/// Each fetch checks the user's rights again as they are then, lists the tree as that user browses it
/// (hidden names left out, folders behind another folder password than the one given left out), and streams
/// each file from its storage (cloud files through their links).
struct ZipRoutes: Sendable {
    let state: ServerState
    /// A ticket this long (base64) makes URLs that proxies still pass; a bigger selection is refused.
    static let maxTicket = 6000
    static let maxEntries = 1_000_000
    /// Names a request may select (a bigger selection would not fit in a ticket anyway).
    static let maxNames = 10_000
    /// ZIP answers being planned or streamed at once in this process: a plan of a big tree holds its entries in
    /// memory (about 200 bytes each) while it streams.
    static let busy = BusySlots(8, what: "ZIP downloads")
    static let lifetime: Int64 = 24 * 3600

    struct Ticket: Codable {
        /// User id, and their password change stamp (a changed password ends the links made before).
        var u: Int
        var s: Int64
        /// The folder (as the user sees it) and the names in it ([]: all of it).
        var d: String
        var n: [String]
        /// Keyed digest of the folder password given for `d`'s guard ("": none).
        var g: String
    }

    struct Ask: Decodable {
        var dir: String?
        var names: [String]?
        var password: String?
    }

    func register(api: RouterGroup<AppContext>, router: Router<AppContext>) {
        api.post("fs/zip") { req, ctx in try await prepare(req, ctx) }
        for method in [HTTPRequest.Method.get, .head] {
            router.on("z/**", method: method) { req, ctx in
                do { return try await serve(req, ctx) } catch { return DownloadRoutes.failure(error, req) }
            }
        }
    }

    /// Checks the request as a listing would and answers with the link.
    func prepare(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let ask = try await req.json(Ask.self, limit: state.config.maxRequestBody)
        let dir = try Access.resolve(ask.dir ?? "/", for: user)
        let asked = ask.names ?? []
        guard asked.count <= Self.maxNames else {
            throw FSError.badRequest("too many items are selected for one link (\(asked.count)); select their folder instead, or fewer items")
        }
        var names: [String] = [], seen = Set<String>()
        for n in asked where seen.insert(n).inserted {
            guard !n.isEmpty, !n.contains("/"), n != ".", n != ".." else { throw FSError.badRequest("\(n.isEmpty ? "an empty name" : "“\(n)”") is not a name in a folder") }
            names.append(n)
        }
        let password = ask.password.flatMap { $0.isEmpty ? nil : $0 } ?? req.headers[.folderPassword]
        try state.check(user, .read, dir, password: password, ip: ctx.clientIP)
        let rules = state.rules
        // The folder and the names must be there now (the link still checks again when it is fetched).
        guard try await state.fs.get(dir).0.isDir else { throw FSError.badRequest("\(Access.userPath(dir, for: user)) is a file, not a folder") }
        if !names.isEmpty {
            let listing = try await state.fs.list(dir)
            let visible = Access.visibility(user, in: dir, rules: rules) ?? { _ in true }
            let present = Set(listing.objects.lazy.filter { visible($0.name) }.map(\.name))
            for n in names where !present.contains(n) { throw FSError.objectNotFound(Access.userPath(VirtualPath.join(dir, n), for: user)) }
        }
        var proof = ""
        if let rule = rules.passwordRule(for: dir), let password { proof = self.proof(user: user.id, rulePath: rule.path, password: password) }
        let ticket = Ticket(u: user.id, s: user.passwordTimestamp, d: Access.userPath(dir, for: user), n: names, g: proof)
        let encoded = Base64URL.encode(try JSONEncoder().encode(ticket), padded: false)
        guard encoded.utf8.count <= Self.maxTicket else {
            throw FSError.badRequest("too many items are selected for one link (\(names.count)); select their folder instead, or fewer items")
        }
        let sign = state.signer.sign(message: "zip:" + encoded, expire: Int64(Date().timeIntervalSince1970) + Self.lifetime)
        let name = Self.zipName(dir: dir, names: names)
        struct Answer: Encodable { var url: String; var name: String }
        let url = state.baseURL(req) + "/z/" + URLPath.encode(name, keepSlash: false) + "?t=" + encoded + "&sign=" + URLPath.encode(sign, keepSlash: false)
        return APIResponse.ok(Answer(url: url, name: name))
    }

    static func zipName(dir: String, names: [String]) -> String {
        let stem = names.count == 1 ? names[0] : (dir == "/" ? "root" : VirtualPath.base(dir))
        return stem + ".zip"
    }

    /// What the ticket carries for a folder password: an HMAC with the server's signing key, so the URL tells
    /// nothing about the password (an unkeyed hash of a short password is found by trying).
    func proof(user: Int, rulePath: String, password: String) -> String {
        state.signer.digest("zip-guard\u{0}\(user)\u{0}\(rulePath)\u{0}\(password)")
    }

    /// One planned entry and where its bytes come from (nil: a folder).
    struct Planned {
        var entry: ZipStream.Entry
        var source: String?
    }

    func serve(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let q = req.uri.queryParameters
        guard let encoded = q.get("t"), !encoded.isEmpty, let sign = q.get("sign") else {
            throw FSError.unauthorized("this ZIP link is incomplete: ask for a new one")
        }
        try state.signer.verify(path: "zip:" + encoded, sign: sign)
        guard let data = Base64URL.decode(encoded), let ticket = try? JSONDecoder().decode(Ticket.self, from: Data(data)) else {
            throw FSError.badRequest("this ZIP link is damaged: ask for a new one")
        }
        guard let stored = try await state.store.user(id: ticket.u), stored.user.passwordTimestamp == ticket.s else {
            throw FSError.unauthorized("this ZIP link is no longer valid (its user changed their password or was deleted): ask for a new one")
        }
        let user = stored.user
        let rules = state.rules
        let dir = try Access.resolve(ticket.d, for: user)
        // The folder password given when the link was made, while it is still the folder's password.
        var password: String?
        if let rule = rules.passwordRule(for: dir), !ticket.g.isEmpty,
           Access.constantTimeEqual(ticket.g, proof(user: user.id, rulePath: rule.path, password: rule.password)) {
            password = rule.password
        }
        try state.check(user, .read, dir, password: password)
        let slot = try Self.busy.take()
        let plan = try await self.plan(user: user, dir: dir, names: ticket.n, rules: rules, password: password)
        let entries = plan.map(\.entry)
        let length = ZipStream.length(of: entries)
        var headers = HTTPFields()
        headers[.contentType] = "application/zip"
        headers[.contentDisposition] = ContentTypes.disposition(name: Self.zipName(dir: dir, names: ticket.n), inline: false)
        headers[.contentLength] = String(length)
        headers[.acceptRanges] = "none"
        headers[.cacheControl] = "no-store"
        if req.method == .head { return Response(status: .ok, headers: headers, body: .init()) }
        let fs = state.fs, logger = state.logger, clientIP = ctx.clientIP
        let body = ResponseBody(contentLength: Int(length)) { writer in
            defer { slot.release() }
            var zip = ZipStream.Writer(entries: entries)
            do {
                for p in plan {
                    _ = try await zip.begin { try await writer.write($0) }
                    if let source = p.source, p.entry.size > 0 {
                        try await Self.copy(source, size: p.entry.size, fs: fs, clientIP: clientIP) { buffer in
                            try await zip.write(buffer) { try await writer.write($0) }
                        }
                    }
                    try await zip.end { try await writer.write($0) }
                }
                try await zip.finish { try await writer.write($0) }
            } catch {
                if !(error is CancellationError) {
                    logger.warning("ZIP of \(LogText.quoted(dir)) cut off after \(zip.bytesOut) of \(length) bytes: \(ErrorText.describe(error))")
                }
                throw error
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// A file's bytes, from its storage; a cloud link refused before the first byte is asked for again once.
    static func copy(_ path: String, size: Int64, fs: FileSystem, clientIP: String,
                     _ out: (ByteBuffer) async throws -> Void) async throws {
        var sent: Int64 = 0
        for attempt in 0..<2 {
            do {
                let (link, _, _) = try await fs.cachedLink(path, args: LinkArgs(clientIP: clientIP, headers: [:]), fresh: attempt > 0)
                try await LinkReader.withStream(link, size: size, remote: RemoteProxy.Fetcher()) { stream in
                    for try await buffer in stream {
                        sent += Int64(buffer.readableBytes)
                        try await out(buffer)
                    }
                }
                return
            } catch {
                if sent > 0 || attempt == 1 || error is CancellationError { throw error }
            }
        }
    }

    /// The entries of the ZIP, in order (a folder before what it holds), as `user` would browse them.
    func plan(user: User, dir: String, names: [String], rules: FolderRules, password: String?) async throws -> [Planned] {
        let fs = state.fs
        var out: [Planned] = []
        func readable(_ path: String) -> Bool { Access.allows(user, .read, path, rules: rules, password: password) }
        func visibleChildren(of folder: String) async throws -> [Obj] {
            let visible = Access.visibility(user, in: folder, rules: rules) ?? { _ in true }
            return try await fs.list(folder).objects.filter { visible($0.name) && readable(VirtualPath.join(folder, $0.name)) }
        }
        var top = try await visibleChildren(of: dir)
        if !names.isEmpty {
            let byName = Dictionary(top.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            top = try names.map { n in
                guard let o = byName[n] else { throw FSError.objectNotFound(Access.userPath(VirtualPath.join(dir, n), for: user)) }
                return o
            }
        }
        // Depth first, a folder's entry before its contents: a stack of (object, absolute path, name in the ZIP).
        var stack: [(Obj, String, String)] = zip(top, Self.entryNames(top)).reversed().map { ($0, VirtualPath.join(dir, $0.name), $1) }
        while let (o, path, name) = stack.popLast() {
            if out.count >= Self.maxEntries {
                throw FSError.tooLarge("more than \(Self.maxEntries) files and folders: download smaller parts of it")
            }
            guard name.utf8.count < 65_000 else { throw FSError.badRequest("a path in it is too long for a ZIP: download a deeper folder") }
            if o.isDir {
                out.append(Planned(entry: .init(name: name + "/", size: 0, modified: o.modified, isDir: true), source: nil))
                let children = try await visibleChildren(of: path)
                for (c, n) in zip(children, Self.entryNames(children)).reversed() { stack.append((c, VirtualPath.join(path, c.name), name + "/" + n)) }
            } else {
                out.append(Planned(entry: .init(name: name, size: max(0, o.size), modified: o.modified, isDir: false), source: path))
            }
        }
        return out
    }

    /// A file name as a ZIP entry's last part: `\` (a folder separator to Windows' unzip tools, which would
    /// put the file in folders that are not there) becomes `_`.
    static func entryName(_ name: String) -> String {
        name.contains("\\") ? name.replacingOccurrences(of: "\\", with: "_") : name
    }

    /// The ZIP names of one folder's entries, in order: `entryName` of each; where a changed name meets one
    /// already there (`a\b` next to `a_b`), it gets " (2)", " (3)"… before its extension.
    static func entryNames(_ objs: [Obj]) -> [String] {
        var taken = Set(objs.lazy.map(\.name).filter { !$0.contains("\\") })
        return objs.map { o in
            guard o.name.contains("\\") else { return o.name }
            let plain = entryName(o.name)
            var name = plain
            let dot = o.isDir ? nil : plain.lastIndex(of: ".").flatMap { $0 == plain.startIndex ? nil : $0 }
            var n = 2
            while taken.contains(name) {
                name = dot.map { String(plain[..<$0]) + " (\(n))" + String(plain[$0...]) } ?? plain + " (\(n))"
                n += 1
            }
            taken.insert(name)
            return name
        }
    }
}
