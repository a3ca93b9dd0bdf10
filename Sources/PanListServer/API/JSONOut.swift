import Foundation
import Hummingbird
import NIOCore

/// JSON written straight into a byte buffer, for the answers that are hot (listings of many entries): no
/// `JSONEncoder`, no intermediate strings. Strings are escaped as `JSONEncoder` does with
/// `.withoutEscapingSlashes` (quotes, backslashes and control characters; UTF-8 passes through).
struct JSONOut {
    var buffer: ByteBuffer

    init(capacity: Int) { buffer = ByteBufferAllocator().buffer(capacity: capacity) }

    mutating func raw(_ s: StaticString) { buffer.writeStaticString(s) }

    /// A quoted, escaped string.
    mutating func string(_ s: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var start = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                if i > start { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[start..<i])) }
                switch b {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x0a: buffer.writeStaticString("\\n")
                case 0x0d: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                case 0x08: buffer.writeStaticString("\\b")
                case 0x0c: buffer.writeStaticString("\\f")
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(hex[Int(b >> 4)])
                    buffer.writeInteger(hex[Int(b & 15)])
                }
                start = i + 1
            }
            if start < bytes.count { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[start...])) }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// `"key":` (keys are fixed ASCII names that need no escaping).
    mutating func key(_ k: StaticString) {
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(k)
        buffer.writeStaticString("\":")
    }

    mutating func int<T: BinaryInteger>(_ v: T) {
        if v >= 0 && v < 10 { buffer.writeInteger(UInt8(48 + Int(v))); return }
        buffer.writeString(String(v))
    }

    mutating func bool(_ b: Bool) { b ? raw("true") : raw("false") }

    /// An RFC 3339 time in quotes (`"2024-05-17T05:47:55.417Z"`).
    mutating func time(_ d: Date) {
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: TimeFormat.rfc3339Length) { TimeFormat.rfc3339(d, into: $0) }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Any `Encodable` value through `JSONEncoder` (for the rare parts of a hot answer, such as mount details).
    mutating func encoded<T: Encodable>(_ value: T) {
        if let data = try? APIResponse.encoder.encode(value) { buffer.writeBytes(data) } else { raw("null") }
    }
}

/// An answer written with `JSONOut` (the `data` of an envelope).
protocol JSONWritable {
    func write(_ out: inout JSONOut)
    /// A guess of the size of the written answer, to size the buffer once.
    var sizeHint: Int { get }
}

extension APIResponse {
    /// `{"code":200,"message":"success","data":…}` with `data` written by hand.
    static func ok(writing data: some JSONWritable) -> Response {
        var out = JSONOut(capacity: data.sizeHint + 64)
        out.raw("{\"code\":200,\"message\":\"success\",\"data\":")
        data.write(&out)
        out.raw("}")
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: out.buffer))
    }
}
