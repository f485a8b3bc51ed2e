import Foundation

/// Where the state lives, as `state:` in the configuration names it: a SQLite file path (the embedded default) or a
/// PostgreSQL URL (several nodes on one database, SPEC §8):
///
///     postgres://USER@HOST[:PORT]/DATABASE[?password_file=PATH][&sslmode=disable|require|verify-full]
///                                          [&sslrootcert=PATH][&lease=SECONDS]
///
/// The password is never in the URL (a configuration file is read by more eyes than a secret should be): it is read
/// from `password_file`, else from the environment variable `TRIPLINE_PG_PASSWORD`, else from `PGPASSWORD`.
/// `sslmode` defaults to `disable` on a loopback host and to `verify-full` anywhere else.
public enum StateLocation: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    public static func isPostgres(_ s: String) -> Bool { s.hasPrefix("postgres://") || s.hasPrefix("postgresql://") }

    /// Reads `s`; a PostgreSQL URL is checked whole (why it is refused, never its password).
    public static func parse(_ s: String) throws(StateError) -> StateLocation {
        isPostgres(s) ? .postgres(try PostgresLocation(url: s)) : .sqlite(path: s)
    }
}

/// A PostgreSQL state database (see `StateLocation`).
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, require, verifyFull = "verify-full" }
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    public var passwordFile: String?
    public var tls: TLSMode
    public var rootCertificate: String?
    /// How long a node's claim on outbox items lasts without being renewed.
    public var lease: Double

    public init(url: String) throws(StateError) {
        func refuse(_ why: String) -> StateError { .schema("state URL: \(why)") }
        guard let c = URLComponents(string: url), let scheme = c.scheme, scheme == "postgres" || scheme == "postgresql"
        else { throw refuse("not a postgres:// URL") }
        if c.password != nil {
            throw refuse("a password in the URL is refused: give password_file= or TRIPLINE_PG_PASSWORD")
        }
        guard let host = c.host, !host.isEmpty else { throw refuse("no host") }
        guard let user = c.user, !user.isEmpty else { throw refuse("no user (postgres://USER@HOST/DATABASE)") }
        let db = String(c.path.drop { $0 == "/" })
        guard !db.isEmpty, !db.contains("/") else { throw refuse("no database (postgres://USER@HOST/DATABASE)") }
        self.host = host
        self.port = c.port ?? 5432
        guard (1...65535).contains(port) else { throw refuse("port \(port) out of range") }
        self.user = user
        self.database = db
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(host)
        tls = loopback ? .disable : .verifyFull
        lease = 30
        for item in c.queryItems ?? [] {
            guard let v = item.value, !v.isEmpty else { throw refuse("\(item.name) needs a value") }
            switch item.name {
            case "password_file": passwordFile = v
            case "sslmode":
                guard let m = TLSMode(rawValue: v) else {
                    throw refuse("sslmode must be disable, require or verify-full, not \(v)")
                }
                tls = m
            case "sslrootcert": rootCertificate = v
            case "lease":
                guard let d = Double(v), d >= 0.1, d <= 3600 else {
                    throw refuse("lease must be seconds between 0.1 and 3600")
                }
                lease = d
            default:
                throw refuse("unknown parameter \(item.name) (password_file, sslmode, sslrootcert, lease)")
            }
        }
    }

    /// The password: from the file, else the environment; nil when none is given (trust or peer authentication).
    public func password(environment: [String: String] = ProcessInfo.processInfo.environment) throws(StateError)
        -> String?
    {
        if let f = passwordFile {
            guard let d = FileManager.default.contents(atPath: f) else {
                throw .database("state URL: password_file \(f) cannot be read")
            }
            var s = String(decoding: d, as: UTF8.self)
            while s.last == "\n" || s.last == "\r" { s.removeLast() }
            return s
        }
        return environment["TRIPLINE_PG_PASSWORD"] ?? environment["PGPASSWORD"]
    }

    /// The URL without secrets (there are none in it), for logs and messages.
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }
}
