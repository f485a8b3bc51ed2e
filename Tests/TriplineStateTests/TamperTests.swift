import Foundation
import Testing
import TriplineAudit
import TriplineJSON
import TriplineState
import TriplineStateSQLite

/// The audit log against every kind of tampering an attacker with the database file can do.
@Suite("Audit log tamper evidence")
struct TamperTests {
    static let origin = "tripline.test/audit"
    static let salt = [UInt8](repeating: 1, count: 16)

    static func makeLog() throws -> (AuditLog, NoteVerifier, SQLiteStateStore, () -> Void) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-tamper-\(UUID().uuidString)")
        let s = try SQLiteStateStore(path: dir.appendingPathComponent("s.sqlite").path)
        try s.migrate()
        for batch in 0..<21 {
            var c = Commit()
            for k in 0..<50 {
                let i = batch * 50 + k
                c.events.append(
                    EventDraft(
                        at: 1_900_000_000 + Double(i), kind: i % 3 == 0 ? "alert_opened" : "suppressed",
                        alertKey: "wl:be-fedpol/list/R\(i % 97)", receiver: i % 2 == 0 ? "be-oncall" : nil,
                        principal: i % 5 == 0 ? "analyst-\(i % 4)" : nil, reason: i % 3 == 1 ? "dedup" : nil,
                        detail: JSONObject([("selector", .string("sel-\(i)")), ("count", .number(String(i)))])))
            }
            try s.commit(c)
        }
        let signer = try NoteSigner(name: origin)
        _ = try s.checkpoint(origin: origin, signer: signer, at: 1_900_002_000)
        return (try s.auditLog(), signer.verifier, s, { try? FileManager.default.removeItem(at: dir) })
    }

    @Test func everyModificationIsDetected() throws {
        let (log, vkey, store, cleanup) = try Self.makeLog()
        defer { cleanup() }
        var v = AuditVerifier(vkey: vkey, origin: Self.origin)
        guard case .success(let report) = v.verify(log) else {
            Issue.record("the untouched log must verify: \(v.verify(log))")
            return
        }
        #expect(report.size == 1050 && report.checkpointsVerified == 1)
        #expect(report.root == (try store.auditRoot(size: 1050)))
        // The store's events API reads the same log back.
        let first = try store.events(after: 0, limit: 2)
        #expect(
            first.first?.event.detail["selector"] == .string("sel-0")
                && first.first?.event.alertKey == "wl:be-fedpol/list/R0")

        func fails(_ l: AuditLog, _ what: @autoclosure () -> String) {
            if case .success = v.verify(l) { Issue.record("not detected: \(what())") }
        }
        // Every byte of every stored tree hash.
        var flips = 0
        var l = log  // mutated in place and restored: one copy, not one per flip
        for key in log.nodes.keys.sorted(by: { ($0.level, $0.index) < ($1.level, $1.index) }) {
            for b in 0..<32 {
                l.nodes[key]![b] ^= 0x01
                fails(l, "node \(key) byte \(b)")
                l.nodes[key]![b] ^= 0x01
                flips += 1
            }
        }
        #expect(flips == 32 * (2 * 1050 - 1050.nonzeroBitCount))
        // Every payload and salt byte of 50 sampled records, and every record byte of 5.
        for i in stride(from: 3, to: 1050, by: 21) {
            let payload = Array(log.entries[i].payload!.utf8)
            for b in payload.indices {
                var l = log
                var p = payload
                p[b] ^= 0x20
                l.entries[i].payload = String(decoding: p, as: UTF8.self)
                fails(l, "payload \(i) byte \(b)")
            }
            for b in 0..<16 {
                var l = log
                l.entries[i].salt![b] ^= 0x01
                fails(l, "salt \(i) byte \(b)")
            }
        }
        for i in [0, 1, 511, 512, 1049] {
            let record = Array(log.entries[i].record.utf8)
            for b in record.indices {
                var l = log
                var r = record
                r[b] ^= 0x01
                l.entries[i].record = String(decoding: r, as: UTF8.self)
                fails(l, "record \(i) byte \(b)")
            }
        }
        // Deletion, insertion, duplication, reordering.
        var del = log
        del.entries.remove(at: 400)
        fails(del, "deletion")
        var ins = log
        ins.entries.insert(
            AuditEntry.make(index: 400, at: 1, kind: "forged", fields: JSONObject(), salt: Self.salt), at: 400)
        fails(ins, "insertion")
        var dup = log
        dup.entries.insert(log.entries[400], at: 401)
        fails(dup, "duplication")
        var swap = log
        swap.entries.swapAt(10, 11)
        fails(swap, "reordering")
        // A consistent rewrite (records and every node recomputed) still breaks the signed checkpoint.
        var rewritten = log
        rewritten.entries[7] = AuditEntry.make(index: 7, at: 1, kind: "forged", fields: JSONObject(), salt: Self.salt)
        rewritten.nodes = Self.recomputedNodes(rewritten.entries)
        fails(rewritten, "consistent rewrite")
        // Truncation: the last 50 records and their nodes removed consistently, the stored checkpoint deleted
        // too; an auditor's earlier checkpoint exposes it.
        var truncated = log
        truncated.entries.removeLast(50)
        truncated.nodes = Self.recomputedNodes(truncated.entries)
        let saved = truncated.checkpoints
        truncated.checkpoints = []
        if case .failure = v.verify(truncated) { Issue.record("a consistent truncation without a checkpoint verifies") }
        guard case .failure(let f) = v.verify(truncated, checkpoints: saved) else {
            Issue.record("truncation not detected against an earlier checkpoint")
            return
        }
        #expect(f.index == 1000 && f.reason.contains("truncated"))
        // A payload gone without an audited erasure is a failure, not an erasure (real erasures: below).
        var erased = log
        erased.entries[20].payload = nil
        erased.entries[20].salt = nil
        guard case .failure(let f2) = v.verify(erased) else {
            Issue.record("a payload removed without an audited erasure verifies")
            return
        }
        #expect(f2.description == "record 20: payload missing, and no audited erasure (payload_erased record) names it")
    }

    static func recomputedNodes(_ entries: [AuditEntry]) -> [AuditLog.NodeKey: Hash] {
        var range = CompactRange()
        var nodes: [AuditLog.NodeKey: Hash] = [:]
        for e in entries { range.append(e.leaf) { l, i, h in nodes[AuditLog.NodeKey(level: l, index: i)] = h } }
        return nodes
    }

    /// Runs a Python sqlite3 script on the database (the attacker's tool: not our reader or writer).
    @discardableResult
    static func sql(_ db: String, _ script: String) throws -> String {
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = [
            "python3", "-c", "import sqlite3,sys,hashlib; db=sqlite3.connect(sys.argv[1]); " + script + "; db.commit()",
            db,
        ]
        let out = Pipe()
        q.standardOutput = out
        q.standardError = out
        try q.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        #expect(q.terminationStatus == 0, "\(text)")
        return text
    }

    static func failure(_ store: SQLiteStateStore, _ vkey: NoteVerifier) throws -> String {
        var v = AuditVerifier(vkey: vkey, origin: origin)
        switch v.verify(try store.auditLog()) {
        case .success: return "verified"
        case .failure(let f): return f.description
        }
    }

    @Test("verify names the changed record itself, not the start of the highest changed subtree")
    func changedRecordIsNamed() throws {
        let (_, vkey, store, cleanup) = try Self.makeLog()
        defer { cleanup() }
        try Self.sql(
            store.path,
            """
            db.execute('drop trigger audit_records_no_update'); db.execute('drop trigger audit_nodes_no_update')
            db.execute('update audit_records set record = replace(record, ?, ?) where idx = 20', ('"kind":"suppressed"', '"kind":"forged"'))
            """)
        #expect(
            try Self.failure(store, vkey)
                == "record 20: record does not hash to its stored leaf (tree node level 0, index 20): changed")
        // The stored leaf rewritten to match: the first stored node that no longer does is named with its records.
        try Self.sql(
            store.path,
            """
            r = db.execute('select record from audit_records where idx = 20').fetchone()[0]
            db.execute('update audit_nodes set hash = ? where level = 0 and idx = 20', (hashlib.sha256(b'\\x00' + r.encode()).digest(),))
            """)
        #expect(
            try Self.failure(store, vkey)
                == "record 20: stored tree node (level 1, index 10), over records 20..<22, differs from the records' hashes"
        )
    }

    @Test("text after a NUL byte and bytes that are not UTF-8 are verified as stored")
    func exactBytesAreVerified() throws {
        let (log, vkey, store, cleanup) = try Self.makeLog()
        defer { cleanup() }
        // A payload with U+FFFD in it: bytes EF BF BD replaced by an invalid FF must not read back as the same text.
        var c = Commit()
        c.events = [
            EventDraft(
                at: 1_900_003_000, kind: "suppressed", detail: JSONObject([("selector", .string("caf\u{FFFD}"))]))
        ]
        try store.commit(c)
        #expect(try Self.failure(store, vkey) == "verified")
        try Self.sql(
            store.path,
            """
            db.execute('drop trigger audit_payloads_no_update'); db.execute('drop trigger audit_records_no_update')
            p = db.execute('select payload from audit_payloads where idx = 1050').fetchone()[0].encode()
            db.execute('update audit_payloads set payload = cast(? as text) where idx = 1050', (p.replace(b'\\xef\\xbf\\xbd', b'\\xff'),))
            """)
        #expect(try Self.failure(store, vkey) == "record 1050: payload is not UTF-8 text")
        // A NUL and a forged statement appended to a payload, then to a record.
        try Self.sql(
            store.path,
            """
            db.execute("update audit_payloads set payload = payload || ? where idx = 40", ('\\x00{"forged":true}',))
            """)
        #expect(try Self.failure(store, vkey) == "record 40: payload does not match the record's payload_sha256")
        try Self.sql(
            store.path,
            """
            db.execute("update audit_records set record = record || ? where idx = 30", ('\\x00{"forged":true}',))
            """)
        let at = log.entries[30].record.utf8.count + 1
        #expect(
            try Self.failure(store, vkey)
                == "record 30: record is not JSON (unexpected data after the JSON value at byte \(at))")
    }

    @Test("a payload counts as erased only when an audited erasure names it")
    func erasureIsOnlyWhatAnAuditedErasureSays() throws {
        let (log, vkey, store, cleanup) = try Self.makeLog()
        defer { cleanup() }
        // A real erasure: the payload goes, every proof stays, the erasure is record 1050.
        let erased = try store.erasePayload(
            index: 5,
            event: EventDraft(
                at: 1_900_003_000, kind: "payload_erased", principal: "auditor-1", reason: "GDPR art. 17",
                detail: JSONObject([("index", .number("5"))])))
        #expect(erased)
        var v = AuditVerifier(vkey: vkey, origin: Self.origin)
        let after = try store.auditLog()
        guard case .success(let r) = v.verify(after) else {
            Issue.record("an audited erasure must verify: \(v.verify(after))")
            return
        }
        #expect(r.size == 1051 && r.erased == 1)
        #expect(try store.events(after: 5, limit: 1).first?.event.detail == JSONObject([("erased", .bool(true))]))
        // The erased payload back in place: the erasure did not happen.
        var restored = after
        restored.entries[5] = log.entries[5]
        #expect(
            v.verify(restored).failureText == "record 5: record 1050 erased this payload, yet it is still stored")
        // Tampering behind the store's back, highest index first (the lowest bad record is always the one named).
        try Self.sql(
            store.path,
            """
            db.execute("insert into audit_payloads (idx, salt, payload) values (5000, zeroblob(16), '{}')")
            """)
        #expect(try Self.failure(store, vkey) == "record 5000: a payload is stored for a record that is not in the log")
        try Self.sql(
            store.path,
            """
            db.execute('create table p2 (idx INTEGER PRIMARY KEY, salt BLOB, payload TEXT)')
            db.execute('insert into p2 select idx, salt, payload from audit_payloads where idx < 5000')
            db.execute('drop table audit_payloads'); db.execute('alter table p2 rename to audit_payloads')
            db.execute("update audit_payloads set salt = x'01' where idx = 900")
            """)
        #expect(try Self.failure(store, vkey) == "record 900: salt is 1 bytes, not 16")
        try Self.sql(store.path, "db.execute('update audit_payloads set payload = NULL where idx = 800')")
        #expect(try Self.failure(store, vkey) == "record 800: salt stored without its payload")
        try Self.sql(store.path, "db.execute('update audit_payloads set salt = NULL where idx = 700')")
        #expect(try Self.failure(store, vkey) == "record 700: payload stored without its salt")
        try Self.sql(store.path, "db.execute('delete from audit_payloads where idx = 600')")
        #expect(
            try Self.failure(store, vkey)
                == "record 600: payload missing, and no audited erasure (payload_erased record) names it")
        #expect(
            try store.events(after: 600, limit: 1).first?.event.detail == JSONObject([("payload_missing", .bool(true))])
        )
    }

    @Test("the store refuses to erase an erasure record or the eraser's own consultation")
    func erasureRules() throws {
        let (_, vkey, store, cleanup) = try Self.makeLog()
        defer { cleanup() }
        var c = Commit()
        c.events = [
            EventDraft(at: 1_900_003_000, kind: "audit_consultation", principal: "auditor-1", reason: "review"),
            EventDraft(at: 1_900_003_001, kind: "audit_consultation", principal: "auditor-2", reason: "review"),
            EventDraft(at: 1_900_003_002, kind: "consultation", principal: "auditor-1", reason: "alerts"),
        ]
        try store.commit(c)
        func erase(_ i: Int, by p: String) throws -> Bool {
            try store.erasePayload(
                index: i,
                event: EventDraft(
                    at: 1_900_003_010, kind: "payload_erased", principal: p, reason: "GDPR",
                    detail: JSONObject([("index", .number(String(i)))])))
        }
        let own = #expect(throws: StateError.self) { try erase(1050, by: "auditor-1") }
        #expect(
            own?.description
                == "state database: record 1050 logs auditor-1's own consultation (audit_consultation): an auditor never erases its own consultations"
        )
        let ownAlerts = #expect(throws: StateError.self) { try erase(1052, by: "auditor-1") }
        #expect(ownAlerts?.refusedChange == true)
        #expect(try erase(1051, by: "auditor-1"))
        let erasure = #expect(throws: StateError.self) { try erase(1053, by: "auditor-2") }
        #expect(
            erasure?.description
                == "state database: record 1053 is an erasure record (payload_erased): erasure records are never erased"
        )
        // Refusals change nothing: one erasure, the log verifies.
        #expect(try store.auditSize() == 1054)
        var v = AuditVerifier(vkey: vkey, origin: Self.origin)
        #expect(v.verify(try store.auditLog()).erasedCount == 1)
    }

    @Test func proofsFromTheStoreVerify() throws {
        let (_, _, store, cleanup) = try Self.makeLog()
        defer { cleanup() }
        let root = try store.auditRoot(size: 1050)
        for i in [0, 1, 2, 500, 1023, 1024, 1049] {
            let p = try store.inclusionProof(index: i, size: 1050)
            #expect(Merkle.verifyInclusion(leaf: try store.auditLeaf(i), index: i, size: 1050, proof: p, root: root))
        }
        for m in [1, 7, 512, 1000, 1049] {
            let p = try store.consistencyProof(old: m, new: 1050)
            #expect(
                Merkle.verifyConsistency(
                    size1: m, size2: 1050, proof: p, root1: try store.auditRoot(size: m), root2: root))
        }
    }
}

extension Result where Success == AuditVerifier.Report, Failure == AuditVerifier.Failure {
    var failureText: String? {
        if case .failure(let f) = self { return f.description }
        return nil
    }
    var erasedCount: Int? {
        if case .success(let r) = self { return r.erased }
        return nil
    }
}
