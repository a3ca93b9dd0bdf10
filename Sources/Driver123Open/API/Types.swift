import Foundation

// One Codable type per wire shape, with the exact key casing 123 uses (spec §1.4).

struct APIEnvelope<T: Decodable>: Decodable {
    var code: Int
    var message: String
    var data: T?
}

/// For endpoints whose `data` is null or ignored.
struct Nothing: Decodable {
    init(from decoder: any Decoder) throws {}
}

struct TokenData: Decodable {
    var accessToken: String
    var expiredAt: String
}

struct FileItem: Decodable {
    var fileId: Int64
    var filename: String
    var type: Int
    var size: Int64
    var etag: String?
    var parentFileId: Int64
    var trashed: Int?
    var createAt: String?
    var updateAt: String?
}

struct ListData: Decodable {
    var lastFileId: Int64
    var fileList: [FileItem]?
}

struct DetailData: Decodable {
    var fileID: Int64
    var filename: String
    var type: Int
    var size: Int64
    var etag: String?
    var parentFileID: Int64
    var createAt: String?
    var trashed: Int?
}

struct MkdirData: Decodable { var dirID: Int64 }
struct DownloadData: Decodable { var downloadUrl: String }
struct DirectLinkData: Decodable { var url: String }
struct CopyData: Decodable { var targetFileId: Int64? }
struct AsyncCopyData: Decodable { var taskId: Int64 }
struct CopyProcessData: Decodable { var status: Int }

struct UserInfoData: Decodable {
    var uid: Int64
    var spaceUsed: Int64
    var spacePermanent: Int64
    var spaceTemp: Int64?
}

/// Times in list, infos and detail: `YYYY-MM-DD HH:MM:SS`, Beijing time (UTC+8), no zone given.
enum BeijingTime {
    static func parse(_ s: String?) -> Date? {
        guard let s else { return nil }
        let parts = s.split(whereSeparator: { $0 == " " || $0 == "-" || $0 == ":" || $0 == "T" }).prefix(6).compactMap { Int32($0) }
        guard parts.count == 6 else { return nil }
        var tm = tm()
        tm.tm_year = parts[0] - 1900; tm.tm_mon = parts[1] - 1; tm.tm_mday = parts[2]
        tm.tm_hour = parts[3]; tm.tm_min = parts[4]; tm.tm_sec = parts[5]
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm) - 8 * 3600))
    }

    /// `expiredAt`: RFC 3339 with an offset (`2025-03-23T15:48:37+08:00`).
    static func parseRFC3339(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }
}
