import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PanListCore

/// A CONNECT-only proxy on 127.0.0.1 through which aria2 reaches the network (`all-proxy` with
/// `proxy-method=tunnel` on each download): every connection aria2 opens (the link, each redirect hop,
/// FTP's control and data connections, HTTP trackers) arrives as `CONNECT host:port`, is checked by the
/// `OutboundGuard` of the moment, and is connected to the address that was checked (no second lookup, so no
/// DNS rebinding). The user name is the download task's id and the password this proxy's secret; a refusal
/// is kept per task, so the task can say why instead of aria2's "proxy connection failed".
final class GuardedProxy: Sendable {
    let port: Int
    let secret: String
    private let channel: any Channel
    private let refusals = NIOLockedValueBox([String: String]())

    private init(port: Int, secret: String, channel: any Channel) {
        self.port = port; self.secret = secret; self.channel = channel
    }

    /// Starts the proxy; `currentGuard` is asked for each connection (settings may change meanwhile).
    static func start(currentGuard: @escaping @Sendable () -> OutboundGuard) async throws -> GuardedProxy {
        let secret = RandomString.make(32)
        let box = NIOLockedValueBox<GuardedProxy?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: true)
            .childChannelInitializer { ch in
                ch.pipeline.addHandler(ConnectRequestHandler(secret: secret, currentGuard: currentGuard,
                                                             refused: { task, why in box.withLockedValue { $0 }?.noteRefusal(task, why) }))
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw FSError.internalError("the proxy for aria2 has no port")
        }
        let proxy = GuardedProxy(port: port, secret: secret, channel: channel)
        box.withLockedValue { $0 = proxy }
        return proxy
    }

    func stop() async { try? await channel.close() }

    /// aria2's options that send a download's connections through this proxy, for task `task`.
    func aria2Options(task: String) -> [String: String] {
        // Every protocol's own proxy option too, and no exceptions: aria2 prefers http-proxy, https-proxy and
        // ftp-proxy (and no-proxy) over all-proxy, and takes them from its configuration or the environment
        // (http_proxy…) when a download does not set them.
        var o = ["proxy-method": "tunnel", "no-proxy": ""]
        for kind in ["all", "http", "https", "ftp"] {
            o["\(kind)-proxy"] = "http://127.0.0.1:\(port)"
            o["\(kind)-proxy-user"] = task
            o["\(kind)-proxy-passwd"] = secret
        }
        return o
    }

    /// Forgets what was kept for `task` (before its download starts).
    func forget(_ task: String) { refusals.withLockedValue { _ = $0.removeValue(forKey: task) } }

    /// Why the last connection of `task` was refused (nil: none was), forgotten once read.
    func takeRefusal(_ task: String) -> String? { refusals.withLockedValue { $0.removeValue(forKey: task) } }

    fileprivate func noteRefusal(_ task: String, _ why: String) {
        refusals.withLockedValue { r in
            if r.count > 1000 { r.removeAll() }
            r[task] = why
        }
    }
}

/// The one proxy of a server, started when first needed.
actor GuardedProxyHolder {
    private var starting: Task<GuardedProxy, any Error>?
    private var proxy: GuardedProxy?
    private var stopped = false
    func get(currentGuard: @escaping @Sendable () -> OutboundGuard) async throws -> GuardedProxy {
        if let proxy { return proxy }
        guard !stopped else { throw FSError.unavailable("PanList is stopping") }
        // One start, however many downloads ask at once.
        let t = starting ?? Task { try await GuardedProxy.start(currentGuard: currentGuard) }
        starting = t
        do {
            let p = try await t.value
            proxy = p
            return p
        } catch {
            starting = nil
            throw error
        }
    }
    func stop() async {
        stopped = true
        await proxy?.stop()
        proxy = nil
    }
    /// Why the proxy last refused a connection of `task` (nil: it did not, or it is not running).
    func refusal(_ task: String) -> String? { proxy?.takeRefusal(task) }
}

/// The guard refused a CONNECT's host (a connection that merely failed is not kept as a refusal).
private struct Refused: Error { let why: String }

/// Reads one `CONNECT host:port` request (headers up to 8 KiB), checks the credentials and the host, connects,
/// answers 200 and glues the two connections together; anything else is answered with an error and closed.
private final class ConnectRequestHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let secret: String
    let currentGuard: @Sendable () -> OutboundGuard
    let refused: @Sendable (String, String) -> Void
    private var head = ByteBuffer()
    private var busy = false

    init(secret: String, currentGuard: @escaping @Sendable () -> OutboundGuard, refused: @escaping @Sendable (String, String) -> Void) {
        self.secret = secret; self.currentGuard = currentGuard; self.refused = refused
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !busy else { return }   // nothing is sent before the 200 answer
        head.writeBuffer(&bytes)
        let text = String(buffer: head)
        guard let end = text.range(of: "\r\n\r\n") else {
            if head.readableBytes > 8192 { busy = true; answer(context, "431 Request Header Fields Too Large", "") }
            return
        }
        busy = true
        let lines = text[..<end.lowerBound].split(separator: "\r\n", omittingEmptySubsequences: false)
        let parts = (lines.first ?? "").split(separator: " ")
        guard parts.count == 3, parts[0] == "CONNECT", let colon = parts[1].lastIndex(of: ":"),
              let port = Int(parts[1][parts[1].index(after: colon)...]), (1...65535).contains(port) else {
            answer(context, "405 Method Not Allowed", "this proxy only tunnels (CONNECT host:port)")
            return
        }
        let named = String(parts[1][..<colon])
        let host = named.hasPrefix("[") && named.hasSuffix("]") ? String(named.dropFirst().dropLast()) : named
        // Proxy-Authorization: Basic base64(task:secret).
        var task: String?
        for line in lines.dropFirst() {
            guard let c = line.firstIndex(of: ":"), line[..<c].lowercased() == "proxy-authorization" else { continue }
            let value = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
            guard value.lowercased().hasPrefix("basic "), let raw = Data(base64Encoded: String(value.dropFirst(6))),
                  let pair = String(data: raw, encoding: .utf8), let sep = pair.firstIndex(of: ":") else { continue }
            if Self.same(String(pair[pair.index(after: sep)...]), secret) { task = String(pair[..<sep]) }
        }
        guard let task else {
            answer(context, "407 Proxy Authentication Required", "", extra: "Proxy-Authenticate: Basic realm=\"panlist\"\r\n")
            return
        }
        let g = currentGuard()
        let loop = context.eventLoop
        let ctx = NIOLoopBound(context, eventLoop: loop)
        let me = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask { () async throws -> [IPAddress] in
            do { return try await g.check(host: host) } catch {
                // The guard's refusal (or a name that does not resolve): kept for the task, which says why.
                throw Refused(why: FSError.from(error).message)
            }
        }.flatMap { addresses -> EventLoopFuture<any Channel> in
            // Each checked address in turn (a broken IPv6 route before a working IPv4 one).
            func connect(_ rest: ArraySlice<IPAddress>) -> EventLoopFuture<any Channel> {
                guard let address = rest.first else {
                    return loop.makeFailedFuture(FSError.upstream(code: 0, message: "\(host) did not accept a connection"))
                }
                let inbound = ctx.value.channel
                guard let target = try? SocketAddress(ipAddress: address.description, port: port) else { return connect(rest.dropFirst()) }
                return ClientBootstrap(group: loop)
                    .connectTimeout(.seconds(15))
                    // Nothing is read from the target before aria2 has the 200 answer (an FTP server speaks first).
                    .channelOption(.autoRead, value: false)
                    .channelInitializer { out in out.pipeline.addHandler(Splice(partner: inbound)) }
                    .connect(to: target)
                    .flatMapError { _ in connect(rest.dropFirst()) }
            }
            return connect(addresses[...])
        }.whenComplete { result in
            let context = ctx.value
            switch result {
            case .success(let outbound):
                // On this loop, before anything more is read: the splice takes over, then the answer goes out.
                let channel = context.channel
                guard channel.isActive else { outbound.close(promise: nil); return }   // aria2 went meanwhile
                do {
                    try channel.pipeline.syncOperations.addHandler(Splice(partner: outbound))
                    channel.pipeline.syncOperations.removeHandler(me.value, promise: nil)
                } catch {
                    outbound.close(promise: nil)
                    channel.close(promise: nil)
                    return
                }
                channel.writeAndFlush(channel.allocator.buffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")).whenComplete { _ in
                    outbound.setOption(.autoRead, value: true).whenComplete { _ in }
                }
            case .failure(let error):
                if let r = error as? Refused {
                    me.value.refused(task, r.why)
                    me.value.answer(context, "403 Forbidden", r.why)
                } else {
                    me.value.answer(context, "502 Bad Gateway", FSError.from(error).message)
                }
            }
        }
    }

    private func answer(_ context: ChannelHandlerContext, _ status: String, _ body: String, extra: String = "") {
        let text = "HTTP/1.1 \(status)\r\n\(extra)Content-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text))).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// One side of a tunnel: what it reads goes to the partner; it stops reading while the partner cannot take
/// more, and either side closing closes the other.
private final class Splice: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let partner: any Channel
    /// The last write to the partner: a close waits for it (a close fails writes still queued, and the end of a
    /// file would be lost).
    private var lastWrite: EventLoopFuture<Void>?
    init(partner: any Channel) { self.partner = partner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let write = partner.writeAndFlush(bytes)
        let mine = context.channel
        write.whenFailure { _ in mine.close(promise: nil) }
        lastWrite = write
        if !partner.isWritable {
            context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
            // Read again once the partner drained (checked on its loop, then ours).
            @Sendable func wait() {
                partner.eventLoop.scheduleTask(in: .milliseconds(5)) { [partner] in
                    if partner.isWritable || !partner.isActive { mine.setOption(.autoRead, value: true).whenComplete { _ in } }
                    else { wait() }
                }
            }
            wait()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let partner = self.partner
        if let lastWrite { lastWrite.whenComplete { _ in partner.close(promise: nil) } } else { partner.close(promise: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
