import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import TriplineState

/// One PostgreSQL connection used synchronously (the state protocols are synchronous, as SQLite is): statements are
/// sent on PostgresNIO's connection and waited for on the caller's thread, never an event loop's (the link has its
/// own). Statements sent together are pipelined — every one on the wire before the first answer is read — and
/// answered in order. A lost connection is opened again by the next statement; a statement not answered within
/// `deadline` closes the connection and fails. Used by one thread at a time (its owner's lock).
final class PostgresLink: @unchecked Sendable {
    let location: PostgresLocation
    private let password: String?
    private let deadline: Double
    private let lockTimeout: Double
    private let group: MultiThreadedEventLoopGroup
    private var connection: PostgresConnection?
    private let logger: Logger
    private var nextID = 0

    init(location: PostgresLocation, busyTimeout: Double, deadline: Double = 60) throws(StateError) {
        self.location = location
        self.password = try location.password()
        self.deadline = deadline
        self.lockTimeout = busyTimeout
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var l = Logger(label: "tripline.state.postgres")
        l.logLevel = .critical
        logger = l
    }

    deinit {
        close()
        group.shutdownGracefully { _ in }
    }

    /// A row's cells, read by position.
    struct Row {
        let cells: PostgresRandomAccessRow
        func isNull(_ i: Int) -> Bool { cells[i].bytes == nil }
        func int(_ i: Int) -> Int64 {
            if let v = try? cells[i].decode(Int64.self) { return v }
            return (try? cells[i].decode(Int32.self)).map(Int64.init) ?? 0
        }
        func real(_ i: Int) -> Double { (try? cells[i].decode(Double.self)) ?? 0 }
        func double(_ i: Int) -> Double? { isNull(i) ? nil : real(i) }
        /// The column's text, byte for byte.
        func text(_ i: Int) -> String? {
            guard let b = cells[i].bytes else { return nil }
            return String(buffer: b)
        }
        func blob(_ i: Int) -> [UInt8]? {
            guard let b = cells[i].bytes else { return nil }
            return Array(b.readableBytesView)
        }
    }

    /// One statement's rows and the number of rows it changed.
    struct Answer {
        var rows: [Row]
        var changed: Int
    }

    /// A statement and its values ($1, $2, …).
    struct Statement {
        var sql: String
        var binds: PostgresBindings
        init(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) {
            self.sql = sql
            self.binds = binds
        }
    }

    /// The connection's configuration (TLS as the location says; `lock_timeout` so that a lock held by another node
    /// fails the statement after a while, as a busy SQLite database does, and the caller retries).
    func configuration() throws(StateError) -> PostgresConnection.Configuration {
        var config = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: password,
            database: location.database, tls: .disable)
        switch location.tls {
        case .disable: break
        case .require, .verifyFull:
            var t = TLSConfiguration.makeClientConfiguration()
            if location.tls == .require { t.certificateVerification = .none }
            if let ca = location.rootCertificate { t.trustRoots = .file(ca) }
            do { config.tls = .require(try NIOSSLContext(configuration: t)) } catch {
                throw .database("\(location): TLS: \(error)")
            }
        }
        config.options.connectTimeout = .seconds(10)
        config.options.additionalStartupParameters = [
            ("lock_timeout", "\(Int(max(0.001, lockTimeout) * 1000))ms"), ("application_name", "tripline"),
        ]
        return config
    }

    var eventLoop: any EventLoop { group.next() }

    /// The connection a transaction began on: every statement of the transaction goes to it or fails — never to a
    /// connection opened again meanwhile, where it would run outside the transaction (half a commit stored).
    private var transactionOn: PostgresConnection?

    /// The last COMMIT was sent and its answer lost (the connection closed, or no answer in time): it may have landed.
    private(set) var commitLost = false

    func begin() throws(StateError) {
        commitLost = false
        transactionOn = nil
        try exec("BEGIN")
        transactionOn = connection
    }

    func commit() throws(StateError) {
        defer { transactionOn = nil }
        do { try exec("COMMIT") } catch {
            commitLost = !answered
            throw error
        }
    }

    func rollback() {
        if let t = transactionOn, !t.isClosed { try? exec("ROLLBACK") }
        transactionOn = nil
    }

    private func open() throws(StateError) -> PostgresConnection {
        if let t = transactionOn {
            // The session ended inside the transaction: the server rolled it back; so does the caller.
            guard let c = connection, c === t, !c.isClosed else {
                throw .database("\(location): the connection was lost inside a transaction (rolled back)")
            }
            return c
        }
        if let c = connection, !c.isClosed { return c }
        connection = nil
        let config = try configuration()
        nextID += 1
        let c = try wait(
            PostgresConnection.connect(on: group.next(), configuration: config, id: nextID, logger: logger))
        connection = c
        return c
    }

    /// Waits for `f` up to the deadline; past it the connection is closed (the statement fails with it).
    /// Whether the last statement that failed was answered by the server (a refusal) — not so when the connection
    /// was lost or the answer did not come in time: then a COMMIT may have landed or not.
    private(set) var answered = true

    private func wait<T: Sendable>(_ f: EventLoopFuture<T>) throws(StateError) -> T {
        answered = true
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        f.whenComplete { r in
            box.result = r
            done.signal()
        }
        if done.wait(timeout: .now() + deadline) == .timedOut {
            answered = false
            close()
            _ = done.wait(timeout: .now() + 5)
            throw .database("\(location): no answer within \(Int(deadline)) s")
        }
        switch box.result! {
        case .success(let v): return v
        case .failure(let e):
            answered = (e as? PSQLError)?.serverInfo != nil
            throw Self.error(e, location)
        }
    }

    private final class ResultBox<T>: @unchecked Sendable { var result: Result<T, any Error>? }

    /// A server's refusal of the change itself (a constraint, a value it cannot hold, an append-only trigger) is the
    /// change's fault (`record`); anything else — the connection, a lock not granted in time, a serialisation
    /// failure — is the database's, and the same change may succeed later.
    static func error(_ e: any Error, _ location: PostgresLocation) -> StateError {
        guard let p = e as? PSQLError else { return .database("\(location): \(e)") }
        guard let info = p.serverInfo else { return .database("\(location): \(p.code)") }
        let state = info[.sqlState] ?? ""
        let message = "\(info[.message] ?? "error") (\(state))"
        if state.hasPrefix("23") || state.hasPrefix("22") || state == "P0001" { return .record(message) }
        return .database(message)
    }

    /// Runs one statement.
    @discardableResult
    func run(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) throws(StateError) -> Answer {
        try run([Statement(sql, binds)])[0]
    }

    /// Sends `statements` together and waits for all of their answers; the first failure is thrown (inside a
    /// transaction the server refuses every statement after it).
    func run(_ statements: [Statement]) throws(StateError) -> [Answer] {
        let c = try open()
        let futures = statements.map { s in
            c.query(PostgresQuery(unsafeSQL: s.sql, binds: s.binds), logger: logger)
        }
        var out: [Answer] = []
        var first: StateError?
        for f in futures {
            do throws(StateError) {
                let r = try wait(f)
                out.append(
                    Answer(rows: r.rows.map { Row(cells: $0.makeRandomAccess()) }, changed: r.metadata.rows ?? 0))
            } catch {
                if first == nil { first = error }
                out.append(Answer(rows: [], changed: 0))
            }
        }
        if let first { throw first }
        return out
    }

    /// Statements without values, in one simple query (migrations: several statements in one string).
    func exec(_ sql: String) throws(StateError) {
        let c = try open()
        _ = try wait(c.simpleQuery(sql))
    }

    /// Closes the connection and waits for it to be closed (PostgresNIO requires a connection closed before it is
    /// let go).
    func close() {
        guard let c = connection else { return }
        connection = nil
        let f: EventLoopFuture<Void> = c.close()
        let done = DispatchSemaphore(value: 0)
        f.whenComplete { _ in done.signal() }
        _ = done.wait(timeout: .now() + 5)
        // Past that the channel is gone in all but name; the connection is kept from deinit's assertion.
        if !c.isClosed { Self.abandoned.withLockedValue { $0.append(c) } }
    }

    private static let abandoned = NIOLockedValueBox<[PostgresConnection]>([])
}

/// Values for a statement, appended in order ($1, $2, …).
extension PostgresBindings {
    init(_ values: [any PostgresDynamicTypeEncodable]) {
        self.init(capacity: values.count)
        for v in values { append(v) }
    }

    mutating func append(optional v: (any PostgresDynamicTypeEncodable)?) {
        if let v { append(v) } else { appendNull() }
    }
}
