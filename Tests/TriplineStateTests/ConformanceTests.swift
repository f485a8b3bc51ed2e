import Foundation
import Testing
import TriplineJSON
import TriplineState
import TriplineStatePostgres
import TriplineStateSQLite
import TriplineTestSupport

/// One suite, every store: the behaviour the pipeline relies on.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite, postgres
    var testDescription: String { rawValue }

    func make() throws -> (any StateStore, cleanup: () -> Void) {
        switch self {
        case .memory:
            return (MemoryStateStore(), {})
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tripline-state-\(UUID().uuidString)")
            let s = try SQLiteStateStore(path: dir.appendingPathComponent("state.sqlite").path)
            try s.migrate()
            return (s, { try? FileManager.default.removeItem(at: dir) })
        case .postgres:
            // A database of its own on the suite's PostgreSQL server (scripts/pg.sh).
            let s = try PostgresStateStore(url: try PostgresServer.shared().database("conf"))
            try s.migrate()
            return (s, { s.close() })
        }
    }
}

func alert(_ id: Int64, key: String, rank: Int = 3, state: AlertState = .firing, at: Double = 100) -> AlertRecord {
    var labels = JSONObject()
    labels.append("priority", .string("high"))
    return AlertRecord(
        id: id, key: key, kind: "watchlist", priority: "high", priorityRank: rank, state: state, labels: labels,
        firstSeen: at, lastSeen: at, count: 1, sources: ["ITEM-1"], payload: JSONObject([("k", .string(key))]),
        updatedAt: at)
}

@Suite("State store conformance")
struct ConformanceTests {
    @Test(arguments: StoreKind.allCases)
    func commitIsAtomicAndReadable(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.alerts = [alert(1, key: "wl:a"), alert(2, key: "wl:b", state: .acknowledged, at: 200)]
        c.events = [EventDraft(at: 100, kind: "alert_opened", alertKey: "wl:a", detail: JSONObject([("n", 1)]))]
        c.outbox = [
            OutboxItem(receiver: "r1", priorityRank: 1, createdAt: 100, nextAttemptAt: 100, payload: JSONObject()),
            OutboxItem(receiver: "r1", priorityRank: 4, createdAt: 101, nextAttemptAt: 100, payload: JSONObject()),
            OutboxItem(receiver: "r2", priorityRank: 4, createdAt: 100, nextAttemptAt: 500, payload: JSONObject()),
        ]
        c.notifyLog = [NotifyLogEntry(receiver: "r1", key: "wl:a", state: .firing, notifiedAt: 100)]
        c.offsets = [("file:/x", 4096)]
        try s.commit(c)
        #expect(try s.alert(id: 1)?.key == "wl:a")
        #expect(try s.alert(key: "wl:b")?.state == .acknowledged)
        var stored = alert(1, key: "wl:a")
        stored.version = 0  // as stored: the first version of its row
        #expect(try s.alert(key: "wl:a") == stored)
        #expect(try s.alerts(states: [.firing], limit: 10).map(\.id) == [1])
        #expect(try s.alerts(states: nil, limit: 10).map(\.id) == [2, 1])
        #expect(try s.maxAlertID() == 2)
        #expect(try s.offset(source: "file:/x") == 4096)
        #expect(try s.offset(source: "other") == nil)
        #expect(try s.notifyLog().count == 1)
        // Due items: highest priority first, then oldest; not-yet-due items wait.
        let due = try s.dueOutbox(now: 150, limit: 10)
        #expect(due.map(\.priorityRank) == [4, 1])
        #expect(try s.pendingOutboxCount() == 3)
        let ev = try s.events(after: 0, limit: 10)
        #expect(ev.count == 1 && ev[0].event.detail["n"] == .number("1"))

        // A change folds a sighting into the same alert (over the copy read: see VersionTests).
        var u = Commit()
        var a = try #require(try s.alert(id: 1))
        a.count = 5
        a.lastSeen = 300
        a.updatedAt = 300
        u.alerts = [a]
        try s.commit(u)
        #expect(try s.alert(id: 1)?.count == 5)
        #expect(try s.alerts(states: nil, limit: 10).count == 2)
    }

    @Test(arguments: StoreKind.allCases)
    func aFailedCommitLeavesNothingBehind(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.alerts = [alert(1, key: "wl:a")]
        try s.commit(c)
        var bad = Commit()
        bad.events = [EventDraft(at: 1, kind: "x")]
        bad.offsets = [("stdin", 10)]
        bad.alerts = [alert(2, key: "wl:a")]  // the same key under another id: refused
        #expect(throws: StateError.self) { try s.commit(bad) }
        #expect(try s.events(after: 0, limit: 10).isEmpty)
        #expect(try s.offset(source: "stdin") == nil)
        #expect(try s.alert(id: 2) == nil)
    }

    @Test(arguments: StoreKind.allCases)
    func deliveryAttemptsAndRetries(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.outbox = [OutboxItem(receiver: "r", priorityRank: 2, createdAt: 1, nextAttemptAt: 1, payload: JSONObject())]
        try s.commit(c)
        let id = try #require(try s.dueOutbox(now: 1, limit: 1).first?.id)
        try s.finishAttempt(
            AttemptOutcome(
                outboxID: id, status: .pending, attempts: 1, nextAttemptAt: 60, error: "connection refused",
                event: EventDraft(at: 1, kind: "delivery_failed")))
        #expect(try s.dueOutbox(now: 2, limit: 5).isEmpty)
        #expect(try s.dueOutbox(now: 60, limit: 5).first?.attempts == 1)
        try s.finishAttempt(
            AttemptOutcome(
                outboxID: id, status: .dead, attempts: 2, nextAttemptAt: 60, error: "rejected",
                event: EventDraft(at: 60, kind: "dead_letter")))
        #expect(try s.outbox(status: .dead, limit: 5).map(\.lastError) == ["rejected"])
        #expect(try s.pendingOutboxCount() == 0)
        #expect(try s.retry(outboxID: id, event: EventDraft(at: 70, kind: "retry", principal: "op")))
        #expect(try !s.retry(outboxID: id, event: EventDraft(at: 71, kind: "retry")))  // no longer dead
        #expect(try s.dueOutbox(now: 70, limit: 5).map(\.id) == [id])
        #expect(try s.events(after: 0, limit: 10).map(\.event.kind) == ["delivery_failed", "dead_letter", "retry"])
        #expect(throws: StateError.self) {
            try s.finishAttempt(
                AttemptOutcome(
                    outboxID: 999, status: .delivered, attempts: 1, nextAttemptAt: 0, error: nil,
                    event: EventDraft(at: 1, kind: "x")))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func silences(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.silences = [
            Silence(id: "s1", matchers: [#"owner="be-fedpol""#], startsAt: 0, endsAt: 100, createdBy: "a", comment: "c")
        ]
        try s.commit(c)
        #expect(try s.silences(includeExpired: false).first?.isActive(at: 50) == true)
        var e = Commit()
        var x = try #require(try s.silences(includeExpired: false).first)
        x.expiredAt = 60
        e.silences = [x]
        try s.commit(e)
        #expect(try s.silences(includeExpired: false).isEmpty)
        #expect(try s.silences(includeExpired: true).first?.expiredAt == 60)
    }
}

@Suite("SQLite store")
struct SQLiteStoreTests {
    /// Escalations: replaced by (alert key, route), removed per alert key after the commit's replacements, read
    /// back in order; a refused commit changes none of them.
    @Test(arguments: StoreKind.allCases)
    func escalationsReplaceAndEnd(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.escalations = [
            EscalationState(key: "wl:b", route: 0, startedAt: 10, done: 0),
            EscalationState(key: "wl:a", route: 2, startedAt: 11, done: 1),
            EscalationState(key: "wl:a", route: 0, startedAt: 12, done: 0),
        ]
        try s.commit(c)
        #expect(try s.escalations().map { "\($0.key)/\($0.route)/\($0.done)" } == ["wl:a/0/0", "wl:a/2/1", "wl:b/0/0"])
        #expect(try s.escalations(key: "wl:a").map { "\($0.key)/\($0.route)" } == ["wl:a/0", "wl:a/2"])
        #expect(try s.escalations(key: "wl:c").isEmpty)
        c = Commit()
        c.escalations = [EscalationState(key: "wl:a", route: 0, startedAt: 12, done: 3)]
        try s.commit(c)
        #expect(try s.escalations().first == EscalationState(key: "wl:a", route: 0, startedAt: 12, done: 3))
        c = Commit()
        c.escalations = [EscalationState(key: "wl:b", route: 1, startedAt: 20, done: 0)]
        c.escalationsEnded = ["wl:b"]
        try s.commit(c)
        #expect(try s.escalations().map(\.key) == ["wl:a", "wl:a"])
        // A conflicting alert makes the whole commit fail: the escalation change with it.
        c = Commit()
        var stale = alert(1, key: "wl:z")
        stale.version = 7
        c.alerts = [stale]
        c.escalationsEnded = ["wl:a"]
        #expect(throws: StateError.self) { try s.commit(c) }
        #expect(try s.escalations().count == 2)
    }

    @Test func eventsAreAppendOnlyAndSchemaIsVersioned() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-sqlite-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.sqlite").path
        let s = try SQLiteStateStore(path: path)
        try s.migrate()
        try s.migrate()  // idempotent
        var c = Commit()
        c.events = [EventDraft(at: 1, kind: "x")]
        try s.commit(c)
        // A second connection (another process in real life) sees committed data, WAL mode.
        let other = try SQLiteStateStore(path: path)
        try other.migrate()
        #expect(try other.events(after: 0, limit: 5).count == 1)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c",
            """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            print(db.execute('PRAGMA journal_mode').fetchone()[0], db.execute('PRAGMA user_version').fetchone()[0])
            for sql in ("UPDATE audit_records SET record = 'y'", "DELETE FROM audit_records"):
                try:
                    db.execute(sql); db.commit(); print('allowed')
                except sqlite3.DatabaseError as e:
                    print('refused', e)
            """, path,
        ]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text.hasPrefix("wal \(SQLiteStateStore.schemaVersion)"), "\(text)")
        #expect(text.components(separatedBy: "refused the audit log is append-only").count == 3, "\(text)")
    }
}
