import Foundation
import HTTPTypes
import Logging
import Hummingbird
import NIOConcurrencyHelpers

/// The configured trusted proxies (`trusted_proxies`: addresses or CIDR ranges, IPv4 and IPv6) and the
/// one rule for a request's client address: the connection's peer, unless that peer is a trusted proxy;
/// then the nearest address in `X-Forwarded-For` that is not itself a trusted proxy (read from the right,
/// since a client can put anything on the left), or `X-Real-IP`. The limiter, the access log and every
/// other log line use this address.
struct TrustedProxies: Sendable {
    struct Range: Sendable {
        var bytes: [UInt8]
        var prefix: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var left = prefix
            for i in 0..<bytes.count where left > 0 {
                let bits = min(8, left)
                let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
                if address[i] & mask != bytes[i] & mask { return false }
                left -= bits
            }
            return true
        }
    }
    let ranges: [Range]

    /// Parses the configured entries; an entry that is not an address or range is an error (refused at start).
    init(_ entries: [String]) throws {
        ranges = try entries.map { raw in
            let entry = raw.trimmingCharacters(in: .whitespaces)
            let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
            guard let first = parts.first, let bytes = Self.parse(first) else {
                throw TrustedProxiesError(entry: raw)
            }
            var prefix = bytes.count * 8
            if parts.count == 2 {
                guard let p = Int(parts[1]), (0...bytes.count * 8).contains(p) else { throw TrustedProxiesError(entry: raw) }
                prefix = p
            }
            return Range(bytes: bytes, prefix: prefix)
        }
    }

    var isEmpty: Bool { ranges.isEmpty }

    /// The bytes of an IPv4 or IPv6 address (an IPv4-mapped IPv6 address as IPv4), or nil.
    static func parse(_ text: String) -> [UInt8]? {
        var s = text.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("[") && s.hasSuffix("]") { s = String(s.dropFirst().dropLast()) }
        if let zone = s.firstIndex(of: "%") { s = String(s[..<zone]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 {
            let b = withUnsafeBytes(of: &v6) { Array($0) }
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff { return Array(b[12...]) }
            return b
        }
        return nil
    }

    func trusts(_ address: String) -> Bool {
        guard !ranges.isEmpty, let b = Self.parse(address) else { return false }
        return ranges.contains { $0.contains(b) }
    }

    /// The client address of a request that came from `peer`, with the value of the one header the proxy sets
    /// (`forwardedFor` for `X-Forwarded-For`, or `realIP` for `X-Real-IP`, as `client_ip_header` says; a client
    /// can send either header itself, and a proxy that sets only one passes the other through).
    func clientAddress(peer: String, forwardedFor: String?, realIP: String?) -> String {
        guard trusts(peer) else { return peer }
        if let forwardedFor {
            // From the right: the first hop that is not a trusted proxy is the client. When every hop is a
            // trusted proxy, the leftmost is; an unreadable hop ends the walk (nothing left of it is believed).
            var nearest: String?
            for hop in forwardedFor.split(separator: ",").reversed() {
                let h = hop.trimmingCharacters(in: .whitespaces)
                guard Self.parse(h) != nil else { break }
                if !trusts(h) { return Self.canonical(h) }
                nearest = h
            }
            if let nearest { return Self.canonical(nearest) }
        }
        if let realIP, Self.parse(realIP) != nil { return Self.canonical(realIP) }
        return peer
    }

    /// One spelling per address (so that `::ffff:1.2.3.4`, `[::1]` and `::1` count as one in the limiter).
    static func canonical(_ text: String) -> String {
        guard let b = parse(text) else { return text }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if b.count == 4 {
            var a = in_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b) }
            return inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count)).map { String(cString: $0) } ?? text
        }
        var a = in6_addr()
        withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b) }
        return inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count)).map { String(cString: $0) } ?? text
    }
}

struct TrustedProxiesError: Error, CustomStringConvertible {
    var entry: String
    var description: String { "trusted_proxies: '\(entry)' is not an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8" }
}

/// Sets `AppContext.clientIP` for every request (first middleware), and says once in the log when a proxy
/// that is not trusted sends `X-Forwarded-For` (so the admin knows why every client has the proxy's address).
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = AppContext
    let trusted: TrustedProxies
    /// The header the trusted proxy sets: `X-Forwarded-For` (appended to) or `X-Real-IP` (set); only that
    /// one is read.
    let useRealIP: Bool
    let logger: Logger
    private let warned = NIOLockedValueBox<Bool>(false)

    init(trusted: TrustedProxies, header: String, logger: Logger) {
        self.trusted = trusted
        self.useRealIP = header.lowercased() == "x-real-ip"
        self.logger = logger
    }

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        var context = context
        let peer = context.peerAddress
        let forwarded = request.headers[.xForwardedFor]
        if trusted.isEmpty {
            if forwarded != nil && !warned.withLockedValue({ let w = $0; $0 = true; return w }) {
                logger.notice("requests from \(peer) carry X-Forwarded-For, but no proxy is trusted: every client behind it counts as \(peer) (login limits, logs). If \(peer) is your reverse proxy, add it to trusted_proxies in config.json")
            }
        } else {
            context.clientIP = useRealIP
                ? trusted.clientAddress(peer: peer, forwardedFor: nil, realIP: request.headers[.xRealIP])
                : trusted.clientAddress(peer: peer, forwardedFor: forwarded, realIP: nil)
        }
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let xRealIP = Self("X-Real-IP")!
}
