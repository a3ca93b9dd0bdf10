import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PanListCore

/// HTTP fetches made on a user's behalf (offline downloads): every hop of a redirect is checked by the
/// `OutboundGuard` and then connected to at the address that was checked, TLS always verified.
enum GuardedHTTP {
    static let maxRedirects = 10
    static let schemes: Set<String> = ["http", "https"]

    struct Opened {
        let response: HTTPClientResponse
        /// The URL that answered (after redirects).
        let url: URL
        let client: HTTPClient
    }

    /// Checks a URL's scheme and host; the host's checked addresses.
    static func check(_ url: URL, guard g: OutboundGuard, schemes: Set<String> = schemes) async throws(FSError) -> [IPAddress] {
        let scheme = url.scheme?.lowercased() ?? ""
        guard schemes.contains(scheme) else {
            throw .badRequest("PanList does not fetch \(scheme.isEmpty ? "addresses without a scheme" : scheme + ": addresses") here; use \(schemes.sorted().joined(separator: ", "))")
        }
        guard let host = url.host, !host.isEmpty else { throw .badRequest("\(url.absoluteString) has no host") }
        return try await g.check(host: host)
    }

    /// Parses what a user typed as a URL (trimmed; spaces and other characters a browser would encode are encoded).
    static func parse(_ text: String) throws(FSError) -> URL {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw .badRequest("the address is empty") }
        if let u = URL(string: t), u.scheme != nil { return u }
        if let enc = t.addingPercentEncoding(withAllowedCharacters: .urlFragmentAllowed.union(["#", "%"])), let u = URL(string: enc), u.scheme != nil {
            return u
        }
        throw .badRequest("\(t.debugDescription) is not a URL")
    }

    /// Sends a request (following up to 10 redirects, each checked) and hands the answer to `body`; the
    /// connection is closed when `body` returns or throws.
    static func with<R: Sendable>(_ url: URL, method: HTTPMethod = .GET, headers: [(String, String)] = [], guard g: OutboundGuard,
                                  _ body: (Opened) async throws -> R) async throws -> R {
        let o = try await open(url, method: method, headers: headers, guard: g)
        do {
            let r = try await body(o)
            await close(o)
            return r
        } catch {
            await close(o)
            throw error
        }
    }

    private static func open(_ url: URL, method: HTTPMethod = .GET, headers: [(String, String)] = [], guard g: OutboundGuard,
                     timeout: TimeAmount = .seconds(60)) async throws -> Opened {
        var current = url
        var hops = 0
        while true {
            let addresses = try await check(current, guard: g)
            var config = HTTPClient.Configuration()
            config.redirectConfiguration = .disallow
            config.timeout = .init(connect: .seconds(15), read: timeout)
            config.decompression = .disabled
            if let host = current.host, IPAddress(host) == nil, let first = addresses.first {
                config.dnsOverride = [host: first.description]
            }
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
            var req = HTTPClientRequest(url: current.absoluteString)
            req.method = method
            req.headers.add(name: "User-Agent", value: "PanList/\(DefaultSettings.version)")
            for (k, v) in headers { req.headers.replaceOrAdd(name: k, value: v) }
            let res: HTTPClientResponse
            do {
                res = try await client.execute(req, timeout: .seconds(60))
            } catch {
                await shutdown(client)
                throw FSError.upstream(code: 0, message: "\(current.host ?? "the server") did not answer: \(ErrorText.describe(error))")
            }
            if [301, 302, 303, 307, 308].contains(res.status.code), let loc = res.headers.first(name: "Location") {
                _ = try? await res.body.collect(upTo: 64 * 1024)
                await shutdown(client)
                hops += 1
                guard hops <= maxRedirects else { throw FSError.upstream(code: 0, message: "more than \(maxRedirects) redirects from \(url.absoluteString)") }
                guard let next = URL(string: loc, relativeTo: current)?.absoluteURL ?? (try? parse(loc)) else {
                    throw FSError.upstream(code: 0, message: "a redirect to \(loc.debugDescription), which is not a URL")
                }
                current = next
                continue
            }
            return Opened(response: res, url: current, client: client)
        }
    }

    private static func close(_ o: Opened) async { await shutdown(o.client) }

    /// Shuts a client down, also from a cancelled task.
    private static func shutdown(_ client: HTTPClient) async {
        await Task { try? await client.shutdown() }.value
    }

    /// A file name for what `url` answered with: Content-Disposition's `filename*` (RFC 8187), then its
    /// `filename`, then the URL's last path segment; made one safe name (no folders, no `..`, no control
    /// characters, at most 200 bytes), else `fallback`.
    static func fileName(disposition: String?, url: URL, fallback: String) -> String {
        var candidates: [String] = []
        if let d = disposition {
            let params = dispositionParams(d)
            if let ext = params["filename*"], let decoded = decodeExtValue(ext) { candidates.append(decoded) }
            if let plain = params["filename"] { candidates.append(plain) }
        }
        let last = url.path.split(separator: "/").last.map(String.init) ?? ""
        candidates.append(last.removingPercentEncoding ?? last)
        for c in candidates {
            if let safe = safeName(c) { return safe }
        }
        return fallback
    }

    /// One path component: the part after the last `/` or `\`, control characters dropped, trimmed, not
    /// `.`/`..`, cut to 200 bytes at a character boundary; nil if nothing usable is left.
    static func safeName(_ raw: String) -> String? {
        let lastPart = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var s = String(String.UnicodeScalarView(lastPart.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) }))
        s = s.trimmingCharacters(in: .whitespaces)
        while s.hasSuffix(".") && s != "." && s != ".." { s.removeLast() }
        guard !s.isEmpty, s != ".", s != ".." else { return nil }
        while s.utf8.count > 200 { s.removeLast() }
        return s
    }

    /// `attachment; filename="a b.txt"; filename*=UTF-8''a%20b.txt` → lower-cased names to values (quotes and
    /// backslash escapes removed).
    static func dispositionParams(_ header: String) -> [String: String] {
        var out: [String: String] = [:]
        var i = header.startIndex
        // Skip the type.
        while i < header.endIndex, header[i] != ";" { i = header.index(after: i) }
        while i < header.endIndex {
            i = header.index(after: i) // past ';'
            while i < header.endIndex, header[i] == " " || header[i] == "\t" { i = header.index(after: i) }
            var name = ""
            while i < header.endIndex, header[i] != "=", header[i] != ";" { name.append(header[i]); i = header.index(after: i) }
            guard i < header.endIndex, header[i] == "=" else { continue }
            i = header.index(after: i)
            var value = ""
            if i < header.endIndex, header[i] == "\"" {
                i = header.index(after: i)
                while i < header.endIndex, header[i] != "\"" {
                    if header[i] == "\\", header.index(after: i) < header.endIndex { i = header.index(after: i) }
                    value.append(header[i]); i = header.index(after: i)
                }
                if i < header.endIndex { i = header.index(after: i) }
                while i < header.endIndex, header[i] != ";" { i = header.index(after: i) }
            } else {
                while i < header.endIndex, header[i] != ";" { value.append(header[i]); i = header.index(after: i) }
                value = value.trimmingCharacters(in: .whitespaces)
            }
            let key = name.trimmingCharacters(in: .whitespaces).lowercased()
            if !key.isEmpty, out[key] == nil { out[key] = value }
        }
        return out
    }

    /// RFC 8187 `charset'lang'pct-encoded` (UTF-8 or ISO-8859-1).
    static func decodeExtValue(_ v: String) -> String? {
        let parts = v.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        let charset = parts[0].lowercased()
        var bytes: [UInt8] = []
        var it = Array(parts[2].utf8).makeIterator()
        while let c = it.next() {
            if c == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let b = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else { return nil }
                bytes.append(b)
            } else {
                bytes.append(c)
            }
        }
        if charset == "utf-8" { return String(bytes: bytes, encoding: .utf8) }
        if charset == "iso-8859-1" { return String(bytes: bytes, encoding: .isoLatin1) }
        return nil
    }
}
