import Foundation

/// A storage in the mount table: its record and, when it initialised, its driver.
public final class MountedStorage: Sendable {
    public let record: StorageRecord
    public let driver: (any Driver)?

    public init(record: StorageRecord, driver: (any Driver)?) {
        self.record = record
        self.driver = driver
    }

    public var id: Int { record.id }
    public var mountPath: String { record.mountPath }
    public var isWorking: Bool { driver != nil }

    /// The driver, or the storage's status text as the error.
    func ready() throws(FSError) -> any Driver {
        guard let driver else {
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
}
