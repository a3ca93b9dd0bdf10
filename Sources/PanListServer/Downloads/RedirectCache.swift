import Foundation
import HTTPTypes
import NIOConcurrencyHelpers

/// The redirects `/d` answered for signed links, by the request's exact target (`/d/<path>?sign=…`), kept
/// while nothing they were made from changed: the file system (its write generation moves on every write,
/// storage load and unload), the settings (the sign key, `proxy_types`), the sign's own expiry and the cloud
/// link's. A player fetching the same link again and again (range requests, several clients) is then answered
/// without decoding, verifying, resolving and deciding again: with a signed link, none of those depends on
/// who asks.
final class RedirectCache: Sendable {
    struct Entry {
        var headers: HTTPFields
        var until: ContinuousClock.Instant
        var signExpire: Int64
        var generation: Int
        var settings: Int
    }
    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    static let maxEntries = 10_000
    /// Kept at most this long, however long the cloud's link lives.
    static let maxAge: Duration = .seconds(60)

    func get(_ target: String, generation: Int, settings: Int) -> HTTPFields? {
        let now = ContinuousClock.now
        guard let e = entries.withLockedValue({ $0[target] }), e.generation == generation, e.settings == settings, e.until > now else {
            return nil
        }
        if e.signExpire != 0 && Int64(Date().timeIntervalSince1970) > e.signExpire { return nil }
        return e.headers
    }

    func put(_ target: String, _ headers: HTTPFields, linkUntil: ContinuousClock.Instant, signExpire: Int64, generation: Int, settings: Int) {
        let until = min(linkUntil, .now + Self.maxAge)
        guard until > .now else { return }
        entries.withLockedValue { map in
            if map.count >= Self.maxEntries { map.removeAll(keepingCapacity: true) }
            map[target] = Entry(headers: headers, until: until, signExpire: signExpire, generation: generation, settings: settings)
        }
    }
}
