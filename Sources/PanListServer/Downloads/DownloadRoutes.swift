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
                    do {
                        return try await serve(req, ctx, prefix: prefix, proxy: proxy)
                    } catch {
                        let e = fsError(error)
                        var r = APIResponse.json(Envelope<Null>(code: e.apiCode, message: e.message, data: nil), status: e.httpStatus)
                        if req.method == .head { r.body = .init() }
                        return r
                    }
                }
            }
        }
    }

    /// The virtual path of a download URL: percent-decoded once, then normalised (so `%2e%2e` is refused too).
    func virtualPath(_ req: Request, prefix: String) throws -> String {
        let raw = req.uri.path.dropFirst(prefix.count + 1)
        guard let decoded = URLPath.decode(raw) else { throw FSError.badRequest("the path is not valid percent-encoded UTF-8") }
        return try VirtualPath.normalize(decoded)
    }

    /// A download is allowed with a valid sign for the path, or for a user (login token or the guest) who may read it.
    func authorize(_ req: Request, path: String, storage: MountedStorage?) async throws {
        if let sign = req.uri.queryParameters.get("sign"), !sign.isEmpty {
            try state.signer.verify(path: path, sign: sign)
            return
        }
        let hasCredentials = !(req.headers[.authorization] ?? "").isEmpty
        if state.signRequired(storage, path: path) && !hasCredentials { throw FSError.unauthorized("sign missing: this link needs a valid sign") }
        let user = try await state.authenticate(req)
        // No folder password travels in a download URL: inside a guarded folder the sign (handed out by a
        // listing made with the password) is the way in, or the user's "access without password".
        try state.check(user, .read, path, password: nil)
    }

    func serve(_ req: Request, _ ctx: AppContext, prefix: String, proxy: Bool) async throws -> Response {
        let path = try virtualPath(req, prefix: prefix)
        let storage = state.fs.resolve(path)?.0
        try await authorize(req, path: path, storage: storage)
        let entry: DeliveryPolicy.Entry = proxy ? .proxy(fromProxy: req.uri.queryParameters.get("d") != nil) : .direct
        return try await Delivery(state: state).respond(req, path: path, storage: storage, entry: entry, clientIP: ctx.clientIP)
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

    /// `storage` is the one owning `path` when the caller already looked it up.
    func respond(_ req: Request, path: String, storage known: MountedStorage? = nil, entry: DeliveryPolicy.Entry,
                 clientIP: String) async throws -> Response {
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
            return try await LocalFileResponder.respond(req, diskPath: disk, name: obj.name, cache: state.smallFiles, generation: generation)
        case .url(let url, let headers, _):
            if decision == .redirectToLink { return redirect(url) }
            return try await RemoteProxy.respond(req, url: url, linkHeaders: headers, obj: obj) {
                let (fresh, _, _) = try await fs.cachedLink(path, args: LinkArgs(clientIP: clientIP, headers: [:]), fresh: true)
                guard case .url(let u, let h, _) = fresh else { throw FSError.upstream(code: 1, message: "the storage gave no URL for \(path)") }
                return (u, h)
            }
        }
    }

    func redirect(_ location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = URLPath.safeURL(location)
        headers[.referrerPolicy] = "no-referrer"
        headers[.cacheControl] = "max-age=0, no-cache, no-store, must-revalidate"
        return Response(status: .found, headers: headers)
    }
}

extension HTTPField.Name {
    static let referrerPolicy = Self("Referrer-Policy")!
    static let contentTypeOptions = Self("X-Content-Type-Options")!
}
