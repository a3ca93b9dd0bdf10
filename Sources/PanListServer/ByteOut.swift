import Foundation
import NIOCore

/// Bytes of an answer written by hand (JSON listings, WebDAV multistatus): a growing byte array with the
/// few operations both need. Appending to an array is cheaper than writing a `ByteBuffer` piece by piece (no
/// exclusivity checks on a class per write); `take()` hands the bytes over as one buffer.
struct ByteOut {
    private(set) var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    mutating func raw(_ s: StaticString) { s.withUTF8Buffer { bytes.append(contentsOf: $0) } }

    mutating func raw(_ s: String) {
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func append(_ other: some Sequence<UInt8>) { bytes.append(contentsOf: other) }

    /// `s` with the bytes `replacement` names replaced (runs of other bytes are copied as they are).
    @inline(__always)
    mutating func escaped(_ s: String, _ replacement: (UInt8) -> StaticString?) {
        var s = s
        s.withUTF8 { utf8 in
            var start = 0
            for i in 0..<utf8.count {
                guard let rep = replacement(utf8[i]) else { continue }
                if i > start { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i])) }
                rep.withUTF8Buffer { bytes.append(contentsOf: $0) }
                start = i + 1
            }
            if start < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...])) }
        }
    }

    /// A decimal integer.
    mutating func int<T: BinaryInteger>(_ value: T) {
        var v = Int64(value)
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
            if v == .min { raw("9223372036854775808"); return }
            v = -v
        }
        if v < 10 { bytes.append(48 + UInt8(v)); return }
        fixed(20) { buf in
            var digits = 0, rest = v
            while rest > 0 { digits += 1; rest /= 10 }
            for i in stride(from: digits - 1, through: 0, by: -1) { buf[i] = 48 + UInt8(v % 10); v /= 10 }
            return digits
        }
    }

    /// Lower-case hex digits of `value` (as `String(value, radix: 16)`).
    mutating func hex(_ value: UInt64) {
        let digits = max(1, (64 - value.leadingZeroBitCount + 3) / 4)
        fixed(digits) { out in
            var v = value
            for i in stride(from: digits - 1, through: 0, by: -1) {
                let d = UInt8(v & 15)
                out[i] = d < 10 ? 48 + d : 87 + d
                v >>= 4
            }
            return digits
        }
    }

    /// Up to `max` bytes written by `body` into scratch space (it returns how many), then appended.
    mutating func fixed(_ max: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) {
        withUnsafeTemporaryAllocation(byteCount: max, alignment: 1) { scratch in
            let n = body(scratch)
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
        }
    }

    /// What was written, as a buffer; `self` starts again empty (keeping its capacity).
    mutating func take() -> ByteBuffer {
        let buffer = ByteBuffer(bytes: bytes)
        bytes.removeAll(keepingCapacity: true)
        return buffer
    }
}
