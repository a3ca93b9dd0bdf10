import Foundation
import Open123Emulator
import Testing
@testable import Driver123Open
@testable import PanListCore
@testable import PanListServer
@testable import PanListStore

/// WebDAV locks, the 123 Open token and the upstream request budget, shared by two instances on one database.
@Suite("Several instances: WebDAV locks, cloud token, request budget", .enabled(if: TestPostgres.installed, TestPostgres.skipMessage))
struct ClusterSharedTests {
    static let lockBody = Data("""
        <?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>\
        <D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>
        """.utf8)

    func basic(_ s: TestServer) -> (String, String) {
        ("Authorization", "Basic " + Data("admin:\(s.adminPassword)".utf8).base64EncodedString())
    }

    /// A lock taken on A is honoured on B: B refuses a PUT without the token (423) and takes one with it;
    /// an UNLOCK on B frees the resource on A.
    @Test func aLockTakenOnAHoldsOnB() async throws {
        try await withCluster { c in
            let lock = try await c.a.request(.LOCK, "/dav/locked.txt", headers: [basic(c.a), ("Timeout", "Second-600")], body: Self.lockBody)
            #expect(lock.status == 201, "\(lock.text)")
            let token = try #require(lock.header("Lock-Token"))
            let put = try await c.b.request(.PUT, "/dav/locked.txt", headers: [basic(c.b)], body: Data("x".utf8))
            #expect(put.status == 423, "B wrote over a lock taken on A")
            let propfind = try await c.b.request(.PROPFIND, "/dav/locked.txt", headers: [basic(c.b), ("Depth", "0")])
            #expect(propfind.text.contains(token.trimmingCharacters(in: CharacterSet(charactersIn: "<>"))), "B's lockdiscovery does not show A's lock")
            let withToken = try await c.b.request(.PUT, "/dav/locked.txt", headers: [basic(c.b), ("If", "(\(token))")], body: Data("y".utf8))
            #expect([200, 201, 204].contains(withToken.status), "\(withToken.status) \(withToken.text)")
            #expect(try await c.b.request(.UNLOCK, "/dav/locked.txt", headers: [basic(c.b), ("Lock-Token", token)]).status == 204)
            let after = try await c.a.request(.PUT, "/dav/locked.txt", headers: [basic(c.a)], body: Data("z".utf8))
            #expect([200, 201, 204].contains(after.status), "A still holds a lock released on B")
        }
    }

    /// A file of a shared local folder replaced or deleted through B is seen so at once through A, although A
    /// looked it up a moment before (the Local driver keeps lookups for a second).
    @Test func aLocalFileChangedOnBIsFreshOnA() async throws {
        try await withCluster { c in
            func length(_ s: TestServer) async throws -> (Int, String?) {
                let r = try await s.request(.PROPFIND, "/dav/fresh.txt", headers: [basic(s), ("Depth", "0")])
                let m = r.text.range(of: "<D:getcontentlength>")
                let len = m.map { String(r.text[$0.upperBound...].prefix { $0.isNumber }) }
                return (r.status, len)
            }
            let first = try await c.a.request(.PUT, "/dav/fresh.txt", headers: [basic(c.a)], body: Data("one".utf8)).status
            #expect([201, 204].contains(first))
            let seen = try await length(c.a)
            #expect(seen == (207, "3"))
            let second = try await c.b.request(.PUT, "/dav/fresh.txt", headers: [basic(c.b)], body: Data("second version".utf8)).status
            #expect([201, 204].contains(second))
            #expect(await Cluster.within(.milliseconds(300)) { try await length(c.a) == (207, "14") }, "A served the old size")
            #expect(try await c.b.request(.DELETE, "/dav/fresh.txt", headers: [basic(c.b)]).status == 204)
            #expect(await Cluster.within(.milliseconds(300)) { try await length(c.a).0 == 404 }, "A still served a file deleted through B")
        }
    }

    /// Of 20 exclusive LOCKs of one resource sent at once, 10 to each instance, exactly one wins.
    @Test func oneOfTwentyConcurrentLocksWins() async throws {
        try await withCluster { c in
            _ = try await c.a.request(.PUT, "/dav/contended.txt", headers: [basic(c.a)], body: Data("x".utf8))
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<20 {
                    let s = i % 2 == 0 ? c.a : c.b
                    let auth = basic(s)
                    group.addTask {
                        try await s.request(.LOCK, "/dav/contended.txt", headers: [auth, ("Timeout", "Second-600")], body: Self.lockBody).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count == 1, "winners: \(statuses.sorted())")
            #expect(statuses.filter { $0 == 423 }.count == 19, "\(statuses.sorted())")
        }
    }

    /// A lock's timeout ends it on both instances.
    @Test func aTimeoutEndsTheLockOnBoth() async throws {
        try await withCluster { c in
            // The lock lasts 2 s from its creation, which comes after `asked`: a PUT answered within 2 s of `asked`
            // was refused while the lock held (on a machine busy enough to take longer, only the end is checked).
            let asked = ContinuousClock.now
            let lock = try await c.a.request(.LOCK, "/dav/brief.txt", headers: [basic(c.a), ("Timeout", "Second-2")], body: Self.lockBody)
            // …and it was made before its answer came: it has ended 2 s after that.
            let made = ContinuousClock.now
            #expect(lock.status == 201)
            let blocked = try await c.b.request(.PUT, "/dav/brief.txt", headers: [basic(c.b)], body: Data("x".utf8)).status
            if ContinuousClock.now - asked < .seconds(2) { #expect(blocked == 423) }
            try await Task.sleep(until: made + .milliseconds(2300))
            for s in [c.a, c.b] {
                let put = try await s.request(.PUT, "/dav/brief.txt", headers: [basic(s)], body: Data("y".utf8))
                #expect([200, 201, 204].contains(put.status), "a lock outlived its timeout: \(put.status)")
            }
        }
    }

    /// Mounts one 123 Open storage through A (so on both) and returns each instance's API client for it.
    func mount123(_ c: Cluster, _ emu: Open123Emulator, _ ec: EmulatorConfig) async throws -> (Open123Client, Open123Client) {
        let ta = try await c.a.login()
        let addition = try String(decoding: JSONSerialization.data(withJSONObject: [
            "ClientID": ec.clientID, "ClientSecret": ec.clientSecret, "base_url": emu.baseURL]), as: UTF8.self)
        let r = try await c.a.api("/admin/storage/create", ["mount_path": "/123", "driver": "123 Open", "addition": addition], token: ta)
        #expect(r.code == 200, "\(r.text)")
        let id = try #require(r.data["id"] as? Int)
        #expect(await Cluster.within(.seconds(5)) { c.b.state.fs.storage(id: id)?.isWorking == true })
        let da = try #require(c.a.state.fs.storage(id: id)?.driver as? Open123Driver)
        let db = try #require(c.b.state.fs.storage(id: id)?.driver as? Open123Driver)
        return (da.client, db.client)
    }

    /// The token 123 knows is revoked while 40 requests are under way, 20 on each instance: each gets a
    /// 401, and the whole cluster makes exactly one access_token call (the instance that waits for the
    /// lock finds the new token in the store). (200 at once were seen wait past the client's connect timeout
    /// for a pooled connection on a loaded CI run.)
    @Test func theTokenIsRefreshedOnceForTheCluster() async throws {
        var ec = EmulatorConfig()
        ec.clientID = "storm-" + UUID().uuidString.prefix(8)
        ec.rateLimits = .off
        let emu = try await Open123Emulator.start(config: ec)
        defer { Task { await emu.stop() } }
        try await withCluster { c in
            let fileID = try await emu.seed(path: "/probe.txt", data: Data("probe".utf8))
            let (ca, cb) = try await mount123(c, emu, ec)
            #expect(try await ca.tokens.current() == cb.tokens.current(), "B fetched its own token instead of A's")
            await emu.revokeAllTokens()
            await emu.resetCallCounts()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<40 {
                    let client = i % 2 == 0 ? ca : cb
                    group.addTask {
                        _ = try await client.call(.GET, "/api/v1/file/detail", query: [("fileID", String(fileID))], as: UserInfoProbe.self)
                    }
                }
                try await group.waitForAll()
            }
            let calls = await emu.callCounts()["/api/v1/access_token"] ?? 0
            #expect(calls == 1, "access_token calls during the storm: \(calls)")
        }
    }

    /// Both instances list the same 123 drive as fast as they are let: with the budget shared through the
    /// store, 123 never answers 429 (each instance alone would pace itself at the full rate, twice too fast).
    @Test func bothInstancesShareTheRequestBudget() async throws {
        var ec = EmulatorConfig()
        ec.clientID = "budget-" + UUID().uuidString.prefix(8)
        let emu = try await Open123Emulator.start(config: ec)
        defer { Task { await emu.stop() } }
        try await withCluster { c in
            let (ca, cb) = try await mount123(c, emu, ec)
            try await Task.sleep(for: .seconds(1))  // the emulator's bucket refills after the mounts
            await emu.resetCallCounts()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<16 {
                    let client = i % 2 == 0 ? ca : cb
                    group.addTask {
                        _ = try await client.call(.GET, "/api/v2/file/list", query: [("parentFileId", "0"), ("limit", "1")], as: ListProbe.self)
                    }
                }
                try await group.waitForAll()
            }
            let calls = await emu.callCounts()["/api/v2/file/list"] ?? 0
            #expect(calls == 16, "\(calls - 16) calls were refused with 429 and retried")
        }
    }
}

struct UserInfoProbe: Decodable {}
struct ListProbe: Decodable {}

@Suite("Several instances: one process per instance id", .enabled(if: TestPostgres.installed, TestPostgres.skipMessage))
struct InstanceIDTests {
    /// A second server given the id of a running one (a copied data folder) is refused before it empties the
    /// temp folder both would use; a file spooled there by the first one is still there.
    @Test func aRunningInstanceIDIsRefused() async throws {
        try await withCluster { c in
            let id = c.a.state.config.instanceID
            let spool = c.a.state.config.tempDir + "/in-flight.part"
            try Data("spooled".utf8).write(to: URL(fileURLWithPath: spool))
            let target = c.target
            let refused = await #expect(throws: FSError.self) {
                let s = try await TestServer.start(adjust: { cfg in
                    cfg.database.type = "postgres"
                    cfg.database.host = target.host
                    cfg.database.port = target.port
                    cfg.database.user = target.user
                    cfg.database.name = target.database
                    cfg.instanceID = id
                    cfg.tempDir = (c.a.state.config.tempDir as NSString).deletingLastPathComponent
                })
                await s.stop()
            }
            if case .conflict(let m) = refused { #expect(m.contains("instance_id")) } else { Issue.record("refused for another reason: \(String(describing: refused))") }
            #expect(FileManager.default.fileExists(atPath: spool), "the second server emptied the first one's temp folder")
        }
    }
}
