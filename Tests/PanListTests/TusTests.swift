import AsyncHTTPClient
import NIOHTTP1
import Open123Emulator
import Crypto
import Foundation
import NIOCore
import Testing
@testable import PanListCore
@testable import PanListServer
@testable import PanListStore

/// Resumable uploads: tus 1.0 at /api/fs/tus/ and OpenList's chunked routes at /api/fs/multipart/.
@Suite("Resumable uploads")
struct TusTests {
    func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    @Test func createPatchInChunksHeadAndTheBadCases() async throws {
        try await withServer { s in
            let t = try await s.login()
            let content = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 11) })
            let v = ("Tus-Resumable", "1.0.0")
            let opts = try await s.request(.OPTIONS, "/api/fs/tus/")
            #expect(opts.status == 204 && opts.headers.first(name: "Tus-Extension")?.contains("creation") == true)
            #expect(opts.headers.first(name: "Tus-Checksum-Algorithm")?.contains("sha1") == true)

            // No version: 412.
            let noVersion = try await s.request(.POST, "/api/fs/tus/", headers: [("Authorization", t), ("Upload-Length", "10")])
            #expect(noVersion.status == 412 && noVersion.headers.first(name: "Tus-Version") == "1.0.0")
            // No login: 401.
            let anonymous = try await s.request(.POST, "/api/fs/tus/", headers: [v, ("Upload-Length", "10"), ("Upload-Metadata", "path " + b64("/x.bin"))])
            #expect(anonymous.status == 401, "\(anonymous.status)")

            let created = try await s.request(.POST, "/api/fs/tus/", headers: [("Authorization", t), v, ("Upload-Length", String(content.count)),
                                                                                ("Upload-Metadata", "path \(b64("/up/t.bin")),lastModified \(b64("1700000000000"))")])
            #expect(created.status == 201, "\(String(decoding: created.body, as: UTF8.self))")
            let location = try #require(created.headers.first(name: "Location"))
            #expect(created.headers.first(name: "Upload-Expires")?.hasSuffix("GMT") == true)
            // A Local target: the bytes are staged beside it (the nearest folder that exists), hidden from listings.
            let staging = "data/files/.panlist-upload-" + (location.split(separator: "/").last.map(String.init) ?? "")
            #expect(s.dir.exists(staging))
            let listed = try await s.api("/fs/list", ["path": "/", "refresh": true], token: t)
            #expect(listed.code == 200 && (listed.data["content"] as? [[String: Any]] ?? []).isEmpty, "\(listed.text)")

            func patch(_ offset: Int, _ bytes: Data, _ extra: [(String, String)] = []) async throws -> HTTPResult {
                try await s.request(.PATCH, location, headers: [("Authorization", t), v, ("Content-Type", "application/offset+octet-stream"),
                                                                ("Upload-Offset", String(offset))] + extra, body: bytes)
            }
            let first = try await patch(0, content.prefix(100_000))
            #expect(first.status == 204 && first.headers.first(name: "Upload-Offset") == "100000")
            // Wrong offset: 409, nothing changes.
            #expect(try await patch(50_000, content[50_000..<100_000]).status == 409)
            // A wrong checksum: 460, the chunk discarded.
            let wrong = Data(Insecure.SHA1.hash(data: Data("something else".utf8))).base64EncodedString()
            #expect(try await patch(100_000, content[100_000..<200_000], [("Upload-Checksum", "sha1 " + wrong)]).status == 460)
            let head = try await s.request(.HEAD, location, headers: [("Authorization", t), v])
            #expect(head.status == 200 && head.headers.first(name: "Upload-Offset") == "100000" && head.headers.first(name: "Upload-Length") == "300000")
            // Another user does not see it.
            _ = try await s.addUser("eve", password: "eve-pass-1", permission: [.write])
            let te = try await s.login("eve", "eve-pass-1")
            #expect(try await s.request(.HEAD, location, headers: [("Authorization", te), v]).status == 404)
            // Beyond the declared length: 413.
            #expect(try await patch(100_000, content[100_000...] + Data([1, 2, 3])).status == 413)
            // Nothing visible under the name yet.
            #expect(!s.dir.exists("data/files/up/t.bin"))
            let right = Data(Insecure.SHA1.hash(data: content[100_000...])).base64EncodedString()
            let last = try await patch(100_000, content[100_000...], [("Upload-Checksum", "sha1 " + right)])
            #expect(last.status == 204 && last.headers.first(name: "Upload-Offset") == "300000")
            #expect(FileManager.default.contents(atPath: s.files + "/up/t.bin") == content)
            #expect(!s.dir.exists(staging) && s.dir.allEntries("data/temp/uploads").isEmpty)
            let mtime = try FileManager.default.attributesOfItem(atPath: s.files + "/up/t.bin")[.modificationDate] as? Date
            #expect(mtime?.timeIntervalSince1970 == 1_700_000_000)
            // Once complete, more bytes are refused (410).
            #expect(try await patch(300_000, Data([1])).status == 410)

            // Terminated: gone.
            let other = try await s.request(.POST, "/api/fs/tus/", headers: [("Authorization", t), v, ("Upload-Length", "5"),
                                                                              ("Upload-Metadata", "filename \(b64("o.txt")),dir \(b64("/up"))")])
            let otherLocation = try #require(other.headers.first(name: "Location"))
            #expect(try await s.request(.DELETE, otherLocation, headers: [("Authorization", t), v]).status == 204)
            #expect(try await s.request(.HEAD, otherLocation, headers: [("Authorization", t), v]).status == 410)
        }
    }

    /// Two PATCHes at the same offset at once: one is taken, the other answers 409; the file is the first's bytes.
    /// An expired session is swept with its spool.
    @Test func concurrentPatchesOneWinsAndExpiredSessionsAreSwept() async throws {
        try await withServer { s in
            let t = try await s.login()
            let v = ("Tus-Resumable", "1.0.0")
            let content = Data((0..<4_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let created = try await s.request(.POST, "/api/fs/tus/", headers: [("Authorization", t), v, ("Upload-Length", String(content.count)),
                                                                                ("Upload-Metadata", "path \(b64("/race.bin"))")])
            let location = try #require(created.headers.first(name: "Location"))
            // Different bytes from each: the file must be one of them whole, the one answered 204.
            let other = Data(content.map { $0 ^ 0xFF })
            let statuses = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for (i, body) in [content, other].enumerated() {
                    group.addTask {
                        (i, try await s.request(.PATCH, location, headers: [("Authorization", t), v, ("Content-Type", "application/offset+octet-stream"),
                                                                            ("Upload-Offset", "0")], body: body).status)
                    }
                }
                var out: [Int: Int] = [:]
                for try await (i, st) in group { out[i] = st }
                return out
            }
            #expect(statuses.values.sorted() == [204, 409], "\(statuses)")
            let winner = statuses[0] == 204 ? content : other
            #expect(FileManager.default.contents(atPath: s.files + "/race.bin") == winner, "the file mixes both requests' bytes")

            let stale = try await s.request(.POST, "/api/fs/tus/", headers: [("Authorization", t), v, ("Upload-Length", "100"),
                                                                              ("Upload-Metadata", "path \(b64("/stale.bin"))")])
            let id = try #require(stale.headers.first(name: "Location")?.split(separator: "/").last.map(String.init))
            #expect(s.dir.exists("data/files/.panlist-upload-" + id))
            var row = try #require(try await s.state.store.uploadSession(id: id))
            row.expires_ms = 1
            try await s.state.store.deleteUploadSession(id: id)
            try await s.state.store.insertUploadSession(row)
            await s.state.sweepUploads(orphans: false)
            #expect(try await s.state.store.uploadSession(id: id) == nil)
            #expect(!s.dir.exists("data/files/.panlist-upload-" + id))
        }
    }

    func create(_ s: TestServer, _ t: String, _ path: String, size: Int, _ extra: [(String, String)] = [], meta: String = "") async throws -> HTTPResult {
        try await s.request(.POST, "/api/fs/tus/", headers: [("Authorization", t), ("Tus-Resumable", "1.0.0"), ("Upload-Length", String(size)),
                                                              ("Upload-Metadata", "path \(b64(path))" + meta)] + extra)
    }

    /// The limits and checks of a new upload: permission, overwrite, a folder in the way, declared size above
    /// the setting or the free space, sessions per user, a declared hash that does not match the file.
    @Test func limitsAndRefusals() async throws {
        try await withServer { s in
            let t = try await s.login()
            try FileManager.default.createDirectory(atPath: s.files + "/dir", withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: s.files + "/have.txt", contents: Data("old".utf8))
            // A user who may not write: 403.
            _ = try await s.addUser("reader", password: "reader-pass-1", permission: [])
            let tr = try await s.login("reader", "reader-pass-1")
            #expect(try await create(s, tr, "/x.bin", size: 10).status == 403)
            // A folder in the way: 409; an existing file with overwrite false: 409.
            #expect(try await create(s, t, "/dir", size: 10).status == 409)
            #expect(try await create(s, t, "/have.txt", size: 3, meta: ",overwrite \(b64("false"))").status == 409)
            // Larger than the free space of the Local storage: 413, nothing made.
            #expect(try await create(s, t, "/huge.bin", size: 1 << 60).status == 413)
            // Larger than the setting: 413; OPTIONS says the limit.
            _ = try await s.api("/admin/setting/save", [["key": "upload_max_size_gb", "value": "1"]], token: t)
            #expect(try await create(s, t, "/big.bin", size: (1 << 30) + 1).status == 413)
            #expect(try await s.request(.OPTIONS, "/api/fs/tus/").headers.first(name: "Tus-Max-Size") == String(1 << 30))
            // Sessions per user.
            _ = try await s.api("/admin/setting/save", [["key": "upload_sessions_per_user", "value": "2"]], token: t)
            #expect(try await create(s, t, "/a.bin", size: 10).status == 201)
            #expect(try await create(s, t, "/b.bin", size: 10).status == 201)
            #expect(try await create(s, t, "/c.bin", size: 10).status == 429)
            // A declared MD5 that the bytes do not have: 460 on the last PATCH, nothing under the name.
            _ = try await s.api("/admin/setting/save", [["key": "upload_sessions_per_user", "value": "20"]], token: t)
            let bad = try await create(s, t, "/md5.bin", size: 4, meta: ",md5 \(b64(String(repeating: "0", count: 32)))")
            let loc = try #require(bad.headers.first(name: "Location"))
            let r = try await s.request(.PATCH, loc, headers: [("Authorization", t), ("Tus-Resumable", "1.0.0"), ("Upload-Offset", "0"),
                                                               ("Content-Type", "application/offset+octet-stream")], body: Data("abcd".utf8))
            #expect(r.status == 460 && String(decoding: r.body, as: UTF8.self).contains("MD5"), "\(r.status)")
            #expect(!s.dir.exists("data/files/md5.bin"))
            #expect(s.dir.allEntries("data/files").filter { $0.contains(".panlist-upload-") && !$0.contains("a.bin") }.count == 3, "a, b and md5 staged")
        }
    }

    /// A 123 Open target, no MD5 declared: the bytes are spooled (not in the storage), the MD5 is computed as they arrive and
    /// computed again from the spool after a restart (the kept hash state dropped); 123 gets the right file and
    /// the spool goes.
    @Test func aCloudTargetSpoolsAndRehashesAfterARestart() async throws {
        try await withCloud { s, emu, t in
            let content = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) })
            let md5 = Insecure.MD5.hash(data: content).map { String(format: "%02x", $0) }.joined()
            let created = try await create(s, t, "/123/tus/cloud.bin", size: content.count)
            #expect(created.status == 201, "\(String(decoding: created.body, as: UTF8.self))")
            let loc = try #require(created.headers.first(name: "Location"))
            let id = String(loc.split(separator: "/").last ?? "")
            func patch(_ o: Int, _ d: Data) async throws -> HTTPResult {
                try await s.request(.PATCH, loc, headers: [("Authorization", t), ("Tus-Resumable", "1.0.0"), ("Upload-Offset", String(o)),
                                                           ("Content-Type", "application/offset+octet-stream")], body: d)
            }
            #expect(try await patch(0, content.prefix(30_000)).status == 204)
            #expect(s.dir.allEntries("data/temp/uploads") == [id])
            s.state.uploadHashes.withLockedValue { $0.removeAll() }   // as after a restart
            let last = try await patch(30_000, content[30_000...])
            #expect(last.status == 204, "\(String(decoding: last.body, as: UTF8.self))")
            let got = try await s.api("/fs/get", ["path": "/123/tus/cloud.bin"], token: t)
            #expect((got.data["hash_info"] as? [String: Any])?["md5"] as? String == md5, "\(got.text)")
            #expect(s.dir.allEntries("data/temp/uploads").isEmpty)
            #expect(!s.dir.allEntries("data/temp").contains { $0.contains("123open-upload") })
            _ = emu
        }
    }

    func mp(_ s: TestServer, _ t: String, _ method: HTTPMethod, _ route: String, _ headers: [(String, String)], body: Data? = nil) async throws -> (code: Int, data: [String: Any], text: String) {
        let r = try await s.request(method, "/api/fs/multipart/" + route, headers: [("Authorization", t)] + headers, body: body)
        let j = (try? JSONSerialization.jsonObject(with: r.body)) as? [String: Any] ?? [:]
        return (j["code"] as? Int ?? -r.status, j["data"] as? [String: Any] ?? [:], String(decoding: r.body, as: UTF8.self))
    }

    /// OpenList's chunked routes: init, chunks in any order (a resend is accepted, a chunk being written
    /// answers 409), status by id and by path and size, complete (early: refused), abort, another user's 403.
    @Test func openListChunkedRoutes() async throws {
        try await withServer { s in
            let t = try await s.login()
            let chunk = 1 << 20
            let content = Data((0..<(2 * chunk + 123)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            let initd = try await mp(s, t, .POST, "init", [("File-Path", "/mp/%E6%96%87.bin"), ("X-File-Size", String(content.count)),
                                                           ("X-Chunk-Size", "1"), ("Last-Modified", "1700000000000")])
            #expect(initd.code == 200, "\(initd.text)")
            let id = try #require(initd.data["upload_id"] as? String)
            #expect(initd.data["chunk_size"] as? Int == chunk && initd.data["total_chunks"] as? Int == 3 && initd.data["state"] as? String == "receiving")
            func put(_ i: Int, _ d: Data? = nil, as token: String? = nil) async throws -> (code: Int, data: [String: Any], text: String) {
                let part = d ?? content[(i * chunk)..<min(content.count, (i + 1) * chunk)]
                return try await mp(s, token ?? t, .PUT, "chunk", [("X-Upload-Id", id), ("X-Chunk-Index", String(i)),
                                                                  ("Content-Type", "application/octet-stream")], body: part)
            }
            #expect(try await put(2).code == 200)
            #expect(try await mp(s, t, .POST, "complete", [("X-Upload-Id", id)]).code == 400, "early")
            #expect(try await put(0).code == 200)
            #expect(try await put(0).code == 200, "a resend")
            #expect(try await put(1, Data(count: 10)).code == 400, "short")
            #expect(try await put(5, Data(count: 5)).code == 400, "out of range")
            _ = try await s.addUser("eve", password: "eve-pass-1", permission: [.write])
            let te = try await s.login("eve", "eve-pass-1")
            #expect(try await put(1, as: te).code == 403)
            let st = try await mp(s, t, .GET, "status?upload_id=" + id, [])
            #expect(st.data["received"] as? [[Int]] == [[0, 0], [2, 2]] && st.data["frontier"] as? Int == 1, "\(st.text)")
            let byPath = try await mp(s, t, .GET, "status?path=%2Fmp%2F%E6%96%87.bin&size=\(content.count)", [])
            #expect(byPath.data["upload_id"] as? String == id)
            #expect(!s.dir.exists("data/files/mp/文.bin"))
            #expect(try await put(1).code == 200)
            let done = try await mp(s, t, .POST, "complete", [("X-Upload-Id", id)])
            #expect(done.code == 200 && done.data["state"] as? String == "completed" && done.data["storage_progress"] as? Double == 100, "\(done.text)")
            #expect(FileManager.default.contents(atPath: s.files + "/mp/文.bin") == content)
            #expect(try await mp(s, t, .GET, "status?upload_id=" + id, []).code == 404)
            #expect(!s.dir.allEntries("data/files").contains { $0.contains(".panlist-upload-") })

            // Resume by hash, then abort.
            let md5 = Insecure.MD5.hash(data: content).map { String(format: "%02x", $0) }.joined()
            let a = try await mp(s, t, .POST, "init", [("File-Path", "/mp/b.bin"), ("X-File-Size", String(content.count)), ("X-File-Md5", md5)])
            let b = try await mp(s, t, .POST, "init", [("File-Path", "/mp/b.bin"), ("X-File-Size", String(content.count)), ("X-File-Md5", md5)])
            #expect(a.data["upload_id"] as? String == b.data["upload_id"] as? String && b.data["resumed"] as? Bool == true)
            let bid = try #require(b.data["upload_id"] as? String)
            #expect(try await mp(s, t, .POST, "abort", [("X-Upload-Id", bid)]).code == 200)
            #expect(try await mp(s, t, .GET, "status?upload_id=" + bid, []).code == 404)
            #expect(!s.dir.allEntries("data/files").contains { $0.contains(".panlist-upload-") })
        }
    }

    /// Two requests with the same chunk at once: one writes it, the other answers 409.
    @Test func aChunkIsWrittenByOneRequestAtATime() async throws {
        try await withServer { s in
            let t = try await s.login()
            let size = 4 << 20
            let initd = try await mp(s, t, .POST, "init", [("File-Path", "/c.bin"), ("X-File-Size", String(size)), ("X-Chunk-Size", String(size))])
            let id = try #require(initd.data["upload_id"] as? String)
            let one = Data(repeating: 1, count: size), two = Data(repeating: 2, count: size)
            let codes = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for (i, body) in [one, two].enumerated() {
                    group.addTask {
                        (i, try await mp(s, t, .PUT, "chunk", [("X-Upload-Id", id), ("X-Chunk-Index", "0")], body: body).code)
                    }
                }
                var out: [Int: Int] = [:]
                for try await (i, c) in group { out[i] = c }
                return out
            }
            // Either one was refused while the other wrote (409), or the second came after the first was stored (200, a resend).
            #expect(codes.values.sorted() == [200, 409] || codes.values.sorted() == [200, 200], "\(codes)")
            #expect(try await mp(s, t, .POST, "complete", [("X-Upload-Id", id)]).code == 200)
            let file = try #require(FileManager.default.contents(atPath: s.files + "/c.bin"))
            #expect(file == one || file == two, "the file mixes both requests' bytes")
        }
    }

    /// A 123 Open target with the MD5 declared: no spool at all, each slice goes to 123 as soon as it is whole;
    /// after a restart (the in-memory bytes past the last acknowledged slice gone) the offset falls back to that
    /// slice and the upload goes on without sending any slice twice; the same content again is an instant
    /// upload with no slice sent; a declared MD5 the bytes do not have is refused (460) with nothing in 123.
    @Test func aCloudTargetWithTheMD5StreamsSlicesWithoutASpool() async throws {
        try await withCloud { s, emu, t in
            let content = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 5) })
            let md5 = Insecure.MD5.hash(data: content).map { String(format: "%02x", $0) }.joined()
            let created = try await create(s, t, "/123/stream/s.bin", size: content.count, meta: ",md5 \(b64(md5))")
            #expect(created.status == 201, "\(String(decoding: created.body, as: UTF8.self))")
            let loc = try #require(created.headers.first(name: "Location"))
            func patch(_ o: Int, _ d: Data, at location: String? = nil) async throws -> HTTPResult {
                try await s.request(.PATCH, location ?? loc, headers: [("Authorization", t), ("Tus-Resumable", "1.0.0"), ("Upload-Offset", String(o)),
                                                                      ("Content-Type", "application/offset+octet-stream")], body: d)
            }
            func head(_ location: String? = nil) async throws -> String? {
                try await s.request(.HEAD, location ?? loc, headers: [("Authorization", t), ("Tus-Resumable", "1.0.0")]).headers.first(name: "Upload-Offset")
            }
            let received0 = await emu.slicesReceived()
            let first = try await patch(0, content.prefix(30_000))
            #expect(first.status == 204 && first.headers.first(name: "Upload-Offset") == "30000")
            #expect(await emu.slicesReceived() - received0 == 29, "29 whole slices of 1024 bytes went at once")
            #expect(s.dir.allEntries("data/temp").filter { $0 != ".panlist-temp" }.isEmpty, "no spool file")
            // As after a restart: the 304 bytes past slice 29 are gone.
            s.state.uploadTails.withLockedValue { $0.removeAll() }
            #expect(try await patch(30_000, content[30_000...]).status == 409)
            let resumeAt = try #require(Int(try await head() ?? ""))
            #expect(resumeAt == 29 * 1024)
            let last = try await patch(resumeAt, content[resumeAt...])
            #expect(last.status == 204 && last.headers.first(name: "Upload-Offset") == "70000", "\(String(decoding: last.body, as: UTF8.self))")
            #expect(await emu.slicesReceived() - received0 == 69, "every slice once")
            let got = try await s.api("/fs/get", ["path": "/123/stream/s.bin", "refresh": true], token: t)
            #expect((got.data["hash_info"] as? [String: Any])?["md5"] as? String == md5, "\(got.text)")
            #expect(try await head() == "70000")

            // The same content again: 123 has it; the upload is complete at creation, its PATCH is absorbed.
            let again = try await create(s, t, "/123/stream/again.bin", size: content.count, meta: ",md5 \(b64(md5))")
            #expect(again.status == 201 && again.headers.first(name: "Upload-Offset") == "70000")
            let againLoc = try #require(again.headers.first(name: "Location"))
            #expect(try await head(againLoc) == "70000")
            #expect(try await patch(0, content, at: againLoc).headers.first(name: "Upload-Offset") == "70000")
            #expect(await emu.slicesReceived() - received0 == 69, "no slice for an instant upload")
            #expect(try await s.api("/fs/get", ["path": "/123/stream/again.bin", "refresh": true], token: t).code == 200)

            // A declared MD5 the bytes do not have: 460 at the end, nothing in 123 under the name.
            let other = Data(content.reversed())
            let claimed = Insecure.MD5.hash(data: Data(repeating: 9, count: other.count)).map { String(format: "%02x", $0) }.joined()
            let wrong = try await create(s, t, "/123/stream/wrong.bin", size: other.count, meta: ",md5 \(b64(claimed))")
            let wrongLoc = try #require(wrong.headers.first(name: "Location"))
            #expect(try await patch(0, other, at: wrongLoc).status == 460)
            #expect(try await s.api("/fs/get", ["path": "/123/stream/wrong.bin", "refresh": true], token: t).code != 200)
            #expect(try await head(wrongLoc) == nil, "ended")

            // A chunk whose Upload-Checksum does not match counts not at all (its slices went: they go again).
            let third = Data((0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 3 &+ 77) })
            let thirdMD5 = Insecure.MD5.hash(data: third).map { String(format: "%02x", $0) }.joined()
            let c = try await create(s, t, "/123/stream/checked.bin", size: third.count, meta: ",md5 \(b64(thirdMD5))")
            let cLoc = try #require(c.headers.first(name: "Location"))
            func checked(_ o: Int, _ d: Data, sum: Data) async throws -> HTTPResult {
                try await s.request(.PATCH, cLoc, headers: [("Authorization", t), ("Tus-Resumable", "1.0.0"), ("Upload-Offset", String(o)),
                                                            ("Content-Type", "application/offset+octet-stream"),
                                                            ("Upload-Checksum", "sha1 " + Data(Insecure.SHA1.hash(data: sum)).base64EncodedString())], body: d)
            }
            #expect(try await checked(0, third.prefix(5000), sum: Data("not these bytes".utf8)).status == 460)
            #expect(try await head(cLoc) == "0")
            #expect(try await checked(0, third.prefix(5000), sum: third.prefix(5000)).status == 204)
            #expect(try await checked(5000, third[5000...], sum: third[5000...]).status == 204)
            let gotThird = try await s.api("/fs/get", ["path": "/123/stream/checked.bin", "refresh": true], token: t)
            #expect((gotThird.data["hash_info"] as? [String: Any])?["md5"] as? String == thirdMD5, "\(gotThird.text)")
        }
    }
}
