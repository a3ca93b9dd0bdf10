import Foundation
import Hummingbird
import Logging
import NIOCore
import PanListCore

/// Builds the HTTP application: every route PanList serves.
public enum PanListApp {
    public static func router(state: ServerState) -> Router<AppContext> {
        let router = Router(context: AppContext.self)
        router.get("ping") { _, _ in "pong" }
        APIRoutes(state: state).register(on: router)
        DownloadRoutes(state: state).register(on: router)
        DAVRoutes(state: state).register(on: router)
        router.get("/") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.contentTypeOptions] = "nosniff"
            let html = """
                <!doctype html><html><head><meta charset="utf-8"><title>PanList</title></head>
                <body><h1>PanList is running</h1><p>The Alist v3 API is at <code>/api</code>; downloads at
                <code>/d/&lt;path&gt;</code> and <code>/p/&lt;path&gt;</code>. The web UI is not built yet.</p></body></html>
                """
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
        }
        return router
    }

    /// The application listening on `address:port`; `onRunning` receives the bound port (useful with port 0).
    public static func application(
        state: ServerState, address: String, port: Int,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(state: state),
            server: .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()])),
            configuration: .init(address: .hostname(address, port: port), serverName: "PanList"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: state.logger
        )
    }
}
