import Foundation
import Logging
import Open123Emulator
import Testing
@testable import Driver123Open
@testable import PanListCore
@testable import PanListServer

/// A PanList server with a `123 Open` storage at /123 made from `addition` (base_url added), on a fresh emulator.
func withAuthCloud(_ configure: (inout EmulatorConfig) -> Void = { _ in }, logger: Logger? = nil,
                   addition: @escaping @Sendable (EmulatorConfig, Open123Emulator) async -> [String: Any],
                   _ body: (TestServer, Open123Emulator, String, Int) async throws -> Void) async throws {
    var c = EmulatorConfig()
    c.clientID = "client-" + UUID().uuidString.prefix(8)
    c.rateLimits = .off
    configure(&c)
    let emu = try await Open123Emulator.start(config: c)
    do {
        try await withServer(logger: logger) { s in
            let t = try await s.login()
            var fields = await addition(c, emu)
            fields["base_url"] = emu.baseURL
            let text = try String(decoding: JSONSerialization.data(withJSONObject: fields), as: UTF8.self)
            let r = try await s.api("/admin/storage/create", ["mount_path": "/123", "driver": "123 Open", "addition": text, "cache_expiration": 0], token: t)
            #expect(r.code == 200, "\(r.text)")
            try await body(s, emu, t, r.data["id"] as? Int ?? 0)
        }
    } catch {
        await emu.stop()
        throw error
    }
    await emu.stop()
}

func names(_ s: TestServer, _ t: String, _ path: String = "/123") async throws -> [String] {
    let r = try await s.api("/fs/list", ["path": path], token: t)
    #expect(r.code == 200, "\(r.text)")
    return ((r.data["content"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }.sorted()
}

func storageStatus(_ s: TestServer, _ t: String, _ id: Int) async throws -> String {
    let r = try await s.api("/admin/storage/get?id=\(id)", token: t, method: .GET)
    // The live note, when there is one, comes beside "work" (`status_note`); read together as "work (note)".
    guard let status = r.data["status"] as? String else { return r.text }
    if let note = r.data["status_note"] as? String, !note.isEmpty {
        #expect(status == "work", "status must stay exactly 'work' for Alist's front end: \(r.text)")
        return status + " (" + note + ")"
    }
    return status
}

func openDriver(_ s: TestServer, _ id: Int) throws -> Open123Driver {
    try #require(s.state.fs.storage(id: id)?.driver as? Open123Driver)
}

/// The refresh-token chain's state key (as the driver names it).
func oauthStateKey(_ emu: Open123Emulator, seed: String) -> String {
    "123open.oauth." + emu.baseURL + " " + emu.config.oauthClientID + " " + TokenManager.tag(seed)
}

/// A refresh-token storage; the v2 list left unpaced, so that many requests meet one renewal at once.
func refreshAddition(_ seed: String) -> @Sendable (EmulatorConfig, Open123Emulator) async -> [String: Any] {
    { c, _ in ["auth_mode": "refresh_token", "ClientID": c.oauthClientID, "ClientSecret": c.oauthClientSecret, "RefreshToken": seed,
               "rate_limits": "/api/v2/file/list=0"] }
}

@Suite("123 Open: auth modes, renewal, copy forms and pacing, against the emulator")
struct Open123AuthTests {
    @Test func clientCredentialsModeNamedExplicitly() async throws {
        try await withAuthCloud(addition: { c, emu in
            _ = try? await emu.seed(path: "/cc.txt", data: Data("cc".utf8))
            return ["auth_mode": "client_credentials", "ClientID": c.clientID, "ClientSecret": c.clientSecret]
        }) { s, _, t, id in
            let listed = try await names(s, t), status = try await storageStatus(s, t, id)
            #expect(listed == ["cc.txt"])
            #expect(status == "work")
        }
    }

    /// A pasted token lists; its expiry (from the JWT) is in the status; secrets are masked in the answer and
    /// never reach the log.
    @Test func accessTokenModeListsAndShowsItsExpiry() async throws {
        let log = CapturingLog()
        let box = Box()
        try await withAuthCloud(logger: log.logger(level: .trace), addition: { _, emu in
            _ = try? await emu.seed(path: "/pasted.txt", data: Data("p".utf8))
            let token = await emu.mintAccessToken(ttl: 3 * 86400 + 600)
            box.set(token)
            return ["auth_mode": "access_token", "AccessToken": token]
        }) { s, emu, t, id in
            #expect(try await names(s, t) == ["pasted.txt"])
            let status = try await storageStatus(s, t, id)
            #expect(status.hasPrefix("work (pasted access token expires ") && status.contains("in 3 days"), "\(status)")
            let shown = try await s.api("/admin/storage/get?id=\(id)", token: t, method: .GET)
            #expect(!shown.text.contains(box.value) && shown.text.contains("******"), "\(shown.text)")
            // No access_token or oauth2 calls: the pasted token is used as it is.
            let calls = await emu.callCounts()
            #expect(calls["/api/v1/access_token"] == nil && calls["/api/v1/oauth2/access_token"] == nil)
        }
        #expect(!log.text.contains(box.value), "the pasted token reached the log")
    }

    /// The pasted token lapses (its own expiry): the status and every call say to paste a new token. A token
    /// 123 refuses (revoked) gives the same advice.
    @Test func accessTokenLapsedGivesAClearError() async throws {
        // 12 s of life: the storage is made and listed well inside it on a loaded machine (4 s was seen lapse
        // before the storage was made); then the test waits out the rest, from the minting.
        let minted = Box()
        try await withAuthCloud(addition: { _, emu in
            minted.set(String(Date().timeIntervalSince1970))
            return ["auth_mode": "access_token", "AccessToken": await emu.mintAccessToken(ttl: 12)]
        }) { s, _, t, id in
            #expect(try await names(s, t).isEmpty)
            let lapse = (Double(minted.value) ?? 0) + 12.3 - Date().timeIntervalSince1970
            if lapse > 0 { try await Task.sleep(for: .milliseconds(Int(lapse * 1000))) }
            let r = try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t)
            #expect(r.code != 200 && r.message.contains("paste a new access token"), "\(r.text)")
            let status = try await storageStatus(s, t, id)
            #expect(status.contains("expired") && status.contains("paste a new access token"), "\(status)")
        }
        try await withAuthCloud(addition: { _, emu in
            ["auth_mode": "access_token", "AccessToken": await emu.mintAccessToken(ttl: 3600), "AccessTokenExpiry": "2099-01-01T00:00:00+08:00"]
        }) { s, emu, t, id in
            #expect(try await storageStatus(s, t, id).contains("2098-12-31 16:00 UTC"))
            await emu.revokeAllTokens()
            let r = try await s.api("/fs/list", ["path": "/123", "refresh": true], token: t)
            #expect(r.code != 200 && r.message.contains("refused the pasted access token") && r.message.contains("paste a new access token"), "\(r.text)")
            #expect(try await storageStatus(s, t, id).contains("paste a new access token"))
        }
    }

    /// Refresh-token mode lists; the pasted refresh token was used once and the new one is in the store.
    @Test func refreshTokenModeListsAndKeepsTheRotatedToken() async throws {
        let box = Box(), rotatedBox = Box()
        let log = CapturingLog()
        try await withAuthCloud(logger: log.logger(level: .trace), addition: { c, emu in
            _ = try? await emu.seed(path: "/oauth.txt", data: Data("o".utf8))
            let seed = await emu.issueRefreshToken()
            box.set(seed)
            return await refreshAddition(seed)(c, emu)
        }) { s, emu, t, id in
            let seed = box.value
            #expect(try await names(s, t) == ["oauth.txt"])
            let stored = try #require(try await s.state.store.driverState(oauthStateKey(emu, seed: seed)))
            let saved = try JSONDecoder().decode(TokenManager.Saved.self, from: Data(stored.utf8))
            let rotated = try #require(saved.refreshToken)
            #expect(rotated != seed)
            let rotatedLive = await emu.isLiveRefreshToken(rotated), seedLive = await emu.isLiveRefreshToken(seed)
            #expect(rotatedLive && !seedLive)
            let stats = await emu.oauthStats()
            #expect(stats.renewals == 1 && stats.reuses == 0)
            #expect(try await storageStatus(s, t, id).hasPrefix("work (access token renewed with the refresh token"))
            let shown = try await s.api("/admin/storage/get?id=\(id)", token: t, method: .GET)
            #expect(!shown.text.contains(seed) && !shown.text.contains(rotated))
            rotatedBox.set(rotated)
        }
        #expect(!log.text.contains(box.value) && !log.text.contains(rotatedBox.value), "a refresh token reached the log")
        #expect(!log.text.contains("emulator-oauth-secret"), "the OAuth app's secret reached the log")
    }

    /// The access token dies while 20 requests wait: exactly one renewal, all 20 succeed, the store holds the
    /// new refresh token, and no refresh token is ever sent twice. Seen failing with TokenManager's in-process
    /// guard (the shared `refreshing` task) switched off: the waiters renewed with the same refresh token and
    /// all but one were refused ("refresh_token has already been used").
    @Test func twentyWaitersShareOneRenewal() async throws {
        let box = Box()
        try await withAuthCloud(addition: { c, emu in
            let seed = await emu.issueRefreshToken()
            box.set(seed)
            return await refreshAddition(seed)(c, emu)
        }) { s, emu, t, id in
            let client = try openDriver(s, id).client
            #expect(await emu.oauthStats().renewals == 1)
            await emu.setOAuthDelay(.milliseconds(300))
            await emu.expireAllTokens()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        _ = try await client.call(.GET, "/api/v2/file/list", query: [("parentFileId", "0"), ("limit", "1")], as: ListProbe.self)
                    }
                }
                try await group.waitForAll()
            }
            let stats = await emu.oauthStats()
            #expect(stats.renewals == 2, "renewals: \(stats.renewals) (one at mount, one for the 20)")
            #expect(stats.reuses == 0, "a used refresh token was sent again \(stats.reuses) times")
            let stored = try #require(try await s.state.store.driverState(oauthStateKey(emu, seed: box.value)))
            let saved = try JSONDecoder().decode(TokenManager.Saved.self, from: Data(stored.utf8))
            #expect(await emu.isLiveRefreshToken(saved.refreshToken ?? ""), "the store does not hold the live refresh token")
            #expect(await client.tokens.snapshot?.refreshToken == saved.refreshToken)
        }
    }

    /// Short-lived tokens (10 s): renewed ahead of expiry (a fifth of their life early), so no call meets a 401,
    /// and the chain never breaks. A call 8.5 s into a token's life renews first (without renewing ahead it would
    /// go out with the old token: one renewal fewer). 3-s tokens were seen expire in flight on a loaded test run
    /// (a request taking longer than their 0.6-s margin to reach the emulator).
    @Test func shortLivedTokensRenewAheadOfExpiry() async throws {
        try await withAuthCloud({ $0.oauthTokenTTL = 10 }, addition: { c, emu in
            await refreshAddition(await emu.issueRefreshToken())(c, emu)
        }) { s, emu, t, id in
            let client = try openDriver(s, id).client
            for _ in 0..<2 {
                _ = try await client.call(.GET, "/api/v1/user/info", as: UserInfoProbe.self)
                try await Task.sleep(for: .milliseconds(8500))
            }
            _ = try await client.call(.GET, "/api/v1/user/info", as: UserInfoProbe.self)
            let stats = await emu.oauthStats()
            // Three renewals (one at mount, one before each later call); a fourth when the mount's token lived
            // out its renewal window before the first call on a loaded machine.
            #expect((3...4).contains(stats.renewals) && stats.reuses == 0, "\(stats)")
            #expect(await emu.callCounts()["/api/v1/user/info"] == 3, "a call met an expired token and was sent again")
        }
    }

    @Test func missingOrBadSettingsAreRefusedClearly() async throws {
        try await withServer { s in
            let t = try await s.login()
            func create(_ fields: [String: Any]) async throws -> HTTPResult {
                var f = fields
                f["base_url"] = "http://127.0.0.1:9"
                let text = try String(decoding: JSONSerialization.data(withJSONObject: f), as: UTF8.self)
                return try await s.api("/admin/storage/create", ["mount_path": "/x" + UUID().uuidString.prefix(6), "driver": "123 Open", "addition": text], token: t)
            }
            let before = try await s.state.store.storages().count
            let noToken = try await create(["auth_mode": "access_token"])
            #expect(noToken.code == 400 && noToken.message.hasPrefix("AccessToken is required for auth_mode access_token"), "\(noToken.text)")
            let noRefresh = try await create(["auth_mode": "refresh_token", "ClientID": "a", "ClientSecret": "b"])
            #expect(noRefresh.code == 400 && noRefresh.message.hasPrefix("RefreshToken is required"), "\(noRefresh.text)")
            let noSecret = try await create(["ClientID": "a"])
            #expect(noSecret.code == 400 && noSecret.message.hasPrefix("ClientSecret is required for auth_mode client_credentials"), "\(noSecret.text)")
            let badMode = try await create(["auth_mode": "password"])
            #expect(badMode.code == 400 && badMode.message.hasPrefix("auth_mode must be one of"), "\(badMode.text)")
            let badRates = try await create(["auth_mode": "access_token", "AccessToken": "x", "rate_limits": "/api/v2/file/list=3\nlist=fast"])
            #expect(badRates.code == 400 && badRates.message.hasPrefix("rate_limits item 2 ('list=fast') is not PATH=QPS"), "\(badRates.text)")
            let badExpiry = try await create(["auth_mode": "access_token", "AccessToken": "x", "AccessTokenExpiry": "soon"])
            #expect(badExpiry.code == 400 && badExpiry.message.hasPrefix("AccessTokenExpiry 'soon' is not a time"), "\(badExpiry.text)")
            #expect(try await s.state.store.storages().count == before, "a refused storage was saved")
        }
    }

    // MARK: copy

    /// Files and folders copy whichever casing of the target and whichever progress form the server takes
    /// (`.post`: the GET is refused, the driver falls back to a POST).
    @Test(arguments: [(CopyTargetField.documented, CopyProgressForm.query), (.example, .body), (.either, .either), (.documented, .post)])
    func copyWithEachCasingAndForm(_ target: CopyTargetField, _ progress: CopyProgressForm) async throws {
        try await withAuthCloud({ $0.copyTargetField = target; $0.copyProgressForm = progress }, addition: { c, emu in
            _ = try? await emu.seed(path: "/src/a.txt", data: Data("a".utf8))
            _ = try? await emu.seed(path: "/f.txt", data: Data("f".utf8))
            _ = try? await emu.seed(path: "/dst/keep.txt", data: Data("k".utf8))
            return ["ClientID": c.clientID, "ClientSecret": c.clientSecret]
        }) { s, _, t, id in
            let d = try openDriver(s, id)
            let top = try await d.list(dir: try await d.root())
            let src = try #require(top.first { $0.name == "src" }), dst = try #require(top.first { $0.name == "dst" })
            let file = try #require(top.first { $0.name == "f.txt" })
            _ = try await d.copy(file, to: dst)
            _ = try await d.copy(src, to: dst)
            #expect(try await names(s, t, "/123/dst") == ["f.txt", "keep.txt", "src"])
            #expect(try await names(s, t, "/123/dst/src") == ["a.txt"])
        }
    }

    // MARK: pacing

    /// The storage's rate_limits replace the default pace of an endpoint.
    @Test func rateLimitsSettingPacesAnEndpoint() async throws {
        try await withAuthCloud(addition: { c, _ in
            ["ClientID": c.clientID, "ClientSecret": c.clientSecret, "rate_limits": "# slow listing\n/api/v2/file/list = 4\n/api/v1/user/info=0"]
        }) { s, _, _, id in
            let client = try openDriver(s, id).client
            #expect(client.rates["/api/v2/file/list"] == 4 && client.rates["/api/v1/user/info"] == 0 && client.rates["/api/v1/file/move"] == 3)
            try await Task.sleep(for: .milliseconds(300))
            let start = ContinuousClock.now
            for _ in 0..<5 { _ = try await client.call(.GET, "/api/v2/file/list", query: [("parentFileId", "0"), ("limit", "1")], as: ListProbe.self) }
            #expect(ContinuousClock.now - start >= .milliseconds(900), "5 calls at 4 per second took \(ContinuousClock.now - start)")
        }
    }

    /// A 429 halves the endpoint's pace (the call itself still succeeds after its backoff), and a burst over
    /// the real limit settles without failing any call.
    @Test func pacingLearnsFrom429() async throws {
        try await withAuthCloud({ $0.rateLimits = .official }, addition: { c, _ in
            // Too fast for the emulator's 5 per second on the v2 list: only the 429s can slow it down.
            ["ClientID": c.clientID, "ClientSecret": c.clientSecret, "rate_limits": "/api/v2/file/list=40"]
        }) { s, emu, _, id in
            let client = try openDriver(s, id).client
            let limiter = RateLimiter.local(for: client.state)
            try await Task.sleep(for: .seconds(1))
            await emu.failNextRequests(1)
            _ = try await client.call(.GET, "/api/v1/user/info", as: UserInfoProbe.self)
            #expect(await limiter.factor(clientID: client.clientID, endpoint: "/api/v1/user/info") == 0.5)
            await emu.resetCallCounts()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<25 {
                    group.addTask {
                        _ = try await client.call(.GET, "/api/v2/file/list", query: [("parentFileId", "0"), ("limit", "1")], as: ListProbe.self)
                    }
                }
                try await group.waitForAll()
            }
            let factor = await limiter.factor(clientID: client.clientID, endpoint: "/api/v2/file/list")
            // Halved once per 429 it met (how many 429s there are depends on how fast this machine is today).
            #expect(factor <= 0.5, "the list's pace was not lowered: \(factor)")
            let calls = await emu.callCounts()["/api/v2/file/list"] ?? 0
            #expect(calls < 75, "\(calls - 25) calls were refused with 429 and retried")
        }
    }
}

@Suite("123 Open refresh tokens on two instances", .enabled(if: TestPostgres.installed, TestPostgres.skipMessage))
struct Open123AuthClusterTests {
    /// Two instances on one PostgreSQL, one refresh-token storage: the mount renews once for both, and when the
    /// access token dies under 20 requests (10 on each) the cluster renews exactly once more; no refresh token
    /// is sent twice, and the store holds the live one. Seen failing with the cluster lock switched off
    /// (renewals outside `withLock`): B renewed with the refresh token A had already used, was refused, and
    /// did not even mount.
    @Test func oneRenewalForTheCluster() async throws {
        var ec = EmulatorConfig()
        ec.clientID = "oauth-" + UUID().uuidString.prefix(8)
        ec.rateLimits = .off
        let emu = try await Open123Emulator.start(config: ec)
        defer { Task { await emu.stop() } }
        try await withCluster { c in
            let seed = await emu.issueRefreshToken()
            let ta = try await c.a.login()
            let addition = try String(decoding: JSONSerialization.data(withJSONObject: [
                "auth_mode": "refresh_token", "ClientID": ec.oauthClientID, "ClientSecret": ec.oauthClientSecret,
                "RefreshToken": seed, "rate_limits": "/api/v2/file/list=0", "base_url": emu.baseURL]), as: UTF8.self)
            let r = try await c.a.api("/admin/storage/create", ["mount_path": "/123", "driver": "123 Open", "addition": addition], token: ta)
            #expect(r.code == 200, "\(r.text)")
            let id = try #require(r.data["id"] as? Int)
            #expect(await Cluster.within(.seconds(5)) { c.b.state.fs.storage(id: id)?.isWorking == true })
            let ca = try openDriver(c.a, id).client, cb = try openDriver(c.b, id).client
            #expect(try await ca.tokens.current() == cb.tokens.current(), "B renewed on its own instead of taking A's token")
            #expect(await emu.oauthStats().renewals == 1)
            await emu.setOAuthDelay(.milliseconds(300))
            await emu.expireAllTokens()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<20 {
                    let client = i % 2 == 0 ? ca : cb
                    group.addTask {
                        _ = try await client.call(.GET, "/api/v2/file/list", query: [("parentFileId", "0"), ("limit", "1")], as: ListProbe.self)
                    }
                }
                try await group.waitForAll()
            }
            let stats = await emu.oauthStats()
            #expect(stats.renewals == 2, "renewals: \(stats.renewals) (one at mount, one for the 20)")
            #expect(stats.reuses == 0, "a used refresh token was sent again \(stats.reuses) times")
            let stored = try #require(try await c.a.state.store.driverState(oauthStateKey(emu, seed: seed)))
            let saved = try JSONDecoder().decode(TokenManager.Saved.self, from: Data(stored.utf8))
            #expect(await emu.isLiveRefreshToken(saved.refreshToken ?? ""))
        }
    }
}

/// A value set inside a closure and read after it.
final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var v = ""
    var value: String { lock.withLock { v } }
    func set(_ s: String) { lock.withLock { v = s } }
}
