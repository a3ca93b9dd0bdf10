import Crypto
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import Open123Emulator
import NIOCore

/// A web server on 127.0.0.1 that offline downloads fetch from, with the ways real servers answer:
/// - `/files/<name>`: with Content-Length, a strong ETag, ranges (206, If-Range); `/seed/<any>/<name>` the same;
/// - `/chunked/<name>`: no Content-Length (chunked);
/// - `/drop/<name>`: the first answer breaks off half-way (a dropped connection), later ones take ranges;
/// - `/slow/<name>`: 32 KiB every 50 ms;
/// - `/cd/<name>` and `/evil/<name>`: a Content-Disposition naming the file (`filename*`, or a path with `..`);
/// - `/redirect?to=<url>`: a 302 there; `/missing`: 404.
final class OriginServer: @unchecked Sendable {
    let port: Int
    private let runner: BackgroundService
    private let box: NIOLockedValueBox<State>

    struct State {
        var files: [String: Data] = [:]
        var dropped: Set<String> = []
        /// Requests by path, with their Range header ("" none).
        var requests: [(String, String)] = []
    }

    var base: String { "http://127.0.0.1:\(port)" }
    func url(_ path: String) -> String { base + path }
    var requests: [(String, String)] { box.withLockedValue { $0.requests } }

    static func start(files: [String: Data]) async throws -> OriginServer {
        let box = NIOLockedValueBox(State(files: files))
        let router = Router()
        @Sendable func file(_ ctx: BasicRequestContext) throws -> (String, Data) {
            let name = ctx.parameters.get("name") ?? ""
            guard let data = box.withLockedValue({ $0.files[name] }) else { throw HTTPError(.notFound) }
            return (name, data)
        }
        @Sendable func note(_ req: Request) {
            box.withLockedValue { $0.requests.append((req.uri.path, req.headers[.range] ?? "")) }
        }
        @Sendable func ranged(_ req: Request, _ data: Data) -> Response {
            let etag = "\"" + Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined() + "\""
            let type = req.uri.path.hasSuffix(".meta4") ? "application/metalink4+xml"
                : req.uri.path.hasSuffix(".torrent") ? "application/x-bittorrent" : "application/octet-stream"
            var headers: HTTPFields = [.eTag: etag, .acceptRanges: "bytes", .contentType: type]
            if let range = req.headers[.range], range.hasPrefix("bytes="), req.headers[.ifRange] == nil || req.headers[.ifRange] == etag,
               let start = Int(range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false).first ?? "") {
                guard start < data.count else {
                    headers[.contentRange] = "bytes */\(data.count)"
                    return Response(status: .rangeNotSatisfiable, headers: headers)
                }
                let asked = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false).dropFirst().first.flatMap { Int($0) }
                let end = min(asked ?? data.count - 1, data.count - 1)
                headers[.contentRange] = "bytes \(start)-\(end)/\(data.count)"
                headers[.contentLength] = String(end + 1 - start)
                return Response(status: .partialContent, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data[start...end])))
            }
            headers[.contentLength] = String(data.count)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("files/{name}") { req, ctx in note(req); return ranged(req, try file(ctx).1) }
        // A web seed's folder: /seed/<torrent name>/<path…> serves the file named by the last part.
        router.get("seed/**") { req, ctx in
            note(req)
            let name = ctx.parameters.getCatchAll().last.map(String.init) ?? ""
            guard let data = box.withLockedValue({ $0.files[name] }) else { throw HTTPError(.notFound) }
            return ranged(req, data)
        }
        router.head("files/{name}") { req, ctx in note(req); return ranged(req, try file(ctx).1) }
        router.get("chunked/{name}") { req, ctx -> Response in
            note(req)
            let data = try file(ctx).1
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: ResponseBody { writer in
                var at = 0
                while at < data.count {
                    let end = min(data.count, at + 100_000)
                    try await writer.write(ByteBuffer(bytes: data[at..<end]))
                    at = end
                }
                try await writer.finish(nil)
            })
        }
        router.get("drop/{name}") { req, ctx -> Response in
            note(req)
            let (name, data) = try file(ctx)
            let first = box.withLockedValue { $0.dropped.insert(name).inserted }
            guard first else { return ranged(req, data) }
            let etag = "\"" + Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined() + "\""
            return Response(status: .ok, headers: [.contentLength: String(data.count), .eTag: etag, .acceptRanges: "bytes"],
                            body: ResponseBody { writer in
                                try await writer.write(ByteBuffer(bytes: data[0..<(data.count / 2)]))
                                throw HTTPError(.internalServerError)
                            })
        }
        // Fine to a HEAD, a redirect to 127.0.0.2 (same port) to a GET: a server that answers checkers differently.
        router.head("two-faced/{name}") { req, ctx in note(req); return ranged(req, try file(ctx).1) }
        router.get("two-faced/{name}") { req, ctx -> Response in
            note(req)
            let name = try file(ctx).0
            let port = (req.head.authority ?? "").split(separator: ":").last.map(String.init) ?? "80"
            return Response(status: .found, headers: [.location: "http://127.0.0.2:\(port)/files/\(name)", .contentLength: "0"])
        }
        // The first 32 KiB, then nothing for a minute (a source that stopped sending).
        router.get("stall/{name}") { req, ctx -> Response in
            note(req)
            let data = try file(ctx).1
            return Response(status: .ok, headers: [.contentLength: String(data.count)], body: ResponseBody { writer in
                try await writer.write(ByteBuffer(bytes: data[0..<min(data.count, 32_768)]))
                try await Task.sleep(for: .seconds(60))
                try await writer.finish(nil)
            })
        }
        router.get("slow/{name}") { req, ctx -> Response in
            note(req)
            let data = try file(ctx).1
            return Response(status: .ok, headers: [.contentLength: String(data.count)], body: ResponseBody { writer in
                var at = 0
                while at < data.count {
                    let end = min(data.count, at + 32_768)
                    try await writer.write(ByteBuffer(bytes: data[at..<end]))
                    at = end
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await writer.finish(nil)
            })
        }
        router.get("cd/{name}") { req, ctx -> Response in
            note(req)
            let data = try file(ctx).1
            return Response(status: .ok, headers: [.contentLength: String(data.count),
                                                   .contentDisposition: "attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("evil/{name}") { req, ctx -> Response in
            note(req)
            let data = try file(ctx).1
            return Response(status: .ok, headers: [.contentLength: String(data.count), .contentDisposition: "attachment; filename=\"../../../evil.txt\""],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("redirect") { req, _ -> Response in
            note(req)
            let to = req.uri.queryParameters.get("to") ?? "/"
            return Response(status: .found, headers: [.location: to])
        }
        router.get("missing") { req, _ -> Response in note(req); return Response(status: .notFound) }
        let (stream, cont) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "origin")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in cont.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        let runner = BackgroundService(app, logger: logger)
        var port = 0
        for await p in stream { port = p; break }
        return OriginServer(port: port, runner: runner, box: box)
    }

    private init(port: Int, runner: BackgroundService, box: NIOLockedValueBox<State>) {
        self.port = port; self.runner = runner; self.box = box
    }

    func stop() async {
        await runner.stop()
    }
}
