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

/// Throttles failed password attempts (logins on every front end, folder passwords). A failure counts
/// towards one or more keys, each with its own limit; once a key reaches its limit, every attempt that
/// names it is refused, right password or not, until `window` has passed since that key's first failure.
///
/// Logins count per user and client address first (`userAddress`: 5), and per address alone only at a much
/// higher limit (`address`: 50), so one guesser locks out the name they guess from their own address,
/// not every user behind a shared address (a reverse proxy, a NAT).
final class LoginLimiter: Sendable {
    struct Key: Hashable, Sendable {
        var name: String
        var limit: Int
    }
    private let failures = NIOLockedValueBox<[String: (count: Int, since: ContinuousClock.Instant)]>([:])
    let window: Duration
    let userAddressLimit: Int
    let addressLimit: Int

    init(window: Duration = .seconds(300), userAddressLimit: Int = 5, addressLimit: Int = 50) {
        self.window = window
        self.userAddressLimit = userAddressLimit
        self.addressLimit = addressLimit
    }

    /// The keys of a login attempt for `username` from `address`.
    func loginKeys(username: String, address: String) -> [Key] {
        [Key(name: "user+address:\(username)\u{0}\(address)", limit: userAddressLimit),
         Key(name: "address:\(address)", limit: addressLimit)]
    }

    /// Refuses (`.rateLimited`) when any key is at its limit.
    func check(_ keys: [Key]) throws(FSError) {
        let now = ContinuousClock.now
        let blocked = failures.withLockedValue { map in
            keys.contains { k in
                guard let f = map[k.name] else { return false }
                if now - f.since > window { map[k.name] = nil; return false }
                return f.count >= k.limit
            }
        }
        if blocked { throw .rateLimited("too many failed attempts, try again in \(window.components.seconds / 60) minutes") }
    }

    /// Counts a failure; returns the keys this failure brought to their limit (just blocked).
    @discardableResult
    func fail(_ keys: [Key]) -> [Key] {
        let now = ContinuousClock.now
        return failures.withLockedValue { map in
            if map.count > 100_000 { map = map.filter { now - $0.value.since <= window } }
            var reached: [Key] = []
            for k in keys {
                var f: (count: Int, since: ContinuousClock.Instant) = map[k.name].flatMap { now - $0.since <= window ? $0 : nil } ?? (0, now)
                f.count += 1
                map[k.name] = f
                if f.count == k.limit { reached.append(k) }
            }
            return reached
        }
    }

    /// A right password clears the user's own count from that address (not the address's count).
    func succeed(_ keys: [Key]) {
        failures.withLockedValue { map in for k in keys where k.limit == userAddressLimit && k.name.hasPrefix("user+address:") { map[k.name] = nil } }
    }
}
