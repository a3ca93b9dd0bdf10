import NIOCore
import NIOConcurrencyHelpers

/// A type-erased, single-pass stream of bytes: an upload body, a file being read, a copy in flight.
/// Iterating pulls one buffer at a time, so a slow consumer slows the producer (backpressure).
public struct ByteStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    private let makeNext: @Sendable () -> Next

    final class Next: @unchecked Sendable {
        // Only ever used by the one task iterating the stream.
        let next: () async throws -> ByteBuffer?
        init(_ next: @escaping () async throws -> ByteBuffer?) { self.next = next }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let box: Next
        public mutating func next() async throws -> ByteBuffer? { try await box.next() }
    }

    public init<S: AsyncSequence & Sendable>(_ sequence: S) where S.Element == ByteBuffer {
        self.makeNext = {
            let holder = IteratorHolder(sequence.makeAsyncIterator())
            return Next { try await holder.next() }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(box: makeNext()) }

    /// An empty stream (a zero-byte upload).
    public static var empty: ByteStream { ByteStream(EmptyBytes()) }

    /// A stream of the given buffers, for tests and small in-memory bodies.
    public static func buffers(_ buffers: [ByteBuffer]) -> ByteStream { ByteStream(BufferList(buffers: buffers)) }
}

private final class IteratorHolder<I: AsyncIteratorProtocol>: @unchecked Sendable where I.Element == ByteBuffer {
    var iterator: I
    init(_ iterator: I) { self.iterator = iterator }
    func next() async throws -> ByteBuffer? { try await iterator.next() }
}

private struct EmptyBytes: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    struct AsyncIterator: AsyncIteratorProtocol { mutating func next() async throws -> ByteBuffer? { nil } }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator() }
}

private struct BufferList: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let buffers: [ByteBuffer]
    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ArraySlice<ByteBuffer>
        mutating func next() async throws -> ByteBuffer? { rest.popFirst() }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: buffers[...]) }
}

/// Passes a stream on, telling `counted` the size of each buffer as it goes by (progress of a copy); an
/// error thrown by `counted` ends the stream (a cancelled task, whichever task reads the stream).
public struct CountingBytes: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let base: ByteStream
    let counted: @Sendable (Int) throws -> Void
    public init(base: ByteStream, counted: @escaping @Sendable (Int) throws -> Void) { self.base = base; self.counted = counted }
    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: ByteStream.AsyncIterator
        let counted: @Sendable (Int) throws -> Void
        public mutating func next() async throws -> ByteBuffer? {
            try Task.checkCancellation()
            try counted(0)
            guard let b = try await inner.next() else { return nil }
            try counted(b.readableBytes)
            return b
        }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inner: base.makeAsyncIterator(), counted: counted) }
}

/// A place for a driver's note of how far an upload got (a task keeps it in the store, beside the file it
/// copies). The note is the driver's own; "" means none. Saving is best effort: a lost note only means the
/// next attempt starts over.
public struct UploadCheckpoint: Sendable {
    public var saved: String
    public var save: @Sendable (String) async -> Void
    public init(saved: String, save: @escaping @Sendable (String) async -> Void) {
        self.saved = saved
        self.save = save
    }
}

/// A file to be written by a driver's `put`.
public struct UploadStream: Sendable {
    public var name: String
    /// The declared size (Content-Length); nil when the client streams without one.
    public var size: Int64?
    public var modified: Date?
    public var mimeType: String?
    /// Hashes the client declared (`X-File-Md5`, …), lower-case hex. The writer verifies the ones it computes.
    public var md5: String?
    public var sha1: String?
    public var sha256: String?
    public var body: ByteStream
    /// Where a driver that uploads in parts keeps how far it got, so a task's next attempt at the same file
    /// continues instead of starting over (nil: no such place; the upload is all or nothing).
    public var checkpoint: UploadCheckpoint?
    /// A complete file that holds exactly these bytes, already checked against the declared size and
    /// hashes (a resumable upload's staging or spool file). A driver that staged it (`StagingCapable`) links
    /// it into place; a driver that needs the bytes twice (123 Open: hashing, then slices) may read it
    /// instead of spooling `body` again. It stays the caller's to remove when it is not linked.
    public var staged: String?
    /// A file on this machine with the same bytes that the driver may read but must never move, link or
    /// remove (the Local source of a copy): a driver that can skip the upload when it knows a hash first
    /// (123 Open's SHA-1 reuse) may hash it before reading `body`.
    public var localSource: String?

    public init(name: String, size: Int64?, modified: Date? = nil, mimeType: String? = nil,
                md5: String? = nil, sha1: String? = nil, sha256: String? = nil, body: ByteStream) {
        self.name = name
        self.size = size
        self.modified = modified
        self.mimeType = mimeType
        self.md5 = md5?.lowercased()
        self.sha1 = sha1?.lowercased()
        self.sha256 = sha256?.lowercased()
        self.body = body
    }
}

import Foundation
