import Foundation
import PanListCore

/// An FTP server on 127.0.0.1 (Python's pyftpdlib, from PyPI: CI installs it) serving `files`, anonymous, for
/// aria2's ftp links.
final class FTPServer: @unchecked Sendable {
    let process: Process
    let port: Int
    let dir: TempDir

    /// Whether python3 has pyftpdlib (always in CI, which installs it).
    static let available: Bool = {
        if ProcessInfo.processInfo.environment["CI"] != nil { return true }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import pyftpdlib"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    /// Started on a free port; tried again on another port if python exits first (the port was taken between
    /// the choice and the bind), waiting up to 30 s for it to accept (python starts slowly on a loaded machine).
    static func start(files: [String: Data]) async throws -> FTPServer {
        let dir = TempDir()
        for (name, data) in files { try data.write(to: URL(fileURLWithPath: dir.file(name))) }
        for _ in 0..<3 {
            let port = try TestPostgres.Server.freePort()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", String(port), "-d", dir.path]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let server = FTPServer(process: p, port: port, dir: dir)
            // Ready when it accepts a connection.
            let end = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < end && p.isRunning {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_port = in_port_t(UInt16(port).bigEndian)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
                close(fd)
                if ok { return server }
                try await Task.sleep(for: .milliseconds(100))
            }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        dir.remove()
        throw FSError.internalError("the FTP server did not start (python3 -m pyftpdlib)")
    }

    private init(process: Process, port: Int, dir: TempDir) { self.process = process; self.port = port; self.dir = dir }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        dir.remove()
    }
}
