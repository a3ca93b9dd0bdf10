import Logging
import ServiceLifecycle

/// A service (a Hummingbird application) run in the background of this process, stopped gracefully.
///
/// Cancelling the task of a running server is not safe: a connection accepted in the moment the serving loop
/// is cancelled is never handed to it, and NIO traps ("Deinited NIOAsyncWriter without calling finish()",
/// swift-nio #2637) — seen once stopping a test server under load, which ended the whole test run. `stop()`
/// asks for a graceful shutdown instead (the listener closes, every connection already accepted is served and
/// closed) and cancels only what is still running after `grace`. The emulator's in-process start uses it; so
/// do the tests for their own servers.
public final class BackgroundService: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    public init(_ service: any Service, logger: Logger) {
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [], logger: logger))
        self.group = group
        self.task = Task { try await group.run() }
    }

    /// Graceful shutdown; what still runs after `grace` (a download that never ends) is cancelled.
    public func stop(grace: Duration = .seconds(5)) async {
        let task = self.task
        await group.triggerGracefulShutdown()
        let deadline = Task {
            try await Task.sleep(for: grace)
            task.cancel()
        }
        _ = try? await task.value
        deadline.cancel()
    }
}
