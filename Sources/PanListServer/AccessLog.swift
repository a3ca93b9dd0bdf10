import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PanListCore

/// One info-level line per request: client address, method, path (never the query, which may carry a sign
/// or a password), status, bytes sent and time taken. A streamed answer (a download, a big PROPFIND) is
/// logged when its last byte was written, with the bytes really sent; a client that hung up is said so.
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = AppContext
    let logger: Logger
    /// When set, lines go there (buffered standard error) instead of through `logger`.
    let sink: AccessLogSink?

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        guard logger.logLevel <= .info else { return try await next(request, context) }
        let start = NIODeadline.now()
        let line = Line(client: context.clientIP, method: request.method.rawValue, path: request.uri.path)
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            log(line, status: status, bytes: nil, start: start, note: nil)
            throw error
        }
        let status = response.status.code
        if request.method == .head {
            log(line, status: status, bytes: 0, start: start, note: nil)
            return response
        }
        // Small answers are logged at once; big and streamed ones when their last byte went out.
        if let length = response.body.contentLength, length <= 64 * 1024 {
            log(line, status: status, bytes: length, start: start, note: nil)
            return response
        }
        var wrapped = response
        let body = response.body
        let logger = self
        wrapped.body = ResponseBody(contentLength: body.contentLength) { writer in
            let counting = CountingWriter(inner: writer)
            do {
                try await body.write(counting)
                logger.log(line, status: status, bytes: counting.count.withLockedValue { $0 }, start: start, note: nil)
            } catch {
                logger.log(line, status: status, bytes: counting.count.withLockedValue { $0 }, start: start, note: Self.cutOff(error))
                throw error
            }
        }
        return wrapped
    }

    static func cutOff(_ error: any Error) -> String {
        if error is CancellationError { return "cut off: the server is stopping" }
        if error is ChannelError || error is IOError { return "cut off: the connection closed" }
        return "cut off: \(FSError.from(error).message)"
    }

    struct Line: Sendable {
        var client: String, method: String, path: String
    }

    func log(_ l: Line, status: Int, bytes: Int?, start: NIODeadline, note: String?) {
        let micros = (NIODeadline.now() - start).nanoseconds / 1000
        let ms = "\(micros / 1000).\(String(micros % 1000 / 100))"
        var text = "\(l.client) \"\(l.method) \(LogText.path(l.path))\" \(status) \(bytes.map(String.init) ?? "-") \(ms) ms"
        if let note { text += " (\(note))" }
        if let sink { sink.record(text) } else { logger.info("\(text)") }
    }
}

/// Counts the bytes written through it.
struct CountingWriter: ResponseBodyWriter {
    var inner: any ResponseBodyWriter
    let count = NIOLockedValueBox<Int>(0)

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await inner.write(buffer)
        count.withLockedValue { $0 += buffer.readableBytes }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        try await inner.finish(trailingHeaders)
    }
}
