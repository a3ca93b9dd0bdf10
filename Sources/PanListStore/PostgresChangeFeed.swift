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
/// Each message carries the publishing instance's id; an instance ignores its own (it applied them already).
public final class PostgresChangeFeed: ChangeFeed {
    public static let channel = "panlist_changes"
    let store: SQLStore
    let target: PostgresTarget
    let origin: String
    let logger: Logger
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// For tests: the listener's connections so far (a reconnect makes it 2).
    public var connections: Int { connectionCount.withLockedValue { $0 } }
    private let connectionCount = NIOLockedValueBox(0)

    struct Message: Codable { var o: String; var c: Change }

    public init(store: SQLStore, origin: String, logger: Logger) throws {
        guard let target = store.postgresTarget else { throw FSError.internalError("a PostgreSQL change feed needs a PostgreSQL store") }
        self.store = store
        self.target = target
        self.origin = origin
        self.logger = logger
    }

    public func publish(_ change: Change) async {
        do {
            let payload = String(decoding: try JSONEncoder().encode(Message(o: origin, c: change)), as: UTF8.self)
            guard payload.utf8.count < 7900 else {
                // NOTIFY payloads end at 8000 bytes: too big a change is said as "everything".
                return await publish(.everything)
            }
            try await store.db.raw("SELECT pg_notify(\(bind: Self.channel), \(bind: payload))").run()
        } catch {
            logger.warning("could not tell the other instances about a change (\(ErrorText.describe(error))); their caches catch up within their time limits")
        }
    }

    public func start(_ handler: @escaping @Sendable (Change) async -> Void) async {
        let t = Task { await self.listen(handler) }
        task.withLockedValue { $0 = t }
    }

    public func stop() async {
        let t = task.withLockedValue { t in defer { t = nil }; return t }
        t?.cancel()
        await t?.value
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
                    configuration: try target.connectionConfiguration(applicationName: "panlist-listen \(origin)"), id: 1, logger: quiet).get()
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        let notifications = try await conn.listen(Self.channel)
                        connectionCount.withLockedValue { $0 += 1 }
                        if connections > 1 { logger.info("listening for changes of the other instances again") }
                        delay = .milliseconds(250)
                        await handler(.everything)
                        // A connection that died silently is found out by a query every 5 s.
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .seconds(5))
                                _ = try await conn.query("SELECT 1", logger: quiet)
                            }
                        }
                        group.addTask {
                            for try await n in notifications {
                                guard let m = try? JSONDecoder().decode(Message.self, from: Data(n.payload.utf8)) else { continue }
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
