import Foundation
import PanListCore
import PanListStore

/// An index walk: the folders `paths` and everything below them (to `maxDepth` levels below `/`, -1: the
/// `max_index_depth` setting) listed from their storages and written to the index; `clear` empties those
/// parts of the index first (a build; without it, an update).
struct IndexParams: Codable, Sendable {
    var paths: [String]
    var maxDepth: Int
    var clear: Bool
}

extension ServerState {
    static let indexKind = "index"
    /// driver_state keys: when the last walk ended well, and when the next scheduled update is due.
    static let indexLastDoneKey = "search:last_done_ms"
    static let indexNextUpdateKey = "search:next_update_ms"

    var indexPolicy: IndexPolicy { IndexPolicy(setting: setting) }

    /// Queues an index walk of `paths` (absolute) for `user`.
    @discardableResult
    func queueIndexWalk(_ user: User, paths: [String], maxDepth: Int, clear: Bool) async throws -> TaskRecord {
        guard indexPolicy.enabled else { throw FSError.badRequest(Self.searchOffMessage) }
        var normalized: [String] = []
        for p in paths.isEmpty ? ["/"] : paths {
            let n = try VirtualPath.normalize(p)
            // A path inside another one given is walked with it.
            if !normalized.contains(where: { VirtualPath.isWithin(n, $0) }) {
                normalized.removeAll { VirtualPath.isWithin($0, n) }
                normalized.append(n)
            }
        }
        let params = IndexParams(paths: normalized, maxDepth: maxDepth, clear: clear)
        let data = try JSONEncoder().encode(params)
        let what = clear ? "build the search index" : "update the search index"
        let name = "\(what) of " + normalized.map { "[\($0)]" }.joined(separator: ", ")
        let record = TaskRecord(id: RandomString.make(16), kind: Self.indexKind, name: name, creator: user,
                                params: String(decoding: data, as: UTF8.self))
        return try await tasks.submit(record)
    }

    /// Index tasks not finished yet.
    func openIndexTasks() async throws -> [TaskRecord] {
        try await store.tasks(kind: Self.indexKind, states: TaskState.undone, creator: nil)
    }

    /// Cancels every index walk not finished yet.
    func stopIndexing() async throws {
        for t in try await openIndexTasks() { try await tasks.cancel(t.id) }
    }

    func indexKind() -> TaskKind {
        TaskKind(name: Self.indexKind, run: { [self] run in try await runIndexWalk(run) })
    }

    /// One run of an index walk: the folders still to list are the task's pending items (a run taken up again
    /// after a restart or on another instance goes on where the last one stopped). A folder that cannot be
    /// listed (a storage down, a token refused) is noted and skipped; what the index had there stays.
    func runIndexWalk(_ run: TaskRun) async throws {
        let params = try JSONDecoder().decode(IndexParams.self, from: run.params)
        let id = run.record.id
        var items = try await store.taskItems(task: id)
        if items.isEmpty {
            // A build empties what lies inside its folders (their own rows stay: the walk lists only what is inside).
            if params.clear {
                for p in params.paths {
                    if p == "/" { try await store.indexClear(below: "/") } else { try await store.indexReplaceFolder(p, entries: []) }
                }
            }
            items = params.paths.enumerated().map { TaskItem(task: id, seq: $0.offset, path: $0.element, isDir: true, size: 0) }
            try await store.addTaskItems(items)
        }
        // Folders that could not be listed last time (a storage down) are listed again.
        for item in items where item.itemState == .failed {
            try await store.setTaskItem(task: id, seq: item.seq, state: .pending, note: "")
        }
        items = items.map { var i = $0; if i.itemState == .failed { i.state = TaskItem.State.pending.rawValue }; return i }
        var nextSeq = (items.map(\.seq).max() ?? -1) + 1
        var pending = items.filter { $0.itemState == .pending }.sorted { $0.seq < $1.seq }
        var doneFolders = Int64(items.count - pending.count)
        var failed: [String] = []
        var seen = 0
        var lastCall: [Int: ContinuousClock.Instant] = [:]
        var i = 0
        func report() {
            run.update {
                $0.totalFiles = doneFolders + Int64(pending.count - i)
                $0.doneFiles = doneFolders
                $0.status = "\(doneFolders) folders listed, \(seen) names seen" + (failed.isEmpty ? "" : ", \(failed.count) folders could not be listed")
            }
        }
        report()
        while i < pending.count {
            try Task.checkCancellation()
            let item = pending[i]
            let folder = item.path
            run.update { $0.current = folder }
            let policy = indexPolicy
            let maxDepth = params.maxDepth >= 0 ? min(params.maxDepth, policy.maxDepth) : policy.maxDepth
            let storage = fs.resolve(folder)?.0
            do {
                // Clouds are listed at most `index_list_per_second` calls a second (a listing of n entries costs
                // about n/100 calls on 123 Open), so a walk leaves the API budget to the users.
                if let m = storage, m.record.driver != "Local", let last = lastCall[m.id] {
                    let rate = max(0.05, Double(setting("index_list_per_second") ?? "") ?? 2)
                    let wait = Duration.seconds(1 / rate) - (ContinuousClock.now - last)
                    if wait > .zero { try await Task.sleep(for: wait) }
                }
                let listing = try await fs.listUncached(folder)
                // A storage that is not working lists as its virtual folders only: not a listing to replace entries with.
                if let m = listing.storage, !m.isWorking {
                    throw FSError.storageUnavailable("storage \(m.mountPath) is not working: \(m.record.status)")
                }
                if let m = storage {
                    // The calls that listing took: one per 100 entries.
                    let calls = max(1, (listing.objects.count + 99) / 100)
                    let rate = max(0.05, Double(setting("index_list_per_second") ?? "") ?? 2)
                    lastCall[m.id] = ContinuousClock.now + .seconds(Double(calls - 1) / rate)
                }
                let found = indexer.entries(in: folder, listing.objects, policy: policy)
                try await store.indexReplaceFolder(folder, entries: found)
                var more: [TaskItem] = []
                for e in found where e.isDir && VirtualPath.depth(e.path) < maxDepth {
                    more.append(TaskItem(task: id, seq: nextSeq, path: e.path, isDir: true, size: 0))
                    nextSeq += 1
                }
                if !more.isEmpty { try await store.addTaskItems(more) }
                try await store.setTaskItem(task: id, seq: item.seq, state: .done, note: "")
                pending += more
                seen += found.count
            } catch let e where !(e is CancellationError) && !Task.isCancelled {
                let why = FSError.from(e).message
                failed.append("\(folder): \(why)")
                try await store.setTaskItem(task: id, seq: item.seq, state: .failed, note: why)
            }
            doneFolders += 1
            i += 1
            // Memory stays bounded however big the tree: what was walked is let go of now and then.
            if i >= 4096 { pending.removeFirst(i); i = 0 }
            report()
        }
        // Fresh statistics for the planner (PostgreSQL): autovacuum may not have looked at the new rows yet, and
        // a plan made on guesses may read every match of a common word to show one page.
        if doneFolders >= 1000 { try? await store.indexAnalyze() }
        let entries = try await store.indexCount()
        run.update { $0.status = "\(entries) entries in the index, \(doneFolders) folders listed" }
        try await store.setDriverState(Self.indexLastDoneKey, String(Int64(Date().timeIntervalSince1970 * 1000)))
        if !failed.isEmpty {
            // The task ends failed (not retried on its own), with the folders and why; a retry lists them again.
            throw FSError.conflict("\(failed.count) folder\(failed.count == 1 ? "" : "s") could not be listed (what the index had there is kept): "
                                   + failed.prefix(3).joined(separator: "; ") + (failed.count > 3 ? "; …" : "") + ". Retry the task to list them again.")
        }
    }

    static let searchOffMessage = "search is off: an administrator can turn it on in Settings (search_index = database)"

    /// Every minute: when `index_update_hours` have passed since the last scheduled update (agreed on by every
    /// instance through the store), an update of the whole tree is queued, unless one is waiting or running.
    func startIndexSchedule() {
        let loop = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(60))
                guard let self else { return }
                await self.scheduleIndexUpdate()
            }
        }
        indexScheduleBox.withLockedValue { $0?.cancel(); $0 = loop }
    }

    func scheduleIndexUpdate(now: Date = Date()) async {
        // (At most about 11 years: a bigger value would overflow the milliseconds.)
        let hours = min(Double(setting("index_update_hours") ?? "") ?? 24, 100_000)
        guard indexPolicy.enabled, hours.isFinite, hours > 0 else { return }
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        do {
            try await store.withLock("search-index-schedule", wait: .seconds(5)) { [self] in
                let next = try await store.driverState(Self.indexNextUpdateKey).flatMap { Int64($0) }
                let step = Int64(hours * 3_600_000)
                guard let next else {
                    // First time: the next one is one period from now (a build was just queued or is asked for).
                    try await store.setDriverState(Self.indexNextUpdateKey, String(nowMs + step))
                    return
                }
                guard nowMs >= next else { return }
                try await store.setDriverState(Self.indexNextUpdateKey, String(nowMs + step))
                guard try await openIndexTasks().isEmpty else { return }
                guard let admin = try await store.users().first(where: { $0.user.isAdmin })?.user else { return }
                try await queueIndexWalk(admin, paths: ["/"], maxDepth: -1, clear: false)
                logger.info("queued the scheduled search index update (every \(hours) h, index_update_hours)")
            }
        } catch {
            logger.warning("could not schedule the search index update: \(ErrorText.describe(error))")
        }
    }
}

extension ServerState {
    /// After a storage was created or changed: when its place in the tree or its `disable_index` changed, its
    /// entries go, and (search on, the storage indexed) its folder is walked again.
    func storageIndexChanged(_ record: StorageRecord, old: StorageRecord?) async {
        if let old, old.mountPath == record.mountPath, old.disableIndex == record.disableIndex, old.disabled == record.disabled { return }
        do {
            if old != nil { try await store.indexRemoveStorage(record.id) }
            // The folders above the mount point (old and new) may have gained or lost a folder that exists only
            // because of the mount.
            await reconcileMountAncestors([old?.mountPath, record.mountPath].compactMap { $0 })
            guard indexPolicy.enabled, !record.disableIndex, !record.disabled,
                  let admin = try await store.users().first(where: { $0.user.isAdmin })?.user else { return }
            let path = (try? VirtualPath.normalize(record.mountPath)) ?? record.mountPath
            try await queueIndexWalk(admin, paths: [path], maxDepth: -1, clear: false)
        } catch {
            logger.warning("the search index did not follow the change of storage \(record.mountPath): \(ErrorText.describe(error))")
        }
    }

    /// After a storage was deleted: its entries go, and the folders above its mount point are listed again.
    func storageDeletedFromIndex(_ record: StorageRecord) async {
        do { try await store.indexRemoveStorage(record.id) } catch {
            logger.warning("the search index still has the entries of the deleted storage \(record.mountPath): \(ErrorText.describe(error))")
        }
        await reconcileMountAncestors([record.mountPath])
    }

    /// Lists again every folder above the mount paths (deepest first), so that folders shown only because a
    /// storage is mounted below them come and go with the mount. A folder no storage holds any more goes.
    func reconcileMountAncestors(_ mountPaths: [String]) async {
        let policy = indexPolicy
        guard policy.enabled else { return }
        var folders = Set<String>()
        for m in mountPaths {
            guard let path = try? VirtualPath.normalize(m), path != "/" else { continue }
            var p = VirtualPath.parent(path)
            while true {
                folders.insert(p)
                if p == "/" { break }
                p = VirtualPath.parent(p)
            }
        }
        for folder in folders.sorted(by: { VirtualPath.depth($0) > VirtualPath.depth($1) }) {
            do {
                let listing = try await fs.listUncached(folder)
                if let m = listing.storage, !m.isWorking { continue }
                try await store.indexReplaceFolder(folder, entries: indexer.entries(in: folder, listing.objects, policy: policy))
            } catch {
                if folder != "/", fs.resolve(folder) == nil, fs.virtualFolders(in: VirtualPath.parent(folder)).allSatisfy({ $0.name != VirtualPath.base(folder) }) {
                    try? await store.indexRemove(below: folder)
                }
            }
        }
    }

    /// After settings were saved: newly ignored paths leave the index; search turned on rebuilds the index (writes
    /// made while it was off were not followed), turned off stops the walks.
    func searchSettingChanged(wasOn: Bool) async {
        let on = indexPolicy.enabled
        if on {
            for path in indexPolicy.ignored { try? await store.indexRemove(below: path) }
        }
        guard on != wasOn else { return }
        do {
            if !on { return try await stopIndexing() }
            guard try await openIndexTasks().isEmpty,
                  let admin = try await store.users().first(where: { $0.user.isAdmin })?.user else { return }
            try await queueIndexWalk(admin, paths: ["/"], maxDepth: -1, clear: true)
        } catch {
            logger.warning("could not start the search index: \(ErrorText.describe(error))")
        }
    }
}
