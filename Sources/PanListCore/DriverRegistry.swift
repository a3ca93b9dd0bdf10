import NIOConcurrencyHelpers

/// The drivers this build knows, by name.
public final class DriverRegistry: Sendable {
    private let factories = NIOLockedValueBox<[String: DriverFactory]>([:])

    public init() {}

    public func register(_ factory: DriverFactory) {
        factories.withLockedValue { $0[factory.config.name] = factory }
    }

    public func factory(named name: String) -> DriverFactory? {
        factories.withLockedValue { $0[name] }
    }

    public var names: [String] { factories.withLockedValue { $0.keys.sorted() } }
    public var all: [DriverFactory] { factories.withLockedValue { Array($0.values) }.sorted { $0.config.name < $1.config.name } }
}
