import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import PanListStore
import Testing
@testable import PanListCore
@testable import PanListServer

@Suite("First run and auth over HTTP")
struct AuthAPITests {
    @Test func firstRunCreatesConfigDatabaseUsersAndLocalStorage() async throws {
        try await withServer { s in
            let data = s.dir.path + "/data"
            let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: data + "/config.json"))) as? [String: Any])
            let scheme = try #require(config["scheme"] as? [String: Any])
            #expect(scheme["address"] as? String == "127.0.0.1")
            #expect(scheme["http_port"] as? Int == 5244)  // the --port override is not written back
            #expect((config["jwt_secret"] as? String)?.count ?? 0 >= 32)
            #expect(config["temp_dir"] as? String == data + "/temp")
            #expect((config["database"] as? [String: Any])?["db_file"] as? String == data + "/panlist.db")
            #expect(FileManager.default.fileExists(atPath: data + "/panlist.db"))
            #expect(FileManager.default.fileExists(atPath: data + "/files"))
            #expect(s.adminPassword.count >= 8)
            let guest = try #require(try await s.state.store.user(named: "guest"))
            #expect(guest.user.disabled && guest.user.permission == [])
            let storages = try await s.state.store.storages()
            #expect(storages.count == 1 && storages[0].mountPath == "/" && storages[0].driver == "Local" && storages[0].status == "work")
            #expect(try await s.request(.GET, "/ping").text == "pong")
        }
    }

    @Test func loginMeLogoutAndTokens() async throws {
        try await withServer { s in
            let token = try await s.login()
            #expect(token.split(separator: ".").count == 3)
            // Alist clients decode the claims.
            let payload = String(token.split(separator: ".")[1])
            let padded = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
                + String(repeating: "=", count: (4 - payload.count % 4) % 4)
            let claims = try #require(try JSONSerialization.jsonObject(with: Data(base64Encoded: padded)!) as? [String: Any])
            #expect(claims["username"] as? String == "admin")
            #expect(claims["pwd_ts"] != nil && claims["exp"] != nil && claims["iat"] != nil && claims["nbf"] != nil)

            let me = try await s.api("/me", token: token, method: .GET)
            #expect(me.code == 200)
            for key in ["id", "username", "password", "base_path", "role", "disabled", "permission", "sso_id", "otp"] {
                #expect(me.data[key] != nil, "\(key)")
            }
            #expect(me.data["role"] as? Int == 2 && me.data["password"] as? String == "")
            #expect(me.header("Content-Type")?.hasPrefix("application/json") == true)

            // "Bearer " is tolerated, the admin API token works as admin.
            #expect(try await s.api("/me", token: "Bearer " + token, method: .GET).code == 200)
            let adminToken = try #require(s.state.setting(SettingKey.token))
            #expect(try await s.api("/me", token: adminToken, method: .GET).data["username"] as? String == "admin")

            // The hash route takes Alist's static hash.
            let staticHash = Passwords.staticHash(s.adminPassword)
            let viaHash = try await s.api("/auth/login/hash", ["username": "admin", "password": staticHash])
            #expect(viaHash.code == 200 && (viaHash.data["token"] as? String)?.isEmpty == false)

            #expect(try await s.api("/auth/logout", token: "Bearer " + token, method: .GET).code == 200)
            let after = try await s.api("/me", token: token, method: .GET)
            #expect(after.code == 401)
            // The logout is stored, so it survives a restart.
            #expect(try await s.state.store.revokedTokens().map(\.hash) == [TokenService.hash(token)])
        }
    }

    @Test func passwordsAreBcryptAndOldRecordsAreUpgraded() async throws {
        try await withServer { s in
            // The first-run admin is stored with bcrypt (the static hash inside; the salt column marks it).
            let admin = try #require(try await s.state.store.user(named: "admin"))
            #expect(admin.passwordHash.hasPrefix("$2") && admin.salt == Passwords.bcryptSalt)
            // A record in Alist's old salted SHA-256 form still logs in (password and static hash), and is
            // rewritten as bcrypt on that login; WebDAV Basic uses the same check.
            let salt = "0123456789abcdef"
            _ = try await s.state.store.createUser(StoredUser(
                user: User(id: 0, username: "old", role: .general, permission: [.webdavRead], passwordTimestamp: 1),
                passwordHash: Passwords.hash(staticHash: Passwords.staticHash("old-password"), salt: salt), salt: salt))
            s.state.forgetUsers()
            #expect(try await s.api("/auth/login", ["username": "old", "password": "old-password"]).code == 200)
            let upgraded = try #require(try await s.state.store.user(named: "old"))
            #expect(upgraded.passwordHash.hasPrefix("$2") && upgraded.user.passwordTimestamp == 1)
            #expect(try await s.api("/auth/login/hash", ["username": "old", "password": Passwords.staticHash("old-password")]).code == 200)
            #expect(try await s.api("/auth/login", ["username": "old", "password": "wrong"]).code == 400)
            let basic = "Basic " + Data("old:old-password".utf8).base64EncodedString()
            #expect(try await s.request(.RAW(value: "PROPFIND"), "/dav/", headers: [("Authorization", basic), ("Depth", "0")]).status == 207)
        }
    }

    @Test func badCredentialsAndTokens() async throws {
        try await withServer { s in
            let wrong = try await s.api("/auth/login", ["username": "admin", "password": "nope"])
            #expect(wrong.code == 400 && wrong.message.contains("incorrect"))
            #expect(try await s.api("/auth/login", ["username": "nobody", "password": "x"]).code == 400)
            #expect(try await s.api("/auth/login", ["username": "guest", "password": "x"]).code == 400)
            // Missing fields and malformed JSON are 400 with a message.
            let missing = try await s.api("/auth/login", ["username": "admin"])
            #expect(missing.code == 400 && missing.message.contains("password"))
            let broken = try await s.request(.POST, "/api/auth/login", headers: [("Content-Type", "application/json")], body: Data("{\"username\":".utf8))
            #expect(broken.status == 200 && broken.code == 400 && broken.message.contains("JSON"))
            let huge = try await s.request(.POST, "/api/auth/login", body: Data(repeating: 0x20, count: 2 << 20))
            #expect(huge.code == 400 && huge.message.contains("larger"))
            // Garbage, forged and expired tokens.
            #expect(try await s.api("/me", token: "garbage", method: .GET).code == 401)
            let forged = try await TokenService(secret: String(repeating: "x", count: 40), lifetimeHours: 1)
                .issue(for: User(id: 1, username: "admin", role: .admin, permission: .admin, passwordTimestamp: 0))
            #expect(try await s.api("/me", token: forged, method: .GET).code == 401)
            let expired = try await expiredToken(secret: s.state.config.jwtSecret)
            let exp = try await s.api("/me", token: expired, method: .GET)
            #expect(exp.code == 401 && exp.message.contains("expired"))
            // No token and the guest disabled.
            let anon = try await s.api("/fs/list", ["path": "/"])
            #expect(anon.code == 401 && anon.message.contains("Guest user is disabled"))
        }
    }

    @Test func loginsAreThrottled() async throws {
        try await withServer { s in
            for _ in 0..<5 { _ = try await s.api("/auth/login", ["username": "admin", "password": "bad"]) }
            let blocked = try await s.api("/auth/login", ["username": "admin", "password": s.adminPassword])
            #expect(blocked.code == 429)
        }
    }

    @Test func passwordChangeEndsOldTokens() async throws {
        try await withServer { s in
            let token = try await s.login()
            _ = try await s.api("/me", token: token, method: .GET)  // the user is now cached
            try await Bootstrap.setAdminPassword(s.state.store, "a-new-password")  // as `panlist admin set` does
            try await Task.sleep(for: .milliseconds(2100))
            let old = try await s.api("/me", token: token, method: .GET)
            #expect(old.code == 401 && old.message.contains("Password has been changed"))
            #expect(try await s.api("/me", token: try await s.login("admin", "a-new-password"), method: .GET).code == 200)
        }
    }

    @Test func unknownRoutesAndQueryParameters() async throws {
        try await withServer { s in
            let t = try await s.login()
            let r = try await s.api("/fs/nonexistent", token: t)
            #expect(r.status == 200 && r.code == 404 && r.message.contains("no API route"))
            try s.dir.write("data/files/q/x.txt", "x")
            let viaQuery = try await s.request(.GET, "/api/fs/list?path=%2Fq", headers: [("Authorization", t)])
            #expect((viaQuery.data["content"] as? [[String: Any]])?.first?["name"] as? String == "x.txt")
        }
    }

    @Test func publicSettingsHideSecrets() async throws {
        try await withServer { s in
            let r = try await s.api("/public/settings", method: .GET)
            #expect(r.code == 200)
            #expect(r.data["site_title"] as? String == "PanList")
            #expect(r.data["version"] != nil)
            #expect(r.data["token"] == nil && r.data["sign_all"] == nil)
        }
    }
}

func expiredToken(secret: String) async throws -> String {
    struct Claims: Encodable { var username = "admin"; var pwd_ts: Int64 = 0; var exp: Int; var iat: Int; var nbf: Int }
    let now = Int(Date().timeIntervalSince1970)
    func b64(_ d: Data) -> String {
        d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
    let header = b64(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
    let body = b64(try JSONEncoder().encode(Claims(exp: now - 10, iat: now - 100, nbf: now - 100)))
    let key = secret.utf8.count >= 32 ? secret : Passwords.sha256Hex(secret)
    let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(body)".utf8), using: SymmetricKey(data: Data(key.utf8)))
    return "\(header).\(body).\(b64(Data(mac)))"
}
