import AsyncHTTPClient
import Foundation
import NIOCore
import PanListCore
@testable import PanListServer

/// A real aria2c on 127.0.0.1 with an RPC secret, stopped with the test (and by aria2 itself if this test
/// process dies: `--stop-with-process`).
final class Aria2Process: @unchecked Sendable {
    let process: Process
    let port: Int
    let secret: String
    let dir: TempDir

    var uri: String { "http://127.0.0.1:\(port)/jsonrpc" }

    static var binary: String? {
        ["/usr/bin/aria2c", "/usr/local/bin/aria2c"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    /// aria2 tests run where aria2c is installed, and always in CI (which installs it).
    static var enabled: Bool { binary != nil || ProcessInfo.processInfo.environment["CI"] != nil }

    static func start() async throws -> Aria2Process {
        guard let bin = binary else { throw FSError.notSupported("aria2c is not installed (apt-get install aria2)") }
        let port = try TestPostgres.Server.freePort()
        let secret = RandomString.make(20)
        let dir = TempDir()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["--enable-rpc", "--rpc-listen-all=false", "--rpc-listen-port=\(port)", "--rpc-secret=\(secret)",
                       "--dir=\(dir.path)", "--seed-time=0", "--no-conf", "--quiet=true", "--check-certificate=true",
                       "--stop-with-process=\(getpid())", "--max-connection-per-server=1", "--split=1",
                       // Loopback only: no DHT, no local peer discovery, every socket (the BitTorrent listener too)
                       // bound to 127.0.0.1.
                       "--interface=127.0.0.1",
                       // aria2 and pyftpdlib can each wait for the other at the end of a transfer on a loaded machine
                       // (aria2 for "226", pyftpdlib for the data connection to close; seen with and without the
                       // proxy): aria2 gives up waiting after --timeout and keeps the whole file.
                       "--timeout=5",
                       // Global proxy settings of an aria2 set up for something else (as http_proxy in its
                       // environment would give): each download's own options must send it through PanList's proxy.
                       "--http-proxy=http://127.0.0.1:9", "--https-proxy=http://127.0.0.1:9", "--ftp-proxy=http://127.0.0.1:9",
                       "--no-proxy=127.0.0.0/8", "--disable-ipv6=true", "--enable-dht=false", "--enable-dht6=false",
                       "--bt-enable-lpd=false", "--enable-peer-exchange=false"]
        if let log = ProcessInfo.processInfo.environment["ARIA2_TEST_LOG"] {
            p.arguments?.append(contentsOf: ["--log=\(log)-\(port).log", "--log-level=debug"])
        }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let a = Aria2Process(process: p, port: port, secret: secret, dir: dir)
        let client = Aria2Client(uri: a.uri, secret: secret)
        let end = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < end {
            if (try? await client.version()) != nil { return a }
            try await Task.sleep(for: .milliseconds(50))
        }
        await a.stop()
        throw FSError.internalError("aria2c did not answer on \(a.uri)")
    }

    private init(process: Process, port: Int, secret: String, dir: TempDir) {
        self.process = process; self.port = port; self.secret = secret; self.dir = dir
    }

    /// Runs `body` with an aria2c started for it, stopped afterwards whatever happens.
    static func with(_ body: (Aria2Process) async throws -> Void) async throws {
        let a = try await start()
        do { try await body(a) } catch { await a.stop(); throw error }
        await a.stop()
    }

    /// Stops aria2c without blocking a thread (`waitUntilExit` would hold one of the few cooperative threads):
    /// SIGTERM, then SIGKILL after 5 s.
    func stop() async {
        let pid = process.processIdentifier
        if process.isRunning { kill(pid, SIGTERM) }
        for i in 0..<100 where process.isRunning {
            if i == 50 { kill(pid, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(100))
        }
        dir.remove()
    }
}
