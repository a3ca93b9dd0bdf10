import Foundation

/// Per client ID and endpoint pacing (QPS from the spec's tables). Every attempt, retries included,
/// reserves its own slot, and the waiting happens outside the actor, so a retry can never deadlock it.
/// Storages sharing a client ID share one limiter.
actor RateLimiter {
    static let shared = RateLimiter()

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
