import Crypto
import Foundation
import PanListCore
@testable import PanListServer
import Testing

/// Offline downloads: SimpleHttp and aria2 against a web server on 127.0.0.1, their tasks, delete policies,
/// and the refusals of internal addresses.
@Suite struct OfflineTests {
    static func bytes(_ n: Int, seed: Int = 7) -> Data { Data((0..<n).map { UInt8(truncatingIfNeeded: $0 &* seed &+ $0 >> 9) }) }

    /// Every offline task of the caller, both kinds, done or not.
    static func offlineTasks(_ s: TestServer, _ t: String) async throws -> [[String: Any]] {
        var all: [[String: Any]] = []
        for kind in ["offline_download", "offline_download_transfer"] {
            for list in ["undone", "done"] { all += try await s.tasks(kind, list, token: t) }
        }
        return all
    }

    /// Waits until no offline task is undone; the done ones.
    static func settle(_ s: TestServer, _ t: String, limit: Duration = .seconds(30)) async throws -> [[String: Any]] {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            let undone = try await s.tasks("offline_download", token: t) + s.tasks("offline_download_transfer", token: t)
            if undone.isEmpty {
                return try await s.tasks("offline_download", "done", token: t) + s.tasks("offline_download_transfer", "done", token: t)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw FSError.internalError("offline tasks still undone: \(try await offlineTasks(s, t))")
    }

    static func add(_ s: TestServer, _ t: String, _ urls: [String], path: String = "/dl", tool: String = "SimpleHttp",
                    policy: String = "delete_on_upload_succeed") async throws -> HTTPResult {
        try await s.api("/fs/add_offline_download", ["urls": urls, "path": path, "tool": tool, "delete_policy": policy], token: t)
    }

    /// What is left in the temp folder's offline downloads.
    static func offlineLeft(_ s: TestServer) -> [String] { s.dir.allEntries("data/temp/offline") }

    @Test func simpleHttpFetchesIntoLocal() async throws {
        let a = Self.bytes(300_000), b = Self.bytes(250_000, seed: 11), c = Self.bytes(1000, seed: 3)
        let origin = try await OriginServer.start(files: ["a.bin": a, "b.bin": b, "c.bin": c])
        defer { Task { await origin.stop() } }
        try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            try await s.setSetting("task_offline_download_max_retry", "0")
            let r = try await Self.add(s, t, [origin.url("/files/a.bin"), origin.url("/chunked/b.bin"), origin.url("/cd/c.bin"),
                                              " " + origin.url("/redirect?to=/files/a.bin") + " ", ""])
            #expect(r.code == 200, "\(r.text)")
            let queued = try #require(r.data["tasks"] as? [[String: Any]])
            #expect(queued.count == 4)
            #expect((queued.first?["name"] as? String) == "download \(origin.url("/files/a.bin")) to (/dl)")
            let done = try await Self.settle(s, t)
            #expect(done.count == 8 && done.allSatisfy { $0["state"] as? Int == 2 }, "\(done)")
            #expect(FileManager.default.contents(atPath: s.files + "/dl/a.bin") == a)
            #expect(FileManager.default.contents(atPath: s.files + "/dl/b.bin") == b)
            // filename* wins over filename.
            #expect(FileManager.default.contents(atPath: s.files + "/dl/€ rates.txt") == c)
            // The redirect's end names the file; the name was taken, so a numbered one.
            #expect(FileManager.default.contents(atPath: s.files + "/dl/a (1).bin") == a)
            // The listing shows them (the cache was told).
            let list = try await s.api("/fs/list", ["path": "/dl"], token: t)
            #expect((list.data["content"] as? [[String: Any]])?.count == 4)
            #expect(Self.offlineLeft(s).isEmpty, "\(Self.offlineLeft(s))")
        }
    }

    @Test func aDroppedConnectionResumesWithRange() async throws {
        let big = Self.bytes(1_000_000)
        let origin = try await OriginServer.start(files: ["big.bin": big])
        defer { Task { await origin.stop() } }
        try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.0/8")
            #expect(try await Self.add(s, t, [origin.url("/drop/big.bin")]).code == 200)
            let done = try await Self.settle(s, t)
            #expect(done.allSatisfy { $0["state"] as? Int == 2 }, "\(done)")
            #expect(FileManager.default.contents(atPath: s.files + "/dl/big.bin") == big)
            let asked = origin.requests.filter { $0.0 == "/drop/big.bin" }.map(\.1)
            // The second request asked for the rest only.
            #expect(asked.count == 2 && asked[0] == "" && asked[1].hasPrefix("bytes=") && asked[1] != "bytes=0-", "\(asked)")
        }
    }

    @Test func internalAddressesAreRefused() async throws {
        let origin = try await OriginServer.start(files: ["a.bin": Self.bytes(1000)])
        defer { Task { await origin.stop() } }
        try await withServer { s in
            let t = try await s.login()
            let p = origin.port
            let refused = [
                "http://127.0.0.1:\(p)/files/a.bin", "http://localhost:\(p)/files/a.bin", "http://10.1.2.3/x",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]:\(p)/files/a.bin", "http://[::ffff:127.0.0.1]:\(p)/files/a.bin",
                "http://[::ffff:7f00:1]:\(p)/files/a.bin", "http://0x7f.1:\(p)/files/a.bin", "http://2130706433:\(p)/files/a.bin",
                "http://192.168.1.1/", "http://[fd00:ec2::254]/", "http://[fe80::1]/", "http://0.0.0.0:\(p)/",
                "http://[64:ff9b:1::a00:1]/",
            ]
            for url in refused {
                let r = try await Self.add(s, t, [url])
                #expect(r.code == 400, "\(url): \(r.text)")
                #expect((r.json["message"] as? String)?.contains("PanList does not fetch from") == true, "\(url): \(r.text)")
            }
            for url in ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://example.com/x", "magnet:?xt=urn:btih:abc", "not a url",
                        "http://8.8.8.8%25.example.com/"] {
                let r = try await Self.add(s, t, [url])
                #expect(r.code == 400, "\(url): \(r.text)")
            }
            // One bad URL among good ones: nothing is queued.
            let mixed = try await Self.add(s, t, ["https://example.com/a", "http://127.0.0.1:\(p)/files/a.bin"])
            #expect(mixed.code == 400)
            #expect(try await Self.offlineTasks(s, t).isEmpty)
            // Allowed: 127.0.0.1 only. A redirect from it to a forbidden place fails the task, and nothing arrives.
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            #expect(try await Self.add(s, t, ["http://[::1]:\(p)/files/a.bin"]).code == 400)
            for to in ["http://169.254.169.254/latest/meta-data/", "http://[::1]:\(p)/files/a.bin", "http://127.0.0.2:\(p)/files/a.bin"] {
                let q = to.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                #expect(try await Self.add(s, t, [origin.url("/redirect?to=\(q)")]).code == 200)
            }
            let done = try await Self.settle(s, t)
            #expect(done.count == 3 && done.allSatisfy { $0["state"] as? Int == 7 }, "\(done)")
            #expect(done.allSatisfy { ($0["error"] as? String)?.contains("PanList does not fetch from") == true }, "\(done)")
            #expect(!FileManager.default.fileExists(atPath: s.files + "/dl"))
            #expect(Self.offlineLeft(s).isEmpty)
            // The setting is checked when saved.
            let bad = try await s.api("/admin/setting/save", [["key": OutboundGuard.settingKey, "value": "10.0.0.0/99"]], token: t)
            #expect(bad.code == 400, "\(bad.text)")
        }
    }

    @Test func permissionAndBadInputChangeNothing() async throws {
        try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            _ = try await s.addUser("bob", password: "bob-pass-1", permission: [.write])
            _ = try await s.addUser("eve", password: "eve-pass-1", permission: [.offlineDownload])
            let bob = try await s.login("bob", "bob-pass-1"), eve = try await s.login("eve", "eve-pass-1")
            let url = "http://127.0.0.1:1/x.bin"
            #expect(try await Self.add(s, bob, [url]).code == 403)
            // The bit without write access to the folder.
            #expect(try await Self.add(s, eve, [url]).code == 403)
            #expect(try await Self.add(s, t, [url], tool: "qBittorrent").code == 400)
            #expect(try await Self.add(s, t, [url], policy: "keep_forever").code == 400)
            #expect(try await Self.add(s, t, [url], tool: "aria2").code != 200)
            #expect(try await Self.add(s, t, [url], tool: "123 Open").code == 400)
            #expect(try await Self.add(s, t, [], tool: "SimpleHttp").code == 400)
            #expect(try await Self.add(s, t, ["  "], tool: "SimpleHttp").code == 400)
            try s.dir.write("data/files/afile", "x")
            let onFile = try await Self.add(s, t, [url], path: "/afile")
            #expect(onFile.code == 400, "\(onFile.text)")
            #expect(try await Self.offlineTasks(s, t).isEmpty)
            // The tools: SimpleHttp always; aria2 once set up; 123 Open where a 123 storage is.
            let tools = try await s.api("/public/offline_download_tools", method: .GET)
            #expect(tools.json["data"] as? [String] == ["SimpleHttp"], "\(tools.text)")
            let setQbit = try await s.api("/admin/setting/set_qbit", ["url": "http://x", "seedtime": "0"], token: t)
            #expect(setQbit.code != 200)
            #expect(try await s.api("/admin/setting/set_aria2", ["uri": "x", "secret": ""], token: t).code == 400)
            #expect(try await s.api("/admin/setting/set_aria2", ["uri": "", "secret": ""], token: bob).code == 403)
        }
    }

    @Test func deletePoliciesAndStreaming() async throws {
        let a = Self.bytes(200_000), slow = Self.bytes(600_000, seed: 5)
        let origin = try await OriginServer.start(files: ["a.bin": a, "slow.bin": slow])
        defer { Task { await origin.stop() } }
        try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            // delete_never: the downloaded file stays in the download's folder.
            #expect(try await Self.add(s, t, [origin.url("/files/a.bin")], path: "/keep", policy: "delete_never").code == 200)
            var done = try await Self.settle(s, t)
            #expect(FileManager.default.contents(atPath: s.files + "/keep/a.bin") == a)
            #expect(Self.offlineLeft(s).contains { $0.hasSuffix("/a.bin") }, "\(Self.offlineLeft(s))")
            _ = try await s.api("/task/offline_download/clear_done", token: t)
            _ = try await s.api("/task/offline_download_transfer/clear_done", token: t)
            await s.state.sweepOfflineFolders()
            #expect(Self.offlineLeft(s).isEmpty)
            // upload_download_stream: straight into the target, nothing in the temp folder at any time.
            #expect(try await Self.add(s, t, [origin.url("/files/a.bin")], path: "/stream", policy: "upload_download_stream").code == 200)
            done = try await Self.settle(s, t)
            #expect(done.allSatisfy { $0["state"] as? Int == 2 }, "\(done)")
            #expect(FileManager.default.contents(atPath: s.files + "/stream/a.bin") == a)
            #expect(!FileManager.default.fileExists(atPath: s.dir.file("data/temp/offline")) || Self.offlineLeft(s).isEmpty)
            // delete_on_upload_failed: the transfer fails (a file is in the way of the folder), the download goes.
            _ = try await s.api("/task/offline_download/clear_done", token: t)
            _ = try await s.api("/task/offline_download_transfer/clear_done", token: t)
            #expect(try await Self.add(s, t, [origin.url("/slow/slow.bin")], path: "/blocked", policy: "delete_on_upload_failed").code == 200)
            try s.dir.write("data/files/blocked", "in the way")
            done = try await Self.settle(s, t)
            let transfer = try #require(done.first { $0["kind"] as? String == "offline_download_transfer" })
            #expect(transfer["state"] as? Int == 7, "\(transfer)")
            #expect(Self.offlineLeft(s).isEmpty, "\(Self.offlineLeft(s))")
        }
    }

    @Test func cancelAndLimitsLeaveNothing() async throws {
        let slow = Self.bytes(3_000_000), small = Self.bytes(5000)
        let origin = try await OriginServer.start(files: ["slow.bin": slow, "small.bin": small])
        defer { Task { await origin.stop() } }
        try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            let r = try await Self.add(s, t, [origin.url("/slow/slow.bin")])
            let id = try #require((r.data["tasks"] as? [[String: Any]])?.first?["id"] as? String)
            #expect(await Cluster.within(.seconds(10)) {
                try await s.api("/task/offline_download/info?tid=\(id)", token: t).data["done_bytes"] as? Int ?? 0 > 100_000
            })
            let running = try await s.api("/task/offline_download/info?tid=\(id)", token: t).data
            #expect(running["total_bytes"] as? Int == 3_000_000 && running["current"] as? String == "slow.bin", "\(running)")
            #expect(try await s.api("/task/offline_download/cancel?tid=\(id)", token: t).code == 200)
            #expect(await Cluster.within(.seconds(5)) {
                try await s.api("/task/offline_download/info?tid=\(id)", token: t).data["state"] as? Int == 4
            })
            try await Task.sleep(for: .milliseconds(200))
            #expect(Self.offlineLeft(s).isEmpty, "\(Self.offlineLeft(s))")
            #expect(!FileManager.default.fileExists(atPath: s.files + "/dl"))
            // A size limit: known length refused at once, unknown length cut as it arrives; nothing left.
            try await s.setSetting("offline_max_size_gb", "0.000004") // about 4 KiB
            _ = try await Self.add(s, t, [origin.url("/files/small.bin"), origin.url("/chunked/small.bin")])
            let done = try await Self.settle(s, t)
            let failed = done.filter { $0["state"] as? Int == 7 }
            #expect(failed.count == 2 && failed.allSatisfy { ($0["error"] as? String)?.contains("offline_max_size_gb") == true }, "\(done)")
            #expect(Self.offlineLeft(s).isEmpty)
            // Streamed straight into the folder, the unknown length is cut as it arrives too.
            _ = try await s.api("/task/offline_download/clear_done", token: t)
            _ = try await Self.add(s, t, [origin.url("/chunked/small.bin")], policy: "upload_download_stream")
            let streamed = try await Self.settle(s, t).filter { $0["state"] as? Int == 7 }
            #expect(streamed.count == 1 && (streamed.first?["error"] as? String)?.contains("offline_max_size_gb") == true, "\(streamed)")
            #expect(s.dir.allEntries("files/dl").isEmpty, "\(s.dir.allEntries("files/dl"))")
            _ = try await s.api("/task/offline_download_transfer/clear_done", token: t)
            // A 404 fails at once (no retries), with the server's word.
            try await s.setSetting("offline_max_size_gb", "0")
            _ = try await s.api("/task/offline_download/clear_done", token: t)
            _ = try await Self.add(s, t, [origin.url("/missing")])
            let missing = try await Self.settle(s, t)
            #expect(missing.count == 1 && (missing[0]["error"] as? String)?.contains("404") == true, "\(missing)")
            #expect(origin.requests.filter { $0.0 == "/missing" }.count == 1)
        }
    }

    @Test func aServerNamedPathStaysOneName() async throws {
        let data = Self.bytes(2000)
        let origin = try await OriginServer.start(files: ["x.bin": data])
        defer { Task { await origin.stop() } }
        try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            #expect(try await Self.add(s, t, [origin.url("/evil/x.bin")], path: "/in").code == 200)
            _ = try await Self.settle(s, t)
            #expect(FileManager.default.contents(atPath: s.files + "/in/evil.txt") == data)
            #expect(!FileManager.default.fileExists(atPath: s.dir.file("data/evil.txt")) && !FileManager.default.fileExists(atPath: s.files + "/evil.txt"))
            #expect(!FileManager.default.fileExists(atPath: s.dir.file("evil.txt")) && !FileManager.default.fileExists(atPath: s.dir.file("data/temp/evil.txt")))
        }
    }

    @Test func fileNames() {
        let u = URL(string: "http://h/dir/na%20me.iso?x=1")!
        #expect(GuardedHTTP.fileName(disposition: nil, url: u, fallback: "f") == "na me.iso")
        #expect(GuardedHTTP.fileName(disposition: "attachment; filename=\"a\\\"b.txt\"", url: u, fallback: "f") == "a\"b.txt")
        #expect(GuardedHTTP.fileName(disposition: "inline; filename*=UTF-8''%E4%B8%AD.txt; filename=x.txt", url: u, fallback: "f") == "中.txt")
        #expect(GuardedHTTP.fileName(disposition: "attachment; filename=..", url: URL(string: "http://h/")!, fallback: "f") == "f")
        #expect(GuardedHTTP.fileName(disposition: "attachment; filename=\"..\\\\..\\\\win.ini\"", url: u, fallback: "f") == "win.ini")
        #expect(GuardedHTTP.safeName("a\u{0}b\nc") == "abc")
        let g = OutboundGuard()
        for a in ["127.0.0.1", "::1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "fd00:ec2::254", "100.64.0.1"] {
            #expect(g.refusal(IPAddress(a)!) != nil, "\(a)")
        }
        for a in ["8.8.8.8", "2606:4700::1111", "1.1.1.1"] { #expect(g.refusal(IPAddress(a)!) == nil, "\(a)") }
        #expect(throws: FSError.self) { try OutboundGuard(setting: "300.1.1.1") }
        #expect((try? OutboundGuard(setting: "127.0.0.1, 10.0.0.0/8"))?.refusal(IPAddress("10.9.9.9")!) == nil)
    }

    @Test(.enabled(if: Aria2Process.enabled)) func aria2FetchesAndFollows() async throws {
        let a = Self.bytes(400_000), m = Self.bytes(123_456, seed: 9), m2 = Self.bytes(54_321, seed: 21), slow = Self.bytes(3_000_000, seed: 4)
        let origin = try await OriginServer.start(files: ["a.bin": a, "m.bin": m, "m2.bin": m2, "slow.bin": slow])
        defer { Task { await origin.stop() } }
        try await Aria2Process.with { aria2 in try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            // A wrong secret: said, and the settings stay.
            let wrong = try await s.api("/admin/setting/set_aria2", ["uri": aria2.uri, "secret": "nope"], token: t)
            #expect(wrong.code != 200 && (wrong.json["message"] as? String)?.contains("secret") == true, "\(wrong.text)")
            let set = try await s.api("/admin/setting/set_aria2", ["uri": aria2.uri, "secret": aria2.secret], token: t)
            #expect(set.json["data"] as? String == "aria2 version: 1.36.0" || (set.json["data"] as? String)?.hasPrefix("aria2 version: ") == true, "\(set.text)")
            let tools = try await s.api("/public/offline_download_tools", method: .GET)
            #expect(tools.json["data"] as? [String] == ["SimpleHttp", "aria2"], "\(tools.text)")
            // A Metalink: aria2 fetches it, then follows it to the file it names (a second download id).
            let meta = """
                <?xml version="1.0" encoding="UTF-8"?>
                <metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="m.bin"><size>\(m.count)</size>
                <url>\(origin.url("/files/m.bin"))</url></file>
                <file name="m2.bin"><size>\(m2.count)</size><url>\(origin.url("/files/m2.bin"))</url></file></metalink>
                """
            // A Metalink naming an internal address not allowed (127.0.0.2; only 127.0.0.1 is): refused before aria2
            // is let fetch it (the error is PanList's, not a failed connection).
            let sneaky = """
                <?xml version="1.0" encoding="UTF-8"?>
                <metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="s.bin"><size>\(m.count)</size>
                <url>http://127.0.0.2:\(origin.port)/files/m.bin</url></file></metalink>
                """
            let metaOrigin = try await OriginServer.start(files: ["list.meta4": Data(meta.utf8), "sneaky.meta4": Data(sneaky.utf8)])
            defer { Task { await metaOrigin.stop() } }
            let r = try await Self.add(s, t, [origin.url("/files/a.bin"), metaOrigin.url("/files/list.meta4")], path: "/aria", tool: "aria2")
            #expect(r.code == 200, "\(r.text)")
            let done = try await Self.settle(s, t)
            #expect(done.count == 5 && done.allSatisfy { $0["state"] as? Int == 2 }, "\(done)")
            #expect(FileManager.default.contents(atPath: s.files + "/aria/a.bin") == a)
            #expect(FileManager.default.contents(atPath: s.files + "/aria/m.bin") == m)
            #expect(FileManager.default.contents(atPath: s.files + "/aria/m2.bin") == m2)
            let before = origin.requests.count
            #expect(try await Self.add(s, t, [metaOrigin.url("/files/sneaky.meta4")], path: "/aria", tool: "aria2").code == 200)
            let refused = try await Self.settle(s, t).filter { ($0["name"] as? String)?.contains("sneaky") == true }
            #expect(refused.count == 1 && refused.first?["state"] as? Int == 7, "\(refused)")
            #expect((refused.first?["error"] as? String)?.contains("PanList does not fetch from") == true, "\(refused)")
            #expect(origin.requests.count == before, "\(origin.requests.dropFirst(before))")
            #expect(!FileManager.default.fileExists(atPath: s.files + "/aria/s.bin"))
            // A server that redirects aria2's GET (not PanList's HEAD) to an address not allowed: aria2's own
            // connection goes through PanList's guarded proxy, which refuses it; the task says why.
            #expect(try await Self.add(s, t, [origin.url("/two-faced/a.bin")], path: "/aria", tool: "aria2").code == 200)
            let twoFaced = try await Self.settle(s, t).filter { ($0["name"] as? String)?.contains("two-faced") == true }
            #expect(twoFaced.count == 1 && twoFaced.first?["state"] as? Int == 7, "\(twoFaced)")
            #expect((twoFaced.first?["error"] as? String)?.contains("PanList does not fetch from 127.0.0.2") == true, "\(twoFaced)")
            for id in try await s.tasks("offline_download", "done", token: t).compactMap({ $0["id"] as? String }) {
                _ = try await s.api("/task/offline_download/delete?tid=\(id)", token: t)
            }
            for id in try await s.tasks("offline_download_transfer", "done", token: t).compactMap({ $0["id"] as? String }) {
                _ = try await s.api("/task/offline_download_transfer/delete?tid=\(id)", token: t)
            }
            #expect(!FileManager.default.fileExists(atPath: s.files + "/aria/list.meta4"))
            #expect(Self.offlineLeft(s).isEmpty, "\(Self.offlineLeft(s))")
            // aria2 forgot them.
            let client = Aria2Client(uri: aria2.uri, secret: aria2.secret)
            #expect((try await client.call("aria2.tellStopped", [0, 100]) as? [Any])?.isEmpty == true)
            // Cancel: aria2 stops, nothing left anywhere.
            let c = try await Self.add(s, t, [origin.url("/slow/slow.bin")], path: "/aria", tool: "aria2")
            let id = try #require((c.data["tasks"] as? [[String: Any]])?.first?["id"] as? String)
            #expect(await Cluster.within(.seconds(10)) {
                try await s.api("/task/offline_download/info?tid=\(id)", token: t).data["done_bytes"] as? Int ?? 0 > 50_000
            })
            #expect(try await s.api("/task/offline_download/cancel?tid=\(id)", token: t).code == 200)
            #expect(await Cluster.within(.seconds(5)) {
                try await s.api("/task/offline_download/info?tid=\(id)", token: t).data["state"] as? Int == 4
            })
            #expect(await Cluster.within(.seconds(5)) {
                let active = try await client.call("aria2.tellActive", []) as? [Any] ?? [1]
                let stopped = try await client.call("aria2.tellStopped", [0, 100]) as? [Any] ?? [1]
                return active.isEmpty && stopped.isEmpty && Self.offlineLeft(s).isEmpty
            }, "\(Self.offlineLeft(s))")
            #expect(!FileManager.default.fileExists(atPath: s.files + "/aria/slow.bin"))
            // A source that stops sending: the download fails after offline_stall_minutes, aria2 lets go of it.
            try await s.setSetting("offline_stall_minutes", "0.05")   // 3 s
            try await s.setSetting("task_offline_download_max_retry", "0")
            let st = try await Self.add(s, t, [origin.url("/stall/slow.bin")], path: "/aria", tool: "aria2")
            let sid = try #require((st.data["tasks"] as? [[String: Any]])?.first?["id"] as? String)
            #expect(await Cluster.within(.seconds(30)) {
                try await s.api("/task/offline_download/info?tid=\(sid)", token: t).data["state"] as? Int == 7
            })
            let stalled = try await s.api("/task/offline_download/info?tid=\(sid)", token: t).data
            #expect((stalled["error"] as? String)?.contains("no progress for 3 seconds") == true, "\(stalled)")
            #expect(await Cluster.within(.seconds(5)) {
                let active = try await client.call("aria2.tellActive", []) as? [Any] ?? [1]
                return active.isEmpty && Self.offlineLeft(s).isEmpty
            }, "\(Self.offlineLeft(s))")
            try await s.setSetting("offline_stall_minutes", "30")
            try await s.setSetting("task_offline_download_max_retry", "2")
            // Internal addresses are refused for aria2 too (before aria2 hears of them).
            try await s.setSetting(OutboundGuard.settingKey, "")
            #expect(try await Self.add(s, t, [origin.url("/files/a.bin")], tool: "aria2").code == 400)
            #expect(try await Self.add(s, t, ["ftp://127.0.0.1/x"], tool: "aria2").code == 400)
        } }
    }

    /// A .torrent link: aria2 follows it (in memory) and fetches the file it describes from its web seed (BEP 19,
    /// `url-list`, here the loopback origin: no tracker or peer is reachable offline); the torrent's folder
    /// arrives in the target as it is in the torrent, and nothing is left in aria2 or the temp folder.
    @Test(.enabled(if: Aria2Process.enabled)) func aria2TorrentWithWebSeed() async throws {
        let one = Self.bytes(300_000, seed: 5), two = Self.bytes(70_000, seed: 13)
        let origin = try await OriginServer.start(files: ["one.bin": one, "two.bin": two])
        defer { Task { await origin.stop() } }
        // A multi-file torrent "pack" (pack/one.bin, pack/sub/two.bin) whose web seed is the origin's /seed/ folder.
        let piece = 65_536
        let joined = one + two
        var pieces = Data()
        var at = 0
        while at < joined.count {
            pieces += Data(Insecure.SHA1.hash(data: joined[at..<min(at + piece, joined.count)]))
            at += piece
        }
        func str(_ s: String) -> Data { Data("\(s.utf8.count):\(s)".utf8) }
        func bytes(_ d: Data) -> Data { Data("\(d.count):".utf8) + d }
        func int(_ i: Int) -> Data { Data("i\(i)e".utf8) }
        func list(_ items: [Data]) -> Data { Data("l".utf8) + items.reduce(Data(), +) + Data("e".utf8) }
        func dict(_ pairs: [(String, Data)]) -> Data {   // keys sorted, as bencoding wants
            Data("d".utf8) + pairs.sorted { $0.0 < $1.0 }.map { str($0.0) + $0.1 }.reduce(Data(), +) + Data("e".utf8)
        }
        let info = dict([("name", str("pack")), ("piece length", int(piece)), ("pieces", bytes(pieces)),
                         ("files", list([dict([("length", int(one.count)), ("path", list([str("one.bin")]))]),
                                         dict([("length", int(two.count)), ("path", list([str("sub"), str("two.bin")]))])]))])
        let torrent = dict([("info", info), ("url-list", str(origin.url("/seed/")))])
        let torrentOrigin = try await OriginServer.start(files: ["pack.torrent": torrent])
        defer { Task { await torrentOrigin.stop() } }
        try await Aria2Process.with { aria2 in try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            let set = try await s.api("/admin/setting/set_aria2", ["uri": aria2.uri, "secret": aria2.secret], token: t)
            #expect(set.code == 200, "\(set.text)")
            let r = try await Self.add(s, t, [torrentOrigin.url("/files/pack.torrent")], path: "/bt", tool: "aria2")
            #expect(r.code == 200, "\(r.text)")
            let done = try await Self.settle(s, t, limit: .seconds(60))
            #expect(done.allSatisfy { $0["state"] as? Int == 2 }, "\(done)")
            #expect(FileManager.default.contents(atPath: s.files + "/bt/pack/one.bin") == one)
            #expect(FileManager.default.contents(atPath: s.files + "/bt/pack/sub/two.bin") == two)
            #expect(!FileManager.default.fileExists(atPath: s.files + "/bt/pack.torrent"))
            #expect(Self.offlineLeft(s).isEmpty, "\(Self.offlineLeft(s))")
            let client = Aria2Client(uri: aria2.uri, secret: aria2.secret)
            #expect(await Cluster.within(.seconds(5)) {
                let active = try await client.call("aria2.tellActive", []) as? [Any] ?? [1]
                let stopped = try await client.call("aria2.tellStopped", [0, 100]) as? [Any] ?? [1]
                return active.isEmpty && stopped.isEmpty
            })
            // A user who may write to /pub but does not know /pub/pack's folder password: the torrent's folder
            // would land there; the download fails, nothing arrives, nothing is left.
            #expect(try await s.api("/fs/mkdir", ["path": "/pub/pack"], token: t).code == 200)
            #expect(try await s.api("/admin/meta/create", ["path": "/pub/pack", "password": "pack-pw", "p_sub": true], token: t).code == 200)
            _ = try await s.addUser("tor", password: "tor-pass-1", permission: [.write, .offlineDownload])
            let u = try await s.login("tor", "tor-pass-1")
            #expect(try await Self.add(s, u, [torrentOrigin.url("/files/pack.torrent")], path: "/pub", tool: "aria2").code == 200)
            let failed = try await Self.settle(s, u, limit: .seconds(60))
            #expect(failed.count == 1 && failed.first?["state"] as? Int == 7, "\(failed)")
            #expect((failed.first?["error"] as? String)?.contains("folder password") == true, "\(failed)")
            #expect(s.dir.allEntries("files/pub/pack").isEmpty, "\(s.dir.allEntries("files/pub/pack"))")
            #expect(await Cluster.within(.seconds(5)) { Self.offlineLeft(s).isEmpty }, "\(Self.offlineLeft(s))")
        } }
    }

    /// An ftp link through aria2: its control and data connections go through the guarded proxy, the file lands.
    @Test(.enabled(if: Aria2Process.enabled && FTPServer.available)) func aria2FetchesFTP() async throws {
        let data = Self.bytes(200_000, seed: 17)
        let ftp = try await FTPServer.start(files: ["f.bin": data])
        defer { ftp.stop() }
        try await Aria2Process.with { aria2 in try await withServer { s in
            let t = try await s.login()
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            let set = try await s.api("/admin/setting/set_aria2", ["uri": aria2.uri, "secret": aria2.secret], token: t)
            #expect(set.code == 200, "\(set.text)")
            #expect(try await Self.add(s, t, ["ftp://127.0.0.1:\(ftp.port)/f.bin"], path: "/ftp", tool: "aria2").code == 200)
            let done = try await Self.settle(s, t, limit: .seconds(60))
            #expect(done.count == 2 && done.allSatisfy { $0["state"] as? Int == 2 }, "\(done)")
            #expect(FileManager.default.contents(atPath: s.files + "/ftp/f.bin") == data)
            #expect(Self.offlineLeft(s).isEmpty, "\(Self.offlineLeft(s))")
        } }
    }
}
