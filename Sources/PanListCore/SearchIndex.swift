import Foundation

/// One name in the search index: a file or folder at `parent`/`name` (virtual paths), on storage `storageID`
/// (0: a folder that exists only because a storage is mounted below it).
public struct IndexEntry: Sendable, Equatable {
    public var parent: String
    public var name: String
    public var isDir: Bool
    public var size: Int64
    public var modified: Date
    public var storageID: Int
    public init(parent: String, name: String, isDir: Bool, size: Int64, modified: Date, storageID: Int) {
        self.parent = parent; self.name = name; self.isDir = isDir; self.size = size; self.modified = modified; self.storageID = storageID
    }
    public var path: String { VirtualPath.join(parent, name) }
}

/// A found entry and its place in the index's order (`id`: later entries have larger ones).
public struct SearchHit: Sendable, Equatable {
    public var id: Int64
    public var entry: IndexEntry
    public init(id: Int64, entry: IndexEntry) { self.id = id; self.entry = entry }
}

/// What to look for: every word (keys, see `SearchText`) in the name, below `root`, of the kind `scope`, on the
/// storages `storages` (and in virtual folders).
public struct SearchQuery: Sendable {
    public enum Scope: Int, Sendable { case all = 0, folders = 1, files = 2 }
    public var root: String
    public var words: [String]
    public var scope: Scope
    /// Only entries of these storages (nil: any).
    public var storages: [Int]?
    /// Only entries after this id (keyset paging), then `offset` more skipped.
    public var afterID: Int64 = 0
    public var offset: Int = 0
    public var limit: Int
    public init(root: String, words: [String], scope: Scope, storages: [Int]?, limit: Int) {
        self.root = root; self.words = words; self.scope = scope; self.storages = storages; self.limit = limit
    }
}

/// The search index, kept in the store so that every instance of a cluster searches and updates the same one.
/// Paths are virtual; "below `path`" means at `path`'s own row and every row under it.
public protocol SearchIndexStore: Sendable {
    /// Makes the index's entries directly in `folder` those of `entries` (a listing): new names added, changed
    /// ones updated, names gone removed with everything below them.
    func indexReplaceFolder(_ folder: String, entries: [IndexEntry]) async throws
    /// Adds or updates one entry.
    func indexPut(_ entry: IndexEntry) async throws
    /// Removes the entry at `path` and everything below it.
    func indexRemove(below path: String) async throws
    /// The entry at `from` and everything below it of storage `source` (nil: of any) now live at `to` (a rename or
    /// a move), on `storageID`. Entries of other storages mounted inside stay where their mounts are.
    func indexMove(from: String, to: String, storageID: Int, source: Int?) async throws
    /// Copies the entries below `from` of storage `source` (nil: of any) to the same places below `to` (a copy),
    /// on `storageID`.
    func indexCopy(from: String, to: String, storageID: Int, source: Int?) async throws
    /// Removes every entry of a storage.
    func indexRemoveStorage(_ id: Int) async throws
    /// Removes everything below `path` ("/": the whole index).
    func indexClear(below path: String) async throws
    /// How many entries the index holds.
    func indexCount() async throws -> Int
    /// The entries matching `query`, in index order, `limit` of them after `offset`.
    func indexSearch(_ query: SearchQuery) async throws -> [SearchHit]
    /// How many entries match `query` (its paging ignored), counting at most `limit` (an exact count of tens of
    /// thousands of matches costs more than the page itself; nil: count them all).
    func indexSearchCount(_ query: SearchQuery, upTo limit: Int?) async throws -> Int
    /// Refreshes the database's statistics of the index (after a build changed much of it).
    func indexAnalyze() async throws
}

/// What the file system tells the search index after each write through PanList, and after each listing
/// fetched fresh from a storage (set by the server; nil: no index).
public protocol SearchIndexing: Sendable {
    /// A folder's entries as just listed from its storage (queued in order with the writes; not waited for).
    /// `stillCurrent` says whether no write through PanList came since the listing was asked for (see
    /// `FileSystem.listingStillCurrent`); a listing that is no longer current is not applied.
    func listed(_ folder: String, objects: [Obj], stillCurrent: @escaping @Sendable () -> Bool)
    /// A file or folder was created or changed at `path`.
    func put(_ path: String, _ obj: Obj) async
    /// The entry at `path` (and everything in it) is gone.
    func removed(_ path: String) async
    /// The entry at `from` (and everything in it) is now at `to`.
    func moved(from: String, to: String) async
    /// The entry at `from` (and everything in it) was copied to `to`.
    func copied(from: String, to: String) async
    /// Something changed in `folder` outside PanList's own writes (a cloud fetched a file into it).
    func changedOutside(_ folder: String) async
}

extension SearchIndexStore {
    public func indexMove(from: String, to: String, storageID: Int) async throws {
        try await indexMove(from: from, to: to, storageID: storageID, source: nil)
    }
    public func indexCopy(from: String, to: String, storageID: Int) async throws {
        try await indexCopy(from: from, to: to, storageID: storageID, source: nil)
    }
}
