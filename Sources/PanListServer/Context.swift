import Hummingbird
import NIOCore
import PanListCore

/// The request context of every route: who is asking and from where.
public struct AppContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's IP address (for login throttling and drivers whose links depend on it).
    public let clientIP: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientIP = source.channel.remoteAddress?.ipAddress ?? ""
    }

    /// /api bodies are collected explicitly with their own limit; uploads stream.
    public var maxUploadSize: Int { 1 << 20 }
}
