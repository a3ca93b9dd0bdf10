import Crypto
import Foundation
import NIOConcurrencyHelpers
import PanListCore

/// Keeps one access token per client ID (and API base URL), shared by every storage that uses it.
/// The token and its expiry persist in the store, so a restart does not spend one of the 3 live tokens
/// a client may hold. Refreshes 5 minutes ahead of expiry; concurrent callers share one refresh; a failed
/// refresh is retried by a later call after a growing pause (1 s … 60 s), never given up for good.
/// When instances share the store, a refresh runs under a cluster-wide lock and first re-reads the stored
/// token: if another instance already replaced the one that expired or failed, that one is used, so the
/// whole cluster makes one access_token call (123 keeps three live tokens per client and evicts the oldest,
/// so instances fetching their own would knock each other out).
actor TokenManager {
    private static let registry = NIOLockedValueBox<[String: TokenManager]>([:])

    static func shared(baseURL: String, clientID: String, clientSecret: String, state: (any DriverStateStore)?,
                       fetch: @escaping @Sendable (String, String) async throws -> (String, Date)) -> TokenManager {
        registry.withLockedValue { map in
            // One manager per server (its store) and client: two servers in one process stay apart.
            let owner = state.map { String(describing: ObjectIdentifier($0 as AnyObject)) } ?? "-"
            let key = owner + " " + baseURL + " " + clientID
            if let m = map[key], m.clientSecret == clientSecret { return m }
            // The secret is part of the state key, so a storage with a wrong secret never picks up a stored token.
            let secretTag = Insecure.MD5.hash(data: Data(clientSecret.utf8)).prefix(4).hexString
            let m = TokenManager(clientID: clientID, clientSecret: clientSecret, stateKey: "123open.token." + baseURL + " " + clientID + " " + secretTag,
                                 state: state, fetch: fetch)
            map[key] = m
            return m
        }
    }

    let clientID: String
    nonisolated let clientSecret: String
    private let stateKey: String
    private let state: (any DriverStateStore)?
    private let fetch: @Sendable (String, String) async throws -> (String, Date)
    private var token: String?
    private var expires: Date?
    private var loaded = false
    private var refreshing: Task<String, any Error>?
    private var failures = 0
    private var lastFailure: (at: Date, error: any Error)?
    /// The token 123 last refused (a stored token equal to it is not taken up again).
    private var refused: String?
    /// access_token calls made by this manager (for tests and metrics).
    private(set) var fetches = 0

    init(clientID: String, clientSecret: String, stateKey: String, state: (any DriverStateStore)?,
         fetch: @escaping @Sendable (String, String) async throws -> (String, Date)) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.stateKey = stateKey
        self.state = state
        self.fetch = fetch
    }

    struct Saved: Codable { var token: String; var expires: Date }

    /// A valid token: the cached one, the persisted one, or a fresh one.
    func current() async throws -> String {
        if !loaded {
            loaded = true
            if let text = try? await state?.driverState(stateKey), let saved = try? JSONDecoder().decode(Saved.self, from: Data(text.utf8)) {
                token = saved.token
                expires = saved.expires
            }
        }
        if let token, let expires, expires.timeIntervalSinceNow > 300 { return token }
        return try await refresh()
    }

    /// Drops `stale` (after a 401) so the next `current()` fetches a new token; a newer token is kept.
    func invalidate(_ stale: String) {
        if token == stale { token = nil; expires = nil; refused = stale }
    }

    func refresh() async throws -> String {
        if let running = refreshing { return try await running.value }
        if let last = lastFailure {
            let pause = min(60, pow(2, Double(failures - 1)))
            if Date().timeIntervalSince(last.at) < pause { throw last.error }
        }
        let (id, secret, fetch, state, key, refused) = (clientID, clientSecret, self.fetch, self.state, stateKey, self.refused)
        let task = Task<(token: String, expires: Date, fetched: Bool), any Error> {
            guard let state, state.isShared else {
                let (t, exp) = try await fetch(id, secret)
                await Self.save(state, key, t, exp)
                return (t, exp, true)
            }
            return try await state.withLock("123open.token " + key, wait: .seconds(60)) {
                // Another instance may have refreshed while this one waited for the lock.
                if let text = try await state.driverState(key),
                   let saved = try? JSONDecoder().decode(Saved.self, from: Data(text.utf8)),
                   saved.token != refused, saved.expires.timeIntervalSinceNow > 300 {
                    return (saved.token, saved.expires, false)
                }
                let (t, exp) = try await fetch(id, secret)
                await Self.save(state, key, t, exp)
                return (t, exp, true)
            }
        }
        let shared = Task<String, any Error> { try await task.value.token }
        refreshing = shared
        defer { refreshing = nil }
        do {
            let r = try await task.value
            token = r.token
            expires = r.expires
            if r.fetched { fetches += 1 }
            Metrics.tokenRefresh(driver: "123open", outcome: r.fetched ? "fetched" : "shared")
            failures = 0
            lastFailure = nil
            return r.token
        } catch {
            failures += 1
            lastFailure = (Date(), error)
            Metrics.tokenRefresh(driver: "123open", outcome: "failed")
            throw error
        }
    }

    private static func save(_ state: (any DriverStateStore)?, _ key: String, _ token: String, _ expires: Date) async {
        if let data = try? JSONEncoder().encode(Saved(token: token, expires: expires)) {
            try? await state?.setDriverState(key, String(decoding: data, as: UTF8.self))
        }
    }
}
