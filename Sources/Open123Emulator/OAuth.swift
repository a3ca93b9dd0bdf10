import Foundation
import Hummingbird
import NIOCore

/// OAuth state: live refresh tokens (single use, as 123 documents), authorization codes, and counters so a
/// test can tell how many renewals a client made and whether it ever sent a refresh token twice.
struct OAuthBook {
    struct Grant {
        var clientID: String
        /// The access token issued together with this refresh token (it dies when the refresh token is used).
        var access: String
        var expires: Date
        var used = false
    }

    var grants: [String: Grant] = [:]
    var codes: [String: String] = [:]
    /// Successful `grant_type=refresh_token` answers.
    var renewals = 0
    /// Requests that sent a refresh token already used once (a rotating server refuses them).
    var reuses = 0
    /// Successful `grant_type=authorization_code` answers.
    var codeExchanges = 0
    /// Knob: how long each `oauth2/access_token` answer is held back (to let requests pile up behind a renewal).
    var delay: Duration = .zero
}

extension EmulatorState {
    /// A JWT-shaped token (`header.payload.signature`, base64url) whose payload carries `exp`, as 123's are.
    static func jwtToken(expires: Date) -> String {
        func b64(_ d: Data) -> String {
            d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        var g = SystemRandomNumberGenerator()
        let header = b64(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = b64(Data(#"{"exp":\#(Int64(expires.timeIntervalSince1970)),"jti":"\#(UInt64.random(in: 0...UInt64.max, using: &g))"}"#.utf8))
        let sig = b64(Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }))
        return header + "." + payload + "." + sig
    }

    static func opaque(_ prefix: String) -> String {
        var g = SystemRandomNumberGenerator()
        return prefix + (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// An access token accepted by every endpoint, living `ttl` seconds (a token pasted by a user).
    func mintAccessToken(ttl: TimeInterval, clientID: String) -> String {
        let now = Date()
        let expires = now.addingTimeInterval(ttl)
        let value = Self.jwtToken(expires: expires)
        snap.tokens.append(Token(value: value, clientID: clientID, expiresAt: expires, issued: now))
        save()
        return value
    }

    /// Access token + a new refresh token for the OAuth app `clientID`.
    func issueOAuth(clientID: String) -> (access: String, refresh: String, expiresIn: Int) {
        let access = mintAccessToken(ttl: config.oauthTokenTTL, clientID: clientID)
        let refresh = Self.opaque("rt_")
        oauth.grants[refresh] = OAuthBook.Grant(clientID: clientID, access: access, expires: Date().addingTimeInterval(config.refreshTokenTTL))
        return (access, refresh, Int(config.oauthTokenTTL.rounded()))
    }

    /// What the user gets once they authorised the app in 123's web UI: a first refresh token (its access token unused).
    func issueRefreshToken() -> String { issueOAuth(clientID: config.oauthClientID).refresh }

    func issueAuthorizationCode() -> String {
        let code = Self.opaque("code_")
        oauth.codes[code] = config.oauthClientID
        return code
    }

    /// `oauth2/access_token`: one atomic step (no suspension), so two requests with one refresh token never both win.
    func oauthGrant(_ p: [String: String]) throws(APIFailure) -> (access: String, refresh: String, expiresIn: Int) {
        guard let id = p["client_id"], id == config.oauthClientID, p["client_secret"] == config.oauthClientSecret else {
            throw APIFailure(code: 1, message: "client_id or client_secret is invalid")
        }
        switch p["grant_type"] ?? "" {
        case "refresh_token":
            guard let value = p["refresh_token"], !value.isEmpty, var grant = oauth.grants[value], grant.clientID == id else {
                throw APIFailure(code: 401, message: "refresh_token is invalid")
            }
            if grant.used {
                oauth.reuses += 1
                throw APIFailure(code: 401, message: "refresh_token has already been used (refresh tokens are single use: use the newest one)")
            }
            guard grant.expires > Date() else { throw APIFailure(code: 401, message: "refresh_token is expired") }
            grant.used = true
            oauth.grants[value] = grant
            // The access token issued with the old refresh token dies at once (as documented).
            snap.tokens.removeAll { $0.value == grant.access }
            oauth.renewals += 1
            return issueOAuth(clientID: id)
        case "authorization_code":
            guard let code = p["code"], oauth.codes.removeValue(forKey: code) == id else {
                throw APIFailure(code: 1, message: "code is invalid or already used")
            }
            guard !(p["redirect_uri"] ?? "").isEmpty else { throw APIFailure(code: 1, message: "redirect_uri is required") }
            oauth.codeExchanges += 1
            return issueOAuth(clientID: id)
        default:
            throw APIFailure(code: 1, message: "grant_type must be authorization_code or refresh_token")
        }
    }

    func oauthStats() -> (renewals: Int, reuses: Int, codeExchanges: Int) { (oauth.renewals, oauth.reuses, oauth.codeExchanges) }
    func setOAuthTokenTTL(_ ttl: TimeInterval) { config.oauthTokenTTL = ttl }
    func setOAuthDelay(_ d: Duration) { oauth.delay = d }
    func setCopyModes(target: CopyTargetField?, progress: CopyProgressForm?) {
        if let target { config.copyTargetField = target }
        if let progress { config.copyProgressForm = progress }
    }
    /// Whether `refreshToken` is live (issued, unused, unexpired).
    func isLiveRefreshToken(_ refreshToken: String) -> Bool {
        oauth.grants[refreshToken].map { !$0.used && $0.expires > Date() } ?? false
    }
}

extension Routes {
    /// `POST /api/v1/oauth2/access_token`: parameters in the query string (documented), or in a JSON or form
    /// body; the answer is flat JSON (not the envelope), failures come in the envelope.
    func registerOAuth(_ router: Router<Ctx>) {
        let path = "/api/v1/oauth2/access_token"
        router.post(RouterPath(path)) { req, _ in
            do {
                var params: [String: String] = [:]
                for (k, v) in req.uri.queryParameters { params[String(k)] = String(v) }
                let buffer = try await req.body.collect(upTo: 1 << 20)
                if buffer.readableBytes > 0 {
                    let body = try Body.parse(buffer, contentType: req.headers[.contentType])
                    for k in ["client_id", "client_secret", "grant_type", "refresh_token", "code", "redirect_uri"] where params[k] == nil {
                        params[k] = body.string(k)
                    }
                }
                try await state.admit(path)
                let delay = await state.oauth.delay
                if delay > .zero { try await Task.sleep(for: delay) }
                let t = try await state.oauthGrant(params)
                return Wire.json(["access_token": t.access, "refresh_token": t.refresh, "expires_in": t.expiresIn,
                                  "scope": "user:base,file:all:read,file:all:write", "token_type": "Bearer"])
            } catch let f as APIFailure {
                return Wire.fail(f)
            }
        }
        // A first refresh token, as after the user authorised the app ({} in, {"refresh_token"} out).
        knob(router, "oauth/refresh-token") { _ in ["refresh_token": await state.issueRefreshToken()] }
        knob(router, "oauth/code") { _ in ["code": await state.issueAuthorizationCode()] }
        knob(router, "oauth/stats") { _ in
            let s = await state.oauthStats()
            return ["renewals": s.renewals, "reuses": s.reuses, "code_exchanges": s.codeExchanges]
        }
        // {"seconds": N}: OAuth access tokens issued from now on live N seconds.
        knob(router, "oauth/ttl") { b in await state.setOAuthTokenTTL(TimeInterval(b.int("seconds") ?? 7200)); return nil }
        // {"ttl": N}: an access token living N seconds (a pasted token).
        knob(router, "tokens/mint") { b in
            ["accessToken": await state.mintAccessToken(ttl: TimeInterval(b.int("ttl") ?? 3600), clientID: await state.config.clientID)]
        }
        // {"target": "either|targetDirId|targetDirID", "progress": "either|query|body"}
        knob(router, "copy/modes") { b in
            await state.setCopyModes(target: b.string("target").flatMap(CopyTargetField.init(rawValue:)),
                                     progress: b.string("progress").flatMap(CopyProgressForm.init(rawValue:)))
            return nil
        }
    }
}

// MARK: public knobs

extension Open123Emulator {
    /// A first refresh token of the OAuth app, as a user gets after authorising it.
    public func issueRefreshToken() async -> String { await state.issueRefreshToken() }
    /// A one-time authorization code for `grant_type=authorization_code`.
    public func authorizationCode() async -> String { await state.issueAuthorizationCode() }
    /// An access token living `ttl` seconds (JWT-shaped, with `exp`), as a user would paste.
    public func mintAccessToken(ttl: TimeInterval) async -> String { await state.mintAccessToken(ttl: ttl, clientID: config.clientID) }
    /// Renewals (refresh_token grants answered), refresh tokens sent a second time, and codes exchanged.
    public func oauthStats() async -> (renewals: Int, reuses: Int, codeExchanges: Int) { await state.oauthStats() }
    /// OAuth access tokens issued from now on live `seconds` (short-lived tokens).
    public func setOAuthTokenTTL(_ seconds: TimeInterval) async { await state.setOAuthTokenTTL(seconds) }
    /// Each `oauth2/access_token` answer waits this long first.
    public func setOAuthDelay(_ d: Duration) async { await state.setOAuthDelay(d) }
    public func isLiveRefreshToken(_ value: String) async -> Bool { await state.isLiveRefreshToken(value) }
    public func setCopyModes(target: CopyTargetField? = nil, progress: CopyProgressForm? = nil) async {
        await state.setCopyModes(target: target, progress: progress)
    }
}
