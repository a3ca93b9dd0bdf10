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

    public func extendUploadSession(id: String, writer: String, forMs: Int64) async throws -> Bool {
        let until: any SQLExpression = SQLBinaryExpression(sharedNow, .add, SQLBind(forMs))
        let rows = try await db.update("upload_sessions").set(SQLColumn("writer_until_ms"), to: until)
            .where("id", .equal, id).where("writer", .equal, writer)
            .returning("id").all(decodingColumn: "id", as: String.self)
        return !rows.isEmpty
    }

    public func releaseUploadHolds(writerPrefix: String, except: String) async throws -> Int {
        // LIKE prefixes, with \, % and _ escaped.
        func like(_ p: String) -> String { p.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%" }
        let sessions = try await db.raw("""
            UPDATE upload_sessions SET writer = '', writer_until_ms = 0
            WHERE writer LIKE \(bind: like(writerPrefix)) ESCAPE '\\' AND writer NOT LIKE \(bind: like(except)) ESCAPE '\\'
            RETURNING id
            """).all(decodingColumn: "id", as: String.self)
        let chunks = try await db.raw("""
            DELETE FROM upload_chunks
            WHERE done = 0 AND writer LIKE \(bind: like(writerPrefix)) ESCAPE '\\' AND writer NOT LIKE \(bind: like(except)) ESCAPE '\\'
            RETURNING session_id
            """).all(decodingColumn: "session_id", as: String.self)
        return sessions.count + chunks.count
    }

    public func setUploadSessionUpstream(id: String, writer: String, upstream: String) async throws -> Bool {
        let rows = try await db.update("upload_sessions").set("upstream", to: upstream)
            .where("id", .equal, id).where("writer", .equal, writer)
            .returning("id").all(decodingColumn: "id", as: String.self)
        return !rows.isEmpty
    }

    public func touchUploadSession(id: String, expiresMs: Int64) async throws {
        try await db.update("upload_sessions").set("expires_ms", to: expiresMs)
            .where("id", .equal, id).where("state", .equal, UploadSession.State.open.rawValue).run()
    }

    public func findUploadSession(creator: Int, proto: String, dir: String, name: String, size: Int64) async throws -> UploadSession? {
        try await db.select().column("*").from("upload_sessions")
            .where("creator_id", .equal, creator).where("proto", .equal, proto)
            .where("dir", .equal, dir).where("name", .equal, name).where("size", .equal, size)
            .where("state", .equal, UploadSession.State.open.rawValue)
            .where(SQLColumn("expires_ms"), .greaterThan, sharedNow)
            .orderBy("created_ms", .descending).limit(1)
            .first(decoding: UploadSession.self)
    }

    public func claimUploadChunk(id: String, index: Int, writer: String, forMs: Int64) async throws -> ChunkClaim {
        // One statement: a new row is this writer's (only while the session is open: no rows outlive an abort);
        // an existing one is taken over only when it is not stored and its claim ran out. No row back: stored,
        // held by another request, or the session ended.
        let claimed = try await db.raw("""
            INSERT INTO upload_chunks (session_id, idx, writer, until_ms, done)
            SELECT \(bind: id), \(bind: Int64(index)), \(bind: writer), \(sharedNow) + \(bind: forMs), 0
            WHERE EXISTS (SELECT 1 FROM upload_sessions WHERE id = \(bind: id) AND state = \(bind: UploadSession.State.open.rawValue))
            ON CONFLICT (session_id, idx) DO UPDATE SET writer = excluded.writer, until_ms = excluded.until_ms
            WHERE upload_chunks.done = 0 AND upload_chunks.until_ms < \(sharedNow)
            RETURNING writer
            """).all(decodingColumn: "writer", as: String.self)
        if claimed.first == writer { return .claimed }
        let done = try await db.select().column("done").from("upload_chunks")
            .where("session_id", .equal, id).where("idx", .equal, Int64(index))
            .first(decodingColumn: "done", as: Int64.self)
        return done == 1 ? .done : .busy
    }

    @discardableResult
    public func endUploadChunk(id: String, index: Int, writer: String, done: Bool) async throws -> Bool {
        let rows: [Int64]
        if done {
            rows = try await db.update("upload_chunks").set("done", to: Int64(1)).set("writer", to: "").set("until_ms", to: Int64(0))
                .where("session_id", .equal, id).where("idx", .equal, Int64(index)).where("writer", .equal, writer)
                .returning("idx").all(decodingColumn: "idx", as: Int64.self)
        } else {
            rows = try await db.delete(from: "upload_chunks")
                .where("session_id", .equal, id).where("idx", .equal, Int64(index)).where("writer", .equal, writer)
                .where("done", .equal, Int64(0))
                .returning("idx").all(decodingColumn: "idx", as: Int64.self)
        }
        return !rows.isEmpty
    }

    public func extendUploadChunk(id: String, index: Int, writer: String, forMs: Int64) async throws -> Bool {
        let until: any SQLExpression = SQLBinaryExpression(sharedNow, .add, SQLBind(forMs))
        let rows = try await db.update("upload_chunks").set(SQLColumn("until_ms"), to: until)
            .where("session_id", .equal, id).where("idx", .equal, Int64(index)).where("writer", .equal, writer)
            .returning("idx").all(decodingColumn: "idx", as: Int64.self)
        return !rows.isEmpty
    }

    public func uploadChunks(id: String) async throws -> [Int] {
        try await db.select().column("idx").from("upload_chunks")
            .where("session_id", .equal, id).where("done", .equal, Int64(1)).orderBy("idx")
            .all(decodingColumn: "idx", as: Int.self)
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
        try await db.delete(from: "upload_chunks").where("session_id", .equal, id).run()
        try await db.delete(from: "upload_sessions").where("id", .equal, id).run()
    }

    public func expiredUploadSessions(instances: [String], limit: Int) async throws -> [UploadSession] {
        try await db.select().column("*").from("upload_sessions")
            .where(SQLColumn("expires_ms"), .lessThanOrEqual, sharedNow)
            .where("instance", .in, instances)
            .where { $0.where("writer", .equal, "").orWhere(SQLColumn("writer_until_ms"), .lessThan, sharedNow) }
            .orderBy("expires_ms").limit(limit)
            .all(decoding: UploadSession.self)
    }
}
