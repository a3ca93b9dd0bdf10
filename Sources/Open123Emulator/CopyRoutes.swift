import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Which key the copy endpoints read the target folder from: the documented `targetDirId`, the official
/// example's `targetDirID`, or either (123's backend reads JSON keys case-insensitively, as far as is known).
public enum CopyTargetField: String, Sendable {
    case either
    case documented = "targetDirId"
    case example = "targetDirID"
}

/// How `async/copy/process` takes its `taskId`: either form, only the query string of a GET, only a JSON
/// body (of a GET, as documented, or a POST), or only a POST (as behind a proxy that drops GET bodies).
public enum CopyProgressForm: String, Sendable {
    case either, query, body, post
}

extension Routes {
    /// The Platform header, call counting and rate limit, and the Bearer token, as `api` checks them.
    func admitted(_ req: Request, _ path: String) async throws {
        guard req.headers[.platform]?.lowercased() == "open_platform" else {
            throw APIFailure.bad("Platform请求头缺失或错误，应为open_platform")
        }
        try await state.admit(path)
        try await state.authorize(req.headers[.authorization])
    }

    /// The JSON body as sent (keys with their own casing); empty when there is none.
    static func rawJSON(_ req: Request) async throws -> [String: Any] {
        let buffer = try await req.body.collect(upTo: 1 << 20)
        guard buffer.readableBytes > 0 else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any] else {
            throw APIFailure.bad("请求参数格式错误")
        }
        return object
    }

    static func int64(_ v: Any?) -> Int64? {
        switch v {
        case let n as NSNumber: return n.int64Value
        case let s as String: return Int64(s.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    /// The copy target as the configured casing allows.
    func copyTarget(_ raw: [String: Any]) async throws -> Int64 {
        let mode = await state.config.copyTargetField
        let value: Any?
        switch mode {
        case .either: value = raw.first { $0.key.lowercased() == "targetdirid" }?.value
        case .documented, .example: value = raw[mode.rawValue]
        }
        guard let id = Self.int64(value) else {
            throw APIFailure.bad(mode == .either ? "targetDirId参数错误" : "\(mode.rawValue)参数错误")
        }
        return id
    }

    func registerCopy(_ router: Router<Ctx>) {
        func route(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping @Sendable (Request) async throws -> Any?) {
            router.on(RouterPath(path), method: method) { req, _ in
                do {
                    try await admitted(req, path)
                    return Wire.ok(try await handler(req))
                } catch let f as APIFailure {
                    return Wire.fail(f)
                } catch {
                    return Wire.fail(.bad("\(error)"))
                }
            }
        }
        route(.post, "/api/v1/file/copy") { req in
            let raw = try await Self.rawJSON(req)
            guard let id = Self.int64(raw.first { $0.key.lowercased() == "fileid" }?.value) else { throw APIFailure.bad("fileId参数错误") }
            let target = try await copyTarget(raw)
            return ["sourceFileId": id, "targetFileId": try await state.copy(id, to: target)]
        }
        route(.post, "/api/v1/file/async/copy") { req in
            let raw = try await Self.rawJSON(req)
            guard let list = raw.first(where: { $0.key.lowercased() == "fileids" })?.value as? [Any] else { throw APIFailure.bad("fileIds参数错误") }
            let ids = list.compactMap { Self.int64($0) }
            guard ids.count == list.count else { throw APIFailure.bad("fileIds参数错误") }
            let target = try await copyTarget(raw)
            return ["taskId": try await state.startCopyTask(ids, to: target)]
        }
        for method in [HTTPRequest.Method.get, .post] {
            route(method, "/api/v1/file/async/copy/process") { req in
                let form = await state.config.copyProgressForm
                let fromQuery = method == .get ? Self.queryInt(req, "taskId") : nil
                let raw = try await Self.rawJSON(req)
                let fromBody = Self.int64(raw.first { $0.key.lowercased() == "taskid" }?.value)
                let task: Int64?
                switch form {
                case .either: task = fromQuery ?? fromBody
                case .query: task = fromQuery
                case .body: task = fromBody
                case .post: task = method == .post ? fromBody : nil
                }
                guard let task else {
                    throw APIFailure.bad(form == .query ? "taskId参数错误（查询参数）" : form == .either ? "taskId参数错误" : "taskId参数错误（请求体）")
                }
                return ["taskId": task, "status": try await state.copyTaskStatus(task)]
            }
        }
    }
}
