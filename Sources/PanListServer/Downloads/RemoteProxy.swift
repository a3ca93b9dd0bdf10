import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import PanListCore

/// Streams a remote link (a cloud's download URL) to the client: the client's Range and conditional
/// headers go upstream, the upstream status (200, 206, 304, 416) and its length, range and validator
/// headers come back, with PanList's own Content-Type and Content-Disposition (nosniff: NoSniffMiddleware). The body is
/// pulled from upstream only as fast as the client takes it, and a client that goes away cancels the
/// upstream request. Upstream errors (an HTTP error status, or a JSON error body from the cloud)
/// become a clear error instead of file content.
enum RemoteProxy {
    /// One client for all proxied downloads: redirects followed (up to 10, as Alist does), TLS verified.
    static let http: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .follow(max: 10, allowCycles: false)
        config.timeout = .init(connect: .seconds(10), read: .seconds(60))
        // Every proxied download holds its own connection for as long as it streams: the pool must not queue
        // the 9th viewer behind the first 8 (AsyncHTTPClient's default per host).
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        config.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    /// Request headers passed on to the cloud (others, such as Authorization and Cookie, never are).
    static let forwarded: [HTTPField.Name] = [.range, .ifRange, .ifMatch, .ifNoneMatch, .ifModifiedSince, .ifUnmodifiedSince,
                                              .userAgent, .accept, .acceptLanguage]
    /// Response headers passed back.
    static let passedBack: [String] = ["content-length", "content-range", "accept-ranges", "etag", "last-modified"]
    /// Most of an error body read to explain it.
    static let errorBodyLimit = 64 * 1024

    /// `link`: the URL and the headers the fetch needs. `refetch` gets a new link when the first one was
    /// refused as expired (tried once).
    static func respond(_ req: Request, url: String, linkHeaders: [String: String], obj: Obj,
                        refetch: @Sendable () async throws -> (String, [String: String])) async throws -> Response {
        var (url, linkHeaders) = (url, linkHeaders)
        var upstream = try await fetch(req, url: url, headers: linkHeaders)
        if isExpiredLink(upstream.status) {
            _ = try? await upstream.body.collect(upTo: errorBodyLimit)
            (url, linkHeaders) = try await refetch()
            upstream = try await fetch(req, url: url, headers: linkHeaders)
        }
        let status = upstream.status
        if status.code >= 400 && status != .rangeNotSatisfiable {
            throw try await error(from: upstream, name: obj.name)
        }
        var headers = HTTPFields()
        for name in passedBack {
            if let v = upstream.headers.first(name: name), let field = HTTPField.Name(name) { headers[field] = v }
        }
        if headers[.acceptRanges] == nil && status != .rangeNotSatisfiable { headers[.acceptRanges] = "bytes" }
        let mime = ContentTypes.forName(obj.name)
        headers[.contentType] = mime
        headers[.contentDisposition] = ContentTypes.disposition(name: obj.name, inline: ContentTypes.isSafeInline(mime))

        // A 200 whose body is a JSON error from the cloud (123 answers errors that way) is not file content.
        var prefix: ByteBuffer?
        let upstreamType = upstream.headers.first(name: "content-type")?.lowercased() ?? ""
        if status == .ok, req.method != .head, upstreamType.contains("json"), !mime.contains("json"),
           let length = Int(upstream.headers.first(name: "content-length") ?? ""), length <= errorBodyLimit {
            let body = try await upstream.body.collect(upTo: errorBodyLimit)
            if let e = cloudError(body) { throw FSError.upstream(code: e.code, message: "the cloud refused to send \(obj.name): \(e.message)") }
            prefix = body
        }
        let code = HTTPResponse.Status(code: Int(status.code))
        if req.method == .head || status == .notModified || status == .rangeNotSatisfiable {
            if status == .rangeNotSatisfiable { headers[.contentLength] = "0"; headers[.contentType] = nil }
            return Response(status: code, headers: headers, body: .init())
        }
        let length = headers[.contentLength].flatMap { Int($0) }
        let body = upstream.body
        let collected = prefix
        return Response(status: code, headers: headers, body: ResponseBody(contentLength: length) { writer in
            if let collected {
                try await writer.write(collected)
            } else {
                for try await chunk in body {
                    // A small read can sit in a 64 KiB buffer; while it waits for a slow client, send a compact
                    // copy so the big buffer is freed at once (memory per download stays near the bytes in flight).
                    if chunk.storageCapacity > 4 * chunk.readableBytes {
                        try await writer.write(ByteBuffer(bytes: chunk.readableBytesView))
                    } else {
                        try await writer.write(chunk)
                    }
                }
            }
            try await writer.finish(nil)
        })
    }

    static func isExpiredLink(_ status: HTTPResponseStatus) -> Bool {
        [401, 403, 404, 410].contains(status.code)
    }

    static func fetch(_ req: Request, url: String, headers linkHeaders: [String: String]) async throws -> HTTPClientResponse {
        var up = HTTPClientRequest(url: url)
        up.method = req.method == .head ? .HEAD : .GET
        for name in forwarded {
            if let v = req.headers[name] { up.headers.replaceOrAdd(name: name.rawName, value: v) }
        }
        for (k, v) in linkHeaders { up.headers.replaceOrAdd(name: k, value: v) }
        do {
            var res = try await http.execute(up, timeout: .seconds(30))
            // Some servers refuse HEAD: ask with GET and drop the body (the connection is closed, not read).
            if up.method == .HEAD && [405, 501].contains(res.status.code) {
                up.method = .GET
                res = try await http.execute(up, timeout: .seconds(30))
            }
            return res
        } catch {
            throw FSError.upstream(code: -1, message: "cannot reach the cloud's download server: \(ErrorText.describe(error))")
        }
    }

    /// An error status from upstream, explained with the cloud's own message when its body has one.
    static func error(from res: HTTPClientResponse, name: String) async throws -> FSError {
        let body = (try? await res.body.collect(upTo: errorBodyLimit)) ?? ByteBuffer()
        if let e = cloudError(body) {
            return .upstream(code: e.code, message: "the cloud refused to send \(name) (HTTP \(res.status.code)): \(e.message)")
        }
        let text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines).prefix(200)
        return .upstream(code: Int(res.status.code), message: "the cloud refused to send \(name) (HTTP \(res.status.code))" + (text.isEmpty ? "" : ": \(text)"))
    }

    /// A cloud file as a stream, for copies from a cloud storage to another storage.
    struct Fetcher: RemoteFetcher {
        func withStream<R: Sendable>(url: String, headers: [String: String], _ body: (ByteStream) async throws -> R) async throws -> R {
            var up = HTTPClientRequest(url: url)
            up.method = .GET
            for (k, v) in headers { up.headers.replaceOrAdd(name: k, value: v) }
            let res: HTTPClientResponse
            do { res = try await http.execute(up, timeout: .seconds(30)) } catch {
                throw FSError.upstream(code: -1, message: "cannot reach the cloud's download server: \(ErrorText.describe(error))")
            }
            guard res.status.code < 400 else { throw try await error(from: res, name: URL(string: url)?.lastPathComponent ?? url) }
            return try await body(ByteStream(res.body))
        }
    }

    /// `{"code": non-zero, "message": …}` (123's envelope) in a body, if that is what it is.
    static func cloudError(_ body: ByteBuffer) -> (code: Int, message: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
              let code = (object["code"] as? NSNumber)?.intValue, code != 0 && code != 200 else { return nil }
        return (code, (object["message"] as? String) ?? (object["msg"] as? String) ?? "error \(code)")
    }
}
