import Foundation
import NIOHTTP1
import Testing
@testable import PanListCore
@testable import PanListServer

/// Who may do what, where, through which front end: every cell checked against the permission model
/// (read needs no bit; write, rename, move, copy and delete need theirs; WebDAV needs WebDAV read, and
/// WebDAV changes WebDAV manage too; nothing outside the base path; a folder password must be given
/// unless the user may access without one, and WebDAV cannot give it; the guest is whoever comes without
/// credentials, on WebDAV too, with the guest's bits; the admin may do everything).
@Suite("Security: authorization matrix")
struct AuthorizationMatrixTests {
    enum Op: String, CaseIterable { case list, get, download, upload, mkdir, rename, move, copy, delete, search }
    enum Front: String { case api, dav }
    /// The cell's folder: open, or guarded by a folder password that the client sends or does not send.
    enum Lock: String { case open, withPassword, withoutPassword }

    struct Who {
        var name: String
        var permission: Permission
        var admin = false
        var guest = false
    }

    static func bit(_ op: Op) -> Permission? {
        switch op {
        case .list, .get, .download, .search: nil
        case .upload, .mkdir: .write
        case .rename: .rename
        case .move: .move
        case .copy: .copy
        case .delete: .remove
        }
    }

    static func expected(_ who: Who, _ op: Op, _ front: Front, inside: Bool, lock: Lock) -> Bool {
        if who.admin { return true }
        guard inside else { return false }
        if lock != .open && !who.permission.contains(.accessWithoutPassword) {
            if front == .dav || lock == .withoutPassword { return false }
        }
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
            people.append(Who(name: "trusted", permission: Permission([.accessWithoutPassword, .write, .remove]).union(dav)))
            people.append(Who(name: "guest", permission: [], guest: true))
            people.append(Who(name: "guest", permission: Permission([.write, .rename, .move, .copy, .remove]).union(dav), guest: true))
            let adminToken = try await s.login()
            try await s.setSetting("search_index", "database")
            var failures: [String] = []
            var cells = 0
            for who in people {
                let password = "pw-\(who.name)-123"
                if who.guest {
                    try await s.setGuest(enabled: true, permission: who.permission, basePath: "/home/guest")
                } else if !who.admin {
                    _ = try await s.addUser(who.name, password: password, basePath: "/home/\(who.name)", permission: who.permission)
                }
                let token = who.guest ? "" : try await s.login(who.name, who.admin ? s.adminPassword : password)
                let basic = who.guest ? "" : "Basic " + Data("\(who.name):\(who.admin ? s.adminPassword : password)".utf8).base64EncodedString()
                let home = who.admin ? "/" : "/home/\(who.name)"
                for (inside, lock) in [(true, Lock.open), (true, .withPassword), (true, .withoutPassword), (false, .open)] {
                    for front in [Front.api, .dav] {
                        for op in Op.allCases where !(op == .search && front == .dav) {
                            // Fresh fixtures: a folder with a file and a sub-folder, inside the user's home or in another one.
                            let area = inside ? (who.admin ? "/home/admin-area" : home) : "/home/other"
                            let disk = s.files + area
                            try? FileManager.default.removeItem(atPath: disk + "/cell")
                            try FileManager.default.createDirectory(atPath: disk + "/cell/sub", withIntermediateDirectories: true)
                            try Data("cell".utf8).write(to: URL(fileURLWithPath: disk + "/cell/f.txt"))
                            // (Made behind PanList's back: listings it keeps, such as the one a copy's index update read, go.)
                            await s.state.fs.forgetCaches()
                            // The path as the user names it (relative to their base path).
                            let rel = who.admin ? area + "/cell" : (inside ? "/cell" : "/../other/cell")
                            var ruleID: Int?
                            if lock != .open {
                                let made = try await s.api("/admin/meta/create", ["path": area + "/cell", "password": "cell-pw", "p_sub": true], token: adminToken)
                                ruleID = made.data["id"] as? Int
                            }
                            let ok = try await attempt(s, op, front, rel: rel, token: token, basic: basic, disk: disk + "/cell",
                                                       password: lock == .withPassword ? "cell-pw" : nil)
                            if let ruleID { _ = try await s.api("/admin/meta/delete?id=\(ruleID)", token: adminToken) }
                            let want = Self.expected(who, op, front, inside: inside, lock: lock)
                            cells += 1
                            if ok != want {
                                failures.append("\(who.name)(\(who.permission.rawValue)) \(front) \(op) \(inside ? "inside" : "outside") \(lock): got \(ok), want \(want)")
                            }
                        }
                    }
                }
            }
            // (Search is an /api request only.)
            #expect(cells == people.count * 4 * (2 * Op.allCases.count - 1))
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        }
    }

    /// Performs one operation; true when it succeeded (checked on disk for the writes).
    /// `password` is the folder password the client sends (in the body, the `Password` header, or by
    /// downloading with the sign a listing made with it hands out).
    func attempt(_ s: TestServer, _ op: Op, _ front: Front, rel: String, token: String, basic: String, disk: String,
                 password: String?) async throws -> Bool {
        let fm = FileManager.default
        let tok: String? = token.isEmpty ? nil : token
        func body(_ b: [String: Any]) -> [String: Any] {
            var b = b
            if let password { b["password"] = password }
            return b
        }
        switch front {
        case .api:
            switch op {
            case .list: return try await s.api("/fs/list", body(["path": rel]), token: tok).code == 200
            case .get: return try await s.api("/fs/get", body(["path": rel + "/f.txt"]), token: tok).code == 200
            case .download:
                // Through /d and /p; both must give the same answer.
                let path = try await absolute(s, rel, token) + "/f.txt"
                var query = "", headers: [(String, String)] = tok.map { [("Authorization", $0)] } ?? []
                if password != nil || tok == nil {
                    // As the UI does (and the guest must, as `sign_all` is on by default): the sign that
                    // `fs/get` hands out, made with the folder password when there is one.
                    let got = try await s.api("/fs/get", body(["path": rel + "/f.txt"]), token: tok)
                    guard let sign = got.data["sign"] as? String, !sign.isEmpty else { return false }
                    query = "?sign=" + URLPath.encode(sign, keepSlash: false)
                    headers = []
                }
                let d = try await s.request(.GET, "/d" + URLPath.encode(path) + query, headers: headers)
                let p = try await s.request(.GET, "/p" + URLPath.encode(path) + query, headers: headers)
                let viaD = d.status == 200 && d.text == "cell", viaP = p.status == 200 && p.text == "cell"
                if viaD != viaP { throw FSError.internalError("/d (\(d.status)) and /p (\(p.status)) disagree on \(path)") }
                return viaD
            case .upload:
                _ = try await s.put(rel + "/new.txt", Data("n".utf8), token: token, extra: password.map { [("Password", $0)] } ?? [])
                return fm.fileExists(atPath: disk + "/new.txt")
            case .mkdir:
                _ = try await s.api("/fs/mkdir", body(["path": rel + "/made"]), token: tok)
                return fm.fileExists(atPath: disk + "/made")
            case .rename:
                _ = try await s.api("/fs/rename", body(["path": rel + "/f.txt", "name": "g.txt"]), token: tok)
                return fm.fileExists(atPath: disk + "/g.txt")
            case .move:
                _ = try await s.api("/fs/move", body(["src_dir": rel, "dst_dir": rel + "/sub", "names": ["f.txt"]]), token: tok)
                return fm.fileExists(atPath: disk + "/sub/f.txt")
            case .copy:
                _ = try await s.api("/fs/copy", body(["src_dir": rel, "dst_dir": rel + "/sub", "names": ["f.txt"]]), token: tok)
                return fm.fileExists(atPath: disk + "/sub/f.txt")
            case .delete:
                _ = try await s.api("/fs/remove", body(["dir": rel, "names": ["f.txt"]]), token: tok)
                return !fm.fileExists(atPath: disk + "/f.txt")
            case .search:
                // The cell's names in the index (as a walk would put them), then a search below the cell.
                let folder = String(disk.dropFirst(s.files.count))
                let storage = s.state.fs.resolve(folder)?.0.id ?? 0
                let now = Date()
                // (The fixture is remade on disk behind PanList's back: what earlier cells left in the index goes.)
                try await s.state.store.indexClear(below: folder)
                try await s.state.store.indexReplaceFolder(folder, entries: [
                    IndexEntry(parent: folder, name: "f.txt", isDir: false, size: 4, modified: now, storageID: storage),
                    IndexEntry(parent: folder, name: "sub", isDir: true, size: 0, modified: now, storageID: storage)])
                let r = try await s.api("/fs/search", body(["parent": rel, "keywords": "f.txt"]), token: tok)
                let found = (r.data["content"] as? [[String: Any]] ?? []).map { "\($0["parent"] as? String ?? "")/\($0["name"] as? String ?? "")" }
                return r.code == 200 && found == [rel + "/f.txt"]
            }
        case .dav:
            let base = "/dav" + rel.replacingOccurrences(of: "/../", with: "/%2e%2e/")
            func req(_ m: String, _ path: String, _ headers: [(String, String)] = [], _ body: String? = nil) async throws -> HTTPResult {
                try await s.request(.RAW(value: m), path, headers: (basic.isEmpty ? [] : [("Authorization", basic)]) + headers,
                                    body: body.map { Data($0.utf8) })
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
            case .search:
                throw FSError.internalError("search is not a WebDAV request")
            }
        }
    }

    /// The absolute path for `/d` (download links carry absolute paths): the user's base path joined.
    func absolute(_ s: TestServer, _ rel: String, _ token: String) async throws -> String {
        let me = try await s.api("/me", token: token.isEmpty ? nil : token, method: .GET)
        let base = me.data["base_path"] as? String ?? "/"
        return base == "/" ? rel : base + rel
    }
}
