/// The one authorization layer: every front end asks here whether a user may do something to a path.
public enum Action: Sendable {
    case read, write, rename, move, copy, remove, refresh
    /// WebDAV access (Alist's bit 8) and WebDAV changes (bit 9), checked on top of the operation's own bit.
    case davRead, davManage
    var permission: Permission? {
        switch self {
        case .read: return nil
        case .davRead: return .webdavRead
        case .davManage: return .webdavManage
        case .write, .refresh: return .write
        case .rename: return .rename
        case .move: return .move
        case .copy: return .copy
        case .remove: return .remove
        }
    }
    var verb: String {
        switch self {
        case .read: "read"
        case .write: "write to"
        case .rename: "rename in"
        case .move: "move in"
        case .copy: "copy in"
        case .remove: "delete in"
        case .refresh: "refresh"
        case .davRead: "use WebDAV in"
        case .davManage: "change files over WebDAV in"
        }
    }
}

public enum Access {
    /// Turns a path given by a user (relative to their base path) into an absolute virtual path.
    /// Normalisation refuses `..`, so the result always lies inside the user's base path.
    public static func resolve(_ requested: String, for user: User) throws(FSError) -> String {
        let rel = try VirtualPath.normalize(requested)
        let base = try VirtualPath.normalize(user.basePath)
        if base == "/" { return rel }
        return rel == "/" ? base : base + rel
    }

    /// The path as the user sees it (their base path removed).
    public static func userPath(_ absolute: String, for user: User) -> String {
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard VirtualPath.isWithin(absolute, base) else { return absolute }
        return VirtualPath.relative(absolute, to: base)
    }

    public static func can(_ user: User, _ action: Action) -> Bool {
        if user.isAdmin { return true }
        guard let p = action.permission else { return true }
        return user.permission.contains(p)
    }

    /// Throws `.permissionDenied` unless `user` may do `action` on the absolute path `path`.
    public static func check(_ user: User, _ action: Action, _ path: String) throws(FSError) {
        if user.disabled { throw .unauthorized("this user is disabled") }
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard VirtualPath.isWithin(path, base) else { throw .permissionDenied("permission denied: outside your base path") }
        guard can(user, action) else {
            throw .permissionDenied("permission denied: you may not \(action.verb) \(userPath(path, for: user))")
        }
    }
}
