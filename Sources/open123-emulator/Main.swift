import ArgumentParser
import Foundation
import Open123Emulator

@main
struct Open123EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open123-emulator",
        abstract: "An offline emulator of the 123 Open Platform API (123云盘开放平台).")

    @Option(help: "Address to listen on.") var address = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8123
    @Option(help: "Folder where state and file contents persist; without it everything is temporary.") var data: String?
    @Option(name: .customLong("client-id"), help: "The accepted client ID.") var clientID = "emulator-client"
    @Option(name: .customLong("client-secret"), help: "The accepted client secret.") var clientSecret = "emulator-secret"
    @Option(help: "The account's uid.") var uid: Int64 = 1_814_442_530
    @Flag(help: "Emulate a VIP account.") var vip = false
    @Option(name: .customLong("slice-size"), help: "Slice size announced for uploads, in bytes.") var sliceSize: Int64 = 16 << 20
    @Option(name: .customLong("token-ttl"), help: "Seconds an access token lives.") var tokenTTL: Double = 30 * 24 * 3600
    @Option(name: .customLong("max-tokens"), help: "Live tokens per client before the oldest is evicted.") var maxTokens = 3
    @Option(name: .customLong("rate-limits"), help: "official, off, or a factor applied to the official QPS.") var rateLimits = "official"
    @Option(name: .customLong("private-key"), help: "Direct-link URL-authentication key.") var privateKey: String?
    @Option(name: .customLong("oauth-client-id"), help: "client_id of the OAuth app oauth2/access_token accepts.") var oauthClientID = "emulator-oauth-app"
    @Option(name: .customLong("oauth-client-secret"), help: "client_secret of that OAuth app.") var oauthClientSecret = "emulator-oauth-secret"
    @Option(name: .customLong("oauth-token-ttl"), help: "Seconds an OAuth access token lives (expires_in).") var oauthTokenTTL: Double = 7200
    @Option(name: .customLong("copy-target"), help: "Copy target field accepted: either, targetDirId or targetDirID.") var copyTarget = "either"
    @Option(name: .customLong("copy-progress"), help: "Copy progress form accepted: either, query, body or post.") var copyProgress = "either"

    func run() async throws {
        guard let mode = RateLimitMode(argument: rateLimits) else {
            throw ValidationError("--rate-limits must be official, off or a positive number")
        }
        guard let target = CopyTargetField(rawValue: copyTarget), let progress = CopyProgressForm(rawValue: copyProgress) else {
            throw ValidationError("--copy-target must be either, targetDirId or targetDirID; --copy-progress either, query, body or post")
        }
        guard sliceSize > 0, maxTokens > 0, tokenTTL > 0, oauthTokenTTL > 0 else { throw ValidationError("sizes and counts must be positive") }
        var config = EmulatorConfig()
        config.clientID = clientID
        config.clientSecret = clientSecret
        config.uid = uid
        config.vip = vip
        config.sliceSize = sliceSize
        config.tokenTTL = tokenTTL
        config.maxTokens = maxTokens
        config.rateLimits = mode
        config.privateKey = privateKey
        config.oauthClientID = oauthClientID
        config.oauthClientSecret = oauthClientSecret
        config.oauthTokenTTL = oauthTokenTTL
        config.copyTargetField = target
        config.copyProgressForm = progress
        if let data {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            config.dataDir = (data as NSString).standardizingPath
        }
        let id = clientID, secret = clientSecret
        try await Open123Emulator.runForever(config: config, address: address, port: port) { base in
            let text = """
                open123-emulator listening on \(base)
                  base_url:      \(base)
                  client id:     \(id)
                  client secret: \(secret)
                  knobs:         POST \(base)/__emulator/… (see docs/EMULATOR.md)

                """
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
