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
        let now = Date()
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

/// Throttles failed logins: after 5 failures an IP (or a username) waits 5 minutes.
final class LoginLimiter: Sendable {
    private let failures = NIOLockedValueBox<[String: (count: Int, since: Date)]>([:])
    let maxFailures = 5
    let window: TimeInterval = 300

    func check(_ keys: [String]) throws(FSError) {
        let now = Date()
        let blocked = failures.withLockedValue { map in
            keys.contains { k in
                guard let f = map[k] else { return false }
                if now.timeIntervalSince(f.since) > window { map[k] = nil; return false }
                return f.count >= maxFailures
            }
        }
        if blocked { throw .rateLimited("too many failed login attempts, try again in 5 minutes") }
    }

    func fail(_ keys: [String]) {
        let now = Date()
        failures.withLockedValue { map in
            for k in keys {
                if let f = map[k], now.timeIntervalSince(f.since) <= window { map[k] = (f.count + 1, f.since) }
                else { map[k] = (1, now) }
            }
        }
    }

    func succeed(_ keys: [String]) { failures.withLockedValue { map in keys.forEach { map[$0] = nil } } }
}
