import Foundation

/// How the emulated 123 Open account and service behave.
public struct EmulatorConfig: Sendable {
    public var clientID = "emulator-client"
    public var clientSecret = "emulator-secret"
    public var uid: Int64 = 1_814_442_530
    public var vip = false
    /// Bytes per slice announced by `upload/v2/file/create` (16 MiB like the real service; small in tests).
    public var sliceSize: Int64 = 16 << 20
    /// Upload servers that `create` and `domain` name: 1 is the listener itself; with more, each is
    /// `<base>/upload-server/<n>` on the same listener, and every one takes slices.
    public var uploadServers = 1
    /// Whether `create` names the upload servers (`listed`) or answers `servers: []` / `null` (the client asks `domain`).
    public var createServers: CreateServers = .listed
    /// Seconds an access token lives (30 days, as documented).
    public var tokenTTL: TimeInterval = 30 * 24 * 3600
    /// Live tokens per client; issuing one more evicts the oldest.
    public var maxTokens = 3
    public var rateLimits: RateLimitMode = .official
    /// The direct-link URL-authentication key; nil means direct links are unsigned.
    public var privateKey: String?
    /// Where state persists; nil keeps it in memory (blobs in a temporary folder removed at stop).
    public var dataDir: String?
    /// Bytes of `download_info` traffic per day before code 5113 (1 GB for free accounts).
    public var dailyDownloadQuota: Int64 = 1 << 30
    public var spacePermanent: Int64 = 2 << 40
    /// The user's own OAuth application (refresh-token mode): `oauth2/access_token` takes these.
    public var oauthClientID = "emulator-oauth-app"
    public var oauthClientSecret = "emulator-oauth-secret"
    /// Seconds an OAuth access token lives (`expires_in`; 7200 in the doc's example). Small in tests.
    public var oauthTokenTTL: TimeInterval = 7200
    /// Seconds a refresh token lives (90 days, as documented).
    public var refreshTokenTTL: TimeInterval = 90 * 24 * 3600
    /// Which casing of the copy target field the copy endpoints accept.
    public var copyTargetField: CopyTargetField = .either
    /// Which form of the async-copy progress request is accepted.
    public var copyProgressForm: CopyProgressForm = .either

    public init() {}
}

public enum RateLimitMode: Sendable, Equatable {
    case official
    case off
    /// The official free-tier QPS multiplied by this factor.
    case scaled(Double)

    public init?(argument: String) {
        switch argument {
        case "official": self = .official
        case "off": self = .off
        default:
            guard let f = Double(argument), f > 0 else { return nil }
            self = .scaled(f)
        }
    }

    /// The latest free-tier QPS table (doc 2025-10-28), by endpoint path; VIP rates where given.
    static func officialQPS(vip: Bool) -> [String: Double] {
        if vip {
            return ["/api/v1/user/info": 10, "/api/v1/file/move": 10, "/api/v1/file/delete": 10, "/api/v1/file/list": 10,
                    "/api/v2/file/list": 10, "/upload/v1/file/mkdir": 20, "/api/v1/access_token": 10]
        }
        return ["/api/v1/user/info": 10, "/api/v1/file/move": 3, "/api/v1/file/delete": 1, "/api/v1/file/list": 0.2,
                "/api/v2/file/list": 5, "/upload/v1/file/mkdir": 5, "/api/v1/access_token": 8]
    }

    func qps(for path: String, vip: Bool) -> Double? {
        switch self {
        case .off: return nil
        case .official: return Self.officialQPS(vip: vip)[path]
        case .scaled(let f): return Self.officialQPS(vip: vip)[path].map { $0 * f }
        }
    }
}
