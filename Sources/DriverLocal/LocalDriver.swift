import Foundation
import NIOCore
import NIOPosix
import PanListCore
import _NIOFileSystem
#if canImport(Glibc)
import Glibc
#endif

/// The Local storage's settings (`addition`), with Alist's names.
struct LocalAddition: Decodable {
    var rootFolderPath: String = ""
    enum CodingKeys: String, CodingKey { case rootFolderPath = "root_folder_path" }
    init() {}
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rootFolderPath = try c.decodeIfPresent(String.self, forKey: .rootFolderPath) ?? ""
    }
}

/// A folder on this machine's disk. Every path is confined to the root: `..` never reaches the driver
/// (the core refuses it), and symbolic links whose target lies outside the root are neither listed nor followed.
public final class LocalDriver: StagingCapable, Driver, CacheForgetting, GetCapable, MakeDirCapable, RenameCapable, MoveCapable, CopyCapable,
    RemoveCapable, PutCapable, DetailsCapable, SetModifiedCapable
{
    public static let name = "Local"
    public static let factory = DriverFactory(
        config: DriverConfig(name: name, localSort: true, onlyProxy: true, noCache: true, defaultRoot: "/"),
        additional: [
            DriverItem(name: "root_folder_path", type: "string", required: true,
                       help: "absolute path of the folder on this machine to serve"),
        ],
        deliveryHelp: "Files on this machine are always streamed by this server; a download proxy URL, chosen for "
            + "WebDAV, sends WebDAV and proxied downloads to a separate download proxy instead.",
        make: { record, _ in try LocalDriver(record: record) }
    )

    public let config: DriverConfig
    let configuredRoot: String
    /// The root with symbolic links resolved; set by `initialize`.
    private let rootBox = NIOLockedValueBox<String>("")
    var root: String { rootBox.withLockedValue { $0 } }

    /// Lookups (realpath + stat) of the last second, like nginx's open_file_cache: a hot file is served
    /// without a trip to the thread pool. Every write through this driver clears it; a change made
    /// outside PanList shows within a second.
    struct Lookup {
        var obj: Obj
        var until: ContinuousClock.Instant
    }
    private let lookups = NIOLockedValueBox<[String: Lookup]>([:])
    static let lookupTTL: Duration = .seconds(1)
    static let maxLookups = 10_000

    func forgetLookups() {
        lookups.withLockedValue { $0.removeAll(keepingCapacity: true) }
        listings.withLockedValue { $0 = ([:], 0) }
    }

    /// Another instance changed this storage's folder (a shared file system): what was looked up goes.
    public func forgetCached() { forgetLookups() }

    public init(record: StorageRecord) throws {
        self.config = Self.factory.config
        let addition = try decodeAddition(LocalAddition.self, from: record.addition)
        self.configuredRoot = addition.rootFolderPath
    }

    public func initialize() async throws {
        guard !configuredRoot.isEmpty else { throw FSError.badRequest("root_folder_path is required") }
        guard configuredRoot.hasPrefix("/") else {
            throw FSError.badRequest("root_folder_path must be an absolute path, got '\(configuredRoot)'")
        }
        let configured = configuredRoot
        let real = try await blocking { () throws(FSError) -> String in
            guard let r = Posix.realpath(configured) else { throw .notFound("root folder \(configured) does not exist") }
            guard Posix.isDirectory(r) else { throw .badRequest("root folder \(configured) is not a folder") }
            return r
        }
        rootBox.withLockedValue { $0 = real }
    }

    public func drop() async {}

    // MARK: paths

    /// The on-disk path of a storage-relative path, without following anything.
    func diskPath(_ rel: String) -> String {
        rel == "/" ? root : (root == "/" ? rel : root + rel)
    }

    /// The on-disk path of an existing object, checked to resolve inside the root.
    func confined(_ rel: String) async throws -> String {
        let path = diskPath(rel), root = self.root
        return try await blocking { () throws(FSError) -> String in
            guard let real = Posix.realpath(path) else { throw FSError.objectNotFound(rel) }
            guard VirtualPath.isWithin(real, root) else {
                throw .permissionDenied("\(rel) points outside the storage's root folder")
            }
            return real
        }
    }

    /// The on-disk path of an existing entry itself (a symbolic link is not followed), its folder confined to the root.
    func entry(_ rel: String) async throws -> String {
        guard rel != "/" else { return try await confined("/") }
        let parent = try await confined(VirtualPath.parent(rel))
        let path = parent == "/" ? "/" + VirtualPath.base(rel) : parent + "/" + VirtualPath.base(rel)
        guard try await blocking({ Posix.exists(path) }) else { throw FSError.objectNotFound(rel) }
        return path
    }

    /// The on-disk path for a new entry `name` inside the existing folder `dir`.
    func newEntry(in dir: Obj, _ name: String) async throws -> (disk: String, rel: String) {
        try VirtualPath.validateName(name)
        if Self.isStagingName(name) { throw FSError.badRequest("names that start with .panlist-upload- are PanList's own (resumable uploads)") }
        let parent = try await confined(dir.path)
        return (parent == "/" ? "/" + name : parent + "/" + name, VirtualPath.join(dir.path, name))
    }

    func obj(rel: String, name: String, stat st: Posix.Stat) -> Obj {
        Obj(id: rel, path: rel, name: name, size: st.isDir ? 0 : st.size, modified: st.modified, isDir: st.isDir)
    }

    // MARK: reading

    public func root() async throws -> Obj {
        let path = try await confined("/")
        let st = try await blocking { () throws(FSError) -> Posix.Stat in
            guard let st = Posix.stat(path) else { throw FSError.objectNotFound("/") }
            return st
        }
        var o = obj(rel: "/", name: "root", stat: st)
        o.id = path
        return o
    }

    /// One trip to the thread pool: resolve, confine and stat. The object's id is its confined disk path,
    /// so `link` needs no second trip.
    public func get(path rel: String) async throws -> Obj {
        let now = ContinuousClock.now
        if let hit = lookups.withLockedValue({ $0[rel] }), hit.until > now { return hit.obj }
        let obj = try await lookup(rel)
        lookups.withLockedValue { map in
            if map.count >= Self.maxLookups { map.removeAll(keepingCapacity: true) }
            map[rel] = Lookup(obj: obj, until: now + Self.lookupTTL)
        }
        return obj
    }

    func lookup(_ rel: String) async throws -> Obj {
        // A resumable upload's staging file is not there for anyone but its session.
        if Self.isStagingName(VirtualPath.base(rel)) { throw FSError.objectNotFound(rel) }
        let path = diskPath(rel), root = self.root
        let (real, st) = try await blocking { () throws(FSError) -> (String, Posix.Stat) in
            guard let real = Posix.realpath(path) else { throw FSError.objectNotFound(rel) }
            guard VirtualPath.isWithin(real, root) else {
                throw .permissionDenied("\(rel) points outside the storage's root folder")
            }
            guard let st = Posix.stat(real) else { throw FSError.objectNotFound(rel) }
            return (real, st)
        }
        return Obj(id: real, path: rel, name: VirtualPath.base(rel), size: st.isDir ? 0 : st.size, modified: st.modified, isDir: st.isDir)
    }

    /// Listings of the last second, by folder, sorted by name: kept while the folder's own modification and
    /// change times stay the same (an entry added, removed or renamed outside PanList shows at once), for at
    /// most `lookupTTL` (a file changed in place outside PanList shows within a second). Every write through
    /// this driver clears them. A 10,000-entry folder is then listed without 10,000 stat calls.
    struct Listing {
        var objs: [Obj]
        var stamp: Posix.Stamp
        var until: ContinuousClock.Instant
    }
    private let listings = NIOLockedValueBox<(map: [String: Listing], entries: Int)>(([:], 0))
    static let maxListedEntries = 200_000

    public func list(dir: Obj) async throws -> [Obj] {
        let path = diskPath(dir.path), root = self.root, base = dir.path
        let now = ContinuousClock.now
        let cached = listings.withLockedValue { $0.map[base] }.flatMap { $0.until > now ? $0 : nil }
        // One trip to the thread pool: resolve and confine the folder, read its stamp, and list it unless the
        // kept listing still holds.
        let fresh = try await blocking { () throws(FSError) -> (objs: [Obj]?, stamp: Posix.Stamp, keep: Bool) in
            guard let disk = Posix.realpath(path) else { throw FSError.objectNotFound(base) }
            guard VirtualPath.isWithin(disk, root) else { throw .permissionDenied("\(base) points outside the storage's root folder") }
            // The clock is read before the folder: a change after this moment moves the folder's times past it.
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            guard let stamp = Posix.stamp(disk) else { throw FSError.objectNotFound(base) }
            if let cached, cached.stamp == stamp { return (nil, stamp, true) }
            guard let entries = Posix.listDirectory(disk, root: root) else { throw .notFound("\(base): cannot read this folder") }
            var objs = entries.filter { !Self.isStagingName($0.0) }.map { name, st in
                var o = self.obj(rel: VirtualPath.join(base, name), name: name, stat: st)
                o.id = st.realPath ?? (disk == "/" ? "/" + name : disk + "/" + name)
                return o
            }
            objs.sort { $0.name < $1.name }
            return (objs, stamp, !stamp.isRecent(now: now))
        }
        guard let objs = fresh.objs else { return cached?.objs ?? [] }
        guard fresh.keep else { return objs }
        listings.withLockedValue { l in
            if let old = l.map[base] { l.entries -= old.objs.count }
            if l.entries + objs.count > Self.maxListedEntries { l = ([:], 0) }
            l.map[base] = Listing(objs: objs, stamp: fresh.stamp, until: now + Self.lookupTTL)
            l.entries += objs.count
        }
        return objs
    }

    public func link(file: Obj, args: LinkArgs) async throws -> Link {
        // Objects from `get` and `list` carry their confined disk path as id.
        if file.id.hasPrefix("/"), VirtualPath.isWithin(file.id, root) { return .localFile(path: file.id) }
        return .localFile(path: try await confined(file.path))
    }

    public func details() async throws -> StorageDetails {
        let root = self.root
        return try await blocking { () throws(FSError) -> StorageDetails in
            guard let d = Posix.space(root) else { throw .internalError("cannot read the free space of \(root)") }
            return d
        }
    }

    // MARK: writing

    public func makeDir(parent: Obj, name: String) async throws -> Obj {
        forgetLookups()
        defer { forgetLookups() }
        let (disk, rel) = try await newEntry(in: parent, name)
        try await blocking { () throws(FSError) in
            if mkdir(disk, 0o755) != 0 {
                if errno == EEXIST { throw FSError.alreadyExists("\(rel) already exists") }
                throw Posix.error("cannot create folder \(rel)")
            }
        }
        return try await get(path: rel)
    }

    public func rename(_ obj: Obj, to newName: String) async throws -> Obj {
        forgetLookups()
        defer { forgetLookups() }
        let src = try await entry(obj.path)
        let parentRel = VirtualPath.parent(obj.path)
        let parent = try await get(path: parentRel)
        let (dst, rel) = try await newEntry(in: parent, newName)
        try await blocking { () throws(FSError) in
            if Posix.exists(dst) { throw FSError.alreadyExists("\(rel) already exists") }
            if Glibc.rename(src, dst) != 0 { throw Posix.error("cannot rename \(obj.path)") }
        }
        return try await get(path: rel)
    }

    public func move(_ obj: Obj, to dstDir: Obj) async throws -> Obj {
        forgetLookups()
        defer { forgetLookups() }
        let src = try await entry(obj.path)
        let (dst, rel) = try await newEntry(in: dstDir, obj.name)
        if await (try? blocking { Posix.exists(dst) }) == true { throw FSError.alreadyExists("\(rel) already exists") }
        do {
            try await _NIOFileSystem.FileSystem.shared.moveItem(at: FilePath(src), to: FilePath(dst))
        } catch {
            throw FSError.internalError("cannot move \(obj.path): \(Posix.describe(error))")
        }
        return try await get(path: rel)
    }

    public func copy(_ obj: Obj, to dstDir: Obj) async throws -> Obj {
        forgetLookups()
        defer { forgetLookups() }
        let src = try await entry(obj.path)
        let (dst, rel) = try await newEntry(in: dstDir, obj.name)
        do {
            try await _NIOFileSystem.FileSystem.shared.copyItem(at: FilePath(src), to: FilePath(dst))
        } catch {
            // Leave nothing half-copied behind.
            _ = try? await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(dst), recursively: true)
            throw FSError.internalError("cannot copy \(obj.path): \(Posix.describe(error))")
        }
        return try await get(path: rel)
    }

    public func remove(_ obj: Obj) async throws {
        forgetLookups()
        defer { forgetLookups() }
        // A symbolic link is removed itself; its target is never touched.
        let target = try await entry(obj.path)
        do {
            try await _NIOFileSystem.FileSystem.shared.removeItem(at: FilePath(target), recursively: true)
        } catch {
            throw FSError.internalError("cannot delete \(obj.path): \(Posix.describe(error))")
        }
    }

    public func put(dir: Obj, stream: UploadStream, replacing existing: Obj?) async throws -> Obj {
        forgetLookups()
        defer { forgetLookups() }
        let (disk, rel) = try await newEntry(in: dir, stream.name)
        if let staged = stream.staged, Self.isStagingName(VirtualPath.base(staged)), VirtualPath.isWithin(staged, root) {
            // A resumable upload staged beside the target (checked by its session): renamed into place, which
            // replaces an existing file at once; the staged file's size is checked once more.
            let size = stream.size
            try await blocking { () throws(FSError) in
                guard let st = Posix.stat(staged), !st.isDir else { throw FSError.internalError("the staged upload \(stream.name) is gone") }
                if let size, st.size != size { throw FSError.internalError("the staged upload \(stream.name) has \(st.size) bytes, not \(size)") }
                if let modified = stream.modified { Posix.setModified(staged, modified) }
                if Glibc.rename(staged, disk) != 0 { throw Posix.error("cannot put \(rel) in place") }
            }
            return try await get(path: rel)
        }
        try await AtomicFileWriter.write(stream, to: disk)
        if let modified = stream.modified {
            try? await blocking { Posix.setModified(disk, modified) }
        }
        return try await get(path: rel)
    }

    public static func isStagingName(_ name: String) -> Bool { name.hasPrefix(".panlist-upload-") }

    public func stagingPath(dir: String, name: String, id: String) async throws -> String {
        var rel = dir
        while true {
            if let disk = try? await confined(rel), await (try? blocking { Posix.isDirectory(disk) }) == true {
                return (disk == "/" ? "" : disk) + "/.panlist-upload-" + id
            }
            guard rel != "/" else { throw FSError.notFound("the storage's root folder is gone") }
            rel = VirtualPath.parent(rel)
        }
    }

    public func setModified(_ obj: Obj, to date: Date) async throws -> Obj {
        forgetLookups()
        defer { forgetLookups() }
        let target = try await entry(obj.path)
        try await blocking { Posix.setModified(target, date) }
        return try await get(path: obj.path)
    }
}

/// Runs blocking system calls on NIO's thread pool, never on the cooperative pool or an event loop.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(FSError) -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive { () throws -> T in try body() }
}

import NIOConcurrencyHelpers
