import Foundation
import NIOConcurrencyHelpers
import NIOCore
import PanListArchive
import PanListCore
import PanListStore

/// An archive (or one folder inside it) extracted into a folder, as a task: each file member is streamed from
/// libarchive straight into the destination storage's writer (no temporary copy of the archive or of a member),
/// which makes a file appear only once it is complete. The archive is listed first, so an unsafe member (a
/// path out of the archive, an absolute path), too many entries, too much declared size, a wrong password or a
/// damaged directory are said before anything is written; a member that expands far beyond its compressed size
/// (a bomb) stops the task while it extracts, and the file being written is dropped. Links inside the archive
/// (symbolic and hard links to other members are not made on storages) and special files are skipped and said
/// in the task's status, and so are paths the task's creator could not upload to (a name hidden there by a
/// folder rule, a folder behind another folder password than the destination's). A run taken up again after a
/// restart starts over: files already there are replaced (`overwrite`) or kept. The archive's password is kept
/// with the task while it may run, and taken out of the store when it has ended (done, failed, canceled).
struct DecompressParams: Codable, Sendable {
    var src: String
    var dst: String
    /// The folder inside the archive to extract ("": all of it); its contents land in `dst`.
    var inner: String
    /// The archive's password (kept with the task in the store, never shown in task lists).
    var password: String
    var overwrite: Bool
    /// Into a new folder named after the archive (without its extension) inside `dst`.
    var newFolder: Bool
}

extension ServerState {
    static let decompressKind = "decompress"

    func decompressKind() -> TaskKind {
        var kind = TaskKind(name: Self.decompressKind, run: { [self] run in
            try await inCreatorsTerms(run) { try await runDecompress(run) }
            await forgetArchivePassword(run.record)
        })
        kind.discard = { [self] record in await forgetArchivePassword(record) }
        return kind
    }

    /// Takes the archive's password out of a task that will not run again.
    func forgetArchivePassword(_ record: TaskRecord) async {
        guard var p = try? JSONDecoder().decode(DecompressParams.self, from: Data(record.params.utf8)), !p.password.isEmpty,
              let data = try? JSONEncoder().encode({ p.password = ""; return p }()) else { return }
        do { try await store.setTaskParams(id: record.id, params: String(decoding: data, as: UTF8.self)) } catch {
            logger.warning("could not take the archive password out of task \(record.id): \(ErrorText.describe(error))")
        }
    }

    /// Refuses, before anything is written, what the listing already shows would stop the extraction: a
    /// symbolic link pointing out of the folder, contents declared larger than the server extracts.
    static func checkExtractable(_ members: [ArchiveMember], limits: ArchiveLimits) throws {
        var total: Int64 = 0
        for m in members {
            if m.isSymlink, let problem = ArchivePath.symlinkProblem(memberPath: m.path, target: m.linkTarget ?? "") {
                throw Archives.fsError(ArchiveError.unsafeMember(path: m.path, reason: problem))
            }
            if m.isFile { total += m.size }
        }
        if total > limits.maxTotalSize { throw Archives.fsError(ArchiveError.tooLarge(limit: limits.maxTotalSize)) }
    }

    /// The folder name an archive extracts into: its name without the archive's extension.
    static func extractedFolderName(_ archive: String) -> String {
        let lower = archive.lowercased()
        let ext = ArchiveReader.extensions.filter { lower.hasSuffix("." + $0) }.max { $0.count < $1.count }
        guard let ext, archive.count > ext.count + 1 else { return archive + " (extracted)" }
        return String(archive.dropLast(ext.count + 1))
    }

    /// Checks a decompression and queues it: the user may read archives at `src` and extract them, and write
    /// into `dst`; the archive opens with the password and is safe (listed now, so a wrong password, a damaged
    /// archive or an unsafe member is said at once and nothing is queued).
    func queueDecompress(_ user: User, params p: DecompressParams, clientIP: String) async throws -> TaskRecord {
        guard try await fs.get(p.dst).0.isDir else { throw FSError.conflict("\(Access.userPath(p.dst, for: user)) is not a folder") }
        let (members, _) = try await Archives(state: self).members(p.src, password: p.password.isEmpty ? nil : p.password, clientIP: clientIP)
        if !p.inner.isEmpty, !members.contains(where: { $0.path.hasPrefix(p.inner + "/") || ($0.path == p.inner && $0.isDirectory) }) {
            throw FSError.objectNotFound("/" + p.inner)
        }
        try Self.checkExtractable(members, limits: Archives.limits)
        let params = try JSONEncoder().encode(p)
        let what = Access.userPath(p.src, for: user) + (p.inner.isEmpty ? "" : " › " + p.inner)
        let record = TaskRecord(id: RandomString.make(16), kind: Self.decompressKind,
                                name: "extract [\(what)] to [\(Access.userPath(p.dst, for: user))]", creator: user,
                                params: String(decoding: params, as: UTF8.self))
        return try await tasks.submit(record)
    }

    private func runDecompress(_ run: TaskRun) async throws {
        let p = try JSONDecoder().decode(DecompressParams.self, from: run.params)
        let user = try await taskUser(run.record)
        try recheck(user, .readArchive, p.src)
        try recheck(user, .decompress, p.src)
        try recheck(user, .write, p.dst)
        let password = p.password.isEmpty ? nil : p.password
        let archives = Archives(state: self)
        run.update { $0.status = "reading the archive's list of files" }
        let (members, _) = try await archives.members(p.src, password: password, clientIP: "")
        let prefix = p.inner.isEmpty ? "" : p.inner + "/"
        let chosen = members.filter { $0.path.hasPrefix(prefix) && $0.path.count > prefix.count }
        let files = chosen.filter { $0.isFile }
        try Self.checkExtractable(members, limits: Archives.limits)
        let total = files.reduce(Int64(0)) { $0 + $1.size }
        run.update { $0.totalFiles = Int64(files.count); $0.totalBytes = total; $0.doneFiles = 0; $0.doneBytes = 0 }
        let root = p.newFolder ? VirtualPath.join(p.dst, Self.extractedFolderName(VirtualPath.base(p.src))) : p.dst
        // Each path made below the destination is checked as an upload to it would be (the folder password given
        // when the task was queued is the destination's; a folder below it with a password of its own is not
        // entered). A refused path reads "not found" whether or not something is there.
        let rules = self.rules
        let provenGuard = rules.passwordRule(for: p.dst)?.path
        let free = user.isAdmin || user.permission.contains(.accessWithoutPassword)
        let mayWrite = Access.can(user, .write)
        let mayReplace = Access.can(user, .replace)
        /// Whether a password other than the destination's guards `path` itself.
        @Sendable func otherGuard(_ path: String) -> Bool {
            guard !free, let rule = rules.passwordRule(for: path) else { return false }
            return rule.path != provenGuard
        }
        if p.newFolder {
            try VirtualPath.validateName(VirtualPath.base(root))
            try Access.checkVisible(user, root, rules: rules)
            if otherGuard(root) { throw FSError.permissionDenied(Access.passwordMessage) }
        }
        _ = try await fs.makeDir(root)
        let (source, _) = try await archives.source(p.src, clientIP: "")
        let fs = self.fs
        /// Why `rel` (below `root`) is not written, or nil: each name on the way is made in its folder, so each
        /// folder is checked as an upload into it would be, and each name must be visible and not guarded by a
        /// password of its own.
        @Sendable func refusal(_ rel: String) -> String? {
            var at = root
            for part in rel.split(separator: "/") {
                let folder = at
                at = VirtualPath.join(folder, String(part))
                if (try? Access.checkVisible(user, at, rules: rules)) == nil { return "not found" }
                if otherGuard(folder) || otherGuard(at) { return Access.passwordMessage }
                if !mayWrite, !rules.grantsWrite(folder) { return "no permission to write there" }
            }
            return nil
        }
        let skipped = NIOLockedValueBox<[String]>([])
        let overwrite = p.overwrite
        // Folders are made as the archive names them (and any it only implies, on the way to a file).
        let made = NIOLockedValueBox<Set<String>>([root])
        @Sendable func folder(_ rel: String) async throws -> String {
            let path = rel.isEmpty ? root : VirtualPath.join(root, rel)
            if made.withLockedValue({ $0.contains(path) }) { return path }
            let existing = try? await fs.get(path).0
            if let existing, !existing.isDir { throw FSError.conflict("\(rel) is a file at the destination; the folder of that name was not made") }
            if existing == nil { _ = try await fs.makeDir(path) }
            made.withLockedValue { _ = $0.insert(path) }
            return path
        }
        /// The member's path below the extracted folder, each name checked as a storage name.
        @Sendable func relative(_ m: ArchiveMember) -> String? {
            let rel = String(m.path.dropFirst(prefix.count))
            for part in rel.split(separator: "/") where (try? VirtualPath.validateName(String(part))) == nil { return nil }
            return rel
        }
        let counted: @Sendable (Int) throws -> Void = { try run.addBytes($0) }
        try await Archives.run(.extract) { isCancelled in
            try ArchiveReader.extractAll(source, password: password, limits: Archives.limits, isCancelled: isCancelled,
                                         handler: Extractor(isCancelled: isCancelled, choose: { m in
                guard m.path.hasPrefix(prefix), m.path.count > prefix.count else { return .skip }
                guard let rel = relative(m) else {
                    skipped.withLockedValue { $0.append("\(m.path): not a name a storage takes") }
                    return .skip
                }
                if let why = refusal(rel) {
                    skipped.withLockedValue { $0.append("\(rel): \(why)") }
                    return .skip
                }
                if m.isDirectory { return .folder(rel) }
                guard m.isFile else {
                    skipped.withLockedValue { $0.append("\(rel): a link") }
                    return .skip
                }
                return .file(rel)
            }, folder: { rel in
                _ = try Blocking.wait { try await folder(rel) }
            }, file: { rel, member, body in
                let slash = rel.lastIndex(of: "/")
                let dir = try await folder(slash.map { String(rel[..<$0]) } ?? "")
                let name = slash.map { String(rel[rel.index(after: $0)...]) } ?? rel
                let target = VirtualPath.join(dir, name)
                // Over an existing file: only with `overwrite`, and (as for uploads) the write bit itself, a folder
                // rule's write grant only letting people add files.
                if !overwrite || !mayReplace, let there = try? await fs.get(target).0 {
                    let why = there.isDir ? "a folder of that name is there"
                        : overwrite ? "already there; replacing it needs the write permission" : "already there; kept"
                    skipped.withLockedValue { $0.append("\(rel): \(why)") }
                    return false
                }
                run.update { $0.current = rel; $0.status = "extracting \(rel)" }
                let stream = UploadStream(name: name, size: member.sizeKnown ? member.size : nil, modified: member.modified,
                                          body: ByteStream(CountingBytes(base: ByteStream(body), counted: counted)))
                _ = try await fs.put(stream, into: dir, overwrite: true)
                run.update { $0.doneFiles += 1 }
                return true
            }))
        }
        let notes = skipped.withLockedValue { $0 }
        run.update {
            $0.current = ""
            $0.doneBytes = $0.totalBytes
            $0.status = notes.isEmpty ? "done" : "done; \(notes.count) skipped: " + notes.prefix(10).joined(separator: "; ") + (notes.count > 10 ? "; …" : "")
        }
    }
}

/// Runs async work from a thread of `Archives.pool` and waits for it (the pool's threads are not the
/// cooperative ones the work runs on).
enum Blocking {
    /// `timeout`: the work is cancelled and `timedOut` thrown when it takes longer.
    static func wait<R: Sendable>(timeout: DispatchTimeInterval? = nil, timedOut: @autoclosure () -> any Error = FSError.internalError("timed out"),
                                  _ work: @escaping @Sendable () async throws -> R) throws -> R {
        let done = DispatchSemaphore(value: 0)
        let result = NIOLockedValueBox<Result<R, any Error>?>(nil)
        let task = Task {
            let r: Result<R, any Error>
            do { r = .success(try await work()) } catch { r = .failure(error) }
            result.withLockedValue { $0 = r }
            done.signal()
        }
        if let timeout {
            if done.wait(timeout: .now() + timeout) == .timedOut { task.cancel(); throw timedOut() }
        } else {
            done.wait()
        }
        guard let r = result.withLockedValue({ $0 }) else { throw FSError.internalError("a step of the extraction ended without an answer") }
        return try r.get()
    }
}

/// Hands each member of `extractAll` to the task: a folder is made, a file's bytes go through a `ChunkPipe` to
/// the storage's writer, which runs (as async work) while libarchive fills the pipe. The writer is cancelled
/// when the extraction is (looked at every second while waiting for it) or stops in the middle of a file.
final class Extractor: ArchiveExtractHandler, @unchecked Sendable {
    enum Choice { case skip, folder(String), file(String) }
    let isCancelled: () -> Bool
    let choose: (ArchiveMember) -> Choice
    let folder: (String) throws -> Void
    /// Writes the member from the byte stream; returns false when it was skipped (the stream is not read).
    let file: @Sendable (String, ArchiveMember, AsyncThrowingStream<ByteBuffer, any Error>) async throws -> Bool
    /// The current file: its pipe, the writer and its outcome.
    private var current: (pipe: ChunkPipe, writer: Task<Void, Never>, done: DispatchSemaphore, outcome: NIOLockedValueBox<Outcome>)?

    enum Outcome { case writing, skipped, written, failed(any Error) }

    init(isCancelled: @escaping () -> Bool, choose: @escaping (ArchiveMember) -> Choice, folder: @escaping (String) throws -> Void,
         file: @escaping @Sendable (String, ArchiveMember, AsyncThrowingStream<ByteBuffer, any Error>) async throws -> Bool) {
        self.isCancelled = isCancelled
        self.choose = choose
        self.folder = folder
        self.file = file
    }

    func entry(_ member: ArchiveMember) throws -> ArchiveSink? {
        switch choose(member) {
        case .skip: return nil
        case .folder(let rel):
            try folder(rel)
            return nil
        case .file(let rel):
            let pipe = ChunkPipe()
            let done = DispatchSemaphore(value: 0)
            let outcome = NIOLockedValueBox(Outcome.writing)
            let write = file
            let reader = PipeReader(pipe: pipe)
            // The writer runs as async work while this thread feeds the pipe; whenever it ends, the pipe is let go
            // (a producer must never wait for room a writer that ended will not make).
            let writer = Task {
                let o: Outcome
                do { o = try await write(rel, member, reader.stream) ? .written : .skipped } catch { o = .failed(error) }
                outcome.withLockedValue { $0 = o }
                pipe.abandon()
                done.signal()
            }
            current = (pipe, writer, done, outcome)
            let isCancelled = self.isCancelled
            return { bytes in
                do { try pipe.send(bytes, isCancelled: isCancelled) } catch {
                    switch outcome.withLockedValue({ $0 }) {
                    case .skipped: return  // a skipped file's bytes go nowhere
                    case .failed(let e): throw e
                    case .written: throw FSError.internalError("the storage stopped reading \(rel) before its end")
                    case .writing:
                        if let stalled = error as? ChunkPipe.Stalled { throw FSError.upstream(code: -1, message: "the storage took no bytes of \(rel): \(stalled)") }
                        throw error
                    }
                }
            }
        }
    }

    /// Waits for the writer, looking every second whether the extraction was cancelled (then the writer is too).
    private func wait(_ c: (pipe: ChunkPipe, writer: Task<Void, Never>, done: DispatchSemaphore, outcome: NIOLockedValueBox<Outcome>)) {
        while c.done.wait(timeout: .now() + .seconds(1)) == .timedOut {
            if isCancelled() { c.writer.cancel() }
        }
    }

    func done(_ member: ArchiveMember) throws {
        guard let c = current else { return }
        current = nil
        c.pipe.finish()
        wait(c)
        if case .failed(let e) = c.outcome.withLockedValue({ $0 }) { throw e }
        if isCancelled() { throw ArchiveError.cancelled }
    }

    deinit {
        // Stopped in the middle of a file (an error, a cancel): the writer sees its stream fail and drops the file.
        if let c = current {
            c.pipe.finish(ArchiveError.cancelled)
            c.pipe.abandon()
            c.writer.cancel()
            c.done.wait()
        }
    }
}

/// A pipe's stream, telling the pipe each time a chunk is taken (room for the producer).
struct PipeReader: Sendable {
    let pipe: ChunkPipe
    var stream: AsyncThrowingStream<ByteBuffer, any Error> {
        let pipe = self.pipe
        var iterator = pipe.stream.makeAsyncIterator()
        return AsyncThrowingStream {
            let next = try await iterator.next()
            if next != nil { pipe.took() }
            return next
        }
    }
}
