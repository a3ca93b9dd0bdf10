import ArgumentParser
import Driver123Open
import DriverLocal
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Open123Emulator
import PanListCore
import PanListServer
import PanListStore
import ServiceLifecycle

@main
struct PanList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "panlist",
        abstract: "A self-hosted file-list server with an Alist-compatible API.",
        version: DefaultSettings.version,
        subcommands: [Server.self, Admin.self, StorageCommand.self, DBCommand.self],
        defaultSubcommand: Server.self
    )
}

struct DataOption: ParsableArguments {
    @Option(name: .long, help: "The data folder (config.json, panlist.db, files/, temp/); created when missing.")
    var data: String = "data"
}

/// A failure of a CLI command that is not a usage mistake (ArgumentParser then prints no usage text).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints a line at once (stdout may be a pipe; scripts wait for these lines).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Every driver this build ships.
func makeRegistry() -> DriverRegistry {
    let registry = DriverRegistry()
    registry.register(LocalDriver.factory)
    registry.register(Open123Driver.factory)
    return registry
}

func makeLogger(_ label: String = "panlist") -> Logger {
    var logger = Logger(label: label) { ShutdownQuietLogHandler(StreamLogHandler.standardError(label: $0)) }
    let level = ProcessInfo.processInfo.environment["PANLIST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    logger.logLevel = level
    return logger
}

/// The line printed once when the admin was just created, by the server and the offline commands alike.
func announceAdmin(_ password: String?) {
    if let password { say("Successfully created the admin user and the initial password is: \(password)") }
}

/// Runs `body` on the store of a data folder without starting the server (the offline CLI commands).
/// A fresh or missing data folder is set up as the first start would (config, database, admin, default
/// storage; the initial password is said unless `announce` is false, for the commands that set it anyway);
/// a demo mount left by a server that was killed is removed when no server runs; the store is always closed.
func withStore<T>(_ dataDir: String, announce: Bool = true, _ body: (SQLStore) async throws -> T) async throws -> T {
    var logger = makeLogger()
    if logger.logLevel < .warning { logger.logLevel = .warning }
    let prepared = try await Bootstrap.prepare(dataDir: dataDir, logger: logger, sweepTemp: false)
    if announce { announceAdmin(prepared.createdAdminPassword) }
    if let lock = try? DataFolderLock(dataDir: prepared.dataDir) {
        try? await Demo.removeMount(prepared.store, dataDir: prepared.dataDir)
        lock.release()
    }
    do {
        let result = try await body(prepared.store)
        await prepared.store.close()
        return result
    } catch {
        await prepared.store.close()
        throw error
    }
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server in the foreground.")
    @OptionGroup var options: DataOption
    @Option(help: "Address to listen on (default from config.json: 127.0.0.1).") var address: String?
    @Option(help: "Port to listen on (default from config.json: 5244).") var port: Int?
    @Flag(help: "Also start the 123 Open emulator in-process and mount it at /123open (try the 123 Open driver with no account). Its files are kept in <data>/demo-123open; the mount is removed when the server stops.")
    var demo = false

    func run() async throws {
        MemoryTuning.apply()
        let logger = makeLogger()
        let dataDir = Bootstrap.absolute(options.data)
        // One server per data folder, before anything is written into it (the demo's emulator included).
        let lock = try DataFolderLock(dataDir: dataDir)
        let emulator: Open123Emulator?
        do { emulator = demo ? try await Demo.startEmulator(dataDir: dataDir) : nil } catch {
            lock.release()
            throw error
        }
        let boot: Bootstrap.Result
        do {
            boot = try await Bootstrap.open(dataDir: dataDir, registry: makeRegistry(), logger: logger,
                                            address: address, port: port, lock: lock, prepare: { store in
                                                // A demo mount left by a server that was killed is never kept.
                                                try await Demo.removeMount(store, dataDir: dataDir)
                                                if let emulator { try await Demo.mount(emulator, store, dataDir: dataDir) }
                                            })
        } catch {
            await emulator?.stop()
            throw error
        }
        let state = boot.state
        // The access log goes to standard error like the other lines, buffered (see AccessLogSink).
        // Only when lines are written at all (no task waking 20 times a second for nothing).
        var flushing: Task<Void, Never>?
        if state.config.accessLog && logger.logLevel <= .info {
            let accessLog = AccessLogSink(label: logger.label)
            flushing = Task { await accessLog.run() }
            state.accessLogSink = accessLog
        }
        announceAdmin(boot.createdAdminPassword)
        if let emulator { say("demo: 123 Open emulator at \(emulator.baseURL), mounted at /123open") }
        let address = state.config.scheme.address
        let port = state.config.scheme.httpPort
        // Storages initialise once the server listens (a port in use is reported before any storage work).
        let mounting = NIOLockedValueBox<Task<Void, Never>?>(nil)
        let app = PanListApp.application(state: state, address: address, port: port) { bound in
            let host = address.contains(":") ? "[\(address)]" : address
            say("PanList server listening on http://\(host):\(bound)")
            mounting.withLockedValue { $0 = Task { await state.mountAll() } }
        }
        var failure: (any Error)?
        do {
            // Ctrl-C or SIGTERM: /ready turns 503 at once (the drain marker is told first: services stop in
            // reverse order), no new connection is taken, and requests in flight (downloads, uploads) get
            // shutdown_grace seconds to finish; then they are cut off, and a cut-off upload leaves nothing behind.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app)]
            if let metrics = MetricsAddress(state.config.metricsAddress) {
                services.append(.init(service: Observability.metricsService(state: state, address: metrics)))
                say("metrics at http://\(metrics.host.contains(":") ? "[\(metrics.host)]" : metrics.host):\(metrics.port)/metrics")
            }
            services.append(.init(service: DrainMarker(state: state, grace: state.config.shutdownGrace, delay: state.config.shutdownDelay),
                                  successTerminationBehavior: .ignore))
            var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            group.maximumGracefulShutdownDuration = .seconds(state.config.shutdownDelay + state.config.shutdownGrace)
            try await ServiceGroup(configuration: group).run()
        } catch {
            failure = ListenError.describe(error, address: address, port: port) ?? error
        }
        if let task = mounting.withLockedValue({ $0 }) {
            task.cancel()
            await task.value
        }
        if emulator != nil { try? await Demo.removeMount(state.store, dataDir: dataDir) }
        flushing?.cancel()
        await flushing?.value
        await state.shutdown()
        await emulator?.stop()
        if let failure { throw failure }
    }
}

/// Bind failures, said in words.
enum ListenError {
    static func describe(_ error: any Error, address: String, port: Int) -> CLIError? {
        guard let io = error as? IOError else { return nil }
        let at = "\(address.contains(":") ? "[\(address)]" : address):\(port)"
        switch io.errnoCode {
        case EADDRINUSE:
            return CLIError("cannot listen on \(at): the address is already in use (another PanList, Alist or other program listens there). Stop it, or choose another port with --port or scheme.http_port in config.json.")
        case EACCES:
            return CLIError("cannot listen on \(at): permission denied (ports below 1024 need root or the CAP_NET_BIND_SERVICE capability). Choose a port above 1023 with --port.")
        case EADDRNOTAVAIL:
            return CLIError("cannot listen on \(at): \(address) is not an address of this machine. Use 127.0.0.1, 0.0.0.0 or one of its own addresses.")
        default:
            return CLIError("cannot listen on \(at): \(String(cString: strerror(io.errnoCode)))")
        }
    }
}

/// `panlist server --demo`: an emulator on a free loopback port, its files kept under the data folder, and
/// a storage at /123open that exists only while the demo runs.
enum Demo {
    static let mountPath = "/123open"
    /// The demo storage's id is recorded per data folder: instances sharing a PostgreSQL database must never
    /// remove each other's demo mount.
    static func marker(_ dataDir: String) -> String {
        "demo:storage_id:" + dataDir
    }

    static func startEmulator(dataDir: String) async throws -> Open123Emulator {
        let dir = dataDir + "/" + Bootstrap.demoFolder
        try PrivateFiles.makeFolder(dir)
        let secretFile = dir + "/client_secret"
        var secret = (try? String(contentsOfFile: secretFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if secret.isEmpty {
            secret = RandomString.make(24)
            try PrivateFiles.write(Data(secret.utf8), to: secretFile)
        }
        var config = EmulatorConfig()
        config.clientID = "panlist-demo"
        config.clientSecret = secret
        config.rateLimits = .off
        config.dataDir = dir
        let emu = try await Open123Emulator.start(config: config)
        try await emu.seed(path: "/Demo/README.md", data: Data("# 123 Open demo\n\nThis folder lives in the open123-emulator that `panlist server --demo` started.\n".utf8))
        try await emu.seed(path: "/Demo/hello.txt", data: Data("Hello from the emulated 123 Cloud Drive.\n".utf8))
        return emu
    }

    /// Adds the storage at /123open pointing at the emulator (refused when /123open is used by another storage).
    static func mount(_ emu: Open123Emulator, _ store: any Store, dataDir: String) async throws {
        if let other = try await store.storages().first(where: { $0.mountPath == mountPath }) {
            throw CLIError("\(mountPath) is already used by storage \(other.id) (\(other.driver)); remove it to use --demo")
        }
        let addition = String(decoding: try JSONSerialization.data(withJSONObject: [
            "ClientID": emu.config.clientID, "ClientSecret": emu.config.clientSecret, "base_url": emu.baseURL], options: [.sortedKeys]), as: UTF8.self)
        let id = try await store.createStorage(StorageRecord(mountPath: mountPath, driver: Open123Driver.name, addition: addition,
                                                             remark: "panlist server --demo (removed when the demo stops)"))
        try await store.setDriverState(marker(dataDir), String(id))
        await PostgresChangeFeed.announce(.storage(id: id), in: store, logger: makeLogger())
    }

    /// Removes the demo's storage, if one is recorded.
    static func removeMount(_ store: any Store, dataDir: String) async throws {
        // Before 2026-12 the record had one key for every data folder (SQLite: there was only one).
        if (store as? SQLStore)?.isShared == false, let old = try await store.driverState("demo:storage_id") {
            try await store.setDriverState(marker(dataDir), old)
            try await store.setDriverState("demo:storage_id", nil)
        }
        guard let raw = try await store.driverState(marker(dataDir)) else { return }
        if let id = Int(raw), try await store.storage(id: id) != nil {
            try await store.deleteStorage(id: id)
            await PostgresChangeFeed.announce(.storage(id: id), in: store, logger: makeLogger())
        }
        try await store.setDriverState(marker(dataDir), nil)
    }
}

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change the admin account (works offline, on the data folder; a fresh folder is set up first).",
        subcommands: [Show.self, Set.self, Random.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the admin's username and how to change the password.")
        @OptionGroup var options: DataOption
        func run() async throws {
            let admin = try await withStore(options.data) { try await $0.users() }.first { $0.user.isAdmin }
            guard let admin else { throw CLIError("there is no admin user") }
            print("admin username: \(admin.user.username)")
            print("The password is stored hashed and cannot be shown. Use `panlist admin set` or `panlist admin random`.")
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the admin's password.",
            discussion: """
            Without PASSWORD, the password is read from the terminal (asked twice, not shown) or, when standard \
            input is not a terminal, from its first line, so that it stays out of the shell history:
              panlist admin set
              printf '%s\\n' "$NEW_PASSWORD" | panlist admin set
            """)
        @OptionGroup var options: DataOption
        @Argument(help: "The new password (prefer leaving it out: it would be kept in the shell history).") var password: String?
        func run() async throws {
            let password = try password ?? PasswordInput.read()
            guard !password.isEmpty else { throw ValidationError("the password cannot be empty") }
            try await withStore(options.data, announce: false) { try await Bootstrap.setAdminPassword($0, password); await PostgresChangeFeed.announce(.users, in: $0, logger: makeLogger()) }
            print("admin password updated; a running server uses it within 2 seconds, and tokens issued before stop working")
        }
    }

    struct Random: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a new random admin password and print it.")
        @OptionGroup var options: DataOption
        func run() async throws {
            let password = RandomString.make(12)
            try await withStore(options.data, announce: false) { try await Bootstrap.setAdminPassword($0, password); await PostgresChangeFeed.announce(.users, in: $0, logger: makeLogger()) }
            print("admin password: \(password)")
        }
    }
}

/// A password typed at the terminal without echo (asked twice), or the first line of standard input.
enum PasswordInput {
    static func read() throws -> String {
        guard isatty(STDIN_FILENO) == 1 else {
            guard let line = readLine(strippingNewline: true) else { throw ValidationError("no password on standard input") }
            return line
        }
        let first = try prompt("New admin password: ")
        let second = try prompt("Repeat it: ")
        guard first == second else { throw ValidationError("the two passwords differ") }
        return first
    }

    static func prompt(_ text: String) throws -> String {
        FileHandle.standardError.write(Data(text.utf8))
        var old = termios()
        let hasTerm = tcgetattr(STDIN_FILENO, &old) == 0
        if hasTerm {
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        defer {
            if hasTerm { _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &old) }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine(strippingNewline: true) else { throw ValidationError("no password given") }
        return line
    }
}

struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage", abstract: "List, add or remove storages (works offline, on the data folder).",
        subcommands: [List.self, Add.self, Remove.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List storages.")
        @OptionGroup var options: DataOption
        func run() async throws {
            let all = try await withStore(options.data) { try await $0.storages() }
            print("ID\tMOUNT PATH\tDRIVER\tDISABLED\tSTATUS")
            for s in all { print("\(s.id)\t\(s.mountPath)\t\(s.driver)\t\(s.disabled)\t\(s.status)") }
        }
    }

    struct Add: AsyncParsableCommand {
        static var configuration: CommandConfiguration {
            let drivers = makeRegistry().all.map { "\($0.config.name):\n\($0.fieldList)" }.joined(separator: "\n\n")
            return CommandConfiguration(
                abstract: "Add a storage; a running server picks it up on restart (or use the web UI / admin API).",
                discussion: """
                Drivers and their settings (--addition, a JSON object):

                \(drivers)

                Examples:
                  panlist storage add --driver Local --mount /media --addition '{"root_folder_path":"/srv/media"}'
                  panlist storage add --driver "123 Open" --mount /123 --webdav-policy native_proxy \\
                    --addition '{"ClientID":"…","ClientSecret":"…","RootFolderID":"0"}'
                """)
        }
        @OptionGroup var options: DataOption
        @Option(help: "Driver name: Local or \"123 Open\".") var driver: String
        @Option(help: "Mount path, e.g. /media.") var mount: String
        @Option(help: "The driver's settings as a JSON object (see the list below).") var addition: String = "{}"
        @Option(name: .customLong("web-proxy"), help: "true: the web UI and /d stream files through PanList instead of redirecting to the cloud.")
        var webProxy: Bool?
        @Option(name: .customLong("webdav-policy"), help: "WebDAV downloads: 302_redirect, use_proxy_url or native_proxy.")
        var webdavPolicy: String?
        @Option(name: .customLong("down-proxy-url"), help: "A separate download proxy's address, e.g. https://dl.example.com.")
        var downProxyURL: String?
        @Option(name: .customLong("cache-expiration"), help: "Minutes a folder listing stays cached (default 30; 0 = no cache).")
        var cacheExpiration: Int?
        @Option(help: "Sort order among storages (default 0).") var order: Int?
        @Option(help: "A note shown in the storage list.") var remark: String?
        @Option(name: .customLong("enable-sign"), help: "true: downloads from this storage need a sign even when sign_all is off.")
        var enableSign: Bool?
        @Flag(help: "Add it disabled.") var disabled = false

        func run() async throws {
            let registry = makeRegistry()
            guard let factory = registry.factory(named: driver) else {
                throw CLIError("unknown driver '\(driver)'; known drivers: \(registry.names.joined(separator: ", "))")
            }
            do { try factory.validate(addition: addition, refuseUnknown: true) } catch {
                throw CLIError(error.message)
            }
            if let webdavPolicy, !DeliveryPolicy.policies.contains(webdavPolicy) {
                throw CLIError("--webdav-policy must be one of \(DeliveryPolicy.policies.joined(separator: ", "))")
            }
            if let cacheExpiration, cacheExpiration < 0 { throw CLIError("--cache-expiration cannot be negative") }
            let mountPath: String
            do { mountPath = try VirtualPath.normalize(mount) } catch { throw CLIError("--mount: \(FSError.from(error).message)") }
            var record = StorageRecord(mountPath: mountPath, driver: driver, addition: addition)
            record.webProxy = webProxy ?? false
            record.webdavPolicy = webdavPolicy ?? (factory.config.onlyProxy ? "native_proxy" : "302_redirect")
            record.downProxyURL = downProxyURL ?? ""
            record.cacheExpiration = cacheExpiration ?? 30
            record.order = order ?? 0
            record.remark = remark ?? ""
            record.enableSign = enableSign ?? false
            record.disabled = disabled
            let id = try await withStore(options.data) { store in
                if let other = try await store.storages().first(where: { $0.mountPath == mountPath }) {
                    throw CLIError("\(mountPath) is already used by storage \(other.id) (\(other.driver))")
                }
                let id = try await store.createStorage(record)
                await PostgresChangeFeed.announce(.storage(id: id), in: store, logger: makeLogger())
                return id
            }
            print("added storage \(id) at \(mountPath)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a storage by mount path or id.")
        @OptionGroup var options: DataOption
        @Argument(help: "The mount path or id of the storage.") var storage: String
        func run() async throws {
            let wanted = storage
            let removed = try await withStore(options.data) { store in
                guard let s = try await store.storages().first(where: { String($0.id) == wanted || $0.mountPath == wanted }) else {
                    throw CLIError("no storage with mount path or id '\(wanted)'")
                }
                try await store.deleteStorage(id: s.id)
                await PostgresChangeFeed.announce(.storage(id: s.id), in: store, logger: makeLogger())
                return s
            }
            print("removed storage \(removed.id) at \(removed.mountPath)")
        }
    }
}

struct DBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Move the data folder's database (SQLite) into PostgreSQL.",
        subcommands: [Copy.self])

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy every row of the data folder's database into an empty PostgreSQL database.",
            discussion: """
            The destination's tables are created first; it must hold no rows yet. The copy is one transaction: \
            all of it arrives or none. Stop the server first (a dry run may run beside it). Afterwards, set \
            database.type to postgres and database.dsn in config.json (or PANLIST_DB_TYPE / PANLIST_DB_DSN):
              panlist db copy --to 'postgres://panlist:PASSWORD@db.example:5432/panlist?sslmode=verify-full' --dry-run
            """)
        @OptionGroup var options: DataOption
        @Option(help: "The PostgreSQL database: postgres://user:password@host:port/name?sslmode=… or libpq's key=value words (default: PANLIST_DB_DSN, which keeps the password out of the process list).")
        var to: String?
        @Flag(help: "Count the rows that would be copied; write nothing.") var dryRun = false

        func run() async throws {
            let target: PostgresTarget
            guard let dsn = to ?? ProcessInfo.processInfo.environment["PANLIST_DB_DSN"], !dsn.isEmpty else {
                throw CLIError("give the PostgreSQL database with --to DSN or in PANLIST_DB_DSN")
            }
            do { target = try PostgresTarget(dsn: dsn) } catch { throw CLIError(error.message) }
            let dataDir = Bootstrap.absolute(options.data)
            // A mistyped --data must not create a new, empty installation to copy.
            guard FileManager.default.fileExists(atPath: dataDir + "/config.json") else {
                throw CLIError("\(dataDir) holds no PanList installation (no config.json); give the data folder with --data")
            }
            var lock: DataFolderLock?
            if !dryRun {
                do { lock = try DataFolderLock(dataDir: dataDir) } catch {
                    throw CLIError("a PanList server is running on \(dataDir); stop it first, so that nothing changes during the copy")
                }
            }
            defer { lock?.release() }
            var logger = makeLogger()
            if logger.logLevel < .warning { logger.logLevel = .warning }
            let prepared = try await Bootstrap.prepare(dataDir: dataDir, logger: logger, sweepTemp: false)
            defer { Task { await prepared.store.close() } }
            guard prepared.store.engine == .sqlite else {
                throw CLIError("the data folder already uses PostgreSQL; nothing to copy")
            }
            let dest: SQLStore
            do { dest = try await SQLStore.postgres(target, logger: logger) } catch {
                throw CLIError(ErrorText.describe(error))
            }
            do {
                // A database with rows is refused before anything is written into it; a dry run writes nothing
                // there at all (the tables are made by the real copy).
                if try await dest.hasTables() {
                    let filled = try await dest.rowCounts().filter { $0.rows > 0 }
                    if !filled.isEmpty {
                        throw FSError.conflict("the destination database is not empty (\(filled.map { "\($0.table): \($0.rows) rows" }.joined(separator: ", "))); copy into a new, empty database")
                    }
                }
                if !dryRun { try await dest.migrate() }
                let counts = try await prepared.store.copy(to: dest, dryRun: dryRun)
                // Logins made before the move stay valid: the shared token secret is this installation's.
                if !dryRun, try await dest.driverState(Bootstrap.sharedJWTSecretKey) == nil {
                    try await dest.setDriverState(Bootstrap.sharedJWTSecretKey, prepared.config.jwtSecret)
                }
                say(dryRun ? "dry run: would copy into \(target.described):" : "copied into \(target.described):")
                let width = counts.map(\.table.count).max() ?? 0
                for c in counts { say("  \(c.table.padding(toLength: width, withPad: " ", startingAt: 0))  \(c.rows) \(c.rows == 1 ? "row" : "rows")") }
                say("  total: \(counts.map(\.rows).reduce(0, +)) rows")
                if !dryRun {
                    say("Now set database.type to \"postgres\" and database.dsn in \(dataDir)/config.json (or PANLIST_DB_TYPE=postgres and PANLIST_DB_DSN), and start the server.")
                }
                await dest.close()
            } catch {
                await dest.close()
                throw CLIError(ErrorText.describe(error))
            }
        }
    }
}

/// Told of a shutdown before the HTTP servers (ServiceLifecycle stops services in reverse order): marks the
/// server as draining (`/ready` answers 503), waits `delay` seconds while it still serves (so that load
/// balancers polling `/ready` stop sending), then lets the listeners close.
struct DrainMarker: Service {
    let state: ServerState
    let grace: Int
    let delay: Int
    func run() async throws {
        try? await gracefulShutdown()
        guard !Task.isCancelled else { return }
        state.beginDraining()
        if delay > 0 {
            state.logger.notice("stopping: /ready answers 503; still serving for \(delay) s, then no new connections")
            try? await Task.sleep(for: .seconds(delay))
        }
        state.logger.notice("stopping: no new connections; requests in flight get up to \(grace) s to finish")
    }
}
