import Foundation
import Hummingbird
import PanListCore

/// The Alist v3 JSON API under /api.
struct APIRoutes: Sendable {
    let state: ServerState

    func register(on router: Router<AppContext>) {
        let api = router.group("api").add(middleware: EnvelopeErrorMiddleware(logger: state.logger))
        addAuthRoutes(to: api)
        addFSRoutes(to: api)
        addAdminRoutes(to: api)
        addUserRoutes(to: api)
        addMetaRoutes(to: api)
        addTaskRoutes(to: api)
        addOfflineRoutes(to: api)
        addSearchRoutes(to: api)
        ShareRoutes(state: state).register(api: api, router: router)
        ZipRoutes(state: state).register(api: api, router: router)
        ArchiveRoutes(state: state).register(api: api, router: router)
        // Anything else under /api answers with the envelope too.
        for method in [HTTPRequest.Method.get, .post, .put, .delete] {
            api.on("**", method: method) { req, _ -> Response in
                throw FSError.noSuchRecord("no API route \(req.method) \(req.uri.path)")
            }
        }
    }
}

/// Turns every error thrown under /api into the envelope, with HTTP 200, in one place.
struct EnvelopeErrorMiddleware: RouterMiddleware {
    typealias Context = AppContext
    let logger: Logging.Logger

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as HTTPError where e.status == .notFound {
            return APIResponse.error(.noSuchRecord("no API route \(request.method) \(request.uri.path)"))
        } catch {
            let e = fsError(error)
            if e.apiCode >= 500 { logger.warning("\(request.method) \(LogText.path(request.uri.path)): \(LogText.quoted(e.message))") }
            return APIResponse.error(e)
        }
    }
}

import Logging
