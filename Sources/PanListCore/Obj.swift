import Foundation

/// A file or folder as a driver reports it. `path` is storage-relative (`/` is the storage root);
/// `id` is the driver's own identifier (a path for Local, a file ID for cloud drives).
public struct Obj: Sendable, Equatable {
    public var id: String
    public var path: String
    public var name: String
    public var size: Int64
    public var modified: Date
    public var created: Date
    public var isDir: Bool
    /// Hash type (`md5`, `sha1`, `sha256`) to lower-case hex.
    public var hashes: [String: String]
    public var thumb: String

    public init(id: String, path: String, name: String, size: Int64, modified: Date, created: Date? = nil,
                isDir: Bool, hashes: [String: String] = [:], thumb: String = "") {
        self.id = id
        self.path = path
        self.name = name
        self.size = size
        self.modified = modified
        self.created = created ?? modified
        self.isDir = isDir
        self.hashes = hashes
        self.thumb = thumb
    }
}

/// How the bytes of a file can be fetched.
public enum Link: Sendable {
    /// A URL a client may be redirected to, with the headers the fetch needs and when it stops working.
    case url(String, headers: [String: String], expiresAt: Date?)
    /// A file on this machine's disk, already checked to lie inside the storage.
    case localFile(path: String)
}

/// What a driver may want to know about the request asking for a link.
public struct LinkArgs: Sendable {
    public var clientIP: String
    public var headers: [String: String]
    public init(clientIP: String = "", headers: [String: String] = [:]) {
        self.clientIP = clientIP
        self.headers = headers
    }
}
