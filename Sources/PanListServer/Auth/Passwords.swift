import Crypto
import Foundation
import PanListCore

/// Alist's password scheme: the client-side "static hash" sha256hex(password + "-https://github.com/alist-org/alist"),
/// stored as sha256hex(static + "-" + salt) with a random 16-character salt.
public enum Passwords {
    static let staticSuffix = "-https://github.com/alist-org/alist"

    public static func sha256Hex(_ s: String) -> String {
        SHA256.hash(data: Data(s.utf8)).hexString
    }

    public static func staticHash(_ password: String) -> String { sha256Hex(password + staticSuffix) }

    public static func hash(staticHash: String, salt: String) -> String { sha256Hex(staticHash + "-" + salt) }

    /// A new salt and stored hash for a plain password.
    public static func make(_ password: String) -> (hash: String, salt: String) {
        let salt = RandomString.make(16)
        return (hash(staticHash: staticHash(password), salt: salt), salt)
    }

    /// Constant-time comparison of two hex strings.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = x.count ^ y.count
        for i in 0..<min(x.count, y.count) { diff |= Int(x[i] ^ y[i]) }
        return diff == 0
    }
}
