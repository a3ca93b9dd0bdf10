/// The one error type of the PanList core. Front ends map it exactly once:
/// to the `/api` envelope (`APIError.swift`) and, later, to WebDAV status codes.
public enum FSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing at this path. The message keeps Alist's wording ("object not found"), which clients test for.
    case notFound(String)
    case alreadyExists(String)
    case notSupported(String)
    case permissionDenied(String)
    /// A path or name that can never be valid (`..`, NUL, `/` in a name, …).
    case invalidPath(String)
    case badRequest(String)
    case unauthorized(String)
    case tooLarge(String)
    /// A storage exists but could not be initialised, or is disabled.
    case storageUnavailable(String)
    /// The upstream service answered with an error of its own.
    case upstream(code: Int, message: String)
    case rateLimited(String)
    /// A destination that conflicts with the request, such as a parent that is a file.
    case conflict(String)
    case internalError(String)
    /// An admin record (storage id, user, driver name, setting) that does not exist.
    case noSuchRecord(String)
    /// PanList itself cannot serve this now: its database is unreachable, or it is shutting down (503).
    case unavailable(String)

    public var message: String {
        switch self {
        case .notFound(let m), .alreadyExists(let m), .notSupported(let m), .permissionDenied(let m),
             .invalidPath(let m), .badRequest(let m), .unauthorized(let m), .tooLarge(let m),
             .storageUnavailable(let m), .rateLimited(let m), .conflict(let m), .internalError(let m),
             .noSuchRecord(let m), .unavailable(let m):
            return m
        case .upstream(let code, let message):
            // -1: the upstream could not be reached at all; the message says so in words.
            return code == -1 ? message : "upstream error \(code): \(message)"
        }
    }

    public var description: String { message }

    /// Wraps any error as an FSError, keeping FSErrors as they are.
    public static func from(_ error: any Error) -> FSError {
        if let e = error as? FSError { return e }
        if error is CancellationError { return .internalError("request cancelled") }
        return .internalError(ErrorText.describe(error))
    }

    /// The same error with its message rewritten by `f` (the kind, and so the status it maps to, is kept).
    public func mapMessage(_ f: (String) -> String) -> FSError {
        switch self {
        case .notFound(let m): return .notFound(f(m))
        case .alreadyExists(let m): return .alreadyExists(f(m))
        case .notSupported(let m): return .notSupported(f(m))
        case .permissionDenied(let m): return .permissionDenied(f(m))
        case .invalidPath(let m): return .invalidPath(f(m))
        case .badRequest(let m): return .badRequest(f(m))
        case .unauthorized(let m): return .unauthorized(f(m))
        case .tooLarge(let m): return .tooLarge(f(m))
        case .storageUnavailable(let m): return .storageUnavailable(f(m))
        case .upstream(let code, let m): return .upstream(code: code, message: f(m))
        case .rateLimited(let m): return .rateLimited(f(m))
        case .conflict(let m): return .conflict(f(m))
        case .internalError(let m): return .internalError(f(m))
        case .noSuchRecord(let m): return .noSuchRecord(f(m))
        case .unavailable(let m): return .unavailable(f(m))
        }
    }

    public static func objectNotFound(_ path: String) -> FSError { .notFound("\(path): object not found") }
}
