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
