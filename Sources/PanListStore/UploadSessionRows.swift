import Foundation
import PanListCore
import SQLKit

// MARK: upload sessions (see UploadSessionStore)

extension SQLStore {
    public func insertUploadSession(_ s: UploadSession) async throws {
        try await db.insert(into: "upload_sessions").model(s).run()
    }

    public func uploadSession(id: String) async throws -> UploadSession? {
        try await db.select().column("*").from("upload_sessions").where("id", .equal, id).first(decoding: UploadSession.self)
    }

    public func openUploadSessions(creator: Int) async throws -> Int {
        try await db.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("upload_sessions")
            .where("creator_id", .equal, creator).where("state", .equal, UploadSession.State.open.rawValue)
            .where(SQLColumn("expires_ms"), .greaterThan, sharedNow)
            .first(decodingColumn: "n", as: Int.self) ?? 0
    }

    public func takeUploadSession(id: String, at offset: Int64, writer: String, forMs: Int64) async throws -> UploadSession? {
        let until: any SQLExpression = SQLBinaryExpression(sharedNow, .add, SQLBind(forMs))
        return try await db.update("upload_sessions")
            .set("writer", to: writer).set(SQLColumn("writer_until_ms"), to: until)
            .where("id", .equal, id).where("received", .equal, offset)
            .where("state", .equal, UploadSession.State.open.rawValue)
            .where(SQLColumn("expires_ms"), .greaterThan, sharedNow)
            .where { $0.where("writer", .equal, "").orWhere(SQLColumn("writer_until_ms"), .lessThan, sharedNow) }
            .returning(SQLLiteral.all)
            .first(decoding: UploadSession.self)
    }

    public func releaseUploadSession(id: String, writer: String, offset: Int64, expiresMs: Int64) async throws -> Bool {
        let rows = try await db.update("upload_sessions")
            .set("received", to: offset).set("writer", to: "").set("writer_until_ms", to: Int64(0)).set("expires_ms", to: expiresMs)
            .where("id", .equal, id).where("writer", .equal, writer)
            .returning("id")
            .all(decodingColumn: "id", as: String.self)
        return !rows.isEmpty
    }

    public func setUploadSessionSize(id: String, size: Int64) async throws -> Bool {
        let rows = try await db.update("upload_sessions").set("size", to: size)
            .where("id", .equal, id).where("size", .equal, Int64(-1))
            .returning("id").all(decodingColumn: "id", as: String.self)
        return !rows.isEmpty
    }

    public func setUploadSessionState(id: String, state: UploadSession.State) async throws {
        try await db.update("upload_sessions").set("state", to: state.rawValue).where("id", .equal, id).run()
    }

    public func deleteUploadSession(id: String) async throws {
        try await db.delete(from: "upload_sessions").where("id", .equal, id).run()
    }

    public func expiredUploadSessions(limit: Int) async throws -> [UploadSession] {
        try await db.select().column("*").from("upload_sessions")
            .where(SQLColumn("expires_ms"), .lessThanOrEqual, sharedNow)
            .orderBy("expires_ms").limit(limit)
            .all(decoding: UploadSession.self)
    }
}
