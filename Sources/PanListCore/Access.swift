/// The one authorization layer: every front end asks here whether a user may do something to a path.
public enum Action: Sendable, Equatable {
    case read, write, rename, move, copy, remove, refresh
    /// Replacing an existing file by an upload: the write bit itself (a folder rule's write grant only
    /// lets people add things).
    case replace
    /// WebDAV access (Alist's bit 8) and WebDAV changes (bit 9), checked on top of the operation's own bit.
    case davRead, davManage
    /// Browsing inside an archive and downloading its members (bit 12); extracting one into a folder (bit 13,
    /// checked with `.write` on the destination).
    case readArchive, decompress
    var permission: Permission? {
        switch self {
        case .read: return nil
        case .davRead: return .webdavRead
        case .davManage: return .webdavManage
        case .write, .refresh, .replace: return .write
        case .rename: return .rename
        case .move: return .move
        case .copy: return .copy
        case .remove: return .remove
        case .readArchive: return .readArchives
        case .decompress: return .decompress
        }
    }
    var verb: String {
        switch self {
        case .read: "read"
        case .write: "write to"
        case .replace: "replace files in"
        case .rename: "rename in"
        case .move: "move in"
        case .copy: "copy in"
        case .remove: "delete in"
        case .refresh: "refresh"
        case .davRead: "use WebDAV in"
        case .davManage: "change files over WebDAV in"
        case .readArchive: "look inside archives in"
        case .decompress: "extract archives in"
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

    /// The user's base path as an absolute virtual path.
    public static func resolve(root user: User) -> String { (try? resolve("/", for: user)) ?? "/" }

    /// The path as the user sees it (their base path removed).
    public static func userPath(_ absolute: String, for user: User) -> String {
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard VirtualPath.isWithin(absolute, base) else { return absolute }
        return VirtualPath.relative(absolute, to: base)
    }

    /// A message as `user` should read it: the absolute paths under their base folder written as they see
    /// them (`/home/bob/x` → `/x` for base `/home/bob`), so errors do not show where their folder lives.
    public static func inUserTerms(_ text: String, for user: User) -> String {
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard base != "/", text.contains(base) else { return text }
        let chars = Array(text)
        let pattern = Array(base)
        // A path starts the text or follows a space, a quote, a bracket, `:` or `=`; it ends at a space, a
        // quote, a closing bracket or the end (a sentence's last `.`, `,` or `;` before a space or the end).
        func startsPath(_ i: Int) -> Bool { i == 0 || " \t\n'\"[(:=".contains(chars[i - 1]) }
        func endsPath(_ i: Int) -> Bool {
            guard i < chars.count else { return true }
            if " \t\n'\"])".contains(chars[i]) { return true }
            if ".,;:".contains(chars[i]) { return i + 1 == chars.count || " \t\n'\"])".contains(chars[i + 1]) }
            return false
        }
        var out = ""
        var i = 0
        while i < chars.count {
            if startsPath(i), i + pattern.count <= chars.count, Array(chars[i..<(i + pattern.count)]) == pattern {
                let after = i + pattern.count
                if after < chars.count, chars[after] == "/" {
                    // `/home/bob/x` → `/x`; the rest of this path is copied as it is.
                    var j = after
                    while j < chars.count, !endsPath(j) { j += 1 }
                    out += String(chars[after..<j])
                    i = j
                    continue
                }
                if endsPath(after) {
                    out += "/"
                    i = after
                    continue
                }
            }
            out.append(chars[i])
            i += 1
        }
        return out
    }

    public static func can(_ user: User, _ action: Action) -> Bool {
        if user.isAdmin { return true }
        guard let p = action.permission else { return true }
        return user.permission.contains(p)
    }

    /// Alist's wording for a missing or wrong folder password (its UI asks for the password on it).
    public static let passwordMessage = "password is incorrect or you have no permission"

    /// Throws unless `user` may do `action` on the absolute path `path` under the folder `rules`, given the folder
    /// `password` the client sent (nil when it sent none). In order:
    /// - a disabled user is refused;
    /// - the path must lie in the user's base path (on segment boundaries);
    /// - a hidden path (or one inside a hidden folder) does not exist for users without "see hidden";
    /// - a folder password applies unless the user has "access without password";
    /// - the action's permission bit; for `.write` a rule granting write on `path` (the folder written
    ///   into) stands in for the bit.
    /// The admin passes everything but the first two.
    public static func check(_ user: User, _ action: Action, _ path: String, rules: FolderRules, password: String?) throws(FSError) {
        if user.disabled { throw .unauthorized("this user is disabled") }
        let base = (try? VirtualPath.normalize(user.basePath)) ?? "/"
        guard VirtualPath.isWithin(path, base) else { throw .permissionDenied("permission denied: outside your base path") }
        if user.isAdmin || rules.isEmpty {
            guard can(user, action) else { throw denied(user, action, path) }
            return
        }
        try checkVisible(user, path, rules: rules)
        if !user.permission.contains(.accessWithoutPassword), let required = rules.password(for: path),
           !constantTimeEqual(password ?? "", required) {
            throw .permissionDenied(passwordMessage)
        }
        if action == .write, !user.permission.contains(.write), rules.grantsWrite(path) { return }
        guard can(user, action) else { throw denied(user, action, path) }
    }

    /// For a name about to be created (a rename's or a copy's new name, checked with its folder
    /// separately): throws "not found" when `user` could not see it there.
    public static func checkVisible(_ user: User, _ path: String, rules: FolderRules) throws(FSError) {
        if user.isAdmin || user.permission.contains(.seeHides) { return }
        if rules.isHidden(path) { throw .objectNotFound(userPath(path, for: user)) }
    }

    /// Whether `check` would pass.
    public static func allows(_ user: User, _ action: Action, _ path: String, rules: FolderRules, password: String?) -> Bool {
        (try? check(user, action, path, rules: rules, password: password)) != nil
    }

    /// For listings: a filter keeping the names in `folder` that `user` may see, or nil when all are visible.
    public static func visibility(_ user: User, in folder: String, rules: FolderRules) -> (@Sendable (String) -> Bool)? {
        if user.isAdmin || user.permission.contains(.seeHides) { return nil }
        return rules.visibility(in: folder)
    }

    /// For listings made without a folder password (WebDAV): a filter keeping the names in `folder` that `user`
    /// may see and open, or nil when all pass. Guarded entries are left out rather than listed and then refused.
    public static func openEntries(_ user: User, in folder: String, rules: FolderRules) -> (@Sendable (String) -> Bool)? {
        let visible = visibility(user, in: folder, rules: rules)
        let needsPassword = !user.isAdmin && !user.permission.contains(.accessWithoutPassword) && rules.guardsEntries(of: folder)
        if !needsPassword { return visible }
        return { name in (visible?(name) ?? true) && rules.password(for: VirtualPath.join(folder, name)) == nil }
    }

    /// Before `src` (a folder) is copied or moved to `dst`: names inside it hidden from `user` by rules
    /// above `src` that do not also cover `dst` would become visible there, so the change is refused. (Rules
    /// at or below `src` travel with it; see `ServerState.transfer`.) Walks at most `limit` entries.
    public static func checkTransfer(_ user: User, from src: String, to dst: String, rules: FolderRules, fs: FileSystem,
                                     limit: Int = 20_000) async throws(FSError) {
        if user.isAdmin || user.permission.contains(.seeHides) { return }
        let inherited = rules.inheritedHideRules(src)
        if inherited.isEmpty || inherited.isSubset(of: rules.inheritedHideRules(dst)) { return }
        do {
            guard try await fs.get(src).0.isDir else { return }    // a file carries nothing inside it
        } catch { throw FSError.from(error) }
        var queue = [src], seen = 0
        while let dir = queue.popLast() {
            let listing: FileSystem.Listing
            do { listing = try await fs.list(dir) } catch { throw FSError.from(error) }
            let visible = rules.visibility(in: dir)
            for o in listing.objects {
                seen += 1
                if seen > limit { throw .permissionDenied("permission denied: \(userPath(src, for: user)) is too big to check for hidden items") }
                if let visible, !visible(o.name) {
                    throw .permissionDenied("permission denied: \(userPath(src, for: user)) holds items hidden from you; it cannot be copied or moved there")
                }
                if o.isDir { queue.append(VirtualPath.join(dir, o.name)) }
            }
        }
    }

    static func denied(_ user: User, _ action: Action, _ path: String) -> FSError {
        .permissionDenied("permission denied: you may not \(action.verb) \(userPath(path, for: user))")
    }

    /// Compares without stopping at the first difference (password checks).
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = x.count ^ y.count
        for i in 0..<min(x.count, y.count) { diff |= Int(x[i] ^ y[i]) }
        return diff == 0
    }
}
