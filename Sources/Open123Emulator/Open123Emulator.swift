import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// An offline emulator of the 123 Open Platform API, on one HTTP listener that plays the API host,
/// the upload host and the CDNs. Start it in-process (tests) or through the `open123-emulator` executable.
public final class Open123Emulator: Sendable {
    public let config: EmulatorConfig
    let state: EmulatorState
    private let baseBox = NIOLockedValueBox<String>("")
    private let service = NIOLockedValueBox<BackgroundService?>(nil)

    /// The base URL (`http://127.0.0.1:PORT`) once started.
    public var baseURL: String { baseBox.withLockedValue { $0 } }

    init(config: EmulatorConfig) throws {
        self.config = config
        self.state = try EmulatorState(config: config)
    }

    func application(address: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        let box = baseBox
        Routes(state: state, base: { box.withLockedValue { $0 } }).register(router)
        var logger = Logger(label: "open123-emulator")
        logger.logLevel = .warning
        let host = address.contains(":") ? "[\(address)]" : address
        return Application(
            router: router,
            configuration: .init(address: .hostname(address, port: port), serverName: "open123-emulator"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                box.withLockedValue { $0 = "http://\(host):\(bound)" }
                await onRunning(bound)
            },
            logger: logger
        )
    }

    /// Starts an emulator in the background (port 0 picks a free port) and returns once it listens.
    public static func start(config: EmulatorConfig = EmulatorConfig(), address: String = "127.0.0.1", port: Int = 0) async throws -> Open123Emulator {
        let emulator = try Open123Emulator(config: config)
        let (stream, cont) = AsyncStream<Int>.makeStream()
        let app = emulator.application(address: address, port: port) { cont.yield($0) }
        emulator.service.withLockedValue { $0 = BackgroundService(app, logger: app.logger) }
        for await _ in stream { break }
        return emulator
    }

    /// Runs in the foreground until SIGINT/SIGTERM (the executable).
    public static func runForever(config: EmulatorConfig, address: String, port: Int,
                                  onRunning: @escaping @Sendable (String) async -> Void) async throws {
        let emulator = try Open123Emulator(config: config)
        let app = emulator.application(address: address, port: port) { _ in await onRunning(emulator.baseURL) }
        try await app.runService()
        await emulator.state.shutdown()
    }

    public func stop() async {
        await service.withLockedValue { $0 }?.stop()
        await state.shutdown()
    }

    // MARK: knobs (also under /__emulator/… over HTTP)

    public func expireAllTokens() async { await state.expireAllTokens() }
    public func revokeAllTokens() async { await state.revokeAllTokens() }
    /// Every live token expires just before the call to `path` that follows the next `calls` calls to it.
    public func expireTokens(after calls: Int, of path: String) async { await state.expireTokens(after: calls, of: path) }
    /// The next `count` API calls answer 429.
    public func failNextRequests(_ count: Int) async { await state.setForced429(count) }
    /// Each `upload_complete` answers "pending" (20103 and `completed: false`, alternating) for `polls` polls first.
    public func setCompletePending(polls: Int) async { await state.setCompletePending(polls) }
    public func failNextSlices(_ count: Int) async { await state.setFailSlices(count) }
    /// `count` more slices are accepted, then every slice fails (nil: no limit again).
    public func acceptSlices(_ count: Int?) async { await state.setSliceBudget(count) }
    /// Slices accepted (recorded for the first time) so far, over all uploads.
    public func slicesAccepted() async -> Int { await state.slicesAccepted }
    /// Slice requests received for a known upload session so far, accepted or not, repeats included.
    public func slicesReceived() async -> Int { await state.slicesReceived }
    /// Every upload session is forgotten, as when 123 lets a preuploadID expire.
    public func forgetUploads() async { await state.forgetUploads() }
    /// The next `count` CDN downloads answer HTTP `status` with a 123-style JSON body `{code, message}`.
    public func failNextDownloads(_ count: Int = 1, status: Int, code: Int, message: String) async {
        await state.setCDNFailure(count: count, status: status, code: code, message: message)
    }
    /// Every download URL handed out so far stops working (403), as 123's do after a while.
    public func expireDownloadLinks() async { await state.expireDownloadLinks() }
    /// CDN downloads being sent right now, and the bytes sent since start.
    public func cdnStats() async -> (active: Int, bytes: Int64) { (await state.cdnActive, await state.cdnBytes) }
    public func setDownloadQuota(daily: Int64? = nil, usedToday: Int64? = nil) async { await state.setQuota(daily: daily, used: usedToday) }
    public func enableDirectLink(folderID: Int64) async throws { _ = try await state.setDirectLink(folderID, enabled: true) }
    /// The application's secret is reset: every token is revoked and the old secret is refused.
    public func rotateClientSecret(_ secret: String) async { await state.rotateClientSecret(secret) }
    /// Each CDN download sends at most `bytesPerSecond` (nil: no limit), to watch work in flight.
    public func setDownloadRate(_ bytesPerSecond: Int64?) async { await state.setCDNRate(bytesPerSecond) }
    /// CDN GET downloads begun so far, by file content (its MD5 in lower-case hex).
    public func downloadCounts() async -> [String: Int] { await state.downloadCounts() }
    /// The next CDN download sends about half of its body, then drops the connection.
    public func dropNextDownload() async { await state.setDropNextBody() }
    /// Puts a file at `path` (for example `/Demo/readme.txt`) into the emulated drive; returns its file ID.
    @discardableResult
    public func seed(path: String, data: Data) async throws -> Int64 { try await state.seed(path: path, data: data) }
    public func setPrivateKey(_ key: String?) async { await state.setPrivateKey(key) }
    /// Calls per endpoint path since start (or the last reset).
    public func callCounts() async -> [String: Int] { await state.callCounts() }
    public func resetCallCounts() async { await state.resetCalls() }
}

extension APIFailure: CustomStringConvertible {
    var description: String { "code \(code): \(message)" }
}
