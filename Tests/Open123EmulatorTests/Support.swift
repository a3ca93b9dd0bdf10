import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Open123Emulator
import Testing

func md5Hex(_ d: Data) -> String { Insecure.MD5.hash(data: d).map { String(format: "%02x", $0) }.joined() }
func sha1Hex(_ d: Data) -> String { Insecure.SHA1.hash(data: d).map { String(format: "%02x", $0) }.joined() }

struct Answer: @unchecked Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: Data
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    var code: Int { json["code"] as? Int ?? -999 }
    var message: String { json["message"] as? String ?? "" }
    var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
}

/// An emulator on a free loopback port, a client, and a token.
final class Harness: @unchecked Sendable {
    let emu: Open123Emulator
    let client: HTTPClient
    var token = ""
    var base: String { emu.baseURL }

    static func start(_ configure: (inout EmulatorConfig) -> Void = { _ in }) async throws -> Harness {
        var c = EmulatorConfig()
        c.rateLimits = .off
        c.sliceSize = 1024
        configure(&c)
        let h = Harness(emu: try await Open123Emulator.start(config: c))
        h.token = try await h.newToken()
        return h
    }

    init(emu: Open123Emulator) {
        self.emu = emu
        var conf = HTTPClient.Configuration()
        conf.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: conf)
    }

    func stop() async {
        try? await client.shutdown()
        await emu.stop()
    }

    func raw(_ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: Data? = nil) async throws -> Answer {
        var req = HTTPClientRequest(url: url.hasPrefix("http") ? url : base + url)
        req.method = method
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let res = try await client.execute(req, timeout: .seconds(30))
        let buf = try await res.body.collect(upTo: 1 << 28)
        return Answer(status: Int(res.status.code), headers: res.headers, body: Data(buf.readableBytesView))
    }

    /// A 123 API call: Platform header, the token, a JSON body for non-GET.
    func call(_ method: HTTPMethod, _ path: String, _ body: Any? = nil, token: String? = nil, platform: Bool = true) async throws -> Answer {
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        if platform { headers.append(("Platform", "open_platform")) }
        let t = token ?? self.token
        if !t.isEmpty { headers.append(("Authorization", "Bearer " + t)) }
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        return try await raw(method, path, headers: headers, body: data)
    }

    func newToken() async throws -> String {
        let r = try await call(.POST, "/api/v1/access_token", ["clientID": emu.config.clientID, "clientSecret": emu.config.clientSecret], token: "")
        return r.data["accessToken"] as? String ?? ""
    }

    func mkdir(_ name: String, in parent: Int64 = 0) async throws -> Int64 {
        let r = try await call(.POST, "/upload/v1/file/mkdir", ["name": name, "parentID": parent])
        return (r.data["dirID"] as? NSNumber)?.int64Value ?? -1
    }

    func list(_ parent: Int64, limit: Int = 100, after: Int64? = nil) async throws -> Answer {
        var q = "/api/v2/file/list?parentFileId=\(parent)&limit=\(limit)"
        if let after { q += "&lastFileId=\(after)" }
        return try await call(.GET, q)
    }

    func multipart(_ fields: [(String, String)], file: (field: String, name: String, data: Data)?, fileFirst: Bool = false) -> (Data, String) {
        let boundary = "emu\(UUID().uuidString.prefix(8))"
        var body = Data()
        var filePart = Data()
        if let file {
            filePart += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.field)\"; filename=\"\(file.name)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            filePart += file.data + Data("\r\n".utf8)
        }
        if fileFirst { body += filePart }
        for (k, v) in fields { body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n".utf8) }
        if !fileFirst { body += filePart }
        body += Data("--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    func slice(_ preuploadID: String, _ no: Int, _ data: Data, md5: String? = nil, fileFirst: Bool = false) async throws -> Answer {
        let (body, ct) = multipart([("preuploadID", preuploadID), ("sliceNo", String(no)), ("sliceMD5", md5 ?? md5Hex(data))],
                                   file: ("slice", "f.part\(no)", data), fileFirst: fileFirst)
        return try await raw(.POST, "/upload/v2/file/slice", headers: [("Platform", "open_platform"), ("Authorization", "Bearer " + token), ("Content-Type", ct)], body: body)
    }

    /// The whole v2 slice flow; returns the new file's id.
    func upload(_ name: String, _ data: Data, parent: Int64 = 0, duplicate: Int = 2) async throws -> Int64 {
        let c = try await call(.POST, "/upload/v2/file/create", ["parentFileID": parent, "filename": name, "etag": md5Hex(data), "size": data.count, "duplicate": duplicate])
        if c.data["reuse"] as? Bool == true { return (c.data["fileID"] as? NSNumber)?.int64Value ?? 0 }
        let pre = c.data["preuploadID"] as? String ?? ""
        let sliceSize = (c.data["sliceSize"] as? NSNumber)?.intValue ?? 1024
        var no = 1, offset = 0
        repeat {
            let part = data.subdata(in: offset..<min(offset + sliceSize, data.count))
            _ = try await slice(pre, no, part)
            no += 1
            offset += sliceSize
        } while offset < data.count
        for _ in 0..<20 {
            let r = try await call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre])
            if r.code == 0, r.data["completed"] as? Bool == true { return (r.data["fileID"] as? NSNumber)?.int64Value ?? 0 }
        }
        return 0
    }
}

func withEmulator(_ configure: (inout EmulatorConfig) -> Void = { _ in }, _ body: (Harness) async throws -> Void) async throws {
    let h = try await Harness.start(configure)
    do { try await body(h) } catch { await h.stop(); throw error }
    await h.stop()
}

extension Dictionary where Key == String, Value == Any {
    func int(_ k: String) -> Int64? { (self[k] as? NSNumber)?.int64Value }
}

/// JSON types as the spec gives them: "int", "string", "bool", "array", "object", "null".
func jsonType(_ v: Any?) -> String {
    switch v {
    case nil, is NSNull: return "null"
    case is String: return "string"
    case let n as NSNumber:
        // JSONSerialization gives booleans as NSNumber too (type encoding "c"); numbers are "i", "q" or "d".
        let enc = String(cString: n.objCType)
        return enc == "c" ? "bool" : (enc == "d" || enc == "f" ? "float" : "int")
    case is [Any]: return "array"
    case is [String: Any]: return "object"
    default: return "\(type(of: v!))"
    }
}

/// Checks that each key has the JSON type the spec documents.
func expectTypes(_ object: [String: Any], _ types: [String: String], sourceLocation: SourceLocation = #_sourceLocation) {
    for (key, want) in types {
        #expect(jsonType(object[key]) == want, "\(key): \(jsonType(object[key])) instead of \(want)", sourceLocation: sourceLocation)
    }
}
