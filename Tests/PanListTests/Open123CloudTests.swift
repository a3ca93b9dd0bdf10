import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import Open123Emulator
import Testing
@testable import PanListCore
@testable import PanListServer

/// 123 Open's own offline download as the "123 Open" tool, SHA-1 instant upload, and the upload servers
/// (`domain` when create names none; several servers), end to end against the emulator.
@Suite struct Open123CloudTests {
    static func sha1Hex(_ d: Data) -> String { Insecure.SHA1.hash(data: d).map { String(format: "%02x", $0) }.joined() }

    /// The bytes of a 123 file through its redirect.
    static func cloudBytes(_ s: TestServer, _ t: String, _ path: String) async throws -> Data {
        let raw = try #require(try await s.api("/fs/get", ["path": path], token: t).data["raw_url"] as? String)
        var req = HTTPClientRequest(url: try #require(try await s.request(.GET, String(raw.dropFirst(s.base.count))).header("Location")))
        req.method = .GET
        return Data(try await s.client.execute(req, timeout: .seconds(10)).body.collect(upTo: 1 << 24).readableBytesView)
    }

    static func listing(_ s: TestServer, _ t: String, _ path: String) async throws -> [String: [String: Any]] {
        let items = try await s.api("/fs/list", ["path": path, "refresh": true], token: t).data["content"] as? [[String: Any]] ?? []
        return Dictionary(items.map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: offline download

    @Test func offlineDownloadInto123Folder() async throws {
        let data = OfflineTests.bytes(40_000)
        let origin = try await OriginServer.start(files: ["a.bin": data])
        defer { Task { await origin.stop() } }
        try await withCloud { s, emu, t in
            try await s.setSetting("task_offline_download_max_retry", "0")
            #expect(try await s.api("/fs/mkdir", ["path": "/123/dl"], token: t).code == 200)
            let r = try await OfflineTests.add(s, t, [origin.url("/files/a.bin")], path: "/123/dl", tool: "123 Open")
            #expect(r.code == 200, "\(r.text)")
            let done = try await OfflineTests.settle(s, t)
            #expect(done.count == 1 && done.first?["state"] as? Int == 2, "\(done)")
            // The cloud fetched it (the bytes never passed through PanList): it is listed, with the right bytes.
            #expect(origin.requests.contains { $0.0 == "/files/a.bin" })
            let file = try #require(try await Self.listing(s, t, "/123/dl")["a.bin"])
            #expect(file["size"] as? Int == data.count)
            #expect(try await Self.cloudBytes(s, t, "/123/dl/a.bin") == data)
            #expect(await emu.callCounts()["/api/v1/offline/download"] == 1)
            #expect(await emu.offlineDownloads().first?.status == 2)
        }
    }

    @Test func offlineDownloadRefusesTheRootClearly() async throws {
        try await withCloud { s, emu, t in
            try await s.setSetting("task_offline_download_max_retry", "0")
            let r = try await OfflineTests.add(s, t, ["http://127.0.0.1:9/a.bin"], path: "/123", tool: "123 Open")
            #expect(r.code == 200, "\(r.text)")
            let done = try await OfflineTests.settle(s, t)
            #expect(done.count == 1 && done.first?["state"] as? Int == 7, "\(done)")
            let error = done.first?["error"] as? String ?? ""
            #expect(error.contains("cannot save into the drive's root folder"), "\(error)")
            // Refused before asking the cloud.
            #expect(await emu.callCounts()["/api/v1/offline/download"] == nil)
        }
    }

    @Test func offlineDownloadFailureAndRetrying() async throws {
        let data = OfflineTests.bytes(20_000, seed: 5)
        let origin = try await OriginServer.start(files: ["a.bin": data])
        defer { Task { await origin.stop() } }
        try await withCloud { s, emu, t in
            try await s.setSetting("task_offline_download_max_retry", "0")
            #expect(try await s.api("/fs/mkdir", ["path": "/123/dl"], token: t).code == 200)
            // The cloud fails it: the task fails with a clear error and no file appears.
            await emu.failNextOfflineDownloads(1, reason: "源站拒绝")
            #expect(try await OfflineTests.add(s, t, [origin.url("/files/a.bin")], path: "/123/dl", tool: "123 Open").code == 200)
            let failed = try await OfflineTests.settle(s, t)
            #expect(failed.count == 1 && failed.first?["state"] as? Int == 7, "\(failed)")
            let error = failed.first?["error"] as? String ?? ""
            #expect(error.contains("offline download") && error.contains("failed"), "\(error)")
            #expect(try await Self.listing(s, t, "/123/dl").isEmpty)
            // The cloud fails once and retries (status 3): the task shows it and then finishes.
            await emu.retryNextOfflineDownloads(1, polls: 1)
            #expect(try await OfflineTests.add(s, t, [origin.url("/files/a.bin")], path: "/123/dl", tool: "123 Open").code == 200)
            var sawRetrying = false
            let end = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < end {
                let undone = try await s.tasks("offline_download", token: t)
                if undone.isEmpty { break }
                if undone.contains(where: { ($0["status"] as? String)?.contains("trying again") == true }) { sawRetrying = true }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(sawRetrying)
            let all = try await s.tasks("offline_download", "done", token: t)
            #expect(all.filter { $0["state"] as? Int == 2 }.count == 1, "\(all)")
            #expect(try await Self.cloudBytes(s, t, "/123/dl/a.bin") == data)
        }
    }

    // MARK: SHA-1 instant upload

    @Test func copyFromLocalReusesBySHA1WithoutSendingBytes() async throws {
        try await withCloud { s, emu, t in
            let content = Data((0..<6000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 1) })
            try await emu.seed(path: "/elsewhere/original.bin", data: content)
            try FileManager.default.createDirectory(atPath: s.files + "/src", withIntermediateDirectories: true)
            try content.write(to: URL(fileURLWithPath: s.files + "/src/x.bin"))
            #expect(try await s.api("/fs/mkdir", ["path": "/123/dst"], token: t).code == 200)
            await emu.resetCallCounts()
            let received = await emu.slicesReceived()
            #expect(try await s.api("/fs/copy", ["src_dir": "/src", "dst_dir": "/123/dst", "names": ["x.bin"]], token: t).code == 200)
            try await s.tasksFinish(token: t)
            let calls = await emu.callCounts()
            #expect(calls["/upload/v2/file/sha1_reuse"] == 1, "\(calls)")
            #expect(calls["/upload/v2/file/create"] == nil && calls["/upload/v2/file/slice"] == nil, "\(calls)")
            #expect(await emu.slicesReceived() == received)
            #expect(try await Self.listing(s, t, "/123/dst")["x.bin"]?["size"] as? Int == content.count)
            #expect(try await Self.cloudBytes(s, t, "/123/dst/x.bin") == content)
            // Content the cloud does not have: SHA-1 reuse says no, and the MD5 path uploads it.
            let fresh = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 9) })
            try fresh.write(to: URL(fileURLWithPath: s.files + "/src/y.bin"))
            #expect(try await s.api("/fs/copy", ["src_dir": "/src", "dst_dir": "/123/dst", "names": ["y.bin"]], token: t).code == 200)
            try await s.tasksFinish(token: t)
            #expect(await emu.callCounts()["/upload/v2/file/sha1_reuse"] == 2)
            #expect((await emu.callCounts()["/upload/v2/file/slice"] ?? 0) == 3)
            #expect(try await Self.cloudBytes(s, t, "/123/dst/y.bin") == fresh)
        }
    }

    @Test func declaredSHA1ReusesWithoutReadingTheBody() async throws {
        try await withCloud { s, emu, t in
            let content = Data((0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 3) })
            try await emu.seed(path: "/have/it.bin", data: content)
            await emu.resetCallCounts()
            let put = try await s.put("/123/up/same.bin", content, token: t, extra: [("X-File-Sha1", Self.sha1Hex(content))])
            #expect(put.code == 200, "\(put.text)")
            let calls = await emu.callCounts()
            #expect(calls["/upload/v2/file/slice"] == nil && calls["/upload/v2/file/create"] == nil, "\(calls)")
            #expect(try await Self.cloudBytes(s, t, "/123/up/same.bin") == content)
            // A declared SHA-1 the cloud does not know: uploaded, and checked against the bytes.
            let wrong = try await s.put("/123/up/bad.bin", Data("other".utf8), token: t, extra: [("X-File-Sha1", Self.sha1Hex(Data("else".utf8)))])
            #expect(wrong.code == 400 && wrong.message.contains("SHA"), "\(wrong.text)")
        }
    }

    @Test func simpleHttpIntoCloudReusesBySHA1() async throws {
        let data = OfflineTests.bytes(9000, seed: 13)
        let origin = try await OriginServer.start(files: ["k.bin": data])
        defer { Task { await origin.stop() } }
        try await withCloud { s, emu, t in
            try await s.setSetting(OutboundGuard.settingKey, "127.0.0.1")
            try await s.setSetting("task_offline_download_max_retry", "0")
            try await emu.seed(path: "/have/k.bin", data: data)
            await emu.resetCallCounts()
            // PanList fetches it (hashing MD5 and SHA-1 on the way); the transfer into 123 is an instant upload by SHA-1.
            #expect(try await OfflineTests.add(s, t, [origin.url("/files/k.bin")], path: "/123/in").code == 200)
            let done = try await OfflineTests.settle(s, t)
            #expect(done.count == 2 && done.allSatisfy { $0["state"] as? Int == 2 }, "\(done)")
            let calls = await emu.callCounts()
            #expect(calls["/upload/v2/file/sha1_reuse"] == 1 && calls["/upload/v2/file/slice"] == nil && calls["/upload/v2/file/create"] == nil, "\(calls)")
            #expect(try await Self.cloudBytes(s, t, "/123/in/k.bin") == data)
        }
    }

    // MARK: upload servers

    @Test func createWithoutServersAsksDomain() async throws {
        // Two upload servers of their own (the API host takes no slices then), named only by `domain`.
        try await withCloud({ $0.createServers = .null; $0.uploadServers = 2 }) { s, emu, t in
            let content = Data((0..<3500).map { UInt8(truncatingIfNeeded: $0 &* 11) })
            let put = try await s.put("/123/up/d.bin", content, token: t)
            #expect(put.code == 200, "\(put.text)")
            #expect(await emu.callCounts()["/upload/v2/file/domain"] == 1)
            #expect(await emu.slicesByServer() == [1: 2, 2: 2])
            #expect(try await Self.cloudBytes(s, t, "/123/up/d.bin") == content)
        }
    }

    @Test func slicesSpreadOverSeveralServersAndSkipAFailingOne() async throws {
        try await withCloud({ $0.uploadServers = 3 }) { s, emu, t in
            let content = Data((0..<6144).map { UInt8(truncatingIfNeeded: $0 &* 5 &+ 2) })
            #expect(try await s.put("/123/up/six.bin", content, token: t).code == 200)
            let spread = await emu.slicesByServer()
            #expect(spread == [1: 2, 2: 2, 3: 2], "\(spread)")
            #expect(try await Self.cloudBytes(s, t, "/123/up/six.bin") == content)
            // Server 2 is down: its slices go to the next server; the file is whole.
            await emu.setUploadServers(down: [2])
            let other = Data((0..<6144).map { UInt8(truncatingIfNeeded: $0 &* 9 &+ 4) })
            let put = try await s.put("/123/up/other.bin", other, token: t)
            #expect(put.code == 200, "\(put.text)")
            let after = await emu.slicesByServer()
            #expect(after[2] == 2 && (after[1] ?? 0) + (after[3] ?? 0) == 10, "\(after)")
            #expect(try await Self.cloudBytes(s, t, "/123/up/other.bin") == other)
        }
    }
}
