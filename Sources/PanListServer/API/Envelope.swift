import Foundation
import Hummingbird
import NIOCore
import PanListCore

/// Alist's response envelope: HTTP 200 and `{code, message, data}`.
struct Envelope<T: Encodable>: Encodable {
    var code: Int
    var message: String
    var data: T?
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(code, forKey: .code)
        try c.encode(message, forKey: .message)
        if let data { try c.encode(data, forKey: .data) } else { try c.encodeNil(forKey: .data) }
    }
    enum CodingKeys: String, CodingKey { case code, message, data }
}

/// A JSON null for `data`.
struct Null: Encodable {
    func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encodeNil() }
}

enum APIResponse {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? encoder.encode(value)) ?? Data(#"{"code":500,"message":"encoding failed","data":null}"#.utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func ok<T: Encodable>(_ data: T) -> Response { json(Envelope(code: 200, message: "success", data: data)) }
    static func ok() -> Response { json(Envelope<Null>(code: 200, message: "success", data: nil)) }

    /// Alist's clients read the envelope's code from an HTTP 200; only "PanList cannot serve now" (503) is
    /// also said in the HTTP status, so that load balancers and retrying clients see it.
    static func error(_ error: FSError) -> Response {
        json(Envelope<Null>(code: error.apiCode, message: error.message, data: nil),
             status: error.apiCode == 503 ? .serviceUnavailable : .ok)
    }
}

extension FSError {
    /// The one mapping of core errors to Alist envelope codes.
    /// A missing object is 500 "… object not found", as Alist answers and its clients test for.
    public var apiCode: Int {
        switch self {
        case .notFound, .storageUnavailable, .upstream, .internalError: return 500
        case .noSuchRecord: return 404
        case .alreadyExists, .permissionDenied: return 403
        case .notSupported: return 405
        case .invalidPath, .badRequest, .tooLarge, .conflict: return 400
        case .unauthorized: return 401
        case .rateLimited: return 429
        case .unavailable: return 503
        }
    }

    /// The HTTP status for routes that answer with real statuses (/d, /p).
    public var httpStatus: HTTPResponse.Status {
        switch self {
        case .notFound, .noSuchRecord: return .notFound
        case .alreadyExists, .conflict: return .conflict
        case .permissionDenied: return .forbidden
        case .notSupported: return .methodNotAllowed
        case .invalidPath, .badRequest: return .badRequest
        case .tooLarge: return .contentTooLarge
        case .unauthorized: return .unauthorized
        case .rateLimited: return .tooManyRequests
        case .storageUnavailable, .upstream: return .badGateway
        case .internalError: return .internalServerError
        case .unavailable: return .serviceUnavailable
        }
    }
}

/// Turns whatever a handler threw into an FSError with a message a user understands.
func fsError(_ error: any Error) -> FSError {
    if let e = error as? FSError { return e }
    if let e = error as? HTTPError {
        switch e.status {
        case .contentTooLarge: return .tooLarge("the request body is too large")
        case .badRequest: return .badRequest(e.body ?? "bad request")
        case .unauthorized: return .unauthorized(e.body ?? "unauthorized")
        default: return .internalError(e.body ?? "\(e.status)")
        }
    }
    if let e = error as? DecodingError { return .badRequest("malformed request: \(describe(e))") }
    return FSError.from(error)
}

private func describe(_ e: DecodingError) -> String {
    switch e {
    case .keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
    case .typeMismatch(_, let c), .valueNotFound(_, let c):
        let path = c.codingPath.map(\.stringValue).joined(separator: ".")
        return "wrong type for field '\(path)'"
    case .dataCorrupted(let c):
        return c.codingPath.isEmpty ? "the body is not valid JSON" : "invalid value for '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
    @unknown default: return "invalid JSON"
    }
}

extension Request {
    /// Reads a JSON body of at most `limit` bytes. An empty body decodes as `{}`.
    func json<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch {
            throw FSError.tooLarge("the request body is larger than \(limit) bytes")
        }
        let data = buffer.readableBytes == 0 ? Data("{}".utf8) : Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let e as DecodingError {
            throw fsError(e)
        }
    }
}
