import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PanListCore

/// How a 123 Open storage gets its access token (the storage's `auth_mode`).
enum Open123Auth: Sendable {
    /// `POST /api/v1/access_token` with a developer application's Client ID and Secret (needs 123's paid
    /// developer package since 2026).
    case clientCredentials(clientID: String, clientSecret: String)
    /// The user's own OAuth application and a refresh token: renewed at `POST /api/v1/oauth2/access_token`;
    /// each renewal answers a new refresh token and the old one stops working.
    case refreshToken(clientID: String, clientSecret: String, refreshToken: String)
    /// A pasted access token: never renewed; `expires` from the setting or the token's JWT `exp`.
    case accessToken(token: String, expires: Date?)

    static let modes = ["client_credentials", "access_token", "refresh_token"]

    var name: String {
        switch self {
        case .clientCredentials: return "client_credentials"
        case .refreshToken: return "refresh_token"
        case .accessToken: return "access_token"
        }
    }

    /// The key 123 counts requests under (the client ID; for a pasted token, a tag of it).
    var paceKey: String {
        switch self {
        case .clientCredentials(let id, _), .refreshToken(let id, _, _): return id
        case .accessToken(let token, _): return "token-" + TokenManager.tag(token)
        }
    }

    /// `exp` of a JWT (`header.payload.signature`), when the token is one.
    static func jwtExpiry(_ token: String) -> Date? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let exp = (obj["exp"] as? NSNumber)?.doubleValue, exp > 0 else { return nil }
        return Date(timeIntervalSince1970: exp)
    }

    /// The `AccessTokenExpiry` setting: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or Unix seconds.
    static func parseExpiry(_ text: String) -> Date? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return nil }
        if let secs = Double(t), secs > 0 { return Date(timeIntervalSince1970: secs) }
        if let d = BeijingTime.parseRFC3339(t) { return d }
        // No zone: taken as UTC (BeijingTime.parse reads UTC+8, so add the 8 hours back).
        return BeijingTime.parse(t).map { $0.addingTimeInterval(8 * 3600) }
    }

    static func utc(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        return f.string(from: date)
    }
}

/// What the storage's status shows about its token: the expiry of the one in use, and a problem the user
/// must act on (a lapsed pasted token, a refused refresh token). Written by the token fetchers, read by the driver.
final class AuthStatus: Sendable {
    private let box = NIOLockedValueBox<(expires: Date?, problem: String?)>((nil, nil))
    var expires: Date? { box.withLockedValue { $0.expires } }
    var problem: String? { box.withLockedValue { $0.problem } }
    func renewed(expires: Date) { box.withLockedValue { $0 = (expires, nil) } }
    func failed(_ problem: String) { box.withLockedValue { $0.problem = problem } }
}

extension Open123Client {
    /// The token manager for `auth` (shared by every storage with the same credential on this server).
    static func tokenManager(base: String, auth: Open123Auth, state: (any DriverStateStore)?, status: AuthStatus) -> TokenManager {
        switch auth {
        case .clientCredentials(let id, let secret):
            // The state key is the one earlier versions used, so a stored token is still found after an upgrade.
            let secretTag = TokenManager.md5Tag(secret)
            return TokenManager.shared(stateKey: "123open.token." + base + " " + id + " " + secretTag, fingerprint: TokenManager.tag(secret),
                                       state: state) { _ in
                do {
                    let (token, expires) = try await fetchToken(base: base, clientID: id, secret: secret, state: state)
                    status.renewed(expires: expires)
                    return TokenManager.Saved(token: token, expires: expires)
                } catch let e as FSError {
                    // Refused (a secret reset by the developer, a client removed): the storage is failing until a
                    // new token is had. A rate limit or a server error is not a refusal.
                    if case .upstream(let code, let m) = e, code != 429, code < 500 { status.failed(m) }
                    throw e
                }
            }
        case .refreshToken(let id, let secret, let seed):
            // Keyed by the pasted refresh token: pasting a new one starts a new chain; the stored chain keeps
            // the newest refresh token of the old one.
            return TokenManager.shared(stateKey: "123open.oauth." + base + " " + id + " " + TokenManager.tag(seed),
                                       fingerprint: TokenManager.tag(secret, seed), state: state) { latest in
                do {
                    let fresh = try await renew(base: base, clientID: id, clientSecret: secret, refreshToken: latest?.refreshToken ?? seed, state: state)
                    status.renewed(expires: fresh.expires)
                    return fresh
                } catch let e as FSError {
                    if case .upstream(401, let m) = e { status.failed(m) }
                    throw e
                }
            }
        case .accessToken(let token, let expires):
            let until = expires ?? .distantFuture
            if let expires { status.renewed(expires: expires) }
            return TokenManager.shared(stateKey: "123open.pasted." + base + " " + TokenManager.tag(token),
                                       fingerprint: TokenManager.tag(token, String(until.timeIntervalSince1970)), state: state, persist: false,
                                       renewEarly: 0, initial: TokenManager.Saved(token: token, expires: until, renewAfter: until)) { _ in
                let message: String
                if let expires, expires <= Date() {
                    message = "the pasted 123 access token expired at \(Open123Auth.utc(expires)); paste a new access token in this storage's settings (AccessToken), or switch auth_mode to refresh_token"
                } else {
                    message = "123 Open refused the pasted access token (it has expired or was revoked); paste a new access token in this storage's settings (AccessToken), or switch auth_mode to refresh_token"
                }
                status.failed(message)
                throw FSError.upstream(code: 401, message: message)
            }
        }
    }

    /// `POST /api/v1/oauth2/access_token?grant_type=refresh_token…` with the user's own OAuth app. The answer is
    /// flat JSON (`access_token`, `refresh_token`, `expires_in`); a refusal comes in the usual envelope.
    static func renew(base: String, clientID: String, clientSecret: String, refreshToken: String,
                      state: (any DriverStateStore)?) async throws -> TokenManager.Saved {
        let path = "/api/v1/oauth2/access_token"
        try await RateLimiter.acquire(clientID: clientID, endpoint: path, state: state, table: RateLimiter.qps)
        let query = [("client_id", clientID), ("client_secret", clientSecret), ("grant_type", "refresh_token"), ("refresh_token", refreshToken)]
        let (status, data): (HTTPResponseStatus, Data)
        do {
            (status, data) = try await sendRaw(base: base, method: .POST, path: path, query: query, body: nil, token: nil)
        } catch {
            Metrics.upstreamCall(driver: "123open", endpoint: path, outcome: "unreachable")
            throw error
        }
        struct Flat: Decodable {
            var access_token: String?
            var refresh_token: String?
            var expires_in: Double?
            var code: Int?
            var message: String?
        }
        guard let flat = try? JSONDecoder().decode(Flat.self, from: data) else {
            Metrics.upstreamCall(driver: "123open", endpoint: path, outcome: "error")
            throw FSError.upstream(code: Int(status.code), message: "unexpected answer from 123 Open \(path) (HTTP \(status.code))")
        }
        if let access = flat.access_token, !access.isEmpty, let next = flat.refresh_token, !next.isEmpty {
            Metrics.upstreamCall(driver: "123open", endpoint: path, outcome: "ok")
            let life = max(1, flat.expires_in ?? 7200)
            let now = Date()
            return TokenManager.Saved(token: access, expires: now.addingTimeInterval(life), refreshToken: next,
                                      renewAfter: now.addingTimeInterval(life - min(300, life / 5)))
        }
        let code = flat.code ?? Int(status.code)
        Metrics.upstreamCall(driver: "123open", endpoint: path, outcome: outcome(code))
        if code == 429 || status.code == 429 {
            throw FSError.rateLimited("123 Open is rate-limiting token renewals (\(flat.message ?? "429")); try again shortly")
        }
        throw FSError.upstream(code: 401, message: "123 Open refused the refresh token (code \(code): \(flat.message ?? "no message")); authorise your OAuth app again and paste the new refresh token in this storage's settings (RefreshToken), and check ClientID and ClientSecret of the app")
    }
}
