#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// libarchive converts member names between an archive's charset and the current locale's. A
/// Swift program runs in the "C" (ASCII) locale unless it calls setlocale, and there libarchive
/// drops every non-ASCII name ("Pathname cannot be converted from UTF-8 to current locale").
/// Rather than change the whole process's locale, each call switches only its own thread to
/// C.UTF-8 with uselocale(3) for as long as it runs libarchive.
enum UTF8Locale {
    /// Made once, never freed. nil when the system has no UTF-8 locale (then names that are not
    /// ASCII may be unreadable and such entries fail as damaged).
    nonisolated(unsafe) private static let locale: locale_t? = {
        for name in ["C.UTF-8", "C.utf8", "en_US.UTF-8"] {
            if let loc = newlocale(LC_CTYPE_MASK, name, nil) { return loc }
        }
        return nil
    }()

    static func with<T>(_ body: () throws -> T) rethrows -> T {
        guard let locale else { return try body() }
        let previous = uselocale(locale)
        defer { uselocale(previous) }
        return try body()
    }
}
