import Foundation
import NIOConcurrencyHelpers
import PanListCore

/// Per client ID and endpoint pacing (QPS from a table: the spec's defaults, overridden per storage by its
/// `rate_limits` setting). Every attempt, retries included, reserves its own slot, and the waiting happens
/// outside the actor, so a retry can never deadlock it. Storages sharing a client ID share one limiter;
/// instances sharing a store (a cluster on PostgreSQL) share the budget through it, since 123 counts QPS per
/// client ID, not per machine.
///
/// Pacing learns from 429: each one (at most one a second per endpoint) halves that endpoint's rate, down to
/// a twentieth of the table's; every 10 s without a 429 it grows back by a quarter, up to the table's rate.
/// An endpoint the table leaves unpaced is paced from its first 429 on, starting at 2 per second. What is
/// learnt is this instance's (each instance of a cluster learns on its own from the 429s it gets).
actor RateLimiter {
    private static let registry = NIOLockedValueBox<[ObjectIdentifier: RateLimiter]>([:])
    private static let unshared = RateLimiter()

    /// The in-process limiter of the server that owns `state` (one per server, so two servers in one test
    /// process do not share a budget behind the store's back).
    static func local(for state: (any DriverStateStore)?) -> RateLimiter {
        guard let state else { return unshared }
        let id = ObjectIdentifier(state as AnyObject)
        return registry.withLockedValue { map in
            if let l = map[id] { return l }
            let l = RateLimiter()
            map[id] = l
            return l
        }
    }

    /// Waits for the next slot of `endpoint` for `clientID`: through the store when it is shared by several
    /// instances (one budget for all), in this process otherwise or when the store cannot answer.
    static func acquire(clientID: String, endpoint: String, state: (any DriverStateStore)?, table: [String: Double]) async throws {
        let limiter = local(for: state)
        guard let qps = await limiter.effectiveQPS(clientID: clientID, endpoint: endpoint, base: table[endpoint]), qps > 0 else { return }
        let interval = Duration.microseconds(Int64(1_000_000 / qps))
        if let state, state.isShared {
            do {
                let wait = try await state.reserveSlot("123open.pace \(clientID) \(endpoint)", interval: interval)
                if wait > .zero { try await Task.sleep(for: wait) }
                return
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // The store is away: pace this instance alone rather than stop.
            }
        }
        let wait = await limiter.reserve(clientID: clientID, endpoint: endpoint, interval: interval)
        if wait > .zero { try await Task.sleep(for: wait) }
    }

    /// With the default table.
    static func acquire(clientID: String, endpoint: String, state: (any DriverStateStore)?) async throws {
        try await acquire(clientID: clientID, endpoint: endpoint, state: state, table: qps)
    }

    /// 123 answered 429 for `endpoint`: slow it down.
    static func rateLimited(clientID: String, endpoint: String, state: (any DriverStateStore)?, table: [String: Double]) async {
        await local(for: state).slowDown(clientID: clientID, endpoint: endpoint, base: table[endpoint])
    }

    /// The default table: the latest free-tier numbers where the spec gives one (doc 2025-10-28), OpenList's for
    /// the other endpoints it paces; `oauth2/access_token` is documented at 100 a minute.
    static let qps: [String: Double] = [
        "/api/v1/user/info": 10, "/api/v2/file/list": 5, "/upload/v1/file/mkdir": 5, "/api/v1/file/move": 3,
        "/api/v1/file/delete": 1, "/api/v1/access_token": 8, "/api/v1/file/download_info": 5,
        "/api/v1/direct-link/url": 5, "/api/v1/file/name": 1, "/api/v1/file/trash": 2,
        "/upload/v2/file/create": 2, "/upload/v2/file/sha1_reuse": 2, "/api/v1/oauth2/access_token": 1.5,
    ]

    /// The storage's `rate_limits` setting: lines (or `;`/`,`-separated items) `PATH=QPS`, `#` comments;
    /// QPS 0 leaves the endpoint unpaced. The table is the default one with these replaced.
    static func table(overriding text: String) throws(FSError) -> [String: Double] {
        var table = qps
        let items = text.split(whereSeparator: { $0 == "\n" || $0 == ";" || $0 == "," })
        for (n, raw) in items.enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, parts[0].hasPrefix("/"), !parts[0].contains(" "),
                  let value = Double(parts[1]), value.isFinite, value >= 0, value <= 1000 else {
                throw .badRequest("rate_limits item \(n + 1) ('\(line)') is not PATH=QPS: write one endpoint a line, such as /api/v2/file/list=3 (QPS from 0 to 1000, fractions allowed; 0 = not paced)")
            }
            table[parts[0]] = value
        }
        return table
    }

    private struct Learned {
        var factor: Double = 1
        var changed = ContinuousClock.now
        var base: Double?
    }

    private var next: [String: ContinuousClock.Instant] = [:]
    private var learned: [String: Learned] = [:]

    /// The rate to pace `endpoint` at now (nil: unpaced), recovering a learnt slow-down step by step.
    func effectiveQPS(clientID: String, endpoint: String, base: Double?) -> Double? {
        let key = clientID + " " + endpoint
        guard var l = learned[key] else { return base }
        let now = ContinuousClock.now
        while l.factor < 1, now - l.changed >= .seconds(10) {
            l.factor = min(1, l.factor * 1.25)
            l.changed = l.changed + .seconds(10)
        }
        if l.factor >= 1 {
            learned[key] = nil
            return base
        }
        learned[key] = l
        guard let b = base ?? l.base, b > 0 else { return nil }
        return b * l.factor
    }

    func slowDown(clientID: String, endpoint: String, base: Double?) {
        let key = clientID + " " + endpoint
        let now = ContinuousClock.now
        var l = learned[key] ?? Learned(factor: 1, changed: now - .seconds(2), base: base == nil || base == 0 ? 2 : nil)
        // Several 429s at once come from one burst: one step for them.
        guard now - l.changed >= .seconds(1) || l.factor >= 1 else { return }
        l.factor = max(0.05, l.factor * 0.5)
        l.changed = now
        learned[key] = l
    }

    /// The learnt fraction of the table's rate for an endpoint (1 when nothing was learnt), for tests.
    func factor(clientID: String, endpoint: String) -> Double { learned[clientID + " " + endpoint]?.factor ?? 1 }

    /// Reserves the next slot for `endpoint` and returns how long to wait for it.
    func reserve(clientID: String, endpoint: String, interval: Duration) -> Duration {
        let key = clientID + " " + endpoint
        let now = ContinuousClock.now
        let slot = max(now, next[key] ?? now)
        next[key] = slot + interval
        return slot - now
    }
}
