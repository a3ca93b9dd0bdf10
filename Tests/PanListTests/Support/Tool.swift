import Foundation
import NIOPosix
@testable import PanListCore

/// Runs a command-line tool (python3, unzip, pg_ctl) to its end, off the cooperative threads, and gives back
/// what it printed (stdout and stderr together); throws with that text when it fails. The output goes to a
/// file, not a pipe (a server that `pg_ctl start` leaves running would hold a pipe open). posix_spawn and
/// waitpid: Foundation's `Process.waitUntilExit` needs a run loop, which a thread-pool thread does not run.
enum Tool {
    @discardableResult
    static func run(_ args: [String]) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive {
            let outPath = NSTemporaryDirectory() + "panlist-tool-" + UUID().uuidString
            defer { unlink(outPath) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let rc = posix_spawnp(&pid, args[0], &actions, nil, &argv, environ)
            guard rc == 0 else { throw FSError.internalError("cannot run \(args[0]): \(ErrorText.errno(rc))") }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            // Exited normally with status 0.
            if (status & 0x7f) != 0 || ((status >> 8) & 0xff) != 0 {
                throw FSError.internalError("\(args.joined(separator: " ")) failed: \(text)")
            }
            return text
        }
    }
}
