import Foundation
import PanListCore

/// A user with the secrets that only the store and the login code see.
public struct StoredUser: Sendable, Equatable {
    public var user: User
    /// Alist's `pwd_hash`: sha256hex(staticHash + "-" + salt).
    public var passwordHash: String
    public var salt: String
    public init(user: User, passwordHash: String, salt: String) {
        self.user = user; self.passwordHash = passwordHash; self.salt = salt
    }
}

/// Everything PanList persists. One implementation (`SQLStore`) serves every SQL engine.
public protocol Store: DriverStateStore, KeptTimesStore, TaskStore, UploadSessionStore, SearchIndexStore, ShareStore, Sendable {
    func migrate() async throws
    func ping() async throws
    func close() async

    func storages() async throws -> [StorageRecord]
    func storage(id: Int) async throws -> StorageRecord?
    /// Creates a storage and returns its id; refuses a mount path already used.
    func createStorage(_ record: StorageRecord) async throws -> Int
    func updateStorage(_ record: StorageRecord) async throws
    func setStorageStatus(id: Int, status: String) async throws
    func deleteStorage(id: Int) async throws

    func users() async throws -> [StoredUser]
    func user(named username: String) async throws -> StoredUser?
    func user(id: Int) async throws -> StoredUser?
    func createUser(_ user: StoredUser) async throws -> Int
    func updateUser(_ user: StoredUser) async throws
    func deleteUser(id: Int) async throws

    /// Folder rules (Alist's metas), by path.
    func folderRules() async throws -> [FolderRule]
    func folderRule(id: Int) async throws -> FolderRule?
    /// Creates a rule and returns its id; refuses a path that already has one.
    func createFolderRule(_ rule: FolderRule) async throws -> Int
    func updateFolderRule(_ rule: FolderRule) async throws
    func deleteFolderRule(id: Int) async throws
    /// Inserts several rules at once, all or nothing (`.alreadyExists` when a path has a rule); their ids.
    func insertFolderRules(_ rules: [FolderRule]) async throws -> [Int]
    func deleteFolderRules(ids: [Int]) async throws

    func settings() async throws -> [SettingItem]
    func setting(_ key: String) async throws -> SettingItem?
    /// Inserts or replaces each item by key.
    func saveSettings(_ items: [SettingItem]) async throws
    /// Inserts the items whose keys are missing; keeps stored values.
    func addMissingSettings(_ items: [SettingItem]) async throws
    func deleteSetting(_ key: String) async throws

    /// Logged-out login tokens (by hash) until they expire, so a logout survives restarts.
    func revokeToken(hash: String, expires: Date) async throws
    /// The revoked token hashes still unexpired (expired ones are purged).
    func revokedTokens() async throws -> [(hash: String, expires: Date)]

    /// Counts one failed password attempt for a limiter key (several instances add up here) and returns the
    /// failures within `window` so far; a count older than the window starts again at 1.
    func addLoginFailure(key: String, limit: Int, window: TimeInterval) async throws -> Int
    /// Forgets a key's failures (a right password for that user from that address).
    func clearLoginFailures(key: String) async throws
    /// The keys at their limit within `window`, with the time their block ends.
    func loginBlocks(window: TimeInterval) async throws -> [(key: String, until: Date)]

    /// Small per-driver state (such as access tokens) that must survive restarts.
    /// WebDAV locks not yet expired; a new one is made unless `conflicts` says the live ones forbid it
    /// (checked and made under one cluster-wide lock). False: not made.
    func davLocks() async throws -> [DAVLockRecord]
    func createDAVLock(_ lock: DAVLockRecord, unless conflicts: @escaping @Sendable ([DAVLockRecord]) -> Bool) async throws -> Bool
    func refreshDAVLock(token: String, timeout: Int, expiresMs: Int64) async throws -> DAVLockRecord?
    @discardableResult func deleteDAVLock(token: String) async throws -> Bool
    func deleteDAVLocks(below path: String) async throws

    func driverState(_ key: String) async throws -> String?
    func setDriverState(_ key: String, _ value: String?) async throws

    /// WebDAV dead properties of one path.
    func deadProperties(_ path: String) async throws -> [DeadProperty]
    /// The dead properties of everything below `dir`, by path (one query for a whole listing).
    func deadProperties(below dir: String) async throws -> [String: [DeadProperty]]
    func setDeadProperties(_ path: String, set: [DeadProperty], remove: [(ns: String, name: String)]) async throws
    /// Copies the properties of `from` and everything below it to `to` (replacing those of `to`).
    func copyDeadProperties(from: String, to: String) async throws
    /// Deletes the properties of `path` and everything below it.
    func deleteDeadProperties(_ path: String) async throws
}

/// A WebDAV property set by PROPPATCH: its namespace, name and inner XML.
public struct DeadProperty: Sendable, Equatable {
    public var ns: String
    public var name: String
    public var value: String
    public init(ns: String, name: String, value: String) { self.ns = ns; self.name = name; self.value = value }
}

/// A WebDAV lock as the store keeps it (`path`: the lock root, a virtual path; `expires_ms`: wall clock).
public struct DAVLockRecord: Codable, Sendable, Equatable {
    public var token: String
    public var path: String
    public var infinite: Bool
    public var exclusive: Bool
    public var owner: String
    public var timeout: Int
    public var expires_ms: Int64
    public init(token: String, path: String, infinite: Bool, exclusive: Bool, owner: String, timeout: Int, expires_ms: Int64) {
        self.token = token; self.path = path; self.infinite = infinite; self.exclusive = exclusive
        self.owner = owner; self.timeout = timeout; self.expires_ms = expires_ms
    }
}

/// In-process locks by name: one holder per name, the others wait in turn (up to a deadline).
actor NamedLocks {
    private var held: Set<String> = []
    private var waiters: [String: [(id: UInt64, resume: CheckedContinuation<Bool, Never>)]] = [:]
    private var nextID: UInt64 = 0

    func lock(_ name: String, until deadline: ContinuousClock.Instant) async throws {
        if !held.contains(name) { held.insert(name); return }
        nextID += 1
        let id = nextID
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline)
            await self?.expire(name, id)
        }
        let got = await withCheckedContinuation { c in waiters[name, default: []].append((id, c)) }
        timer.cancel()
        if !got { throw FSError.unavailable("\(name) is busy for too long; try again") }
    }

    private func expire(_ name: String, _ id: UInt64) {
        guard var q = waiters[name], let i = q.firstIndex(where: { $0.id == id }) else { return }
        let w = q.remove(at: i)
        waiters[name] = q.isEmpty ? nil : q
        w.resume.resume(returning: false)
    }

    /// Runs `body` holding `name` (waiting at most until `deadline`), and frees it however `body` ends.
    func holding<R: Sendable>(_ name: String, until deadline: ContinuousClock.Instant,
                              _ body: @Sendable () async throws -> R) async throws -> R {
        try await lock(name, until: deadline)
        do {
            let r = try await body()
            unlock(name)
            return r
        } catch {
            unlock(name)
            throw error
        }
    }

    func unlock(_ name: String) {
        if var q = waiters[name], !q.isEmpty {
            let next = q.removeFirst()
            waiters[name] = q.isEmpty ? nil : q
            next.resume.resume(returning: true)  // handed over: stays held
        } else {
            held.remove(name)
        }
    }
}
