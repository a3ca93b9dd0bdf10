import Foundation
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer

/// `/api/admin/user/*` and `/api/me/update` over real HTTP: what an admin and a user see.
@Suite("Users")
struct UserAdminTests {
    @Test func createUpdateDisableDelete() async throws {
        try await withServer { s in
            let t = try await s.login()
            let created = try await s.api("/admin/user/create", ["username": "carol", "password": "carol-pass-1", "base_path": "/home/carol",
                                                                  "permission": Permission([.write, .webdavRead]).rawValue], token: t)
            #expect(created.code == 200, "\(created.text)")
            let id = try #require(created.data["id"] as? Int)
            #expect(try await s.api("/admin/user/create", ["username": "carol", "password": "x"], token: t).code != 200)
            #expect(try await s.api("/admin/user/create", ["username": "boss", "password": "x", "role": 2], token: t).code == 400)
            #expect(try await s.api("/admin/user/create", ["username": "nopass"], token: t).code == 400)
            let list = try await s.api("/admin/user/list", token: t, method: .GET)
            let names = (list.data["content"] as? [[String: Any]])?.compactMap { $0["username"] as? String } ?? []
            #expect(names.contains("carol") && names.contains("admin") && names.contains("guest"))
            #expect((list.data["content"] as? [[String: Any]])?.allSatisfy { ($0["password"] as? String) == "" } == true)

            // Carol logs in and sees her own base path; she cannot use the admin routes.
            let c = try await s.login("carol", "carol-pass-1")
            #expect(try await s.api("/me", token: c, method: .GET).data["base_path"] as? String == "/home/carol")
            #expect(try await s.api("/admin/user/list", token: c, method: .GET).code == 403)
            let basic = "Basic " + Data("carol:carol-pass-1".utf8).base64EncodedString()
            try FileManager.default.createDirectory(atPath: s.files + "/home/carol", withIntermediateDirectories: true)
            #expect(try await s.request(.RAW(value: "PROPFIND"), "/dav/", headers: [("Authorization", basic), ("Depth", "0")]).status == 207)

            // Disabling her ends her session and her WebDAV access at once.
            #expect(try await s.api("/admin/user/update", ["id": id, "disabled": true], token: t).code == 200)
            #expect(try await s.api("/me", token: c, method: .GET).code == 401)
            #expect(try await s.request(.RAW(value: "PROPFIND"), "/dav/", headers: [("Authorization", basic), ("Depth", "0")]).status == 403)
            #expect(try await s.api("/admin/user/update", ["id": id, "disabled": false], token: t).code == 200)
            let c2 = try await s.login("carol", "carol-pass-1")
            // A new password ends the sessions made with the old one; the old password stops working.
            #expect(try await s.api("/admin/user/update", ["id": id, "password": "carol-pass-2"], token: t).code == 200)
            #expect(try await s.api("/me", token: c2, method: .GET).code == 401)
            #expect(try await s.api("/auth/login", ["username": "carol", "password": "carol-pass-1"]).code == 400)
            let c3 = try await s.login("carol", "carol-pass-2")
            // Roles cannot change, the admin cannot be disabled or deleted.
            #expect(try await s.api("/admin/user/update", ["id": id, "role": 2], token: t).code == 400)
            let adminID = try #require(try await s.api("/me", token: t, method: .GET).data["id"] as? Int)
            #expect(try await s.api("/admin/user/update", ["id": adminID, "disabled": true], token: t).code == 400)
            #expect(try await s.api("/admin/user/delete?id=\(adminID)", token: t).code == 400)
            // Carol changes her own password.
            #expect(try await s.api("/me/update", ["password": "carol-pass-3"], token: c3).code == 200)
            #expect(try await s.api("/auth/login", ["username": "carol", "password": "carol-pass-3"]).code == 200)
            // Deleting her ends everything.
            let c4 = try await s.login("carol", "carol-pass-3")
            #expect(try await s.api("/admin/user/delete?id=\(id)", token: t).code == 200)
            #expect(try await s.api("/me", token: c4, method: .GET).code == 401)
            #expect(try await s.api("/admin/user/get?id=\(id)", token: t, method: .GET).code != 200)
        }
    }

    @Test func bruteForceIsStoppedOnTheAPIAndOverWebDAV() async throws {
        try await withServer { s in
            _ = try await s.addUser("dave", password: "dave-pass-1", permission: [.webdavRead])
            for _ in 0..<5 { #expect(try await s.api("/auth/login", ["username": "dave", "password": "wrong"]).code == 400) }
            // The 6th try is refused without checking, even with the right password.
            let sixth = try await s.api("/auth/login", ["username": "dave", "password": "dave-pass-1"])
            #expect(sixth.code == 429, "\(sixth.text)")
            let basic = "Basic " + Data("dave:dave-pass-1".utf8).base64EncodedString()
            #expect(try await s.request(.RAW(value: "PROPFIND"), "/dav/", headers: [("Authorization", basic)]).status == 429)
        }
        // And the other way round (a fresh server: the limit also counts per IP): wrong WebDAV passwords
        // lock the API login too.
        try await withServer { s in
            _ = try await s.addUser("erin", password: "erin-pass-1", permission: [.webdavRead])
            let wrong = "Basic " + Data("erin:nope".utf8).base64EncodedString()
            for _ in 0..<5 { #expect(try await s.request(.RAW(value: "PROPFIND"), "/dav/", headers: [("Authorization", wrong)]).status == 401) }
            #expect(try await s.api("/auth/login", ["username": "erin", "password": "erin-pass-1"]).code == 429)
        }
    }
}
