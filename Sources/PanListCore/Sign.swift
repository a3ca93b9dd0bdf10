import Crypto
import Foundation

/// Alist's download-link signature: `base64url(HMAC-SHA256(key, path + ":" + expire)) + ":" + expire`,
/// with the padded URL-safe alphabet. `expire` is unix seconds, 0 for never.
public struct Signer: Sendable {
    let key: SymmetricKey
    public init(key: String) { self.key = SymmetricKey(data: Data(key.utf8)) }

    public func sign(path: String, expire: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(path):\(expire)".utf8), using: key)
        let b64 = Data(mac).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
        return "\(b64):\(expire)"
    }

    /// Checks a `sign` query value for `path`; throws `.unauthorized` with Alist's messages.
    public func verify(path: String, sign raw: String, now: Date = Date()) throws(FSError) {
        var sign = raw
        if sign.hasSuffix("/") { sign.removeLast() }
        guard let colon = sign.lastIndex(of: ":") else { throw .unauthorized("expire missing") }
        guard let expire = Int64(sign[sign.index(after: colon)...]) else { throw .unauthorized("expire invalid") }
        if expire != 0 && Int64(now.timeIntervalSince1970) > expire { throw .unauthorized("sign expired") }
        let expected = self.sign(path: path, expire: expire)
        // Constant-time comparison of the whole string.
        let a = Array(expected.utf8), b = Array(sign.utf8)
        var diff = a.count ^ b.count
        for i in 0..<min(a.count, b.count) { diff |= Int(a[i] ^ b[i]) }
        if diff != 0 { throw .unauthorized("sign invalid") }
    }
}
