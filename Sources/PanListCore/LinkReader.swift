import _NIOFileSystem
import NIOCore

/// Reads the bytes behind a Link as a stream, for copies between storages.
public enum LinkReader {
    public static func withStream<R: Sendable>(_ link: Link, size: Int64, _ body: (ByteStream) async throws -> R) async throws -> R {
        switch link {
        case .localFile(let path):
            return try await _NIOFileSystem.FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
                let size = try await handle.info().size
                guard size > 0 else { return try await body(.empty) }
                return try await body(ByteStream(PrefetchingChunks(handle: handle, range: 0...(size - 1), chunkLength: 1 << 20)))
            }
        case .url:
            throw FSError.notSupported("copying from a remote link is not supported yet")
        }
    }
}
