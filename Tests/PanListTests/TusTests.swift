import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import Testing
@testable import PanListCore
@testable import PanListServer
@testable import PanListStore

/// tus 1.0 at /api/fs/tus/ (work in progress of issue 16).
@Suite("Resumable uploads: tus")
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
            #expect(s.dir.allEntries("data/temp/uploads").isEmpty)

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
            #expect(s.dir.allEntries("data/temp/uploads") == [id])
            var row = try #require(try await s.state.store.uploadSession(id: id))
            row.expires_ms = 1
            try await s.state.store.deleteUploadSession(id: id)
            try await s.state.store.insertUploadSession(row)
            await s.state.sweepUploads(orphans: false)
            #expect(try await s.state.store.uploadSession(id: id) == nil)
            #expect(s.dir.allEntries("data/temp/uploads").isEmpty)
        }
    }
}
