import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import PanListCore
@testable import PanListStore

/// The store's behaviour, the same on both engines: each test below runs once on SQLite and once on
/// PostgreSQL (a real server, see `TestPostgres`).
enum StoreContract {
    /// A new, empty, migrated store of `engine`.
    static func open(_ engine: SQLStore.Engine, logger: Logger = Logger(label: "test")) async throws -> SQLStore {
        let store: SQLStore
        switch engine {
        case .sqlite: store = try await SQLStore.sqlite(path: ":memory:", logger: logger)
        case .postgres: store = try await SQLStore.postgres(try await TestPostgres.shared.database(), logger: logger)
        }
        try await store.migrate()
        return store
    }

    /// Upload sessions: one writer at a time at the right offset (a hold whose time ran out can be taken),
    /// chunk claims, a previous run's holds let go, lookups by target.
    static func uploadSessions(_ store: SQLStore) async throws {
        let far = Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000
        var s = UploadSession(id: "u1", proto: "tus", creator: 7, dir: "/d", name: "f", size: 100, spool: "/x", instance: "", expiresMs: far)
        s.chunk_size = 10
        try await store.insertUploadSession(s)
        #expect(try await store.openUploadSessions(creator: 7) == 1)
        #expect(try await store.takeUploadSession(id: "u1", at: 5, writer: "i/p/a", forMs: 60_000) == nil, "wrong offset")
        #expect(try await store.takeUploadSession(id: "u1", at: 0, writer: "i/p/a", forMs: 60_000) != nil)
        #expect(try await store.takeUploadSession(id: "u1", at: 0, writer: "i/p/b", forMs: 60_000) == nil, "held")
        #expect(try await store.extendUploadSession(id: "u1", writer: "i/p/a", forMs: 60_000))
        #expect(!(try await store.releaseUploadSession(id: "u1", writer: "i/p/b", offset: 50, expiresMs: far)), "not the holder")
        #expect(try await store.releaseUploadSession(id: "u1", writer: "i/p/a", offset: 50, expiresMs: far))
        #expect(try await store.uploadSession(id: "u1")?.received == 50)
        // A hold whose time ran out is taken over.
        #expect(try await store.takeUploadSession(id: "u1", at: 50, writer: "i/old/c", forMs: -1) != nil)
        #expect(try await store.takeUploadSession(id: "u1", at: 50, writer: "i/p/d", forMs: 60_000) != nil)
        // A previous run's holds go at start; this run's and other instances' stay.
        #expect(try await store.releaseUploadHolds(writerPrefix: "i/", except: "i/p/") == 0)
        #expect(try await store.releaseUploadSession(id: "u1", writer: "i/p/d", offset: 50, expiresMs: far))
        #expect(try await store.takeUploadSession(id: "u1", at: 50, writer: "i/old/e", forMs: 60_000) != nil)
        #expect(try await store.claimUploadChunk(id: "u1", index: 3, writer: "i/old/f", forMs: 60_000) == .claimed)
        #expect(try await store.claimUploadChunk(id: "u1", index: 4, writer: "j/x/g", forMs: 60_000) == .claimed)
        #expect(try await store.releaseUploadHolds(writerPrefix: "i/", except: "i/p/") == 2)
        #expect(try await store.takeUploadSession(id: "u1", at: 50, writer: "i/p/h", forMs: 60_000) != nil)
        // Chunks: one claim each; stored ones answer done; a let-go claim can be taken again.
        #expect(try await store.claimUploadChunk(id: "u1", index: 3, writer: "w1", forMs: 60_000) == .claimed)
        #expect(try await store.claimUploadChunk(id: "u1", index: 3, writer: "w2", forMs: 60_000) == .busy)
        #expect(try await store.claimUploadChunk(id: "u1", index: 4, writer: "w2", forMs: 60_000) == .busy, "another instance's claim stays")
        try await store.endUploadChunk(id: "u1", index: 3, writer: "w1", done: true)
        #expect(try await store.claimUploadChunk(id: "u1", index: 3, writer: "w3", forMs: 60_000) == .done)
        #expect(try await store.claimUploadChunk(id: "u1", index: 0, writer: "w4", forMs: 60_000) == .claimed)
        try await store.endUploadChunk(id: "u1", index: 0, writer: "w4", done: false)
        #expect(try await store.claimUploadChunk(id: "u1", index: 0, writer: "w5", forMs: -1) == .claimed)
        #expect(try await store.claimUploadChunk(id: "u1", index: 0, writer: "w6", forMs: 60_000) == .claimed, "the claim's time ran out")
        #expect(try await store.uploadChunks(id: "u1") == [3])
        #expect(try await store.findUploadSession(creator: 7, proto: "tus", dir: "/d", name: "f", size: 100)?.id == "u1")
        #expect(try await store.findUploadSession(creator: 8, proto: "tus", dir: "/d", name: "f", size: 100) == nil)
        #expect(try await store.setUploadSessionSize(id: "u1", size: 5) == false, "the size is set already")
        try await store.setUploadSessionState(id: "u1", state: .complete)
        #expect(try await store.openUploadSessions(creator: 7) == 0)
        try await store.deleteUploadSession(id: "u1")
        #expect(try await store.uploadSession(id: "u1") == nil)
        #expect(try await store.uploadChunks(id: "u1").isEmpty)
    }

    static func storagesUsersSettingsAndState(_ store: SQLStore) async throws {
        var rec = StorageRecord(mountPath: "/m", driver: "Local", enableSign: true, webProxy: true, webdavPolicy: "native_proxy")
        rec.id = try await store.createStorage(rec)
        await #expect(throws: FSError.alreadyExists("mount_path /m is already used by another storage")) {
            _ = try await store.createStorage(StorageRecord(mountPath: "/m", driver: "Local"))
        }
        rec.remark = "changed"
        rec.disabled = true
        try await store.updateStorage(rec)
        let back = try #require(try await store.storage(id: rec.id))
        #expect(back.remark == "changed" && back.disabled && back.enableSign && back.webProxy && back.webdavPolicy == "native_proxy")
        try await store.setStorageStatus(id: rec.id, status: "work")
        #expect(try await store.storage(id: rec.id)?.status == "work")
        let second = try await store.createStorage(StorageRecord(mountPath: "/n", order: -1, driver: "Local"))
        #expect(try await store.storages().map(\.mountPath) == ["/n", "/m"])
        var moved = try #require(try await store.storage(id: second))
        moved.mountPath = "/m"
        await #expect(throws: FSError.self) { try await store.updateStorage(moved) }
        try await store.deleteStorage(id: rec.id)
        try await store.deleteStorage(id: second)
        #expect(try await store.storages().isEmpty)

        let uid = try await store.createUser(StoredUser(user: User(id: 0, username: "bob", basePath: "/b", role: .general,
                                                                    permission: [.write, .rename]), passwordHash: "h", salt: "s"))
        var bob = try #require(try await store.user(named: "bob"))
        #expect(bob.user.id == uid && bob.user.permission == [.write, .rename] && bob.user.basePath == "/b")
        bob.user.disabled = true
        try await store.updateUser(bob)
        #expect(try await store.user(id: uid)?.user.disabled == true)
        await #expect(throws: FSError.self) { _ = try await store.createUser(bob) }
        try await store.deleteUser(id: uid)
        #expect(try await store.user(named: "bob") == nil)

        try await store.addMissingSettings([SettingItem(key: "k", value: "default", help: "old")])
        try await store.saveSettings([SettingItem(key: "k", value: "mine")])
        try await store.addMissingSettings([SettingItem(key: "k", value: "default", help: "new")])
        #expect(try await store.setting("k")?.value == "mine")
        #expect(try await store.setting("k")?.help == "new")
        try await store.deleteSetting("k")
        #expect(try await store.setting("k") == nil)

        try await store.setDriverState("123open:token", "abc")
        try await store.setDriverState("123open:token", "def")
        #expect(try await store.driverState("123open:token") == "def")
        try await store.setDriverState("123open:token", nil)
        #expect(try await store.driverState("123open:token") == nil)

        try await store.revokeToken(hash: "live", expires: Date().addingTimeInterval(60))
        try await store.revokeToken(hash: "live", expires: Date().addingTimeInterval(60))
        try await store.revokeToken(hash: "old", expires: Date().addingTimeInterval(-1))
        #expect(try await store.revokedTokens().map(\.hash) == ["live"])
    }

    static func folderRulesAndPathRows(_ store: SQLStore) async throws {
        let a = try await store.createFolderRule(FolderRule(id: 0, path: "/a", password: "pw", pSub: true))
        await #expect(throws: FSError.alreadyExists("there is already a rule for /a")) {
            _ = try await store.createFolderRule(FolderRule(id: 0, path: "/a"))
        }
        // Several at once: all or nothing.
        await #expect(throws: FSError.self) {
            _ = try await store.insertFolderRules([FolderRule(id: 0, path: "/b"), FolderRule(id: 0, path: "/a")])
        }
        #expect(try await store.folderRules().map(\.path) == ["/a"])
        let ids = try await store.insertFolderRules([FolderRule(id: 0, path: "/b"), FolderRule(id: 0, path: "/c", hide: "x")])
        #expect(ids.count == 2)
        var c = try #require(try await store.folderRule(id: ids[1]))
        #expect(c.hide == "x" && c.path == "/c")
        c.path = "/a"
        await #expect(throws: FSError.self) { try await store.updateFolderRule(c) }
        try await store.deleteFolderRules(ids: ids)
        try await store.deleteFolderRule(id: a)
        #expect(try await store.folderRules().isEmpty)

        // Rows kept by path: `_` and `%` in names are not wildcards, a sibling with a longer name is not inside.
        try await store.setDeadProperties("/d_x", set: [DeadProperty(ns: "urn:x", name: "p", value: "1")], remove: [])
        try await store.setDeadProperties("/d_x/f", set: [DeadProperty(ns: "urn:x", name: "p", value: "2")], remove: [])
        try await store.setDeadProperties("/dax/f", set: [DeadProperty(ns: "urn:x", name: "p", value: "3")], remove: [])
        try await store.setDeadProperties("/d_x2", set: [DeadProperty(ns: "urn:x", name: "p", value: "4")], remove: [])
        #expect(try await store.deadProperties(below: "/d_x").keys.sorted() == ["/d_x/f"])
        try await store.copyDeadProperties(from: "/d_x", to: "/e")
        #expect(try await store.deadProperties("/e/f").map(\.value) == ["2"])
        try await store.deleteDeadProperties("/d_x")
        #expect(try await store.deadProperties("/d_x").isEmpty)
        #expect(try await store.deadProperties("/d_x/f").isEmpty)
        #expect(try await store.deadProperties("/dax/f").map(\.value) == ["3"])
        #expect(try await store.deadProperties("/d_x2").map(\.value) == ["4"])
        try await store.setDeadProperties("/e/f", set: [], remove: [(ns: "urn:x", name: "p")])
        #expect(try await store.deadProperties("/e/f").isEmpty)

        let t = KeptTime(modified: Date(timeIntervalSince1970: 1_700_000_000.5), size: 7, md5: "m", sha1: "s")
        try await store.setKeptTime("/k/one", t)
        try await store.setKeptTime("/k/two", t)
        #expect(try await store.keptTimes(in: "/k").keys.sorted() == ["one", "two"])
        #expect(try await store.keptTime("/k/one")?.size == 7)
        try await store.copyKeptTimes(from: "/k", to: "/l")
        #expect(try await store.keptTimes(in: "/l").count == 2)
        try await store.deleteKeptTimes("/k")
        #expect(try await store.keptTimes(in: "/k").isEmpty)
    }

    /// The login limiter's shared counts: failures add up (also when counted at once), a right password's
    /// clear forgets them, a key at its limit is a block until the window ends.
    static func loginFailuresAddUp(_ store: SQLStore) async throws {
        let before = Date()
        #expect(try await store.addLoginFailure(key: "u1", limit: 5, window: 300) == 1)
        let counts = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 { group.addTask { (try? await store.addLoginFailure(key: "u1", limit: 5, window: 300)) ?? -1 } }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts.sorted() == [2, 3, 4, 5])
        let blocks = try await store.loginBlocks(window: 300)
        #expect(blocks.map(\.key) == ["u1"])
        // The window counts from the failures (between `before` and now), however slow this machine is today.
        let until = blocks.first?.until ?? .distantPast
        #expect(until >= before.addingTimeInterval(299) && until <= Date().addingTimeInterval(301), "\(until) vs \(before)")
        try await store.clearLoginFailures(key: "u1")
        #expect(try await store.loginBlocks(window: 300).isEmpty)
        #expect(try await store.addLoginFailure(key: "u1", limit: 5, window: 300) == 1)
    }

    /// Rows below a folder whose name holds a backslash (PostgreSQL's LIKE escape character), a percent sign
    /// or an underscore are found, and only they; WebDAV locks below it go with it too.
    static func pathRowsBelowOddNames(_ store: SQLStore) async throws {
        for dir in ["/a\\b", "/50%_off"] {
            try await store.setDeadProperties(dir + "/f", set: [DeadProperty(ns: "urn:x", name: "n", value: "v")], remove: [])
            try await store.setDeadProperties(dir + "x/g", set: [DeadProperty(ns: "urn:x", name: "n", value: "w")], remove: [])
            #expect(Array(try await store.deadProperties(below: dir).keys) == [dir + "/f"], "\(dir)")
            try await store.deleteDeadProperties(dir)
            #expect(try await store.deadProperties(dir + "/f").isEmpty, "\(dir)")
            #expect(try await store.deadProperties(dir + "x/g").count == 1, "\(dir)")
            let lock = DAVLockRecord(token: "t-" + dir, path: dir + "/f", infinite: false, exclusive: true, owner: "", timeout: 60,
                                     expires_ms: Int64(Date().timeIntervalSince1970 * 1000) + 60_000)
            #expect(try await store.createDAVLock(lock) { _ in false })
            try await store.deleteDAVLocks(below: dir)
            #expect(try await store.davLocks().filter { $0.token == lock.token }.isEmpty, "\(dir)")
        }
    }

    /// Two writers racing for one unique value (two instances passing the "taken?" check together):
    /// exactly one wins, the other gets `.alreadyExists`.
    static func racingInsertsOfOneValue(_ engine: SQLStore.Engine) async throws {
        let store = try await open(engine)
        defer { Task { await store.close() } }
        for round in 0..<5 {
            let results = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<6 {
                    group.addTask { (try? await store.createStorage(StorageRecord(mountPath: "/race\(round)", driver: "Local"))) != nil }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.filter { $0 }.count == 1)
        }
    }

    static func statementsAreNotLoggedWithTheirValues(_ engine: SQLStore.Engine) async throws {
        let log = CapturingLog()
        let store = try await open(engine, logger: log.logger(level: .trace))
        _ = try await store.createStorage(StorageRecord(mountPath: "/c", driver: "123 Open", addition: "{\"ClientSecret\":\"very-secret-value\"}"))
        try await store.setDriverState("token", "{\"token\":\"access-token-value\"}")
        _ = try await store.storages()
        _ = try await store.driverState("token")
        #expect(!log.text.contains("very-secret-value"))
        #expect(!log.text.contains("access-token-value"))
        await store.close()
    }
}

@Suite("Store on SQLite")
struct StoreTests {
    @Test func migrationsAreVersionedAndIdempotent() async throws {
        let dir = TempDir()
        defer { dir.remove() }
        let store = try await SQLStore.sqlite(path: dir.file("t.db"))
        try await store.migrate()
        try await store.migrate()
        let id = try await store.createStorage(StorageRecord(mountPath: "/a", driver: "Local", addition: "{\"root_folder_path\":\"/x\"}"))
        await store.close()
        // Reopening keeps the data and does not re-run migrations.
        let again = try await SQLStore.sqlite(path: dir.file("t.db"))
        try await again.migrate()
        let got = try await again.storage(id: id)
        #expect(got?.mountPath == "/a")
        #expect(got?.addition == "{\"root_folder_path\":\"/x\"}")
        await again.close()
    }

    /// SQLite has one connection: transactions begun at once by many tasks each run whole, and a statement
    /// of another task never slips into a transaction that is rolled back.
    @Test func concurrentTransactionsStayApart() async throws {
        let dir = TempDir()
        defer { dir.remove() }
        let store = try await SQLStore.sqlite(path: dir.file("t.db"))
        try await store.migrate()
        let admin = User(id: 1, username: "admin", role: .admin, permission: .admin)
        // Every task's error is recorded (not thrown: the store must be closed whatever happens).
        await withTaskGroup(of: (any Error)?.self) { g in
            for i in 0..<40 {
                g.addTask {
                    let id = "t\(i)"
                    do {
                        try await store.insertTask(TaskRecord(id: id, kind: "copy", name: id, creator: admin, params: "{}"))
                        try await store.addTaskItems((0..<5).map { TaskItem(task: id, seq: $0, path: "/f\($0)", isDir: false, size: 1) })
                        if i % 2 == 0 { try await store.deleteTasks(ids: [id]) }
                        return nil
                    } catch { return error }
                }
            }
            for await e in g { #expect(e == nil, "\(String(describing: e))") }
        }
        let left = (try? await store.tasks(kind: "copy", states: TaskState.allCases, creator: nil)) ?? []
        #expect(left.count == 20)
        for t in left { #expect((try? await store.taskItems(task: t.id).count) == 5) }
        await store.close()
    }

    @Test func storagesUsersSettingsAndState() async throws {
        let store = try await StoreContract.open(.sqlite)
        try await StoreContract.storagesUsersSettingsAndState(store)
        await store.close()
    }

    @Test func folderRulesAndPathRows() async throws {
        let store = try await StoreContract.open(.sqlite)
        try await StoreContract.folderRulesAndPathRows(store)
        await store.close()
    }

    @Test func racingInsertsOfOneValue() async throws { try await StoreContract.racingInsertsOfOneValue(.sqlite) }
    @Test func uploadSessions() async throws {
        let store = try await StoreContract.open(.sqlite)
        try await StoreContract.uploadSessions(store)
        await store.close()
    }

    @Test func pathRowsBelowOddNames() async throws {
        let store = try await StoreContract.open(.sqlite)
        try await StoreContract.pathRowsBelowOddNames(store)
        await store.close()
    }

    @Test func loginFailuresAddUp() async throws {
        let store = try await StoreContract.open(.sqlite)
        try await StoreContract.loginFailuresAddUp(store)
        await store.close()
    }
}

/// Everything logged through it, for tests that check what reaches a log.
final class CapturingLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    var text: String { lock.withLock { lines.joined(separator: "\n") } }
    func append(_ s: String) { lock.withLock { lines.append(s) } }

    struct Handler: LogHandler {
        let sink: CapturingLog
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            sink.append("\(event.level) \(event.message) \(self.metadata.merging(event.metadata ?? [:]) { $1 })")
        }
    }

    func logger(level: Logger.Level = .trace) -> Logger {
        var l = Logger(label: "capture") { _ in Handler(sink: self) }
        l.logLevel = level
        return l
    }
}

@Suite("Store: secrets stay out of logs")
struct StoreLogTests {
    @Test func statementsAreNotLoggedWithTheirValues() async throws { try await StoreContract.statementsAreNotLoggedWithTheirValues(.sqlite) }
}

@Suite("Named locks")
struct NamedLocksTests {
    /// One holder at a time, handed over in turn; a waiter past its deadline gives up with `.unavailable`
    /// and does not take the lock later.
    @Test func oneHolderInTurnAndDeadlines() async throws {
        let locks = NamedLocks()
        // Far enough never to pass, even when a loaded test run starves this test for seconds (10 s was seen pass).
        let far = ContinuousClock.now + .seconds(120)
        try await locks.lock("x", until: far)
        let order = NIOLockedValueBox<[Int]>([])
        let holders = NIOLockedValueBox(0)
        let maxHolders = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 1...5 {
                group.addTask {
                    try await locks.lock("x", until: far)
                    holders.withLockedValue { $0 += 1; let h = $0; maxHolders.withLockedValue { $0 = max($0, h) } }
                    order.withLockedValue { $0.append(i) }
                    try await Task.sleep(for: .milliseconds(5))
                    holders.withLockedValue { $0 -= 1 }
                    await locks.unlock("x")
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            // A waiter whose deadline passes while "x" is held gives up.
            let started = ContinuousClock.now
            await #expect(throws: FSError.self) { try await locks.lock("x", until: .now + .milliseconds(50)) }
            #expect(ContinuousClock.now - started < .seconds(2))
            await locks.unlock("x")
            try await group.waitForAll()
        }
        #expect(maxHolders.withLockedValue { $0 } == 1)
        #expect(order.withLockedValue { $0 }.sorted() == [1, 2, 3, 4, 5])
        // Free again: taken at once; another name is independent.
        try await locks.lock("x", until: .now + .milliseconds(10))
        try await locks.lock("y", until: .now + .milliseconds(10))
        await locks.unlock("x")
        await locks.unlock("y")
    }
}
