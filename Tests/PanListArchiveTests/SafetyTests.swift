import Foundation
import PanListArchive
import Testing

/// Makes a tar with python's tarfile from a list of python expressions producing TarInfo + data.
/// `entries` is python code appending (TarInfo, bytes-or-None) pairs to `E`.
private func makeTar(_ dir: TempDir, _ name: String, _ entries: String) throws -> String {
    try dir.python("""
        import tarfile, io
        E = []
        def f(name, data=b'x'):
            i = tarfile.TarInfo(name); i.size = len(data); E.append((i, data))
        def d(name):
            i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755; E.append((i, None))
        def sym(name, target):
            i = tarfile.TarInfo(name); i.type = tarfile.SYMTYPE; i.linkname = target; E.append((i, None))
        def hard(name, target):
            i = tarfile.TarInfo(name); i.type = tarfile.LNKTYPE; i.linkname = target; E.append((i, None))
        def dev(name):
            i = tarfile.TarInfo(name); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; E.append((i, None))
        def fifo(name):
            i = tarfile.TarInfo(name); i.type = tarfile.FIFOTYPE; E.append((i, None))
        \(entries)
        with tarfile.open('\(name)', 'w', format=tarfile.PAX_FORMAT) as t:
            for i, data in E:
                t.addfile(i, io.BytesIO(data) if data is not None else None)
        """)
    return dir.file(name)
}

private func extractAll(_ path: String, limits: ArchiveLimits = .init()) throws -> RecordingHandler {
    let handler = RecordingHandler()
    try ArchiveReader.extractAll(try FileArchiveSource(path: path), password: nil, limits: limits, handler: handler)
    return handler
}

/// `extractAll` must refuse before handing out the unsafe member (or anything after it).
private func expectUnsafe(_ path: String, member: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let handler = RecordingHandler()
    do {
        try ArchiveReader.extractAll(try FileArchiveSource(path: path), password: nil, handler: handler)
        Issue.record("extractAll accepted \(member)", sourceLocation: sourceLocation)
    } catch ArchiveError.unsafeMember(let p, _) {
        #expect(p == member, sourceLocation: sourceLocation)
        #expect(!handler.members.contains { ($0.path == member && !$0.isSymlink) || $0.path.contains("evil") },
                sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected unsafeMember(\(member)), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct SafetyTests {
    @Test func dotDotInTar() throws {
        let dir = try TempDir()
        let tar = try makeTar(dir, "a.tar", "f('ok.txt'); f('../evil'); f('after.txt')")
        expectUnsafe(tar, member: "../evil")
        // Listing refuses the same path: it has no place in the tree.
        expectArchiveError(.unsafeMember(path: "../evil", reason: "climbs out of the archive with \"..\"")) {
            _ = try list(tar)
        }
        expectArchiveError(.unsafeMember(path: "../evil", reason: "climbs out of the archive with \"..\"")) {
            _ = try extractBytes(tar, "after.txt")
        }
        // A member before the bad one can still be downloaded alone.
        #expect(try extractString(tar, "ok.txt") == "x")
    }

    @Test func absolutePathInTar() throws {
        let dir = try TempDir()
        expectUnsafe(try makeTar(dir, "a.tar", "f('/abs/evil')"), member: "/abs/evil")
    }

    @Test func zipTricks() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            for name, member in [('dotdot', '../evil.txt'), ('abs', '/etc/evil'), ('backslash', '..\\\\..\\\\evil.txt'),
                                 ('drive', 'C:/Windows/evil.txt'), ('mid', 'a/../../evil.txt')]:
                with zipfile.ZipFile(name + '.zip', 'w') as z:
                    z.writestr('fine.txt', 'fine')
                    i = zipfile.ZipInfo('PLACEHOLDER')
                    i.filename = member  # ZipInfo() would clean some of these; the raw name is the point
                    z.writestr(i, 'evil')
            """)
        for (name, member) in [
            ("dotdot", "../evil.txt"), ("abs", "/etc/evil"), ("backslash", "..\\..\\evil.txt"),
            ("drive", "C:/Windows/evil.txt"), ("mid", "a/../../evil.txt"),
        ] {
            let zip = dir.file(name + ".zip")
            let error = archiveError {
                try ArchiveReader.extractAll(try FileArchiveSource(path: zip), password: nil, handler: RecordingHandler())
            }
            guard case .unsafeMember(let path, _)? = error else {
                Issue.record("\(name): expected unsafeMember, got \(String(describing: error))")
                continue
            }
            // libarchive may rewrite backslashes of Windows-made names; either way it is refused.
            #expect(path.replacingOccurrences(of: "\\", with: "/") == member.replacingOccurrences(of: "\\", with: "/"))
        }
    }

    @Test func symlinkToEtcPasswd() throws {
        let dir = try TempDir()
        let tar = try makeTar(dir, "a.tar", "f('a.txt'); sym('passwd', '/etc/passwd')")
        expectUnsafe(tar, member: "passwd")
        // Listing shows the link as it is; nothing is followed.
        #expect(summary(try list(tar)) == ["a.txt:1", "passwd -> /etc/passwd"])
        expectArchiveError(.notAFile(path: "passwd")) { _ = try extractBytes(tar, "passwd") }
    }

    @Test func symlinkClimbingOut() throws {
        let dir = try TempDir()
        expectUnsafe(try makeTar(dir, "a.tar", "d('sub'); sym('sub/x', '../../x')"), member: "sub/x")
        expectUnsafe(try makeTar(dir, "b.tar", "sym('y', 'C:\\\\Windows')"), member: "y")
    }

    @Test func writingThroughASymlinkIsRefused() throws {
        let dir = try TempDir()
        // "d" -> "." is harmless by itself, but "d/e/../.." style tricks and writes through it
        // are refused: nothing may lie under (or replace) a symlink.
        expectUnsafe(try makeTar(dir, "a.tar", "sym('d', '.'); f('d/evil.txt')"), member: "d/evil.txt")
        expectUnsafe(try makeTar(dir, "b.tar", "sym('l', 'target.txt'); f('l')"), member: "l")
    }

    @Test func safeLinksAreHandedOut() throws {
        let dir = try TempDir()
        let tar = try makeTar(dir, "a.tar", """
            d('docs'); f('docs/a.txt', b'alpha'); sym('docs/link', 'a.txt'); sym('top', 'docs/../docs/a.txt');
            hard('copy.txt', 'docs/a.txt')
            """)
        let h = try extractAll(tar)
        #expect(summary(h.members) == ["copy.txt -> docs/a.txt", "docs/", "docs/a.txt:5", "docs/link -> a.txt",
                                       "top -> docs/../docs/a.txt"])
        #expect(h.members.first { $0.path == "copy.txt" }?.isHardLink == true)
        #expect(h.contents == ["docs/a.txt": Array("alpha".utf8)])
        #expect(h.done == ["docs/a.txt"])
        // Downloading the hard link gives the target's bytes; list reports the target's size.
        #expect(try extractString(tar, "copy.txt") == "alpha")
        #expect(try list(tar).first { $0.path == "copy.txt" }?.size == 5)
    }

    @Test func hardLinksOutsideTheArchive() throws {
        let dir = try TempDir()
        expectUnsafe(try makeTar(dir, "a.tar", "hard('pw', '/etc/passwd')"), member: "pw")
        expectUnsafe(try makeTar(dir, "b.tar", "hard('pw', '../../etc/passwd')"), member: "pw")
        // Not an earlier member: would link to whatever the caller already has at that path.
        expectUnsafe(try makeTar(dir, "c.tar", "hard('pw', 'later.txt'); f('later.txt')"), member: "pw")
    }

    @Test func specialFilesAreSkipped() throws {
        let dir = try TempDir()
        let tar = try makeTar(dir, "a.tar", "dev('null'); fifo('pipe'); f('a.txt')")
        let h = try extractAll(tar)
        #expect(h.members.map(\.path) == ["a.txt"])
        #expect(summary(try list(tar)) == ["a.txt:1"])
    }

    @Test func tooManyEntries() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('many.zip', 'w') as z:
                for i in range(50): z.writestr('f%d.txt' % i, 'x')
            """)
        let limits = ArchiveLimits(maxEntries: 10)
        expectArchiveError(.tooManyEntries(limit: 10)) { _ = try list(dir.file("many.zip"), limits: limits) }
        expectArchiveError(.tooManyEntries(limit: 10)) { _ = try extractAll(dir.file("many.zip"), limits: limits) }
        #expect(try list(dir.file("many.zip")).count == 50)
    }

    @Test func declaredSizeOverTheLimit() throws {
        let dir = try TempDir()
        let tar = try makeTar(dir, "a.tar", "f('a.bin', bytes(3000)); f('b.bin', bytes(3000))")
        let limits = ArchiveLimits(maxTotalSize: 5000)
        let handler = RecordingHandler()
        expectArchiveError(.tooLarge(limit: 5000)) {
            try ArchiveReader.extractAll(try FileArchiveSource(path: tar), password: nil, limits: limits, handler: handler)
        }
        #expect(handler.members.map(\.path) == ["a.bin"])  // b.bin was refused before it was handed out
        expectArchiveError(.tooLarge(limit: 2000)) {
            _ = try extractBytes(tar, "a.bin", limits: ArchiveLimits(maxTotalSize: 2000))
        }
    }

    /// 1 GiB of zeros deflated is a ~1 MiB zip: stopped after a few MiB, not after 1 GiB.
    @Test func zipBomb() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('bomb.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                with z.open('zeros.bin', 'w', force_zip64=True) as f:
                    block = bytes(1 << 20)
                    for _ in range(1024): f.write(block)
            """)
        let zip = dir.file("bomb.zip")
        let size = try FileArchiveSource(path: zip).size
        #expect(size < 2 << 20)
        // The declared size (1 GiB) is within the default limits: the ratio must catch it.
        let start = Date()
        let handler = RecordingHandler()
        expectArchiveError(.ratioExceeded(limit: 1000)) {
            try ArchiveReader.extractAll(try FileArchiveSource(path: zip), password: nil, handler: handler)
        }
        #expect(handler.bytesHandedOut < 128 << 20)
        #expect(handler.done.isEmpty)
        var single: Int64 = 0
        expectArchiveError(.ratioExceeded(limit: 1000)) {
            try ArchiveReader.extract(try FileArchiveSource(path: zip), member: "zeros.bin", password: nil) {
                single += Int64($0.count)
            }
        }
        #expect(single < 128 << 20)
        #expect(Date().timeIntervalSince(start) < 10)
        print("zip bomb: \(size) bytes archive, stopped after \(handler.bytesHandedOut) bytes (extractAll), \(single) bytes (extract)")
    }

    /// A member whose headers claim 100 bytes but whose data inflates to 4 MiB.
    @Test func memberLargerThanDeclared() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile, struct
            with zipfile.ZipFile('liar.zip', 'w', zipfile.ZIP_DEFLATED) as z:
                z.writestr('small.txt', b'A' * (4 << 20))
            data = bytearray(open('liar.zip', 'rb').read())
            real = struct.pack('<I', 4 << 20)
            # Patch the uncompressed size in the local header (offset 22) and the central one (24).
            assert data[22:26] == real
            data[22:26] = struct.pack('<I', 100)
            c = data.rfind(b'PK\\x01\\x02')
            assert data[c+24:c+28] == real
            data[c+24:c+28] = struct.pack('<I', 100)
            open('liar.zip', 'wb').write(bytes(data))
            """)
        let zip = dir.file("liar.zip")
        #expect(summary(try list(zip)) == ["small.txt:100"])
        var got = 0
        let error = archiveError {
            try ArchiveReader.extract(try FileArchiveSource(path: zip), member: "small.txt", password: nil) { got += $0.count }
        }
        #expect(error != nil)
        #expect(got <= 100)
        let handler = RecordingHandler()
        #expect(throws: ArchiveError.self) {
            try ArchiveReader.extractAll(try FileArchiveSource(path: zip), password: nil, handler: handler)
        }
        #expect(handler.bytesHandedOut <= 100)
        #expect(handler.done.isEmpty)
    }

    @Test func cancellation() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile, os
            with zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_STORED) as z:
                z.writestr('big.bin', os.urandom(2 << 20))
                z.writestr('after.txt', 'x')
            """)
        let zip = dir.file("a.zip")
        // Cancelled before anything: the open itself stops.
        expectArchiveError(.cancelled) {
            _ = try ArchiveReader.list(try FileArchiveSource(path: zip), password: nil, isCancelled: { true })
        }
        // Cancelled in the middle of a member's data.
        var calls = 0
        var bytes = 0
        let handler = ClosureExtractHandler(entry: { _ in { bytes += $0.count } })
        expectArchiveError(.cancelled) {
            try ArchiveReader.extractAll(
                try FileArchiveSource(path: zip), password: nil,
                isCancelled: { calls += 1; return bytes > 256 << 10 }, handler: handler)
        }
        #expect(bytes < 1 << 20)
        // A handler's own error comes out unchanged.
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try ArchiveReader.extractAll(
                try FileArchiveSource(path: zip), password: nil,
                handler: ClosureExtractHandler(entry: { _ in throw Stop() }))
        }
    }

    @Test func normalize() {
        #expect(ArchivePath.normalize("./a//b/./c/") == .path("a/b/c"))
        #expect(ArchivePath.normalize("a\\b") == .path("a/b"))
        #expect(ArchivePath.normalize("./") == .path(""))
        #expect(ArchivePath.normalize("c:") != .path("c:"))
        #expect(ArchivePath.normalize("ab:c") == .path("ab:c"))
        #expect(ArchivePath.normalize("..") != .path(""))
        #expect(ArchivePath.normalize("a/..b") == .path("a/..b"))
        #expect(ArchivePath.normalize("\\\\server\\share\\x") == .unsafe(reason: "has an absolute path"))
        #expect(ArchivePath.symlinkProblem(memberPath: "a/b/l", target: "../c") == nil)
        #expect(ArchivePath.symlinkProblem(memberPath: "a/b/l", target: "../../c") == nil)
        #expect(ArchivePath.symlinkProblem(memberPath: "a/b/l", target: "../../../c") != nil)
        #expect(ArchivePath.symlinkProblem(memberPath: "l", target: "x/../../c") != nil)
        #expect(ArchivePath.symlinkProblem(memberPath: "l", target: "/etc") != nil)
        #expect(ArchivePath.symlinkProblem(memberPath: "l", target: "") != nil)
    }
}
