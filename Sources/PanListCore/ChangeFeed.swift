import Foundation
import NIOConcurrencyHelpers

/// "Something changed", published after a write has reached the store or a storage, so that every instance
/// drops or reloads what it keeps in memory. Small on purpose: what changed, never the new value (each
/// instance reads that from the store or the storage itself).
public enum Change: Sendable, Equatable, Codable {
    /// A storage was created, updated, enabled, disabled or deleted: re-read it and remount or drop it.
    case storage(id: Int)
    /// Settings changed.
    case settings
    /// A user was created, changed or deleted (password, permissions, disabled).
    case users
    /// Folder rules changed.
    case rules
    /// A login token was revoked (logout) until `until` (seconds since 1970).
    case revoked(hash: String, until: Int64)
    /// The contents of a folder of a storage changed (`path` is the storage's own path); with `recursive`,
    /// everything below it may have too.
    case folder(storage: Int, path: String, recursive: Bool)
    /// A login limiter key reached its limit (on any instance): refused everywhere until `until` (seconds since 1970).
    case blocked(key: String, until: Int64)
    /// A task was queued, cancelled, retried, deleted or ended: the instance running it checks whether to stop,
    /// idle ones look for work.
    case task(id: String)
    /// Anything may have changed (a listener that was away): drop every cache.
    case everything
}

/// Carries `Change`s between the instances that share one store. With SQLite (one process) it is in-process;
/// with PostgreSQL it is LISTEN/NOTIFY, and a listener that reconnects after a gap delivers `.everything`.
/// `publish` never fails the write it follows: a change that cannot be sent is logged by the feed, and the
/// caches' time limits remain the backstop.
public protocol ChangeFeed: Sendable {
    /// Sends `change` to the other instances (this instance has applied it already).
    func publish(_ change: Change) async
    /// Calls `handler` for every change published by another instance, in order, until `stop`.
    func start(_ handler: @escaping @Sendable (Change) async -> Void) async
    func stop() async
}

/// The feed of a single process: there is nobody else to tell.
public final class LocalChangeFeed: ChangeFeed {
    public init() {}
    public func publish(_ change: Change) async {}
    public func start(_ handler: @escaping @Sendable (Change) async -> Void) async {}
    public func stop() async {}
}
