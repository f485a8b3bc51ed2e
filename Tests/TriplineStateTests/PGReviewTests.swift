import Foundation
import Synchronization
import Testing
import TriplineAudit
import TriplineJSON
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport

/// Review of issue 20 (several nodes on one PostgreSQL), at the store.
@Suite("PG review: store", .serialized)
struct PGReviewTests {
    @Test("PG review: two nodes submitting versions of one list at once: one current version per list, seq unique")
    func concurrentSubmissionsKeepOneCurrentVersion() throws {
        let url = try PostgresServer.shared().database("pgrseq")
        let a = try PostgresStateStore(url: url, node: "a")
        let b = try PostgresStateStore(url: url, node: "b")
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        // Each node takes API submissions of the same list (the partner's client retries against either node).
        DispatchQueue.concurrentPerform(iterations: 2) { n in
            let s = n == 0 ? a : b
            for i in 0..<60 {
                var c = Commit()
                c.listSubmissions = [
                    .submit(
                        SubmittedList(
                            owner: "be", list: "a", version: "n\(n)-v\(i)", yaml: Array("watchlist: a\n".utf8),
                            submittedAt: Double(i), submittedBy: "p-be"))
                ]
                try? s.commit(c)
            }
        }
        let current = try a.submittedLists(content: false).filter { $0.owner == "be" && $0.list == "a" }
        // A list has one current version; SubmittedListTests' single-writer rule (the last made current is the list's).
        #expect(current.count == 1, "current versions: \(current.map(\.version))")
        let dup = try PostgresServer.shared().psql([
            "-d", PostgresServer.shared().name(of: url), "-Atc",
            "SELECT COUNT(*) FROM (SELECT seq FROM submitted_lists GROUP BY seq HAVING COUNT(*) > 1) d",
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(dup == "0")
    }

    @Test(
        "a commit fenced by the dispatcher's lease lands while the lease is the node's, and is a conflict once another node took it"
    )
    func dispatcherFence() throws {
        let url = try PostgresServer.shared().database("pgrfence") + "&lease=1"
        let a = try PostgresStateStore(url: url, node: "a")
        let b = try PostgresStateStore(url: url, node: "b")
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        let claim = try #require(try a.claim(lane: AlertHolder.dispatcherLane))
        var c = Commit()
        c.alerts = [alert(1, key: "wl:one")]
        c.fence = claim
        try a.commit(c)
        Thread.sleep(forTimeInterval: 1.2)  // a paused past its lease; b takes it
        #expect(try b.claim(lane: AlertHolder.dispatcherLane) != nil)
        var late = Commit()
        late.alerts = [alert(2, key: "wl:two")]
        late.fence = claim
        let refused = #expect(throws: StateError.self) { try a.commit(late) }
        #expect(refused?.isConflict == true)
        #expect(try a.alert(key: "wl:two") == nil)
    }

    @Test(
        "a commit whose COMMIT landed and whose answer was lost (the connection cut) is known to have landed: no error, nothing made twice"
    )
    func lostCommitAnswerIsResolved() throws {
        let url = try PostgresServer.shared().database("pgrcut")
        let relay = try CommitCutRelay(target: url)
        defer { relay.stop() }
        let direct = try PostgresStateStore(url: url, node: "d")
        try direct.migrate()
        defer { direct.close() }
        let s = try PostgresStateStore(url: relay.through(url), node: "a")
        defer { s.close() }
        var c = Commit()
        c.alerts = [alert(1, key: "wl:cut")]
        c.events = [EventDraft(at: 1, kind: "alert_opened", alertKey: "wl:cut")]
        try s.commit(c)
        #expect(relay.cutsMade == 1)
        #expect(try direct.alert(key: "wl:cut")?.version == 0)
        #expect(try direct.events(after: 0, limit: 10).count == 1)
        // A commit that did not land (refused by the server) is still an error after a lost answer before it.
        var again = Commit()
        again.alerts = [alert(2, key: "wl:cut")]  // the key is taken: a conflict, answered
        #expect(throws: StateError.self) { try s.commit(again) }
        #expect(try direct.events(after: 0, limit: 10).count == 1)
    }

    @Test("PG review: an alert whose key holds a NUL byte is stored and read back, as SQLite and memory do")
    func nulInAlertKeyIsStored() throws {
        let url = try PostgresServer.shared().database("pgrnulkey")
        let s = try PostgresStateStore(url: url, node: "a")
        defer { s.close() }
        try s.migrate()
        var c = Commit()
        c.alerts = [alert(1, key: "rule:per-device:P\u{0}a")]
        var failure: String?
        do { try s.commit(c) } catch { failure = "\(error)" }
        #expect(failure == nil)
        #expect(try s.alert(key: "rule:per-device:P\u{0}a")?.id == 1)
        #expect(try s.alerts(keys: ["rule:per-device:P\u{0}a", "x"]).count == 1)
    }

    @Test(
        "PG review: a commit whose session is cut mid-transaction (idle_in_transaction_session_timeout, a paused node) is not half applied on a new connection"
    )
    func cutSessionDoesNotSplitACommit() throws {
        let url = try PostgresServer.shared().database("pgrcut")
        let s = try PostgresStateStore(url: url, node: "a")
        defer { s.close() }
        try s.migrate()
        var used = Commit()
        used.usedAckLinks = [UsedAckLink(nonce: "n-1", alertID: 1, receiver: "r", usedAt: 1)]
        try s.commit(used)
        // The server ends a session idle inside a transaction for a moment (what a SIGSTOP'd or stalled node meets
        // with any idle_in_transaction_session_timeout, a failover, or pg_terminate_backend).
        _ = try PostgresServer.shared().psql([
            "-d", "tripline", "-c",
            "ALTER DATABASE \(PostgresServer.shared().name(of: url)) SET idle_in_transaction_session_timeout = '1ms'",
        ])
        s.close()  // the next statement opens a session with the setting
        var refused = 0
        for i in 0..<60 {
            // Every one of these commits must be refused whole: its ack link was used already.
            var c = Commit()
            c.events = (0..<300).map { j in
                EventDraft(
                    at: Double(i), kind: "alert_opened", alertKey: "k\(i)",
                    detail: JSONObject([("j", .number(String(j)))]))
            }
            c.alerts = [alert(Int64(i + 1), key: "k\(i)")]
            c.usedAckLinks = [UsedAckLink(nonce: "n-1", alertID: Int64(i + 1), receiver: "r", usedAt: Double(i))]
            do { try s.commit(c) } catch { refused += 1 }
        }
        #expect(refused == 60)
        // Nothing of a refused commit is stored: no alert, no audit record.
        let stored = try s.alerts(states: nil, limit: 1000).map(\.key)
        #expect(stored == [], "alerts of refused commits stored: \(stored.count)")
        #expect(try s.auditSize() == 0)
        // Nor is the log left with records no lock ordered: what is there verifies (gapless, in order).
        var v = AuditVerifier(vkey: nil, origin: nil)
        if case .failure(let f) = v.verify(try s.auditLog()) { Issue.record("audit log: \(f)") }
    }

    @Test(
        "PG review: an escalation on a route whose identity is a 63-bit hash (Route.identities) is stored and read back"
    )
    func escalationRouteIdentityFits() throws {
        let url = try PostgresServer.shared().database("pgrescid")
        let s = try PostgresStateStore(url: url, node: "a")
        defer { s.close() }
        try s.migrate()
        // What `Route.identities` gives a route: FNV-1a over its path, masked to 63 bits.
        let identity = Int(0x5D3A_91C2_7E44_0B17 & 0x7FFF_FFFF_FFFF_FFFF)
        var c = Commit()
        c.escalations = [EscalationState(key: "wl:be/l/E1", route: identity, startedAt: 1, done: 0)]
        var failure: String?
        do { try s.commit(c) } catch { failure = "\(error)" }
        #expect(failure == nil)
        #expect(try s.escalations() == [EscalationState(key: "wl:be/l/E1", route: identity, startedAt: 1, done: 0)])
    }
}
