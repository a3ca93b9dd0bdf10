import Crypto
import Foundation
import JWTKit
import NIOConcurrencyHelpers
import PanListCore

/// The claims of a login token, as Alist issues them (clients decode them to schedule re-login).
struct TokenClaims: JWTPayload {
    var username: String
    var pwd_ts: Int64
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var nbf: NotBeforeClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        try nbf.verifyNotBefore()
    }
}

/// Issues and checks HS256 login tokens; keeps the tokens revoked by logout (by SHA-256) until they expire.
final class TokenService: Sendable {
    private let keys: JWTKeyCollection
    private let lifetime: TimeInterval
    private let revoked = NIOLockedValueBox<[String: Date]>([:])

    init(secret: String, lifetimeHours: Int) async {
        // jwt-kit wants HMAC keys of at least 32 bytes; shorter secrets (Alist uses 16) are stretched by SHA-256.
        let key = secret.utf8.count >= 32 ? secret : Passwords.sha256Hex(secret)
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: key), digestAlgorithm: .sha256)
        lifetime = TimeInterval(max(1, lifetimeHours)) * 3600
    }

    func issue(for user: User) async throws -> String {
        // Whole seconds: typed clients read exp, iat and nbf as integers (RFC 7519's NumericDate allows both).
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let claims = TokenClaims(username: user.username, pwd_ts: user.passwordTimestamp,
                                 exp: .init(value: now.addingTimeInterval(lifetime)), iat: .init(value: now),
                                 nbf: .init(value: now.addingTimeInterval(-5)))
        return try await keys.sign(claims)
    }

    func verify(_ token: String) async throws(FSError) -> TokenClaims {
        let hash = Self.hash(token)
        if revoked.withLockedValue({ $0[hash] != nil }) { throw .unauthorized("this token was logged out, login please") }
        do {
            return try await keys.verify(token, as: TokenClaims.self)
        } catch let e as JWTError where e.errorType == .claimVerificationFailure {
            throw .unauthorized("token is expired, login please")
        } catch {
            throw .unauthorized("token is invalid, login please")
        }
    }

    static func hash(_ token: String) -> String { Passwords.sha256Hex(token) }

    func revoke(hash: String, until: Date) {
        revoked.withLockedValue { map in
            let now = Date()
            map = map.filter { $0.value > now }
            map[hash] = until
        }
    }
}

/// Throttles failed password attempts (logins on every front end, folder passwords). An attempt counts
/// towards one or more keys, each with its own limit; once a key's failures, together with the attempts
/// still being checked, reach its limit, every attempt that names it is refused, right password or not,
/// until `window` has passed since that key's first failure.
///
/// Logins count per user and client address first (5), and per address alone only at a much higher limit
/// (50), so one guesser locks out the name they guess from their own address, not every user behind a
/// shared address (a reverse proxy, a NAT). An attempt is counted *before* its password is checked
/// (`begin`), so a burst of simultaneous guesses gets no more tries than guesses one after another.
/// Keys are bounded in size (a user name is kept as a digest) and in number (expired keys are purged
/// every minute; past `maxKeys` the oldest go). IPv6 clients count per /64, the block a single host
/// usually gets.
final class LoginLimiter: Sendable {
    enum Kind: Sendable { case userAddress, address, folderPassword }
    struct Key: Hashable, Sendable {
        var kind: Kind
        var name: String
        var limit: Int
    }
    struct Entry {
        var failures = 0
        var inflight = 0
        var since: ContinuousClock.Instant
    }
    private struct State {
        var map: [String: Entry] = [:]
        /// Blocks known from the store: counted on any instance (see `ServerState.countFailure`).
        var shared: [String: Date] = [:]
        var lastPurge = ContinuousClock.now
    }
    private let state = NIOLockedValueBox(State())
    let window: Duration
    let userAddressLimit: Int
    let addressLimit: Int
    let maxKeys: Int

    init(window: Duration = .seconds(300), userAddressLimit: Int = 5, addressLimit: Int = 50, maxKeys: Int = 100_000) {
        self.window = window
        self.userAddressLimit = userAddressLimit
        self.addressLimit = addressLimit
        self.maxKeys = maxKeys
    }

    /// The keys of a login attempt for `username` from `address`.
    func loginKeys(username: String, address: String) -> [Key] {
        let who = Self.addressKey(address)
        let name = SHA256.hash(data: Data(username.utf8)).prefix(16).hexString
        return [Key(kind: .userAddress, name: "u\(name) \(who)", limit: userAddressLimit),
                Key(kind: .address, name: "a\(who)", limit: addressLimit)]
    }

    /// The key of a folder password tried from `address` on the folder guarded at `guardPath`.
    func folderKey(address: String, guardPath: String) -> Key {
        let folder = SHA256.hash(data: Data(guardPath.utf8)).prefix(16).hexString
        return Key(kind: .folderPassword, name: "f\(Self.addressKey(address)) \(folder)", limit: userAddressLimit)
    }

    /// An address as the limiter counts it: IPv4 as it is, IPv6 by its /64.
    static func addressKey(_ address: String) -> String {
        guard let bytes = TrustedProxies.parse(address), bytes.count == 16 else { return address }
        return bytes[0..<8].map { String(format: "%02x", $0) }.joined() + "/64"
    }

    /// A started attempt, to be ended with `end`.
    struct Attempt: Sendable {
        let keys: [Key]
    }

    /// Refuses (`.rateLimited`) when a key is at its limit (attempts in flight included); else counts this
    /// attempt as in flight.
    func begin(_ keys: [Key]) throws(FSError) -> Attempt {
        let now = ContinuousClock.now
        let wall = Date()
        let blocked = state.withLockedValue { s -> Bool in
            purge(&s, now)
            if keys.contains(where: { (s.shared[$0.name] ?? .distantPast) > wall }) { return true }
            for k in keys {
                if let e = s.map[k.name], now - e.since <= window, e.failures + e.inflight >= k.limit { return true }
            }
            for k in keys {
                var e = s.map[k.name].flatMap { now - $0.since <= window ? $0 : nil } ?? Entry(since: now)
                e.inflight += 1
                s.map[k.name] = e
            }
            return false
        }
        if blocked { throw blockedError }
        return Attempt(keys: keys)
    }

    enum Outcome: Sendable {
        /// A wrong password: counts towards every key.
        case failed
        /// A right password: clears the user's own count from that address (not the address's).
        case succeeded
        /// Neither (the check could not be made, or a disabled user's right password): nothing changes.
        case neither
    }

    /// Ends an attempt with its outcome. Returns the keys a failure brought to their limit (just blocked).
    @discardableResult
    func end(_ attempt: Attempt, _ outcome: Outcome) -> [Key] {
        let now = ContinuousClock.now
        return state.withLockedValue { s in
            var reached: [Key] = []
            for k in attempt.keys {
                guard var e = s.map[k.name] else { continue }
                e.inflight = max(0, e.inflight - 1)
                switch outcome {
                case .failed:
                    if now - e.since > window { e = Entry(failures: 0, inflight: e.inflight, since: now) }
                    e.failures += 1
                    if e.failures == k.limit { reached.append(k) }
                case .succeeded where k.kind == .userAddress:
                    e.failures = 0
                case .succeeded, .neither:
                    break
                }
                s.map[k.name] = e
            }
            return reached
        }
    }

    /// Refuses (`.rateLimited`) when a key is blocked, without starting an attempt (for credentials verified
    /// before, which are not checked again).
    func check(_ keys: [Key]) throws(FSError) {
        let now = ContinuousClock.now
        let wall = Date()
        let blocked = state.withLockedValue { s in
            keys.contains { k in
                if (s.shared[k.name] ?? .distantPast) > wall { return true }
                guard let e = s.map[k.name], now - e.since <= window else { return false }
                return e.failures >= k.limit
            }
        }
        if blocked { throw blockedError }
    }

    /// A key blocked on some instance (its failures, counted in the store, reached the limit) until `until`.
    func markBlocked(_ name: String, until: Date) {
        state.withLockedValue { s in
            let now = Date()
            if s.shared.count > maxKeys / 10 { s.shared = s.shared.filter { $0.value > now } }
            s.shared[name] = max(until, s.shared[name] ?? .distantPast)
        }
    }

    var blockedError: FSError { .rateLimited("too many failed attempts, try again in \(window.components.seconds / 60) minutes") }

    /// Every minute, forgets expired keys; past `maxKeys`, the oldest. (Called with the lock held.)
    private func purge(_ s: inout State, _ now: ContinuousClock.Instant) {
        guard now - s.lastPurge > .seconds(60) || s.map.count > maxKeys else { return }
        s.lastPurge = now
        s.map = s.map.filter { now - $0.value.since <= window || $0.value.inflight > 0 }
        if s.map.count > maxKeys {
            let keep = s.map.sorted { $0.value.since > $1.value.since }.prefix(maxKeys * 9 / 10)
            s.map = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }

    var count: Int { state.withLockedValue { $0.map.count } }
}
