import NIOConcurrencyHelpers

/// The first of several results: `start` is given a `finish` that may be called any number of times, from
/// anywhere; the first call is the answer, the others are ignored.
public enum FirstOf {
    public static func result<R: Sendable>(_ start: (@escaping @Sendable (Result<R, any Error>) -> Void) -> Void) async -> Result<R, any Error> {
        await withCheckedContinuation { (c: CheckedContinuation<Result<R, any Error>, Never>) in
            let done = NIOLockedValueBox(false)
            start { r in
                let first = done.withLockedValue { d -> Bool in
                    defer { d = true }
                    return !d
                }
                if first { c.resume(returning: r) }
            }
        }
    }

    /// Waits for `task` at most `limit`; false when it had not ended by then (it goes on unawaited).
    public static func wait(_ task: Task<Void, Never>, atMost limit: Duration) async -> Bool {
        let r: Result<Bool, any Error> = await result { finish in
            let timer = Task { try? await Task.sleep(for: limit); finish(.success(false)) }
            Task { await task.value; timer.cancel(); finish(.success(true)) }
        }
        return (try? r.get()) ?? false
    }
}
