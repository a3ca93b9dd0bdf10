import Foundation
import Logging
import Testing
@testable import PanListCore
@testable import PanListServer
import DriverLocal

@Suite("Virtual paths")
struct VirtualPathTests {
    @Test func normalisesSlashesDotsAndBackslashes() throws {
        #expect(try VirtualPath.normalize("") == "/")
        #expect(try VirtualPath.normalize("a//b/./c/") == "/a/b/c")
        #expect(try VirtualPath.normalize("\\a\\b") == "/a/b")
        #expect(try VirtualPath.normalize("/中文/ 空格 /") == "/中文/ 空格 ")
    }

    @Test(arguments: ["..", "/a/../b", "a/..", "\\..\\etc", "/a/..\\b", "/x/\u{0}y"])
    func refusesTraversalAndNUL(_ raw: String) {
        #expect(throws: FSError.self) { try VirtualPath.normalize(raw) }
    }

    @Test(arguments: ["", ".", "..", "a/b", "a\\b", "x\u{0}", String(repeating: "n", count: 256)])
    func refusesBadNames(_ name: String) {
        #expect(throws: FSError.self) { try VirtualPath.validateName(name) }
    }

    @Test func segmentBoundaries() {
        #expect(VirtualPath.isWithin("/a/b", "/a"))
        #expect(VirtualPath.isWithin("/a", "/a"))
        #expect(!VirtualPath.isWithin("/ab", "/a"))
        #expect(VirtualPath.isWithin("/anything", "/"))
        #expect(VirtualPath.relative("/a/b/c", to: "/a") == "/b/c")
        #expect(VirtualPath.relative("/a", to: "/a") == "/")
        #expect(VirtualPath.parent("/a/b") == "/a")
        #expect(VirtualPath.parent("/a") == "/")
        #expect(VirtualPath.base("/a/b.txt") == "b.txt")
    }

    @Test func pagingSurvivesAnyNumbers() {
        #expect(Paging.range(count: 10, page: 2, perPage: 4) == 4..<8)
        #expect(Paging.range(count: 10, page: 3, perPage: 4) == 8..<10)
        #expect(Paging.range(count: 10, page: 4_611_686_018_427_387_905, perPage: 4) == 10..<10)
        #expect(Paging.range(count: 10, page: 1, perPage: Int.max) == 0..<10)
        #expect(Paging.range(count: 10, page: Int.max, perPage: Int.max) == 10..<10)
        #expect(Paging.range(count: 10, page: 0, perPage: 4) == nil)
        #expect(Paging.range(count: 10, page: nil, perPage: 4) == nil)
        #expect(Paging.range(count: 0, page: 1, perPage: 1) == 0..<0)
    }

    @Test func userBasePathJoinStaysInside() throws {
        let u = User(id: 2, username: "u", basePath: "/home/u", role: .general, permission: [])
        #expect(try Access.resolve("/docs/x.txt", for: u) == "/home/u/docs/x.txt")
        #expect(try Access.resolve("/", for: u) == "/home/u")
        #expect(throws: FSError.self) { try Access.resolve("/../v/secret", for: u) }
        #expect(throws: FSError.self) { try Access.check(u, .read, "/home/uv/file", rules: .none, password: nil) }
        #expect(throws: FSError.self) { try Access.check(u, .write, "/home/u/file", rules: .none, password: nil) }
        let writer = User(id: 3, username: "w", basePath: "/home/u", role: .general, permission: [.write])
        try Access.check(writer, .write, "/home/u/file", rules: .none, password: nil)
    }

    /// Messages shown to a user name paths under their base folder as they see them, and nothing else changes.
    @Test func messagesSpeakTheUsersPaths() {
        let u = User(id: 2, username: "u", basePath: "/home", role: .general, permission: [])
        let cases: [(String, String)] = [
            ("/home/x: object not found", "/x: object not found"),
            ("/home: object not found", "/: object not found"),
            ("copy [/home/a b.txt] failed", "copy [/a b.txt] failed"),
            ("/home/home/x is gone", "/home/x is gone"),             // the user's own folder named home stays
            ("/data/home/x is gone", "/data/home/x is gone"),        // not a path that starts with the base
            ("/homework/x is gone", "/homework/x is gone"),
            ("moved to /home.", "moved to /."),
            ("\"/home/ü/é\" exists", "\"/ü/é\" exists"),
            ("x/home/y", "x/home/y"),
            ("/home/a and /home/b", "/a and /b"),
            ("nothing to see", "nothing to see"),
        ]
        for (text, want) in cases { #expect(Access.inUserTerms(text, for: u) == want, "\(text)") }
        let root = User(id: 3, username: "r", basePath: "/", role: .general, permission: [])
        #expect(Access.inUserTerms("/home/x", for: root) == "/home/x")
        let slash = User(id: 4, username: "s", basePath: "/home/", role: .general, permission: [])
        #expect(Access.inUserTerms("/home/x: gone", for: slash) == "/x: gone")
    }
}

@Suite("Signing")
struct SignTests {
    let signer = Signer(key: "secret-token")

    @Test func roundTripAndAlistFormat() throws {
        let sign = signer.sign(path: "/a b/中.mp4", expire: 0)
        #expect(sign.hasSuffix(":0"))
        #expect(!sign.contains("+") && !sign.contains("/"))
        try signer.verify(path: "/a b/中.mp4", sign: sign)
        try signer.verify(path: "/a b/中.mp4", sign: sign + "/")
    }

    @Test func refusesWrongExpiredAndMalformed() {
        let good = signer.sign(path: "/f", expire: 0)
        #expect(throws: FSError.unauthorized("sign invalid")) { try signer.verify(path: "/g", sign: good) }
        let past = signer.sign(path: "/f", expire: 1000)
        #expect(throws: FSError.unauthorized("sign expired")) { try signer.verify(path: "/f", sign: past) }
        #expect(throws: FSError.unauthorized("expire missing")) { try signer.verify(path: "/f", sign: "abc") }
        #expect(throws: FSError.unauthorized("expire invalid")) { try signer.verify(path: "/f", sign: "abc:xyz") }
        #expect(throws: FSError.unauthorized("sign invalid")) { try Signer(key: "other").verify(path: "/f", sign: good) }
    }

    @Test func base64MatchesFoundationWithURLAlphabet() {
        for n in 0..<70 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 250) }
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            #expect(Signer.base64URL(bytes) == expected)
        }
    }

    @Test func rfc3339Format() {
        #expect(TimeFormat.rfc3339(Date(timeIntervalSince1970: 1715924875.417)) == "2024-05-17T05:47:55.417Z")
        #expect(TimeFormat.rfc3339(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }

    @Test func futureExpiryIsAccepted() throws {
        let exp = Int64(Date().timeIntervalSince1970) + 3600
        try signer.verify(path: "/f", sign: signer.sign(path: "/f", expire: exp))
    }
}

@Suite("Range parsing")
struct RangeTests {
    @Test func singleRanges() {
        #expect(ByteRange.parse("bytes=0-99", size: 1000) == .partial(0...99))
        #expect(ByteRange.parse("bytes=900-", size: 1000) == .partial(900...999))
        #expect(ByteRange.parse("bytes=-100", size: 1000) == .partial(900...999))
        #expect(ByteRange.parse("bytes=-5000", size: 1000) == .partial(0...999))
        #expect(ByteRange.parse("bytes=990-2000", size: 1000) == .partial(990...999))
    }

    @Test func unsatisfiableAndIgnored() {
        #expect(ByteRange.parse("bytes=1000-", size: 1000) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-0", size: 1000) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=5-1", size: 1000) == .full)
        #expect(ByteRange.parse("bytes=a-b", size: 1000) == .full)
        #expect(ByteRange.parse("items=0-1", size: 1000) == .full)
        #expect(ByteRange.parse("bytes=0-1,5-6", size: 1000) == .full)
        #expect(ByteRange.parse("bytes=0-10", size: 0) == .full)
    }

    @Test func httpDatesRoundTrip() {
        let d = Date(timeIntervalSince1970: 784111777)
        #expect(HTTPDate.format(d) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == d)
        #expect(HTTPDate.parse("yesterday") == nil)
    }

    @Test func contentDispositionEncodesAnyName() {
        let d = ContentTypes.disposition(name: "报告 \"final\".pdf", inline: true)
        #expect(d.hasPrefix("inline; filename=\""))
        #expect(d.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%22final%22.pdf"))
        #expect(!ContentTypes.isSafeInline(ContentTypes.forName("x.html")))
        #expect(!ContentTypes.isSafeInline(ContentTypes.forName("x.svg")))
        #expect(ContentTypes.isSafeInline(ContentTypes.forName("x.mp4")))
    }

    @Test func percentDecodingIsStrict() {
        #expect(URLPath.decode("a%20b+c") == "a b+c")
        #expect(URLPath.decode("%E4%B8%AD") == "中")
        #expect(URLPath.decode("%zz") == nil)
        #expect(URLPath.decode("%FF") == nil)
        #expect(URLPath.encode("/a b/中#%.txt") == "/a%20b/%E4%B8%AD%23%25.txt")
    }
}

/// Builds a FileSystem over the given storages, outside any server.
func makeFS(_ records: [StorageRecord]) async -> FileSystem {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let fs = FileSystem(registry: testRegistry(), environment: DriverEnvironment(logger: logger, tempDir: NSTemporaryDirectory()))
    for r in records { await fs.load(r) }
    return fs
}

func localRecord(_ id: Int, _ mount: String, _ root: String) -> StorageRecord {
    StorageRecord(id: id, mountPath: mount, driver: "Local", addition: "{\"root_folder_path\":\"\(root)\"}")
}

@Suite("Mount table")
struct MountTableTests {
    @Test func longestPrefixOnSegmentBoundariesAndVirtualFolders() async throws {
        let a = TempDir(), b = TempDir(), c = TempDir()
        defer { a.remove(); b.remove(); c.remove() }
        try a.write("root.txt", "r")
        try b.write("in-media.txt", "m")
        try c.write("in-mediax.txt", "x")
        let fs = await makeFS([localRecord(1, "/", a.path), localRecord(2, "/media/tv", b.path), localRecord(3, "/mediax", c.path)])
        #expect(fs.resolve("/media/tv/x")?.0.id == 2)
        #expect(fs.resolve("/media/tv")?.1 == "/")
        #expect(fs.resolve("/media/tvshow")?.0.id == 1)
        #expect(fs.resolve("/mediax/y")?.0.id == 3)
        let root = try await fs.list("/").objects.map(\.name).sorted()
        #expect(root == ["media", "mediax", "root.txt"])
        let media = try await fs.list("/media").objects.map(\.name)
        #expect(media == ["tv"])
        let tv = try await fs.list("/media/tv").objects.map(\.name)
        #expect(tv == ["in-media.txt"])
        let (obj, storage) = try await fs.get("/media")
        #expect(obj.isDir && storage?.id == 1 || storage == nil)
        await fs.unloadAll()
    }

    @Test func failedStorageKeepsItsStatusAndOthersWork() async throws {
        let a = TempDir()
        defer { a.remove() }
        try a.write("ok.txt", "ok")
        let fs = await makeFS([localRecord(1, "/", a.path),
                               StorageRecord(id: 2, mountPath: "/cloud", driver: "Counting", addition: "{\"fail\":true}"),
                               localRecord(3, "/missing", a.path + "/does-not-exist"),
                               StorageRecord(id: 4, mountPath: "/nodriver", driver: "NoSuchDriver")])
        #expect(fs.storage(id: 2)?.record.status.contains("invalid client credentials") == true)
        #expect(fs.storage(id: 3)?.record.status.contains("does not exist") == true)
        #expect(fs.storage(id: 4)?.record.status.contains("NoSuchDriver") == true)
        let names = try await fs.list("/").objects.map(\.name).sorted()
        #expect(names == ["cloud", "missing", "nodriver", "ok.txt"])
        await #expect(throws: FSError.self) { _ = try await fs.list("/cloud") }
        do {
            _ = try await fs.list("/cloud")
        } catch let e as FSError {
            #expect(e.message.contains("invalid client credentials"))
        }
        await fs.unloadAll()
    }
}

@Suite("List cache")
struct ListCacheTests {
    func counting(_ fs: FileSystem) -> CountingDriver { fs.storage(id: 1)!.driver as! CountingDriver }

    @Test func cachesRefreshesAndInvalidates() async throws {
        let fs = await makeFS([StorageRecord(id: 1, mountPath: "/c", driver: "Counting", cacheExpiration: 5)])
        let d = counting(fs)
        _ = try await fs.list("/c")
        _ = try await fs.list("/c")
        #expect(d.calls == 1)
        let sorted = try await fs.list("/c").objects.map(\.name)
        #expect(sorted == ["a.txt", "b.txt"])
        _ = try await fs.list("/c", refresh: true)
        #expect(d.calls == 2)
        await fs.cache.invalidate(storageID: 1, path: "/")
        _ = try await fs.list("/c")
        #expect(d.calls == 3)
        await fs.unloadAll()
    }

    @Test func zeroExpirationDisablesTheCache() async throws {
        let fs = await makeFS([StorageRecord(id: 1, mountPath: "/c", driver: "Counting", cacheExpiration: 0)])
        _ = try await fs.list("/c")
        _ = try await fs.list("/c")
        #expect(counting(fs).calls == 2)
        await fs.unloadAll()
    }

    @Test func concurrentIdenticalListingsShareOneCall() async throws {
        let fs = await makeFS([StorageRecord(id: 1, mountPath: "/c", driver: "Counting", cacheExpiration: 0, addition: "{\"slowlist\":true}")])
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 { group.addTask { try await fs.list("/c").objects.count } }
            for try await n in group { #expect(n == 2) }
        }
        #expect(counting(fs).calls == 1)
        await fs.unloadAll()
    }
}

@Suite("Paths: the fast check agrees with normalisation")
struct VirtualPathFastPathTests {
    /// `isNormal` lets a path through unchanged; it may only do so for paths normalisation would keep as they are.
    @Test func isNormalOnlyPassesNormalisedPaths() throws {
        let alphabet: [Character] = ["/", ".", "a", "\\", "é"]
        var checked = 0, passed = 0
        func visit(_ s: String, _ depth: Int) {
            if depth == 0 { return }
            for c in alphabet {
                let t = s + String(c)
                checked += 1
                if VirtualPath.isNormal(t) {
                    passed += 1
                    let slow = "/" + t.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "/" || $0 == "\\" })
                        .filter { $0 != "." }.joined(separator: "/")
                    #expect(!t.split(separator: "/").contains(".."), "\(t)")
                    #expect(slow == t, "\(t) passed the fast check but normalises to \(slow)")
                }
                visit(t, depth - 1)
            }
        }
        visit("", 7)
        #expect(passed > 1000 && checked > 90_000)
        #expect(VirtualPath.isNormal("/") && VirtualPath.isNormal("/a/b.txt") && VirtualPath.isNormal("/.../x"))
        #expect(!VirtualPath.isNormal("/a/") && !VirtualPath.isNormal("//a") && !VirtualPath.isNormal("/a/./b") && !VirtualPath.isNormal("/a/.."))
        #expect(throws: FSError.self) { try VirtualPath.normalize("/a/../b") }
    }
}
