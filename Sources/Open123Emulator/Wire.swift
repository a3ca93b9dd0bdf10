import Foundation
import Hummingbird
import NIOCore

/// A failure in the 123 envelope: HTTP 200, a non-zero `code`, `data: null`.
struct APIFailure: Error {
    var code: Int
    var message: String

    static let invalidToken = APIFailure(code: 401, message: "access Token Invalid")
    static let expiredToken = APIFailure(code: 401, message: "token is expired")
    static let evictedToken = APIFailure(code: 401, message: "tokens number has exceeded the limit")
    static let tooFrequent = APIFailure(code: 429, message: "请求太频繁")
    static let fileNotFound = APIFailure(code: 5066, message: "文件不存在，检查传入fileId是否正确")
    static let quotaExceeded = APIFailure(code: 5113, message: "您今日自用下载流量已超出1GB上限，请明日再试或开通VIP")
    static let dirExists = APIFailure(code: 1, message: "该目录下已经有同名文件夹,无法进行创建")
    static func bad(_ message: String) -> APIFailure { APIFailure(code: 1, message: message) }
}

enum Wire {
    static func traceID() -> String { UUID().uuidString.lowercased() + "_emu" }

    static func json(_ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func ok(_ data: Any?) -> Response {
        json(["code": 0, "message": "ok", "data": data ?? NSNull(), "x-traceID": traceID()])
    }

    static func fail(_ f: APIFailure) -> Response {
        json(["code": f.code, "message": f.message, "data": NSNull(), "x-traceID": traceID()])
    }

    /// `YYYY-MM-DD HH:MM:SS` in Beijing time (UTC+8), as list, infos and detail show times.
    static func beijing(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down)) + 8 * 3600
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
    }

    /// The v1 list's `2025-02-24 17:57:01 +0800 CST`.
    static func beijingCST(_ date: Date) -> String { beijing(date) + " +0800 CST" }

    /// RFC 3339 with +08:00, as `expiredAt`.
    static func rfc3339Beijing(_ date: Date) -> String {
        let s = beijing(date)
        return s.replacingOccurrences(of: " ", with: "T") + "+08:00"
    }
}

/// A request body read as 123's backend reads it: keys case-insensitive, IDs as numbers or numeric strings.
struct Body: @unchecked Sendable {
    private var values: [String: Any] = [:]

    init(_ object: [String: Any]) {
        for (k, v) in object { values[k.lowercased()] = v }
    }

    /// JSON, or `application/x-www-form-urlencoded`, or an empty body.
    static func parse(_ buffer: ByteBuffer, contentType: String?) throws -> Body {
        let data = Data(buffer.readableBytesView)
        if data.isEmpty { return Body([:]) }
        if contentType?.lowercased().contains("x-www-form-urlencoded") == true {
            var dict: [String: Any] = [:]
            for pair in String(decoding: data, as: UTF8.self).split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map {
                    String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
                }
                dict[kv[0]] = kv.count > 1 ? kv[1] : ""
            }
            return Body(dict)
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw APIFailure.bad("请求参数格式错误")
        }
        return Body(object)
    }

    func has(_ key: String) -> Bool { values[key.lowercased()] != nil && !(values[key.lowercased()] is NSNull) }

    func string(_ key: String) -> String? {
        switch values[key.lowercased()] {
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        default: return nil
        }
    }

    func int(_ key: String) -> Int64? {
        switch values[key.lowercased()] {
        case let n as NSNumber: return n.int64Value
        case let s as String: return Int64(s.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    func bool(_ key: String) -> Bool? {
        switch values[key.lowercased()] {
        case let n as NSNumber: return n.boolValue
        case let s as String: return ["true", "1"].contains(s.lowercased()) ? true : (["false", "0", ""].contains(s.lowercased()) ? false : nil)
        default: return nil
        }
    }

    func ints(_ key: String) -> [Int64]? {
        guard let arr = values[key.lowercased()] as? [Any] else { return nil }
        var out: [Int64] = []
        for v in arr {
            if let n = v as? NSNumber { out.append(n.int64Value) }
            else if let s = v as? String, let n = Int64(s) { out.append(n) }
            else { return nil }
        }
        return out
    }

    func strings(_ key: String) -> [String]? { values[key.lowercased()] as? [String] }
}
