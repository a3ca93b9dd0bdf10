import Testing
@testable import PanListCore

/// The folder-rule model on its own: which rule guards which path, and what `Access.check` makes of it.
@Suite("Folder rules: the model")
struct FolderRulesTests {
    let reader = User(id: 5, username: "r", role: .general, permission: [])
    let rules = FolderRules([
        FolderRule(path: "/club", password: "pw1", pSub: true),
        FolderRule(path: "/club/inner", readme: "# Inner"),        // a readme-only rule lifts nothing
        FolderRule(path: "/club/vip", password: "pw2", pSub: false),
        FolderRule(path: "/open", password: "top", pSub: false),
        FolderRule(path: "/pub", write: true, wSub: false, hide: "^secret\n\\.bak$", hSub: true),
    ])

    @Test func passwordsByPath() {
        #expect(rules.password(for: "/club") == "pw1")
        #expect(rules.password(for: "/club/a/b/c.txt") == "pw1")
        #expect(rules.password(for: "/club/inner/x") == "pw1")
        #expect(rules.password(for: "/club/vip") == "pw2")
        #expect(rules.password(for: "/club/vip/f.txt") == "pw2")
        // Below the entries of /club/vip its rule stops; the /club rule (p_sub) still covers it.
        #expect(rules.password(for: "/club/vip/deep/f.txt") == "pw1")
        // Without p_sub: the folder and the entries in it, not deeper.
        #expect(rules.password(for: "/open") == "top")
        #expect(rules.password(for: "/open/f.txt") == "top")
        #expect(rules.password(for: "/open/sub/f.txt") == nil)
        #expect(rules.password(for: "/clubhouse") == nil)
        #expect(rules.password(for: "/") == nil)
    }

    @Test func hidesWriteReadme() {
        #expect(rules.isHidden("/pub/secret"))
        #expect(rules.isHidden("/pub/secret/inside.txt"))
        #expect(rules.isHidden("/pub/deeper/old.bak"))
        #expect(!rules.isHidden("/pub/notsecret"))
        #expect(!rules.isHidden("/other/secret"))
        // The same name in either Unicode normal form.
        let accents = FolderRules([FolderRule(path: "/pub", hide: "^café\\.txt$")])
        #expect(accents.isHidden("/pub/caf\u{E9}.txt") && accents.isHidden("/pub/cafe\u{301}.txt"))
        // Rules are found for a path in either form (what lets them travel with a folder named either way).
        let guarded = FolderRules([FolderRule(path: "/caf\u{E9}", password: "p", pSub: true)])
        #expect(guarded.password(for: "/cafe\u{301}/x") == "p" && guarded.hasRule(within: "/cafe\u{301}"))
        #expect(VirtualPath.relativeAnyForm("/cafe\u{301}/sub", to: "/caf\u{E9}") == "/sub")
        #expect(rules.grantsWrite("/pub"))
        #expect(!rules.grantsWrite("/pub/sub"))
        #expect(rules.readme(for: "/club/inner") == "# Inner")
        #expect(rules.readme(for: "/club/inner/x") == "")
    }

    @Test func accessCheck() throws {
        #expect(throws: FSError.permissionDenied(Access.passwordMessage)) {
            try Access.check(reader, .read, "/club/a", rules: rules, password: nil)
        }
        #expect(throws: FSError.permissionDenied(Access.passwordMessage)) {
            try Access.check(reader, .read, "/club/a", rules: rules, password: "pw2")
        }
        try Access.check(reader, .read, "/club/a", rules: rules, password: "pw1")
        var trusted = reader
        trusted.permission = [.accessWithoutPassword]
        try Access.check(trusted, .read, "/club/a", rules: rules, password: nil)
        // Hidden: not found for readers, there for those who may see hidden files and for the admin.
        #expect(throws: FSError.self) { try Access.check(reader, .read, "/pub/secret/x", rules: rules, password: nil) }
        var seer = reader
        seer.permission = [.seeHides]
        try Access.check(seer, .read, "/pub/secret/x", rules: rules, password: nil)
        let admin = User(id: 1, username: "admin", role: .admin, permission: .admin)
        try Access.check(admin, .read, "/pub/secret/x", rules: rules, password: nil)
        try Access.check(admin, .remove, "/club/a", rules: rules, password: nil)
        // A write rule stands in for the write bit in its folder only, and never for delete.
        try Access.check(reader, .write, "/pub", rules: rules, password: nil)
        #expect(throws: FSError.self) { try Access.check(reader, .write, "/pub/sub", rules: rules, password: nil) }
        #expect(throws: FSError.self) { try Access.check(reader, .remove, "/pub", rules: rules, password: nil) }
        // WebDAV-style listings leave out what cannot be opened without a password.
        let open = try #require(Access.openEntries(reader, in: "/", rules: rules))
        #expect(!open("club") && !open("open") && open("pub"))
        #expect(Access.openEntries(trusted, in: "/", rules: rules) == nil)
    }

    @Test func validation() {
        var bad = FolderRule(path: "/a", hide: "(unclosed")
        #expect(throws: FSError.self) { try bad.validate() }
        var traversal = FolderRule(path: "/a/../b")
        #expect(throws: FSError.self) { try traversal.validate() }
        var ok = FolderRule(path: "a//b/", hide: "x\n\n  y  ")
        #expect(throws: Never.self) { try ok.validate() }
        #expect(ok.path == "/a/b")
        #expect(ok.hidePatterns == ["x", "y"])
    }
}
