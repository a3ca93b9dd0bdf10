import Crypto
import Foundation
import PanListCore

/// Every request made through a share link passes here: the share must be open, its creator must still be
/// allowed to share and to read what is shared, and the path must lie inside the share. The visitor then
/// acts with the creator's current rights, narrowed: no hidden names (whatever the creator may see), no
/// writing, and the folder passwords of guarded folders inside the share asked of the visitor (unless the
/// creator opens guarded folders without one). A guarded folder above a shared item opens only while its
/// password is the one the creator gave when sharing it.
struct ShareGate: Sendable {
    let state: ServerState

    /// A share found open, with who acts for it.
    struct Opened: Sendable {
        var share: Share
        var creator: User
        /// The creator's rights as the share uses them.
        var visitor: User
        /// The shared items by the name they have in the share.
        var items: [(name: String, path: String)]
        /// One shared folder: the share's `/` is that folder.
        var singleFolder: String?
    }

    static let missing = "this share does not exist (the link is wrong, or its owner deleted it)"

    /// Whether a user may make shares, and so whether their shares work: enabled, not the guest, an admin or
    /// with the share permission.
    static func mayShare(_ user: User) -> Bool {
        !user.disabled && !user.isGuest && (user.isAdmin || user.permission.contains(.share))
    }

    /// The share behind an id, if it opens now (else a clear error: missing, disabled, expired, used up, or
    /// its owner can no longer share it). `ignoreLimit`: a visitor who opened it already goes on when the open
    /// limit has been reached since.
    func open(_ id: String, ignoreLimit: Bool = false) async throws -> Opened {
        guard Self.validID(id), let share = try await state.store.share(id: id) else { throw FSError.noSuchRecord(Self.missing) }
        if let closed = share.closedReason(), !(ignoreLimit && closed == .exhausted) {
            throw FSError.permissionDenied(closed.message)
        }
        return try await opened(share)
    }

    /// The creator and the items of a share (the share's own state not looked at).
    func opened(_ share: Share) async throws -> Opened {
        let unavailable = FSError.permissionDenied("this share is not available: its owner can no longer share these files")
        guard let creator = try await state.store.user(id: share.creator_id)?.user, Self.mayShare(creator) else { throw unavailable }
        var visitor = creator
        visitor.role = .general
        visitor.permission = creator.isAdmin || creator.permission.contains(.accessWithoutPassword) ? [.accessWithoutPassword] : []
        let paths = share.paths
        guard !paths.isEmpty else { throw unavailable }
        let items = paths.map { (name: $0 == "/" ? "root" : VirtualPath.base($0), path: $0) }
        let single = share.single_folder && paths.count == 1 ? paths.first : nil
        return Opened(share: share, creator: creator, visitor: visitor, items: items, singleFolder: single)
    }

    /// The absolute path of a path inside the share ("/" lists the items, unless the share is one folder);
    /// nil for the share's own `/` when it lists several items.
    func resolve(_ o: Opened, _ sharePath: String) throws(FSError) -> (item: String, absolute: String)? {
        let rel = try VirtualPath.normalize(sharePath)
        if let folder = o.singleFolder {
            return (folder, rel == "/" ? folder : (folder == "/" ? rel : folder + rel))
        }
        if rel == "/" { return nil }
        // The first segment names the item (split on the byte `/`: a name may start with a combining mark).
        let bytes = Array(rel.utf8.dropFirst())
        let cut = bytes.firstIndex(of: UInt8(ascii: "/")) ?? bytes.count
        let first = String(decoding: bytes[..<cut], as: UTF8.self)
        guard let item = o.items.first(where: { $0.name == first }) else {
            throw .objectNotFound(rel)
        }
        let rest = String(decoding: bytes[cut...], as: UTF8.self)
        return (item.path, rest.isEmpty ? item.path : (item.path == "/" ? rest : item.path + rest))
    }

    /// Throws unless the visitor may read `absolute` (inside the shared item `item`): the creator's base path,
    /// hidden names, folder passwords (the visitor's `password` for guards inside the item; the creator's
    /// proof for guards at or above it), as every front end checks them.
    /// `ip` nil: the password is the server's own (a link's proven guard), not a visitor's attempt to count.
    func check(_ o: Opened, item: String, absolute: String, password: String?, ip: String?) throws(FSError) {
        guard VirtualPath.isWithin(absolute, item) else { throw .objectNotFound(absolute) }
        let rules = state.rules
        if rules.isHidden(absolute) { throw .objectNotFound(absolute) }
        var pw = password
        if !o.visitor.permission.contains(.accessWithoutPassword), let rule = rules.passwordRule(for: absolute),
           VirtualPath.isWithin(item, rule.path) {
            // A guard at or above the shared item: the creator gave its password when sharing.
            guard let proof = o.share.proofs[rule.path],
                  Access.constantTimeEqual(proof, Self.proof(share: o.share.id, rulePath: rule.path, password: rule.password)) else {
                throw .permissionDenied("this part of the share lies in a folder whose password its owner did not give (or that changed since); ask its owner to share it again")
            }
            pw = rule.password
        }
        try state.check(o.visitor, .read, absolute, password: pw, ip: pw == password ? ip : nil)
    }

    /// For a file inside the share guarded by a folder password the visitor must give: the guard and a digest
    /// of its current password, which a link to the file carries (the link itself has no password); "" when
    /// no such guard applies.
    func linkGuard(_ o: Opened, item: String, absolute: String, rules: FolderRules) -> (mark: String, password: String?) {
        guard !o.visitor.permission.contains(.accessWithoutPassword), let rule = rules.passwordRule(for: absolute),
              !VirtualPath.isWithin(item, rule.path) else { return ("", nil) }
        return (rule.path + "\u{0}" + Self.proof(share: o.share.id, rulePath: rule.path, password: rule.password), rule.password)
    }

    /// What a share keeps of a folder password its creator gave: a digest bound to the share and the folder.
    static func proof(share: String, rulePath: String, password: String) -> String {
        Passwords.sha256Hex("panlist-share-guard\u{0}\(share)\u{0}\(rulePath)\u{0}\(password)")
    }

    /// An error as a visitor should read it: nothing of where the shared files live. A missing (or hidden)
    /// name is said with the path the visitor asked for; what failed behind the share (a storage, the cloud)
    /// is logged for the owner and told as unreachable; the gate's own refusals pass as they are. Messages are
    /// not searched and rewritten (a rewrite of the visitor's own text would tell them what it matched).
    func inShareTerms(_ error: any Error, _ o: Opened, asked sharePath: String) -> FSError {
        let e = FSError.from(error)
        switch e {
        case .notFound:
            return .notFound("\(sharePath): object not found")
        case .unauthorized, .rateLimited, .badRequest, .invalidPath, .permissionDenied, .noSuchRecord, .tooLarge, .unavailable:
            return e
        default:
            state.logger.warning("share \(o.share.id): \(LogText.quoted(e.message))")
            return .storageUnavailable("the files of this share cannot be reached right now; try again later")
        }
    }

    // MARK: ids, sessions and links

    static let idCharacters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    /// A random id: 10 characters of 62 (about 59 bits).
    static func randomID() -> String {
        var g = SystemRandomNumberGenerator()
        return String((0..<10).map { _ in idCharacters[Int(g.next(upperBound: UInt32(idCharacters.count)))] })
    }

    /// Ids are 3–64 of `A–Z a–z 0–9 _ -`.
    static func validID(_ id: String) -> Bool {
        (3...64).contains(id.utf8.count) && id.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 95
        }
    }

    /// Changes when the share's password, items or nonce change (a disable, or a share made again under the
    /// same id): sessions and links made before stop working.
    static func passwordMark(_ share: Share) -> String {
        String(Passwords.sha256Hex(share.nonce + "\u{0}" + share.password_hash + "\u{0}" + share.password_salt).prefix(16))
    }

    /// How long a session (an open of the share) lasts: a day, or to the share's expiry when that is sooner.
    static func sessionExpiry(_ share: Share, now: Date = Date()) -> Int64 {
        let day = Int64(now.timeIntervalSince1970) + 86_400
        guard share.expires_ms > 0 else { return day }
        return min(day, (share.expires_ms + 999) / 1000)
    }

    /// What a session token signs, and what a `/sd` link's sign signs.
    private static func sessionMessage(_ share: Share) -> String { "share-session\u{0}\(share.id)\u{0}\(passwordMark(share))" }
    private static func linkMessage(_ share: Share, _ sharePath: String, _ mark: String) -> String {
        "share-link\u{0}\(share.id)\u{0}\(passwordMark(share))\u{0}\(mark)\u{0}\(sharePath)"
    }

    func sessionToken(_ share: Share, expire: Int64) -> String {
        state.signer.sign(message: Self.sessionMessage(share), expire: expire)
    }

    /// The session a visitor holds (from `auth`); its expiry.
    func verifySession(_ o: Opened, token: String?) throws(FSError) -> Int64 {
        guard let token, !token.isEmpty else { throw .unauthorized("open the share first (its password, if it has one)") }
        do {
            return try state.signer.verify(path: Self.sessionMessage(o.share), sign: token)
        } catch {
            throw .unauthorized("this share's session has ended or its password changed: open the share again")
        }
    }

    /// The sign of a `/sd` link to `sharePath`, valid as long as the session (and the folder password in
    /// `guard`, see `linkGuard`).
    func linkSign(_ share: Share, sharePath: String, guard mark: String, expire: Int64) -> String {
        state.signer.sign(message: Self.linkMessage(share, sharePath, mark), expire: expire)
    }

    func verifyLink(_ share: Share, sharePath: String, guard mark: String, sign: String) throws(FSError) {
        try state.signer.verify(path: Self.linkMessage(share, sharePath, mark), sign: sign)
    }
}
