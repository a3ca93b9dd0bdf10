import Foundation
import NIOCore
import Testing
@testable import PanListCore
@testable import DriverLocal

func upload(_ fs: FileSystem, _ dir: String, _ name: String, _ text: String, size: Int64? = nil,
            md5: String? = nil, modified: Date? = nil, overwrite: Bool = true) async throws {
    let data = ByteBuffer(string: text)
    try await fs.put(UploadStream(name: name, size: size ?? Int64(data.readableBytes), modified: modified, md5: md5,
                                  body: .buffers([data])), into: dir, overwrite: overwrite)
}

/// A body that yields some bytes, then fails as a dropped connection does.
struct CutOffBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    struct AsyncIterator: AsyncIteratorProtocol {
        var sent = false
        mutating func next() async throws -> ByteBuffer? {
            if sent { throw FSError.badRequest("connection reset") }
            sent = true
            return ByteBuffer(repeating: 0x41, count: 64 * 1024)
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator() }
}

@Suite("Local driver")
struct LocalDriverTests {
    func fs(_ root: String) async -> FileSystem { await makeFS([localRecord(1, "/", root)]) }

    /// Listings are kept for a second, but a change of the folder's entries made outside PanList shows at
    /// once (the folder's own times are checked on every listing); a change through PanList too.
    @Test func keptListingsSeeChangesMadeOutside() async throws {
        let root = TempDir()
        defer { root.remove() }
        let fs = await fs(root.path)
        try root.write("d/a.txt", "a")
        #expect(try await fs.list("/d").objects.map(\.name) == ["a.txt"])
        try root.write("d/b.txt", "b")
        #expect(try await fs.list("/d").objects.map(\.name) == ["a.txt", "b.txt"])
        try FileManager.default.removeItem(atPath: root.file("d/a.txt"))
        #expect(try await fs.list("/d").objects.map(\.name) == ["b.txt"])
        try await upload(fs, "/d", "c.txt", "c")
        #expect(try await fs.list("/d").objects.map(\.name) == ["b.txt", "c.txt"])
    }

    @Test func writeOperationsWork() async throws {
        let root = TempDir()
        defer { root.remove() }
        let fs = await fs(root.path)
        try await fs.makeDir("/a/b/c")
        #expect(FileManager.default.fileExists(atPath: root.file("a/b/c")))
        try await fs.makeDir("/a/b/c")  // an existing folder is fine
        try await upload(fs, "/a", "f.txt", "hello", modified: Date(timeIntervalSince1970: 1_600_000_000))
        #expect(root.read("a/f.txt") == "hello")
        let (obj, _) = try await fs.get("/a/f.txt")
        #expect(obj.size == 5 && obj.modified.timeIntervalSince1970 == 1_600_000_000)

        try await fs.rename("/a/f.txt", to: "g.txt")
        #expect(root.read("a/g.txt") == "hello" && !root.exists("a/f.txt"))
        await #expect(throws: FSError.self) { try await fs.copy("/a", toDir: "/a/b/c") }
        await #expect(throws: FSError.self) { try await fs.move("/a", toDir: "/a/b") }

        try await fs.makeDir("/dst")
        try await fs.copy("/a", toDir: "/dst")
        #expect(root.read("dst/a/g.txt") == "hello" && root.exists("dst/a/b/c"))
        await #expect(throws: FSError.self) { try await fs.copy("/a", toDir: "/dst") }  // exists already

        try await fs.move("/a/g.txt", toDir: "/a/b")
        #expect(root.read("a/b/g.txt") == "hello" && !root.exists("a/g.txt"))
        try await fs.remove("/a")
        #expect(!root.exists("a"))
        await #expect(throws: FSError.self) { try await fs.remove("/") }
        await #expect(throws: FSError.self) { try await fs.rename("/dst", to: "x/y") }

        let details = try await fs.details("/")
        #expect((details?.totalSpace ?? 0) > 0)
        await fs.unloadAll()
    }

    @Test func uploadsReplaceAndRespectOverwrite() async throws {
        let root = TempDir()
        defer { root.remove() }
        let fs = await fs(root.path)
        try await upload(fs, "/", "f.txt", "one")
        try await upload(fs, "/", "f.txt", "two!")
        #expect(root.read("f.txt") == "two!")
        await #expect(throws: FSError.self) { try await upload(fs, "/", "f.txt", "three", overwrite: false) }
        #expect(root.read("f.txt") == "two!")
        try await fs.makeDir("/folder")
        await #expect(throws: FSError.self) { try await upload(fs, "/", "folder", "x") }
        await fs.unloadAll()
    }

    @Test func failedUploadsLeaveNothingBehind() async throws {
        let root = TempDir()
        defer { root.remove() }
        let fs = await fs(root.path)
        try await fs.makeDir("/up")
        // Declared larger than sent: cut off.
        await #expect(throws: FSError.self) { try await upload(fs, "/up", "short.bin", "abc", size: 100) }
        // Larger than declared.
        await #expect(throws: FSError.self) { try await upload(fs, "/up", "long.bin", "abcdef", size: 2) }
        // Wrong MD5.
        await #expect(throws: FSError.self) {
            try await upload(fs, "/up", "md5.bin", "abc", md5: "00000000000000000000000000000000")
        }
        // The connection drops mid-body.
        await #expect(throws: (any Error).self) {
            try await fs.put(UploadStream(name: "dropped.bin", size: 1 << 20, body: ByteStream(CutOffBody())), into: "/up")
        }
        // An existing file survives a failed overwrite untouched.
        try await upload(fs, "/up", "keep.txt", "original")
        await #expect(throws: FSError.self) { try await upload(fs, "/up", "keep.txt", "new", size: 50) }
        #expect(root.allEntries("up") == ["keep.txt"])
        #expect(root.read("up/keep.txt") == "original")
        // A correct MD5 passes.
        try await upload(fs, "/up", "ok.txt", "abc", md5: "900150983cd24fb0d6963f7d28e17f72")
        #expect(root.read("up/ok.txt") == "abc")
        await fs.unloadAll()
    }

    @Test func confinedToItsRoot() async throws {
        let outside = TempDir(), root = TempDir()
        defer { outside.remove(); root.remove() }
        try outside.write("secret.txt", "secret")
        try root.write("inside.txt", "inside")
        try root.write("sub/deep.txt", "deep")
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: root.file("escape"), withDestinationPath: outside.path)
        try fm.createSymbolicLink(atPath: root.file("escape.txt"), withDestinationPath: outside.file("secret.txt"))
        try fm.createSymbolicLink(atPath: root.file("etc"), withDestinationPath: "/etc")
        try fm.createSymbolicLink(atPath: root.file("alias.txt"), withDestinationPath: root.file("sub/deep.txt"))
        let fs = await fs(root.path)

        // Links pointing outside are neither listed nor reachable; links inside work.
        let names = try await fs.list("/").objects.map(\.name).sorted()
        #expect(names == ["alias.txt", "inside.txt", "sub"])
        for p in ["/escape/secret.txt", "/escape.txt", "/etc/passwd", "/escape"] {
            await #expect(throws: FSError.self, "\(p)") { _ = try await fs.link(p) }
        }
        let (link, _, _) = try await fs.link("/alias.txt")
        guard case .localFile(let disk) = link else { Issue.record("not a local file"); return }
        #expect(disk == root.file("sub/deep.txt"))

        // Writes through an escaping link are refused and change nothing outside.
        await #expect(throws: FSError.self) { try await upload(fs, "/escape", "new.txt", "x") }
        await #expect(throws: FSError.self) { try await fs.makeDir("/escape/newdir") }
        await #expect(throws: FSError.self) { try await fs.remove("/escape/secret.txt") }
        #expect(outside.allEntries() == ["secret.txt"])

        // `..` never reaches the driver; a percent-encoded name is just a name inside the root.
        await #expect(throws: FSError.self) { _ = try await fs.list(try VirtualPath.normalize("/../")) }
        try await upload(fs, "/", "%2e%2e", "literal")
        try await upload(fs, "/%2e%2e%2f", "x.txt", "literal dir")
        #expect(root.read("%2e%2e") == "literal")
        #expect(root.read("%2e%2e%2f/x.txt") == "literal dir")

        // Removing a link removes the link, never its target.
        try await fs.remove("/alias.txt")
        #expect(root.read("sub/deep.txt") == "deep")
        await fs.unloadAll()
    }

    @Test func rootMustExistAndBeAbsolute() async {
        for addition in ["{}", "{\"root_folder_path\":\"relative/dir\"}", "{\"root_folder_path\":\"/no/such/dir/here\"}", "not json"] {
            let fs = await makeFS([StorageRecord(id: 1, mountPath: "/", driver: "Local", addition: addition)])
            #expect(fs.storage(id: 1)?.isWorking == false, "\(addition)")
            #expect(fs.storage(id: 1)?.record.status.isEmpty == false)
            await fs.unloadAll()
        }
    }
}
