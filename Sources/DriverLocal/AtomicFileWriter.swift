import NIOCore
import PanListCore
import _NIOFileSystem

/// Writes an upload so that it appears whole or not at all: the bytes go to an unnamed temporary file in the
/// target folder (O_TMPFILE, or a hidden temporary name where that is unavailable) which is linked or renamed
/// into place only after the last byte was written and the size and declared hashes checked. Any error, a
/// cut-off body or a cancelled request discards the temporary file.
enum AtomicFileWriter {
    static func write(_ stream: UploadStream, to path: String) async throws {
        var verifier = UploadVerifier(stream)
        do {
            try await _NIOFileSystem.FileSystem.shared.withFileHandle(
                forWritingAt: FilePath(path), options: .newFile(replaceExisting: true)
            ) { handle in
                try await handle.withBufferedWriter(capacity: .mebibytes(1)) { writer in
                    for try await buffer in stream.body {
                        try verifier.update(buffer)
                        try await writer.write(contentsOf: buffer)
                    }
                }
                try verifier.finish()
            }
        } catch let e as FSError {
            throw e
        } catch let e as FileSystemError where e.code == .notFound {
            throw FSError.notFound("the target folder of \(stream.name) does not exist")
        } catch {
            throw FSError.badRequest("upload of \(stream.name) failed: \(Posix.describe(error))")
        }
    }
}
