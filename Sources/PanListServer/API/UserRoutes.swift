import Foundation
import Hummingbird
import PanListCore
import PanListStore

/// A user as the admin sends it (Alist's shape; `password` is write-only and empty means "keep").
struct UserRequest: Decodable {
    var id: Int?
    var username: String?
    var password: String?
    var basePath: String?
    var role: Int?
    var disabled: Bool?
    var permission: Int32?
    enum CodingKeys: String, CodingKey {
        case id, username, password, role, disabled, permission
        case basePath = "base_path"
    }
}

extension APIRoutes {
    /// `/api/admin/user/*` and `/api/me/update`.
    func addUserRoutes(to api: RouterGroup<AppContext>) {
        let admin = api.group("admin/user").add(middleware: AdminOnlyMiddleware(state: state))

        admin.get("list") { req, _ in
            let all = try await state.store.users().sorted { $0.user.id < $1.user.id }.map { MeJSON($0.user) }
            return APIResponse.ok(PageJSON.page(all, req))
        }
        admin.get("get") { req, _ in APIResponse.ok(MeJSON(try await storedUser(req).user)) }
        admin.post("create") { req, _ in
            let body = try await req.json(UserRequest.self, limit: state.config.maxRequestBody)
            guard let name = body.username?.trimmingCharacters(in: .whitespaces), !name.isEmpty else {
                throw FSError.badRequest("username is required")
            }
            try Self.checkUsername(name)
            guard let password = body.password, !password.isEmpty else { throw FSError.badRequest("password is required") }
            let role = UserRole(rawValue: body.role ?? 0) ?? .general
            guard role == .general else { throw FSError.badRequest("only general users can be created (there is one admin and one guest)") }
            let base = try VirtualPath.normalize(body.basePath ?? "/")
            let (hash, salt) = try await Passwords.makeAsync(password)
            let user = User(id: 0, username: name, basePath: base, role: .general, disabled: body.disabled ?? false,
                            permission: Permission(rawValue: body.permission ?? 0), passwordTimestamp: Int64(Date().timeIntervalSince1970))
            let id = try await state.store.createUser(StoredUser(user: user, passwordHash: hash, salt: salt))
            await state.usersChanged()
            struct ID: Encodable { var id: Int }
            return APIResponse.ok(ID(id: id))
        }
        admin.post("update") { req, _ in
            let body = try await req.json(UserRequest.self, limit: state.config.maxRequestBody)
            guard let id = body.id, var stored = try await state.store.user(id: id) else { throw FSError.noSuchRecord("user \(body.id ?? 0) does not exist") }
            if let role = body.role, role != stored.user.role.rawValue { throw FSError.badRequest("a user's role cannot be changed") }
            try await rename(&stored, to: body.username)
            if let base = body.basePath { stored.user.basePath = try VirtualPath.normalize(base) }
            if let permission = body.permission { stored.user.permission = Permission(rawValue: permission) }
            if let disabled = body.disabled {
                if disabled && stored.user.isAdmin { throw FSError.badRequest("the admin cannot be disabled") }
                if disabled != stored.user.disabled { stored.user.disabled = disabled }
            }
            try await setPassword(&stored, body.password)
            try await state.store.updateUser(stored)
            await state.usersChanged()
            return APIResponse.ok()
        }
        for method in [HTTPRequest.Method.get, .post] {
            admin.on("delete", method: method) { req, _ in
                let stored = try await storedUser(req)
                guard stored.user.role == .general else { throw FSError.badRequest("the admin and the guest cannot be deleted") }
                try await state.store.deleteUser(id: stored.user.id)
                await state.usersChanged()
                return APIResponse.ok()
            }
            admin.on("del_cache", method: method) { _, _ in
                await state.usersChanged()
                return APIResponse.ok()
            }
        }

        // A user changes their own name or password (not the guest).
        api.post("me/update") { req, _ in
            let me = try await state.authenticate(req)
            guard !me.isGuest else { throw FSError.permissionDenied("the guest cannot change its account") }
            let body = try await req.json(UserRequest.self, limit: state.config.maxRequestBody)
            guard var stored = try await state.store.user(id: me.id) else { throw FSError.unauthorized("this user no longer exists") }
            try await rename(&stored, to: body.username)
            try await setPassword(&stored, body.password)
            try await state.store.updateUser(stored)
            await state.usersChanged()
            return APIResponse.ok()
        }
    }

    /// A new user name, when one is given and differs (not for the guest): checked and unique.
    func rename(_ stored: inout StoredUser, to requested: String?) async throws {
        guard let name = requested?.trimmingCharacters(in: .whitespaces), !name.isEmpty, name != stored.user.username else { return }
        guard !stored.user.isGuest else { throw FSError.badRequest("the guest's name cannot be changed") }
        try Self.checkUsername(name)
        if try await state.store.user(named: name) != nil { throw FSError.alreadyExists("user \(name) already exists") }
        stored.user.username = name
    }

    /// A new password, when one is given (not for the guest): hashed, and sessions (login tokens) issued
    /// before now stop working.
    func setPassword(_ stored: inout StoredUser, _ password: String?) async throws {
        guard let password, !password.isEmpty else { return }
        guard !stored.user.isGuest else { throw FSError.badRequest("the guest has no password") }
        (stored.passwordHash, stored.salt) = try await Passwords.makeAsync(password)
        stored.user.passwordTimestamp = Self.nextPasswordTimestamp(after: stored.user.passwordTimestamp)
    }

    func storedUser(_ req: Request) async throws -> StoredUser {
        guard let id = req.uri.queryParameters.get("id", as: Int.self) else { throw FSError.badRequest("the id parameter is required") }
        guard let u = try await state.store.user(id: id) else { throw FSError.noSuchRecord("user \(id) does not exist") }
        return u
    }

    /// Unix seconds, but always past the previous value: tokens carry it, so two changes in one second
    /// must still tell the sessions apart.
    static func nextPasswordTimestamp(after previous: Int64) -> Int64 {
        max(Int64(Date().timeIntervalSince1970), previous + 1)
    }

    static func checkUsername(_ name: String) throws {
        guard name.count <= 64, !name.contains(":"), !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0 == "/" }) else {
            throw FSError.badRequest("a user name has at most 64 characters and no ':', '/' or control characters")
        }
    }
}
