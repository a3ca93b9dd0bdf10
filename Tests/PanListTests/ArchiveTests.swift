import Foundation
import Testing
@testable import PanListCore
@testable import PanListServer
import PanListArchive

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

    /// An extraction writes only where its creator could upload: a name hidden at the destination, a folder
    /// behind another password, are skipped ("not found" whether or not something is there); a folder rule
    /// granting write stands in for the permission bit. The archive's password leaves the store with the task.
    @Test func extractionKeepsToTheDestinationsRules() async throws {
        try await withServer { s in
            let t = try await s.login()
            try await Self.python("""
                import sys, zipfile
                z = zipfile.ZipFile(sys.argv[1], 'w')
                for name in ['ok.txt', 'secret.txt', 'secret-new.txt', 'sub/fine.txt', 'sub/secret-2.txt', 'vault/gold.txt', 'keep/in/deep.txt', 'guarded.txt']:
                    z.writestr(name, 'from the archive: ' + name)
                z.close()
                z = zipfile.ZipFile(sys.argv[2], 'w')
                for name in ['drop/secret-3.txt', 'drop/vault/top.txt', 'drop/keep/in/x.txt', 'drop/fine-3.txt']:
                    z.writestr(name, 'from the archive: ' + name)
                z.close()
                """, [s.files + "/a.zip", s.files + "/b.zip"])
            try s.dir.write("data/files/drop/secret.txt", "old")
            try s.dir.write("data/files/drop/sub/fine.txt", "mine")
            try s.dir.write("data/files/drop/guarded.txt", "guarded")
            try FileManager.default.createDirectory(atPath: s.files + "/drop/vault", withIntermediateDirectories: true)
            #expect(try await s.api("/admin/meta/create", ["path": "/drop", "write": true, "w_sub": true, "hide": "^secret", "h_sub": true], token: t).code == 200)
            #expect(try await s.api("/admin/meta/create", ["path": "/drop/vault", "password": "vault-pw", "p_sub": true], token: t).code == 200)
            // A password for /drop/keep itself only: making a folder in it needs the password as an upload would.
            #expect(try await s.api("/admin/meta/create", ["path": "/drop/keep", "password": "keep-pw", "p_sub": false], token: t).code == 200)
            #expect(try await s.api("/admin/meta/create", ["path": "/drop/guarded.txt", "password": "file-pw"], token: t).code == 200)
            // No write bit: the rule on /drop grants it.
            _ = try await s.addUser("bob", password: "bob-pass-1", permission: [.readArchives, .decompress])
            let bt = try await s.login("bob", "bob-pass-1")
            let queued = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/drop", "name": ["a.zip"],
                                                                    "archive_pass": "not-needed-here", "overwrite": true], token: bt)
            let id = try #require((queued.data["tasks"] as? [[String: Any]])?.first?["id"] as? String, "\(queued.text)")
            let done = try await Self.finished(s, id, token: bt)
            let status = done["status"] as? String ?? ""
            #expect(done["state"] as? Int == 2, "\(done)")
            #expect(s.dir.read("data/files/drop/ok.txt") == "from the archive: ok.txt")
            // A file there is not replaced: that needs the write bit itself, as for an upload.
            #expect(s.dir.read("data/files/drop/sub/fine.txt") == "mine")
            #expect(status.contains("sub/fine.txt: already there; replacing it needs the write permission"), "\(status)")
            // A name guarded by a password of its own.
            #expect(s.dir.read("data/files/drop/guarded.txt") == "guarded")
            #expect(status.contains("guarded.txt: \(Access.passwordMessage)"), "\(status)")
            // Hidden names: not written, not overwritten, said alike whether or not something was there.
            #expect(s.dir.read("data/files/drop/secret.txt") == "old")
            #expect(!s.dir.exists("data/files/drop/secret-new.txt") && !s.dir.exists("data/files/drop/sub/secret-2.txt"))
            #expect(status.contains("secret.txt: not found") && status.contains("secret-new.txt: not found") && status.contains("sub/secret-2.txt: not found"), "\(status)")
            // Behind another folder password: not entered.
            #expect(!s.dir.exists("data/files/drop/vault/gold.txt"))
            #expect(status.contains("vault/gold.txt: \(Access.passwordMessage)"), "\(status)")
            #expect(!s.dir.exists("data/files/drop/keep/in"), "a folder was made inside a guarded one")
            #expect(status.contains("keep/in/deep.txt: \(Access.passwordMessage)"), "\(status)")
            // Into the top folder itself: the same rules, one level further down.
            _ = try await s.addUser("carol", password: "carol-pass-1", permission: [.readArchives, .decompress, .write])
            let ct = try await s.login("carol", "carol-pass-1")
            let top = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/", "name": ["b.zip"], "overwrite": true], token: ct)
            let tid = try #require((top.data["tasks"] as? [[String: Any]])?.first?["id"] as? String, "\(top.text)")
            let topStatus = try await Self.finished(s, tid, token: ct)["status"] as? String ?? ""
            #expect(s.dir.read("data/files/drop/fine-3.txt") == "from the archive: drop/fine-3.txt")
            #expect(!s.dir.exists("data/files/drop/secret-3.txt") && !s.dir.exists("data/files/drop/vault/top.txt") && !s.dir.exists("data/files/drop/keep/in"), "\(topStatus)")
            #expect(topStatus.contains("drop/secret-3.txt: not found") && topStatus.contains("drop/vault/top.txt: \(Access.passwordMessage)"), "\(topStatus)")
            // The task is listed with bob's finished tasks (as the Tasks page reads them), without its password.
            let listed = try await s.api("/task/decompress/done", token: bt, method: .GET)
            #expect((listed.json["data"] as? [[String: Any]])?.map { $0["id"] as? String } == [id], "\(listed.text)")
            #expect(!listed.text.contains("not-needed-here"))
            // The archive's password is no longer in the store.
            let record = try #require(try await s.state.store.task(id: id))
            #expect(!record.params.contains("not-needed-here"), "\(record.params)")
            // The admin's extraction has everything.
            let all = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/drop", "name": ["a.zip"], "overwrite": true], token: t)
            let aid = try #require((all.data["tasks"] as? [[String: Any]])?.first?["id"] as? String, "\(all.text)")
            #expect(try await Self.finished(s, aid, token: t)["state"] as? Int == 2)
            #expect(s.dir.read("data/files/drop/vault/gold.txt") == "from the archive: vault/gold.txt")
            #expect(s.dir.read("data/files/drop/secret.txt") == "from the archive: secret.txt")
            #expect(s.dir.read("data/files/drop/sub/fine.txt") == "from the archive: sub/fine.txt")
        }
    }

    /// What the listing shows would stop an extraction stops it before anything is queued: a symbolic link
    /// pointing out of the destination.
    @Test func aLinkOutIsRefusedBeforeWriting() async throws {
        try await withServer { s in
            let t = try await s.login()
            try await Self.python("""
                import sys, tarfile, io
                with tarfile.open(sys.argv[1], 'w') as tar:
                    data = b'fine'
                    info = tarfile.TarInfo('ok.txt'); info.size = len(data); tar.addfile(info, io.BytesIO(data))
                    link = tarfile.TarInfo('out'); link.type = tarfile.SYMTYPE; link.linkname = '../../etc'; tar.addfile(link)
                """, [s.files + "/l.tar"])
            try FileManager.default.createDirectory(atPath: s.files + "/out", withIntermediateDirectories: true)
            let r = try await s.api("/fs/archive/decompress", ["src_dir": "/", "dst_dir": "/out", "name": ["l.tar"]], token: t)
            #expect(r.code == 400 && r.message.contains("\"out\""), "\(r.text)")
            #expect(s.dir.allEntries("data/files/out").isEmpty)
            let tasks = try await s.api("/task/decompress/undone", token: t, method: .GET)
            #expect((tasks.json["data"] as? [Any])?.isEmpty != false, "\(tasks.text)")
        }
    }

    /// `/ae` without a sign follows sign_all as `/d` does: only credentials stand in for the sign.
    @Test func memberLinksFollowSignAll() async throws {
        try await withServer { s in
            try await Self.makeZip(s.files + "/a.zip")
            try await s.setGuest(enabled: true, permission: [.readArchives])
            let bare = try await s.request(.GET, "/ae/a.zip?inner=docs/readme.txt")
            #expect(bare.status == 401 && bare.text.contains("sign missing"), "\(bare.status) \(bare.text)")
            try await s.setSetting(SettingKey.signAll, "false")
            #expect(try await s.request(.GET, "/ae/a.zip?inner=docs/readme.txt").text == "hello archive\n")
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

/// The parts that keep archive work bounded, on their own.
@Suite("Archive plumbing")
struct ArchivePlumbingTests {
    @Test func busySlotsRefuseOneMore() throws {
        let slots = BusySlots(2, what: "things")
        let a = try slots.take()
        var b: BusySlots.Slot? = try slots.take()
        #expect(throws: FSError.self) { try slots.take() }
        a.release()
        a.release()  // once only
        #expect(slots.inUse == 1)
        _ = b
        b = nil  // dropped: given back
        #expect(slots.inUse == 0)
        _ = try slots.take()
    }

    /// A consumer that takes nothing lets the producer go after `stall`; a cancelled producer stops at once.
    @Test func aPipeNobodyReadsLetsTheProducerGo() throws {
        let pipe = ChunkPipe(stall: .seconds(2))
        let bytes = [UInt8](repeating: 7, count: 16)
        try bytes.withUnsafeBytes { b in
            for _ in 0..<ChunkPipe.depth { try pipe.send(b, isCancelled: { false }) }
            let start = ContinuousClock.now
            #expect(throws: ChunkPipe.Stalled.self) { try pipe.send(b, isCancelled: { false }) }
            #expect(ContinuousClock.now - start >= .seconds(2))
            let cancelledAt = ContinuousClock.now
            #expect(throws: ArchiveError.self) { try pipe.send(b, isCancelled: { true }) }
            #expect(ContinuousClock.now - cancelledAt < .seconds(2))
        }
    }

    /// Extractions past the pool's threads wait in `Turns`, and a cancelled one leaves the queue at once.
    @Test func aCancelledWaiterLeavesTheQueueAtOnce() async throws {
        let turns = Turns(1)
        let (release, hold) = AsyncStream<Void>.makeStream()
        let holder = Task { try await turns.run { for await _ in release {} } }
        try await Task.sleep(for: .milliseconds(200))
        let waiter = Task { try await turns.run { 1 } }
        try await Task.sleep(for: .milliseconds(200))
        #expect(turns.waiting == 1)
        let start = ContinuousClock.now
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(turns.waiting == 0)
        hold.finish()
        try await holder.value
        #expect(try await turns.run { 2 } == 2)
    }

    @Test func theListingCacheIsBoundedByBytes() {
        let cache = Archives.ListingCache()
        let long = String(repeating: "n", count: 1000)
        func listing(_ n: Int) -> [ArchiveMember] { (0..<n).map { ArchiveMember(path: "\(long)/\($0)") } }
        let key = { (i: Int) in Archives.ListingCache.Key(path: "/a\(i)", size: 1, modified: Date(timeIntervalSince1970: 0), password: "") }
        // Too big for it: not kept.
        cache.put(key(0), listing(Archives.ListingCache.maxWeight / 2 / 1000 + 1))
        #expect(cache.get(key(0)) == nil)
        // Many that fit one by one: the oldest go.
        for i in 1...8 { cache.put(key(i), listing(Archives.ListingCache.maxWeight / 4 / 1200)) }
        #expect(cache.weight <= Archives.ListingCache.maxWeight)
        #expect(cache.get(key(1)) == nil && cache.get(key(8)) != nil)
    }

    /// The one-pass tree is the tree of `children`, folder by folder (implied folders, a later member winning).
    @Test func theTreeIsMadeInOnePass() throws {
        let members = [
            ArchiveMember(path: "b/c/d.txt", size: 4), ArchiveMember(path: "a.txt", size: 1), ArchiveMember(path: "b", isDirectory: true),
            ArchiveMember(path: "b/e.txt", size: 2), ArchiveMember(path: "x/y", isDirectory: true), ArchiveMember(path: "a.txt", size: 9),
        ]
        let undated = Date(timeIntervalSince1970: 0)
        func slow(_ folder: String) throws -> [ArchiveRoutes.Node] {
            try ArchiveRoutes.children(of: folder, in: members).map { e in
                ArchiveRoutes.Node(name: e.name, size: e.size, isDir: e.isDir, modified: TimeFormat.rfc3339(e.modified ?? undated),
                                   children: e.isDir ? try slow(folder.isEmpty ? e.name : folder + "/" + e.name) : nil)
            }
        }
        func flat(_ nodes: [ArchiveRoutes.Node], _ at: String = "") -> [String] {
            nodes.flatMap { n in ["\(at)/\(n.name) \(n.size) \(n.isDir)"] + flat(n.children ?? [], at + "/" + n.name) }
        }
        let fast = flat(ArchiveRoutes.tree(members, undated: undated))
        #expect(fast == flat(try slow("")))
        #expect(fast.contains("/a.txt 9 false") && fast.contains("/b/c/d.txt 4 false") && fast.contains("/x/y 0 true"))
    }
}
