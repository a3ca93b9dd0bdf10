import Foundation
import Testing
@testable import PanListCore
@testable import PanListServer
@testable import PanListStore

@Suite("Running as a service: readiness, metrics, draining")
struct ObservabilityTests {
    @Test func readyAndMetrics() async throws {
        let s = try await TestServer.start()
        defer { Task { await s.stop() } }
        let ready = try await s.request(.GET, "/ready")
        #expect(ready.status == 200, "\(ready.text)")
        #expect(ready.json["ready"] as? Bool == true)

        let token = try await s.login()
        _ = try await s.api("/fs/list", ["path": "/"], token: token)
        _ = try await s.api("/fs/list", ["path": "/"], token: token)
        #expect(try await s.request(.GET, "/metrics").status == 401, "metrics without credentials")
        #expect(try await s.api("/admin/user/create", ["username": "viewer", "password": "viewer-pass-1", "base_path": "/", "permission": 0], token: token).code == 200)
        let viewer = try await s.login("viewer", "viewer-pass-1")
        #expect(try await s.request(.GET, "/metrics", headers: [("Authorization", viewer)]).status == 403, "metrics for a non-admin")
        let m = try await s.request(.GET, "/metrics", headers: [("Authorization", "Bearer " + token)])
        #expect(m.status == 200)
        #expect(m.header("Content-Type")?.hasPrefix("text/plain") == true)
        for series in [#"panlist_http_requests_total{route="/api/fs/list",method="POST",status="200"}"#,
                       #"panlist_http_request_duration_seconds_bucket{route="/api/fs/list",method="POST""#,
                       "panlist_http_response_bytes_total", "panlist_store_query_duration_seconds_bucket",
                       #"panlist_cache_lookups_total{cache="user",result="hit"}"#, #"panlist_storages{state="working"}"#] {
            #expect(m.text.contains(series), "missing \(series)")
        }
        // No secret or token in the metrics.
        #expect(!m.text.contains(token) && !m.text.contains(s.adminPassword))
    }

    @Test func aStoppingServerIsNotReady() async throws {
        let s = try await TestServer.start()
        defer { Task { await s.stop() } }
        s.state.beginDraining()
        let r = try await s.request(.GET, "/ready")
        #expect(r.status == 503)
        #expect(r.text.contains("shutting down"))
        #expect(try await s.request(.GET, "/ping").status == 200)
    }
}

@Suite("Running as a service: the database lost and back", .enabled(if: TestPostgres.installed, TestPostgres.skipMessage))
struct DatabaseLostTests {
    /// While the database refuses every connection, requests that need it answer 503 with the reason within
    /// database.wait_seconds, /ready says so, and once it is back both instances serve again by themselves.
    @Test func requestsAnswer503AndRecover() async throws {
        try await withCluster(extra: { $0.database.waitSeconds = 2 }) { c in
            var other = c.target
            other.database = "postgres"
            let admin = try await SQLStore.postgres(other)
            defer { Task { await admin.close() } }
            #expect(try await c.a.request(.GET, "/ready").status == 200)
            try await admin.db.raw("ALTER DATABASE \(ident: c.target.database) ALLOW_CONNECTIONS false").run()
            try await admin.db.raw("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(bind: c.target.database)").run()
            let started = ContinuousClock.now
            let login = try await c.a.api("/auth/login", ["username": "someone-new", "password": "whatever-1"])
            #expect(login.status == 503, "\(login.status) \(login.text)")
            #expect(login.message.contains("database"), "\(login.message)")
            #expect(ContinuousClock.now - started < .seconds(6))
            let ready = try await c.b.request(.GET, "/ready")
            #expect(ready.status == 503)
            #expect(ready.text.contains("database"), "\(ready.text)")
            try await admin.db.raw("ALTER DATABASE \(ident: c.target.database) ALLOW_CONNECTIONS true").run()
            for s in [c.a, c.b] {
                #expect(await Cluster.within(.seconds(20)) { try await s.request(.GET, "/ready").status == 200 }, "an instance did not recover")
                #expect(try await s.api("/auth/login", ["username": "admin", "password": c.a.adminPassword]).code == 200)
            }
        }
    }
}
