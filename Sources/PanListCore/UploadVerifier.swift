import Crypto
import NIOCore

/// Counts and hashes an upload as it streams, and checks it against what the client declared:
/// the size (Content-Length) and any of MD5, SHA-1 and SHA-256. Only declared hashes are computed.
public struct UploadVerifier {
    let name: String
    let expectedSize: Int64?
    let expected: (md5: String?, sha1: String?, sha256: String?)
    var md5: Insecure.MD5?
    var sha1: Insecure.SHA1?
    var sha256: SHA256?
    public private(set) var written: Int64 = 0

    public init(_ stream: UploadStream) {
        name = stream.name
        expectedSize = stream.size
        expected = (stream.md5, stream.sha1, stream.sha256)
        if stream.md5 != nil { md5 = Insecure.MD5() }
        if stream.sha1 != nil { sha1 = Insecure.SHA1() }
        if stream.sha256 != nil { sha256 = SHA256() }
    }

    public mutating func update(_ buffer: ByteBuffer) throws(FSError) {
        written += Int64(buffer.readableBytes)
        if let expectedSize, written > expectedSize {
            throw .badRequest("upload of \(name) is larger than its declared size of \(expectedSize) bytes")
        }
        if md5 == nil && sha1 == nil && sha256 == nil { return }
        buffer.withUnsafeReadableBytes { raw in
            md5?.update(bufferPointer: raw)
            sha1?.update(bufferPointer: raw)
            sha256?.update(bufferPointer: raw)
        }
    }

    public func finish() throws(FSError) {
        if let expectedSize, written != expectedSize {
            throw .badRequest("upload of \(name) was cut off: received \(written) of \(expectedSize) bytes")
        }
        if let md5, let want = expected.md5, md5.finalize().hexString != want {
            throw .badRequest("upload of \(name) does not match its declared MD5 \(want)")
        }
        if let sha1, let want = expected.sha1, sha1.finalize().hexString != want {
            throw .badRequest("upload of \(name) does not match its declared SHA-1 \(want)")
        }
        if let sha256, let want = expected.sha256, sha256.finalize().hexString != want {
            throw .badRequest("upload of \(name) does not match its declared SHA-256 \(want)")
        }
    }
}

import Foundation
