import Foundation

/// A share link: files and folders of one user, opened by anyone with the link (and its password). A row in
/// the store, so that every instance agrees on it and on its access count. Column names are the JSON keys.
public struct Share: Sendable, Codable, Equatable {
    public var id: String
    public var creator_id: Int
    /// The shared files and folders: absolute virtual paths, a JSON array.
    public var files: String
    /// The share's password as a login password is kept (bcrypt of its static hash); "" when there is none.
    public var password_hash: String
    public var password_salt: String
    /// Unix milliseconds after which the share no longer opens; 0: never.
    public var expires_ms: Int64
    /// Most opens (`/api/public/share/auth` answered with a session); 0: no limit.
    public var max_accessed: Int64
    public var accessed: Int64
    public var allow_preview: Bool
    public var allow_download: Bool
    public var disabled: Bool
    public var readme: String
    public var header: String
    public var remark: String
    /// The folder passwords the creator gave for guarded folders above the shared items (folder → a digest of
    /// the password bound to the share), a JSON object: a share opens such a folder's content only while its
    /// password is still the one the creator knew.
    public var guard_proofs: String
    /// One shared folder: the share's `/` is that folder (decided when the items are set).
    public var single_folder: Bool
    /// Random; made anew when the share is disabled or its items or password change: sessions and links
    /// carry it, so those handed out before end (and a share made again under an old id takes none over).
    public var nonce: String
    /// Counts changes: an update applies only to the version it was read at (no change made from a stale copy
    /// undoes another).
    public var version: Int64
    public var created_ms: Int64
    public var updated_ms: Int64

    public init(id: String, creator: Int, paths: [String]) {
        self.id = id; creator_id = creator
        files = (try? String(decoding: JSONEncoder().encode(paths), as: UTF8.self)) ?? "[]"
        password_hash = ""; password_salt = ""; expires_ms = 0; max_accessed = 0; accessed = 0
        allow_preview = true; allow_download = true; disabled = false; readme = ""; header = ""; remark = ""
        guard_proofs = "{}"; single_folder = false; nonce = Self.newNonce(); version = 1
        created_ms = Int64(Date().timeIntervalSince1970 * 1000); updated_ms = created_ms
    }

    public var paths: [String] {
        get { (try? JSONDecoder().decode([String].self, from: Data(files.utf8))) ?? [] }
        set { files = (try? String(decoding: JSONEncoder().encode(newValue), as: UTF8.self)) ?? "[]" }
    }

    public var proofs: [String: String] {
        get { (try? JSONDecoder().decode([String: String].self, from: Data(guard_proofs.utf8))) ?? [:] }
        set {
            let e = JSONEncoder()
            e.outputFormatting = .sortedKeys
            guard_proofs = (try? String(decoding: e.encode(newValue), as: UTF8.self)) ?? "{}"
        }
    }

    public var hasPassword: Bool { !password_hash.isEmpty }

    /// Disabling ends the sessions and links handed out (a new nonce): enabling again does not bring them back.
    public mutating func setDisabled(_ value: Bool) {
        if value && !disabled { nonce = Self.newNonce() }
        disabled = value
    }

    public static func newNonce() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(g.next(), radix: 16) }.joined(separator: "-")
    }

    /// Why the share does not open now (disabled, expired, every access used), or nil when it does.
    public func closedReason(now: Date = Date()) -> ShareClosed? {
        if disabled { return .disabled }
        if expires_ms > 0, Int64(now.timeIntervalSince1970 * 1000) >= expires_ms { return .expired }
        if max_accessed > 0, accessed >= max_accessed { return .exhausted }
        return nil
    }
}

public enum ShareClosed: String, Sendable {
    case disabled, expired, exhausted
    public var message: String {
        switch self {
        case .disabled: "this share is disabled by its owner"
        case .expired: "this share has expired"
        case .exhausted: "this share has been opened as many times as its owner allowed"
        }
    }
}

public protocol ShareStore: Sendable {
    /// Adds a share; `.alreadyExists` when its id is taken.
    func createShare(_ share: Share) async throws
    func share(id: String) async throws -> Share?
    /// The shares of one creator (nil: everyone's), newest first.
    func shares(creator: Int?) async throws -> [Share]
    /// Rewrites a share's settings (everything but its id, creator, access count and creation time; the count
    /// too with `resetAccessed`) if the stored version is still `share.version`, and counts a new version;
    /// false when the share is gone or was changed since it was read.
    func updateShare(_ share: Share, resetAccessed: Bool) async throws -> Bool
    @discardableResult func deleteShare(id: String) async throws -> Bool
    /// Counts one open of a share, atomically on every instance: nil (and nothing counted) when the share is
    /// gone, disabled, expired by the store's clock or at its limit; else the count with this open.
    func countShareOpen(id: String) async throws -> Int64?
}
