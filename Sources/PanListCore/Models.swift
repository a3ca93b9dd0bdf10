import Foundation

/// A storage as stored and as the admin API shows it (Alist's `model.Storage`; `addition` is a JSON string).
public struct StorageRecord: Codable, Sendable, Equatable {
    public var id: Int
    public var mountPath: String
    public var order: Int
    public var driver: String
    /// Minutes a listing stays cached; 0 disables the cache.
    public var cacheExpiration: Int
    public var status: String
    public var addition: String
    public var remark: String
    public var modified: Date
    public var disabled: Bool
    public var enableSign: Bool
    public var orderBy: String
    public var orderDirection: String
    public var extractFolder: String
    public var webProxy: Bool
    public var webdavPolicy: String
    public var downProxyURL: String
    /// Leave this storage out of the search index.
    public var disableIndex: Bool

    enum CodingKeys: String, CodingKey {
        case id, order, driver, status, addition, remark, modified, disabled
        case mountPath = "mount_path", cacheExpiration = "cache_expiration", enableSign = "enable_sign"
        case orderBy = "order_by", orderDirection = "order_direction", extractFolder = "extract_folder"
        case webProxy = "web_proxy", webdavPolicy = "webdav_policy", downProxyURL = "down_proxy_url"
        case disableIndex = "disable_index"
    }

    public init(id: Int = 0, mountPath: String, order: Int = 0, driver: String, cacheExpiration: Int = 30,
                status: String = "", addition: String = "{}", remark: String = "", modified: Date = Date(),
                disabled: Bool = false, enableSign: Bool = false, orderBy: String = "", orderDirection: String = "",
                extractFolder: String = "", webProxy: Bool = false, webdavPolicy: String = "", downProxyURL: String = "",
                disableIndex: Bool = false) {
        self.id = id; self.mountPath = mountPath; self.order = order; self.driver = driver
        self.cacheExpiration = cacheExpiration; self.status = status; self.addition = addition; self.remark = remark
        self.modified = modified; self.disabled = disabled; self.enableSign = enableSign; self.orderBy = orderBy
        self.orderDirection = orderDirection; self.extractFolder = extractFolder; self.webProxy = webProxy
        self.webdavPolicy = webdavPolicy; self.downProxyURL = downProxyURL; self.disableIndex = disableIndex
    }

    /// Lenient decoding: clients send partial storages; missing fields take defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(Int.self, forKey: .id) ?? 0
        mountPath = try c.decodeIfPresent(String.self, forKey: .mountPath) ?? ""
        order = try c.decodeIfPresent(Int.self, forKey: .order) ?? 0
        driver = try c.decodeIfPresent(String.self, forKey: .driver) ?? ""
        cacheExpiration = try c.decodeIfPresent(Int.self, forKey: .cacheExpiration) ?? 30
        status = try c.decodeIfPresent(String.self, forKey: .status) ?? ""
        addition = try c.decodeIfPresent(String.self, forKey: .addition) ?? "{}"
        remark = try c.decodeIfPresent(String.self, forKey: .remark) ?? ""
        modified = (try? c.decodeIfPresent(Date.self, forKey: .modified)) ?? Date()
        disabled = try c.decodeIfPresent(Bool.self, forKey: .disabled) ?? false
        enableSign = try c.decodeIfPresent(Bool.self, forKey: .enableSign) ?? false
        orderBy = try c.decodeIfPresent(String.self, forKey: .orderBy) ?? ""
        orderDirection = try c.decodeIfPresent(String.self, forKey: .orderDirection) ?? ""
        extractFolder = try c.decodeIfPresent(String.self, forKey: .extractFolder) ?? ""
        webProxy = try c.decodeIfPresent(Bool.self, forKey: .webProxy) ?? false
        webdavPolicy = try c.decodeIfPresent(String.self, forKey: .webdavPolicy) ?? ""
        downProxyURL = try c.decodeIfPresent(String.self, forKey: .downProxyURL) ?? ""
        disableIndex = try c.decodeIfPresent(Bool.self, forKey: .disableIndex) ?? false
    }
}

public enum UserRole: Int, Codable, Sendable {
    case general = 0, guest = 1, admin = 2
}

/// Alist's permission bits.
public struct Permission: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let seeHides = Permission(rawValue: 1 << 0)
    public static let accessWithoutPassword = Permission(rawValue: 1 << 1)
    public static let offlineDownload = Permission(rawValue: 1 << 2)
    public static let write = Permission(rawValue: 1 << 3)
    public static let rename = Permission(rawValue: 1 << 4)
    public static let move = Permission(rawValue: 1 << 5)
    public static let copy = Permission(rawValue: 1 << 6)
    public static let remove = Permission(rawValue: 1 << 7)
    public static let webdavRead = Permission(rawValue: 1 << 8)
    public static let webdavManage = Permission(rawValue: 1 << 9)
    /// OpenList's bits 12 and 13: browsing inside archives (and downloading their members), and extracting them.
    public static let readArchives = Permission(rawValue: 1 << 12)
    public static let decompress = Permission(rawValue: 1 << 13)
    /// OpenList's bits 14 and 15: making share links, and choosing their ids.
    public static let share = Permission(rawValue: 1 << 14)
    public static let customShareID = Permission(rawValue: 1 << 15)
    /// What a new admin gets (bits 0–9, as Alist grants on creation).
    public static let admin = Permission(rawValue: 0x3FF)
}

/// A user as the core sees it (secrets live only in the store).
public struct User: Sendable, Equatable {
    public var id: Int
    public var username: String
    public var basePath: String
    public var role: UserRole
    public var disabled: Bool
    public var permission: Permission
    /// Unix seconds of the last password change; tokens issued before it are refused.
    public var passwordTimestamp: Int64

    public init(id: Int, username: String, basePath: String = "/", role: UserRole, disabled: Bool = false,
                permission: Permission, passwordTimestamp: Int64 = 0) {
        self.id = id; self.username = username; self.basePath = basePath; self.role = role
        self.disabled = disabled; self.permission = permission; self.passwordTimestamp = passwordTimestamp
    }

    public var isAdmin: Bool { role == .admin }
    public var isGuest: Bool { role == .guest }
}

/// A setting item in Alist's shape.
public struct SettingItem: Codable, Sendable, Equatable {
    public var key: String
    public var value: String
    public var help: String
    public var type: String
    public var options: String
    public var group: Int
    public var flag: Int
    public var index: Int

    public init(key: String, value: String, help: String = "", type: String = "string", options: String = "",
                group: Int = 1, flag: Int = SettingItem.public, index: Int = 0) {
        self.key = key; self.value = value; self.help = help; self.type = type; self.options = options
        self.group = group; self.flag = flag; self.index = index
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decode(String.self, forKey: .key)
        // Alist clients send values as strings; accept numbers and booleans too.
        if let s = try? c.decode(String.self, forKey: .value) { value = s }
        else if let b = try? c.decode(Bool.self, forKey: .value) { value = b ? "true" : "false" }
        else if let i = try? c.decode(Int.self, forKey: .value) { value = String(i) }
        else if let d = try? c.decode(Double.self, forKey: .value) { value = String(d) }
        else { value = "" }
        help = try c.decodeIfPresent(String.self, forKey: .help) ?? ""
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? "string"
        options = try c.decodeIfPresent(String.self, forKey: .options) ?? ""
        group = try c.decodeIfPresent(Int.self, forKey: .group) ?? 1
        flag = try c.decodeIfPresent(Int.self, forKey: .flag) ?? SettingItem.public
        index = try c.decodeIfPresent(Int.self, forKey: .index) ?? 0
    }

    public static let `public` = 0
    public static let `private` = 1
    public static let readonly = 2
    public static let deprecated = 3
}

/// Alist's paging (`page` from 1, `per_page`), safe for any numbers a client sends.
public enum Paging {
    /// The indices of page `page` of `count` items, or nil when the client asked for no paging.
    public static func range(count: Int, page: Int?, perPage: Int?) -> Range<Int>? {
        guard let page, let perPage, page >= 1, perPage >= 1 else { return nil }
        let (skip, overflow) = (page - 1).multipliedReportingOverflow(by: perPage)
        let start = overflow ? count : min(skip, count)
        let end = perPage >= count - start ? count : start + perPage
        return start..<end
    }
}
