import Foundation
import Testing
@testable import PanListServer

/// The web UI's files: served from the copy embedded in the binary with a strict Content-Security-Policy.
@Suite("Web UI serving")
struct WebUITests {
    @Test func indexAssetsAndPolicy() async throws {
        try await withServer { s in
            for path in ["/", "/some%20folder/deeper", "/@manage"] {
                let r = try await s.request(.GET, path)
                #expect(r.status == 200 && r.header("Content-Type")?.hasPrefix("text/html") == true && r.text.contains("/assets/app.js"), "\(path)")
                let csp = try #require(r.header("Content-Security-Policy"))
                #expect(csp.contains("script-src 'self'") && csp.contains("object-src 'none'") && !csp.contains("unsafe-inline"))
            }
            let js = try await s.request(.GET, "/assets/app.js")
            #expect(js.status == 200 && js.header("Content-Type")?.hasPrefix("text/javascript") == true)
            let etag = try #require(js.header("ETag"))
            #expect(try await s.request(.GET, "/assets/app.js", headers: [("If-None-Match", etag)]).status == 304)
            #expect(try await s.request(.GET, "/assets/nope.js").status == 404)
            // The API, downloads and WebDAV keep their own answers.
            #expect(try await s.request(.GET, "/api/nope").json["code"] as? Int == 404)
            #expect(try await s.request(.GET, "/ping").text == "pong")
            // nosniff on every kind of answer: the UI, API JSON (also errors), WebDAV errors, downloads.
            for (method, path) in [("GET", "/"), ("GET", "/assets/app.js"), ("GET", "/api/me"), ("GET", "/api/nope"),
                                   ("PROPFIND", "/dav/"), ("GET", "/d/missing.txt"), ("GET", "/ping")] {
                let r = try await s.request(.RAW(value: method), path)
                #expect(r.header("X-Content-Type-Options") == "nosniff", "\(method) \(path)")
            }
            // No inline script or handler in the page: the policy would block it anyway.
            let index = try await s.request(.GET, "/").text
            #expect(!index.contains("<script>") && !index.contains("onclick="))
        }
    }

    /// The embedded copy is every file of `Sources/PanListServer/Web/static`, byte for byte (the EmbedWebUI
    /// plugin reads the folder at build time, so a new file needs no code change).
    @Test func embeddedCopyIsTheFolder() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/PanListServer/Web/static")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }.sorted()
        let embedded = WebUI.embedded()
        #expect(embedded.map(\.name) == names)
        #expect(embedded.count == EmbeddedWebUI.files.count, "every literal decodes")
        for file in embedded {
            #expect(FileManager.default.contents(atPath: folder.appendingPathComponent(file.name).path) == file.data, "\(file.name)")
        }
        #expect(names.contains("index.html") && names.contains("app.js"))
    }
}
