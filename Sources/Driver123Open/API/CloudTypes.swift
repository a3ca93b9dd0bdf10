import Foundation

// Wire shapes of the offline download, SHA-1 reuse and upload domains (spec §7, §8.2, §8.4), decoded leniently:
// IDs and numbers may come as numbers or numeric strings.

/// A number that may arrive as a JSON number or a numeric string.
struct LenientNumber: Decodable {
    var value: Double
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let d = try? c.decode(Double.self) { value = d; return }
        if let s = try? c.decode(String.self), let d = Double(s.trimmingCharacters(in: .whitespaces)) { value = d; return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a number")
    }
}

/// An ID that may arrive as a JSON number or a numeric string.
struct LenientID: Decodable {
    var value: Int64
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) { value = i; return }
        if let s = try? c.decode(String.self), let i = Int64(s.trimmingCharacters(in: .whitespaces)) { value = i; return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an ID")
    }
}

/// `offline/download` → `{taskID}`.
struct OfflineStartData: Decodable {
    var taskID: LenientID
}

/// `offline/download/process` → `{process: 0…100, status: 0 running | 1 failed | 2 done | 3 retrying}`. A reason
/// for a failure is not documented here (only in the callback, `failReason`); taken when present.
struct OfflineProcessData: Decodable {
    var process: LenientNumber?
    var status: LenientNumber
    var failReason: String?
}

/// `sha1_reuse` → `{fileID, reuse}`.
struct SHA1ReuseData: Decodable {
    var fileID: LenientID?
    var reuse: Bool?
}
