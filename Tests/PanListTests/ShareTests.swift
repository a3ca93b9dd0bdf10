import Foundation
import Testing
@testable import PanListCore
@testable import PanListServer
@testable import PanListStore

/// Share links over real HTTP: the owners' routes, the visitors' routes and `/sd`, `/sp` links.
@Suite("Shares")
struct ShareTests {
    static func create(_ s: TestServer, _ body: [String: Any], token: String) async throws -> (code: Int, message: String, share: [String: Any]) {
        let r = try await s.api("/share/create", body, token: token)
        return (r.code, r.message, r.data)
    }

    static func info(_ s: TestServer, _ id: String) async throws -> HTTPResult {
        try await s.api("/public/share/info", ["id": id])
    }

    /// Opens a share (its password if given): the session token, or the answer that refused it.
    static func open(_ s: TestServer, _ id: String, password: String? = nil, from ip: String? = nil) async throws -> (token: String?, answer: HTTPResult) {
        var headers = [("Content-Type", "application/json")]
        if let ip { headers.append(("X-Forwarded-For", ip)) }
        var body: [String: Any] = ["id": id]
        if let password { body["password"] = password }
        let r = try await s.request(.POST, "/api/public/share/auth", headers: headers, body: try JSONSerialization.data(withJSONObject: body))
        return (r.data["token"] as? String, r)
    }

    static func list(_ s: TestServer, _ id: String, token: String?, path: String = "/", password: String? = nil) async throws -> HTTPResult {
        var body: [String: Any] = ["id": id, "path": path]
        if let token { body["token"] = token }
        if let password { body["password"] = password }
        return try await s.api("/public/share/list", body)
    }

    static func names(_ r: HTTPResult) -> [String] {
        (r.data["content"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.sorted()
    }

    static func get(_ s: TestServer, _ id: String, token: String?, path: String, password: String? = nil) async throws -> HTTPResult {
        var body: [String: Any] = ["id": id, "path": path]
        if let token { body["token"] = token }
        if let password { body["password"] = password }
        return try await s.api("/public/share/get", body)
    }

    /// The path and query of a `raw_url`.
    static func local(_ url: String) -> String {
        guard let r = url.range(of: "://") , let slash = url[r.upperBound...].firstIndex(of: "/") else { return url }
        return String(url[slash...])
    }

    @Test func lifecycle() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/docs/a.txt", "alpha")
            try s.dir.write("data/files/docs/sub/b.txt", "beta")
            try s.dir.write("data/files/other/c.txt", "outside")
            let made = try await Self.create(s, ["files": ["/docs"], "pwd": "pass-1", "max_accessed": 5, "readme": "Hello"], token: t)
            #expect(made.code == 200, "\(made.message)")
            let id = try #require(made.share["id"] as? String)
            #expect(made.share["url"] as? String == "/@s/" + id && made.share["has_password"] as? Bool == true)
            #expect(made.share["state"] as? String == "active" && made.share["accessed"] as? Int == 0)
            #expect(id.count == 10)
            // No password in any answer, not even a hash.
            #expect(!(try await s.api("/share/get?id=\(id)", token: t).text.contains("pass-1")))
            #expect(!(try await s.api("/share/get?id=\(id)", token: t).text.contains("$2")))

            // A visitor: what the share is, then its password.
            let info = try await Self.info(s, id)
            // Nothing of the content before the password, not even the folder's name.
            #expect(info.code == 200 && info.data["title"] as? String == "Shared files" && info.data["has_password"] as? Bool == true)
            #expect(info.data["is_dir"] as? Bool == true)
            #expect(try await Self.list(s, id, token: nil).code == 401)
            let wrong = try await Self.open(s, id, password: "nope")
            #expect(wrong.token == nil && wrong.answer.code == 403 && wrong.answer.message.contains("wrong"))
            let none = try await Self.open(s, id)
            #expect(none.token == nil && none.answer.message.contains("needs its password"))
            let session = try #require(try await Self.open(s, id, password: "pass-1").token)
            let root = try await Self.list(s, id, token: session)
            #expect(root.code == 200 && Self.names(root) == ["a.txt", "sub"] && root.data["readme"] as? String == "Hello", "\(root.text)")
            #expect(root.data["write"] as? Bool == false)
            #expect(Self.names(try await Self.list(s, id, token: session, path: "/sub")) == ["b.txt"])
            // A file: its link gives its bytes.
            let got = try await Self.get(s, id, token: session, path: "/sub/b.txt")
            #expect(got.code == 200 && got.data["name"] as? String == "b.txt" && got.data["size"] as? Int == 4)
            let raw = try #require(got.data["raw_url"] as? String)
            #expect(raw.contains("/sd/\(id)/sub/b.txt?sign="))
            #expect(try await s.request(.GET, Self.local(raw)).text == "beta")
            #expect(try await s.request(.GET, Self.local(raw).replacingOccurrences(of: "/sd/", with: "/sp/")).text == "beta")
            // The sign is for that path only.
            let other = Self.local(raw).replacingOccurrences(of: "/sub/b.txt", with: "/a.txt")
            #expect(try await s.request(.GET, other).status == 401)
            #expect(try await s.request(.GET, "/sd/\(id)/a.txt").status == 401)
            // A session is not a login: the owner's routes refuse it.
            #expect(try await s.api("/share/list", token: session).code == 401)

            // The owner sees the open counted, edits, disables, enables, deletes.
            let listed = try await s.api("/share/list", token: t)
            let row = try #require((listed.data["content"] as? [[String: Any]])?.first)
            #expect(row["id"] as? String == id && row["accessed"] as? Int == 1 && row["files"] as? [String] == ["/docs"])
            let edited = try await s.api("/share/update", ["id": id, "pwd": "", "readme": "Changed"], token: t)
            #expect(edited.code == 200 && edited.data["has_password"] as? Bool == false && edited.data["readme"] as? String == "Changed")
            // The password changed: the old session and its links end.
            #expect(try await Self.list(s, id, token: session).code == 401)
            #expect(try await s.request(.GET, Self.local(raw)).status == 401)
            let open2 = try #require(try await Self.open(s, id).token)
            #expect(try await Self.list(s, id, token: open2).data["readme"] as? String == "Changed")
            #expect(try await s.api("/share/disable?id=\(id)", token: t).data["state"] as? String == "disabled")
            let off = try await Self.info(s, id)
            #expect(off.code == 403 && off.message.contains("disabled"))
            #expect(try await Self.list(s, id, token: open2).code == 403)
            #expect(try await s.api("/share/enable?id=\(id)", token: t).data["state"] as? String == "active")
            // Disabling ended the sessions and links handed out: enabling does not bring them back.
            #expect(try await Self.list(s, id, token: open2).code == 401)
            let open3 = try #require(try await Self.open(s, id).token)
            #expect(try await Self.list(s, id, token: open3).code == 200)
            // A change made from a stale copy does not land (the stored version moved on).
            let stale = try #require(try await s.state.store.share(id: id))
            #expect(try await s.api("/share/update", ["id": id, "remark": "newer"], token: t).code == 200)
            #expect(try await s.state.store.updateShare(stale, resetAccessed: false) == false)
            // Through the route: a form made from an older version is refused, not applied.
            let conflict = try await s.api("/share/update", ["id": id, "remark": "older form", "version": stale.version], token: t)
            #expect(conflict.code == 400 && conflict.message.contains("changed meanwhile"), "\(conflict.text)")
            #expect(try await s.api("/share/get?id=\(id)", token: t).data["remark"] as? String == "newer")
            #expect(try await s.api("/share/delete?id=\(id)", token: t).code == 200)
            // The same id made again is another share: the old session does not open it.
            #expect(try await Self.create(s, ["files": ["/other"], "id": id], token: t).code == 200)
            #expect(try await Self.list(s, id, token: open3).code == 401)
            #expect(try await s.api("/share/delete?id=\(id)", token: t).code == 200)
            let gone = try await Self.info(s, id)
            #expect(gone.code == 404 && gone.message.contains("does not exist"))
            #expect(try await s.api("/share/list", token: t).data["total"] as? Int == 0)
        }
    }

    @Test func severalItemsCustomIDsAndBadInput() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/x/one.txt", "1")
            try s.dir.write("data/files/y/two.txt", "2")
            try s.dir.write("data/files/z/one.txt", "3")
            let two = try await Self.create(s, ["files": ["/x/one.txt", "/y"], "id": "my-share_1"], token: t)
            #expect(two.code == 200 && two.share["id"] as? String == "my-share_1", "\(two.message)")
            let session = try #require(try await Self.open(s, "my-share_1").token)
            #expect(Self.names(try await Self.list(s, "my-share_1", token: session)) == ["one.txt", "y"])
            #expect(Self.names(try await Self.list(s, "my-share_1", token: session, path: "/y")) == ["two.txt"])
            let file = try await Self.get(s, "my-share_1", token: session, path: "/one.txt")
            #expect(try await s.request(.GET, Self.local(try #require(file.data["raw_url"] as? String))).text == "1")
            let outside = try await Self.list(s, "my-share_1", token: session, path: "/x")
            #expect(outside.code != 200 && outside.message == "/x: object not found", "\(outside.text)")

            let bad: [([String: Any], String?)] = [
                (["files": [String]()], "at least one"),
                (["files": ["/x/one.txt", "/z/one.txt"]], "named one.txt"),
                (["files": ["/nowhere"]], "not found"),
                (["files": ["/x"], "id": "my-share_1"], "taken"),
                (["files": ["/x"], "id": "a b"], "id:"),
                (["files": ["/x"], "expires": "2001-01-01T00:00:00Z"], "has passed"),
                (["files": ["/x"], "expires": "tomorrow"], "not a time"),
                (["files": ["/x"], "max_accessed": -1], "max_accessed"),
                (["files": ["/../etc"]], nil),
                (["files": "/x"], nil)]
            for (body, says) in bad {
                let r = try await Self.create(s, body, token: t)
                #expect(r.code >= 400, "\(body): \(r.code) \(r.message)")
                if let says { #expect(r.message.lowercased().contains(says.lowercased()), "\(body): \(r.message)") }
            }
            #expect(try await s.api("/share/list", token: t).data["total"] as? Int == 1)

            // Who may share: the bit; custom ids: the other bit; the guest never.
            _ = try await s.addUser("plain", password: "plain-pass-1", permission: [])
            _ = try await s.addUser("sharer", password: "sharer-pass-1", permission: [.share])
            let plain = try await s.login("plain", "plain-pass-1"), sharer = try await s.login("sharer", "sharer-pass-1")
            #expect(try await Self.create(s, ["files": ["/x"]], token: plain).message.contains("may not share"))
            #expect(try await Self.create(s, ["files": ["/x"], "id": "mine"], token: sharer).message.contains("may not choose"))
            let own = try await Self.create(s, ["files": ["/x"]], token: sharer)
            #expect(own.code == 200)
            // Owners see and manage their own shares only.
            #expect(try await s.api("/share/list", token: sharer).data["total"] as? Int == 1)
            #expect(try await s.api("/share/delete?id=my-share_1", token: sharer).code == 404)
            #expect(try await s.api("/share/list", token: t).data["total"] as? Int == 2)
            try await s.setGuest(enabled: true, permission: [.share])
            #expect(try await s.api("/share/create", ["files": ["/x"]]).code == 401)
        }
    }

    /// allow_download and allow_preview; expiry.
    @Test func switchesAndExpiry() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/m/song.mp3", "sound")
            try s.dir.write("data/files/m/tool.bin", "binary")
            let made = try await Self.create(s, ["files": ["/m"], "allow_download": false], token: t)
            let id = try #require(made.share["id"] as? String)
            let session = try #require(try await Self.open(s, id).token)
            let entries = try await Self.list(s, id, token: session).data["content"] as? [[String: Any]] ?? []
            let signs = Dictionary(uniqueKeysWithValues: entries.map { ($0["name"] as? String ?? "", $0["sign"] as? String ?? "") })
            #expect(signs["song.mp3"]?.isEmpty == false && signs["tool.bin"] == "")
            let song = try await Self.get(s, id, token: session, path: "/song.mp3").data["raw_url"] as? String ?? ""
            #expect(try await s.request(.GET, Self.local(song)).text == "sound")
            #expect(try await Self.get(s, id, token: session, path: "/tool.bin").data["raw_url"] as? String == "")
            // Previews off too: no bytes at all, even through a link handed out before.
            #expect(try await s.api("/share/update", ["id": id, "allow_preview": false], token: t).code == 200)
            let refused = try await s.request(.GET, Self.local(song))
            #expect(refused.status == 403 && refused.text.contains("does not allow downloads"))

            // Expiry: a share that ends in an hour, opened, then its end moved to a moment ago in the store (the
            // API refuses a time that has passed; no test waits for a clock).
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let short = try await Self.create(s, ["files": ["/m"], "expires": f.string(from: Date().addingTimeInterval(3600))], token: t)
            let sid = try #require(short.share["id"] as? String)
            #expect(short.share["expires"] as? String != "")
            let s2 = try #require(try await Self.open(s, sid).token)
            let link = try await Self.get(s, sid, token: s2, path: "/tool.bin").data["raw_url"] as? String ?? ""
            #expect(try await s.request(.GET, Self.local(link)).text == "binary")
            var row = try #require(try await s.state.store.share(id: sid))
            row.expires_ms = Int64(Date().timeIntervalSince1970 * 1000) - 1000
            #expect(try await s.state.store.updateShare(row, resetAccessed: false))
            #expect(try await Self.info(s, sid).message.contains("expired"))
            #expect(try await Self.open(s, sid).answer.message.contains("expired"))
            #expect(try await Self.list(s, sid, token: s2).message.contains("expired"))
            #expect(try await s.request(.GET, Self.local(link)).status != 200)
            #expect(try await s.api("/share/get?id=\(sid)", token: t).data["state"] as? String == "expired")
            // Made open again by a later expiry.
            let later = f.string(from: Date().addingTimeInterval(3600))
            #expect(try await s.api("/share/update", ["id": sid, "expires": later], token: t).data["state"] as? String == "active")
            #expect(try await Self.open(s, sid).token != nil)
        }
    }

    /// A share limited to 10 opens: 50 at once, exactly 10 succeed; the 11th is told why.
    @Test func theOpenLimitIsExactUnderConcurrency() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/lim/f.txt", "f")
            let id = try #require(try await Self.create(s, ["files": ["/lim"], "max_accessed": 10], token: t).share["id"] as? String)
            let opened = try await withThrowingTaskGroup(of: Bool.self) { g in
                for _ in 0..<50 { g.addTask { try await Self.open(s, id).token != nil } }
                var n = 0
                for try await ok in g where ok { n += 1 }
                return n
            }
            #expect(opened == 10)
            #expect(try await s.api("/share/get?id=\(id)", token: t).data["accessed"] as? Int == 10)
            #expect(try await Self.open(s, id).answer.message.contains("as many times"))
            #expect(try await s.api("/share/get?id=\(id)", token: t).data["state"] as? String == "exhausted")
            // Reset by the owner: open again.
            #expect(try await s.api("/share/update", ["id": id, "reset_accessed": true], token: t).data["accessed"] as? Int == 0)
            #expect(try await Self.open(s, id).token != nil)
        }
    }

    /// Paths that try to leave the share, through the visitor routes and through `/sd`.
    @Test func nothingOutsideTheShare() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/pub/in.txt", "in")
            try s.dir.write("data/files/pub2/out.txt", "out")
            try s.dir.write("data/files/secret.txt", "secret")
            let id = try #require(try await Self.create(s, ["files": ["/pub"]], token: t).share["id"] as? String)
            let multi = try #require(try await Self.create(s, ["files": ["/pub/in.txt", "/pub2"]], token: t).share["id"] as? String)
            for share in [id, multi] {
                let session = try #require(try await Self.open(s, share).token)
                for p in ["/..", "/../secret.txt", "/../pub2/out.txt", "../secret.txt", "/./../secret.txt", "/pub/../../secret.txt",
                          "/%2e%2e/secret.txt", "//secret.txt", "/secret.txt", "/pub2/../secret.txt", "\\..\\secret.txt",
                          "/in.txt/../../secret.txt", "/\u{0}", "/pub2/out.txt/.."] {
                    for r in [try await Self.list(s, share, token: session, path: p), try await Self.get(s, share, token: session, path: p)] {
                        #expect(!r.text.contains("secret.txt\"") || r.code != 200, "\(share) \(p): \(r.text)")
                        if r.code == 200 {
                            let names = Self.names(r) + [(r.data["name"] as? String) ?? ""]
                            let outAllowed = share == multi && p.hasPrefix("/pub2")
                            let leaked = names.contains("secret.txt") || (names.contains("out.txt") && !outAllowed)
                            #expect(!leaked, "\(share) \(p): \(r.text)")
                        }
                    }
                }
                // `/sd` with a good sign for one path and a changed path; and encoded ways out.
                let raw = Self.local(try await Self.get(s, share, token: session, path: "/in.txt").data["raw_url"] as? String ?? "")
                #expect(try await s.request(.GET, raw).text == "in")
                let signAt = try #require(raw.range(of: "?sign="))
                let sign = String(raw[signAt.upperBound...])
                for p in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2E%2E%2Fsecret.txt", "/in.txt/../../secret.txt",
                          "/in.txt%00", "/./in.txt/..", "//in.txt"] {
                    let r = try await s.request(.GET, "/sd/\(share)\(p)?sign=\(sign)")
                    #expect(r.status != 200 || r.text == "in", "\(share) \(p): \(r.status) \(r.text)")
                    #expect(!r.text.contains("secret"), "\(share) \(p)")
                }
                for bad in ["/sd/../d/secret.txt", "/sd/%2e%2e/secret.txt", "/sd/\(share)", "/sd/no-such-share/in.txt?sign=\(sign)"] {
                    let r = try await s.request(.GET, bad)
                    #expect(r.status >= 400 && !r.text.contains("secret\n") && r.text != "secret", "\(bad): \(r.status)")
                }
            }
            #expect(try await Self.info(s, "../x").code == 404)
            #expect(try await Self.info(s, "").code == 404)
        }
    }

    /// The creator's current rights apply at every request.
    @Test func theCreatorsRightsApply() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/home/ann/doc.txt", "doc")
            let ann = try await s.addUser("ann", password: "ann-pass-1", basePath: "/home/ann", permission: [.share])
            let at = try await s.login("ann", "ann-pass-1")
            // Paths are the creator's: "/" is her base folder; she cannot reach outside it.
            let made = try await Self.create(s, ["files": ["/doc.txt"]], token: at)
            #expect(made.share["files"] as? [String] == ["/doc.txt"], "\(made.message)")
            let id = try #require(made.share["id"] as? String)
            #expect(try await Self.create(s, ["files": ["/../"]], token: at).code >= 400)
            let session = try #require(try await Self.open(s, id).token)
            let link = Self.local(try await Self.get(s, id, token: session, path: "/doc.txt").data["raw_url"] as? String ?? "")
            #expect(try await s.request(.GET, link).text == "doc")

            func update(_ change: (inout StoredUser) -> Void) async throws {
                var stored = try #require(try await s.state.store.user(id: ann.id))
                change(&stored)
                try await s.state.store.updateUser(stored)
                await s.state.usersChanged()
            }
            // Disabled: the share stops at once (links too); enabled again: it works.
            try await update { $0.user.disabled = true }
            #expect(try await Self.info(s, id).message.contains("not available"))
            #expect(try await s.request(.GET, link).status == 403)
            try await update { $0.user.disabled = false }
            #expect(try await s.request(.GET, link).text == "doc")
            // The share bit taken away.
            try await update { $0.user.permission = [] }
            #expect(try await Self.list(s, id, token: session).message.contains("not available"))
            #expect(try await s.api("/share/get?id=\(id)", token: t).data["state"] as? String == "unavailable")
            try await update { $0.user.permission = [.share] }
            // The base path moved away from the file.
            try await update { $0.user.basePath = "/home/other" }
            #expect(try await s.request(.GET, link).status >= 400)
            #expect(try await Self.list(s, id, token: session).code >= 400)
            try await update { $0.user.basePath = "/home/ann" }
            #expect(try await s.request(.GET, link).text == "doc")
            // Deleted: the share goes with her.
            #expect(try await s.api("/admin/user/delete?id=\(ann.id)", token: t).code == 200)
            #expect(try await Self.info(s, id).code == 404)
            #expect(try await s.request(.GET, link).status == 404)
        }
    }

    /// Errors are told in the share's terms: real paths rewritten, what failed behind the share not told.
    @Test func errorsInTheSharesTerms() async throws {
        try await withServer { s in
            let ann = User(id: 7, username: "ann", basePath: "/home/ann", role: .general, permission: [.share])
            var share = Share(id: "terms", creator: 7, paths: ["/home/ann/docs"])
            share.single_folder = true
            let one = ShareGate.Opened(share: share, creator: ann, visitor: ann, items: [("docs", "/home/ann/docs")], singleFolder: "/home/ann/docs")
            let several = ShareGate.Opened(share: share, creator: ann, visitor: ann,
                                           items: [("docs", "/home/ann/docs"), ("a.txt", "/home/ann/b/a.txt")], singleFolder: nil)
            let gate = ShareGate(state: s.state)
            _ = several
            // A missing name: the path the visitor asked for, whatever the storage said.
            #expect(gate.inShareTerms(FSError.objectNotFound("/home/ann/docs/x/y.txt"), one, asked: "/x/y.txt").message == "/x/y.txt: object not found")
            #expect(gate.inShareTerms(FSError.objectNotFound("/team/docs/nope"), one, asked: "/nope").message == "/nope: object not found")
            // The visitor's own text is not searched for the share's paths (no oracle of what matched).
            #expect(gate.inShareTerms(FSError.objectNotFound("/zz/home/ann"), one, asked: "/zz/home/ann").message == "/zz/home/ann: object not found")
            // The gate's own refusals pass as they are; failures behind the share are not told.
            #expect(gate.inShareTerms(FSError.permissionDenied(Access.passwordMessage), one, asked: "/x").message == Access.passwordMessage)
            for e in [FSError.storageUnavailable("storage /mnt/gdrive is not available: token refused by 123"),
                      FSError.upstream(code: 500, message: "cloud said no at /home/ann/docs"),
                      FSError.internalError("the storage gave no URL for /home/ann/docs/a"), FSError.conflict("/home/ann/docs is busy")] {
                let told = gate.inShareTerms(e, one, asked: "/a")
                #expect(told.message == "the files of this share cannot be reached right now; try again later" && !told.message.contains("/home"))
            }
        }
    }

    /// Hidden names stay hidden; folder passwords are not bypassed.
    @Test func hiddenNamesAndFolderPasswords() async throws {
        try await withServer { s in
            let t = try await s.login()
            for f in ["pub/open.txt", "pub/secret-plan.txt", "pub/locked/inner.txt", "club/inner/deep.txt", "hid/x.txt"] {
                try s.dir.write("data/files/" + f, f)
            }
            #expect(try await s.api("/admin/meta/create", ["path": "/pub", "hide": "^secret", "h_sub": true], token: t).code == 200)
            #expect(try await s.api("/admin/meta/create", ["path": "/pub/locked", "password": "L-pw", "p_sub": true], token: t).code == 200)
            #expect(try await s.api("/admin/meta/create", ["path": "/club", "password": "club-pw", "p_sub": true], token: t).code == 200)
            #expect(try await s.api("/admin/meta/create", ["path": "/", "hide": "^hid$"], token: t).code == 200)

            let id = try #require(try await Self.create(s, ["files": ["/pub"]], token: t).share["id"] as? String)
            let session = try #require(try await Self.open(s, id).token)
            // The admin sees hidden names; the share never shows them, nor opens them by name.
            #expect(Self.names(try await Self.list(s, id, token: session)) == ["locked", "open.txt"])
            let hidden = try await Self.get(s, id, token: session, path: "/secret-plan.txt")
            // Said exactly as for a name that is not there (and in the share's terms, not the real path).
            #expect(hidden.code != 200 && hidden.message == "/secret-plan.txt: object not found", "\(hidden.text)")
            #expect(try await Self.get(s, id, token: session, path: "/no-such.txt").message == "/no-such.txt: object not found")
            // A guarded folder inside the share: the admin opens it without the password, so the share does.
            #expect(Self.names(try await Self.list(s, id, token: session, path: "/locked")) == ["inner.txt"])
            #expect(try await Self.create(s, ["files": ["/hid"]], token: t).message.contains("hidden"))

            // A user who needs folder passwords.
            _ = try await s.addUser("bob", password: "bob-pass-1", permission: [.share])
            let bt = try await s.login("bob", "bob-pass-1")
            let bobs = try #require(try await Self.create(s, ["files": ["/pub"]], token: bt).share["id"] as? String)
            let bs = try #require(try await Self.open(s, bobs).token)
            #expect(try await Self.list(s, bobs, token: bs, path: "/locked").code == 403)
            // A rule on one file of an open folder: listed (its name is not hidden) but with no link, and not
            // opened without its own password.
            try s.dir.write("data/files/pub/own-lock.txt", "own")
            #expect(try await s.api("/admin/meta/create", ["path": "/pub/own-lock.txt", "password": "F-pw"], token: t).code == 200)
            let top = try await Self.list(s, bobs, token: bs)
            let ownEntry = (top.data["content"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "own-lock.txt" }
            #expect(ownEntry?["sign"] as? String == "", "\(top.text)")
            #expect(try await Self.get(s, bobs, token: bs, path: "/own-lock.txt").code == 403)
            let own = try await Self.get(s, bobs, token: bs, path: "/own-lock.txt", password: "F-pw")
            #expect(try await s.request(.GET, Self.local(try #require(own.data["raw_url"] as? String))).text == "own")
            let locked = try await Self.list(s, bobs, token: bs, path: "/locked", password: "L-pw")
            #expect(Self.names(locked) == ["inner.txt"])
            // Its file's link works without the password (the link carries its proof) …
            let inner = try await Self.get(s, bobs, token: bs, path: "/locked/inner.txt", password: "L-pw")
            let innerLink = Self.local(try #require(inner.data["raw_url"] as? String))
            #expect(try await s.request(.GET, innerLink).text == "pub/locked/inner.txt")
            #expect(try await Self.get(s, bobs, token: bs, path: "/locked/inner.txt").code == 403)
            // … until the folder's password changes.
            let all = try await s.api("/admin/meta/list", token: t, method: .GET).data["content"] as? [[String: Any]] ?? []
            var lockedRule = try #require(all.first { $0["path"] as? String == "/pub/locked" })
            lockedRule["password"] = "L-pw-2"
            #expect(try await s.api("/admin/meta/update", lockedRule, token: t).code == 200)
            #expect(try await s.request(.GET, innerLink).status == 401)
            // Sharing inside a guarded folder needs its password.
            let refused = try await Self.create(s, ["files": ["/club/inner"]], token: bt)
            #expect(refused.code == 403, "\(refused.message)")
            let club = try await Self.create(s, ["files": ["/club/inner"], "folder_password": "club-pw"], token: bt)
            let cid = try #require(club.share["id"] as? String, "\(club.message)")
            let cs = try #require(try await Self.open(s, cid).token)
            #expect(Self.names(try await Self.list(s, cid, token: cs)) == ["deep.txt"])
            let link = Self.local(try await Self.get(s, cid, token: cs, path: "/deep.txt").data["raw_url"] as? String ?? "")
            #expect(try await s.request(.GET, link).text == "club/inner/deep.txt")
            // The folder's password changed: the share of what lies in it stops.
            let rules = try await s.api("/admin/meta/list", token: t, method: .GET).data["content"] as? [[String: Any]] ?? []
            let rule = try #require(rules.first { $0["path"] as? String == "/club" })
            var changed = rule
            changed["password"] = "club-pw-2"
            #expect(try await s.api("/admin/meta/update", changed, token: t).code == 200)
            #expect(try await Self.list(s, cid, token: cs).message.contains("whose password its owner did not give"))
            #expect(try await s.request(.GET, link).status == 403)
            // The owner shares it again with the new password.
            #expect(try await s.api("/share/update", ["id": cid, "files": ["/club/inner"], "folder_password": "club-pw-2"], token: bt).code == 200)
            #expect(Self.names(try await Self.list(s, cid, token: cs)) == ["deep.txt"])
        }
    }

    /// Guessing a share's password: five wrong from one address block that address for that share (a right
    /// password then fails too); another address still gets its tries.
    @Test func passwordGuessingIsThrottled() async throws {
        try await withServer(adjust: { $0.trustedProxies = ["127.0.0.1"] }) { s in
            let t = try await s.login()
            try s.dir.write("data/files/g/f.txt", "f")
            let id = try #require(try await Self.create(s, ["files": ["/g"], "pwd": "right-one"], token: t).share["id"] as? String)
            // Opening without a password is a question, not a guess: not counted.
            for _ in 0..<8 { #expect(try await Self.open(s, id, from: "203.0.113.7").answer.message.contains("needs its password")) }
            for _ in 0..<5 { #expect(try await Self.open(s, id, password: "guess", from: "203.0.113.7").answer.code == 403) }
            let blocked = try await Self.open(s, id, password: "right-one", from: "203.0.113.7")
            #expect(blocked.token == nil && blocked.answer.code == 429, "\(blocked.answer.text)")
            #expect(try await Self.open(s, id, password: "right-one", from: "203.0.113.8").token != nil)
        }
    }
}

/// A cloud file in a share goes by its storage's download policy, as `/d` does.
@Suite("Shares of 123 Open files")
struct ShareCloudTests {
    @Test func cloudFilesGoByTheStoragePolicy() async throws {
        try await withCloud { s, emu, t in
            let body = Data((0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            _ = try await emu.seed(path: "/share-me/film.mkv", data: body)
            // A second storage on the same drive that streams (web_proxy) and one with a download proxy URL.
            let addition = try String(decoding: JSONSerialization.data(withJSONObject: [
                "ClientID": emu.config.clientID, "ClientSecret": emu.config.clientSecret, "base_url": emu.baseURL]), as: UTF8.self)
            #expect(try await s.api("/admin/storage/create", ["mount_path": "/streamed", "driver": "123 Open", "addition": addition,
                                                              "web_proxy": true], token: t).code == 200)
            #expect(try await s.api("/admin/storage/create", ["mount_path": "/proxied", "driver": "123 Open", "addition": addition,
                                                              "web_proxy": true, "down_proxy_url": "http://127.0.0.1:9/dl"], token: t).code == 200)
            for (mount, expect302) in [("/123", true), ("/streamed", false), ("/proxied", false)] {
                let made = try await ShareTests.create(s, ["files": ["\(mount)/share-me"]], token: t)
                let id = try #require(made.share["id"] as? String, "\(mount): \(made.message)")
                let session = try #require(try await ShareTests.open(s, id).token)
                let raw = try #require(try await ShareTests.get(s, id, token: session, path: "/film.mkv").data["raw_url"] as? String)
                let r = try await s.request(.GET, ShareTests.local(raw))
                if expect302 {
                    // The cloud's own link, as /d gives it.
                    #expect(r.status == 302, "\(mount): \(r.status)")
                    let location = try #require(r.header("Location"))
                    #expect(location.hasPrefix(emu.baseURL) || location.contains("127.0.0.1"), "\(location)")
                    #expect(!location.contains("/d/"))
                } else {
                    // Streamed by PanList (never a redirect to the proxy URL, whose sign would outlive the share).
                    #expect(r.status == 200 && r.body == body, "\(mount): \(r.status)")
                }
                // /sp always streams.
                let sp = try await s.request(.GET, ShareTests.local(raw).replacingOccurrences(of: "/sd/", with: "/sp/"))
                #expect(sp.status == 200 && sp.body == body, "\(mount) /sp: \(sp.status)")
                // A range, as players ask.
                let part = try await s.request(.GET, ShareTests.local(raw).replacingOccurrences(of: "/sd/", with: "/sp/"), headers: [("Range", "bytes=100-199")])
                #expect(part.status == 206 && part.body == body[100..<200])
            }
        }
    }
}

@Suite("Shares on several instances", .enabled(if: TestPostgres.installed, TestPostgres.skipMessage))
struct ShareClusterTests {
    /// 50 opens at once, half on each instance, of a share limited to 10: exactly 10 succeed.
    @Test func theOpenLimitHoldsAcrossInstances() async throws {
        try await withCluster { c in
            let t = try await c.a.login()
            try c.a.dir.write("data/files/lim.txt", "x")
            let made = try await ShareTests.create(c.a, ["files": ["/lim.txt"], "max_accessed": 10], token: t)
            let id = try #require(made.share["id"] as? String, "\(made.message)")
            let opened = try await withThrowingTaskGroup(of: Bool.self) { g in
                for i in 0..<50 { g.addTask { try await ShareTests.open(i % 2 == 0 ? c.a : c.b, id).token != nil } }
                var n = 0
                for try await ok in g where ok { n += 1 }
                return n
            }
            #expect(opened == 10)
            #expect(try await c.b.api("/share/get?id=\(id)", token: t).data["accessed"] as? Int == 10)
        }
    }
}
