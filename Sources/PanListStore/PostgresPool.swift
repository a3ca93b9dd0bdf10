import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PanListCore
import PostgresKit
import PostgresNIO
import SQLKit

/// SQLKit's `SQLDatabase` over PostgresNIO's connection pool (`PostgresClient`): each statement leases a
/// connection for its own run; `withSession` keeps one connection for several statements (a transaction,
/// an advisory lock).
///
/// The pool waits for a connection as long as it takes (it reconnects with backoff by itself while the
/// database is away), so a lease that does not come within `leaseTimeout` ends with `.unavailable`:
/// a request that needs the database then answers 503 instead of hanging. Errors become `FSError`s in
/// words here, once (`PostgresErrors`).
struct PostgresPoolDatabase: SQLDatabase {
    let client: PostgresClient
    let logger: Logger
    let leaseTimeout: Duration
    var eventLoop: any EventLoop { MultiThreadedEventLoopGroup.singleton.any() }
    var dialect: any SQLDialect { PostgresDialect() }
    /// Statements carry secrets in their binds (storage additions, tokens, password hashes): never logged.
    var queryLogLevel: Logger.Level? { nil }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        promise.completeWithTask { try await self.execute(sql: query, onRow) }
        return promise.futureResult
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        let limit = statementLimit
        try await leased { conn in
            try await Self.bounded(conn, limit) { try await conn.sql(queryLogLevel: nil).execute(sql: query, onRow) }
        }
    }

    /// How long one statement may take before its connection is closed and the caller told the database is
    /// unavailable: a database that went silent (a host powered off, a network cut without a reset) must not
    /// hold requests for the minutes TCP takes to notice.
    var statementLimit: Duration = .seconds(30)

    static func bounded(_ conn: PostgresConnection, _ limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await body(); return true }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = try await group.next() ?? true
            if !first {
                // Closing the connection ends the statement that waits on it (its future fails).
                try? await conn.close()
                group.cancelAll()
                throw FSError.unavailable("the database did not answer within \(limit.components.seconds) s; try again shortly")
            }
            group.cancelAll()
        }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await leased { conn in
            UncheckedBox(try await closure(TranslatingDatabase(base: conn.sql(queryLogLevel: nil))))
        }.value
    }

    /// Runs `body` on a leased connection; `.unavailable` when no connection comes in time.
    /// Only the wait for a connection is timed: once the lease is won, the statement runs to its end (the
    /// timer and the lease decide who wins under one lock, so a statement is never cut off after it started).
    /// A wait that times out is not awaited: the pool does not always end a cancelled wait at once while the
    /// database refuses connections, and the caller must hear of it now (the abandoned wait gives back the
    /// connection it gets later without using it).
    func leased<R: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> R) async throws -> R {
        let lease = NIOLockedValueBox(LeaseState.waiting)
        let client = self.client, timeout = self.leaseTimeout
        let unavailable = FSError.unavailable("the database cannot be reached (no connection within \(timeout.components.seconds) s); try again shortly")
        let work = Task {
            try await client.withConnection { conn in
                let won = lease.withLockedValue { l -> Bool in
                    guard l == .waiting else { return false }
                    l = .leased
                    return true
                }
                guard won else { throw unavailable }
                return UncheckedBox(try await body(conn))
            }
        }
        let outcome: Result<R, any Error> = await withTaskCancellationHandler {
            await FirstOf.result { (finish: @escaping @Sendable (Result<R, any Error>) -> Void) in
                let timer = Task {
                    try? await Task.sleep(for: timeout)
                    if Task.isCancelled { return }
                    let expired = lease.withLockedValue { l -> Bool in
                        guard l == .waiting else { return false }
                        l = .expired
                        return true
                    }
                    if expired {
                        // The answer first: the cancelled wait ends with the pool's own error, which must not win.
                        finish(.failure(unavailable))
                        work.cancel()
                    }
                }
                Task {
                    let r = await work.result
                    timer.cancel()
                    finish(r.map(\.value).mapError { PostgresErrors.translate($0) })
                }
            }
        } onCancel: {
            work.cancel()
        }
        return try outcome.get()
    }
}

/// A session's connection, with errors translated as the pool's are.
struct TranslatingDatabase: SQLDatabase {
    let base: any SQLDatabase
    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var dialect: any SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { nil }
    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        base.execute(sql: query, onRow).flatMapErrorThrowing { throw PostgresErrors.translate($0) }
    }
    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        do { try await base.execute(sql: query, onRow) } catch { throw PostgresErrors.translate(error) }
    }
}

enum LeaseState: Sendable { case waiting, leased, expired }

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// PostgreSQL's errors in words (PostgresNIO's own description is deliberately generic).
enum PostgresErrors {
    /// SQLSTATE of a unique violation.
    static let uniqueViolation = "23505"

    static func translate(_ error: any Error) -> any Error {
        if error is FSError || error is CancellationError { return error }
        // The pool's own errors (a wait cancelled, the pool shut down) are not exported by name.
        if String(describing: type(of: error)).contains("ConnectionPoolError") {
            return FSError.unavailable("the database cannot be reached (\(error)); try again shortly")
        }
        guard let e = error as? PSQLError else { return error }
        let state = e.serverInfo?[.sqlState] ?? ""
        let message = e.serverInfo?[.message] ?? ""
        switch e.code {
        case .server:
            if state == uniqueViolation { return UniqueViolation(message: message) }
            if state.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300"].contains(state) {
                return FSError.unavailable("the database is not available (\(message)); try again shortly")
            }
            if state.hasPrefix("28") { return FSError.unavailable("the database refused PanList's login: \(message)") }
            if state == "3D000" { return FSError.unavailable("the database does not exist: \(message)") }
            return FSError.internalError("database error \(state): \(message)")
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
            let cause = e.underlying.map { ": " + ErrorText.describe($0) } ?? ""
            return FSError.unavailable("the database cannot be reached\(cause); try again shortly")
        case .sslUnsupported:
            return FSError.unavailable("the database server does not offer TLS, which ssl_mode requires")
        case .failedToAddSSLHandler:
            return FSError.unavailable("TLS to the database could not be set up\(e.underlying.map { ": " + ErrorText.describe($0) } ?? "")")
        case .authMechanismRequiresPassword:
            return FSError.unavailable("the database asks for a password and none is configured")
        case .unsupportedAuthMechanism, .saslError:
            return FSError.unavailable("the database's login method failed\(e.underlying.map { ": " + ErrorText.describe($0) } ?? "")")
        case .queryCancelled:
            return CancellationError()
        default:
            return FSError.internalError("database error: \(e.code)")
        }
    }
}

/// A row would repeat a value that must be unique (the store rewords it for what was being written).
struct UniqueViolation: Error, CustomStringConvertible {
    let message: String
    var description: String { "unique constraint: \(message)" }
}

/// Times every statement for the metrics (`panlist_store_query_duration_seconds`) and counts failures.
struct TimedDatabase: SQLDatabase {
    let base: any SQLDatabase
    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var dialect: any SQLDialect { base.dialect }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }
    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        let start = ContinuousClock.now
        return base.execute(sql: query, onRow).always { result in
            Metrics.storeLatency.record(ContinuousClock.now - start)
            if case .failure = result { Metrics.storeErrors.increment() }
        }
    }
    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        let start = ContinuousClock.now
        defer { Metrics.storeLatency.record(ContinuousClock.now - start) }
        do { try await base.execute(sql: query, onRow) } catch {
            Metrics.storeErrors.increment()
            throw error
        }
    }
    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await base.withSession(closure)
    }
}
