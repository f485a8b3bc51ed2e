import Foundation
import Synchronization
import Testing
import TriplineAudit
import TriplineJSON
import TriplineState
import TriplineStateSQLite
import TriplineTestSupport

/// The SQLite store under concurrent use: commits from several threads written together (group commit), each
/// still all-or-nothing and refused alone; reads that do not wait for a writer.
@Suite("SQLite group commit and readers", .serialized)
struct GroupCommitTests {
    static func store() throws -> (SQLiteStateStore, path: String, cleanup: () -> Void) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-group-\(UUID().uuidString)")
        let path = dir.appendingPathComponent("state.sqlite").path
        let s = try SQLiteStateStore(path: path)
        try s.migrate()
        return (s, path, { try? FileManager.default.removeItem(at: dir) })
    }

    /// The store's audit log recomputed whole by the independent verifier: an issue when it does not verify.
    static func expectLogVerifies(_ s: SQLiteStateStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var verifier = AuditVerifier(vkey: nil, origin: nil)
        if case .failure(let f) = verifier.verify(try s.auditLog()) {
            Issue.record("the log does not verify: \(f)", sourceLocation: sourceLocation)
        }
    }

    static func ack(_ a: AlertRecord, by partner: String, at t: Double) -> Commit {
        var a = a
        a.acks[partner] = Ack(by: "analyst-\(partner)", at: t)
        a.updatedAt = t
        var c = Commit()
        c.alerts = [a]
        c.events = [EventDraft(at: t, kind: "acked", alertKey: a.key, detail: JSONObject([("by", .string(partner))]))]
        c.offsets = [("acked-\(a.id)-\(partner)", 1)]
        return c
    }

    /// Runs `count` commits at once, each on its own thread, while another process holds the write lock (so that
    /// they queue up and are written together once it lets go); the outcome of each, by index.
    static func concurrently(_ s: SQLiteStateStore, path: String, _ commits: [Commit]) throws -> [StateError?] {
        let locker = try DatabaseLocker(path)
        let outcomes = Mutex<[Int: StateError?]>([:])
        let started = DispatchGroup()
        let finished = DispatchGroup()
        for (i, c) in commits.enumerated() {
            started.enter()
            finished.enter()
            Thread.detachNewThread {
                started.leave()
                let e: StateError?
                do throws(StateError) {
                    try s.commit(c)
                    e = nil
                } catch { e = error }
                outcomes.withLock { $0[i] = e }
                finished.leave()
            }
        }
        started.wait()
        Thread.sleep(forTimeInterval: 0.3)  // every thread is waiting: one for the lock, the others queued
        locker.release()
        finished.wait()
        return outcomes.withLock { o in commits.indices.map { o[$0]! } }
    }

    @Test("32 commits at once: each lands or fails alone — 1 of 9 stale copies wins, 23 acks land, the log verifies")
    func concurrentCommitsAreEachAtomic() throws {
        let (s, path, cleanup) = try Self.store()
        defer { cleanup() }
        var setup = Commit()
        setup.alerts = (1...24).map { alert(Int64($0), key: "wl:\($0)") }
        try s.commit(setup)
        let copies = try (1...24).map { try #require(try s.alert(id: Int64($0))) }
        // 23 acks of different alerts, and 9 acks of alert 24 from 9 copies read at version 0: one wins.
        let commits =
            (0..<23).map { Self.ack(copies[$0], by: "p\($0)", at: 200) }
            + (0..<9).map { Self.ack(copies[23], by: "q\($0)", at: 300) }
        let outcomes = try Self.concurrently(s, path: path, commits)
        #expect(outcomes.prefix(23).allSatisfy { $0 == nil })
        let contested = Array(outcomes.suffix(9))
        #expect(contested.filter { $0 == nil }.count == 1)
        #expect(contested.compactMap { $0 }.count == 8)
        #expect(contested.compactMap { $0 }.allSatisfy { $0.isConflict })
        let winner = try #require(contested.firstIndex { $0 == nil })

        // What landed is exactly the winners' commits: rows, events, offsets.
        for i in 0..<23 {
            let a = try #require(try s.alert(id: Int64(i + 1)))
            #expect(a.version == 1 && a.acks.keys.sorted() == ["p\(i)"])
            #expect(try s.offset(source: "acked-\(i + 1)-p\(i)") == 1)
        }
        let contestedRow = try #require(try s.alert(id: 24))
        #expect(contestedRow.version == 1 && contestedRow.acks.keys.sorted() == ["q\(winner)"])
        for q in 0..<9 where q != winner { #expect(try s.offset(source: "acked-24-q\(q)") == nil) }
        let events = try s.events(after: 0, limit: 100).map(\.event)
        #expect(events.filter { $0.kind == "acked" }.count == 24)
        try Self.expectLogVerifies(s)
    }

    @Test(
        "a commit the database refuses (an acknowledge link used) fails alone inside a group; the others and the log are whole"
    )
    func refusedCommitInAGroupFailsAlone() throws {
        let (s, path, cleanup) = try Self.store()
        defer { cleanup() }
        var setup = Commit()
        setup.alerts = [alert(1, key: "wl:taken")]
        setup.usedAckLinks = [UsedAckLink(nonce: "n-1", alertID: 1, receiver: "r", usedAt: 50)]
        try s.commit(setup)
        var commits: [Commit] = (0..<10).map { i in
            var c = Commit()
            c.alerts = [alert(Int64(10 + i), key: "wl:new-\(i)")]
            c.events = [EventDraft(at: 100, kind: "created", alertKey: "wl:new-\(i)")]
            return c
        }
        // An acknowledge link used already, with a new alert: a constraint failure, after its event was appended
        // (the store writes a commit's audit records first).
        var bad = Commit()
        bad.events = [EventDraft(at: 100, kind: "refused-one", alertKey: "wl:taken")]
        bad.alerts = [alert(99, key: "wl:ninety-nine")]
        bad.usedAckLinks = [UsedAckLink(nonce: "n-1", alertID: 1, receiver: "r", usedAt: 100)]
        bad.offsets = [("refused-one", 7)]
        commits.insert(bad, at: 5)
        let outcomes = try Self.concurrently(s, path: path, commits)
        #expect(outcomes.enumerated().filter { $0.element != nil }.map(\.offset) == [5])
        #expect(outcomes[5]?.refusedChange == true)
        #expect(try s.alert(id: 99) == nil)
        #expect(try s.offset(source: "refused-one") == nil)
        for i in 0..<10 { #expect(try s.alert(id: Int64(10 + i))?.key == "wl:new-\(i)") }
        let kinds = try s.events(after: 0, limit: 100).map(\.event.kind)
        #expect(kinds.filter { $0 == "created" }.count == 10)
        #expect(!kinds.contains("refused-one"))
        try Self.expectLogVerifies(s)
        // The store goes on: one more commit lands and the log still verifies.
        var more = Commit()
        more.events = [EventDraft(at: 101, kind: "after")]
        try s.commit(more)
        try Self.expectLogVerifies(s)
    }

    @Test("a commit that makes SQLite roll back the whole group (RAISE(ROLLBACK)) fails alone; the 10 others land")
    func wholeGroupRolledBackByOneCommit() throws {
        let (s, path, cleanup) = try Self.store()
        defer { cleanup() }
        // A trigger (added by another process) that rolls back the whole transaction when one commit writes `boom`.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"CREATE TRIGGER boom BEFORE INSERT ON "
                + "offsets WHEN NEW.source = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom'); END\"); c.commit()",
            path,
        ]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        var commits: [Commit] = (0..<10).map { i in
            var c = Commit()
            c.events = [EventDraft(at: 100, kind: "ok-\(i)")]
            c.offsets = [("ok-\(i)", 1)]
            return c
        }
        var bad = Commit()
        bad.events = [EventDraft(at: 100, kind: "bad")]
        bad.offsets = [("boom", 1)]
        commits.insert(bad, at: 4)
        let outcomes = try Self.concurrently(s, path: path, commits)
        #expect(outcomes.enumerated().filter { $0.element != nil }.map(\.offset) == [4])
        #expect(outcomes[4]?.description.contains("boom") == true)
        let kinds = try s.events(after: 0, limit: 100).map(\.event.kind)
        #expect(Set(kinds) == Set((0..<10).map { "ok-\($0)" }) && kinds.count == 10)
        for i in 0..<10 { #expect(try s.offset(source: "ok-\(i)") == 1) }
        #expect(try s.offset(source: "boom") == nil)
        try Self.expectLogVerifies(s)
    }

    @Test("reads of alerts and tokens answer at once while a commit waits for another process's write lock")
    func readsDoNotWaitForTheWriter() throws {
        let (s, path, cleanup) = try Self.store()
        defer { cleanup() }
        var setup = Commit()
        setup.alerts = [alert(1, key: "wl:a")]
        setup.tokens = [
            TokenRecord(
                id: "tok_1", principal: "analyst", hash: "h1", createdAt: 1, expiresAt: nil, createdBy: "admin")
        ]
        try s.commit(setup)
        let locker = try DatabaseLocker(path)
        let writing = DispatchSemaphore(value: 0)
        let wrote = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            writing.signal()
            var c = Commit()
            c.events = [EventDraft(at: 2, kind: "waited")]
            try? s.commit(c)  // holds the store's connection while it waits for the lock (10 s busy timeout)
            wrote.signal()
        }
        writing.wait()
        Thread.sleep(forTimeInterval: 0.2)
        let start = Date()
        #expect(try s.alert(id: 1)?.key == "wl:a")
        #expect(try s.alerts(idBelow: nil, limit: 10).map(\.id) == [1])
        #expect(try s.token(hash: "h1")?.principal == "analyst")
        let took = Date().timeIntervalSince(start)
        #expect(took < 1, "reads took \(took) s behind a waiting writer")
        locker.release()
        wrote.wait()
        #expect(try s.events(after: 0, limit: 10).map(\.event.kind) == ["waited"])
    }

    @Test(
        "a read after a commit sees it, and an alert read again after a change is the changed one (not a cached copy)")
    func readsSeeCommits() throws {
        let (s, _, cleanup) = try Self.store()
        defer { cleanup() }
        var c = Commit()
        c.alerts = [alert(1, key: "wl:a")]
        try s.commit(c)
        for i in 1...50 {
            let a = try #require(try s.alert(id: 1))
            #expect(a.version == Int64(i - 1))
            try s.commit(Self.ack(a, by: "p\(i)", at: Double(100 + i)))
            let page = try s.alerts(idBelow: nil, limit: 1)
            #expect(page.first?.acks.count == i && page.first?.updatedAt == Double(100 + i))
        }
    }
}
