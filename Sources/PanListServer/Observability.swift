import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import PanListCore
import PanListStore
import Prometheus

/// Request metrics: requests by route, method and status, their latency, and bytes in and out. The route is
/// the matched pattern (`/api/fs/list`, `/d/**`), never the path, so the series stay few.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = AppContext
    static let bytesIn = Metrics.counter("panlist_http_request_bytes_total", "Request body bytes received")
    static let bytesOut = Metrics.counter("panlist_http_response_bytes_total", "Response body bytes sent")
    static let inFlight = Metrics.gauge("panlist_http_requests_in_flight", "Requests being answered")
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "PROPPATCH",
                                            "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK"]

    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var request = request
        if request.headers[.contentLength].map({ $0 != "0" }) ?? (request.headers[.transferEncoding] != nil) {
            let body = request.body
            request.body = RequestBody(asyncSequence: body.map { buffer in
                Self.bytesIn.increment(by: Int64(buffer.readableBytes))
                return buffer
            })
        }
        // In flight while the handler works (balanced on every path); a request is counted when the handler
        // returns, with its status; the latency of a streamed answer runs to its last byte (or its failure).
        Self.inFlight.increment()
        // Any token is a method to HTTP: only known ones are labels, so a client cannot make series at will.
        let method = Self.knownMethods.contains(request.method.rawValue) ? request.method.rawValue : "other"
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            Self.inFlight.decrement()
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            Self.count(context.endpointPath ?? "unmatched", method, status)
            Self.latency(context.endpointPath ?? "unmatched", method, start)
            throw error
        }
        Self.inFlight.decrement()
        let route = context.endpointPath ?? "unmatched"
        Self.count(route, method, response.status.code)
        if request.method == .head {
            Self.latency(route, method, start)
            return response
        }
        if let length = response.body.contentLength, length <= 64 * 1024 {
            Self.bytesOut.increment(by: Int64(length))
            Self.latency(route, method, start)
            return response
        }
        var wrapped = response
        let body = response.body
        wrapped.body = ResponseBody(contentLength: body.contentLength) { writer in
            let counting = CountingWriter(inner: writer)
            defer {
                Self.bytesOut.increment(by: Int64(counting.count.withLockedValue { $0 }))
                Self.latency(route, method, start)
            }
            try await body.write(counting)
        }
        return wrapped
    }

    static func count(_ route: String, _ method: String, _ status: Int) {
        Metrics.counter("panlist_http_requests_total", "HTTP requests by route, method and status",
                        [("route", route), ("method", method), ("status", String(status))]).increment()
    }

    static func latency(_ route: String, _ method: String, _ start: ContinuousClock.Instant) {
        Metrics.histogram("panlist_http_request_duration", "Time to answer HTTP requests (streamed bodies: to the last byte)",
                          [("route", route), ("method", method)]).record(ContinuousClock.now - start)
    }
}

/// `/ready` for load balancers and `/metrics` for Prometheus.
public enum Observability {
    /// 200 when this instance can serve: the store answers (within 2 s), the storages of the start are
    /// loaded, and it is not stopping; 503 otherwise. `detailed` (the metrics address, kept private) adds the
    /// reasons in words and the storages that failed here; the public answer names only what is wrong
    /// (database, storages, stopping), never paths, hosts or users.
    static func readiness(_ state: ServerState, detailed: Bool) async -> Response {
        let (ready, data) = await readinessAnswer(state, detailed: detailed)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: ready ? .ok : .serviceUnavailable, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func readinessAnswer(_ state: ServerState, detailed: Bool) async -> (ready: Bool, json: Data) {
        var problems: [String] = []
        var details: [String] = []
        if state.isDraining { problems.append("shutting down") }
        if let e = await ping(state.store) {
            problems.append("database unavailable")
            details.append("the database does not answer: \(e.message)")
        }
        if !state.hasLoadedStorages { problems.append("storages loading") }
        let failed = state.fs.storages.filter { !$0.isWorking && $0.record.status != StorageStatus.loading }
        struct Answer: Encodable {
            var ready: Bool
            var problems: [String]
            var failed_storages: Int
            var instance: String?
            var details: [String]?
            var failed: [String]?
        }
        let answer = Answer(ready: problems.isEmpty, problems: problems, failed_storages: failed.count,
                            instance: detailed ? state.config.instanceID : nil, details: detailed ? details : nil,
                            failed: detailed ? failed.map { "\($0.mountPath): \($0.record.status)" } : nil)
        return (problems.isEmpty, (try? JSONEncoder().encode(answer)) ?? Data())
    }

    /// The store's answer to one round trip, or why not, within 2 s (the ping is left to finish on its own:
    /// a load balancer's check never waits for a database that does not answer).
    static func ping(_ store: any Store) async -> FSError? {
        let r: Result<FSError?, any Error> = await FirstOf.result { finish in
            Task {
                do { try await store.ping(); finish(.success(nil)) } catch { finish(.success(FSError.from(error))) }
            }
            Task {
                try? await Task.sleep(for: .seconds(2))
                finish(.success(.unavailable("no answer within 2 s")))
            }
        }
        return (try? r.get()) ?? nil
    }

    static let draining = Metrics.gauge("panlist_shutting_down", "1 while the server stops (draining requests)")

    /// The metrics in Prometheus's text format (gauges that describe the present are set first).
    static func metrics(_ state: ServerState) -> Response {
        let all = state.fs.storages
        let loading = all.filter { $0.record.status == StorageStatus.loading }.count
        let working = all.filter(\.isWorking).count
        let help = "Mounted storages by state (working, failed, loading)"
        Metrics.gauge("panlist_storages", help, [("state", "working")]).set(Double(working))
        Metrics.gauge("panlist_storages", help, [("state", "loading")]).set(Double(loading))
        Metrics.gauge("panlist_storages", help, [("state", "failed")]).set(Double(all.count - working - loading))
        draining.set(Double(state.isDraining ? 1 : 0))
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Metrics.registry.emitToBuffer())))
    }

    /// Where `/metrics` is served without credentials, when `metrics_address` is set (keep it on a private
    /// address): an application of its own.
    static func metricsApplication(state: ServerState, address: String, port: Int) -> some ApplicationProtocol {
        let router = Router(context: AppContext.self)
        router.get("metrics") { _, _ in metrics(state) }
        router.get("ready") { _, _ in await readiness(state, detailed: true) }
        return Application(router: router, configuration: .init(address: .hostname(address, port: port), serverName: "PanList metrics"),
                           logger: state.logger)
    }
}

/// `host:port` (IPv6 in brackets) of `metrics_address`.
public struct MetricsAddress: Sendable {
    public var host: String
    public var port: Int
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }
}

extension Observability {
    /// The public entry for the executable.
    public static func metricsService(state: ServerState, address: MetricsAddress) -> some ApplicationProtocol {
        metricsApplication(state: state, address: address.host, port: address.port)
    }
}
