import Foundation

/// A file or folder in the emulated drive. The root folder (id 0) is implicit.
struct Node: Codable, Sendable {
    var id: Int64
    var parent: Int64
    var name: String
    var isDir: Bool
    var size: Int64
    var md5: String
    var created: Date
    var updated: Date
    var trashed: Bool
    var status: Int = 0

    /// 0 unknown, 1 audio, 2 video, 3 image (the documented values), by extension.
    var category: Int {
        guard !isDir, let dot = name.lastIndex(of: ".") else { return 0 }
        switch name[name.index(after: dot)...].lowercased() {
        case "mp3", "flac", "wav", "m4a", "ogg", "aac": return 1
        case "mp4", "mkv", "avi", "mov", "webm", "ts", "flv": return 2
        case "jpg", "jpeg", "png", "gif", "webp", "bmp", "heic": return 3
        default: return 0
        }
    }

    /// The v2 list / infos item, with its exact key casing.
    func listItem() -> [String: Any] {
        ["fileId": id, "filename": name, "type": isDir ? 1 : 0, "size": size, "etag": md5, "status": status,
         "parentFileId": parent, "category": category, "trashed": trashed ? 1 : 0, "punishFlag": 0,
         "s3KeyFlag": isDir ? "" : "\(id)-0", "storageNode": isDir ? "m0" : "m16",
         "createAt": Wire.beijing(created), "updateAt": Wire.beijing(updated)]
    }

    /// The detail shape: `fileID`/`parentFileID`, no `updateAt`.
    func detail(size accumulated: Int64) -> [String: Any] {
        ["fileID": id, "filename": name, "type": isDir ? 1 : 0, "size": accumulated, "etag": md5, "status": status,
         "parentFileID": parent, "createAt": Wire.beijing(created), "trashed": trashed ? 1 : 0]
    }

    /// The legacy v1 list item.
    func v1Item(parentName: String) -> [String: Any] {
        ["fileID": id, "filename": name, "parentFileId": parent, "parentName": parentName, "type": isDir ? 1 : 0,
         "etag": md5, "size": size, "contentType": "0", "category": category, "hidden": false, "status": status,
         "punishFlag": 0, "s3KeyFlag": isDir ? "" : "\(id)-0", "storageNode": isDir ? "m0" : "m16",
         "createAt": Wire.beijingCST(created), "updateAt": Wire.beijingCST(updated), "thumbnail": "", "downloadUrl": ""]
    }
}

struct Token: Codable, Sendable {
    var value: String
    var clientID: String
    var expiresAt: Date
    var issued: Date
}

/// A stored file body, content-addressed by MD5 and size.
struct Blob: Codable, Sendable {
    var md5: String
    var size: Int64
    /// Computed when first asked for (`sha1_reuse`), not on every upload.
    var sha1: String?
}

/// The state that survives a restart with `--data`.
struct Snapshot: Codable {
    var nodes: [Int64: Node] = [:]
    var nextID: Int64 = 10_000_000
    var blobs: [String: Blob] = [:]
    var tokens: [Token] = []
    var directLinkFolders: Set<Int64> = []
}

enum Names {
    static let forbidden = Set("\"\\/:*?|><")

    /// The documented name rules: < 256 characters, none of `"\/:*?|><`, not all spaces.
    static func check(_ name: String) throws(APIFailure) {
        if name.isEmpty { throw .bad("文件名不能为空") }
        if name.count >= 256 { throw .bad("文件名长度不能超过255个字符") }
        if name.contains(where: { forbidden.contains($0) }) { throw .bad("文件名不能包含以下字符: \"\\/:*?|><") }
        if name.allSatisfy({ $0 == " " }) { throw .bad("文件名不能全部是空格") }
    }

    /// `name(1).ext`, `name(2).ext`, … for `duplicate: 1`.
    static func suffixed(_ name: String, _ n: Int) -> String {
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            return "\(name[..<dot])(\(n))\(name[dot...])"
        }
        return "\(name)(\(n))"
    }
}
