import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import PanListCore
import PanListStore

extension HTTPRequest.Method {
    static let propfind = Self("PROPFIND")!
    static let proppatch = Self("PROPPATCH")!
    static let mkcol = Self("MKCOL")!
    static let copy = Self("COPY")!
    static let move = Self("MOVE")!
    static let lock = Self("LOCK")!
    static let unlock = Self("UNLOCK")!
}

extension HTTPField.Name {
    static let dav = Self("DAV")!
    static let depth = Self("Depth")!
    static let destination = Self("Destination")!
    static let overwriteDAV = Self("Overwrite")!
    static let lockToken = Self("Lock-Token")!
    static let ifDAV = Self("If")!
    static let timeoutDAV = Self("Timeout")!
    static let ocMtime = Self("X-OC-Mtime")!
    static let ocChecksum = Self("OC-Checksum")!
    static let msAuthorVia = Self("MS-Author-Via")!
}

extension HTTPResponse.Status {
    static let multiStatusDAV = HTTPResponse.Status(code: 207, reasonPhrase: "Multi-Status")
    static let lockedDAV = HTTPResponse.Status(code: 423, reasonPhrase: "Locked")
}

/// A WebDAV failure with its status (and, for some, an RFC 4918 precondition element).
struct DAVError: Error {
    var status: HTTPResponse.Status
    var message: String
    var condition: String? = nil
}

extension FSError {
    /// The one mapping of core errors to WebDAV statuses.
    var davStatus: HTTPResponse.Status {
        switch self {
        case .notFound, .noSuchRecord: return .notFound
        case .alreadyExists: return .methodNotAllowed
        case .notSupported: return .forbidden
        case .permissionDenied: return .forbidden
        case .invalidPath, .badRequest: return .badRequest
        case .unauthorized: return .unauthorized
        case .tooLarge: return .contentTooLarge
        case .storageUnavailable, .rateLimited, .unavailable: return .serviceUnavailable
        case .upstream: return .badGateway
        case .conflict: return .conflict
        case .internalError: return .internalServerError
        }
    }
}

/// WebDAV at `/dav`, on the same file system, authorization and download policy as `/api` and `/d`.
struct DAVRoutes: Sendable {
    let state: ServerState
    let locks: DAVLocks
    let credentials: CredentialCache

    static let prefix = "/dav"
    /// PROPFIND Depth: infinity answers at most this many resources, then 403 propfind-finite-depth.
    static let infinityLimit = 10_000
    static let methods: [HTTPRequest.Method] = [.options, .propfind, .proppatch, .get, .head, .put, .delete, .mkcol, .copy, .move,
                                                .lock, .unlock, .post]

    init(state: ServerState) {
        self.state = state
        self.locks = DAVLocks(store: state.store)
        self.credentials = CredentialCache()
    }

    func register(on router: Router<AppContext>) {
        for method in Self.methods {
            for path in ["dav", "dav/**"] {
                router.on(RouterPath(path), method: method) { req, ctx in
                    do {
                        return try await handle(req, ctx)
                    } catch let e as DAVError {
                        return Self.failure(e, head: req.method == .head)
                    } catch {
                        let e = FSError.from(error)
                        var d = DAVError(status: e.davStatus, message: e.message)
                        if case .unauthorized = e { d.status = .unauthorized }
                        return Self.failure(d, head: req.method == .head)
                    }
                }
            }
        }
    }

    static func failure(_ e: DAVError, head: Bool) -> Response {
        var headers = HTTPFields()
        if e.status == .unauthorized { headers[.wwwAuthenticate] = "Basic realm=\"PanList\", charset=\"UTF-8\"" }
        if let c = e.condition {
            headers[.contentType] = "application/xml; charset=utf-8"
            let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:\(c)/></D:error>"
            return Response(status: e.status, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(string: body)))
        }
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: e.status, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(string: e.message + "\n")))
    }

    // MARK: dispatch

    func handle(_ req: Request, _ ctx: AppContext) async throws -> Response {
        if req.method == .options { return try await options(req, ctx) }
        let user = try await authenticate(req, ctx)
        guard Access.can(user, .davRead) else { throw FSError.permissionDenied("permission denied: this user may not use WebDAV") }
        let path = try resourcePath(req.uri.path, user: user)
        // WebDAV has no way to send a folder password: guarded folders need "access without password".
        try state.check(user, .read, path, password: nil)
        switch req.method {
        case .propfind: return try await propfind(req, user: user, path: path)
        case .get, .head: return try await get(req, ctx, user: user, path: path)
        case .put: return try await put(req, user: user, path: path)
        case .mkcol: return try await mkcol(req, user: user, path: path)
        case .delete: return try await delete(req, user: user, path: path)
        case .copy, .move: return try await copyMove(req, user: user, path: path, move: req.method == .move)
        case .proppatch: return try await proppatch(req, user: user, path: path)
        case .lock: return try await lock(req, user: user, path: path)
        case .unlock: return try await unlock(req, user: user, path: path)
        default: throw DAVError(status: .methodNotAllowed, message: "\(req.method) is not supported here")
        }
    }

    // MARK: paths and hrefs

    /// The absolute virtual path of a `/dav/…` URL path (raw, percent-encoded): decoded once, normalised
    /// (so `..` is refused), inside the user's base path.
    func resourcePath(_ raw: String, user: User) throws -> String {
        var rest = Substring(raw)
        guard rest.hasPrefix(Self.prefix) else { throw DAVError(status: .notFound, message: "not a WebDAV path") }
        rest = rest.dropFirst(Self.prefix.count)
        if let q = rest.firstIndex(of: "?") { rest = rest[..<q] }
        guard let decoded = URLPath.decode(rest) else { throw DAVError(status: .badRequest, message: "the path is not valid percent-encoded UTF-8") }
        return try Access.resolve(decoded.isEmpty ? "/" : decoded, for: user)
    }

    func href(_ path: String, user: User, isDir: Bool) -> String {
        let rel = Access.userPath(path, for: user)
        var h = Self.prefix + URLPath.encode(rel)
        if isDir && !h.hasSuffix("/") { h += "/" }
        return h
    }

    /// The path part of a `Destination` (or tagged `If`) URL, as an absolute virtual path.
    func pathOfURL(_ url: String, user: User) throws -> String {
        var p = Substring(url)
        if let scheme = p.range(of: "://") {
            p = p[scheme.upperBound...]
            guard let slash = p.firstIndex(of: "/") else { throw DAVError(status: .badRequest, message: "bad URL \(url)") }
            p = p[slash...]
        }
        guard p.hasPrefix(Self.prefix + "/") || p == Self.prefix else {
            throw DAVError(status: .badGateway, message: "the destination is not on this WebDAV server")
        }
        return try resourcePath(String(p), user: user)
    }

    // MARK: authentication

    func authenticate(_ req: Request, _ ctx: AppContext) async throws -> User {
        let header = req.headers[.authorization] ?? ""
        let user: User
        if header.lowercased().hasPrefix("basic ") {
            user = try await basic(String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces), ip: ctx.clientIP)
        } else if header.isEmpty {
            guard let guest = try await state.storedUser(named: "guest"), !guest.user.disabled else {
                throw DAVError(status: .unauthorized, message: "log in with your PanList user name and password")
            }
            user = guest.user
        } else {
            user = try await state.authenticate(req)  // a login token or the admin token (Bearer or bare)
        }
        if user.disabled { throw DAVError(status: .forbidden, message: "this user is disabled") }
        return user
    }

    /// HTTP Basic with the user's password. Verified credentials are remembered for a minute (every WebDAV
    /// request authenticates, and clients send hundreds), keyed by a hash of the header, and forgotten
    /// when the user's password or record changes.
    func basic(_ encoded: String, ip: String) async throws -> User {
        guard let data = Data(base64Encoded: encoded), let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else {
            throw DAVError(status: .unauthorized, message: "malformed Basic credentials")
        }
        let name = String(text[..<colon]), password = String(text[text.index(after: colon)...])
        let key = SHA256.hash(data: Data(text.utf8)).hexString
        do {
            // The limiter first: while a user or address is blocked, remembered credentials do not let anyone in.
            try state.checkNotBlocked(username: name, ip: ip, via: "webdav")
        } catch {
            throw DAVError(status: .tooManyRequests, message: error.message)
        }
        if let stored = try await state.storedUser(named: name), let hit = credentials.get(key), hit == stored.user, !stored.user.isGuest {
            Metrics.credentialCache.hit.increment()
            return stored.user
        }
        Metrics.credentialCache.miss.increment()
        let verified: StoredUser?
        // Requests that arrive together with the same credentials (a client opening several connections)
        // share one check: one password verification, one count in the limiter.
        let state = self.state
        do {
            verified = try await credentials.once(key) {
                try await state.verifyLogin(username: name, staticHash: Passwords.staticHash(password), ip: ip, via: "webdav")
            }
        } catch FSError.rateLimited(let message) {
            throw DAVError(status: .tooManyRequests, message: message)
        }
        guard let stored = verified else { throw DAVError(status: .unauthorized, message: "user name or password is incorrect") }
        credentials.put(key, stored.user)
        return stored.user
    }

    // MARK: OPTIONS

    func options(_ req: Request, _ ctx: AppContext) async throws -> Response {
        var headers = HTTPFields()
        headers[.dav] = "1, 2"
        headers[.msAuthorVia] = "DAV"
        headers[.allow] = "OPTIONS, PROPFIND, PROPPATCH, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, LOCK, UNLOCK"
        headers[.contentLength] = "0"
        return Response(status: .ok, headers: headers)
    }

    // MARK: properties

    /// The live properties PanList serves: RFC 4918's (in allprop order) and RFC 4331's quota, on request.
    enum LiveProperty: String, CaseIterable {
        case resourcetype, displayname, getcontentlength, getlastmodified, creationdate, getetag, getcontenttype
        case supportedlock, lockdiscovery
        case quotaAvailable = "quota-available-bytes", quotaUsed = "quota-used-bytes"

        /// What allprop and propname return (quota only when asked for by name).
        static let standard: [LiveProperty] = allCases.filter { !$0.isQuota }
        var isQuota: Bool { self == .quotaAvailable || self == .quotaUsed }
        var name: QName { .dav(rawValue) }

        init?(_ q: QName) {
            guard q.ns == "DAV:" else { return nil }
            self.init(rawValue: q.name)
        }
    }
    static let liveNames: [QName] = LiveProperty.standard.map(\.name)

    static let lockEntries = "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
        + "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
    static let supportedLock = "<D:supportedlock>" + lockEntries + "</D:supportedlock>"

    static func etag(_ obj: Obj) -> String {
        if let md5 = obj.hashes["md5"], !md5.isEmpty { return "\"\(md5)\"" }
        return EntityTag.of(modified: obj.modified, size: obj.size)
    }

    /// Whether live property `prop` exists on `o` (length, ETag and type are for files; quota where known).
    static func applies(_ prop: LiveProperty, _ o: borrowing Obj, _ page: PropfindPage) -> Bool {
        switch prop {
        case .getcontentlength, .getetag, .getcontenttype: return !o.isDir
        case .quotaAvailable, .quotaUsed: return page.quota != nil
        default: return true
        }
    }

    /// Writes live property `prop` of `o` at `p` as a whole element (`<D:name>value</D:name>`, or `<D:name/>`
    /// when empty); the one rendering of live properties, for allprop, prop and propname alike. Call only
    /// when `applies`.
    func write(_ prop: LiveProperty, _ o: borrowing Obj, _ p: String, _ page: PropfindPage, _ memo: inout RenderMemo, into out: inout XMLOut) {
        switch prop {
        case .resourcetype:
            out.raw(o.isDir ? "<D:resourcetype><D:collection/></D:resourcetype>" : "<D:resourcetype/>")
        case .displayname:
            if p == page.base { out.raw("<D:displayname/>"); return }
            out.raw("<D:displayname>"); out.text(o.name); out.raw("</D:displayname>")
        case .getcontentlength:
            out.raw("<D:getcontentlength>"); out.raw(String(o.size)); out.raw("</D:getcontentlength>")
        case .getlastmodified:
            out.raw("<D:getlastmodified>"); out.httpDate(o.modified); out.raw("</D:getlastmodified>")
        case .creationdate:
            out.raw("<D:creationdate>")
            if page.windows { out.httpDate(o.created) } else { out.rfc3339(o.created) }
            out.raw("</D:creationdate>")
        case .getetag:
            out.raw("<D:getetag>&quot;")
            if let md5 = o.hashes["md5"], !md5.isEmpty { out.text(md5) } else {
                // EntityTag.of, without building a String (before 1970 the sign needs the String form).
                let micros = EntityTag.micros(o.modified)
                if micros >= 0 { out.hex(UInt64(micros)) } else { out.raw(String(micros, radix: 16)) }
                out.raw("-")
                out.hex(UInt64(bitPattern: o.size))
            }
            out.raw("&quot;</D:getetag>")
        case .getcontenttype:
            out.raw("<D:getcontenttype>"); out.text(memo.contentType(o.name)); out.raw("</D:getcontenttype>")
        case .supportedlock:
            out.raw(Self.supportedLock)
        case .lockdiscovery:
            let active = page.locks.on(p)
            if active.isEmpty { out.raw("<D:lockdiscovery/>"); return }
            out.raw("<D:lockdiscovery>")
            for l in active { out.raw(DAVLocks.activeLock(l, href: href(l.path, user: page.user, isDir: false))) }
            out.raw("</D:lockdiscovery>")
        case .quotaAvailable:
            out.raw("<D:quota-available-bytes>"); out.raw(String(page.quota?.freeSpace ?? 0)); out.raw("</D:quota-available-bytes>")
        case .quotaUsed:
            out.raw("<D:quota-used-bytes>"); out.raw(String(page.quota?.usedSpace ?? 0)); out.raw("</D:quota-used-bytes>")
        }
    }

    func propfind(_ req: Request, user: User, path: String) async throws -> Response {
        let body = try await req.body.collect(upTo: DAVXML.maxBody)
        guard let request = PropfindRequest.parse(Data(body.readableBytesView)) else {
            throw DAVError(status: .badRequest, message: "the PROPFIND body is not valid XML")
        }
        let depth = req.headers[.depth]?.lowercased() ?? "infinity"
        guard ["0", "1", "infinity"].contains(depth) else { throw DAVError(status: .badRequest, message: "Depth must be 0, 1 or infinity") }
        let obj: Obj
        do { (obj, _) = try await state.fs.get(path) } catch {
            throw DAVError(status: .notFound, message: FSError.from(error).message)
        }
        // The answer's resources, by folder: the target itself, then each listed folder's entries as the file
        // system gave them (shared, not copied; filtered only when names are hidden from this user).
        var groups: [PropfindGroup] = [PropfindGroup(folder: nil, target: path, objs: [obj])]
        var total = 1
        let rules = state.rules
        if obj.isDir && depth != "0" {
            var queue = [path]
            while let dir = queue.first {
                queue.removeFirst()
                var children = (try? await state.fs.list(dir).objects) ?? []
                if let open = Access.openEntries(user, in: dir, rules: rules) { children = children.filter { open($0.name) } }
                total += children.count
                if depth == "infinity" {
                    for c in children where c.isDir { queue.append(VirtualPath.join(dir, c.name)) }
                }
                groups.append(PropfindGroup(folder: dir, target: "", objs: children))
                if depth == "infinity" && total > Self.infinityLimit {
                    throw DAVError(status: .forbidden, message: "Depth: infinity is limited to \(Self.infinityLimit) resources",
                                   condition: "propfind-finite-depth")
                }
                if depth == "1" { break }
            }
        }
        let ua = req.headers[.userAgent] ?? ""
        var wantsQuota = false
        if case .prop(let names) = request { wantsQuota = names.contains { LiveProperty($0)?.isQuota == true } }
        let quota = wantsQuota ? await state.fs.resolve(path)?.0.details() : nil
        // Dead properties: one query for the target and one for everything below it.
        var deadByPath = obj.isDir && depth != "0" ? ((try? await state.store.deadProperties(below: path)) ?? [:]) : [:]
        deadByPath[path] = (try? await state.store.deadProperties(path)) ?? []
        let page = PropfindPage(request: request, user: user, windows: ua.contains("Microsoft-WebDAV"), quota: quota,
                                base: Access.resolve(root: user), locks: try await locks.live(), dead: deadByPath)
        var headers = HTTPFields()
        headers[.contentType] = "application/xml; charset=utf-8"
        // A small answer goes in one piece (with its length); a big one is sent in chunks of about 128 KiB
        // as it is written, so a 10,000-entry folder never sits in memory as one 7 MB buffer.
        let chunk = 128 * 1024
        var cursor = PropfindCursor()
        var out = XMLOut(capacity: min(chunk, 760 * total) + 4096)
        out.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">")
        if renderChunk(&out, groups, &cursor, page, until: chunk) {
            out.raw("</D:multistatus>")
            return Response(status: .multiStatusDAV, headers: headers, body: .init(byteBuffer: out.take()))
        }
        let first = out.take(), all = groups, routes = self, cursorSoFar = cursor
        return Response(status: .multiStatusDAV, headers: headers, body: ResponseBody { writer in
            try await writer.write(first)
            var cursor = cursorSoFar
            var out = XMLOut(capacity: chunk + 8192)
            while true {
                let done = routes.renderChunk(&out, all, &cursor, page, until: chunk)
                if done { out.raw("</D:multistatus>") }
                try await writer.write(out.take())
                if done { break }
            }
            try await writer.finish(nil)
        })
    }

    /// Resources of one PROPFIND answer that share a folder: the entries of `folder` (their paths are the
    /// folder joined with their names), or, without a folder, the one resource at `target`.
    struct PropfindGroup: Sendable {
        var folder: String?
        var target: String
        var objs: [Obj]
    }

    /// Where rendering stopped: the group, the entry in it, and the content type memo.
    struct PropfindCursor: Sendable {
        var group = 0, item = 0
        var memo = RenderMemo()
    }

    /// What every `<D:response>` of one PROPFIND answer shares.
    struct PropfindPage: Sendable {
        let request: PropfindRequest
        let user: User
        /// Windows' WebDAV client wants `creationdate` as an HTTP date.
        let windows: Bool
        let quota: StorageDetails?
        /// The user's root (its displayname is empty).
        let base: String
        let locks: DAVLocks.Live
        let dead: [String: [DeadProperty]]
        /// Whether any resource has dead properties (most listings have none: no lookup per entry then).
        let anyDead: Bool

        init(request: PropfindRequest, user: User, windows: Bool, quota: StorageDetails?, base: String,
             locks: DAVLocks.Live, dead: [String: [DeadProperty]]) {
            self.request = request; self.user = user; self.windows = windows; self.quota = quota
            self.base = base; self.locks = locks; self.dead = dead
            anyDead = dead.values.contains { !$0.isEmpty }
        }
    }

    /// The content type of the previous entry, by extension (a folder's files mostly share a few).
    struct RenderMemo: Sendable {
        private var ext = "", mime = ""

        mutating func contentType(_ name: String) -> String {
            guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return ContentTypes.forName(name) }
            let e = name[name.index(after: dot)...]
            if !mime.isEmpty, e.utf8.elementsEqual(ext.utf8) { return mime }
            ext = String(e)
            mime = ContentTypes.forName(name)
            return mime
        }
    }

    /// Renders resources from `cursor` on until `out` holds `until` bytes; true when all are written. (The
    /// entries are read in place: copying each out of its array cost more than writing it.)
    func renderChunk(_ out: inout XMLOut, _ groups: [PropfindGroup], _ cursor: inout PropfindCursor, _ page: PropfindPage,
                     until: Int) -> Bool {
        while cursor.group < groups.count {
            let g = groups[cursor.group]
            let stopped = g.objs.withUnsafeBufferPointer { all -> Bool in
                while cursor.item < all.count {
                    if out.count >= until { return true }
                    let p = g.folder.map { VirtualPath.join($0, all[cursor.item].name) } ?? g.target
                    render(&out, p, all[cursor.item], page, &cursor.memo)
                    cursor.item += 1
                }
                return false
            }
            if stopped { return false }
            cursor.group += 1
            cursor.item = 0
        }
        return true
    }

    /// One `<D:response>` of a PROPFIND answer.
    func render(_ out: inout XMLOut, _ p: String, _ o: borrowing Obj, _ page: PropfindPage, _ memo: inout RenderMemo) {
        let dead = page.anyDead ? page.dead[p] ?? [] : []
        out.raw("<D:response><D:href>")
        let encoded = URLPath.encode(page.base == "/" ? p : VirtualPath.relative(p, to: page.base))
        out.raw(Self.prefix)
        out.text(encoded)
        if o.isDir && !encoded.hasSuffix("/") { out.raw("/") }
        out.raw("</D:href>")
        switch page.request {
        case .allprop:
            // The common request (and an empty body).
            out.raw("<D:propstat><D:prop>")
            for prop in LiveProperty.standard where Self.applies(prop, o, page) { write(prop, o, p, page, &memo, into: &out) }
            for d in dead { out.element(QName(ns: d.ns, name: d.name), d.value) }
            out.raw("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>")
        case .propname:
            out.raw("<D:propstat><D:prop>")
            for prop in LiveProperty.standard where Self.applies(prop, o, page) { out.element(prop.name, "") }
            for d in dead { out.element(QName(ns: d.ns, name: d.name), "") }
            out.raw("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>")
        case .prop(let names):
            var missing: [QName] = []
            var opened = false
            for q in names {
                if q == Self.ocChecksums {
                    // ownCloud's checksums (rclone's owncloud/nextcloud vendors compare them): what is known.
                    let value = Self.checksums(o)
                    if value.isEmpty { missing.append(q); continue }
                    if !opened { out.raw("<D:propstat><D:prop>"); opened = true }
                    out.element(q, "<x:checksum>" + value + "</x:checksum>")
                } else if let prop = LiveProperty(q), Self.applies(prop, o, page) {
                    if !opened { out.raw("<D:propstat><D:prop>"); opened = true }
                    write(prop, o, p, page, &memo, into: &out)
                } else if LiveProperty(q) == nil, let d = dead.first(where: { $0.ns == q.ns && $0.name == q.name }) {
                    if !opened { out.raw("<D:propstat><D:prop>"); opened = true }
                    out.element(q, d.value)
                } else {
                    missing.append(q)
                }
            }
            if opened { out.raw("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>") }
            if !missing.isEmpty {
                out.raw("<D:propstat><D:prop>")
                for q in missing { out.element(q, "") }
                out.raw("</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>")
            }
        }
        out.raw("</D:response>")
    }

    static let ownCloudNS = "http://owncloud.org/ns"
    static let ocChecksums = QName(ns: ownCloudNS, name: "checksums")

    /// `SHA1:<hex> MD5:<hex>` (ownCloud's form) with the hashes known for `o`; empty for folders and when none is.
    static func checksums(_ o: Obj) -> String {
        guard !o.isDir else { return "" }
        var parts: [String] = []
        if let sha1 = o.hashes["sha1"], sha1.count == 40 { parts.append("SHA1:" + sha1) }
        if let md5 = o.hashes["md5"], md5.count == 32 { parts.append("MD5:" + md5) }
        return parts.joined(separator: " ")
    }

    /// The time in a PROPPATCH of `lastmodified` (ownCloud's, which rclone sends): seconds since 1970, or an HTTP date.
    static func modifiedTime(_ value: String) -> Date? {
        ModifiedTime.seconds(text: value) ?? HTTPDate.parse(value.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap {
            ModifiedTime.seconds($0.timeIntervalSince1970)
        }
    }

    static func multistatus(_ xml: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/xml; charset=utf-8"
        return Response(status: .multiStatusDAV, headers: headers, body: .init(byteBuffer: ByteBuffer(string: xml)))
    }

    func proppatch(_ req: Request, user: User, path: String) async throws -> Response {
        try state.check(user, .davManage, path, password: nil)
        try state.check(user, .write, writeTarget(path, user: user), password: nil)
        let (obj, _) = try await state.fs.get(path)
        try await checkLocks(req, user: user, path: path, obj: obj)
        let body = try await req.body.collect(upTo: DAVXML.maxBody)
        guard let ops = PropPatch.parse(Data(body.readableBytesView)) else {
            throw DAVError(status: .badRequest, message: "the PROPPATCH body is not valid XML")
        }
        // Live properties are protected: then nothing is changed (the others fail with 424).
        let protected = ops.contains { (op: PropPatch) -> Bool in
            switch op {
            case .set(let p): return p.ns == "DAV:" && Self.liveNames.contains(QName(ns: p.ns, name: p.name))
            case .remove(let q): return q.ns == "DAV:" && Self.liveNames.contains(q)
            }
        }
        var results: [(QName, String)] = []
        if protected {
            for op in ops {
                let q: QName
                switch op { case .set(let p): q = QName(ns: p.ns, name: p.name); case .remove(let r): q = r }
                let isLive = q.ns == "DAV:" && Self.liveNames.contains(q)
                results.append((q, isLive ? "HTTP/1.1 403 Forbidden" : "HTTP/1.1 424 Failed Dependency"))
            }
        } else {
            var set: [DeadProperty] = [], remove: [(ns: String, name: String)] = []
            for op in ops {
                switch op {
                case .set(let p) where p.ns == "DAV:" && p.name == "lastmodified" && !obj.isDir:
                    // The file's modification time (ownCloud's extension; rclone sets times this way).
                    guard let date = Self.modifiedTime(p.value) else {
                        results.append((QName(ns: p.ns, name: p.name), "HTTP/1.1 400 Bad Request"))
                        continue
                    }
                    do {
                        try await state.fs.setModified(path, to: date)
                        results.append((QName(ns: p.ns, name: p.name), "HTTP/1.1 200 OK"))
                    } catch {
                        results.append((QName(ns: p.ns, name: p.name), "HTTP/1.1 \(FSError.from(error).davStatus.code) \(FSError.from(error).davStatus.reasonPhrase)"))
                    }
                case .set(let p) where QName(ns: p.ns, name: p.name) == Self.ocChecksums:
                    // Checksums are the file's own (computed, or the cloud's): accepted, not stored.
                    results.append((QName(ns: p.ns, name: p.name), "HTTP/1.1 200 OK"))
                case .set(let p):
                    set.removeAll { $0.ns == p.ns && $0.name == p.name }
                    remove.removeAll { $0.ns == p.ns && $0.name == p.name }
                    set.append(p)
                    results.append((QName(ns: p.ns, name: p.name), "HTTP/1.1 200 OK"))
                case .remove(let q):
                    set.removeAll { $0.ns == q.ns && $0.name == q.name }
                    remove.append((q.ns, q.name))
                    results.append((q, "HTTP/1.1 200 OK"))
                }
            }
            try await state.store.setDeadProperties(path, set: set, remove: remove)
        }
        var out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>"
            + DAVXML.escape(href(path, user: user, isDir: obj.isDir)) + "</D:href>"
        for (q, status) in results {
            out += "<D:propstat><D:prop>\(DAVXML.element(q, ""))</D:prop><D:status>\(status)</D:status></D:propstat>"
        }
        out += "</D:response></D:multistatus>"
        return Self.multistatus(out)
    }

    // MARK: GET, HEAD, PUT

    func get(_ req: Request, _ ctx: AppContext, user: User, path: String) async throws -> Response {
        let (obj, _) = try await state.fs.get(path)
        if obj.isDir {
            guard req.method == .head else { throw DAVError(status: .methodNotAllowed, message: "\(path) is a folder") }
            var headers = HTTPFields()
            headers[.contentType] = "httpd/unix-directory"
            return Response(status: .ok, headers: headers)
        }
        let follows = DeliveryPolicy.followsRedirects(userAgent: req.headers[.userAgent] ?? "", agents: state.webdavRedirectAgents)
        return try await Delivery(state: state).respond(req, path: path, entry: .webdav(followsRedirects: follows), clientIP: ctx.clientIP)
    }

    func put(_ req: Request, user: User, path: String) async throws -> Response {
        try state.check(user, .davManage, path, password: nil)
        guard path != Access.resolve(root: user) else { throw DAVError(status: .methodNotAllowed, message: "/ is a folder") }
        let parent = VirtualPath.parent(path)
        try state.check(user, .write, parent, password: nil)
        let parentObj: Obj
        do { (parentObj, _) = try await state.fs.get(parent) } catch {
            throw DAVError(status: .conflict, message: "the folder \(Access.userPath(parent, for: user)) does not exist")
        }
        guard parentObj.isDir else { throw DAVError(status: .conflict, message: "\(Access.userPath(parent, for: user)) is not a folder") }
        let existing = try? await state.fs.get(path).0
        if existing?.isDir == true { throw DAVError(status: .methodNotAllowed, message: "\(path) is a folder") }
        if existing != nil { try state.check(user, .replace, parent, password: nil) }
        try await checkLocks(req, user: user, path: path, obj: existing)
        var modified: Date?
        if let raw = req.headers[.ocMtime] {
            guard let t = ModifiedTime.seconds(text: raw) else {
                throw DAVError(status: .badRequest, message: "X-OC-Mtime must be seconds since 1970, got '\(raw.prefix(40))'")
            }
            modified = t
        }
        let size = req.headers[.contentLength].flatMap { Int64($0) }
        // `OC-Checksum: SHA1:<hex>` (or MD5:): checked against the bytes, kept to be offered back.
        var md5: String?, sha1: String?
        if let declared = req.headers[.ocChecksum] {
            for part in declared.split(separator: " ") {
                let kv = part.split(separator: ":", maxSplits: 1).map(String.init)
                guard kv.count == 2, kv[1].allSatisfy(\.isHexDigit) else { continue }
                switch kv[0].uppercased() {
                case "MD5" where kv[1].count == 32: md5 = kv[1].lowercased()
                case "SHA1" where kv[1].count == 40: sha1 = kv[1].lowercased()
                default: continue
                }
            }
        }
        let stream = UploadStream(name: VirtualPath.base(path), size: size, modified: modified,
                                  md5: md5, sha1: sha1, body: ByteStream(req.body))
        let obj = try await state.fs.put(stream, into: parent)
        var headers = HTTPFields()
        headers[.eTag] = Self.etag(obj)
        if modified != nil { headers[HTTPField.Name("X-OC-Mtime")!] = "accepted" }
        return Response(status: existing == nil ? .created : .noContent, headers: headers)
    }

    // MARK: MKCOL, DELETE

    func mkcol(_ req: Request, user: User, path: String) async throws -> Response {
        try state.check(user, .davManage, path, password: nil)
        guard path != Access.resolve(root: user) else { throw DAVError(status: .methodNotAllowed, message: "/ already exists") }
        try state.check(user, .write, VirtualPath.parent(path), password: nil)
        let body = try await req.body.collect(upTo: DAVXML.maxBody)
        if body.readableBytes > 0 { throw DAVError(status: .unsupportedMediaType, message: "MKCOL takes no body") }
        if (try? await state.fs.get(path)) != nil { throw DAVError(status: .methodNotAllowed, message: "\(path) already exists") }
        let parent = VirtualPath.parent(path)
        guard let (p, _) = try? await state.fs.get(parent), p.isDir else {
            throw DAVError(status: .conflict, message: "the folder \(Access.userPath(parent, for: user)) does not exist")
        }
        try await checkLocks(req, user: user, path: path, obj: nil)
        try await state.fs.makeDir(path)
        return Response(status: .created)
    }

    func delete(_ req: Request, user: User, path: String) async throws -> Response {
        try state.check(user, .davManage, path, password: nil)
        try state.check(user, .remove, path, password: nil)
        let (obj, _) = try await state.fs.get(path)
        try await checkLocks(req, user: user, path: path, obj: obj, deep: true)
        try await state.remove(path)
        try await locks.removeAll(below: path)
        return Response(status: .noContent)
    }

    // MARK: COPY, MOVE

    func copyMove(_ req: Request, user: User, path src: String, move: Bool) async throws -> Response {
        try state.check(user, .davManage, src, password: nil)
        guard let destination = req.headers[.destination] else { throw DAVError(status: .badRequest, message: "Destination is missing") }
        let dst = try pathOfURL(destination, user: user)
        // The same bits as /api: a MOVE within one folder is a rename; otherwise move or copy, checked
        // at the source and at the destination.
        let action: Action = move ? (VirtualPath.parent(src) == VirtualPath.parent(dst) ? .rename : .move) : .copy
        try state.check(user, action, src, password: nil)
        try state.check(user, action, dst, password: nil)
        let overwrite = (req.headers[.overwriteDAV] ?? "T").uppercased() != "F"
        let depth = req.headers[.depth]?.lowercased() ?? "infinity"
        let (obj, _) = try await state.fs.get(src)
        if move && obj.isDir && depth != "infinity" { throw DAVError(status: .badRequest, message: "MOVE of a folder needs Depth: infinity") }
        guard dst != src else { throw DAVError(status: .forbidden, message: "the source and the destination are the same") }
        if VirtualPath.isWithin(dst, src) { throw DAVError(status: .forbidden, message: "cannot copy or move a folder into itself") }
        let dstParent = VirtualPath.parent(dst)
        guard let (pObj, _) = try? await state.fs.get(dstParent), pObj.isDir else {
            throw DAVError(status: .conflict, message: "the folder \(Access.userPath(dstParent, for: user)) does not exist")
        }
        let existing = try? await state.fs.get(dst).0
        if existing != nil && !overwrite { throw DAVError(status: .preconditionFailed, message: "\(dst) exists and Overwrite is F") }
        // Replacing what is there takes the write bit itself, as an upload over a file does.
        if existing != nil { try state.check(user, .replace, dstParent, password: nil) }
        if move { try await checkLocks(req, user: user, path: src, obj: obj, deep: true) }
        try await checkLocks(req, user: user, path: dst, obj: existing, deep: true)
        let shallow = !move && obj.isDir && depth == "0"
        if !shallow {
            // Folder rules travel with the folder (checked before anything changes), and names hidden from
            // this user by rules that would not cover the destination keep it from going there.
            try state.checkRulesCanTravel(from: src, to: dst)
            try await Access.checkTransfer(user, from: src, to: dst, rules: state.rules, fs: state.fs)
        }
        if existing != nil {
            try await state.fs.remove(dst)
            try await locks.removeAll(below: dst)
            try? await state.store.deleteDeadProperties(dst)
        }
        if shallow {
            try await state.fs.makeDir(dst)
            let props = (try? await state.store.deadProperties(src)) ?? []
            try? await state.store.setDeadProperties(dst, set: props, remove: [])
        } else {
            try await state.transfer(from: src, to: dst, move: move) { try await relocate(src, to: dst, move: move) }
            if move { try await locks.removeAll(below: src) }
        }
        return Response(status: existing == nil ? .created : .noContent)
    }

    /// Copies or moves `src` to exactly `dst` (whose parent exists and which does not exist), with the
    /// file system's operations that keep the name: when the name changes, through a scratch folder in
    /// the destination's parent, so nothing already there is touched.
    func relocate(_ src: String, to dst: String, move: Bool) async throws {
        let fs = state.fs
        func op(_ from: String, _ toDir: String) async throws {
            if move { try await fs.move(from, toDir: toDir) } else { try await fs.copy(from, toDir: toDir) }
        }
        let dstParent = VirtualPath.parent(dst), srcName = VirtualPath.base(src), dstName = VirtualPath.base(dst)
        if srcName == dstName {
            try await op(src, dstParent)
            return
        }
        if move && VirtualPath.parent(src) == dstParent {
            try await fs.rename(src, to: dstName)
            return
        }
        let scratch = VirtualPath.join(dstParent, ".panlist-dav-\(UUID().uuidString.lowercased())")
        try await state.fs.makeDir(scratch)
        do {
            try await op(src, scratch)
            try await state.fs.rename(VirtualPath.join(scratch, srcName), to: dstName)
            try await state.fs.move(VirtualPath.join(scratch, dstName), toDir: dstParent)
            try? await state.fs.remove(scratch)
        } catch {
            try? await state.fs.remove(scratch)
            throw error
        }
    }

    /// The folder a LOCK or PROPPATCH writes into, for the write check: the item's folder (so a folder
    /// rule's write grant counts, as for PUT), or the user's root itself.
    func writeTarget(_ path: String, user: User) -> String {
        path == Access.resolve(root: user) ? path : VirtualPath.parent(path)
    }

    // MARK: LOCK, UNLOCK

    func lock(_ req: Request, user: User, path: String) async throws -> Response {
        try state.check(user, .davManage, path, password: nil)
        try state.check(user, .write, writeTarget(path, user: user), password: nil)
        let body = try await req.body.collect(upTo: DAVXML.maxBody)
        let timeout = DAVLocks.timeout(req.headers[.timeoutDAV])
        var status = HTTPResponse.Status.ok
        let lock: DAVLocks.Lock
        if body.readableBytes == 0 {
            // A refresh: the If header names the lock.
            guard let header = req.headers[.ifDAV], let parsed = IfHeader.parse(header) else {
                throw DAVError(status: .badRequest, message: "a LOCK without a body refreshes a lock named in the If header")
            }
            let live = try await locks.live()
            guard let token = parsed.tokens.first(where: { t in live.token(t).map { DAVLocks.covers($0, path) } ?? false }),
                  let refreshed = try await locks.refresh(token: token, timeout: timeout) else {
                throw DAVError(status: .preconditionFailed, message: "no lock of this resource is named in the If header",
                               condition: "lock-token-matches-request-uri")
            }
            lock = refreshed
        } else {
            guard let info = LockInfo.parse(Data(body.readableBytesView)) else {
                throw DAVError(status: .badRequest, message: "the LOCK body is not a valid lockinfo")
            }
            let depth = req.headers[.depth]?.lowercased() ?? "infinity"
            guard depth == "0" || depth == "infinity" else { throw DAVError(status: .badRequest, message: "LOCK Depth must be 0 or infinity") }
            let existing = try? await state.fs.get(path).0
            if existing == nil {
                // Locking an unmapped URL creates an empty file (RFC 4918 §7.3).
                let parent = VirtualPath.parent(path)
                guard let (p, _) = try? await state.fs.get(parent), p.isDir else {
                    throw DAVError(status: .conflict, message: "the folder \(Access.userPath(parent, for: user)) does not exist")
                }
            }
            guard let created = try await locks.create(root: path, infinite: depth == "infinity", exclusive: info.exclusive, owner: info.owner, timeout: timeout) else {
                throw DAVError(status: .lockedDAV, message: "\(Access.userPath(path, for: user)) is locked", condition: "no-conflicting-lock")
            }
            if existing == nil {
                do {
                    _ = try await state.fs.put(UploadStream(name: VirtualPath.base(path), size: 0, body: .empty), into: VirtualPath.parent(path))
                } catch {
                    _ = try? await locks.remove(token: created.token)
                    throw error
                }
                status = .created
            }
            lock = created
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/xml; charset=utf-8"
        headers[.lockToken] = "<\(lock.token)>"
        let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>"
            + DAVLocks.activeLock(lock, href: href(lock.path, user: user, isDir: false)) + "</D:lockdiscovery></D:prop>"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: xml)))
    }

    func unlock(_ req: Request, user: User, path: String) async throws -> Response {
        guard var token = req.headers[.lockToken]?.trimmingCharacters(in: .whitespaces) else {
            throw DAVError(status: .badRequest, message: "Lock-Token is missing")
        }
        if token.hasPrefix("<") && token.hasSuffix(">") { token = String(token.dropFirst().dropLast()) }
        guard let l = try await locks.live().token(token), DAVLocks.covers(l, path) else {
            throw DAVError(status: .conflict, message: "no such lock on this resource", condition: "lock-token-matches-request-uri")
        }
        try await locks.remove(token: token)
        return Response(status: .noContent)
    }

    /// Checks the `If` header (412 when it evaluates false) and that every lock on `path` (and, for `deep`,
    /// below it) has its token submitted (423 otherwise).
    func checkLocks(_ req: Request, user: User, path: String, obj: Obj?, deep: Bool = false) async throws {
        let live = try await locks.live()
        var submitted: Set<String> = []
        if let header = req.headers[.ifDAV] {
            guard let parsed = IfHeader.parse(header) else { throw DAVError(status: .badRequest, message: "malformed If header") }
            submitted = Set(parsed.tokens)
            var anyTrue = false
            for list in parsed.lists {
                // A tagged list is about the resource it names; an untagged one about the request's.
                let target = list.resource.flatMap { try? pathOfURL($0, user: user) } ?? path
                let lockTokens = Set(live.on(target).map(\.token))
                let etag = target == path ? obj.map(Self.etag) : nil
                var all = true
                for c in list.conditions {
                    var ok: Bool
                    if let t = c.token { ok = lockTokens.contains(t) } else { ok = etag != nil && c.etag == etag }
                    if c.not { ok.toggle() }
                    if !ok { all = false; break }
                }
                if all { anyTrue = true; break }
            }
            if !anyTrue { throw DAVError(status: .preconditionFailed, message: "the If header's conditions are not met") }
        }
        let relevant = deep ? live.onOrBelow(path) : live.on(path)
        for l in relevant where !submitted.contains(l.token) {
            throw DAVError(status: .lockedDAV, message: "\(Access.userPath(path, for: user)) is locked", condition: "lock-token-submitted")
        }
    }
}

/// Verified Basic credentials (a hash of `user:password` → the user), for a minute.
final class CredentialCache: Sendable {
    private let box = NIOLockedValueBox<[String: (user: User, until: ContinuousClock.Instant)]>([:])
    func get(_ key: String) -> User? {
        box.withLockedValue { c in
            guard let e = c[key], e.until > .now else { return nil }
            return e.user
        }
    }
    private let flights = NIOLockedValueBox<[String: Task<StoredUser?, any Error>]>([:])

    /// Runs `check` for `key`, or joins the run already under way for it.
    func once(_ key: String, _ check: @escaping @Sendable () async throws -> StoredUser?) async throws -> StoredUser? {
        let (task, mine) = flights.withLockedValue { f -> (Task<StoredUser?, any Error>, Bool) in
            if let running = f[key] { return (running, false) }
            let t = Task { try await check() }
            f[key] = t
            return (t, true)
        }
        defer { if mine { _ = flights.withLockedValue { $0.removeValue(forKey: key) } } }
        return try await task.value
    }

    func put(_ key: String, _ user: User) {
        box.withLockedValue { c in
            if c.count > 1000 { c.removeAll() }
            c[key] = (user, .now + .seconds(60))
        }
    }
}


