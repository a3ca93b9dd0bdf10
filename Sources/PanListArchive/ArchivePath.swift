#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Path rules for archive members.
public enum ArchivePath {
    /// The result of normalizing a member path.
    public enum Normalized: Equatable, Sendable {
        /// The normalized path ("" for the archive root itself, like "./" in a tar).
        case path(String)
        /// The path cannot be used safely; `reason` completes "its entry X ...".
        case unsafe(reason: String)
    }

    /// Normalizes a member path: backslashes become "/" (Windows zips, and so "..\x" is caught),
    /// empty and "." components are dropped; absolute paths, drive letters and ".." are refused.
    /// ("a/../b" is refused too rather than resolved: no honest archiver writes it.)
    public static func normalize(_ raw: String) -> Normalized {
        let slashed = raw.replacingBackslashes()
        if slashed.hasPrefix("/") { return .unsafe(reason: "has an absolute path") }
        let parts = slashed.split(separator: "/", omittingEmptySubsequences: true)
        if slashed.utf8.count > 4096 || parts.count > 256 { return .unsafe(reason: "has a path longer than 4,096 bytes or 256 levels") }
        if let first = parts.first, first.count >= 2, first.utf8.dropFirst().first == UInt8(ascii: ":"),
           let c = first.utf8.first, (c | 0x20) >= UInt8(ascii: "a"), (c | 0x20) <= UInt8(ascii: "z") {
            return .unsafe(reason: "has a drive letter")
        }
        var out: [Substring] = []
        for part in parts where part != "." {
            if part == ".." { return .unsafe(reason: "climbs out of the archive with \"..\"") }
            out.append(part)
        }
        return .path(out.joined(separator: "/"))
    }

    /// Checks that a symlink at `memberPath` (normalized) pointing to `target` resolves inside the
    /// archive root, lexically. Returns nil when safe, else the reason. (The extraction also
    /// refuses members under an earlier symlink, which lexical resolution alone can't cover.)
    public static func symlinkProblem(memberPath: String, target: String) -> String? {
        if target.isEmpty { return "is a symbolic link with an empty target" }
        let slashed = target.replacingBackslashes()
        if slashed.hasPrefix("/") { return "is a symbolic link to an absolute path (\(target))" }
        if case .unsafe(let reason) = normalize(slashed), reason == "has a drive letter" {
            return "is a symbolic link to a drive letter (\(target))"
        }
        var stack = memberPath.split(separator: "/").dropLast()  // the link's folder
        for part in slashed.split(separator: "/") where part != "." {
            if part == ".." {
                if stack.isEmpty { return "is a symbolic link pointing outside the archive (\(target))" }
                stack.removeLast()
            } else {
                stack.append(part)
            }
        }
        return nil
    }
}

extension String {
    fileprivate func replacingBackslashes() -> String {
        guard utf8.contains(UInt8(ascii: "\\")) else { return self }
        return String(decoding: utf8.map { $0 == UInt8(ascii: "\\") ? UInt8(ascii: "/") : $0 }, as: UTF8.self)
    }
}

/// Turns the bytes of a member name into a String.
enum NameDecoding {
    /// Valid UTF-8 is taken as is; anything else is tried as GBK/CP936 (zips made by Windows in
    /// Chinese locales, without the UTF-8 flag), then falls back to UTF-8 with replacement marks.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        if let s = iconvDecode(bytes, from: "GB18030") { return s }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func decode(cString: UnsafePointer<CChar>) -> String {
        let count = strlen(cString)
        return cString.withMemoryRebound(to: UInt8.self, capacity: count) {
            decode(UnsafeBufferPointer(start: $0, count: count))
        }
    }

    /// iconv from glibc (its gconv modules ship in libc6, so this works in a minimal Debian too).
    /// GB18030 is a superset of GBK/CP936.
    private static func iconvDecode(_ bytes: UnsafeBufferPointer<UInt8>, from charset: String) -> String? {
        let cd = iconv_open("UTF-8", charset)
        if cd == iconv_t(bitPattern: -1) { return nil }
        defer { iconv_close(cd) }
        var input = Array(bytes)
        var output = [UInt8](repeating: 0, count: bytes.count * 4 + 4)
        var produced = -1
        input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                guard let inBase = inBuf.baseAddress, let outBase = outBuf.baseAddress else { return }
                var inPtr: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(inBase)
                    .assumingMemoryBound(to: CChar.self)
                var inLeft = inBuf.count
                var outPtr: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(outBase)
                    .assumingMemoryBound(to: CChar.self)
                var outLeft = outBuf.count
                if iconv(cd, &inPtr, &inLeft, &outPtr, &outLeft) != -1, inLeft == 0 {
                    produced = outBuf.count - outLeft
                }
            }
        }
        guard produced >= 0 else { return nil }
        return String(validating: output[0..<produced], as: UTF8.self)
    }
}
