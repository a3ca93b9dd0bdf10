import Foundation
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer

/// A bounded, reproducible fuzzing pass (fixed seed): malformed and random bodies on the JSON routes, the
/// WebDAV XML bodies, and Range / If headers. Every answer must be an orderly one (the API's envelope, or a
/// WebDAV status below 500), and the server must keep answering.
@Suite("Security: fuzzing")
struct FuzzTests {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
        mutating func bytes(_ n: Int) -> Data { Data((0..<n).map { _ in UInt8(truncatingIfNeeded: next()) }) }
    }

    static let fragments = ["{", "}", "[", "]", "\"path\":", "\"/\"", "\"..\"", "null", "true", "1e999", "-1", "\"\\u0000\"",
                            "\"names\":[", "\"a\"", ",", ":", "\"src_dir\":", "\"/x/../..\"", "9999999999999999999999", "\"\\ud800\""]
    static let xml = ["<?xml version=\"1.0\"?>", "<D:propfind xmlns:D=\"DAV:\">", "<D:prop>", "</D:prop>", "<D:allprop/>", "</D:propfind>",
                      "<D:propertyupdate xmlns:D=\"DAV:\">", "<D:set>", "<D:remove>", "<x:a xmlns:x=\"u\">v</x:a>", "<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>",
                      "&e;", "<D:lockinfo xmlns:D=\"DAV:\">", "<D:lockscope><D:exclusive/></D:lockscope>", "<", ">", "&", "]]>", "<![CDATA[x]]>"]
    static let ranges = ["bytes=", "bytes=-", "bytes=0-", "bytes=5-1", "bytes=-0", "bytes=0-0,1-1", "bytes=99999999999999999999-", "items=0-1",
                         "bytes=0-1,", "bytes= 1 - 2", "bytes=-99999999999999999999", "bytes=a-b"]
    static let ifs = ["(<opaquelocktoken:x>)", "(", "<http://x/> (Not <DAV:no-lock>)", "([\"etag\"])", "(Not)", "<> ()", "((<a>))", "(<a> [b)"]

    @Test func malformedInputGetsOrderlyAnswers() async throws {
        try await withServer { s in
            let t = try await s.login()
            let basic = "Basic " + Data("admin:\(s.adminPassword)".utf8).base64EncodedString()
            try Data((0..<5000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: s.files + "/f.bin"))
            var rng = Rng(state: 20261125)
            var bad: [String] = []
            let routes = ["/api/fs/list", "/api/fs/get", "/api/fs/dirs", "/api/fs/mkdir", "/api/fs/rename", "/api/fs/move", "/api/fs/copy",
                          "/api/fs/remove", "/api/auth/login", "/api/admin/storage/create", "/api/admin/storage/update",
                          "/api/admin/setting/save", "/api/admin/user/create", "/api/admin/user/update", "/api/me/update", "/api/fs/link"]
            for i in 0..<400 {
                switch i % 4 {
                case 0:
                    // JSON routes: random fragments, random bytes, or huge numbers.
                    let body = rng.int(3) == 0 ? rng.bytes(rng.int(200)) : Data((0..<rng.int(12)).map { _ in rng.pick(Self.fragments) }.joined().utf8)
                    let route = rng.pick(routes)
                    let r = try await s.request(.POST, route, headers: [("Authorization", t), ("Content-Type", "application/json")], body: body)
                    if r.status != 200 || r.json["code"] == nil { bad.append("\(route) \(String(decoding: body, as: UTF8.self)) -> \(r.status) \(r.text.prefix(80))") }
                case 1:
                    // WebDAV bodies.
                    let method = rng.pick(["PROPFIND", "PROPPATCH", "LOCK"])
                    let body = (0..<rng.int(10)).map { _ in rng.pick(Self.xml) }.joined()
                    let r = try await s.request(.RAW(value: method), "/dav/", headers: [("Authorization", basic), ("Depth", rng.pick(["0", "1", "x"]))],
                                                body: Data(body.utf8))
                    if r.status >= 500 { bad.append("\(method) \(body) -> \(r.status) \(r.text.prefix(80))") }
                    if r.text.contains("root:") { bad.append("an external entity was expanded") }
                case 2:
                    // Range headers on /p and WebDAV GET.
                    let range = rng.pick(Self.ranges)
                    let viaDAV = rng.int(2) == 0
                    let r = try await s.request(.GET, viaDAV ? "/dav/f.bin" : "/p/f.bin",
                                                headers: [("Authorization", viaDAV ? basic : t), ("Range", range)])
                    if ![200, 206, 416].contains(r.status) { bad.append("Range \(range) -> \(r.status)") }
                default:
                    // If headers on WebDAV writes.
                    let header = rng.pick(Self.ifs)
                    let r = try await s.request(.RAW(value: rng.pick(["PUT", "DELETE", "PROPPATCH"])), "/dav/fz-\(i).txt",
                                                headers: [("Authorization", basic), ("If", header)], body: Data("x".utf8))
                    if r.status >= 500 { bad.append("If \(header) -> \(r.status)") }
                }
            }
            #expect(bad.isEmpty, "\(bad.prefix(10).joined(separator: "\n"))")
            // Paging numbers near the integer limits (they once overflowed and stopped the server).
            for (page, perPage) in [(4_611_686_018_427_387_905, 4), (1, Int.max), (Int.max, Int.max), (-5, -5)] {
                let r = try await s.request(.GET, "/api/fs/list?path=/&page=\(page)&per_page=\(perPage)", headers: [("Authorization", t)])
                #expect(r.code == 200, "page \(page) per_page \(perPage): \(r.text)")
                #expect(try await s.request(.GET, "/api/admin/user/list?page=\(page)&per_page=\(perPage)", headers: [("Authorization", t)]).code == 200)
            }
            // Still alive and answering normally.
            #expect(try await s.request(.GET, "/ping").text == "pong")
            #expect(try await s.api("/fs/list", ["path": "/"], token: t).code == 200)
        }
    }
}
