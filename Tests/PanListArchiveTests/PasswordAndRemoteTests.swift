import Foundation
import PanListArchive
import Testing

@Suite struct PasswordTests {
    @Test(.enabled(if: haveTool("bsdtar")), arguments: ["zipcrypt", "aes128", "aes256"])
    func encryptedZip(_ method: String) throws {
        let dir = try TempDir()
        _ = try dir.makeTree("src", ["secret.txt": "top secret\n", "d/more.txt": String(repeating: "more\n", count: 1000)])
        try dir.run("bsdtar", ["-cf", dir.file("e.zip"), "--format", "zip", "--options", "zip:encryption=\(method)",
                               "--passphrase", "s3cret", "secret.txt", "d"], in: dir.file("src"))
        let zip = dir.file("e.zip")
        // Names are not encrypted in a zip: listing works without the password.
        let members = try list(zip)
        #expect(summary(members) == ["d/", "d/more.txt:5000", "secret.txt:11"])
        #expect(members.filter { $0.isFile }.allSatisfy { $0.isEncrypted })
        expectArchiveError(.passwordRequired) { _ = try extractBytes(zip, "secret.txt") }
        expectArchiveError(.passwordRequired) { _ = try extractBytes(zip, "secret.txt", password: "") }
        expectArchiveError(.wrongPassword) { _ = try extractBytes(zip, "secret.txt", password: "wrong") }
        // ZipCrypto's check byte lets 1 wrong password in 256 through; those fail later, as bad
        // data, and must still read as a wrong password. Try enough to hit such cases.
        for i in 0..<300 {
            let error = archiveError { _ = try extractBytes(zip, "d/more.txt", password: "guess\(i)") }
            if error != .wrongPassword {
                Issue.record("password guess\(i): \(String(describing: error))")
                break
            }
        }
        #expect(try extractString(zip, "secret.txt", password: "s3cret") == "top secret\n")
        #expect(try extractString(zip, "d/more.txt", password: "s3cret") == String(repeating: "more\n", count: 1000))

        let handler = RecordingHandler()
        expectArchiveError(.passwordRequired) {
            try ArchiveReader.extractAll(try FileArchiveSource(path: zip), password: nil, handler: handler)
        }
        let ok = RecordingHandler()
        try ArchiveReader.extractAll(try FileArchiveSource(path: zip), password: "s3cret", handler: ok)
        #expect(ok.contents["secret.txt"] == Array("top secret\n".utf8))
    }

    /// libarchive (3.6 and 3.7) cannot decrypt 7z: an encrypted 7z is reported as unsupported,
    /// whatever the password, rather than as a wrong password.
    @Test(.enabled(if: haveTool("7zz")), arguments: [false, true])
    func encrypted7z(encryptHeaders: Bool) throws {
        let dir = try TempDir()
        _ = try dir.makeTree("src", ["secret.txt": "top secret\n"])
        try dir.run("7zz", ["a", "-bd", "-ps3cret", encryptHeaders ? "-mhe=on" : "-mhe=off", dir.file("e.7z"), "."],
                    in: dir.file("src"))
        let zip = dir.file("e.7z")
        if !encryptHeaders {
            let members = try list(zip)
            #expect(members.map(\.path) == ["secret.txt"])
            #expect(members.first?.isEncrypted == true)
        }
        for password in [nil, "wrong", "s3cret"] {
            let error = archiveError { _ = try extractBytes(zip, "secret.txt", password: password) }
            guard case .unsupported? = error else {
                Issue.record("password \(password ?? "none"): \(String(describing: error))")
                continue
            }
        }
    }
}

@Suite struct RemoteSourceTests {
    /// Listing a ~200 MiB stored zip through BlockCachedSource fetches only the central directory
    /// and the local headers, not the file.
    @Test func listingABigZipFetchesLittle() throws {
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('big.zip', 'w', zipfile.ZIP_STORED) as z:
                z.writestr('notes/readme.txt', 'read me\\n')
                for name in ['video/part1.bin', 'video/part2.bin']:
                    with z.open(name, 'w', force_zip64=True) as f:
                        block = bytes(1 << 20)
                        for _ in range(100): f.write(block)
                z.writestr('notes/last.txt', 'the end\\n')
            """)
        let file = try FileArchiveSource(path: dir.file("big.zip"))
        #expect(file.size > 200 << 20)
        let remote = BlockCachedSource(size: file.size) { offset, length in
            var bytes = [UInt8](repeating: 0, count: length)
            let n = try bytes.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
            return Array(bytes[0..<n])
        }
        let members = try ArchiveReader.list(remote, password: nil)
        #expect(summary(members) == ["notes/last.txt:8", "notes/readme.txt:8", "video/part1.bin:104857600",
                                     "video/part2.bin:104857600"])
        let listed = remote.bytesFetched
        let listFetches = remote.fetches
        print("listing a \(file.size)-byte stored zip fetched \(listed) bytes in \(listFetches) fetches")
        #expect(listed <= 2 << 20)

        // One small member at the end: a block or two more.
        var text: [UInt8] = []
        try ArchiveReader.extract(remote, member: "notes/last.txt", password: nil) { text.append(contentsOf: $0) }
        #expect(text == Array("the end\n".utf8))
        print("then extracting notes/last.txt: \(remote.bytesFetched - listed) more bytes, \(remote.fetches - listFetches) fetches")
        #expect(remote.bytesFetched - listed <= 2 << 20)
    }

    @Test func blockCacheReadsAndEvicts() throws {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let source = BlockCachedSource(size: Int64(data.count), blockSize: 4096, maxCachedBlocks: 2) { offset, length in
            Array(data[Int(offset)..<Int(offset) + length])
        }
        var buffer = [UInt8](repeating: 0, count: 6000)
        // A read returns at most up to its block's end.
        let n = try buffer.withUnsafeMutableBytes { try source.read(at: 4000, into: $0) }
        #expect(n == 96)
        #expect(Array(buffer[0..<n]) == Array(data[4000..<4096]))
        let m = try buffer.withUnsafeMutableBytes { try source.read(at: 8192, into: $0) }
        #expect(m == 10_000 - 8192)
        #expect(Array(buffer[0..<m]) == Array(data[8192...]))
        #expect(source.fetches == 2)
        _ = try buffer.withUnsafeMutableBytes { try source.read(at: 100, into: $0) }  // cached
        #expect(source.fetches == 2)
        _ = try buffer.withUnsafeMutableBytes { try source.read(at: 5000, into: $0) }  // evicts block 0... no: 0 is recent
        _ = try buffer.withUnsafeMutableBytes { try source.read(at: 9000, into: $0) }  // block 2 was evicted
        #expect(source.fetches == 4)
        #expect(source.bytesFetched == 4096 + 1808 + 4096 + 1808)
        #expect(try buffer.withUnsafeMutableBytes { try source.read(at: 10_000, into: $0) } == 0)
    }

    /// Reads that go on where the last fetch ended fetch more each time (a member extracted from a cloud
    /// takes few requests); a jump starts small again.
    @Test func sequentialReadsGrow() throws {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let source = BlockCachedSource(size: Int64(data.count), blockSize: 4096, maxRunSize: 32768, maxCachedBlocks: 2) { offset, length in
            Array(data[Int(offset)..<Int(offset) + length])
        }
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1000)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try source.read(at: Int64(got.count), into: $0) }
            if n == 0 { break }
            got += buffer[0..<n]
        }
        #expect(got == data)
        // 4 + 8 + 16 + 32 + 32 KiB, then the rest: 6 fetches where 4 KiB blocks would take 25.
        #expect(source.fetches == 6 && source.bytesFetched == 100_000)
        _ = try buffer.withUnsafeMutableBytes { try source.read(at: 10, into: $0) }
        #expect(source.bytesFetched == 100_000 + 4096)
    }

    @Test func sourceErrorsAreReported() throws {
        struct Offline: Error {}
        let dir = try TempDir()
        try dir.python("""
            import zipfile
            with zipfile.ZipFile('a.zip', 'w') as z: z.writestr('a.txt', 'x')
            """)
        let file = try FileArchiveSource(path: dir.file("a.zip"))
        let failing = BlockCachedSource(size: file.size) { _, _ in throw ArchiveSourceError("HTTP 503") }
        expectArchiveError(.readFailed("HTTP 503")) { _ = try ArchiveReader.list(failing, password: nil) }
        let short = BlockCachedSource(size: file.size + 1000) { offset, length in
            var bytes = [UInt8](repeating: 0, count: length)
            let n = try bytes.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
            return Array(bytes[0..<n])
        }
        let error = archiveError { _ = try ArchiveReader.list(short, password: nil) }
        guard case .readFailed? = error else {
            Issue.record("expected readFailed, got \(String(describing: error))")
            return
        }
    }
}
