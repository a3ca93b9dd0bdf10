import Foundation
import PanListCore
import PanListStore

/// `data/config.json`, with Alist's field names. Missing fields take defaults, and the file is rewritten
/// on every start so that new fields appear.
public struct PanListConfig: Codable, Sendable {
    public struct Database: Codable, Sendable {
        public var type = "sqlite3"
        public var host = ""
        public var port = 0
        public var user = ""
        public var password = ""
        public var name = ""
        public var dbFile = "data/panlist.db"
        public var tablePrefix = "x_"
        public var sslMode = ""
        public var dsn = ""
        /// PostgreSQL: seconds a request waits for a database connection before it answers 503.
        public var waitSeconds = 10

        /// Which engine `type` names: `sqlite3`/`sqlite` or `postgres`/`postgresql`; anything else is refused.
        public var engine: SQLStore.Engine {
            get throws(FSError) {
                switch type.lowercased() {
                case "sqlite3", "sqlite", "": return .sqlite
                case "postgres", "postgresql": return .postgres
                default: throw .badRequest("database.type '\(type)' is not supported; use sqlite3 (the default) or postgres")
                }
            }
        }

        /// The PostgreSQL server: `dsn` when given, else the separate fields.
        public func postgresTarget() throws(FSError) -> PostgresTarget {
            if !dsn.isEmpty {
                let alsoSet = [("host", !host.isEmpty), ("port", port != 0), ("user", !user.isEmpty), ("password", !password.isEmpty),
                               ("name", !name.isEmpty), ("ssl_mode", !sslMode.isEmpty)].filter(\.1).map(\.0)
                if !alsoSet.isEmpty {
                    throw .badRequest("the database is given twice: by a DSN and by \(alsoSet.joined(separator: ", ")) (config.json's database.* or PANLIST_DB_*); give one of the two")
                }
                return try PostgresTarget(dsn: dsn)
            }
            if port < 0 { throw .badRequest("the database port is not a number (PANLIST_DB_PORT)") }
            return try PostgresTarget(host: host, port: port, user: user, password: password, database: name, sslMode: sslMode)
        }
        enum CodingKeys: String, CodingKey {
            case type, host, port, user, password, name, dsn
            case dbFile = "db_file", tablePrefix = "table_prefix", sslMode = "ssl_mode", waitSeconds = "wait_seconds"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Database()
            type = try c.decodeIfPresent(String.self, forKey: .type) ?? d.type
            host = try c.decodeIfPresent(String.self, forKey: .host) ?? d.host
            port = try c.decodeIfPresent(Int.self, forKey: .port) ?? d.port
            user = try c.decodeIfPresent(String.self, forKey: .user) ?? d.user
            password = try c.decodeIfPresent(String.self, forKey: .password) ?? d.password
            name = try c.decodeIfPresent(String.self, forKey: .name) ?? d.name
            dbFile = try c.decodeIfPresent(String.self, forKey: .dbFile) ?? d.dbFile
            tablePrefix = try c.decodeIfPresent(String.self, forKey: .tablePrefix) ?? d.tablePrefix
            sslMode = try c.decodeIfPresent(String.self, forKey: .sslMode) ?? d.sslMode
            dsn = try c.decodeIfPresent(String.self, forKey: .dsn) ?? d.dsn
            waitSeconds = try c.decodeIfPresent(Int.self, forKey: .waitSeconds) ?? d.waitSeconds
        }
    }

    public struct Scheme: Codable, Sendable {
        public var address = "127.0.0.1"
        public var httpPort = 5244
        public var httpsPort = -1
        public var forceHTTPS = false
        public var certFile = ""
        public var keyFile = ""
        public var unixFile = ""
        enum CodingKeys: String, CodingKey {
            case address
            case httpPort = "http_port", httpsPort = "https_port", forceHTTPS = "force_https"
            case certFile = "cert_file", keyFile = "key_file", unixFile = "unix_file"
        }
        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Scheme()
            address = try c.decodeIfPresent(String.self, forKey: .address) ?? d.address
            httpPort = try c.decodeIfPresent(Int.self, forKey: .httpPort) ?? d.httpPort
            httpsPort = try c.decodeIfPresent(Int.self, forKey: .httpsPort) ?? d.httpsPort
            forceHTTPS = try c.decodeIfPresent(Bool.self, forKey: .forceHTTPS) ?? d.forceHTTPS
            certFile = try c.decodeIfPresent(String.self, forKey: .certFile) ?? d.certFile
            keyFile = try c.decodeIfPresent(String.self, forKey: .keyFile) ?? d.keyFile
            unixFile = try c.decodeIfPresent(String.self, forKey: .unixFile) ?? d.unixFile
        }
    }

    public var force = false
    public var siteURL = ""
    public var jwtSecret = ""
    /// Hours a login token stays valid.
    public var tokenExpiresIn = 48
    public var database = Database()
    public var scheme = Scheme()
    public var tempDir = "data/temp"
    /// Largest JSON request body accepted by /api, in bytes.
    public var maxRequestBody = 1 << 20
    /// Reverse proxies whose `X-Forwarded-For` / `X-Real-IP` are believed (addresses or CIDR ranges).
    public var trustedProxies: [String] = []
    /// The header those proxies set with the client's address: `X-Forwarded-For` or `X-Real-IP`.
    public var clientIPHeader = "X-Forwarded-For"
    /// One info-level line per request (method, path, status, bytes, time, client address).
    public var accessLog = true
    /// This instance's name among several on one PostgreSQL database (its temp folder is `temp_dir/<id>`);
    /// made at the first start. A copied data folder must get a new one (delete the field).
    public var instanceID = ""
    /// `host:port` where `/metrics` and `/ready` are served without credentials (keep it private); empty: off
    /// (`/metrics` on the main port needs an admin then).
    public var metricsAddress = ""
    /// Seconds a stopping server (SIGTERM) gives requests in flight, downloads and uploads, to finish.
    public var shutdownGrace = 30
    /// Seconds between SIGTERM (when `/ready` turns 503) and the listeners closing, for load balancers that
    /// poll `/ready` to notice; new requests are still served meanwhile.
    public var shutdownDelay = 0
    /// Seconds a client may take nothing of an answer being sent before its connection is closed (a paused
    /// or vanished downloader must not hold a download slot for ever).
    public var sendTimeout = 300
    /// Background tasks: workers and retries per kind (over the settings), and the lease of a running task.
    public var tasks = Tasks()

    public struct Tasks: Codable, Sendable, Equatable {
        public struct Kind: Codable, Sendable, Equatable {
            public var workers: Int?
            public var maxRetry: Int?
            enum CodingKeys: String, CodingKey { case workers, maxRetry = "max_retry" }
        }
        /// By kind (copy, move, upload).
        public var kinds: [String: Kind] = [:]
        /// Seconds a running task's claim lasts without renewal (renewed twice a second); a crashed instance's
        /// tasks are taken over after it.
        public var leaseSeconds = 15
        public init() {}
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            for key in c.allKeys {
                if key.stringValue == "lease_seconds" { leaseSeconds = try c.decode(Int.self, forKey: key) }
                else { kinds[key.stringValue] = try c.decode(Kind.self, forKey: key) }
            }
        }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(leaseSeconds, forKey: Key(stringValue: "lease_seconds"))
            for (k, v) in kinds { try c.encode(v, forKey: Key(stringValue: k)) }
        }
    }

    enum CodingKeys: String, CodingKey {
        case force, database, scheme, tasks
        case instanceID = "instance_id"
        case metricsAddress = "metrics_address", shutdownGrace = "shutdown_grace", shutdownDelay = "shutdown_delay", sendTimeout = "send_timeout"
        case siteURL = "site_url", jwtSecret = "jwt_secret", tokenExpiresIn = "token_expires_in"
        case tempDir = "temp_dir", maxRequestBody = "max_request_body"
        case trustedProxies = "trusted_proxies", accessLog = "access_log", clientIPHeader = "client_ip_header"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PanListConfig()
        force = try c.decodeIfPresent(Bool.self, forKey: .force) ?? d.force
        siteURL = try c.decodeIfPresent(String.self, forKey: .siteURL) ?? d.siteURL
        jwtSecret = try c.decodeIfPresent(String.self, forKey: .jwtSecret) ?? d.jwtSecret
        tokenExpiresIn = try c.decodeIfPresent(Int.self, forKey: .tokenExpiresIn) ?? d.tokenExpiresIn
        database = try c.decodeIfPresent(Database.self, forKey: .database) ?? d.database
        scheme = try c.decodeIfPresent(Scheme.self, forKey: .scheme) ?? d.scheme
        tempDir = try c.decodeIfPresent(String.self, forKey: .tempDir) ?? d.tempDir
        maxRequestBody = try c.decodeIfPresent(Int.self, forKey: .maxRequestBody) ?? d.maxRequestBody
        trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? d.trustedProxies
        accessLog = try c.decodeIfPresent(Bool.self, forKey: .accessLog) ?? d.accessLog
        clientIPHeader = try c.decodeIfPresent(String.self, forKey: .clientIPHeader) ?? d.clientIPHeader
        instanceID = try c.decodeIfPresent(String.self, forKey: .instanceID) ?? d.instanceID
        metricsAddress = try c.decodeIfPresent(String.self, forKey: .metricsAddress) ?? d.metricsAddress
        shutdownGrace = try c.decodeIfPresent(Int.self, forKey: .shutdownGrace) ?? d.shutdownGrace
        shutdownDelay = try c.decodeIfPresent(Int.self, forKey: .shutdownDelay) ?? d.shutdownDelay
        sendTimeout = try c.decodeIfPresent(Int.self, forKey: .sendTimeout) ?? d.sendTimeout
        tasks = try c.decodeIfPresent(Tasks.self, forKey: .tasks) ?? d.tasks
    }

    /// Defaults for a data folder: files inside it, a fresh 64-character JWT secret.
    public static func defaults(dataDir: String) -> PanListConfig {
        var c = PanListConfig()
        c.jwtSecret = RandomString.make(64)
        c.database.dbFile = dataDir + "/panlist.db"
        c.tempDir = dataDir + "/temp"
        return c
    }

    /// Reads `dataDir/config.json`, creating it with defaults when missing, and writes it back with every field.
    public static func loadOrCreate(dataDir: String) throws -> (PanListConfig, created: Bool) {
        let path = dataDir + "/config.json"
        var created = false
        var config: PanListConfig
        if let data = FileManager.default.contents(atPath: path) {
            do {
                config = try JSONDecoder().decode(PanListConfig.self, from: data)
            } catch {
                throw FSError.badRequest("\(path) is not valid JSON: \(error)")
            }
        } else {
            config = .defaults(dataDir: dataDir)
            created = true
        }
        if config.jwtSecret.isEmpty { config.jwtSecret = RandomString.make(64) }
        if config.instanceID.isEmpty { config.instanceID = "i-" + RandomString.make(10).lowercased() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try PrivateFiles.write(try encoder.encode(config), to: path)
        // Environment overrides apply to this run only; they are not written into the file.
        if !config.force { config.applyEnvironment(ProcessInfo.processInfo.environment) }
        return (config, created)
    }

    /// `PANLIST_*` environment variables override the file unless `force` is set.
    mutating func applyEnvironment(_ env: [String: String]) {
        if let v = env["PANLIST_ADDRESS"] { scheme.address = v }
        if let v = env["PANLIST_HTTP_PORT"].flatMap(Int.init) { scheme.httpPort = v }
        if let v = env["PANLIST_SITE_URL"] { siteURL = v }
        if let v = env["PANLIST_JWT_SECRET"] { jwtSecret = v }
        if let v = env["PANLIST_TEMP_DIR"] { tempDir = v }
        if let v = env["PANLIST_DB_FILE"] { database.dbFile = v }
        if let v = env["PANLIST_DB_TYPE"] { database.type = v }
        if let v = env["PANLIST_DB_HOST"] { database.host = v }
        if let v = env["PANLIST_DB_PORT"] { database.port = Int(v) ?? -1 }
        if let v = env["PANLIST_DB_USER"] { database.user = v }
        if let v = env["PANLIST_DB_PASSWORD"] { database.password = v }
        if let v = env["PANLIST_DB_NAME"] { database.name = v }
        if let v = env["PANLIST_DB_SSL_MODE"] { database.sslMode = v }
        if let v = env["PANLIST_DB_DSN"] { database.dsn = v }
        if let v = env["PANLIST_DB_WAIT"] { database.waitSeconds = Int(v) ?? -1 }
        if let v = env["PANLIST_TRUSTED_PROXIES"] {
            trustedProxies = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let v = env["PANLIST_CLIENT_IP_HEADER"] { clientIPHeader = v }
        if let v = env["PANLIST_INSTANCE_ID"], !v.isEmpty { instanceID = v }
        if let v = env["PANLIST_METRICS_ADDRESS"] { metricsAddress = v }
        if let v = env["PANLIST_SHUTDOWN_GRACE"] { shutdownGrace = Int(v) ?? -1 }
        if let v = env["PANLIST_SHUTDOWN_DELAY"] { shutdownDelay = Int(v) ?? -1 }
        if let v = env["PANLIST_SEND_TIMEOUT"] { sendTimeout = Int(v) ?? -1 }
        if let v = env["PANLIST_TASK_LEASE_SECONDS"] { tasks.leaseSeconds = Int(v) ?? -1 }
        if let v = env["PANLIST_ACCESS_LOG"] { accessLog = !["0", "false", "off", "no"].contains(v.lowercased()) }
    }
}
