import Logging

/// A log handler that passes everything on, except the HTTP server's report of each connection cut at
/// shutdown (`Waiting on child channel: CancellationError()`, logged as an error for every keep-alive
/// connection still open): at shutdown that is expected, not an error, so it goes out at debug level.
public struct ShutdownQuietLogHandler<Inner: LogHandler>: LogHandler {
    public var inner: Inner

    public init(_ inner: Inner) { self.inner = inner }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        if event.level == .error, event.source == "HummingbirdCore", event.message.description.hasSuffix("CancellationError()") {
            guard inner.logLevel <= .debug else { return }
            event.level = .debug
        }
        inner.log(event: event)
    }
}
