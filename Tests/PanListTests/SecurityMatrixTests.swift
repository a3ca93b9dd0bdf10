import Foundation
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer

/// Path traversal in every place a path enters: `/api` bodies and headers, `/d` and `/p` URLs, WebDAV URLs
/// and `Destination`, a share's visitor routes and its `/sd`, `/sp` links. Each attempt is refused, and nothing outside the storage root is read or changed.
@Suite("Security: traversal matrix")
struct SecurityMatrixTests {
    /// Ways to spell "go up" (or escape) that clients and attackers have used against Alist and others.
    static let escapes = ["..", "%2e%2e", "%2E%2E", ".%2e", "%252e%252e", "..%2f..", "..%5c..", "..\\..", "%00", "..%00",
                          "%c0%ae%c0%ae", "%2f..", "//..", "./../.."]

    @Test func nothingLeavesTheRoot() async throws {
        try await withServer { s in
            let t = try await s.login()
            let admin = "Basic " + Data("admin:\(s.adminPassword)".utf8).base64EncodedString()
            let secret = s.dir.path + "/data/secret.txt"
            try Data("top secret".utf8).write(to: URL(fileURLWithPath: secret))
            let outside = s.dir.path + "/data"
            let before = Set(try FileManager.default.contentsOfDirectory(atPath: outside))
            try FileManager.default.createDirectory(atPath: s.files + "/in", withIntermediateDirectories: true)
            // A symlink out of the Local root is neither listed nor followed.
            try FileManager.default.createSymbolicLink(atPath: s.files + "/in/link", withDestinationPath: outside)

            // A share of /in, opened: its visitor routes and /sd, /sp links take the same escapes.
            try Data("shared".utf8).write(to: URL(fileURLWithPath: s.files + "/in/shared.txt"))
            try Data("beside-content".utf8).write(to: URL(fileURLWithPath: s.files + "/beside.txt"))
            let share = try #require(try await s.api("/share/create", ["files": ["/in"]], token: t).data["id"] as? String)
            let session = try #require(try await s.api("/public/share/auth", ["id": share]).data["token"] as? String)
            let link = try #require(try await s.api("/public/share/get", ["id": share, "token": session, "path": "/shared.txt"]).data["raw_url"] as? String)
            let sign = try #require(link.components(separatedBy: "?sign=").last)
            #expect(try await s.request(.GET, "/sd/\(share)/shared.txt?sign=\(sign)").text == "shared")

            var answers: [String] = []
            for e in Self.escapes {
                for raw in ["/\(e)/\(e)/secret.txt", "/\(e)/beside.txt", "/shared.txt/\(e)/\(e)/beside.txt", "/link/secret.txt"] {
                    let decoded = raw.removingPercentEncoding ?? raw
                    for route in ["/public/share/list", "/public/share/get"] {
                        let r = try await s.api(route, ["id": share, "token": session, "path": decoded])
                        let names = (r.data["content"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } + [r.data["name"] as? String ?? ""]
                        if r.text.contains("top secret") || names.contains("beside.txt") || names.contains("secret.txt") || names.contains("in")
                            || r.text.contains(s.dir.path) { answers.append("share \(route) \(raw): \(r.text)") }
                    }
                    for prefix in ["/sd", "/sp"] {
                        let r = try await s.request(.GET, "\(prefix)/\(share)\(raw)?sign=\(sign)")
                        if r.text.contains("top secret") || r.text.contains("beside-content") { answers.append("\(prefix) \(raw)") }
                        let up = try await s.request(.GET, "\(prefix)/\(e)/\(e)/secret.txt?sign=\(sign)")
                        if up.text.contains("top secret") { answers.append("\(prefix) id \(e)") }
                    }
                }
                let raw = "/in/\(e)/\(e)/secret.txt"
                let decoded = raw.removingPercentEncoding ?? raw
                // /api: path fields.
                for (route, body) in [("/fs/get", ["path": decoded]), ("/fs/list", ["path": decoded]),
                                      ("/fs/mkdir", ["path": decoded + "x"]), ("/fs/rename", ["path": decoded, "name": "y"]),
                                      ("/fs/remove", ["dir": decoded, "names": ["secret.txt"]] as [String: Any]),
                                      ("/fs/copy", ["src_dir": decoded, "dst_dir": "/in", "names": ["secret.txt"]] as [String: Any])] {
                    let r = try await s.api(route, body, token: t)
                    if r.code == 200 && route == "/fs/get" && r.text.contains("top secret") { answers.append("api \(route) \(e)") }
                }
                // /api: the File-Path header of an upload.
                let put = try await s.request(.PUT, "/api/fs/put", headers: [("Authorization", t), ("File-Path", raw)], body: Data("x".utf8))
                if put.json["code"] as? Int == 200 && FileManager.default.fileExists(atPath: outside + "/secret.txt.x") { answers.append("put \(e)") }
                // /d and /p URLs.
                for prefix in ["/d", "/p"] {
                    let r = try await s.request(.GET, prefix + raw, headers: [("Authorization", t)])
                    if r.text.contains("top secret") { answers.append("\(prefix) \(e)") }
                }
                // WebDAV URLs and Destination.
                let g = try await s.request(.GET, "/dav" + raw, headers: [("Authorization", admin)])
                if g.text.contains("top secret") { answers.append("dav GET \(e)") }
                _ = try await s.request(.RAW(value: "PUT"), "/dav" + raw, headers: [("Authorization", admin)], body: Data("pwned".utf8))
                try Data("x".utf8).write(to: URL(fileURLWithPath: s.files + "/in/a.txt"))
                _ = try await s.request(.RAW(value: "COPY"), "/dav/in/a.txt", headers: [("Authorization", admin), ("Destination", "/dav" + raw)])
                _ = try await s.request(.RAW(value: "MOVE"), "/dav/in/a.txt", headers: [("Authorization", admin), ("Destination", s.base + "/dav" + raw)])
            }
            #expect(answers.isEmpty, "\(answers)")
            // Nothing outside the root was read, created or changed.
            #expect(FileManager.default.contents(atPath: secret) == Data("top secret".utf8))
            let after = Set(try FileManager.default.contentsOfDirectory(atPath: outside))
            #expect(after == before, "\(after.subtracting(before))")
            // The symlink is not listed, and cannot be walked through.
            let listing = try await s.api("/fs/list", ["path": "/in"], token: t)
            #expect((listing.data["content"] as? [[String: Any]])?.contains { $0["name"] as? String == "link" } != true)
            #expect(try await s.request(.GET, "/d/in/link/secret.txt", headers: [("Authorization", t)]).status != 200)
            #expect(try await s.request(.GET, "/dav/in/link/secret.txt", headers: [("Authorization", admin)]).status != 200)
        }
    }
}
