import Foundation
import TriplineAudit
import TriplineJSON
import TriplineState
import TriplineStateSQLite

/// Audit log: appends (events in batched transactions, WAL, synchronous=FULL, a signed checkpoint every 10
/// batches) and full verification.
func auditBench() {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-audit-bench-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let store = try! SQLiteStateStore(path: dir.appendingPathComponent("s.sqlite").path)
    try! store.migrate()
    let signer = try! NoteSigner(name: "bench/audit")
    let total = 200_000
    let batch = 2_000
    let t0 = nowNS()
    var i = 0
    var batches = 0
    while i < total {
        var c = Commit()
        for _ in 0..<batch {
            c.events.append(
                EventDraft(
                    at: 1_900_000_000 + Double(i), kind: "suppressed", alertKey: "wl:be-fedpol/list/R\(i % 1000)",
                    receiver: "be-oncall", reason: "dedup",
                    detail: JSONObject([("selector", .string("s\(i)")), ("count", .number(String(i)))])))
            i += 1
        }
        try! store.commit(c)
        batches += 1
        if batches % 10 == 0 { _ = try! store.checkpoint(origin: "bench/audit", signer: signer, at: 0) }
    }
    let appendS = Double(nowNS() - t0) / 1e9
    print(
        String(
            format: "audit: append %d records in batches of %d, checkpoint every 10 batches: %.2f s, %.0f records/s",
            total, batch, appendS, Double(total) / appendS))
    let t1 = nowNS()
    let log = try! store.auditLog()
    let loadS = Double(nowNS() - t1) / 1e9
    var v = AuditVerifier(vkey: signer.verifier, origin: "bench/audit")
    let t2 = nowNS()
    guard case .success(let r) = v.verify(log) else { fatalError("verify failed") }
    let verifyS = Double(nowNS() - t2) / 1e9
    print(
        String(
            format: "audit: verify %d records (%d checkpoints): load %.2f s + recompute %.2f s, %.0f records/s",
            r.size, r.checkpointsVerified, loadS, verifyS, Double(r.size) / (loadS + verifyS)))
}
