/// Text from clients (user names, paths) as it goes into a log line: quoted, control characters escaped
/// and cut at 200 characters, so that nobody can forge log lines or flood them.
public enum LogText {
    public static func quoted(_ s: String) -> String {
        var out = "\""
        for (i, scalar) in s.unicodeScalars.enumerated() {
            if i >= 200 { out += "…"; break }
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}":
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension LogText {
    /// A request path as received (already percent-encoded by the client): printable ASCII stays, anything
    /// else is percent-encoded, so that a path cannot break the line.
    public static func path(_ p: String) -> String {
        // The usual case: printable ASCII already, as it came.
        if p.utf8.count <= 1000, p.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") }) { return p }
        var out = ""
        for b in p.utf8.prefix(1000) {
            if b > 0x20 && b < 0x7f && b != UInt8(ascii: "\"") { out.unicodeScalars.append(Unicode.Scalar(b)) }
            else { out += "%" + String(b, radix: 16, uppercase: true).leftPad2 }
        }
        return p.utf8.count > 1000 ? out + "…" : out
    }
}

private extension String {
    var leftPad2: String { count < 2 ? "0" + self : self }
}
