import Foundation
import NIOCore
import Logging

/// One form item of a driver's settings, in Alist's `driver.Item` shape.
public struct DriverItem: Codable, Sendable, Equatable {
    public var name: String
    public var type: String   // string, select, bool, text, number
    public var `default`: String
    public var options: String
    public var required: Bool
    public var help: String
    public init(name: String, type: String, default: String = "", options: String = "", required: Bool = false, help: String = "") {
        self.name = name; self.type = type; self.default = `default`; self.options = options; self.required = required; self.help = help
    }
}

/// Static description of a driver (Alist's `driver.Config`).
public struct DriverConfig: Codable, Sendable {
    public var name: String
    public var localSort: Bool
    public var onlyProxy: Bool
    public var noCache: Bool
    public var noUpload: Bool
    public var defaultRoot: String
    public var alert: String

    enum CodingKeys: String, CodingKey {
        case name, alert
        case localSort = "local_sort", onlyProxy = "only_proxy", noCache = "no_cache"
        case noUpload = "no_upload", defaultRoot = "default_root"
        case onlyLocal = "only_local", needMs = "need_ms"
    }

    public init(name: String, localSort: Bool = false, onlyProxy: Bool = false, noCache: Bool = false,
                noUpload: Bool = false, defaultRoot: String = "", alert: String = "") {
        self.name = name; self.localSort = localSort; self.onlyProxy = onlyProxy; self.noCache = noCache
        self.noUpload = noUpload; self.defaultRoot = defaultRoot; self.alert = alert
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        localSort = try c.decodeIfPresent(Bool.self, forKey: .localSort) ?? false
        onlyProxy = try c.decodeIfPresent(Bool.self, forKey: .onlyProxy) ?? false
        noCache = try c.decodeIfPresent(Bool.self, forKey: .noCache) ?? false
        noUpload = try c.decodeIfPresent(Bool.self, forKey: .noUpload) ?? false
        defaultRoot = try c.decodeIfPresent(String.self, forKey: .defaultRoot) ?? ""
        alert = try c.decodeIfPresent(String.self, forKey: .alert) ?? ""
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(localSort, forKey: .localSort)
        try c.encode(onlyProxy, forKey: .onlyLocal)   // Alist v3 field, read by its UI
        try c.encode(onlyProxy, forKey: .onlyProxy)
        try c.encode(noCache, forKey: .noCache)
        try c.encode(noUpload, forKey: .noUpload)
        try c.encode(false, forKey: .needMs)
        try c.encode(defaultRoot, forKey: .defaultRoot)
        try c.encode(alert, forKey: .alert)
    }
}

/// Small key/value state a driver keeps across restarts (access tokens); the store implements it.
public protocol DriverStateStore: Sendable {
    func driverState(_ key: String) async throws -> String?
    func setDriverState(_ key: String, _ value: String?) async throws
    /// Whether several instances share this store (then drivers coordinate through it: `withLock`,
    /// `reserveSlot`); false for a store only one process uses.
    var isShared: Bool { get }
    /// Runs `body` holding the lock `name` on every instance sharing the store.
    func withLock<R: Sendable>(_ name: String, wait: Duration, _ body: @escaping @Sendable () async throws -> R) async throws -> R
    /// Reserves the next slot of a pace of one call per `interval` under `key`, for every instance; returns
    /// how long to wait for it.
    func reserveSlot(_ key: String, interval: Duration) async throws -> Duration
}

extension DriverStateStore {
    public var isShared: Bool { false }
    public func withLock<R: Sendable>(_ name: String, wait: Duration, _ body: @escaping @Sendable () async throws -> R) async throws -> R {
        try await body()
    }
    public func reserveSlot(_ key: String, interval: Duration) async throws -> Duration { .zero }
}

/// Everything a driver gets from the server when it is created.
public struct DriverEnvironment: Sendable {
    public var logger: Logger
    /// Where drivers may spool uploads; swept at start-up.
    public var tempDir: String
    public var state: (any DriverStateStore)?
    public init(logger: Logger, tempDir: String, state: (any DriverStateStore)? = nil) {
        self.logger = logger
        self.tempDir = tempDir
        self.state = state
    }
}

/// The base protocol every storage driver implements. Everything else is an optional capability.
public protocol Driver: AnyObject, Sendable {
    var config: DriverConfig { get }
    /// Logs in, checks settings and the root. Throws an FSError whose message becomes the storage's status.
    func initialize() async throws
    func drop() async
    /// The object at the storage's root.
    func root() async throws -> Obj
    func list(dir: Obj) async throws -> [Obj]
    func link(file: Obj, args: LinkArgs) async throws -> Link
}

/// A driver that can look an object up by its storage-relative path without listing the parent.
public protocol GetCapable: Driver { func get(path: String) async throws -> Obj }
public protocol MakeDirCapable: Driver { func makeDir(parent: Obj, name: String) async throws -> Obj }
public protocol RenameCapable: Driver { func rename(_ obj: Obj, to newName: String) async throws -> Obj }
public protocol MoveCapable: Driver { func move(_ obj: Obj, to dstDir: Obj) async throws -> Obj }
public protocol CopyCapable: Driver { func copy(_ obj: Obj, to dstDir: Obj) async throws -> Obj }
public protocol RemoveCapable: Driver { func remove(_ obj: Obj) async throws }
public protocol PutCapable: Driver {
    /// Writes `stream` into `dir` under `stream.name`, replacing `existing` if given. Nothing partial may remain on failure.
    func put(dir: Obj, stream: UploadStream, replacing existing: Obj?) async throws -> Obj
}
public struct StorageDetails: Sendable, Codable, Equatable {
    public var totalSpace: Int64
    public var freeSpace: Int64
    public var usedSpace: Int64 { max(0, totalSpace - freeSpace) }
    public init(totalSpace: Int64, freeSpace: Int64) { self.totalSpace = totalSpace; self.freeSpace = freeSpace }
    enum CodingKeys: String, CodingKey { case totalSpace = "total_space", freeSpace = "free_space", usedSpace = "used_space" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        totalSpace = try c.decode(Int64.self, forKey: .totalSpace)
        freeSpace = try c.decode(Int64.self, forKey: .freeSpace)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(totalSpace, forKey: .totalSpace)
        try c.encode(freeSpace, forKey: .freeSpace)
        try c.encode(usedSpace, forKey: .usedSpace)
    }
}
/// A driver that keeps lookups of its own (the Local driver's second-long cache): told to drop them when
/// another instance changed the storage (`FileSystem.folderChanged`, `forgetCaches`).
public protocol CacheForgetting: Driver { func forgetCached() }
public protocol DetailsCapable: Driver { func details() async throws -> StorageDetails }
/// How a sliced upload begins: the cloud had the content already (the file is there), or a session to send
/// slices of `sliceSize` bytes into (its state opaque to the caller, kept by it between slices).
public enum SlicedStart: Sendable {
    case stored(Obj)
    case session(state: String, sliceSize: Int64)
}

/// A driver that can take a file whose size and MD5 are known up front slice by slice as the bytes arrive
/// (123 Open), so a resumable upload needs no spool: instant when the cloud has the content, else each
/// slice sent as soon as it is whole.
public protocol SlicedUploadCapable: Driver {
    /// Begins an upload of `name` into `dir` (replacing a file of that name).
    func beginSliced(dir: Obj, name: String, size: Int64, md5: String) async throws -> SlicedStart
    /// Sends slice `number` (1-based) of the session `state`: all its bytes. Returns the new state.
    func sendSlice(state: String, number: Int, bytes: ByteBuffer) async throws -> String
    /// Every slice is sent: the cloud checks the whole file and it appears.
    func completeSliced(state: String) async throws -> Obj
}

/// Where a cloud's own offline download stands.
public struct CloudDownloadStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case running
        /// The cloud failed once and tries again by itself.
        case retrying
        case failed(String)
        case done
    }
    public var state: State
    /// 0…100.
    public var percent: Double
    public init(state: State, percent: Double) { self.state = state; self.percent = percent }
}

/// A storage whose cloud fetches a URL itself (123 Open's offline download): the bytes never pass through
/// PanList.
public protocol CloudDownloadCapable: Driver {
    /// Asks the cloud to fetch `url` into the folder `dir` (never the storage's root: drivers whose cloud refuses
    /// it throw `badRequest` with a clear message), named `name` when given. The cloud's id of that download.
    func startCloudDownload(url: String, name: String?, into dir: Obj) async throws -> String
    /// Where download `id` stands now.
    func cloudDownloadStatus(id: String) async throws -> CloudDownloadStatus
}

/// A driver that lets a resumable upload keep its bytes where the file will end up (Local: a hidden file
/// beside the target), so that `put` of a stream whose `staged` file is that path links it into place
/// instead of copying it.
public protocol StagingCapable: Driver {
    /// The on-disk path to stage upload `id` bound for `name` in the storage folder `dir` (which may not exist
    /// yet: then the nearest folder above it that does). The file is not created.
    func stagingPath(dir: String, name: String, id: String) async throws -> String
    /// Whether `name` in a listing is a staging file (hidden from listings).
    static func isStagingName(_ name: String) -> Bool
}

/// A driver type known to the registry.
public struct DriverFactory: Sendable {
    public var config: DriverConfig
    public var additional: [DriverItem]
    /// Addition fields holding secrets: masked in every API answer, kept when an update sends the mask back.
    public var secretFields: [String]
    /// Help for the storage form's download settings (`web_proxy`, `webdav_policy`, `down_proxy_url`):
    /// when this cloud's links work for a redirect, and when to switch to a proxy.
    public var deliveryHelp: String
    public var make: @Sendable (_ storage: StorageRecord, _ env: DriverEnvironment) throws -> any Driver
    /// The driver's own checks of an `addition` that passed the generic ones (settings that depend on each
    /// other, such as a mode and what it needs), run when a storage is saved; the error's message is shown.
    public var check: (@Sendable (_ addition: String) throws -> Void)?
    public init(config: DriverConfig, additional: [DriverItem], secretFields: [String] = [], deliveryHelp: String = "",
                check: (@Sendable (String) throws -> Void)? = nil,
                make: @escaping @Sendable (StorageRecord, DriverEnvironment) throws -> any Driver) {
        self.config = config; self.additional = additional; self.secretFields = secretFields
        self.deliveryHelp = deliveryHelp; self.check = check; self.make = make
    }

    public static let mask = "******"

    /// The addition with every non-empty secret replaced by the mask.
    public func masked(_ addition: String) -> String {
        guard !secretFields.isEmpty, var obj = Self.object(addition) else { return addition }
        for k in secretFields where !((obj[k] as? String) ?? "").isEmpty { obj[k] = Self.mask }
        return Self.text(obj) ?? addition
    }

    /// An incoming addition where each secret sent as the mask takes the stored value again.
    public func unmasked(_ incoming: String, stored: String) -> String {
        guard !secretFields.isEmpty, var obj = Self.object(incoming), let old = Self.object(stored) else { return incoming }
        for k in secretFields where (obj[k] as? String) == Self.mask { obj[k] = old[k] ?? "" }
        return Self.text(obj) ?? incoming
    }

    static func object(_ s: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data((s.isEmpty ? "{}" : s).utf8))) as? [String: Any]
    }

    static func text(_ o: [String: Any]) -> String? {
        (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Decodes a storage's `addition` JSON string; an empty string means all defaults.
public func decodeAddition<T: Decodable>(_ type: T.Type, from addition: String) throws -> T {
    let text = addition.trimmingCharacters(in: .whitespacesAndNewlines)
    do {
        return try JSONDecoder().decode(T.self, from: Data((text.isEmpty ? "{}" : text).utf8))
    } catch {
        throw FSError.badRequest("the storage's addition is not valid JSON for this driver: \(error)")
    }
}

extension DriverFactory {
    /// The driver's settings, one per line, as help texts and error messages show them.
    public var fieldList: String {
        additional.map { item in
            var line = "  \(item.name) (\(item.type)\(item.required ? ", required" : "")"
            if !item.default.isEmpty { line += ", default \(item.default)" }
            if !item.options.isEmpty { line += ", one of \(item.options)" }
            line += ")"
            if !item.help.isEmpty { line += ": \(item.help)" }
            return line
        }.joined(separator: "\n")
    }

    /// Checks a storage's `addition` against this driver's settings: a JSON object, every required setting
    /// present and not empty, values of the setting's kind (a number, true/false, one of a select's options).
    /// With `refuseUnknown`, names the driver does not have are refused too (the CLI; the API accepts them,
    /// as Alist's clients send settings of their own). The message names the problem and lists the settings.
    public func validate(addition: String, refuseUnknown: Bool) throws(FSError) {
        let text = addition.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let obj = try? JSONDecoder().decode([String: SettingValue].self, from: Data((text.isEmpty ? "{}" : text).utf8)) else {
            throw .badRequest("the \(config.name) settings (addition) must be a JSON object; its settings are:\n\(fieldList)")
        }
        var problems: [String] = []
        let known = Set(additional.map(\.name))
        if refuseUnknown {
            for name in obj.keys.sorted() where !known.contains(name) { problems.append("\(name) is not a \(config.name) setting") }
        }
        for item in additional {
            let value = obj[item.name] ?? .null
            if case .string(let s) = value, s.trimmingCharacters(in: .whitespaces).isEmpty {
                if item.required { problems.append("\(item.name) is required") }
                continue
            }
            if case .null = value {
                if item.required { problems.append("\(item.name) is required") }
                continue
            }
            switch (item.type, value) {
            case ("number", .number(let d)) where d == d.rounded() && abs(d) < 1e15: break
            case ("number", .string(let s)) where Int64(s.trimmingCharacters(in: .whitespaces)) != nil: break
            case ("number", _): problems.append("\(item.name) must be a whole number")
            case ("bool", .bool): break
            case ("bool", .string(let s)) where s == "true" || s == "false": break
            case ("bool", _): problems.append("\(item.name) must be true or false")
            case ("select", _):
                let options = item.options.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                if !options.isEmpty && !options.contains(value.text) { problems.append("\(item.name) must be one of \(item.options)") }
            case (_, .string), (_, .number): break
            default: problems.append("\(item.name) must be text")
            }
        }
        guard problems.isEmpty else {
            throw .badRequest("\(problems.joined(separator: "; ")). The \(config.name) settings are:\n\(fieldList)")
        }
        if let check {
            do { try check(text.isEmpty ? "{}" : text) } catch {
                throw .badRequest("\(FSError.from(error).message). The \(config.name) settings are:\n\(fieldList)")
            }
        }
    }
}

/// One value of a storage's `addition` object, by JSON kind.
enum SettingValue: Decodable {
    case string(String), number(Double), bool(Bool), null, other

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .other }
    }

    var text: String {
        switch self {
        case .string(let s): return s
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .bool(let b): return b ? "true" : "false"
        case .null, .other: return ""
        }
    }
}
