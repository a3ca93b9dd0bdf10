import Foundation
import NIOConcurrencyHelpers
import PanListCore

/// Per client ID and endpoint pacing (QPS from the spec's tables). Every attempt, retries included,
/// reserves its own slot, and the waiting happens outside the actor, so a retry can never deadlock it.
/// Storages sharing a client ID share one limiter; instances sharing a store (a cluster on PostgreSQL)
/// share the budget through it, since 123 counts QPS per client ID, not per machine.
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
    static func acquire(clientID: String, endpoint: String, state: (any DriverStateStore)?) async throws {
        guard let qps = qps[endpoint], qps > 0 else { return }
        if let state, state.isShared {
            do {
                let wait = try await state.reserveSlot("123open.pace \(clientID) \(endpoint)", interval: .milliseconds(Int64(1000 / qps)))
                if wait > .zero { try await Task.sleep(for: wait) }
                return
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // The store is away: pace this instance alone rather than stop.
            }
        }
        try await local(for: state).acquire(clientID: clientID, endpoint: endpoint)
    }

    /// Latest free-tier table where it gives a number; OpenList's for the other endpoints it paces.
    static let qps: [String: Double] = [
        "/api/v1/user/info": 10, "/api/v2/file/list": 5, "/upload/v1/file/mkdir": 5, "/api/v1/file/move": 3,
        "/api/v1/file/delete": 1, "/api/v1/access_token": 8, "/api/v1/file/download_info": 5,
        "/api/v1/direct-link/url": 5, "/api/v1/file/name": 1, "/api/v1/file/trash": 2,
        "/upload/v2/file/create": 2, "/upload/v2/file/sha1_reuse": 2,
    ]

    private var next: [String: ContinuousClock.Instant] = [:]

    /// Reserves the next slot for `endpoint` and returns how long to wait for it.
    func reserve(clientID: String, endpoint: String) -> Duration {
        guard let qps = Self.qps[endpoint], qps > 0 else { return .zero }
        let key = clientID + " " + endpoint
        let now = ContinuousClock.now
        let slot = max(now, next[key] ?? now)
        next[key] = slot + .milliseconds(Int64(1000 / qps))
        return slot - now
    }

    func acquire(clientID: String, endpoint: String) async throws {
        let wait = reserve(clientID: clientID, endpoint: endpoint)
        if wait > .zero { try await Task.sleep(for: wait) }
    }
}
