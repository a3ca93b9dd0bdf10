import Crypto
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import _NIOFileSystem

/// Writes a stream of buffers to a file at increasing offsets while the caller goes on with the next
/// buffers: bytes are gathered into batches, and one batch at a time is written in the background, so
/// hashing (or receiving) the next batch overlaps the disk write of the previous one.
/// At most two batches are held in memory. `sideWork` runs on each batch after it is written, in order,
/// on the same background task (used to hash fixed-size pieces on the other core).
public final class OverlappedWriter {
    private let handle: WriteFileHandle
    private let batchSize: Int
    private let sideWork: (@Sendable (ByteBuffer) -> Void)?
    private var batch: ByteBuffer
    private var pending: Task<Void, any Error>?
    public private(set) var offset: Int64

    private init(handle: WriteFileHandle, offset: Int64, batchSize: Int, sideWork: (@Sendable (ByteBuffer) -> Void)?) {
        self.handle = handle
        self.offset = offset
        self.batchSize = batchSize
        self.sideWork = sideWork
        self.batch = ByteBufferAllocator().buffer(capacity: batchSize)
    }

    /// Runs `body` with a writer on `handle` starting at `offset`; waits for the last write in every case,
    /// so no write is still running when this returns (or throws).
    public static func with<R>(handle: WriteFileHandle, offset: Int64 = 0, batchSize: Int = 4 << 20,
                               sideWork: (@Sendable (ByteBuffer) -> Void)? = nil,
                               _ body: (OverlappedWriter) async throws -> R) async throws -> R {
        let writer = OverlappedWriter(handle: handle, offset: offset, batchSize: batchSize, sideWork: sideWork)
        do {
            let result = try await body(writer)
            try await writer.flush()
            return result
        } catch {
            _ = try? await writer.pending?.value
            throw error
        }
    }

    public func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        if batch.readableBytes == 0 && buffer.readableBytes >= batchSize {
            try await submit(buffer)
            return
        }
        batch.writeBuffer(&buffer)
        if batch.readableBytes >= batchSize {
            let full = batch
            batch = ByteBufferAllocator().buffer(capacity: batchSize)
            try await submit(full)
        }
    }

    /// Writes what is gathered and waits until every byte is written.
    public func flush() async throws {
        if batch.readableBytes > 0 {
            let rest = batch
            batch = ByteBufferAllocator().buffer(capacity: batchSize)
            try await submit(rest)
        }
        let last = pending
        pending = nil
        try await last?.value
    }

    private func submit(_ buffer: ByteBuffer) async throws {
        let previous = pending
        pending = nil
        try await previous?.value
        let at = offset
        offset += Int64(buffer.readableBytes)
        let handle = handle, sideWork = sideWork
        pending = Task {
            try await handle.write(contentsOf: buffer.readableBytesView, toAbsoluteOffset: at)
            sideWork?(buffer)
        }
    }
}

/// MD5s of consecutive fixed-size pieces of a stream (the last one may be shorter), fed in order.
/// Used to have slice digests ready when a file is spooled; safe to feed from a background task.
public final class PieceHasher: Sendable {
    public let pieceSize: Int64
    private struct State {
        var md5 = Insecure.MD5()
        var filled: Int64 = 0
        var digests: [String] = []
    }
    private let state = NIOLockedValueBox(State())

    public init(pieceSize: Int64) {
        precondition(pieceSize > 0)
        self.pieceSize = pieceSize
    }

    public func update(_ buffer: ByteBuffer) {
        let pieceSize = pieceSize
        state.withLockedValue { s in
            buffer.withUnsafeReadableBytes { raw in
                var at = 0
                while at < raw.count {
                    let take = Int(min(Int64(raw.count - at), pieceSize - s.filled))
                    s.md5.update(bufferPointer: UnsafeRawBufferPointer(rebasing: raw[at..<(at + take)]))
                    s.filled += Int64(take)
                    at += take
                    if s.filled == pieceSize {
                        s.digests.append(s.md5.finalize().hexString)
                        s.md5 = Insecure.MD5()
                        s.filled = 0
                    }
                }
            }
        }
    }

    /// The digests of all pieces, the short last one included (an empty stream has one empty piece).
    public func finish() -> [String] {
        state.withLockedValue { s in
            if s.filled > 0 || s.digests.isEmpty {
                s.digests.append(s.md5.finalize().hexString)
                s.md5 = Insecure.MD5()
                s.filled = 0
            }
            return s.digests
        }
    }
}

/// The bytes of a file range as a stream of chunks, with reads running ahead of the caller, so the next
/// read happens while the caller sends the current chunk. How far ahead depends on how many streams are
/// running: up to `PrefetchingChunks.roomy` streams get `depth` reads of `chunkLength`; beyond that each
/// stream gets one 64 KiB read ahead, so a hundred downloads to slow clients hold a few MiB, not hundreds.
/// (NIOFileSystem's `readChunks` buffers up to eight chunks per stream, whatever the number of streams.)
public struct PrefetchingChunks: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let handle: ReadFileHandle
    let range: ClosedRange<Int64>
    let chunk: Int64
    let depth: Int

    /// Streams that may use the full chunk size and depth.
    public static let roomy = 8
    static let crowdedChunk: Int64 = 64 * 1024
    static let active = NIOLockedValueBox(0)

    public init(handle: ReadFileHandle, range: ClosedRange<Int64>, chunkLength: Int64, depth: Int = 2) {
        self.handle = handle
        self.range = range
        self.chunk = Swift.max(1, chunkLength)
        self.depth = Swift.max(1, depth)
    }

    /// Counts a running stream for as long as its iterator lives.
    final class Running: Sendable {
        init() { PrefetchingChunks.active.withLockedValue { $0 += 1 } }
        deinit { PrefetchingChunks.active.withLockedValue { $0 -= 1 } }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let handle: ReadFileHandle
        let end: Int64
        let chunk: Int64
        let depth: Int
        /// Where the next read to be started begins.
        var scheduled: Int64
        var ahead: [Task<ByteBuffer, any Error>] = []
        var running: Running?

        mutating func fill() {
            let crowded = PrefetchingChunks.active.withLockedValue { $0 } > PrefetchingChunks.roomy
            let depth = crowded ? 1 : self.depth
            let chunk = crowded ? Swift.min(self.chunk, PrefetchingChunks.crowdedChunk) : self.chunk
            while ahead.count < depth && scheduled <= end {
                let offset = scheduled, length = Swift.min(chunk, end - scheduled + 1)
                let handle = handle
                ahead.append(Task { try await handle.readChunk(fromAbsoluteOffset: offset, length: .bytes(length)) })
                scheduled += length
            }
        }

        mutating func finish() {
            for t in ahead { t.cancel() }
            ahead = []
            scheduled = end + 1
            running = nil
        }

        public mutating func next() async throws -> ByteBuffer? {
            if running == nil && scheduled <= end && ahead.isEmpty { running = Running() }
            fill()
            guard !ahead.isEmpty else { running = nil; return nil }
            let current = ahead.removeFirst()
            let buffer: ByteBuffer
            do {
                buffer = try await withTaskCancellationHandler { try await current.value } onCancel: { current.cancel() }
            } catch {
                finish()
                throw error
            }
            if buffer.readableBytes == 0 {  // the file got shorter than its size said
                finish()
                return nil
            }
            fill()
            return buffer
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: handle, end: range.upperBound, chunk: chunk, depth: depth, scheduled: range.lowerBound)
    }
}

/// Blocking reads of a file range (call on a thread pool): `body` sees the bytes 1 MiB at a time, through
/// one reused buffer. Throws `.notFound` when the file is missing and `.internalError` when it is shorter.
public enum FileRegion {
    public static func read(_ path: String, offset: Int64, length: Int64, chunk: Int = 1 << 20,
                            _ body: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .notFound("\(path) is gone") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: chunk)
        var done: Int64 = 0
        while done < length {
            let want = Int(Swift.min(Int64(chunk), length - done))
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset + done)) }
            guard got > 0 else { throw .internalError("\(path) is shorter than expected") }
            buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
            done += Int64(got)
        }
    }
}
