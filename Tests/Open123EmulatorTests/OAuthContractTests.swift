import Foundation
import Testing
@testable import Open123Emulator

@Suite("123 Open emulator: OAuth refresh tokens and copy forms")
struct OAuthContractTests {
    func grant(_ h: Harness, _ params: [(String, String)]) async throws -> Answer {
        var comps = URLComponents()
        comps.queryItems = params.map { URLQueryItem(name: $0.0, value: $0.1) }
        return try await h.raw(.POST, "/api/v1/oauth2/access_token?" + (comps.percentEncodedQuery ?? ""),
                               headers: [("Platform", "open_platform"), ("Content-Type", "application/json")])
    }

    func app(_ h: Harness) -> [(String, String)] {
        [("client_id", h.emu.config.oauthClientID), ("client_secret", h.emu.config.oauthClientSecret)]
    }

    /// A refresh token works once: the answer is flat JSON with a new refresh token and an access token that
    /// works; the old refresh token is refused after that (and counted), and the old access token dies.
    @Test func refreshTokensRotateAndWorkOnce() async throws {
        try await withEmulator { h in
            let first = await h.emu.issueRefreshToken()
            let r = try await grant(h, app(h) + [("grant_type", "refresh_token"), ("refresh_token", first)])
            #expect(r.json["code"] == nil, "\(String(decoding: r.body, as: UTF8.self))")
            let access = try #require(r.json["access_token"] as? String)
            let next = try #require(r.json["refresh_token"] as? String)
            #expect(next != first && (r.json["expires_in"] as? Int) == 7200 && r.json["token_type"] as? String == "Bearer")
            #expect(access.split(separator: ".").count == 3, "not JWT-shaped: \(access)")
            #expect(try await h.call(.GET, "/api/v1/user/info", token: access).code == 0)

            let again = try await grant(h, app(h) + [("grant_type", "refresh_token"), ("refresh_token", first)])
            #expect(again.code == 401 && again.message.contains("already been used"), "\(again.message)")
            let firstLive = await h.emu.isLiveRefreshToken(first), nextLive = await h.emu.isLiveRefreshToken(next)
            #expect(!firstLive && nextLive)

            let third = try await grant(h, app(h) + [("grant_type", "refresh_token"), ("refresh_token", next)])
            let access2 = try #require(third.json["access_token"] as? String)
            #expect(try await h.call(.GET, "/api/v1/user/info", token: access).code == 401, "the old access token still works")
            #expect(try await h.call(.GET, "/api/v1/user/info", token: access2).code == 0)
            let stats = await h.emu.oauthStats()
            #expect(stats.renewals == 2 && stats.reuses == 1)
            #expect(await h.emu.callCounts()["/api/v1/oauth2/access_token"] == 3)

            let wrongApp = try await grant(h, [("client_id", h.emu.config.oauthClientID), ("client_secret", "x"),
                                               ("grant_type", "refresh_token"), ("refresh_token", third.json["refresh_token"] as? String ?? "")])
            #expect(wrongApp.code != 0 && wrongApp.json["access_token"] == nil)
        }
    }

    @Test func authorizationCodeAndShortLivedTokens() async throws {
        try await withEmulator { h in
            await h.emu.setOAuthTokenTTL(1)
            let code = await h.emu.authorizationCode()
            let noRedirect = try await grant(h, app(h) + [("grant_type", "authorization_code"), ("code", code)])
            #expect(noRedirect.code != 0)
            let code2 = await h.emu.authorizationCode()
            let r = try await grant(h, app(h) + [("grant_type", "authorization_code"), ("code", code2), ("redirect_uri", "http://localhost/cb")])
            let access = try #require(r.json["access_token"] as? String)
            #expect((r.json["expires_in"] as? Int) == 1)
            #expect(try await grant(h, app(h) + [("grant_type", "authorization_code"), ("code", code2), ("redirect_uri", "x")]).code != 0)
            try await Task.sleep(for: .milliseconds(1200))
            #expect(try await h.call(.GET, "/api/v1/user/info", token: access).message == "token is expired")
            // A minted (pasted) token lives as long as asked.
            let minted = await h.emu.mintAccessToken(ttl: 60)
            #expect(try await h.call(.GET, "/api/v1/user/info", token: minted).code == 0)
        }
    }

    /// Copy endpoints: either casing of the target by default; one casing only, or one progress form only,
    /// when configured so.
    @Test func copyCasingsAndProgressForms() async throws {
        try await withEmulator { h in
            let dir = try await h.mkdir("into")
            let f = try await h.upload("c.txt", Data("copy me".utf8))
            #expect(try await h.call(.POST, "/api/v1/file/copy", ["fileId": f, "targetDirID": dir]).code == 0)
            await h.emu.setCopyModes(target: .documented)
            #expect(try await h.call(.POST, "/api/v1/file/copy", ["fileId": f, "targetDirID": dir]).code != 0)
            #expect(try await h.call(.POST, "/api/v1/file/copy", ["fileId": f, "targetDirId": dir]).code == 0)
            await h.emu.setCopyModes(target: .example)
            #expect(try await h.call(.POST, "/api/v1/file/copy", ["fileId": f, "targetDirId": dir]).code != 0)
            let started = try await h.call(.POST, "/api/v1/file/async/copy", ["fileIds": [f], "targetDirID": dir])
            let task = try #require(started.data.int("taskId"))

            await h.emu.setCopyModes(progress: .body)
            #expect(try await h.call(.GET, "/api/v1/file/async/copy/process?taskId=\(task)").code != 0)
            #expect(try await h.call(.GET, "/api/v1/file/async/copy/process", ["taskId": task]).data.int("status") == 2)
            #expect(try await h.call(.POST, "/api/v1/file/async/copy/process", ["taskId": task]).data.int("status") == 2)
            await h.emu.setCopyModes(progress: .query)
            #expect(try await h.call(.GET, "/api/v1/file/async/copy/process", ["taskId": task]).code != 0)
            #expect(try await h.call(.GET, "/api/v1/file/async/copy/process?taskId=\(task)").data.int("status") == 2)
            await h.emu.setCopyModes(progress: .post)
            #expect(try await h.call(.GET, "/api/v1/file/async/copy/process?taskId=\(task)", ["taskId": task]).code != 0)
            #expect(try await h.call(.POST, "/api/v1/file/async/copy/process", ["taskId": task]).data.int("status") == 2)
        }
    }
}
