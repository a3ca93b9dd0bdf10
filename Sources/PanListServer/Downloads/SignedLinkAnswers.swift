import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// The answers `/d` gave for signed links, by the request's exact target (`/d/<path>?sign=…`, nothing else in
/// the query): redirects to a cloud's link, and whole small local files. They are kept while nothing they were
/// made from changed: the file system (its write generation moves on every write, storage load and unload),
/// the settings (the sign key, `proxy_types`), the cloud link (dropped as refused by a `/p` or WebDAV stream),
/// the sign's own expiry, and the link's (a local file: as long as the small-file cache keeps its bytes,
/// at most a second). A player or a page fetching the same link again and again is then answered without
/// decoding, verifying, resolving and deciding again: with a signed link, none of those depends on who asks.
/// A kept file is only given to a plain GET (no Range, no conditions), which its answer does not depend on.
/// Memory is bounded by bytes (targets, headers and files counted), not only by entries: targets are chosen
/// by clients.
final class SignedLinkAnswers: Sendable {
    struct Entry {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: ByteBuffer?
        var until: ContinuousClock.Instant
        var signExpire: Int64
        var stamp: Delivery.Stamp
        var bytes: Int
    }
    struct Contents {
        var entries: [String: Entry] = [:]
        var bytes = 0
    }
    private let box = NIOLockedValueBox(Contents())
    static let maxEntries = 10_000
    static let maxBytes = 32 << 20
    /// A longer target is not kept.
    static let maxTarget = 4096
    /// Kept at most this long, however long the cloud's link lives.
    static let maxAge: Duration = .seconds(60)

    /// Whether answers to `target` may be kept: short enough, and a query of the sign alone (any other
    /// parameter would make endless keys for one link).
    static func keepable(_ target: String, query: String?) -> Bool {
        guard target.utf8.count <= maxTarget, let query else { return false }
        return query.utf8.starts(with: "sign=".utf8) && !query.utf8.contains(UInt8(ascii: "&"))
    }

    /// The kept answer for `target`, if it still holds; `plain`: the request has no Range and no conditions
    /// (a kept file answers only those).
    func get(_ target: String, stamp: Delivery.Stamp, plain: Bool) -> Response? {
        let now = ContinuousClock.now
        let found: Entry? = box.withLockedValue { c in
            guard let e = c.entries[target] else { return nil }
            guard e.stamp == stamp, e.until > now else {
                c.entries.removeValue(forKey: target)
                c.bytes -= e.bytes
                return nil
            }
            return e
        }
        guard let e = found else { return nil }
        if e.body != nil && !plain { return nil }
        if e.signExpire != 0 && Int64(Date().timeIntervalSince1970) > e.signExpire { return nil }
        return Response(status: e.status, headers: e.headers, body: e.body.map { .init(byteBuffer: $0) } ?? .init())
    }

    func put(_ target: String, status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer? = nil, until: ContinuousClock.Instant,
             remember r: Delivery.Remember) {
        let now = ContinuousClock.now
        let until = min(until, now + Self.maxAge)
        guard until > now else { return }
        var cost = 128 + target.utf8.count + (body?.readableBytes ?? 0)
        for field in headers { cost += field.name.rawName.utf8.count + field.value.utf8.count + 16 }
        guard cost <= Self.maxBytes / 4 else { return }
        let entry = Entry(status: status, headers: headers, body: body, until: until, signExpire: r.signExpire, stamp: r.stamp, bytes: cost)
        box.withLockedValue { c in
            if let old = c.entries.removeValue(forKey: target) { c.bytes -= old.bytes }
            if c.bytes + cost > Self.maxBytes || c.entries.count >= Self.maxEntries {
                // First what no longer holds (expired, or made before the current generations), then all.
                c.entries = c.entries.filter { $0.value.until > now && !$0.value.stamp.isOlder(than: r.stamp) }
                c.bytes = c.entries.values.reduce(0) { $0 + $1.bytes }
                if c.bytes + cost > Self.maxBytes || c.entries.count >= Self.maxEntries { c = Contents() }
            }
            c.entries[target] = entry
            c.bytes += cost
        }
    }

    /// Entries and bytes kept (tests).
    var usage: (entries: Int, bytes: Int) { box.withLockedValue { ($0.entries.count, $0.bytes) } }
}
