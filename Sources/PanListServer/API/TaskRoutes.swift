import Foundation
import Hummingbird
import PanListCore
import PanListStore

/// A task as Alist's and OpenList's task routes answer it, with PanList's progress details beside.
struct TaskInfoJSON: Encodable {
    var id: String
    var name: String
    var creator: String
    var creator_role: Int
    var state: Int
    var status: String
    var progress: Double
    var start_time: String?
    var end_time: String?
    var total_bytes: Int64
    var error: String
    // PanList's own.
    var kind: String
    var state_name: String
    var done_bytes: Int64
    var total_files: Int64
    var done_files: Int64
    var speed: Int64
    var current: String
    var retries: Int
    var created_time: String

    init(_ t: TaskRecord) {
        id = t.id; name = t.name; creator = t.creator; creator_role = t.creator_role; state = t.state
        status = t.status; progress = t.progress; total_bytes = t.total_bytes; error = t.error
        start_time = t.start_ms > 0 ? Self.time(t.start_ms) : nil
        end_time = t.end_ms > 0 ? Self.time(t.end_ms) : nil
        kind = t.kind; state_name = t.taskState.words; done_bytes = t.done_bytes; total_files = t.total_files
        done_files = t.done_files; speed = t.taskState == .running ? t.speed : 0; current = t.current; retries = t.retries
        created_time = Self.time(t.created_ms)
    }

    static func time(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: Double(ms) / 1000).formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

/// Task counts over every kind, for a badge.
struct TaskSummaryJSON: Encodable {
    var undone: Int
    var running: Int
    var failed: Int
    var done: Int
}

/// One unit of a task's work, for the task's page (what was copied, kept back, or failed, and why).
struct TaskItemJSON: Encodable {
    var path: String
    var is_dir: Bool
    var size: Int64
    var state: String
    var note: String
    init(_ i: TaskItem) {
        path = i.path; is_dir = i.is_dir; size = i.size; note = i.note
        state = switch i.itemState { case .pending: "pending"; case .done: "done"; case .skipped: "skipped"; case .failed: "failed" }
    }
}

extension APIRoutes {
    /// `/api/task/<kind>/…` and the same under `/api/admin/task/<kind>/…` (older clients call those): lists,
    /// info, cancel, delete, retry, their `_some` forms (a JSON array of ids), clear_done, clear_succeeded and
    /// retry_failed. Everyone logged in may use them; only the admin sees and controls other users' tasks
    /// (someone else's task is "not found").
    func addTaskRoutes(to api: RouterGroup<AppContext>) {
        for prefix in ["task", "admin/task"] {
            let g = api.group(RouterPath(prefix))
            g.get("{kind}/undone") { req, ctx in try await list(req, ctx, TaskState.undone) }
            g.post("{kind}/undone") { req, ctx in try await list(req, ctx, TaskState.undone) }
            g.get("{kind}/done") { req, ctx in try await list(req, ctx, TaskState.done) }
            g.post("{kind}/done") { req, ctx in try await list(req, ctx, TaskState.done) }
            g.post("{kind}/info") { req, ctx in
                let (_, t) = try await target(req, ctx)
                struct Info: Encodable {
                    var task: TaskInfoJSON
                    var items: [TaskItemJSON]
                    func encode(to encoder: any Encoder) throws {
                        try task.encode(to: encoder)
                        var c = encoder.container(keyedBy: K.self)
                        try c.encode(items, forKey: .items)
                    }
                    enum K: String, CodingKey { case items }
                }
                let items = try await state.store.taskItems(task: t.id)
                return APIResponse.ok(Info(task: TaskInfoJSON(t), items: items.prefix(2000).map(TaskItemJSON.init)))
            }
            g.get("{kind}/info") { req, ctx in APIResponse.ok(TaskInfoJSON(try await target(req, ctx).1)) }
            g.post("{kind}/cancel") { req, ctx in
                try await state.tasks.cancel(try await target(req, ctx).1.id)
                return APIResponse.ok()
            }
            g.post("{kind}/delete") { req, ctx in
                try await state.tasks.delete(try await target(req, ctx).1.id)
                return APIResponse.ok()
            }
            g.post("{kind}/retry") { req, ctx in
                try await state.tasks.retry(try await target(req, ctx).1.id)
                return APIResponse.ok()
            }
            g.post("{kind}/cancel_some") { req, ctx in try await some(req, ctx) { try await state.tasks.cancel($0) } }
            g.post("{kind}/delete_some") { req, ctx in try await some(req, ctx) { try await state.tasks.delete($0) } }
            g.post("{kind}/retry_some") { req, ctx in try await some(req, ctx) { try await state.tasks.retry($0) } }
            g.post("{kind}/clear_done") { req, ctx in
                try await state.tasks.delete(try await callersTasks(req, ctx, TaskState.done))
                return APIResponse.ok()
            }
            g.post("{kind}/clear_succeeded") { req, ctx in
                try await state.tasks.delete(try await callersTasks(req, ctx, [.succeeded]))
                return APIResponse.ok()
            }
            g.post("{kind}/retry_failed") { req, ctx in
                for t in try await callersTasks(req, ctx, [.failed]) { try await state.tasks.retry(t.id) }
                return APIResponse.ok()
            }
        }
        // Counts for a badge: every kind, the caller's tasks (the admin's: everyone's).
        api.get("task/summary") { req, _ in APIResponse.ok(try await taskSummary(try await taskCaller(req))) }
        addTaskEvents(to: api)
    }

    /// The counts of `/api/task/summary` for `user` (the admin: everyone's tasks).
    func taskSummary(_ user: User) async throws -> TaskSummaryJSON {
        let counts = try await state.store.taskCounts(creator: Self.creatorFilter(user))
        return TaskSummaryJSON(undone: TaskState.undone.reduce(0) { $0 + (counts[$1] ?? 0) }, running: counts[.running] ?? 0,
                               failed: counts[.failed] ?? 0, done: TaskState.done.reduce(0) { $0 + (counts[$1] ?? 0) })
    }

    /// The caller of a task route: never the guest (tasks belong to people who logged in).
    func taskCaller(_ req: Request) async throws -> User {
        let user = try await state.authenticate(req)
        if user.isGuest { throw FSError.unauthorized("log in to see tasks") }
        return user
    }

    /// Whose tasks `user` sees: their own (the admin: everyone's, nil).
    static func creatorFilter(_ user: User) -> Int? { user.isAdmin ? nil : user.id }

    /// The caller and the kind named in the path.
    private func who(_ req: Request, _ ctx: AppContext) async throws -> (User, String) {
        let user = try await taskCaller(req)
        let kind = ctx.parameters.get("kind") ?? ""
        guard await state.tasks.kindNames.contains(kind) else { throw FSError.noSuchRecord("there are no \(kind) tasks") }
        return (user, kind)
    }

    /// Kinds Alist's and OpenList's front ends poll that PanList does not have yet: empty lists.
    static let otherKinds: Set<String> = ["decompress_upload"]

    private func list(_ req: Request, _ ctx: AppContext, _ states: [TaskState]) async throws -> Response {
        if Self.otherKinds.contains(ctx.parameters.get("kind") ?? "") {
            _ = try await taskCaller(req)
            return APIResponse.ok([TaskInfoJSON]())
        }
        let (user, kind) = try await who(req, ctx)
        // `per_page` (and `page`, from 1): one page, newest first (PanList's; without them every task, as Alist).
        let q = req.uri.queryParameters
        var limit: Int?, offset = 0
        if let per = q.get("per_page", as: Int.self) {
            guard (1...1000).contains(per) else { throw FSError.badRequest("per_page must be from 1 to 1000") }
            let page = q.get("page", as: Int.self) ?? 1
            guard page >= 1 else { throw FSError.badRequest("page must be 1 or more") }
            limit = per
            offset = (page - 1) * per
        }
        let all = try await state.store.tasks(kind: kind, states: states, creator: Self.creatorFilter(user), limit: limit, offset: offset)
        return APIResponse.ok(all.map(TaskInfoJSON.init))
    }

    /// The caller's tasks of the kind in the path in `states` (the admin: everyone's).
    private func callersTasks(_ req: Request, _ ctx: AppContext, _ states: [TaskState]) async throws -> [TaskRecord] {
        let (user, kind) = try await who(req, ctx)
        return try await state.store.tasks(kind: kind, states: states, creator: Self.creatorFilter(user))
    }

    /// Task `tid` of `kind` if `user` may see it (the admin: anyone's); nil for someone else's, as for a missing one.
    private func visibleTask(_ tid: String, _ kind: String, to user: User) async throws -> TaskRecord? {
        guard let t = try await state.store.task(id: tid), t.kind == kind, user.isAdmin || t.creator_id == user.id else { return nil }
        return t
    }

    /// The task `?tid=` of the caller; someone else's is "not found", as a missing one.
    private func target(_ req: Request, _ ctx: AppContext) async throws -> (User, TaskRecord) {
        let (user, kind) = try await who(req, ctx)
        guard let t = try await visibleTask(req.uri.queryParameters.get("tid") ?? "", kind, to: user) else {
            throw FSError.noSuchRecord("task not found")
        }
        return (user, t)
    }

    /// A `_some` form: the body is a JSON array of task ids; the answer maps each id that could not be
    /// handled to why.
    private func some(_ req: Request, _ ctx: AppContext, _ op: (String) async throws -> Void) async throws -> Response {
        let (user, kind) = try await who(req, ctx)
        let ids = try await req.json([String].self, limit: state.config.maxRequestBody)
        var errors: [String: String] = [:]
        for tid in ids {
            guard let t = try await visibleTask(tid, kind, to: user) else {
                errors[tid] = "task not found"
                continue
            }
            do { try await op(t.id) } catch { errors[tid] = FSError.from(error).message }
        }
        return APIResponse.ok(errors)
    }
}
