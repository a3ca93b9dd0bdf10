// Build-time tool of the EmbedWebUI plugin: turns every file of a folder into one Swift source file, so that
// the web UI is part of the `panlist` binary itself (a static build has no resource bundle beside it).
//
//   panlist-embed <input folder> <output .swift file>
//
// The output holds one base64 string literal per file (string literals compile in a fraction of the time
// that `[UInt8]` array literals take), sorted by name so that the output depends on the contents only.
// Hidden files and sub-folders are skipped, as the loader of `PANLIST_WEB_DIR` skips them.
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("panlist-embed: \(message)\n".utf8))
    exit(1)
}

let args = CommandLine.arguments
guard args.count == 3 else { fail("usage: panlist-embed <input folder> <output .swift file>") }
let input = URL(fileURLWithPath: args[1], isDirectory: true)
let output = URL(fileURLWithPath: args[2])

let names: [String]
do {
    names = try FileManager.default.contentsOfDirectory(atPath: input.path).filter { !$0.hasPrefix(".") }.sorted()
} catch {
    fail("cannot list \(input.path): \(error)")
}

/// A Swift string literal for `name` (file names are short and printable, but escape anyway).
func literal(_ name: String) -> String {
    var s = "\""
    for u in name.unicodeScalars {
        switch u {
        case "\"": s += "\\\""
        case "\\": s += "\\\\"
        case " "..."~": s.unicodeScalars.append(u)
        default: s += "\\u{\(String(u.value, radix: 16))}"
        }
    }
    return s + "\""
}

var out = """
// Generated at build time by the EmbedWebUI plugin (Sources/panlist-embed) from \(input.lastPathComponent)/.
// Do not edit and do not commit: it is rewritten on every build that changes a file of that folder.

/// The web UI's files: name and base64 of the bytes, sorted by name.
enum EmbeddedWebUI {
    static let files: [(name: String, base64: String)] = [

"""
for name in names {
    let url = input.appendingPathComponent(name)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else { continue }
    guard let data = FileManager.default.contents(atPath: url.path) else { fail("cannot read \(url.path)") }
    out += "        (\(literal(name)), \"\(data.base64EncodedString())\"),\n"
}
out += "    ]\n}\n"

// Rewrite only on a change, so that an unchanged UI does not recompile the target.
if FileManager.default.contents(atPath: output.path) != Data(out.utf8) {
    do {
        try Data(out.utf8).write(to: output, options: .atomic)
    } catch {
        fail("cannot write \(output.path): \(error)")
    }
}
