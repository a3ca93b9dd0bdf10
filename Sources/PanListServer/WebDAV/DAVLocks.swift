import Foundation
import NIOConcurrencyHelpers
import PanListStore
import PanListCore

/// WebDAV write locks: exclusive and shared, depth 0 or infinity, with timeouts. They live in the store, so
/// every instance of a cluster honours a lock taken on any of them, a conflicting LOCK is refused whichever
/// instance gets it (the check and the insert run under one cluster-wide lock), and a timeout ends a lock
/// everywhere at once (expiry is wall-clock time). Paths are absolute virtual paths.
final class DAVLocks: Sendable {
    typealias Lock = DAVLockRecord

    static let maxTimeout = 7 * 24 * 3600
    static let defaultTimeout = 3600
    let store: any Store

    init(store: any Store) { self.store = store }

    /// The locks in force now, read once per request (few; usually none).
    func live() async throws -> Live { Live(all: try await store.davLocks()) }

    struct Live: Sendable {
        let all: [Lock]
        var any: Bool { !all.isEmpty }
        /// Locks that apply to `path`.
        func on(_ path: String) -> [Lock] { all.filter { DAVLocks.covers($0, path) } }
        /// Locks that apply to `path` or to anything below it (what a DELETE or MOVE of a folder touches).
        func onOrBelow(_ path: String) -> [Lock] { all.filter { DAVLocks.covers($0, path) || VirtualPath.isWithin($0.path, path) } }
        func token(_ token: String) -> Lock? { all.first { $0.token == token } }
    }

    /// Whether `lock` applies to `path` (its root, or below it with depth infinity).
    static func covers(_ lock: Lock, _ path: String) -> Bool {
        lock.path == path || (lock.infinite && VirtualPath.isWithin(path, lock.path))
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Creates a lock, or nil when an existing lock conflicts (423).
    func create(root: String, infinite: Bool, exclusive: Bool, owner: String, timeout: Int) async throws -> Lock? {
        let lock = Lock(token: "opaquelocktoken:" + UUID().uuidString.lowercased(), path: root, infinite: infinite,
                        exclusive: exclusive, owner: owner, timeout: timeout, expires_ms: Self.nowMs() + Int64(timeout) * 1000)
        let made = try await store.createDAVLock(lock) { live in
            live.contains { l in
                let overlaps = Self.covers(l, root) || (infinite && VirtualPath.isWithin(l.path, root))
                return overlaps && (exclusive || l.exclusive)
            }
        }
        return made ? lock : nil
    }

    func refresh(token: String, timeout: Int) async throws -> Lock? {
        try await store.refreshDAVLock(token: token, timeout: timeout, expiresMs: Self.nowMs() + Int64(timeout) * 1000)
    }

    @discardableResult
    func remove(token: String) async throws -> Bool { try await store.deleteDAVLock(token: token) }

    /// Drops every lock on `path` and below (the resource is gone).
    func removeAll(below path: String) async throws { try await store.deleteDAVLocks(below: path) }

    /// `Timeout: Second-3600, Infinite` → seconds (capped at a week).
    static func timeout(_ header: String?) -> Int {
        guard let header else { return defaultTimeout }
        for part in header.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.lowercased() == "infinite" { return maxTimeout }
            if t.lowercased().hasPrefix("second-"), let n = Int(t.dropFirst(7)), n > 0 { return min(n, maxTimeout) }
        }
        return defaultTimeout
    }

    /// The `<D:activelock>` of a lock; `href` is the lock root as the client sees it.
    static func activeLock(_ l: Lock, href: String) -> String {
        "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope>\(l.exclusive ? "<D:exclusive/>" : "<D:shared/>")</D:lockscope>"
            + "<D:depth>\(l.infinite ? "infinity" : "0")</D:depth>"
            + (l.owner.isEmpty ? "" : "<D:owner>\(l.owner)</D:owner>")
            + "<D:timeout>Second-\(l.timeout)</D:timeout>"
            + "<D:locktoken><D:href>\(DAVXML.escape(l.token))</D:href></D:locktoken>"
            + "<D:lockroot><D:href>\(DAVXML.escape(href))</D:href></D:lockroot></D:activelock>"
    }
}

/// The `If` request header (RFC 4918 §10.4): lists of conditions, optionally tagged with a resource.
struct IfHeader {
    struct Condition {
        var not: Bool
        var token: String?
        var etag: String?
    }
    struct List {
        var resource: String?  // a tagged list's URL (path part, decoded), nil for the request URL
        var conditions: [Condition]
    }
    var lists: [List]

    /// Every lock token the header mentions (submitted tokens, whatever the list's outcome).
    var tokens: [String] { lists.flatMap { $0.conditions.compactMap(\.token) } }

    /// Parses the header; nil when it is malformed.
    static func parse(_ header: String) -> IfHeader? {
        var lists: [List] = []
        var i = header.startIndex
        var tag: String?
        func skipSpace() { while i < header.endIndex, header[i].isWhitespace { i = header.index(after: i) } }
        func read(until end: Character) -> String? {
            let start = header.index(after: i)
            guard let close = header[start...].firstIndex(of: end) else { return nil }
            i = header.index(after: close)
            return String(header[start..<close])
        }
        while true {
            skipSpace()
            guard i < header.endIndex else { break }
            switch header[i] {
            case "<":
                guard let url = read(until: ">") else { return nil }
                tag = url
            case "(":
                i = header.index(after: i)
                var conditions: [Condition] = []
                while true {
                    skipSpace()
                    guard i < header.endIndex else { return nil }
                    if header[i] == ")" { i = header.index(after: i); break }
                    var not = false
                    if header[i...].lowercased().hasPrefix("not") {
                        not = true
                        i = header.index(i, offsetBy: 3)
                        skipSpace()
                        guard i < header.endIndex else { return nil }
                    }
                    if header[i] == "<" {
                        guard let t = read(until: ">") else { return nil }
                        conditions.append(Condition(not: not, token: t, etag: nil))
                    } else if header[i] == "[" {
                        guard let e = read(until: "]") else { return nil }
                        conditions.append(Condition(not: not, token: nil, etag: e))
                    } else {
                        return nil
                    }
                }
                if conditions.isEmpty { return nil }
                lists.append(List(resource: tag, conditions: conditions))
            default:
                return nil
            }
        }
        return lists.isEmpty ? nil : IfHeader(lists: lists)
    }
}
