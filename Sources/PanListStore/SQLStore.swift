import Foundation
import Logging
import PanListCore
import SQLKit
import SQLiteKit
import PostgresNIO
import NIOConcurrencyHelpers
import NIOPosix

/// The one Store implementation, written against SQLKit's builder so the same queries serve SQLite
/// (embedded default) and PostgreSQL (several instances). What differs between the two is decided in
/// this file, by `engine`: opening, the migration lock, unique violations and identity sequences.
public final class SQLStore: Store, @unchecked Sendable {
    public enum Engine: String, Sendable { case sqlite, postgres }

    let db: any SQLDatabase
    public let engine: Engine
    /// The PostgreSQL server (for connections outside the pool, such as the change listener).
    public let postgresTarget: PostgresTarget?
    private let onClose: @Sendable () async -> Void

    public init(database: any SQLDatabase, engine: Engine = .sqlite, postgresTarget: PostgresTarget? = nil,
                onClose: @escaping @Sendable () async -> Void = {}) {
        self.db = TimedDatabase(base: database)
        self.engine = engine
        self.postgresTarget = postgresTarget
        self.onClose = onClose
    }

    /// Opens a PostgreSQL store: one probing connection first (so that a wrong password, a missing database
    /// or a refused connection is said at once, in words), then the connection pool. `leaseTimeout`: how long
    /// a statement waits for a connection before it fails with `.unavailable`.
    public static func postgres(_ target: PostgresTarget, logger: Logger = Logger(label: "panlist.store"),
                                leaseTimeout: Duration = .seconds(10), statementLimit: Duration = .seconds(30)) async throws -> SQLStore {
        // PostgresNIO logs statements and their binds below info; the binds include secrets.
        var logger = logger
        if logger.logLevel < .info { logger.logLevel = .info }
        try await target.probe(logger: logger)
        // The pool says every failed reconnection at info level, several a second while the database is away;
        // requests that need it answer 503 with the reason meanwhile, so only its warnings are let through.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .warning)
        let client = PostgresClient(configuration: try target.clientConfiguration(), backgroundLogger: poolLogger)
        let run = Task { await client.run() }
        let db = PostgresPoolDatabase(client: client, logger: logger, leaseTimeout: leaseTimeout, statementLimit: statementLimit)
        let closeLogger = logger
        return SQLStore(database: db, engine: .postgres, postgresTarget: target, onClose: {
            run.cancel()
            // The pool ends when its connections are closed; one stuck on a database that went away is not
            // waited for longer than this.
            if !(await FirstOf.wait(run, atMost: .seconds(5))) {
                closeLogger.warning("the database connection pool did not close within 5 s; leaving it")
            }
        })
    }

    /// Opens (creating if needed) an SQLite database file, or an in-memory one for `:memory:`.
    public static func sqlite(path: String, logger: Logger = Logger(label: "panlist.store")) async throws -> SQLStore {
        let storage: SQLiteConnection.Storage = path == ":memory:" ? .memory : .file(path: path)
        // The database holds secrets: created 0600 (SQLite gives its -wal and -shm files the same mode),
        // and an older installation's wider files are tightened.
        if path != ":memory:" {
            try PrivateFiles.touch(path)
            for f in PrivateFiles.databaseFiles(path).dropFirst() { PrivateFiles.tighten(f, to: 0o600) }
        }
        // SQLite's driver logs every statement with its bound values at debug level, and those values
        // include storage secrets, password hashes and access tokens: never below info here.
        var logger = logger
        if logger.logLevel < .info { logger.logLevel = .info }
        let conn = try await SQLiteConnection.open(storage: storage, logger: logger)
        let sql = conn.sql()
        if path != ":memory:" {
            try await sql.raw("PRAGMA journal_mode=WAL").run()
            // In WAL mode, NORMAL syncs the log at checkpoints instead of at every commit: a commit survives
            // PanList being killed (it is in the OS), and the database is never corrupted; only a power loss
            // can undo the last commits. Every small write (a resumable upload's chunk takes two) stops
            // waiting for the disk.
            try await sql.raw("PRAGMA synchronous=NORMAL").run()
        }
        try await sql.raw("PRAGMA foreign_keys=ON").run()
        try await sql.raw("PRAGMA busy_timeout=5000").run()
        // Closed through the gate: after the statement or transaction under way (closing the connection under a
        // statement running on another thread leaves it open, its transaction with it).
        let serial = SerialDatabase(base: sql)
        return SQLStore(database: serial, onClose: { _ = try? await serial.withSession { _ in try await conn.close() } })
    }

    public func close() async {
        if let claim = instanceClaim.withLockedValue({ c in defer { c = nil }; return c }) { try? await claim.close() }
        await onClose()
    }

    /// Takes `id` as this process's instance id for as long as it runs (PostgreSQL: an advisory lock on a
    /// connection of its own, released when the store closes or the process ends). False when another running
    /// process holds it.
    public func claimInstance(_ id: String) async throws -> Bool {
        guard engine == .postgres, let target = postgresTarget else { return true }
        var logger = Logger(label: "panlist.instance")
        logger.logLevel = .warning
        let conn = try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.any(),
            configuration: try target.connectionConfiguration(applicationName: "panlist-instance \(id)"), id: 2, logger: logger).get()
        do {
            let rows = try await conn.query("SELECT pg_try_advisory_lock(hashtextextended(\("panlist-instance:" + id), 0))", logger: logger)
            var got = false
            for try await (ok) in rows.decode(Bool.self) { got = ok }
            guard got else {
                try? await conn.close()
                return false
            }
            instanceClaim.withLockedValue { $0 = conn }
            return true
        } catch {
            try? await conn.close()
            throw PostgresErrors.translate(error)
        }
    }

    private let instanceClaim = NIOLockedValueBox<PostgresConnection?>(nil)

    /// One round trip to the database (readiness checks).
    public func ping() async throws { try await db.raw("SELECT 1 AS one").run() }

    // MARK: migrations

    /// Versioned migrations; each runs once, in order.
    static let migrations: [(version: Int, run: @Sendable (any SQLDatabase) async throws -> Void)] = [
        (1, { db in
            try await db.create(table: "storages").ifNotExists()
                .column("id", type: .bigint, .primaryKey(autoIncrement: true))
                .column("mount_path", type: .text, .notNull, .unique)
                .column("order", type: .bigint, .notNull, .default(0))
                .column("driver", type: .text, .notNull)
                .column("cache_expiration", type: .bigint, .notNull, .default(30))
                .column("status", type: .text, .notNull, .default(""))
                .column("addition", type: .text, .notNull, .default("{}"))
                .column("remark", type: .text, .notNull, .default(""))
                .column("modified_ms", type: .bigint, .notNull, .default(0))
                .column("disabled", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("enable_sign", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("order_by", type: .text, .notNull, .default(""))
                .column("order_direction", type: .text, .notNull, .default(""))
                .column("extract_folder", type: .text, .notNull, .default(""))
                .column("web_proxy", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("webdav_policy", type: .text, .notNull, .default(""))
                .column("down_proxy_url", type: .text, .notNull, .default(""))
                .run()
            try await db.create(table: "users").ifNotExists()
                .column("id", type: .bigint, .primaryKey(autoIncrement: true))
                .column("username", type: .text, .notNull, .unique)
                .column("pwd_hash", type: .text, .notNull)
                .column("salt", type: .text, .notNull)
                .column("pwd_ts", type: .bigint, .notNull, .default(0))
                .column("base_path", type: .text, .notNull, .default("/"))
                .column("role", type: .bigint, .notNull, .default(0))
                .column("disabled", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("permission", type: .bigint, .notNull, .default(0))
                .run()
            try await db.create(table: "settings").ifNotExists()
                .column("key", type: .text, .primaryKey(autoIncrement: false))
                .column("value", type: .text, .notNull)
                .column("help", type: .text, .notNull, .default(""))
                .column("type", type: .text, .notNull, .default("string"))
                .column("options", type: .text, .notNull, .default(""))
                .column("group", type: .bigint, .notNull, .default(0))
                .column("flag", type: .bigint, .notNull, .default(0))
                .column("index", type: .bigint, .notNull, .default(0))
                .run()
            try await db.create(table: "driver_state").ifNotExists()
                .column("key", type: .text, .primaryKey(autoIncrement: false))
                .column("value", type: .text, .notNull)
                .run()
        }),
        (2, { db in
            try await db.create(table: "revoked_tokens").ifNotExists()
                .column("hash", type: .text, .primaryKey(autoIncrement: false))
                .column("expires_ms", type: .bigint, .notNull)
                .run()
        }),
        (3, { db in
            // WebDAV dead properties (PROPPATCH), by virtual path; `value` is the property's inner XML.
            try await db.create(table: "dav_props").ifNotExists()
                .column("path", type: .text, .notNull)
                .column("ns", type: .text, .notNull)
                .column("name", type: .text, .notNull)
                .column("value", type: .text, .notNull)
                .primaryKey("path", "ns", "name")
                .run()
        }),
        (4, { db in
            // Folder rules (Alist's x_meta), one row per virtual path.
            try await db.create(table: "folder_rules").ifNotExists()
                .column("id", type: .bigint, .primaryKey(autoIncrement: true))
                .column("path", type: .text, .notNull, .unique)
                .column("password", type: .text, .notNull, .default(""))
                .column("p_sub", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("write", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("w_sub", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("hide", type: .text, .notNull, .default(""))
                .column("h_sub", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("readme", type: .text, .notNull, .default(""))
                .column("r_sub", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .column("header", type: .text, .notNull, .default(""))
                .column("header_sub", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
                .run()
        }),
        (5, { db in
            // Modification times PanList keeps for storages that cannot (KeptTime), by virtual path.
            try await db.create(table: "kept_times").ifNotExists()
                .column("path", type: .text, .primaryKey(autoIncrement: false))
                .column("parent", type: .text, .notNull)
                .column("modified_ms", type: .bigint, .notNull)
                .column("size", type: .bigint, .notNull)
                .column("md5", type: .text, .notNull, .default(""))
                .column("sha1", type: .text, .notNull, .default(""))
                .run()
            try await db.raw("CREATE INDEX IF NOT EXISTS kept_times_parent ON kept_times (parent)").run()
        }),
        (6, { db in
            // The login limiter's counts, shared by every instance (see LoginLimiter).
            try await db.create(table: "login_failures").ifNotExists()
                .column("key", type: .text, .primaryKey(autoIncrement: false))
                .column("failures", type: .bigint, .notNull)
                .column("since_ms", type: .bigint, .notNull)
                .column("max_failures", type: .bigint, .notNull)
                .run()
        }),
        (7, { db in
            // WebDAV locks, honoured by every instance (see DAVLocks).
            try await db.create(table: "dav_locks").ifNotExists()
                .column("token", type: .text, .primaryKey(autoIncrement: false))
                .column("path", type: .text, .notNull)
                .column("infinite", type: .custom(SQLRaw("BOOLEAN")), .notNull)
                .column("exclusive", type: .custom(SQLRaw("BOOLEAN")), .notNull)
                .column("owner", type: .text, .notNull, .default(""))
                .column("timeout", type: .bigint, .notNull)
                .column("expires_ms", type: .bigint, .notNull)
                .run()
            // Upstream request pacing shared by every instance (see reserveSlot).
            try await db.create(table: "rate_slots").ifNotExists()
                .column("key", type: .text, .primaryKey(autoIncrement: false))
                .column("next_ms", type: .bigint, .notNull)
                .run()
        }),
        (8, { db in
            // Background tasks and the units of their work (see TaskStore, TaskManager).
            try await db.create(table: "tasks").ifNotExists()
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("kind", type: .text, .notNull)
                .column("name", type: .text, .notNull)
                .column("creator_id", type: .bigint, .notNull)
                .column("creator", type: .text, .notNull)
                .column("creator_role", type: .bigint, .notNull)
                .column("state", type: .bigint, .notNull)
                .column("status", type: .text, .notNull, .default(""))
                .column("current", type: .text, .notNull, .default(""))
                .column("total_bytes", type: .bigint, .notNull, .default(0))
                .column("done_bytes", type: .bigint, .notNull, .default(0))
                .column("total_files", type: .bigint, .notNull, .default(0))
                .column("done_files", type: .bigint, .notNull, .default(0))
                .column("speed", type: .bigint, .notNull, .default(0))
                .column("error", type: .text, .notNull, .default(""))
                .column("params", type: .text, .notNull, .default(""))
                .column("retries", type: .bigint, .notNull, .default(0))
                .column("max_retries", type: .bigint, .notNull, .default(0))
                .column("owner", type: .text, .notNull, .default(""))
                .column("lease_ms", type: .bigint, .notNull, .default(0))
                .column("pinned", type: .text, .notNull, .default(""))
                .column("created_ms", type: .bigint, .notNull)
                .column("start_ms", type: .bigint, .notNull, .default(0))
                .column("end_ms", type: .bigint, .notNull, .default(0))
                .column("next_ms", type: .bigint, .notNull, .default(0))
                .run()
            try await db.raw("CREATE INDEX IF NOT EXISTS tasks_kind_state ON tasks (kind, state, created_ms)").run()
            try await db.raw("CREATE INDEX IF NOT EXISTS tasks_creator ON tasks (creator_id, kind, state)").run()
            try await db.create(table: "task_items").ifNotExists()
                .column("task_id", type: .text, .notNull)
                .column("seq", type: .bigint, .notNull)
                .column("path", type: .text, .notNull)
                .column("is_dir", type: .custom(SQLRaw("BOOLEAN")), .notNull)
                .column("size", type: .bigint, .notNull)
                .column("state", type: .bigint, .notNull)
                .column("note", type: .text, .notNull, .default(""))
                .primaryKey("task_id", "seq")
                .run()
        }),
        (9, { db in
            // Where an interrupted upload of an item got to (a 123 Open slice session), for the next attempt.
            try await db.raw("ALTER TABLE task_items ADD COLUMN checkpoint TEXT NOT NULL DEFAULT ''").run()
        }),
        (10, { db in
            // A page of a task list sorts ids within the index, not whole rows (10,000 finished tasks: ~30 → ~4 ms).
            try await db.raw("CREATE INDEX IF NOT EXISTS tasks_kind_state_id ON tasks (kind, state, created_ms, id)").run()
            try await db.raw("DROP INDEX IF EXISTS tasks_kind_state").run()
        }),
        (11, { db in
            // Resumable uploads (tus, OpenList's chunked routes): see UploadSession.
            try await db.create(table: "upload_sessions").ifNotExists()
                .column("id", type: .text, .primaryKey(autoIncrement: false))
                .column("proto", type: .text, .notNull)
                .column("creator_id", type: .bigint, .notNull)
                .column("dir", type: .text, .notNull)
                .column("name", type: .text, .notNull)
                .column("size", type: .bigint, .notNull)
                .column("received", type: .bigint, .notNull, .default(0))
                .column("md5", type: .text, .notNull, .default(""))
                .column("sha1", type: .text, .notNull, .default(""))
                .column("sha256", type: .text, .notNull, .default(""))
                .column("modified_ms", type: .bigint, .notNull, .default(0))
                .column("mime", type: .text, .notNull, .default(""))
                .column("overwrite", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(true))
                .column("metadata", type: .text, .notNull, .default(""))
                .column("spool", type: .text, .notNull, .default(""))
                .column("chunk_size", type: .bigint, .notNull, .default(0))
                .column("upstream", type: .text, .notNull, .default(""))
                .column("instance", type: .text, .notNull, .default(""))
                .column("state", type: .bigint, .notNull, .default(0))
                .column("writer", type: .text, .notNull, .default(""))
                .column("writer_until_ms", type: .bigint, .notNull, .default(0))
                .column("created_ms", type: .bigint, .notNull)
                .column("expires_ms", type: .bigint, .notNull)
                .run()
            try await db.raw("CREATE INDEX IF NOT EXISTS upload_sessions_creator ON upload_sessions (creator_id, state)").run()
            try await db.raw("CREATE INDEX IF NOT EXISTS upload_sessions_expires ON upload_sessions (expires_ms)").run()
            // Chunked uploads: one row per chunk a request claimed (writer, until when) or stored (done = 1).
            try await db.create(table: "upload_chunks").ifNotExists()
                .column("session_id", type: .text, .notNull)
                .column("idx", type: .bigint, .notNull)
                .column("writer", type: .text, .notNull, .default(""))
                .column("until_ms", type: .bigint, .notNull, .default(0))
                .column("done", type: .bigint, .notNull, .default(0))
                .primaryKey("session_id", "idx")
                .run()
        }),
        // The search index (SearchRows.swift) and storages' disable_index.
        (12, searchMigration),
        (13, searchGramsMigration),
        // Share links (ShareRows.swift).
        (14, shareMigration),
    ]

    /// Runs `body` while holding the store's one cluster-wide lock (PostgreSQL: an advisory lock on a
    /// session of its own; SQLite: one process owns the file). Migrations and the first-run rows (admin,
    /// guest, default storage, shared secrets) are made under it, so instances that start together on an
    /// empty database make each of them once.
    public func exclusively<R: Sendable>(_ body: @escaping @Sendable () async throws -> R) async throws -> R {
        guard engine == .postgres else { return try await body() }
        return try await db.withSession { session in
            try await session.raw("SELECT pg_advisory_lock(\(literal: Self.setupLockKey))").run()
            do {
                let r = try await body()
                try await session.raw("SELECT pg_advisory_unlock(\(literal: Self.setupLockKey))").run()
                return r
            } catch {
                try? await session.raw("SELECT pg_advisory_unlock(\(literal: Self.setupLockKey))").run()
                throw error
            }
        }
    }

    /// The advisory lock key of `exclusively` ("PanList1" as a number).
    static let setupLockKey: Int64 = 0x50616e4c69737431

    /// Whether `error` is a unique-constraint violation, on either engine.
    public static func isUniqueViolation(_ error: any Error) -> Bool {
        if error is UniqueViolation { return true }
        return String(reflecting: error).localizedCaseInsensitiveContains("UNIQUE constraint failed")
    }

    /// Runs an insert or update, turning a unique violation into `.alreadyExists(message)` (two instances can
    /// pass the "is it taken?" check together; the database's constraint decides).
    func unique<R>(_ message: @autoclosure () -> String, _ body: () async throws -> R) async throws -> R {
        do { return try await body() } catch where Self.isUniqueViolation(error) { throw FSError.alreadyExists(message()) }
    }

    public func migrate() async throws {
        try await exclusively { try await self.runMigrations() }
    }

    /// The migrations not applied yet, in order; call inside `exclusively` (or use `migrate`).
    public func runMigrations() async throws {
        try await db.create(table: "schema_migrations").ifNotExists()
            .column("version", type: .bigint, .primaryKey(autoIncrement: false))
            .column("applied_ms", type: .bigint, .notNull)
            .run()
        let done = Set(try await db.select().column("version").from("schema_migrations")
            .all(decodingColumn: "version", as: Int.self))
        // Each migration and its record in one transaction: a crash half-way leaves it not applied, whole.
        for m in Self.migrations where !done.contains(m.version) {
            try await inTransaction { s in
                try await m.run(s)
                try await s.insert(into: "schema_migrations")
                    .columns("version", "applied_ms")
                    .values(SQLBind(m.version), SQLBind(Int64(Date().timeIntervalSince1970 * 1000)))
                    .run()
            }
        }
    }

    /// Runs `body` in one transaction on one session: committed when it returns, rolled back when it throws.
    /// The end of the transaction (COMMIT or ROLLBACK) is sent even when the calling task is cancelled: SQLite's
    /// driver skips the statements of a cancelled task, and a transaction left open on the one connection would
    /// take in every later statement of the process and lose them all when it closes.
    func inTransaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await db.withSession { s in
            try await s.raw("BEGIN").run()
            do {
                let r = try await body(s)
                try await Self.uncancelled(s, "COMMIT")
                return r
            } catch {
                try? await Self.uncancelled(s, "ROLLBACK")
                throw error
            }
        }
    }

    /// Runs `sql` outside the calling task's cancellation.
    static func uncancelled(_ s: any SQLDatabase, _ sql: String) async throws {
        try await Task { try await s.raw(SQLQueryString(sql)).run() }.value
    }

    // MARK: storages

    struct StorageRow: Codable {
        var id: Int?
        var mount_path: String
        var order: Int
        var driver: String
        var cache_expiration: Int
        var status: String
        var addition: String
        var remark: String
        var modified_ms: Int64
        var disabled: Bool
        var enable_sign: Bool
        var order_by: String
        var order_direction: String
        var extract_folder: String
        var web_proxy: Bool
        var webdav_policy: String
        var down_proxy_url: String
        var disable_index: Bool

        init(_ r: StorageRecord, withID: Bool) {
            id = withID ? r.id : nil
            mount_path = r.mountPath; order = r.order; driver = r.driver; cache_expiration = r.cacheExpiration
            status = r.status; addition = r.addition; remark = r.remark
            modified_ms = Int64(r.modified.timeIntervalSince1970 * 1000); disabled = r.disabled
            enable_sign = r.enableSign; order_by = r.orderBy; order_direction = r.orderDirection
            extract_folder = r.extractFolder; web_proxy = r.webProxy; webdav_policy = r.webdavPolicy
            down_proxy_url = r.downProxyURL
            disable_index = r.disableIndex
        }

        var record: StorageRecord {
            StorageRecord(id: id ?? 0, mountPath: mount_path, order: order, driver: driver, cacheExpiration: cache_expiration,
                          status: status, addition: addition, remark: remark,
                          modified: Date(timeIntervalSince1970: Double(modified_ms) / 1000), disabled: disabled,
                          enableSign: enable_sign, orderBy: order_by, orderDirection: order_direction,
                          extractFolder: extract_folder, webProxy: web_proxy, webdavPolicy: webdav_policy,
                          downProxyURL: down_proxy_url, disableIndex: disable_index)
        }
    }

    public func storages() async throws -> [StorageRecord] {
        try await db.select().column("*").from("storages").orderBy("order").orderBy("id")
            .all(decoding: StorageRow.self).map(\.record)
    }

    public func storage(id: Int) async throws -> StorageRecord? {
        try await db.select().column("*").from("storages").where("id", .equal, id)
            .first(decoding: StorageRow.self)?.record
    }

    /// Whether a row other than `id` already has `value` in a unique `column`.
    private func taken(_ table: String, _ column: String, _ value: String, except id: Int?) async throws -> Bool {
        var q = db.select().column("id").from(table).where(SQLIdentifier(column), .equal, SQLBind(value))
        if let id { q = q.where("id", .notEqual, id) }
        return try await q.first() != nil
    }

    public func createStorage(_ record: StorageRecord) async throws -> Int {
        if try await taken("storages", "mount_path", record.mountPath, except: nil) {
            throw FSError.alreadyExists("mount_path \(record.mountPath) is already used by another storage")
        }
        guard let id = try await unique("mount_path \(record.mountPath) is already used by another storage", {
            try await db.insert(into: "storages").model(StorageRow(record, withID: false))
                .returning("id").first(decodingColumn: "id", as: Int.self)
        })
        else { throw FSError.internalError("the database did not return the new storage's id") }
        return id
    }

    public func updateStorage(_ record: StorageRecord) async throws {
        if try await taken("storages", "mount_path", record.mountPath, except: record.id) {
            throw FSError.alreadyExists("mount_path \(record.mountPath) is already used by another storage")
        }
        try await unique("mount_path \(record.mountPath) is already used by another storage") {
            try await db.update("storages").set(model: StorageRow(record, withID: false))
                .where("id", .equal, record.id).run()
        }
    }

    public func setStorageStatus(id: Int, status: String) async throws {
        try await db.update("storages").set("status", to: status).where("id", .equal, id).run()
    }

    public func deleteStorage(id: Int) async throws {
        try await db.delete(from: "storages").where("id", .equal, id).run()
    }

    // MARK: users

    struct UserRow: Codable {
        var id: Int?
        var username: String
        var pwd_hash: String
        var salt: String
        var pwd_ts: Int64
        var base_path: String
        var role: Int
        var disabled: Bool
        var permission: Int64

        init(_ u: StoredUser, withID: Bool) {
            id = withID ? u.user.id : nil
            username = u.user.username; pwd_hash = u.passwordHash; salt = u.salt; pwd_ts = u.user.passwordTimestamp
            base_path = u.user.basePath; role = u.user.role.rawValue; disabled = u.user.disabled
            permission = Int64(u.user.permission.rawValue)
        }

        var stored: StoredUser {
            StoredUser(user: User(id: id ?? 0, username: username, basePath: base_path,
                                  role: UserRole(rawValue: role) ?? .general, disabled: disabled,
                                  permission: Permission(rawValue: Int32(truncatingIfNeeded: permission)),
                                  passwordTimestamp: pwd_ts),
                       passwordHash: pwd_hash, salt: salt)
        }
    }

    public func users() async throws -> [StoredUser] {
        try await db.select().column("*").from("users").orderBy("id").all(decoding: UserRow.self).map(\.stored)
    }

    public func user(named username: String) async throws -> StoredUser? {
        try await db.select().column("*").from("users").where("username", .equal, username)
            .first(decoding: UserRow.self)?.stored
    }

    public func user(id: Int) async throws -> StoredUser? {
        try await db.select().column("*").from("users").where("id", .equal, id).first(decoding: UserRow.self)?.stored
    }

    public func createUser(_ user: StoredUser) async throws -> Int {
        if try await self.user(named: user.user.username) != nil {
            throw FSError.alreadyExists("user \(user.user.username) already exists")
        }
        guard let id = try await unique("user \(user.user.username) already exists", {
            try await db.insert(into: "users").model(UserRow(user, withID: false))
                .returning("id").first(decodingColumn: "id", as: Int.self)
        })
        else { throw FSError.internalError("the database did not return the new user's id") }
        return id
    }

    public func updateUser(_ user: StoredUser) async throws {
        try await unique("user \(user.user.username) already exists") {
            try await db.update("users").set(model: UserRow(user, withID: false)).where("id", .equal, user.user.id).run()
        }
    }

    public func deleteUser(id: Int) async throws {
        // A user's shares go with them.
        try await inTransaction { s in
            try await s.delete(from: "shares").where("creator_id", .equal, id).run()
            try await s.delete(from: "users").where("id", .equal, id).run()
        }
    }

    // MARK: folder rules

    struct RuleRow: Codable {
        var id: Int?
        var path: String
        var password: String
        var p_sub: Bool
        var write: Bool
        var w_sub: Bool
        var hide: String
        var h_sub: Bool
        var readme: String
        var r_sub: Bool
        var header: String
        var header_sub: Bool

        init(_ r: FolderRule, withID: Bool) {
            id = withID ? r.id : nil
            path = r.path; password = r.password; p_sub = r.pSub; write = r.write; w_sub = r.wSub; hide = r.hide
            h_sub = r.hSub; readme = r.readme; r_sub = r.rSub; header = r.header; header_sub = r.headerSub
        }

        var rule: FolderRule {
            FolderRule(id: id ?? 0, path: path, password: password, pSub: p_sub, write: write, wSub: w_sub, hide: hide,
                       hSub: h_sub, readme: readme, rSub: r_sub, header: header, headerSub: header_sub)
        }
    }

    public func folderRules() async throws -> [FolderRule] {
        try await db.select().column("*").from("folder_rules").orderBy("path").all(decoding: RuleRow.self).map(\.rule)
    }

    public func folderRule(id: Int) async throws -> FolderRule? {
        try await db.select().column("*").from("folder_rules").where("id", .equal, id).first(decoding: RuleRow.self)?.rule
    }

    public func createFolderRule(_ rule: FolderRule) async throws -> Int {
        if try await taken("folder_rules", "path", rule.path, except: nil) { throw FSError.alreadyExists("there is already a rule for \(rule.path)") }
        guard let id = try await unique("there is already a rule for \(rule.path)", {
            try await db.insert(into: "folder_rules").model(RuleRow(rule, withID: false))
                .returning("id").first(decodingColumn: "id", as: Int.self)
        })
        else { throw FSError.internalError("the database did not return the new rule's id") }
        return id
    }

    public func updateFolderRule(_ rule: FolderRule) async throws {
        if try await taken("folder_rules", "path", rule.path, except: rule.id) { throw FSError.alreadyExists("there is already a rule for \(rule.path)") }
        try await unique("there is already a rule for \(rule.path)") {
            try await db.update("folder_rules").set(model: RuleRow(rule, withID: false)).where("id", .equal, rule.id).run()
        }
    }

    public func deleteFolderRule(id: Int) async throws {
        try await db.delete(from: "folder_rules").where("id", .equal, id).run()
    }

    /// Inserts several rules in one statement (all or nothing: a path that already has a rule fails the
    /// whole insert with `.alreadyExists`). Returns their ids.
    public func insertFolderRules(_ rules: [FolderRule]) async throws -> [Int] {
        guard !rules.isEmpty else { return [] }
        return try await unique("a folder rule already exists at \(rules.map(\.path).joined(separator: ", "))") {
            try await db.insert(into: "folder_rules").models(rules.map { RuleRow($0, withID: false) })
                .returning("id").all(decodingColumn: "id", as: Int.self)
        }
    }

    /// Deletes the rules with these ids, in one statement.
    public func deleteFolderRules(ids: [Int]) async throws {
        guard !ids.isEmpty else { return }
        try await db.delete(from: "folder_rules").where("id", .in, ids).run()
    }

    // MARK: settings

    public func settings() async throws -> [SettingItem] {
        try await db.select().column("*").from("settings").orderBy("group").orderBy("index").orderBy("key")
            .all(decoding: SettingItem.self)
    }

    public func setting(_ key: String) async throws -> SettingItem? {
        try await db.select().column("*").from("settings").where("key", .equal, key).first(decoding: SettingItem.self)
    }

    public func saveSettings(_ items: [SettingItem]) async throws {
        for item in items {
            try await db.insert(into: "settings").model(item)
                .onConflict(with: ["key"]) { try $0.set(excludedContentOf: item) }
                .run()
        }
    }

    /// Adds the settings that are missing; for those already there, refreshes what describes them (help,
    /// type, options, group) and keeps their value.
    public func addMissingSettings(_ items: [SettingItem]) async throws {
        for item in items {
            try await db.insert(into: "settings").model(item).onConflict(with: ["key"]) { update in
                update.set("help", to: item.help).set("type", to: item.type).set("options", to: item.options).set("group", to: item.group)
            }.run()
        }
    }

    public func deleteSetting(_ key: String) async throws {
        try await db.delete(from: "settings").where("key", .equal, key).run()
    }

    // MARK: revoked tokens

    public func revokeToken(hash: String, expires: Date) async throws {
        struct Row: Codable { var hash: String; var expires_ms: Int64 }
        let row = Row(hash: hash, expires_ms: Int64(expires.timeIntervalSince1970 * 1000))
        try await db.insert(into: "revoked_tokens").model(row).ignoringConflicts(with: ["hash"]).run()
    }

    public func revokedTokens() async throws -> [(hash: String, expires: Date)] {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await db.delete(from: "revoked_tokens").where("expires_ms", .lessThan, now).run()
        struct Row: Codable { var hash: String; var expires_ms: Int64 }
        return try await db.select().columns("hash", "expires_ms").from("revoked_tokens").all(decoding: Row.self)
            .map { ($0.hash, Date(timeIntervalSince1970: Double($0.expires_ms) / 1000)) }
    }

    // MARK: login limiter

    public func addLoginFailure(key: String, limit: Int, window: TimeInterval) async throws -> Int {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let start = now - Int64(window * 1000)
        // One statement, so that failures counted at once by several instances all add up.
        let n = try await db.raw("""
            INSERT INTO login_failures (key, failures, since_ms, max_failures) VALUES (\(bind: key), 1, \(bind: now), \(bind: limit))
            ON CONFLICT (key) DO UPDATE SET
              failures = CASE WHEN login_failures.since_ms < \(bind: start) THEN 1 ELSE login_failures.failures + 1 END,
              since_ms = CASE WHEN login_failures.since_ms < \(bind: start) THEN \(bind: now) ELSE login_failures.since_ms END,
              max_failures = \(bind: limit)
            RETURNING failures
            """).first(decodingColumn: "failures", as: Int.self) ?? 1
        if Int.random(in: 0..<64) == 0 {
            try await db.delete(from: "login_failures").where("since_ms", .lessThan, start).run()
        }
        return n
    }

    public func clearLoginFailures(key: String) async throws {
        try await db.delete(from: "login_failures").where("key", .equal, key).run()
    }

    public func loginBlocks(window: TimeInterval) async throws -> [(key: String, until: Date)] {
        struct Row: Codable { var key: String; var since_ms: Int64 }
        let start = Int64((Date().timeIntervalSince1970 - window) * 1000)
        return try await db.select().columns("key", "since_ms").from("login_failures")
            .where("since_ms", .greaterThanOrEqual, start)
            .where(SQLColumn("failures"), .greaterThanOrEqual, SQLColumn("max_failures"))
            .all(decoding: Row.self)
            .map { ($0.key, Date(timeIntervalSince1970: Double($0.since_ms) / 1000 + window)) }
    }

    // MARK: named locks

    /// Runs `body` while holding the lock `name`, on every instance of a cluster (PostgreSQL: an advisory
    /// lock on a session of its own, taken after the in-process lock so that one waiter per process holds a
    /// connection; SQLite: one process owns the file, so the in-process lock is the whole lock). Waits at most
    /// `wait`, then fails with `.unavailable`.
    public func withLock<R: Sendable>(_ name: String, wait: Duration = .seconds(15),
                                      _ body: @escaping @Sendable () async throws -> R) async throws -> R {
        let deadline = ContinuousClock.now + wait
        return try await localLocks.holding(name, until: deadline) {
            self.engine == .postgres ? try await self.withAdvisoryLock(name, deadline: deadline, body) : try await body()
        }
    }

    private let localLocks = NamedLocks()

    private func withAdvisoryLock<R: Sendable>(_ name: String, deadline: ContinuousClock.Instant,
                                              _ body: @escaping @Sendable () async throws -> R) async throws -> R {
        try await db.withSession { s in
            var pause = Duration.milliseconds(5)
            while true {
                let got = try await s.raw("SELECT pg_try_advisory_lock(hashtextextended(\(bind: name), 0)) AS ok")
                    .first(decodingColumn: "ok", as: Bool.self) ?? false
                if got { break }
                if ContinuousClock.now >= deadline { throw FSError.unavailable("\(name) is held elsewhere for too long; try again") }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(100))
            }
            let r: R
            do { r = try await body() } catch {
                try? await Task { try await s.raw("SELECT pg_advisory_unlock(hashtextextended(\(bind: name), 0))").run() }.value
                throw error
            }
            // The body's work is done and stands: an unlock that fails means the session broke, and PostgreSQL
            // freed the lock with it.
            try? await Task { try await s.raw("SELECT pg_advisory_unlock(hashtextextended(\(bind: name), 0))").run() }.value
            return r
        }
    }

    /// Whether instances share this store (and with it locks, slots and state); false for SQLite.
    public var isShared: Bool { engine == .postgres }

    /// Reserves the next slot of a pace of one call per `interval` under `key`, shared by every instance;
    /// returns how long to wait for it. One statement, so reservations made at once all get their own slot.
    /// On PostgreSQL the times are the database's (`statement_timestamp()`), so instances whose clocks differ
    /// still share one pace.
    public func reserveSlot(_ key: String, interval: Duration) async throws -> Duration {
        let step = max(1, interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
        struct Row: Decodable { var next_ms: Int64; var now_ms: Int64 }
        let row: Row?
        if engine == .postgres {
            row = try await db.raw("""
                INSERT INTO rate_slots (key, next_ms) VALUES (\(bind: key), \(Self.dbNowMs) + \(bind: step))
                ON CONFLICT (key) DO UPDATE SET next_ms = GREATEST(rate_slots.next_ms, \(Self.dbNowMs)) + \(bind: step)
                RETURNING next_ms, \(Self.dbNowMs) AS now_ms
                """).first(decoding: Row.self)
        } else {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            row = try await db.raw("""
                INSERT INTO rate_slots (key, next_ms) VALUES (\(bind: key), \(bind: now + step))
                ON CONFLICT (key) DO UPDATE SET next_ms = MAX(rate_slots.next_ms, \(bind: now)) + \(bind: step)
                RETURNING next_ms, \(bind: now) AS now_ms
                """).first(decoding: Row.self)
        }
        guard let row else { return .zero }
        return .milliseconds(max(0, row.next_ms - step - row.now_ms))
    }

    /// The database's time of the statement in milliseconds (PostgreSQL).
    static let dbNowMs = SQLRaw("(extract(epoch from statement_timestamp()) * 1000)::bigint")

    /// "now" in milliseconds for times several instances compare: the database's on PostgreSQL, this
    /// process's on SQLite (one process).
    var sharedNow: any SQLExpression {
        engine == .postgres ? Self.dbNowMs : SQLBind(Int64(Date().timeIntervalSince1970 * 1000))
    }

    // MARK: WebDAV locks

    public func davLocks() async throws -> [DAVLockRecord] {
        try await db.select().column("*").from("dav_locks").where(SQLColumn("expires_ms"), .greaterThan, sharedNow)
            .all(decoding: DAVLockRecord.self)
    }

    /// PostgreSQL: the check and the insert in one transaction holding a transaction-level advisory lock on one
    /// session (a session lost half-way takes the lock and the insert with it: never two exclusive locks);
    /// after the in-process lock, so one waiter per process holds a connection. SQLite: one process, the
    /// in-process lock is the whole lock.
    public func createDAVLock(_ lock: DAVLockRecord, unless conflicts: @escaping @Sendable ([DAVLockRecord]) -> Bool) async throws -> Bool {
        try await localLocks.holding("dav_locks", until: .now + .seconds(15)) {
            guard self.engine == .postgres else {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                try await self.db.delete(from: "dav_locks").where("expires_ms", .lessThanOrEqual, now).run()
                if conflicts(try await self.davLocks()) { return false }
                try await self.db.insert(into: "dav_locks").model(lock).run()
                return true
            }
            return try await self.inTransaction { s in
                try await s.raw("SELECT pg_advisory_xact_lock(hashtextextended('dav_locks', 0))").run()
                try await s.delete(from: "dav_locks").where(SQLColumn("expires_ms"), .lessThanOrEqual, Self.dbNowMs).run()
                let live = try await s.select().column("*").from("dav_locks").all(decoding: DAVLockRecord.self)
                if conflicts(live) { return false }
                // The expiry in the database's time.
                try await s.raw("""
                    INSERT INTO dav_locks (token, path, infinite, exclusive, owner, timeout, expires_ms)
                    VALUES (\(bind: lock.token), \(bind: lock.path), \(bind: lock.infinite), \(bind: lock.exclusive),
                            \(bind: lock.owner), \(bind: lock.timeout), \(Self.dbNowMs) + \(bind: Int64(lock.timeout) * 1000))
                    """).run()
                return true
            }
        }
    }



    public func refreshDAVLock(token: String, timeout: Int, expiresMs: Int64) async throws -> DAVLockRecord? {
        // PostgreSQL: the new expiry in the database's time (`expiresMs` is this process's).
        let expires: any SQLExpression = engine == .postgres
            ? SQLBinaryExpression(Self.dbNowMs, .add, SQLBind(Int64(timeout) * 1000)) : SQLBind(expiresMs)
        try await db.update("dav_locks").set("timeout", to: timeout).set(SQLColumn("expires_ms"), to: expires)
            .where("token", .equal, token).where(SQLColumn("expires_ms"), .greaterThan, sharedNow).run()
        return try await db.select().column("*").from("dav_locks").where("token", .equal, token)
            .where(SQLColumn("expires_ms"), .greaterThan, sharedNow).first(decoding: DAVLockRecord.self)
    }

    @discardableResult
    public func deleteDAVLock(token: String) async throws -> Bool {
        let gone = try await db.select().column("token").from("dav_locks").where("token", .equal, token).first() != nil
        try await db.delete(from: "dav_locks").where("token", .equal, token).run()
        return gone
    }

    public func deleteDAVLocks(below path: String) async throws {
        try await deletePathRows(table: "dav_locks", path)
    }

    // MARK: driver state

    public func driverState(_ key: String) async throws -> String? {
        try await db.select().column("value").from("driver_state").where("key", .equal, key)
            .first(decodingColumn: "value", as: String.self)
    }

    public func setDriverState(_ key: String, _ value: String?) async throws {
        guard let value else {
            try await db.delete(from: "driver_state").where("key", .equal, key).run()
            return
        }
        struct Row: Codable { var key: String; var value: String }
        let row = Row(key: key, value: value)
        try await db.insert(into: "driver_state").model(row)
            .onConflict(with: ["key"]) { try $0.set(excludedContentOf: row) }.run()
    }

    // MARK: WebDAV dead properties

    public func deadProperties(_ path: String) async throws -> [DeadProperty] {
        struct Row: Codable { var ns: String; var name: String; var value: String }
        return try await db.select().columns("ns", "name", "value").from("dav_props").where("path", .equal, path)
            .orderBy("ns").orderBy("name").all(decoding: Row.self).map { DeadProperty(ns: $0.ns, name: $0.name, value: $0.value) }
    }

    public func deadProperties(below dir: String) async throws -> [String: [DeadProperty]] {
        struct Row: Codable { var path: String; var ns: String; var name: String; var value: String }
        let rows = try await db.select().columns("path", "ns", "name", "value").from("dav_props")
            .where("path", .like, likePrefix(dir)).orderBy("ns").orderBy("name")
            .all(decoding: Row.self).filter { $0.path != dir && Self.isWithin($0.path, dir) }
        var out: [String: [DeadProperty]] = [:]
        for r in rows { out[r.path, default: []].append(DeadProperty(ns: r.ns, name: r.name, value: r.value)) }
        return out
    }

    public func setDeadProperties(_ path: String, set: [DeadProperty], remove: [(ns: String, name: String)]) async throws {
        struct Row: Codable { var path: String; var ns: String; var name: String; var value: String }
        for r in remove {
            try await db.delete(from: "dav_props").where("path", .equal, path).where("ns", .equal, r.ns).where("name", .equal, r.name).run()
        }
        for p in set {
            let row = Row(path: path, ns: p.ns, name: p.name, value: p.value)
            try await db.insert(into: "dav_props").model(row)
                .onConflict(with: ["path", "ns", "name"]) { try $0.set(excludedContentOf: row) }.run()
        }
    }

    public func copyDeadProperties(from: String, to: String) async throws {
        try await copyPathRows(DeadRow.self, table: "dav_props", conflict: ["path", "ns", "name"], from: from, to: to) { row, path in
            row.path = path
        }
    }

    public func deleteDeadProperties(_ path: String) async throws {
        try await deletePathRows(table: "dav_props", path)
    }

    struct DeadRow: Codable, Sendable { var path: String; var ns: String; var name: String; var value: String }

    // MARK: kept modification times

    struct KeptRow: Codable, Sendable {
        var path: String
        var parent: String
        var modified_ms: Int64
        var size: Int64
        var md5: String
        var sha1: String
        var kept: KeptTime {
            KeptTime(modified: Date(timeIntervalSince1970: Double(modified_ms) / 1000), size: size, md5: md5, sha1: sha1)
        }
    }

    public func keptTimes(in folder: String) async throws -> [String: KeptTime] {
        let rows = try await db.select().columns("*").from("kept_times").where("parent", .equal, folder).all(decoding: KeptRow.self)
        return Dictionary(rows.map { (VirtualPath.base($0.path), $0.kept) }, uniquingKeysWith: { a, _ in a })
    }

    public func keptTime(_ path: String) async throws -> KeptTime? {
        try await db.select().columns("*").from("kept_times").where("path", .equal, path).first(decoding: KeptRow.self)?.kept
    }

    public func setKeptTime(_ path: String, _ time: KeptTime?) async throws {
        guard let time else {
            try await db.delete(from: "kept_times").where("path", .equal, path).run()
            return
        }
        let row = KeptRow(path: path, parent: VirtualPath.parent(path),
                          modified_ms: Int64((ModifiedTime.clamped(time.modified).timeIntervalSince1970 * 1000).rounded()),
                          size: time.size, md5: time.md5, sha1: time.sha1)
        try await db.insert(into: "kept_times").model(row).onConflict(with: ["path"]) { try $0.set(excludedContentOf: row) }.run()
    }

    public func copyKeptTimes(from: String, to: String) async throws {
        try await copyPathRows(KeptRow.self, table: "kept_times", conflict: ["path"], from: from, to: to) { row, path in
            row.path = path
            row.parent = VirtualPath.parent(path)
        }
    }

    public func deleteKeptTimes(_ path: String) async throws {
        try await deletePathRows(table: "kept_times", path)
    }

    // MARK: rows kept by path (dead properties, kept times)

    /// Copies the rows of `table` at `from` and below to the same places below `to` (replacing what was there).
    func copyPathRows<Row: Codable & Sendable>(_ type: Row.Type, table: String, conflict: [String], from: String, to: String,
                                               move: (inout Row, String) -> Void) async throws {
        let rows = try await db.select().columns("*").from(table)
            .where { $0.where("path", .equal, from).orWhere("path", .like, likePrefix(from)) }
            .all().compactMap { raw -> Row? in
                guard let p = try? raw.decode(column: "path", as: String.self), Self.isWithin(p, from), var row = try? raw.decode(model: Row.self) else { return nil }
                move(&row, to + p.dropFirst(from.count))
                return row
            }
        try await deletePathRows(table: table, to)
        for row in rows {
            try await db.insert(into: table).model(row).onConflict(with: conflict) { try $0.set(excludedContentOf: row) }.run()
        }
    }

    /// Deletes the rows of `table` at `path` and below.
    func deletePathRows(table: String, _ path: String) async throws {
        let paths = try await db.select().distinct().column("path").from(table)
            .where { $0.where("path", .equal, path).orWhere("path", .like, likePrefix(path)) }
            .all(decodingColumn: "path", as: String.self).filter { Self.isWithin($0, path) }
        for p in paths { try await db.delete(from: table).where("path", .equal, p).run() }
    }

    /// `path/%` for LIKE. `_` and `%` in `path` are wildcards there, so callers filter with `isWithin`.
    func likePrefix(_ path: String) -> String {
        let prefix = (path == "/" ? "" : path) + "/%"
        // PostgreSQL's LIKE takes a backslash as its escape character (SQLite's has none): doubled there, so
        // that a folder whose name holds one still finds its rows.
        return engine == .postgres ? prefix.replacingOccurrences(of: "\\", with: "\\\\") : prefix
    }

    static func isWithin(_ path: String, _ root: String) -> Bool { VirtualPath.isWithin(path, root) }
}

// MARK: copying a whole store (`panlist db copy`)

extension SQLStore {
    /// The tables `copy(to:)` moves, in an order that respects references.
    public static let copiedTables = ["settings", "users", "storages", "folder_rules", "driver_state", "revoked_tokens",
                                      "dav_props", "kept_times", "tasks", "task_items"]
    // (login_failures is not copied: short-lived counts; nor upload_sessions: their spool stays behind.)

    /// Whether the store's tables exist (a database nobody migrated yet has none).
    public func hasTables() async throws -> Bool {
        switch engine {
        case .postgres:
            return try await db.raw("SELECT to_regclass('settings') IS NOT NULL AS ok").first(decodingColumn: "ok", as: Bool.self) ?? false
        case .sqlite:
            return try await db.raw("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'settings'").first(decodingColumn: "n", as: Int.self) ?? 0 > 0
        }
    }

    /// Rows per table of this store.
    public func rowCounts() async throws -> [(table: String, rows: Int)] {
        var out: [(String, Int)] = []
        for t in Self.copiedTables {
            let n = try await db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from(t)
                .first(decodingColumn: "n", as: Int.self) ?? 0
            out.append((t, n))
        }
        return out
    }

    /// Copies every row of this store into `dest`, a migrated and empty store (all or nothing: one transaction
    /// on PostgreSQL). Returns the rows per table. `dryRun` reads and counts only. Ids are kept, so links
    /// between rows stay; PostgreSQL's id sequences are moved past the copied ids.
    public func copy(to dest: SQLStore, dryRun: Bool) async throws -> [(table: String, rows: Int)] {
        let filled = try await dest.hasTables() ? dest.rowCounts().filter { $0.rows > 0 } : []
        if !filled.isEmpty {
            throw FSError.conflict("the destination database is not empty (\(filled.map { "\($0.table): \($0.rows) rows" }.joined(separator: ", "))); copy into a new, empty database")
        }
        struct StateRow: Codable, Sendable { var key: String; var value: String }
        struct RevokedRow: Codable, Sendable { var hash: String; var expires_ms: Int64 }
        let source = db
        func rows<R: Codable & Sendable>(_ table: String, _ type: R.Type) async throws -> [R] {
            try await source.select().column("*").from(table).all(decoding: R.self)
        }
        let settings = try await rows("settings", SettingItem.self)
        let users = try await rows("users", UserRow.self)
        let storages = try await rows("storages", StorageRow.self)
        let rules = try await rows("folder_rules", RuleRow.self)
        let state = try await rows("driver_state", StateRow.self)
        let revoked = try await rows("revoked_tokens", RevokedRow.self)
        let props = try await rows("dav_props", DeadRow.self)
        let kept = try await rows("kept_times", KeptRow.self)
        let tasks = try await rows("tasks", TaskRecord.self)
        let items = try await rows("task_items", TaskItem.self)
        let counts = [("settings", settings.count), ("users", users.count), ("storages", storages.count),
                      ("folder_rules", rules.count), ("driver_state", state.count), ("revoked_tokens", revoked.count),
                      ("dav_props", props.count), ("kept_times", kept.count), ("tasks", tasks.count), ("task_items", items.count)]
        if dryRun { return counts }
        let engine = dest.engine
        try await dest.inTransaction { s in
            func insert<R: Codable & Sendable>(_ table: String, _ all: [R]) async throws {
                var i = 0
                while i < all.count {
                    let chunk = Array(all[i..<min(i + 200, all.count)])
                    try await s.insert(into: table).models(chunk).run()
                    i += chunk.count
                }
            }
            try await insert("settings", settings)
            try await insert("users", users)
            try await insert("storages", storages)
            try await insert("folder_rules", rules)
            try await insert("driver_state", state)
            try await insert("revoked_tokens", revoked)
            try await insert("dav_props", props)
            try await insert("kept_times", kept)
            try await insert("tasks", tasks)
            try await insert("task_items", items)
            if engine == .postgres {
                for t in ["users", "storages", "folder_rules"] {
                    try await s.raw("SELECT setval(pg_get_serial_sequence(\(literal: t), 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM \(ident: t)), false)").run()
                }
            }
        }
        return counts
    }
}
