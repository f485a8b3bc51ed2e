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
        ins.entries.insert(AuditEntry.make(index: 400, at: 1, kind: "forged", fields: JSONObject(), salt: [1]), at: 400)
        fails(ins, "insertion")
        var dup = log
        dup.entries.insert(log.entries[400], at: 401)
        fails(dup, "duplication")
        var swap = log
        swap.entries.swapAt(10, 11)
        fails(swap, "reordering")
        // A consistent rewrite (records and every node recomputed) still breaks the signed checkpoint.
        var rewritten = log
        rewritten.entries[7] = AuditEntry.make(index: 7, at: 1, kind: "forged", fields: JSONObject(), salt: [1])
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
        // Erasure of a payload keeps every proof valid.
        var erased = log
        erased.entries[20].payload = nil
        erased.entries[20].salt = nil
        guard case .success(let r2) = v.verify(erased) else {
            Issue.record("an erased payload must not break verification")
            return
        }
        #expect(r2.erased == 1)
    }

    static func recomputedNodes(_ entries: [AuditEntry]) -> [AuditLog.NodeKey: Hash] {
        var range = CompactRange()
        var nodes: [AuditLog.NodeKey: Hash] = [:]
        for e in entries { range.append(e.leaf) { l, i, h in nodes[AuditLog.NodeKey(level: l, index: i)] = h } }
        return nodes
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
