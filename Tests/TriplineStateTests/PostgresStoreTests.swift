import Foundation
import Synchronization
import Testing
import TriplineAudit
import TriplineJSON
import TriplineState
import TriplineStatePostgres
import TriplineStores
import TriplineTestSupport

/// The PostgreSQL store where it differs from SQLite: several nodes (stores) on one database at once, the server
/// refusing changes to the audit log, the server going away and coming back, and its URL. The conformance suite
/// (`ConformanceTests`, `VersionTests`, `SubmittedListTests`) runs against it as well.
@Suite("PostgreSQL store", .serialized)
struct PostgresStoreTests {
    static let origin = "tripline.test/pg-audit"

    func event(_ node: Int, _ i: Int) -> EventDraft {
        EventDraft(
            at: 1_900_000_000 + Double(i), kind: "alert_opened", alertKey: "wl:n\(node)/\(i)",
            receiver: i % 2 == 0 ? "be-oncall" : nil, principal: i % 5 == 0 ? "analyst-\(node)" : nil,
            detail: JSONObject([("node", .number(String(node))), ("i", .number(String(i)))]))
    }

    @Test("three nodes migrate at once and append to one log: gapless, in commit order, verified by Go's tlog")
    func threeNodesOneLog() throws {
        let url = try PostgresServer.shared().database("nodes")
        let nodes = try (0..<3).map { _ in try PostgresStateStore(url: url) }
        defer { for n in nodes { n.close() } }
        // All three migrate at the same moment: one does, the others find the schema current.
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { n in
            do { try nodes[n].migrate() } catch {
                errors.withLock { $0.append("\(error)") }
            }
        }
        #expect(errors.withLock { $0 }.isEmpty, "\(errors.withLock { $0 })")
        let version = try PostgresServer.shared().psql(
            [
                "-d", try PostgresServer.shared().name(of: url), "-Atc",
                "SELECT version, (SELECT COUNT(*) FROM tripline_schema) FROM tripline_schema",
            ])
        #expect(version.trimmingCharacters(in: .whitespacesAndNewlines) == "\(PostgresStateStore.schemaVersion)|1")

        // 3 nodes x 40 commits x 10 events, all at once.
        DispatchQueue.concurrentPerform(iterations: 3) { n in
            for c in 0..<40 {
                var commit = Commit()
                commit.events = (0..<10).map { event(n, c * 10 + $0) }
                do { try nodes[n].commit(commit) } catch { errors.withLock { $0.append("\(error)") } }
            }
        }
        #expect(errors.withLock { $0 }.isEmpty, "\(errors.withLock { $0 })")
        #expect(try nodes[1].auditSize() == 1200)
        // Each node's own records are in its commit order (the leaf index follows the commit).
        let events = try nodes[2].events(after: 0, limit: 2000)
        #expect(events.map(\.seq) == (1...1200).map(Int64.init))
        for n in 0..<3 {
            let mine = events.compactMap { e -> Int? in
                e.event.detail["node"] == .number(String(n)) ? Int(e.event.detail["i"]?.doubleValue ?? -1) : nil
            }
            #expect(mine == Array(0..<400))
        }
        // The log verifies whole, with a checkpoint signed by one node; proofs from another agree.
        let signer = try NoteSigner(name: Self.origin)
        let note = try nodes[0].checkpoint(origin: Self.origin, signer: signer, at: 1_900_002_000)
        var v = AuditVerifier(vkey: signer.verifier, origin: Self.origin)
        switch v.verify(try nodes[1].auditLog()) {
        case .success(let r): #expect(r.size == 1200 && r.checkpointsVerified == 1)
        case .failure(let f): Issue.record("the log does not verify: \(f)")
        }
        #expect(tlogCheckerInstalled, "golang-go and golang-golang-x-mod-dev are missing: scripts/setup.sh --peers")
        func b64(_ h: Hash) -> JSONValue { .string(Data(h).base64EncodedString()) }
        var inclusion: [JSONValue] = []
        for i in [0, 1, 399, 400, 1023, 1199] {
            let p = try nodes[2].inclusionProof(index: i, size: 1200)
            inclusion.append(
                .object(
                    JSONObject([
                        ("index", .number(String(i))), ("leaf", b64(try nodes[1].auditLeaf(i))),
                        ("proof", .array(p.map(b64))),
                    ])))
        }
        var consistency: [JSONValue] = []
        for m in [1, 400, 800, 1024, 1199] {
            let p = try nodes[1].consistencyProof(old: m, new: 1200)
            consistency.append(
                .object(
                    JSONObject([
                        ("size", .number(String(m))), ("root", b64(try nodes[0].auditRoot(size: m))),
                        ("proof", .array(p.map(b64))),
                    ])))
        }
        let (status, text) = try tlogCheck(
            vkey: signer.verifier.text, note: note,
            proofs: .object(JSONObject([("inclusion", .array(inclusion)), ("consistency", .array(consistency))])))
        #expect(status == 0, "\(text)")
        #expect(text.hasPrefix("ok \(Self.origin) 1200 6 5"), "\(text)")
    }

    @Test("two nodes fold the same alert from the same read: one commit lands, the other is a conflict")
    func nodesConflictOnOneAlert() throws {
        let url = try PostgresServer.shared().database("race")
        let a = try PostgresStateStore(url: url)
        let b = try PostgresStateStore(url: url)
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        try b.migrate()
        var c = Commit()
        c.alerts = [alert(1, key: "wl:x")]
        try a.commit(c)
        // The same new alert from the other node: refused (its id and key are taken), nothing else lands.
        var again = Commit()
        again.alerts = [alert(1, key: "wl:x")]
        again.offsets = [("node-b", 7)]
        #expect(throws: StateError.self) { try b.commit(again) }
        #expect(try b.offset(source: "node-b") == nil)
        // The same key under another id (another node created the alert meanwhile): a conflict, so that the writer
        // reads the stored alert and folds into it — one alert per key across nodes.
        var taken = Commit()
        taken.alerts = [alert(2, key: "wl:x")]
        let refused = #expect(throws: StateError.self) { try b.commit(taken) }
        #expect(refused?.isConflict == true)
        #expect(try b.alert(id: 2) == nil)
        // Id blocks: each node its own, never overlapping, above every stored id.
        let blocks = try [a.reserveAlertIDs(), b.reserveAlertIDs(), a.reserveAlertIDs()]
        #expect(blocks.allSatisfy { $0.count == 64 && $0.lowerBound > 1 })
        #expect(!blocks[0].overlaps(blocks[1]) && !blocks[1].overlaps(blocks[2]) && !blocks[0].overlaps(blocks[2]))

        let readA = try #require(try a.alert(id: 1))
        let readB = try #require(try b.alert(id: 1))
        var foldA = readA
        foldA.count = 2
        var foldB = readB
        foldB.count = 3
        var ca = Commit()
        ca.alerts = [foldA]
        ca.events = [EventDraft(at: 2, kind: "sighting", alertKey: "wl:x")]
        var cb = Commit()
        cb.alerts = [foldB]
        cb.events = [EventDraft(at: 2, kind: "sighting", alertKey: "wl:x")]
        try a.commit(ca)
        let conflict = #expect(throws: StateError.self) { try b.commit(cb) }
        #expect(conflict?.isConflict == true)
        #expect(try b.alert(id: 1)?.count == 2)
        #expect(try b.alert(id: 1)?.version == 1)
        // The refused commit's audit record is not in the log, and the log has no gap.
        #expect(try a.events(after: 0, limit: 10).map(\.event.kind) == ["sighting"])
        #expect(try b.auditSize() == 1)
    }

    @Test("lane claims: one node at a time, renewed by its holder, taken over when the lease runs out, fenced")
    func laneClaims() throws {
        let url = try PostgresServer.shared().database("lanes") + "&lease=0.4"
        let a = try PostgresStateStore(url: url)
        let b = try PostgresStateStore(url: url)
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        var c = Commit()
        c.outbox = [
            OutboxItem(
                receiver: "r", integration: "webhook/0", priorityRank: 2, createdAt: 1, nextAttemptAt: 1,
                payload: JSONObject())
        ]
        try a.commit(c)
        let lane = OutboxLane(receiver: "r", integration: "webhook/0")
        let id = try #require(try a.dueOutbox(lane: lane, now: 2, limit: 1).first?.id)
        let first = try #require(try a.claim(lane: lane))
        #expect(try b.claim(lane: lane) == nil)
        #expect(try a.claim(lane: lane) == first)  // renewed, same token
        // Another lane is free for B meanwhile.
        #expect(try b.claim(lane: OutboxLane(receiver: "r", integration: "email/0"))?.token == 1)
        usleep(600_000)  // A's lease runs out
        let taken = try #require(try b.claim(lane: lane))
        #expect(taken.token == first.token + 1)
        #expect(try a.claim(lane: lane) == nil)
        func outcome(_ fence: LaneClaim) -> AttemptOutcome {
            AttemptOutcome(
                outboxID: id, status: .delivered, attempts: 1, nextAttemptAt: 3, error: nil,
                event: EventDraft(at: 3, kind: "delivered"), fence: fence)
        }
        // A's outcome under its old claim: refused as a conflict, nothing recorded.
        let late = #expect(throws: StateError.self) { try a.finishAttempts([outcome(first)]) }
        #expect(late?.isConflict == true)
        #expect(try a.outbox(status: .delivered, limit: 5).isEmpty)
        #expect(try a.auditSize() == 0)
        try b.finishAttempts([outcome(taken)])
        #expect(try a.outbox(status: .delivered, limit: 5).map(\.id) == [id])
        // Released: A takes it at once, with the next token.
        try b.release(taken)
        #expect(try a.claim(lane: lane)?.token == taken.token + 1)
    }

    @Test("alerts of a node whose heartbeat stopped are adopted, each by one node, and not while it is alive")
    func orphansAreAdoptedOnce() throws {
        // A lease long enough for the adopting loop below on a loaded machine (at 0.4 s, b's own heartbeat ran out
        // while it was still adopting, and c rightly adopted b's alerts too).
        let url = try PostgresServer.shared().database("orphans") + "&lease=2"
        let a = try PostgresStateStore(url: url, node: "a")
        let b = try PostgresStateStore(url: url, node: "b")
        let c = try PostgresStateStore(url: url, node: "c")
        defer { for s in [a, b, c] { s.close() } }
        try a.migrate()
        try a.heartbeat()
        var commit = Commit()
        commit.alerts = (1...40).map { alert(Int64($0), key: "wl:o\($0)") }
        commit.alerts.append(alert(41, key: "wl:done", state: .resolved))
        try a.commit(commit)
        try b.heartbeat()
        try c.heartbeat()
        #expect(try b.adoptOrphans(limit: 100).alerts.isEmpty)  // a is alive
        usleep(2_300_000)  // a's heartbeat runs out; b and c keep theirs
        try b.heartbeat()
        try c.heartbeat()
        // b and c adopt at the same moment: every open alert once, the resolved one by nobody.
        let found = Mutex<[String: [Int64]]>([:])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let s = i == 0 ? b : c
            var mine: [Int64] = []
            while let batch = try? s.adoptOrphans(limit: 7).alerts, !batch.isEmpty { mine += batch.map(\.id) }
            found.withLock { $0[s.node] = mine }
        }
        let all = found.withLock { $0 }
        #expect(((all["b"] ?? []) + (all["c"] ?? [])).sorted() == Array(1...40))
        #expect(try b.adoptOrphans(limit: 100).alerts.isEmpty && c.adoptOrphans(limit: 100).alerts.isEmpty)
    }

    @Test("alert keys with NUL bytes and percent signs are stored apart and read back as they were")
    func keysWithNULAndPercent() throws {
        let s = try PostgresStateStore(url: try PostgresServer.shared().database("keys"))
        defer { s.close() }
        try s.migrate()
        let keys = ["a%00b", "a\u{0}b", "%", "%25", "x%2500\u{0}", "\u{0}%\u{0}", "plain"]
        var c = Commit()
        c.alerts = keys.enumerated().map { alert(Int64($0.offset + 1), key: $0.element) }
        c.notifyLog = keys.map { NotifyLogEntry(receiver: "r", key: $0, state: .firing, notifiedAt: 1) }
        c.escalations = keys.map { EscalationState(key: $0, route: 1 << 62, startedAt: 1, done: 0) }
        try s.commit(c)
        for (i, k) in keys.enumerated() { #expect(try s.alert(key: k)?.id == Int64(i + 1), "\(Array(k.utf8))") }
        #expect(
            try s.alerts(keys: keys).mapValues(\.id)
                == Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($0.element, Int64($0.offset + 1)) }))
        #expect(Set(try s.notifyLog().map(\.key)) == Set(keys))
        #expect(Set(try s.escalations().map(\.key)) == Set(keys))
        #expect(try s.escalations(key: "a\u{0}b").map(\.route) == [1 << 62])
        #expect(try s.owned(keys: keys) == Set(keys))
    }

    @Test("the server refuses updates, deletes and truncation of the audit log, whoever asks")
    func auditTablesAreAppendOnly() throws {
        let server = try PostgresServer.shared()
        let url = try server.database("ro")
        let s = try PostgresStateStore(url: url)
        defer { s.close() }
        try s.migrate()
        var c = Commit()
        c.events = [event(0, 1), event(0, 2)]
        try s.commit(c)
        let signer = try NoteSigner(name: Self.origin)
        _ = try s.checkpoint(origin: Self.origin, signer: signer, at: 1_900_000_100)
        let db = server.name(of: url)
        for sql in [
            "UPDATE audit_records SET record = 'x'", "DELETE FROM audit_records", "TRUNCATE audit_records",
            "UPDATE audit_nodes SET hash = '\\x00'", "DELETE FROM audit_nodes", "TRUNCATE audit_nodes CASCADE",
            "UPDATE audit_payloads SET payload = '{}'", "DELETE FROM audit_checkpoints",
        ] {
            #expect(throws: (any Error).self, "\(sql)") {
                try server.psql(["-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql])
            }
        }
        #expect(try s.auditSize() == 2)
        var v = AuditVerifier(vkey: signer.verifier, origin: Self.origin)
        if case .failure(let f) = v.verify(try s.auditLog()) { Issue.record("\(f)") }
    }

    @Test("the server stopped: commits fail as the database's failure; started again: the next commit lands")
    func serverGoneAndBack() throws {
        let dir = scratchDirectory("pg-own")
        defer {
            _ = try? PostgresServer.pgScript(["stop", dir.path])
            try? FileManager.default.removeItem(at: dir)
        }
        let base = try PostgresServer.pgScript(["start", dir.path, "--watch", String(getpid())])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let url = base + "?password_file=\(dir.appendingPathComponent("password").path)"
        let s = try PostgresStateStore(url: url, busyTimeout: 1)
        defer { s.close() }
        try s.migrate()
        var c = Commit()
        c.events = [event(0, 1)]
        c.offsets = [("stdin", 10)]
        try s.commit(c)
        try PostgresServer.pgScript(["stop", dir.path])
        c.offsets = [("stdin", 20)]
        let started = Date()
        let down = #expect(throws: StateError.self) { try s.commit(c) }
        #expect(down?.refusedChange == false && down?.isConflict == false)
        #expect(Date().timeIntervalSince(started) < 15)
        _ = try PostgresServer.pgScript(["start", dir.path])
        try s.commit(c)
        #expect(try s.offset(source: "stdin") == 20)
        #expect(try s.auditSize() == 2)
    }

    @Test("state URLs: the password never in the URL, parameters checked, TLS by default off loopback")
    func locations() throws {
        #expect(throws: StateError.self) { try StateLocation.parse("postgres://u:secret@db.example/tripline") }
        #expect(throws: StateError.self) { try StateLocation.parse("postgres://db.example/tripline") }
        #expect(throws: StateError.self) { try StateLocation.parse("postgres://u@db.example/") }
        #expect(throws: StateError.self) { try StateLocation.parse("postgres://u@db.example/t?sslmode=maybe") }
        #expect(throws: StateError.self) { try StateLocation.parse("postgres://u@db.example/t?lease=0") }
        #expect(throws: StateError.self) { try StateLocation.parse("postgres://u@db.example/t?colour=red") }
        guard case .postgres(let remote) = try StateLocation.parse("postgresql://u@db.example:6543/t") else {
            Issue.record("not read as PostgreSQL")
            return
        }
        #expect(remote.port == 6543 && remote.tls == .verifyFull && remote.lease == 30)
        guard case .postgres(let local) = try StateLocation.parse("postgres://u@127.0.0.1/t?lease=1.5&sslmode=require")
        else { return }
        #expect(local.tls == .require && local.lease == 1.5 && local.port == 5432)
        #expect(try StateLocation.parse("state/x.sqlite") == .sqlite(path: "state/x.sqlite"))
        // The password from a file (its line end dropped), else the environment.
        let dir = scratchDirectory("pgpw")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pw = dir.appendingPathComponent("pw").path
        try "s3cret\n".write(toFile: pw, atomically: true, encoding: .utf8)
        guard case .postgres(let f) = try StateLocation.parse("postgres://u@h/t?password_file=\(pw)") else { return }
        #expect(try f.password(environment: ["TRIPLINE_PG_PASSWORD": "env"]) == "s3cret")
        #expect(try local.password(environment: ["TRIPLINE_PG_PASSWORD": "env", "PGPASSWORD": "pg"]) == "env")
        #expect(try local.password(environment: ["PGPASSWORD": "pg"]) == "pg")
        #expect(try local.password(environment: [:]) == nil)
        guard case .postgres(let missing) = try StateLocation.parse("postgres://u@h/t?password_file=/nonexistent")
        else { return }
        #expect(throws: StateError.self) { try missing.password() }
    }

    @Test("a wrong password is the database's failure, named without the password")
    func wrongPassword() throws {
        let server = try PostgresServer.shared()
        let url = try server.database("pw")
        let dir = scratchDirectory("pgbad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("pw").path
        try "not-the-password".write(toFile: bad, atomically: true, encoding: .utf8)
        let wrong = url.replacingOccurrences(of: server.passwordFile, with: bad)
        let s = try PostgresStateStore(url: wrong)
        defer { s.close() }
        let e = #expect(throws: StateError.self) { try s.migrate() }
        #expect(e?.refusedChange == false)
        #expect(!"\(e.map { "\($0)" } ?? "")".contains("not-the-password"))
    }
}
