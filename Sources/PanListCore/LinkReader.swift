import _NIOFileSystem
import NIOCore

/// Fetches a remote URL as a byte stream (the server provides one over HTTP; the core has no HTTP client).
public protocol RemoteFetcher: Sendable {
    /// Calls `body` with the bytes at `url`; throws a clear error for an HTTP error answer.
    func withStream<R: Sendable>(url: String, headers: [String: String], _ body: (ByteStream) async throws -> R) async throws -> R
}

/// Reads the bytes behind a Link as a stream, for copies between storages.
public enum LinkReader {
    public static func withStream<R: Sendable>(_ link: Link, size: Int64, remote: (any RemoteFetcher)? = nil,
                                               _ body: (ByteStream) async throws -> R) async throws -> R {
        switch link {
        case .localFile(let path):
            return try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
                let size = try await handle.info().size
                guard size > 0 else { return try await body(.empty) }
                return try await body(ByteStream(PrefetchingChunks(handle: handle, range: 0...(size - 1), chunkLength: 1 << 20)))
            }
        case .url(let url, let headers, _):
            guard let remote else { throw FSError.notSupported("copying from a remote link needs an HTTP client, and none is set") }
            return try await remote.withStream(url: url, headers: headers, body)
        }
    }
}
