#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import Synchronization

/// Random access to an archive's bytes.
///
/// Called synchronously from libarchive's callbacks, on whatever thread runs the reader (the server
/// runs readers off its event loops, on a thread pool). One reader calls it from one thread at a
/// time, but several readers may share a source, so implementations must be thread-safe.
public protocol ArchiveSource: Sendable {
    /// The archive's size in bytes.
    var size: Int64 { get }
    /// Reads up to `buffer.count` bytes at `offset`; returns the number read (0 only at the end).
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// An error of a source, carried through libarchive and rethrown as `ArchiveError.readFailed`.
public struct ArchiveSourceError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A local file read with `pread`, so one open file can serve several readers at once.
public final class FileArchiveSource: ArchiveSource {
    public let size: Int64
    private let fd: Int32

    /// Opens `path` read-only. Throws `ArchiveSourceError` when it cannot be opened or is not a
    /// regular file.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ArchiveSourceError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw ArchiveSourceError("\(path) is not a regular file")
        }
        self.fd = fd
        self.size = Int64(st.st_size)
    }

    deinit { close(fd) }

    public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset >= 0, offset < size, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = pread(fd, base, buffer.count, off_t(offset))
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw ArchiveSourceError("read failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// A remote archive read through a caller-supplied fetch (an HTTP Range request, say), keeping the few
/// most recently fetched pieces in memory.
///
/// A read that misses fetches `blockSize` bytes (aligned) when it jumps somewhere new: a zip's central
/// directory and its local headers cost a small piece each. Reads that go on where the previous fetch
/// ended (a member extracted from start to end) fetch twice as much each time, up to `maxRunSize`, so a
/// long read takes few requests. Memory is bounded by `maxRunSize * maxCachedBlocks`.
public final class BlockCachedSource: ArchiveSource {
    /// Fetches `length` bytes at `offset`; must return exactly that many (the source never asks
    /// past its end). Called without any lock held, possibly from several threads at once.
    public typealias Fetch = @Sendable (_ offset: Int64, _ length: Int) throws -> [UInt8]

    public let size: Int64
    public let blockSize: Int
    public let maxRunSize: Int
    public let maxCachedBlocks: Int
    private let fetch: Fetch

    private struct State {
        /// Pieces fetched, least recently used first.
        var pieces: [(offset: Int64, bytes: [UInt8])] = []
        var bytesFetched: Int64 = 0
        var fetches: Int = 0
        /// Where the last fetch ended and how long it was (sequential reads grow).
        var lastEnd: Int64 = -1
        var lastLength = 0
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - size: the archive's size (from a HEAD request or the listing that found it).
    ///   - blockSize: bytes of a fetch at a new place, default 16 KiB.
    ///   - maxRunSize: the largest fetch of a sequential read, default 1 MiB.
    ///   - maxCachedBlocks: pieces kept (LRU), default 8.
    public init(size: Int64, blockSize: Int = 16 * 1024, maxRunSize: Int = 1 << 20, maxCachedBlocks: Int = 8, fetch: @escaping Fetch) {
        self.size = max(0, size)
        self.blockSize = max(4096, blockSize)
        self.maxRunSize = max(self.blockSize, maxRunSize)
        self.maxCachedBlocks = max(1, maxCachedBlocks)
        self.fetch = fetch
    }

    /// Total bytes fetched so far (what reading the archive cost).
    public var bytesFetched: Int64 { state.withLock { $0.bytesFetched } }
    /// Number of fetch calls so far.
    public var fetches: Int { state.withLock { $0.fetches } }

    public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset >= 0, offset < size, buffer.count > 0 else { return 0 }
        let (start, piece) = try self.piece(holding: offset)
        let at = Int(offset - start)
        let n = min(buffer.count, piece.count - at)
        guard n > 0 else { return 0 }
        piece.withUnsafeBytes { bytes in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)]))
        }
        return n
    }

    private func piece(holding offset: Int64) throws -> (Int64, [UInt8]) {
        let (cached, want, from): ((Int64, [UInt8])?, Int, Int64) = state.withLock { s in
            if let i = s.pieces.firstIndex(where: { offset >= $0.offset && offset < $0.offset + Int64($0.bytes.count) }) {
                let entry = s.pieces.remove(at: i)
                s.pieces.append(entry)
                return ((entry.offset, entry.bytes), 0, 0)
            }
            // Going on from the last fetch: twice its length (up to the maximum); else a block at a new place.
            if offset == s.lastEnd {
                return (nil, min(maxRunSize, max(blockSize, s.lastLength * 2)), offset)
            }
            let aligned = offset / Int64(blockSize) * Int64(blockSize)
            return (nil, blockSize, aligned)
        }
        if let cached { return cached }
        let length = Int(min(Int64(want), size - from))
        // Fetched outside the lock: a slow request must not hold up other readers' cache hits.
        // Two readers missing the same piece both fetch it; that is rare and harmless.
        let bytes = try fetch(from, length)
        guard bytes.count >= length else {
            throw ArchiveSourceError("short fetch: asked \(length) bytes at \(from), got \(bytes.count)")
        }
        let piece = bytes.count == length ? bytes : Array(bytes[0..<length])
        state.withLock { s in
            s.fetches += 1
            s.bytesFetched += Int64(piece.count)
            s.lastEnd = from + Int64(piece.count)
            s.lastLength = piece.count
            s.pieces.append((from, piece))
            if s.pieces.count > maxCachedBlocks { s.pieces.removeFirst(s.pieces.count - maxCachedBlocks) }
        }
        return (from, piece)
    }
}
