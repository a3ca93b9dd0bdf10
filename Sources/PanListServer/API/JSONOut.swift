import Foundation
import Hummingbird
import NIOCore

/// JSON written straight into a byte array, for the answers that are hot (listings of many entries): no
/// `JSONEncoder`, no intermediate strings. Strings are escaped as `JSONEncoder` does with
/// `.withoutEscapingSlashes` (quotes, backslashes and control characters; UTF-8 passes through).
struct JSONOut {
    private(set) var bytes: [UInt8]
    /// The RFC 3339 text of the last second written by `time` (its first 19 bytes), for the next entry.
    private var lastSecond = Int.min
    private var secondText = [UInt8](repeating: 0, count: 19)

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    mutating func raw(_ s: StaticString) { s.withUTF8Buffer { bytes.append(contentsOf: $0) } }

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    /// Bytes that are already JSON.
    mutating func append(_ json: some Sequence<UInt8>) { bytes.append(contentsOf: json) }

    /// A quoted, escaped string.
    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var start = 0
            for i in 0..<utf8.count {
                let b = utf8[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                if i > start { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i])) }
                switch b {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0a: raw("\\n")
                case 0x0d: raw("\\r")
                case 0x09: raw("\\t")
                case 0x08: raw("\\b")
                case 0x0c: raw("\\f")
                default:
                    raw("\\u00")
                    bytes.append(Self.hexDigit(b >> 4))
                    bytes.append(Self.hexDigit(b & 15))
                }
                start = i + 1
            }
            if start < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 48 + v : 87 + v }

    /// A decimal integer.
    mutating func int<T: BinaryInteger>(_ value: T) {
        var v = Int64(value)
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
            if v == .min { raw("9223372036854775808"); return }
            v = -v
        }
        if v < 10 { bytes.append(48 + UInt8(v)); return }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes of room, written from the end
        withUnsafeMutableBytes(of: &digits) { buf in
            var i = buf.count
            while v > 0 {
                i -= 1
                buf[i] = 48 + UInt8(v % 10)
                v /= 10
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[i...]))
        }
    }

    mutating func bool(_ b: Bool) { b ? raw("true") : raw("false") }

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
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: secondText)
        let ms = max(0, min(999, Int((t - Double(seconds)) * 1000)))
        bytes.append(UInt8(ascii: "."))
        bytes.append(48 + UInt8(ms / 100))
        bytes.append(48 + UInt8(ms / 10 % 10))
        bytes.append(48 + UInt8(ms % 10))
        raw("Z\"")
    }

    /// Any `Encodable` value through `JSONEncoder` (for the rare parts of a hot answer, such as mount details).
    mutating func encoded<T: Encodable>(_ value: T) {
        if let data = try? APIResponse.encoder.encode(value) { bytes.append(contentsOf: data) } else { raw("null") }
    }

    /// What was written, as a buffer; `self` starts again empty (keeping its capacity).
    mutating func take() -> ByteBuffer {
        let buffer = ByteBuffer(bytes: bytes)
        bytes.removeAll(keepingCapacity: true)
        return buffer
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
