import Foundation
import NIOConcurrencyHelpers

/// A storage in the mount table: its record and, when it initialised, its driver.
public final class MountedStorage: Sendable {
    public let record: StorageRecord
    public let driver: (any Driver)?

    private let detailsCache = NIOLockedValueBox<(details: StorageDetails, at: ContinuousClock.Instant)?>(nil)

    public init(record: StorageRecord, driver: (any Driver)?) {
        self.record = record
        self.driver = driver
    }

    /// Total, used and free space when the driver reports them: cached for `maxAge`, and never waited on for
    /// more than `timeout` (a slow or failing cloud gives the last known value, or nil), so a listing that
    /// shows the space of mount roots stays fast.
    public func details(maxAge: Duration = .seconds(60), timeout: Duration = .seconds(2)) async -> StorageDetails? {
        guard let d = driver as? any DetailsCapable else { return nil }
        let cached = detailsCache.withLockedValue { $0 }
        if let cached, ContinuousClock.now - cached.at < maxAge { return cached.details }
        let fresh = await withTaskGroup(of: StorageDetails?.self) { group in
            group.addTask { try? await d.details() }
            group.addTask { try? await Task.sleep(for: timeout); return nil }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let fresh { detailsCache.withLockedValue { $0 = (fresh, ContinuousClock.now) } }
        return fresh ?? cached?.details
    }

    public var id: Int { record.id }
    public var mountPath: String { record.mountPath }
    public var isWorking: Bool { driver != nil }

    /// The driver, or the storage's status text as the error.
    func ready() throws(FSError) -> any Driver {
        guard let driver else {
            if record.status == StorageStatus.loading {
                throw .storageUnavailable("storage \(record.mountPath) is still loading; try again in a moment")
            }
            let status = record.status.isEmpty ? "not initialised" : record.status
            throw .storageUnavailable("storage \(record.mountPath) is not available: \(status)")
        }
        return driver
    }
}

/// Storage status strings (Alist's).
public enum StorageStatus {
    public static let work = "work"
    public static let disabled = "disabled"
    /// Initialising in the background (at start-up).
    public static let loading = "loading"
}
