import Foundation
import Hummingbird
import NIOCore

/// JSON written straight into a byte array, for the answers that are hot (listings of many entries): no
/// `JSONEncoder`, no intermediate strings. Strings are escaped as `JSONEncoder` does with
/// `.withoutEscapingSlashes` (quotes, backslashes and control characters; UTF-8 passes through).
struct JSONOut {
    private(set) var out: ByteOut
    /// The RFC 3339 text of the last second written by `time` (its first 19 bytes), for the next entry.
    private var lastSecond = Int.min
    private var secondText = [UInt8](repeating: 0, count: 19)

    init(capacity: Int) { out = ByteOut(capacity: capacity) }

    var count: Int { out.count }
    var bytes: [UInt8] { out.bytes }

    mutating func raw(_ s: StaticString) { out.raw(s) }
    mutating func byte(_ b: UInt8) { out.byte(b) }
    /// Bytes that are already JSON.
    mutating func append(_ json: some Sequence<UInt8>) { out.append(json) }
    mutating func int<T: BinaryInteger>(_ value: T) { out.int(value) }
    mutating func bool(_ b: Bool) { b ? raw("true") : raw("false") }
    mutating func take() -> ByteBuffer { out.take() }

    /// A quoted, escaped string.
    mutating func string(_ s: String) {
        out.byte(UInt8(ascii: "\""))
        out.escaped(s) { b in
            guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { return nil }
            switch b {
            case UInt8(ascii: "\""): return "\\\""
            case UInt8(ascii: "\\"): return "\\\\"
            default: return Self.controls[Int(b)]
            }
        }
        out.byte(UInt8(ascii: "\""))
    }

    /// How JSON writes the control characters (JSONEncoder's short forms where it has them).
    static let controls: [StaticString] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f",
        "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
        "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    ]

    /// An RFC 3339 time in quotes (`"2024-05-17T05:47:55.417Z"`); the date part of the previous second is reused.
    mutating func time(_ d: Date) {
        let t = d.timeIntervalSince1970
        let seconds = Int(t.rounded(.down))
        if seconds != lastSecond {
            var full = [UInt8](repeating: 0, count: TimeFormat.rfc3339Length)
            _ = full.withUnsafeMutableBytes { TimeFormat.rfc3339(d, into: $0) }
            secondText = Array(full[0..<19])
            lastSecond = seconds
        }
        out.byte(UInt8(ascii: "\""))
        out.append(secondText)
        let ms = max(0, min(999, Int((t - Double(seconds)) * 1000)))
        out.byte(UInt8(ascii: "."))
        out.byte(48 + UInt8(ms / 100))
        out.byte(48 + UInt8(ms / 10 % 10))
        out.byte(48 + UInt8(ms % 10))
        raw("Z\"")
    }

    /// Any `Encodable` value through `JSONEncoder` (for the rare parts of a hot answer, such as mount details).
    mutating func encoded<T: Encodable>(_ value: T) {
        if let data = try? APIResponse.encoder.encode(value) { out.append(data) } else { raw("null") }
    }
}

/// An answer's `data` written with `JSONOut`, possibly in several parts: `write` continues where the last call
/// stopped, and says when everything is written.
protocol JSONWritable: Sendable {
    /// Writes the next part into `out`, stopping once `out` holds `limit` bytes or more; true when done.
    mutating func write(into out: inout JSONOut, limit: Int) -> Bool
}

extension APIResponse {
    /// Answers above this size are streamed in parts of about this size as they are written.
    static let chunk = 128 * 1024

    /// `{"code":200,"message":"success","data":…}` with `data` written by hand. A small answer goes in one
    /// piece with its length; a big one (a listing of thousands of entries) is streamed as it is written, so
    /// it never sits in memory whole.
    static func ok(writing data: some JSONWritable) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        var data = data
        var out = JSONOut(capacity: chunk + 8192)
        out.raw("{\"code\":200,\"message\":\"success\",\"data\":")
        if data.write(into: &out, limit: chunk) {
            out.raw("}")
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: out.take()))
        }
        let first = out.take()
        let rest = data
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await writer.write(first)
            var data = rest
            var out = JSONOut(capacity: chunk + 8192)
            while true {
                let done = data.write(into: &out, limit: chunk)
                if done { out.raw("}") }
                try await writer.write(out.take())
                if done { break }
            }
            try await writer.finish(nil)
        })
    }
}
