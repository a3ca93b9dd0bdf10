import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Open123Emulator
import Testing
@testable import PanListCore
@testable import PanListServer

/// WebDAV sync to a cloud storage: 123 Open keeps the upload time, so PanList keeps the time a file was
/// given (following renames, moves, copies; forgotten on delete; void once the file changes) and offers the
/// hashes it knows as ownCloud checksums, which rclone's owncloud vendor compares.
@Suite("WebDAV and cloud storages: kept modification times, checksums, redirects")
struct KeptTimesTests {
    static func propfind(_ s: TestServer, _ auth: (String, String), _ path: String, depth: String = "0") async throws -> HTTPResult {
        let body = """
        <?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>
        <d:getlastmodified/><d:getcontentlength/><oc:checksums/></d:prop></d:propfind>
        """
        return try await s.request(.RAW(value: "PROPFIND"), "/dav" + path, headers: [auth, ("Depth", depth)], body: Data(body.utf8))
    }

    static func davAuth(_ s: TestServer) -> (String, String) {
        ("Authorization", DAVTests.basic("admin", s.adminPassword))
    }

    static func listedModified(_ s: TestServer, _ t: String, _ dir: String, _ name: String) async throws -> String? {
        let r = try await s.api("/fs/list", ["path": dir, "refresh": true], token: t)
        return ((r.data["content"] as? [[String: Any]])?.first { $0["name"] as? String == name })?["modified"] as? String
    }

    @Test func aCloudFileKeepsTheTimeItWasGiven() async throws {
        try await withCloud { s, _, t in
            let dav = Self.davAuth(s)
            let content = Data("kept time sample\n".utf8)
            let sha1 = Insecure.SHA1.hash(data: content).map { String(format: "%02x", $0) }.joined()
            let md5 = Insecure.MD5.hash(data: content).map { String(format: "%02x", $0) }.joined()
            _ = try await s.request(.RAW(value: "MKCOL"), "/dav/123/sync", headers: [dav])
            let put = try await s.request(.PUT, "/dav/123/sync/a.txt", headers: [dav, ("X-OC-Mtime", "1500000000"), ("OC-Checksum", "SHA1:\(sha1)")], body: content)
            #expect(put.status == 201, "\(put.text)")
            #expect(put.header("X-OC-Mtime") == "accepted")
            // PROPFIND and the API show the kept time and both checksums.
            let p = try await Self.propfind(s, dav, "/123/sync/a.txt")
            #expect(p.text.contains("<D:getlastmodified>Fri, 14 Jul 2017 02:40:00 GMT</D:getlastmodified>"), "\(p.text)")
            #expect(p.text.contains("SHA1:\(sha1) MD5:\(md5)"), "\(p.text)")
            #expect(try await Self.listedModified(s, t, "/123/sync", "a.txt") == "2017-07-14T02:40:00.000Z")
            // A wrong checksum is refused and leaves nothing.
            let bad = try await s.request(.PUT, "/dav/123/sync/b.txt", headers: [dav, ("OC-Checksum", "SHA1:" + String(repeating: "0", count: 40))], body: content)
            #expect(bad.status == 400)
            #expect(try await Self.propfind(s, dav, "/123/sync/b.txt").status == 404)
            // It follows a rename, a move and a copy; a delete forgets it.
            #expect(try await s.api("/fs/rename", ["path": "/123/sync/a.txt", "name": "c.txt"], token: t).code == 200)
            #expect(try await Self.listedModified(s, t, "/123/sync", "c.txt") == "2017-07-14T02:40:00.000Z")
            #expect(try await s.api("/fs/mkdir", ["path": "/123/other"], token: t).code == 200)
            #expect(try await s.api("/fs/move", ["src_dir": "/123/sync", "dst_dir": "/123/other", "names": ["c.txt"]], token: t).code == 200)
            #expect(try await Self.listedModified(s, t, "/123/other", "c.txt") == "2017-07-14T02:40:00.000Z")
            #expect(try await s.api("/fs/copy", ["src_dir": "/123/other", "dst_dir": "/123/sync", "names": ["c.txt"]], token: t).code == 200)
            #expect(try await Self.listedModified(s, t, "/123/sync", "c.txt") == "2017-07-14T02:40:00.000Z")
            // Copied to the Local storage, the file gets the time on disk.
            #expect(try await s.api("/fs/copy", ["src_dir": "/123/sync", "dst_dir": "/", "names": ["c.txt"]], token: t).code == 200)
            try await s.tasksFinish(token: t)
            var st = stat()
            #expect(stat(s.files + "/c.txt", &st) == 0 && st.st_mtim.tv_sec == 1_500_000_000)
            #expect(try await s.api("/fs/remove", ["dir": "/123/other", "names": ["c.txt"]], token: t).code == 200)
            #expect(try await s.state.store.keptTime("/123/other/c.txt") == nil)
            // PROPPATCH lastmodified (rclone's way of setting a time) on the cloud and on Local.
            let patch = """
            <?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>
            <lastmodified xmlns="DAV:">1600000000</lastmodified></D:prop></D:set></D:propertyupdate>
            """
            let pp = try await s.request(.RAW(value: "PROPPATCH"), "/dav/123/sync/c.txt", headers: [dav], body: Data(patch.utf8))
            #expect(pp.status == 207 && pp.text.contains("200 OK"), "\(pp.text)")
            #expect(try await Self.listedModified(s, t, "/123/sync", "c.txt") == "2020-09-13T12:26:40.000Z")
            _ = try await s.request(.RAW(value: "PROPPATCH"), "/dav/c.txt", headers: [dav], body: Data(patch.utf8))
            #expect(stat(s.files + "/c.txt", &st) == 0 && st.st_mtim.tv_sec == 1_600_000_000)
            // Recorded for another content (another size): the kept time does not apply.
            try await s.state.store.setKeptTime("/123/sync/c.txt", KeptTime(modified: Date(timeIntervalSince1970: 1_000_000_000), size: 999))
            let stale = try await Self.listedModified(s, t, "/123/sync", "c.txt")
            #expect(stale != nil && stale != "2001-09-09T01:46:40.000Z")
        }
    }

    /// A WebDAV client that does not follow redirects gets the bytes; one that does gets the 302.
    @Test func clientsThatDoNotFollowRedirectsGetTheBytes() async throws {
        try await withCloud { s, _, t in
            let dav = Self.davAuth(s)
            let content = Data("redirect or bytes\n".utf8)
            #expect(try await s.put("/123/r.txt", content, token: t).code == 200)
            let cadaver = try await s.request(.GET, "/dav/123/r.txt", headers: [dav, ("User-Agent", "cadaver/0.23.3 neon/0.32.5")])
            #expect(cadaver.status == 200 && cadaver.body == content)
            let none = try await s.request(.GET, "/dav/123/r.txt", headers: [dav])
            #expect(none.status == 200 && none.body == content)
            let rclone = try await s.request(.GET, "/dav/123/r.txt", headers: [dav, ("User-Agent", "rclone/v1.60.1")])
            #expect(rclone.status == 302)
            try await s.setSetting(SettingKey.webdavRedirectAgents, "*")
            #expect(try await s.request(.GET, "/dav/123/r.txt", headers: [dav, ("User-Agent", "cadaver/0.23.3")]).status == 302)
        }
    }
}

@Suite("Kept modification times: folders, odd names, leaving the cloud")
struct KeptTimesMoreTests {
    static func listed(_ s: TestServer, _ t: String, _ dir: String) async throws -> [String: String] {
        let r = try await s.api("/fs/list", ["path": dir, "refresh": true], token: t)
        var out: [String: String] = [:]
        for e in (r.data["content"] as? [[String: Any]]) ?? [] { out[e["name"] as? String ?? ""] = e["modified"] as? String }
        return out
    }

    @Test func timesFollowAFolderAndOddNamesAndAreForgottenWhenTheFileLeaves() async throws {
        try await withCloud { s, _, t in
            let when = "2017-07-14T02:40:00.000Z"
            for name in ["a_b.txt", "100%.txt", "plain.txt"] {
                let r = try await s.put("/123/dir_1/\(name)", Data("content of \(name)".utf8), token: t, extra: [("Last-Modified", "1500000000000")])
                #expect(r.code == 200, "\(r.text)")
            }
            // A file whose name is a LIKE pattern of the others must not take their times along.
            #expect(try await s.put("/123/dirx1/plain.txt", Data("other".utf8), token: t).code == 200)
            #expect(try await Self.listed(s, t, "/123/dir_1")["a_b.txt"] == when)
            #expect(try await s.api("/fs/rename", ["path": "/123/dir_1", "name": "dir%2"], token: t).code == 200)
            let moved = try await Self.listed(s, t, "/123/dir%2")
            #expect(moved["a_b.txt"] == when && moved["100%.txt"] == when && moved["plain.txt"] == when, "\(moved)")
            #expect(try await Self.listed(s, t, "/123/dirx1")["plain.txt"] != when)
            #expect(try await s.state.store.keptTime("/123/dir_1/a_b.txt") == nil)
            // Moved to the Local storage: the time goes onto the disk, and the cloud's record is forgotten.
            #expect(try await s.api("/fs/move", ["src_dir": "/123/dir%2", "dst_dir": "/", "names": ["plain.txt"]], token: t).code == 200)
            try await s.tasksFinish(token: t)
            var st = stat()
            #expect(stat(s.files + "/plain.txt", &st) == 0 && st.st_mtim.tv_sec == 1_500_000_000)
            #expect(try await s.state.store.keptTime("/123/dir%2/plain.txt") == nil)
        }
    }
}
