import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Open123Emulator
@testable import PanListCore
@testable import PanListServer
import Testing

/// Downloads by policy, over real HTTP: PanList in front of the 123 emulator (and Local storages).
@Suite("Downloads: 302, local proxy and proxy URL", .serialized)
struct DeliveryTests {
    static let cjk = "/视频 a.mp4"
    static let content = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 7) })

    /// Seeds the CJK file and returns its encoded /123 path.
    func seed(_ emu: Open123Emulator) async throws -> String {
        _ = try await emu.seed(path: Self.cjk, data: Self.content)
        return URLPath.encode("/123" + Self.cjk)
    }

    func get(_ s: TestServer, _ path: String, _ t: String, _ extra: [(String, String)] = [], method: HTTPMethod = .GET) async throws -> HTTPResult {
        try await s.request(method, path, headers: [("Authorization", t)] + extra)
    }

    func addStorage(_ s: TestServer, _ emu: Open123Emulator, _ t: String, mount: String, _ extra: [String: Any]) async throws {
        let addition = try String(decoding: JSONSerialization.data(withJSONObject: [
            "ClientID": emu.config.clientID, "ClientSecret": emu.config.clientSecret, "base_url": emu.baseURL]), as: UTF8.self)
        var body: [String: Any] = ["mount_path": mount, "driver": "123 Open", "addition": addition]
        for (k, v) in extra { body[k] = v }
        let r = try await s.api("/admin/storage/create", body, token: t)
        #expect(r.code == 200, "\(r.text)")
    }

    /// A signed /d link's redirect is kept and answered again, but not once the sign key changed, the
    /// storage changed, or the sign expired.
    @Test func keptRedirectsFollowTheirInputs() async throws {
        try await withCloud { s, emu, t in
            let path = try await seed(emu)
            let info = try await s.api("/fs/get", ["path": "/123" + Self.cjk], token: t)
            let raw = try #require(info.data["raw_url"] as? String)
            let signed = String(raw.dropFirst(s.base.count))
            #expect(try await s.request(.GET, signed).status == 302)
            #expect(try await s.request(.GET, signed).status == 302)   // the kept answer
            // A new sign key: the old sign is refused, kept answer or not.
            #expect(try await s.api("/admin/setting/reset_token", token: t).code == 200)
            #expect(try await s.request(.GET, signed).status == 401)
            // A storage disabled: its links stop.
            let fresh = try #require(try await s.api("/fs/get", ["path": "/123" + Self.cjk], token: t).data["raw_url"] as? String)
            let signed2 = String(fresh.dropFirst(s.base.count))
            #expect(try await s.request(.GET, signed2).status == 302)
            let id = try #require(try await s.state.store.storages().first { $0.mountPath == "/123" }?.id)
            #expect(try await s.api("/admin/storage/disable?id=\(id)", token: t, method: .POST).code == 200)
            #expect(try await s.request(.GET, signed2).status != 302)
            // A sign that expired is refused even while its redirect would still be kept.
            #expect(try await s.api("/admin/storage/enable?id=\(id)", token: t, method: .POST).code == 200)
            let soon = s.state.signer.sign(path: "/123" + Self.cjk, expire: Int64(Date().timeIntervalSince1970) + 1)
            let short = "/d" + path + "?sign=" + URLPath.encode(soon, keepSlash: false)
            #expect(try await s.request(.GET, short).status == 302)
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await s.request(.GET, short).status == 401)
        }
    }

    /// A small local file answered for a signed /d link is kept for plain GETs only, and a write through
    /// PanList is seen at once.
    @Test func keptSmallFileAnswersFollowWrites() async throws {
        try await withServer { s in
            let t = try await s.login()
            #expect(try await s.put("/k.txt", Data("one".utf8), token: t).code == 200)
            let sign = try #require(try await s.api("/fs/get", ["path": "/k.txt"], token: t).data["sign"] as? String)
            let url = "/d/k.txt?sign=" + URLPath.encode(sign, keepSlash: false)
            #expect(try await s.request(.GET, url).text == "one")
            #expect(try await s.request(.GET, url).text == "one")
            #expect(try await s.put("/k.txt", Data("two!".utf8), token: t).code == 200)
            #expect(try await s.request(.GET, url).text == "two!")
            let range = try await s.request(.GET, url, headers: [("Range", "bytes=1-2")])
            #expect(range.status == 206 && range.text == "wo")
            let head = try await s.request(.HEAD, url)
            #expect(head.status == 200 && head.body.isEmpty && head.header("Content-Length") == "4")
            let etag = try #require(try await s.request(.GET, url).header("ETag"))
            #expect(try await s.request(.GET, url, headers: [("If-None-Match", etag)]).status == 304)
        }
    }

    /// A signed /d redirect kept in memory is dropped once /p found the cloud's link refused: /d then hands out
    /// the fresh link, not the dead one.
    @Test func keptRedirectsFollowRefusedLinks() async throws {
        try await withCloud { s, emu, t in
            _ = try await seed(emu)
            let raw = try #require(try await s.api("/fs/get", ["path": "/123" + Self.cjk], token: t).data["raw_url"] as? String)
            let signed = String(raw.dropFirst(s.base.count))
            let first = try await s.request(.GET, signed)
            #expect(first.status == 302)
            #expect(try await s.request(.GET, signed).header("Location") == first.header("Location"))   // kept
            // The cloud stops honouring its link; a stream through /p finds that out and gets a new one.
            await emu.expireDownloadLinks()
            let p = try await s.request(.GET, "/p" + String(signed.dropFirst(2)))
            #expect(p.status == 200 && p.body == Self.content)
            let after = try await s.request(.GET, signed)
            #expect(after.status == 302)
            #expect(after.header("Location") != first.header("Location"), "the refused link was handed out again")
        }
    }

    /// Memory kept for signed answers is bounded: other query parameters are not kept (each would be a key),
    /// /p keeps nothing, and the total stays under the byte budget however many targets come.
    @Test func keptSignedAnswersStayBounded() async throws {
        try await withServer { s in
            let t = try await s.login()
            #expect(try await s.put("/b.txt", Data(repeating: 65, count: 40_000), token: t).code == 200)
            let sign = try #require(try await s.api("/fs/get", ["path": "/b.txt"], token: t).data["sign"] as? String)
            let answers = s.state.signedAnswers
            let q = "?sign=" + URLPath.encode(sign, keepSlash: false)
            #expect(try await s.request(.GET, "/d/b.txt" + q).status == 200)
            #expect(answers.usage.entries == 1)
            for i in 0..<20 {
                #expect(try await s.request(.GET, "/d/b.txt" + q + "&pad=\(i)").status == 200)
                #expect(try await s.request(.GET, "/p/b.txt" + q).status == 200)
            }
            #expect(answers.usage.entries == 1)
            // Many different targets (here written straight in): the budget holds.
            let body = ByteBuffer(repeating: 1, count: 60_000)
            let remember = Delivery.Remember(target: "", signExpire: 0, stamp: Delivery.Stamp(s.state))
            for i in 0..<2_000 {
                answers.put("/d/x\(i)?sign=" + String(repeating: "s", count: 3_000), status: .ok, headers: [:], body: body,
                            until: .now + .seconds(5), remember: remember)
                #expect(answers.usage.bytes <= SignedLinkAnswers.maxBytes)
            }
            #expect(answers.usage.entries > 100)
            #expect(!SignedLinkAnswers.keepable("/d/a?sign=x&b=1", query: "sign=x&b=1"))
            #expect(!SignedLinkAnswers.keepable("/d/" + String(repeating: "a", count: 5000) + "?sign=x", query: "sign=x"))
            #expect(SignedLinkAnswers.keepable("/d/a?sign=x", query: "sign=x"))
        }
    }

    @Test func redirectByDefaultStreamThroughP() async throws {
        try await withCloud { s, emu, t in
            let path = try await seed(emu)
            let n = Self.content.count
            // /d: a 302 to the cloud's link, Location in ASCII whatever the name; the link gives the bytes.
            let d = try await get(s, "/d" + path, t)
            #expect(d.status == 302 && d.header("Cache-Control")?.contains("no-store") == true && d.header("Referrer-Policy") == "no-referrer")
            let location = try #require(d.header("Location"))
            #expect(location.hasPrefix(emu.baseURL + "/cdn/") && location.allSatisfy { $0.isASCII && $0 != " " })
            var follow = HTTPClientRequest(url: location)
            follow.method = .GET
            #expect(Data(try await s.client.execute(follow, timeout: .seconds(10)).body.collect(upTo: 1 << 22).readableBytesView) == Self.content)
            // raw_url points at /d for this policy.
            let info = try await s.api("/fs/get", ["path": "/123" + Self.cjk], token: t)
            #expect((info.data["raw_url"] as? String)?.hasPrefix(s.base + "/d" + path) == true)
            // /p streams: the whole file with PanList's headers.
            let p = try await get(s, "/p" + path, t)
            #expect(p.status == 200 && p.body == Self.content)
            #expect(p.header("Content-Length") == String(n) && p.header("Accept-Ranges") == "bytes")
            #expect(p.header("Content-Type") == "video/mp4" && p.header("X-Content-Type-Options") == "nosniff")
            #expect(p.header("Content-Disposition")?.contains("filename*=UTF-8''%E8%A7%86%E9%A2%91%20a.mp4") == true)
            let etag = try #require(p.header("ETag"))
            #expect(etag == "\"\(md5Hex(Self.content))\"")
            // Ranges go upstream and come back.
            let first = try await get(s, "/p" + path, t, [("Range", "bytes=0-0")])
            #expect(first.status == 206 && first.header("Content-Range") == "bytes 0-0/\(n)" && first.body == Self.content.prefix(1))
            let suffix = try await get(s, "/p" + path, t, [("Range", "bytes=-10")])
            #expect(suffix.status == 206 && suffix.body == Self.content.suffix(10))
            let open = try await get(s, "/p" + path, t, [("Range", "bytes=199990-")])
            #expect(open.status == 206 && open.header("Content-Range") == "bytes 199990-\(n - 1)/\(n)" && open.body == Self.content.suffix(10))
            let beyond = try await get(s, "/p" + path, t, [("Range", "bytes=\(n)-")])
            #expect(beyond.status == 416 && beyond.header("Content-Range") == "bytes */\(n)" && beyond.body.isEmpty)
            let multi = try await get(s, "/p" + path, t, [("Range", "bytes=0-1,5-6")])
            #expect(multi.status == 200 && multi.body == Self.content)
            // Validators: a matching If-None-Match gives 304.
            #expect(try await get(s, "/p" + path, t, [("If-None-Match", etag)]).status == 304)
            // HEAD: the headers, and no body fetched from the cloud.
            let before = await emu.cdnStats().bytes
            let head = try await get(s, "/p" + path, t, method: .HEAD)
            #expect(head.status == 200 && head.header("Content-Length") == String(n) && head.body.isEmpty)
            #expect(await emu.cdnStats().bytes == before)
            // Without a sign or credentials: refused; with a wrong or expired sign: refused with a reason.
            #expect(try await s.request(.GET, "/p" + path).status == 401)
            let bad = try await s.request(.GET, "/p" + path + "?sign=AAAA:0")
            #expect(bad.status == 401 && bad.message.contains("sign"))
            let expired = s.state.signer.sign(path: "/123" + Self.cjk, expire: Int64(Date().timeIntervalSince1970) - 10)
            let old = try await s.request(.GET, "/d" + path + "?sign=" + URLPath.encode(expired, keepSlash: false))
            #expect(old.status == 401 && old.message.contains("expired"))
            let good = s.state.sign("/123" + Self.cjk)
            #expect(try await s.request(.GET, "/p" + path + "?sign=" + URLPath.encode(good, keepSlash: false)).body == Self.content)
        }
    }

    @Test func linkCacheSharesOneCallAndRefetchesExpiredLinks() async throws {
        try await withCloud { s, emu, t in
            let path = try await seed(emu)
            await emu.resetCallCounts()
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 { group.addTask { try await get(s, "/d" + path, t).status } }
                for try await status in group { #expect(status == 302) }
            }
            #expect(try await get(s, "/d" + path, t).status == 302)
            #expect(await emu.callCounts()["/api/v1/file/download_info"] == 1)
            // The cloud stops honouring the kept link: /p asks for a new one, once, and the download works.
            await emu.expireDownloadLinks()
            let p = try await get(s, "/p" + path, t)
            #expect(p.status == 200 && p.body == Self.content)
            #expect(await emu.callCounts()["/api/v1/file/download_info"] == 2)
            // A write through PanList makes kept links stale.
            #expect(try await s.api("/fs/mkdir", ["path": "/123/new"], token: t).code == 200)
            #expect(try await get(s, "/d" + path, t).status == 302)
            #expect(await emu.callCounts()["/api/v1/file/download_info"] == 3)
        }
    }

    @Test func upstreamErrorsBecomeClearErrors() async throws {
        try await withCloud { s, emu, t in
            let path = try await seed(emu)
            await emu.failNextDownloads(1, status: 500, code: 1, message: "cdn is down")
            let e500 = try await get(s, "/p" + path, t)
            #expect(e500.status == 502 && e500.message.contains("HTTP 500") && e500.message.contains("cdn is down"), "\(e500.text)")
            // A JSON error with HTTP 200 is not passed on as the file.
            await emu.failNextDownloads(1, status: 200, code: 5113, message: "您今日自用下载流量已超出1GB上限")
            let json = try await get(s, "/p" + path, t)
            #expect(json.status == 502 && json.message.contains("5113") && json.message.contains("流量"), "\(json.text)")
            #expect(json.body != Self.content)
            // Refused twice (the link, then the fresh link): an error that says so, not a loop.
            await emu.failNextDownloads(2, status: 403, code: 1, message: "forbidden region")
            let twice = try await get(s, "/p" + path, t)
            #expect(twice.status == 502 && twice.message.contains("HTTP 403") && twice.message.contains("forbidden region"), "\(twice.text)")
            // Afterwards everything works again.
            #expect(try await get(s, "/p" + path, t).body == Self.content)
        }
    }

    @Test func webProxyAndProxyURLPolicies() async throws {
        try await withCloud { s, emu, t in
            let name = URLPath.encode(Self.cjk)
            _ = try await emu.seed(path: Self.cjk, data: Self.content)
            // web_proxy: /d streams, raw_url is /p.
            try await addStorage(s, emu, t, mount: "/w", ["web_proxy": true])
            let d = try await get(s, "/d/w" + name, t)
            #expect(d.status == 200 && d.body == Self.content)
            let raw = try await s.api("/fs/get", ["path": "/w" + Self.cjk], token: t).data["raw_url"] as? String
            #expect(raw?.hasPrefix(s.base + "/p/w" + name) == true)
            // down_proxy_url: /p redirects to the proxy with a sign; the proxy's request (with `d`) is served here.
            try await addStorage(s, emu, t, mount: "/u", ["down_proxy_url": "http://127.0.0.1:9/dl/\nhttp://second.example", "webdav_policy": "use_proxy_url"])
            #expect(try await get(s, "/d/u" + name, t).status == 302)  // web_proxy off: still the cloud's link
            #expect(try await get(s, "/d/u" + name, t).header("Location")?.hasPrefix(emu.baseURL) == true)
            let viaProxy = try await get(s, "/p/u" + name, t)
            let to = try #require(viaProxy.header("Location"))
            #expect(viaProxy.status == 302 && to.hasPrefix("http://127.0.0.1:9/dl/u" + name + "?sign="))
            let sign = String(to[to.range(of: "?sign=")!.upperBound...])
            let served = try await s.request(.GET, "/p/u" + name + "?d&sign=" + sign)
            #expect(served.status == 200 && served.body == Self.content)
            // web_proxy and down_proxy_url: raw_url is the proxy's address.
            try await addStorage(s, emu, t, mount: "/wu", ["web_proxy": true, "down_proxy_url": "http://127.0.0.1:9/dl"])
            let rawWU = try await s.api("/fs/get", ["path": "/wu" + Self.cjk], token: t).data["raw_url"] as? String
            #expect(rawWU?.hasPrefix("http://127.0.0.1:9/dl/wu" + name + "?sign=") == true)
            #expect(try await get(s, "/d/wu" + name, t).header("Location")?.hasPrefix("http://127.0.0.1:9/dl/wu") == true)
            // A Local storage is always streamed by this server, unless it has a download proxy.
            try FileManager.default.createDirectory(atPath: s.files + "/l2", withIntermediateDirectories: true)
            try Data("local bytes".utf8).write(to: URL(fileURLWithPath: s.files + "/l2/a.txt"))
            let local = try await s.api("/admin/storage/create", ["mount_path": "/l2", "driver": "Local",
                "addition": "{\"root_folder_path\":\"\(s.files)/l2\"}", "down_proxy_url": "http://127.0.0.1:9/dl"], token: t)
            #expect(local.code == 200, "\(local.text)")
            #expect(try await get(s, "/d/l2/a.txt", t).header("Location")?.hasPrefix("http://127.0.0.1:9/dl/l2/a.txt?sign=") == true)
            #expect(try await get(s, "/d/a-missing-name-in-root.txt", t).status == 404)
            // The form explains when to switch away from the 302.
            let info = try await s.api("/admin/driver/info?driver=123%20Open", token: t, method: .GET)
            let common = try #require(info.data["common"] as? [[String: Any]])
            #expect((common.first { $0["name"] as? String == "web_proxy" }?["help"] as? String)?.contains("city") == true)
        }
    }

    @Test func copyFromTheCloudAndLinksForDownloadProxies() async throws {
        try await withCloud { s, emu, t in
            _ = try await seed(emu)
            // A copy from the cloud to the Local storage streams the cloud's bytes.
            let copy = try await s.api("/fs/copy", ["src_dir": "/123", "dst_dir": "/", "names": [String(Self.cjk.dropFirst())]], token: t)
            #expect(copy.code == 200, "\(copy.text)")
            try await s.tasksFinish(token: t)
            #expect(FileManager.default.contents(atPath: s.files + Self.cjk) == Self.content)
            // fs/link (admin): the cloud's URL for a cloud file; a /p?d link for a local one.
            let cloud = try await s.api("/fs/link", ["path": "/123" + Self.cjk], token: t)
            #expect((cloud.data["url"] as? String)?.hasPrefix(emu.baseURL + "/cdn/") == true, "\(cloud.text)")
            let local = try await s.api("/fs/link", ["path": Self.cjk], token: t)
            let url = try #require(local.data["url"] as? String)
            #expect(url.hasPrefix(s.base + "/p" + URLPath.encode(Self.cjk) + "?d&sign="))
            var fetch = HTTPClientRequest(url: url)
            fetch.method = .GET
            #expect(Data(try await s.client.execute(fetch, timeout: .seconds(10)).body.collect(upTo: 1 << 22).readableBytesView) == Self.content)
            // Not for other users.
            _ = try await s.addUser("bob", password: "bob-password-1", permission: Permission(rawValue: 0))
            let bob = try await s.login("bob", "bob-password-1")
            #expect(try await s.api("/fs/link", ["path": Self.cjk], token: bob).code == 403)
        }
    }

    @Test func aClientThatGoesAwayCancelsTheUpstreamDownload() async throws {
        try await withCloud { s, emu, t in
            let big = Data(repeating: 0x5A, count: 64 << 20)
            _ = try await emu.seed(path: "/big.bin", data: big)
            try await readPartlyThenHangUp(port: s.port, path: "/p/123/big.bin", token: t, bytes: 1 << 20)
            var active = 1
            for _ in 0..<100 {
                active = await emu.cdnStats().active
                if active == 0 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(active == 0)
            // Backpressure: the cloud was not read to the end while nobody took the bytes.
            #expect(await emu.cdnStats().bytes < 48 << 20)
            // The server is fine afterwards.
            #expect(try await get(s, "/p/123/big.bin", t, [("Range", "bytes=0-3")]).body == Data(repeating: 0x5A, count: 4))
        }
    }
}

/// GETs `path` over a raw socket, reads about `bytes` of the answer, then closes the connection.
func readPartlyThenHangUp(port: Int, path: String, token: String, bytes: Int) async throws {
    // A small receive buffer, so the kernel does not soak up the whole file for us.
    try await withRawConnection(port: port, receiveBuffer: 64 * 1024) { fd in
        let head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(token)\r\n\r\n"
        _ = Array(head.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var got = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while got < bytes {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            got += n
        }
        usleep(300_000)  // the server's writes pile up against a full window meanwhile
    }
}
