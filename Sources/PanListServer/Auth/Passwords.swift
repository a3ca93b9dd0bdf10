import Crypto
import Foundation
import HummingbirdBcrypt
import NIOPosix
import PanListCore

/// Passwords. Clients may log in with the password or with Alist's "static hash"
/// sha256hex(password + "-https://github.com/alist-org/alist") (`/api/auth/login/hash`), so what is stored is a
/// slow hash of the static hash: bcrypt (`$2b$`, cost 12 by default, `PANLIST_BCRYPT_COST` 4–15). Records from
/// before (Alist's sha256hex(static + "-" + salt)) still verify, and are rewritten as bcrypt at their next login.
/// bcrypt is slow on purpose: call `verify` and `make` off the event loops (`verifyAsync`, `makeAsync`).
public enum Passwords {
    /// Marks a bcrypt record in the `salt` column (bcrypt keeps its salt inside the hash).
    public static let bcryptSalt = "bcrypt"

    public static let cost: UInt8 = {
        if let v = ProcessInfo.processInfo.environment["PANLIST_BCRYPT_COST"].flatMap({ UInt8($0) }) { return min(15, max(4, v)) }
        return 12
    }()

    /// Whether a stored record uses the old (fast) scheme and should be rewritten.
    public static func isLegacy(_ hash: String) -> Bool { !hash.hasPrefix("$2") }

    /// Checks a static hash against a stored record (bcrypt, or the old salted SHA-256).
    public static func verify(staticHash: String, hash: String, salt: String) -> Bool {
        if hash.hasPrefix("$2") { return Bcrypt.verify(staticHash, hash: hash) }
        return equal(self.hash(staticHash: staticHash, salt: salt), hash)
    }

    public static func verifyAsync(staticHash: String, hash: String, salt: String) async -> Bool {
        (try? await NIOThreadPool.singleton.runIfActive { verify(staticHash: staticHash, hash: hash, salt: salt) }) ?? false
    }

    /// A stored record for a static hash: bcrypt, with `bcryptSalt` in the salt column.
    public static func make(staticHash: String) -> (hash: String, salt: String) {
        (Bcrypt.hash(staticHash, cost: cost), bcryptSalt)
    }

    public static func makeAsync(_ password: String) async throws -> (hash: String, salt: String) {
        try await NIOThreadPool.singleton.runIfActive { make(password) }
    }
    static let staticSuffix = "-https://github.com/alist-org/alist"

    public static func sha256Hex(_ s: String) -> String {
        SHA256.hash(data: Data(s.utf8)).hexString
    }

    public static func staticHash(_ password: String) -> String { sha256Hex(password + staticSuffix) }

    public static func hash(staticHash: String, salt: String) -> String { sha256Hex(staticHash + "-" + salt) }

    /// A stored record for a plain password.
    public static func make(_ password: String) -> (hash: String, salt: String) {
        make(staticHash: staticHash(password))
    }

    /// Constant-time comparison of two hex strings.
    static func equal(_ a: String, _ b: String) -> Bool { Access.constantTimeEqual(a, b) }
}
