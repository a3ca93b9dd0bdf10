import Foundation
import PanListCore
import PanListStore
import _NIOFileSystem

/// An upload sent with `As-Task: true`: the body was spooled to this instance's disk, and the task stores it.
struct UploadParams: Codable, Sendable {
    var dir: String
    var name: String
    /// The spooled body's file name in `taskSpool`.
    var spool: String
    var size: Int64
    var modifiedMs: Int64?
    var md5: String?
    var sha1: String?
    var sha256: String?
    var mimeType: String?
    var overwrite: Bool
}

extension ServerState {
    /// Where spooled task bodies wait (`temp_dir/tasks`; kept by the start-up sweep while their task lives).
    var taskSpool: String { config.tempDir + "/" + Bootstrap.taskSpoolName }

    /// Queues the upload of a spooled body (the spool file now belongs to the task). The task is pinned to this
    /// instance, whose disk holds the body.
    func queueUpload(_ user: User, dir: String, stream: UploadStream, spool: String, size: Int64, overwrite: Bool) async throws -> TaskRecord {
        let params = UploadParams(dir: dir, name: stream.name, spool: spool, size: size,
                                  modifiedMs: stream.modified.map { Int64($0.timeIntervalSince1970 * 1000) },
                                  md5: stream.md5, sha1: stream.sha1, sha256: stream.sha256, mimeType: stream.mimeType,
                                  overwrite: overwrite)
        let shown = Access.userPath(VirtualPath.join(dir, stream.name), for: user)
        var record = TaskRecord(id: RandomString.make(16), kind: "upload", name: "upload [\(shown)]", creator: user,
                                params: String(decoding: try JSONEncoder().encode(params), as: UTF8.self),
                                pinned: config.instanceID)
        record.total_bytes = size
        record.total_files = 1
        return try await tasks.submit(record)
    }

    func uploadKind() -> TaskKind {
        TaskKind(name: "upload", run: { [self] run in try await inCreatorsTerms(run) { try await runUpload(run) } }, discard: { [self] record in
            guard let p = try? JSONDecoder().decode(UploadParams.self, from: Data(record.params.utf8)) else { return }
            _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(taskSpool + "/" + p.spool), recursively: false)
        })
    }

    private func runUpload(_ run: TaskRun) async throws {
        let p = try JSONDecoder().decode(UploadParams.self, from: run.params)
        let user = try await taskUser(run.record)
        let target = VirtualPath.join(p.dir, p.name)
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard VirtualPath.isWithin(target, base) else {
            throw FSError.permissionDenied("\(user.username) may no longer reach \(p.dir): it is outside their base path now")
        }
        try Access.checkVisible(user, target, rules: rules)
        guard Access.can(user, .write) || rules.grantsWrite(p.dir) else {
            throw FSError.permissionDenied("\(user.username) may no longer upload to \(Access.userPath(p.dir, for: user))")
        }
        let path = taskSpool + "/" + p.spool
        guard FileManager.default.fileExists(atPath: path) else {
            throw FSError.notFound("the uploaded file was discarded (the task was canceled or failed); upload it again")
        }
        run.update { $0.totalBytes = p.size; $0.totalFiles = 1; $0.doneBytes = 0; $0.current = p.name; $0.status = "storing \(p.name)" }
        // One item, the file: it keeps the upload's checkpoint (a 123 Open session continues on a retry).
        let id = run.record.id
        let item: TaskItem
        if let stored = try await store.taskItems(task: id).first {
            item = stored
        } else {
            item = TaskItem(task: id, seq: 0, path: "", isDir: false, size: p.size)
            try await store.addTaskItems([item])
        }
        let checkpoint = checkpoint(of: item, in: run)
        try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
            let body = ByteStream(CountingBytes(base: ByteStream(handle.readChunks(chunkLength: .mebibytes(1))), counted: { try run.addBytes($0) }))
            var stream = UploadStream(name: p.name, size: p.size, modified: p.modifiedMs.map { Date(timeIntervalSince1970: Double($0) / 1000) },
                                      mimeType: p.mimeType, md5: p.md5, sha1: p.sha1, sha256: p.sha256, body: body)
            stream.checkpoint = checkpoint
            try await fs.put(stream, into: p.dir, overwrite: p.overwrite)
        }
        try? await store.setTaskItem(task: id, seq: 0, state: .done, note: "")
        run.update { $0.doneFiles = 1; $0.doneBytes = p.size; $0.current = ""; $0.status = "done" }
        _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(path), recursively: false)
    }

    /// Deletes spooled bodies whose task is gone or finished (a task deleted on another instance, a crash).
    func sweepTaskSpool() async {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: taskSpool), !names.isEmpty else { return }
        guard let live = try? await store.tasks(kind: "upload", states: TaskState.undone, creator: nil) else { return }
        let keep = Set(live.compactMap { try? JSONDecoder().decode(UploadParams.self, from: Data($0.params.utf8)).spool })
        for name in names where !keep.contains(name) { try? fm.removeItem(atPath: taskSpool + "/" + name) }
    }
}
