import NIOConcurrencyHelpers
import PanListCore

/// At most `limit` of some heavy work at once in this process (ZIP downloads, archive members being
/// extracted): one more is refused at once with a clear "try again" error, never queued behind the others.
final class BusySlots: Sendable {
    let limit: Int
    let what: String
    private let used = NIOLockedValueBox(0)

    init(_ limit: Int, what: String) {
        self.limit = limit
        self.what = what
    }

    var inUse: Int { used.withLockedValue { $0 } }

    /// A slot, held until it is released or dropped; throws `rateLimited` when all are taken.
    func take() throws -> Slot {
        let got = used.withLockedValue { n -> Bool in
            guard n < limit else { return false }
            n += 1
            return true
        }
        guard got else { throw FSError.rateLimited("the server is busy with \(limit) \(what) at once: try again in a moment") }
        return Slot(self)
    }

    fileprivate func give() { used.withLockedValue { $0 -= 1 } }

    final class Slot: Sendable {
        private let owner: BusySlots
        private let held = NIOLockedValueBox(true)
        fileprivate init(_ owner: BusySlots) { self.owner = owner }

        func release() {
            if held.withLockedValue({ h in defer { h = false }; return h }) { owner.give() }
        }

        deinit { release() }
    }
}

/// At most `limit` holders at once; the others wait their turn, first come first served, and one whose task is
/// cancelled leaves the queue at once (a pool's own queue would keep it until a thread frees up).
final class Turns: Sendable {
    private struct State {
        var free: Int
        var next: UInt64 = 0
        var waiting: [(id: UInt64, turn: CheckedContinuation<Void, any Error>)] = []
        /// Waiters cancelled before they were queued.
        var cancelled: Set<UInt64> = []
    }
    private let state: NIOLockedValueBox<State>

    init(_ limit: Int) { state = NIOLockedValueBox(State(free: limit)) }

    var waiting: Int { state.withLockedValue { $0.waiting.count } }

    /// Runs `body` in a turn.
    func run<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        try await take()
        defer { give() }
        return try await body()
    }

    private func take() async throws {
        let id = state.withLockedValue { s in s.next += 1; return s.next }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (turn: CheckedContinuation<Void, any Error>) in
                enum Now { case go, wait, cancelled }
                let now = state.withLockedValue { s -> Now in
                    if s.cancelled.remove(id) != nil { return .cancelled }
                    if s.free > 0 { s.free -= 1; return .go }
                    s.waiting.append((id, turn))
                    return .wait
                }
                switch now {
                case .go: turn.resume()
                case .cancelled: turn.resume(throwing: CancellationError())
                case .wait: break
                }
            }
        } onCancel: {
            let turn = state.withLockedValue { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiting.firstIndex(where: { $0.id == id }) else { s.cancelled.insert(id); return nil }
                return s.waiting.remove(at: i).turn
            }
            turn?.resume(throwing: CancellationError())
        }
        // A turn given (and so never queued) leaves no mark behind.
        state.withLockedValue { _ = $0.cancelled.remove(id) }
    }

    private func give() {
        let next = state.withLockedValue { s -> CheckedContinuation<Void, any Error>? in
            if s.waiting.isEmpty { s.free += 1; return nil }
            return s.waiting.removeFirst().turn
        }
        next?.resume()
    }
}
