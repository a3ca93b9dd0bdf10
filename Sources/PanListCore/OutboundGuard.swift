import Foundation
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address (4 or 16 bytes).
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A literal address: `a.b.c.d`, or IPv6 with or without brackets (a zone `%eth0` is dropped).
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        // A zone belongs to IPv6 only: "8.8.8.8%.evil.com" is a name, not 8.8.8.8.
        if let pct = t.firstIndex(of: "%") {
            guard t[..<pct].contains(":") else { return nil }
            t = t[..<pct]
        }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(t), &v4) == 1 {
            bytes = withUnsafeBytes(of: v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(t), &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
            return
        }
        return nil
    }

    public var isV4: Bool { bytes.count == 4 }

    public var description: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(isV4 ? AF_INET : AF_INET6, raw.baseAddress, &buf, socklen_t(buf.count)) != nil
        }
        guard ok else { return "?" }
        return String(cString: buf)
    }

    /// The IPv4 address an IPv6 one carries and is routed to: mapped (`::ffff:a.b.c.d`), compatible
    /// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
    public var embeddedV4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        let b = bytes
        if b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff { return IPAddress(bytes: Array(b[12..<16])) }
        if b[0..<12].allSatisfy({ $0 == 0 }), !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1) { return IPAddress(bytes: Array(b[12..<16])) }
        if b[0] == 0x00, b[1] == 0x64, b[2] == 0xff, b[3] == 0x9b, b[4..<12].allSatisfy({ $0 == 0 }) { return IPAddress(bytes: Array(b[12..<16])) }
        if b[0] == 0x20, b[1] == 0x02 { return IPAddress(bytes: Array(b[2..<6])) }
        return nil
    }
}

/// A range of addresses: `10.0.0.0/8`, `::1/128`, or one address.
public struct IPNetwork: Sendable, CustomStringConvertible {
    public let base: IPAddress
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let a = IPAddress(first) else { return nil }
        let width = a.bytes.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), p >= 0, p <= width else { return nil }
            prefix = p
        } else {
            prefix = width
        }
        base = a
    }

    public func contains(_ a: IPAddress) -> Bool {
        guard a.bytes.count == base.bytes.count else { return false }
        var left = prefix
        for i in 0..<a.bytes.count where left > 0 {
            let bits = min(8, left)
            let mask: UInt8 = bits == 8 ? 0xff : ~(0xff >> UInt8(bits))
            if a.bytes[i] & mask != base.bytes[i] & mask { return false }
            left -= bits
        }
        return true
    }

    public var description: String { "\(base)/\(prefix)" }
}

/// What PanList may fetch on a user's behalf (offline downloads): only public addresses, unless an admin
/// allowed some networks. Every address a host resolves to must be allowed (the connection may use any),
/// every hop of a redirect is checked again, and the connection is then made to an address that was checked
/// (so a name that resolves differently a moment later cannot lead it elsewhere).
public struct OutboundGuard: Sendable {
    /// Networks an admin allowed (the setting `offline_allowed_networks`).
    public var allowed: [IPNetwork]

    public static let settingKey = "offline_allowed_networks"

    /// Ranges refused unless allowed, with what they are.
    public static let refused: [(IPNetwork, String)] = [
        ("0.0.0.0/8", "a \"this network\" address"), ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"), ("127.0.0.0/8", "a loopback address"),
        ("169.254.169.254/32", "the cloud metadata address"), ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"), ("192.0.0.0/24", "a reserved address"),
        ("192.168.0.0/16", "a private address"), ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"), ("240.0.0.0/4", "a reserved address"),
        ("::/128", "the unspecified address"), ("::1/128", "a loopback address"),
        ("fd00:ec2::254/128", "the cloud metadata address"), ("fc00::/7", "a private (unique local) address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"), ("::ffff:0:0:0/96", "an IPv4-translated address"),
        ("fe80::/10", "a link-local address"), ("fec0::/10", "a site-local address"), ("ff00::/8", "a multicast address"),
    ].compactMap { text, what in IPNetwork(text).map { ($0, what) } }

    public init(allowed: [IPNetwork] = []) { self.allowed = allowed }

    /// Parses the setting: addresses or networks separated by commas, spaces or new lines.
    public init(setting: String) throws(FSError) {
        var nets: [IPNetwork] = []
        for word in setting.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" || $0 == "\t" || $0 == ";" }) {
            guard let n = IPNetwork(String(word)) else {
                throw .badRequest("\(Self.settingKey): \(String(word).debugDescription) is not an address or a network such as 127.0.0.1 or 10.0.0.0/8")
            }
            nets.append(n)
        }
        allowed = nets
    }

    /// Why `a` may not be fetched from (nil: it may).
    public func refusal(_ a: IPAddress) -> String? {
        if allowed.contains(where: { $0.contains(a) }) { return nil }
        if let v4 = a.embeddedV4 {
            if let why = refusal(v4) { return why + " (inside \(a))" }
        }
        for (net, what) in Self.refused where net.contains(a) { return what }
        return nil
    }

    /// Checks a host (a name or a literal address): the addresses it may be reached at, every one of them
    /// allowed. Throws `badRequest` naming the address and why otherwise.
    public func check(host rawHost: String) async throws(FSError) -> [IPAddress] {
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        guard !host.isEmpty else { throw .badRequest("the address has no host") }
        guard !host.contains("%") || IPAddress(host) != nil else { throw .badRequest("\(host.debugDescription) is not a host name") }
        let addresses: [IPAddress]
        if let literal = IPAddress(host) {
            addresses = [literal]
        } else {
            addresses = try await Self.resolve(host)
        }
        for a in addresses {
            if let why = refusal(a) {
                let shown = IPAddress(host) != nil ? host : "\(host) (\(a))"
                throw .badRequest("PanList does not fetch from \(shown): it is \(why). An admin can allow it in the setting \(Self.settingKey).")
            }
        }
        return addresses
    }

    /// Every address `host` resolves to (getaddrinfo, off the event loops; numeric forms such as `0x7f.1`
    /// or `2130706433` resolve as the connection would resolve them).
    public static func resolve(_ host: String) async throws(FSError) -> [IPAddress] {
        let result: Result<[IPAddress], FSError>
        do {
            result = try await NIOThreadPool.singleton.runIfActive { () -> Result<[IPAddress], FSError> in
                var hints = addrinfo()
                hints.ai_family = AF_UNSPEC
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                let rc = getaddrinfo(host, nil, &hints, &list)
                guard rc == 0, let first = list else {
                    return .failure(.badRequest("the host \(host) could not be resolved"))
                }
                defer { freeaddrinfo(first) }
                var out: [IPAddress] = []
                var p: UnsafeMutablePointer<addrinfo>? = first
                while let cur = p {
                    if let sa = cur.pointee.ai_addr {
                        if cur.pointee.ai_family == AF_INET {
                            let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                            if let ip = IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) }) { out.append(ip) }
                        } else if cur.pointee.ai_family == AF_INET6 {
                            let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                            if let ip = IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) }) { out.append(ip) }
                        }
                    }
                    p = cur.pointee.ai_next
                }
                var seen = Set<IPAddress>()
                return out.isEmpty ? .failure(.badRequest("the host \(host) has no address")) : .success(out.filter { seen.insert($0).inserted })
            }
        } catch {
            throw .unavailable("PanList is stopping")
        }
        return try result.get()
    }
}
