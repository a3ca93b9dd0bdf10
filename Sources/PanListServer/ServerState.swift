import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import PanListCore
import PanListStore

/// Everything the routes share: configuration, the store, the file system, tokens and in-memory caches
/// of settings and users (both small, both changed only through this server).
public final class ServerState: Sendable {
    public let config: PanListConfig
    public let store: any Store
    public let fs: FileSystem
    public let logger: Logger
    let tokens: TokenService
    let loginLimiter = LoginLimiter()
    /// Where the access log goes when not through `logger` (the CLI sets a buffered standard-error sink).
    public var accessLogSink: AccessLogSink? {
        get { sinkBox.withLockedValue { $0 } }
        set { sinkBox.withLockedValue { $0 = newValue } }
    }
    private let sinkBox = NIOLockedValueBox<AccessLogSink?>(nil)

    /// The data folder's lock, held while this server runs (see `DataFolderLock`).
    public var dataFolderLock: DataFolderLock? {
        get { lockBox.withLockedValue { $0 } }
        set { lockBox.withLockedValue { $0 = newValue } }
    }
    private let lockBox = NIOLockedValueBox<DataFolderLock?>(nil)
    /// `trusted_proxies`, parsed (an entry that is neither an address nor a range stops the start).
    let trustedProxies: TrustedProxies
    let smallFiles = SmallFileCache()
    private let parsedProxyTypes = NIOLockedValueBox<(raw: String, set: Set<String>)>(("", []))
    private let settingsBox: NIOLockedValueBox<[String: SettingItem]>
    /// Background tasks (copies and moves across storages, uploads sent as tasks), kept in the store.
    let tasks: TaskManager
    /// The guarded proxy aria2's downloads go through, started with the first of them (`aria2Proxy()`).
    let aria2ProxyHolder = GuardedProxyHolder()
    /// The live task feed, shared by the streams that show the same tasks (`/api/task/events`).
    let taskFeeds = SharedRecent<TaskFeedJSON>()
    /// The search index's side of the file system (set as `fs.indexing`).
    let indexer: SearchIndexer
    /// Queues the scheduled index updates (`startIndexSchedule`).
    let indexScheduleBox = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// Sweeps expired resumable uploads once a minute (`startUploadSweeper`).
    let uploadSweeper = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// Resumable uploads' running hashes between requests (`ResumableUploads.running`).
    let uploadHashes = NIOLockedValueBox<[String: ResumableUploads.Running]>([:])
    /// Streamed uploads' bytes not yet sent as a slice, between requests (`ResumableUploads.appendStreamed`).
    let uploadTails = NIOLockedValueBox<[String: ResumableUploads.Tail]>([:])
    /// Users by name, each kept for a couple of seconds so that changes made by the offline CLI
    /// (`panlist admin set`) reach a running server at once in practice.
    private let usersBox = NIOLockedValueBox<[String: (user: StoredUser, until: ContinuousClock.Instant)]>([:])

    /// How this instance hears of the others' changes, and tells them of its own (see `ChangeFeed`).
    public let changes: any ChangeFeed
    private let draining = NIOLockedValueBox(false)
    /// True once a SIGTERM (or Ctrl-C) started the shutdown: `/ready` then answers 503 so that load balancers
    /// stop sending requests while those in flight finish.
    public var isDraining: Bool { draining.withLockedValue { $0 } }
    public func beginDraining() { draining.withLockedValue { $0 = true } }

    public init(config: PanListConfig, store: any Store, fs: FileSystem, logger: Logger,
                changes: any ChangeFeed = LocalChangeFeed()) async throws {
        self.config = config
        self.store = store
        self.changes = changes
        self.fs = fs
        self.logger = logger
        self.trustedProxies = try TrustedProxies(config.trustedProxies)
        self.tokens = await TokenService(secret: config.jwtSecret, lifetimeHours: config.tokenExpiresIn)
        let settings = NIOLockedValueBox<[String: SettingItem]>([:])
        self.settingsBox = settings
        self.tasks = TaskManager(store: store, instance: config.instanceID.isEmpty ? "local" : config.instanceID, changes: changes,
                                 leaseSeconds: config.tasks.leaseSeconds, logger: logger) { kind in
            Self.taskLimits(kind, config: config) { key in settings.withLockedValue { $0[key]?.value } }
        }
        self.indexer = SearchIndexer(store: store, fs: fs, logger: logger) {
            IndexPolicy { key in settings.withLockedValue { $0[key]?.value } }
        }
        fs.indexing = indexer
        try await reloadSettings()
        try await reloadRules()
        for (hash, expires) in try await store.revokedTokens() { tokens.revoke(hash: hash, until: expires) }
        try await loadLoginBlocks()
    }

    /// Ends a login token for good (kept in the store until it would have expired).
    func revoke(_ token: String, until: Date) async throws {
        let hash = TokenService.hash(token)
        tokens.revoke(hash: hash, until: until)
        try await store.revokeToken(hash: hash, expires: until)
        await changes.publish(.revoked(hash: hash, until: Int64(until.timeIntervalSince1970.rounded(.up))))
    }

    // MARK: settings

    func reloadSettings() async throws {
        let items = try await store.settings()
        settingsBox.withLockedValue { $0 = Dictionary(items.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a }) }
        signerBox.withLockedValue { $0 = Signer(key: setting(SettingKey.token) ?? "") }
        let types = FileTypes(setting: setting)
        fileTypesBox.withLockedValue { $0 = types }
        // Last: an answer kept under the new generation was made with the new signer and settings.
        settingsGenerationBox.withLockedValue { $0 += 1 }
    }

    func setting(_ key: String) -> String? { settingsBox.withLockedValue { $0[key]?.value } }

    /// Workers per instance and automatic retries for a kind of task: `tasks.<kind>` in config.json when set,
    /// else the `task_<kind>_workers` / `task_<kind>_max_retry` settings, else 3 and 2.
    static func taskLimits(_ kind: String, config: PanListConfig, setting: (String) -> String?) -> (workers: Int, retries: Int) {
        let c = config.tasks.kinds[kind]
        let workers = c?.workers ?? setting("task_\(kind)_workers").flatMap { Int($0) } ?? 3
        let retries = c?.maxRetry ?? setting("task_\(kind)_max_retry").flatMap { Int($0) } ?? 2
        return (max(0, min(workers, 64)), max(0, min(retries, 20)))
    }

    /// Moves every time the settings are read again (a change through the admin API).
    var settingsGeneration: Int { settingsGenerationBox.withLockedValue { $0 } }
    private let settingsGenerationBox = NIOLockedValueBox<Int>(0)
    /// `/d`'s recent answers for signed links (see `SignedLinkAnswers`).
    let signedAnswers = SignedLinkAnswers()
    var allSettings: [SettingItem] { settingsBox.withLockedValue { Array($0.values) } }

    func saveSettings(_ items: [SettingItem]) async throws {
        try await store.saveSettings(items)
        try await reloadSettings()
        await changes.publish(.settings)
    }

    /// File type codes by extension (rebuilt when settings change).
    var fileTypes: FileTypes { fileTypesBox.withLockedValue { $0 } }
    private let fileTypesBox = NIOLockedValueBox<FileTypes>(FileTypes(setting: { _ in nil }))

    /// The link signer, keyed by the `token` setting (rebuilt when settings change).
    var signer: Signer { signerBox.withLockedValue { $0 } }
    private let signerBox = NIOLockedValueBox<Signer>(Signer(key: ""))

    // MARK: folder rules and authorization

    private let rulesBox = NIOLockedValueBox<(generation: Int, rules: FolderRules)>((0, .none))
    private let rulesGeneration = NIOLockedValueBox<Int>(0)
    /// The folder rules in force (a snapshot; swapped when an admin changes a rule).
    var rules: FolderRules { rulesBox.withLockedValue { $0.rules } }

    /// After the rules changed in the store: read again here, and the other instances told.
    func rulesChanged() async throws {
        try await reloadRules()
        await changes.publish(.rules)
    }

    /// Reads the rules from the store. Reloads that overlap install the newest read, never an older one.
    func reloadRules() async throws {
        let generation = rulesGeneration.withLockedValue { $0 += 1; return $0 }
        let loaded = FolderRules(try await store.folderRules())
        rulesBox.withLockedValue { if generation > $0.generation { $0 = (generation, loaded) } }
        accessChanges.withLockedValue { $0 += 1 }
    }

    /// `Access.check` with the rules in force: the one question every front end asks. With the client's
    /// `ip`, a wrong folder password counts towards the login limiter, per IP and guarded folder: five in
    /// 5 minutes lock that IP's attempts on that folder for a while, right or wrong, so passwords cannot
    /// be guessed quickly (a right one does not reset the count).
    func check(_ user: User, _ action: Action, _ path: String, password: String?, ip: String? = nil) throws(FSError) {
        let r = rules
        var attempt: LoginLimiter.Attempt?
        var guardPath = ""
        if let ip, let password, !password.isEmpty, !user.isAdmin, !user.permission.contains(.accessWithoutPassword),
           let rule = r.passwordRule(for: path) {
            guardPath = rule.path
            attempt = try loginLimiter.begin([loginLimiter.folderKey(address: ip, guardPath: guardPath)])
        }
        do {
            try Access.check(user, action, path, rules: r, password: password)
        } catch {
            if let attempt {
                let wrong: Bool
                if case .permissionDenied(let m) = error, m == Access.passwordMessage { wrong = true } else { wrong = false }
                if wrong { logger.warning("wrong folder password for \(LogText.quoted(guardPath)) from \(ip ?? "?") (user \(LogText.quoted(user.username)))") }
                let reached = loginLimiter.end(attempt, wrong ? .failed : .neither)
                if wrong {
                    // Counted in the store too (off this synchronous path): failures on every instance add up.
                    let what = "folder password attempts from \(ip ?? "?") on \(LogText.quoted(guardPath))"
                    Task { await self.countFailures(attempt.keys, locallyReached: reached, unit: "failed attempts", what: { _ in what }) }
                }
            }
            throw error
        }
        // A right folder password does not reset the count: guessing stays limited.
        if let attempt { loginLimiter.end(attempt, .neither) }
    }

    /// Creating something new at `path` (a folder, an uploaded file): writing into its folder, and the
    /// new name itself must be one the user may see there.
    func checkCreate(_ user: User, _ path: String, password: String?, ip: String) throws(FSError) {
        try check(user, .write, VirtualPath.parent(path), password: password, ip: ip)
        try check(user, .read, path, password: password, ip: ip)
    }

    /// Refuses to copy or move `src` to `dst` when folder rules at or below `src` would have to travel to
    /// places below `dst` that have rules of their own (call before changing anything).
    func checkRulesCanTravel(from src: String, to dst: String) throws(FSError) {
        let r = rules
        if src != dst && r.hasRule(within: src) && r.hasRule(within: dst) {
            throw .alreadyExists("folder rules exist at \(src) and at \(dst); delete the rule at the destination first")
        }
    }

    /// Runs `op`, a copy or move of `src` to `dst`, so that what is kept by path follows: the folder rules at
    /// or below `src` are copied to the same places below `dst` first (one insert, all or nothing; so the
    /// new place is guarded as soon as anything arrives there) and, after a move, removed from `src`; WebDAV
    /// dead properties likewise. When `op` fails and nothing arrived at `dst`, the copied rules go again.
    func transfer(from src: String, to dst: String, move: Bool, _ op: () async throws -> Void) async throws {
        if src == dst { return try await op() }
        try checkRulesCanTravel(from: src, to: dst)
        let added = try await carryRules(from: src, to: dst)
        do {
            try await op()
        } catch {
            if !added.isEmpty, (try? await fs.get(dst)) == nil {
                try? await store.deleteFolderRules(ids: added)
                try? await rulesChanged()
            }
            throw error
        }
        if move { await dropRules(of: src) }
        try? await store.copyDeadProperties(from: src, to: dst)
        if move { try? await store.deleteDeadProperties(src) }
    }

    /// Copies the folder rules at and below `src` to the same places below `dst`; the new rules' ids.
    func carryRules(from src: String, to dst: String) async throws -> [Int] {
        let travelling = rules.rules.filter { VirtualPath.isWithinAnyForm($0.path, src) }
        guard !travelling.isEmpty else { return [] }
        let added = try await store.insertFolderRules(travelling.map { rule in
            var r = rule
            let rest = VirtualPath.relativeAnyForm(rule.path, to: src)
            r.path = rest == "/" ? dst : (dst == "/" ? rest : dst + rest)
            return r
        })
        try await rulesChanged()
        return added
    }

    /// Deletes the folder rules at and below `src` (after a move).
    func dropRules(of src: String) async {
        let travelling = rules.rules.filter { VirtualPath.isWithinAnyForm($0.path, src) }
        guard !travelling.isEmpty else { return }
        do {
            try await store.deleteFolderRules(ids: travelling.map(\.id))
            try await rulesChanged()
        } catch {
            logger.warning("the folder rules at \(LogText.quoted(src)) stay after its move: \(ErrorText.describe(error))")
        }
    }

    /// Deletes `path` and what is kept by its path (WebDAV dead properties; the file system forgets kept
    /// times itself), for every front end. Folder rules stay: they are the admin's, not the file's.
    func remove(_ path: String) async throws {
        try await fs.remove(path)
        try? await store.deleteDeadProperties(path)
    }

    // MARK: users

    func storedUser(named name: String) async throws -> StoredUser? {
        if let hit = usersBox.withLockedValue({ $0[name] }), hit.until > .now {
            Metrics.userCache.hit.increment()
            return hit.user
        }
        Metrics.userCache.miss.increment()
        guard let u = try await store.user(named: name) else { return nil }
        usersBox.withLockedValue { $0[name] = (u, .now + .seconds(2)) }
        return u
    }

    func forgetUsers() {
        usersBox.withLockedValue { $0.removeAll() }
        accessChanges.withLockedValue { $0 += 1 }
    }

    /// Counts changes of users and folder rules seen by this instance (its own and, through the change feed,
    /// the others'): a long task looks at its creator again when this moves.
    let accessChanges = NIOLockedValueBox<Int>(0)

    /// After a user's record changed in the store: forgotten here, and the other instances told.
    func usersChanged() async {
        forgetUsers()
        await changes.publish(.users)
    }

    /// The one password check, for `/api/auth/login*` and WebDAV Basic (`via` names the front end in the log):
    /// the login limiter (per user and address, and per address at a higher limit; throws `.rateLimited`
    /// while blocked, whatever the password), the guest refused, the stored hash verified off the event
    /// loops, an old record upgraded. Nil when the name or password is wrong (counted as a failure and
    /// logged at warning level, never with the password). A disabled user's success does not clear the count;
    /// the caller refuses the disabled user.
    func verifyLogin(username: String, staticHash: String, ip: String, via: String = "api") async throws -> StoredUser? {
        let attempt: LoginLimiter.Attempt
        do { attempt = try loginLimiter.begin(loginLimiter.loginKeys(username: username, address: ip)) } catch {
            logger.warning("login refused while blocked: user \(LogText.quoted(username)) from \(ip) (\(via))")
            throw error
        }
        let stored: StoredUser?
        do {
            if let s = try await storedUser(named: username), !s.user.isGuest,
               await Passwords.verifyAsync(staticHash: staticHash, hash: s.passwordHash, salt: s.salt) {
                stored = s
            } else {
                stored = nil
            }
        } catch {
            loginLimiter.end(attempt, .neither)
            throw error
        }
        guard let stored else {
            logger.warning("failed login: user \(LogText.quoted(username)) from \(ip) (\(via))")
            let reached = loginLimiter.end(attempt, .failed)
            await countFailures(attempt.keys, locallyReached: reached, unit: "failed logins") { k in
                (k.kind == .address ? "every login from \(ip)" : "user \(LogText.quoted(username)) from \(ip)")
            }
            return nil
        }
        // A disabled user's right password does not clear the count; the caller refuses the disabled user.
        loginLimiter.end(attempt, stored.user.disabled ? .neither : .succeeded)
        if !stored.user.disabled, let own = attempt.keys.first(where: { $0.kind == .userAddress }) {
            try? await store.clearLoginFailures(key: own.name)
        }
        await upgradePassword(stored, staticHash: staticHash)
        return stored
    }

    /// Counts failed attempts in the store, where every instance's add up: a key that reaches its limit there
    /// is blocked here and, through the change feed, on every instance. Without the store (unreachable), the
    /// local count still blocks this instance.
    func countFailures(_ keys: [LoginLimiter.Key], locallyReached: [LoginLimiter.Key], unit: String,
                       what: (LoginLimiter.Key) -> String) async {
        let window = loginLimiter.window
        let seconds = TimeInterval(window.components.seconds)
        var reached: [LoginLimiter.Key] = []
        var counted = true
        for k in keys {
            do {
                let n = try await store.addLoginFailure(key: k.name, limit: k.limit, window: seconds)
                if n >= k.limit {
                    let until = Date().addingTimeInterval(seconds)
                    loginLimiter.markBlocked(k.name, until: until)
                    await changes.publish(.blocked(key: k.name, until: Int64(until.timeIntervalSince1970.rounded(.up))))
                    if n == k.limit { reached.append(k) }
                }
            } catch {
                counted = false
                logger.warning("could not count a failed attempt in the database (\(ErrorText.describe(error))); counted on this instance only")
            }
        }
        if !counted { reached = locallyReached }
        for k in reached {
            logger.warning("blocked \(what(k)) for \(window.components.seconds / 60) minutes after \(k.limit) \(unit)")
        }
    }

    /// For credentials verified before (WebDAV's memory of them): refused while the user or address is
    /// blocked, as a new password check would be.
    func checkNotBlocked(username: String, ip: String, via: String) throws(FSError) {
        do { try loginLimiter.check(loginLimiter.loginKeys(username: username, address: ip)) } catch {
            logger.warning("login refused while blocked: user \(LogText.quoted(username)) from \(ip) (\(via))")
            throw error
        }
    }

    /// Rewrites a user's record from the old fast hash to bcrypt after a successful login (the password is
    /// only known then). Failures are logged and ignored: the old record still works.
    func upgradePassword(_ stored: StoredUser, staticHash: String) async {
        guard Passwords.isLegacy(stored.passwordHash) else { return }
        do {
            var updated = stored
            (updated.passwordHash, updated.salt) = try await NIOThreadPool.singleton.runIfActive { Passwords.make(staticHash: staticHash) }
            try await store.updateUser(updated)
            await usersChanged()
        } catch {
            logger.warning("could not rewrite the password record of \(LogText.quoted(stored.user.username)) as bcrypt: \(ErrorText.describe(error))")
        }
    }

    /// The user behind a request's `Authorization` header: a login token, the admin token, or the guest when absent.
    /// The token in `Authorization`: raw as Alist sends it, or after "Bearer ".
    static func token(_ request: Request) -> String {
        var token = request.headers[.authorization]?.trimmingCharacters(in: .whitespaces) ?? ""
        if token.lowercased().hasPrefix("bearer ") { token = String(token.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
        return token
    }

    func authenticate(_ request: Request) async throws -> User {
        let token = Self.token(request)
        if token.isEmpty {
            guard let guest = try await storedUser(named: "guest"), !guest.user.disabled else {
                throw FSError.unauthorized("Guest user is disabled, login please")
            }
            return guest.user
        }
        if let adminToken = setting(SettingKey.token), !adminToken.isEmpty, Passwords.equal(token, adminToken) {
            guard let admin = try await store.users().first(where: { $0.user.isAdmin }) else {
                throw FSError.unauthorized("there is no admin user")
            }
            return admin.user
        }
        let claims = try await tokens.verify(token)
        guard let stored = try await storedUser(named: claims.username) else {
            throw FSError.unauthorized("the user of this token no longer exists, login please")
        }
        if stored.user.passwordTimestamp != claims.pwd_ts { throw FSError.unauthorized("Password has been changed, login please") }
        if stored.user.disabled { throw FSError.unauthorized("this user is disabled") }
        return stored.user
    }

    /// Like `authenticate`, but only for admins.
    func authenticateAdmin(_ request: Request) async throws -> User {
        let user = try await authenticate(request)
        guard user.isAdmin else { throw FSError.permissionDenied("you are not an admin") }
        return user
    }

    // MARK: storages

    /// Initialises every stored storage, concurrently (one slow or unreachable upstream does not hold up the
    /// others); each is in the table as `loading` until its own initialisation ends.
    public func mountAll() async {
        let records: [StorageRecord]
        do { records = try await store.storages() } catch {
            logger.error("could not read the storages from the database: \(error)")
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for record in records where !record.disabled {
                let ticket = fs.placeLoading(record)
                group.addTask { _ = await self.mount(record, ticket: ticket) }
            }
        }
        startupLoaded.withLockedValue { $0 = true }
    }

    private let startupLoaded = NIOLockedValueBox(false)
    /// Whether the storages of the start have been loaded (each working or failed): `/ready` waits for it. A
    /// storage added or changed later loads on its own and does not make the instance unready.
    public var hasLoadedStorages: Bool { startupLoaded.withLockedValue { $0 } }

    /// Loads a storage into the file system and records its status. When this load was overtaken (the
    /// storage changed meanwhile) or cancelled, nothing is recorded and the storage as it is now is returned.
    @discardableResult
    func mount(_ record: StorageRecord, ticket: Int? = nil) async -> MountedStorage? {
        guard let mounted = await fs.load(record, ticket: ticket) else { return fs.storage(id: record.id) }
        try? await store.setStorageStatus(id: record.id, status: mounted.record.status)
        return mounted
    }

    /// Stops what this server holds: the change listener, every storage, the store, the data folder's lock.
    public func shutdown() async {
        stopped.withLockedValue { $0 = true }
        uploadSweeper.withLockedValue { $0?.cancel(); $0 = nil }
        // Each step is waited for a bounded time: a stop must end even when a step is stuck (the step is
        // named in the log, an error: it is a bug to find).
        // (TaskManager.stop bounds its own waits: a claim under way 5 s, the running tasks 10 s, then one write.)
        var clean = await step("pausing the tasks", .seconds(30)) { await self.tasks.stop() }
        clean = await step("stopping the change listener", .seconds(5)) { await self.changes.stop() } && clean
        let flush = flushTask.withLockedValue { $0 }
        flush?.cancel()
        clean = await step("ending the reload of shared state", .seconds(5)) { await flush?.value } && clean
        let chain = syncChain.withLockedValue { $0 }
        clean = await step("ending the storage syncs", .seconds(5)) { await chain?.value } && clean
        clean = await step("unmounting the storages", .seconds(5)) { await self.fs.unloadAll() } && clean
        // (A close writes the last of the log into the database file and syncs it: seconds on a busy disk.)
        clean = await step("closing the database", .seconds(15)) { await self.store.close() } && clean
        await aria2ProxyHolder.stop()
        // A step still running may still use the data folder: its lock then goes with the process.
        if clean { dataFolderLock?.release() }
    }

    /// Runs one step of the stop, cancelled (and logged by name as an error: a bug to find) when it takes longer
    /// than `limit`; false then.
    private func step(_ name: String, _ limit: Duration, _ body: @escaping @Sendable () async -> Void) async -> Bool {
        let task = Task { await body() }
        if await FirstOf.wait(task, atMost: limit) { return true }
        task.cancel()
        logger.error("stopping: \(name) did not end within \(limit.components.seconds) s; going on without it")
        return false
    }

    // MARK: changes made by other instances

    /// Applies a change that another instance published (see `ChangeFeed`). Quick changes are applied at
    /// once; mounting a storage (a cloud login can take seconds) runs in the background, so the feed is never
    /// held up. A change that cannot be applied now (the store is away) turns into a full flush, which is
    /// retried with backoff until it succeeds; the caches' time limits remain the backstop meanwhile.
    public func apply(_ change: Change) async {
        guard !stopped.withLockedValue({ $0 }) else { return }
        do {
            switch change {
            case .storage(let id):
                syncInTurn { [self] in
                    do { try await syncStorage(id: id) } catch {
                        logger.warning("could not apply another instance's change of storage \(id): \(ErrorText.describe(error)); reloading everything")
                        startFlush()
                    }
                }
            case .settings: try await reloadSettings()
            case .users: forgetUsers()
            case .rules: try await reloadRules()
            case .revoked(let hash, let until): tokens.revoke(hash: hash, until: Date(timeIntervalSince1970: Double(until)))
            case .blocked(let key, let until): loginLimiter.markBlocked(key, until: Date(timeIntervalSince1970: Double(until)))
            case .folder(let storage, let path, let recursive):
                await fs.folderChanged(storageID: storage, path: path, recursive: recursive)
            case .task(let id):
                await tasks.changed(id)
            case .everything:
                forgetUsers()
                await fs.forgetCaches()
                startFlush()
            }
        } catch {
            logger.warning("could not apply another instance's change (\(change)): \(ErrorText.describe(error)); reloading everything")
            startFlush()
        }
    }

    private let flushTask = NIOLockedValueBox<Task<Void, Never>?>(nil)

    /// Reloads everything other instances may have changed, part by part; the parts that fail are tried
    /// again after 1, 2, 4 … 30 s until all succeed. A newer flush replaces a running one.
    func startFlush() {
        guard !stopped.withLockedValue({ $0 }) else { return }
        let parts: [(String, @Sendable () async throws -> Void)] = [
            ("settings", { try await self.reloadSettings() }),
            ("folder rules", { try await self.reloadRules() }),
            ("logouts", { for (hash, expires) in try await self.store.revokedTokens() { self.tokens.revoke(hash: hash, until: expires) } }),
            ("login blocks", { try await self.loadLoginBlocks() }),
            ("storages", { try await self.syncStoragesInTurn() }),
        ]
        let task = Task { [self] in
            var pending = parts
            var delay = 1
            while !pending.isEmpty && !Task.isCancelled {
                var failed: [(String, @Sendable () async throws -> Void)] = []
                for part in pending {
                    do { try await part.1() } catch { failed.append(part) }
                }
                if failed.isEmpty { break }
                logger.warning("could not reload \(failed.map(\.0).joined(separator: ", ")) from the database; trying again in \(delay) s")
                pending = failed
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 30)
                forgetUsers()
            }
        }
        flushTask.withLockedValue { old in
            old?.cancel()
            old = task
        }
    }

    /// Storage syncs run one after the other, each reading the store when its turn comes (so the last one
    /// to run mounts what the store says last: an older read can never win over a newer one), off the change
    /// feed (a cloud login can take seconds). Nothing starts once the server stops.
    private let syncChain = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let stopped = NIOLockedValueBox(false)

    @discardableResult
    func syncInTurn(_ work: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        syncChain.withLockedValue { last in
            let previous = last
            let next = Task { [self] in
                await previous?.value
                guard !stopped.withLockedValue({ $0 }) else { return }
                await work()
            }
            last = next
            return next
        }
    }

    func syncStoragesInTurn() async throws {
        let result = NIOLockedValueBox<Result<Void, any Error>>(.success(()))
        await syncInTurn { [self] in
            do { try await syncStorages() } catch { result.withLockedValue { $0 = .failure(error) } }
        }.value
        try result.withLockedValue { $0 }.get()
    }

    /// For tests: waits for the flush under way, if any.
    func flushed() async { await flushTask.withLockedValue { $0 }?.value }

    /// The blocks in force according to the store (at start, and after the change feed was away).
    func loadLoginBlocks() async throws {
        for b in try await store.loginBlocks(window: TimeInterval(loginLimiter.window.components.seconds)) {
            loginLimiter.markBlocked(b.key, until: b.until)
        }
    }

    /// Makes the mount table match the store: new storages mounted, changed ones remounted, disabled and
    /// deleted ones dropped; unchanged ones are left alone (no new login to a cloud).
    func syncStorages() async throws {
        let records = try await store.storages()
        let ids = Set(records.map(\.id))
        for m in fs.storages where !ids.contains(m.id) { await fs.unload(id: m.id) }
        await withTaskGroup(of: Void.self) { group in
            for r in records { group.addTask { await self.sync(r) } }
        }
    }

    func syncStorage(id: Int) async throws {
        guard let record = try await store.storage(id: id) else { return await fs.unload(id: id) }
        await sync(record)
    }

    private func sync(_ record: StorageRecord) async {
        let mounted = fs.storage(id: record.id)
        if record.disabled {
            if mounted != nil { await fs.unload(id: record.id) }
            return
        }
        // The status is each instance's own; everything else is the storage's configuration.
        if let mounted, Self.sameConfiguration(mounted.record, record) { return }
        let ticket = fs.placeLoading(record)
        await mount(record, ticket: ticket)
    }

    static func sameConfiguration(_ a: StorageRecord, _ b: StorageRecord) -> Bool {
        var x = a, y = b
        x.status = ""; y.status = ""
        // The store keeps whole milliseconds, truncated (as SQLStore writes them).
        x.modified = Date(timeIntervalSince1970: Double(Int64(x.modified.timeIntervalSince1970 * 1000)) / 1000)
        y.modified = Date(timeIntervalSince1970: Double(Int64(y.modified.timeIntervalSince1970 * 1000)) / 1000)
        x.mountPath = (try? VirtualPath.normalize(x.mountPath)) ?? x.mountPath
        y.mountPath = (try? VirtualPath.normalize(y.mountPath)) ?? y.mountPath
        return x == y
    }

    /// The storage record as the admin API shows it: the live status from the mount table.
    func liveRecord(_ record: StorageRecord) -> StorageRecord {
        var r = record
        if let m = fs.storage(id: record.id) {
            r.status = m.record.status
            if r.status == StorageStatus.work, let noting = m.driver as? any StatusNoting {
                switch noting.statusNote() {
                case .note(let text): r.status = StorageStatus.work + " (" + text + ")"
                case .failing(let text): r.status = text
                case nil: break
                }
            }
        } else if record.disabled { r.status = StorageStatus.disabled }
        return r
    }

    // MARK: URLs

    /// The server's public base URL: `site_url`, or what the request says it was sent to.
    func baseURL(_ request: Request) -> String {
        if !config.siteURL.isEmpty { return config.siteURL.hasSuffix("/") ? String(config.siteURL.dropLast()) : config.siteURL }
        let proto = request.headers[HTTPField.Name("X-Forwarded-Proto")!] ?? "http"
        let host = request.headers[HTTPField.Name("X-Forwarded-Host")!] ?? request.head.authority
            ?? "\(config.scheme.address):\(config.scheme.httpPort)"
        return "\(proto)://\(host)"
    }

    /// Whether download links to `path` (in `storage`) must carry a `sign`: `sign_all`, the storage's
    /// `enable_sign`, or a folder password guarding the path.
    func signRequired(_ storage: MountedStorage?, path: String) -> Bool {
        signRule(storage)(path)
    }

    /// `signRequired` for many paths of one storage (a listing): settings and rules are read once.
    func signRule(_ storage: MountedStorage?) -> @Sendable (String) -> Bool {
        signRules(storage).some
    }

    /// `signRule`, said as "every file" (no check per path) or a check per path.
    func signRules(_ storage: MountedStorage?) -> (all: Bool, some: @Sendable (String) -> Bool) {
        if setting(SettingKey.signAll) == "true" || storage?.record.enableSign == true { return (true, { _ in true }) }
        let rules = rules
        return (false, { rules.password(for: $0) != nil })
    }

    /// Extensions always proxied from `/d` (the `proxy_types` setting), lower case.
    var proxyTypes: Set<String> {
        let raw = setting(SettingKey.proxyTypes) ?? ""
        return parsedProxyTypes.withLockedValue { cached in
            if cached.raw == raw { return cached.set }
            let set = Set(raw.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            cached = (raw, set)
            return set
        }
    }

    /// `webdav_redirect_agents`, lower case.
    var webdavRedirectAgents: [String] {
        let raw = setting(SettingKey.webdavRedirectAgents) ?? ""
        return parsedAgents.withLockedValue { cached in
            if cached.raw == raw { return cached.list }
            let list = raw.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            cached = (raw, list)
            return list
        }
    }
    private let parsedAgents = NIOLockedValueBox<(raw: String, list: [String])>(("\u{0}", []))

    /// When signs made now expire: `link_expiration` hours from now, or 0 (never).
    var signExpiry: Int64 {
        let hours = Int64(setting(SettingKey.linkExpiration) ?? "0") ?? 0
        return hours > 0 ? Int64(Date().timeIntervalSince1970) + hours * 3600 : 0
    }

    /// A sign for `path`, valid for `link_expiration` hours (0 = forever).
    func sign(_ path: String) -> String { signer.sign(path: path, expire: signExpiry) }
}
