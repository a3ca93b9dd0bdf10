import Foundation
import PanListCore
import SQLKit

// MARK: tasks (see TaskStore)

extension SQLStore {
    public func insertTask(_ task: TaskRecord) async throws {
        try await db.insert(into: "tasks").model(task).run()
    }

    public func task(id: String) async throws -> TaskRecord? {
        try await db.select().column("*").from("tasks").where("id", .equal, id).first(decoding: TaskRecord.self)
    }

    public func tasks(kind: String, states: [TaskState], creator: Int?, limit: Int?, offset: Int) async throws -> [TaskRecord] {
        func query(_ column: String) -> SQLSelectBuilder {
            var q = db.select().column(column).from("tasks").where("kind", .equal, kind)
                .where("state", .in, states.map(\.rawValue))
            if let creator { q = q.where("creator_id", .equal, creator) }
            return q.orderBy("created_ms", .descending).orderBy("id")
        }
        guard let limit else { return try await query("*").all(decoding: TaskRecord.self) }
        // A page: the ids first (sorted within the index `tasks_kind_state_id`, not whole rows), then those rows.
        let ids = try await query("id").limit(limit).offset(offset).all(decodingColumn: "id", as: String.self)
        guard !ids.isEmpty else { return [] }
        let rows = try await db.select().column("*").from("tasks").where("id", .in, ids).all(decoding: TaskRecord.self)
        let order = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        return rows.sorted { (order[$0.id] ?? 0) < (order[$1.id] ?? 0) }
    }

    public func taskCounts(creator: Int?) async throws -> [TaskState: Int] {
        struct Row: Decodable { var state: Int; var n: Int }
        var q = db.select().column("state").column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("tasks")
        if let creator { q = q.where("creator_id", .equal, creator) }
        var out: [TaskState: Int] = [:]
        for r in try await q.groupBy("state").all(decoding: Row.self) {
            if let s = TaskState(rawValue: r.state) { out[s] = r.n }
        }
        return out
    }

    public func claimTasks(kind: String, owner: String, leaseSeconds: Int, limit: Int) async throws -> [TaskRecord] {
        guard limit > 0 else { return [] }
        let now = sharedNow
        let lease = Int64(leaseSeconds) * 1000
        // Due: waiting (pending or for a retry) and its time has come, or running/canceling on a lease that ran out.
        func due(_ q: SQLPredicateGroupBuilder) -> SQLPredicateGroupBuilder {
            q.where { w in
                w.where("state", .in, [TaskState.pending.rawValue, TaskState.waitingRetry.rawValue])
                    .where(SQLColumn("next_ms"), .lessThanOrEqual, now)
            }.orWhere { w in
                w.where("state", .in, [TaskState.running.rawValue, TaskState.canceling.rawValue, TaskState.beforeRetry.rawValue])
                    .where(SQLColumn("lease_ms"), .lessThan, now)
            }
        }
        let candidates = try await db.select().column("id").from("tasks").where("kind", .equal, kind)
            .where { p in p.where("pinned", .equal, "").orWhere("pinned", .equal, owner) }
            .where { due($0) }
            .orderBy("created_ms").limit(limit * 2)
            .all(decodingColumn: "id", as: String.self)
        var claimed: [TaskRecord] = []
        for id in candidates where claimed.count < limit {
            // The same condition again in the UPDATE: of two instances claiming one row, one changes it.
            let newLease: any SQLExpression = SQLBinaryExpression(now, .add, SQLBind(lease))
            let rows = try await db.update("tasks")
                .set("owner", to: owner)
                .set(SQLColumn("lease_ms"), to: newLease)
                .set(SQLColumn("state"), to: SQLRaw("CASE WHEN state = \(TaskState.canceling.rawValue) THEN \(TaskState.canceling.rawValue) ELSE \(TaskState.running.rawValue) END"))
                .set(SQLColumn("start_ms"), to: SQLFunction("COALESCE", args: SQLFunction("NULLIF", args: SQLColumn("start_ms"), SQLLiteral.numeric("0")), now))
                .where("id", .equal, id)
                .where { due($0) }
                .returning(SQLLiteral.all)
                .all(decoding: TaskRecord.self)
            claimed += rows
        }
        return claimed
    }

    private func progressUpdate(_ u: SQLUpdateBuilder, _ p: TaskProgress) -> SQLUpdateBuilder {
        u.set("status", to: p.status).set("current", to: p.current)
            .set("total_bytes", to: p.totalBytes).set("done_bytes", to: p.doneBytes)
            .set("total_files", to: p.totalFiles).set("done_files", to: p.doneFiles).set("speed", to: p.speed)
    }

    public func renewTask(id: String, owner: String, leaseSeconds: Int, progress: TaskProgress) async throws -> TaskState? {
        let newLease: any SQLExpression = SQLBinaryExpression(sharedNow, .add, SQLBind(Int64(leaseSeconds) * 1000))
        let rows = try await progressUpdate(db.update("tasks"), progress)
            .set(SQLColumn("lease_ms"), to: newLease)
            .where("id", .equal, id).where("owner", .equal, owner)
            .where("state", .in, [TaskState.running.rawValue, TaskState.canceling.rawValue, TaskState.beforeRetry.rawValue])
            .returning("state")
            .all(decodingColumn: "state", as: Int.self)
        return rows.first.flatMap { TaskState(rawValue: $0) }
    }

    public func endTaskRun(id: String, owner: String, state: TaskState, error: String, retryDelayMs: Int64, progress: TaskProgress,
                           countRetry: Bool) async throws -> Bool {
        let next: any SQLExpression = retryDelayMs > 0 ? SQLBinaryExpression(sharedNow, .add, SQLBind(retryDelayMs)) : SQLBind(Int64(0))
        var u = progressUpdate(db.update("tasks"), progress)
            .set("state", to: state.rawValue).set("error", to: error).set(SQLColumn("next_ms"), to: next)
            .set("owner", to: "").set("lease_ms", to: Int64(0))
        if state.isDone { u = u.set(SQLColumn("end_ms"), to: sharedNow) }
        if countRetry { u = u.set(SQLColumn("retries"), to: SQLBinaryExpression(SQLColumn("retries"), .add, SQLLiteral.numeric("1"))) }
        let rows = try await u.where("id", .equal, id).where("owner", .equal, owner)
            .where("state", .in, [TaskState.running.rawValue, TaskState.canceling.rawValue, TaskState.beforeRetry.rawValue])
            .returning("id").all(decodingColumn: "id", as: String.self)
        return !rows.isEmpty
    }

    public func changeTaskState(id: String, from: [TaskState], to: TaskState, retry: Bool) async throws -> TaskState? {
        let before = try await task(id: id)
        guard let before, from.contains(before.taskState) else { return nil }
        var u = db.update("tasks").set("state", to: to.rawValue)
        if to.isDone { u = u.set(SQLColumn("end_ms"), to: sharedNow).set("owner", to: "").set("lease_ms", to: Int64(0)) }
        if retry {
            u = u.set("error", to: "").set("end_ms", to: Int64(0)).set("retries", to: 0).set("next_ms", to: Int64(0))
                .set("owner", to: "").set("lease_ms", to: Int64(0)).set("status", to: "waiting for a worker")
        }
        // Only from the state read (a worker may have moved it meanwhile).
        let rows = try await u.where("id", .equal, id).where("state", .equal, before.state)
            .returning("id").all(decodingColumn: "id", as: String.self)
        return rows.isEmpty ? nil : before.taskState
    }

    public func deleteTasks(ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        var i = 0
        while i < ids.count {
            let chunk = Array(ids[i..<min(i + 500, ids.count)])
            // The task first: a run or a claim never sees it without its items.
            try await inTransaction { s in
                try await s.delete(from: "tasks").where("id", .in, chunk).run()
                try await s.delete(from: "task_items").where("task_id", .in, chunk).run()
            }
            i += chunk.count
        }
    }

    public func releaseTasks(owner: String) async throws {
        try await db.update("tasks")
            .set(SQLColumn("state"), to: SQLRaw("CASE WHEN state = \(TaskState.canceling.rawValue) THEN \(TaskState.canceling.rawValue) ELSE \(TaskState.pending.rawValue) END"))
            .set("owner", to: "").set("lease_ms", to: Int64(0)).set("status", to: "paused while its server restarts")
            .where("owner", .equal, owner)
            .where("state", .in, [TaskState.running.rawValue, TaskState.canceling.rawValue, TaskState.beforeRetry.rawValue])
            .run()
    }

    public func expireLeases(owner: String) async throws {
        try await db.update("tasks").set("lease_ms", to: Int64(0))
            .where("owner", .equal, owner)
            .where("state", .in, [TaskState.running.rawValue, TaskState.canceling.rawValue, TaskState.beforeRetry.rawValue])
            .run()
    }

    /// All or nothing (one transaction): a run that finds items finds the whole plan.
    public func addTaskItems(_ items: [TaskItem]) async throws {
        try await inTransaction { s in
            var i = 0
            while i < items.count {
                let chunk = Array(items[i..<min(i + 200, items.count)])
                try await s.insert(into: "task_items").models(chunk).run()
                i += chunk.count
            }
        }
    }

    public func taskItems(task: String) async throws -> [TaskItem] {
        try await db.select().column("*").from("task_items").where("task_id", .equal, task).orderBy("seq")
            .all(decoding: TaskItem.self)
    }

    public func setTaskItem(task: String, seq: Int, state: TaskItem.State, note: String) async throws {
        try await db.update("task_items").set("state", to: state.rawValue).set("note", to: note).set("checkpoint", to: "")
            .where("task_id", .equal, task).where("seq", .equal, seq).run()
    }

    public func setTaskItemCheckpoint(task: String, seq: Int, checkpoint: String) async throws {
        try await db.update("task_items").set("checkpoint", to: checkpoint)
            .where("task_id", .equal, task).where("seq", .equal, seq).run()
    }

    /// Rewrites a task's parameters (a secret it no longer needs taken out once it has ended).
    public func setTaskParams(id: String, params: String) async throws {
        try await db.update("tasks").set("params", to: params).where("id", .equal, id).run()
    }
}
