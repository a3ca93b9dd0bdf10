/// Path rules shared by every front end and driver.
///
/// A virtual path is absolute, `/`-separated, has no empty, `.` or `..` segments, and no NUL bytes.
public enum VirtualPath {
    /// Normalises a client-supplied path. Backslashes count as separators (Windows clients send them).
    /// `.` segments and repeated slashes are dropped; a `..` segment or a NUL byte is refused, never resolved.
    public static func normalize(_ raw: String) throws(FSError) -> String {
        if isNormal(raw) { return raw }
        if raw.utf8.contains(0) { throw .invalidPath("path contains a NUL byte") }
        var parts: [Substring] = []
        for seg in raw.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "/" || $0 == "\\" }) {
            if seg == "." { continue }
            if seg == ".." { throw .invalidPath("relative path segments (..) are not allowed") }
            parts.append(seg)
        }
        return "/" + parts.joined(separator: "/")
    }

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
            case UInt8(ascii: "\\"), 0: return false
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
        if name == "." || name == ".." { throw .invalidPath("'\(name)' is not a valid name") }
        if name.contains("/") || name.contains("\\") { throw .invalidPath("a name cannot contain '/' or '\\'") }
        if name.utf8.contains(0) { throw .invalidPath("a name cannot contain a NUL byte") }
        if name.utf8.count > 255 { throw .invalidPath("the name is longer than 255 bytes") }
    }

    /// Joins a normalised directory and a validated name.
    public static func join(_ dir: String, _ name: String) -> String {
        dir == "/" ? "/" + name : dir + "/" + name
    }

    /// The parent folder of a normalised path (`/` for `/` itself).
    public static func parent(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/"), path != "/" else { return "/" }
        return i == path.startIndex ? "/" : String(path[..<i])
    }

    /// The last segment of a normalised path (empty for `/`).
    public static func base(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: i)...])
    }

    /// True when `path` is `prefix` or lies below it, compared on whole segments (`/a` never contains `/ab`).
    public static func isWithin(_ path: String, _ prefix: String) -> Bool {
        if prefix == "/" { return true }
        return path == prefix || path.hasPrefix(prefix + "/")
    }

    /// The part of `path` below `prefix` as an absolute path (`/` when equal). Call only when `isWithin`.
    public static func relative(_ path: String, to prefix: String) -> String {
        if prefix == "/" { return path }
        let rest = path.dropFirst(prefix.count)
        return rest.isEmpty ? "/" : String(rest)
    }

    /// Number of segments, used to pick the longest mount path.
    public static func depth(_ path: String) -> Int {
        path == "/" ? 0 : path.utf8.reduce(0) { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 }
    }
}
