import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// The answers `/d` gave for signed links, by the request's exact target (`/d/<path>?sign=…`): redirects to a
/// cloud's link, and whole small local files. They are kept while nothing they were made from changed: the
/// file system (its write generation moves on every write, storage load and unload), the settings (the sign
/// key, `proxy_types`), the sign's own expiry, and the cloud link's (a local file: a second, as the small-file
/// cache keeps it). A player or a page fetching the same link again and again is then answered without
/// decoding, verifying, resolving and deciding again: with a signed link, none of those depends on who asks.
/// A kept file is only given to a plain GET (no Range, no conditions), which its answer does not depend on.
final class SignedLinkAnswers: Sendable {
    struct Entry {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: ByteBuffer?
        var until: ContinuousClock.Instant
        var signExpire: Int64
        var generation: Int
        var settings: Int
    }
    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    static let maxEntries = 10_000
    /// Kept at most this long, however long the cloud's link lives.
    static let maxAge: Duration = .seconds(60)

    /// The kept answer for `target`, if it still holds; `plain`: the request has no Range and no conditions
    /// (a kept file answers only those).
    func get(_ target: String, generation: Int, settings: Int, plain: Bool) -> Response? {
        let now = ContinuousClock.now
        guard let e = entries.withLockedValue({ $0[target] }), e.generation == generation, e.settings == settings, e.until > now else {
            return nil
        }
        if e.body != nil && !plain { return nil }
        if e.signExpire != 0 && Int64(Date().timeIntervalSince1970) > e.signExpire { return nil }
        return Response(status: e.status, headers: e.headers, body: e.body.map { .init(byteBuffer: $0) } ?? .init())
    }

    func put(_ target: String, status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer? = nil, until: ContinuousClock.Instant,
             remember r: Delivery.Remember) {
        let until = min(until, .now + Self.maxAge)
        guard until > .now else { return }
        entries.withLockedValue { map in
            if map.count >= Self.maxEntries { map.removeAll(keepingCapacity: true) }
            map[target] = Entry(status: status, headers: headers, body: body, until: until, signExpire: r.signExpire,
                                generation: r.generation, settings: r.settings)
        }
    }
}
