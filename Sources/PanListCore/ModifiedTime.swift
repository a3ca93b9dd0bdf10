import Foundation

/// Modification times as clients send them (`Last-Modified` on uploads, WebDAV `X-OC-Mtime`, a PROPPATCH of
/// `lastmodified`): one parser for all of them, so that no value can reach a conversion that traps (`nan`,
/// `inf` and `1e300` are all valid `Double`s).
public enum ModifiedTime {
    /// Latest time accepted: the year 5138 (seconds since 1970). Also keeps milliseconds and nanoseconds
    /// of every accepted time inside Int64.
    public static let maxSeconds: Double = 1e11

    /// A time in seconds since 1970, or nil when it is not a finite number in [0, `maxSeconds`).
    public static func seconds(_ value: Double) -> Date? {
        guard value.isFinite, value >= 0, value < maxSeconds else { return nil }
        return Date(timeIntervalSince1970: value)
    }

    /// Seconds (`X-OC-Mtime`, `lastmodified`) as text.
    public static func seconds(text: String) -> Date? {
        Double(text.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap(seconds)
    }

    /// `Last-Modified` on an upload: milliseconds (most clients) or seconds (some), told apart by magnitude.
    public static func secondsOrMilliseconds(text: String) -> Date? {
        guard let n = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), n.isFinite, n > 0 else { return nil }
        return seconds(n > 1e11 ? n / 1000 : n)
    }

    /// `date` clamped into the accepted range (for code that turns times into integers).
    public static func clamped(_ date: Date) -> Date {
        let t = date.timeIntervalSince1970
        guard t.isFinite else { return Date(timeIntervalSince1970: 0) }
        return Date(timeIntervalSince1970: min(max(t, -maxSeconds), maxSeconds))
    }
}
