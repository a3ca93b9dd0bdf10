import Foundation
import Hummingbird
import Logging
import NIOCore
import PanListCore

/// Builds the HTTP application: every route PanList serves.
public enum PanListApp {
    public static func router(state: ServerState) -> Router<AppContext> {
        let router = Router(context: AppContext.self)
        router.add(middleware: RequestMetricsMiddleware())
        router.add(middleware: ClientAddressMiddleware(trusted: state.trustedProxies, header: state.config.clientIPHeader, logger: state.logger))
        if state.config.accessLog { router.add(middleware: AccessLogMiddleware(logger: state.logger, sink: state.accessLogSink)) }
        router.add(middleware: NoSniffMiddleware())
        router.get("ping") { _, _ in "pong" }
        router.get("ready") { _, _ in await Observability.readiness(state, detailed: false) }
        // For admins (a login token, or the admin token of the settings, which Prometheus can send as a bearer
        // token); `metrics_address` serves it without credentials on an address of its own.
        router.get("metrics") { req, _ in
            do { _ = try await state.authenticateAdmin(req) } catch {
                let e = FSError.from(error)
                var headers = HTTPFields()
                headers[.wwwAuthenticate] = "Bearer realm=\"PanList metrics\""
                headers[.contentType] = "text/plain; charset=utf-8"
                let status: HTTPResponse.Status = e.apiCode == 503 ? .serviceUnavailable : (e.apiCode == 401 || Self.noCredentials(req) ? .unauthorized : .forbidden)
                return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "metrics: \(e.message)\n")))
            }
            return Observability.metrics(state)
        }
        TusRoutes(state: state).register(on: router)
        MultipartRoutes(state: state).register(on: router)
        APIRoutes(state: state).register(on: router)
        DownloadRoutes(state: state).register(on: router)
        DAVRoutes(state: state).register(on: router)
        WebUI.load(logger: state.logger).register(on: router)
        return router
    }

    static func noCredentials(_ req: Request) -> Bool { ServerState.token(req).isEmpty }

    /// The application listening on `address:port`; `onRunning` receives the bound port (useful with port 0).
    public static func application(
        state: ServerState, address: String, port: Int,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(state: state),
            server: .http1(configuration: .init(additionalChannelHandlers: [
                ExpectContinueHandler(), SendTimeoutHandler(timeout: .seconds(Int64(state.config.sendTimeout))),
            ])),
            configuration: .init(address: .hostname(address, port: port), serverName: "PanList"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: state.logger
        )
    }
}

/// `X-Content-Type-Options: nosniff` on every answer (API JSON, WebDAV XML and errors, downloads, the UI),
/// so that no browser reads anything PanList sends as a type other than the one it says.
struct NoSniffMiddleware: RouterMiddleware {
    typealias Context = AppContext
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentTypeOptions] = "nosniff"
        return response
    }
}
