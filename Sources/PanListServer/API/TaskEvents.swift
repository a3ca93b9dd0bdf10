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
    /// `GET /api/task/events`: a live feed for the web UI, as server-sent events. Every second one
    /// `data: {summary, undone}` event; it ends when the client goes away, when the server stops, or when the
    /// caller may no longer see tasks (logged out elsewhere, a new password, disabled). EventSource cannot
    /// set headers, so the token may also come as `?token=` (the access log never writes queries). The guest
    /// and a bad token are refused with the usual envelope (not an event stream: EventSource gives up).
    func addTaskEvents(to api: RouterGroup<AppContext>) {
        api.get("task/events") { req, _ in
            let auth = Self.withQueryToken(req)
            let user = try await state.authenticate(auth)
            if user.isGuest { throw FSError.unauthorized("log in to see tasks") }
            let first = try await taskFeed(user)
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream; charset=utf-8"
            headers[.cacheControl] = "no-cache, no-store"
            headers[HTTPField.Name("X-Accel-Buffering")!] = "no"     // a proxy in front must not hold events back
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                // Reconnect after 2 s when the stream breaks (the browser's default is 3 s).
                try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                var feed: TaskFeedJSON? = first
                while true {
                    if let feed { try await writer.write(Self.event(feed)) }
                    try await Task.sleep(for: .seconds(1))
                    if state.isDraining || Task.isShuttingDownGracefully { break }
                    guard let now = try? await state.authenticate(auth), !now.isGuest, now.id == user.id else { break }
                    feed = try? await taskFeed(now)     // the store did not answer: nothing this second
                }
                try await writer.finish(nil)
            })
        }
    }

    func taskFeed(_ user: User) async throws -> TaskFeedJSON {
        var undone: [TaskRecord] = []
        for kind in await state.tasks.kindNames {
            undone += try await state.store.tasks(kind: kind, states: TaskState.undone, creator: user.isAdmin ? nil : user.id)
        }
        undone.sort { ($0.created_ms, $1.id) > ($1.created_ms, $0.id) }
        return TaskFeedJSON(summary: try await taskSummary(user), undone: undone.map(TaskInfoJSON.init))
    }

    /// One `data:` event (the JSON is on one line).
    static func event(_ feed: TaskFeedJSON) -> ByteBuffer {
        var out = ByteBuffer(string: "data: ")
        out.writeBytes((try? APIResponse.encoder.encode(feed)) ?? Data("{}".utf8))
        out.writeString("\n\n")
        return out
    }

    /// The request with `?token=` as its Authorization header when it has none.
    static func withQueryToken(_ req: Request) -> Request {
        guard ServerState.token(req).isEmpty, let token = req.uri.queryParameters.get("token"), !token.isEmpty else { return req }
        var head = req.head
        head.headerFields[.authorization] = token
        return Request(head: head, body: .init(buffer: ByteBuffer()))
    }
}
