import Foundation
import Logging
import Testing
@testable import PanListCore
@testable import PanListStore

@Suite("Store (SQLite through SQLKit)")
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

    @Test func storagesUsersSettingsAndState() async throws {
        let store = try await SQLStore.sqlite(path: ":memory:")
        try await store.migrate()
        var rec = StorageRecord(mountPath: "/m", driver: "Local", enableSign: true, webProxy: true, webdavPolicy: "native_proxy")
        rec.id = try await store.createStorage(rec)
        await #expect(throws: FSError.self) { _ = try await store.createStorage(StorageRecord(mountPath: "/m", driver: "Local")) }
        rec.remark = "changed"
        rec.disabled = true
        try await store.updateStorage(rec)
        let back = try #require(try await store.storage(id: rec.id))
        #expect(back.remark == "changed" && back.disabled && back.enableSign && back.webProxy && back.webdavPolicy == "native_proxy")
        try await store.setStorageStatus(id: rec.id, status: "work")
        #expect(try await store.storage(id: rec.id)?.status == "work")
        try await store.deleteStorage(id: rec.id)
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

        try await store.addMissingSettings([SettingItem(key: "k", value: "default")])
        try await store.saveSettings([SettingItem(key: "k", value: "mine")])
        try await store.addMissingSettings([SettingItem(key: "k", value: "default")])
        #expect(try await store.setting("k")?.value == "mine")
        try await store.deleteSetting("k")
        #expect(try await store.setting("k") == nil)

        try await store.setDriverState("123open:token", "abc")
        try await store.setDriverState("123open:token", "def")
        #expect(try await store.driverState("123open:token") == "def")
        try await store.setDriverState("123open:token", nil)
        #expect(try await store.driverState("123open:token") == nil)
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
    @Test func statementsAreNotLoggedWithTheirValues() async throws {
        let log = CapturingLog()
        let store = try await SQLStore.sqlite(path: ":memory:", logger: log.logger(level: .trace))
        try await store.migrate()
        _ = try await store.createStorage(StorageRecord(mountPath: "/c", driver: "123 Open", addition: "{\"ClientSecret\":\"very-secret-value\"}"))
        try await store.setDriverState("token", "{\"token\":\"access-token-value\"}")
        _ = try await store.storages()
        _ = try await store.driverState("token")
        #expect(!log.text.contains("very-secret-value"))
        #expect(!log.text.contains("access-token-value"))
        await store.close()
    }
}
