import Foundation
import PanListCore
import SQLKit

// MARK: the search index (see SearchIndexStore)
//
// One row per indexed name in `search_entries` (virtual paths: `parent` and `name`, the name's search `key`).
// Names are found through their grams (every character and every pair of neighbouring characters, see
// `SearchText`), then the key is compared:
// - SQLite: an FTS5 table `search_grams` (contentless, rowid = the entry's id) holding each name's gram tokens;
// - PostgreSQL: a GIN index on the stored column `grams` = `panlist_grams(key)`, an int4[] of the grams' hashes
//   computed by the database (stored, so that a scan in id order does not compute it again for every row).
// Both find one- and two-character words (CJK) through the index, which a trigram index cannot.
// `parent` compares bytewise (SQLite's default; `COLLATE "C"` in PostgreSQL), so "below P" is the range
// `[P/, P0)` and uses the (parent, name) index.

extension SQLStore {
    static let searchMigration: @Sendable (any SQLDatabase) async throws -> Void = { db in
        if db.dialect.name == "postgresql" {
            try await db.raw("""
                CREATE TABLE IF NOT EXISTS search_entries (id BIGSERIAL PRIMARY KEY, parent TEXT COLLATE "C" NOT NULL,
                  name TEXT COLLATE "C" NOT NULL, key TEXT NOT NULL, is_dir BOOLEAN NOT NULL, size BIGINT NOT NULL,
                  modified_ms BIGINT NOT NULL, storage_id BIGINT NOT NULL)
                """).run()
            // Every distinct character and pair of a key, hashed; and the grams a word needs (its character, or its pairs).
            try await db.raw("""
                CREATE OR REPLACE FUNCTION panlist_grams(t text) RETURNS int4[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
                  SELECT ARRAY(SELECT DISTINCT hashtext(substr(t, i, n)) FROM generate_series(1, length(t)) AS i,
                    (VALUES (1), (2)) AS v(n) WHERE i + n - 1 <= length(t)) $$
                """).run()
            try await db.raw("""
                CREATE OR REPLACE FUNCTION panlist_word_grams(t text) RETURNS int4[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
                  SELECT CASE WHEN length(t) <= 1 THEN ARRAY[hashtext(t)]
                    ELSE ARRAY(SELECT DISTINCT hashtext(substr(t, i, 2)) FROM generate_series(1, length(t) - 1) AS i) END $$
                """).run()
            try await db.raw("CREATE INDEX IF NOT EXISTS search_entries_grams ON search_entries USING gin (panlist_grams(key))").run()
        } else {
            try await db.raw("""
                CREATE TABLE IF NOT EXISTS search_entries (id INTEGER PRIMARY KEY, parent TEXT NOT NULL, name TEXT NOT NULL,
                  key TEXT NOT NULL, is_dir BOOLEAN NOT NULL, size BIGINT NOT NULL, modified_ms BIGINT NOT NULL,
                  storage_id BIGINT NOT NULL)
                """).run()
            try await db.raw("""
                CREATE VIRTUAL TABLE IF NOT EXISTS search_grams USING fts5(grams, content='', contentless_delete=1,
                  detail=none, tokenize='ascii')
                """).run()
        }
        try await db.raw("CREATE UNIQUE INDEX IF NOT EXISTS search_entries_path ON search_entries (parent, name)").run()
        try await db.raw("CREATE INDEX IF NOT EXISTS search_entries_storage ON search_entries (storage_id)").run()
        // Per storage: leave it out of the index.
        try await db.raw("ALTER TABLE storages ADD COLUMN disable_index BOOLEAN NOT NULL DEFAULT false").run()
    }

    /// PostgreSQL: the grams stored in a generated column, indexed instead of the expression (a page in id order
    /// computed `panlist_grams` for every row it looked at: 10-18 ms a page at a million entries). The GIN index
    /// keeps a small pending list (256 kB, not 4 MB): every search reads all of it, unsorted, and after a bulk
    /// load it stays full until a vacuum (a capped count took 27 ms at a million entries, 21 of them there).
    static let searchGramsMigration: @Sendable (any SQLDatabase) async throws -> Void = { db in
        guard db.dialect.name == "postgresql" else { return }
        try await db.raw("ALTER TABLE search_entries ADD COLUMN IF NOT EXISTS grams int4[] GENERATED ALWAYS AS (panlist_grams(key)) STORED").run()
        try await db.raw("DROP INDEX IF EXISTS search_entries_grams").run()
        try await db.raw("CREATE INDEX IF NOT EXISTS search_entries_grams_stored ON search_entries USING gin (grams) WITH (gin_pending_list_limit = 256)").run()
    }

    private var usesFTS: Bool { engine == .sqlite }

    private struct EntryRow: Codable, Sendable {
        var id: Int64
        var parent: String
        var name: String
        var is_dir: Bool
        var size: Int64
        var modified_ms: Int64
        var storage_id: Int
        var entry: IndexEntry {
            IndexEntry(parent: parent, name: name, isDir: is_dir, size: size,
                       modified: Date(timeIntervalSince1970: Double(modified_ms) / 1000), storageID: storage_id)
        }
    }

    private static func ms(_ d: Date) -> Int64 { Int64((ModifiedTime.clamped(d).timeIntervalSince1970 * 1000).rounded()) }

    /// The bounds of the rows below `path`: `parent` equal to it, or in `[lo, hi)`.
    private static func below(_ path: String) -> (lo: String, hi: String) {
        let lo = path == "/" ? "/" : path + "/"
        return (lo, String(lo.dropLast()) + "0")
    }

    /// `parent = P OR parent in [P/, P0)`: the rows inside the folder `path`, at any depth.
    private static func inside(_ path: String, column: String = "parent") -> SQLQueryString {
        let (lo, hi) = below(path)
        return "(\(unsafeRaw: column) = \(bind: path) OR (\(unsafeRaw: column) >= \(bind: lo) AND \(unsafeRaw: column) < \(bind: hi)))"
    }

    /// Inserts entries (in batches), with their FTS rows on SQLite.
    private func insertEntries(_ entries: [IndexEntry], on s: any SQLDatabase) async throws {
        for start in stride(from: 0, to: entries.count, by: 400) {
            let batch = entries[start..<min(entries.count, start + 400)]
            var q = s.insert(into: "search_entries").columns("parent", "name", "key", "is_dir", "size", "modified_ms", "storage_id")
            for e in batch {
                q = q.values(SQLBind(e.parent), SQLBind(e.name), SQLBind(SearchText.key(e.name)), SQLBind(e.isDir), SQLBind(e.size),
                             SQLBind(Self.ms(e.modified)), SQLBind(e.storageID))
            }
            guard usesFTS else { try await q.run(); continue }
            struct Made: Decodable { var id: Int64; var name: String }
            let made = try await q.returning("id", "name").all(decoding: Made.self)
            let keys = Dictionary(batch.map { ($0.name, SearchText.key($0.name)) }, uniquingKeysWith: { a, _ in a })
            var fts = s.insert(into: "search_grams").columns("rowid", "grams")
            for m in made { fts = fts.values(SQLBind(m.id), SQLBind(SearchText.tokens(ofKey: keys[m.name] ?? SearchText.key(m.name)))) }
            if !made.isEmpty { try await fts.run() }
        }
    }

    /// Deletes the rows that `condition` selects (and their FTS rows).
    private func deleteEntries(where condition: SQLQueryString, on s: any SQLDatabase) async throws {
        if usesFTS {
            try await s.raw("DELETE FROM search_grams WHERE rowid IN (SELECT id FROM search_entries WHERE \(condition))").run()
        }
        try await s.raw("DELETE FROM search_entries WHERE \(condition)").run()
    }

    /// ` AND storage_id = source` (nothing for nil).
    private static func of(_ source: Int?) -> SQLQueryString {
        guard let source else { return "" }
        return " AND storage_id = \(bind: source)"
    }

    private static func at(_ path: String) -> SQLQueryString {
        "(parent = \(bind: VirtualPath.parent(path)) AND name = \(bind: VirtualPath.base(path)))"
    }

    public func indexReplaceFolder(_ folder: String, entries: [IndexEntry]) async throws {
        try await inTransaction { s in
            let existing = try await s.select().columns("id", "parent", "name", "is_dir", "size", "modified_ms", "storage_id")
                .from("search_entries").where("parent", .equal, folder).all(decoding: EntryRow.self)
            var byName = Dictionary(existing.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            var added: [IndexEntry] = []
            for e in entries {
                guard let old = byName.removeValue(forKey: e.name) else { added.append(e); continue }
                if old.is_dir == e.isDir, old.size == e.size, old.modified_ms == Self.ms(e.modified), old.storage_id == e.storageID { continue }
                if old.is_dir && !e.isDir { try await self.deleteEntries(where: Self.inside(e.path), on: s) }
                try await s.update("search_entries").set("is_dir", to: e.isDir).set("size", to: e.size)
                    .set("modified_ms", to: Self.ms(e.modified)).set("storage_id", to: e.storageID)
                    .where("id", .equal, old.id).run()
            }
            for gone in byName.values {
                try await self.deleteEntries(where: "id = \(bind: gone.id)", on: s)
                if gone.is_dir { try await self.deleteEntries(where: Self.inside(VirtualPath.join(folder, gone.name)), on: s) }
            }
            try await self.insertEntries(added, on: s)
        }
    }

    public func indexPut(_ entry: IndexEntry) async throws {
        try await inTransaction { s in
            if let old = try await s.select().columns("id", "parent", "name", "is_dir", "size", "modified_ms", "storage_id")
                .from("search_entries").where(Self.at(entry.path)).first(decoding: EntryRow.self) {
                if old.is_dir && !entry.isDir { try await self.deleteEntries(where: Self.inside(entry.path), on: s) }
                try await s.update("search_entries").set("is_dir", to: entry.isDir).set("size", to: entry.size)
                    .set("modified_ms", to: Self.ms(entry.modified)).set("storage_id", to: entry.storageID)
                    .where("id", .equal, old.id).run()
            } else {
                try await self.insertEntries([entry], on: s)
            }
        }
    }

    public func indexRemove(below path: String) async throws {
        if path == "/" { return try await indexClear(below: "/") }
        try await inTransaction { s in
            try await self.deleteEntries(where: Self.at(path), on: s)
            try await self.deleteEntries(where: Self.inside(path), on: s)
        }
    }

    public func indexMove(from: String, to: String, storageID: Int, source: Int?) async throws {
        guard from != to, from != "/", to != "/" else { return }
        try await inTransaction { s in
            // Whatever the index had at the destination is replaced.
            try await self.deleteEntries(where: Self.at(to), on: s)
            try await self.deleteEntries(where: Self.inside(to), on: s)
            let newName = VirtualPath.base(to)
            if let row = try await s.select().columns("id", "parent", "name", "is_dir", "size", "modified_ms", "storage_id")
                .from("search_entries").where(Self.at(from)).first(decoding: EntryRow.self) {
                try await s.update("search_entries").set("parent", to: VirtualPath.parent(to)).set("name", to: newName)
                    .set("key", to: SearchText.key(newName)).set("storage_id", to: storageID).where("id", .equal, row.id).run()
                if self.usesFTS, row.name != newName {
                    try await s.raw("DELETE FROM search_grams WHERE rowid = \(bind: row.id)").run()
                    try await s.raw("INSERT INTO search_grams (rowid, grams) VALUES (\(bind: row.id), \(bind: SearchText.tokens(ofKey: SearchText.key(newName))))").run()
                }
            }
            // Everything inside: the folder part of `parent` rewritten (names, and so grams, are unchanged).
            try await s.raw("""
                UPDATE search_entries SET parent = \(bind: to) || substr(parent, CAST(\(bind: from.unicodeScalars.count + 1) AS INTEGER)),
                  storage_id = \(bind: storageID)
                WHERE \(Self.inside(from))\(Self.of(source))
                """).run()
        }
    }

    public func indexCopy(from: String, to: String, storageID: Int, source: Int?) async throws {
        guard from != to, from != "/", to != "/" else { return }
        try await inTransaction { s in
            try await self.deleteEntries(where: Self.at(to), on: s)
            try await self.deleteEntries(where: Self.inside(to), on: s)
            let cols = ["id", "parent", "name", "is_dir", "size", "modified_ms", "storage_id"]
            var rows: [IndexEntry] = []
            if var top = try await s.select().columns(cols).from("search_entries").where(Self.at(from))
                .first(decoding: EntryRow.self)?.entry {
                top.parent = VirtualPath.parent(to); top.name = VirtualPath.base(to); top.storageID = storageID
                rows.append(top)
            }
            for r in try await s.select().columns(cols).from("search_entries").where("\(Self.inside(from))\(Self.of(source))" as SQLQueryString).orderBy("id")
                .all(decoding: EntryRow.self) {
                var e = r.entry
                e.parent = to + String(e.parent.unicodeScalars.dropFirst(from.unicodeScalars.count))
                e.storageID = storageID
                rows.append(e)
            }
            try await self.insertEntries(rows, on: s)
        }
    }

    public func indexRemoveStorage(_ id: Int) async throws {
        try await inTransaction { s in try await self.deleteEntries(where: "storage_id = \(bind: id)", on: s) }
    }

    public func indexClear(below path: String) async throws {
        if path != "/" { return try await indexRemove(below: path) }
        try await inTransaction { s in
            if self.usesFTS { try await s.raw("DELETE FROM search_grams").run() }
            try await s.raw("DELETE FROM search_entries").run()
        }
    }

    public func indexCount() async throws -> Int {
        struct N: Decodable { var n: Int }
        return try await db.raw("SELECT COUNT(*) AS n FROM search_entries").first(decoding: N.self)?.n ?? 0
    }

    /// `FROM … WHERE …` of a search (every filter of `query`; not its paging).
    private func searchBody(_ query: SearchQuery) -> SQLQueryString {
        var q: SQLQueryString
        if usesFTS {
            let tokens = query.words.flatMap { SearchText.tokens(ofWord: $0) }
            q = "FROM search_grams JOIN search_entries e ON e.id = search_grams.rowid WHERE search_grams MATCH \(bind: tokens.map { "\"\($0)\"" }.joined(separator: " AND "))"
            for w in query.words where !SearchText.tokensDecide(w) { q += " AND instr(e.key, \(bind: w)) > 0" }
        } else {
            let grams = query.words.map { w -> SQLQueryString in "panlist_word_grams(\(bind: w))" }.joined(separator: " || ")
            q = "FROM search_entries e WHERE e.grams @> (\(grams))"
            for w in query.words { q += " AND strpos(e.key, \(bind: w)) > 0" }
        }
        if query.root != "/" { q += " AND \(Self.inside(query.root, column: "e.parent"))" }
        switch query.scope {
        case .all: break
        case .folders: q += " AND e.is_dir = \(bind: true)"
        case .files: q += " AND e.is_dir = \(bind: false)"
        }
        if let ids = query.storages {
            q += " AND e.storage_id IN (\(([0] + ids).map { "\(bind: $0)" as SQLQueryString }.joined(separator: ", ")))"
        }
        if query.afterID > 0 { q += " AND e.id > \(bind: query.afterID)" }
        return q
    }

    public func indexSearch(_ query: SearchQuery) async throws -> [SearchHit] {
        guard !query.words.isEmpty else { return [] }
        let order: SQLQueryString = usesFTS ? "search_grams.rowid" : "e.id"
        let sql: SQLQueryString = "SELECT e.id, e.parent, e.name, e.is_dir, e.size, e.modified_ms, e.storage_id \(searchBody(query)) ORDER BY \(order) LIMIT \(bind: query.limit) OFFSET \(bind: query.offset)"
        return try await db.raw(sql).all(decoding: EntryRow.self).map { SearchHit(id: $0.id, entry: $0.entry) }
    }

    public func indexSearchCount(_ query: SearchQuery, upTo limit: Int?) async throws -> Int {
        guard !query.words.isEmpty else { return 0 }
        var q = query
        q.afterID = 0
        struct N: Decodable { var n: Int }
        let sql: SQLQueryString = limit.map { "SELECT COUNT(*) AS n FROM (SELECT 1 \(searchBody(q)) LIMIT \(bind: max(0, $0))) AS counted" }
            ?? "SELECT COUNT(*) AS n \(searchBody(q))"
        return try await db.raw(sql).first(decoding: N.self)?.n ?? 0
    }

    /// PostgreSQL only: the GIN index's pending list merged in, and fresh statistics (the planner chooses between
    /// the grams index and the id order by them). SQLite's searches always start from the FTS table.
    public func indexAnalyze() async throws {
        guard !usesFTS else { return }
        try await db.raw("SELECT gin_clean_pending_list('search_entries_grams_stored'::regclass)").run()
        try await db.raw("ANALYZE search_entries").run()
    }
}
