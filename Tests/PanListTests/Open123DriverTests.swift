import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import Open123Emulator
import Testing
@testable import PanListCore
@testable import PanListServer

/// A PanList server with a `123 Open` storage at /123 on a fresh emulator (each test its own client ID).
func withCloud(_ configure: (inout EmulatorConfig) -> Void = { _ in }, server adjust: (@Sendable (inout PanListConfig) -> Void)? = nil,
               _ body: (TestServer, Open123Emulator, String) async throws -> Void) async throws {
    var c = EmulatorConfig()
    c.clientID = "client-" + UUID().uuidString.prefix(8)
    c.rateLimits = .off
    c.sliceSize = 1024
    configure(&c)
    let emu = try await Open123Emulator.start(config: c)
    do {
        try await withServer(adjust: adjust) { s in
            let t = try await s.login()
            let addition = try String(decoding: JSONSerialization.data(withJSONObject: [
                "ClientID": c.clientID, "ClientSecret": c.clientSecret, "base_url": emu.baseURL]), as: UTF8.self)
            let r = try await s.api("/admin/storage/create", ["mount_path": "/123", "driver": "123 Open", "addition": addition, "cache_expiration": 30], token: t)
            #expect(r.code == 200, "\(r.text)")
            try await body(s, emu, t)
        }
    } catch {
        await emu.stop()
        throw error
    }
    await emu.stop()
}

/// A token for the emulator's own API (as another 123 client).
func emulatorToken(_ emu: Open123Emulator, _ s: TestServer) async throws -> String {
    var tr = HTTPClientRequest(url: emu.baseURL + "/api/v1/access_token")
    tr.method = .POST
    tr.headers.add(name: "Platform", value: "open_platform")
    tr.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["clientID": emu.config.clientID, "clientSecret": emu.config.clientSecret])))
    let tres = try await s.client.execute(tr, timeout: .seconds(10))
    let tjson = try JSONSerialization.jsonObject(with: Data(try await tres.body.collect(upTo: 1 << 20).readableBytesView)) as? [String: Any]
    return ((tjson?["data"] as? [String: Any])?["accessToken"] as? String) ?? ""
}

func emulatorMkdir(_ emu: Open123Emulator, _ s: TestServer, token: String, parent: Int64, name: String) async throws -> Int64 {
    var req = HTTPClientRequest(url: emu.baseURL + "/upload/v1/file/mkdir")
    req.method = .POST
    req.headers.add(name: "Platform", value: "open_platform")
    req.headers.add(name: "Authorization", value: "Bearer " + token)
    req.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["name": name, "parentID": parent])))
    let res = try await s.client.execute(req, timeout: .seconds(10))
    let json = try JSONSerialization.jsonObject(with: Data(try await res.body.collect(upTo: 1 << 20).readableBytesView)) as? [String: Any]
    return ((json?["data"] as? [String: Any])?["dirID"] as? NSNumber)?.int64Value ?? 0
}

/// Uploads a file straight into the emulator (its single-step upload), as another 123 client would.
func emulatorUpload(_ emu: Open123Emulator, _ s: TestServer, parent: Int64, name: String, _ content: Data) async throws -> Int64 {
    let token = try await emulatorToken(emu, s)
    let boundary = "b\(UUID().uuidString.prefix(8))"
    var body = Data()
    for (k, v) in [("parentFileID", String(parent)), ("filename", name), ("etag", md5Hex(content)), ("size", String(content.count)), ("duplicate", "2")] {
        body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n".utf8)
    }
    body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\n\r\n".utf8) + content + Data("\r\n--\(boundary)--\r\n".utf8)
    var req = HTTPClientRequest(url: emu.baseURL + "/upload/v2/file/single/create")
    req.method = .POST
    req.headers.add(name: "Platform", value: "open_platform")
    req.headers.add(name: "Authorization", value: "Bearer " + token)
    req.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
    req.body = .bytes(ByteBuffer(bytes: body))
    let res = try await s.client.execute(req, timeout: .seconds(10))
    let json = try JSONSerialization.jsonObject(with: Data(try await res.body.collect(upTo: 1 << 20).readableBytesView)) as? [String: Any]
    return ((json?["data"] as? [String: Any])?["fileID"] as? NSNumber)?.int64Value ?? 0
}

@Suite("123 Open driver through PanList's API, against the emulator")
struct Open123DriverTests {
    @Test func quotaIsShownWithTheStorage() async throws {
        try await withCloud({ $0.spacePermanent = 5 << 40 }) { s, emu, t in
            _ = try await emu.seed(path: "/a.bin", data: Data(repeating: 7, count: 3000))
            // The mount root in its parent's listing carries the space (OpenList's mount_details).
            let root = try await s.api("/fs/list", ["path": "/"], token: t)
            let mount = try #require((root.data["content"] as? [[String: Any]])?.first { $0["name"] as? String == "123" })
            let details = try #require(mount["mount_details"] as? [String: Any])
            #expect(details["total_space"] as? Int64 == 5 << 40 && details["used_space"] as? Int64 == 3000)
            #expect(details["free_space"] as? Int64 == (5 << 40) - 3000 && details["driver_name"] as? String == "123 Open")
            // fs/get on the mount root, and the admin's storage list, show the same.
            let got = try await s.api("/fs/get", ["path": "/123"], token: t)
            #expect((got.data["mount_details"] as? [String: Any])?["total_space"] as? Int64 == 5 << 40)
            let storages = try await s.api("/admin/storage/list", token: t, method: .GET)
            let rows = try #require(storages.data["content"] as? [[String: Any]])
            let row = try #require(rows.first { $0["mount_path"] as? String == "/123" })
            #expect((row["mount_details"] as? [String: Any])?["used_space"] as? Int64 == 3000)
            // Ordinary folders carry none; a second listing is served from the cache (no new user/info call).
            await emu.resetCallCounts()
            let again = try await s.api("/fs/list", ["path": "/"], token: t)
            #expect((again.data["content"] as? [[String: Any]])?.first { $0["name"] as? String == "123" }?["mount_details"] != nil)
            #expect(await emu.callCounts()["/api/v1/user/info"] == nil)
            let inner = try await s.api("/fs/list", ["path": "/123"], token: t)
            #expect((inner.data["content"] as? [[String: Any]])?.allSatisfy { $0["mount_details"] == nil } == true)
            // The daily download quota used up (code 5113): a download says so in words, not only in 123's Chinese.
            await emu.setDownloadQuota(daily: 10)
            let refused = try await s.request(.GET, "/d/123/a.bin", headers: [("Authorization", t)])
            #expect(refused.status >= 400 && refused.text.contains("daily download traffic quota") && refused.text.contains("5113"), "\(refused.text)")
        }
    }

    @Test func browseAndManage() async throws {
        try await withCloud { s, emu, t in
            #expect(try await s.api("/fs/mkdir", ["path": "/123/docs/deep"], token: t).code == 200)
            let list = try await s.api("/fs/list", ["path": "/123"], token: t)
            #expect(list.code == 200 && list.data["provider"] as? String == "123 Open")
            #expect((list.data["content"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["docs"])
            #expect(try await s.api("/fs/rename", ["path": "/123/docs/deep", "name": "deeper"], token: t).code == 200)
            #expect(try await s.api("/fs/mkdir", ["path": "/123/other"], token: t).code == 200)
            #expect(try await s.api("/fs/move", ["src_dir": "/123/docs", "dst_dir": "/123/other", "names": ["deeper"]], token: t).code == 200)
            #expect(try await s.api("/fs/copy", ["src_dir": "/123", "dst_dir": "/123/docs", "names": ["other"]], token: t).code == 200)
            let copied = try await s.api("/fs/list", ["path": "/123/docs/other"], token: t)
            #expect((copied.data["content"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["deeper"])
            #expect(try await s.api("/fs/remove", ["dir": "/123", "names": ["other"]], token: t).code == 200)
            let after = try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t)
            #expect((after.data["content"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["docs"])  // trashed items hidden
            let missing = try await s.api("/fs/get", ["path": "/123/nope"], token: t)
            #expect(missing.code == 500 && missing.message.contains("object not found"))
            let details = try await s.state.fs.details("/123")
            #expect((details?.totalSpace ?? 0) > 0)
            _ = emu
        }
    }

    @Test func pagingAcross250EntriesAndOneTokenForConcurrentCalls() async throws {
        try await withCloud { s, emu, t in
            let many = try await s.state.fs.makeDir("/123/many")
            // Fill the folder as another client would (the emulator's own API, not paced by PanList).
            let other = try await emulatorToken(emu, s)
            for i in 0..<251 { _ = try await emulatorMkdir(emu, s, token: other, parent: Int64(many.id) ?? 0, name: String(format: "f%03d", i)) }
            _ = try await s.api("/fs/get", ["path": "/123/many"], token: t)  // the parent's listing is now cached
            await emu.resetCallCounts()
            let r = try await s.api("/fs/list", ["path": "/123/many"], token: t)
            #expect((r.data["content"] as? [[String: Any]])?.count == 251)
            #expect((r.data["content"] as? [[String: Any]])?.last?["name"] as? String == "f250")
            #expect(await emu.callCounts()["/api/v2/file/list"] == 3)
            // Served from the list cache: no upstream call.
            _ = try await s.api("/fs/list", ["path": "/123/many"], token: t)
            #expect(await emu.callCounts()["/api/v2/file/list"] == 3)
            // The token expires after the first of the three pages: the listing still completes, with one new
            // token and the second page asked for again.
            await emu.resetCallCounts()
            await emu.expireTokens(after: 1, of: "/api/v2/file/list")
            let midway = try await s.api("/fs/list", ["path": "/123/many", "refresh": true], token: t)
            #expect((midway.data["content"] as? [[String: Any]])?.count == 251)
            #expect(await emu.callCounts()["/api/v1/access_token"] == 1)
            #expect(await emu.callCounts()["/api/v2/file/list"] == 4)
            // Ten concurrent requests with an expired token: exactly one access_token call.
            await emu.expireAllTokens()
            await emu.resetCallCounts()
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 {
                    group.addTask { try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t).code }
                }
                for try await code in group { #expect(code == 200) }
            }
            #expect(await emu.callCounts()["/api/v1/access_token"] == 1)
        }
    }

    @Test func evictionExpiryAnd429AreSurvived() async throws {
        try await withCloud { s, emu, t in
            _ = try await s.state.fs.makeDir("/123/a")
            await emu.revokeAllTokens()
            #expect(try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t).code == 200)
            await emu.failNextRequests(3)
            #expect(try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t).code == 200)
            await emu.failNextRequests(50)
            let busy = try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t)
            #expect(busy.code == 429 && busy.message.contains("rate-limiting"))
            await emu.failNextRequests(0)
        }
    }

    @Test func badCredentialsShowInTheStatusAndNothingElseBreaks() async throws {
        try await withCloud { s, emu, t in
            let addition = try String(decoding: JSONSerialization.data(withJSONObject: [
                "ClientID": emu.config.clientID, "ClientSecret": "wrong", "base_url": emu.baseURL]), as: UTF8.self)
            let r = try await s.api("/admin/storage/create", ["mount_path": "/bad", "driver": "123 Open", "addition": addition], token: t)
            #expect(r.code == 500 && r.message.contains("clientSecret is invalid"))
            #expect(try await s.api("/fs/list", ["path": "/123"], token: t).code == 200)
        }
    }

    @Test func uploadsSlicesInstantPendingRetriesAndBadMD5() async throws {
        try await withCloud { s, emu, t in
            let content = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            // Multi-slice (1 KiB slices), no client MD5; one slice fails once and is retried; completion pending for 3 polls.
            await emu.failNextSlices(1)
            await emu.setCompletePending(polls: 3)
            let up = try await s.put("/123/up/a.bin", content, token: t)
            #expect(up.code == 200, "\(up.text)")
            await emu.setCompletePending(polls: 0)
            let get = try await s.api("/fs/get", ["path": "/123/up/a.bin"], token: t)
            #expect((get.data["hash_info"] as? [String: Any])?["md5"] as? String == md5Hex(content) && get.data["size"] as? Int == 5000)
            // The bytes in the cloud are the bytes sent.
            let raw = try #require(get.data["raw_url"] as? String)
            let location = try #require(try await s.request(.GET, String(raw.dropFirst(s.base.count))).header("Location"))
            var req = HTTPClientRequest(url: location)
            req.method = .GET
            #expect(Data(try await s.client.execute(req, timeout: .seconds(10)).body.collect(upTo: 1 << 20).readableBytesView) == content)
            // A second upload: the driver has learned the slice size, so slice MD5s come from the spooling pass.
            let other = Data((0..<7000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
            #expect(try await s.put("/123/up/a2.bin", other, token: t).code == 200)
            let raw2 = try #require(try await s.api("/fs/get", ["path": "/123/up/a2.bin"], token: t).data["raw_url"] as? String)
            var req2 = HTTPClientRequest(url: try #require(try await s.request(.GET, String(raw2.dropFirst(s.base.count))).header("Location")))
            req2.method = .GET
            #expect(Data(try await s.client.execute(req2, timeout: .seconds(10)).body.collect(upTo: 1 << 20).readableBytesView) == other)
            // With the client's MD5, and the same content again: an instant upload (no slice sent).
            await emu.resetCallCounts()
            let again = try await s.put("/123/up/b.bin", content, token: t, extra: [("X-File-Md5", md5Hex(content))])
            #expect(again.code == 200)
            #expect(await emu.callCounts()["/upload/v2/file/slice"] == nil)
            // A wrong client MD5: a clear error and no file.
            let bad = try await s.put("/123/up/c.bin", Data("other".utf8), token: t, extra: [("X-File-Md5", md5Hex(content))])
            #expect(bad.code == 400 && bad.message.contains("MD5"))
            let names = (try await s.api("/fs/list", ["path": "/123/up", "refresh": true], token: t).data["content"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(names == ["a.bin", "a2.bin", "b.bin"])
            // Over 10 GiB: refused before any byte is sent.
            var big = HTTPClientRequest(url: s.base + "/api/fs/put")
            big.method = .PUT
            big.headers.add(name: "Authorization", value: t)
            big.headers.add(name: "File-Path", value: "/123/up/huge.bin")
            big.headers.add(name: "X-File-Size", value: String(Int64(11) << 30))
            big.body = .stream(ByteStream.buffers([ByteBuffer(string: "x")]), length: .unknown)
            let hugeRes = try await s.client.execute(big, timeout: .seconds(10))
            #expect(String(buffer: try await hugeRes.body.collect(upTo: 1 << 20)).contains("10 GiB"))
            // No spool file is left behind.
            #expect(s.dir.allEntries("data/temp").filter { $0 != ".panlist-temp" }.isEmpty)
        }
    }

    @Test func signedDirectLinksAndClearMessages() async throws {
        try await withCloud({ $0.uid = 4242 }) { s, emu, t in
            _ = try await emu.seed(path: "/pub/sub/视频.mp4", data: Data("direct bytes".utf8))
            _ = try await emu.seed(path: "/private/x.txt", data: Data("x".utf8))
            let listing = try await s.state.fs.list("/123")
            let pub = try #require(listing.objects.first { $0.name == "pub" })
            try await emu.enableDirectLink(folderID: Int64(pub.id) ?? 0)
            await emu.setPrivateKey("k3y")
            // A second storage on the same drive with DirectLink and the private key.
            let addition = try String(decoding: JSONSerialization.data(withJSONObject: [
                "ClientID": emu.config.clientID, "ClientSecret": emu.config.clientSecret, "base_url": emu.baseURL,
                "DirectLink": true, "DirectLinkPrivateKey": "k3y", "DirectLinkValidDuration": 30]), as: UTF8.self)
            #expect(try await s.api("/admin/storage/create", ["mount_path": "/direct", "driver": "123 Open", "addition": addition], token: t).code == 200)
            let (link, _, _) = try await s.state.fs.link("/direct/pub/sub/视频.mp4")
            guard case .url(let url, _, let expires) = link else { Issue.record("not a URL link"); return }
            #expect(url.hasPrefix(emu.baseURL + "/4242/pub/sub/") && url.contains("auth_key="))
            #expect((expires?.timeIntervalSinceNow ?? 0) > 25 * 60)
            var req = HTTPClientRequest(url: url)
            req.method = .GET
            let ok = try await s.client.execute(req, timeout: .seconds(10))
            let okBody = try await ok.body.collect(upTo: 1 << 20)
            #expect(ok.status == .ok && Data(okBody.readableBytesView) == Data("direct bytes".utf8))
            // An expired signature is refused by the CDN.
            let stale = url.replacingOccurrences(of: #"auth_key=\d+"#, with: "auth_key=1000", options: .regularExpression)
            var req2 = HTTPClientRequest(url: stale)
            req2.method = .GET
            #expect(try await s.client.execute(req2, timeout: .seconds(10)).status == .forbidden)
            // Outside a direct-link space: a message that says what to do.
            do {
                _ = try await s.state.fs.link("/direct/private/x.txt")
                Issue.record("a link outside the direct-link space was given")
            } catch let e as FSError {
                #expect(e.message.contains("direct-link space"))
            }
        }
    }

    @Test func theTokenSurvivesARestart() async throws {
        try await withCloud { s, emu, t in
            _ = try await s.api("/fs/list", ["path": "/123"], token: t)
            let stored = try await s.state.store.storages().first { $0.driver == "123 Open" }
            await emu.resetCallCounts()
            // A new driver instance (as after a restart) reads the token from the store, not from 123.
            await s.state.fs.unload(id: stored?.id ?? 0)
            let fresh = await s.state.fs.load(stored!)
            #expect(fresh?.isWorking == true)
            _ = try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t)
            #expect(await emu.callCounts()["/api/v1/access_token"] == nil)
            let saved = try await s.state.store.driverState("123open.token." + emu.baseURL + " " + emu.config.clientID + " " +
                Insecure.MD5.hash(data: Data(emu.config.clientSecret.utf8)).prefix(4).map { String(format: "%02x", $0) }.joined())
            #expect(saved?.contains("token") == true)
        }
    }

    @Test func secretsAreMaskedAndKeptOnUpdate() async throws {
        try await withCloud { s, emu, t in
            let list = try await s.api("/admin/storage/list", token: t, method: .GET)
            #expect(!list.text.contains(emu.config.clientSecret))
            let storage = try #require((list.data["content"] as? [[String: Any]])?.first { $0["driver"] as? String == "123 Open" })
            let addition = try #require(storage["addition"] as? String)
            #expect(addition.contains("******") && addition.contains(emu.config.clientID))
            var updated = storage
            updated["remark"] = "edited without retyping the secret"
            let r = try await s.api("/admin/storage/update", updated, token: t)
            #expect(r.code == 200, "\(r.text)")
            #expect(try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t).code == 200)
            let stored = try #require(try await s.state.store.storages().first { $0.driver == "123 Open" })
            #expect(stored.addition.contains(emu.config.clientSecret))
        }
    }

    @Test func downloadRedirectsToTheCDN() async throws {
        try await withCloud { s, emu, t in
            // Put a file in the cloud through the emulator's own upload API (the driver's upload comes later).
            _ = try await s.state.fs.makeDir("/123/media")
            let listing = try await s.state.fs.list("/123")
            let mediaID = try #require(listing.objects.first { $0.name == "media" }?.id)
            let content = Data("cloud bytes".utf8)
            let fid = try await emulatorUpload(emu, s, parent: Int64(mediaID) ?? 0, name: "a.txt", content)
            #expect(fid > 0)
            let get = try await s.api("/fs/get", ["path": "/123/media/a.txt"], token: t)
            #expect((get.data["hash_info"] as? [String: Any])?["md5"] as? String == md5Hex(content))
            let raw = try #require(get.data["raw_url"] as? String)
            #expect(raw.contains("/d/123/media/a.txt?sign="))
            let redirect = try await s.request(.GET, String(raw.dropFirst(s.base.count)))
            #expect(redirect.status == 302)
            let location = try #require(redirect.header("Location"))
            #expect(location.hasPrefix(emu.baseURL + "/cdn/"))
            var req = HTTPClientRequest(url: location)
            req.method = .GET
            let res = try await s.client.execute(req, timeout: .seconds(10))
            #expect(Data(try await res.body.collect(upTo: 1 << 20).readableBytesView) == content)
        }
    }
}
