import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where access log lines go when they do not go through swift-log: standard error, in the same line format
/// as the other log lines (`<time> info <label>: [PanListServer] <line>`), gathered in memory and written
/// every 50 ms (or at 64 KiB), like nginx's `access_log … buffer=`: one line per request costs no system call
/// of its own on the request's thread. Lines still waiting are written when the server stops.
public final class AccessLogSink: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var second = Int.min
        var stamp: [UInt8] = []
    }
    private let state = NIOLockedValueBox(State())
    private let prefix: [UInt8]
    private let fd: Int32
    static let flushAt = 64 * 1024

    /// `label` as the other log lines carry it; `fd` is where lines go (standard error).
    public init(label: String, fd: Int32 = STDERR_FILENO) {
        prefix = Array(" info \(label): [PanListServer] ".utf8)
        self.fd = fd
    }

    /// Keeps one line (without its newline).
    func record(_ line: String) {
        let now = time(nil)
        let full: [UInt8]? = state.withLockedValue { s in
            if Int(now) != s.second {
                s.second = Int(now)
                s.stamp = Self.timestamp(now)
            }
            s.pending.append(contentsOf: s.stamp)
            s.pending.append(contentsOf: prefix)
            s.pending.append(contentsOf: line.utf8)
            s.pending.append(UInt8(ascii: "\n"))
            guard s.pending.count >= Self.flushAt else { return nil }
            defer { s.pending.removeAll(keepingCapacity: true) }
            return s.pending
        }
        if let full { write(full) }
    }

    /// Writes what is waiting.
    public func flush() {
        let out = state.withLockedValue { s -> [UInt8] in
            defer { s.pending.removeAll(keepingCapacity: true) }
            return s.pending
        }
        if !out.isEmpty { write(out) }
    }

    /// Flushes every 50 ms until cancelled, then once more.
    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            flush()
        }
        flush()
    }

    private func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            guard var p = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let n = Glibc.write(fd, p, left)
                if n < 0 { if errno == EINTR { continue }; return }
                p += n
                left -= n
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
