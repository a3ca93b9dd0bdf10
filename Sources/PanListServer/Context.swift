import Hummingbird
import NIOCore
import PanListCore

/// The request context of every route: who is asking and from where.
public struct AppContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    private let channel: any Channel

    /// The client's IP address (for login throttling and drivers whose links depend on it).
    public var clientIP: String { channel.remoteAddress?.ipAddress ?? "" }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// /api bodies are collected explicitly with their own limit; uploads stream.
    public var maxUploadSize: Int { 1 << 20 }
}
