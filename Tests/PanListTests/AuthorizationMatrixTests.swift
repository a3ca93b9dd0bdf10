import Foundation
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer

/// Who may do what, where, through which front end: every cell checked against the permission model
/// (read needs no bit; write, rename, move, copy and delete need theirs; WebDAV needs WebDAV read, and
/// WebDAV changes WebDAV manage too; nothing outside the base path; the admin may do everything).
@Suite("Security: authorization matrix")
struct AuthorizationMatrixTests {
    enum Op: String, CaseIterable { case list, get, download, upload, mkdir, rename, move, copy, delete }
    enum Front: String { case api, dav }

    struct Who {
        var name: String
        var permission: Permission
        var admin = false
    }

    static func bit(_ op: Op) -> Permission? {
        switch op {
        case .list, .get, .download: nil
        case .upload, .mkdir: .write
        case .rename: .rename
        case .move: .move
        case .copy: .copy
        case .delete: .remove
        }
    }

    static func expected(_ who: Who, _ op: Op, _ front: Front, inside: Bool) -> Bool {
        if who.admin { return true }
        guard inside else { return false }
        if front == .dav {
            guard who.permission.contains(.webdavRead) else { return false }
            if bit(op) != nil && !who.permission.contains(.webdavManage) { return false }
        }
        if let b = bit(op) { return who.permission.contains(b) }
        return true
    }

    @Test func everyCell() async throws {
        try await withServer { s in
            let dav: Permission = [.webdavRead, .webdavManage]
            var people = [Who(name: "admin", permission: .admin, admin: true), Who(name: "nobits", permission: [])]
            for (n, p) in [("w", Permission.write), ("rn", .rename), ("mv", .move), ("cp", .copy), ("rm", .remove)] {
                people.append(Who(name: "u-\(n)", permission: p))
                people.append(Who(name: "d-\(n)", permission: p.union(dav)))
            }
            people.append(Who(name: "davread", permission: [.webdavRead]))
            var failures: [String] = []
            for who in people {
                let password = "pw-\(who.name)-123"
                if !who.admin {
                    _ = try await s.addUser(who.name, password: password, basePath: "/home/\(who.name)", permission: who.permission)
                }
                let token = try await s.login(who.name, who.admin ? s.adminPassword : password)
                let basic = "Basic " + Data("\(who.name):\(who.admin ? s.adminPassword : password)".utf8).base64EncodedString()
                let home = who.admin ? "/" : "/home/\(who.name)"
                for inside in [true, false] {
                    for front in [Front.api, .dav] {
                        for op in Op.allCases {
                            // Fresh fixtures: a folder with a file and a sub-folder, inside the user's home or in another one.
                            let area = inside ? (who.admin ? "/home/admin-area" : home) : "/home/other"
                            let disk = s.files + area
                            try? FileManager.default.removeItem(atPath: disk + "/cell")
                            try FileManager.default.createDirectory(atPath: disk + "/cell/sub", withIntermediateDirectories: true)
                            try Data("cell".utf8).write(to: URL(fileURLWithPath: disk + "/cell/f.txt"))
                            // The path as the user names it (relative to their base path).
                            let rel = who.admin ? area + "/cell" : (inside ? "/cell" : "/../other/cell")
                            let ok = try await attempt(s, op, front, rel: rel, token: token, basic: basic, disk: disk + "/cell")
                            let want = Self.expected(who, op, front, inside: inside)
                            if ok != want { failures.append("\(who.name) \(front) \(op) \(inside ? "inside" : "outside"): got \(ok), want \(want)") }
                        }
                    }
                }
            }
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        }
    }

    /// Performs one operation; true when it succeeded (checked on disk for the writes).
    func attempt(_ s: TestServer, _ op: Op, _ front: Front, rel: String, token: String, basic: String, disk: String) async throws -> Bool {
        let fm = FileManager.default
        switch front {
        case .api:
            switch op {
            case .list: return try await s.api("/fs/list", ["path": rel], token: token).code == 200
            case .get: return try await s.api("/fs/get", ["path": rel + "/f.txt"], token: token).code == 200
            case .download:
                let r = try await s.request(.GET, "/d" + URLPath.encode(absolute(s, rel, token)) + "/f.txt", headers: [("Authorization", token)])
                return r.status == 200 && r.text == "cell"
            case .upload:
                _ = try await s.put(rel + "/new.txt", Data("n".utf8), token: token)
                return fm.fileExists(atPath: disk + "/new.txt")
            case .mkdir:
                _ = try await s.api("/fs/mkdir", ["path": rel + "/made"], token: token)
                return fm.fileExists(atPath: disk + "/made")
            case .rename:
                _ = try await s.api("/fs/rename", ["path": rel + "/f.txt", "name": "g.txt"], token: token)
                return fm.fileExists(atPath: disk + "/g.txt")
            case .move:
                _ = try await s.api("/fs/move", ["src_dir": rel, "dst_dir": rel + "/sub", "names": ["f.txt"]], token: token)
                return fm.fileExists(atPath: disk + "/sub/f.txt")
            case .copy:
                _ = try await s.api("/fs/copy", ["src_dir": rel, "dst_dir": rel + "/sub", "names": ["f.txt"]], token: token)
                return fm.fileExists(atPath: disk + "/sub/f.txt")
            case .delete:
                _ = try await s.api("/fs/remove", ["dir": rel, "names": ["f.txt"]], token: token)
                return !fm.fileExists(atPath: disk + "/f.txt")
            }
        case .dav:
            let base = "/dav" + rel.replacingOccurrences(of: "/../", with: "/%2e%2e/")
            func req(_ m: String, _ path: String, _ headers: [(String, String)] = [], _ body: String? = nil) async throws -> HTTPResult {
                try await s.request(.RAW(value: m), path, headers: [("Authorization", basic)] + headers, body: body.map { Data($0.utf8) })
            }
            switch op {
            case .list: return try await req("PROPFIND", base + "/", [("Depth", "1")]).status == 207
            case .get: return try await req("PROPFIND", base + "/f.txt", [("Depth", "0")]).status == 207
            case .download:
                let r = try await req("GET", base + "/f.txt")
                return r.status == 200 && r.text == "cell"
            case .upload:
                _ = try await req("PUT", base + "/new.txt", [], "n")
                return fm.fileExists(atPath: disk + "/new.txt")
            case .mkdir:
                _ = try await req("MKCOL", base + "/made")
                return fm.fileExists(atPath: disk + "/made")
            case .rename:
                _ = try await req("MOVE", base + "/f.txt", [("Destination", base + "/g.txt")])
                return fm.fileExists(atPath: disk + "/g.txt")
            case .move:
                _ = try await req("MOVE", base + "/f.txt", [("Destination", base + "/sub/f.txt")])
                return fm.fileExists(atPath: disk + "/sub/f.txt")
            case .copy:
                _ = try await req("COPY", base + "/f.txt", [("Destination", base + "/sub/f.txt")])
                return fm.fileExists(atPath: disk + "/sub/f.txt")
            case .delete:
                _ = try await req("DELETE", base + "/f.txt")
                return !fm.fileExists(atPath: disk + "/f.txt")
            }
        }
    }

    /// The absolute path for `/d` (download links carry absolute paths): the user's base path joined.
    func absolute(_ s: TestServer, _ rel: String, _ token: String) async throws -> String {
        let me = try await s.api("/me", token: token, method: .GET)
        let base = me.data["base_path"] as? String ?? "/"
        return base == "/" ? rel : base + rel
    }
}
