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

    /// A data folder made ready: its configuration and its open, migrated store.
    public struct Prepared: Sendable {
        public var config: PanListConfig
        public var store: SQLStore
        public var dataDir: String
        /// The admin password when the admin user was just created (printed once).
        public var createdAdminPassword: String?
    }

    public static let localDriverName = "Local"
    /// Where `panlist server --demo` keeps its 123 Open emulator's files, in the data folder.
    public static let demoFolder = "demo-123open"

    /// Makes a data folder ready, as the first start does: the folder (0700), `config.json` (0600), the
    /// SQLite database (0600) with its migrations, default settings, the admin and the disabled guest, and on
    /// first run the Local storage at `/` over `files/`. Used by the server and by the offline commands
    /// (`panlist admin …`, `panlist storage …`), so that those work on a fresh folder too.
    /// `sweepTemp` empties `temp_dir` (the server does; the offline commands must not, a server may be running).
    /// `adjust` changes the configuration for this run only (tests).
    public static func prepare(dataDir rawDataDir: String, logger: Logger, address: String? = nil, port: Int? = nil,
                               sweepTemp: Bool, waitForDatabase: Bool = false,
                               adjust: (@Sendable (inout PanListConfig) -> Void)? = nil) async throws -> Prepared {
        let fm = FileManager.default
        let dataDir = absolute(rawDataDir)
        // The data folder is made 0700 when PanList creates it, and tightened when it is an installation of
        // PanList's (config.json in it) or empty; a folder holding other things keeps its mode.
        // (`panlist.lock` and the demo's folder do not count: a server makes them before it gets here.)
        let ours = FileManager.default.fileExists(atPath: dataDir + "/config.json")
            || PrivateFiles.isEmptyFolder(dataDir, ignoring: ["panlist.lock", demoFolder])
        try PrivateFiles.makeFolder(dataDir, tightenExisting: ours)
        if !ours { logger.warning("the data folder \(LogText.quoted(dataDir)) holds other files too: its mode is left as it is (PanList's own files in it are 0600)") }
        var (config, created) = try PanListConfig.loadOrCreate(dataDir: dataDir)
        if let address { config.scheme.address = address }
        if let port { config.scheme.httpPort = port }
        adjust?(&config)
        config.tempDir = absolute(config.tempDir)
        config.database.dbFile = absolute(config.database.dbFile)
        guard !config.instanceID.isEmpty, config.instanceID.count <= 64,
              config.instanceID.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }) else {
            throw FSError.badRequest("instance_id '\(config.instanceID)' may hold only letters, digits, - and _ (1 to 64 of them)")
        }
        _ = try TrustedProxies(config.trustedProxies)   // a wrong entry stops here, with the entry named
        guard ["x-forwarded-for", "x-real-ip"].contains(config.clientIPHeader.lowercased()) else {
            throw FSError.badRequest("client_ip_header must be X-Forwarded-For or X-Real-IP, not '\(config.clientIPHeader)'")
        }
        guard (1...600).contains(config.database.waitSeconds) else {
            throw FSError.badRequest("database.wait_seconds must be a number of seconds from 1 to 600 (PANLIST_DB_WAIT)")
        }
        guard (0...300).contains(config.shutdownDelay) else {
            throw FSError.badRequest("shutdown_delay must be a number of seconds from 0 to 300 (PANLIST_SHUTDOWN_DELAY)")
        }
        guard (0...3600).contains(config.shutdownGrace) else {
            throw FSError.badRequest("shutdown_grace must be a number of seconds from 0 to 3600 (PANLIST_SHUTDOWN_GRACE)")
        }
        guard (1...86_400).contains(config.sendTimeout) else {
            throw FSError.badRequest("send_timeout must be a number of seconds from 1 to 86400 (PANLIST_SEND_TIMEOUT)")
        }
        guard (3...600).contains(config.tasks.leaseSeconds) else {
            throw FSError.badRequest("tasks.lease_seconds must be a number of seconds from 3 to 600 (PANLIST_TASK_LEASE_SECONDS)")
        }
        for (kind, k) in config.tasks.kinds {
            if let w = k.workers, !(0...64).contains(w) { throw FSError.badRequest("tasks.\(kind).workers must be from 0 to 64") }
            if let r = k.maxRetry, !(0...20).contains(r) { throw FSError.badRequest("tasks.\(kind).max_retry must be from 0 to 20") }
        }
        if !config.metricsAddress.isEmpty, MetricsAddress(config.metricsAddress) == nil {
            throw FSError.badRequest("metrics_address '\(config.metricsAddress)' must be host:port, such as 127.0.0.1:9464 (or empty: off)")
        }

        let engine = try config.database.engine
        try prepareTempFolder(config.tempDir, sweep: sweepTemp && engine == .sqlite, known: config.tempDir == dataDir + "/temp")
        if engine == .postgres {
            // Several instances: each spools into a folder of its own below temp_dir and sweeps only that one
            // (once it holds its instance id, below), so instances that share a temp_dir never delete each
            // other's files.
            config.tempDir += "/" + config.instanceID
            try prepareTempFolder(config.tempDir, sweep: false, known: true)
        }

        let store: SQLStore
        switch engine {
        case .sqlite:
            let dbFolder = (config.database.dbFile as NSString).deletingLastPathComponent
            if !fm.fileExists(atPath: dbFolder) { try PrivateFiles.makeFolder(dbFolder) }
            store = try await SQLStore.sqlite(path: config.database.dbFile, logger: logger)
        case .postgres:
            store = try await openPostgres(try config.database.postgresTarget(), logger: logger, wait: waitForDatabase,
                                           leaseTimeout: .seconds(config.database.waitSeconds))
            if sweepTemp {
                do {
                    guard try await store.claimInstance(config.instanceID) else {
                        throw FSError.conflict("instance_id '\(config.instanceID)' is in use by another PanList running on this database (a copied data folder?); give this one its own: delete instance_id from its config.json, or set PANLIST_INSTANCE_ID")
                    }
                    try prepareTempFolder(config.tempDir, sweep: true, known: true)
                } catch {
                    await store.close()
                    throw error
                }
            }
        }
        do {
            let created = created, configuredSecret = config.jwtSecret
            let seeded = try await store.exclusively { () -> (password: String?, jwtSecret: String) in
                try await store.runMigrations()
                try await store.addMissingSettings(DefaultSettings.items(randomToken: RandomString.make(64)))
                if var version = try await store.setting(SettingKey.version) {
                    version.value = DefaultSettings.version
                    try await store.saveSettings([version])
                }
                let password = try await ensureUsers(store)
                if created, try await store.storages().isEmpty {
                    let root = dataDir + "/files"
                    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
                    let addition = String(decoding: try JSONEncoder().encode(["root_folder_path": root]), as: UTF8.self)
                    _ = try await store.createStorage(StorageRecord(mountPath: "/", driver: localDriverName, addition: addition,
                                                                    remark: "created on first run"))
                }
                // Login tokens made by one instance are honoured by all: with PostgreSQL the signing secret is the
                // database's (the first instance's `jwt_secret` becomes it); config.json's is then not used.
                var secret = configuredSecret
                if store.engine == .postgres {
                    if let shared = try await store.driverState(sharedJWTSecretKey), !shared.isEmpty { secret = shared }
                    else { try await store.setDriverState(sharedJWTSecretKey, secret) }
                }
                return (password, secret)
            }
            config.jwtSecret = seeded.jwtSecret
            let password = seeded.password
            return Prepared(config: config, store: store, dataDir: dataDir, createdAdminPassword: password)
        } catch {
            await store.close()
            throw error
        }
    }

    /// Where the shared login-token secret is kept in a PostgreSQL store.
    public static let sharedJWTSecretKey = "panlist:jwt_secret"

    /// Opens the PostgreSQL store. With `wait` (the server), a database that cannot be reached yet is tried
    /// again with backoff (1, 2, 4 … 30 s between attempts, each failure said in one warning line) until it
    /// can; what waiting will not mend (a malformed DSN, a refused login, a missing database) stops at once.
    static func openPostgres(_ target: PostgresTarget, logger: Logger, wait: Bool,
                             leaseTimeout: Duration = .seconds(10)) async throws -> SQLStore {
        var delay = 1
        while true {
            do {
                return try await SQLStore.postgres(target, logger: logger, leaseTimeout: leaseTimeout)
            } catch FSError.unavailable(let why) where wait {
                logger.warning("\(why.replacingOccurrences(of: "; try again shortly", with: "")); trying again in \(delay) s")
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 30)
            }
        }
    }

    /// The marker of a temp folder that is PanList's own.
    static let tempMarker = ".panlist-temp"

    /// `temp_dir` holds only spool files of requests in flight, so the server empties it at every start. It
    /// must therefore be PanList's own: a new or empty folder (then marked with `.panlist-temp`, mode 0700) or
    /// one marked before (`known`: the default `<data>/temp`, always PanList's). A folder holding anything else
    /// (`/tmp`, say) is refused, never emptied or chmod-ed.
    /// The folder in temp_dir where upload tasks keep their spooled bodies.
    static let taskSpoolName = "tasks"
    /// The folder in temp_dir where offline downloads wait for their transfer tasks.
    static let offlineFolderName = "offline"

    static func prepareTempFolder(_ path: String, sweep: Bool, known: Bool) throws {
        let fm = FileManager.default
        let marker = path + "/" + tempMarker
        if !known && fm.fileExists(atPath: path) && !fm.fileExists(atPath: marker) && !PrivateFiles.isEmptyFolder(path) {
            throw FSError.badRequest("temp_dir \(path) holds files that are not PanList's; PanList empties its temp folder at every start, so give it a folder of its own (a new or empty one)")
        }
        try PrivateFiles.makeFolder(path)
        if sweep {
            // Spooled bodies of upload tasks stay while their task lives (ServerState.sweepTaskSpool).
            // Resumable uploads' spools stay while their session lives (swept with the sessions); offline
            // downloads while their tasks are listed (ServerState.sweepOfflineFolders).
            for name in (try? fm.contentsOfDirectory(atPath: path)) ?? []
            where name != tempMarker && name != taskSpoolName && name != "uploads" && name != offlineFolderName {
                try? fm.removeItem(atPath: path + "/" + name)
            }
        }
        if !fm.fileExists(atPath: marker) { try PrivateFiles.touch(marker) }
    }

    /// Opens a data folder for the server: `prepare`, then the file system and `ServerState`. Every enabled
    /// storage is in the mount table with the status `loading`; `ServerState.mountAll` initialises them
    /// (the server calls it once it listens). One storage that fails never stops the start.
    public static func open(dataDir: String, registry: DriverRegistry, logger: Logger,
                            address: String? = nil, port: Int? = nil,
                            adjust: (@Sendable (inout PanListConfig) -> Void)? = nil, lock given: DataFolderLock? = nil,
                            prepare before: (@Sendable (any Store) async throws -> Void)? = nil) async throws -> Result {
        // One server per data folder: a second one would empty the first one's temp folder under its uploads.
        let lock = try given ?? DataFolderLock(dataDir: absolute(dataDir))
        let prepared: Prepared
        do {
            prepared = try await prepare(dataDir: dataDir, logger: logger, address: address, port: port, sweepTemp: true,
                                         waitForDatabase: true, adjust: adjust)
        } catch {
            lock.release()
            throw error
        }
        let store = prepared.store
        do {
            try await before?(store)
            let fs = FileSystem(registry: registry, environment: DriverEnvironment(logger: logger, tempDir: prepared.config.tempDir, state: store))
            fs.remote = RemoteProxy.Fetcher()
            fs.keptTimes = store
            // Several instances on PostgreSQL hear of each other's changes through it; alone, nobody to tell.
            let feed: any ChangeFeed = store.engine == .postgres
                ? try PostgresChangeFeed(store: store, instanceID: prepared.config.instanceID, logger: logger)
                : LocalChangeFeed()
            fs.changes = feed
            let state = try await ServerState(config: prepared.config, store: store, fs: fs, logger: logger, changes: feed)
            for record in try await store.storages() { fs.placeLoading(record) }
            await feed.start { [weak state] change in await state?.apply(change) }
            await state.startTasks()
            state.dataFolderLock = lock
            return Result(state: state, createdAdminPassword: prepared.createdAdminPassword)
        } catch {
            await store.close()
            lock.release()
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

    public static func absolute(_ path: String) -> String {
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

/// An exclusive `flock` on `<data>/panlist.lock`, held while a server runs on that data folder (released by
/// the system when the process ends, however it ends). The file holds the holder's process id.
public final class DataFolderLock: Sendable {
    private let fd: Int32

    public init(dataDir: String) throws {
        try PrivateFiles.makeFolder(dataDir, tightenExisting: PrivateFiles.isEmptyFolder(dataDir))
        let path = dataDir + "/panlist.lock"
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FSError.internalError("cannot open \(path): \(ErrorText.errno(errno))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, buffer.count)
            let pid = n > 0 ? String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(fd)
            throw FSError.conflict("another PanList server (process \(pid)) is using the data folder \(dataDir); stop it first, or give this one its own --data folder")
        }
        _ = ftruncate(fd, 0)
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        self.fd = fd
    }

    public func release() { close(fd) }
}
