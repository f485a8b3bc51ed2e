import Foundation
import Testing
import TriplineJSON

@Suite("tripline audit", .serialized)
struct AuditCLITests {
    static func sql(_ db: String, _ script: String) throws -> String {
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = [
            "python3", "-c", "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); " + script + "; db.commit()", db,
        ]
        let out = Pipe()
        q.standardOutput = out
        q.standardError = out
        try q.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        return text
    }

    @Test("keygen, checkpoints from serve, verify, prove, query, export and offline bundle verification, tampering")
    func auditTools() throws {
        let dir = try ServeTests.deployment(
            entries: 50,
            extra: #"audit: {origin: "tripline.test/audit", key_file: keys/audit.key, checkpoint_interval: 1h}"#)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The deployment's principals plus an auditor.
        let cfg = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(
            of: "  - {id: analyst-be, partner: be-fedpol, role: analyst}",
            with:
                "  - {id: analyst-be, partner: be-fedpol, role: analyst}\n  - {id: auditor-1, partner: ops, role: auditor}"
        ).write(to: cfg, atomically: true, encoding: .utf8)
        let c = ["--config", "tripline.yaml"]
        let key = try CLITests.run(["audit", "keygen"] + c, cwd: dir)
        #expect(key.status == 0, "\(key.stderr)")
        let vkey = key.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(vkey.hasPrefix("tripline.test/audit+"))
        let perms = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("keys/audit.key").path)
        #expect((perms[.posixPermissions] as? Int) == 0o600)
        #expect(try CLITests.run(["audit", "keygen"] + c, cwd: dir).status != 0)  // never overwrites a key
        var input = ""
        for i in 0..<200 {
            input += #"{"id":"s\#(i)","type":"phone","value":"+32470\#(String(format: "%06d", i % 80))"}"# + "\n"
        }
        let serve = try CLITests.run(["serve"] + c, stdin: input, cwd: dir)
        #expect(serve.status == 0, "\(serve.stderr)")
        let db = dir.appendingPathComponent("state/state.sqlite").path
        #expect(
            try Self.sql(db, "print(db.execute('select count(*) from audit_checkpoints').fetchone()[0])").hasPrefix("1")
        )
        let ok = try CLITests.run(["audit", "verify", "--vkey", vkey] + c, cwd: dir)
        #expect(ok.status == 0 && ok.stdout.hasPrefix("ok: "), "\(ok.stderr)")
        // A checkpoint from the command line, kept by the auditor.
        let cp = try CLITests.run(["audit", "checkpoint"] + c, cwd: dir)
        #expect(cp.status == 0 && cp.stdout.hasPrefix("tripline.test/audit\n"))
        let saved = dir.appendingPathComponent("auditor-checkpoint")
        try cp.stdout.write(to: saved, atomically: true, encoding: .utf8)
        // Proofs print one base64 hash per line.
        let proof = try CLITests.run(["audit", "prove", "--inclusion", "3"] + c, cwd: dir)
        #expect(proof.status == 0 && !proof.stdout.isEmpty)
        #expect(proof.stdout.split(separator: "\n").allSatisfy { Data(base64Encoded: String($0))?.count == 32 })
        let cons = try CLITests.run(["audit", "prove", "--consistency", "5", "20"] + c, cwd: dir)
        #expect(cons.status == 0 && cons.stdout.split(separator: "\n").count >= 1, "\(cons.stderr)")
        // Queries: auditors only, and each is recorded.
        let q = try CLITests.run(
            ["audit", "query", "--list", "crash", "--as", "auditor-1", "--reason", "DPO review 4"] + c, cwd: dir)
        #expect(q.status == 0 && !q.lines.isEmpty, "\(q.stderr)")
        #expect(q.lines.allSatisfy { $0["payload"]?.stringValue?.contains("/crash/") == true })
        let denied = try CLITests.run(["audit", "query", "--as", "analyst-be", "--reason", "curious"] + c, cwd: dir)
        #expect(denied.status == 1)
        let consulted = try Self.sql(
            db,
            "print(db.execute(\"select count(*) from audit_records r join audit_payloads p on p.idx=r.idx where json_extract(r.record,'$.kind')='audit_consultation' and json_extract(p.payload,'$.reason')='DPO review 4'\").fetchone()[0])"
        )
        #expect(consulted.hasPrefix("1"))
        // Export and offline verification; a changed record in the bundle fails.
        let bundle = dir.appendingPathComponent("bundle").path
        let ex = try CLITests.run(
            ["audit", "export", "--out", bundle, "--receiver", "log", "--as", "auditor-1", "--reason", "court order 9"]
                + c,
            cwd: dir)
        #expect(ex.status == 0, "\(ex.stderr)")
        let vb = try CLITests.run(["audit", "verify", "--bundle", bundle], cwd: dir)
        #expect(vb.status == 0 && vb.stdout.hasPrefix("ok: "), "\(vb.stderr)")
        let recs = bundle + "/records.ndjson"
        let text = try String(contentsOfFile: recs, encoding: .utf8)
        try text.replacingOccurrences(of: "delivered", with: "delivere_").write(
            toFile: recs, atomically: true, encoding: .utf8)
        let vbBad = try CLITests.run(["audit", "verify", "--bundle", bundle], cwd: dir)
        #expect(vbBad.status == 1 && vbBad.stderr.contains("FAILED"), "\(vbBad.stdout)")
        // Erasure: the payload goes, the record and every proof stay; the erasure is itself a record.
        let er = try CLITests.run(
            ["audit", "erase", "2", "--as", "auditor-1", "--reason", "GDPR art. 17 request 31"] + c, cwd: dir)
        #expect(er.status == 0, "\(er.stderr)")
        let afterErase = try CLITests.run(
            ["audit", "verify", "--vkey", vkey, "--checkpoint", saved.path] + c, cwd: dir)
        #expect(afterErase.status == 0 && afterErase.stdout.contains("1 payloads erased"), "\(afterErase.stderr)")
        #expect(
            try CLITests.run(["audit", "erase", "2", "--as", "auditor-1", "--reason", "again"] + c, cwd: dir).status
                == 1)
        // Tampering with the database: a payload changed behind the triggers' back.
        _ = try Self.sql(
            db,
            "db.execute('drop trigger audit_payloads_no_update'); db.execute(\"update audit_payloads set payload = replace(payload, 'crash', 'crass') where idx = 7\")"
        )
        let bad = try CLITests.run(["audit", "verify", "--vkey", vkey] + c, cwd: dir)
        #expect(bad.status == 1 && bad.stderr.contains("record 7: payload does not match"), "\(bad.stderr)")
    }

    @Test("truncation is caught against an auditor's earlier checkpoint")
    func truncation() throws {
        let dir = try ServeTests.deployment(
            entries: 10, extra: "audit: {origin: \"tripline.test/audit\", key_file: keys/audit.key}")
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = ["--config", "tripline.yaml"]
        _ = try CLITests.run(["audit", "keygen"] + c, cwd: dir)
        var input = ""
        for i in 0..<30 {
            input += #"{"id":"s\#(i)","type":"phone","value":"+32470\#(String(format: "%06d", i % 10))"}"# + "\n"
        }
        #expect(try CLITests.run(["serve"] + c, stdin: input, cwd: dir).status == 0)
        let cp = try CLITests.run(["audit", "checkpoint"] + c, cwd: dir)
        let saved = dir.appendingPathComponent("saved")
        try cp.stdout.write(to: saved, atomically: true, encoding: .utf8)
        let db = dir.appendingPathComponent("state/state.sqlite").path
        // The attacker drops the last records, their nodes and every checkpoint, consistently.
        let out = try Self.sql(
            db,
            """
            [db.execute('drop trigger ' + t) for t in ('audit_records_no_delete','audit_nodes_no_delete','audit_checkpoints_no_delete')]
            n = db.execute('select count(*) from audit_records').fetchone()[0]; k = n - 5
            db.execute('delete from audit_records where idx >= ?', (k,)); db.execute('delete from audit_payloads where idx >= ?', (k,))
            db.execute('delete from audit_nodes where (idx + 1) * (1 << level) > ?', (k,)); db.execute('delete from audit_checkpoints')
            print(k)
            """)
        let k = Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(k > 0, "\(out)")
        let without = try CLITests.run(["audit", "verify"] + c, cwd: dir)
        #expect(
            without.status == 0, "a consistent truncation is invisible without an earlier checkpoint: \(without.stderr)"
        )
        let with = try CLITests.run(["audit", "verify", "--checkpoint", saved.path] + c, cwd: dir)
        #expect(
            with.status == 1 && with.stderr.contains("record \(k): the log has \(k) records but a checkpoint covers"),
            "\(with.stderr)")
    }
}
