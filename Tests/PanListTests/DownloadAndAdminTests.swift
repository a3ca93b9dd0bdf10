import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer

@Suite("Downloads /d and /p over HTTP")
struct DownloadTests {
    /// Uploads a file and returns its signed /d and /p paths.
    func prepare(_ s: TestServer, _ name: String, _ content: Data) async throws -> (d: String, p: String) {
        let t = try await s.login()
        #expect(try await s.put("/media/" + name, content, token: t).code == 200)
        let get = try await s.api("/fs/get", ["path": "/media/" + name], token: t)
        let sign = try #require(get.data["sign"] as? String)
        let enc = URLPath.encode("/media/" + name)
        return ("/d" + enc + "?sign=" + sign, "/p" + enc + "?sign=" + sign)
    }

    @Test func fullRangeHeadAndHeaders() async throws {
        try await withServer { s in
            let content = Data((0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let (d, p) = try await prepare(s, "视频 1.mp4", content)
            for url in [d, p] {
                let full = try await s.request(.GET, url)
                #expect(full.status == 200 && full.body == content)
                #expect(full.header("Accept-Ranges") == "bytes")
                #expect(full.header("Content-Type") == "video/mp4")
                #expect(full.header("X-Content-Type-Options") == "nosniff")
                #expect(full.header("Content-Disposition")?.contains("filename*=UTF-8''%E8%A7%86%E9%A2%91%201.mp4") == true)
                #expect(full.header("ETag")?.hasPrefix("\"") == true && full.header("Last-Modified")?.hasSuffix("GMT") == true)

                let part = try await s.request(.GET, url, headers: [("Range", "bytes=100-199")])
                #expect(part.status == 206 && part.body == content[100...199])
                #expect(part.header("Content-Range") == "bytes 100-199/1000000")
                let suffix = try await s.request(.GET, url, headers: [("Range", "bytes=-10")])
                #expect(suffix.status == 206 && suffix.body == content.suffix(10))
                let open = try await s.request(.GET, url, headers: [("Range", "bytes=999990-")])
                #expect(open.status == 206 && open.body == content.suffix(10))
                let beyond = try await s.request(.GET, url, headers: [("Range", "bytes=1000000-")])
                #expect(beyond.status == 416 && beyond.header("Content-Range") == "bytes */1000000")
                let garbage = try await s.request(.GET, url, headers: [("Range", "bytes=zz")])
                #expect(garbage.status == 200 && garbage.body.count == content.count)

                let head = try await s.request(.HEAD, url)
                #expect(head.status == 200 && head.body.isEmpty && head.header("Content-Length") == "1000000")
            }
        }
    }

    @Test func writesThroughPanListAreSeenAtOnce() async throws {
        try await withServer { s in
            let t = try await s.login()
            let (_, p) = try await prepare(s, "hot.txt", Data("one".utf8))
            #expect(try await s.request(.GET, p).text == "one")
            #expect(try await s.put("/media/hot.txt", Data("two!".utf8), token: t).code == 200)
            let after = try await s.request(.GET, p)
            #expect(after.text == "two!" && after.header("Content-Length") == "4")
            #expect(try await s.api("/fs/remove", ["dir": "/media", "names": ["hot.txt"]], token: t).code == 200)
            #expect(try await s.request(.GET, p).status == 404)
        }
    }

    @Test func conditionalRequests() async throws {
        try await withServer { s in
            let (_, p) = try await prepare(s, "a.txt", Data("0123456789".utf8))
            let first = try await s.request(.GET, p)
            let etag = try #require(first.header("ETag"))
            let lastModified = try #require(first.header("Last-Modified"))
            #expect(try await s.request(.GET, p, headers: [("If-None-Match", etag)]).status == 304)
            #expect(try await s.request(.GET, p, headers: [("If-None-Match", "\"other\"")]).status == 200)
            #expect(try await s.request(.GET, p, headers: [("If-Modified-Since", lastModified)]).status == 304)
            #expect(try await s.request(.GET, p, headers: [("If-Match", "\"other\"")]).status == 412)
            let rangeOK = try await s.request(.GET, p, headers: [("Range", "bytes=0-1"), ("If-Range", etag)])
            #expect(rangeOK.status == 206 && rangeOK.text == "01")
            let rangeStale = try await s.request(.GET, p, headers: [("Range", "bytes=0-1"), ("If-Range", "\"stale\"")])
            #expect(rangeStale.status == 200 && rangeStale.text == "0123456789")
        }
    }

    @Test func signsAndCredentials() async throws {
        try await withServer { s in
            let (d, _) = try await prepare(s, "s.txt", Data("signed".utf8))
            let bare = String(d.split(separator: "?")[0])
            let missing = try await s.request(.GET, bare)
            #expect(missing.status == 401 && missing.text.contains("sign"))
            let wrong = try await s.request(.GET, bare + "?sign=AAAA:0")
            #expect(wrong.status == 401 && wrong.text.contains("sign invalid"))
            let expiredSign = s.state.signer.sign(path: "/media/s.txt", expire: 1000)
            #expect(try await s.request(.GET, bare + "?sign=" + expiredSign).status == 401)
            let otherPath = s.state.signer.sign(path: "/media/other.txt", expire: 0)
            #expect(try await s.request(.GET, bare + "?sign=" + otherPath).status == 401)
            // A logged-in reader may fetch without a sign.
            let t = try await s.login()
            #expect(try await s.request(.GET, bare, headers: [("Authorization", t)]).text == "signed")
            // With sign_all off: the guest (if enabled) or a user, never an anonymous caller otherwise.
            try await s.setSetting(SettingKey.signAll, "false")
            #expect(try await s.request(.GET, bare).status == 401)
            try await s.setGuest(enabled: true, permission: [])
            #expect(try await s.request(.GET, bare).text == "signed")
            // A storage with enable_sign still needs the sign.
            var record = try #require(try await s.state.store.storages().first)
            record.enableSign = true
            try await s.state.store.updateStorage(record)
            await s.state.mount(record)
            #expect(try await s.request(.GET, bare).status == 401)
            #expect(try await s.request(.GET, d).text == "signed")
            let list = try await s.api("/fs/list", ["path": "/media"], token: t)
            #expect(((list.data["content"] as? [[String: Any]])?.first?["sign"] as? String)?.isEmpty == false)
        }
    }

    @Test func missingFilesAndFolders() async throws {
        try await withServer { s in
            let t = try await s.login()
            let nf = try await s.request(.GET, "/d/nothing-here.txt", headers: [("Authorization", t)])
            #expect(nf.status == 404 && nf.text.contains("object not found"))
            _ = try await s.api("/fs/mkdir", ["path": "/folder"], token: t)
            #expect(try await s.request(.GET, "/p/folder", headers: [("Authorization", t)]).status == 400)
            // Active content is never shown inline.
            _ = try await s.put("/x.html", Data("<script>alert(1)</script>".utf8), token: t)
            let html = try await s.request(.GET, "/p/x.html", headers: [("Authorization", t)])
            #expect(html.header("Content-Disposition")?.hasPrefix("attachment") == true)
            #expect(html.header("X-Content-Type-Options") == "nosniff")
        }
    }
}

@Suite("Admin API over HTTP")
struct AdminAPITests {
    @Test func storageLifecycle() async throws {
        try await withServer { s in
            let t = try await s.login()
            let root = TempDir()
            defer { root.remove() }
            try root.write("hello.txt", "hi")
            let addition = "{\"root_folder_path\":\"\(root.path)\"}"
            let created = try await s.api("/admin/storage/create", ["mount_path": "/extra/", "driver": "Local", "addition": addition], token: t)
            #expect(created.code == 200, "\(created.text)")
            let id = try #require(created.data["id"] as? Int)
            let list = try await s.api("/admin/storage/list", token: t, method: .GET)
            let items = try #require(list.data["content"] as? [[String: Any]])
            #expect(list.data["total"] as? Int == 2)
            let extra = try #require(items.first { $0["id"] as? Int == id })
            #expect(extra["mount_path"] as? String == "/extra" && extra["status"] as? String == "work")
            #expect(extra["addition"] as? String == addition)
            // It appears in the tree.
            let rootList = try await s.api("/fs/list", ["path": "/"], token: t)
            #expect((rootList.data["content"] as? [[String: Any]])?.contains { $0["name"] as? String == "extra" } == true)
            #expect(try await s.request(.GET, "/p/extra/hello.txt", headers: [("Authorization", t)]).text == "hi")
            // Duplicate mount path.
            let dup = try await s.api("/admin/storage/create", ["mount_path": "/extra", "driver": "Local", "addition": addition], token: t)
            #expect(dup.code == 403)
            // Disable, enable, update, delete.
            #expect(try await s.api("/admin/storage/disable?id=\(id)", token: t).code == 200)
            #expect(try await s.api("/fs/list", ["path": "/extra"], token: t).code != 200)
            #expect(try await s.api("/admin/storage/get?id=\(id)", token: t, method: .GET).data["status"] as? String == "disabled")
            #expect(try await s.api("/admin/storage/enable?id=\(id)", token: t).code == 200)
            #expect(try await s.api("/fs/list", ["path": "/extra"], token: t).code == 200)
            var updated = extra
            updated["mount_path"] = "/moved"
            updated["remark"] = "r"
            #expect(try await s.api("/admin/storage/update", updated, token: t).code == 200)
            #expect(try await s.request(.GET, "/p/moved/hello.txt", headers: [("Authorization", t)]).text == "hi")
            #expect(try await s.api("/fs/list", ["path": "/extra"], token: t).code != 200)
            updated["driver"] = "Counting"
            #expect(try await s.api("/admin/storage/update", updated, token: t).code == 400)
            #expect(try await s.api("/admin/storage/delete?id=\(id)", token: t).code == 200)
            #expect(try await s.api("/admin/storage/get?id=\(id)", token: t, method: .GET).code == 404)
        }
    }

    @Test func badStoragesAreKeptWithTheirErrorAndEverythingElseWorks() async throws {
        try await withServer { s in
            let t = try await s.login()
            let bad = try await s.api("/admin/storage/create", ["mount_path": "/broken", "driver": "Local",
                                                                 "addition": "{\"root_folder_path\":\"/no/such/folder\"}"], token: t)
            #expect(bad.code == 500 && bad.message.contains("does not exist"))
            let id = try #require(bad.data["id"] as? Int)
            let got = try await s.api("/admin/storage/get?id=\(id)", token: t, method: .GET)
            #expect((got.data["status"] as? String)?.contains("does not exist") == true)
            #expect((try await s.api("/fs/list", ["path": "/broken"], token: t).message).contains("does not exist"))
            #expect(try await s.api("/fs/list", ["path": "/"], token: t).code == 200)
            // Validation errors.
            #expect(try await s.api("/admin/storage/create", ["mount_path": "/x", "driver": "Nope"], token: t).code == 400)
            #expect(try await s.api("/admin/storage/create", ["driver": "Local"], token: t).code == 400)
            #expect(try await s.api("/admin/storage/create", ["mount_path": "/a/../b", "driver": "Local"], token: t).code == 400)
            #expect(try await s.api("/admin/storage/create", ["mount_path": "/y", "driver": "Local", "webdav_policy": "bogus"], token: t).code == 400)
            #expect(try await s.api("/admin/storage/get?id=999", token: t, method: .GET).code == 404)
            #expect(try await s.api("/admin/storage/get", token: t, method: .GET).code == 400)
        }
    }

    @Test func driversAndSettings() async throws {
        try await withServer { s in
            let t = try await s.login()
            let names = try await s.api("/admin/driver/names", token: t, method: .GET)
            #expect((names.json["data"] as? [String])?.contains("Local") == true)
            let info = try await s.api("/admin/driver/info?driver=Local", token: t, method: .GET)
            let additional = try #require(info.data["additional"] as? [[String: Any]])
            #expect(additional.contains { $0["name"] as? String == "root_folder_path" })
            let common = try #require(info.data["common"] as? [[String: Any]])
            #expect(common.contains { $0["name"] as? String == "mount_path" })
            #expect((info.data["config"] as? [String: Any])?["local_sort"] as? Bool == true)
            let all = try await s.api("/admin/driver/list", token: t, method: .GET)
            #expect(all.data["Local"] != nil)
            #expect(try await s.api("/admin/driver/info?driver=Nope", token: t, method: .GET).code == 404)

            let settings = try await s.api("/admin/setting/list", token: t, method: .GET)
            #expect((settings.json["data"] as? [[String: Any]])?.contains { $0["key"] as? String == "sign_all" } == true)
            #expect(try await s.api("/admin/setting/get?key=site_title", token: t, method: .GET).data["value"] as? String == "PanList")
            #expect(try await s.api("/admin/setting/save", [["key": "site_title", "value": "My Files"]], token: t).code == 200)
            #expect(try await s.api("/public/settings", method: .GET).data["site_title"] as? String == "My Files")
            #expect(try await s.api("/admin/setting/save", [["key": "no_such_key", "value": "1"]], token: t).code == 404)
            #expect(try await s.api("/admin/setting/save", [["key": "version", "value": "9"]], token: t).code == 403)
            #expect(try await s.api("/admin/setting/save", ["not": "an array"], token: t).code == 400)
            // Admin routes need the admin.
            #expect(try await s.api("/admin/setting/list", method: .GET).code == 401)
        }
    }
}
