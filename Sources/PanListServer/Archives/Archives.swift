import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PanListArchive
import PanListCore

/// Archives on any storage, read through libarchive (`PanListArchive`): a local file directly, a cloud file
/// with HTTP Range requests on its link (so listing a zip reads its central directory, not the whole file).
/// libarchive blocks, so every call runs on a thread pool of its own, never on an event loop.
struct Archives: Sendable {
    let state: ServerState

    /// The threads libarchive runs on (a remote archive's thread waits for its Range requests).
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()
    static let limits = ArchiveLimits()
    /// Listings by archive (path, size, time, password): browsing an archive's folders lists it once.
    static let listings = ListingCache()

    /// Whether `name` ends like an archive PanList opens.
    static func isArchive(_ name: String) -> Bool {
        let lower = name.lowercased()
        return ArchiveReader.extensions.contains { lower.hasSuffix("." + $0) }
    }

    /// The archive at `path` (a file) as a random-access source, and its object.
    func source(_ path: String, clientIP: String) async throws -> (any ArchiveSource, Obj) {
        let fs = state.fs
        let (link, obj, _) = try await fs.cachedLink(path, args: LinkArgs(clientIP: clientIP, headers: [:]))
        guard !obj.isDir else { throw FSError.badRequest("\(obj.name) is a folder, not an archive") }
        switch link {
        case .localFile(let disk):
            do { return (try FileArchiveSource(path: disk), obj) } catch {
                state.logger.warning("archive \(LogText.quoted(path)) could not be opened: \(error)")
                throw FSError.internalError("\(obj.name) could not be opened on the server")
            }
        case .url(let url, let headers, _):
            let remote = RemoteRanges(url: url, headers: headers) {
                let (fresh, _, _) = try await fs.cachedLink(path, args: LinkArgs(clientIP: clientIP, headers: [:]), fresh: true)
                guard case .url(let u, let h, _) = fresh else { throw FSError.upstream(code: 1, message: "the storage gave no URL for \(obj.name)") }
                return (u, h)
            }
            return (BlockCachedSource(size: obj.size) { offset, length in
                try remote.fetch(offset: offset, length: length)
            }, obj)
        }
    }

    /// The members of the archive at `path` (from the listing cache when the file did not change).
    func members(_ path: String, password: String?, clientIP: String, refresh: Bool = false) async throws -> (members: [ArchiveMember], archive: Obj) {
        let (source, obj) = try await source(path, clientIP: clientIP)
        let key = ListingCache.Key(path: path, size: obj.size, modified: obj.modified, password: password ?? "")
        if !refresh, let hit = Self.listings.get(key) { return (hit, obj) }
        let members = try await Self.run { isCancelled in
            try ArchiveReader.list(source, password: password, limits: Self.limits, isCancelled: isCancelled)
        }
        Self.listings.put(key, members)
        return (members, obj)
    }

    /// Runs blocking libarchive work on the pool; a cancelled task tells it to stop at its next check.
    static func run<R: Sendable>(_ work: @escaping @Sendable (_ isCancelled: @escaping () -> Bool) throws -> R) async throws -> R {
        let cancelled = NIOLockedValueBox(false)
        do {
            return try await withTaskCancellationHandler {
                try await pool.runIfActive { try work { cancelled.withLockedValue { $0 } } }
            } onCancel: {
                cancelled.withLockedValue { $0 = true }
            }
        } catch {
            throw fsError(error)
        }
    }

    /// The core's error for what libarchive said.
    static func fsError(_ error: any Error) -> any Error {
        guard let e = error as? ArchiveError else {
            if let s = error as? ArchiveSourceError { return FSError.upstream(code: -1, message: "the archive could not be read: \(s)") }
            return error
        }
        switch e {
        case .notAnArchive, .damaged, .unsafeMember, .notAFile: return FSError.badRequest(e.description)
        case .passwordRequired, .wrongPassword: return FSError.permissionDenied(e.description)
        case .tooManyEntries, .tooLarge, .ratioExceeded: return FSError.tooLarge(e.description)
        case .memberNotFound: return FSError.notFound(e.description)
        case .unsupported: return FSError.notSupported(e.description)
        case .readFailed: return FSError.upstream(code: -1, message: e.description)
        case .cancelled: return CancellationError()
        }
    }

    /// Listings of archives, by what they were made from, at most 64 archives' worth and 200,000 members.
    final class ListingCache: Sendable {
        struct Key: Hashable { var path: String; var size: Int64; var modified: Date; var password: String }
        private let box = NIOLockedValueBox<(entries: [Key: [ArchiveMember]], order: [Key], members: Int)>(([:], [], 0))
        static let maxArchives = 64
        static let maxMembers = 200_000

        func get(_ key: Key) -> [ArchiveMember]? { box.withLockedValue { $0.entries[key] } }

        func put(_ key: Key, _ members: [ArchiveMember]) {
            guard members.count <= Self.maxMembers else { return }
            box.withLockedValue { c in
                if c.entries[key] == nil { c.order.append(key) }
                c.members += members.count - (c.entries[key]?.count ?? 0)
                c.entries[key] = members
                while c.order.count > Self.maxArchives || c.members > Self.maxMembers, !c.order.isEmpty {
                    let old = c.order.removeFirst()
                    c.members -= c.entries.removeValue(forKey: old)?.count ?? 0
                }
            }
        }
    }
}

/// Range requests on a cloud file's link, made synchronously for libarchive's read callback (which runs on
/// `Archives.pool`, never on an event loop or the cooperative threads it waits for). A link the cloud refuses
/// is asked for again once.
final class RemoteRanges: Sendable {
    private let link: NIOLockedValueBox<(url: String, headers: [String: String], renewed: Bool)>
    private let renew: @Sendable () async throws -> (String, [String: String])

    init(url: String, headers: [String: String], renew: @escaping @Sendable () async throws -> (String, [String: String])) {
        link = NIOLockedValueBox((url, headers, false))
        self.renew = renew
    }

    func fetch(offset: Int64, length: Int) throws -> [UInt8] {
        do {
            return try Blocking.wait(timeout: .seconds(120),
                                     timedOut: ArchiveSourceError("the cloud did not send a part of the archive within 2 minutes")) {
                try await self.get(offset: offset, length: length)
            }
        } catch let e as ArchiveSourceError {
            throw e
        } catch {
            // Carried through libarchive as its read error, with this message.
            throw ArchiveSourceError(FSError.from(error).message)
        }
    }

    private func get(offset: Int64, length: Int) async throws -> [UInt8] {
        while true {
            let (url, headers, renewed) = link.withLockedValue { ($0.url, $0.headers, $0.renewed) }
            var up = HTTPClientRequest(url: url)
            for (k, v) in headers { up.headers.replaceOrAdd(name: k, value: v) }
            up.headers.replaceOrAdd(name: "Range", value: "bytes=\(offset)-\(offset + Int64(length) - 1)")
            let res: HTTPClientResponse
            do { res = try await RemoteProxy.http.execute(up, timeout: .seconds(30)) } catch {
                throw FSError.upstream(code: -1, message: "cannot reach the cloud's download server: \(ErrorText.describe(error))")
            }
            if res.status.code >= 400 {
                let e = try await RemoteProxy.error(from: res, name: "the archive")
                guard !renewed else { throw e }
                let (u, h) = try await renew()
                link.withLockedValue { $0 = (u, h, true) }
                continue
            }
            guard res.status == .partialContent else {
                throw FSError.notSupported("the cloud's download server does not answer Range requests (HTTP \(res.status.code)), so the archive cannot be read in parts")
            }
            var body = try await res.body.collect(upTo: length + 1)
            guard body.readableBytes <= length else { throw FSError.upstream(code: -1, message: "the cloud sent more of the archive than asked for") }
            return body.readBytes(length: body.readableBytes) ?? []
        }
    }
}

/// Bytes from a blocking producer (libarchive extracting a member on `Archives.pool`) to an async consumer (an
/// HTTP answer), at most `depth` chunks ahead: the producer waits while the consumer is behind, and stops (its
/// `isCancelled` turns true) when the consumer goes away.
final class ChunkPipe: Sendable {
    let stream: AsyncThrowingStream<ByteBuffer, any Error>
    private let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
    private let slots: DispatchSemaphore
    private let gone = NIOLockedValueBox(false)
    static let depth = 8

    init() {
        (stream, continuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self)
        slots = DispatchSemaphore(value: Self.depth)
        let gone = self.gone, slots = self.slots
        continuation.onTermination = { _ in
            gone.withLockedValue { $0 = true }
            for _ in 0...Self.depth { slots.signal() }
        }
    }

    var isGone: Bool { gone.withLockedValue { $0 } }

    /// The consumer stopped (the client went away, or the answer ended): the producer is let go.
    func abandon() {
        gone.withLockedValue { $0 = true }
        for _ in 0...Self.depth { slots.signal() }
        continuation.finish()
    }

    /// Called by the producer for each chunk: waits for room, then hands over a copy.
    func send(_ bytes: UnsafeRawBufferPointer) throws {
        slots.wait()
        if isGone { throw ArchiveError.cancelled }
        continuation.yield(ByteBuffer(bytes: bytes))
    }

    /// The consumer took a chunk: room for one more.
    func took() { slots.signal() }

    func finish(_ error: (any Error)? = nil) {
        if let error { continuation.finish(throwing: error) } else { continuation.finish() }
    }
}
