import CZlib
import Foundation
import NIOCore

/// A ZIP file written as it is sent, for folders and selections downloaded as one file.
///
/// Entries are stored (no compression), so the whole length is known from the names and sizes alone, before
/// the first byte: a download gets an exact Content-Length. The CRC-32 of a file is only known once its bytes
/// went by, so each file's header sets bit 3 and a data descriptor after the bytes carries it (the central
/// directory at the end repeats it, which is what readers use). The local header still carries the real sizes
/// (a streaming reader finds the end of a stored entry by them). Names are UTF-8 with bit 11 set; times are the
/// DOS fields (local time) and the extended-timestamp field (UTC seconds). ZIP64 fields appear only where a
/// size or an offset does not fit in 32 bits, and the ZIP64 end records only when the archive needs them
/// (over 65,535 entries, or a directory beyond 4 GiB).
public enum ZipStream {
    /// One entry as planned: its name in the archive (a folder's ends with `/`), size and time.
    public struct Entry: Sendable {
        public var name: String
        public var size: Int64
        public var modified: Date
        public var isDir: Bool
        public init(name: String, size: Int64, modified: Date, isDir: Bool) {
            self.name = name
            self.size = isDir ? 0 : size
            self.modified = modified
            self.isDir = isDir
        }

        /// The local header and descriptor need ZIP64 fields (the size does not fit in 32 bits).
        var bigSize: Bool { size >= 0xFFFF_FFFF }
        var nameBytes: [UInt8] { Array(name.utf8) }
        var unixTime: UInt32? {
            let t = modified.timeIntervalSince1970
            return t >= 0 && t < 2_147_483_648 ? UInt32(t) : nil   // the field is read as signed
        }

        var localHeaderLength: Int { 30 + name.utf8.count + (bigSize ? 20 : 0) + (unixTime != nil ? 9 : 0) }
        var descriptorLength: Int { isDir ? 0 : (bigSize ? 24 : 16) }
        /// Local header, bytes and descriptor.
        var localLength: Int64 { Int64(localHeaderLength) + size + Int64(descriptorLength) }
        func centralLength(offset: Int64) -> Int {
            let zip64 = Self.zip64Extra(size: size, offset: offset, big: bigSize).count
            return 46 + name.utf8.count + (zip64 > 0 ? 4 + 8 * zip64 : 0) + (unixTime != nil ? 9 : 0)
        }

        /// The ZIP64 extra field of a central header: the values that did not fit, in the order the format sets.
        static func zip64Extra(size: Int64, offset: Int64, big: Bool) -> [UInt64] {
            var values: [UInt64] = []
            if big { values += [UInt64(size), UInt64(size)] }
            if offset >= 0xFFFF_FFFF { values.append(UInt64(offset)) }
            return values
        }
    }

    /// The exact length of the archive of these entries.
    public static func length(of entries: [Entry]) -> Int64 {
        var offset: Int64 = 0
        var central: Int64 = 0
        for e in entries {
            central += Int64(e.centralLength(offset: offset))
            offset += e.localLength
        }
        return offset + central + Int64(endLength(entries: entries.count, centralOffset: offset, centralSize: central))
    }

    static func needsZip64End(entries: Int, centralOffset: Int64, centralSize: Int64) -> Bool {
        entries >= 0xFFFF || centralOffset >= 0xFFFF_FFFF || centralSize >= 0xFFFF_FFFF
    }

    static func endLength(entries: Int, centralOffset: Int64, centralSize: Int64) -> Int {
        22 + (needsZip64End(entries: entries, centralOffset: centralOffset, centralSize: centralSize) ? 56 + 20 : 0)
    }

    /// CRC-32 (zlib's) of `bytes`, continuing from `crc`.
    public static func crc32(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        var crc = UInt(crc)
        var rest = bytes.count, at = base
        while rest > 0 {
            let n = min(rest, 1 << 30)
            crc = CZlib.crc32(crc, at.assumingMemoryBound(to: Bytef.self), uInt(n))
            at += n
            rest -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// Writes the archive: the caller feeds each planned entry's bytes in order, then `finish()`.
    /// Every output buffer goes to `emit`. Small pieces (headers, small files) are gathered up to 64 KiB
    /// before they are emitted.
    public struct Writer {
        let entries: [Entry]
        private var index = 0
        private var offset: Int64 = 0
        private var written: Int64 = 0
        private var crc: UInt32 = 0
        private var offsets: [Int64] = []
        private var crcs: [UInt32] = []
        private var pending: ByteBuffer
        public private(set) var bytesOut: Int64 = 0
        static let gather = 64 << 10

        public init(entries: [Entry]) {
            self.entries = entries
            offsets.reserveCapacity(entries.count)
            crcs.reserveCapacity(entries.count)
            pending = ByteBufferAllocator().buffer(capacity: Self.gather + 1024)
        }

        /// Begins the next entry; returns its plan.
        public mutating func begin(emit: (ByteBuffer) async throws -> Void) async throws -> Entry {
            guard index < entries.count else { throw FSError.internalError("the ZIP writer was given more entries than planned") }
            let e = entries[index]
            offsets.append(offset)
            written = 0
            crc = 0
            Self.localHeader(e, into: &pending)
            try await flushIfFull(emit)
            return e
        }

        /// A piece of the current file's bytes. More bytes than planned is an error (the Content-Length was told).
        public mutating func write(_ buffer: ByteBuffer, emit: (ByteBuffer) async throws -> Void) async throws {
            let e = entries[index]
            let n = buffer.readableBytes
            guard written + Int64(n) <= e.size else {
                throw FSError.conflict("\(e.name) grew while it was being sent (more than its listed \(e.size) bytes); the ZIP was cut off")
            }
            crc = buffer.withUnsafeReadableBytes { ZipStream.crc32(crc, $0) }
            written += Int64(n)
            if pending.readableBytes + n <= Self.gather {
                var b = buffer
                pending.writeBuffer(&b)
                try await flushIfFull(emit)
            } else {
                try await flush(emit)
                bytesOut += Int64(n)
                try await emit(buffer)
            }
        }

        /// Ends the current entry (its descriptor). Fewer bytes than planned is an error.
        public mutating func end(emit: (ByteBuffer) async throws -> Void) async throws {
            let e = entries[index]
            guard written == e.size else {
                throw FSError.conflict("\(e.name) shrank while it was being sent (\(written) of its listed \(e.size) bytes); the ZIP was cut off")
            }
            if !e.isDir {
                pending.writeInteger(UInt32(0x0807_4b50), endianness: .little)
                pending.writeInteger(crc, endianness: .little)
                if e.bigSize {
                    pending.writeInteger(UInt64(e.size), endianness: .little)
                    pending.writeInteger(UInt64(e.size), endianness: .little)
                } else {
                    pending.writeInteger(UInt32(e.size), endianness: .little)
                    pending.writeInteger(UInt32(e.size), endianness: .little)
                }
            }
            crcs.append(crc)
            offset += e.localLength
            index += 1
            try await flushIfFull(emit)
        }

        /// The central directory and the end records.
        public mutating func finish(emit: (ByteBuffer) async throws -> Void) async throws {
            guard index == entries.count else { throw FSError.internalError("the ZIP writer finished before all entries were written") }
            let centralOffset = offset
            var centralSize: Int64 = 0
            for (i, e) in entries.enumerated() {
                let before = pending.writerIndex
                Self.centralHeader(e, offset: offsets[i], crc: crcs[i], into: &pending)
                centralSize += Int64(pending.writerIndex - before)
                try await flushIfFull(emit)
            }
            let count = entries.count
            if ZipStream.needsZip64End(entries: count, centralOffset: centralOffset, centralSize: centralSize) {
                let zip64End = centralOffset + centralSize
                pending.writeInteger(UInt32(0x0606_4b50), endianness: .little)
                pending.writeInteger(UInt64(44), endianness: .little)
                pending.writeInteger(UInt16(3 << 8 | 45), endianness: .little)
                pending.writeInteger(UInt16(45), endianness: .little)
                pending.writeInteger(UInt32(0), endianness: .little)
                pending.writeInteger(UInt32(0), endianness: .little)
                pending.writeInteger(UInt64(count), endianness: .little)
                pending.writeInteger(UInt64(count), endianness: .little)
                pending.writeInteger(UInt64(centralSize), endianness: .little)
                pending.writeInteger(UInt64(centralOffset), endianness: .little)
                // Locator
                pending.writeInteger(UInt32(0x0706_4b50), endianness: .little)
                pending.writeInteger(UInt32(0), endianness: .little)
                pending.writeInteger(UInt64(zip64End), endianness: .little)
                pending.writeInteger(UInt32(1), endianness: .little)
            }
            pending.writeInteger(UInt32(0x0605_4b50), endianness: .little)
            pending.writeInteger(UInt16(0), endianness: .little)
            pending.writeInteger(UInt16(0), endianness: .little)
            pending.writeInteger(UInt16(min(count, 0xFFFF)), endianness: .little)
            pending.writeInteger(UInt16(min(count, 0xFFFF)), endianness: .little)
            pending.writeInteger(UInt32(min(centralSize, 0xFFFF_FFFF)), endianness: .little)
            pending.writeInteger(UInt32(min(centralOffset, 0xFFFF_FFFF)), endianness: .little)
            pending.writeInteger(UInt16(0), endianness: .little)
            try await flush(emit)
        }

        private mutating func flushIfFull(_ emit: (ByteBuffer) async throws -> Void) async throws {
            if pending.readableBytes >= Self.gather { try await flush(emit) }
        }

        private mutating func flush(_ emit: (ByteBuffer) async throws -> Void) async throws {
            guard pending.readableBytes > 0 else { return }
            let out = pending
            bytesOut += Int64(out.readableBytes)
            pending = ByteBufferAllocator().buffer(capacity: Self.gather + 1024)
            try await emit(out)
        }

        static func dosTime(_ date: Date) -> (time: UInt16, date: UInt16) {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = .current
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
            let year = c.year ?? 1980
            guard year >= 1980 else { return (0, 0x21) }    // 1980-01-01 00:00, the earliest a DOS time holds
            guard year <= 2107 else { return (0xBF7D, 0xFF9F) }
            let time = UInt16((c.hour ?? 0) << 11 | (c.minute ?? 0) << 5 | (c.second ?? 0) / 2)
            let day = UInt16((year - 1980) << 9 | (c.month ?? 1) << 5 | (c.day ?? 1))
            return (time, day)
        }

        static func flags(_ e: Entry) -> UInt16 { 0x0800 | (e.isDir ? 0 : 0x0008) }

        static func localHeader(_ e: Entry, into b: inout ByteBuffer) {
            let name = e.nameBytes
            let (time, day) = dosTime(e.modified)
            let extraLength = (e.bigSize ? 20 : 0) + (e.unixTime != nil ? 9 : 0)
            b.writeInteger(UInt32(0x0403_4b50), endianness: .little)
            b.writeInteger(UInt16(e.bigSize ? 45 : 20), endianness: .little)
            b.writeInteger(flags(e), endianness: .little)
            b.writeInteger(UInt16(0), endianness: .little)      // stored
            b.writeInteger(time, endianness: .little)
            b.writeInteger(day, endianness: .little)
            b.writeInteger(UInt32(0), endianness: .little)      // CRC-32: in the descriptor
            let size32 = e.bigSize ? UInt32(0xFFFF_FFFF) : UInt32(e.size)
            b.writeInteger(size32, endianness: .little)
            b.writeInteger(size32, endianness: .little)
            b.writeInteger(UInt16(name.count), endianness: .little)
            b.writeInteger(UInt16(extraLength), endianness: .little)
            b.writeBytes(name)
            if e.bigSize {
                b.writeInteger(UInt16(0x0001), endianness: .little)
                b.writeInteger(UInt16(16), endianness: .little)
                b.writeInteger(UInt64(e.size), endianness: .little)
                b.writeInteger(UInt64(e.size), endianness: .little)
            }
            if let t = e.unixTime { extendedTime(t, into: &b) }
        }

        static func extendedTime(_ t: UInt32, into b: inout ByteBuffer) {
            b.writeInteger(UInt16(0x5455), endianness: .little)
            b.writeInteger(UInt16(5), endianness: .little)
            b.writeInteger(UInt8(1), endianness: .little)       // modification time only
            b.writeInteger(t, endianness: .little)
        }

        static func centralHeader(_ e: Entry, offset: Int64, crc: UInt32, into b: inout ByteBuffer) {
            let name = e.nameBytes
            let (time, day) = dosTime(e.modified)
            let zip64 = Entry.zip64Extra(size: e.size, offset: offset, big: e.bigSize)
            let extraLength = (zip64.isEmpty ? 0 : 4 + 8 * zip64.count) + (e.unixTime != nil ? 9 : 0)
            b.writeInteger(UInt32(0x0201_4b50), endianness: .little)
            b.writeInteger(UInt16(3 << 8 | 45), endianness: .little)                // made by: Unix, 4.5
            b.writeInteger(UInt16(zip64.isEmpty ? 20 : 45), endianness: .little)
            b.writeInteger(flags(e), endianness: .little)
            b.writeInteger(UInt16(0), endianness: .little)
            b.writeInteger(time, endianness: .little)
            b.writeInteger(day, endianness: .little)
            b.writeInteger(crc, endianness: .little)
            let size32 = e.bigSize ? UInt32(0xFFFF_FFFF) : UInt32(e.size)
            b.writeInteger(size32, endianness: .little)
            b.writeInteger(size32, endianness: .little)
            b.writeInteger(UInt16(name.count), endianness: .little)
            b.writeInteger(UInt16(extraLength), endianness: .little)
            b.writeInteger(UInt16(0), endianness: .little)      // comment
            b.writeInteger(UInt16(0), endianness: .little)      // disk
            b.writeInteger(UInt16(0), endianness: .little)      // internal attributes
            // External attributes: the Unix mode above, the MS-DOS directory bit below.
            let mode: UInt32 = e.isDir ? 0o040755 : 0o100644
            b.writeInteger(mode << 16 | (e.isDir ? 0x10 : 0), endianness: .little)
            b.writeInteger(offset >= 0xFFFF_FFFF ? UInt32(0xFFFF_FFFF) : UInt32(offset), endianness: .little)
            b.writeBytes(name)
            if !zip64.isEmpty {
                b.writeInteger(UInt16(0x0001), endianness: .little)
                b.writeInteger(UInt16(8 * zip64.count), endianness: .little)
                for v in zip64 { b.writeInteger(v, endianness: .little) }
            }
            if let t = e.unixTime { extendedTime(t, into: &b) }
        }
    }
}
