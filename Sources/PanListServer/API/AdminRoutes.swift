import Foundation
import Hummingbird
import PanListCore
import PanListStore

struct PageJSON<T: Encodable>: Encodable {
    var content: [T]
    var total: Int

    /// Alist's paging: `page` (from 1) and `per_page` in the query; without both, everything.
    static func page(_ all: [T], _ req: Request) -> PageJSON {
        guard let r = Paging.range(count: all.count, page: req.uri.queryParameters.get("page", as: Int.self),
                                   perPage: req.uri.queryParameters.get("per_page", as: Int.self))
        else { return PageJSON(content: all, total: all.count) }
        return PageJSON(content: Array(all[r]), total: all.count)
    }
}

struct StorageJSON: Encodable {
    var r: StorageRecord
    var details: MountDetailsJSON?
    func encode(to encoder: any Encoder) throws {
        enum K: String, CodingKey {
            case id, mount_path, order, driver, cache_expiration, status, addition, remark, modified, disabled
            case enable_sign, order_by, order_direction, extract_folder, web_proxy, webdav_policy, down_proxy_url
            case mount_details, status_note, disable_index
        }
        var c = encoder.container(keyedBy: K.self)
        try c.encode(r.id, forKey: .id); try c.encode(r.mountPath, forKey: .mount_path); try c.encode(r.order, forKey: .order)
        try c.encode(r.driver, forKey: .driver); try c.encode(r.cacheExpiration, forKey: .cache_expiration)
        // A working storage's live note (`work (…)` from `liveRecord`) goes in a field of its own: Alist's front end
        // and scripts compare `status` with "work" exactly.
        if r.status.hasPrefix(StorageStatus.work + " ("), r.status.hasSuffix(")") {
            try c.encode(StorageStatus.work, forKey: .status)
            try c.encode(String(r.status.dropFirst(StorageStatus.work.count + 2).dropLast()), forKey: .status_note)
        } else {
            try c.encode(r.status, forKey: .status)
        }
        try c.encode(r.addition, forKey: .addition); try c.encode(r.remark, forKey: .remark)
        try c.encode(TimeFormat.rfc3339(r.modified), forKey: .modified); try c.encode(r.disabled, forKey: .disabled)
        try c.encode(r.enableSign, forKey: .enable_sign); try c.encode(r.orderBy, forKey: .order_by)
        try c.encode(r.orderDirection, forKey: .order_direction); try c.encode(r.extractFolder, forKey: .extract_folder)
        try c.encode(r.webProxy, forKey: .web_proxy); try c.encode(r.webdavPolicy, forKey: .webdav_policy)
        try c.encode(r.downProxyURL, forKey: .down_proxy_url)
        try c.encode(r.disableIndex, forKey: .disable_index)
        try c.encodeIfPresent(details, forKey: .mount_details)
    }

    /// The records with the space of each working storage (fetched together; cached and time-bounded).
    static func withDetails(_ records: [StorageRecord], _ fs: FileSystem) async -> [StorageJSON] {
        await withTaskGroup(of: (Int, MountDetailsJSON?).self) { group in
            for (i, r) in records.enumerated() {
                group.addTask {
                    guard let m = fs.storages.first(where: { $0.id == r.id }), let d = await m.details() else { return (i, nil) }
                    return (i, MountDetailsJSON(details: d, driverName: r.driver))
                }
            }
            var out = records.map { StorageJSON(r: $0) }
            for await (i, d) in group { out[i].details = d }
            return out
        }
    }
}

struct DriverInfoJSON: Encodable {
    var common: [DriverItem]
    var additional: [DriverItem]
    var config: DriverConfig

    /// Alist's common items, in its order, shaped by the driver's flags.
    init(_ f: DriverFactory) {
        var items = [
            DriverItem(name: "mount_path", type: "string", required: true, help: "where the storage appears in the tree, e.g. /local"),
            DriverItem(name: "order", type: "number", help: "sort order of storages"),
            DriverItem(name: "remark", type: "text"),
        ]
        if !f.config.noCache {
            items.append(DriverItem(name: "cache_expiration", type: "number", default: "30", required: true,
                                    help: "minutes a folder listing stays cached"))
        }
        // The driver's word on downloads goes with the first download setting, once.
        let webdavHelp = "How WebDAV clients get a file: a redirect to the cloud (for clients known to follow redirects; "
            + "the others are streamed, see the webdav_redirect_agents setting), a redirect to the download proxy URL, "
            + "or streamed through PanList."
        if f.config.onlyProxy {
            items.append(DriverItem(name: "webdav_policy", type: "select", default: "native_proxy", options: "use_proxy_url,native_proxy",
                                    required: true, help: f.deliveryHelp + " " + webdavHelp))
        } else {
            items.append(DriverItem(name: "web_proxy", type: "bool",
                                    help: "Stream files through PanList for the web UI and download links, instead of redirecting to the cloud. " + f.deliveryHelp))
            items.append(DriverItem(name: "webdav_policy", type: "select", default: "302_redirect", options: "302_redirect,use_proxy_url,native_proxy",
                                    required: true, help: webdavHelp))
        }
        items.append(DriverItem(name: "down_proxy_url", type: "text",
                                help: "a separate download proxy's address (first line used), e.g. https://dl.example.com; it receives <path>?sign=…"))
        if f.config.localSort {
            items.append(DriverItem(name: "order_by", type: "select", options: "name,size,modified"))
            items.append(DriverItem(name: "order_direction", type: "select", options: "asc,desc"))
        }
        items.append(DriverItem(name: "extract_folder", type: "select", options: "front,back"))
        items.append(DriverItem(name: "enable_sign", type: "bool", default: "false", required: true))
        items.append(DriverItem(name: "disable_index", type: "bool", default: "false",
                                help: "leave this storage out of the search index (its files are not found by search)"))
        common = items
        additional = f.additional
        config = f.config
    }
}

extension APIRoutes {
    func addAdminRoutes(to api: RouterGroup<AppContext>) {
        let admin = api.group("admin").add(middleware: AdminOnlyMiddleware(state: state))

        // Storages
        admin.get("storage/list") { req, _ in
            let all = await StorageJSON.withDetails(try await state.store.storages().map { shown($0) }, state.fs)
            return APIResponse.ok(PageJSON.page(all, req))
        }
        admin.get("storage/get") { req, _ in APIResponse.ok(await StorageJSON.withDetails([shown(try await storage(req))], state.fs)[0]) }
        admin.post("storage/create") { req, _ in
            var record = try await req.json(StorageRecord.self, limit: state.config.maxRequestBody)
            try validate(&record)
            record.modified = Date()
            record.id = try await state.store.createStorage(record)
            let answer = try await mountAndAnswer(record)
            await state.storageIndexChanged(record, old: nil)
            return answer
        }
        admin.post("storage/update") { req, _ in
            var record = try await req.json(StorageRecord.self, limit: state.config.maxRequestBody)
            guard let old = try await state.store.storage(id: record.id) else { throw FSError.noSuchRecord("storage \(record.id) does not exist") }
            guard old.driver == record.driver else { throw FSError.badRequest("a storage's driver cannot be changed") }
            if let f = state.fs.registry.factory(named: record.driver) { record.addition = f.unmasked(record.addition, stored: old.addition) }
            try validate(&record)
            record.modified = Date()
            try await state.store.updateStorage(record)
            let answer = try await mountAndAnswer(record)
            await state.storageIndexChanged(record, old: old)
            return answer
        }
        admin.on("storage/delete", method: .post) { req, _ in try await deleteStorage(req) }
        admin.on("storage/delete", method: .get) { req, _ in try await deleteStorage(req) }
        for (route, disabled) in [("storage/enable", false), ("storage/disable", true)] {
            for method in [HTTPRequest.Method.post, .get] {
                admin.on(RouterPath(route), method: method) { req, _ in
                    var record = try await storage(req)
                    let old = record
                    record.disabled = disabled
                    try await state.store.updateStorage(record)
                    if disabled {
                        await state.changes.publish(.storage(id: record.id))
                        await state.fs.unload(id: record.id)
                        try await state.store.setStorageStatus(id: record.id, status: StorageStatus.disabled)
                        await state.storageIndexChanged(record, old: old)
                        return APIResponse.ok()
                    }
                    let answer = try await mountAndAnswer(record)
                    await state.storageIndexChanged(record, old: old)
                    return answer
                }
            }
        }

        // Drivers
        admin.get("driver/list") { _, _ in
            var map: [String: DriverInfoJSON] = [:]
            for f in state.fs.registry.all { map[f.config.name] = DriverInfoJSON(f) }
            return APIResponse.ok(map)
        }
        admin.get("driver/names") { _, _ in APIResponse.ok(state.fs.registry.names) }
        admin.get("driver/info") { req, _ in
            let name = req.uri.queryParameters.get("driver") ?? ""
            // Form encoding (URLSearchParams) writes a space as `+`: "123+Open" is "123 Open".
            guard let f = state.fs.registry.factory(named: name) ?? state.fs.registry.factory(named: name.replacingOccurrences(of: "+", with: " ")) else {
                throw FSError.noSuchRecord("driver '\(name)' does not exist")
            }
            return APIResponse.ok(DriverInfoJSON(f))
        }

        // Settings
        admin.get("setting/list") { req, _ in
            var items = try await state.store.settings()
            if let g = req.uri.queryParameters.get("group", as: Int.self) { items = items.filter { $0.group == g } }
            if let gs = req.uri.queryParameters.get("groups") {
                let set = Set(gs.split(separator: ",").compactMap { Int($0) })
                items = items.filter { set.contains($0.group) }
            }
            return APIResponse.ok(items)
        }
        admin.get("setting/get") { req, _ in
            if let keys = req.uri.queryParameters.get("keys") {
                let wanted = Set(keys.split(separator: ",").map(String.init))
                return APIResponse.ok(try await state.store.settings().filter { wanted.contains($0.key) })
            }
            let key = req.uri.queryParameters.get("key") ?? ""
            guard let item = try await state.store.setting(key) else { throw FSError.noSuchRecord("setting '\(key)' does not exist") }
            return APIResponse.ok(item)
        }
        admin.post("setting/save") { req, _ in
            let items = try await req.json([SettingItem].self, limit: state.config.maxRequestBody)
            var merged: [SettingItem] = []
            for item in items {
                guard var existing = try await state.store.setting(item.key) else {
                    throw FSError.noSuchRecord("setting '\(item.key)' does not exist")
                }
                if existing.flag == SettingItem.readonly { throw FSError.permissionDenied("setting '\(item.key)' is read-only") }
                if item.key == OutboundGuard.settingKey { _ = try OutboundGuard(setting: item.value) }
                try Self.validateSetting(existing, item.value)
                existing.value = item.value
                merged.append(existing)
            }
            let wasOn = state.indexPolicy.enabled
            try await state.saveSettings(merged)
            await state.searchSettingChanged(wasOn: wasOn)
            return APIResponse.ok()
        }
        admin.post("setting/reset_token") { _, _ in
            guard var item = try await state.store.setting(SettingKey.token) else { throw FSError.noSuchRecord("no token setting") }
            item.value = RandomString.make(64)
            try await state.saveSettings([item])
            return APIResponse.ok(item.value)
        }
    }

    /// Refuses a setting value its type cannot take: a number that is not one (or is negative), a choice that
    /// is not among the options, a switch that is neither true nor false.
    static func validateSetting(_ item: SettingItem, _ value: String) throws {
        switch item.type {
        case "number":
            guard let n = Double(value.trimmingCharacters(in: .whitespaces)), n.isFinite, n >= 0 else {
                throw FSError.badRequest("\(item.key) must be a number, 0 or more (got \(LogText.quoted(value)))")
            }
        case "bool":
            guard value == "true" || value == "false" else { throw FSError.badRequest("\(item.key) must be true or false") }
        case "select":
            let options = item.options.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard options.isEmpty || options.contains(value) else {
                throw FSError.badRequest("\(item.key) must be one of: \(options.joined(separator: ", "))")
            }
        default: break
        }
    }

    /// A storage as the admin API shows it: live status, secrets masked.
    func shown(_ record: StorageRecord) -> StorageRecord {
        var r = state.liveRecord(record)
        if let f = state.fs.registry.factory(named: r.driver) { r.addition = f.masked(r.addition) }
        return r
    }

    func storage(_ req: Request) async throws -> StorageRecord {
        guard let id = req.uri.queryParameters.get("id", as: Int.self) else { throw FSError.badRequest("the id parameter is required") }
        guard let r = try await state.store.storage(id: id) else { throw FSError.noSuchRecord("storage \(id) does not exist") }
        return r
    }

    func validate(_ record: inout StorageRecord) throws {
        guard !record.mountPath.isEmpty else { throw FSError.badRequest("mount_path is required") }
        record.mountPath = try VirtualPath.normalize(record.mountPath)
        guard let factory = state.fs.registry.factory(named: record.driver) else {
            throw FSError.badRequest("driver '\(record.driver)' does not exist; see /api/admin/driver/names")
        }
        // A storage missing a required setting would only be saved broken: refused, with the settings named.
        try factory.validate(addition: record.addition, refuseUnknown: false)
        if !record.webdavPolicy.isEmpty && !DeliveryPolicy.policies.contains(record.webdavPolicy) {
            throw FSError.badRequest("webdav_policy must be one of \(DeliveryPolicy.policies.joined(separator: ", "))")
        }
        guard record.cacheExpiration >= 0 else { throw FSError.badRequest("cache_expiration cannot be negative") }
        if record.webdavPolicy.isEmpty {
            record.webdavPolicy = state.fs.registry.factory(named: record.driver)?.config.onlyProxy == true ? "native_proxy" : "302_redirect"
        }
    }

    /// Mounts the storage; a failed init answers 500 with the storage's id and its status as the message.
    func mountAndAnswer(_ record: StorageRecord) async throws -> Response {
        struct ID: Encodable { var id: Int }
        await state.changes.publish(.storage(id: record.id))
        let mounted = await state.mount(record)
        if record.disabled || mounted?.isWorking != false { return APIResponse.ok(ID(id: record.id)) }
        return APIResponse.json(Envelope(code: 500, message: mounted?.record.status ?? "", data: ID(id: record.id)))
    }

    func deleteStorage(_ req: Request) async throws -> Response {
        let record = try await storage(req)
        await state.fs.unload(id: record.id)
        try await state.store.deleteStorage(id: record.id)
        await state.changes.publish(.storage(id: record.id))
        await state.storageDeletedFromIndex(record)
        return APIResponse.ok()
    }
}

/// Every /api/admin route requires the admin.
struct AdminOnlyMiddleware: RouterMiddleware {
    typealias Context = AppContext
    let state: ServerState
    func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response) async throws -> Response {
        _ = try await state.authenticateAdmin(request)
        return try await next(request, context)
    }
}
