import Foundation
import PanListCore
import SQLKit

// MARK: share links (see ShareStore)

extension SQLStore {
    static let shareMigration: @Sendable (any SQLDatabase) async throws -> Void = { db in
        try await db.create(table: "shares").ifNotExists()
            .column("id", type: .text, .primaryKey(autoIncrement: false))
            .column("creator_id", type: .bigint, .notNull)
            .column("files", type: .text, .notNull)
            .column("password_hash", type: .text, .notNull, .default(""))
            .column("password_salt", type: .text, .notNull, .default(""))
            .column("expires_ms", type: .bigint, .notNull, .default(0))
            .column("max_accessed", type: .bigint, .notNull, .default(0))
            .column("accessed", type: .bigint, .notNull, .default(0))
            .column("allow_preview", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(true))
            .column("allow_download", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(true))
            .column("disabled", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
            .column("readme", type: .text, .notNull, .default(""))
            .column("header", type: .text, .notNull, .default(""))
            .column("remark", type: .text, .notNull, .default(""))
            .column("guard_proofs", type: .text, .notNull, .default("{}"))
            .column("single_folder", type: .custom(SQLRaw("BOOLEAN")), .notNull, .default(false))
            .column("nonce", type: .text, .notNull, .default(""))
            .column("version", type: .bigint, .notNull, .default(1))
            .column("created_ms", type: .bigint, .notNull)
            .column("updated_ms", type: .bigint, .notNull)
            .run()
        try await db.raw("CREATE INDEX IF NOT EXISTS shares_creator ON shares (creator_id, created_ms)").run()
    }

    public func createShare(_ share: Share) async throws {
        try await unique("the share id \(share.id) is taken") {
            try await db.insert(into: "shares").model(share).run()
        }
    }

    public func share(id: String) async throws -> Share? {
        try await db.select().column("*").from("shares").where("id", .equal, id).first(decoding: Share.self)
    }

    public func shares(creator: Int?) async throws -> [Share] {
        var q = db.select().column("*").from("shares")
        if let creator { q = q.where("creator_id", .equal, creator) }
        return try await q.orderBy("created_ms", .descending).orderBy("id").all(decoding: Share.self)
    }

    public func updateShare(_ share: Share, resetAccessed: Bool) async throws -> Bool {
        var q = db.update("shares")
            .set("files", to: share.files).set("password_hash", to: share.password_hash).set("password_salt", to: share.password_salt)
            .set("expires_ms", to: share.expires_ms).set("max_accessed", to: share.max_accessed)
            .set("allow_preview", to: share.allow_preview).set("allow_download", to: share.allow_download)
            .set("disabled", to: share.disabled).set("readme", to: share.readme).set("header", to: share.header)
            .set("remark", to: share.remark).set("guard_proofs", to: share.guard_proofs).set("updated_ms", to: share.updated_ms)
            .set("single_folder", to: share.single_folder).set("nonce", to: share.nonce)
            .set(SQLColumn("version"), to: SQLBinaryExpression(SQLColumn("version"), .add, SQLLiteral.numeric("1")))
        if resetAccessed { q = q.set("accessed", to: Int64(0)) }
        // The same share as read: its version, and not another made since under the same id.
        let rows = try await q.where("id", .equal, share.id).where("version", .equal, share.version)
            .where("creator_id", .equal, share.creator_id).where("created_ms", .equal, share.created_ms)
            .returning("id").all(decodingColumn: "id", as: String.self)
        return !rows.isEmpty
    }

    @discardableResult
    public func deleteShare(id: String) async throws -> Bool {
        let rows = try await db.delete(from: "shares").where("id", .equal, id).returning("id").all(decodingColumn: "id", as: String.self)
        return !rows.isEmpty
    }

    public func countShareOpen(id: String) async throws -> Int64? {
        // One statement: the check and the count cannot be split by another open, on any instance.
        try await db.update("shares").set(SQLColumn("accessed"), to: SQLBinaryExpression(SQLColumn("accessed"), .add, SQLLiteral.numeric("1")))
            .where("id", .equal, id).where("disabled", .equal, false)
            .where { $0.where("max_accessed", .equal, Int64(0)).orWhere(SQLColumn("accessed"), .lessThan, SQLColumn("max_accessed")) }
            .where { $0.where("expires_ms", .equal, Int64(0)).orWhere(SQLColumn("expires_ms"), .greaterThan, sharedNow) }
            .returning("accessed")
            .first(decodingColumn: "accessed", as: Int64.self)
    }
}
