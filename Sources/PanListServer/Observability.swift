import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import PanListCore
import Prometheus

/// Request metrics: requests by route, method and status, their latency, and bytes in and out. The route is
/// the matched pattern (`/api/fs/list`, `/d/**`), never the path, so the series stay few.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = AppContext
    static let bytesIn = Metrics.counter("panlist_http_request_bytes_total", "Request body bytes received")
    static let bytesOut = Metrics.counter("panlist_http_response_bytes_total", "Response body bytes sent")
    static let inFlight = Metrics.gauge("panlist_http_requests_in_flight", "Requests being answered")

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
        Self.inFlight.increment()
        let method = request.method.rawValue
        do {
            var response = try await next(request, context)
            let route = context.endpointPath ?? "unmatched"
            let status = response.status.code
            if request.method == .head {
                Self.done(route, method, status, start)
            } else if let length = response.body.contentLength, length <= 64 * 1024 {
                // Small answers: counted as they leave the handler.
                Self.bytesOut.increment(by: Int64(length))
                Self.done(route, method, status, start)
            } else {
                let body = response.body
                response.body = ResponseBody(contentLength: body.contentLength) { writer in
                    let counting = CountingWriter(inner: writer)
                    defer {
                        Self.bytesOut.increment(by: Int64(counting.count.withLockedValue { $0 }))
                        Self.done(route, method, status, start)
                    }
                    try await body.write(counting)
                }
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            Self.done(context.endpointPath ?? "unmatched", method, status, start)
            throw error
        }
    }

    static func done(_ route: String, _ method: String, _ status: Int, _ start: ContinuousClock.Instant) {
        inFlight.decrement()
        Metrics.counter("panlist_http_requests_total", "HTTP requests by route, method and status",
                        [("route", route), ("method", method), ("status", String(status))]).increment()
        Metrics.histogram("panlist_http_request_duration", "Time to answer HTTP requests (streamed bodies: to the last byte)",
                          [("route", route), ("method", method)]).record(ContinuousClock.now - start)
    }
}

/// `/ready` for load balancers and `/metrics` for Prometheus.
public enum Observability {
    /// 200 when this instance can serve: the store answers, no storage is still loading, and it is not
    /// stopping; 503 with the reasons otherwise.
    static func readiness(_ state: ServerState) async -> Response {
        var problems: [String] = []
        if state.isDraining { problems.append("the server is shutting down") }
        // At most 2 s: a load balancer's check must not hang while the database is away.
        let store = state.store
        let answered: Result<Void, FSError> = await withTaskGroup(of: Result<Void, FSError>?.self) { group in
            group.addTask {
                do { try await store.ping(); return .success(()) } catch { return .failure(FSError.from(error)) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(2))
                return Task.isCancelled ? nil : .failure(.unavailable("no answer within 2 s"))
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .failure(.unavailable("no answer"))
        }
        if case .failure(let e) = answered { problems.append("the database does not answer: \(e.message)") }
        let loading = state.fs.storages.filter { $0.record.status == StorageStatus.loading }
        if !loading.isEmpty { problems.append("storages still loading: \(loading.map(\.mountPath).joined(separator: ", "))") }
        struct Answer: Encodable {
            var ready: Bool
            var instance: String
            var problems: [String]
            var storages: Int
            var failed_storages: [String]
        }
        let failed = state.fs.storages.filter { !$0.isWorking && $0.record.status != StorageStatus.loading }
        let answer = Answer(ready: problems.isEmpty, instance: state.config.instanceID, problems: problems,
                            storages: state.fs.storages.count, failed_storages: failed.map { "\($0.mountPath): \($0.record.status)" })
        let data = (try? JSONEncoder().encode(answer)) ?? Data()
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: problems.isEmpty ? .ok : .serviceUnavailable, headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
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
        router.get("ready") { _, _ in await readiness(state) }
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
