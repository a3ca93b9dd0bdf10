import Foundation
import Hummingbird
import PanListCore

extension APIRoutes {
    /// Alist's offline download routes: `POST /api/fs/add_offline_download`, `GET /api/public/offline_download_tools`,
    /// and the tools' settings under `/api/admin/setting/set_<tool>`.
    func addOfflineRoutes(to api: RouterGroup<AppContext>) {
        struct AddRequest: Decodable {
            var urls: [String]?
            var path: String?
            var tool: String?
            var delete_policy: String?
            var password: String?
        }
        struct Tasks: Encodable { var tasks: [TaskInfoJSON] }
        api.post("fs/add_offline_download") { req, ctx in
            let (user, body) = try await decode(req, AddRequest.self)
            let dst = try Access.resolve(body.path ?? "", for: user)
            let queued = try await state.queueOfflineDownloads(user, urls: body.urls ?? [], dst: dst, tool: body.tool ?? "",
                                                               policy: body.delete_policy ?? "", password: password(req, body.password),
                                                               ip: ctx.clientIP)
            return APIResponse.ok(Tasks(tasks: queued.map(TaskInfoJSON.init)))
        }
        // Alist answers any method here, without a login; `path` (OpenList) adds the cloud's own tool where it applies.
        for method in [HTTPRequest.Method.get, .post] {
            api.on("public/offline_download_tools", method: method) { req, _ in
                var path: String?
                if let p = req.uri.queryParameters.get("path"), !p.isEmpty {
                    let user = try? await state.authenticate(req)
                    path = user.flatMap { try? Access.resolve(p, for: $0) } ?? (try? VirtualPath.normalize(p))
                }
                return APIResponse.ok(state.offlineTools(for: path))
            }
        }
        let admin = api.group("admin").add(middleware: AdminOnlyMiddleware(state: state))
        struct Aria2Settings: Decodable { var uri: String?; var secret: String? }
        admin.post("setting/set_aria2") { req, _ in
            let body = try await req.json(Aria2Settings.self, limit: state.config.maxRequestBody)
            let uri = (body.uri ?? "").trimmingCharacters(in: .whitespaces)
            if !uri.isEmpty {
                guard let u = URL(string: uri), let s = u.scheme?.lowercased(), s == "http" || s == "https", u.host != nil else {
                    throw FSError.badRequest("uri must be aria2's JSON-RPC address, such as http://127.0.0.1:6800/jsonrpc")
                }
            }
            try await saveOfflineSettings(["aria2_uri": uri, "aria2_secret": body.secret ?? ""])
            guard let aria2 = state.aria2 else { return APIResponse.ok("aria2 is off") }
            // As Alist: the settings stay saved; the answer says whether aria2 answers.
            return APIResponse.ok("aria2 version: " + (try await aria2.version()))
        }
        // The cloud's own tool needs no settings in PanList (it works wherever a 123 Open storage is); Alist's
        // front end still posts them.
        admin.post("setting/set_123_open") { _, _ in APIResponse.ok("ok") }
        for tool in ["set_qbit", "set_transmission", "set_115", "set_115_open", "set_123_pan", "set_pikpak", "set_thunder", "set_thunderx", "set_thunder_browser"] {
            admin.post(RouterPath("setting/" + tool)) { _, _ -> Response in
                throw FSError.notSupported("PanList's offline download tools are SimpleHttp, aria2 and 123 Open; \(tool.dropFirst(4)) is not one of them")
            }
        }
    }

    private func saveOfflineSettings(_ values: [String: String]) async throws {
        var items: [SettingItem] = []
        for (key, value) in values {
            guard var item = try await state.store.setting(key) else { throw FSError.noSuchRecord("setting '\(key)' does not exist") }
            item.value = value
            items.append(item)
        }
        try await state.saveSettings(items)
    }
}
