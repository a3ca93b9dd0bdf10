import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where access log lines go when they do not go through swift-log: standard error, in the same line format
/// as the other log lines (`<time> info <label>: [PanListServer] <line>`), gathered in memory and written
/// every 50 ms (or at 64 KiB), like nginx's `access_log … buffer=`: one line per request costs no system call
/// of its own on the request's thread. Lines still waiting are written when the server stops; once it has
/// (`close`), lines are written at once. A crash loses at most the lines of its last 50 ms.
/// Writes go out whole lines at a time, at most `PIPE_BUF` bytes per `write`, one writer at a time: batches
/// keep their order and another writer on the same pipe (swift-log's own lines) never lands inside a line.
public final class AccessLogSink: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var second = Int.min
        var stamp: [UInt8] = []
        var closed = false
    }
    private let state = NIOLockedValueBox(State())
    /// Held while a batch is taken and written, so that batches go out in the order they were gathered.
    private let writer = NIOLock()
    private let prefix: [UInt8]
    private let fd: Int32
    static let flushAt = 64 * 1024
    /// What a pipe writes in one piece (POSIX guarantees 512; Linux's is 4096).
    static let atomicWrite = 4096

    /// `label` as the other log lines carry it; `fd` is where lines go (standard error).
    public init(label: String, fd: Int32 = STDERR_FILENO) {
        prefix = Array(" info \(label): [PanListServer] ".utf8)
        self.fd = fd
    }

    /// Keeps one line (without its newline).
    func record(_ line: String) {
        let now = time(nil)
        let due: Bool = state.withLockedValue { s in
            if Int(now) != s.second {
                s.second = Int(now)
                s.stamp = Self.timestamp(now)
            }
            s.pending.append(contentsOf: s.stamp)
            s.pending.append(contentsOf: prefix)
            s.pending.append(contentsOf: line.utf8)
            s.pending.append(UInt8(ascii: "\n"))
            return s.closed || s.pending.count >= Self.flushAt
        }
        if due { flush() }
    }

    /// Writes what is waiting.
    public func flush() {
        writer.withLock {
            let out = state.withLockedValue { s -> [UInt8] in
                defer { s.pending.removeAll(keepingCapacity: true) }
                return s.pending
            }
            if !out.isEmpty { write(out) }
        }
    }

    /// Writes what is waiting; lines recorded from now on are written at once.
    public func close() {
        state.withLockedValue { $0.closed = true }
        flush()
    }

    /// Flushes every 50 ms until cancelled, then closes.
    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            flush()
        }
        close()
    }

    /// Whole lines, at most `atomicWrite` bytes a call (a longer line alone, in as many calls as it takes).
    private func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var start = 0
            while start < raw.count {
                var end = min(start + Self.atomicWrite, raw.count)
                if end < raw.count {
                    // Back to the end of the last whole line that fits; a line longer than that goes out alone.
                    var cut = end
                    while cut > start && raw[cut - 1] != UInt8(ascii: "\n") { cut -= 1 }
                    if cut > start { end = cut } else {
                        end = start
                        while end < raw.count && raw[end] != UInt8(ascii: "\n") { end += 1 }
                        end = min(end + 1, raw.count)
                    }
                }
                var p = base + start
                var left = end - start
                while left > 0 {
                    let n = Glibc.write(fd, p, left)
                    if n < 0 { if errno == EINTR { continue }; return }
                    p += n
                    left -= n
                }
                start = end
            }
        }
    }

    /// `2026-12-02T14:18:39+0000`, swift-log's form.
    static func timestamp(_ t: time_t) -> [UInt8] {
        var t = t
        var tm = tm()
        localtime_r(&t, &tm)
        var buffer = [Int8](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &tm)
        return buffer[0..<n].map { UInt8(bitPattern: $0) }
    }
}
