import Foundation
import NIOCore
import NIOPosix
import _NIOFileSystem

/// Short, readable words for errors that come from the system or the network libraries (their own
/// descriptions are type dumps such as `connection reset (error set): Connection refused) (errno: 111)`).
/// Used wherever such an error becomes a message for a user or a log line.
public enum ErrorText {
    public static func describe(_ error: any Error) -> String {
        if let e = error as? FSError { return e.message }
        if error is CancellationError { return "cancelled" }
        if let io = error as? IOError { return errno(io.errnoCode) }
        if let fe = error as? FileSystemError {
            if let cause = fe.cause { return "\(fe.message): \(describe(cause))" }
            return fe.message
        }
        if let ce = error as? NIOConnectionError {
            if ce.dnsAError != nil || ce.dnsAAAAError != nil { return "the host name \(ce.host) could not be resolved" }
            if let first = ce.connectionErrors.first { return describe(first.error) }
            return "could not connect to \(ce.host):\(ce.port)"
        }
        if error is DecodingError { return "the answer was not in the expected format" }
        let text = String(describing: error)
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") {
            return "the TLS certificate is not trusted"
        }
        if text.hasPrefix("HTTPClientError.") {
            switch text.dropFirst("HTTPClientError.".count) {
            case "connectTimeout": return "the connection timed out"
            case "readTimeout", "deadlineExceeded": return "no answer in time"
            case "remoteConnectionClosed": return "the server closed the connection"
            case "tlsHandshakeTimeout": return "the TLS handshake timed out"
            case "cancelled": return "cancelled"
            case let code: return words(String(code))
            }
        }
        if let posix = error as? POSIXError { return errno(posix.code.rawValue) }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return errno(Int32(ns.code)) }
        return text
    }

    /// `strerror` in lower case, as the middle of a sentence wants it ("connection refused").
    public static func errno(_ code: Int32) -> String {
        let s = String(cString: strerror(code))
        guard let first = s.first else { return "error \(code)" }
        return first.lowercased() + s.dropFirst()
    }

    /// `remoteConnectionClosed` → "remote connection closed".
    static func words(_ camel: String) -> String {
        var out = ""
        for c in camel {
            if c.isUppercase { out += " " + c.lowercased() } else { out.append(c) }
        }
        return out
    }
}
