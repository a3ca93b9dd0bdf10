import Foundation
import PanListArchive
import Testing

/// A temp folder for one test's fixtures, removed when the test ends.
final class TempDir {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("panlist-archive-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `files` (relative path -> contents) under `folder`, creating folders.
    func makeTree(_ folder: String, _ files: [String: String]) throws -> String {
        let root = url.appendingPathComponent(folder, isDirectory: true)
        for (rel, text) in files {
            let f = root.appendingPathComponent(rel)
            try FileManager.default.createDirectory(at: f.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: f)
        }
        return root.path
    }

    /// Runs a python3 script with this folder as the working directory and argv[1].
    func python(_ script: String) throws {
        try run("python3", ["-c", script, path], in: path)
    }

    /// Runs a tool (found in PATH) in `dir` (default: this folder); throws on a non-zero exit.
    func run(_ tool: String, _ args: [String], in dir: String? = nil) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        p.currentDirectoryURL = URL(fileURLWithPath: dir ?? path)
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            throw FixtureError("\(tool) \(args.prefix(3).joined(separator: " ")) failed: "
                + String(decoding: errData.suffix(400), as: UTF8.self))
        }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Whether a command-line tool is installed (bsdtar from libarchive-tools, 7zz from 7zip).
func haveTool(_ name: String) -> Bool {
    let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    return dirs.contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
}

/// Reads one member fully (for small test members).
func extractBytes(
    _ path: String, _ member: String, password: String? = nil, limits: ArchiveLimits = .init()
) throws -> [UInt8] {
    var out: [UInt8] = []
    try ArchiveReader.extract(try FileArchiveSource(path: path), member: member, password: password, limits: limits) {
        out.append(contentsOf: $0)
    }
    return out
}

func extractString(_ path: String, _ member: String, password: String? = nil) throws -> String {
    String(decoding: try extractBytes(path, member, password: password), as: UTF8.self)
}

func list(_ path: String, password: String? = nil, limits: ArchiveLimits = .init()) throws -> [ArchiveMember] {
    try ArchiveReader.list(try FileArchiveSource(path: path), password: password, limits: limits)
}

/// Members as "path" for files, "path/" for folders, "path -> target" for links, sorted.
func summary(_ members: [ArchiveMember]) -> [String] {
    members.map { m in
        if m.isDirectory { return m.path + "/" }
        if let t = m.linkTarget { return "\(m.path) -> \(t)" }
        return "\(m.path):\(m.size)"
    }.sorted()
}

/// Expects `body` to throw exactly `expected`.
func expectArchiveError(
    _ expected: ArchiveError, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected \(expected), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ArchiveError {
        #expect(error == expected, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(expected), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Calls `body` and returns the ArchiveError it threw (nil if none, recording an issue).
func archiveError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> ArchiveError? {
    do {
        try body()
        Issue.record("expected an ArchiveError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ArchiveError {
        return error
    } catch {
        Issue.record("expected an ArchiveError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A handler that records members and writes files in memory (small fixtures only).
final class RecordingHandler: ArchiveExtractHandler {
    var members: [ArchiveMember] = []
    var contents: [String: [UInt8]] = [:]
    var done: [String] = []
    var bytesHandedOut: Int64 = 0

    func entry(_ member: ArchiveMember) throws -> ArchiveSink? {
        members.append(member)
        guard member.isFile else { return nil }
        contents[member.path] = []
        return { [unowned self] chunk in
            self.bytesHandedOut += Int64(chunk.count)
            if self.contents[member.path, default: []].count < 1 << 20 {  // keep memory small for big members
                self.contents[member.path, default: []].append(contentsOf: chunk)
            }
        }
    }

    func done(_ member: ArchiveMember) throws { done.append(member.path) }
}
