import Foundation
import Logging
import NIOConcurrencyHelpers
import PanListCore
import PanListStore

/// Runs async operations one after another, in the order they were handed in.
final class SerialQueue: Sendable {
    private let tail = NIOLockedValueBox<Task<Void, Never>?>(nil)

    @discardableResult
    func enqueue(_ op: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        tail.withLockedValue { t in
            let previous = t
            let next = Task {
                await previous?.value
                await op()
            }
            t = next
            return next
        }
    }
}

/// What the search index takes in, decided from the settings: whether it is on, the paths left out
/// (`ignore_paths`), how deep it goes (`max_index_depth`), and the storages left out (`disable_index`).
struct IndexPolicy: Sendable {
    var enabled: Bool
    var autoUpdate: Bool
    var ignored: [String]
    var maxDepth: Int

    init(setting: (String) -> String?) {
        enabled = setting("search_index") == "database"
        autoUpdate = setting("auto_update_index") != "false"
        ignored = (setting("ignore_paths") ?? "").split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "," })
            .compactMap { line in
                let t = line.trimmingCharacters(in: .whitespaces)
                return t.isEmpty ? nil : try? VirtualPath.normalize(t)
            }
        maxDepth = Int(setting("max_index_depth") ?? "") ?? 20
        if maxDepth <= 0 { maxDepth = Int.max }
    }

    func isIgnored(_ path: String) -> Bool { ignored.contains { VirtualPath.isWithin(path, $0) } }

    /// Whether an entry at `path` belongs in the index (on `storage`, nil for a virtual folder).
    func takes(_ path: String, storage: MountedStorage?) -> Bool {
        guard path != "/", VirtualPath.depth(path) <= maxDepth, !isIgnored(path) else { return false }
        return storage?.record.disableIndex != true
    }
}

/// The search index's side of the file system: every write through PanList (on this instance; the others
/// update the same rows in the shared store) and every listing fetched fresh from a storage is written to the
/// index, in the order they happened here.
final class SearchIndexer: SearchIndexing, Sendable {
    let store: any Store
    let fs: FileSystem
    let logger: Logger
    private let policyBox: @Sendable () -> IndexPolicy
    let queue = SerialQueue()

    init(store: any Store, fs: FileSystem, logger: Logger, policy: @escaping @Sendable () -> IndexPolicy) {
        self.store = store; self.fs = fs; self.logger = logger; self.policyBox = policy
    }

    var policy: IndexPolicy { policyBox() }

    /// The index entry for `obj` at `path`, when it belongs in the index.
    func entry(_ path: String, _ obj: Obj, policy: IndexPolicy) -> IndexEntry? {
        let storage = fs.resolve(path)?.0
        guard policy.takes(path, storage: storage) else { return nil }
        return IndexEntry(parent: VirtualPath.parent(path), name: VirtualPath.base(path), isDir: obj.isDir, size: obj.isDir ? 0 : obj.size,
                          modified: obj.modified, storageID: storage?.id ?? 0)
    }

    /// The entries of a listing of `folder` that belong in the index (folders mounted deeper included).
    func entries(in folder: String, _ objects: [Obj], policy: IndexPolicy) -> [IndexEntry] {
        var names = Set<String>()
        var out: [IndexEntry] = []
        out.reserveCapacity(objects.count)
        for o in objects + fs.virtualFolders(in: folder) where names.insert(o.name).inserted {
            if let e = entry(VirtualPath.join(folder, o.name), o, policy: policy) { out.append(e) }
        }
        return out
    }

    private func write(_ what: String, _ op: @escaping @Sendable () async throws -> Void) async {
        await queue.enqueue { [logger] in
            do { try await op() } catch {
                logger.warning("the search index could not be updated (\(what)): \(ErrorText.describe(error)); an index update will bring it back")
            }
        }.value
    }

    // MARK: SearchIndexing

    func listed(_ folder: String, objects: [Obj], stillCurrent: @escaping @Sendable () -> Bool) {
        let p = policy
        guard p.enabled, p.autoUpdate, folder == "/" || p.takes(folder, storage: fs.resolve(folder)?.0),
              VirtualPath.depth(folder) < p.maxDepth, stillCurrent() else { return }
        let entries = entries(in: folder, objects, policy: p)
        queue.enqueue { [store, logger] in
            // Checked again in turn: a write may have come while the listing waited behind others.
            guard stillCurrent() else { return }
            do { try await store.indexReplaceFolder(folder, entries: entries) } catch {
                logger.warning("the search index could not take the listing of \(LogText.quoted(folder)): \(ErrorText.describe(error))")
            }
        }
    }

    func put(_ path: String, _ obj: Obj) async {
        let p = policy
        guard p.enabled, let e = entry(path, obj, policy: p) else { return }
        await write("put \(path)") { [store] in try await store.indexPut(e) }
    }

    func removed(_ path: String) async {
        guard policy.enabled else { return }
        await write("remove \(path)") { [store] in try await store.indexRemove(below: path) }
    }

    func moved(from: String, to: String) async {
        let p = policy
        guard p.enabled else { return }
        let storage = fs.resolve(to)?.0
        let source = fs.resolve(from)?.0.id
        if p.takes(to, storage: storage) {
            await write("move \(from)") { [store] in try await store.indexMove(from: from, to: to, storageID: storage?.id ?? 0, source: source) }
            // Something the index did not have (left out where it was, or never listed): the entry itself at least.
            if let (obj, _) = try? await fs.get(to) { await put(to, obj) }
            // Parts of the new place may be left out (ignore_paths, depth) where the old one was not.
            if !p.ignored.isEmpty { await prune(below: to, policy: p) }
        } else {
            await write("move \(from)") { [store] in
                try await store.indexRemove(below: from)
                try await store.indexRemove(below: to)
            }
        }
    }

    func copied(from: String, to: String) async {
        let p = policy
        guard p.enabled else { return }
        let storage = fs.resolve(to)?.0
        guard p.takes(to, storage: storage) else { return }
        let source = fs.resolve(from)?.0.id
        await write("copy \(from)") { [store] in try await store.indexCopy(from: from, to: to, storageID: storage?.id ?? 0, source: source) }
        // A copy of something the index did not have (left out, or never listed): the copy itself at least.
        if let (obj, _) = try? await fs.get(to) { await put(to, obj) }
        if !p.ignored.isEmpty { await prune(below: to, policy: p) }
    }

    func changedOutside(_ folder: String) async {
        let p = policy
        guard p.enabled, folder == "/" || p.takes(folder, storage: fs.resolve(folder)?.0) else { return }
        guard let listing = try? await fs.listUncached(folder) else { return }
        let entries = entries(in: folder, listing.objects, policy: p)
        await write("listing \(folder)") { [store] in try await store.indexReplaceFolder(folder, entries: entries) }
    }

    /// Removes what lies below `path` but is left out by the policy (an ignored path, too deep).
    private func prune(below path: String, policy p: IndexPolicy) async {
        let ignoredBelow = p.ignored.filter { VirtualPath.isWithin($0, path) }
        await write("prune \(path)") { [store] in
            for i in ignoredBelow { try await store.indexRemove(below: i) }
        }
    }
}
