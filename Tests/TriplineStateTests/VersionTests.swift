import Foundation
import Testing
import TriplineJSON
import TriplineState
import TriplineStateSQLite

/// Optimistic concurrency on alerts: every store writes an alert only over the version of its row it was read at.
@Suite("Alert versions")
struct VersionTests {
    /// The commit of one alert copy, with an event and an offset that must not land when it is refused.
    static func change(_ a: AlertRecord, event: String) -> Commit {
        var c = Commit()
        c.alerts = [a]
        c.events = [EventDraft(at: a.updatedAt, kind: event, alertKey: a.key)]
        c.offsets = [(event, 1)]
        return c
    }

    static func conflict(_ s: any StateStore, _ c: Commit) -> StateError? {
        do {
            try s.commit(c)
            return nil
        } catch { return error }
    }

    @Test(
        "two copies read at one version: the first commit wins, the second is a conflict and changes nothing",
        arguments: StoreKind.allCases)
    func staleCopyIsRefused(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.alerts = [alert(1, key: "wl:a")]
        try s.commit(c)
        var copyA = try #require(try s.alert(id: 1))
        var copyB = try #require(try s.alert(key: "wl:a"))
        #expect(copyA.version == 0 && copyB.version == 0)

        // A: an operator's ack.
        copyA.acks["be-fedpol"] = Ack(by: "analyst-be", at: 200)
        copyA.updatedAt = 200
        try s.commit(Self.change(copyA, event: "acked"))
        let afterA = try #require(try s.alert(id: 1))
        #expect(afterA.version == 1)
        #expect(afterA.acks == ["be-fedpol": Ack(by: "analyst-be", at: 200)])

        // B: a fold computed from the copy read before A's commit.
        copyB.count = 2
        copyB.lastSeen = 300
        copyB.updatedAt = 300
        let e = try #require(Self.conflict(s, Self.change(copyB, event: "folded")))
        #expect(e.isConflict)
        #expect(!e.refusedChange)
        #expect(
            e.description == "state database: conflict: alert 1 (wl:a) changed since it was read (version 0, now 1)")
        // The row is A's; nothing of B's commit landed (its event, its offset).
        #expect(try s.alert(id: 1) == afterA)
        #expect(try s.events(after: 0, limit: 10).map(\.event.kind) == ["acked"])
        #expect(try s.offset(source: "folded") == nil)

        // The fold made again on a fresh copy lands beside the ack.
        var fresh = try #require(try s.alert(id: 1))
        fresh.count += 1
        fresh.lastSeen = 300
        fresh.updatedAt = 300
        try s.commit(Self.change(fresh, event: "folded"))
        let done = try #require(try s.alert(id: 1))
        #expect(done.version == 2 && done.count == 2 && done.lastSeen == 300)
        #expect(done.acks == ["be-fedpol": Ack(by: "analyst-be", at: 200)])
        #expect(try s.events(after: 0, limit: 10).map(\.event.kind) == ["acked", "folded"])
        #expect(try s.offset(source: "folded") == 1)
    }

    @Test(
        "a new alert over an id that is stored is a conflict; a copy of an alert that is not stored too",
        arguments: StoreKind.allCases)
    func insertsAndMissingRows(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.alerts = [alert(1, key: "wl:a")]
        try s.commit(c)
        // Another writer's new alert 1 (it had not seen the stored one): refused, not an overwrite.
        let again = try #require(Self.conflict(s, Self.change(alert(1, key: "wl:a", at: 500), event: "opened")))
        #expect(again.isConflict && again.description == "state database: conflict: alert 1 (wl:a) is stored already")
        #expect(try s.alert(id: 1)?.firstSeen == 100)
        // A copy read at a version of a row that is not there.
        var ghost = alert(7, key: "wl:g")
        ghost.version = 3
        let missing = try #require(Self.conflict(s, Self.change(ghost, event: "ghost")))
        #expect(missing.isConflict && missing.description == "state database: conflict: alert 7 (wl:g) is not stored")
        #expect(try s.alert(id: 7) == nil)
        #expect(try s.events(after: 0, limit: 10).isEmpty)
        // The same key under another id: another writer's alert for the same thing, a conflict (the writer reads it
        // and folds into it; nodes sharing one PostgreSQL create alerts at once), never a second alert.
        let taken = try #require(Self.conflict(s, Self.change(alert(2, key: "wl:a"), event: "x")))
        #expect(
            taken.isConflict
                && taken.description == "state database: conflict: alert wl:a was created by another writer")
        #expect(try s.alert(id: 2) == nil)
    }

    @Test(
        "one alert twice in one commit from one read: the second copy conflicts, the whole commit is refused",
        arguments: StoreKind.allCases)
    func twiceInOneCommit(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        var c = Commit()
        c.alerts = [alert(1, key: "wl:a"), alert(2, key: "wl:b")]
        try s.commit(c)
        var a = try #require(try s.alert(id: 1))
        var b = try #require(try s.alert(id: 2))
        a.count = 10
        b.count = 20
        var twice = Commit()
        twice.alerts = [b, a, a]
        twice.events = [EventDraft(at: 1, kind: "x")]
        let e = try #require(Self.conflict(s, twice))
        #expect(e.isConflict)
        #expect(try s.alert(id: 1)?.count == 1 && s.alert(id: 2)?.count == 1)
        #expect(try s.alert(id: 1)?.version == 0 && s.alert(id: 2)?.version == 0)
        #expect(try s.events(after: 0, limit: 10).isEmpty)
        // A new alert and its change in one commit: the change is over the version the insert gave it.
        var fresh = alert(3, key: "wl:c")
        var changed = fresh
        changed.version = 0
        changed.count = 2
        fresh.count = 1
        var both = Commit()
        both.alerts = [fresh, changed]
        try s.commit(both)
        #expect(try s.alert(id: 3)?.count == 2 && s.alert(id: 3)?.version == 1)
    }

    @Test("an alert read right after its commit (kept parsed by the writer) equals the one a new connection parses")
    func keptAsWritten() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-kept-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.sqlite").path
        let s = try SQLiteStateStore(path: path)
        try s.migrate()
        var a = alert(1, key: "wl:be/l/E1", at: 1_893_456_000.123456)
        a.labels.append("name", .string("Ab\u{00E9}l \"q\" \\ \u{0}\n\u{1F600}"))
        a.payload = JSONObject([
            ("n", .number("1.50e+3")),
            ("list", .array([.null, .bool(true), .object(JSONObject([("z", .number("-0"))]))])),
        ])
        a.sources = ["D1", "D\u{2028}2"]
        a.acks = ["be-fedpol": Ack(by: "analyst", at: 5.5, until: 99.25), "ops": Ack(by: "o", at: 6)]
        a.ackedBy = "analyst"
        var c = Commit()
        c.alerts = [a]
        try s.commit(c)
        var changed = try #require(try s.alert(key: a.key))
        changed.count = 7
        changed.state = .acknowledged
        c.alerts = [changed]
        try s.commit(c)
        let kept = try #require(try s.alert(key: a.key))
        let fresh = try #require(try SQLiteStateStore(path: path).alert(key: a.key))
        #expect(kept == fresh)
        #expect(kept.version == 1 && kept.count == 7)
        // Reopened after it resolved, with its first sighting now (as the dispatcher reopens an alert): the row
        // takes it too, so the kept copy and the stored row agree.
        var reopened = kept
        reopened.state = .firing
        reopened.firstSeen = 1_893_460_000
        c.alerts = [reopened]
        try s.commit(c)
        #expect(try s.alert(key: a.key) == SQLiteStateStore(path: path).alert(key: a.key))
        #expect(try SQLiteStateStore(path: path).alert(key: a.key)?.firstSeen == 1_893_460_000)
        // A refused commit (over a version moved on) keeps nothing: the next read is the stored row.
        var stale = reopened
        stale.count = 99
        c.alerts = [stale]
        #expect(throws: StateError.self) { try s.commit(c) }
        #expect(try s.alert(key: a.key) == SQLiteStateStore(path: path).alert(key: a.key))
    }

    @Test("schema v7 gives the alerts of an older database version 0, and they are written over it")
    func migrationGivesVersions() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-v6-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.sqlite").path
        do {
            let s = try SQLiteStateStore(path: path)
            try s.migrate()
            var c = Commit()
            c.alerts = [alert(1, key: "wl:a"), alert(2, key: "wl:b")]
            try s.commit(c)
            var a = try #require(try s.alert(id: 1))
            a.count = 4
            var u = Commit()
            u.alerts = [a]
            try s.commit(u)
        }
        // Back to schema v6 as a release before versions left it: no version column.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c",
            """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute('ALTER TABLE alerts DROP COLUMN version')
            db.execute('DROP TABLE escalations')
            db.execute('DROP TABLE ack_links_used')
            db.execute('PRAGMA user_version = 6')
            print(db.execute('SELECT count(*) FROM pragma_table_info("alerts") WHERE name = "version"').fetchone()[0])
            """, path,
        ]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0 && text == "0\n")

        let s = try SQLiteStateStore(path: path)
        try s.migrate()
        #expect(SQLiteStateStore.schemaVersion == 9)
        let a = try #require(try s.alert(id: 1))
        #expect(a.version == 0 && a.count == 4)
        #expect(try s.alert(id: 2)?.version == 0)
        var stale = a
        var fresh = a
        fresh.count = 5
        var u = Commit()
        u.alerts = [fresh]
        try s.commit(u)
        #expect(try s.alert(id: 1)?.version == 1 && s.alert(id: 1)?.count == 5)
        stale.count = 9
        u.alerts = [stale]
        #expect(Self.conflict(s, u)?.isConflict == true)
        #expect(try s.alert(id: 1)?.count == 5)
    }
}
