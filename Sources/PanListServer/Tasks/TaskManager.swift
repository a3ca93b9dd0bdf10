import Foundation
import Logging
import NIOConcurrencyHelpers
import PanListCore
import PanListStore

/// A kind of background work (copy, move, upload; later offline downloads, decompression, index builds):
/// what one run of a task of this kind does. A run may be stopped at any point (cancel, a lost lease, a
/// graceful stop, a crash) and taken up again later, by any instance: it keeps its progress in the store
/// (`TaskStore` items) and does only what is not done yet.
struct TaskKind: Sendable {
    let name: String
    let run: @Sendable (TaskRun) async throws -> Void
    /// Lets go of what a task kept outside the store (an upload's spooled body) once it cannot run again:
    /// canceled, failed for good, or deleted.
    var discard: @Sendable (TaskRecord) async -> Void = { _ in }
    /// What a deletion lets go of, when it is more than `discard` (a kept download): called while the task's
    /// rows are still in the store. nil: `discard`.
    var deleted: (@Sendable (TaskRecord) async -> Void)? = nil
}

/// One run of one task on this instance: its record as claimed, and the progress it reports (written to
/// the store with every renewal of its lease).
final class TaskRun: @unchecked Sendable {
    let record: TaskRecord
    let store: any Store
    private let lock = NIOLock()
    private var _progress = TaskProgress()
    /// (time, done bytes) samples for the speed.
    private var samples: [(ContinuousClock.Instant, Int64)] = []
    /// Why the work was stopped from outside (nil: it was not).
    private var _stop: Stop?

    enum Stop { case cancel, pause, lost }

    init(record: TaskRecord, store: any Store) {
        self.record = record
        self.store = store
        _progress.status = record.status
        _progress.totalBytes = record.total_bytes
        _progress.doneBytes = record.done_bytes
        _progress.totalFiles = record.total_files
        _progress.doneFiles = record.done_files
    }

    var progress: TaskProgress {
        lock.withLock {
            var p = _progress
            let now = ContinuousClock.now
            samples.removeAll { now - $0.0 > .seconds(5) }
            if let first = samples.first, let last = samples.last, last.0 > first.0 {
                let secs = Double((last.0 - first.0).components.attoseconds) / 1e18 + Double((last.0 - first.0).components.seconds)
                p.speed = secs > 0 ? Int64(Double(last.1 - first.1) / secs) : 0
            }
            return p
        }
    }

    func update(_ change: (inout TaskProgress) -> Void) {
        lock.withLock {
            change(&_progress)
            samples.append((.now, _progress.doneBytes))
        }
    }

    /// Adds `n` bytes done (from a stream in flight); throws once the run was stopped from outside, so that a
    /// stream read by another task (a driver's writer) ends too.
    func addBytes(_ n: Int) throws {
        if stop != nil { throw CancellationError() }
        if n > 0 { update { $0.doneBytes += Int64(n) } }
    }

    private var work: Task<Void, any Error>?

    var stop: Stop? { lock.withLock { _stop } }

    /// Stops the work (cancels it; the run itself goes on to record how it ended).
    func stopped(_ why: Stop) {
        let w = lock.withLock { () -> Task<Void, any Error>? in
            if _stop == nil { _stop = why }
            return work
        }
        w?.cancel()
    }

    func attach(_ task: Task<Void, any Error>) {
        let stopNow = lock.withLock { () -> Bool in
            work = task
            return _stop != nil
        }
        if stopNow { task.cancel() }
    }

    var params: Data { Data(record.params.utf8) }
}

/// Runs the tasks kept in the store: claims those due (on any instance, one at a time per row), runs them
/// with a lease it renews every second along with their progress, and hands them back when it stops. A task
/// whose instance died is taken over when its lease runs out; one that was cancelled elsewhere stops here
/// within a second (at once through the change feed).
actor TaskManager {
    let store: any Store
    let instance: String
    let logger: Logger
    private let changes: any ChangeFeed
    /// Workers and automatic retries per kind (settings, else config).
    private let limits: @Sendable (String) -> (workers: Int, retries: Int)
    let leaseSeconds: Int
    private var kinds: [String: TaskKind] = [:]
    private var running: [String: (work: Task<Void, Never>, run: TaskRun)] = [:]
    private var loop: Task<Void, Never>?
    private var stopping = false

    init(store: any Store, instance: String, changes: any ChangeFeed, leaseSeconds: Int, logger: Logger,
         limits: @escaping @Sendable (String) -> (workers: Int, retries: Int)) {
        self.store = store; self.instance = instance; self.changes = changes; self.leaseSeconds = leaseSeconds
        self.logger = logger; self.limits = limits
    }

    func register(_ kind: TaskKind) { kinds[kind.name] = kind }
    var kindNames: [String] { kinds.keys.sorted() }

    /// Starts claiming. Tasks an earlier life of this instance was running are claimable at once.
    func start() async {
        guard loop == nil else { return }
        do { try await store.expireLeases(owner: instance) } catch {
            logger.warning("could not take up this instance's earlier tasks yet: \(ErrorText.describe(error))")
        }
        loop = Task { [weak self] in
            while !Task.isCancelled {
                await self?.claimDue()
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Look for work now (a task was queued or handed back).
    nonisolated func poke() {
        Task { await self.claimDue() }
    }

    private var claiming = false
    private var claimAgain = false

    /// Claims what is due for every kind with a free worker (one pass at a time; a poke during a pass
    /// makes one more pass).
    private func claimDue() async {
        guard !stopping, loop != nil else { return }
        if claiming { claimAgain = true; return }
        claiming = true
        defer { claiming = false }
        repeat {
            claimAgain = false
            await claimPass()
        } while claimAgain && !stopping
    }

    private func claimPass() async {
        for (name, kind) in kinds {
            let busy = running.values.filter { $0.run.record.kind == name }.count
            let free = limits(name).workers - busy
            guard free > 0 else { continue }
            do {
                for record in try await store.claimTasks(kind: name, owner: instance, leaseSeconds: leaseSeconds, limit: free) {
                    begin(record, kind)
                }
            } catch {
                logger.warning("could not look for \(name) tasks: \(ErrorText.describe(error))")
            }
        }
    }

    private func begin(_ record: TaskRecord, _ kind: TaskKind) {
        // A claim that came back during a stop is handed back by `stop` (releaseTasks); one this instance already
        // runs (its lease was renewed late, and the claim took it again) goes on as it is.
        guard !stopping, running[record.id] == nil else { return }
        let run = TaskRun(record: record, store: store)
        let maxRetries = limits(kind.name).retries
        let work = Task { [weak self] in
            guard let self else { return }
            await self.execute(run, kind, maxRetries: maxRetries)
            await self.finished(record.id, run)
        }
        running[record.id] = (work, run)
    }

    private func finished(_ id: String, _ run: TaskRun) {
        if running[id]?.run === run { running[id] = nil }
        poke()
    }

    /// One run: the work, a heartbeat beside it, and the outcome written once.
    private nonisolated func execute(_ run: TaskRun, _ kind: TaskKind, maxRetries: Int) async {
        let id = run.record.id
        if run.record.taskState == .canceling {
            await kind.discard(run.record)
            _ = try? await store.endTaskRun(id: id, owner: instance, state: .canceled, error: "canceled", retryDelayMs: 0,
                                            progress: run.progress, countRetry: false)
            await publish(id)
            return
        }
        let work = Task { try await kind.run(run) }
        run.attach(work)
        // Renews the lease (and writes the progress) twice a second until the work has ended, cancelled or not.
        // A run that cannot renew its lease for most of its length stops: another instance may take it over.
        let heartbeat = Task { [store, instance, leaseSeconds] in
            var renewed = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(500))
                if Task.isCancelled { break }
                do {
                    switch try await store.renewTask(id: id, owner: instance, leaseSeconds: leaseSeconds, progress: run.progress) {
                    case nil: run.stopped(.lost); return
                    case .canceling?: run.stopped(.cancel)
                    default: break
                    }
                    renewed = .now
                } catch {
                    if ContinuousClock.now - renewed > .seconds(leaseSeconds) - .milliseconds(1500) {
                        run.stopped(.lost)
                        return
                    }
                }
            }
        }
        let outcome = await work.result
        heartbeat.cancel()
        await heartbeat.value
        var progress = run.progress
        progress.speed = 0
        let (state, error, delay, counted): (TaskState, String, Int64, Bool)
        switch (outcome, run.stop) {
        case (_, .lost?):
            logger.info("task \(id) is no longer this instance's (deleted, or taken over after its lease ran out)")
            return
        case (_, .pause?):
            // Handed back by `stop` (releaseTasks).
            return
        case (.success, _):
            // A run's own closing words ("done; 2 kept") stay.
            if !progress.status.hasPrefix("done") { progress.status = "done" }
            progress.current = ""
            (state, error, delay, counted) = (.succeeded, "", 0, false)
        case (_, .cancel?):
            progress.status = "canceled"
            (state, error, delay, counted) = (.canceled, "canceled", 0, false)
        case (.failure(let e), nil):
            let words = Self.words(e)
            if Self.worthRetrying(e), run.record.retries < maxRetries {
                let backoff = Int64(min(60, 2 << min(run.record.retries, 5))) * 1000
                progress.status = "failed; trying again shortly"
                (state, error, delay, counted) = (.waitingRetry, words, backoff, true)
            } else {
                progress.status = "failed"
                (state, error, delay, counted) = (.failed, words, 0, true)
            }
        }
        if state == .canceled || state == .failed { await kind.discard(run.record) }
        for attempt in 0..<5 {
            do {
                _ = try await store.endTaskRun(id: id, owner: instance, state: state, error: error, retryDelayMs: delay,
                                               progress: progress, countRetry: counted)
                break
            } catch {
                logger.warning("could not record the end of task \(id): \(ErrorText.describe(error))")
                try? await Task.sleep(for: .seconds(1 << attempt))
            }
        }
        await publish(id)
    }

    static func words(_ error: any Error) -> String {
        if error is CancellationError { return "canceled" }
        return FSError.from(error).message
    }

    /// Errors that a later try may not meet again (the network, a busy or rate-limiting cloud, the database).
    static func worthRetrying(_ error: any Error) -> Bool {
        guard let e = error as? FSError else { return !(error is CancellationError) }
        switch e {
        case .upstream, .rateLimited, .unavailable, .storageUnavailable, .internalError: return true
        default: return false
        }
    }

    private nonisolated func publish(_ id: String) async {
        await changes.publish(.task(id: id))
    }

    // MARK: control

    /// Queues a task (with its kind's retry limit as it is now) and looks for work at once; the task as stored.
    @discardableResult
    func submit(_ record: TaskRecord) async throws -> TaskRecord {
        var record = record
        record.max_retries = limits(record.kind).retries
        try await store.insertTask(record)
        await publish(record.id)
        poke()
        return record
    }

    /// Cancels a task: one waiting is canceled at once; one running stops within a second (here at once,
    /// elsewhere when its instance hears of it, at the latest with its next lease renewal).
    func cancel(_ id: String) async throws {
        let waiting: [TaskState] = [.pending, .waitingRetry, .errored]
        if try await store.changeTaskState(id: id, from: waiting, to: .canceled, retry: false) != nil {
            if let t = try await store.task(id: id) { await kinds[t.kind]?.discard(t) }
            await publish(id)
            return
        }
        if try await store.changeTaskState(id: id, from: [.running, .beforeRetry], to: .canceling, retry: false) != nil {
            running[id]?.run.stopped(.cancel)
            await publish(id)
        }
    }

    /// Runs a finished (failed, canceled) task again; what it had done stays done.
    func retry(_ id: String) async throws {
        if try await store.changeTaskState(id: id, from: [.failed, .canceled, .errored, .waitingRetry], to: .pending, retry: true) != nil {
            await publish(id)
            poke()
        }
    }

    /// Deletes a task; a running one is cancelled first.
    func delete(_ id: String) async throws {
        guard let t = try await store.task(id: id) else { return }
        try await delete([t])
    }

    /// Deletes tasks (running ones are cancelled first) and what they kept outside the store.
    func delete(_ records: [TaskRecord]) async throws {
        for t in records { running[t.id]?.run.stopped(.cancel) }
        // What the tasks kept outside the store goes first: their rows (checkpoints) say where it is.
        for t in records {
            guard let kind = kinds[t.kind] else { continue }
            await (kind.deleted ?? kind.discard)(t)
        }
        try await store.deleteTasks(ids: records.map(\.id))
        for t in records { await publish(t.id) }
    }

    /// Another instance changed task `id`: stop it here if it was cancelled or deleted; look for new work.
    func changed(_ id: String) async {
        if let mine = running[id] {
            do {
                let now = try await store.task(id: id)
                if now == nil || now?.taskState == .canceling || now?.taskState == .canceled {
                    mine.run.stopped(.cancel)
                }
            } catch {
                // The store is away: the run's next renewal says what became of it.
            }
        }
        poke()
    }

    /// For tests: stops as a killed process would, at once, handing nothing back and writing nothing more
    /// (the leases of its tasks run out; another instance takes them over).
    func abandon() async {
        stopping = true
        loop?.cancel()
        let all = running
        for (_, r) in all { r.run.stopped(.lost) }
        for (_, r) in all { await r.work.value }
    }

    /// Whether this instance runs task `id` now.
    func isRunning(_ id: String) -> Bool { running[id] != nil }

    /// A graceful stop: no new claims; running tasks stop at once and are handed back where they stand (the
    /// next instance, or this one restarted, goes on from the last finished file).
    func stop() async {
        stopping = true
        loop?.cancel()
        await loop?.value
        // A claim under way finishes first (what it claims is handed back below).
        for _ in 0..<250 where claiming { try? await Task.sleep(for: .milliseconds(20)) }
        let all = running
        for (_, r) in all { r.run.stopped(.pause) }
        // All told at once, waited for together: 10 s in all, however many run.
        let allPaused = Task { for r in all.values { await r.work.value } }
        if !(await FirstOf.wait(allPaused, atMost: .seconds(10))) {
            logger.warning("tasks did not all pause within 10 s (of \(all.keys.sorted().joined(separator: ", "))); handing them back anyway")
        }
        do { try await store.releaseTasks(owner: instance) } catch {
            logger.warning("could not hand back this instance's tasks (they are taken over when their leases run out): \(ErrorText.describe(error))")
        }
    }
}
