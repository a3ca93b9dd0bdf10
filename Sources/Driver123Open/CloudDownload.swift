import Foundation
import PanListCore

/// 123's offline download: the cloud fetches a URL itself into a folder (never the drive's root, which 123
/// refuses), and is polled for its progress.
extension Open123Driver: CloudDownloadCapable {
    public func startCloudDownload(url: String, name: String?, into dir: Obj) async throws -> String {
        let dirID = try Self.id(dir)
        guard dirID != 0 else {
            throw FSError.badRequest("123 Open's offline download cannot save into the drive's root folder (123 refuses it); "
                                     + "choose a folder inside \(dir.path == "/" ? "this storage" : dir.path)")
        }
        guard let scheme = URL(string: url)?.scheme?.lowercased(), ["http", "https"].contains(scheme) else {
            throw FSError.badRequest("123 Open's offline download takes http and https links only (\(url))")
        }
        var body: [String: Any] = ["url": url, "dirID": dirID]
        if let name, !name.isEmpty { body["fileName"] = name }
        guard let started = try await client.call(.POST, "/api/v1/offline/download", json: body, as: OfflineStartData.self) else {
            throw FSError.upstream(code: 1, message: "123 Open did not start the offline download of \(url)")
        }
        return String(started.taskID.value)
    }

    public func cloudDownloadStatus(id: String) async throws -> CloudDownloadStatus {
        guard let p = try await client.call(.GET, "/api/v1/offline/download/process", query: [("taskID", id)], as: OfflineProcessData.self) else {
            throw FSError.upstream(code: 1, message: "123 Open gave no progress for offline download \(id)")
        }
        let percent = max(0, min(100, p.process?.value ?? 0))
        switch Int(p.status.value) {
        case 1:
            let why = (p.failReason ?? "").isEmpty ? "" : ": \(p.failReason ?? "")"
            return CloudDownloadStatus(state: .failed("123 Open's offline download \(id) failed (the cloud could not fetch the URL\(why))"), percent: 0)
        case 2: return CloudDownloadStatus(state: .done, percent: 100)
        case 3: return CloudDownloadStatus(state: .retrying, percent: percent)
        // 0, and any status this client does not know yet: still running.
        default: return CloudDownloadStatus(state: .running, percent: percent)
        }
    }
}
