import Foundation
import Testing
@testable import PanListCore
@testable import PanListServer

/// Inside archives over real HTTP: `/api/fs/archive/{meta,list,decompress}`, `/api/public/archive_extensions`,
/// `/ae` member links; archives made by Python's zipfile and tarfile, bsdtar and 7-Zip.
@Suite("Archives")
struct ArchiveTests {
    static func python(_ script: String, _ args: [String]) async throws {
        try await Tool.run(["python3", "-c", script] + args)
    }

    /// A zip at `path` (on disk) with a CJK folder, a nested file and a 300 KB binary.
    static func makeZip(_ path: String) async throws {
        try await python("""
            import sys, zipfile
            z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)
            z.writestr('docs/readme.txt', 'hello archive\\n')
            z.writestr('测试/文件.txt', '中文内容\\n' * 100)
            z.writestr('top.bin', bytes(range(256)) * 1200)
            z.close()
            """, [path])
    }

    static func items(_ r: HTTPResult) -> [[String: Any]] { r.data["content"] as? [[String: Any]] ?? [] }
    static func names(_ r: HTTPResult) -> [String] { items(r).compactMap { $0["name"] as? String } }

    /// Waits for a task to end; its last state.
    static func finished(_ s: TestServer, _ id: String, token: String) async throws -> [String: Any] {
        for _ in 0..<300 {
            let r = try await s.api("/task/decompress/info?tid=\(id)", token: token, method: .GET)
            if let state = r.data["state"] as? Int, [2, 4, 7].contains(state) { return r.data }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FSError.internalError("task \(id) did not end")
    }

    @Test func browseAndDownloadMembers() async throws {
        try await withServer { s in
            let t = try await s.login()
            try await Self.makeZip(s.files + "/a.zip")
            let ext = try await s.request(.GET, "/api/public/archive_extensions")
            #expect((ext.json["data"] as? [String])?.contains("7z") == true)
            let meta = try await s.api("/fs/archive/meta", ["path": "/a.zip"], token: t)
            #expect(meta.code == 200 && meta.data["encrypted"] as? Bool == false, "\(meta.text)")
            let tree = meta.data["content"] as? [[String: Any]] ?? []
            #expect(tree.compactMap { $0["name"] as? String } == ["docs", "测试", "top.bin"])
            #expect((tree.first?["children"] as? [[String: Any]])?.first?["name"] as? String == "readme.txt")
            // A folder the zip only implies lists, with the archive's time.
            let top = try await s.api("/fs/archive/list", ["path": "/a.zip", "inner_path": "/"], token: t)
            #expect(Self.names(top) == ["docs", "测试", "top.bin"] && top.data["total"] as? Int == 3)
            let cjk = try await s.api("/fs/archive/list", ["path": "/a.zip", "inner_path": "/测试"], token: t)
            let file = try #require(Self.items(cjk).first)
            #expect(file["name"] as? String == "文件.txt" && file["size"] as? Int == 1300)
            // The member's signed link, without credentials.
            let sign = try #require(file["sign"] as? String)
            let inner = "%E6%B5%8B%E8%AF%95/%E6%96%87%E4%BB%B6.txt"
            let got = try await s.request(.GET, "/ae/a.zip?inner=\(inner)&sign=\(URLPath.encode(sign, keepSlash: false))")
            #expect(got.status == 200 && got.text == String(repeating: "中文内容\n", count: 100), "\(got.status) \(got.text.prefix(200))")
            #expect(got.header("Content-Length") == "1300")
            // The sign is for that member only; no sign and no credentials: refused.
            #expect(try await s.request(.GET, "/ae/a.zip?inner=top.bin&sign=\(URLPath.encode(sign, keepSlash: false))").status == 401)
            #expect(try await s.request(.GET, "/ae/a.zip?inner=top.bin").status == 401)
            let bin = try await s.request(.GET, "/ap/a.zip?inner=top.bin", headers: [("Authorization", t)])
            #expect(bin.body == Data((0..<1200).flatMap { _ in (0..<256).map { UInt8($0) } }))
            // Bad input: clear errors.
            #expect(try await s.api("/fs/archive/list", ["path": "/a.zip", "inner_path": "/nope"], token: t).message == "/nope: object not found")
            #expect(try await s.api("/fs/archive/list", ["path": "/a.zip", "inner_path": "/top.bin"], token: t).message.contains("not a folder"))
            #expect(try await s.request(.GET, "/ae/a.zip?inner=docs", headers: [("Authorization", t)]).status == 400)
            try s.dir.write("data/files/not.zip", "just text")
            let bad = try await s.api("/fs/archive/meta", ["path": "/not.zip"], token: t)
            #expect(bad.code == 400 && bad.message.contains("not an archive"), "\(bad.text)")

            // Permission bit 12.
            _ = try await s.addUser("bob", password: "bob-pass-1", permission: [])
            let bt = try await s.login("bob", "bob-pass-1")
            let refused = try await s.api("/fs/archive/list", ["path": "/a.zip"], token: bt)
            #expect(refused.code == 403 && refused.message.contains("look inside archives"), "\(refused.text)")
            #expect(try await s.request(.GET, "/ae/a.zip?inner=top.bin", headers: [("Authorization", bt)]).status == 403)
            _ = try await s.addUser("carol", password: "carol-pass-1", permission: [.readArchives])
            let ct = try await s.login("carol", "carol-pass-1")
            #expect(Self.names(try await s.api("/fs/archive/list", ["path": "/a.zip"], token: ct)) == ["docs", "测试", "top.bin"])
        }
    }

    @Test func formatsAndPasswords() async throws {
        try await withServer { s in
            let t = try await s.login()
            let src = s.dir.file("src")
            try s.dir.write("src/dir/inner.txt", "inner text")
            try s.dir.write("src/名字.txt", "name text")
            try await Tool.run(["tar", "-czf", s.files + "/t.tar.gz", "-C", src, "."])
            try await Tool.run(["bsdtar", "--format", "7zip", "-cf", s.files + "/s.7z", "-C", src, "."])
            try await Tool.run(["bsdtar", "--format", "zip", "--options", "zip:encryption=aes256", "--passphrase", "sesame",
                                "-cf", s.files + "/locked.zip", "-C", src, "."])
            for name in ["t.tar.gz", "s.7z"] {
                let top = try await s.api("/fs/archive/list", ["path": "/" + name], token: t)
                #expect(Self.names(top) == ["dir", "名字.txt"], "\(name): \(top.text)")
                let got = try await s.request(.GET, "/ae/\(name)?inner=dir/inner.txt", headers: [("Authorization", t)])
                #expect(got.text == "inner text", "\(name)")
            }
            // Encrypted: the password is asked, a wrong one said, the right one opens it.
            let none = try await s.request(.GET, "/ae/locked.zip?inner=dir/inner.txt", headers: [("Authorization", t)])
            #expect(none.status == 403 && none.message.contains("password"), "\(none.text)")
            let wrong = try await s.request(.GET, "/ae/locked.zip?inner=dir/inner.txt&pass=nope", headers: [("Authorization", t)])
            #expect(wrong.status == 403 && wrong.message.contains("wrong"), "\(wrong.text)")
            let right = try await s.request(.GET, "/ae/locked.zip?inner=dir/inner.txt&pass=sesame", headers: [("Authorization", t)])
            #expect(right.status == 200 && right.text == "inner text")
            #expect(try await s.api("/fs/archive/meta", ["path": "/locked.zip", "archive_pass": "sesame"], token: t).data["encrypted"] as? Bool == true)
        }
    }

    @Test func decompressAsATask() async throws {
        try await withServer { s in
            let t = try await s.login()
            try await Self.makeZip(s.files + "/a.zip")
            try FileManager.default.createDirectory(atPath: s.files + "/out", withIntermediateDirectories: true)
            // Into a new folder named after the archive.
            let queued = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/out", "name": ["a.zip"],
                                                                    "put_into_new_dir": true], token: t)
            let id = try #require((queued.data["tasks"] as? [[String: Any]])?.first?["id"] as? String, "\(queued.text)")
            let done = try await Self.finished(s, id, token: t)
            #expect(done["state"] as? Int == 2, "\(done)")
            #expect(s.dir.read("data/files/out/a/测试/文件.txt") == String(repeating: "中文内容\n", count: 100))
            #expect(s.dir.read("data/files/out/a/docs/readme.txt") == "hello archive\n")
            #expect(FileManager.default.contents(atPath: s.files + "/out/a/top.bin")?.count == 307_200)
            // One folder of it, into an existing folder; a file already there is kept without overwrite.
            try s.dir.write("data/files/out/readme.txt", "mine")
            let part = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/out", "name": ["a.zip"],
                                                                  "inner_path": "/docs"], token: t)
            let pid = try #require((part.data["tasks"] as? [[String: Any]])?.first?["id"] as? String, "\(part.text)")
            let pdone = try await Self.finished(s, pid, token: t)
            #expect(pdone["state"] as? Int == 2 && (pdone["status"] as? String ?? "").contains("kept"), "\(pdone["status"] ?? "")")
            #expect(s.dir.read("data/files/out/readme.txt") == "mine")

            // An unsafe archive is refused before anything is queued or written.
            try await Self.python("""
                import sys, zipfile
                z = zipfile.ZipFile(sys.argv[1], 'w')
                z.writestr('ok.txt', 'fine')
                z.writestr('../evil.txt', 'escaped')
                z.close()
                """, [s.files + "/evil.zip"])
            let evil = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/out", "name": ["evil.zip"]], token: t)
            #expect(evil.code == 400 && evil.message.contains("evil.txt"), "\(evil.text)")
            #expect(!s.dir.exists("data/files/evil.txt") && !s.dir.exists("data/files/out/ok.txt"))

            // A bomb: 1 GiB of zeros deflated stops the task, and no part of the file stays.
            try await Self.python("""
                import sys, zipfile
                z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)
                with z.open('zeros.bin', 'w', force_zip64=True) as f:
                    block = bytes(1 << 20)
                    for _ in range(1024): f.write(block)
                z.close()
                """, [s.files + "/bomb.zip"])
            let bomb = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/out", "name": ["bomb.zip"],
                                                                  "put_into_new_dir": true], token: t)
            let bid = try #require((bomb.data["tasks"] as? [[String: Any]])?.first?["id"] as? String, "\(bomb.text)")
            let bdone = try await Self.finished(s, bid, token: t)
            #expect(bdone["state"] as? Int != 2 && (bdone["error"] as? String ?? "").contains("expands"), "\(bdone)")
            #expect(!s.dir.exists("data/files/out/bomb/zeros.bin"))
            #expect(s.dir.allEntries("data/temp").filter { !$0.hasSuffix("/") && !$0.contains(".panlist-temp") }.isEmpty,
                    "\(s.dir.allEntries("data/temp"))")

            // Bit 13 is needed to extract.
            _ = try await s.addUser("dave", password: "dave-pass-1", permission: [.readArchives, .write])
            let dt = try await s.login("dave", "dave-pass-1")
            let refused = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/out", "name": ["a.zip"]], token: dt)
            #expect(refused.code == 403 && refused.message.contains("extract archives"), "\(refused.text)")
        }
    }

    /// A zip on a 123 Open storage is listed with Range requests: a small part of it is fetched.
    @Test func aRemoteZipIsListedWithRanges() async throws {
        try await withCloud { s, emu, t in
            let path = s.dir.file("big.zip")
            try await Self.python("""
                import sys, os, zipfile
                z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_STORED)
                for i in range(4): z.writestr(f'part{i}.bin', os.urandom(5 << 20))
                z.writestr('notes/read.txt', 'remote member')
                z.close()
                """, [path])
            let data = try #require(FileManager.default.contents(atPath: path))
            _ = try await emu.seed(path: "/arch/big.zip", data: data)
            let before = await emu.cdnStats().bytes
            let top = try await s.api("/fs/archive/list", ["path": "/123/arch/big.zip"], token: t)
            #expect(Self.names(top) == ["notes", "part0.bin", "part1.bin", "part2.bin", "part3.bin"], "\(top.text)")
            let fetched = await emu.cdnStats().bytes - before
            #expect(fetched > 0 && fetched < 2 << 20, "listing a \(data.count)-byte zip fetched \(fetched) bytes")
            let got = try await s.request(.GET, "/ae/123/arch/big.zip?inner=notes/read.txt", headers: [("Authorization", t)])
            #expect(got.status == 200 && got.text == "remote member")
        }
    }
}
