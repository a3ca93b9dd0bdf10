import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer
import PanListStore

/// Issue 13's security points: the login limiter on every path, per user and address, behind trusted
/// proxies only; failed logins in the log without passwords; secrets at rest; token claims.
@Suite("Security: login limiter, client address, secrets at rest")
struct NewcomerSecurityTests {
    /// WebDAV remembers verified credentials for a minute; a block must still refuse them.
    @Test func aBlockHoldsForRememberedWebDAVCredentials() async throws {
        try await withServer { s in
            _ = try await s.addUser("dave", password: "dave-pass-1", permission: [.webdavRead])
            let right = DAVTests.basic("dave", "dave-pass-1")
            #expect(try await s.request(.RAW(value: "PROPFIND"), "/dav/", headers: [("Authorization", right), ("Depth", "0")]).status == 207)
            for _ in 0..<5 { #expect(try await s.api("/auth/login", ["username": "dave", "password": "wrong"]).code == 400) }
            // Blocked: the remembered right password does not get in, on WebDAV or the API.
            #expect(try await s.request(.RAW(value: "PROPFIND"), "/dav/", headers: [("Authorization", right), ("Depth", "0")]).status == 429)
            #expect(try await s.api("/auth/login", ["username": "dave", "password": "dave-pass-1"]).code == 429)
        }
    }

    /// Behind a trusted proxy every client has its own address; one guesser blocks only the name they guess
    /// from their own address, and an address as a whole only after many more failures.
    @Test func oneGuesserDoesNotLockOutEveryone() async throws {
        try await withServer(adjust: { $0.trustedProxies = ["127.0.0.1", "::1"] }) { s in
            _ = try await s.addUser("bob", password: "bob-pass-1", permission: [])
            func login(_ user: String, _ pw: String, from ip: String) async throws -> Int {
                let body = try JSONSerialization.data(withJSONObject: ["username": user, "password": pw])
                return try await s.request(.POST, "/api/auth/login", headers: [("X-Forwarded-For", "203.0.113.9, \(ip)")], body: body).code
            }
            for _ in 0..<5 { #expect(try await login("admin", "wrong", from: "10.0.0.1") == 400) }
            #expect(try await login("admin", s.adminPassword, from: "10.0.0.1") == 429)   // the guesser's own address
            #expect(try await login("admin", s.adminPassword, from: "10.0.0.2") == 200)   // the admin elsewhere
            #expect(try await login("bob", "bob-pass-1", from: "10.0.0.1") == 200)        // another user, same address
            // Many names guessed from one address: the address as a whole is blocked at 50.
            for i in 0..<45 { #expect(try await login("nobody\(i)", "x", from: "10.0.0.3") == 400) }
            #expect(try await login("bob", "bob-pass-1", from: "10.0.0.3") == 200)
            for i in 45..<50 { #expect(try await login("nobody\(i)", "x", from: "10.0.0.3") == 400) }
            #expect(try await login("bob", "bob-pass-1", from: "10.0.0.3") == 429)
            #expect(try await login("bob", "bob-pass-1", from: "10.0.0.4") == 200)
            // Only the configured header (X-Forwarded-For by default) is read: X-Real-IP alone leaves the peer's address.
            let body = try JSONSerialization.data(withJSONObject: ["username": "bob", "password": "bob-pass-1"])
            #expect(try await s.request(.POST, "/api/auth/login", headers: [("X-Real-IP", "10.0.0.3")], body: body).code == 200)
        }
    }

    /// Without a configured trusted proxy, a client cannot choose its address with a header.
    @Test func forwardedHeadersAreIgnoredFromUntrustedPeers() async throws {
        try await withServer { (s: TestServer) async throws in
            func login(_ pw: String, from ip: String) async throws -> Int {
                let body = try JSONSerialization.data(withJSONObject: ["username": "admin", "password": pw])
                return try await s.request(.POST, "/api/auth/login", headers: [("X-Forwarded-For", ip), ("X-Real-IP", ip)], body: body).code
            }
            for i in 0..<5 { #expect(try await login("wrong", from: "10.1.0.\(i)") == 400) }
            #expect(try await login(s.adminPassword, from: "10.1.0.99") == 429)
        }
    }

    @Test func trustedProxyEntriesAreParsedStrictly() throws {
        let t = try TrustedProxies(["10.0.0.0/8", "fd00::/8", "192.168.1.7"])
        #expect(t.trusts("10.200.3.4") && t.trusts("fd12::1") && t.trusts("192.168.1.7") && t.trusts("::ffff:10.1.1.1"))
        #expect(!t.trusts("11.0.0.1") && !t.trusts("192.168.1.8") && !t.trusts("fe80::1") && !t.trusts("garbage"))
        // From the right: the first untrusted hop; garbage ends the walk.
        #expect(t.clientAddress(peer: "10.0.0.1", forwardedFor: "1.2.3.4, 5.6.7.8, 10.9.9.9", realIP: nil) == "5.6.7.8")
        #expect(t.clientAddress(peer: "10.0.0.1", forwardedFor: "1.2.3.4, junk, 10.9.9.9", realIP: nil) == "10.9.9.9")
        #expect(t.clientAddress(peer: "8.8.8.8", forwardedFor: "1.2.3.4", realIP: "1.2.3.4") == "8.8.8.8")
        #expect(throws: TrustedProxiesError.self) { try TrustedProxies(["10.0.0.0/33"]) }
        #expect(throws: TrustedProxiesError.self) { try TrustedProxies(["example.com"]) }
    }

    /// Failed logins and blocks are logged at warning level with user and address, never the password;
    /// the access log names each request without its query (signs, passwords).
    @Test func failedLoginsAndRequestsAreLoggedWithoutSecrets() async throws {
        let log = CapturingLog()
        try await withServer(logger: log.logger(level: .info)) { s in
            for _ in 0..<5 { _ = try await s.api("/auth/login", ["username": "admin", "password": "hunter2-very-secret"]) }
            _ = try await s.request(.GET, "/d/nothing.txt?sign=abcdef-secret-sign:0")
            let text = log.text
            #expect(text.contains("warning failed login: user \"admin\" from 127.0.0.1 (api)"))
            #expect(text.contains("warning blocked user \"admin\" from 127.0.0.1 for 5 minutes after 5 failed logins"))
            #expect(!text.contains("hunter2"))
            #expect(text.contains("info 127.0.0.1 \"POST /api/auth/login\" 200 "))
            #expect(text.contains("\"GET /d/nothing.txt\" 4"))
            #expect(!text.contains("abcdef-secret-sign"))
            // A user name cannot forge a log line.
            _ = try await s.api("/auth/login", ["username": "x\nwarning forged", "password": "y"])
            #expect(log.text.contains("user \"x\\u{a}warning forged\""))
        }
    }

    /// The data folder is 0700; config.json, the database and its -wal/-shm files 0600, from the start, and
    /// an older installation's wider modes are tightened at the next start.
    @Test func secretsAtRestAreOnlyTheServersToRead() async throws {
        let dir = TempDir()
        defer { dir.remove() }
        let data = dir.path + "/data"
        func mode(_ p: String) -> mode_t {
            var st = stat()
            return stat(p, &st) == 0 ? st.st_mode & 0o777 : 0
        }
        var logger = Logger(label: "t")
        logger.logLevel = .error
        var p = try await Bootstrap.prepare(dataDir: data, logger: logger, sweepTemp: true)
        _ = try await p.store.storages()
        #expect(mode(data) == 0o700)
        #expect(mode(data + "/temp") == 0o700)
        for f in ["config.json", "panlist.db", "panlist.db-wal", "panlist.db-shm"] {
            #expect(mode(data + "/" + f) == 0o600, "\(f): \(String(mode(data + "/" + f), radix: 8))")
        }
        await p.store.close()
        // An older installation: everything world-readable (the -wal and -shm files left by a crash too).
        for f in ["panlist.db-wal", "panlist.db-shm"] { FileManager.default.createFile(atPath: data + "/" + f, contents: nil) }
        for f in ["config.json", "panlist.db", "panlist.db-wal", "panlist.db-shm"] { chmod(data + "/" + f, 0o644) }
        chmod(data, 0o755)
        p = try await Bootstrap.prepare(dataDir: data, logger: logger, sweepTemp: true)
        #expect(mode(data) == 0o700)
        for f in ["config.json", "panlist.db", "panlist.db-wal", "panlist.db-shm"] {
            #expect(mode(data + "/" + f) == 0o600, "\(f): \(String(mode(data + "/" + f), radix: 8))")
        }
        await p.store.close()
        // An empty folder made beforehand (`mkdir data`, 0755) is PanList's: tightened, although the server's
        // lock file is written into it first. A folder that holds other files keeps its mode.
        let made = dir.path + "/made", shared = dir.path + "/shared"
        for folder in [made, shared] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            chmod(folder, 0o755)
        }
        _ = FileManager.default.createFile(atPath: shared + "/notes.txt", contents: Data("mine".utf8))
        for folder in [made, shared] {
            let lock = try DataFolderLock(dataDir: folder)
            let q = try await Bootstrap.prepare(dataDir: folder, logger: logger, sweepTemp: true)
            await q.store.close()
            _ = lock
        }
        #expect(mode(made) == 0o700)
        #expect(mode(shared) == 0o755)
        #expect(mode(shared + "/config.json") == 0o600)
    }

    /// exp, iat and nbf are whole numbers (typed clients decode them as integers).
    @Test func loginTokenClaimsAreWholeSeconds() async throws {
        try await withServer { s in
            let token = try await s.login()
            let parts = token.split(separator: ".")
            #expect(parts.count == 3)
            var b64 = String(parts[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while b64.count % 4 != 0 { b64 += "=" }
            let payload = String(decoding: Data(base64Encoded: b64) ?? Data(), as: UTF8.self)
            for claim in ["exp", "iat", "nbf"] {
                let match = payload.range(of: "\"\(claim)\":[0-9]+[,}]", options: .regularExpression)
                #expect(match != nil, "\(claim) is not a whole number in \(payload)")
            }
            #expect(!payload.contains("."))
        }
    }
}

/// Issue 13's first-run points that are checked in-process (the CLI ones are in scripts/interop).
@Suite("First run: loading storages, mount points, validation, settings help, error text")
struct FirstRunTests {
    /// Storages initialise in the background: while one loads, the admin sees `loading`, and a request into
    /// it waits for it instead of failing.
    @Test func storagesLoadInTheBackgroundAndRequestsWait() async throws {
        try await withServer(prepare: { store in
            _ = try await store.createStorage(StorageRecord(mountPath: "/slow", driver: "Counting", addition: "{\"slowinit\":true}"))
        }, mount: false) { s in
            let t = try await s.login()
            let begun = ContinuousClock.now
            let mounting = Task { await s.state.mountAll() }
            try await Task.sleep(for: .milliseconds(100))
            // The storage takes 8 s to start: an answer within them must say "loading" (on a starved test run an
            // answer can come later, when it is loaded: then there is nothing to check).
            let list = try await s.api("/admin/storage/list", token: t, method: .GET)
            let rows = (list.data["content"] as? [[String: Any]]) ?? []
            if ContinuousClock.now - begun < .seconds(7) {
                #expect(rows.first { $0["mount_path"] as? String == "/slow" }?["status"] as? String == "loading")
            }
            let root = try await s.api("/fs/list", ["path": "/"], token: t)
            let slow = (root.data["content"] as? [[String: Any]])?.first { $0["name"] as? String == "slow" }
            if ContinuousClock.now - begun < .seconds(7) {
                #expect((slow?["mount"] as? [String: Any])?["status"] as? String == "loading")
            }
            let started = ContinuousClock.now
            let inside = try await s.api("/fs/list", ["path": "/slow"], token: t)
            #expect(inside.code == 200, "\(inside.text)")
            #expect(ContinuousClock.now - started > .milliseconds(100))
            await mounting.value
        }
    }

    /// Mount points and virtual folders say what they are; a broken storage's error is for admins only.
    @Test func listingsMarkMountPointsAndVirtualFolders() async throws {
        try await withServer(prepare: { store in
            _ = try await store.createStorage(StorageRecord(mountPath: "/broken", driver: "Counting", addition: "{\"fail\":true}"))
            _ = try await store.createStorage(StorageRecord(mountPath: "/deep/er", driver: "Counting"))
        }) { s in
            let t = try await s.login()
            _ = try await s.addUser("carol", password: "carol-pass-1", permission: [])
            let c = try await s.login("carol", "carol-pass-1")
            func entries(_ token: String) async throws -> [String: [String: Any]] {
                let r = try await s.api("/fs/list", ["path": "/"], token: token)
                var out: [String: [String: Any]] = [:]
                for e in (r.data["content"] as? [[String: Any]]) ?? [] { out[e["name"] as? String ?? ""] = e }
                return out
            }
            let admin = try await entries(t), user = try await entries(c)
            let broken = admin["broken"]?["mount"] as? [String: Any]
            #expect(broken?["working"] as? Bool == false)
            #expect((broken?["status"] as? String ?? "").contains("invalid client credentials"))
            #expect((user["broken"]?["mount"] as? [String: Any])?["status"] as? String == "unavailable")
            #expect((admin["deep"]?["mount"] as? [String: Any])?["virtual"] as? Bool == true)
            let deep = try await s.api("/fs/list", ["path": "/deep"], token: t)
            let er = (deep.data["content"] as? [[String: Any]])?.first { $0["name"] as? String == "er" }
            #expect((er?["mount"] as? [String: Any])?["status"] as? String == "work")
            #expect(try await s.api("/fs/rename", ["path": "/deep/er", "name": "x"], token: t).code != 200)
        }
    }

    /// A storage missing a required setting is refused by the API and not saved.
    @Test func storagesWithoutRequiredSettingsAreRefused() async throws {
        try await withServer { s in
            let t = try await s.login()
            let before = try await s.state.store.storages().count
            let r = try await s.api("/admin/storage/create", ["mount_path": "/c", "driver": "123 Open",
                                                              "addition": "{\"ClientID\":\"a\",\"ClientSecret\":\"\"}"], token: t)
            #expect(r.code == 400 && r.message.hasPrefix("ClientSecret is required"), "\(r.text)")
            #expect(r.message.contains("ClientID (string)") && r.message.contains("auth_mode (select, default client_credentials"))
            let n = try await s.api("/admin/storage/create", ["mount_path": "/c", "driver": "123 Open",
                                                              "addition": "{\"ClientID\":\"a\",\"ClientSecret\":\"b\",\"UploadThread\":\"many\"}"], token: t)
            #expect(n.code == 400 && n.message.hasPrefix("UploadThread must be a whole number"), "\(n.text)")
            #expect(try await s.state.store.storages().count == before)
        }
    }

    @Test func everySettingHasHelp() async throws {
        try await withServer { s in
            let t = try await s.login()
            let r = try await s.api("/admin/setting/list", token: t, method: .GET)
            let items = (r.json["data"] as? [[String: Any]]) ?? []
            #expect(items.count >= 20)
            for item in items { #expect(!(item["help"] as? String ?? "").isEmpty, "\(item["key"] ?? "?") has no help") }
        }
    }

    /// System and network errors read as words, not type dumps.
    @Test func networkErrorsReadAsWords() async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            _ = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:1/"), timeout: .seconds(5))
            Issue.record("connected to port 1")
        } catch {
            #expect(ErrorText.describe(error) == "connection refused", "\(error)")
        }
        try await client.shutdown()
        #expect(ErrorText.describe(IOError(errnoCode: ENOENT, reason: "open")) == "no such file or directory")
        #expect(FSError.from(IOError(errnoCode: EACCES, reason: "open")).message == "permission denied")
    }
}

/// What a review of issue 13's change found, each with the test that would have caught it.
@Suite("Review: limiter races and bounds, client address header, times, paths, loading races")
struct ReviewFixTests {
    /// Guesses sent at once are counted before their passwords are checked: no more than the limit get an answer.
    @Test func simultaneousGuessesGetNoMoreTries() async throws {
        try await withServer { s in
            _ = try await s.addUser("bob", password: "bob-pass-1", permission: [])
            let codes = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<30 { group.addTask { try await s.api("/auth/login", ["username": "bob", "password": "wrong"]).code } }
                var all: [Int] = []
                for try await c in group { all.append(c) }
                return all
            }
            #expect(codes.filter { $0 == 400 }.count <= 5, "\(codes)")
            #expect(codes.filter { $0 == 429 }.count >= 25, "\(codes)")
        }
    }

    /// The limiter keeps a digest of each user name, forgets expired keys, and never holds more than its cap.
    @Test func theLimitersMemoryIsBounded() async throws {
        let limiter = LoginLimiter(window: .milliseconds(100), maxKeys: 200)
        let long = String(repeating: "x", count: 100_000)
        for i in 0..<1_000 {
            let a = try limiter.begin(limiter.loginKeys(username: long + String(i), address: "10.0.\(i / 250).\(i % 250)"))
            limiter.end(a, .failed)
        }
        #expect(limiter.count <= 220)
        // IPv6 clients count per /64: another host of the same /64 is the same address.
        #expect(LoginLimiter.addressKey("2001:db8:1:2::5") == LoginLimiter.addressKey("2001:db8:1:2:ffff::9"))
        #expect(LoginLimiter.addressKey("2001:db8:1:3::5") != LoginLimiter.addressKey("2001:db8:1:2::5"))
    }

    /// Behind a proxy that sets only X-Real-IP, a client cannot pick its address with X-Forwarded-For.
    @Test func onlyTheConfiguredHeaderIsRead() async throws {
        try await withServer(adjust: { $0.trustedProxies = ["127.0.0.1"]; $0.clientIPHeader = "X-Real-IP" }) { s in
            for i in 0..<5 {
                let body = try JSONSerialization.data(withJSONObject: ["username": "admin", "password": "wrong"])
                let r = try await s.request(.POST, "/api/auth/login", headers: [("X-Real-IP", "10.0.0.7"), ("X-Forwarded-For", "10.9.9.\(i)")], body: body)
                #expect(r.code == 400)
            }
            let body = try JSONSerialization.data(withJSONObject: ["username": "admin", "password": s.adminPassword])
            let r = try await s.request(.POST, "/api/auth/login", headers: [("X-Real-IP", "10.0.0.7"), ("X-Forwarded-For", "10.9.9.77")], body: body)
            #expect(r.code == 429)
            let other = try await s.request(.POST, "/api/auth/login", headers: [("X-Real-IP", "10.0.0.8")], body: body)
            #expect(other.code == 200)
        }
    }

    /// Times that are not finite numbers in range are refused or ignored, and the server keeps answering.
    @Test func outOfRangeTimesCannotStopTheServer() async throws {
        try await withServer { s in
            let t = try await s.login()
            for bad in ["inf", "nan", "1e300", "-1"] {
                let r = try await s.put("/t-\(bad).txt", Data("x".utf8), token: t, extra: [("Last-Modified", bad)])
                #expect(r.code == 200, "\(bad): \(r.text)")
                let d = try await s.request(.PUT, "/dav/d-\(bad).txt", headers: [("Authorization", DAVTests.basic("admin", s.adminPassword)), ("X-OC-Mtime", bad)],
                                            body: Data("x".utf8))
                #expect(d.status == 400, "\(bad): \(d.status)")
            }
            #expect(try await s.request(.GET, "/ping").text == "pong")
            #expect(ModifiedTime.secondsOrMilliseconds(text: "1700000000000") == Date(timeIntervalSince1970: 1_700_000_000))
        }
    }

    /// `/` followed by a combining mark is one Character but a separator on disk: `..` behind it is refused.
    @Test func pathsAreSplitOnBytes() throws {
        #expect(throws: FSError.self) { try VirtualPath.normalize("/../\u{301}x") }
        #expect(throws: FSError.self) { try VirtualPath.normalize("/a\u{600}/../b") }
        #expect(throws: FSError.self) { try VirtualPath.validateName("a/\u{301}b") }
        #expect(try VirtualPath.normalize("//a\u{301}//b/./") == "/a\u{301}/b")
        #expect(VirtualPath.parent("/a/\u{301}b") == "/a" && VirtualPath.base("/a/\u{301}b") == "\u{301}b")
        #expect(!VirtualPath.isWithin("/caf\u{e9}/x", "/cafe\u{301}"))
        #expect(VirtualPath.relative("/a/\u{301}b/c", to: "/a/\u{301}b") == "/c")
    }

    /// An admin who deletes, disables or fixes a storage while it still initialises at start-up gets what they
    /// asked for: the late first load is dropped.
    @Test func changesDuringStartUpLoadingWin() async throws {
        try await withServer(prepare: { store in
            _ = try await store.createStorage(StorageRecord(mountPath: "/gone", driver: "Counting", addition: "{\"slowinit\":true}"))
            _ = try await store.createStorage(StorageRecord(mountPath: "/off", driver: "Counting", addition: "{\"slowinit\":true}"))
        }, mount: false) { s in
            let t = try await s.login()
            let mounting = Task { await s.state.mountAll() }
            try await Task.sleep(for: .milliseconds(200))
            let records = try await s.state.store.storages()
            let gone = try #require(records.first { $0.mountPath == "/gone" }), off = try #require(records.first { $0.mountPath == "/off" })
            #expect(try await s.api("/admin/storage/delete?id=\(gone.id)", token: t, method: .POST).code == 200)
            #expect(try await s.api("/admin/storage/disable?id=\(off.id)", token: t, method: .POST).code == 200)
            await mounting.value
            #expect(s.state.fs.storages.first { $0.mountPath == "/gone" } == nil)
            #expect(s.state.fs.storages.first { $0.mountPath == "/off" } == nil)
            #expect(try await s.state.store.storage(id: off.id)?.status == StorageStatus.disabled)
        }
    }

    /// A temp_dir holding someone else's files is refused, never emptied or chmod-ed; the default one is PanList's.
    @Test func aForeignTempFolderIsRefused() async throws {
        let dir = TempDir()
        defer { dir.remove() }
        try dir.write("shared/someone-elses.txt", "keep me")
        chmod(dir.file("shared"), 0o1777)
        var logger = Logger(label: "t")
        logger.logLevel = .error
        let shared = dir.file("shared")
        await #expect(throws: FSError.self) {
            _ = try await Bootstrap.prepare(dataDir: dir.file("data"), logger: logger, sweepTemp: true, adjust: { $0.tempDir = shared })
        }
        #expect(dir.read("shared/someone-elses.txt") == "keep me")
        var st = stat()
        #expect(stat(shared, &st) == 0 && st.st_mode & 0o7777 == 0o1777)
        // A new folder is marked as PanList's and swept from then on.
        let own = dir.file("own-temp")
        let p = try await Bootstrap.prepare(dataDir: dir.file("data"), logger: logger, sweepTemp: true, adjust: { $0.tempDir = own })
        await p.store.close()
        #expect(FileManager.default.fileExists(atPath: own + "/.panlist-temp"))
        try dir.write("own-temp/spool-1", "x")
        let q = try await Bootstrap.prepare(dataDir: dir.file("data"), logger: logger, sweepTemp: true, adjust: { $0.tempDir = own })
        await q.store.close()
        #expect(!dir.exists("own-temp/spool-1"))
    }

    /// A folder dated far in the future (a restored backup, an exFAT stick) lists like any other.
    @Test func aFolderFromTheFarFutureLists() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/future/a.txt", "a")
            var times = [timespec(tv_sec: 10_000_000_000, tv_nsec: 0), timespec(tv_sec: 10_000_000_000, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, s.files + "/future", &times, 0) == 0)
            let r = try await s.api("/fs/list", ["path": "/future"], token: t)
            #expect(r.code == 200 && (r.data["content"] as? [[String: Any]])?.count == 1, "\(r.text)")
        }
    }
}

/// The buffered access log: whole lines, in order, nothing left behind at close.
@Suite("Access log sink")
struct AccessLogSinkTests {
    @Test func linesStayWholeAndInOrderAndNoneIsLeftAfterClose() async throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let readEnd = fds[0], writeEnd = fds[1]
        defer { close(readEnd) }
        let sink = AccessLogSink(label: "t", fd: writeEnd)
        // A reader that drains the pipe while writers run (a pipe holds only 64 KiB).
        let reader = Task { await onOwnThread { () -> [UInt8] in
            var all: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(readEnd, &buffer, buffer.count)
                if n <= 0 { break }
                all.append(contentsOf: buffer[0..<n])
            }
            return all
        } }
        let flushing = Task { await sink.run() }
        // Four writers, 5 000 lines each (some long enough to cross a 4 KiB write), a flush racing them.
        await withTaskGroup(of: Void.self) { group in
            for w in 0..<4 {
                group.addTask {
                    for i in 0..<5_000 {
                        sink.record("w\(w) n\(i) " + String(repeating: "x", count: i % 97 == 0 ? 6_000 : i % 50))
                    }
                }
            }
        }
        flushing.cancel()
        await flushing.value
        sink.record("after close")          // written at once, not kept
        close(writeEnd)
        let text = String(decoding: await reader.value, as: UTF8.self)
        var next = [0, 0, 0, 0]
        var count = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            count += 1
            guard let r = line.range(of: ": [PanListServer] ") else { Issue.record("not a whole line: \(line.prefix(80))"); continue }
            let rest = line[r.upperBound...]
            if rest == "after close" { continue }
            let parts = rest.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let w = Int(parts[0].dropFirst()), let n = Int(parts[1].dropFirst()), (0..<4).contains(w) else {
                Issue.record("garbled line: \(rest.prefix(80))"); continue
            }
            #expect(n == next[w], "writer \(w): line \(n) came when \(next[w]) was due")
            next[w] = n + 1
        }
        #expect(next == [5_000, 5_000, 5_000, 5_000])
        #expect(count == 20_001)
        #expect(text.hasSuffix(": [PanListServer] after close\n"))
    }
}
