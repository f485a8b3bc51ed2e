import CSQLite
import Foundation
import TriplineAudit
import TriplineJSON
import TriplineState

/// The embedded state store: one SQLite file in WAL mode, `synchronous=FULL`, every `Commit` one transaction.
/// The schema is versioned (`PRAGMA user_version`) and upgraded by numbered migrations; the event table refuses
/// updates and deletes (append-only, enforced by triggers).
public final class SQLiteStateStore: StateStore, AuditStore, @unchecked Sendable {
    /// The connection every write and transaction uses, under `lock`.
    private let main: Connection
    private var db: OpaquePointer { main.db }
    private let lock = NSLock()
    /// Connections for reads outside transactions (API pages, tokens), each under its own lock: in WAL mode they
    /// read the last commit while the main connection writes and waits for its fsync.
    private let readers: Readers
    public let path: String
    /// The audit tree's right edge, checked against the table at the start of each write transaction (another
    /// process — the command line — may have appended).
    private var range: CompactRange?

    /// Migrations in order; entry i brings the schema from version i to i + 1.
    static let migrations: [String] = [
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, priority TEXT NOT NULL,
            priority_rank INTEGER NOT NULL, state TEXT NOT NULL, labels TEXT NOT NULL, first_seen REAL NOT NULL,
            last_seen REAL NOT NULL, count INTEGER NOT NULL, sources TEXT NOT NULL, payload TEXT NOT NULL,
            acked_by TEXT, updated_at REAL NOT NULL);
        CREATE INDEX alerts_state ON alerts(state, updated_at);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL, alert_key TEXT,
            receiver TEXT, principal TEXT, reason TEXT, detail TEXT NOT NULL);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, priority_rank INTEGER NOT NULL,
            created_at REAL NOT NULL, next_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL, status TEXT NOT NULL,
            payload TEXT NOT NULL, last_error TEXT);
        CREATE INDEX outbox_due ON outbox(status, priority_rank DESC, created_at, id);
        CREATE TABLE nflog (
            receiver TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, notified_at REAL NOT NULL,
            PRIMARY KEY (receiver, key));
        CREATE TABLE silences (
            id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
            created_by TEXT NOT NULL, comment TEXT NOT NULL, expired_at REAL);
        CREATE TABLE offsets (source TEXT PRIMARY KEY, offset INTEGER NOT NULL);
        """,
        // v2: the event table becomes the tamper-evident audit log (records, erasable payloads, tree nodes,
        // checkpoints); existing events are carried over by `backfillAudit`.
        """
        CREATE TABLE audit_records (idx INTEGER PRIMARY KEY, record TEXT NOT NULL);
        CREATE TABLE audit_payloads (idx INTEGER PRIMARY KEY, salt BLOB NOT NULL, payload TEXT NOT NULL);
        CREATE TABLE audit_nodes (
            level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
        CREATE TABLE audit_checkpoints (size INTEGER PRIMARY KEY, at REAL NOT NULL, note TEXT NOT NULL);
        CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_payloads_no_update BEFORE UPDATE ON audit_payloads BEGIN SELECT RAISE(ABORT, 'payloads are only erased, never changed'); END;
        CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """,
        // v3: an outbox item per integration of a receiver (its own lane, progress and retries); indexes for the
        // timers' queries (operators' changes by update time, resolve timeouts by last sighting).
        """
        ALTER TABLE outbox ADD COLUMN integration TEXT NOT NULL DEFAULT '';
        CREATE INDEX outbox_lane ON outbox(status, receiver, integration, next_attempt_at);
        CREATE INDEX alerts_updated ON alerts(updated_at);
        CREATE INDEX alerts_last_seen ON alerts(state, last_seen);
        """,
        // v4: acknowledgements per partner (an alert stays firing; each partner's ack stops its own repeats), and
        // silences scoped to their creator's partner (NULL: every receiver, an operator's silence).
        """
        ALTER TABLE alerts ADD COLUMN acks TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE silences ADD COLUMN partner TEXT;
        CREATE INDEX outbox_fifo ON outbox(status, receiver, integration, id);
        CREATE TABLE rate_state (receiver TEXT PRIMARY KEY, sent TEXT NOT NULL, digest TEXT NOT NULL);
        CREATE TABLE list_handlings (key TEXT PRIMARY KEY, handling TEXT NOT NULL);
        """,
        // v5: API tokens (SPEC §10): only the SHA-256 of each token, with its principal, expiry and revocation.
        """
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY, principal TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,
            expires_at REAL, revoked_at REAL, created_by TEXT NOT NULL);
        """,
        // v6: lists submitted through the API (SPEC §10), every version as submitted (version: the SHA-256 of
        // its bytes); `seq` orders the versions as they became current, the highest of a list is its current one.
        """
        CREATE TABLE submitted_lists (
            owner TEXT NOT NULL, list TEXT NOT NULL, version TEXT NOT NULL, yaml BLOB NOT NULL,
            submitted_at REAL NOT NULL, submitted_by TEXT NOT NULL, withdrawn_at REAL, seq INTEGER NOT NULL,
            PRIMARY KEY (owner, list, version));
        CREATE INDEX submitted_lists_seq ON submitted_lists(owner, list, seq);
        """,
        // v7: a version per alert row, moved on by every change: an alert is written only over the version it was
        // read at (optimistic concurrency: an operator's ack and the pipeline's fold never overwrite each other).
        """
        ALTER TABLE alerts ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        """,
        // v8: escalations (SPEC §11): per alert and route, when step 0 was notified and how many steps are done.
        """
        CREATE TABLE escalations (
            key TEXT NOT NULL, route INTEGER NOT NULL, started_at REAL NOT NULL, done INTEGER NOT NULL,
            PRIMARY KEY (key, route)) WITHOUT ROWID;
        """,
        // v9: acknowledge links used (SPEC §11: each once), by nonce.
        """
        CREATE TABLE ack_links_used (
            nonce TEXT PRIMARY KEY, alert_id INTEGER NOT NULL, receiver TEXT NOT NULL, used_at REAL NOT NULL)
            WITHOUT ROWID;
        """,
    ]

    public static var schemaVersion: Int { migrations.count }

    /// `busyTimeout`: how long a statement waits for another connection's lock before failing as busy.
    public init(path: String, busyTimeout: Double = 10) throws(StateError) {
        self.path = path
        // The state directory 0700 and the database 0600 from the start (SQLite gives -wal and -shm the database's
        // mode): only the operating-system user running Tripline reads the partners' payloads.
        do {
            try PrivateFiles.directory((path as NSString).deletingLastPathComponent)
            try PrivateFiles.touch(path)
        } catch { throw .database("\(error)") }
        main = try Connection(path: path, busyTimeout: busyTimeout)
        readers = Readers(path: path, busyTimeout: busyTimeout)
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=FULL")
        try exec("PRAGMA foreign_keys=ON")
    }

    /// Salts for audit payloads (under `lock`).
    private let salts = SaltSource()

    // MARK: SQL plumbing

    enum Value {
        case int(Int64)
        case real(Double)
        case text(String)
        case blob([UInt8])
        case null
    }

    final class Row {
        let stmt: OpaquePointer
        init(_ s: OpaquePointer) { stmt = s }
        func int(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
        func real(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }
        /// The column's text, read with its length (a NUL inside the text is kept, never an end).
        func text(_ i: Int32) -> String? {
            guard let p = sqlite3_column_text(stmt, i) else { return nil }
            let n = Int(sqlite3_column_bytes(stmt, i))
            return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        }
        func blob(_ i: Int32) -> [UInt8]? {
            guard let p = sqlite3_column_blob(stmt, i) else {
                return sqlite3_column_type(stmt, i) == SQLITE_NULL ? nil : []
            }
            return Array(UnsafeRawBufferPointer(start: p, count: Int(sqlite3_column_bytes(stmt, i))))
        }
        func json(_ i: Int32) -> JSONObject { (try? JSONParser.parse(text(i) ?? "{}"))?.objectValue ?? JSONObject() }
    }

    /// The main connection's last error (see `Connection.error`).
    private func error(_ what: String) -> StateError { main.error(what) }

    private func exec(_ sql: String) throws(StateError) { try main.exec(sql) }

    @discardableResult
    private func run(_ sql: String, _ values: [Value] = [], _ each: ((Row) -> Void)? = nil) throws(StateError) -> Int {
        try main.run(sql, values, each)
    }

    private func locked<T>(_ body: () throws(StateError) -> T) throws(StateError) -> T {
        lock.lock()
        defer {
            lock.unlock()
            // Commits that found the connection busy with this read are told at once that it is free.
            queued.withLock { if !queue.isEmpty { queued.broadcast() } }
        }
        return try body()
    }

    private func transaction<T>(_ body: () throws(StateError) -> T) throws(StateError) -> T {
        try locked { () throws(StateError) -> T in try inTransaction(body) }
    }

    /// `body` in one transaction, under `lock` already.
    private func inTransaction<T>(_ body: () throws(StateError) -> T) throws(StateError) -> T {
        try exec("BEGIN IMMEDIATE")
        let r: T
        do throws(StateError) {
            if migrated { try syncRange() }  // a failure here must not leave the transaction open either
            r = try body()
        } catch let e {
            try? exec("ROLLBACK")
            range = nil
            throw e
        }
        do throws(StateError) { try exec("COMMIT") } catch let e {
            try? exec("ROLLBACK")
            range = nil
            throw e
        }
        return r
    }

    static func json(_ o: JSONObject) -> Value { .text(JSONWriter.string(.object(o))) }
    static func opt(_ s: String?) -> Value { s.map { .text($0) } ?? .null }

    // MARK: StateStore

    /// Set once the schema is current (the audit tables exist).
    private var migrated = false

    public func migrate() throws(StateError) {
        defer { migrated = true }
        try transaction { () throws(StateError) in
            var version = 0
            try run("PRAGMA user_version") { version = Int($0.int(0)) }
            if version > Self.migrations.count {
                throw StateError.schema(
                    "\(path) has schema version \(version), newer than this tripline (\(Self.migrations.count))")
            }
            for v in version..<Self.migrations.count {
                try exec(Self.migrations[v])
                if v == 1 { try backfillAudit() }
                try exec("PRAGMA user_version = \(v + 1)")
            }
        }
    }

    /// A commit waiting to be written, and what became of it (`done` set under `queued`).
    private final class Pending {
        let commit: Commit
        var done = false
        var failure: StateError?
        init(_ c: Commit) { commit = c }
    }

    /// Commits waiting for a writer, and their writers' news (a batch written).
    private let queued = NSCondition()
    private var queue: [Pending] = []

    /// Each commit is one transaction of its own as far as anyone can see (all of it or nothing, refused alone), but
    /// commits made at the same time from several threads are written together (group commit): the thread that gets
    /// the connection writes every commit queued by then, each inside a savepoint of one transaction, paying one
    /// fsync for all; the others wait for the news of theirs (or for the connection, if theirs was not taken).
    public func commit(_ c: Commit) throws(StateError) {
        if c.isEmpty { return }
        // Notifications as JSON text here, on the caller's thread: a group's notification can be a megabyte, and
        // the writer holds the connection (every other commit waits) while it writes.
        var c = c
        for i in c.outbox.indices where c.outbox[i].payloadText == nil {
            c.outbox[i].payloadText = JSONWriter.string(.object(c.outbox[i].payload))
        }
        let mine = Pending(c)
        queued.withLock { queue.append(mine) }
        var tries = 0
        while true {
            // The connection is free, or has been busy long enough (a read or a claim holding it): wait for it.
            let free = lock.try()
            if free || tries >= Self.patience {
                if !free { lock.lock() }
                let batch = queued.withLock {
                    let b = queue
                    queue.removeAll(keepingCapacity: true)
                    return b
                }
                if !batch.isEmpty {
                    write(batch)
                    remember(batch)
                }
                // The news before the connection is let go: whoever gets it next finds its commit answered.
                queued.withLock {
                    for p in batch { p.done = true }
                    queued.broadcast()
                }
                lock.unlock()
            }
            tries += 1
            // A writer may have taken this commit into its batch: its news wakes this thread.
            let (done, failure) = queued.withLock { () -> (Bool, StateError?) in
                if !mine.done { _ = queued.wait(until: Date(timeIntervalSinceNow: 0.002)) }
                return (mine.done, mine.failure)
            }
            if done {
                if let failure { throw failure }
                return
            }
        }
    }

    /// The alerts of the commits just written, as they now are in the store (their row versions moved on): the
    /// reads that follow (the dispatcher's flush reads each alert it has just written) find them parsed.
    private func remember(_ batch: [Pending]) {
        parsedLock.withLock {
            for p in batch where p.failure == nil {
                for var a in p.commit.alerts {
                    a.version = a.version.map { $0 + 1 } ?? 0
                    if parsed.count >= Self.parsedLimit { parsed.removeAll(keepingCapacity: true) }
                    parsed[a.id] = a
                }
            }
        }
    }

    /// How many times (2 ms apart) a commit looks for news of its batch or a free connection before it waits for
    /// the connection outright (a thread that only polls could be passed over for ever).
    static let patience = 50

    /// Writes `batch` in one transaction (under `lock`), each commit in a savepoint: one that fails is rolled back
    /// alone and fails alone (one that makes SQLite roll back the whole transaction fails, and the others are written
    /// again without it); when the transaction cannot begin or commit, every commit fails.
    private func write(_ batch: [Pending]) {
        if batch.count == 1 {
            do throws(StateError) { try inTransaction { () throws(StateError) in try apply(batch[0].commit) } } catch {
                batch[0].failure = error
            }
            return
        }
        var culprit: Pending?
        do throws(StateError) {
            try inTransaction { () throws(StateError) in
                for p in batch {
                    let saved = range
                    try exec("SAVEPOINT one_commit")
                    do throws(StateError) {
                        try apply(p.commit)
                        try exec("RELEASE one_commit")
                    } catch {
                        p.failure = error
                        if sqlite3_get_autocommit(db) != 0 {  // SQLite rolled the whole transaction back
                            culprit = p
                            throw error
                        }
                        try exec("ROLLBACK TO one_commit")
                        try exec("RELEASE one_commit")
                        range = saved
                    }
                }
            }
        } catch {
            if let culprit {
                // The others went with it through no fault of their own: they are written again without it.
                write(batch.filter { $0 !== culprit && $0.failure == nil })
                return
            }
            for p in batch where p.failure == nil { p.failure = error }
        }
    }

    /// The statements of one commit (inside a transaction).
    private func apply(_ c: Commit) throws(StateError) {
        // The audit records first: a commit refused after them (an alert's conflict) also rolls back the audit
        // tree's right edge, which the group-commit test checks by verifying the log.
        if let g = c.offsetGuard {
            var stored: Int64?
            try run("SELECT offset FROM offsets WHERE source = ?", [.text(g.source)]) { stored = $0.int(0) }
            try c.checkOffsetGuard(stored: stored)
        }
        for e in c.events { try insert(e) }
        for a in c.alerts { try write(a) }
        for o in c.outbox {
            try run(
                """
                INSERT INTO outbox (receiver, integration, priority_rank, created_at, next_attempt_at, attempts,
                    status, payload, last_error) VALUES (?,?,?,?,?,?,?,?,?)
                """,
                [
                    .text(o.receiver), .text(o.integration), .int(Int64(o.priorityRank)), .real(o.createdAt),
                    .real(o.nextAttemptAt),
                    .int(Int64(o.attempts)), .text(o.status.rawValue),
                    .text(o.payloadText ?? StoreCoding.json(o.payload)),
                    Self.opt(o.lastError),
                ])
        }
        for n in c.notifyLog {
            try run(
                "INSERT OR REPLACE INTO nflog (receiver, key, state, notified_at) VALUES (?,?,?,?)",
                [.text(n.receiver), .text(n.key), .text(n.state.rawValue), .real(n.notifiedAt)])
        }
        for s in c.silences {
            try run(
                """
                INSERT OR REPLACE INTO silences (id, matchers, starts_at, ends_at, created_by, comment, expired_at,
                    partner) VALUES (?,?,?,?,?,?,?,?)
                """,
                [
                    .text(s.id), .text(JSONWriter.string(.array(s.matchers.map { .string($0) }))),
                    .real(s.startsAt), .real(s.endsAt), .text(s.createdBy), .text(s.comment),
                    s.expiredAt.map { .real($0) } ?? .null, Self.opt(s.partner),
                ])
        }
        for (source, offset) in c.offsets {
            try run("INSERT OR REPLACE INTO offsets (source, offset) VALUES (?,?)", [.text(source), .int(offset)])
        }
        if let h = c.listHandlings {
            try run("DELETE FROM list_handlings")
            for (k, v) in h.sorted(by: { $0.key < $1.key }) {
                try run("INSERT INTO list_handlings (key, handling) VALUES (?,?)", [.text(k), Self.json(v)])
            }
            try run("INSERT OR REPLACE INTO offsets (source, offset) VALUES ('list-handlings-known', 1)")
        }
        for t in c.tokens {
            try run(
                """
                INSERT OR REPLACE INTO tokens (id, principal, hash, created_at, expires_at, revoked_at, created_by)
                VALUES (?,?,?,?,?,?,?)
                """,
                [
                    .text(t.id), .text(t.principal), .text(t.hash), .real(t.createdAt),
                    t.expiresAt.map { .real($0) } ?? .null, t.revokedAt.map { .real($0) } ?? .null,
                    .text(t.createdBy),
                ])
        }
        for change in c.listSubmissions {
            switch change {
            case .submit(let l):
                try run(
                    """
                    INSERT INTO submitted_lists (owner, list, version, yaml, submitted_at, submitted_by,
                        withdrawn_at, seq)
                    VALUES (?,?,?,?,?,?,NULL,(SELECT COALESCE(MAX(seq), 0) + 1 FROM submitted_lists))
                    ON CONFLICT(owner, list, version) DO UPDATE SET submitted_at=excluded.submitted_at,
                        submitted_by=excluded.submitted_by, withdrawn_at=NULL, seq=excluded.seq
                    """,
                    [
                        .text(l.owner), .text(l.list), .text(l.version), .blob(l.yaml), .real(l.submittedAt),
                        .text(l.submittedBy),
                    ])
            case .withdraw(let owner, let list, let at):
                try run(
                    """
                    UPDATE submitted_lists SET withdrawn_at = ? WHERE owner = ? AND list = ?
                        AND seq = (SELECT MAX(seq) FROM submitted_lists WHERE owner = ? AND list = ?)
                    """, [.real(at), .text(owner), .text(list), .text(owner), .text(list)])
            }
        }
        for r in c.rateStates {
            try run(
                "INSERT OR REPLACE INTO rate_state (receiver, sent, digest) VALUES (?,?,?)",
                [
                    .text(r.receiver), .text(JSONWriter.string(.array(r.sent.map { .number(String($0)) }))),
                    .text(JSONWriter.string(.array(r.digest.map { .number(String($0)) }))),
                ])
        }
        for e in c.escalations {
            try run(
                "INSERT OR REPLACE INTO escalations (key, route, started_at, done) VALUES (?,?,?,?)",
                [.text(e.key), .int(Int64(e.route)), .real(e.startedAt), .int(Int64(e.done))])
        }
        for key in c.escalationsEnded { try run("DELETE FROM escalations WHERE key = ?", [.text(key)]) }
        for u in c.usedAckLinks {
            // A nonce already there is a constraint failure: the whole commit refused (the link was used).
            try run(
                "INSERT INTO ack_links_used (nonce, alert_id, receiver, used_at) VALUES (?,?,?,?)",
                [.text(u.nonce), .int(u.alertID), .text(u.receiver), .real(u.usedAt)])
        }
    }

    /// One alert, only over the row it was read from (optimistic concurrency, `AlertRecord.version`): a new alert
    /// (no version) is inserted where its id is free, a stored one replaced (all but its id, key and kind, which
    /// stay) where its row is still at the version read, its version moving on by one. Anything else is a conflict, and the transaction is rolled back.
    private func write(_ a: AlertRecord) throws(StateError) {
        let values: [Value] = [
            .text(a.priority), .int(Int64(a.priorityRank)), .text(a.state.rawValue), Self.json(a.labels),
            .real(a.lastSeen), .int(Int64(a.count)), .text(JSONWriter.string(.array(a.sources.map { .string($0) }))),
            Self.json(a.payload), Self.opt(a.ackedBy), .real(a.updatedAt),
            a.acks.isEmpty ? .text("{}") : Self.json(StoreCoding.acksJSON(a.acks)),
        ]
        let changed: Int
        if let version = a.version {
            changed = try run(
                """
                UPDATE alerts SET priority=?, priority_rank=?, state=?, labels=?, last_seen=?, count=?, sources=?,
                    payload=?, acked_by=?, updated_at=?, acks=?, first_seen=?, version=version + 1
                WHERE id = ? AND version = ?
                """, values + [.real(a.firstSeen), .int(a.id), .int(version)])
        } else {
            // A key taken by another alert is another writer's alert for the same thing: a conflict (the writer reads
            // it and folds into it), as on PostgreSQL where nodes create alerts at once.
            changed = try run(
                """
                INSERT INTO alerts (priority, priority_rank, state, labels, last_seen, count, sources, payload,
                    acked_by, updated_at, acks, id, key, kind, first_seen, version)
                VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0) ON CONFLICT DO NOTHING
                """, values + [.int(a.id), .text(a.key), .text(a.kind), .real(a.firstSeen)])
        }
        if changed == 1 { return }
        var stored: Int64?
        try run("SELECT version FROM alerts WHERE id = ?", [.int(a.id)]) { stored = $0.int(0) }
        guard let read = a.version else {
            if stored != nil { throw .conflict("alert \(a.id) (\(a.key)) is stored already") }
            throw .conflict("alert \(a.key) was created by another writer")
        }
        guard let stored else { throw .conflict("alert \(a.id) (\(a.key)) is not stored") }
        throw .conflict("alert \(a.id) (\(a.key)) changed since it was read (version \(read), now \(stored))")
    }

    /// Appends one event to the audit log: record, erasable payload, and the tree nodes it completes.
    private func insert(_ e: EventDraft) throws(StateError) {
        if range == nil { try syncRange() }
        let salt = salts.next()
        let index = range!.size
        let entry = StoreCoding.entry(e, index: index, salt: salt)
        try run("INSERT INTO audit_records (idx, record) VALUES (?,?)", [.int(Int64(index)), .text(entry.record)])
        try run(
            "INSERT INTO audit_payloads (idx, salt, payload) VALUES (?,?,?)",
            [.int(Int64(index)), .blob(salt), .text(entry.payload!)])
        try range!.append(entry.leaf) { (level, idx, hash) throws(StateError) in
            try run(
                "INSERT INTO audit_nodes (level, idx, hash) VALUES (?,?,?)",
                [.int(Int64(level)), .int(Int64(idx)), .blob(hash)])
        }
    }

    private func auditCount() throws(StateError) -> Int {
        var n = 0
        try run("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_records") { n = Int($0.int(0)) }
        return n
    }

    private func node(_ level: Int, _ index: Int) throws(StateError) -> Hash {
        var h: Hash?
        try run("SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", [.int(Int64(level)), .int(Int64(index))]) {
            h = $0.blob(0)
        }
        guard let h, h.count == 32 else { throw .database("audit tree node (\(level), \(index)) missing") }
        return h
    }

    private func syncRange() throws(StateError) {
        let n = try auditCount()
        if range?.size == n { return }
        range = try CompactRange(size: n) { (l, i) throws(StateError) -> Hash in try node(l, i) }
    }

    private func backfillAudit() throws(StateError) {
        var old: [EventDraft] = []
        try run("SELECT at, kind, alert_key, receiver, principal, reason, detail FROM events ORDER BY seq") { r in
            old.append(
                EventDraft(
                    at: r.real(0), kind: r.text(1) ?? "", alertKey: r.text(2), receiver: r.text(3),
                    principal: r.text(4),
                    reason: r.text(5), detail: r.json(6)))
        }
        range = CompactRange()
        for e in old { try insert(e) }
        try exec("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; DROP TABLE events;")
    }

    private static let alertColumns =
        "id, key, kind, priority, priority_rank, state, labels, first_seen, last_seen, count, sources, payload, acked_by, updated_at, acks, version"

    /// Alerts as last read, by id: a row whose version and update time are those of the cached record is not
    /// parsed again (its labels, payload and acks are JSON). Every write of an alert row moves its version on.
    private let parsedLock = NSLock()
    private var parsed: [Int64: AlertRecord] = [:]
    static let parsedLimit = 8192

    private func readAlert(_ r: Row) -> AlertRecord {
        let id = r.int(0)
        let version = r.int(15)
        let updatedAt = r.real(13)
        if let hit = parsedLock.withLock({ parsed[id] }), hit.version == version, hit.updatedAt == updatedAt {
            return hit
        }
        let a = parseAlert(r)
        parsedLock.withLock {
            if parsed.count >= Self.parsedLimit { parsed.removeAll(keepingCapacity: true) }
            parsed[id] = a
        }
        return a
    }

    private func parseAlert(_ r: Row) -> AlertRecord {
        let sources = (try? JSONParser.parse(r.text(10) ?? "[]"))?.arrayValue?.compactMap(\.stringValue) ?? []
        return AlertRecord(
            id: r.int(0), key: r.text(1) ?? "", kind: r.text(2) ?? "", priority: r.text(3) ?? "",
            priorityRank: Int(r.int(4)), state: AlertState(rawValue: r.text(5) ?? "") ?? .firing, labels: r.json(6),
            firstSeen: r.real(7), lastSeen: r.real(8), count: Int(r.int(9)), sources: sources, payload: r.json(11),
            ackedBy: r.text(12), acks: StoreCoding.acks(r.json(14)), updatedAt: r.real(13), version: r.int(15))
    }

    public func alert(id: Int64) throws(StateError) -> AlertRecord? {
        try readers.read { (c: Connection) throws(StateError) -> AlertRecord? in
            var out: AlertRecord?
            try c.run("SELECT \(Self.alertColumns) FROM alerts WHERE id = ?", [.int(id)]) { out = self.readAlert($0) }
            return out
        }
    }

    public func alert(key: String) throws(StateError) -> AlertRecord? {
        try readers.read { (c: Connection) throws(StateError) -> AlertRecord? in
            var out: AlertRecord?
            try c.run("SELECT \(Self.alertColumns) FROM alerts WHERE key = ?", [.text(key)]) {
                out = self.readAlert($0)
            }
            return out
        }
    }

    public func alerts(states: Set<AlertState>?, limit: Int) throws(StateError) -> [AlertRecord] {
        try readers.read { (c: Connection) throws(StateError) -> [AlertRecord] in
            var out: [AlertRecord] = []
            var sql = "SELECT \(Self.alertColumns) FROM alerts"
            if let states {
                sql += " WHERE state IN (" + states.map { "'\($0.rawValue)'" }.sorted().joined(separator: ",") + ")"
            }
            sql += " ORDER BY updated_at DESC, id DESC LIMIT ?"
            try c.run(sql, [.int(Int64(limit))]) { out.append(self.readAlert($0)) }
            return out
        }
    }

    /// The stored alerts of `keys` in one hold of a reader (outside the writer's lock), 500 keys a statement.
    public func alerts(keys: [String]) throws(StateError) -> [String: AlertRecord] {
        var wanted: [String] = []
        var seen = Set<String>()
        for k in keys where seen.insert(k).inserted { wanted.append(k) }
        if wanted.isEmpty { return [:] }
        return try readers.read { (c: Connection) throws(StateError) -> [String: AlertRecord] in
            var out: [String: AlertRecord] = [:]
            var start = 0
            while start < wanted.count {
                let chunk = wanted[start..<min(wanted.count, start + 500)]
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                try c.run("SELECT \(Self.alertColumns) FROM alerts WHERE key IN (\(marks))", chunk.map { .text($0) }) {
                    let a = self.readAlert($0)
                    out[a.key] = a
                }
                start += chunk.count
            }
            return out
        }
    }

    public func alerts(idBelow: Int64?, limit: Int) throws(StateError) -> [AlertRecord] {
        try readers.read { (c: Connection) throws(StateError) -> [AlertRecord] in
            var out: [AlertRecord] = []
            try c.run(
                "SELECT \(Self.alertColumns) FROM alerts WHERE id < ? ORDER BY id DESC LIMIT ?",
                [.int(idBelow ?? Int64.max), .int(Int64(limit))]
            ) { out.append(self.readAlert($0)) }
            return out
        }
    }

    public func alerts(updatedSince since: Double, limit: Int) throws(StateError) -> [AlertRecord] {
        try readers.read { (c: Connection) throws(StateError) -> [AlertRecord] in
            var out: [AlertRecord] = []
            try c.run(
                "SELECT \(Self.alertColumns) FROM alerts WHERE updated_at >= ? ORDER BY updated_at, id LIMIT ?",
                [.real(since), .int(Int64(limit))]
            ) { out.append(self.readAlert($0)) }
            return out
        }
    }

    public func alerts(states: Set<AlertState>, lastSeenBefore before: Double, limit: Int) throws(StateError)
        -> [AlertRecord]
    {
        try readers.read { (c: Connection) throws(StateError) -> [AlertRecord] in
            var out: [AlertRecord] = []
            let list = states.map { "'\($0.rawValue)'" }.sorted().joined(separator: ",")
            try c.run(
                """
                SELECT \(Self.alertColumns) FROM alerts WHERE state IN (\(list)) AND last_seen < ?
                ORDER BY last_seen, id LIMIT ?
                """, [.real(before), .int(Int64(limit))]
            ) { out.append(self.readAlert($0)) }
            return out
        }
    }

    public func maxAlertID() throws(StateError) -> Int64 {
        try locked { () throws(StateError) -> Int64 in
            var n: Int64 = 0
            try run("SELECT COALESCE(MAX(id), 0) FROM alerts") { n = $0.int(0) }
            return n
        }
    }

    public func notifyLog() throws(StateError) -> [NotifyLogEntry] {
        try readers.read { (c: Connection) throws(StateError) -> [NotifyLogEntry] in
            var out: [NotifyLogEntry] = []
            try c.run("SELECT receiver, key, state, notified_at FROM nflog ORDER BY receiver, key") { r in
                out.append(
                    NotifyLogEntry(
                        receiver: r.text(0) ?? "", key: r.text(1) ?? "",
                        state: AlertState(rawValue: r.text(2) ?? "") ?? .firing, notifiedAt: r.real(3)))
            }
            return out
        }
    }

    private func readOutbox(_ r: Row) -> OutboxItem {
        let text = r.text(7) ?? "{}"
        var item = OutboxItem(
            id: r.int(0), receiver: r.text(1) ?? "", integration: r.text(9) ?? "", priorityRank: Int(r.int(2)),
            createdAt: r.real(3), nextAttemptAt: r.real(4), attempts: Int(r.int(5)),
            status: OutboxStatus(rawValue: r.text(6) ?? "") ?? .pending,
            payload: (try? JSONParser.parse(text))?.objectValue ?? JSONObject(), lastError: r.text(8))
        item.payloadText = text
        return item
    }

    private static let outboxColumns =
        "id, receiver, priority_rank, created_at, next_attempt_at, attempts, status, payload, last_error, integration"

    public func dueOutbox(now: Double, limit: Int) throws(StateError) -> [OutboxItem] {
        try readers.read { (c: Connection) throws(StateError) -> [OutboxItem] in
            var out: [OutboxItem] = []
            try c.run(
                """
                SELECT \(Self.outboxColumns) FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?
                ORDER BY priority_rank DESC, created_at, id LIMIT ?
                """, [.real(now), .int(Int64(limit))]
            ) { out.append(self.readOutbox($0)) }
            return out
        }
    }

    public func dueLanes(now: Double) throws(StateError) -> [OutboxLane] {
        try readers.read { (c: Connection) throws(StateError) -> [OutboxLane] in
            var out: [(OutboxLane, Int64)] = []
            // Each lane's oldest pending item (SQLite takes the bare columns from the row with the MIN).
            try c.run(
                """
                SELECT receiver, integration, next_attempt_at, MIN(id) FROM outbox WHERE status = 'pending'
                GROUP BY receiver, integration
                """
            ) { r in
                if r.real(2) <= now {
                    out.append((OutboxLane(receiver: r.text(0) ?? "", integration: r.text(1) ?? ""), r.int(3)))
                }
            }
            return out.sorted { $0.1 < $1.1 }.map(\.0)
        }
    }

    public func dueOutbox(lane: OutboxLane, now: Double, limit: Int) throws(StateError) -> [OutboxItem] {
        try readers.read { (c: Connection) throws(StateError) -> [OutboxItem] in
            var out: [OutboxItem] = []
            try c.run(
                """
                SELECT \(Self.outboxColumns) FROM outbox WHERE status = 'pending' AND receiver = ? AND integration = ?
                ORDER BY id LIMIT ?
                """, [.text(lane.receiver), .text(lane.integration), .int(Int64(limit))]
            ) { out.append(self.readOutbox($0)) }
            // In order, up to the first that is not due: nothing overtakes an item waiting for its retry.
            return Array(out.prefix { $0.nextAttemptAt <= now })
        }
    }

    public func outbox(status: OutboxStatus?, limit: Int) throws(StateError) -> [OutboxItem] {
        try readers.read { (c: Connection) throws(StateError) -> [OutboxItem] in
            var out: [OutboxItem] = []
            if let status {
                try c.run(
                    "SELECT \(Self.outboxColumns) FROM outbox WHERE status = ? ORDER BY id LIMIT ?",
                    [.text(status.rawValue), .int(Int64(limit))]
                ) { out.append(self.readOutbox($0)) }
            } else {
                try c.run("SELECT \(Self.outboxColumns) FROM outbox ORDER BY id LIMIT ?", [.int(Int64(limit))]) {
                    out.append(self.readOutbox($0))
                }
            }
            return out
        }
    }

    public func pendingOutboxCount() throws(StateError) -> Int {
        try readers.read { (c: Connection) throws(StateError) -> Int in
            var n = 0
            try c.run("SELECT COUNT(*) FROM outbox WHERE status = 'pending'") { n = Int($0.int(0)) }
            return n
        }
    }

    public func metricCounts() throws(StateError) -> MetricCounts {
        try readers.read { (c: Connection) throws(StateError) -> MetricCounts in
            var m = MetricCounts()
            try c.run("SELECT state, priority, COUNT(*) FROM alerts GROUP BY state, priority") {
                m.alerts[.init($0.text(0) ?? "", $0.text(1) ?? "")] = Int($0.int(2))
            }
            try c.run("SELECT receiver, status, COUNT(*) FROM outbox GROUP BY receiver, status") {
                m.outbox[.init($0.text(0) ?? "", $0.text(1) ?? "")] = Int($0.int(2))
            }
            return m
        }
    }

    public func finishAttempts(_ outcomes: [AttemptOutcome]) throws(StateError) {
        try transaction { () throws(StateError) in
            for a in outcomes { try finish(a) }
        }
    }

    /// One attempt's outcome, inside the caller's transaction.
    private func finish(_ a: AttemptOutcome) throws(StateError) {
        let changed = try run(
            "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            [
                .text(a.status.rawValue), .int(Int64(a.attempts)), .real(a.nextAttemptAt), Self.opt(a.error),
                .int(a.outboxID),
            ])
        if changed == 0 { throw StateError.database("no outbox item \(a.outboxID)") }
        try insert(a.event)
    }

    public func retry(outboxID: Int64, event: EventDraft) throws(StateError) -> Bool {
        try transaction { () throws(StateError) -> Bool in
            let changed = try run(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE id = ? AND status = 'dead'",
                [.real(event.at), .int(outboxID)])
            if changed == 0 { return false }
            try insert(event)
            return true
        }
    }

    public func silences(includeExpired: Bool) throws(StateError) -> [Silence] {
        try readers.read { (c: Connection) throws(StateError) -> [Silence] in
            var out: [Silence] = []
            let filter = includeExpired ? "" : " WHERE expired_at IS NULL"
            try c.run(
                "SELECT id, matchers, starts_at, ends_at, created_by, comment, expired_at, partner FROM silences\(filter) ORDER BY starts_at"
            ) { r in
                let m = (try? JSONParser.parse(r.text(1) ?? "[]"))?.arrayValue?.compactMap(\.stringValue) ?? []
                out.append(
                    Silence(
                        id: r.text(0) ?? "", matchers: m, startsAt: r.real(2), endsAt: r.real(3),
                        createdBy: r.text(4) ?? "", comment: r.text(5) ?? "",
                        expiredAt: sqlite3_column_type(r.stmt, 6) == SQLITE_NULL ? nil : r.real(6), partner: r.text(7)))
            }
            return out
        }
    }

    private func readToken(_ r: Row) -> TokenRecord {
        TokenRecord(
            id: r.text(0) ?? "", principal: r.text(1) ?? "", hash: r.text(2) ?? "", createdAt: r.real(3),
            expiresAt: sqlite3_column_type(r.stmt, 4) == SQLITE_NULL ? nil : r.real(4),
            revokedAt: sqlite3_column_type(r.stmt, 5) == SQLITE_NULL ? nil : r.real(5), createdBy: r.text(6) ?? "")
    }

    public func token(hash: String) throws(StateError) -> TokenRecord? {
        try readers.read { (c: Connection) throws(StateError) -> TokenRecord? in
            var out: TokenRecord?
            try c.run(
                "SELECT id, principal, hash, created_at, expires_at, revoked_at, created_by FROM tokens WHERE hash = ?",
                [.text(hash)]
            ) { out = self.readToken($0) }
            return out
        }
    }

    public func tokens() throws(StateError) -> [TokenRecord] {
        try readers.read { (c: Connection) throws(StateError) -> [TokenRecord] in
            var out: [TokenRecord] = []
            try c.run(
                "SELECT id, principal, hash, created_at, expires_at, revoked_at, created_by FROM tokens ORDER BY created_at, id"
            ) { out.append(self.readToken($0)) }
            return out
        }
    }

    private func readSubmitted(_ r: Row, content: Bool) -> SubmittedList {
        SubmittedList(
            owner: r.text(0) ?? "", list: r.text(1) ?? "", version: r.text(2) ?? "",
            yaml: content ? (r.blob(7) ?? []) : [], size: Int(r.int(3)), submittedAt: r.real(4),
            submittedBy: r.text(5) ?? "", withdrawnAt: sqlite3_column_type(r.stmt, 6) == SQLITE_NULL ? nil : r.real(6))
    }

    public func submittedLists(content: Bool) throws(StateError) -> [SubmittedList] {
        try readers.read { (c: Connection) throws(StateError) -> [SubmittedList] in
            var out: [SubmittedList] = []
            try c.run(
                """
                SELECT owner, list, version, length(yaml), submitted_at, submitted_by, withdrawn_at,
                    \(content ? "yaml" : "NULL") FROM submitted_lists s
                WHERE seq = (SELECT MAX(seq) FROM submitted_lists WHERE owner = s.owner AND list = s.list)
                ORDER BY seq
                """
            ) { out.append(self.readSubmitted($0, content: content)) }
            return out
        }
    }

    public func submittedVersions(owner: String, list: String) throws(StateError) -> [SubmittedList] {
        try readers.read { (c: Connection) throws(StateError) -> [SubmittedList] in
            var out: [SubmittedList] = []
            try c.run(
                """
                SELECT owner, list, version, length(yaml), submitted_at, submitted_by, withdrawn_at, NULL
                FROM submitted_lists WHERE owner = ? AND list = ? ORDER BY seq
                """, [.text(owner), .text(list)]
            ) { out.append(self.readSubmitted($0, content: false)) }
            return out
        }
    }

    public func submittedList(owner: String, list: String, version: String) throws(StateError) -> SubmittedList? {
        try readers.read { (c: Connection) throws(StateError) -> SubmittedList? in
            var out: SubmittedList?
            try c.run(
                """
                SELECT owner, list, version, length(yaml), submitted_at, submitted_by, withdrawn_at, yaml
                FROM submitted_lists WHERE owner = ? AND list = ? AND version = ?
                """, [.text(owner), .text(list), .text(version)]
            ) { out = self.readSubmitted($0, content: true) }
            return out
        }
    }

    public func listHandlings() throws(StateError) -> [String: JSONObject]? {
        try readers.read { (c: Connection) throws(StateError) -> [String: JSONObject]? in
            var known = false
            try c.run("SELECT 1 FROM offsets WHERE source = 'list-handlings-known'") { _ in known = true }
            if !known { return nil }
            var out: [String: JSONObject] = [:]
            try c.run("SELECT key, handling FROM list_handlings") { out[$0.text(0) ?? ""] = $0.json(1) }
            return out
        }
    }

    public func usedAckLink(nonce: String) throws(StateError) -> UsedAckLink? {
        try readers.read { (c: Connection) throws(StateError) -> UsedAckLink? in
            var out: UsedAckLink?
            try c.run("SELECT nonce, alert_id, receiver, used_at FROM ack_links_used WHERE nonce = ?", [.text(nonce)]) {
                r in
                out = UsedAckLink(
                    nonce: r.text(0) ?? "", alertID: r.int(1), receiver: r.text(2) ?? "", usedAt: r.real(3))
            }
            return out
        }
    }

    public func escalations() throws(StateError) -> [EscalationState] {
        try readers.read { (c: Connection) throws(StateError) -> [EscalationState] in
            var out: [EscalationState] = []
            try c.run("SELECT key, route, started_at, done FROM escalations ORDER BY key, route") { r in
                out.append(Self.escalation(r))
            }
            return out
        }
    }

    public func escalations(key: String) throws(StateError) -> [EscalationState] {
        try readers.read { (c: Connection) throws(StateError) -> [EscalationState] in
            var out: [EscalationState] = []
            try c.run(
                "SELECT key, route, started_at, done FROM escalations WHERE key = ? ORDER BY route", [.text(key)]
            ) { out.append(Self.escalation($0)) }
            return out
        }
    }

    private static func escalation(_ r: Row) -> EscalationState {
        EscalationState(key: r.text(0) ?? "", route: Int(r.int(1)), startedAt: r.real(2), done: Int(r.int(3)))
    }

    public func rateStates() throws(StateError) -> [RateState] {
        try readers.read { (c: Connection) throws(StateError) -> [RateState] in
            var out: [RateState] = []
            try c.run("SELECT receiver, sent, digest FROM rate_state ORDER BY receiver") { r in
                func numbers(_ t: String?) -> [Double] {
                    ((try? JSONParser.parse(t ?? "[]"))?.arrayValue ?? []).compactMap(\.doubleValue)
                }
                out.append(
                    RateState(
                        receiver: r.text(0) ?? "", sent: numbers(r.text(1)),
                        digest: numbers(r.text(2)).map { Int64($0) }))
            }
            return out
        }
    }

    public func offset(source: String) throws(StateError) -> Int64? {
        try readers.read { (c: Connection) throws(StateError) -> Int64? in
            var out: Int64?
            try c.run("SELECT offset FROM offsets WHERE source = ?", [.text(source)]) { out = $0.int(0) }
            return out
        }
    }

    public func events(after seq: Int64, limit: Int) throws(StateError) -> [EventRecord] {
        try locked { () throws(StateError) -> [EventRecord] in
            var out: [EventRecord] = []
            var missing: [(position: Int, index: Int)] = []
            try run(
                """
                SELECT r.idx, r.record, p.payload, p.salt FROM audit_records r
                LEFT JOIN audit_payloads p ON p.idx = r.idx WHERE r.idx >= ? ORDER BY r.idx LIMIT ?
                """, [.int(seq), .int(Int64(limit))]
            ) { r in
                let (e, missed) = StoreCoding.event(
                    index: r.int(0), record: r.text(1), payload: r.text(2), salt: r.blob(3))
                if missed { missing.append((out.count, Int(r.int(0)))) }
                out.append(e)
            }
            // A missing payload reads as erased only when an audited erasure names it; otherwise as missing.
            if !missing.isEmpty {
                var erasureRecords: [(Int, AuditEntry)] = []
                try run(
                    """
                    SELECT r.idx, r.record, p.salt, p.payload FROM audit_records r JOIN audit_payloads p ON p.idx = r.idx
                    WHERE r.record LIKE '%"kind":"\(Erasures.kind)"%' ORDER BY r.idx
                    """
                ) { r in
                    erasureRecords.append(
                        (Int(r.int(0)), AuditEntry(record: r.text(1) ?? "", salt: r.blob(2), payload: r.text(3))))
                }
                StoreCoding.markMissing(&out, missing, erasureRecords: erasureRecords)
            }
            return out
        }
    }

    // MARK: Audit log

    /// Records in the log.
    public func auditSize() throws(StateError) -> Int {
        try locked { () throws(StateError) -> Int in try auditCount() }
    }

    /// The tree head over the first `size` records.
    public func auditRoot(size: Int) throws(StateError) -> Hash {
        try locked { () throws(StateError) -> Hash in
            size == 0
                ? Merkle.emptyRoot
                : try Merkle.subtreeHash(0, size) { (l, i) throws(StateError) -> Hash in try node(l, i) }
        }
    }

    public func auditLeaf(_ index: Int) throws(StateError) -> Hash {
        try locked { () throws(StateError) -> Hash in try node(0, index) }
    }

    public func inclusionProof(index: Int, size: Int) throws(StateError) -> [Hash] {
        try locked { () throws(StateError) -> [Hash] in
            try Merkle.inclusionProof(index: index, size: size) { (a, b) throws(StateError) -> Hash in
                try Merkle.subtreeHash(a, b) { (l, i) throws(StateError) -> Hash in try node(l, i) }
            }
        }
    }

    public func consistencyProof(old: Int, new: Int) throws(StateError) -> [Hash] {
        try locked { () throws(StateError) -> [Hash] in
            try Merkle.consistencyProof(old: old, new: new) { (a, b) throws(StateError) -> Hash in
                try Merkle.subtreeHash(a, b) { (l, i) throws(StateError) -> Hash in try node(l, i) }
            }
        }
    }

    /// Signs the current tree head with `signer` and stores the note; returns it.
    public func checkpoint(origin: String, signer: NoteSigner, at: Double) throws -> String {
        try transaction { () throws(StateError) -> String in
            let n = try auditCount()
            var exists = false
            try run("SELECT 1 FROM audit_checkpoints WHERE size = ?", [.int(Int64(n))]) { _ in exists = true }
            let root =
                n == 0
                ? Merkle.emptyRoot
                : try Merkle.subtreeHash(0, n) { (l, i) throws(StateError) -> Hash in try node(l, i) }
            let note: String
            do { note = try signer.sign(Checkpoint(origin: origin, size: n, root: root).text) } catch {
                throw StateError.database("signing: \(error)")
            }
            if !exists {
                try run(
                    "INSERT INTO audit_checkpoints (size, at, note) VALUES (?,?,?)",
                    [.int(Int64(n)), .real(at), .text(note)])
            }
            return note
        }
    }

    public func checkpoints() throws(StateError) -> [(size: Int, note: String)] {
        try locked { () throws(StateError) -> [(size: Int, note: String)] in
            var out: [(Int, String)] = []
            try run("SELECT size, note FROM audit_checkpoints ORDER BY size") {
                out.append((Int($0.int(0)), $0.text(1) ?? ""))
            }
            return out
        }
    }

    /// Erases the personal data of record `index` (its payload and salt); the record, its leaf and every proof stay
    /// valid. The erasure is itself an audit record, in the same transaction.
    /// Refused (`StateError.record`, nothing changed) for an erasure record and for a consultation by the erasing
    /// principal (SPEC §8).
    public func erasePayload(index: Int, event: EventDraft) throws(StateError) -> Bool {
        try transaction { () throws(StateError) -> Bool in
            var kind: String?
            var principal: String?
            try run(
                "SELECT r.record, p.payload FROM audit_records r LEFT JOIN audit_payloads p ON p.idx = r.idx WHERE r.idx = ?",
                [.int(Int64(index))]
            ) { r in
                kind = (try? JSONParser.parse(r.text(0) ?? ""))?.objectValue?["kind"]?.stringValue ?? ""
                principal = r.text(1).flatMap { (try? JSONParser.parse($0))?.objectValue?["principal"]?.stringValue }
            }
            guard let kind else { return false }
            if let why = Erasures.refusal(index: index, kind: kind, principal: principal, caller: event.principal ?? "")
            {
                throw StateError.record(why)
            }
            let n = try run("DELETE FROM audit_payloads WHERE idx = ?", [.int(Int64(index))])
            if n == 0 { return false }
            try insert(event)
            return true
        }
    }

    /// Everything an auditor recomputes: records with payloads, stored nodes, stored checkpoints.
    /// Record and payload text is read byte for byte with its length (a NUL is part of it, never an end); bytes that
    /// are not UTF-8 are not repaired but reported as the entry's defect, so what is verified is what is stored.
    public func auditLog() throws(StateError) -> AuditLog {
        try locked { () throws(StateError) -> AuditLog in
            /// The column's exact text, or why it has none.
            func exact(_ r: Row, _ i: Int32, _ what: String) -> (text: String?, defect: String?) {
                if sqlite3_column_type(r.stmt, i) == SQLITE_NULL { return (nil, nil) }
                guard let p = sqlite3_column_text(r.stmt, i) else { return (nil, "\(what) unreadable") }
                let bytes = UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(r.stmt, i)))
                guard let s = String(validating: bytes, as: UTF8.self) else {
                    return (String(decoding: bytes, as: UTF8.self), "\(what) is not UTF-8 text")
                }
                return (s, nil)
            }
            var entries: [AuditEntry] = []
            try run(
                "SELECT r.record, p.salt, p.payload FROM audit_records r LEFT JOIN audit_payloads p ON p.idx = r.idx ORDER BY r.idx"
            ) { r in
                let record = exact(r, 0, "record")
                let payload = exact(r, 2, "payload")
                entries.append(
                    AuditEntry(
                        record: record.text ?? "", salt: r.blob(1), payload: payload.text,
                        defect: record.text == nil ? "record missing" : record.defect ?? payload.defect))
            }
            var nodes: [AuditLog.NodeKey: Hash] = [:]
            try run("SELECT level, idx, hash FROM audit_nodes") { r in
                nodes[AuditLog.NodeKey(level: Int(r.int(0)), index: Int(r.int(1)))] = r.blob(2) ?? []
            }
            var cps: [String] = []
            try run("SELECT note FROM audit_checkpoints ORDER BY size") { cps.append($0.text(0) ?? "") }
            var stray: [Int] = []
            try run("SELECT idx FROM audit_payloads WHERE idx NOT IN (SELECT idx FROM audit_records) ORDER BY idx") {
                stray.append(Int($0.int(0)))
            }
            return AuditLog(entries: entries, nodes: nodes, checkpoints: cps, strayPayloads: stray)
        }
    }
}
