import Foundation
import PanListCore

/// RFC 3339 with milliseconds in UTC, the shape Alist clients parse (`2024-05-17T05:47:55.417Z`).
enum TimeFormat {
    /// `2006-01-02T15:04:05.000Z`
    static let rfc3339Length = 24

    /// From unix milliseconds, as the store keeps times.
    static func rfc3339(ms: Int64) -> String { rfc3339(Date(timeIntervalSince1970: Double(ms) / 1000)) }

    static func rfc3339(_ date: Date) -> String {
        String(unsafeUninitializedCapacity: rfc3339Length) { rfc3339(date, into: UnsafeMutableRawBufferPointer($0)) }
    }

    /// Writes the RFC 3339 form (UTC, milliseconds) into `out` (at least 24 bytes); returns 24.
    static func rfc3339(_ date: Date, into out: UnsafeMutableRawBufferPointer) -> Int {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = max(0, min(999, Int((date.timeIntervalSince1970 - Double(t)) * 1000)))
        func put(_ value: Int, _ at: Int, _ digits: Int) {
            var v = value
            for i in stride(from: at + digits - 1, through: at, by: -1) { out[i] = UInt8(48 + v % 10); v /= 10 }
        }
        put(Int(tm.tm_year) + 1900, 0, 4); out[4] = 45; put(Int(tm.tm_mon) + 1, 5, 2); out[7] = 45
        put(Int(tm.tm_mday), 8, 2); out[10] = 84; put(Int(tm.tm_hour), 11, 2); out[13] = 58
        put(Int(tm.tm_min), 14, 2); out[16] = 58; put(Int(tm.tm_sec), 17, 2); out[19] = 46
        put(ms, 20, 3); out[23] = 90
        return rfc3339Length
    }
}

/// Alist's file type codes, decided by extension lists in the settings (built when settings change).
struct FileTypes: Sendable {
    let video: Set<String>, audio: Set<String>, text: Set<String>, image: Set<String>

    init(setting: (String) -> String?) {
        func set(_ key: String) -> Set<String> {
            Set((setting(key) ?? "").lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        video = set(SettingKey.videoTypes); audio = set(SettingKey.audioTypes)
        text = set(SettingKey.textTypes); image = set(SettingKey.imageTypes)
    }

    func type(of obj: Obj) -> Int {
        if obj.isDir { return 1 }
        guard let dot = obj.name.lastIndex(of: ".") else { return 0 }
        return type(ext: obj.name[obj.name.index(after: dot)...].lowercased())
    }

    func type(ext: String) -> Int {
        if video.contains(ext) { return 2 }
        if audio.contains(ext) { return 3 }
        if text.contains(ext) { return 4 }
        if image.contains(ext) { return 5 }
        return 0
    }

    /// `type(of:)` for many entries: the previous entry's extension and type are remembered (a folder's
    /// files mostly share a few extensions).
    struct Memo {
        let types: FileTypes
        private var ext: Substring = "", last = 0, valid = false
        init(_ types: FileTypes) { self.types = types }

        mutating func type(of obj: borrowing Obj) -> Int {
            if obj.isDir { return 1 }
            guard let dot = obj.name.utf8.lastIndex(of: UInt8(ascii: ".")) else { return 0 }
            let e = obj.name[obj.name.index(after: dot)...]
            if valid, e.utf8.elementsEqual(ext.utf8) { return last }
            ext = e
            last = types.type(ext: e.lowercased())
            valid = true
            return last
        }
    }
}

/// An object as Alist's API shows it, written by hand (`write`): listings of 10,000 entries are hot.
struct ObjJSON {
    var name: String
    var size: Int64
    var isDir: Bool
    var modified: Date
    var created: Date
    var sign: String
    var thumb: String
    var type: Int
    var hashes: [String: String]
    /// For a folder where a storage is mounted: its space, when the driver reports it (OpenList's `mount_details`).
    var mountDetails: MountDetailsJSON?
    /// For a storage's mount point or a virtual folder: what it is (PanList's own field; renaming, moving or
    /// deleting such a folder is refused, so the UI does not offer it).
    var mount: MountJSON?

    init(_ obj: Obj, sign: String, type: Int) {
        name = obj.name; size = obj.size; isDir = obj.isDir; modified = obj.modified; created = obj.created
        self.sign = sign; thumb = obj.thumb; self.type = type; hashes = obj.hashes
    }

    init(_ obj: Obj, sign: String, types: FileTypes) {
        self.init(obj, sign: sign, type: types.type(of: obj))
    }

    /// `{"name":…,"size":…,"is_dir":…,"modified":…,"created":…,"sign":…,"thumb":…,"type":…,"hashinfo":…,"hash_info":…}`
    /// plus `mount_details` and `mount` when set. Without hashes `hashinfo` is the string "null" and
    /// `hash_info` null, as Alist sends them.
    func write(_ out: inout JSONOut) {
        Self.write(name: name, size: size, isDir: isDir, modified: modified, created: created, sign: sign, thumb: thumb,
                   type: type, hashes: hashes, into: &out, close: false)
        if let mountDetails { out.raw(",\"mount_details\":"); out.encoded(mountDetails) }
        if let mount { out.raw(",\"mount\":"); out.encoded(mount) }
        out.raw("}")
    }

    /// One object, straight from an `Obj` (no `ObjJSON` value in between; the listing's loop).
    static func write(_ o: borrowing Obj, sign: String, type: Int, into out: inout JSONOut) {
        write(name: o.name, size: o.size, isDir: o.isDir, modified: o.modified, created: o.created, sign: sign, thumb: o.thumb,
              type: type, hashes: o.hashes, into: &out, close: true)
    }

    private static func write(name: String, size: Int64, isDir: Bool, modified: Date, created: Date, sign: String, thumb: String,
                              type: Int, hashes: [String: String], into out: inout JSONOut, close: Bool) {
        out.raw("{\"name\":"); out.string(name)
        out.raw(",\"size\":"); out.int(size)
        out.raw(",\"is_dir\":"); out.bool(isDir)
        out.raw(",\"modified\":"); out.time(modified)
        out.raw(",\"created\":"); out.time(created)
        out.raw(",\"sign\":"); out.string(sign)
        out.raw(",\"thumb\":"); out.string(thumb)
        out.raw(",\"type\":"); out.int(type)
        if hashes.isEmpty {
            out.raw(",\"hashinfo\":\"null\",\"hash_info\":null")
        } else {
            var inner = JSONOut(capacity: 96)
            writeHashes(hashes, &inner)
            out.raw(",\"hashinfo\":"); out.string(String(decoding: inner.bytes, as: UTF8.self))
            out.raw(",\"hash_info\":"); writeHashes(hashes, &out)
        }
        if close { out.raw("}") }
    }

    private static func writeHashes(_ hashes: [String: String], _ out: inout JSONOut) {
        out.raw("{")
        for (i, key) in hashes.keys.sorted().enumerated() {
            if i > 0 { out.raw(",") }
            out.string(key); out.raw(":"); out.string(hashes[key] ?? "")
        }
        out.raw("}")
    }
}

/// `{total_space, free_space, used_space, driver_name}` of a mounted storage.
struct MountDetailsJSON: Encodable {
    var details: StorageDetails
    var driverName: String

    enum CodingKeys: String, CodingKey { case totalSpace = "total_space", freeSpace = "free_space", usedSpace = "used_space", driverName = "driver_name" }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(details.totalSpace, forKey: .totalSpace)
        try c.encode(details.freeSpace, forKey: .freeSpace)
        try c.encode(details.usedSpace, forKey: .usedSpace)
        try c.encode(driverName, forKey: .driverName)
    }

    /// The details of the storage mounted at `path`, if any reports them (cached, time-bounded).
    static func of(_ fs: FileSystem, at path: String) async -> MountDetailsJSON? {
        guard let m = fs.storage(mountedAt: path), let d = await m.details() else { return nil }
        return MountDetailsJSON(details: d, driverName: m.record.driver)
    }
}

/// `{driver, status, working, virtual}` of a mount point: `status` is `work`, `loading`, `disabled` or, for
/// a storage that failed, its error (for admins; others see "unavailable"). A virtual folder (one that exists
/// only because a storage is mounted deeper) has `virtual: true` and no driver.
struct MountJSON: Encodable, Sendable {
    var driver = ""
    var status = ""
    var working = true
    var virtual = false

    static let virtualFolder = MountJSON(virtual: true)

    init(driver: String = "", status: String = "", working: Bool = true, virtual: Bool = false) {
        self.driver = driver; self.status = status; self.working = working; self.virtual = virtual
    }

    init(_ m: MountedStorage, admin: Bool) {
        driver = m.record.driver
        working = m.isWorking
        let s = m.record.status
        status = working || admin || s == StorageStatus.loading ? s : "unavailable"
    }
}
