import Foundation
import PackagePlugin

/// Embeds the target's `Web/static` folder into the target's code: runs `panlist-embed` on it, which writes
/// `EmbeddedWebUI.swift` (the files as base64 literals) into the plugin's work folder. The folder's files
/// (and the folder itself, whose time changes when a file is added or removed) are the command's inputs,
/// so changing, adding or removing a UI file regenerates the source; no list of files is kept anywhere.
@main
struct EmbedWebUI: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        // The target's folder by the default layout, Sources/<name>: `Target.directoryURL` needs
        // tools-version 6.1 (this package says 6.0), and the `Path`-based `directory` is deprecated.
        let folder = context.package.directoryURL.appendingPathComponent("Sources", isDirectory: true)
            .appendingPathComponent(target.name, isDirectory: true).appendingPathComponent("Web/static", isDirectory: true)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        } catch {
            throw PluginError(description: "EmbedWebUI: cannot list \(folder.path): \(error)")
        }
        let inputs = [folder] + names.filter { !$0.hasPrefix(".") }.sorted().map { folder.appendingPathComponent($0) }
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("EmbeddedWebUI.swift")
        return [
            .buildCommand(
                displayName: "Embedding the web UI from Web/static into \(target.name)",
                executable: try context.tool(named: "panlist-embed").url,
                arguments: [folder.path, output.path],
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}

struct PluginError: Error, CustomStringConvertible {
    let description: String
}
