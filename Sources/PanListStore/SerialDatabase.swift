import Logging
import NIOConcurrencyHelpers
import NIOCore
import SQLKit

/// SQLite's one connection, shared by every task of the process: a transaction (BEGIN … COMMIT) must have it
/// to itself, or a second BEGIN fails ("cannot start a transaction within a transaction") and other tasks'
/// statements slip into the transaction (and are rolled back with it). Each statement waits for a session in
/// progress; a session (`withSession`) holds the connection until its closure returns.
struct SerialDatabase: SQLDatabase {
    let base: any SQLDatabase
    let gate = AsyncGate()

    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var dialect: any SQLDialect { base.dialect }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        let promise = base.eventLoop.makePromise(of: Void.self)
        promise.completeWithTask { try await self.execute(sql: query, onRow) }
        return promise.futureResult
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        try await gate.holding { try await base.execute(sql: query, onRow) }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        let base = self.base
        return try await gate.holding { UncheckedBox(try await closure(base)) }.value
    }
}

/// A first-come, first-served async mutex.
final class AsyncGate: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = NIOLockedValueBox(State())

    func holding<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        await acquire()
        do {
            let r = try await body()
            release()
            return r
        } catch {
            release()
            throw error
        }
    }

    private func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { s -> Bool in
                if !s.held { s.held = true; return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    private func release() {
        let next = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty { s.held = false; return nil }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
