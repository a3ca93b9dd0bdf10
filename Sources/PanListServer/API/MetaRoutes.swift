import Foundation
import Hummingbird
import PanListCore

extension APIRoutes {
    /// `/api/admin/meta/*`: folder rules (Alist's metas). Every change takes effect at once for `/api`, `/d`,
    /// `/p` and `/dav`, which all ask `Access.check` with the rules in force.
    func addMetaRoutes(to api: RouterGroup<AppContext>) {
        let admin = api.group("admin/meta").add(middleware: AdminOnlyMiddleware(state: state))

        admin.get("list") { req, _ in
            APIResponse.ok(PageJSON.page(try await state.store.folderRules(), req))
        }
        admin.get("get") { req, _ in APIResponse.ok(try await storedRule(req)) }
        admin.post("create") { req, _ in
            var rule = try await req.json(FolderRule.self, limit: state.config.maxRequestBody)
            try rule.validate()
            let id = try await state.store.createFolderRule(rule)
            try await state.rulesChanged()
            struct ID: Encodable { var id: Int }
            return APIResponse.ok(ID(id: id))
        }
        admin.post("update") { req, _ in
            var rule = try await req.json(FolderRule.self, limit: state.config.maxRequestBody)
            guard try await state.store.folderRule(id: rule.id) != nil else { throw FSError.noSuchRecord("folder rule \(rule.id) does not exist") }
            try rule.validate()
            try await state.store.updateFolderRule(rule)
            try await state.rulesChanged()
            return APIResponse.ok()
        }
        for method in [HTTPRequest.Method.get, .post] {
            admin.on("delete", method: method) { req, _ in
                let rule = try await storedRule(req)
                try await state.store.deleteFolderRule(id: rule.id)
                try await state.rulesChanged()
                return APIResponse.ok()
            }
        }
    }

    func storedRule(_ req: Request) async throws -> FolderRule {
        guard let id = req.uri.queryParameters.get("id", as: Int.self) else { throw FSError.badRequest("the id parameter is required") }
        guard let r = try await state.store.folderRule(id: id) else { throw FSError.noSuchRecord("folder rule \(id) does not exist") }
        return r
    }
}
