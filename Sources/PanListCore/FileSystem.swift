import Foundation
import NIOCore
import Logging
import NIOConcurrencyHelpers

/// The virtual file system: a mount table of storages, virtual folders for mount paths, the list cache,
/// and every read and write operation on virtual paths. Front ends authorise with `Access` first,
/// then call here with absolute virtual paths.
public final class FileSystem: Sendable {
    public let registry: DriverRegistry
    public let environment: DriverEnvironment
    /// Sorted deepest mount path first, so the first match is the longest prefix.
    private let table = NIOLockedValueBox<[MountedStorage]>([])
    let cache = ListCache()
    /// Links handed out recently (for their own lifetime); see `cachedLink`.
    public let links = LinkCache()
    private let remoteBox = NIOLockedValueBox<(any RemoteFetcher)?>(nil)
    /// How copies between storages read a source whose link is a URL (set by the server).
    public var remote: (any RemoteFetcher)? {
        get { remoteBox.withLockedValue { $0 } }
        set { remoteBox.withLockedValue { $0 = newValue } }
    }
    /// Write operations started and finished (see `writeGeneration`, `listingStillCurrent`).
    private let writes = NIOLockedValueBox(WriteCounts())
    private struct WriteCounts: Equatable { var started = 0, finished = 0, changes = 0 }
    private let keptBox = NIOLockedValueBox<(any KeptTimesStore)?>(nil)
    /// Where modification times are kept for storages that cannot keep them (set by the server).
    public var keptTimes: (any KeptTimesStore)? {
        get { keptBox.withLockedValue { $0 } }
        set { keptBox.withLockedValue { $0 = newValue } }
    }

    /// Counts finished write operations. Caches of file contents or lookups outside the core compare it
    /// to drop what a write through PanList may have changed.
    public var writeGeneration: Int { writes.withLockedValue { $0.finished + $0.changes } }
    /// A write through PanList begins (paired with `didWrite` at its end).
    private func willWrite() { writes.withLockedValue { $0.started += 1 } }
    /// A write through PanList ended.
    private func didWrite() { writes.withLockedValue { $0.finished += 1 } }
    /// Something a write may have changed was found changed (another instance's write, a storage reloaded).
    private func changed() { writes.withLockedValue { $0.changes += 1 } }

    /// For a listing about to be fetched: true while no write through PanList has started or finished since and
    /// none is under way. A listing fetched while a file was written may not hold it (or hold what a remove took
    /// away); applied to the search index after that write's own update, it would undo it.
    public func listingStillCurrent() -> @Sendable () -> Bool {
        let mark = writes.withLockedValue { $0 }
        let box = writes
        return { box.withLockedValue { $0 == mark && $0.started == $0.finished } }
    }
    private let feedBox = NIOLockedValueBox<(any ChangeFeed)?>(nil)
    /// Where this instance tells the others that a folder changed (set by the server).
    public var changes: (any ChangeFeed)? {
        get { feedBox.withLockedValue { $0 } }
        set { feedBox.withLockedValue { $0 = newValue } }
    }

    private let indexingBox = NIOLockedValueBox<(any SearchIndexing)?>(nil)
    /// The search index, told of every write and of every listing fetched fresh (set by the server).
    public var indexing: (any SearchIndexing)? {
        get { indexingBox.withLockedValue { $0 } }
        set { indexingBox.withLockedValue { $0 = newValue } }
    }

    /// Forgets the cached listing of a folder after a write, and tells the other instances.
    func invalidate(storageID: Int, path: String, recursive: Bool = false) async {
        await cache.invalidate(storageID: storageID, path: path, recursive: recursive)
        await changes?.publish(.folder(storage: storageID, path: path, recursive: recursive))
    }

    /// A folder changed through another instance: its listing, and the links and cached files that a write
    /// may have changed, are dropped here too.
    public func folderChanged(storageID: Int, path: String, recursive: Bool) async {
        await cache.invalidate(storageID: storageID, path: path, recursive: recursive)
        (storage(id: storageID)?.driver as? any CacheForgetting)?.forgetCached()
        changed()
    }

    /// A folder changed outside PanList's own writes (a cloud fetched a file into it): its cached listing
    /// goes, here and on the other instances.
    public func changedOutside(_ dirPath: String) async {
        guard let (m, actual) = resolve(dirPath) else { return }
        await invalidate(storageID: m.id, path: actual)
        (m.driver as? any CacheForgetting)?.forgetCached()
        changed()
        await indexing?.changedOutside(dirPath)
    }

    /// Drops every cached listing, link and file (a change feed that was away).
    public func forgetCaches() async {
        await cache.clearAll()
        for m in storages { (m.driver as? any CacheForgetting)?.forgetCached() }
        changed()
    }

    /// Moves whenever a kept link was found refused or expired and dropped (see `LinkCache.forgetGeneration`).
    public var linkForgets: Int { links.forgetGeneration }

    public init(registry: DriverRegistry, environment: DriverEnvironment) {
        self.registry = registry
        self.environment = environment
    }

    var logger: Logger { environment.logger }

    // MARK: - Mount table

    /// Every storage in the table, in display order.
    public var storages: [MountedStorage] {
        table.withLockedValue { $0 }.sorted { ($0.record.order, $0.mountPath) < ($1.record.order, $1.mountPath) }
    }

    public func storage(id: Int) -> MountedStorage? { table.withLockedValue { $0.first { $0.id == id } } }

    /// Puts `record` in the table with the status `loading` and no driver, so that its mount path exists
    /// (answering "loading") while `load` initialises it. Disabled storages, and ids already in the table,
    /// are left alone. Returns the ticket that `load(_:ticket:)` uses for this load: an admin's change of the
    /// storage meanwhile takes a newer one, and this load is then dropped when it ends.
    @discardableResult
    public func placeLoading(_ record: StorageRecord) -> Int {
        let mine = ticket(record.id)
        guard !record.disabled else { return mine }
        var record = record
        record.mountPath = (try? VirtualPath.normalize(record.mountPath)) ?? record.mountPath
        record.status = StorageStatus.loading
        table.withLockedValue { list in
            guard !list.contains(where: { $0.id == record.id }) else { return }
            list.append(MountedStorage(record: record, driver: nil))
            list.sort { VirtualPath.depth($0.mountPath) > VirtualPath.depth($1.mountPath) }
        }
        return mine
    }

    /// The latest load or unload asked for each storage id: a load that finishes after a newer one was asked
    /// for (an admin changed, disabled or deleted the storage while it was still initialising) is dropped.
    private let tickets = NIOLockedValueBox<[Int: Int]>([:])
    private func ticket(_ id: Int) -> Int { tickets.withLockedValue { $0[id, default: 0] += 1; return $0[id] ?? 0 } }
    private func isLatest(_ id: Int, _ ticket: Int) -> Bool { tickets.withLockedValue { $0[id] == ticket } }

    /// Creates and initialises the driver of `record` and puts it in the table, replacing one with the same id
    /// (which keeps serving until the new one is ready, then is dropped). Never throws: a failed init is kept
    /// as the storage's status, and everything else keeps working. Nil when this load was overtaken by a newer
    /// load or an unload of the same storage, or cancelled (the server is stopping): then nothing changes.
    @discardableResult
    public func load(_ record: StorageRecord, ticket given: Int? = nil) async -> MountedStorage? {
        var record = record
        record.mountPath = (try? VirtualPath.normalize(record.mountPath)) ?? record.mountPath
        guard !record.disabled else {
            await unload(id: record.id)
            record.status = StorageStatus.disabled
            return MountedStorage(record: record, driver: nil)
        }
        let mine = given ?? ticket(record.id)
        var driver: (any Driver)?
        do {
            guard let factory = registry.factory(named: record.driver) else {
                throw FSError.noSuchRecord("driver '\(record.driver)' does not exist")
            }
            let d = try factory.make(record, environment)
            driver = d
            try await d.initialize()
            record.status = StorageStatus.work
        } catch {
            if let d = driver { await d.drop() }
            driver = nil
            if error is CancellationError || Task.isCancelled { return nil }
            record.status = FSError.from(error).message
        }
        let mounted = MountedStorage(record: record, driver: driver)
        // Installed only if no newer load or unload of this storage was asked for meanwhile.
        let old: MountedStorage?? = table.withLockedValue { list in
            guard isLatest(record.id, mine) else { return .none }
            let old = list.firstIndex { $0.id == record.id }.map { list.remove(at: $0) }
            list.append(mounted)
            list.sort { VirtualPath.depth($0.mountPath) > VirtualPath.depth($1.mountPath) }
            return .some(old)
        }
        guard case .some(let replaced) = old else {
            await driver?.drop()
            return nil
        }
        if driver == nil { logger.warning("storage \(LogText.quoted(record.mountPath)) (\(record.driver)) is not working: \(LogText.quoted(record.status))") }
        if let replaced {
            await replaced.driver?.drop()
            await cache.clear(storageID: replaced.id)
        }
        changed()  // links and cached files of the old instance no longer apply
        return mounted
    }

    /// Drops a storage's driver and removes it from the table.
    public func unload(id: Int) async {
        _ = ticket(id)   // a load still running for this storage is not installed
        let removed = table.withLockedValue { list -> MountedStorage? in
            guard let i = list.firstIndex(where: { $0.id == id }) else { return nil }
            return list.remove(at: i)
        }
        if let removed {
            await removed.driver?.drop()
            await cache.clear(storageID: id)
            changed()
        }
    }

    public func unloadAll() async {
        for s in storages { await unload(id: s.id) }
    }

    /// The storage owning `path` (longest mount path on segment boundaries) and the path inside it.
    public func resolve(_ path: String) -> (MountedStorage, String)? {
        let list = table.withLockedValue { $0 }
        for m in list where VirtualPath.isWithin(path, m.mountPath) {
            return (m, VirtualPath.relative(path, to: m.mountPath))
        }
        return nil
    }

    /// How long an operation waits for a storage that is still initialising at start-up.
    public static let loadingWait: Duration = .seconds(10)

    /// `resolve`, but when the owning storage is still loading (at start-up), waits for it to finish (at most
    /// `loadingWait`), so that clients that come early are answered instead of refused.
    func resolveLoaded(_ path: String) async -> (MountedStorage, String)? {
        var r = resolve(path)
        guard let first = r, first.0.record.status == StorageStatus.loading else { return r }
        let deadline = ContinuousClock.now + Self.loadingWait
        while let (m, _) = r, m.record.status == StorageStatus.loading, ContinuousClock.now < deadline {
            do { try await Task.sleep(for: .milliseconds(50)) } catch { break }
            r = resolve(path)
        }
        return r
    }

    /// Folders that exist only because a storage is mounted deeper than `dir`.
    public func virtualFolders(in dir: String) -> [Obj] {
        var seen = Set<String>()
        var result: [Obj] = []
        for m in storages where m.mountPath != dir && VirtualPath.isWithin(m.mountPath, dir) {
            let rest = VirtualPath.relative(m.mountPath, to: dir)
            let name = VirtualPath.firstSegment(rest)
            guard !name.isEmpty, seen.insert(name).inserted else { continue }
            result.append(Obj(id: "", path: VirtualPath.join(dir, name), name: name, size: 0,
                              modified: m.record.modified, isDir: true))
        }
        return result
    }

    // MARK: - Reading

    /// The result of a listing: the objects and the storage that owns the folder (nil for purely virtual folders).
    public struct Listing: Sendable {
        public var objects: [Obj]
        public var storage: MountedStorage?
        /// Names of folders listed only because a storage is mounted deeper (no storage has them).
        public var virtualNames: Set<String> = []
    }

    public func list(_ path: String, refresh: Bool = false) async throws -> Listing {
        try await list(path, refresh: refresh, uncached: false)
    }

    /// A listing straight from the storage, neither taken from the cache nor kept in it, and not told to the
    /// search index (the index's own walk, which would otherwise fill the cache with every folder it visits).
    public func listUncached(_ path: String) async throws -> Listing {
        try await list(path, refresh: true, uncached: true)
    }

    private func list(_ path: String, refresh: Bool, uncached: Bool) async throws -> Listing {
        let virtual = virtualFolders(in: path)
        guard let (m, actual) = await resolveLoaded(path) else {
            if virtual.isEmpty && path != "/" { throw FSError.objectNotFound(path) }
            return Listing(objects: virtual, storage: nil, virtualNames: Set(virtual.map(\.name)))
        }
        var objs: [Obj]
        do {
            let dir = try await object(in: m, at: actual)
            guard dir.isDir else { throw FSError.badRequest("\(path) is not a folder") }
            objs = try await children(of: dir, in: m, at: actual, refresh: refresh, uncached: uncached)
            if keepsTimes(for: m) {
                objs = await withKeptTimes(objs, in: path, storage: m)
                // The listing was sorted by the storage's own times: sorted again by the times shown.
                if m.driver?.config.localSort == true && m.record.orderBy == "modified" {
                    Self.sort(&objs, by: m.record.orderBy, direction: m.record.orderDirection)
                }
            }
        } catch let e as FSError where !virtual.isEmpty {
            // A storage that is down still shows the folders mounted below it.
            if case .notFound = e { objs = [] } else if case .storageUnavailable = e { objs = [] } else { throw e }
        }
        var virtualNames: Set<String> = []
        if !virtual.isEmpty {
            let names = Set(objs.map(\.name))
            let added = virtual.filter { !names.contains($0.name) }
            objs += added
            virtualNames = Set(added.map(\.name))
        }
        return Listing(objects: objs, storage: m, virtualNames: virtualNames)
    }

    /// The object at a virtual path, and its storage (nil for virtual folders).
    public func get(_ path: String) async throws -> (Obj, MountedStorage?) {
        guard let (m, actual) = await resolveLoaded(path) else {
            if path == "/" { return (Obj(id: "", path: "/", name: "root", size: 0, modified: Date(timeIntervalSince1970: 0), isDir: true), nil) }
            if let v = virtualFolders(in: VirtualPath.parent(path)).first(where: { $0.name == VirtualPath.base(path) }) {
                return (v, nil)
            }
            throw FSError.objectNotFound(path)
        }
        do {
            var obj = try await object(in: m, at: actual)
            if actual == "/" { obj.name = path == "/" ? "root" : VirtualPath.base(path) }
            else if !obj.isDir, keepsTimes(for: m), let kept = try? await keptTimes?.keptTime(path) { obj = kept.apply(to: obj) }
            return (obj, m)
        } catch let e as FSError {
            if case .notFound = e,
               let v = virtualFolders(in: VirtualPath.parent(path)).first(where: { $0.name == VirtualPath.base(path) }) {
                return (v, nil)
            }
            throw e
        }
    }

    /// A link to the bytes of the file at `path`.
    public func link(_ path: String, args: LinkArgs = LinkArgs()) async throws -> (Link, Obj, MountedStorage) {
        let (obj, storage) = try await get(path)
        guard let m = storage else { throw FSError.badRequest("\(path) is a folder") }
        guard !obj.isDir else { throw FSError.badRequest("\(path) is a folder") }
        let link = try await m.ready().link(file: obj, args: args)
        return (link, obj, m)
    }

    /// The storage mounted exactly at `path`, whatever its state (working, loading, failed), if any.
    public func storage(anyStateAt path: String) -> MountedStorage? {
        table.withLockedValue { list in list.first { $0.mountPath == path } }
    }

    /// The working storage mounted exactly at `path`, if any.
    public func storage(mountedAt path: String) -> MountedStorage? {
        storages.first { $0.mountPath == path && $0.isWorking }
    }

    /// `link`, through the link cache: a link with an expiry is reused until shortly before it, and
    /// concurrent requests for one path share one driver call. `fresh` skips a kept link (it was refused).
    public func cachedLink(_ path: String, args: LinkArgs = LinkArgs(), fresh: Bool = false) async throws -> (Link, Obj, MountedStorage) {
        guard let (m, _) = await resolveLoaded(path) else { throw FSError.badRequest("\(path) is a folder") }
        let key = LinkCache.Key(storage: m.id, path: path)
        if fresh { links.forget(key: key) }
        let (link, obj) = try await links.link(key: key, generation: writeGeneration) { [self] in
            let (link, obj, _) = try await self.link(path, args: args)
            return (link, obj)
        }
        return (link, obj, m)
    }

    /// Free and total space of the storage owning `path`, when its driver reports them.
    public func details(_ path: String) async throws -> StorageDetails? {
        guard let (m, _) = await resolveLoaded(path), let d = try m.ready() as? any DetailsCapable else { return nil }
        return try await d.details()
    }

    /// The object at a storage-relative path: the root, a Getter lookup, or a search in the parent's listing.
    func object(in m: MountedStorage, at actual: String) async throws -> Obj {
        let driver = try m.ready()
        if actual == "/" { return try await driver.root() }
        if let getter = driver as? any GetCapable { return try await getter.get(path: actual) }
        let parentPath = VirtualPath.parent(actual)
        let parent = try await object(in: m, at: parentPath)
        guard parent.isDir else { throw FSError.objectNotFound(VirtualPath.join(m.mountPath, actual)) }
        let name = VirtualPath.base(actual)
        guard let obj = try await children(of: parent, in: m, at: parentPath, refresh: false).first(where: { $0.name == name }) else {
            throw FSError.objectNotFound(m.mountPath == "/" ? actual : m.mountPath + actual)
        }
        return obj
    }

    /// The children of a folder, through the cache, sorted as the storage asks.
    func children(of dir: Obj, in m: MountedStorage, at actual: String, refresh: Bool, uncached: Bool = false) async throws -> [Obj] {
        let driver = try m.ready()
        let config = driver.config
        let ttl: Duration? = config.noCache || m.record.cacheExpiration <= 0 ? nil : .seconds(m.record.cacheExpiration * 60)
        var objs: [Obj]
        if uncached {
            objs = try await driver.list(dir: dir)
        } else {
            let indexing = self.indexing
            objs = try await cache.list(.init(storageID: m.id, path: actual), ttl: ttl, refresh: refresh) { [self] in
                let current = listingStillCurrent()
                let fresh = try await driver.list(dir: dir)
                // Fetched from the storage: the index hears what is there now (queued; the listing does not wait),
                // unless a write came in between (its own index update is then what counts).
                indexing?.listed(Self.virtualPath(of: actual, in: m), objects: fresh, stillCurrent: current)
                return fresh
            }
        }
        if config.localSort { Self.sort(&objs, by: m.record.orderBy, direction: m.record.orderDirection) }
        switch m.record.extractFolder {
        case "front": objs = objs.filter(\.isDir) + objs.filter { !$0.isDir }
        case "back": objs = objs.filter { !$0.isDir } + objs.filter(\.isDir)
        default: break
        }
        return objs
    }

    /// Sorts by the storage's order. A listing already in that order (the Local driver lists by name) is left
    /// as it is: no copy of a shared array of thousands of objects per request.
    static func sort(_ objs: inout [Obj], by key: String, direction: String) {
        let desc = direction == "desc"
        // Whether the listing is already in order, comparing fields in place (no object copied).
        let sorted = objs.withUnsafeBufferPointer { all -> Bool in
            for i in all.indices.dropFirst() {
                let outOfOrder: Bool
                switch key {
                case "size": outOfOrder = desc ? all[i].size > all[i - 1].size : all[i].size < all[i - 1].size
                case "modified": outOfOrder = desc ? all[i].modified > all[i - 1].modified : all[i].modified < all[i - 1].modified
                default: outOfOrder = desc ? all[i].name > all[i - 1].name : all[i].name < all[i - 1].name
                }
                if outOfOrder { return false }
            }
            return true
        }
        if sorted { return }
        switch key {
        case "size": objs.sort { desc ? $0.size > $1.size : $0.size < $1.size }
        case "modified": objs.sort { desc ? $0.modified > $1.modified : $0.modified < $1.modified }
        default: objs.sort { desc ? $0.name > $1.name : $0.name < $1.name }
        }
    }

    // MARK: - Kept modification times

    /// The virtual path of `actual`, a path inside `m`.
    static func virtualPath(of actual: String, in m: MountedStorage) -> String {
        if m.mountPath == "/" { return actual }
        return actual == "/" ? m.mountPath : m.mountPath + actual
    }

    /// Whether PanList keeps modification times for `m` (its driver cannot set them itself).
    func keepsTimes(for m: MountedStorage) -> Bool {
        keptTimes != nil && m.driver != nil && !(m.driver is any SetModifiedCapable)
    }

    /// `objs` (the files of the folder `folder` in `m`) with the times PanList kept for them.
    func withKeptTimes(_ objs: [Obj], in folder: String, storage m: MountedStorage) async -> [Obj] {
        guard keepsTimes(for: m), let store = keptTimes, objs.contains(where: { !$0.isDir }),
              let kept = try? await store.keptTimes(in: folder), !kept.isEmpty else { return objs }
        return objs.map { o in kept[o.name].map { $0.apply(to: o) } ?? o }
    }

    /// After `obj` was written at `path` in `m` from `stream`: keeps the time the upload carried when the
    /// storage cannot (and forgets an old one when it carried none).
    func keepTime(of stream: UploadStream, written obj: Obj, at path: String, in m: MountedStorage) async {
        guard keepsTimes(for: m), let store = keptTimes else { return }
        let kept = stream.modified.map {
            KeptTime(modified: $0, size: obj.size, md5: obj.hashes["md5"] ?? stream.md5 ?? "", sha1: stream.sha1 ?? obj.hashes["sha1"] ?? "")
        }
        do { try await store.setKeptTime(path, kept) } catch {
            logger.warning("could not keep the modification time of \(LogText.quoted(path)): \(ErrorText.describe(error))")
        }
    }

    /// Sets the modification time of the file at `path` (WebDAV PROPPATCH of `lastmodified`): the storage
    /// sets it when it can, PanList keeps it otherwise. Returns the file as listings will show it.
    @discardableResult
    public func setModified(_ path: String, to date: Date) async throws -> Obj {
        willWrite(); defer { didWrite() }
        let (m, actual) = try await writable(path)
        let obj = try await object(in: m, at: actual)
        guard !obj.isDir else { throw FSError.notSupported("a folder's modification time cannot be set") }
        if let setter = try m.ready() as? any SetModifiedCapable {
            let updated = try await setter.setModified(obj, to: date)
            await invalidate(storageID: m.id, path: VirtualPath.parent(actual))
            await indexing?.put(path, updated)
            return updated
        }
        guard let store = keptTimes else { throw FSError.notSupported("the \(m.record.driver) storage cannot keep modification times") }
        let old = try? await store.keptTime(path)
        let kept = KeptTime(modified: date, size: obj.size, md5: obj.hashes["md5"] ?? old?.md5 ?? "",
                            sha1: old.flatMap { $0.applies(to: obj) ? $0.sha1 : nil } ?? "")
        try await store.setKeptTime(path, kept)
        // Listings (here and, through the change feed, on other instances) show kept times: drop them.
        await invalidate(storageID: m.id, path: VirtualPath.parent(actual))
        await indexing?.put(path, kept.apply(to: obj))
        return kept.apply(to: obj)
    }

    /// Kept times follow a rename, move or copy (`move` forgets them at the old place).
    func relocateKeptTimes(from src: String, to dst: String, move: Bool) async {
        guard let store = keptTimes, src != dst else { return }
        do {
            try await store.copyKeptTimes(from: src, to: dst)
            if move { try await store.deleteKeptTimes(src) }
        } catch {
            logger.warning("the kept modification times of \(LogText.quoted(src)) did not follow it to \(LogText.quoted(dst)): \(ErrorText.describe(error))")
        }
    }

    // MARK: - Writing

    /// The storage that owns `path` for a write, refusing purely virtual areas.
    private func writable(_ path: String) async throws -> (MountedStorage, String) {
        guard let r = await resolveLoaded(path) else {
            throw FSError.notSupported("no storage is mounted at \(path); add a storage first")
        }
        return r
    }

    private func capability<T>(_ m: MountedStorage, _ type: T.Type, _ what: String) throws -> T {
        guard let c = try m.ready() as? T else {
            throw FSError.notSupported("the \(m.record.driver) storage at \(m.mountPath) cannot \(what)")
        }
        return c
    }

    /// Creates the folder at `path` and any missing parents. An existing folder is success.
    @discardableResult
    public func makeDir(_ path: String) async throws -> Obj {
        willWrite(); defer { didWrite() }
        let (m, actual) = try await writable(path)
        if let existing = try? await object(in: m, at: actual) {
            guard existing.isDir else { throw FSError.alreadyExists("\(path) already exists and is a file") }
            return existing
        }
        guard actual != "/" else { return try await object(in: m, at: actual) }
        try VirtualPath.validateName(VirtualPath.base(actual))
        let parent = try await makeDir(VirtualPath.parent(path))
        let mk = try capability(m, (any MakeDirCapable).self, "create folders")
        do {
            let obj = try await mk.makeDir(parent: parent, name: VirtualPath.base(actual))
            await invalidate(storageID: m.id, path: VirtualPath.parent(actual))
            await indexing?.put(path, obj)
            return obj
        } catch let e as FSError {
            if case .alreadyExists = e, let existing = try? await object(in: m, at: actual), existing.isDir { return existing }
            throw e
        }
    }

    public func rename(_ path: String, to newName: String) async throws {
        willWrite(); defer { didWrite() }
        try VirtualPath.validateName(newName)
        let (m, actual) = try await writable(path)
        guard actual != "/" else { throw FSError.notSupported("a storage's root cannot be renamed; change its mount path instead") }
        let obj = try await object(in: m, at: actual)
        if newName == obj.name { return }
        let parent = VirtualPath.parent(actual)
        if (try? await object(in: m, at: VirtualPath.join(parent, newName))) != nil {
            throw FSError.alreadyExists("\(VirtualPath.join(VirtualPath.parent(path), newName)) already exists")
        }
        let rn = try capability(m, (any RenameCapable).self, "rename")
        _ = try await rn.rename(obj, to: newName)
        await invalidate(storageID: m.id, path: parent)
        if obj.isDir { await invalidate(storageID: m.id, path: actual, recursive: true) }
        await relocateKeptTimes(from: path, to: VirtualPath.join(VirtualPath.parent(path), newName), move: true)
        await indexing?.moved(from: path, to: VirtualPath.join(VirtualPath.parent(path), newName))
    }

    /// Moves `srcPath` into the folder `dstDir`. Across storages the object is copied, then removed.
    public func move(_ srcPath: String, toDir dstDir: String) async throws {
        willWrite(); defer { didWrite() }
        let (sm, sActual) = try await writable(srcPath)
        let (dm, dActual) = try await writable(dstDir)
        guard sActual != "/" else { throw FSError.notSupported("a storage's root cannot be moved") }
        guard !VirtualPath.isWithin(dstDir, srcPath) else { throw FSError.badRequest("cannot move \(srcPath) into itself") }
        if VirtualPath.parent(srcPath) == dstDir { return }
        let obj = try await object(in: sm, at: sActual)
        let dst = try await object(in: dm, at: dActual)
        guard dst.isDir else { throw FSError.conflict("\(dstDir) is not a folder") }
        if (try? await object(in: dm, at: VirtualPath.join(dActual, obj.name))) != nil {
            throw FSError.alreadyExists("\(VirtualPath.join(dstDir, obj.name)) already exists")
        }
        let target = VirtualPath.join(dstDir, obj.name)
        if sm.id == dm.id {
            let mv = try capability(sm, (any MoveCapable).self, "move")
            _ = try await mv.move(obj, to: dst)
            await relocateKeptTimes(from: srcPath, to: target, move: true)
        } else {
            try await copyAcross(obj, from: sm, to: dst, in: dm, dstActual: dActual, srcPath: srcPath)
            let rm = try capability(sm, (any RemoveCapable).self, "delete")
            try await rm.remove(obj)
            try? await keptTimes?.deleteKeptTimes(srcPath)
        }
        await invalidate(storageID: sm.id, path: VirtualPath.parent(sActual))
        if obj.isDir { await invalidate(storageID: sm.id, path: sActual, recursive: true) }
        await invalidate(storageID: dm.id, path: dActual)
        await indexing?.moved(from: srcPath, to: target)
    }

    /// Copies `srcPath` into the folder `dstDir`, files and whole folders, within or across storages.
    public func copy(_ srcPath: String, toDir dstDir: String) async throws {
        willWrite(); defer { didWrite() }
        let (sm, sActual) = try await writable(srcPath)
        let (dm, dActual) = try await writable(dstDir)
        guard !VirtualPath.isWithin(dstDir, srcPath) else { throw FSError.badRequest("cannot copy \(srcPath) into itself") }
        let obj = try await object(in: sm, at: sActual)
        let dst = try await object(in: dm, at: dActual)
        guard dst.isDir else { throw FSError.conflict("\(dstDir) is not a folder") }
        let name = sActual == "/" ? VirtualPath.base(srcPath) : obj.name
        if (try? await object(in: dm, at: VirtualPath.join(dActual, name))) != nil {
            throw FSError.alreadyExists("\(VirtualPath.join(dstDir, name)) already exists")
        }
        if sm.id == dm.id, sActual != "/", let cp = sm.driver as? any CopyCapable {
            _ = try await cp.copy(obj, to: dst)
            await relocateKeptTimes(from: srcPath, to: VirtualPath.join(dstDir, name), move: false)
        } else {
            var named = obj
            named.name = name
            try await copyAcross(named, from: sm, to: dst, in: dm, dstActual: dActual, srcPath: srcPath)
        }
        await invalidate(storageID: dm.id, path: dActual)
        await indexing?.copied(from: srcPath, to: VirtualPath.join(dstDir, name))
    }

    /// Copies through the file system layer: folders are created, files streamed from a link into `put`, each
    /// with its modification time as listings show it (kept or not); `srcPath` is `obj`'s virtual path.
    /// `timesApplied`: `obj` came from a listing that already has its kept time.
    private func copyAcross(_ obj: Obj, from sm: MountedStorage, to dstDir: Obj, in dm: MountedStorage, dstActual: String,
                            srcPath: String, timesApplied: Bool = false) async throws {
        let dstPath = VirtualPath.join(Self.virtualPath(of: dstActual, in: dm), obj.name)
        if obj.isDir {
            let mk = try capability(dm, (any MakeDirCapable).self, "create folders")
            let newDir = try await mk.makeDir(parent: dstDir, name: obj.name)
            let childActual = VirtualPath.join(dstActual, obj.name)
            let children = await withKeptTimes(try await sm.ready().list(dir: obj), in: srcPath, storage: sm)
            for child in children {
                try await copyAcross(child, from: sm, to: newDir, in: dm, dstActual: childActual, srcPath: VirtualPath.join(srcPath, child.name),
                                     timesApplied: true)
            }
            await invalidate(storageID: dm.id, path: childActual)
            return
        }
        var source = obj
        if !timesApplied, keepsTimes(for: sm), let kept = try? await keptTimes?.keptTime(srcPath) { source = kept.apply(to: obj) }
        let put = try capability(dm, (any PutCapable).self, "upload")
        let link = try await sm.ready().link(file: obj, args: LinkArgs())
        try await LinkReader.withStream(link, size: obj.size, remote: remote) { stream in
            var upload = UploadStream(name: source.name, size: source.size, modified: source.modified,
                                      md5: source.hashes["md5"], sha1: source.hashes["sha1"], body: stream)
            if case .localFile(let path) = link { upload.localSource = path }
            let written = try await put.put(dir: dstDir, stream: upload, replacing: nil)
            await keepTime(of: upload, written: written, at: dstPath, in: dm)
        }
    }

    /// Copies one file, `srcPath`, into the folder `dstDir` (created when missing) on any storage, replacing a
    /// file of the same name when `overwrite` (else `.alreadyExists`); `counted` hears the bytes as they pass
    /// (and stops the copy by throwing); `checkpoint` lets a driver that uploads in parts continue a
    /// previous attempt at the same file.
    /// For tasks: cancelling the calling task stops it, and drivers write whole files only (nothing partial is
    /// left at the destination). The modification time goes along as listings show it.
    @discardableResult
    public func copyFile(_ srcPath: String, toDir dstDir: String, overwrite: Bool, checkpoint: UploadCheckpoint? = nil,
                         counted: @escaping @Sendable (Int) throws -> Void = { _ in }) async throws -> Obj {
        let (sm, sActual) = try await writable(srcPath)
        let obj = try await object(in: sm, at: sActual)
        guard !obj.isDir else { throw FSError.conflict("\(srcPath) is a folder") }
        var source = obj
        if keepsTimes(for: sm), let kept = try? await keptTimes?.keptTime(srcPath) { source = kept.apply(to: obj) }
        let link = try await sm.ready().link(file: obj, args: LinkArgs())
        return try await LinkReader.withStream(link, size: obj.size, remote: remote) { stream in
            var upload = UploadStream(name: source.name, size: source.size, modified: source.modified,
                                      md5: source.hashes["md5"], sha1: source.hashes["sha1"],
                                      body: ByteStream(CountingBytes(base: stream, counted: counted)))
            upload.checkpoint = checkpoint
            if case .localFile(let path) = link { upload.localSource = path }
            return try await put(upload, into: dstDir, overwrite: overwrite)
        }
    }

    public func remove(_ path: String) async throws {
        willWrite(); defer { didWrite() }
        let (m, actual) = try await writable(path)
        guard actual != "/" else { throw FSError.notSupported("a storage's root cannot be deleted; remove the storage instead") }
        let obj = try await object(in: m, at: actual)
        let rm = try capability(m, (any RemoveCapable).self, "delete")
        try await rm.remove(obj)
        await invalidate(storageID: m.id, path: VirtualPath.parent(actual))
        if obj.isDir { await invalidate(storageID: m.id, path: actual, recursive: true) }
        try? await keptTimes?.deleteKeptTimes(path)
        await indexing?.removed(path)
    }

    /// Writes an uploaded file into the folder `dirPath` (created when missing).
    /// With `overwrite` false an existing file is refused; a folder of the same name is always refused.
    /// Where a resumable upload bound for `name` in `dirPath` may keep its bytes so that `put` links them into
    /// place (nil: the target's driver cannot, so the upload spools them elsewhere).
    public func stagingPath(for dirPath: String, name: String, id: String) async -> String? {
        guard let (m, actual) = await resolveLoaded(dirPath), let d = try? m.ready() as? any StagingCapable else { return nil }
        return try? await d.stagingPath(dir: actual, name: name, id: id)
    }

    /// What every upload checks before its first byte: the name, that the storage takes uploads (as `what`,
    /// through capability `T`), the folder (made when missing), and a file or folder already at the name.
    private func uploadTarget<T>(_ name: String, into dirPath: String, overwrite: Bool, _ type: T.Type,
                                 _ what: String) async throws -> (MountedStorage, String, T, Obj, Obj?) {
        try VirtualPath.validateName(name)
        let (m, dActual) = try await writable(dirPath)
        if m.driver?.config.noUpload == true { throw FSError.notSupported("the \(m.record.driver) storage does not support uploads") }
        let capable = try capability(m, type, what)
        let dir = try await makeDir(dirPath)
        let existing = try? await object(in: m, at: VirtualPath.join(dActual, name))
        if let existing {
            if existing.isDir { throw FSError.conflict("\(VirtualPath.join(dirPath, name)) is a folder") }
            if !overwrite { throw FSError.alreadyExists("\(VirtualPath.join(dirPath, name)) already exists") }
        }
        return (m, dActual, capable, dir, existing)
    }

    /// Begins a sliced upload of `stream` (size and MD5 known; its body unused) into `dirPath` when the target's
    /// driver can take one (nil otherwise): the same checks as `put`. `.stored` when the cloud had the content.
    public func beginSliced(_ stream: UploadStream, into dirPath: String, overwrite: Bool) async throws -> SlicedStart? {
        guard let size = stream.size, let md5 = stream.md5, let (m0, _) = await resolveLoaded(dirPath),
              (try? m0.ready()) is any SlicedUploadCapable else { return nil }
        willWrite(); defer { didWrite() }
        let (m, dActual, sliced, dir, _) = try await uploadTarget(stream.name, into: dirPath, overwrite: overwrite,
                                                                  (any SlicedUploadCapable).self, "upload in slices")
        let start = try await sliced.beginSliced(dir: dir, name: stream.name, size: size, md5: md5)
        if case .stored(let obj) = start {
            await invalidate(storageID: m.id, path: dActual)
            await keepTime(of: stream, written: obj, at: VirtualPath.join(dirPath, stream.name), in: m)
            await indexing?.put(VirtualPath.join(dirPath, stream.name), obj)
        }
        return start
    }

    /// Sends one slice of a sliced upload into `dirPath` (see `beginSliced`); the session's new state.
    public func sendSlice(into dirPath: String, state: String, number: Int, bytes: ByteBuffer) async throws -> String {
        let (m, _) = try await writable(dirPath)
        return try await capability(m, (any SlicedUploadCapable).self, "upload in slices").sendSlice(state: state, number: number, bytes: bytes)
    }

    /// Completes a sliced upload of `stream` into `dirPath`: the file as listings will show it.
    @discardableResult
    public func completeSliced(_ stream: UploadStream, into dirPath: String, state: String) async throws -> Obj {
        willWrite(); defer { didWrite() }
        let (m, dActual) = try await writable(dirPath)
        var obj = try await capability(m, (any SlicedUploadCapable).self, "upload in slices").completeSliced(state: state)
        obj.path = VirtualPath.join(dActual, stream.name)
        obj.name = stream.name
        await invalidate(storageID: m.id, path: dActual)
        let path = VirtualPath.join(dirPath, stream.name)
        await keepTime(of: stream, written: obj, at: path, in: m)
        if keepsTimes(for: m), let modified = stream.modified { obj = KeptTime(modified: modified, size: obj.size).apply(to: obj) }
        await indexing?.put(path, obj)
        return obj
    }

    /// The free space of the storage that holds `path`, when its driver knows it.
    public func freeSpace(at path: String) async -> Int64? {
        guard let (m, _) = await resolveLoaded(path), let d = try? m.ready() as? any DetailsCapable else { return nil }
        return try? await d.details().freeSpace
    }

    @discardableResult
    public func put(_ stream: UploadStream, into dirPath: String, overwrite: Bool = true) async throws -> Obj {
        willWrite(); defer { didWrite() }
        let (m, dActual, put, dir, existing) = try await uploadTarget(stream.name, into: dirPath, overwrite: overwrite,
                                                                      (any PutCapable).self, "upload")
        var obj = try await put.put(dir: dir, stream: stream, replacing: existing)
        await invalidate(storageID: m.id, path: dActual)
        let path = VirtualPath.join(dirPath, stream.name)
        await keepTime(of: stream, written: obj, at: path, in: m)
        if keepsTimes(for: m), let modified = stream.modified { obj = KeptTime(modified: modified, size: obj.size).apply(to: obj) }
        await indexing?.put(path, obj)
        return obj
    }
}
