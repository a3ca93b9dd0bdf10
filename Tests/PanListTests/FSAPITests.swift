import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer

func md5Hex(_ d: Data) -> String { Insecure.MD5.hash(data: d).map { String(format: "%02x", $0) }.joined() }

@Suite("File API over HTTP")
struct FSAPITests {
    @Test func listGetDirsWithAlistShapes() async throws {
        try await withServer { s in
            let t = try await s.login()
            for i in 0..<5 { try s.dir.write("data/files/docs/f\(i).txt", "file \(i)") }
            try s.dir.write("data/files/docs/movie.mp4", "m")
            try s.dir.write("data/files/docs/movie.srt", "s")
            try FileManager.default.createDirectory(atPath: s.files + "/docs/sub", withIntermediateDirectories: true)

            let list = try await s.api("/fs/list", ["path": "/docs", "page": 1, "per_page": 3], token: t)
            #expect(list.code == 200)
            #expect(list.data["total"] as? Int == 8)
            for key in ["content", "total", "readme", "header", "write", "provider"] { #expect(list.data[key] != nil, "\(key)") }
            #expect(list.data["provider"] as? String == "Local" && list.data["write"] as? Bool == true)
            let content = try #require(list.data["content"] as? [[String: Any]])
            #expect(content.count == 3)
            let first = content[0]
            for key in ["name", "size", "is_dir", "modified", "created", "sign", "thumb", "type", "hashinfo", "hash_info"] {
                #expect(first.keys.contains(key), "\(key)")
            }
            #expect(first["name"] as? String == "f0.txt" && first["type"] as? Int == 4 && first["size"] as? Int == 6)
            #expect((first["sign"] as? String)?.hasSuffix(":0") == true)
            #expect((first["modified"] as? String)?.hasSuffix("Z") == true)

            let all = try await s.api("/fs/list", ["path": "/docs"], token: t)
            let names = (all.data["content"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(names?.count == 8)
            let sub = (all.data["content"] as? [[String: Any]])?.first { $0["name"] as? String == "sub" }
            #expect(sub?["is_dir"] as? Bool == true && sub?["type"] as? Int == 1 && sub?["sign"] as? String == "")

            let empty = try await s.api("/fs/list", ["path": "/docs/sub"], token: t)
            #expect((empty.data["content"] as? [Any])?.isEmpty == true)  // [] not null

            let get = try await s.api("/fs/get", ["path": "/docs/movie.mp4"], token: t)
            #expect(get.code == 200 && get.data["type"] as? Int == 2)
            let raw = try #require(get.data["raw_url"] as? String)
            #expect(raw.hasPrefix("http://127.0.0.1:\(s.port)/p/docs/movie.mp4?sign="))
            let related = (get.data["related"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(related == ["movie.srt"])
            // raw_url is fetched as is, with no auth header.
            #expect(try await s.request(.GET, String(raw.dropFirst(s.base.count))).text == "m")

            let missing = try await s.api("/fs/get", ["path": "/docs/nope.txt"], token: t)
            #expect(missing.code == 500 && missing.message.contains("object not found"))
            #expect(try await s.api("/fs/list", ["path": "/nope"], token: t).message.contains("object not found"))

            let dirs = try await s.api("/fs/dirs", ["path": "/docs"], token: t)
            let dirNames = (dirs.json["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(dirNames == ["sub"])
            let root = try await s.api("/fs/get", ["path": "/"], token: t)
            #expect(root.data["name"] as? String == "root" && root.data["is_dir"] as? Bool == true)
        }
    }

    @Test func mkdirRenameMoveCopyRemove() async throws {
        try await withServer { s in
            let t = try await s.login()
            #expect(try await s.api("/fs/mkdir", ["path": "/a/b"], token: t).code == 200)
            try s.dir.write("data/files/a/x.txt", "x")
            #expect(try await s.api("/fs/rename", ["path": "/a/x.txt", "name": "y.txt"], token: t).code == 200)
            #expect(s.dir.read("data/files/a/y.txt") == "x")
            #expect(try await s.api("/fs/copy", ["src_dir": "/a", "dst_dir": "/a/b", "names": ["y.txt"]], token: t).code == 200)
            #expect(s.dir.read("data/files/a/b/y.txt") == "x")
            let copyExisting = try await s.api("/fs/copy", ["src_dir": "/a", "dst_dir": "/a/b", "names": ["y.txt"]], token: t)
            #expect(copyExisting.code == 403 && copyExisting.message.contains("already exists"))
            #expect(try await s.api("/fs/mkdir", ["path": "/c"], token: t).code == 200)
            #expect(try await s.api("/fs/move", ["src_dir": "/a", "dst_dir": "/c", "names": ["b", "y.txt"]], token: t).code == 200)
            #expect(s.dir.read("data/files/c/b/y.txt") == "x" && s.dir.read("data/files/c/y.txt") == "x")
            #expect(!s.dir.exists("data/files/a/y.txt"))
            #expect(try await s.api("/fs/copy", ["src_dir": "/", "dst_dir": "/a", "names": ["c"]], token: t).code == 200)
            #expect(s.dir.read("data/files/a/c/b/y.txt") == "x")
            #expect(try await s.api("/fs/remove", ["dir": "/", "names": ["c"]], token: t).code == 200)
            #expect(!s.dir.exists("data/files/c"))
            let gone = try await s.api("/fs/remove", ["dir": "/", "names": ["c"]], token: t)
            #expect(gone.code == 500 && gone.message.contains("object not found"))
            let renameClash = try await s.api("/fs/rename", ["path": "/a/c", "name": "c"], token: t)
            #expect(renameClash.code == 200)  // same name: nothing to do
            let mkdirOnFile = try await s.api("/fs/mkdir", ["path": "/a/c/b/y.txt"], token: t)
            #expect(mkdirOnFile.code == 403)
        }
    }

    @Test func putStreamsWithHeadersAndChecks() async throws {
        try await withServer { s in
            let t = try await s.login()
            let content = Data((0..<300_000).map { UInt8($0 % 251) })
            let r = try await s.put("/up/中文 #1.bin", content, token: t, extra: [
                ("Last-Modified", "1600000000123"), ("X-File-Md5", md5Hex(content)), ("Content-Type", "application/octet-stream")])
            #expect(r.code == 200, "\(r.text)")
            let path = s.files + "/up/中文 #1.bin"
            #expect(FileManager.default.contents(atPath: path) == content)
            let attrs = try FileManager.default.attributesOfItem(atPath: path)
            #expect(abs(((attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0) - 1600000000.123) < 0.01)
            // Seconds are recognised by their magnitude.
            _ = try await s.put("/up/secs.txt", Data("s".utf8), token: t, extra: [("Last-Modified", "1500000000")])
            let a2 = try FileManager.default.attributesOfItem(atPath: s.files + "/up/secs.txt")
            #expect((a2[.modificationDate] as? Date)?.timeIntervalSince1970 == 1500000000)
            // Wrong MD5: refused, nothing written.
            let bad = try await s.put("/up/bad.bin", content, token: t, extra: [("X-File-Md5", String(repeating: "0", count: 32))])
            #expect(bad.code == 400 && bad.message.contains("MD5"))
            #expect(!s.dir.exists("data/files/up/bad.bin"))
            // Overwrite: false refuses an existing file.
            let noOver = try await s.put("/up/secs.txt", Data("new".utf8), token: t, extra: [("Overwrite", "false")])
            #expect(noOver.code == 403 && s.dir.read("data/files/up/secs.txt") == "s")
            // An empty body creates an empty file (the UI's "new file").
            #expect(try await s.put("/up/empty.txt", Data(), token: t).code == 200)
            #expect(s.dir.read("data/files/up/empty.txt") == "")
            // File-Path is required and must be valid.
            #expect(try await s.request(.PUT, "/api/fs/put", headers: [("Authorization", t)], body: Data("x".utf8)).code == 400)
            #expect(try await s.request(.PUT, "/api/fs/put", headers: [("Authorization", t), ("File-Path", "/a%zz")], body: Data("x".utf8)).code == 400)
            // A literal `+` stays a `+`.
            #expect(try await s.request(.PUT, "/api/fs/put", headers: [("Authorization", t), ("File-Path", "/up/a+b.txt")], body: Data("p".utf8)).code == 200)
            #expect(s.dir.read("data/files/up/a+b.txt") == "p")
        }
    }

    @Test func chunkedPutWithoutContentLength() async throws {
        try await withServer { s in
            let t = try await s.login()
            var req = HTTPClientRequest(url: s.base + "/api/fs/put")
            req.method = .PUT
            req.headers.add(name: "Authorization", value: t)
            req.headers.add(name: "File-Path", value: "/chunked.bin")
            let parts = (0..<20).map { ByteBuffer(repeating: UInt8($0), count: 100_000) }
            req.body = .stream(ByteStream.buffers(parts), length: .unknown)
            let res = try await s.client.execute(req, timeout: .seconds(30))
            let body = try await res.body.collect(upTo: 1 << 20)
            #expect(String(buffer: body).contains("\"code\":200"))
            #expect(FileManager.default.contents(atPath: s.files + "/chunked.bin")?.count == 2_000_000)
        }
    }

    @Test func cutOffUploadLeavesNoFileAndNoTempFile() async throws {
        try await withServer { s in
            let t = try await s.login()
            var req = HTTPClientRequest(url: s.base + "/api/fs/put")
            req.method = .PUT
            req.headers.add(name: "Authorization", value: t)
            req.headers.add(name: "File-Path", value: "/cut/half.bin")
            req.body = .stream(CutOffBody(), length: .known(Int64(10 << 20)))
            _ = try? await s.client.execute(req, timeout: .seconds(30))
            try await Task.sleep(for: .milliseconds(300))
            #expect(!s.dir.exists("data/files/cut/half.bin"))
            #expect(s.dir.allEntries("data/files").filter { $0 != "cut" }.isEmpty)
            #expect(s.dir.allEntries("data/temp").filter { $0 != ".panlist-temp" }.isEmpty)
            // A body shorter than its Content-Length header, on a raw socket, then the client hangs up.
            try await rawCutOff(port: s.port, token: t)
            try await Task.sleep(for: .milliseconds(300))
            #expect(!s.dir.exists("data/files/raw.bin"))
            #expect(s.dir.allEntries("data/files").filter { $0 != "cut" }.isEmpty)
        }
    }

    @Test func multipartForm() async throws {
        try await withServer { s in
            let t = try await s.login()
            let boundary = "XyZ123"
            let fileBytes = Data((0..<100_000).map { UInt8($0 % 200) })
            var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nignored\r\n".utf8)
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += fileBytes + Data("\r\n--\(boundary)--\r\n".utf8)
            let r = try await s.request(.PUT, "/api/fs/form", headers: [
                ("Authorization", t), ("File-Path", "/forms/f.bin"), ("Content-Type", "multipart/form-data; boundary=\(boundary)")], body: body)
            #expect(r.code == 200, "\(r.text)")
            #expect(FileManager.default.contents(atPath: s.files + "/forms/f.bin") == fileBytes)
            let noFile = try await s.request(.PUT, "/api/fs/form", headers: [
                ("Authorization", t), ("File-Path", "/forms/g.bin"), ("Content-Type", "multipart/form-data; boundary=\(boundary)")],
                body: Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n--\(boundary)--\r\n".utf8))
            #expect(noFile.code == 400 && !s.dir.exists("data/files/forms/g.bin"))
            let truncated = try await s.request(.PUT, "/api/fs/form", headers: [
                ("Authorization", t), ("File-Path", "/forms/h.bin"), ("Content-Type", "multipart/form-data; boundary=\(boundary)")],
                body: body.prefix(5000))
            #expect(truncated.code == 400 && !s.dir.exists("data/files/forms/h.bin"))
            #expect(s.dir.allEntries("data/temp").filter { $0 != ".panlist-temp" }.isEmpty)
        }
    }

    @Test func traversalIsRefusedEverywhere() async throws {
        try await withServer { s in
            let t = try await s.login()
            try s.dir.write("data/files/keep.txt", "keep")
            let before = s.dir.allEntries()
            for fp in ["/../escape.txt", "/a/../../escape.txt", "%2e%2e/escape.txt", "/..%2fescape.txt", "/a\\..\\..\\escape.txt"] {
                let r = try await s.request(.PUT, "/api/fs/put", headers: [("Authorization", t), ("File-Path", fp)], body: Data("x".utf8))
                #expect(r.code == 400, "\(fp): \(r.text)")
            }
            for body: [String: Any] in [["path": "/../"], ["path": "/a/../.."]] {
                #expect(try await s.api("/fs/list", body, token: t).code == 400)
                #expect(try await s.api("/fs/get", body, token: t).code == 400)
                #expect(try await s.api("/fs/mkdir", body, token: t).code == 400)
            }
            #expect(try await s.api("/fs/rename", ["path": "/keep.txt", "name": "../x"], token: t).code == 400)
            #expect(try await s.api("/fs/rename", ["path": "/keep.txt", "name": ".."], token: t).code == 400)
            #expect(try await s.api("/fs/move", ["src_dir": "/", "dst_dir": "/..", "names": ["keep.txt"]], token: t).code == 400)
            #expect(try await s.api("/fs/move", ["src_dir": "/", "dst_dir": "/", "names": ["../keep.txt"]], token: t).code == 400)
            #expect(try await s.api("/fs/remove", ["dir": "/", "names": [".."]], token: t).code == 400)
            #expect(try await s.api("/fs/copy", ["src_dir": "/..", "dst_dir": "/", "names": ["x"]], token: t).code == 400)
            for url in ["/d/%2e%2e/%2e%2e/etc/passwd", "/p/..%2f..%2fetc%2fpasswd", "/d/a/%2E%2E/%2E%2E/config.json"] {
                let r = try await s.request(.GET, url, headers: [("Authorization", t)])
                #expect(r.status == 400, "\(url)")
                #expect(!r.text.contains("root:"))
            }
            #expect(s.dir.allEntries() == before)
            #expect(s.dir.read("data/files/keep.txt") == "keep")
        }
    }

    @Test func permissionsBasePathAndGuest() async throws {
        try await withServer { s in
            let admin = try await s.login()
            try s.dir.write("data/files/home/alice/a.txt", "alice")
            try s.dir.write("data/files/home/alicex/secret.txt", "other")
            _ = try await s.addUser("alice", password: "alice-pw", basePath: "/home/alice", permission: [.write])
            let t = try await s.login("alice", "alice-pw")
            // Her `/` is /home/alice; `/home/alicex` is not reachable.
            let list = try await s.api("/fs/list", ["path": "/"], token: t)
            #expect((list.data["content"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["a.txt"])
            #expect(try await s.put("/new.txt", Data("n".utf8), token: t).code == 200)
            #expect(s.dir.read("data/files/home/alice/new.txt") == "n")
            #expect(try await s.put("/../alicex/evil.txt", Data("e".utf8), token: t).code == 400)
            #expect(!s.dir.exists("data/files/home/alicex/evil.txt"))
            // Write, but no rename / delete / move / copy bits.
            #expect(try await s.api("/fs/rename", ["path": "/a.txt", "name": "b.txt"], token: t).code == 403)
            #expect(try await s.api("/fs/remove", ["dir": "/", "names": ["a.txt"]], token: t).code == 403)
            #expect(try await s.api("/fs/move", ["src_dir": "/", "dst_dir": "/x", "names": ["a.txt"]], token: t).code == 403)
            #expect(try await s.api("/fs/copy", ["src_dir": "/", "dst_dir": "/x", "names": ["a.txt"]], token: t).code == 403)
            #expect(try await s.api("/fs/list", ["path": "/", "refresh": true], token: t).code == 200)
            // Not an admin.
            #expect(try await s.api("/admin/storage/list", token: t, method: .GET).code == 403)
            // The guest, once enabled read-only, can browse but not write.
            try await s.setGuest(enabled: true, permission: [])
            #expect(try await s.api("/fs/list", ["path": "/"]).code == 200)
            let guestPut = try await s.request(.PUT, "/api/fs/put", headers: [("File-Path", "/g.txt")], body: Data("g".utf8))
            #expect(guestPut.code == 403 && !s.dir.exists("data/files/g.txt"))
            #expect(try await s.api("/fs/mkdir", ["path": "/gdir"]).code == 403)
            #expect(try await s.api("/fs/remove", ["dir": "/home", "names": ["alice"]]).code == 403)
            #expect(try await s.api("/fs/list", ["path": "/", "refresh": true]).code == 403)
            _ = admin
        }
    }
}

/// Sends a PUT whose body stops short of its Content-Length, then closes the connection.
func rawCutOff(port: Int, token: String) async throws {
    try await withRawConnection(port: port) { fd in
        let head = "PUT /api/fs/put HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(token)\r\nFile-Path: /raw.bin\r\nContent-Length: 1000000\r\n\r\n"
        let bytes = Array(head.utf8) + [UInt8](repeating: 0x42, count: 50_000)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        usleep(100_000)
    }
}

/// Runs blocking `work` on a thread of its own and waits for it. Not `Task.detached`: that runs on the
/// cooperative pool too, whose threads (as many as cores, 2 here) a few blocking waits at once would all hold,
/// stopping the very server they wait on.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (cont: CheckedContinuation<T, Never>) in
        let thread = Thread { cont.resume(returning: work()) }
        thread.start()
    }
}

/// Runs `body` with a plain TCP socket connected to 127.0.0.1:`port` (on a thread of its own), then closes it.
func withRawConnection(port: Int, receiveBuffer: Int32? = nil, _ body: @escaping @Sendable (Int32) -> Void) async throws {
    await onOwnThread {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return }
        body(fd)
    }
}
