import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PanListArchive
import PanListCore

/// Archives on any storage, read through libarchive (`PanListArchive`): a local file directly, a cloud file
/// with HTTP Range requests on its link (so listing a zip reads its central directory, not the whole file).
/// libarchive blocks, so every call runs on threads of its own, never on an event loop: three pools, so that
/// slow work of one kind never keeps the others waiting (a listing is not stuck behind downloads of members to
/// slow clients, nor behind extractions).
struct Archives: Sendable {
    let state: ServerState

    /// What a call is for, and so which threads it runs on.
    enum Lane: Sendable {
        /// Listings (and a member's first bytes, to check its password): short.
        case list
        /// A member streamed to a client (`/ae`): as slow as the client. At most `memberSlots` at once.
        case member
        /// Extraction tasks: as slow as the destination storage; more than two wait their turn.
        case extract
    }

    private static func pool(_ threads: Int) -> NIOThreadPool {
        let pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
        return pool
    }
    static let listPool = pool(4)
    static let memberPool = pool(8)
    static let extractPool = pool(2)
    /// Extractions wait for a thread of `extractPool` here, where cancelling one takes it out of the queue.
    static let extractTurns = Turns(2)
    /// Members being streamed at once (one thread of `memberPool` each): one more is refused ("try again").
    static let memberSlots = BusySlots(8, what: "files from inside archives")
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
            // open and fstat block (a slow or network disk): on a pool thread too.
            do { return (try await Self.listPool.runIfActive { try FileArchiveSource(path: disk) }, obj) } catch {
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
        let members = try await Self.run(.list) { isCancelled in
            try ArchiveReader.list(source, password: password, limits: Self.limits, isCancelled: isCancelled)
        }
        Self.listings.put(key, members)
        return (members, obj)
    }

    /// Runs blocking libarchive work on the lane's pool; a cancelled task tells it to stop at its next check.
    static func run<R: Sendable>(_ lane: Lane, _ work: @escaping @Sendable (_ isCancelled: @escaping () -> Bool) throws -> R) async throws -> R {
        let cancelled = NIOLockedValueBox(false)
        let pool = switch lane {
        case .list: listPool
        case .member: memberPool
        case .extract: extractPool
        }
        @Sendable func onPool() async throws -> R {
            try await withTaskCancellationHandler {
                try await pool.runIfActive {
                    if cancelled.withLockedValue({ $0 }) { throw ArchiveError.cancelled }
                    return try work { cancelled.withLockedValue { $0 } }
                }
            } onCancel: {
                cancelled.withLockedValue { $0 = true }
            }
        }
        do {
            if lane == .extract { return try await extractTurns.run { try await onPool() } }
            return try await onPool()
        } catch is CancellationError {
            throw fsError(ArchiveError.cancelled)
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
        case .tooManyEntries, .namesTooLong, .tooLarge, .ratioExceeded: return FSError.tooLarge(e.description)
        case .memberNotFound: return FSError.notFound(e.description)
        case .unsupported: return FSError.notSupported(e.description)
        case .readFailed: return FSError.upstream(code: -1, message: e.description)
        case .cancelled: return CancellationError()
        }
    }

    /// Listings of archives, by what they were made from, at most 64 archives' worth and 64 MiB of members (as
    /// counted by `weight`); a listing bigger than half of that (about 200,000 members with short names) is not kept.
    final class ListingCache: Sendable {
        struct Key: Hashable { var path: String; var size: Int64; var modified: Date; var password: String }
        private let box = NIOLockedValueBox<(entries: [Key: (members: [ArchiveMember], weight: Int)], order: [Key], weight: Int)>(([:], [], 0))
        static let maxArchives = 64
        static let maxWeight = 64 << 20

        /// About the memory a listing holds: its names, and a member's fixed part.
        static func weight(_ members: [ArchiveMember]) -> Int {
            members.reduce(0) { $0 + 96 + $1.path.utf8.count + ($1.linkTarget?.utf8.count ?? 0) }
        }

        var weight: Int { box.withLockedValue { $0.weight } }

        func get(_ key: Key) -> [ArchiveMember]? { box.withLockedValue { $0.entries[key]?.members } }

        func put(_ key: Key, _ members: [ArchiveMember]) {
            let weight = Self.weight(members)
            guard weight <= Self.maxWeight / 2 else { return }
            box.withLockedValue { c in
                if let old = c.entries[key] { c.weight -= old.weight } else { c.order.append(key) }
                c.weight += weight
                c.entries[key] = (members, weight)
                while c.order.count > Self.maxArchives || c.weight > Self.maxWeight, !c.order.isEmpty {
                    let old = c.order.removeFirst()
                    c.weight -= c.entries.removeValue(forKey: old)?.weight ?? 0
                }
            }
        }
    }
}

/// Range requests on a cloud file's link, made synchronously for libarchive's read callback (which runs on
/// an archive pool's thread, never on an event loop or the cooperative threads it waits for). A link the cloud refuses
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

/// Bytes from a blocking producer (libarchive extracting a member on an archive pool's thread) to an async
/// consumer (an HTTP answer, a storage's writer), at most `depth` chunks ahead: the producer waits while the
/// consumer is behind, and stops when the consumer goes away (`abandon`), when its own work is cancelled, or
/// when the consumer takes nothing for `stall` (a client that keeps the connection open but reads nothing does
/// not hold a thread for ever).
final class ChunkPipe: Sendable {
    let stream: AsyncThrowingStream<ByteBuffer, any Error>
    private let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
    private let slots: DispatchSemaphore
    private let gone = NIOLockedValueBox(false)
    static let depth = 8
    let stall: Duration

    init(stall: Duration = .seconds(600)) {
        self.stall = stall
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

    /// Called by the producer for each chunk: waits for room (looking every second whether it should stop),
    /// then hands over a copy.
    func send(_ bytes: UnsafeRawBufferPointer, isCancelled: () -> Bool) throws {
        let start = ContinuousClock.now
        while slots.wait(timeout: .now() + .seconds(1)) == .timedOut {
            if isGone || isCancelled() { throw ArchiveError.cancelled }
            if ContinuousClock.now - start > stall { throw ChunkPipe.Stalled(after: stall) }
        }
        if isGone || isCancelled() { throw ArchiveError.cancelled }
        continuation.yield(ByteBuffer(bytes: bytes))
    }

    /// The consumer took nothing for `after`.
    struct Stalled: Error, CustomStringConvertible {
        var after: Duration
        var description: String { "nothing was taken for \(after.components.seconds) seconds" }
    }

    /// The consumer took a chunk: room for one more.
    func took() { slots.signal() }

    func finish(_ error: (any Error)? = nil) {
        if let error { continuation.finish(throwing: error) } else { continuation.finish() }
    }
}
