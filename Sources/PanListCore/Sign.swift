import Crypto
import Foundation
import NIOConcurrencyHelpers

/// Alist's download-link signature: `base64url(HMAC-SHA256(key, path + ":" + expire)) + ":" + expire`,
/// with the padded URL-safe alphabet. `expire` is unix seconds, 0 for never.
public struct Signer: Sendable {
    let key: SymmetricKey
    /// Signs already found valid (path and sign), so a link fetched again and again (a player's range
    /// requests, a busy `/d`) is not re-hashed each time. The expiry is still checked on every use.
    private let verified = NIOLockedValueBox<Set<Verified>>([])
    struct Verified: Hashable { var path: String; var sign: String }
    /// Signs that never expire, by folder and name: a listing of 10,000 files signs each of them, request
    /// after request.
    private let made = NIOLockedValueBox<(folders: [String: [String: String]], count: Int)>(([:], 0))
    static let maxMade = 100_000
    public init(key: String) { self.key = SymmetricKey(data: Data(key.utf8)) }

    public func sign(path: String, expire: Int64) -> String {
        var one = folder(VirtualPath.parent(path), expire: expire)
        let sign = one.sign(VirtualPath.base(path))
        one.keep()
        return sign
    }

    /// The signs of one folder's files: the ones already made are read once, new ones are kept by `keep()`.
    public func folder(_ folder: String, expire: Int64) -> FolderSigner {
        FolderSigner(signer: self, folder: folder, expire: expire,
                     known: expire == 0 ? made.withLockedValue { $0.folders[folder] } ?? [:] : [:])
    }

    fileprivate func remember(_ folder: String, _ signs: [String: String]) {
        made.withLockedValue { m in
            if m.count + signs.count > Self.maxMade { m = ([:], 0) }
            m.folders[folder, default: [:]].merge(signs) { a, _ in a }
            m.count += signs.count
        }
    }

    /// Signs a message that is not a path (share sessions and share links: they start with a letter, so no
    /// download path, which starts with `/`, can carry their sign); checked with `verify(path:sign:)`.
    public func sign(message: String, expire: Int64) -> String {
        precondition(!message.hasPrefix("/"))
        return compute(path: message, expire: expire)
    }

    func compute(path: String, expire: Int64) -> String {
        var message = path + ":" + String(expire)
        let mac = message.withUTF8 { HMAC<SHA256>.authenticationCode(for: UnsafeRawBufferPointer($0), using: key) }
        return "\(Self.base64URL(Array(mac))):\(expire)"
    }

    /// Padded base64 with the URL-safe alphabet (as Go's `base64.URLEncoding`).
    static func base64URL(_ bytes: [UInt8]) -> String { Base64URL.encode(bytes, padded: true) }

    /// A keyed digest of `message` (HMAC-SHA256 with the signing key), base64url: a proof that can travel in a
    /// URL without telling what it proves (a folder password) to anyone who has not the key.
    public func digest(_ message: String) -> String {
        Base64URL.encode(Array(HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key)), padded: false)
    }

    /// Checks a `sign` query value for `path`; throws `.unauthorized` with Alist's messages.
    @discardableResult
    public func verify(path: String, sign raw: String, now: Date = Date()) throws(FSError) -> Int64 {
        var sign = raw
        if sign.utf8.last == UInt8(ascii: "/") { sign.removeLast() }
        guard let colon = sign.utf8.lastIndex(of: UInt8(ascii: ":")) else { throw .unauthorized("expire missing") }
        guard let expire = Int64(sign[sign.index(after: colon)...]) else { throw .unauthorized("expire invalid") }
        if expire != 0 && Int64(now.timeIntervalSince1970) > expire { throw .unauthorized("sign expired") }
        let memo = Verified(path: path, sign: sign)
        if verified.withLockedValue({ $0.contains(memo) }) { return expire }
        let expected = compute(path: path, expire: expire)
        // Constant-time comparison of the whole string.
        let a = Array(expected.utf8), b = Array(sign.utf8)
        var diff = a.count ^ b.count
        for i in 0..<min(a.count, b.count) { diff |= Int(a[i] ^ b[i]) }
        if diff != 0 { throw .unauthorized("sign invalid") }
        verified.withLockedValue { set in
            if set.count >= 8192 { set.removeAll(keepingCapacity: true) }
            set.insert(memo)
        }
        return expire
    }
}

/// Signs for the files of one folder (a listing): never-expiring ones come from the signer's memory, new ones
/// are computed and handed back with `keep()`.
public struct FolderSigner: Sendable {
    let signer: Signer
    let folder: String
    let expire: Int64
    private var known: [String: String]
    private var made: [String: String] = [:]

    init(signer: Signer, folder: String, expire: Int64, known: [String: String]) {
        self.signer = signer; self.folder = folder; self.expire = expire; self.known = known
    }

    public mutating func sign(_ name: String) -> String {
        if let hit = known[name] { return hit }
        let sign = signer.compute(path: VirtualPath.join(folder, name), expire: expire)
        if expire == 0 { made[name] = sign; known[name] = sign }
        return sign
    }

    /// Hands the signs made since the last call to the signer's memory.
    public mutating func keep() {
        guard !made.isEmpty else { return }
        signer.remember(folder, made)
        made = [:]
    }
}

/// Base64 with the URL-safe alphabet (RFC 4648 section 5), padded or not.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ bytes: some Collection<UInt8>, padded: Bool) -> String {
        let bytes = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            let n = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
            if rest == 2 { out.append(alphabet[Int(n >> 6 & 63)]) }
            if padded { out += Array(repeating: UInt8(ascii: "="), count: 3 - rest) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of a base64url text, padded or not; nil when it is not one.
    public static func decode(_ text: String) -> [UInt8]? {
        guard !text.contains("+"), !text.contains("/") else { return nil }
        var t = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while t.utf8.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).map { Array($0) }
    }
}
