import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import PanListCore
import PostgresNIO
import SQLKit

/// `ChangeFeed` over PostgreSQL's LISTEN/NOTIFY. Publishing is `pg_notify` on a pooled connection; listening
/// holds one connection of its own (named `panlist-listen <instance id>` in `pg_stat_activity`), checked every few seconds
/// and reopened with backoff when lost. Every time the listener is (re)established it delivers `.everything`
/// first: whatever was published while nobody listened (the start, a lost connection) is then not missed.
/// Each message carries the publishing process's origin (its instance id and a number drawn at start, so two
/// processes given the same id by mistake still hear each other); a process ignores its own messages (it
/// applied them already). Publishing never holds up the caller: messages go out in order from a queue, each
/// retried for up to a minute when the database is away, then given up with a warning.
public final class PostgresChangeFeed: ChangeFeed {
    public static let channel = "panlist_changes"
    let store: SQLStore
    let target: PostgresTarget
    let instanceID: String
    let origin: String
    let logger: Logger
    private let outbox: AsyncStream<(Change, Ack)>.Continuation
    private let sender = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// For tests: the listener's connections so far (a reconnect makes it 2).
    public var connections: Int { connectionCount.withLockedValue { $0 } }
    private let connectionCount = NIOLockedValueBox(0)

    struct Message: Codable { var o: String; var c: Change }

    public init(store: SQLStore, instanceID: String, logger: Logger) throws {
        guard let target = store.postgresTarget else { throw FSError.internalError("a PostgreSQL change feed needs a PostgreSQL store") }
        self.store = store
        self.target = target
        self.instanceID = instanceID
        self.origin = instanceID + "/" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        self.logger = logger
        let (stream, continuation) = AsyncStream<(Change, Ack)>.makeStream()
        self.outbox = continuation
        let (db, origin, log, sending) = (store.db, origin, logger, sending)
        sender.withLockedValue { $0 = Task { await Self.send(stream, db: db, origin: origin, logger: log, healthy: sending) } }
    }

    /// Queues `change` and waits until it was sent, at most 1 s: normally the other instances know of a
    /// write before its answer leaves (a client sent round-robin to another instance next sees it), and a
    /// slow database never holds a write up for long.
    public func publish(_ change: Change) async {
        let ack = Ack()
        outbox.yield((change, ack))
        // While sending fails (the database is away), writes do not wait at all: their changes queue up.
        if sending.withLockedValue({ $0 }) { await ack.wait(at_most: .seconds(1)) }
    }

    /// False while the last NOTIFY failed.
    private let sending = NIOLockedValueBox(true)

    /// Resumed once: by the sender when the change went out (or was given up), or by the time limit.
    final class Ack: Sendable {
        private let state = NIOLockedValueBox<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
        func done() {
            let w = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
                s.done = true
                defer { s.waiter = nil }
                return s.waiter
            }
            w?.resume()
        }
        func wait(at_most limit: Duration) async {
            let timer = Task { [self] in
                try? await Task.sleep(for: limit)
                done()
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { s -> Bool in
                    if s.done { return true }
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
            timer.cancel()
        }
    }

    /// Tells the running instances about a change made outside them (the command line), once; nothing to do
    /// with SQLite. A failure is said on standard error by the caller's logger.
    public static func announce(_ change: Change, in store: any Store, logger: Logger) async {
        guard let sql = store as? SQLStore, sql.engine == .postgres else { return }
        do {
            let payload = String(decoding: try JSONEncoder().encode(Message(o: "cli/" + UUID().uuidString, c: change)), as: UTF8.self)
            try await sql.db.raw("SELECT pg_notify(\(bind: channel), \(bind: payload))").run()
        } catch {
            logger.warning("the running instances were not told of the change (\(ErrorText.describe(error))); they see it within their caches' time limits or at their next start")
        }
    }

    /// Sends the queued changes in order. A change that cannot be sent is tried again (0.1 s … 5 s apart) for
    /// up to a minute; then it is given up, and the others catch up within their caches' time limits.
    private static func send(_ stream: AsyncStream<(Change, Ack)>, db: any SQLDatabase, origin: String, logger: Logger,
                             healthy: NIOLockedValueBox<Bool>) async {
        for await (change, ack) in stream {
            defer { ack.done() }
            var c = change
            var payload = (try? JSONEncoder().encode(Message(o: origin, c: c))).map { String(decoding: $0, as: UTF8.self) } ?? ""
            if payload.utf8.count >= 7900 || payload.isEmpty {
                // NOTIFY payloads end at 8000 bytes: too big a change is said as "everything".
                c = .everything
                payload = (try? JSONEncoder().encode(Message(o: origin, c: c))).map { String(decoding: $0, as: UTF8.self) } ?? ""
            }
            var delay = Duration.milliseconds(100)
            let giveUp = ContinuousClock.now + .seconds(60)
            while true {
                do {
                    try await db.raw("SELECT pg_notify(\(bind: Self.channel), \(bind: payload))").run()
                    healthy.withLockedValue { $0 = true }
                    break
                } catch {
                    healthy.withLockedValue { $0 = false }
                    if Task.isCancelled { return }
                    if ContinuousClock.now >= giveUp {
                        logger.warning("could not tell the other instances about a change for a minute (\(ErrorText.describe(error))); their caches catch up within their time limits")
                        break
                    }
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
        }
    }


    public func start(_ handler: @escaping @Sendable (Change) async -> Void) async {
        let t = Task { await self.listen(handler) }
        task.withLockedValue { $0 = t }
    }

    public func stop() async {
        let t = task.withLockedValue { t in defer { t = nil }; return t }
        t?.cancel()
        // The listener ends at its next await; one stuck in a connection attempt is not waited for past 5 s.
        if let t, !(await FirstOf.wait(t, atMost: .seconds(5))) { logger.warning("the change listener did not stop within 5 s; leaving it") }
        // What was published before the stop still goes out, if the database lets it within 2 s.
        outbox.finish()
        guard let s = sender.withLockedValue({ $0 }) else { return }
        let deadline = Task {
            try? await Task.sleep(for: .seconds(2))
            if !Task.isCancelled { s.cancel() }
        }
        await s.value
        deadline.cancel()
    }


    private func listen(_ handler: @escaping @Sendable (Change) async -> Void) async {
        var delay = Duration.milliseconds(250)
        var quietLogger = logger
        if quietLogger.logLevel < .info { quietLogger.logLevel = .info }
        let quiet = quietLogger
        while !Task.isCancelled {
            do {
                let conn = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.any(),
                    configuration: try target.connectionConfiguration(applicationName: "panlist-listen \(instanceID)"), id: 1, logger: quiet).get()
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        let notifications = try await conn.listen(Self.channel)
                        connectionCount.withLockedValue { $0 += 1 }
                        if connections > 1 { logger.info("listening for changes of the other instances again") }
                        delay = .milliseconds(250)
                        await handler(.everything)
                        // A connection that died silently is found out by a query every 5 s, which must answer
                        // within 5 s (a half-open connection would leave it waiting for ever).
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .seconds(5))
                                let answered = NIOLockedValueBox(false)
                                let watchdog = Task {
                                    try? await Task.sleep(for: .seconds(5))
                                    if !Task.isCancelled && !answered.withLockedValue({ $0 }) { try? await conn.close() }
                                }
                                defer { watchdog.cancel() }
                                _ = try await conn.query("SELECT 1", logger: quiet)
                                answered.withLockedValue { $0 = true }
                            }
                        }
                        group.addTask {
                            for try await n in notifications {
                                guard let m = try? JSONDecoder().decode(Message.self, from: Data(n.payload.utf8)) else {
                                    // From a newer PanList, or damaged: whatever it said, reloading everything covers it.
                                    await handler(.everything)
                                    continue
                                }
                                if m.o != self.origin { await handler(m.c) }
                            }
                            throw FSError.unavailable("the change listener's connection ended")
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                } catch {
                    try? await conn.close()
                    throw error
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("not listening for the other instances' changes (\(ErrorText.describe(PostgresErrors.translate(error)))); trying again in \(delay.components.seconds > 0 ? "\(delay.components.seconds) s" : "a moment")")
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }
}
