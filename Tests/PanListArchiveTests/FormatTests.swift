import Foundation
import PanListArchive
import Testing

/// The tree every format test packs: a nested folder, a CJK name, an empty file.
private let tree: [String: String] = [
    "readme.txt": "hello archive\n",
    "docs/guide.md": String(repeating: "guide line\n", count: 500),
    "测试/文件.txt": "中文内容\n",
    "empty.txt": "",
]

private let expectedSummary = [
    "docs/", "docs/guide.md:5500", "empty.txt:0", "readme.txt:14", "测试/", "测试/文件.txt:13",
]

/// Lists the archive, checks names, sizes and folders, and extracts two members byte for byte.
private func checkStandardArchive(_ path: String, hasDirectories: Bool = true) throws {
    let members = try list(path)
    let got = summary(members)
    if hasDirectories {
        #expect(got == expectedSummary)
    } else {
        #expect(got == expectedSummary.filter { !$0.hasSuffix("/") })
    }
    #expect(members.allSatisfy { $0.modified != nil && !$0.isEncrypted })
    #expect(try extractString(path, "测试/文件.txt") == tree["测试/文件.txt"])
    #expect(try extractString(path, "./docs/guide.md") == tree["docs/guide.md"])
    #expect(try extractBytes(path, "empty.txt").isEmpty)
}

@Suite struct FormatTests {
    @Test func zipDeflatedFromPython() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                z.writestr('docs/', '')
                z.writestr('测试/', '')
                z.writestr('readme.txt', 'hello archive\\n')
                z.writestr('docs/guide.md', 'guide line\\n' * 500)
                z.writestr('测试/文件.txt', '中文内容\\n')
                z.writestr('empty.txt', '')
            """)
        try checkStandardArchive(dir.file("a.zip"))
    }

    @Test(arguments: ["tar", "tar.gz", "tar.bz2", "tar.xz"])
    func tarFromPython(_ ext: String) throws {
        let dir = try TempDir()
        let root = try dir.makeTree("src", tree)
        let mode = ext == "tar" ? "w" : "w:" + ext.dropFirst(4)
        try dir.python("""
            import tarfile, sys
            with tarfile.open('a.\(ext)', '\(mode)', format=tarfile.PAX_FORMAT) as t:
                t.add('\(root)', arcname='.')
            """)
        try checkStandardArchive(dir.file("a.\(ext)"))
    }

    @Test(.enabled(if: haveTool("bsdtar")), arguments: ["tar.zst", "7z", "iso", "cpio", "zip", "tar.lz4"])
    func bsdtarFormats(_ ext: String) throws {
        let dir = try TempDir()
        _ = try dir.makeTree("src", tree)
        var args = ["-cf", dir.file("a.\(ext)")]
        switch ext {
        case "tar.zst": args += ["--zstd"]
        case "tar.lz4": args += ["--lz4"]
        case "7z": args += ["--format", "7zip"]
        case "iso": args += ["--format", "iso9660"]
        case "cpio": args += ["--format", "newc"]
        default: args += ["--format", "zip"]
        }
        // bsdtar runs in the test's (C) locale; --options hdrcharset keeps the names UTF-8.
        if ext == "zip" { args += ["--options", "zip:hdrcharset=UTF-8"] }
        try dir.run("bsdtar", args + ["."], in: dir.file("src"))
        try checkStandardArchive(dir.file("a.\(ext)"))
    }

    @Test(.enabled(if: haveTool("7zz"))) func sevenZipFrom7zz() throws {
        let dir = try TempDir()
        _ = try dir.makeTree("src", tree)
        try dir.run("7zz", ["a", "-bd", dir.file("a.7z"), "."], in: dir.file("src"))
        try checkStandardArchive(dir.file("a.7z"))
    }

    @Test(.disabled("No free tool writes RAR (Debian 12 has unrar-free/unar to read only); libarchive's RAR 4/5 readers stay enabled."))
    func rar() {}

    /// A zip made on Windows in a Chinese locale: GBK names without the UTF-8 flag (0x800).
    @Test func zipWithGBKNamesAndNoUTF8Flag() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('u.zip', 'w') as z:
                z.writestr('测试/文件.txt', 'utf8 flagged')
                z.writestr('XXXX/YYYY.txt', 'gbk named')
            data = open('u.zip', 'rb').read()
            # Same length (13 bytes), so offsets stay valid; the flag of this entry stays 0.
            open('g.zip', 'wb').write(data.replace(b'XXXX/YYYY.txt', '报告/表格.txt'.encode('gbk')))
            infos = zipfile.ZipFile('u.zip').infolist()
            assert infos[0].flag_bits & 0x800 and not infos[1].flag_bits & 0x800
            """)
        #expect(summary(try list(dir.file("g.zip"))) == ["报告/表格.txt:9", "测试/文件.txt:12"])
        #expect(try extractString(dir.file("g.zip"), "报告/表格.txt") == "gbk named")
        #expect(try extractString(dir.file("g.zip"), "测试/文件.txt") == "utf8 flagged")
    }

    /// Info-ZIP's zip(1) writes UTF-8 names without the flag (plus a Unicode path extra field).
    @Test(.enabled(if: haveTool("zip"))) func infoZipUTF8Names() throws {
        let dir = try TempDir()
        _ = try dir.makeTree("src", tree)
        try dir.run("zip", ["-qr", dir.file("i.zip"), "."], in: dir.file("src"))
        try checkStandardArchive(dir.file("i.zip"))
    }

    @Test func notAnArchive() throws {
        let dir = try TempDir()
        try Data("just some text, not an archive\n".utf8).write(to: dir.url.appendingPathComponent("t.txt"))
        expectArchiveError(.notAnArchive) { _ = try list(dir.file("t.txt")) }
        try Data().write(to: dir.url.appendingPathComponent("empty.zip"))
        let error = archiveError { _ = try list(dir.file("empty.zip")) }
        #expect(error == .notAnArchive)
    }

    @Test func truncatedZipIsDamaged() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile, os
            with zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                z.writestr('big.bin', os.urandom(200000))
            data = open('a.zip', 'rb').read()
            open('cut.zip', 'wb').write(data[:100000])
            """)
        // Without its central directory the seekable reader gives up; the streaming one reads
        // the local header and then runs out of data.
        let error = archiveError {
            _ = try list(dir.file("cut.zip"))
            _ = try extractBytes(dir.file("cut.zip"), "big.bin")
        }
        switch error {
        case .damaged?, .notAnArchive?: break
        default: Issue.record("unexpected \(String(describing: error))")
        }
    }

    @Test func memberNotFoundAndNotAFile() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('a.zip', 'w') as z:
                z.writestr('d/', '')
                z.writestr('d/x.txt', 'x')
            """)
        expectArchiveError(.memberNotFound(path: "nope.txt")) { _ = try extractBytes(dir.file("a.zip"), "nope.txt") }
        expectArchiveError(.memberNotFound(path: "../d/x.txt")) { _ = try extractBytes(dir.file("a.zip"), "../d/x.txt") }
        expectArchiveError(.notAFile(path: "d")) { _ = try extractBytes(dir.file("a.zip"), "d/") }
    }

    @Test func extensionsAreLowercaseAndUnique() {
        #expect(Set(ArchiveReader.extensions).count == ArchiveReader.extensions.count)
        #expect(ArchiveReader.extensions.allSatisfy { $0 == $0.lowercased() && !$0.hasPrefix(".") })
        for ext in ["zip", "7z", "rar", "tar.gz", "tgz", "tar.bz2", "tar.xz", "tar.zst", "iso"] {
            #expect(ArchiveReader.extensions.contains(ext))
        }
    }

    /// Several readers on one source at once, each with its own handle.
    @Test func concurrentReadersShareASource() async throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                for i in range(20): z.writestr('f%d.txt' % i, ('line %d\\n' % i) * 1000)
            """)
        let source = try FileArchiveSource(path: dir.file("a.zip"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let members = try ArchiveReader.list(source, password: nil)
                    #expect(members.count == 20)
                    var bytes: [UInt8] = []
                    try ArchiveReader.extract(source, member: "f\(i).txt", password: nil) { bytes.append(contentsOf: $0) }
                    #expect(String(decoding: bytes, as: UTF8.self) == String(repeating: "line \(i)\n", count: 1000))
                }
            }
            try await group.waitForAll()
        }
    }
}
