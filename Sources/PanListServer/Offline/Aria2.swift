import AsyncHTTPClient
import Foundation
import NIOCore
import PanListCore

/// A client of aria2's JSON-RPC interface (`aria2c --enable-rpc --rpc-secret=…`): the secret goes first in
/// every call as `token:<secret>`; aria2 answers numbers as strings.
struct Aria2Client: Sendable {
    let uri: String
    let secret: String

    static let http: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        config.timeout = .init(connect: .seconds(5), read: .seconds(20))
        // aria2 closes an RPC connection idle for 30 s (HttpServerCommand); a pooled one is dropped before that,
        // so that a call never goes out on a connection aria2 is closing.
        config.connectionPool = .init(idleTimeout: .seconds(20))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    struct Status: Sendable {
        var status: String
        var totalLength: Int64
        var completedLength: Int64
        var downloadSpeed: Int64
        var errorCode: String
        var errorMessage: String
        var followedBy: [String]
        var files: [String]
        /// A torrent seeding after it finished (counts as finished).
        var seeder: Bool
    }

    /// Calls `method` with `params` (after the token); the `result`.
    func call(_ method: String, _ params: [Any]) async throws -> Any {
        guard let url = URL(string: uri), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw FSError.badRequest("the aria2 address \(uri.debugDescription) is not an http(s) URL such as http://127.0.0.1:6800/jsonrpc")
        }
        let body: [String: Any] = ["jsonrpc": "2.0", "id": RandomString.make(8), "method": method,
                                   "params": ["token:" + secret] + params]
        var req = HTTPClientRequest(url: uri)
        req.method = .POST
        req.headers.add(name: "Content-Type", value: "application/json")
        req.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        let res: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            res = try await Self.http.execute(req, timeout: .seconds(20))
            bytes = try await res.body.collect(upTo: 4 << 20)
        } catch {
            // aria2's address stays out of the message: a task's error is shown to its creator, who may not be an admin.
            throw FSError.unavailable("aria2 did not answer: \(ErrorText.describe(error))")
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(buffer: bytes)) as? [String: Any] else {
            throw FSError.upstream(code: Int(res.status.code), message: "aria2 answered HTTP \(res.status.code) without JSON-RPC")
        }
        if let err = json["error"] as? [String: Any] {
            let message = err["message"] as? String ?? "error"
            if message == "Unauthorized" { throw FSError.badRequest("aria2 refused the secret (Unauthorized); check aria2_secret") }
            throw FSError.upstream(code: (err["code"] as? Int) ?? 1, message: "aria2: \(message)")
        }
        guard let result = json["result"] else { throw FSError.upstream(code: 1, message: "aria2 answered without a result") }
        return result
    }

    /// Whether aria2 runs on this machine (its address is a loopback one), so that it can reach PanList's
    /// guarded proxy on 127.0.0.1.
    var isLocal: Bool {
        guard let host = URL(string: uri)?.host?.lowercased() else { return false }
        var h = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        if h.hasSuffix(".") { h.removeLast() }
        if h == "localhost" || h.hasSuffix(".localhost") { return true }
        guard let literal = IPAddress(h) else { return false }
        let a = literal.embeddedV4 ?? literal
        return a.isV4 ? a.bytes[0] == 127 : a.bytes == Array(repeating: 0, count: 15) + [1]
    }

    /// `aria2.getVersion`: the version.
    func version() async throws -> String {
        let r = try await call("aria2.getVersion", [])
        return (r as? [String: Any])?["version"] as? String ?? "?"
    }

    /// `aria2.addUri` of one link into `dir`: the GID.
    func addUri(_ uri: String, dir: String, options: [String: String] = [:]) async throws -> String {
        // A .torrent or Metalink fetched over http is followed in memory (not left among the downloaded files).
        // The downloads a torrent or Metalink brings start paused (pause-metadata), so that PanList checks the
        // links they name before they run.
        let base = ["dir": dir, "follow-torrent": "mem", "follow-metalink": "mem", "pause-metadata": "true"]
        let r = try await call("aria2.addUri", [[uri], base.merging(options) { _, new in new }])
        guard let gid = r as? String else { throw FSError.upstream(code: 1, message: "aria2 gave no download id") }
        return gid
    }

    func tellStatus(_ gid: String) async throws -> Status {
        let keys = ["status", "totalLength", "completedLength", "downloadSpeed", "errorCode", "errorMessage", "followedBy", "files", "seeder"]
        guard let r = try await call("aria2.tellStatus", [gid, keys]) as? [String: Any] else {
            throw FSError.upstream(code: 1, message: "aria2 answered tellStatus without a status")
        }
        func int(_ k: String) -> Int64 { Int64(r[k] as? String ?? "") ?? 0 }
        let files = (r["files"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }.filter { !$0.isEmpty }
        return Status(status: r["status"] as? String ?? "", totalLength: int("totalLength"), completedLength: int("completedLength"),
                      downloadSpeed: int("downloadSpeed"), errorCode: r["errorCode"] as? String ?? "",
                      errorMessage: r["errorMessage"] as? String ?? "", followedBy: r["followedBy"] as? [String] ?? [],
                      files: files, seeder: (r["seeder"] as? String) == "true")
    }

    /// The links a download fetches from (`aria2.getUris`; none for a BitTorrent download without web seeds).
    func uris(_ gid: String) async throws -> [String] {
        ((try await call("aria2.getUris", [gid]) as? [[String: Any]]) ?? []).compactMap { $0["uri"] as? String }
    }

    /// Lets a paused download run.
    func unpause(_ gid: String) async throws {
        _ = try await call("aria2.unpause", [gid])
    }

    /// Stops a download and forgets it (errors ignored: it may be gone already).
    func forget(_ gid: String, stop: Bool) async {
        if stop {
            do { _ = try await call("aria2.forceRemove", [gid]) } catch FSError.unavailable {
                return   // aria2 does not answer: nothing to wait for (and a cancel or delete must not hang on it)
            } catch {}
        }
        for _ in 0..<10 {
            do { _ = try await call("aria2.removeDownloadResult", [gid]); return } catch FSError.unavailable { return } catch {}
            // A forced removal takes a moment before the result can be dropped.
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
}
