import Foundation

/// Path rules shared by every front end and driver.
///
/// A virtual path is absolute, `/`-separated, has no empty, `.` or `..` segments, and no NUL bytes.
public enum VirtualPath {
    /// Normalises a client-supplied path. Backslashes count as separators (Windows clients send them).
    /// `.` segments and repeated slashes are dropped; a `..` segment or a NUL byte is refused, never resolved.
    /// Every path operation here works on UTF-8 bytes, never on Characters: `/` followed by a combining
    /// mark is one Character but still a separator on disk.
    public static func normalize(_ raw: String) throws(FSError) -> String {
        if isNormal(raw) { return raw }
        if raw.utf8.contains(0) { throw .invalidPath("path contains a NUL byte") }
        var out: [UInt8] = []
        out.reserveCapacity(raw.utf8.count + 1)
        for seg in raw.utf8.split(omittingEmptySubsequences: true, whereSeparator: { $0 == slash || $0 == backslash }) {
            if seg.elementsEqual(".".utf8) { continue }
            if seg.elementsEqual("..".utf8) { throw .invalidPath("relative path segments (..) are not allowed") }
            out.append(slash)
            out.append(contentsOf: seg)
        }
        return out.isEmpty ? "/" : String(decoding: out, as: UTF8.self)
    }

    static let slash = UInt8(ascii: "/"), backslash = UInt8(ascii: "\\")

    /// Whether `raw` is already what `normalize` makes of it (the common case, checked in one pass over the
    /// bytes): `/`, or `/`-separated segments that are not empty, `.` or `..`, without `\`, NUL or a trailing `/`.
    static func isNormal(_ raw: String) -> Bool {
        var utf8 = raw.utf8.makeIterator()
        guard utf8.next() == UInt8(ascii: "/") else { return false }
        var segment = 0, dots = 0, total = 1
        while let b = utf8.next() {
            total += 1
            switch b {
            case UInt8(ascii: "/"):
                if segment == 0 || segment == dots && dots <= 2 { return false }
                segment = 0; dots = 0
            case backslash, 0: return false
            case UInt8(ascii: "."): segment += 1; dots += 1
            default: segment += 1
            }
        }
        if total == 1 { return true }
        return segment > 0 && !(segment == dots && dots <= 2)
    }

    /// Checks a single file or folder name given by a client (mkdir, rename, upload).
    public static func validateName(_ name: String) throws(FSError) {
        if name.isEmpty { throw .invalidPath("the name is empty") }
        if name.utf8.elementsEqual(".".utf8) || name.utf8.elementsEqual("..".utf8) { throw .invalidPath("'\(name)' is not a valid name") }
        if name.utf8.contains(where: { $0 == slash || $0 == backslash }) { throw .invalidPath("a name cannot contain '/' or '\\'") }
        if name.utf8.contains(0) { throw .invalidPath("a name cannot contain a NUL byte") }
        if name.utf8.count > 255 { throw .invalidPath("the name is longer than 255 bytes") }
    }

    /// Joins a normalised directory and a validated name.
    public static func join(_ dir: String, _ name: String) -> String {
        dir == "/" ? "/" + name : dir + "/" + name
    }

    /// The parent folder of a normalised path (`/` for `/` itself).
    public static func parent(_ path: String) -> String {
        guard let i = path.utf8.lastIndex(of: slash), i != path.utf8.startIndex else { return "/" }
        return String(path[..<i])
    }

    /// The last segment of a normalised path (empty for `/`).
    public static func base(_ path: String) -> String {
        guard let i = path.utf8.lastIndex(of: slash) else { return path }
        return String(path[path.utf8.index(after: i)...])
    }

    /// True when `path` is `prefix` or lies below it, compared on whole segments and bytes (`/a` never
    /// contains `/ab`; no two spellings of one name are taken as one).
    public static func isWithin(_ path: String, _ prefix: String) -> Bool {
        if prefix.utf8.elementsEqual("/".utf8) { return true }
        let p = path.utf8, q = prefix.utf8
        guard p.starts(with: q) else { return false }
        let rest = p.dropFirst(q.count)
        return rest.isEmpty || rest.first == slash
    }

    /// The part of `path` below `prefix` as an absolute path (`/` when equal). Call only when `isWithin`.
    public static func relative(_ path: String, to prefix: String) -> String {
        if prefix.utf8.elementsEqual("/".utf8) { return path }
        let i = path.utf8.index(path.utf8.startIndex, offsetBy: prefix.utf8.count)
        return i == path.utf8.endIndex ? "/" : String(path[i...])
    }

    /// `isWithin` with names compared in either Unicode normal form: folder rules apply to a folder however
    /// a client spells its name (guarding more, never less).
    public static func isWithinAnyForm(_ path: String, _ prefix: String) -> Bool {
        isWithin(path.precomposedStringWithCanonicalMapping, prefix.precomposedStringWithCanonicalMapping)
    }

    /// `relative` for `isWithinAnyForm` (the rest in Unicode's composed form).
    public static func relativeAnyForm(_ path: String, to prefix: String) -> String {
        relative(path.precomposedStringWithCanonicalMapping, to: prefix.precomposedStringWithCanonicalMapping)
    }

    /// The first segment of a normalised path below `/` (`a` for `/a/b`).
    public static func firstSegment(_ path: String) -> String {
        let rest = path.utf8.dropFirst()
        let end = rest.firstIndex(of: slash) ?? rest.endIndex
        return String(path[rest.startIndex..<end])
    }

    /// Number of segments, used to pick the longest mount path.
    public static func depth(_ path: String) -> Int {
        path == "/" ? 0 : path.utf8.reduce(0) { $1 == slash ? $0 + 1 : $0 }
    }
}
