import Foundation
import Open123Emulator
import Testing

/// The offline download, SHA-1 reuse and the upload servers (`domain`, several servers), endpoint by endpoint.
@Suite struct CloudExtrasTests {
    /// A file the emulator's own CDN serves, as a URL for the offline download to fetch.
    static func cdnURL(_ h: Harness, _ data: Data, name: String = "a.bin") async throws -> String {
        let fid = try await h.emu.seed(path: "/origin/\(name)", data: data)
        return try #require(try await h.call(.GET, "/api/v1/file/download_info?fileId=\(fid)").data["downloadUrl"] as? String)
    }

    /// Polls `process` until the task is done or failed; every status seen on the way.
    static func settle(_ h: Harness, _ task: Int64) async throws -> (last: [String: Any], seen: [Int]) {
        var seen: [Int] = []
        for _ in 0..<500 {
            let p = try await h.call(.GET, "/api/v1/offline/download/process?taskID=\(task)")
            #expect(p.code == 0, "\(p.message)")
            let status = Int(p.data.int("status") ?? -1)
            if seen.last != status { seen.append(status) }
            if status == 1 || status == 2 { return (p.data, seen) }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CancellationError()
    }

    static func names(_ h: Harness, _ parent: Int64) async throws -> [String: [String: Any]] {
        let items = try await h.list(parent).data["fileList"] as? [[String: Any]] ?? []
        return Dictionary(items.map { ($0["filename"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
    }

    @Test func offlineDownloadFetchesIntoAFolder() async throws {
        try await withEmulator { h in
            let data = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13) })
            let url = try await Self.cdnURL(h, data)
            let dir = try await h.mkdir("dl")
            // dirID as a string (OpenList sends it so).
            let start = try await h.call(.POST, "/api/v1/offline/download", ["url": url, "dirID": String(dir)])
            #expect(start.code == 0, "\(start.message)")
            expectTypes(start.data, ["taskID": "int"])
            let task = try #require(start.data.int("taskID"))
            let (last, _) = try await Self.settle(h, task)
            #expect(last.int("status") == 2)
            #expect((last["process"] as? NSNumber)?.doubleValue == 100)
            let file = try #require(try await Self.names(h, dir)["a.bin"])
            #expect(file.int("size") == 5000 && file["etag"] as? String == md5Hex(data))
            // fileName names it; a clash keeps both.
            let named = try await h.call(.POST, "/api/v1/offline/download", ["url": url, "dirID": dir, "fileName": "b.bin"])
            _ = try await Self.settle(h, try #require(named.data.int("taskID")))
            let again = try await h.call(.POST, "/api/v1/offline/download", ["url": url, "dirID": dir])
            _ = try await Self.settle(h, try #require(again.data.int("taskID")))
            #expect(Set(try await Self.names(h, dir).keys) == ["a.bin", "b.bin", "a(1).bin"])
            // Without dirID: a folder of its own at the root.
            let noDir = try await h.call(.POST, "/api/v1/offline/download", ["url": url])
            _ = try await Self.settle(h, try #require(noDir.data.int("taskID")))
            let folder = try #require(try await Self.names(h, 0)["来自:离线下载"])
            #expect(try await Self.names(h, try #require(folder.int("fileId")))["a.bin"] != nil)
            #expect(await h.emu.offlineDownloads().count == 4)
        }
    }

    @Test func offlineDownloadRefusals() async throws {
        try await withEmulator { h in
            let dir = try await h.mkdir("dl")
            let root = try await h.call(.POST, "/api/v1/offline/download", ["url": "http://127.0.0.1:9/x", "dirID": 0])
            #expect(root.code != 0 && root.message.contains("根目录") && root.json["data"] is NSNull)
            #expect(try await h.call(.POST, "/api/v1/offline/download", ["url": "ftp://127.0.0.1/x", "dirID": dir]).code != 0)
            #expect(try await h.call(.POST, "/api/v1/offline/download", ["url": "http://127.0.0.1:9/x", "dirID": 999]).code != 0)
            #expect(try await h.call(.POST, "/api/v1/offline/download", ["url": "http://127.0.0.1:9/x", "dirID": dir, "fileName": "a?b"]).code != 0)
            #expect(try await h.call(.GET, "/api/v1/offline/download/process?taskID=424242").code != 0)
            // The query parameter is case-sensitive.
            #expect(try await h.call(.GET, "/api/v1/offline/download/process?taskId=7000001").code != 0)
            // An origin that answers an error: the task fails, progress back to 0, no file.
            let bad = try await h.call(.POST, "/api/v1/offline/download", ["url": h.base + "/cdn/nosuchtoken/x.bin", "dirID": dir])
            let (last, _) = try await Self.settle(h, try #require(bad.data.int("taskID")))
            #expect(last.int("status") == 1 && (last["process"] as? NSNumber)?.doubleValue == 0)
            #expect(try await Self.names(h, dir).isEmpty)
        }
    }

    @Test func offlineDownloadKnobs() async throws {
        try await withEmulator { h in
            let data = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let url = try await Self.cdnURL(h, data)
            let dir = try await h.mkdir("dl")
            // Fail the next one (over HTTP).
            _ = try await h.raw(.POST, "/__emulator/offline", headers: [("Content-Type", "application/json")],
                                body: try JSONSerialization.data(withJSONObject: ["fail": 1, "reason": "源站拒绝"]))
            let failed = try await h.call(.POST, "/api/v1/offline/download", ["url": url, "dirID": dir])
            #expect(try await Self.settle(h, try #require(failed.data.int("taskID"))).last.int("status") == 1)
            #expect(try await Self.names(h, dir).isEmpty)
            // Retrying (3) first, for 2 polls, then done.
            await h.emu.retryNextOfflineDownloads(1, polls: 2)
            let retried = try await h.call(.POST, "/api/v1/offline/download", ["url": url, "dirID": dir])
            let (last, seen) = try await Self.settle(h, try #require(retried.data.int("taskID")))
            #expect(last.int("status") == 2 && seen.contains(3) && seen.last == 2, "\(seen)")
            // A fetch rate: still running a moment after the start.
            await h.emu.setOfflineRate(6000)
            let slow = try await h.call(.POST, "/api/v1/offline/download", ["url": url, "dirID": dir, "fileName": "slow.bin"])
            let slowID = try #require(slow.data.int("taskID"))
            #expect(try await h.call(.GET, "/api/v1/offline/download/process?taskID=\(slowID)").data.int("status") == 0)
            #expect(try await Self.settle(h, slowID).last.int("status") == 2)
            await h.emu.setOfflineRate(nil)
            #expect(Set(try await Self.names(h, dir).keys) == ["a.bin", "slow.bin"])
        }
    }

    @Test func sha1ReuseNeedsContentWithThatSHA1AndSize() async throws {
        try await withEmulator { h in
            let data = Data("content by hash".utf8)
            _ = try await h.upload("orig.txt", data)
            let wrongSize = try await h.call(.POST, "/upload/v2/file/sha1_reuse", ["parentFileID": 0, "filename": "x.txt", "sha1": sha1Hex(data), "size": data.count + 1, "duplicate": 2])
            #expect(wrongSize.code == 0 && wrongSize.data["reuse"] as? Bool == false)
            let hit = try await h.call(.POST, "/upload/v2/file/sha1_reuse", ["parentFileID": 0, "filename": "x.txt", "sha1": sha1Hex(data).uppercased(), "size": data.count, "duplicate": 2])
            expectTypes(hit.data, ["fileID": "int", "reuse": "bool"])
            #expect(hit.data["reuse"] as? Bool == true)
            #expect(try await Self.names(h, 0)["x.txt"]?["etag"] as? String == md5Hex(data))
        }
    }

    @Test func uploadServersDomainAndSeveral() async throws {
        try await withEmulator({ $0.uploadServers = 3; $0.createServers = .null }) { h in
            let domain = try #require(try await h.call(.GET, "/upload/v2/file/domain").json["data"] as? [String])
            #expect(domain.count == 3 && domain.allSatisfy { $0.hasPrefix(h.base + "/upload-server/") })
            let data = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0) })
            let c = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "s.bin", "etag": md5Hex(data), "size": 3000, "duplicate": 2])
            #expect(c.code == 0 && c.data["servers"] is NSNull && c.json["data"] is [String: Any])
            let pre = try #require(c.data["preuploadID"] as? String)
            // The API host itself takes no slices when there are upload servers of their own.
            let part1 = data.subdata(in: 0..<1024)
            let (b1, ct1) = h.multipart([("preuploadID", pre), ("sliceNo", "1"), ("sliceMD5", md5Hex(part1))], file: ("slice", "p", part1))
            #expect(try await h.raw(.POST, "/upload/v2/file/slice", headers: [("Platform", "open_platform"), ("Authorization", "Bearer " + h.token), ("Content-Type", ct1)], body: b1).code != 0)
            // Each slice to another server; server 3 down refuses.
            await h.emu.setUploadServers(down: [3])
            for (i, server) in domain.enumerated() {
                let part = data.subdata(in: (i * 1024)..<min(3000, (i + 1) * 1024))
                let (body, ct) = h.multipart([("preuploadID", pre), ("sliceNo", String(i + 1)), ("sliceMD5", md5Hex(part))], file: ("slice", "p", part))
                let r = try await h.raw(.POST, server + "/upload/v2/file/slice", headers: [("Platform", "open_platform"), ("Authorization", "Bearer " + h.token), ("Content-Type", ct)], body: body)
                #expect((r.code == 0) == (i < 2), "\(i): \(String(decoding: r.body, as: UTF8.self))")
            }
            await h.emu.setUploadServers(down: [])
            let part = data.subdata(in: 2048..<3000)
            let (body, ct) = h.multipart([("preuploadID", pre), ("sliceNo", "3"), ("sliceMD5", md5Hex(part))], file: ("slice", "p", part))
            #expect(try await h.raw(.POST, domain[2] + "/upload/v2/file/slice", headers: [("Platform", "open_platform"), ("Authorization", "Bearer " + h.token), ("Content-Type", ct)], body: body).code == 0)
            #expect(await h.emu.slicesByServer() == [1: 1, 2: 1, 3: 1])
            var done = false
            for _ in 0..<20 where !done {
                let r = try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre])
                done = r.code == 0 && r.data["completed"] as? Bool == true
            }
            #expect(done)
            // Over HTTP: back to one server, listed in create.
            let knob = try await h.raw(.POST, "/__emulator/upload/servers", headers: [("Content-Type", "application/json")],
                                       body: try JSONSerialization.data(withJSONObject: ["count": 1, "create": "listed"]))
            #expect((knob.json["data"] as? [String: Any])?["servers"] as? [String] == [h.base])
            let c2 = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "t.bin", "etag": md5Hex(Data("t".utf8)), "size": 1, "duplicate": 2])
            #expect(c2.data["servers"] as? [String] == [h.base])
        }
    }
}
