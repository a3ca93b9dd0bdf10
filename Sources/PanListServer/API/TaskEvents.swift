import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PanListCore
import PanListStore
import ServiceLifecycle

/// What `/api/task/events` sends each second: the counts of `/api/task/summary` and the caller's undone tasks
/// of every kind (the admin: everyone's), newest first.
struct TaskFeedJSON: Encodable {
    var summary: TaskSummaryJSON
    var undone: [TaskInfoJSON]
}

extension APIRoutes {
    /// `GET /api/task/events`: a live feed for the web UI, as server-sent events, authorised by the
    /// `Authorization` header as every API route (never a token in the URL: proxies log URLs). An event
    /// `data: {summary, undone}` comes at once and then whenever it changed (looked at each second), a
    /// `: ping` comment every 15 s otherwise. A stream lasts at most 10 minutes (the client opens the next
    /// one, which also spreads clients over the instances); it ends sooner when the client goes away, when
    /// the server stops, or when the caller may no longer see tasks (logged out, a new password, disabled).
    /// A moment when the store does not answer is skipped. The guest, a bad token and a server that is
    /// stopping are refused with the usual envelope.
    func addTaskEvents(to api: RouterGroup<AppContext>) {
        api.get("task/events") { req, _ in
            if state.isDraining { throw FSError.unavailable("the server is stopping; try again shortly") }
            let user = try await taskCaller(req)
            let first = try await taskFeed(user)
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream; charset=utf-8"
            headers[.cacheControl] = "no-cache, no-store"
            headers[HTTPField.Name("X-Accel-Buffering")!] = "no"     // a proxy in front must not hold events back
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                let end = ContinuousClock.now + .seconds(600)
                var last = Self.event(first)
                try await writer.write(last)
                var quiet = 0
                while ContinuousClock.now < end {
                    try await Task.sleep(for: .seconds(1))
                    if state.isDraining || Task.isShuttingDownGracefully { break }
                    do {
                        let now = try await state.authenticate(req)
                        guard !now.isGuest, now.id == user.id else { break }
                        let next = Self.event(try await taskFeed(now))
                        if next != last {
                            try await writer.write(next)
                            last = next
                            quiet = 0
                            continue
                        }
                    } catch let e as FSError {
                        if case .unauthorized = e { break }
                        // The store did not answer: nothing this second.
                    }
                    quiet += 1
                    if quiet >= 15 {
                        try await writer.write(ByteBuffer(string: ": ping\n\n"))
                        quiet = 0
                    }
                }
                try await writer.finish(nil)
            })
        }
    }

    /// The feed for `user`, computed at most once a second for all the streams that show the same tasks
    /// (one user's tabs; every admin), so open tabs do not each query the store.
    func taskFeed(_ user: User) async throws -> TaskFeedJSON {
        try await state.taskFeeds.value(for: Self.creatorFilter(user) ?? -1, maxAge: .milliseconds(900)) {
            try await computeTaskFeed(user)
        }
    }

    func computeTaskFeed(_ user: User) async throws -> TaskFeedJSON {
        var undone: [TaskRecord] = []
        for kind in await state.tasks.kindNames {
            undone += try await state.store.tasks(kind: kind, states: TaskState.undone, creator: Self.creatorFilter(user),
                                                  limit: 200, offset: 0)
        }
        undone.sort { ($0.created_ms, $1.id) > ($1.created_ms, $0.id) }
        // The newest 200 (the counts say how many there are).
        return TaskFeedJSON(summary: try await taskSummary(user), undone: undone.prefix(200).map(TaskInfoJSON.init))
    }

    /// One `data:` event (the JSON is on one line).
    static func event(_ feed: TaskFeedJSON) -> ByteBuffer {
        var out = ByteBuffer(string: "data: ")
        out.writeBytes((try? APIResponse.encoder.encode(feed)) ?? Data("{}".utf8))
        out.writeString("\n\n")
        return out
    }

}

/// Values recomputed at most once per `maxAge` per key, one computation at a time per key: callers that come
/// while one runs wait for it and share its result, however long it takes; a failure is not kept.
actor SharedRecent<Value: Sendable> {
    private var fresh: [Int: (at: ContinuousClock.Instant, value: Value)] = [:]
    private var running: [Int: Task<Value, any Error>] = [:]
    /// How many times a value was computed (for tests).
    private(set) var computed = 0

    func value(for key: Int, maxAge: Duration, _ make: @escaping @Sendable () async throws -> Value) async throws -> Value {
        if let work = running[key] { return try await work.value }
        let now = ContinuousClock.now
        if let f = fresh[key], now - f.at < maxAge { return f.value }
        fresh = fresh.filter { now - $0.value.at < .seconds(10) }
        computed += 1
        let work = Task { try await make() }
        running[key] = work
        defer { if running[key] == work { running[key] = nil } }
        let value = try await work.value
        fresh[key] = (.now, value)
        return value
    }
}
