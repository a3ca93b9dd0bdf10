import Foundation
import PanListCore
import PanListStore

/// What to do with a name that exists at the destination of a copy or move task.
enum ConflictPolicy: String, Codable, Sendable {
    /// The task's own top-level name must not exist (checked when queued and when it first runs).
    case fail
    /// Existing files are replaced; folders are merged.
    case overwrite
    /// Existing files are kept (reported as skipped); folders are merged.
    case skip
    /// Folders are merged; a file already there with the same size is kept, a different one replaced.
    case merge
}

/// A copy or move of one file or folder (`src`) into the folder `dst`, across storages.
struct TransferParams: Codable, Sendable {
    var src: String
    var dst: String
    var conflict: ConflictPolicy
}

extension ServerState {
    /// Registers the kinds of tasks and starts running them.
    func startTasks() async {
        await tasks.register(transferKind(move: false))
        await tasks.register(transferKind(move: true))
        await tasks.register(uploadKind())
        await tasks.register(offlineDownloadKind())
        await tasks.register(offlineTransferKind())
        await tasks.register(indexKind())
        await tasks.register(decompressKind())
        await sweepTaskSpool()
        await sweepOfflineFolders()
        await tasks.start()
        startUploadSweeper()
        startIndexSchedule()
    }

    /// The creator of a task as the store has them now (a user deleted, disabled or restricted since the task
    /// was queued makes it fail cleanly).
    func taskUser(_ record: TaskRecord) async throws -> User {
        guard let stored = try await store.user(id: record.creator_id) else {
            throw FSError.permissionDenied("the user who queued this task (\(record.creator)) no longer exists")
        }
        let user = stored.user
        if user.disabled { throw FSError.permissionDenied("the user who queued this task (\(user.username)) is disabled") }
        return user
    }

    /// The checks of `check` that hold without the folder password (which was checked when the task was queued):
    /// the base path, visibility and the permission bit (for writing, or a folder rule granting it), as the user
    /// has them now.
    func recheck(_ user: User, _ action: Action, _ path: String) throws(FSError) {
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard VirtualPath.isWithin(path, base) else {
            throw .permissionDenied("\(user.username) may no longer reach \(path): it is outside their base path now")
        }
        try Access.checkVisible(user, path, rules: rules)
        guard Access.can(user, action) || (action == .write && rules.grantsWrite(path)) else {
            throw .permissionDenied("\(user.username) may no longer \(action.words) \(path)")
        }
    }

    /// Whether `src` and the folder `dst` lie on different storages (a copy or move between them is a task).
    func crossesStorages(_ src: String, _ dst: String) -> Bool {
        guard let (a, _) = fs.resolve(src), let (b, _) = fs.resolve(dst) else { return false }
        return a.id != b.id
    }

    /// Queues a copy or move of `src` into the folder `dst` for `user`; the name at the destination must not
    /// exist unless `conflict` says what to do with it.
    /// What must hold before a copy or move between storages is queued (said at once, nothing queued):
    /// the source exists, the destination is a folder, the name is free (unless `conflict` says otherwise),
    /// a storage's root is not moved, and the folder rules can go along. Returns the source.
    @discardableResult
    func checkTransferable(_ user: User, move: Bool, src: String, dst: String, conflict: ConflictPolicy) async throws -> Obj {
        guard !VirtualPath.isWithin(dst, src) else { throw FSError.badRequest("cannot \(move ? "move" : "copy") \(Access.userPath(src, for: user)) into itself") }
        let (obj, _) = try await fs.get(src)
        if move, let (_, actual) = fs.resolve(src), actual == "/" {
            throw FSError.notSupported("a storage's root cannot be moved; move what is in it")
        }
        guard try await fs.get(dst).0.isDir else { throw FSError.conflict("\(Access.userPath(dst, for: user)) is not a folder") }
        let target = VirtualPath.join(dst, VirtualPath.base(src))
        if conflict == .fail, (try? await fs.get(target)) != nil {
            throw FSError.alreadyExists("\(Access.userPath(target, for: user)) already exists; choose to overwrite, skip existing files or merge")
        }
        try checkRulesCanTravel(from: src, to: target)
        return obj
    }

    func queueTransfer(_ user: User, move: Bool, src: String, dst: String, conflict: ConflictPolicy) async throws -> TaskRecord {
        let obj = try await checkTransferable(user, move: move, src: src, dst: dst, conflict: conflict)
        let params = try JSONEncoder().encode(TransferParams(src: src, dst: dst, conflict: conflict))
        let verb = move ? "move" : "copy"
        let name = "\(verb) [\(Access.userPath(src, for: user))] to [\(Access.userPath(dst, for: user))]" + (obj.isDir ? " (folder)" : "")
        let kind = move ? "move" : "copy"
        let record = TaskRecord(id: RandomString.make(16), kind: kind, name: name, creator: user,
                                params: String(decoding: params, as: UTF8.self))
        return try await tasks.submit(record)
    }

    /// The copy and move kinds: a tree of work (folders first, then each file once), kept in the store as it
    /// goes, so that a run taken up again does only what is left.
    func transferKind(move: Bool) -> TaskKind {
        TaskKind(name: move ? "move" : "copy", run: { [self] run in
            try await inCreatorsTerms(run) { try await runTransfer(run, move: move) }
        })
    }

    /// Where an upload of `item` keeps its checkpoint: the item's row. A run that was stopped (taken over,
    /// canceled) leaves it to the next one.
    func checkpoint(of item: TaskItem, in run: TaskRun) -> UploadCheckpoint {
        UploadCheckpoint(saved: item.checkpoint) { [store] note in
            guard run.stop == nil else { return }
            try? await store.setTaskItemCheckpoint(task: item.task_id, seq: item.seq, checkpoint: note)
        }
    }

    /// Runs `body`; an error it throws names paths as the task's creator sees them (under their base
    /// folder), since the task's error is shown to them.
    func inCreatorsTerms(_ run: TaskRun, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let e as FSError {
            guard let stored = try? await store.user(id: run.record.creator_id) else { throw e }
            throw e.mapMessage { Access.inUserTerms($0, for: stored.user) }
        }
    }

    private func runTransfer(_ run: TaskRun, move: Bool) async throws {
        let p = try JSONDecoder().decode(TransferParams.self, from: run.params)
        let id = run.record.id
        let action: Action = move ? .move : .copy
        // Changes of users or rules from here on make the run look at its creator again (planning may be long).
        var accessSeen = accessChanges.withLockedValue { $0 }
        let user = try await taskUser(run.record)
        try recheck(user, action, p.src)
        try recheck(user, action, p.dst)
        let target = VirtualPath.join(p.dst, VirtualPath.base(p.src))
        var items = try await store.taskItems(task: id)
        let fresh = items.isEmpty
        if fresh {
            run.update { $0.status = "listing what to \(move ? "move" : "copy")" }
            if p.conflict == .fail, (try? await fs.get(target)) != nil {
                throw FSError.alreadyExists("\(Access.userPath(target, for: user)) already exists")
            }
            items = try await plan(p.src, task: id, user: user)
            try await store.addTaskItems(items)
            // Folder rules go along before any file does (a rule already at the destination stays as it is).
            try checkRulesCanTravel(from: p.src, to: target)
            do {
                _ = try await carryRules(from: p.src, to: target)
            } catch let e as FSError {
                guard case .alreadyExists = e else { throw e }
            }
        }
        let files = items.filter { !$0.is_dir }
        let finished = files.filter { $0.itemState != .pending }
        run.update {
            $0.totalFiles = Int64(files.count)
            $0.totalBytes = files.reduce(0) { $0 + $1.size }
            $0.doneFiles = Int64(finished.count)
            $0.doneBytes = finished.reduce(0) { $0 + $1.size }
        }
        var index = finished.count
        var kept = items.contains { $0.itemState == .skipped || $0.itemState == .failed }
        // Folders that could not be made (a file holds the name): what they hold is kept back too.
        var blocked = Set(items.filter { $0.is_dir && $0.itemState == .failed }.map(\.path))
        func inBlocked(_ path: String) -> String? {
            blocked.first { $0.isEmpty || path.hasPrefix($0 + "/") }
        }
        for item in items where item.itemState == .pending {
            try Task.checkCancellation()
            let from = item.path.isEmpty ? p.src : VirtualPath.join(p.src, item.path)
            let to = item.path.isEmpty ? target : VirtualPath.join(target, item.path)
            let shown = item.path.isEmpty ? VirtualPath.base(p.src) : item.path
            if let folder = inBlocked(item.path) {
                let note = "not \(move ? "moved" : "copied"): \(folder.isEmpty ? VirtualPath.base(p.src) : folder) could not be made"
                try await store.setTaskItem(task: id, seq: item.seq, state: .skipped, note: note)
                if !item.is_dir { run.update { $0.doneFiles += 1; $0.doneBytes += item.size } }
                kept = true
                continue
            }
            if item.is_dir {
                run.update { $0.current = shown; $0.status = "creating \(shown)" }
                if let existing = try? await fs.get(to).0, !existing.isDir {
                    if item.path.isEmpty {
                        throw FSError.conflict("\(Access.userPath(target, for: user)) is a file; a folder cannot be \(move ? "moved" : "copied") onto it")
                    }
                    try await store.setTaskItem(task: id, seq: item.seq, state: .failed, note: "a file of that name is there; this folder was not made")
                    blocked.insert(item.path)
                    kept = true
                    continue
                }
                try await fs.makeDir(to)
                try await store.setTaskItem(task: id, seq: item.seq, state: .done, note: "")
                continue
            }
            index += 1
            let n = index
            // Long runs look at the creator again when users or folder rules change, and every 100 files
            // (disabled or restricted meanwhile: stop).
            let accessNow = accessChanges.withLockedValue { $0 }
            if n % 100 == 0 || accessNow != accessSeen {
                accessSeen = accessNow
                let now = try await taskUser(run.record)
                try recheck(now, action, p.src)
                try recheck(now, action, p.dst)
                try recheck(now, action, from)
                try recheck(now, action, to)
            }
            run.update { $0.current = shown; $0.status = "\(move ? "moving" : "copying") \(shown) (\(n) of \(files.count))" }
            let existing = try? await fs.get(to).0
            // A move stopped after the file arrived and its source went, before the item was marked: done.
            if move, let existing, !existing.isDir, existing.size == item.size, (try? await fs.get(from)) == nil {
                try await store.setTaskItem(task: id, seq: item.seq, state: .done, note: "")
                run.update { $0.doneFiles += 1; $0.doneBytes += item.size }
                continue
            }
            if let existing {
                var keep: String?
                if existing.isDir { keep = "a folder of that name is there" }
                else if p.conflict == .skip { keep = "already there; kept" }
                else if p.conflict == .merge, existing.size == item.size { keep = "already there with the same size; kept" }
                if let keep {
                    try await store.setTaskItem(task: id, seq: item.seq, state: .skipped, note: keep)
                    kept = true
                    run.update { $0.doneFiles += 1; $0.doneBytes += item.size }
                    continue
                }
            }
            let before = run.progress.doneBytes
            do {
                // A 123 Open upload notes its session and acknowledged slices here, so a retry or a restart
                // sends only the rest of this file.
                try await fs.copyFile(from, toDir: VirtualPath.parent(to), overwrite: true, checkpoint: checkpoint(of: item, in: run)) {
                    try run.addBytes($0)
                }
            } catch {
                run.update { $0.doneBytes = before }
                // The writer calls a broken source stream a bad upload; in a copy it is a passing failure.
                if run.stop == nil, case .badRequest(let m)? = error as? FSError {
                    throw FSError.unavailable("copying \(shown) failed: \(m)")
                }
                throw error
            }
            if move { try await remove(from) }
            try await store.setTaskItem(task: id, seq: item.seq, state: .done, note: "")
            run.update { $0.doneFiles += 1; $0.doneBytes = before + item.size }
        }
        try? await store.copyDeadProperties(from: p.src, to: target)
        if move {
            // The files went one by one; the folders go, deepest first, once empty. What was kept back (and
            // anything the plan did not hold: hidden names, files added meanwhile) stays where it was.
            for item in items.reversed() where item.is_dir {
                // A folder that could not be made at the destination stays, even when empty.
                if blocked.contains(item.path) || inBlocked(item.path) != nil { kept = true; continue }
                let dir = item.path.isEmpty ? p.src : VirtualPath.join(p.src, item.path)
                guard let listing = try? await fs.list(dir, refresh: true) else { continue }
                if listing.objects.isEmpty { try await remove(dir) } else { kept = true }
            }
            if !kept { await dropRules(of: p.src) }
        }
        run.update { $0.current = ""; $0.status = kept ? "done; some files were kept back (see the list)" : "done" }
    }

    /// The work of a copy of `src`: itself, then what it holds, folders before their contents; names hidden
    /// from the user stay behind.
    private func plan(_ src: String, task: String, user: User) async throws -> [TaskItem] {
        let (root, _) = try await fs.get(src)
        var items = [TaskItem(task: task, seq: 0, path: "", isDir: root.isDir, size: root.isDir ? 0 : root.size)]
        guard root.isDir else { return items }
        var queue = [""], next = 0
        while next < queue.count {
            let rel = queue[next]
            next += 1
            let dir = rel.isEmpty ? src : VirtualPath.join(src, rel)
            try Task.checkCancellation()
            let listing = try await fs.list(dir, refresh: true)
            let visible = Access.visibility(user, in: dir, rules: rules)
            for o in listing.objects where visible?(o.name) ?? true {
                let childRel = rel.isEmpty ? o.name : rel + "/" + o.name
                items.append(TaskItem(task: task, seq: items.count, path: childRel, isDir: o.isDir, size: o.isDir ? 0 : o.size))
                if o.isDir { queue.append(childRel) }
            }
        }
        return items
    }
}

extension Action {
    /// The verb of a permission, for messages.
    var words: String {
        switch self {
        case .copy: "copy"
        case .move: "move"
        case .remove: "delete"
        case .rename: "rename"
        default: "write to"
        }
    }
}
