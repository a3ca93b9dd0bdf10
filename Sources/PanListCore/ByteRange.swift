import Foundation

/// Parsing of a single `Range: bytes=…` header. Several ranges, or an invalid header, are ignored (RFC 9110).
public enum ByteRange: Equatable, Sendable {
    case full
    case partial(ClosedRange<Int64>)
    case unsatisfiable

    public static func parse(_ header: String, size: Int64) -> ByteRange {
        let h = header.trimmingCharacters(in: .whitespaces)
        guard h.lowercased().hasPrefix("bytes="), size > 0 else { return .full }
        let spec = h.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .full }
        let a = spec[..<dash].trimmingCharacters(in: .whitespaces), b = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        func num(_ s: String) -> Int64? { s.isEmpty || !s.allSatisfy(\.isASCII) || !s.allSatisfy(\.isNumber) ? nil : Int64(s) }
        if a.isEmpty {
            guard let n = num(b) else { return .full }
            if n == 0 { return .unsatisfiable }
            return .partial(max(0, size - n)...(size - 1))
        }
        guard let start = num(a) else { return .full }
        var end = size - 1
        if !b.isEmpty {
            guard let e = num(b), e >= start else { return .full }
            end = min(e, size - 1)
        }
        if start >= size { return .unsatisfiable }
        return .partial(start...end)
    }
}

