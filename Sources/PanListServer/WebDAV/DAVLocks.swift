import Foundation
import NIOConcurrencyHelpers
import PanListCore

/// WebDAV write locks, in memory (as Alist's): exclusive and shared, depth 0 or infinity, with timeouts.
/// Paths are absolute virtual paths.
final class DAVLocks: Sendable {
    struct Lock: Sendable {
        var token: String
        var root: String
        var infinite: Bool
        var exclusive: Bool
        var owner: String
        var timeout: Int  // seconds
        var expires: ContinuousClock.Instant
    }

    static let maxTimeout = 7 * 24 * 3600
    static let defaultTimeout = 3600
    private let box = NIOLockedValueBox<[String: Lock]>([:])

    private func live() -> [Lock] {
        box.withLockedValue { locks in
            Self.dropExpired(&locks)
            return Array(locks.values)
        }
    }

    /// Removes expired locks (the table is rewritten only when one has expired).
    private static func dropExpired(_ locks: inout [String: Lock]) {
        let now = ContinuousClock.now
        if locks.values.contains(where: { $0.expires <= now }) { locks = locks.filter { $0.value.expires > now } }
    }

    /// Whether `lock` applies to `path` (its root, or below it with depth infinity).
    static func covers(_ lock: Lock, _ path: String) -> Bool {
        lock.root == path || (lock.infinite && VirtualPath.isWithin(path, lock.root))
    }

    /// Locks that apply to `path`.
    func locks(on path: String) -> [Lock] { live().filter { Self.covers($0, path) } }

    /// Locks that apply to `path` or to anything below it (what a DELETE or MOVE of a folder touches).
    func locks(onOrBelow path: String) -> [Lock] {
        live().filter { Self.covers($0, path) || VirtualPath.isWithin($0.root, path) }
    }

    func lock(token: String) -> Lock? { live().first { $0.token == token } }

    /// Whether any lock exists at all (a listing then skips looking for each entry's locks).
    var any: Bool { box.withLockedValue { !$0.isEmpty } }

    /// Creates a lock, or nil when an existing lock conflicts (423).
    func create(root: String, infinite: Bool, exclusive: Bool, owner: String, timeout: Int) -> Lock? {
        box.withLockedValue { locks in
            Self.dropExpired(&locks)
            let now = ContinuousClock.now
            for l in locks.values {
                let overlaps = Self.covers(l, root) || (infinite && VirtualPath.isWithin(l.root, root))
                if overlaps && (exclusive || l.exclusive) { return nil }
            }
            let lock = Lock(token: "opaquelocktoken:" + UUID().uuidString.lowercased(), root: root, infinite: infinite,
                            exclusive: exclusive, owner: owner, timeout: timeout, expires: now + .seconds(timeout))
            locks[lock.token] = lock
            return lock
        }
    }

    func refresh(token: String, timeout: Int) -> Lock? {
        box.withLockedValue { locks in
            guard var l = locks[token], l.expires > .now else { return nil }
            l.timeout = timeout
            l.expires = .now + .seconds(timeout)
            locks[token] = l
            return l
        }
    }

    @discardableResult
    func remove(token: String) -> Bool { box.withLockedValue { $0.removeValue(forKey: token) != nil } }

    /// Drops every lock on `path` and below (the resource is gone).
    func removeAll(below path: String) {
        box.withLockedValue { locks in locks = locks.filter { !VirtualPath.isWithin($0.value.root, path) } }
    }

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
