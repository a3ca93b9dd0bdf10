import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PanListCore

/// The web UI: plain HTML, CSS and JavaScript modules from `Web/static` (compiled into the binary by the
/// EmbedWebUI build plugin as `EmbeddedWebUI`, no build step of its own), served at `/assets/<file>`, with
/// `index.html` for `/` and every browsing path.
/// The UI talks to `/api` only. Every UI answer carries a Content-Security-Policy that allows scripts and
/// styles from this origin only, so nothing from the drive can run in the UI's origin.
struct WebUI: Sendable {
    struct Asset: Sendable {
        var bytes: ByteBuffer
        var contentType: String
        var etag: String
    }
    let assets: [String: Asset]

    static let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; "
        + "media-src 'self' blob: http: https:; frame-src 'self'; object-src 'none'; base-uri 'none'; "
        + "frame-ancestors 'none'; form-action 'self'; connect-src 'self'"

    /// Loads the files once (they are small): the copy embedded in the binary, or, when `PANLIST_WEB_DIR` is
    /// set, the files of that folder (for UI work: edit and reload without a rebuild).
    static func load(logger: Logger) -> WebUI {
        var files: [(name: String, data: Data)] = []
        var source = "the embedded copy"
        if let override = ProcessInfo.processInfo.environment["PANLIST_WEB_DIR"], !override.isEmpty {
            let dir = URL(fileURLWithPath: override)
            source = dir.path
            if let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) {
                for name in names where !name.hasPrefix(".") {
                    guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
                    files.append((name, data))
                }
            }
        } else {
            files = embedded()
        }
        var assets: [String: Asset] = [:]
        for (name, data) in files {
            assets[name] = asset(name: name, data: data)
        }
        if assets["index.html"] == nil {
            logger.warning("the web UI files were not found (looked in \(source)); / serves a notice")
        }
        return WebUI(assets: assets)
    }

    /// The files compiled into the binary (generated from `Web/static` at build time).
    static func embedded() -> [(name: String, data: Data)] {
        EmbeddedWebUI.files.compactMap { file in
            Data(base64Encoded: file.base64).map { (file.name, $0) }
        }
    }

    static func asset(name: String, data: Data) -> Asset {
        let type: String
        switch (name as NSString).pathExtension.lowercased() {
        case "html": type = "text/html; charset=utf-8"
        case "js": type = "text/javascript; charset=utf-8"
        case "css": type = "text/css; charset=utf-8"
        case "svg": type = "image/svg+xml"
        case "png": type = "image/png"
        case "ico": type = "image/x-icon"
        case "json": type = "application/json"
        default: type = "application/octet-stream"
        }
        let etag = "\"" + SHA256.hash(data: data).prefix(8).hexString + "\""
        return Asset(bytes: ByteBuffer(bytes: data), contentType: type, etag: etag)
    }

    func register(on router: Router<AppContext>) {
        for method in [HTTPRequest.Method.get, .head] {
            router.on("assets/{file}", method: method) { req, ctx in
                guard let name = ctx.parameters.get("file"), let asset = assets[name] else {
                    return Response(status: .notFound, headers: Self.headers("text/plain; charset=utf-8"),
                                    body: .init(byteBuffer: ByteBuffer(string: "no such file\n")))
                }
                return respond(req, asset)
            }
            router.on("/", method: method) { req, _ in index(req) }
            // Browsing paths (`/docs/a folder`) and the manage pages are the same page; the UI reads the URL.
            router.on("**", method: method) { req, _ in index(req) }
        }
    }

    func index(_ req: Request) -> Response {
        guard let asset = assets["index.html"] else {
            let html = "<!doctype html><meta charset=utf-8><title>PanList</title><p>PanList is running; the web UI files are missing from this build. The API is at /api.</p>"
            return Response(status: .ok, headers: Self.headers("text/html; charset=utf-8"), body: .init(byteBuffer: ByteBuffer(string: html)))
        }
        var r = respond(req, asset)
        r.headers[.cacheControl] = "no-cache"
        return r
    }

    func respond(_ req: Request, _ asset: Asset) -> Response {
        var headers = Self.headers(asset.contentType)
        headers[.eTag] = asset.etag
        headers[.cacheControl] = "no-cache"
        if let inm = req.headers[.ifNoneMatch], inm == asset.etag {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(asset.bytes.readableBytes)
        return Response(status: .ok, headers: headers, body: req.method == .head ? .init() : .init(byteBuffer: asset.bytes))
    }

    static func headers(_ type: String) -> HTTPFields {
        var h = HTTPFields()
        h[.contentType] = type
        h[.contentSecurityPolicy] = csp
        h[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return h
    }
}
