import Foundation
import Logging
import Testing
@testable import PanListCore
@testable import PanListServer
@testable import PanListStore

@Suite("Store on PostgreSQL", .enabled(if: TestPostgres.installed, TestPostgres.skipMessage))
struct StorePostgresTests {
    @Test func storagesUsersSettingsAndState() async throws {
        let store = try await StoreContract.open(.postgres)
        try await StoreContract.storagesUsersSettingsAndState(store)
        await store.close()
    }

    @Test func folderRulesAndPathRows() async throws {
        let store = try await StoreContract.open(.postgres)
        try await StoreContract.folderRulesAndPathRows(store)
        await store.close()
    }

    @Test func racingInsertsOfOneValue() async throws { try await StoreContract.racingInsertsOfOneValue(.postgres) }
    @Test func uploadSessions() async throws {
        let store = try await StoreContract.open(.postgres)
        try await StoreContract.uploadSessions(store)
        await store.close()
    }

    /// A statement the database does not answer in time ends with `.unavailable` (its connection closed),
    /// and the next statement works.
    @Test func aStatementWithoutAnAnswerEnds() async throws {
        let store = try await SQLStore.postgres(try await TestPostgres.shared.database(), statementLimit: .seconds(1))
        let started = ContinuousClock.now
        do {
            try await store.db.raw("SELECT pg_sleep(10)").run()
            Issue.record("a 10 s statement ended normally")
        } catch {
            #expect(FSError.from(error).apiCode == 503, "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(4))
        try await store.ping()
        await store.close()
    }

    @Test func pathRowsBelowOddNames() async throws {
        let store = try await StoreContract.open(.postgres)
        try await StoreContract.pathRowsBelowOddNames(store)
        await store.close()
    }

    @Test func loginFailuresAddUp() async throws {
        let store = try await StoreContract.open(.postgres)
        try await StoreContract.loginFailuresAddUp(store)
        await store.close()
    }

    @Test func statementsAreNotLoggedWithTheirValues() async throws {
        try await StoreContract.statementsAreNotLoggedWithTheirValues(.postgres)
    }

    /// Instances that start together on an empty database: the migrations, the admin, the guest, the default
    /// storage and the login-token secret are each made once, and every instance ends up with the same secret.
    @Test func instancesStartingTogetherSetUpOnce() async throws {
        let target = try await TestPostgres.shared.database()
        let dirs = (0..<4).map { _ in TempDir() }
        defer { dirs.forEach { $0.remove() } }
        let quiet = Logger(label: "t") { _ in SwiftLogNoOpLogHandler() }
        let prepared = try await withThrowingTaskGroup(of: Bootstrap.Prepared.self) { group in
            for d in dirs {
                group.addTask {
                    try await Bootstrap.prepare(dataDir: d.path + "/data", logger: quiet, sweepTemp: true, adjust: { c in
                        c.database.type = "postgres"
                        c.database.host = target.host
                        c.database.port = target.port
                        c.database.user = target.user
                        c.database.name = target.database
                    })
                }
            }
            return try await group.reduce(into: [Bootstrap.Prepared]()) { $0.append($1) }
        }
        let store = prepared[0].store
        let users = try await store.users()
        #expect(users.filter { $0.user.isAdmin }.count == 1)
        #expect(users.filter { $0.user.isGuest }.count == 1)
        #expect(try await store.storages().count == 1)
        let versions = try await store.db.select().column("version").from("schema_migrations").all(decodingColumn: "version", as: Int.self)
        #expect(versions.sorted() == SQLStore.migrations.map(\.version))
        #expect(prepared.compactMap(\.createdAdminPassword).count == 1)
        #expect(Set(prepared.map(\.config.jwtSecret)).count == 1)
        // Each instance spools into a temp folder of its own.
        #expect(Set(prepared.map(\.config.tempDir)).count == 4)
        #expect(prepared.allSatisfy { $0.config.tempDir.hasSuffix("/" + $0.config.instanceID) })
        for p in prepared { await p.store.close() }
    }

    /// `panlist db copy`: everything of an SQLite installation arrives, ids kept (new rows still get fresh
    /// ones); a dry run writes nothing; a destination that is not empty is refused.
    @Test func copyingAnSQLiteStoreIntoPostgreSQL() async throws {
        let source = try await StoreContract.open(.sqlite)
        let sid = try await source.createStorage(StorageRecord(mountPath: "/x", driver: "Local", addition: "{\"root_folder_path\":\"/tmp\"}", disabled: true))
        _ = try await source.createUser(StoredUser(user: User(id: 0, username: "ann", role: .general, permission: [.write]), passwordHash: "h", salt: "s"))
        _ = try await source.createFolderRule(FolderRule(id: 0, path: "/x", password: "p", pSub: true))
        try await source.saveSettings([SettingItem(key: "site_title", value: "Mine")])
        try await source.setDriverState("k", "v")
        try await source.revokeToken(hash: "h", expires: Date().addingTimeInterval(600))
        try await source.setDeadProperties("/x/f", set: [DeadProperty(ns: "urn:a", name: "b", value: "c")], remove: [])
        try await source.setKeptTime("/x/f", KeptTime(modified: Date(timeIntervalSince1970: 1000), size: 1))
        let admin = User(id: 1, username: "admin", role: .admin, permission: .admin)
        try await source.insertTask(TaskRecord(id: "t1", kind: "copy", name: "copy", creator: admin, params: "{}", maxRetries: 2))
        try await source.addTaskItems([TaskItem(task: "t1", seq: 0, path: "", isDir: false, size: 5)])

        // A dry run into a database nobody migrated yet counts and makes no table there.
        let fresh = try await SQLStore.postgres(try await TestPostgres.shared.database())
        let dryFresh = try await source.copy(to: fresh, dryRun: true)
        #expect(dryFresh.allSatisfy { $0.rows == 1 })
        #expect(try await fresh.hasTables() == false)
        await fresh.close()

        let dest = try await StoreContract.open(.postgres)
        let dry = try await source.copy(to: dest, dryRun: true)
        #expect(dry.allSatisfy { $0.rows == 1 })
        #expect(try await dest.rowCounts().allSatisfy { $0.rows == 0 })

        let counts = try await source.copy(to: dest, dryRun: false)
        #expect(counts.map(\.rows) == dry.map(\.rows))
        #expect(try await dest.rowCounts().map(\.rows) == counts.map(\.rows))
        let copied = try #require(try await dest.storage(id: sid))
        #expect(copied.mountPath == "/x" && copied.disabled && copied.addition.contains("root_folder_path"))
        #expect(try await dest.user(named: "ann")?.user.permission == [.write])
        #expect(try await dest.setting("site_title")?.value == "Mine")
        #expect(try await dest.deadProperties("/x/f").first?.value == "c")
        #expect(try await dest.keptTime("/x/f")?.size == 1)
        // The id sequences moved past the copied rows.
        let next = try await dest.createStorage(StorageRecord(mountPath: "/y", driver: "Local"))
        #expect(next > sid)
        _ = try await dest.createUser(StoredUser(user: User(id: 0, username: "bo", role: .general, permission: []), passwordHash: "h", salt: "s"))

        await #expect(throws: FSError.self) { _ = try await source.copy(to: dest, dryRun: false) }
        await source.close()
        await dest.close()
    }

    /// Wrong credentials and a missing database stop at once with words (never the password); a server
    /// that is not there is "unavailable" (worth waiting for).
    @Test func badCredentialsAndUnreachableServersAreSaidClearly() async throws {
        let named = try await TestPostgres.shared.database()
        guard let server = try await TestPostgres.shared.serverForTests() else { return }
        let wrong = try server.target(database: named.database, tcp: true, password: "not-the-password-123")
        do {
            _ = try await SQLStore.postgres(wrong)
            Issue.record("a wrong password was accepted")
        } catch let e as FSError {
            guard case .badRequest(let m) = e else { Issue.record("expected badRequest, got \(e)"); return }
            #expect(m.contains("password authentication failed"), "\(m)")
            #expect(!m.contains("not-the-password-123"))
        }
        let missing = try server.target(database: "no_such_db", tcp: true)
        await #expect(throws: FSError.self) { _ = try await SQLStore.postgres(missing) }
        do { _ = try await SQLStore.postgres(missing) } catch let e as FSError {
            #expect(e.message.contains("does not exist"), "\(e.message)")
        }
        let closed = try PostgresTarget(host: "127.0.0.1", port: try TestPostgres.Server.freePort(), user: "panlist", database: "x")
        do {
            _ = try await SQLStore.postgres(closed)
            Issue.record("a closed port was accepted")
        } catch let e as FSError {
            guard case .unavailable(let m) = e else { Issue.record("expected unavailable, got \(e)"); return }
            #expect(m.contains("refused"), "\(m)")
        }
    }

    /// The database goes away while PanList runs: statements fail within the lease timeout with
    /// `.unavailable` (a 503 for requests), and work again by themselves once it is back.
    @Test func aDatabaseLostWhileRunningIsUnavailableThenRecovers() async throws {
        let server = try await TestPostgres.Server.start()
        let store = try await SQLStore.postgres(try server.target(database: "postgres"), leaseTimeout: .seconds(2))
        try await store.migrate()
        _ = try await store.createStorage(StorageRecord(mountPath: "/kept", driver: "Local"))
        try await server.stopNow()
        let began = ContinuousClock.now
        do {
            _ = try await store.storages()
            Issue.record("a query succeeded with the database stopped")
        } catch let e as FSError {
            guard case .unavailable = e else { Issue.record("expected unavailable, got \(e)"); return }
        }
        #expect(ContinuousClock.now - began < .seconds(6))
        try await server.startAgain()
        var back = false
        for _ in 0..<40 where !back {
            if let s = try? await store.storages() { back = s.map(\.mountPath) == ["/kept"] }
            if !back { try await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(back, "the store did not recover after the database came back")
        await store.close()
        await server.remove()
    }
}

@Suite("PostgreSQL settings")
struct PostgresTargetTests {
    @Test func dsnsInBothFormsAndTheirMistakes() throws {
        let url = try PostgresTarget(dsn: "postgres://pan%40list:p%40ss%3Aword@db.example:6543/panlist?sslmode=verify-full")
        #expect(url.user == "pan@list" && url.password == "p@ss:word" && url.host == "db.example" && url.port == 6543)
        #expect(url.database == "panlist" && url.effectiveSSLMode == "verify-full")
        #expect(!url.described.contains("p@ss:word"))
        let words = try PostgresTarget(dsn: "host=/run/postgresql user=panlist password=secret dbname=pl")
        #expect(words.isUnixSocket && words.user == "panlist" && words.database == "pl")
        let quoted = try PostgresTarget(dsn: "host=h user=u password='a b\\'c'")
        #expect(quoted.password == "a b'c" && quoted.database == "u" && quoted.port == 5432)
        #expect(try PostgresTarget(dsn: "postgresql://u@127.0.0.1/x").effectiveSSLMode == "disable")
        #expect(try PostgresTarget(dsn: "postgresql://u@db.example/x").effectiveSSLMode == "verify-full")

        for (bad, says) in [("mysql://u@h/x", "postgres://"), ("postgres://h/x", "no user"), ("host=h dbname", "no '='"),
                            ("postgres://u@h:99999/x", "port"), ("postgres://u@h/x?sslmode=sometimes", "ssl_mode"),
                            ("host=h user=u password='open", "unclosed quote"), ("host=h user=u colour=blue", "colour"), ("", "empty")] {
            do {
                _ = try PostgresTarget(dsn: bad)
                Issue.record("accepted \(bad)")
            } catch {
                #expect(error.message.contains(says), "\(bad): \(error.message)")
            }
        }
    }

    @Test func theDatabaseTypeAndEnvironmentOverrides() throws {
        var c = PanListConfig()
        c.applyEnvironment(["PANLIST_DB_TYPE": "postgresql", "PANLIST_DB_HOST": "db", "PANLIST_DB_PORT": "6000",
                            "PANLIST_DB_USER": "pl", "PANLIST_DB_PASSWORD": "pw", "PANLIST_DB_NAME": "plist", "PANLIST_DB_SSL_MODE": "require"])
        #expect(try c.database.engine == .postgres)
        let t = try c.database.postgresTarget()
        #expect(t.host == "db" && t.port == 6000 && t.user == "pl" && t.password == "pw" && t.database == "plist" && t.effectiveSSLMode == "require")
        // A DSN beside the separate fields: refused, naming both, never the password.
        c.applyEnvironment(["PANLIST_DB_DSN": "postgres://other@h2/d2"])
        do {
            _ = try c.database.postgresTarget()
            Issue.record("a DSN and separate fields were both accepted")
        } catch {
            #expect(error.message.contains("given twice") && error.message.contains("host") && !error.message.contains("pw"), "\(error.message)")
        }
        var d = PanListConfig()
        d.applyEnvironment(["PANLIST_DB_DSN": "postgres://other@h2/d2"])
        #expect(try d.database.postgresTarget().user == "other")
        // A password written without its key is not repeated in the message.
        do {
            _ = try PostgresTarget(dsn: "host=h user=u password s3cret-Word")
            Issue.record("accepted a word without '='")
        } catch {
            #expect(!error.message.contains("s3cret"), "\(error.message)")
        }
        c.database.type = "mysql"
        #expect(throws: FSError.self) { _ = try c.database.engine }
        c.applyEnvironment(["PANLIST_DB_PORT": "five"])
        c.database.dsn = ""
        #expect(throws: FSError.self) { _ = try c.database.postgresTarget() }
    }
}
