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

/// A remote archive read through a caller-supplied fetch (an HTTP Range request, say), in aligned
/// blocks, keeping the few most recently used blocks in memory.
///
/// Memory is bounded by `blockSize * maxCachedBlocks`. A read never fetches more than the one block
/// holding its offset (it may return fewer bytes than asked, up to the block's end), so listing a
/// zip costs only the blocks holding its central directory and the local headers libarchive visits.
public final class BlockCachedSource: ArchiveSource {
    /// Fetches `length` bytes at `offset`; must return exactly that many (the source never asks
    /// past its end). Called without any lock held, possibly from several threads at once.
    public typealias Fetch = @Sendable (_ offset: Int64, _ length: Int) throws -> [UInt8]

    public let size: Int64
    public let blockSize: Int
    public let maxCachedBlocks: Int
    private let fetch: Fetch

    private struct State {
        /// Least recently used first.
        var blocks: [(index: Int64, bytes: [UInt8])] = []
        var bytesFetched: Int64 = 0
        var fetches: Int = 0
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - size: the archive's size (from a HEAD request or the listing that found it).
    ///   - blockSize: bytes per fetch, default 256 KiB.
    ///   - maxCachedBlocks: blocks kept (LRU), default 8 (2 MiB with the default block size).
    public init(size: Int64, blockSize: Int = 256 * 1024, maxCachedBlocks: Int = 8, fetch: @escaping Fetch) {
        self.size = max(0, size)
        self.blockSize = max(4096, blockSize)
        self.maxCachedBlocks = max(1, maxCachedBlocks)
        self.fetch = fetch
    }

    /// Total bytes fetched so far (what reading the archive cost).
    public var bytesFetched: Int64 { state.withLock { $0.bytesFetched } }
    /// Number of fetch calls so far.
    public var fetches: Int { state.withLock { $0.fetches } }

    public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset >= 0, offset < size, buffer.count > 0 else { return 0 }
        let index = offset / Int64(blockSize)
        let block = try self.block(index)
        let start = Int(offset - index * Int64(blockSize))
        let n = min(buffer.count, block.count - start)
        guard n > 0 else { return 0 }
        block.withUnsafeBytes { bytes in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + n)]))
        }
        return n
    }

    private func block(_ index: Int64) throws -> [UInt8] {
        let cached: [UInt8]? = state.withLock { s in
            guard let i = s.blocks.firstIndex(where: { $0.index == index }) else { return nil }
            let entry = s.blocks.remove(at: i)
            s.blocks.append(entry)
            return entry.bytes
        }
        if let cached { return cached }

        let offset = index * Int64(blockSize)
        let length = Int(min(Int64(blockSize), size - offset))
        // Fetched outside the lock: a slow request must not hold up other readers' cache hits.
        // Two readers missing the same block both fetch it; that is rare and harmless.
        let bytes = try fetch(offset, length)
        guard bytes.count >= length else {
            throw ArchiveSourceError("short fetch: asked \(length) bytes at \(offset), got \(bytes.count)")
        }
        let block = bytes.count == length ? bytes : Array(bytes[0..<length])
        state.withLock { s in
            s.fetches += 1
            s.bytesFetched += Int64(bytes.count)
            s.blocks.removeAll { $0.index == index }
            s.blocks.append((index, block))
            if s.blocks.count > maxCachedBlocks { s.blocks.removeFirst(s.blocks.count - maxCachedBlocks) }
        }
        return block
    }
}
