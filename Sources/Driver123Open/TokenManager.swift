import Crypto
import Foundation
import NIOConcurrencyHelpers
import PanListCore

/// Keeps one access token per credential (client ID and secret, an OAuth refresh-token chain, or a pasted
/// token) and API base URL, shared by every storage that uses it.
/// The token and its expiry persist in the store (a pasted token excepted), so a restart does not spend one of
/// the 3 live tokens a client may hold. Renews `renewEarly` seconds ahead of expiry; concurrent callers share
/// one renewal; a failed renewal is retried by a later call after a growing pause (1 s … 60 s), never given up
/// for good. When instances share the store, a renewal runs under a cluster-wide lock and first re-reads the
/// stored token: if another instance already replaced the one that expired or failed, that one is used, so the
/// whole cluster makes one renewal (123 keeps three live tokens per client and evicts the oldest; a rotated
/// refresh token works once, so two instances renewing with it would break the chain).
///
/// Refresh-token mode: the renewal answers a new refresh token and the old one is dead. The new one is written
/// to the store (one upsert of the whole state, under the lock) before the renewal counts as done, and it is
/// kept in memory even if the store cannot take it, so this process never goes back to the old one.
actor TokenManager {
    private static let registry = NIOLockedValueBox<[String: TokenManager]>([:])

    /// The manager of `stateKey` for the server that owns `state`; a new one when `fingerprint` (a hash of the
    /// secrets) changed, so a storage with a different secret never picks up another one's token.
    static func shared(stateKey: String, fingerprint: String, state: (any DriverStateStore)?, persist: Bool = true,
                       renewEarly: TimeInterval = 300, initial: Saved? = nil,
                       fetch: @escaping @Sendable (Saved?) async throws -> Saved) -> TokenManager {
        registry.withLockedValue { map in
            // One manager per server (its store) and credential: two servers in one process stay apart.
            let owner = state.map { String(describing: ObjectIdentifier($0 as AnyObject)) } ?? "-"
            let key = owner + " " + stateKey
            if let m = map[key], m.fingerprint == fingerprint { return m }
            let m = TokenManager(stateKey: stateKey, fingerprint: fingerprint, state: persist ? state : nil,
                                 renewEarly: renewEarly, initial: initial, fetch: fetch)
            map[key] = m
            return m
        }
    }

    /// A short hash of secrets, for state keys and fingerprints (never the secret itself).
    static func tag(_ parts: String...) -> String {
        SHA256.hash(data: Data(parts.joined(separator: "\u{0}").utf8)).prefix(6).hexString
    }

    /// The 4-byte MD5 tag earlier versions put in the client-credentials state key.
    static func md5Tag(_ secret: String) -> String {
        Insecure.MD5.hash(data: Data(secret.utf8)).prefix(4).hexString
    }

    nonisolated let fingerprint: String
    private let stateKey: String
    private let state: (any DriverStateStore)?
    private let renewEarly: TimeInterval
    private let fetch: @Sendable (Saved?) async throws -> Saved
    private var saved: Saved?
    private var loaded = false
    private var refreshing: Task<Saved, any Error>?
    private var failures = 0
    private var lastFailure: (at: Date, error: any Error)?
    /// The token 123 last refused (a stored token equal to it is not taken up again).
    private var refused: String?
    /// A renewed state the store did not take yet (saved again at the next chance).
    private var unsaved: Saved?
    /// Renewals (access_token or oauth2 calls) made by this manager (for tests and metrics).
    private(set) var fetches = 0

    init(stateKey: String, fingerprint: String, state: (any DriverStateStore)?, renewEarly: TimeInterval, initial: Saved?,
         fetch: @escaping @Sendable (Saved?) async throws -> Saved) {
        self.stateKey = stateKey
        self.fingerprint = fingerprint
        self.state = state
        self.renewEarly = renewEarly
        self.saved = initial
        self.loaded = state == nil
        self.fetch = fetch
    }

    /// What persists: the access token, its expiry, and in refresh-token mode the newest refresh token.
    struct Saved: Codable, Sendable {
        var token: String
        var expires: Date
        var refreshToken: String?
        /// When to renew (nil: `renewEarly` seconds before `expires`).
        var renewAfter: Date?

        init(token: String, expires: Date, refreshToken: String? = nil, renewAfter: Date? = nil) {
            self.token = token
            self.expires = expires
            self.refreshToken = refreshToken
            self.renewAfter = renewAfter
        }

        func fresh(_ renewEarly: TimeInterval) -> Bool {
            (renewAfter ?? expires.addingTimeInterval(-renewEarly)) > Date()
        }
    }

    /// A valid token: the cached one, the persisted one, or a fresh one.
    func current() async throws -> String {
        if !loaded {
            loaded = true
            if let stored = await Self.read(state, stateKey) { saved = stored }
        }
        if let unsaved, await Self.save(state, stateKey, unsaved) { self.unsaved = nil }
        if let s = saved, s.token != refused, s.fresh(renewEarly) { return s.token }
        return try await refresh().token
    }

    /// The state now in memory (the token's expiry for the storage's status; the refresh token for tests).
    var snapshot: Saved? { saved }

    /// Drops `stale` (after a 401) so the next `current()` renews; a newer token is kept.
    func invalidate(_ stale: String) {
        if saved?.token == stale { refused = stale }
    }

    func refresh() async throws -> Saved {
        if let running = refreshing { return try await running.value }
        if let last = lastFailure {
            let pause = min(60, pow(2, Double(failures - 1)))
            if Date().timeIntervalSince(last.at) < pause { throw last.error }
        }
        let (fetch, state, key, refused, renewEarly, memory) = (self.fetch, self.state, stateKey, self.refused, self.renewEarly, saved)
        let task = Task<(saved: Saved, fetched: Bool, stored: Bool), any Error> {
            guard let state, state.isShared else {
                let fresh = try await fetch(memory)
                return (fresh, true, await Self.save(state, key, fresh))
            }
            return try await state.withLock("123open.token " + key, wait: .seconds(60)) {
                // Another instance may have renewed while this one waited for the lock.
                let stored = await Self.read(state, key)
                if let stored, stored.token != refused, stored.fresh(renewEarly) {
                    return (stored, false, true)
                }
                // The newest refresh token is the stored one (another instance may have rotated it), else ours.
                let fresh = try await fetch(stored ?? memory)
                return (fresh, true, await Self.save(state, key, fresh))
            }
        }
        let shared = Task<Saved, any Error> { try await task.value.saved }
        refreshing = shared
        defer { refreshing = nil }
        do {
            let r = try await task.value
            saved = r.saved
            self.refused = nil
            if !r.stored { unsaved = r.saved }
            if r.fetched { fetches += 1 }
            Metrics.tokenRefresh(driver: "123open", outcome: r.fetched ? "fetched" : "shared")
            failures = 0
            lastFailure = nil
            return r.saved
        } catch {
            failures += 1
            lastFailure = (Date(), error)
            Metrics.tokenRefresh(driver: "123open", outcome: "failed")
            throw error
        }
    }

    private static func read(_ state: (any DriverStateStore)?, _ key: String) async -> Saved? {
        guard let text = try? await state?.driverState(key) else { return nil }
        return try? JSONDecoder().decode(Saved.self, from: Data(text.utf8))
    }

    /// One upsert of the whole state (a few tries); false when the store did not take it.
    private static func save(_ state: (any DriverStateStore)?, _ key: String, _ saved: Saved) async -> Bool {
        guard let state else { return true }
        guard let data = try? JSONEncoder().encode(saved) else { return false }
        for attempt in 0..<3 {
            if (try? await state.setDriverState(key, String(decoding: data, as: UTF8.self))) != nil { return true }
            try? await Task.sleep(for: .milliseconds(100 << attempt))
        }
        return false
    }
}
