import Foundation
import Logging
import NIOPosix
import NIOSSL
import PanListCore
import PostgresNIO

/// Where a PostgreSQL store lives: from `config.json`'s fields or a DSN, either as a URL
/// (`postgres://user:password@host:5432/name?sslmode=require`) or as libpq's `key=value` words
/// (`host=db user=panlist password=… dbname=panlist sslmode=verify-full`). A `host` that starts with `/`
/// is the folder of a unix socket, as with libpq.
///
/// `ssl_mode`: `disable`; `prefer` (TLS when the server offers it), `require`, `verify-ca` and `verify-full`
/// (TLS or no connection; `verify-full` is the default for a host that is not loopback, so that nobody on
/// the way can turn TLS off or stand in for the server). Whenever TLS is used, the
/// server's certificate is verified against the system's roots (and `sslrootcert` when given), whatever
/// the mode: PanList never talks TLS without verification. A unix socket or a loopback host defaults to
/// `disable`.
public struct PostgresTarget: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var database: String
    public var sslMode: String
    /// A PEM file of the certificate authority that signed the server's certificate (`sslrootcert`).
    public var rootCertificate: String

    public static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    public init(host: String, port: Int = 5432, user: String, password: String = "", database: String,
                sslMode: String = "", rootCertificate: String = "") throws(FSError) {
        self.host = host.isEmpty ? "localhost" : host
        self.port = port == 0 ? 5432 : port
        self.user = user
        self.password = password
        self.database = database.isEmpty ? user : database
        self.sslMode = sslMode.lowercased()
        self.rootCertificate = rootCertificate
        try validate()
    }

    /// Parses a DSN in either form; the error names what is wrong, never the password.
    public init(dsn raw: String) throws(FSError) {
        let dsn = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if dsn.isEmpty { throw .badRequest("the database DSN is empty") }
        var fields: [String: String] = [:]
        if let colon = dsn.range(of: "://") {
            let scheme = dsn[..<colon.lowerBound].lowercased()
            guard scheme == "postgres" || scheme == "postgresql" else {
                throw .badRequest("a database DSN URL must start with postgres:// or postgresql://, not \(scheme)://")
            }
            guard let url = URLComponents(string: dsn) else {
                throw .badRequest("the database DSN is not a valid URL (characters such as @, : or / in the password must be written as %40, %3A, %2F)")
            }
            if let h = url.host, !h.isEmpty { fields["host"] = h.removingPercentEncoding ?? h }
            if let p = url.port { fields["port"] = String(p) }
            if let u = url.percentEncodedUser { fields["user"] = u.removingPercentEncoding ?? u }
            if let p = url.percentEncodedPassword { fields["password"] = p.removingPercentEncoding ?? p }
            let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
            if !path.isEmpty { fields["dbname"] = path }
            for item in url.queryItems ?? [] { fields[item.name.lowercased()] = item.value ?? "" }
        } else {
            fields = try Self.keywords(dsn)
        }
        let known: Set<String> = ["host", "hostaddr", "port", "user", "password", "dbname", "sslmode", "sslrootcert",
                                  "connect_timeout", "application_name"]
        if let odd = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw .badRequest("the database DSN has a field PanList does not know: \(odd) (known: \(known.sorted().joined(separator: ", ")))")
        }
        var port = 5432
        if let p = fields["port"] {
            guard let n = Int(p), (1...65535).contains(n) else { throw .badRequest("the database DSN's port is not a port number: \(p)") }
            port = n
        }
        guard let user = fields["user"], !user.isEmpty else { throw .badRequest("the database DSN names no user") }
        try self.init(host: fields["hostaddr"] ?? fields["host"] ?? "", port: port, user: user,
                      password: fields["password"] ?? "", database: fields["dbname"] ?? "",
                      sslMode: fields["sslmode"] ?? "", rootCertificate: fields["sslrootcert"] ?? "")
    }

    /// libpq's `key=value key='quoted value'` words.
    static func keywords(_ s: String) throws(FSError) -> [String: String] {
        var out: [String: String] = [:]
        var chars = Array(s)[...]
        func skipSpaces() { while let c = chars.first, c.isWhitespace { chars.removeFirst() } }
        skipSpaces()
        while !chars.isEmpty {
            var key = ""
            while let c = chars.first, c != "=", !c.isWhitespace { key.append(c); chars.removeFirst() }
            skipSpaces()
            guard chars.first == "=" else {
                // The word itself is not repeated: it may be a password written without its key.
                throw .badRequest("the database DSN is neither a postgres:// URL nor key=value words (word \(out.count + 1) has no '='; write host=db user=panlist …)")
            }
            chars.removeFirst()
            skipSpaces()
            var value = ""
            if chars.first == "'" {
                chars.removeFirst()
                var closed = false
                while let c = chars.popFirst() {
                    if c == "\\", let next = chars.popFirst() { value.append(next); continue }
                    if c == "'" { closed = true; break }
                    value.append(c)
                }
                if !closed { throw .badRequest("the database DSN has an unclosed quote in the value of \(key)") }
            } else {
                while let c = chars.first, !c.isWhitespace {
                    if c == "\\" { chars.removeFirst(); if let n = chars.popFirst() { value.append(n) }; continue }
                    value.append(c); chars.removeFirst()
                }
            }
            if key.isEmpty { throw .badRequest("the database DSN has a value without a key") }
            out[key.lowercased()] = value
            skipSpaces()
        }
        return out
    }

    func validate() throws(FSError) {
        if user.isEmpty { throw .badRequest("the database user is empty (database.user, PANLIST_DB_USER or the DSN's user)") }
        if !(1...65535).contains(port) { throw .badRequest("the database port \(port) is not a port number") }
        if !sslMode.isEmpty && !Self.sslModes.contains(sslMode) {
            throw .badRequest("ssl_mode '\(sslMode)' is not one of \(Self.sslModes.joined(separator: ", "))")
        }
        if !rootCertificate.isEmpty && !FileManager.default.isReadableFile(atPath: rootCertificate) {
            throw .badRequest("the database's sslrootcert \(rootCertificate) cannot be read")
        }
    }

    public var isUnixSocket: Bool { host.hasPrefix("/") }
    var isLoopback: Bool { isUnixSocket || host == "localhost" || host == "::1" || host.hasPrefix("127.") }

    /// The TLS mode used: the given one, or `disable` for a socket or loopback and `verify-full` elsewhere.
    public var effectiveSSLMode: String {
        if !sslMode.isEmpty { return sslMode == "allow" ? "prefer" : sslMode }
        return isLoopback ? "disable" : "verify-full"
    }

    /// What to show in logs and messages: everything but the password.
    public var described: String {
        let at = isUnixSocket ? "socket \(host)/.s.PGSQL.\(port)" : "\(host):\(port)"
        return "PostgreSQL database \(database) at \(at) as \(user) (ssl_mode \(effectiveSSLMode))"
    }

    /// The TLS settings for `effectiveSSLMode` (nil: no TLS): the server's certificate always verified.
    func tlsConfiguration() -> TLSConfiguration? {
        if effectiveSSLMode == "disable" || isUnixSocket { return nil }
        var t = TLSConfiguration.makeClientConfiguration()
        t.certificateVerification = effectiveSSLMode == "verify-ca" ? .noHostnameVerification : .fullVerification
        if !rootCertificate.isEmpty { t.trustRoots = .file(rootCertificate) }
        return t
    }

    /// The settings of one connection outside the pool (the probe, the change listener).
    func connectionConfiguration(applicationName: String? = nil) throws -> PostgresConnection.Configuration {
        var c: PostgresConnection.Configuration
        if isUnixSocket {
            c = .init(unixSocketPath: host + "/.s.PGSQL.\(port)", username: user, password: password.isEmpty ? nil : password,
                      database: database)
        } else {
            var tls: PostgresConnection.Configuration.TLS = .disable
            if let t = tlsConfiguration() {
                let context = try NIOSSLContext(configuration: t)
                tls = effectiveSSLMode == "prefer" ? .prefer(context) : .require(context)
            }
            c = .init(host: host, port: port, username: user, password: password.isEmpty ? nil : password, database: database, tls: tls)
        }
        c.options.connectTimeout = .seconds(5)
        if let applicationName { c.options.additionalStartupParameters = [("application_name", applicationName)] }
        return c
    }

    /// One connection, opened and closed, to learn at once whether (and why not) the database can be used:
    /// the pool would keep retrying quietly instead. Throws `.unavailable` with the reason in words.
    public func probe(logger: Logger) async throws {
        let c = try connectionConfiguration()
        do {
            let conn = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.any(), configuration: c,
                                                            id: 0, logger: logger).get()
            do {
                _ = try await conn.query("SELECT 1", logger: logger)
            } catch {
                try? await conn.close()
                throw error
            }
            try await conn.close()
        } catch {
            let e = PostgresErrors.translate(error)
            let words = (e as? FSError)?.message ?? ErrorText.describe(e)
            // What waiting will not mend (a refused login, a missing database, TLS that cannot be had) is a
            // `badRequest`; an unreachable or starting server is `unavailable`, worth retrying.
            if let p = error as? PSQLError, Self.isSettingsError(p) { throw FSError.badRequest("\(described): \(words)") }
            // A certificate that is not trusted will not become trusted by waiting.
            let text = words + " " + String(reflecting: error)
            if text.contains("certificate") || text.contains("CERTIFICATE") {
                throw FSError.badRequest("\(described): the server's TLS certificate is not trusted (\(words)); give its certificate authority with sslrootcert in the DSN, or choose another ssl_mode")
            }
            throw FSError.unavailable("\(described): \(words)")
        }
    }

    static func isSettingsError(_ e: PSQLError) -> Bool {
        switch e.code {
        case .sslUnsupported, .authMechanismRequiresPassword, .unsupportedAuthMechanism, .saslError: return true
        case .server:
            let state = e.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("28") || state == "3D000" || state == "42501"
        default: return false
        }
    }

    /// The connection pool's configuration.
    func clientConfiguration() throws -> PostgresClient.Configuration {
        var c: PostgresClient.Configuration
        if isUnixSocket {
            c = .init(unixSocketPath: host + "/.s.PGSQL.\(port)", username: user, password: password.isEmpty ? nil : password,
                      database: database)
        } else {
            var tls: PostgresClient.Configuration.TLS = .disable
            if let t = tlsConfiguration() { tls = effectiveSSLMode == "prefer" ? .prefer(t) : .require(t) }
            c = .init(host: host, port: port, username: user, password: password.isEmpty ? nil : password,
                      database: database, tls: tls)
        }
        c.options.connectTimeout = .seconds(5)
        c.options.maximumConnections = 20
        c.options.keepAliveBehavior = .init(frequency: .seconds(30))
        return c
    }
}
