import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PanListCore

/// The typed 123 Open API client: JSON envelope, token, pacing, and bounded retries.
/// - 401: one forced token refresh, then one retry (never recursion).
/// - 429 (in the envelope, or as HTTP 429): up to 5 retries with exponential backoff (0.5 s … 8 s) and jitter;
///   each attempt paced again, and each 429 slows the endpoint's pace (RateLimiter).
final class Open123Client: Sendable {
    static let http: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(5), read: .seconds(60))
        // Up to 32 slice workers per upload, several uploads at once: more than AsyncHTTPClient's default 8 per host.
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 128)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    let baseURL: String
    /// The key 123 counts this client's requests under (the client ID; a tag of a pasted token).
    let clientID: String
    let auth: Open123Auth
    let tokens: TokenManager
    let state: (any DriverStateStore)?
    /// QPS per endpoint path (the defaults with the storage's `rate_limits`).
    let rates: [String: Double]
    let authStatus: AuthStatus

    init(baseURL: String, auth: Open123Auth, rates: [String: Double] = RateLimiter.qps, state: (any DriverStateStore)?) {
        let base = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.baseURL = base
        self.auth = auth
        self.clientID = auth.paceKey
        self.state = state
        self.rates = rates
        let status = AuthStatus()
        self.authStatus = status
        self.tokens = Self.tokenManager(base: base, auth: auth, state: state, status: status)
    }

    convenience init(baseURL: String, clientID: String, clientSecret: String, state: (any DriverStateStore)?) {
        self.init(baseURL: baseURL, auth: .clientCredentials(clientID: clientID, clientSecret: clientSecret), state: state)
    }

    static func fetchToken(base: String, clientID: String, secret: String, state: (any DriverStateStore)?) async throws -> (String, Date) {
        try await RateLimiter.acquire(clientID: clientID, endpoint: "/api/v1/access_token", state: state, table: RateLimiter.qps)
        let body = try JSONSerialization.data(withJSONObject: ["clientID": clientID, "clientSecret": secret])
        let env: APIEnvelope<TokenData>
        do {
            env = try await send(base: base, method: .POST, path: "/api/v1/access_token", query: [], body: body, token: nil)
        } catch {
            Metrics.upstreamCall(driver: "123open", endpoint: "/api/v1/access_token", outcome: "unreachable")
            throw error
        }
        Metrics.upstreamCall(driver: "123open", endpoint: "/api/v1/access_token", outcome: outcome(env.code))
        guard env.code == 0, let data = env.data else {
            throw FSError.upstream(code: env.code, message: "123 Open refused the client credentials: \(env.message)")
        }
        let expires = BeijingTime.parseRFC3339(data.expiredAt) ?? Date().addingTimeInterval(24 * 3600)
        return (data.accessToken, expires)
    }

    static func send<T: Decodable>(base: String, method: HTTPMethod, path: String, query: [(String, String)], body: Data?,
                                   token: String?) async throws -> APIEnvelope<T> {
        let (status, data) = try await sendRaw(base: base, method: method, path: path, query: query, body: body, token: token)
        do {
            return try JSONDecoder().decode(APIEnvelope<T>.self, from: data)
        } catch {
            // A rate limit answered in HTTP rather than in the envelope.
            if status == .tooManyRequests { return APIEnvelope(code: 429, message: "HTTP 429", data: nil) }
            throw FSError.upstream(code: Int(status.code), message: "unexpected answer from 123 Open \(path) (HTTP \(status.code)): \(error)")
        }
    }

    /// One request; the answer's status and body (up to 32 MiB).
    static func sendRaw(base: String, method: HTTPMethod, path: String, query: [(String, String)], body: Data?,
                        token: String?) async throws -> (HTTPResponseStatus, Data) {
        var url = base + path
        if !query.isEmpty {
            var comps = URLComponents()
            comps.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
            url += "?" + (comps.percentEncodedQuery ?? "")
        }
        var req = HTTPClientRequest(url: url)
        req.method = method
        req.headers.add(name: "Platform", value: "open_platform")
        req.headers.add(name: "Content-Type", value: "application/json")
        if let token { req.headers.add(name: "Authorization", value: "Bearer " + token) }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let res: HTTPClientResponse
        do {
            res = try await http.execute(req, timeout: .seconds(60))
        } catch {
            let text = ErrorText.describe(error)
            if text == "the TLS certificate is not trusted" {
                throw FSError.upstream(code: -1, message: "the TLS certificate of \(base) is not trusted (PanList always verifies certificates; use a certificate from a public authority)")
            }
            throw FSError.upstream(code: -1, message: "cannot reach 123 Open at \(base): \(text)")
        }
        let buffer = try await res.body.collect(upTo: 32 << 20)
        return (res.status, Data(buffer.readableBytesView))
    }

    /// Calls an endpoint and returns its `data` (nil when the API sends null).
    func call<T: Decodable>(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json: [String: Any]? = nil,
                            as type: T.Type = T.self) async throws -> T? {
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) }
        var refreshed = false
        var busy = 0
        while true {
            try await RateLimiter.acquire(clientID: clientID, endpoint: path, state: state, table: rates)
            let token = try await tokens.current()
            let env: APIEnvelope<T>
            do {
                env = try await Self.send(base: baseURL, method: method, path: path, query: query, body: body, token: token)
            } catch {
                Metrics.upstreamCall(driver: "123open", endpoint: path, outcome: "unreachable")
                throw error
            }
            Metrics.upstreamCall(driver: "123open", endpoint: path, outcome: Self.outcome(env.code))
            switch env.code {
            case 0:
                return env.data
            case 401 where !refreshed:
                refreshed = true
                await tokens.invalidate(token)
            case 429 where busy < 5:
                await RateLimiter.rateLimited(clientID: clientID, endpoint: path, state: state, table: rates)
                let base = 0.5 * pow(2, Double(busy))
                busy += 1
                try await Task.sleep(for: .milliseconds(Int64(base * 1000 * Double.random(in: 0.8...1.2))))
            case 5066:
                throw FSError.notFound("123 Open: \(env.message) (code 5066): object not found")
            case 429:
                await RateLimiter.rateLimited(clientID: clientID, endpoint: path, state: state, table: rates)
                throw FSError.rateLimited("123 Open is rate-limiting this client (code 429: \(env.message)); try again shortly")
            case 401:
                throw FSError.upstream(code: 401, message: Self.refusedAgain(auth, env.message, path: path))
            default:
                throw FSError.upstream(code: env.code, message: Self.explain(env.code, env.message, path: path))
            }
        }
    }

    /// A call's outcome as the metrics count it.
    static func outcome(_ code: Int) -> String {
        switch code {
        case 0: return "ok"
        case 401: return "401"
        case 429: return "429"
        default: return "error"
        }
    }

    /// A token refused again right after it was renewed: what to check, by auth mode.
    static func refusedAgain(_ auth: Open123Auth, _ message: String, path: String) -> String {
        switch auth {
        case .clientCredentials:
            return "123 Open \(path): the access token was refused again after a refresh (\(message)); check the Client ID and Client Secret"
        case .refreshToken:
            return "123 Open \(path): the access token was refused again right after a renewal (\(message)); check that the OAuth app may use the file API, or authorise it again and paste a new refresh token"
        case .accessToken:
            return "123 Open \(path): the pasted access token was refused (\(message)); paste a new access token in this storage's settings (AccessToken)"
        }
    }

    /// 123's message (often Chinese) with an English explanation for the codes a user can act on.
    static func explain(_ code: Int, _ message: String, path: String) -> String {
        let hint: String
        switch code {
        case 5113: hint = "the account's daily download traffic quota is used up; try again tomorrow, or use a VIP account"
        case 20103: hint = "123 is still verifying the upload"
        default: return "123 Open \(path): \(message)"
        }
        return "123 Open \(path): \(hint) (\(message))"
    }
}
