import Foundation
import Logging
import PanListCore
import PanListStore

/// Opens (and on first run creates) a data folder: config.json, the SQLite database, the admin and guest users,
/// default settings, the default Local storage at `/`, and an emptied temp folder. Then loads every storage;
/// one storage that fails to initialise never stops the start.
public enum Bootstrap {
    public struct Result: Sendable {
        public var state: ServerState
        /// The admin password when the admin user was just created (printed once).
        public var createdAdminPassword: String?
    }

    public static let localDriverName = "Local"

    public static func open(dataDir rawDataDir: String, registry: DriverRegistry, logger: Logger,
                            address: String? = nil, port: Int? = nil,
                            prepare: (@Sendable (any Store) async throws -> Void)? = nil) async throws -> Result {
        let fm = FileManager.default
        let dataDir = absolute(rawDataDir)
        try fm.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        var (config, created) = try PanListConfig.loadOrCreate(dataDir: dataDir)
        if let address { config.scheme.address = address }
        if let port { config.scheme.httpPort = port }
        config.tempDir = absolute(config.tempDir)
        config.database.dbFile = absolute(config.database.dbFile)

        // temp_dir holds only spool files of requests in flight: empty it at every start.
        try? fm.removeItem(atPath: config.tempDir)
        try fm.createDirectory(atPath: config.tempDir, withIntermediateDirectories: true)

        guard config.database.type == "sqlite3" || config.database.type == "sqlite" else {
            throw FSError.badRequest("database type '\(config.database.type)' is not supported yet; use sqlite3")
        }
        try fm.createDirectory(atPath: (config.database.dbFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let store = try await SQLStore.sqlite(path: config.database.dbFile, logger: logger)
        do {
            try await store.migrate()
            try await store.addMissingSettings(DefaultSettings.items(randomToken: RandomString.make(64)))
            if var version = try await store.setting(SettingKey.version) {
                version.value = DefaultSettings.version
                try await store.saveSettings([version])
            }
            let password = try await ensureUsers(store)
            if created, try await store.storages().isEmpty {
                let root = dataDir + "/files"
                try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
                let addition = String(decoding: try JSONEncoder().encode(["root_folder_path": root]), as: UTF8.self)
                _ = try await store.createStorage(StorageRecord(mountPath: "/", driver: localDriverName, addition: addition,
                                                                remark: "created on first run"))
            }
            try await prepare?(store)
            let fs = FileSystem(registry: registry, environment: DriverEnvironment(logger: logger, tempDir: config.tempDir, state: store))
            fs.remote = RemoteProxy.Fetcher()
            let state = try await ServerState(config: config, store: store, fs: fs, logger: logger)
            // Storages initialise concurrently: one slow or unreachable upstream does not hold up the others.
            await withTaskGroup(of: Void.self) { group in
                for record in (try? await store.storages()) ?? [] {
                    group.addTask { await state.mount(record) }
                }
            }
            return Result(state: state, createdAdminPassword: password)
        } catch {
            await store.close()
            throw error
        }
    }

    /// Creates the admin (random password, or `PANLIST_ADMIN_PASSWORD`) and a disabled guest when missing.
    static func ensureUsers(_ store: any Store) async throws -> String? {
        var password: String?
        let users = try await store.users()
        if !users.contains(where: { $0.user.isAdmin }) {
            let pw = ProcessInfo.processInfo.environment["PANLIST_ADMIN_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
                ?? RandomString.make(12)
            let (hash, salt) = Passwords.make(pw)
            _ = try await store.createUser(StoredUser(
                user: User(id: 0, username: "admin", role: .admin, permission: .admin,
                           passwordTimestamp: Int64(Date().timeIntervalSince1970)),
                passwordHash: hash, salt: salt))
            password = pw
        }
        if !users.contains(where: { $0.user.isGuest }) {
            let (hash, salt) = Passwords.make(RandomString.make(32))
            _ = try await store.createUser(StoredUser(
                user: User(id: 0, username: "guest", role: .guest, disabled: true, permission: []),
                passwordHash: hash, salt: salt))
        }
        return password
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return (path as NSString).standardizingPath }
        return ((FileManager.default.currentDirectoryPath + "/" + path) as NSString).standardizingPath
    }

    /// Sets the admin's password (CLI `admin set` / `admin random`); existing tokens stop working.
    public static func setAdminPassword(_ store: any Store, _ password: String) async throws {
        guard var admin = try await store.users().first(where: { $0.user.isAdmin }) else {
            throw FSError.noSuchRecord("there is no admin user; start the server once to create it")
        }
        let (hash, salt) = Passwords.make(password)
        admin.passwordHash = hash
        admin.salt = salt
        admin.user.passwordTimestamp = max(Int64(Date().timeIntervalSince1970), admin.user.passwordTimestamp + 1)
        try await store.updateUser(admin)
    }
}
