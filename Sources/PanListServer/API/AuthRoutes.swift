import Foundation
import Hummingbird
import PanListCore
import PanListStore

struct LoginRequest: Decodable {
    var username: String
    var password: String
    var otpCode: String?
    enum CodingKeys: String, CodingKey { case username, password, otpCode = "otp_code" }
}

struct MeJSON: Encodable {
    var id: Int
    var username: String
    var password = ""
    var basePath: String
    var role: Int
    var disabled: Bool
    var permission: Int32
    var ssoID = ""
    var otp = false
    enum CodingKeys: String, CodingKey {
        case id, username, password, role, disabled, permission, otp
        case basePath = "base_path", ssoID = "sso_id"
    }
    init(_ u: User) {
        id = u.id; username = u.username; basePath = u.basePath; role = u.role.rawValue
        disabled = u.disabled; permission = u.permission.rawValue
    }
}

extension APIRoutes {
    func addAuthRoutes(to api: RouterGroup<AppContext>) {
        api.post("auth/login") { req, ctx in try await login(req, ctx, hashed: false) }
        api.post("auth/login/hash") { req, ctx in try await login(req, ctx, hashed: true) }
        api.get("auth/logout") { req, _ in try await logout(req) }
        api.post("auth/logout") { req, _ in try await logout(req) }
        api.get("me") { req, _ in APIResponse.ok(MeJSON(try await state.authenticate(req))) }
        api.on("public/settings", method: .get) { _, _ in publicSettings() }
        api.on("public/settings", method: .post) { _, _ in publicSettings() }
    }

    func login(_ req: Request, _ ctx: AppContext, hashed: Bool) async throws -> Response {
        let body = try await req.json(LoginRequest.self, limit: state.config.maxRequestBody)
        let staticHash = hashed ? body.password.lowercased() : Passwords.staticHash(body.password)
        guard let stored = try await state.verifyLogin(username: body.username, staticHash: staticHash, ip: ctx.clientIP) else {
            throw FSError.badRequest("username or password is incorrect")
        }
        if stored.user.disabled { throw FSError.unauthorized("this user is disabled") }
        struct Token: Encodable { var token: String }
        return APIResponse.ok(Token(token: try await state.tokens.issue(for: stored.user)))
    }

    func logout(_ req: Request) async throws -> Response {
        let token = ServerState.token(req)
        if !token.isEmpty, let claims = try? await state.tokens.verify(token) {
            try await state.revoke(token, until: claims.exp.value)
        }
        return APIResponse.ok()
    }

    func publicSettings() -> Response {
        var map: [String: String] = [:]
        for item in state.allSettings where item.flag == SettingItem.public || item.flag == SettingItem.readonly {
            map[item.key] = item.value
        }
        return APIResponse.ok(map)
    }
}
