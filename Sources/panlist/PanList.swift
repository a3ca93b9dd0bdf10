import ArgumentParser
import Driver123Open
import DriverLocal
import Foundation
import Hummingbird
import Open123Emulator
import Logging
import PanListCore
import PanListServer
import PanListStore

@main
struct PanList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "panlist",
        abstract: "A self-hosted file-list server with an Alist-compatible API.",
        version: DefaultSettings.version,
        subcommands: [Server.self, Admin.self, StorageCommand.self],
        defaultSubcommand: Server.self
    )
}

struct DataOption: ParsableArguments {
    @Option(name: .long, help: "The data folder (config.json, panlist.db, files/, temp/).")
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
    var logger = Logger(label: label)
    let level = ProcessInfo.processInfo.environment["PANLIST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    logger.logLevel = level
    return logger
}

/// Runs `body` on the store of a data folder without starting the server (the offline CLI commands),
/// and always closes it.
func withStore<T>(_ dataDir: String, _ body: (SQLStore) async throws -> T) async throws -> T {
    let configPath = dataDir + "/config.json"
    guard FileManager.default.fileExists(atPath: configPath) else {
        throw CLIError("\(configPath) does not exist; run `panlist server --data \(dataDir)` once first")
    }
    let (config, _) = try PanListConfig.loadOrCreate(dataDir: dataDir)
    let store = try await SQLStore.sqlite(path: config.database.dbFile)
    do {
        try await store.migrate()
        let result = try await body(store)
        await store.close()
        return result
    } catch {
        await store.close()
        throw error
    }
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server in the foreground.")
    @OptionGroup var options: DataOption
    @Option(help: "Address to listen on (default from config.json: 127.0.0.1).") var address: String?
    @Option(help: "Port to listen on (default from config.json: 5244).") var port: Int?
    @Flag(help: "Also start the 123 Open emulator in-process and mount it at /123open (try the 123 Open driver with no account).")
    var demo = false

    func run() async throws {
        MemoryTuning.apply()
        let logger = makeLogger()
        let emulator = demo ? try await startDemoEmulator() : nil
        let boot: Bootstrap.Result
        do {
            boot = try await Bootstrap.open(dataDir: options.data, registry: makeRegistry(), logger: logger,
                                            address: address, port: port, prepare: { store in
                                                if let emulator { try await Self.mountDemo(emulator, store) }
                                            })
        } catch {
            await emulator?.stop()
            throw error
        }
        let state = boot.state
        if let emulator {
            say("demo: 123 Open emulator at \(emulator.baseURL), mounted at /123open (\(state.fs.storages.first { $0.mountPath == "/123open" }?.record.status ?? "?"))")
        }
        if let pw = boot.createdAdminPassword {
            say("Successfully created the admin user and the initial password is: \(pw)")
        }
        for s in state.fs.storages where !s.isWorking && !s.record.disabled {
            say("warning: storage \(s.mountPath) (\(s.record.driver)) is not working: \(s.record.status)")
        }
        let address = state.config.scheme.address
        let app = PanListApp.application(state: state, address: address, port: state.config.scheme.httpPort) { bound in
            let host = address.contains(":") ? "[\(address)]" : address
            say("PanList server listening on http://\(host):\(bound)")
        }
        do {
            try await app.runService()
        } catch {
            await state.fs.unloadAll()
            await state.store.close()
            await emulator?.stop()
            throw error
        }
        await state.fs.unloadAll()
        await state.store.close()
        await emulator?.stop()
    }

    /// `--demo`: an in-memory 123 Open emulator on a free loopback port with a little content.
    func startDemoEmulator() async throws -> Open123Emulator {
        var config = EmulatorConfig()
        config.clientID = "panlist-demo"
        config.clientSecret = RandomString.make(24)
        config.rateLimits = .off
        let emu = try await Open123Emulator.start(config: config)
        try await emu.seed(path: "/Demo/README.md", data: Data("# 123 Open demo\n\nThis folder lives in the open123-emulator that `panlist server --demo` started.\n".utf8))
        try await emu.seed(path: "/Demo/hello.txt", data: Data("Hello from the emulated 123 Cloud Drive.\n".utf8))
        return emu
    }

    /// Points the storage at /123open (created when missing) at the demo emulator, before storages load.
    static func mountDemo(_ emu: Open123Emulator, _ store: any Store) async throws {
        let addition = String(decoding: try JSONSerialization.data(withJSONObject: [
            "ClientID": emu.config.clientID, "ClientSecret": emu.config.clientSecret, "base_url": emu.baseURL], options: [.sortedKeys]), as: UTF8.self)
        var record = try await store.storages().first { $0.mountPath == "/123open" }
            ?? StorageRecord(mountPath: "/123open", driver: Open123Driver.name, remark: "panlist server --demo")
        guard record.driver == Open123Driver.name else {
            throw CLIError("/123open is already used by a \(record.driver) storage; remove it to use --demo")
        }
        record.addition = addition
        record.disabled = false
        if record.id == 0 { _ = try await store.createStorage(record) } else { try await store.updateStorage(record) }
    }
}

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change the admin account (works offline, on the data folder).",
        subcommands: [Show.self, Set.self, Random.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the admin's username and how to change the password.")
        @OptionGroup var options: DataOption
        func run() async throws {
            let admin = try await withStore(options.data) { try await $0.users() }.first { $0.user.isAdmin }
            guard let admin else { throw CLIError("there is no admin user yet; start the server once") }
            print("admin username: \(admin.user.username)")
            print("The password is stored hashed and cannot be shown. Use `panlist admin set NEW_PASSWORD` or `panlist admin random`.")
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the admin's password.")
        @OptionGroup var options: DataOption
        @Argument(help: "The new password.") var password: String
        func run() async throws {
            guard !password.isEmpty else { throw ValidationError("the password cannot be empty") }
            try await withStore(options.data) { try await Bootstrap.setAdminPassword($0, password) }
            print("admin password updated; a running server uses it within 2 seconds, and tokens issued before stop working")
        }
    }

    struct Random: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a new random admin password and print it.")
        @OptionGroup var options: DataOption
        func run() async throws {
            let password = RandomString.make(12)
            try await withStore(options.data) { try await Bootstrap.setAdminPassword($0, password) }
            print("admin password: \(password)")
        }
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
        static let configuration = CommandConfiguration(abstract: "Add a storage; a running server picks it up on restart.")
        @OptionGroup var options: DataOption
        @Option(help: "Driver name, e.g. Local.") var driver: String
        @Option(help: "Mount path, e.g. /media.") var mount: String
        @Option(help: "The driver's settings as a JSON object, e.g. '{\"root_folder_path\":\"/srv/media\"}'.")
        var addition: String = "{}"

        func run() async throws {
            let registry = makeRegistry()
            guard registry.factory(named: driver) != nil else {
                throw ValidationError("unknown driver '\(driver)'; known drivers: \(registry.names.joined(separator: ", "))")
            }
            guard (try? JSONSerialization.jsonObject(with: Data(addition.utf8))) is [String: Any] else {
                throw ValidationError("--addition must be a JSON object")
            }
            let mountPath = try VirtualPath.normalize(mount)
            let record = StorageRecord(mountPath: mountPath, driver: driver, addition: addition)
            let id = try await withStore(options.data) { try await $0.createStorage(record) }
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
                return s
            }
            print("removed storage \(removed.id) at \(removed.mountPath)")
        }
    }
}
