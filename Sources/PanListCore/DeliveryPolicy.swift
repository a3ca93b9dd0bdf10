import Foundation
import NIOConcurrencyHelpers

/// How the bytes of a file reach a client: the one decision behind `/d`, `/p`, `fs/get`'s `raw_url`
/// and WebDAV GET, from the storage's `web_proxy`, `webdav_policy` and `down_proxy_url`, the driver's
/// `onlyProxy`, and the `proxy_types` setting (Alist's rules, alist-core §3).
public enum DeliveryPolicy {
    /// Where the request came in.
    public enum Entry: Sendable, Equatable {
        /// `/d/<path>` and the links the web UI builds from `raw_url`.
        case direct
        /// `/p/<path>`; `fromProxy` when the request carries the `d` parameter (it already came through
        /// the storage's download proxy, so it must be served here).
        case proxy(fromProxy: Bool)
        /// A WebDAV GET; `followsRedirects` when the client is one known to follow them (the
        /// `webdav_redirect_agents` setting). Clients that do not (cadaver, many NAS backup tools) would
        /// save a redirect as an empty file, so they are always streamed.
        case webdav(followsRedirects: Bool)
    }

    public enum Decision: Sendable, Equatable {
        /// 302 to the cloud's own URL (only possible for `.url` links).
        case redirectToLink
        /// 302 to `<down_proxy_url><encoded path>?sign=…`.
        case redirectToProxyURL(String)
        /// This server streams the bytes.
        case stream
    }

    public static let policies = ["302_redirect", "use_proxy_url", "native_proxy"]

    /// `proxyTypes`: lower-case extensions from the `proxy_types` setting, always proxied from `/d`.
    public static func decide(_ entry: Entry, storage: StorageRecord, onlyProxy: Bool, name: String,
                              proxyTypes: Set<String>) -> Decision {
        switch entry {
        case .direct:
            if onlyProxy || storage.webProxy || (!proxyTypes.isEmpty && proxyTypes.contains(extensionOf(name))) {
                return decide(.proxy(fromProxy: false), storage: storage, onlyProxy: onlyProxy, name: name, proxyTypes: proxyTypes)
            }
            return .redirectToLink
        case .proxy(let fromProxy):
            let proxyURL = firstLine(storage.downProxyURL)
            if !proxyURL.isEmpty && !fromProxy { return .redirectToProxyURL(proxyURL) }
            return .stream
        case .webdav(let follows):
            guard follows else { return .stream }
            let proxyURL = firstLine(storage.downProxyURL)
            switch storage.webdavPolicy {
            case "use_proxy_url": return proxyURL.isEmpty ? .stream : .redirectToProxyURL(proxyURL)
            case "native_proxy": return .stream
            default: return onlyProxy ? .stream : .redirectToLink
            }
        }
    }

    /// Whether a WebDAV client with this User-Agent follows redirects: `agents` are lower-case parts of
    /// User-Agents (the `webdav_redirect_agents` setting); `*` stands for every client.
    public static func followsRedirects(userAgent: String, agents: [String]) -> Bool {
        if agents.contains("*") { return true }
        let ua = userAgent.lowercased()
        return !ua.isEmpty && agents.contains { !$0.isEmpty && ua.contains($0) }
    }

    /// The lower-case extension of a file name ("" when it has none; a leading dot is not one).
    static func extensionOf(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }

    /// The first non-empty line of `down_proxy_url`, without a trailing `/`.
    public static func firstLine(_ value: String) -> String {
        if value.isEmpty { return "" }
        var line = value.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty } ?? ""
        while line.hasSuffix("/") { line.removeLast() }
        return line
    }
}

/// Links recently handed out, per storage and path, kept until shortly before their own expiry
/// (URLs without one are not kept; local files for a second). Concurrent requests for the same link share one driver call.
/// Any write through the file system (a new generation) makes every kept link stale.
/// A hit is a dictionary lookup under a lock (no actor hop: `/d` redirects are on the hot path).
public final class LinkCache: Sendable {
    struct Entry {
        var link: Link
        var obj: Obj
        var until: ContinuousClock.Instant
        var generation: Int
    }
    struct State {
        var entries: [Key: Entry] = [:]
        var inflight: [Key: Task<(Link, Obj), any Error>] = [:]
        var forgets = 0
    }
    private let state = NIOLockedValueBox(State())
    /// How long before a link's expiry it stops being handed out.
    let margin: Duration
    let maxEntries: Int

    public init(margin: Duration = .seconds(10), maxEntries: Int = 10_000) {
        self.margin = margin
        self.maxEntries = maxEntries
    }

    /// A link's key: its storage and virtual path.
    public struct Key: Hashable, Sendable {
        public var storage: Int
        public var path: String
        public init(storage: Int, path: String) { self.storage = storage; self.path = path }
    }

    public func link(key: Key, generation: Int, make: @escaping @Sendable () async throws -> (Link, Obj)) async throws -> (Link, Obj) {
        enum Lookup { case hit(Link, Obj), wait(Task<(Link, Obj), any Error>) }
        let now = ContinuousClock.now
        let lookup: Lookup = state.withLockedValue { s in
            if let e = s.entries[key], e.generation == generation, e.until > now { return .hit(e.link, e.obj) }
            if let running = s.inflight[key] { return .wait(running) }
            let task = Task { [self] in
                defer { _ = state.withLockedValue { $0.inflight.removeValue(forKey: key) } }
                let (link, obj) = try await make()
                keep(key, link, obj, generation)
                return (link, obj)
            }
            s.inflight[key] = task
            return .wait(task)
        }
        switch lookup {
        case .hit(let link, let obj):
            Metrics.linkCache.hit.increment()
            return (link, obj)
        case .wait(let task):
            Metrics.linkCache.miss.increment()
            return try await task.value
        }
    }

    /// How long a local file's link is kept: like the Local driver's lookups, a second (the file itself is
    /// opened and checked on every download; a write through PanList drops it at once).
    public static let localTTL: Duration = .seconds(1)

    private func keep(_ key: Key, _ link: Link, _ obj: Obj, _ generation: Int) {
        let keep: Duration
        switch link {
        case .localFile:
            keep = Self.localTTL
        case .url(_, _, let expiresAt?):
            let left = expiresAt.timeIntervalSinceNow
            guard left > 0 else { return }
            keep = Duration.milliseconds(Int64(left * 1000)) - margin
            guard keep > .zero else { return }
        case .url(_, _, nil):
            return
        }
        state.withLockedValue { s in
            if s.entries.count >= maxEntries { s.entries.removeAll() }
            s.entries[key] = Entry(link: link, obj: obj, until: .now + keep, generation: generation)
        }
    }

    /// Drops a link (it turned out to be expired or refused).
    public func forget(key: Key) {
        state.withLockedValue {
            $0.entries.removeValue(forKey: key)
            $0.forgets += 1
        }
    }

    /// Moves on every `forget`: what was made from a kept link (a redirect kept by `/d`) compares it.
    public var forgetGeneration: Int { state.withLockedValue { $0.forgets } }

    public var count: Int { state.withLockedValue { $0.entries.count } }
}
