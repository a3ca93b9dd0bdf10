import Foundation

/// A task's state, numbered as Alist's and OpenList's task manager (tache) numbers them, so their clients
/// read PanList's answers unchanged.
public enum TaskState: Int, Sendable, Codable, CaseIterable {
    case pending = 0
    case running = 1
    case succeeded = 2
    case canceling = 3
    case canceled = 4
    case errored = 5
    case failing = 6
    case failed = 7
    case waitingRetry = 8
    case beforeRetry = 9

    /// Finished: nothing more happens to the task unless someone retries it.
    public var isDone: Bool { self == .succeeded || self == .canceled || self == .failed }

    /// The states `/done` lists; the others are `/undone`.
    public static let done: [TaskState] = [.succeeded, .canceled, .failed]
    public static let undone: [TaskState] = allCases.filter { !$0.isDone }

    public var words: String {
        switch self {
        case .pending: "pending"
        case .running: "running"
        case .succeeded: "succeeded"
        case .canceling: "canceling"
        case .canceled: "canceled"
        case .errored: "errored"
        case .failing: "failing"
        case .failed: "failed"
        case .waitingRetry: "waiting to retry"
        case .beforeRetry: "retrying"
        }
    }
}

/// One task as the store keeps it: what it is, whose it is, where it stands, and who runs it (a lease).
/// Times are milliseconds since 1970 (0: not yet). Column names are the store's.
public struct TaskRecord: Sendable, Codable, Equatable {
    public var id: String
    /// copy, move, upload (later: offline_download, decompress, …).
    public var kind: String
    /// What the task does, in words (`copy [/a](/b/c.txt) to [/d]`).
    public var name: String
    public var creator_id: Int
    public var creator: String
    public var creator_role: Int
    public var state: Int
    /// What it does now, in words.
    public var status: String
    /// The file it works on now (a path relative to the task's source).
    public var current: String
    public var total_bytes: Int64
    public var done_bytes: Int64
    public var total_files: Int64
    public var done_files: Int64
    /// Bytes per second over the last seconds of work.
    public var speed: Int64
    public var error: String
    /// The kind's parameters (JSON).
    public var params: String
    /// Failed runs so far, and how many the task may have before it fails for good.
    public var retries: Int
    public var max_retries: Int
    /// The instance running it, and until when that claim holds (renewed while it runs).
    public var owner: String
    public var lease_ms: Int64
    /// Only this instance may run it ("": any), e.g. an upload whose spooled body is on one machine's disk.
    public var pinned: String
    public var created_ms: Int64
    public var start_ms: Int64
    public var end_ms: Int64
    /// Not to be run before this time (a retry's back-off).
    public var next_ms: Int64

    public init(id: String, kind: String, name: String, creator: User, params: String, maxRetries: Int = 0, pinned: String = "") {
        self.id = id; self.kind = kind; self.name = name
        creator_id = creator.id; self.creator = creator.username; creator_role = creator.role.rawValue
        state = TaskState.pending.rawValue; status = "waiting for a worker"; current = ""
        total_bytes = 0; done_bytes = 0; total_files = 0; done_files = 0; speed = 0; error = ""
        self.params = params; retries = 0; max_retries = maxRetries; owner = ""; lease_ms = 0; self.pinned = pinned
        created_ms = Int64(Date().timeIntervalSince1970 * 1000); start_ms = 0; end_ms = 0; next_ms = 0
    }

    public var taskState: TaskState { TaskState(rawValue: state) ?? .failed }

    /// Percent done, 0…100: by bytes when they are known, else by files.
    public var progress: Double {
        if taskState == .succeeded { return 100 }
        if total_bytes > 0 { return min(100, Double(done_bytes) * 100 / Double(total_bytes)) }
        if total_files > 0 { return min(100, Double(done_files) * 100 / Double(total_files)) }
        return 0
    }
}

/// What a running task reports: written to the store with each renewal of its lease.
public struct TaskProgress: Sendable, Equatable {
    public var status: String = ""
    public var current: String = ""
    public var totalBytes: Int64 = 0
    public var doneBytes: Int64 = 0
    public var totalFiles: Int64 = 0
    public var doneFiles: Int64 = 0
    public var speed: Int64 = 0
    public init() {}
}

/// One unit of a task's work (a file or a folder of a copy), kept in the store so that a task taken up again
/// (after a restart, on another instance, by a retry) does only what is not done yet.
public struct TaskItem: Sendable, Codable, Equatable {
    public enum State: Int, Sendable, Codable { case pending = 0, done = 1, skipped = 2, failed = 3 }
    public var task_id: String
    /// Order of work (folders come before what they hold).
    public var seq: Int
    /// Relative to the task's source ("" for the source itself).
    public var path: String
    public var is_dir: Bool
    public var size: Int64
    public var state: Int
    /// Why it was skipped or failed, in words.
    public var note: String
    /// How far an interrupted upload of this file got, in the destination driver's words ("" for none):
    /// see `UploadCheckpoint`.
    public var checkpoint: String
    public init(task: String, seq: Int, path: String, isDir: Bool, size: Int64) {
        task_id = task; self.seq = seq; self.path = path; is_dir = isDir; self.size = size; state = State.pending.rawValue; note = ""
        checkpoint = ""
    }
    public var itemState: State { State(rawValue: state) ?? .pending }
}

/// How tasks are kept. Implemented by the store; every instance of a cluster reads and writes the same rows.
public protocol TaskStore: Sendable {
    func insertTask(_ task: TaskRecord) async throws
    func task(id: String) async throws -> TaskRecord?
    /// Tasks of `kind` in `states`, of `creator` (nil: everyone's), newest first; `limit` of them after
    /// skipping `offset` when given.
    func tasks(kind: String, states: [TaskState], creator: Int?, limit: Int?, offset: Int) async throws -> [TaskRecord]
    /// Counts of tasks by state (for a badge), of `creator` (nil: everyone's).
    func taskCounts(creator: Int?) async throws -> [TaskState: Int]
    /// Claims up to `limit` tasks of `kind` that may run now for `owner`: pending ones whose time has come,
    /// and those whose lease ran out (their instance died). Each row is claimed by one instance only.
    func claimTasks(kind: String, owner: String, leaseSeconds: Int, limit: Int) async throws -> [TaskRecord]
    /// Renews the lease and writes the progress; the task's state now, or nil when the task is no longer this
    /// owner's (deleted, or taken over after the lease ran out).
    func renewTask(id: String, owner: String, leaseSeconds: Int, progress: TaskProgress) async throws -> TaskState?
    /// Ends a run: the new state, the error, when a retry may start (milliseconds from now, in the store's time);
    /// false when the task is no longer this owner's.
    func endTaskRun(id: String, owner: String, state: TaskState, error: String, retryDelayMs: Int64, progress: TaskProgress,
                    countRetry: Bool) async throws -> Bool
    /// Moves a task from one of `from` to `to` (cancel, retry); `retry` resets the error, end time and retries.
    /// The state it had, or nil when it was in none of `from`.
    func changeTaskState(id: String, from: [TaskState], to: TaskState, retry: Bool) async throws -> TaskState?
    /// Deletes tasks (and their items).
    func deleteTasks(ids: [String]) async throws
    /// Hands back every task `owner` runs (a graceful stop: they are taken up again where they stopped).
    func releaseTasks(owner: String) async throws
    /// Makes the tasks an earlier life of `owner` ran claimable now (its leases cannot be renewed any more).
    func expireLeases(owner: String) async throws

    func addTaskItems(_ items: [TaskItem]) async throws
    func taskItems(task: String) async throws -> [TaskItem]
    func setTaskItem(task: String, seq: Int, state: TaskItem.State, note: String) async throws
    /// Keeps an item's upload checkpoint ("" clears it).
    func setTaskItemCheckpoint(task: String, seq: Int, checkpoint: String) async throws
    /// Rewrites a task's parameters (a secret it no longer needs taken out once it has ended).
    func setTaskParams(id: String, params: String) async throws
}

extension TaskStore {
    public func tasks(kind: String, states: [TaskState], creator: Int?) async throws -> [TaskRecord] {
        try await tasks(kind: kind, states: states, creator: creator, limit: nil, offset: 0)
    }
}
