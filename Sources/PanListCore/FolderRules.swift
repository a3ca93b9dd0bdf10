import Foundation

/// A folder rule (Alist's "meta", table `x_meta`): rules for one virtual path: a password, name patterns
/// to hide, a write grant, a readme and a header. Each has an "applies to sub-folders" flag; without it the
/// rule covers the folder itself only (for hides: the entries listed directly in it).
public struct FolderRule: Codable, Sendable, Equatable {
    public var id: Int
    public var path: String
    public var password: String
    public var pSub: Bool
    public var write: Bool
    public var wSub: Bool
    /// Regular expressions, one per line, matched against entry names.
    public var hide: String
    public var hSub: Bool
    /// Markdown, or a URL the UI fetches.
    public var readme: String
    public var rSub: Bool
    public var header: String
    public var headerSub: Bool

    enum CodingKeys: String, CodingKey {
        case id, path, password, write, hide, readme, header
        case pSub = "p_sub", wSub = "w_sub", hSub = "h_sub", rSub = "r_sub", headerSub = "header_sub"
    }

    public init(id: Int = 0, path: String, password: String = "", pSub: Bool = false, write: Bool = false,
                wSub: Bool = false, hide: String = "", hSub: Bool = false, readme: String = "", rSub: Bool = false,
                header: String = "", headerSub: Bool = false) {
        self.id = id; self.path = path; self.password = password; self.pSub = pSub; self.write = write
        self.wSub = wSub; self.hide = hide; self.hSub = hSub; self.readme = readme; self.rSub = rSub
        self.header = header; self.headerSub = headerSub
    }

    /// Lenient decoding: Alist clients send partial records; missing fields take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(Int.self, forKey: .id) ?? 0
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? ""
        password = try c.decodeIfPresent(String.self, forKey: .password) ?? ""
        pSub = try c.decodeIfPresent(Bool.self, forKey: .pSub) ?? false
        write = try c.decodeIfPresent(Bool.self, forKey: .write) ?? false
        wSub = try c.decodeIfPresent(Bool.self, forKey: .wSub) ?? false
        hide = try c.decodeIfPresent(String.self, forKey: .hide) ?? ""
        hSub = try c.decodeIfPresent(Bool.self, forKey: .hSub) ?? false
        readme = try c.decodeIfPresent(String.self, forKey: .readme) ?? ""
        rSub = try c.decodeIfPresent(Bool.self, forKey: .rSub) ?? false
        header = try c.decodeIfPresent(String.self, forKey: .header) ?? ""
        headerSub = try c.decodeIfPresent(Bool.self, forKey: .headerSub) ?? false
    }

    /// The hide patterns, one per non-blank line.
    public var hidePatterns: [String] {
        hide.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Checks a rule given by an admin, normalising its path; throws `.badRequest` naming what is wrong.
    public mutating func validate() throws(FSError) {
        path = try VirtualPath.normalize(path)
        for p in hidePatterns {
            guard (try? NSRegularExpression(pattern: p)) != nil else {
                throw .badRequest("the hide pattern \"\(p)\" is not a valid regular expression")
            }
        }
        if password.utf8.count > 1024 { throw .badRequest("the password is longer than 1024 bytes") }
    }
}

/// All folder rules, indexed for the checks made on every request. Immutable; the server swaps in a new
/// value when an admin changes a rule.
///
/// Each kind of rule is looked up on its own, walking from the path up to `/` and taking the first rule
/// that sets it and applies (same path, or its sub-folder flag). So a readme-only rule deeper down never
/// lifts a password set above it (Alist takes the single nearest rule for everything, which does).
public struct FolderRules: Sendable {
    struct Entry: Sendable {
        var rule: FolderRule
        var hides: [Pattern]
    }
    /// A compiled hide pattern (NSRegularExpression is immutable and thread-safe once built).
    struct Pattern: @unchecked Sendable {
        let regex: NSRegularExpression
        /// Names are matched as sent and in both Unicode normal forms: storages (and Swift's own string
        /// comparison) treat "é" and "e + ◌́" as the same name, so a hide must too.
        func matches(_ name: String) -> Bool {
            if hit(name) { return true }
            let nfc = name.precomposedStringWithCanonicalMapping, nfd = name.decomposedStringWithCanonicalMapping
            return (nfc.utf8.elementsEqual(name.utf8) ? false : hit(nfc)) || (nfd.utf8.elementsEqual(name.utf8) ? false : hit(nfd))
        }
        private func hit(_ s: String) -> Bool {
            regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
        }
    }

    private let byPath: [String: Entry]
    public var rules: [FolderRule] { byPath.values.map(\.rule).sorted { $0.path < $1.path } }
    public var isEmpty: Bool { byPath.isEmpty }
    private let anyPassword: Bool
    private let anyHide: Bool

    public static let none = FolderRules([])

    /// Rules whose path is not normal or whose hide patterns do not compile lose those parts (the admin API
    /// refuses them; this guards against rows edited by hand).
    public init(_ rules: [FolderRule]) {
        var map: [String: Entry] = [:]
        for var r in rules {
            guard let p = try? VirtualPath.normalize(r.path) else { continue }
            r.path = p
            map[p] = Entry(rule: r, hides: r.hidePatterns.compactMap { (try? NSRegularExpression(pattern: $0)).map(Pattern.init) })
        }
        byPath = map
        anyPassword = map.values.contains { !$0.rule.password.isEmpty }
        anyHide = map.values.contains { !$0.hides.isEmpty }
    }

    /// The first rule, from `path` up to `/`, for which `pick` says yes, given how many levels above `path`
    /// the rule sits (0: at `path` itself).
    private func nearest(_ path: String, _ pick: (FolderRule, _ levels: Int) -> Bool) -> FolderRule? {
        if byPath.isEmpty { return nil }
        var p = path
        var levels = 0
        while true {
            if let e = byPath[p], pick(e.rule, levels) { return e.rule }
            if p == "/" { return nil }
            p = VirtualPath.parent(p)
            levels += 1
        }
    }

    /// Whether some rule sits at `path` or below it.
    public func hasRule(within path: String) -> Bool {
        byPath.keys.contains { VirtualPath.isWithinAnyForm($0, path) }
    }

    /// The password that guards `path`, if any. A password guards its folder and the entries directly in
    /// it (so a file's download needs it as much as the folder's listing); with `p_sub`, everything below.
    /// (Alist leaves the files in a folder without `p_sub` open to anyone who knows their names.)
    public func password(for path: String) -> String? { passwordRule(for: path)?.password }

    /// The rule whose password guards `path`, if any.
    public func passwordRule(for path: String) -> FolderRule? {
        guard anyPassword else { return nil }
        return nearest(path) { r, levels in !r.password.isEmpty && (levels <= 1 || r.pSub) }
    }

    /// Whether some entry directly in `folder` may be guarded by a password (cheap; false lets listings skip
    /// a per-entry lookup).
    public func guardsEntries(of folder: String) -> Bool {
        guard anyPassword else { return false }
        // A rule at the folder, or one above it for everything below, guards every entry.
        if nearest(folder, { r, levels in !r.password.isEmpty && (levels == 0 || r.pSub) }) != nil { return true }
        return byPath.values.contains { !$0.rule.password.isEmpty && $0.rule.path != folder && VirtualPath.isWithinAnyForm($0.rule.path, folder) }
    }

    /// Whether a rule lets anyone who may read `folder` create things in it (Alist's meta `write`).
    public func grantsWrite(_ folder: String) -> Bool {
        nearest(folder) { r, levels in r.write && (levels == 0 || r.wSub) } != nil
    }

    public func readme(for path: String) -> String {
        nearest(path) { r, levels in !r.readme.isEmpty && (levels == 0 || r.rSub) }?.readme ?? ""
    }

    public func header(for path: String) -> String {
        nearest(path) { r, levels in !r.header.isEmpty && (levels == 0 || r.headerSub) }?.header ?? ""
    }

    /// The hide patterns for entries listed in `folder`: those of every rule at or above it that applies.
    func hides(in folder: String) -> [Pattern] {
        guard anyHide else { return [] }
        var found: [Pattern] = []
        var p = folder
        while true {
            if let e = byPath[p], !e.hides.isEmpty, p == folder || e.rule.hSub { found += e.hides }
            if p == "/" { return found }
            p = VirtualPath.parent(p)
        }
    }

    /// A filter for the entries of `folder`: true for names that stay visible. Nil when nothing is hidden there.
    public func visibility(in folder: String) -> (@Sendable (String) -> Bool)? {
        let patterns = hides(in: folder)
        if patterns.isEmpty { return nil }
        return { name in !patterns.contains { $0.matches(name) } }
    }

    /// The rules above `path` (strictly) whose hides reach into everything below them (`h_sub`): what a
    /// folder at `path` inherits, and would not take along to another place.
    public func inheritedHideRules(_ path: String) -> Set<String> {
        guard anyHide, path != "/" else { return [] }
        var found: Set<String> = []
        var p = VirtualPath.parent(path)
        while true {
            if let e = byPath[p], !e.hides.isEmpty, e.rule.hSub { found.insert(p) }
            if p == "/" { return found }
            p = VirtualPath.parent(p)
        }
    }

    /// Whether `path` or any folder on the way to it is hidden (a hidden folder hides everything in it).
    public func isHidden(_ path: String) -> Bool {
        guard anyHide, path != "/" else { return false }
        var p = path
        while p != "/" {
            let parent = VirtualPath.parent(p)
            if let visible = visibility(in: parent), !visible(VirtualPath.base(p)) { return true }
            p = parent
        }
        return false
    }
}
