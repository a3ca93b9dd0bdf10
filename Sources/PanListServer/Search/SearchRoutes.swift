import Foundation
import Hummingbird
import PanListCore
import PanListStore

/// `POST /api/fs/search` (Alist's request and answer, plus `modified` and `notes`).
struct SearchRequest: Decodable {
    var parent: String?
    var keywords: String?
    var scope: Int?
    var page: Int?
    var perPage: Int?
    var password: String?
    enum CodingKeys: String, CodingKey { case parent, keywords, scope, page, perPage = "per_page", password }
}

struct SearchResultJSON: Encodable {
    var parent: String
    var name: String
    var is_dir: Bool
    var size: Int64
    var type: Int
    var modified: String
}

struct SearchPageJSON: Encodable {
    var content: [SearchResultJSON]
    var total: Int
    /// False when more results match than `total` says: beyond the page asked for, matches are counted up to
    /// the next thousand only (a page of a word found in 50,000 names must not cost a count of all of them).
    var total_exact: Bool
    /// Sentences to show with the results (a storage left out because it is not working, an index being built).
    var notes: [String]
}

struct IndexWalkRequest: Decodable {
    var paths: [String]?
    var maxDepth: Int?
    enum CodingKeys: String, CodingKey { case paths, maxDepth = "max_depth" }
}

struct IndexProgressJSON: Encodable {
    var obj_count: Int
    var is_done: Bool
    var last_done_time: String
    var error: String
    var running: Bool
    var task_id: String
    var state: String
    var current: String
    var status: String
}

extension APIRoutes {
    /// Most matches a search looks through for a user whose results must be checked one by one (folder rules
    /// that hide names or guard folders with passwords): beyond it, the total says "at least".
    static let searchScanLimit = 100_000

    /// How far a search counts its matches: to the thousand after the page asked for (page 1 of 50: 1,000).
    static func searchCountCap(offset: Int, perPage: Int) -> Int { ((offset + perPage) / 1000 + 1) * 1000 }

    func addSearchRoutes(to api: RouterGroup<AppContext>) {
        api.post("fs/search") { req, ctx in try await search(req, ctx) }

        let admin = api.group("admin/index").add(middleware: AdminOnlyMiddleware(state: state))
        for (route, clear) in [("build", true), ("update", false)] {
            admin.post(RouterPath(route)) { req, _ in
                let admin = try await state.authenticateAdmin(req)
                let body = try await req.json(IndexWalkRequest.self, limit: state.config.maxRequestBody)
                let paths = body.paths ?? ["/"]
                for p in paths {
                    guard let n = try? VirtualPath.normalize(p) else { throw FSError.badRequest("paths: \(p) is not a valid path") }
                    if n != "/" {
                        let folder = try? await state.fs.get(n)
                        guard folder?.0.isDir == true else { throw FSError.badRequest("paths: \(n) is not a folder PanList can open") }
                    }
                }
                // Checked and queued under one lock (on every instance): two requests at once start one walk.
                let record = try await state.store.withLock("search-index-walk", wait: .seconds(10)) {
                    if let open = try await state.openIndexTasks().first {
                        throw FSError.conflict("an index walk is already waiting or running (task \(open.id)); stop it first")
                    }
                    return try await state.queueIndexWalk(admin, paths: paths, maxDepth: body.maxDepth ?? -1, clear: clear)
                }
                struct Queued: Encodable { var task_id: String }
                return APIResponse.ok(Queued(task_id: record.id))
            }
        }
        admin.post("stop") { _, _ in
            try await state.stopIndexing()
            return APIResponse.ok()
        }
        admin.post("clear") { _, _ in
            try await state.stopIndexing()
            // A walk stopping on another instance may write a last folder: waited for through its task's state.
            for _ in 0..<50 where try await !state.openIndexTasks().isEmpty { try await Task.sleep(for: .milliseconds(100)) }
            try await state.store.indexClear(below: "/")
            try await state.store.setDriverState(ServerState.indexLastDoneKey, nil)
            return APIResponse.ok()
        }
        for method in [HTTPRequest.Method.get, .post] {
            admin.on("progress", method: method) { _, _ in APIResponse.ok(try await state.indexProgress()) }
        }
    }

    func search(_ req: Request, _ ctx: AppContext) async throws -> Response {
        let user = try await state.authenticate(req)
        let body = try await req.json(SearchRequest.self, limit: state.config.maxRequestBody)
        guard state.indexPolicy.enabled else { throw FSError.badRequest(ServerState.searchOffMessage) }
        let words = SearchText.words(body.keywords ?? "")
        guard !words.isEmpty else { throw FSError.badRequest("keywords: type what to search for") }
        guard words.count <= 10 else { throw FSError.badRequest("keywords: at most 10 words") }
        guard words.allSatisfy({ $0.unicodeScalars.count <= 255 }) else { throw FSError.badRequest("keywords: a word of at most 255 characters") }
        guard let scope = SearchQuery.Scope(rawValue: body.scope ?? 0) else {
            throw FSError.badRequest("scope must be 0 (everything), 1 (folders) or 2 (files)")
        }
        let page = body.page ?? 1, perPage = body.perPage ?? 50
        guard page >= 1, page <= 1_000_000 else { throw FSError.badRequest("page must be 1 or more") }
        guard (1...1000).contains(perPage) else { throw FSError.badRequest("per_page must be from 1 to 1000") }
        let root = try Access.resolve(body.parent ?? "/", for: user)
        let pw = password(req, body.password)
        try state.check(user, .read, root, password: pw, ip: ctx.clientIP)

        let rules = state.rules
        let filter = ResultFilter(state: state, user: user, rules: rules, password: pw, ip: ctx.clientIP)
        var notes: [String] = []
        // Entries of storages that are not working (disabled, failing to start, a refused token) are left out.
        var working: [Int] = []
        for m in state.fs.storages {
            var failing: String?
            if case .failing(let why)? = (m.driver as? any StatusNoting)?.statusNote() { failing = why }
            if m.isWorking && !m.record.disabled && failing == nil { working.append(m.id); continue }
            guard !m.record.disabled else { continue }
            let status = failing ?? (m.record.status == StorageStatus.loading ? "still loading" : m.record.status)
            let why = Access.inUserTerms(status, for: user)
            if VirtualPath.isWithin(root, m.mountPath) {
                // The search lies in the storage: named by the folder searched (its mount may be above the user's base).
                if state.fs.resolve(root)?.0.id == m.id {
                    notes.append("\(Access.userPath(root, for: user)) is not working (\(why)): its files are not in these results")
                }
            } else if VirtualPath.isWithin(m.mountPath, root), filter.shows(VirtualPath.parent(m.mountPath), VirtualPath.base(m.mountPath)) {
                notes.append("\(Access.userPath(m.mountPath, for: user)) is not working (\(why)): its files are not in these results")
            }
        }
        if try await !state.openIndexTasks().isEmpty { notes.append("the search index is being built or updated: results may be incomplete") }

        var query = SearchQuery(root: root, words: words, scope: scope, storages: working, limit: perPage)
        var hits: [SearchHit] = []
        var total = 0, exact = true
        let cap = Self.searchCountCap(offset: (page - 1) * perPage, perPage: perPage)
        if !filter.needed {
            query.offset = (page - 1) * perPage
            hits = try await state.store.indexSearch(query)
            total = try await state.store.indexSearchCount(query, upTo: cap + 1)
            if total > cap { total = cap; exact = false }
        } else {
            // Checked one by one as browsing checks them; read in index order, a batch at a time.
            let skip = (page - 1) * perPage
            var scanned = 0
            query.limit = 2000
            scan: while true {
                let batch = try await state.store.indexSearch(query)
                for h in batch {
                    scanned += 1
                    if filter.shows(h.entry.parent, h.entry.name) {
                        if total >= skip && hits.count < perPage { hits.append(h) }
                        total += 1
                        if total > cap { total = cap; exact = false; break scan }
                    }
                    if scanned >= Self.searchScanLimit {
                        notes.append("more than \(Self.searchScanLimit) names match: only the first were counted; add words to narrow the search")
                        exact = false
                        break scan
                    }
                }
                guard batch.count == query.limit, let last = batch.last else { break }
                query.afterID = last.id
            }
        }
        let types = state.fileTypes
        let content = hits.map { h in
            SearchResultJSON(parent: Access.userPath(h.entry.parent, for: user), name: h.entry.name, is_dir: h.entry.isDir,
                             size: h.entry.size,
                             type: types.type(of: Obj(id: "", path: "", name: h.entry.name, size: h.entry.size, modified: h.entry.modified, isDir: h.entry.isDir)),
                             modified: TimeFormat.rfc3339(h.entry.modified))
        }
        return APIResponse.ok(SearchPageJSON(content: content, total: total, total_exact: exact, notes: notes))
    }
}

/// Whether browsing would show a found name to a user: its folder may be listed by them (base path, hidden
/// folders on the way, the folder's password) and the name is not hidden there. The request's one password is
/// tried on each guarded folder once, counted by the same limiter as browsing (so search cannot be used to
/// guess folder passwords faster).
final class ResultFilter {
    let state: ServerState
    let user: User
    let rules: FolderRules
    let password: String?
    let ip: String
    /// False when no folder rule can hide anything from this user (the index's own paging and count are exact).
    let needed: Bool
    private var folders: [String: Bool] = [:]
    private var guards: [String: Bool] = [:]
    private var visibility: [String: (@Sendable (String) -> Bool)?] = [:]

    init(state: ServerState, user: User, rules: FolderRules, password: String?, ip: String) {
        self.state = state; self.user = user; self.rules = rules; self.password = password; self.ip = ip
        let all = rules.rules
        let hides = !user.permission.contains(.seeHides) && all.contains { !$0.hidePatterns.isEmpty }
        let guarded = !user.permission.contains(.accessWithoutPassword) && all.contains { !$0.password.isEmpty }
        needed = !user.isAdmin && (hides || guarded)
    }

    func shows(_ parent: String, _ name: String) -> Bool {
        guard folderOpens(parent) else { return false }
        let v: (@Sendable (String) -> Bool)?
        if let known = visibility[parent] { v = known } else {
            v = Access.visibility(user, in: parent, rules: rules)
            visibility[parent] = .some(v)
        }
        return v?(name) ?? true
    }

    private func folderOpens(_ folder: String) -> Bool {
        if let known = folders[folder] { return known }
        var given = password
        if let pw = password, !pw.isEmpty, !user.isAdmin, !user.permission.contains(.accessWithoutPassword),
           let rule = rules.passwordRule(for: folder) {
            let right: Bool
            if let known = guards[rule.path] { right = known } else {
                // Asked at the found folder (the rule's own folder may lie above the user's base path).
                right = (try? state.check(user, .read, folder, password: pw, ip: ip)) != nil
                guards[rule.path] = right
            }
            given = right ? rule.password : nil
        }
        let opens = Access.allows(user, .read, folder, rules: rules, password: given)
        folders[folder] = opens
        return opens
    }
}

extension ServerState {
    func indexProgress() async throws -> IndexProgressJSON {
        let latest = try await store.tasks(kind: Self.indexKind, states: TaskState.allCases, creator: nil, limit: 1, offset: 0).first
        let open = latest.map { !$0.taskState.isDone } ?? false
        let lastDone = try await store.driverState(Self.indexLastDoneKey).flatMap { Int64($0) }
        return IndexProgressJSON(
            obj_count: try await store.indexCount(), is_done: !open,
            last_done_time: lastDone.map { TimeFormat.rfc3339(ms: $0) } ?? "",
            error: latest.map { $0.taskState == .failed || $0.taskState == .errored ? $0.error : "" } ?? "",
            running: open, task_id: latest?.id ?? "", state: latest?.taskState.words ?? "",
            current: open ? latest?.current ?? "" : "", status: latest?.status ?? "")
    }
}
