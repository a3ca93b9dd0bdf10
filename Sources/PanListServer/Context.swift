import Hummingbird
import NIOCore
import PanListCore

/// The request context of every route: who is asking and from where.
public struct AppContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection's peer address.
    public let peerAddress: String
    /// The client's address: the peer, or the address a trusted proxy forwarded (`ClientAddressMiddleware`).
    /// Used by the login limiter, the logs and drivers whose links depend on it.
    public var clientIP: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let peer = source.channel.remoteAddress?.ipAddress ?? ""
        peerAddress = peer.hasPrefix("::ffff:") ? TrustedProxies.canonical(peer) : peer
        clientIP = peerAddress
    }

    /// /api bodies are collected explicitly with their own limit; uploads stream.
    public var maxUploadSize: Int { 1 << 20 }
}
