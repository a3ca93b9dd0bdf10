import AsyncHTTPClient
import Driver123Open
import DriverLocal
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Open123Emulator
@testable import PanListCore
@testable import PanListServer
import PanListStore

/// A scratch folder removed at the end of a test.
final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        let p = NSTemporaryDirectory() + "panlist-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        path = (p as NSString).resolvingSymlinksInPath
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
    func file(_ rel: String) -> String { path + "/" + rel }
    func write(_ rel: String, _ text: String) throws {
        let p = file(rel)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
    }
    func read(_ rel: String) -> String? {
        FileManager.default.contents(atPath: file(rel)).map { String(decoding: $0, as: UTF8.self) }
    }
    func exists(_ rel: String) -> Bool { FileManager.default.fileExists(atPath: file(rel)) }
    /// Every entry below `rel`, hidden ones included.
    func allEntries(_ rel: String = "") -> [String] {
        (FileManager.default.enumerator(atPath: file(rel))?.allObjects as? [String] ?? []).sorted()
    }
}

struct HTTPResult: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    /// The envelope's `code`.
    var code: Int { json["code"] as? Int ?? -1 }
    var message: String { json["message"] as? String ?? "" }
    var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
    func header(_ name: String) -> String? { headers.first(name: name) }
}

func testRegistry() -> DriverRegistry {
    let r = DriverRegistry()
    r.register(LocalDriver.factory)
    r.register(Open123Driver.factory)
    r.register(CountingDriver.factory)
    return r
}

/// A real PanList server on 127.0.0.1 and a free port, over a fresh data folder, with an HTTP client.
final class TestServer: @unchecked Sendable {
    let dir: TempDir
    let state: ServerState
    let port: Int
    var adminPassword: String
    let client: HTTPClient
    private let runner: BackgroundService

    var base: String { "http://127.0.0.1:\(port)" }
    var files: String { dir.path + "/data/files" }

    /// `logger` replaces the quiet default (errors only); `adjust` changes the configuration of this run;
    /// `mount` false leaves the storages loading (the test mounts them).
    static func start(logger: Logger? = nil, adjust: (@Sendable (inout PanListConfig) -> Void)? = nil,
                      prepare: (@Sendable (any Store) async throws -> Void)? = nil, mount: Bool = true,
                      in given: TempDir? = nil) async throws -> TestServer {
        // bcrypt at its lowest cost in tests (the default, 12, is checked by a test of its own).
        setenv("PANLIST_BCRYPT_COST", "4", 0)
        let dir = given ?? TempDir()
        var quiet = Logger(label: "panlist-test") { ShutdownQuietLogHandler(StreamLogHandler.standardError(label: $0)) }
        quiet.logLevel = .error
        let boot = try await Bootstrap.open(dataDir: dir.path + "/data", registry: testRegistry(), logger: logger ?? quiet,
                                            address: "127.0.0.1", port: 0, adjust: adjust, prepare: prepare)
        if mount { await boot.state.mountAll() }
        let (stream, cont) = AsyncStream<Int>.makeStream()
        let app = PanListApp.application(state: boot.state, address: "127.0.0.1", port: 0) { port in cont.yield(port) }
        let runner = BackgroundService(app, logger: quiet)
        var port = 0
        for await p in stream { port = p; break }
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        // Tests send up to 50 requests at once: each gets a connection (the default 8 leave the rest queued,
        // and a queue wait over the connect timeout fails the request on a loaded machine).
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        config.timeout.connect = .seconds(30)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        return TestServer(dir: dir, state: boot.state, port: port, adminPassword: boot.createdAdminPassword ?? "",
                          client: client, runner: runner)
    }

    private init(dir: TempDir, state: ServerState, port: Int, adminPassword: String, client: HTTPClient, runner: BackgroundService) {
        self.dir = dir; self.state = state; self.port = port; self.adminPassword = adminPassword
        self.client = client; self.runner = runner
    }

    /// `keep`: the data folder stays (for a restart on it: `start(in: dir)`).
    func stop(keep: Bool = false) async {
        // Bounded, and said when a step is stuck (a stop that hangs would hang the whole test run).
        let client = self.client, runner = self.runner, state = self.state
        let steps: [(String, @Sendable () async -> Void)] = [
            ("the test's HTTP client", { @Sendable in try? await client.shutdown() }),
            ("the HTTP server", { @Sendable in await runner.stop() }),
            ("the server state", { @Sendable in await state.shutdown() })]
        var clean = true
        for (name, step) in steps {
            let task = Task { await step() }
            if !(await FirstOf.wait(task, atMost: .seconds(60))) {
                task.cancel()
                clean = false
                print("error: stopping the test server: \(name) did not stop within 60 s")
            }
        }
        if !keep && clean { dir.remove() }
    }

    func request(_ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: Data? = nil) async throws -> HTTPResult {
        var req = HTTPClientRequest(url: base + path)
        req.method = method
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let res = try await client.execute(req, timeout: .seconds(60))
        let buf = try await res.body.collect(upTo: 1 << 30)
        return HTTPResult(status: Int(res.status.code), headers: res.headers, body: Data(buf.readableBytesView))
    }

    /// POSTs a JSON body to /api/…, with a token when given.
    func api(_ path: String, _ body: Any = [String: Any](), token: String? = nil, method: HTTPMethod = .POST) async throws -> HTTPResult {
        var headers = [("Content-Type", "application/json")]
        if let token { headers.append(("Authorization", token)) }
        let data = try JSONSerialization.data(withJSONObject: body)
        return try await request(method, "/api" + path, headers: headers, body: method == .GET ? nil : data)
    }

    /// The tasks of `kind` in a list (`undone` or `done`), as the API answers them.
    func tasks(_ kind: String, _ list: String = "undone", token: String) async throws -> [[String: Any]] {
        try await api("/task/\(kind)/\(list)", token: token, method: .GET).json["data"] as? [[String: Any]] ?? []
    }

    /// Waits until no copy, move or upload task is left undone (at most `limit`); throws with what is left.
    func tasksFinish(token: String, limit: Duration = .seconds(30)) async throws {
        let end = ContinuousClock.now + limit
        while true {
            let left = try await tasks("copy", token: token) + tasks("move", token: token) + tasks("upload", token: token)
            if left.isEmpty { return }
            if ContinuousClock.now > end { throw FSError.internalError("tasks still undone: \(left)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func login(_ username: String = "admin", _ password: String? = nil) async throws -> String {
        let r = try await api("/auth/login", ["username": username, "password": password ?? adminPassword])
        guard let token = (r.json["data"] as? [String: Any])?["token"] as? String else {
            throw FSError.unauthorized("login failed: \(r.text)")
        }
        return token
    }

    func put(_ path: String, _ content: Data, token: String, extra: [(String, String)] = []) async throws -> HTTPResult {
        try await request(.PUT, "/api/fs/put",
                          headers: [("Authorization", token), ("File-Path", URLPath.encode(path))] + extra, body: content)
    }

    /// Adds a user directly in the store (user management API comes later) and returns it.
    func addUser(_ name: String, password: String, basePath: String = "/", permission: Permission) async throws -> User {
        let (hash, salt) = Passwords.make(password)
        let id = try await state.store.createUser(StoredUser(
            user: User(id: 0, username: name, basePath: basePath, role: .general, permission: permission,
                       passwordTimestamp: 1), passwordHash: hash, salt: salt))
        state.forgetUsers()
        return User(id: id, username: name, basePath: basePath, role: .general, permission: permission, passwordTimestamp: 1)
    }

    func setGuest(enabled: Bool, permission: Permission, basePath: String = "/") async throws {
        guard var guest = try await state.store.user(named: "guest") else { return }
        guest.user.disabled = !enabled
        guest.user.permission = permission
        guest.user.basePath = basePath
        try await state.store.updateUser(guest)
        state.forgetUsers()
    }

    func setSetting(_ key: String, _ value: String) async throws {
        guard var item = try await state.store.setting(key) else { return }
        item.value = value
        try await state.saveSettings([item])
    }
}

/// Runs `body` with a fresh server and always stops it.
func withServer(logger: Logger? = nil, adjust: (@Sendable (inout PanListConfig) -> Void)? = nil,
                prepare: (@Sendable (any Store) async throws -> Void)? = nil, mount: Bool = true,
                _ body: (TestServer) async throws -> Void) async throws {
    let server = try await TestServer.start(logger: logger, adjust: adjust, prepare: prepare, mount: mount)
    do {
        try await body(server)
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}

/// A driver that counts its `list` calls, to observe the list cache. Its tree lives in memory.
final class CountingDriver: Driver, @unchecked Sendable {
    static let factory = DriverFactory(
        config: DriverConfig(name: "Counting", localSort: true), additional: [],
        make: { record, _ in
            if record.addition.contains("fail") { return FailingDriver() }
            let d = CountingDriver(delay: record.addition.contains("slowlist"))
            d.initDelay = record.addition.contains("slowinit") ? .seconds(8) : .zero   // long enough to be seen loading on a loaded machine
            return d
        })
    let config = DriverConfig(name: "Counting", localSort: true)
    let lock = NSLock()
    var _calls = 0
    var calls: Int { lock.withLock { _calls } }
    var names = ["b.txt", "a.txt"]
    let delay: Bool
    var initDelay: Duration = .zero
    init(delay: Bool) { self.delay = delay }
    func initialize() async throws { if initDelay > .zero { try await Task.sleep(for: initDelay) } }
    func drop() async {}
    func root() async throws -> Obj { Obj(id: "/", path: "/", name: "root", size: 0, modified: Date(), isDir: true) }
    func list(dir: Obj) async throws -> [Obj] {
        lock.withLock { _calls += 1 }
        if delay { try await Task.sleep(for: .milliseconds(200)) }
        let names = lock.withLock { self.names }
        return names.map { Obj(id: $0, path: VirtualPath.join(dir.path, $0), name: $0, size: 1, modified: Date(), isDir: false) }
    }
    func link(file: Obj, args: LinkArgs) async throws -> Link { .url("https://example.invalid/" + file.name, headers: [:], expiresAt: nil) }
}

final class FailingDriver: Driver, @unchecked Sendable {
    let config = DriverConfig(name: "Counting")
    func initialize() async throws { throw FSError.upstream(code: 401, message: "invalid client credentials") }
    func drop() async {}
    func root() async throws -> Obj { throw FSError.internalError("unreachable") }
    func list(dir: Obj) async throws -> [Obj] { [] }
    func link(file: Obj, args: LinkArgs) async throws -> Link { throw FSError.internalError("unreachable") }
}
