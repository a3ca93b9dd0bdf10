import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import PanListCore
@testable import PanListServer

/// The ZIP writer on its own: the length it announces is the length it writes, and the result opens.
@Suite("ZIP stream")
struct ZipStreamTests {
    /// Writes `entries`, each file's bytes made by `bytes(i)`, and returns everything written.
    static func write(_ entries: [ZipStream.Entry], keep: Bool = true, bytes: (Int, Int64) -> ByteBuffer) async throws -> (Int64, [UInt8]) {
        var zip = ZipStream.Writer(entries: entries)
        var out: [UInt8] = []
        var count: Int64 = 0
        for (i, e) in entries.enumerated() {
            _ = try await zip.begin { count += Int64($0.readableBytes); if keep { out += $0.readableBytesView } }
            var left = e.size
            while left > 0 {
                let b = bytes(i, left)
                left -= Int64(b.readableBytes)
                try await zip.write(b) { count += Int64($0.readableBytes); if keep { out += $0.readableBytesView } }
            }
            try await zip.end { count += Int64($0.readableBytes); if keep { out += $0.readableBytesView } }
        }
        try await zip.finish { count += Int64($0.readableBytes); if keep { out += $0.readableBytesView } }
        return (count, out)
    }

    @Test func aFileOver4GiBGetsZip64FieldsAndTheLengthHolds() async throws {
        let mb = ByteBuffer(repeating: 0, count: 1 << 20)
        let entries = [ZipStream.Entry(name: "a.txt", size: 5, modified: Date(), isDir: false),
                       ZipStream.Entry(name: "big.bin", size: 4_700_000_000, modified: Date(), isDir: false),
                       ZipStream.Entry(name: "after/", size: 0, modified: Date(), isDir: true)]
        let (count, _) = try await Self.write(entries, keep: false) { i, left in
            i == 0 ? ByteBuffer(string: "hello") : mb.getSlice(at: 0, length: Int(min(left, Int64(mb.readableBytes))))!
        }
        #expect(count == ZipStream.length(of: entries))
    }
}

extension ZipStreamTests {
    /// Over 65,535 entries: the ZIP64 end records, read by Python's zipfile and Debian's unzip.
    @Test func moreThan65535EntriesOpen() async throws {
        let dir = TempDir()
        defer { dir.remove() }
        let when = Date(timeIntervalSince1970: 1_700_000_000)
        let entries = (0..<70_000).map { ZipStream.Entry(name: "f\($0).txt", size: 2, modified: when, isDir: false) }
        let (count, bytes) = try await Self.write(entries) { i, _ in ByteBuffer(string: String(format: "%02d", i % 100)) }
        #expect(count == ZipStream.length(of: entries) && Int64(bytes.count) == count)
        let path = dir.file("many.zip")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let out = try await Tool.run(["python3", "-c", """
            import sys, zipfile
            z = zipfile.ZipFile(sys.argv[1])
            assert z.testzip() is None
            infos = z.infolist()
            print(len(infos), z.read('f69999.txt').decode(), z.read('f12345.txt').decode(), infos[7].date_time)
            """, path])
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("70000 99 45 "), "\(out)")
        let tested = try await Tool.run(["unzip", "-tqq", path])
        #expect(!tested.contains("error"), "\(tested)")
    }

    /// The sizes told are the sizes sent: a file that turns out longer or shorter stops the ZIP.
    @Test func aFileThatChangedSizeStopsTheZip() async throws {
        let entries = [ZipStream.Entry(name: "a", size: 3, modified: Date(), isDir: false)]
        await #expect(throws: FSError.self) {
            _ = try await Self.write(entries) { _, _ in ByteBuffer(string: "four") }
        }
        var zip = ZipStream.Writer(entries: entries)
        _ = try await zip.begin { _ in }
        try await zip.write(ByteBuffer(string: "ab")) { _ in }
        await #expect(throws: FSError.self) { try await zip.end { _ in } }
    }
}

/// `/api/fs/zip` and the `/z` links it makes, over real HTTP, checked with Python's zipfile and Debian's unzip.
@Suite("ZIP downloads")
struct ZipDownloadTests {
    static func ask(_ s: TestServer, _ body: [String: Any], token: String?) async throws -> HTTPResult {
        var headers = [("Content-Type", "application/json")]
        if let token { headers.append(("Authorization", token)) }
        return try await s.request(.POST, "/api/fs/zip", headers: headers, body: try JSONSerialization.data(withJSONObject: body))
    }

    /// A client that stops reading is disconnected after `send_timeout` (which frees its ZIP place); an upload
    /// that pauses longer than that is not (nothing is being sent to its client meanwhile).
    @Test func aClientThatStopsReadingIsLetGo() async throws {
        try await withServer(adjust: { $0.sendTimeout = 1 }) { s in
            let t = try await s.login()
            try FileManager.default.createDirectory(atPath: s.files + "/big", withIntermediateDirectories: true)
            let size = 48 << 20
            try Data(repeating: 0x41, count: size).write(to: URL(fileURLWithPath: s.files + "/big/big.bin"))
            let (url, answer) = try await Self.link(s, ["dir": "/big"], token: t)
            let path = try #require(url, "\(answer.text)")
            let got = NIOLockedValueBox(0)
            try await withRawConnection(port: s.port, receiveBuffer: 64 * 1024) { fd in
                var wait = timeval(tv_sec: 20, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
                let head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                _ = Array(head.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                var total = 0
                var buffer = [UInt8](repeating: 0, count: 65536)
                func read() -> Int { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
                while total < 128 * 1024 { let n = read(); if n <= 0 { break }; total += n }
                sleep(4)  // reading nothing, longer than send_timeout
                while true { let n = read(); if n <= 0 { break }; total += n }
                got.withLockedValue { $0 = total }
            }
            let total = got.withLockedValue { $0 }
            #expect(total > 0 && total < size, "read \(total) bytes of a \(size)-byte ZIP: the connection was not closed")
            // The server is fine, and an upload pausing for longer than send_timeout goes through.
            let reply = NIOLockedValueBox("")
            try await withRawConnection(port: s.port) { fd in
                var wait = timeval(tv_sec: 20, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
                let head = "PUT /api/fs/put HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(t)\r\nFile-Path: /big/slow.txt\r\nContent-Length: 10\r\n\r\nhello"
                _ = Array(head.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                sleep(3)
                _ = Array("world".utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                reply.withLockedValue { $0 = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : "" }
            }
            let text = reply.withLockedValue { $0 }
            #expect(text.contains("\"code\":200"), "\(text)")
            #expect(s.dir.read("data/files/big/slow.txt") == "helloworld")
        }
    }

    /// The link of a ZIP (path and query), or nil with the refusal.
    static func link(_ s: TestServer, _ body: [String: Any], token: String?) async throws -> (String?, HTTPResult) {
        let r = try await ask(s, body, token: token)
        return ((r.data["url"] as? String).map(ShareTests.local), r)
    }

    /// What a ZIP holds, as Python's zipfile reads it (CRCs checked): name → SHA-256 of the bytes, or "dir".
    /// Also checks that every name is flagged UTF-8 and that unzip finds no error.
    static func contents(_ zip: Data, in dir: TempDir) async throws -> [String: String] {
        let path = dir.file("got-\(UUID().uuidString).zip")
        try zip.write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let out = try await Tool.run(["python3", "-c", """
            import sys, zipfile, hashlib, json
            z = zipfile.ZipFile(sys.argv[1])
            assert z.testzip() is None, 'a CRC is wrong'
            out = {}
            for i in z.infolist():
                assert i.flag_bits & 0x800, i.filename + ' is not flagged UTF-8'
                out[i.filename] = 'dir' if i.is_dir() else hashlib.sha256(z.read(i)).hexdigest()
            print(json.dumps(out))
            """, path])
        let tested = try await Tool.run(["unzip", "-tqq", path])
        #expect(!tested.contains("error"), "\(tested)")
        let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: String]
        return try #require(json, "\(out)")
    }

    static func sha(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    @Test func aTreeRoundTrips() async throws {
        try await withServer { s in
            let t = try await s.login()
            let big = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })
            try s.dir.write("data/files/tree/a.txt", "alpha")
            try s.dir.write("data/files/tree/测试/文件 名.txt", "中文内容")
            try s.dir.write("data/files/tree/sub/deeper/zero.txt", "")
            try FileManager.default.createDirectory(atPath: s.files + "/tree/空的", withIntermediateDirectories: true)
            try big.write(to: URL(fileURLWithPath: s.files + "/tree/sub/big.bin"))
            try s.dir.write("data/files/other.txt", "not asked for")
            let (url, answer) = try await Self.link(s, ["dir": "/", "names": ["tree"]], token: t)
            let z = try #require(url, "\(answer.text)")
            #expect(z.hasPrefix("/z/tree.zip?t="))
            #expect(answer.data["name"] as? String == "tree.zip")
            // No credentials needed: the link is signed.
            let head = try await s.request(.HEAD, z)
            let r = try await s.request(.GET, z)
            #expect(r.status == 200 && r.header("Content-Type") == "application/zip")
            #expect(r.header("Content-Length") == String(r.body.count) && head.header("Content-Length") == String(r.body.count))
            #expect(r.header("Content-Disposition")?.contains("filename*=UTF-8''tree.zip") == true)
            let got = try await Self.contents(r.body, in: s.dir)
            #expect(got == [
                "tree/": "dir", "tree/a.txt": Self.sha(Data("alpha".utf8)), "tree/测试/": "dir",
                "tree/测试/文件 名.txt": Self.sha(Data("中文内容".utf8)), "tree/sub/": "dir", "tree/sub/deeper/": "dir",
                "tree/sub/deeper/zero.txt": Self.sha(Data()), "tree/sub/big.bin": Self.sha(big), "tree/空的/": "dir",
            ])
            // Unpacked by unzip: the same bytes and names on disk, the files' times kept.
            let zipPath = s.dir.file("t.zip")
            try r.body.write(to: URL(fileURLWithPath: zipPath))
            let out = s.dir.file("unzipped")
            try await Tool.run(["unzip", "-q", zipPath, "-d", out])
            #expect(FileManager.default.contents(atPath: out + "/tree/测试/文件 名.txt") == Data("中文内容".utf8))
            #expect(FileManager.default.contents(atPath: out + "/tree/sub/big.bin") == big)
            let want = try FileManager.default.attributesOfItem(atPath: s.files + "/tree/sub/big.bin")[.modificationDate] as? Date
            let have = try FileManager.default.attributesOfItem(atPath: out + "/tree/sub/big.bin")[.modificationDate] as? Date
            #expect(abs((want?.timeIntervalSince1970 ?? 0) - (have?.timeIntervalSince1970 ?? -9)) < 1.01)

            // A selection: the items at the top, named after the folder.
            let (sel, _) = try await Self.link(s, ["dir": "/tree", "names": ["a.txt", "空的"]], token: t)
            #expect(sel?.hasPrefix("/z/tree.zip?") == true)
            let selected = try await Self.contents(try await s.request(.GET, try #require(sel)).body, in: s.dir)
            #expect(selected == ["a.txt": Self.sha(Data("alpha".utf8)), "空的/": "dir"])
            // A whole folder without names: its items at the top.
            let (whole, _) = try await Self.link(s, ["dir": "/tree/sub"], token: t)
            #expect(Set(try await Self.contents(try await s.request(.GET, try #require(whole)).body, in: s.dir).keys)
                    == ["big.bin", "deeper/", "deeper/zero.txt"])
            // Bad input: clear errors, no link.
            #expect(try await Self.ask(s, ["dir": "/tree", "names": ["nope.txt"]], token: t).message == "/tree/nope.txt: object not found")
            #expect(try await Self.ask(s, ["dir": "/tree", "names": ["../other.txt"]], token: t).code == 400)
            #expect(try await Self.ask(s, ["dir": "/nowhere"], token: t).code != 200)
            // A tampered link is refused.
            let tampered = z.replacingOccurrences(of: "?t=", with: "?t=x")
            #expect(try await s.request(.GET, tampered).status == 401)
            #expect(try await s.request(.GET, "/z/tree.zip").status == 401)
        }
    }

    /// The same rules as browsing: hidden names left out, folders behind another password left out, the
    /// folder password asked for, and the link ends when the user or the password changes.
    @Test func rulesApply() async throws {
        try await withServer { s in
            let t = try await s.login()
            for f in ["club/open.txt", "club/secret-plan.txt", "club/inner/deep.txt", "club/vault/gold.txt"] { try s.dir.write("data/files/" + f, f) }
            #expect(try await s.api("/admin/meta/create", ["path": "/club", "password": "club-pw", "p_sub": true, "hide": "^secret", "h_sub": true], token: t).code == 200)
            #expect(try await s.api("/admin/meta/create", ["path": "/club/vault", "password": "vault-pw", "p_sub": true], token: t).code == 200)
            let bob = try await s.addUser("bob", password: "bob-pass-1", permission: [])
            let bt = try await s.login("bob", "bob-pass-1")
            // No password: refused as a listing is.
            let refused = try await Self.ask(s, ["dir": "/club"], token: bt)
            #expect(refused.code == 403 && refused.message == Access.passwordMessage, "\(refused.text)")
            #expect(try await Self.ask(s, ["dir": "/club", "password": "wrong"], token: bt).code == 403)
            let (url, answer) = try await Self.link(s, ["dir": "/club", "password": "club-pw"], token: bt)
            let z = try #require(url, "\(answer.text)")
            let got = try await Self.contents(try await s.request(.GET, z).body, in: s.dir)
            // The hidden file and the folder behind its own password are not in it.
            #expect(Set(got.keys) == ["open.txt", "inner/", "inner/deep.txt"], "\(got.keys)")
            // The admin's ZIP has everything.
            let (all, _) = try await Self.link(s, ["dir": "/club"], token: t)
            #expect(Set(try await Self.contents(try await s.request(.GET, try #require(all)).body, in: s.dir).keys)
                    == ["open.txt", "secret-plan.txt", "inner/", "inner/deep.txt", "vault/", "vault/gold.txt"])

            // The folder's password changes: the link made with the old one stops.
            let rules = try await s.api("/admin/meta/list", token: t, method: .GET).data["content"] as? [[String: Any]] ?? []
            var rule = try #require(rules.first { $0["path"] as? String == "/club" })
            rule["password"] = "club-pw-2"
            #expect(try await s.api("/admin/meta/update", rule, token: t).code == 200)
            #expect(try await s.request(.GET, z).status == 403)
            rule["password"] = "club-pw"
            #expect(try await s.api("/admin/meta/update", rule, token: t).code == 200)
            #expect(try await s.request(.GET, z).status == 200)
            // The user is disabled, then their password changes: the link stops.
            var stored = try #require(try await s.state.store.user(id: bob.id))
            stored.user.disabled = true
            try await s.state.store.updateUser(stored)
            await s.state.usersChanged()
            #expect(try await s.request(.GET, z).status == 401)
            stored.user.disabled = false
            stored.user.passwordTimestamp += 10
            try await s.state.store.updateUser(stored)
            await s.state.usersChanged()
            let changed = try await s.request(.GET, z)
            #expect(changed.status == 401 && changed.text.contains("changed their password"), "\(changed.text)")
        }
    }

    /// The ticket in a ZIP link names the folder as its user sees it and proves the folder password with a
    /// keyed digest (nothing in the URL to try passwords against); `\\` in names is not a folder separator in
    /// the ZIP; selections are capped.
    @Test func ticketsAndNames() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/home/bob/club/back\\slash.txt", "bs")
            try s.dir.write("data/files/home/bob/club/back_slash.txt", "us")
            #expect(try await s.api("/admin/meta/create", ["path": "/home/bob/club", "password": "club-pw"], token: t).code == 200)
            _ = try await s.addUser("bob", password: "bob-pass-1", basePath: "/home/bob", permission: [])
            let bt = try await s.login("bob", "bob-pass-1")
            let (url, answer) = try await Self.link(s, ["dir": "/club", "password": "club-pw"], token: bt)
            let z = try #require(url, "\(answer.text)")
            let t64 = try #require(z.split(separator: "?")[1].split(separator: "&").first { $0.hasPrefix("t=") }?.dropFirst(2))
            let raw = try #require(Base64URL.decode(String(t64)))
            let ticket = try #require(try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any])
            #expect(ticket["d"] as? String == "/club", "\(ticket)")
            let g = try #require(ticket["g"] as? String)
            #expect(g == s.state.signer.digest("zip-guard\u{0}\(ticket["u"] as? Int ?? 0)\u{0}/home/bob/club\u{0}club-pw"))
            #expect(!g.isEmpty && g != Passwords.sha256Hex("club-pw") && !z.contains("club-pw"))
            let got = try await Self.contents(try await s.request(.GET, z).body, in: s.dir)
            // `\` becomes `_`; where that meets a name already there, the changed one is told apart.
            #expect(got == ["back_slash.txt": Self.sha(Data("us".utf8)), "back_slash (2).txt": Self.sha(Data("bs".utf8))], "\(got)")
            // A forged digest (the password's plain SHA-256) opens nothing, even with a valid sign.
            var forged = ticket
            forged["g"] = Passwords.sha256Hex("club-pw")
            let f64 = Base64URL.encode(try JSONSerialization.data(withJSONObject: forged), padded: false)
            let fsign = s.state.signer.sign(message: "zip:" + f64, expire: 0)
            #expect(try await s.request(.GET, "/z/club.zip?t=\(f64)&sign=\(URLPath.encode(fsign, keepSlash: false))").status == 403)
            // Too many names for one link: said at once.
            let many = try await Self.ask(s, ["dir": "/", "names": (0...ZipRoutes.maxNames).map { "n\($0)" }], token: t)
            #expect(many.code == 400 && many.message.contains("too many items"), "\(many.text)")
        }
    }

    /// Files of a 123 Open storage are streamed into the ZIP through their links.
    @Test func cloudFilesAreStreamedIn() async throws {
        try await withCloud { s, emu, t in
            let film = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            _ = try await emu.seed(path: "/album/film.mkv", data: film)
            _ = try await emu.seed(path: "/album/notes/n.txt", data: Data("notes".utf8))
            let (url, answer) = try await Self.link(s, ["dir": "/123", "names": ["album"]], token: t)
            let r = try await s.request(.GET, try #require(url, "\(answer.text)"))
            #expect(r.status == 200 && r.header("Content-Length") == String(r.body.count))
            let got = try await Self.contents(r.body, in: s.dir)
            #expect(got == ["album/": "dir", "album/film.mkv": Self.sha(film), "album/notes/": "dir", "album/notes/n.txt": Self.sha(Data("notes".utf8))])
        }
    }
}
