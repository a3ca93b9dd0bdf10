import Foundation

/// A file's modification time that its storage cannot keep (123 Open keeps the upload time, not the time
/// the file was given), kept by PanList by virtual path. It applies only while the file is the one it was
/// recorded for: the same size and, where both are known, the same MD5. `sha1` is kept when an upload
/// declared it, so WebDAV can offer it as a checksum.
public struct KeptTime: Sendable, Equatable {
    public var modified: Date
    public var size: Int64
    public var md5: String
    public var sha1: String

    public init(modified: Date, size: Int64, md5: String = "", sha1: String = "") {
        self.modified = modified; self.size = size; self.md5 = md5.lowercased(); self.sha1 = sha1.lowercased()
    }

    /// Whether this record still describes `obj`.
    public func applies(to obj: Obj) -> Bool {
        guard !obj.isDir, obj.size == size else { return false }
        if let md5 = obj.hashes["md5"], !md5.isEmpty, !self.md5.isEmpty, md5.lowercased() != self.md5 { return false }
        return true
    }

    /// `obj` with this record's time (and its SHA-1 when the storage reports none), when it applies.
    public func apply(to obj: Obj) -> Obj {
        guard applies(to: obj) else { return obj }
        var o = obj
        o.modified = modified
        if !sha1.isEmpty, (o.hashes["sha1"] ?? "").isEmpty { o.hashes["sha1"] = sha1 }
        if !md5.isEmpty, (o.hashes["md5"] ?? "").isEmpty { o.hashes["md5"] = md5 }
        return o
    }
}

/// Where kept times live (the store implements it). Paths are absolute virtual paths.
public protocol KeptTimesStore: Sendable {
    /// The kept times of the files directly in `folder`, by name.
    func keptTimes(in folder: String) async throws -> [String: KeptTime]
    func keptTime(_ path: String) async throws -> KeptTime?
    /// Sets (or with nil, forgets) the kept time of one file.
    func setKeptTime(_ path: String, _ time: KeptTime?) async throws
    /// Copies the kept times of `from` and everything below it to the same places below `to`.
    func copyKeptTimes(from: String, to: String) async throws
    /// Forgets the kept times of `path` and everything below it.
    func deleteKeptTimes(_ path: String) async throws
}

/// A driver that can set a file's modification time itself (Local); for the others PanList keeps it.
public protocol SetModifiedCapable: Driver {
    func setModified(_ obj: Obj, to date: Date) async throws -> Obj
}
