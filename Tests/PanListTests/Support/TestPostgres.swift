import Foundation
import Logging
import NIOPosix
import Testing
@testable import PanListCore
@testable import PanListStore

/// Real PostgreSQL servers for the tests, from Debian's `postgresql` package: `initdb` into a temporary folder,
/// `pg_ctl start` on a unix socket in that folder and a free 127.0.0.1 port, stopped and deleted when the test
/// process ends (a watchdog process does it even when the tests crash). One shared server per test process;
/// each test takes a database of its own (`database()`). As root (CI), the server runs as the `postgres` user.
///
/// `PANLIST_TEST_PG_DSN` points the tests at a server of your own instead (its user must be able to create
/// databases). Without either, the PostgreSQL tests are skipped with a message saying why.
enum TestPostgres {
    /// Where `initdb` and `pg_ctl` are (the newest installed version), if anywhere.
    static let binDir: String? = {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        return versions.map { "\(base)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }()

    static var installed: Bool { ProcessInfo.processInfo.environment["PANLIST_TEST_PG_DSN"] != nil || binDir != nil }
    static let skipMessage: Comment = "PostgreSQL is not installed (apt-get install -y postgresql), and PANLIST_TEST_PG_DSN is not set"

    static let shared = Shared()

    actor Shared {
        private var server: Server?
        /// The connection that creates the tests' databases, made once (tests ask for databases concurrently).
        private var admin: Task<SQLStore, any Error>?
        private var count = 0

        /// The shared server, started by the tests (nil with `PANLIST_TEST_PG_DSN`).
        func serverForTests() async throws -> Server? {
            _ = try await adminStore()
            return server
        }

        private func adminStore() async throws -> SQLStore {
            if let admin { return try await admin.value }
            let task = Task { () throws -> SQLStore in
                let base: PostgresTarget
                if let dsn = ProcessInfo.processInfo.environment["PANLIST_TEST_PG_DSN"] {
                    base = try PostgresTarget(dsn: dsn)
                } else {
                    let s = try await Server.start()
                    self.setServer(s)
                    base = try s.target(database: "postgres")
                }
                return try await SQLStore.postgres(base)
            }
            admin = task
            return try await task.value
        }

        private func setServer(_ s: Server) { server = s }

        /// A new, empty database on the shared server.
        func database() async throws -> PostgresTarget {
            let admin = try await adminStore()
            count += 1
            let name = "t_\(getpid())_\(count)_\(RandomString.make(6).lowercased())"
            try await admin.db.raw("CREATE DATABASE \(ident: name)").run()
            if let server { return try server.target(database: name) }
            var t = try PostgresTarget(dsn: ProcessInfo.processInfo.environment["PANLIST_TEST_PG_DSN"] ?? "")
            t.database = name
            return t
        }
    }

    /// One running server in a temporary folder.
    final class Server: @unchecked Sendable {
        let dir: String
        let port: Int
        let password: String
        private let asUser: [String]

        /// Connects through the unix socket (trusted); `tcp` uses 127.0.0.1 and the password instead.
        func target(database: String, tcp: Bool = false, password: String? = nil) throws -> PostgresTarget {
            try PostgresTarget(host: tcp ? "127.0.0.1" : dir, port: port, user: "panlist",
                               password: password ?? (tcp ? self.password : ""), database: database)
        }

        private init(dir: String, port: Int, password: String, asUser: [String]) {
            self.dir = dir; self.port = port; self.password = password; self.asUser = asUser
        }

        static func start() async throws -> Server {
            guard let bin = TestPostgres.binDir else { throw FSError.notSupported("PostgreSQL is not installed") }
            let dir = "/tmp/panlist-pg-" + RandomString.make(8).lowercased()
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var asUser: [String] = []
            if getuid() == 0 {
                // initdb refuses to run as root.
                guard let pw = getpwnam("postgres") else { throw FSError.notSupported("running as root and there is no postgres user") }
                chown(dir, pw.pointee.pw_uid, pw.pointee.pw_gid)
                asUser = ["/usr/sbin/runuser", "-u", "postgres", "--"]
            }
            chmod(dir, 0o700)
            let password = RandomString.make(16)
            let pwfile = dir + "/pw"
            FileManager.default.createFile(atPath: pwfile, contents: Data(password.utf8))
            if getuid() == 0, let pw = getpwnam("postgres") { chown(pwfile, pw.pointee.pw_uid, pw.pointee.pw_gid) }
            try await run(asUser + [bin + "/initdb", "-D", dir + "/data", "-U", "panlist", "--pwfile=" + pwfile,
                              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"])
            let port = try freePort()
            let options = "-k \(dir) -p \(port) -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            try await run(asUser + [bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/log", "-o", options, "-w", "-t", "60", "start"])
            // Stops the server and deletes the folder once this test process is gone, however it ends.
            let stop = (asUser + [bin + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "stop"]).joined(separator: " ")
            let watchdog = Process()
            watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
            watchdog.arguments = ["-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(stop) >/dev/null 2>&1; rm -rf \(dir)"]
            watchdog.standardOutput = FileHandle.nullDevice
            watchdog.standardError = FileHandle.nullDevice
            try watchdog.run()
            return Server(dir: dir, port: port, password: password, asUser: asUser)
        }

        /// Stops the server (a database that goes away: `fast` closes every connection at once and keeps what
        /// was committed, which `synchronous_commit=off` would not after `immediate`), and starts it again.
        func stopNow(mode: String = "fast") async throws {
            guard let bin = TestPostgres.binDir else { return }
            try await Self.run(asUser + [bin + "/pg_ctl", "-D", dir + "/data", "-m", mode, "-w", "stop"])
        }

        func startAgain() async throws {
            guard let bin = TestPostgres.binDir else { return }
            let options = "-k \(dir) -p \(port) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
            try await Self.run(asUser + [bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/log", "-o", options, "-w", "-t", "60", "start"])
        }

        /// Stops the server and deletes its folder.
        func remove() async {
            try? await stopNow(mode: "immediate")
            try? FileManager.default.removeItem(atPath: dir)
        }

        static func run(_ args: [String]) async throws { try await Tool.run(args) }

        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            guard ok else { throw FSError.internalError("no free port") }
            return Int(UInt16(bigEndian: addr.sin_port))
        }
    }
}
