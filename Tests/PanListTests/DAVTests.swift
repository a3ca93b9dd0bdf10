import AsyncHTTPClient
#if canImport(FoundationXML)
import FoundationXML
#endif
import Foundation
import NIOCore
import NIOHTTP1
import Open123Emulator
@testable import PanListCore
@testable import PanListServer
import PanListStore
import Testing

/// WebDAV over real HTTP: each method's status codes and the XML it returns.
@Suite("WebDAV at /dav")
struct DAVTests {
    static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    func dav(_ s: TestServer, _ method: String, _ path: String, auth: String?, headers: [(String, String)] = [], body: String? = nil) async throws -> HTTPResult {
        var h = headers
        if let auth { h.append(("Authorization", auth)) }
        return try await s.request(.RAW(value: method), path, headers: h, body: body.map { Data($0.utf8) })
    }

    @Test func optionsAuthAndPropfind() async throws {
        try await withServer { s in
            let admin = Self.basic("admin", s.adminPassword)
            let opts = try await dav(s, "OPTIONS", "/dav/", auth: nil)
            #expect(opts.status == 200 && opts.header("DAV") == "1, 2" && opts.header("Allow")?.contains("PROPFIND") == true)
            let anon = try await dav(s, "PROPFIND", "/dav/", auth: nil)
            #expect(anon.status == 401 && anon.header("WWW-Authenticate")?.hasPrefix("Basic") == true)
            #expect(try await dav(s, "PROPFIND", "/dav/", auth: Self.basic("admin", "wrong")).status == 401)
            // A file with awkward characters, and a folder.
            let name = "a b#%中😀.txt"
            let created = try await dav(s, "PUT", "/dav/" + URLPath.encode(name), auth: admin, body: "hello")
            #expect(created.status == 201)
            let etag = try #require(created.header("ETag"))
            #expect(try await dav(s, "MKCOL", "/dav/sub", auth: admin).status == 201)
            let d1 = try await dav(s, "PROPFIND", "/dav/", auth: admin, headers: [("Depth", "1")])
            #expect(d1.status == 207 && d1.header("Content-Type")?.hasPrefix("application/xml") == true)
            #expect(d1.text.contains("<D:href>/dav/" + URLPath.encode(name) + "</D:href>"))
            #expect(d1.text.contains("<D:href>/dav/sub/</D:href>") && d1.text.contains("<D:collection/>"))
            #expect(d1.text.contains("<D:getcontentlength>5</D:getcontentlength>"))
            // The listing's ETag is the one PUT answered (and the one GET sends).
            #expect(d1.text.contains("<D:getetag>" + etag.replacingOccurrences(of: "\"", with: "&quot;") + "</D:getetag>"), "\(etag)")
            #expect(try await dav(s, "GET", "/dav/" + URLPath.encode(name), auth: admin).header("ETag") == etag)
            let d0 = try await dav(s, "PROPFIND", "/dav/sub", auth: admin, headers: [("Depth", "0")])
            #expect(d0.text.components(separatedBy: "<D:response>").count == 2)
            // Named properties: found ones with 200, unknown ones with 404.
            let named = try await dav(s, "PROPFIND", "/dav/" + URLPath.encode(name), auth: admin, headers: [("Depth", "0")],
                                      body: "<?xml version='1.0'?><a:propfind xmlns:a='DAV:'><a:prop><a:getcontentlength/><z:nope xmlns:z='urn:z'/></a:prop></a:propfind>")
            #expect(named.text.contains("HTTP/1.1 200 OK") && named.text.contains("HTTP/1.1 404 Not Found") && named.text.contains("nope"))
            let names = try await dav(s, "PROPFIND", "/dav/", auth: admin, headers: [("Depth", "0")],
                                      body: "<propfind xmlns='DAV:'><propname/></propfind>")
            #expect(names.text.contains("<D:getlastmodified/>"))
            #expect(try await dav(s, "PROPFIND", "/dav/", auth: admin, body: "<D:propfind xmlns:D='DAV:'><D:prop>").status == 400)
            #expect(try await dav(s, "PROPFIND", "/dav/missing", auth: admin).status == 404)
            #expect(try await dav(s, "PROPFIND", "/dav/", auth: admin, headers: [("Depth", "2")]).status == 400)
            // `..` never leaves the tree.
            #expect(try await dav(s, "PROPFIND", "/dav/sub/%2e%2e/%2e%2e/etc", auth: admin).status == 400)
            // GET and HEAD of the file; GET of a folder is refused.
            let get = try await dav(s, "GET", "/dav/" + URLPath.encode(name), auth: admin, headers: [("Range", "bytes=1-2")])
            #expect(get.status == 206 && get.text == "el")
            #expect(try await dav(s, "GET", "/dav/sub/", auth: admin).status == 405)
        }
    }

    @Test func bigListingsAreStreamedWhole() async throws {
        try await withServer { s in
            let dir = s.files + "/big"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for i in 0..<1500 { try Data("x".utf8).write(to: URL(fileURLWithPath: dir + String(format: "/f%05d & <%d>.txt", i, i))) }
            let basic = "Basic " + Data("admin:\(s.adminPassword)".utf8).base64EncodedString()
            let r = try await s.request(.RAW(value: "PROPFIND"), "/dav/big/", headers: [("Authorization", basic), ("Depth", "1")])
            // Over 1 MB: sent in chunks as it is written (no Content-Length), and still one well-formed answer.
            #expect(r.status == 207 && r.body.count > 1_000_000)
            #expect(r.header("Content-Length") == nil)
            final class Count: NSObject, XMLParserDelegate {
                var responses = 0
                func parser(_ p: XMLParser, didStartElement e: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String]) {
                    if e == "response" { responses += 1 }
                }
            }
            let parser = XMLParser(data: r.body)
            parser.shouldProcessNamespaces = true
            let counter = Count()
            parser.delegate = counter
            #expect(parser.parse())
            #expect(counter.responses == 1501)
            #expect(r.text.contains("/dav/big/f01499%20%26%20%3C1499%3E.txt"))
            // A small one keeps its length.
            let small = try await s.request(.RAW(value: "PROPFIND"), "/dav/big/", headers: [("Authorization", basic), ("Depth", "0")])
            #expect(small.status == 207 && small.header("Content-Length") == String(small.body.count))
        }
    }

    @Test func writeMethodsAndTheirStatuses() async throws {
        try await withServer { s in
            let admin = Self.basic("admin", s.adminPassword)
            #expect(try await dav(s, "MKCOL", "/dav/x", auth: admin).status == 201)
            #expect(try await dav(s, "MKCOL", "/dav/x", auth: admin).status == 405)
            #expect(try await dav(s, "MKCOL", "/dav/none/y", auth: admin).status == 409)
            #expect(try await dav(s, "MKCOL", "/dav/z", auth: admin, body: "<x/>").status == 415)
            #expect(try await dav(s, "PUT", "/dav/none/f.txt", auth: admin, body: "x").status == 409)
            #expect(try await dav(s, "PUT", "/dav/x/f.txt", auth: admin, headers: [("X-OC-Mtime", "1600000000")], body: "one").status == 201)
            #expect(try await dav(s, "PUT", "/dav/x/f.txt", auth: admin, headers: [("X-OC-Mtime", "1600000000")], body: "two!").status == 204)
            let props = try await dav(s, "PROPFIND", "/dav/x/f.txt", auth: admin, headers: [("Depth", "0")])
            #expect(props.text.contains("Sun, 13 Sep 2020 12:26:40 GMT") && props.text.contains("<D:getcontentlength>4</D:getcontentlength>"))
            // COPY and MOVE: new names, Overwrite, missing parents.
            #expect(try await dav(s, "COPY", "/dav/x/f.txt", auth: admin, headers: [("Destination", s.base + "/dav/x/g.txt")]).status == 201)
            #expect(try await dav(s, "COPY", "/dav/x/f.txt", auth: admin, headers: [("Destination", "/dav/x/g.txt"), ("Overwrite", "F")]).status == 412)
            #expect(try await dav(s, "COPY", "/dav/x/f.txt", auth: admin, headers: [("Destination", "/dav/x/g.txt")]).status == 204)
            #expect(try await dav(s, "COPY", "/dav/x/f.txt", auth: admin, headers: [("Destination", "/dav/nowhere/g.txt")]).status == 409)
            #expect(try await dav(s, "MOVE", "/dav/x/g.txt", auth: admin, headers: [("Destination", "/dav/h.txt")]).status == 201)
            #expect(try await dav(s, "COPY", "/dav/x", auth: admin, headers: [("Destination", "/dav/x2")]).status == 201)
            #expect(FileManager.default.contents(atPath: s.files + "/x2/f.txt") == Data("two!".utf8))
            #expect(FileManager.default.contents(atPath: s.files + "/h.txt") == Data("two!".utf8))
            #expect(try await dav(s, "MOVE", "/dav/x2", auth: admin, headers: [("Destination", "/dav/x/inner")]).status == 201)
            #expect(FileManager.default.fileExists(atPath: s.files + "/x/inner/f.txt"))
            #expect(try await dav(s, "MOVE", "/dav/x", auth: admin, headers: [("Destination", "/dav/x/inside")]).status == 403)
            #expect(try await dav(s, "DELETE", "/dav/x", auth: admin).status == 204)
            #expect(try await dav(s, "DELETE", "/dav/x", auth: admin).status == 404)
            #expect(!FileManager.default.fileExists(atPath: s.files + "/x"))
        }
    }

    @Test func deadPropertiesFollowTheirResource() async throws {
        try await withServer { s in
            let admin = Self.basic("admin", s.adminPassword)
            #expect(try await dav(s, "PUT", "/dav/p.txt", auth: admin, body: "p").status == 201)
            let set = """
            <?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:zz"><D:set><D:prop>
            <Z:colour>blue &amp; <Z:b>bold</Z:b></Z:colour></D:prop></D:set></D:propertyupdate>
            """
            let r = try await dav(s, "PROPPATCH", "/dav/p.txt", auth: admin, body: set)
            #expect(r.status == 207 && r.text.contains("HTTP/1.1 200 OK"))
            #expect(try await dav(s, "MOVE", "/dav/p.txt", auth: admin, headers: [("Destination", "/dav/q.txt")]).status == 201)
            let got = try await dav(s, "PROPFIND", "/dav/q.txt", auth: admin, headers: [("Depth", "0")],
                                    body: "<D:propfind xmlns:D='DAV:'><D:prop><colour xmlns='urn:zz'/></D:prop></D:propfind>")
            #expect(got.text.contains("blue &amp; ") && got.text.contains("bold") && got.text.contains("urn:zz"), "\(got.text)")
            #expect(try await s.state.store.deadProperties("/q.txt").count == 1)
            #expect(try await s.state.store.deadProperties("/p.txt").isEmpty)
            // A live property cannot be set: 403 for it, 424 for the rest, nothing changed.
            let live = try await dav(s, "PROPPATCH", "/dav/q.txt", auth: admin, body: """
                <D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>x</D:getetag><D:other xmlns:D="urn:o">1</D:other></D:prop></D:set></D:propertyupdate>
                """)
            #expect(live.text.contains("403 Forbidden") && live.text.contains("424 Failed Dependency"))
            #expect(try await s.state.store.deadProperties("/q.txt").count == 1)
            #expect(try await dav(s, "PROPPATCH", "/dav/q.txt", auth: admin, body: "<broken").status == 400)
        }
    }

    @Test func locksGuardWrites() async throws {
        try await withServer { s in
            let admin = Self.basic("admin", s.adminPassword)
            #expect(try await dav(s, "PUT", "/dav/l.txt", auth: admin, body: "l").status == 201)
            let lockBody = "<D:lockinfo xmlns:D='DAV:'><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>"
            let lock = try await dav(s, "LOCK", "/dav/l.txt", auth: admin, headers: [("Timeout", "Second-60")], body: lockBody)
            #expect(lock.status == 200 && lock.text.contains("<D:lockdiscovery>") && lock.text.contains("Second-60"))
            let token = try #require(lock.header("Lock-Token"))
            #expect(try await dav(s, "PUT", "/dav/l.txt", auth: admin, body: "x").status == 423)
            #expect(try await dav(s, "LOCK", "/dav/l.txt", auth: admin, body: lockBody).status == 423)
            #expect(try await dav(s, "PUT", "/dav/l.txt", auth: admin, headers: [("If", "(\(token))")], body: "x").status == 204)
            #expect(try await dav(s, "PUT", "/dav/l.txt", auth: admin, headers: [("If", "(<opaquelocktoken:nope>)")], body: "x").status == 412)
            #expect(try await dav(s, "DELETE", "/dav/l.txt", auth: admin).status == 423)
            #expect(try await dav(s, "UNLOCK", "/dav/l.txt", auth: admin, headers: [("Lock-Token", token)]).status == 204)
            #expect(try await dav(s, "DELETE", "/dav/l.txt", auth: admin).status == 204)
            // Locking a name that does not exist yet creates an empty file.
            let fresh = try await dav(s, "LOCK", "/dav/new.txt", auth: admin, body: lockBody)
            #expect(fresh.status == 201 && FileManager.default.fileExists(atPath: s.files + "/new.txt"))
        }
    }

    @Test func permissionsAndBasePaths() async throws {
        try await withServer { s in
            try FileManager.default.createDirectory(atPath: s.files + "/home/sub", withIntermediateDirectories: true)
            try Data("mine".utf8).write(to: URL(fileURLWithPath: s.files + "/home/a.txt"))
            _ = try await s.addUser("reader", password: "reader-pass-1", basePath: "/home", permission: [.webdavRead])
            _ = try await s.addUser("nodav", password: "nodav-pass-1", permission: [.write])
            let reader = Self.basic("reader", "reader-pass-1")
            let list = try await dav(s, "PROPFIND", "/dav/", auth: reader, headers: [("Depth", "1")])
            #expect(list.status == 207 && list.text.contains("<D:href>/dav/a.txt</D:href>") && !list.text.contains("/home"), "\(list.status) \(list.text)")
            #expect(try await dav(s, "GET", "/dav/a.txt", auth: reader).text == "mine")
            #expect(try await dav(s, "PUT", "/dav/b.txt", auth: reader, body: "x").status == 403)
            #expect(try await dav(s, "DELETE", "/dav/a.txt", auth: reader).status == 403)
            #expect(try await dav(s, "PROPFIND", "/dav/", auth: Self.basic("nodav", "nodav-pass-1")).status == 403)
        }
    }

    @Test func copyAcrossStoragesToTheCloud() async throws {
        try await withCloud { s, emu, t in
            let admin = Self.basic("admin", s.adminPassword)
            #expect(try await dav(s, "PUT", "/dav/up.txt", auth: admin, body: "to the cloud").status == 201)
            #expect(try await dav(s, "COPY", "/dav/up.txt", auth: admin, headers: [("Destination", "/dav/123/renamed.txt")]).status == 201)
            let listing = try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t)
            #expect((listing.data["content"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["renamed.txt"])
            // WebDAV GET on the cloud storage follows its webdav_policy: a 302 by default, for clients that follow redirects.
            let get = try await dav(s, "GET", "/dav/123/renamed.txt", auth: admin, headers: [("User-Agent", "rclone/v1.60.1")])
            #expect(get.status == 302 && get.header("Location")?.hasPrefix(emu.baseURL) == true)
        }
    }
}
