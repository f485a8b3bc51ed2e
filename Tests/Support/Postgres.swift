import Foundation

/// A real PostgreSQL 15 server for the tests (issue 20), started by `scripts/pg.sh` in a scratch directory the first
/// time a test asks for a database, and stopped when the test process exits. Each test gets a database of its own.
/// A server that cannot start is a test failure, never a skip.
public final class PostgresServer: @unchecked Sendable {
    public let dir: URL
    /// `postgres://tripline@127.0.0.1:PORT` (no database).
    public let base: String
    public let passwordFile: String

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: PostgresServer?
    nonisolated(unsafe) private static var failure: String?

    /// The test process's server.
    public static func shared() throws -> PostgresServer {
        lock.lock()
        defer { lock.unlock() }
        if let started { return started }
        if let failure { throw TestFailure(failure) }
        do {
            let s = try PostgresServer()
            started = s
            atexit { PostgresServer.stopShared() }
            return s
        } catch {
            failure = "\(error)"
            throw error
        }
    }

    private static func stopShared() {
        guard let s = started else { return }
        _ = try? pgScript(["stop", s.dir.path])
        try? FileManager.default.removeItem(at: s.dir)
    }

    private init() throws {
        dir = scratchDirectory("pg")
        let url = try Self.pgScript(["start", dir.path, "--watch", String(getpid())]).trimmingCharacters(
            in: .whitespacesAndNewlines)
        guard url.hasPrefix("postgres://"), let slash = url.range(of: "/", options: .backwards) else {
            throw TestFailure("scripts/pg.sh start printed \(url)")
        }
        base = String(url[..<slash.lowerBound])
        passwordFile = dir.appendingPathComponent("password").path
    }

    /// A new empty database: its state URL (password from the server's password file).
    public func database(_ tag: String = "t") throws -> String {
        let name = "\(tag)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased())"
        try psql(["-d", "tripline", "-c", "CREATE DATABASE \(name)"])
        return "\(base)/\(name)?password_file=\(passwordFile)"
    }

    /// The database a URL from `database(_:)` names.
    public func name(of url: String) -> String {
        String(url.dropFirst(base.count + 1).prefix { $0 != "?" })
    }

    /// `psql ARGS…` as the server's role, on the server; its standard output.
    @discardableResult
    public func psql(_ args: [String]) throws -> String {
        try Self.pgScript(["psql", dir.path] + args)
    }

    /// Runs scripts/pg.sh with `args`: its standard output. Spawned and waited for directly (posix_spawn,
    /// waitpid), with its output in files: Foundation's `Process.waitUntilExit` was seen never to return for this
    /// script, whose server lives on after it.
    @discardableResult
    public static func pgScript(_ args: [String]) throws -> String {
        let tmp = scratchDirectory("pgsh")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let out = tmp.appendingPathComponent("out").path
        let err = tmp.appendingPathComponent("err").path
        let argv = ["/bin/bash", repositoryRoot.appendingPathComponent("scripts/pg.sh").path] + args
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var cargs = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, &cargs, environ)
        guard rc == 0 else { throw TestFailure("scripts/pg.sh could not be started: \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == 0 else {
            let e = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
            throw TestFailure("scripts/pg.sh \(args.prefix(2).joined(separator: " ")) exited \(status): \(e)")
        }
        return output
    }
}

/// A relay in front of the test server that loses the answer to the first `cuts` COMMITs it passes on
/// (scripts/pg_commit_cut.py): the commit lands and its client cannot tell.
public final class CommitCutRelay: Peer {
    /// `armed`: cuts only once `arm()` was called (the commits of migrations and start-up pass). `early`: the
    /// client's side is closed as soon as the COMMIT is passed on, not after the server's answer (the server may
    /// still be committing when the client asks whether the commit landed).
    public init(target url: String, cuts: Int = 1, armed: Bool = false, early: Bool = false) throws {
        let port = url.split(separator: "@").last?.split(separator: "/").first?.split(separator: ":").last ?? ""
        let trigger = scratchDirectory("relay-arm").appendingPathComponent("armed").path
        armFile = trigger
        try super.init(script: "pg_commit_cut.py", what: "PostgreSQL relay") { portfile, log in
            [portfile, log, String(port), "--cuts", String(cuts)] + (armed ? ["--armed", trigger] : [])
                + (early ? ["--early"] : [])
        }
    }

    private let armFile: String

    /// From now on COMMIT answers are lost (when made `armed`).
    public func arm() { _ = FileManager.default.createFile(atPath: armFile, contents: Data()) }

    /// `url` with its server's port replaced by the relay's.
    public func through(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let slash = url[at...].firstIndex(of: "/"),
            let colon = url[at..<slash].lastIndex(of: ":")
        else { return url }
        return String(url[..<colon]) + ":\(port)" + String(url[slash...])
    }

    /// How many COMMIT answers it has dropped.
    public var cutsMade: Int { received.count }
}
