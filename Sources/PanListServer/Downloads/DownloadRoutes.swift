import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore
import _NIOFileSystem

/// `/d/<path>` (direct: redirect when the storage allows, else stream) and `/p/<path>` (always stream).
/// Both answer with real HTTP statuses and a JSON envelope body on errors.
struct DownloadRoutes: Sendable {
    let state: ServerState

    func register(on router: Router<AppContext>) {
        for (prefix, proxy) in [("d", false), ("p", true)] {
            for method in [HTTPRequest.Method.get, .head] {
                router.on(RouterPath("\(prefix)/**"), method: method) { req, ctx in
                    do { return try await serve(req, ctx, prefix: prefix, proxy: proxy) } catch { return Self.failure(error, req) }
                }
            }
        }
    }

    /// A download's error: its real HTTP status, with the JSON envelope as the body (none for HEAD).
    static func failure(_ error: any Error, _ req: Request) -> Response {
        let e = fsError(error)
        var r = APIResponse.json(Envelope<Null>(code: e.apiCode, message: e.message, data: nil), status: e.httpStatus)
        if req.method == .head { r.body = .init() }
        return r
    }

    /// The virtual path of a download URL: percent-decoded once, then normalised (so `%2e%2e` is refused too).
    func virtualPath(_ req: Request, prefix: String) throws -> String {
        let raw = req.uri.path.dropFirst(prefix.count + 1)
        guard let decoded = URLPath.decode(raw) else { throw FSError.badRequest("the path is not valid percent-encoded UTF-8") }
        return try VirtualPath.normalize(decoded)
    }

    /// A download is allowed with a valid sign for the path, or for a user (login token or the guest) who may read it.
    /// Returns the verified sign's expiry (0: never), or nil when the request was authorised otherwise.
    @discardableResult
    func authorize(_ req: Request, path: String, storage: MountedStorage?) async throws -> Int64? {
        if let sign = req.uri.queryParameters.get("sign"), !sign.isEmpty {
            return try state.signer.verify(path: path, sign: sign)
        }
        let hasCredentials = !(req.headers[.authorization] ?? "").isEmpty
        if state.signRequired(storage, path: path) && !hasCredentials { throw FSError.unauthorized("sign missing: this link needs a valid sign") }
        let user = try await state.authenticate(req)
        // No folder password travels in a download URL: inside a guarded folder the sign (handed out by a
        // listing made with the password) is the way in, or the user's "access without password".
        try state.check(user, .read, path, password: nil)
        return nil
    }

    func serve(_ req: Request, _ ctx: AppContext, prefix: String, proxy: Bool) async throws -> Response {
        // A signed link redirected a moment ago is answered again at once (see SignedLinkAnswers).
        let target = req.uri.description
        let keepable = !proxy && SignedLinkAnswers.keepable(target, query: req.uri.query)
        let stamp = Delivery.Stamp(state)
        if keepable, let kept = state.signedAnswers.get(target, stamp: stamp, plain: req.method == .get && Delivery.isPlain(req)) {
            return kept
        }
        let path = try virtualPath(req, prefix: prefix)
        let storage = state.fs.resolve(path)?.0
        let signExpire = try await authorize(req, path: path, storage: storage)
        let entry: DeliveryPolicy.Entry = proxy ? .proxy(fromProxy: req.uri.queryParameters.get("d") != nil) : .direct
        let remember = keepable ? signExpire.map { Delivery.Remember(target: target, signExpire: $0, stamp: stamp) } : nil
        return try await Delivery(state: state).respond(req, path: path, storage: storage, entry: entry, clientIP: ctx.clientIP,
                                                        remember: remember)
    }
}

/// Answers a request for a file's bytes by the storage's policy: a 302 to the cloud's link, a 302 to the
/// storage's download proxy, or streamed by this server (local files from disk, remote links through
/// `RemoteProxy`). Used by `/d`, `/p` and WebDAV GET; the caller has authorised the request.
struct Delivery: Sendable {
    let state: ServerState

    func decision(_ entry: DeliveryPolicy.Entry, path: String, storage: MountedStorage) -> DeliveryPolicy.Decision {
        DeliveryPolicy.decide(entry, storage: storage.record, onlyProxy: storage.driver?.config.onlyProxy ?? false,
                              name: VirtualPath.base(path), proxyTypes: state.proxyTypes)
    }

    /// What a kept answer was made from, read before anything was looked up: the file system's write
    /// generation, the settings' generation and the link cache's forget count. Each only moves forward.
    struct Stamp: Equatable, Sendable {
        var writes: Int
        var settings: Int
        var forgets: Int

        init(_ state: ServerState) {
            writes = state.fs.writeGeneration
            settings = state.settingsGeneration
            forgets = state.fs.linkForgets
        }

        /// Made before `other` in at least one respect (so no longer valid once `other` was read).
        func isOlder(than other: Stamp) -> Bool {
            writes < other.writes || settings < other.settings || forgets < other.forgets
        }
    }

    /// What `/d` needs to keep an answer for a signed link (see `SignedLinkAnswers`): the request's target, the
    /// sign's expiry, and the stamp read before anything was looked up.
    struct Remember {
        var target: String
        var signExpire: Int64
        var stamp: Stamp
    }

    /// `storage` is the one owning `path` when the caller already looked it up.
    func respond(_ req: Request, path: String, storage known: MountedStorage? = nil, entry: DeliveryPolicy.Entry,
                 clientIP: String, remember: Remember? = nil) async throws -> Response {
        guard let storage = known ?? state.fs.resolve(path)?.0 else { throw FSError.objectNotFound(path) }
        let decision = decision(entry, path: path, storage: storage)
        if case .redirectToProxyURL(let base) = decision {
            let sign = state.sign(path)
            return redirect(base + URLPath.encode(path) + "?sign=" + sign)
        }
        let generation = state.fs.writeGeneration
        let fs = state.fs
        let (link, obj, _) = try await fs.cachedLink(path, args: LinkArgs(clientIP: clientIP, headers: [:]))
        switch link {
        case .localFile(let disk):
            // A whole small file for a plain GET of a signed link is kept like a redirect (for the small-file cache's second).
            let keep: (@Sendable (HTTPResponse.Status, HTTPFields, ByteBuffer, ContinuousClock.Instant) -> Void)? = remember.flatMap { r in
                guard req.method == .get, Self.isPlain(req) else { return nil }
                let answers = state.signedAnswers
                return { status, headers, body, until in
                    answers.put(r.target, status: status, headers: headers, body: body, until: until, remember: r)
                }
            }
            return try await LocalFileResponder.respond(req, diskPath: disk, name: obj.name, cache: state.smallFiles, generation: generation,
                                                        whole: keep)
        case .url(let url, let headers, let expiresAt):
            if decision == .redirectToLink {
                let response = redirect(url)
                if let remember, let expiresAt {
                    let left = expiresAt.timeIntervalSinceNow - 10
                    if left > 0 {
                        state.signedAnswers.put(remember.target, status: .found, headers: response.headers,
                                            until: .now + .milliseconds(Int64(left * 1000)), remember: remember)
                    }
                }
                return response
            }
            return try await RemoteProxy.respond(req, url: url, linkHeaders: headers, obj: obj) {
                let (fresh, _, _) = try await fs.cachedLink(path, args: LinkArgs(clientIP: clientIP, headers: [:]), fresh: true)
                guard case .url(let u, let h, _) = fresh else { throw FSError.upstream(code: 1, message: "the storage gave no URL for \(path)") }
                return (u, h)
            }
        }
    }

    /// A request whose answer does not depend on its headers: no Range, no conditions.
    static func isPlain(_ req: Request) -> Bool {
        let h = req.headers
        return h[.range] == nil && h[.ifNoneMatch] == nil && h[.ifModifiedSince] == nil && h[.ifMatch] == nil
            && h[.ifUnmodifiedSince] == nil && h[.ifRange] == nil
    }

    func redirect(_ location: String) -> Response {
        var headers = HTTPFields()
        headers.reserveCapacity(5)
        headers[.location] = URLPath.safeURL(location)
        headers.append(Self.noReferrer)
        headers.append(Self.noStore)
        return Response(status: .found, headers: headers)
    }

    // The fixed headers of a redirect, made (and checked) once.
    static let noReferrer = HTTPField(name: .referrerPolicy, value: "no-referrer")
    static let noStore = HTTPField(name: .cacheControl, value: "max-age=0, no-cache, no-store, must-revalidate")
}

extension HTTPField.Name {
    static let referrerPolicy = Self("Referrer-Policy")!
    static let contentTypeOptions = Self("X-Content-Type-Options")!
}
