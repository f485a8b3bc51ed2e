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

    /// A deployment with auditors auditor-1 and auditor-2 and an admin, an audit key, and 200 lines served.
    static func served() throws -> (dir: URL, c: [String], db: String, vkey: String) {
        let dir = try ServeTests.deployment(
            entries: 50, extra: #"audit: {origin: "tripline.test/audit", key_file: keys/audit.key}"#)
        let cfg = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(
            of: "  - {id: analyst-be, partner: be-fedpol, role: analyst}",
            with: """
                  - {id: analyst-be, partner: be-fedpol, role: analyst}
                  - {id: auditor-1, partner: ops, role: auditor}
                  - {id: auditor-2, partner: ops, role: auditor}
                  - {id: admin-1, partner: ops, role: admin}
                """
        ).write(to: cfg, atomically: true, encoding: .utf8)
        let c = ["--config", "tripline.yaml"]
        let key = try CLITests.run(["audit", "keygen"] + c, cwd: dir)
        #expect(key.status == 0, "\(key.stderr)")
        var input = ""
        for i in 0..<200 {
            input += #"{"id":"s\#(i)","type":"phone","value":"+32470\#(String(format: "%06d", i % 80))"}"# + "\n"
        }
        let serve = try CLITests.run(["serve"] + c, stdin: input, cwd: dir)
        #expect(serve.status == 0, "\(serve.stderr)")
        return (
            dir, c, dir.appendingPathComponent("state/state.sqlite").path,
            key.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    static func lastIndex(_ db: String) throws -> Int {
        Int(
            try sql(db, "print(db.execute('select max(idx) from audit_records').fetchone()[0])").trimmingCharacters(
                in: .whitespacesAndNewlines)) ?? -1
    }

    @Test("verify names the tampered record itself: a changed record, text after a NUL in a payload or a record")
    func verifyNamesTheRecord() throws {
        let (dir, c, db, vkey) = try Self.served()
        defer { try? FileManager.default.removeItem(at: dir) }
        func verify() throws -> CLITests.Run { try CLITests.run(["audit", "verify", "--vkey", vkey] + c, cwd: dir) }
        #expect(try verify().status == 0)
        _ = try Self.sql(
            db,
            #"""
            import json
            [db.execute('drop trigger ' + t) for t in ('audit_records_no_update', 'audit_payloads_no_update')]
            r = db.execute('select record from audit_records where idx = 20').fetchone()[0]
            db.execute('update audit_records set record = ? where idx = 20', (r.replace('"kind":"%s"' % json.loads(r)['kind'], '"kind":"forged"'),))
            """#)
        var bad = try verify()
        #expect(bad.status == 1)
        #expect(
            bad.stderr
                == "tripline: audit log verification FAILED: record 20: record does not hash to its stored leaf (tree node level 0, index 20): changed\n"
        )
        _ = try Self.sql(
            db,
            #"db.execute('update audit_payloads set payload = payload || ? where idx = 9', ('\x00{"forged":true}',))"#)
        bad = try verify()
        #expect(bad.status == 1)
        #expect(
            bad.stderr
                == "tripline: audit log verification FAILED: record 9: payload does not match the record's payload_sha256\n"
        )
        let n = try Self.sql(
            db,
            #"""
            r = db.execute('select record from audit_records where idx = 3').fetchone()[0]; print(len(r.encode()))
            db.execute('update audit_records set record = ? where idx = 3', (r + '\x00{"forged":true}',))
            """#
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        bad = try verify()
        #expect(bad.status == 1)
        #expect(
            bad.stderr
                == "tripline: audit log verification FAILED: record 3: record is not JSON (unexpected data after the JSON value at byte \((Int(n) ?? 0) + 1))\n"
        )
    }

    @Test("a payload is erased only when an audited erasure says so: verify, query, export and bundles")
    func erasureIsOnlyWhatAnAuditedErasureSays() throws {
        let (dir, c, db, vkey) = try Self.served()
        defer { try? FileManager.default.removeItem(at: dir) }
        let auditor = ["--as", "auditor-1", "--reason", "DPO review 7"] + c
        #expect(try CLITests.run(["audit", "erase", "2"] + auditor, cwd: dir).status == 0)
        let e = try Self.lastIndex(db)
        let ok = try CLITests.run(["audit", "verify", "--vkey", vkey] + c, cwd: dir)
        #expect(ok.status == 0 && ok.stdout.hasSuffix(", 1 payloads erased\n"), "\(ok.stdout)\(ok.stderr)")
        // The bundle carries the erasure record that explains the erased payload.
        let bundle = dir.appendingPathComponent("bundle").path
        let ex = try CLITests.run(["audit", "export", "--out", bundle] + auditor, cwd: dir)
        #expect(ex.status == 0, "\(ex.stderr)")
        let vb = try CLITests.run(["audit", "verify", "--bundle", bundle], cwd: dir)
        #expect(vb.status == 0 && vb.stdout.hasSuffix(", 1 payloads erased\n"), "\(vb.stdout)\(vb.stderr)")
        let recordsPath = bundle + "/records.ndjson"
        let proofsPath = bundle + "/proofs.ndjson"
        let records = try String(contentsOfFile: recordsPath, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONParser.parse(String($0)).objectValue)
        }
        let proofs = try String(contentsOfFile: proofsPath, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(records[2]["erased"] == .bool(true) && records[2]["erased_by"] == .number(String(e)))
        func bundleFailure(_ lines: [JSONObject], _ proofLines: [String]? = nil) throws -> String {
            try (lines.map { JSONWriter.string(.object($0)) + "\n" }.joined()).write(
                toFile: recordsPath, atomically: false, encoding: .utf8)
            try ((proofLines ?? proofs).joined(separator: "\n") + "\n").write(
                toFile: proofsPath, atomically: false, encoding: .utf8)
            let r = try CLITests.run(["audit", "verify", "--bundle", bundle], cwd: dir)
            #expect(r.status == 1)
            return r.stderr
        }
        var l = records
        l[4]["salt"] = nil
        #expect(
            try bundleFailure(l) == "tripline: bundle verification FAILED: record 4: payload stored without its salt\n")
        l = records
        l[4]["salt"] = "%%%"
        #expect(try bundleFailure(l) == "tripline: bundle verification FAILED: record 4: salt is not base64\n")
        l = records
        l.remove(at: e)
        var p = proofs
        p.remove(at: e)
        #expect(
            try bundleFailure(l, p)
                == "tripline: bundle verification FAILED: record 2: payload missing, and no audited erasure (payload_erased record) names it in the bundle\n"
        )
        // A payload deleted behind the store's back: verify fails, query flags it and fails, export refuses.
        _ = try Self.sql(db, "db.execute('delete from audit_payloads where idx = 6')")
        let missing = "record 6: payload missing, and no audited erasure (payload_erased record) names it"
        let bad = try CLITests.run(["audit", "verify", "--vkey", vkey] + c, cwd: dir)
        #expect(bad.status == 1)
        #expect(bad.stderr == "tripline: audit log verification FAILED: \(missing)\n")
        let q = try CLITests.run(["audit", "query"] + auditor, cwd: dir)
        #expect(q.status == 1)
        #expect(q.stderr == "tripline: audit log verification FAILED: \(missing)\n")
        let line6 = try #require(q.lines.first { $0["index"] == .number("6") })
        #expect(line6.keys == ["index", "record", "problem"])
        #expect(line6["problem"] == "payload missing, and no audited erasure (payload_erased record) names it")
        let line2 = try #require(q.lines.first { $0["index"] == .number("2") })
        #expect(line2.keys == ["index", "record", "erased", "erased_by"] && line2["erased_by"] == .number(String(e)))
        let bundle2 = dir.appendingPathComponent("bundle2").path
        let ex2 = try CLITests.run(["audit", "export", "--out", bundle2] + auditor, cwd: dir)
        #expect(ex2.status == 1)
        #expect(ex2.stderr == "tripline: audit log verification FAILED: \(missing); nothing exported\n")
        #expect(!FileManager.default.fileExists(atPath: bundle2))
    }

    @Test("erase: auditors only, never an erasure record, never one's own consultation; refusals audited")
    func eraseRules() throws {
        let (dir, c, db, vkey) = try Self.served()
        defer { try? FileManager.default.removeItem(at: dir) }
        func erase(_ i: Int, as p: String, _ why: String) throws -> CLITests.Run {
            try CLITests.run(["audit", "erase", String(i), "--as", p, "--reason", why] + c, cwd: dir)
        }
        #expect(
            try CLITests.run(["audit", "query", "--as", "auditor-1", "--reason", "review 1"] + c, cwd: dir).status == 0)
        let k = try Self.lastIndex(db)
        let own = try erase(k, as: "auditor-1", "tidy up")
        #expect(own.status == 1)
        #expect(
            own.stderr
                == "tripline: refused: record \(k) logs auditor-1's own consultation (audit_consultation): an auditor never erases its own consultations\n"
        )
        #expect(try erase(k, as: "auditor-2", "GDPR art. 17 request 40").status == 0)
        let e = try Self.lastIndex(db)
        #expect(e == k + 2)
        let erasure = try erase(e, as: "auditor-1", "undo")
        #expect(erasure.status == 1)
        #expect(
            erasure.stderr
                == "tripline: refused: record \(e) is an erasure record (payload_erased): erasure records are never erased\n"
        )
        let admin = try erase(3, as: "admin-1", "cleanup")
        #expect(admin.status == 1)
        #expect(admin.stderr == "tripline: admin-1 (admin) may not audit erase\n")
        let analyst = try erase(3, as: "analyst-be", "cleanup")
        #expect(analyst.status == 1)
        #expect(analyst.stderr == "tripline: analyst-be (analyst) may not audit erase\n")
        // Refused by role (the policy, before the record is looked at): a `refused` record each.
        let byRole = try Self.sql(
            db,
            """

            for r in db.execute("select p.payload from audit_records r join audit_payloads p on p.idx = r.idx where r.record like '%\\"kind\\":\\"refused\\"%' order by r.idx"): print(r[0])
            """
        ).split(separator: "\n").map { try JSONParser.parse(String($0)).objectValue ?? JSONObject() }
        #expect(byRole.map { $0["principal"]?.stringValue ?? "" } == ["admin-1", "analyst-be"])
        #expect(byRole.map { $0["reason"]?.stringValue ?? "" } == ["cleanup", "cleanup"])
        // Every refusal is itself a record: principal, reason, what was refused.
        let refusals = try Self.sql(
            db,
            """

            for r in db.execute("select p.payload from audit_records r join audit_payloads p on p.idx = r.idx where r.record like '%\\"kind\\":\\"audit_erase_refused\\"%' order by r.idx"): print(r[0])
            """
        ).split(separator: "\n").map { try JSONParser.parse(String($0)).objectValue ?? JSONObject() }
        #expect(refusals.map { $0["principal"]?.stringValue ?? "" } == ["auditor-1", "auditor-1"])
        #expect(refusals.map { $0["reason"]?.stringValue ?? "" } == ["tidy up", "undo"])
        #expect(
            refusals.map { JSONValue.object($0)[path: "detail.index"] } == [.number(String(k)), .number(String(e))])
        #expect(
            refusals.first.flatMap { JSONValue.object($0)[path: "detail.refusal"] }
                == .string(
                    "record \(k) logs auditor-1's own consultation (audit_consultation): an auditor never erases its own consultations"
                ))
        // Nor the trace of one's own refused attempts (or any record of one's own).
        #expect(try erase(e, as: "auditor-1", "undo again").status == 1)
        let refusedIndex = try Self.lastIndex(db)
        let own2 = try erase(refusedIndex, as: "auditor-1", "hide it")
        #expect(own2.status == 1 && own2.stderr.contains("own action"), "\(own2.stderr)")
        let ok = try CLITests.run(["audit", "verify", "--vkey", vkey] + c, cwd: dir)
        #expect(ok.status == 0 && ok.stdout.hasSuffix(", 1 payloads erased\n"), "\(ok.stdout)\(ok.stderr)")
    }

    @Test("keys 0600, export bundles 0700 with files 0600, created with their modes; never over existing ones")
    func fileModes() throws {
        let dir = try ServeTests.deployment(
            entries: 5, extra: #"audit: {origin: "tripline.test/audit", key_file: keys/audit.key}"#)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(
            of: "  - {id: analyst-be, partner: be-fedpol, role: analyst}",
            with:
                "  - {id: analyst-be, partner: be-fedpol, role: analyst}\n  - {id: auditor-1, partner: ops, role: auditor}"
        ).write(to: cfg, atomically: true, encoding: .utf8)
        let c = ["--config", "tripline.yaml"]
        #expect(try CLITests.run(["audit", "keygen"] + c, cwd: dir).status == 0)
        #expect(try CLITests.run(["audit", "keygen", "--out", "more/keys/second.key"] + c, cwd: dir).status == 0)
        let ex = try CLITests.run(
            ["audit", "export", "--out", "out/bundle", "--as", "auditor-1", "--reason", "court order 3"] + c, cwd: dir)
        #expect(ex.status == 0, "\(ex.stderr)")
        func modes(_ paths: [String]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
            p.arguments = ["-c", "%a %n"] + paths
            p.currentDirectoryURL = dir
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return text
        }
        #expect(
            try modes([
                "keys/audit.key", "more/keys/second.key", "more/keys", "out/bundle", "out/bundle/records.ndjson",
                "out/bundle/proofs.ndjson", "out/bundle/checkpoint", "out/bundle/vkey",
            ])
                == """
                600 keys/audit.key
                600 more/keys/second.key
                700 more/keys
                700 out/bundle
                600 out/bundle/records.ndjson
                600 out/bundle/proofs.ndjson
                600 out/bundle/checkpoint
                600 out/bundle/vkey

                """)
        // Never written over: an existing bundle directory, an existing key file.
        let again = try CLITests.run(
            ["audit", "export", "--out", "out/bundle", "--as", "auditor-1", "--reason", "court order 3"] + c, cwd: dir)
        #expect(again.status == 64 && again.stderr.contains("out/bundle exists"), "\(again.stderr)")
        #expect(try CLITests.run(["audit", "keygen", "--out", "more/keys/second.key"] + c, cwd: dir).status == 64)
    }
}
