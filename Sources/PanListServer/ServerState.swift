import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import PanListCore
import PanListStore

/// Everything the routes share: configuration, the store, the file system, tokens and in-memory caches
/// of settings and users (both small, both changed only through this server).
public final class ServerState: Sendable {
    public let config: PanListConfig
    public let store: any Store
    public let fs: FileSystem
    public let logger: Logger
    let tokens: TokenService
    let loginLimiter = LoginLimiter()
    private let settingsBox = NIOLockedValueBox<[String: SettingItem]>([:])
    private let usersBox = NIOLockedValueBox<[String: StoredUser]>([:])

    public init(config: PanListConfig, store: any Store, fs: FileSystem, logger: Logger) async throws {
        self.config = config
        self.store = store
        self.fs = fs
        self.logger = logger
        self.tokens = await TokenService(secret: config.jwtSecret, lifetimeHours: config.tokenExpiresIn)
        try await reloadSettings()
    }

    // MARK: settings

    func reloadSettings() async throws {
        let items = try await store.settings()
        settingsBox.withLockedValue { $0 = Dictionary(items.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a }) }
    }

    func setting(_ key: String) -> String? { settingsBox.withLockedValue { $0[key]?.value } }
    var allSettings: [SettingItem] { settingsBox.withLockedValue { Array($0.values) } }

    func saveSettings(_ items: [SettingItem]) async throws {
        try await store.saveSettings(items)
        try await reloadSettings()
    }

    var signer: Signer { Signer(key: setting(SettingKey.token) ?? "") }

    // MARK: users

    func storedUser(named name: String) async throws -> StoredUser? {
        if let u = usersBox.withLockedValue({ $0[name] }) { return u }
        guard let u = try await store.user(named: name) else { return nil }
        usersBox.withLockedValue { $0[name] = u }
        return u
    }

    func forgetUsers() { usersBox.withLockedValue { $0.removeAll() } }

    /// The user behind a request's `Authorization` header: a login token, the admin token, or the guest when absent.
    func authenticate(_ request: Request) async throws -> User {
        let header = request.headers[.authorization]?.trimmingCharacters(in: .whitespaces) ?? ""
        var token = header
        if token.lowercased().hasPrefix("bearer ") { token = String(token.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
        if token.isEmpty {
            guard let guest = try await storedUser(named: "guest"), !guest.user.disabled else {
                throw FSError.unauthorized("Guest user is disabled, login please")
            }
            return guest.user
        }
        if let adminToken = setting(SettingKey.token), !adminToken.isEmpty, Passwords.equal(token, adminToken) {
            guard let admin = try await store.users().first(where: { $0.user.isAdmin }) else {
                throw FSError.unauthorized("there is no admin user")
            }
            return admin.user
        }
        let claims = try await tokens.verify(token)
        guard let stored = try await storedUser(named: claims.username) else {
            throw FSError.unauthorized("the user of this token no longer exists, login please")
        }
        if stored.user.passwordTimestamp != claims.pwd_ts { throw FSError.unauthorized("Password has been changed, login please") }
        if stored.user.disabled { throw FSError.unauthorized("this user is disabled") }
        return stored.user
    }

    /// Like `authenticate`, but only for admins.
    func authenticateAdmin(_ request: Request) async throws -> User {
        let user = try await authenticate(request)
        guard user.isAdmin else { throw FSError.permissionDenied("you are not an admin") }
        return user
    }

    // MARK: storages

    /// Loads a storage into the file system and records its status.
    @discardableResult
    func mount(_ record: StorageRecord) async -> MountedStorage {
        let mounted = await fs.load(record)
        try? await store.setStorageStatus(id: record.id, status: mounted.record.status)
        return mounted
    }

    /// The storage record as the admin API shows it: the live status from the mount table.
    func liveRecord(_ record: StorageRecord) -> StorageRecord {
        var r = record
        if let m = fs.storage(id: record.id) { r.status = m.record.status }
        else if record.disabled { r.status = StorageStatus.disabled }
        return r
    }

    // MARK: URLs

    /// The server's public base URL: `site_url`, or what the request says it was sent to.
    func baseURL(_ request: Request) -> String {
        if !config.siteURL.isEmpty { return config.siteURL.hasSuffix("/") ? String(config.siteURL.dropLast()) : config.siteURL }
        let proto = request.headers[HTTPField.Name("X-Forwarded-Proto")!] ?? "http"
        let host = request.headers[HTTPField.Name("X-Forwarded-Host")!] ?? request.head.authority
            ?? "\(config.scheme.address):\(config.scheme.httpPort)"
        return "\(proto)://\(host)"
    }

    /// Whether links under `path` in `storage` must carry a `sign`.
    func signRequired(_ storage: MountedStorage?) -> Bool {
        setting(SettingKey.signAll) == "true" || storage?.record.enableSign == true
    }

    /// A sign for `path`, valid for `link_expiration` hours (0 = forever).
    func sign(_ path: String) -> String {
        let hours = Int64(setting(SettingKey.linkExpiration) ?? "0") ?? 0
        let expire = hours > 0 ? Int64(Date().timeIntervalSince1970) + hours * 3600 : 0
        return signer.sign(path: path, expire: expire)
    }
}
