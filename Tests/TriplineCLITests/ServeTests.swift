import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// `tripline serve` as an operator runs it: samples on standard input, a followed file, signals, SIGKILL.
@Suite("tripline serve", .serialized)
struct ServeTests {

    /// A scratch deployment: one list of `entries` numbers owned by be-fedpol, one receiver writing `alerts.ndjson`.
    static func deployment(entries: Int, rules: String = "", extra: String = "") throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("Watchlists/be-fedpol"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
        var yaml = "watchlist: crash\nowner: be-fedpol\nhandling: {tlp: green}\nreview_by: 2099-01-01\nentries:\n"
        for i in 0..<entries {
            yaml += "  - {ref: E\(i), selectors: [{type: phone, value: \"+32470\(String(format: "%06d", i))\"}]}\n"
        }
        try yaml.write(
            to: dir.appendingPathComponent("Watchlists/be-fedpol/crash.yaml"), atomically: true, encoding: .utf8)
        if !rules.isEmpty {
            try rules.write(to: dir.appendingPathComponent("Rules/r.yml"), atomically: true, encoding: .utf8)
        }
        try """
        rules: Rules
        watchlists: Watchlists
        state: state/state.sqlite
        partners:
          - {id: ops, name: Ops, countries: [], contact: ops@example}
          - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
        principals:
          - {id: analyst-ops, partner: ops, role: analyst}
          - {id: analyst-be, partner: be-fedpol, role: analyst}
          - {id: auditor, partner: ops, role: auditor}
        receivers:
          - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
        route: {receiver: log, group_by: [owner, list], group_wait: 0s, group_interval: 1s, repeat_interval: 100h}
        operator: ops
        \(extra)
        """.write(to: dir.appendingPathComponent("tripline.yaml"), atomically: true, encoding: .utf8)
        return dir
    }

    static func start(_ args: [String], cwd: URL, stdin: String? = nil) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = args
        p.currentDirectoryURL = cwd
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        if let stdin {
            let inp = Pipe()
            p.standardInput = inp
            try p.run()
            inp.fileHandleForWriting.write(Data(stdin.utf8))
            try inp.fileHandleForWriting.close()
        } else {
            p.standardInput = FileHandle.nullDevice
            try p.run()
        }
        return (p, err)
    }

    /// A query on a deployment's state database, by Python's sqlite3 (so the test does not share our reader).
    static func query(_ dir: URL, _ sql: String) -> String {
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = [
            "python3", "-c",
            "import sqlite3,sys; print('\\n'.join('|'.join(map(str, r)) for r in sqlite3.connect(sys.argv[1], timeout=10).execute(sys.argv[2])))",
            dir.appendingPathComponent("state/state.sqlite").path, sql,
        ]
        let out = Pipe()
        q.standardOutput = out
        try? q.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Outbox items not yet delivered (-1 when the database cannot be read).
    static func pendingOutbox(_ dir: URL) -> Int {
        Int(query(dir, "select count(*) from outbox where status != 'delivered'")) ?? -1
    }

    /// Audit events by kind.
    static func eventCounts(_ dir: URL) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in query(dir, "select json_extract(record, '$.kind'), count(*) from audit_records group by 1")
            .split(separator: "\n")
        {
            let f = line.split(separator: "|")
            if f.count == 2 { out[String(f[0])] = Int(f[1]) }
        }
        return out
    }

    @Test("serve on the samples: alerts in the log receivers, exit 0 at end of input, alerts show by need-to-know")
    func samples() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("serve-samples-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: state) }
        // The sample configuration with its state moved to a scratch directory.
        let text = try String(
            contentsOf: CLITests.root.appendingPathComponent("Examples/tripline.yaml"), encoding: .utf8
        )
        .replacingOccurrences(of: "../.tripline/", with: state.path + "/")
        .replacingOccurrences(of: "rules: ../Rules", with: "rules: \(CLITests.root.path)/Rules")
        .replacingOccurrences(of: "watchlists: ../Watchlists", with: "watchlists: \(CLITests.root.path)/Watchlists")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        let config = state.appendingPathComponent("tripline.yaml").path
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let input = try String(
            contentsOf: CLITests.root.appendingPathComponent("Examples/selectors.ndjson"), encoding: .utf8)
        let r = try CLITests.run(["serve", "--config", config], stdin: input)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("end of input: 34 selectors"))
        let ops = readRecords(state.appendingPathComponent("alerts-ops.ndjson").path)
        let be = readRecords(state.appendingPathComponent("alerts-be-fedpol.ndjson").path)
        #expect(!ops.isEmpty && !be.isEmpty)
        // The operating agency is not entitled to be-fedpol's amber list: its rendering is opaque.
        let opsText = ops.map { JSONWriter.string(.object($0)) }.joined()
        let beText = be.map { JSONWriter.string(.object($0)) }.joined()
        #expect(beText.contains("Returning fighter, Molenbeek network"))
        #expect(
            !opsText.contains("Molenbeek") && !opsText.contains("returning-fighters")
                && !opsText.contains("+32470123456"))
        #expect(ops.contains { $0["text"]?.stringValue?.hasPrefix("[critical]") == true })  // the brief template
        // alerts show: the same split, and the consultation is recorded.
        let listed = try CLITests.run([
            "alerts", "list", "--config", config, "--as", "analyst-ops", "--reason", "shift check",
        ])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(!listed.stdout.contains("Molenbeek") && listed.stdout.contains("\"restricted\":true"))
        let wl = listed.lines.first {
            $0["kind"] == .string("watchlist") && $0["labels"]?.objectValue?["owner"] == .string("be-fedpol")
        }
        let id = try #require(
            wl?["alert_id"]?.stringValue
                ?? wl.flatMap { v -> String? in
                    if case .number(let n)? = v["alert_id"] { return n } else { return nil }
                })
        let shownBE = try CLITests.run([
            "alerts", "show", id, "--config", config, "--as", "analyst-be", "--reason", "case 7",
        ])
        #expect(shownBE.status == 0 && shownBE.stdout.contains("\"ref\":\"BE-RF-"), "\(shownBE.stderr)")
        let ack = try CLITests.run(["alerts", "ack", id, "--config", config, "--as", "analyst-be", "--reason", "on it"])
        #expect(ack.status == 0, "\(ack.stderr)")
        let again = try CLITests.run([
            "alerts", "ack", id, "--config", config, "--as", "analyst-be", "--reason", "twice",
        ])
        #expect(again.status == 1)
        let noReason = try CLITests.run(["alerts", "list", "--config", config, "--as", "analyst-be"])
        #expect(noReason.status == 64)
        let stranger = try CLITests.run(["alerts", "list", "--config", config, "--as", "mallory", "--reason", "x"])
        #expect(stranger.status == 64 && stranger.stderr.contains("not a principal"))
        let sil = try CLITests.run([
            "silence", "add", "--config", config, "--as", "analyst-be", "--reason", "maintenance", "--comment",
            "planned",
            "--duration", "1h", #"owner="be-fedpol""#,
        ])
        #expect(sil.status == 0, "\(sil.stderr)")
        let sils = try CLITests.run(["silence", "list", "--config", config, "--as", "auditor-1", "--reason", "audit"])
        #expect(sils.lines.first?["created_by"] == .string("analyst-be"))
        // Every action and consultation is in the event table, with who and why.
        let db = state.appendingPathComponent("state.sqlite").path
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = [
            "python3", "-c",
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); [print(r[0], r[1], r[2]) for r in db.execute(\"select json_extract(r.record, '$.kind'), json_extract(p.payload, '$.principal'), json_extract(p.payload, '$.reason') from audit_records r join audit_payloads p on p.idx = r.idx where json_extract(p.payload, '$.principal') is not null order by r.idx\")]",
            db,
        ]
        let out = Pipe()
        q.standardOutput = out
        try q.run()
        let events = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        #expect(events.contains("consultation analyst-ops shift check"))
        #expect(events.contains("consultation analyst-be case 7"))
        #expect(events.contains("alert_acknowledged analyst-be on it"))
        #expect(events.contains("silence_added analyst-be maintenance"))
    }

    @Test("dead letters: listed, retried by an operator, recorded; silences expire")
    func deadLetters() throws {
        let dir = try Self.deployment(entries: 3)
        defer { try? FileManager.default.removeItem(at: dir) }
        // A receiver with only mail, on a server that rejects the message for good (554): a dead letter.
        let smtp = try SMTPServer(["--fail", "554"])
        defer { smtp.stop() }
        let path = dir.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: path, encoding: .utf8).replacingOccurrences(
            of: "file_configs: [{path: alerts.ndjson}]",
            with:
                "email_configs: [{to: oncall@ops.example, from: tripline@ops.example, smarthost: \"127.0.0.1:\(smtp.port)\", require_tls: false}]"
        )
        try text.write(to: path, atomically: true, encoding: .utf8)
        let r = try CLITests.run(
            ["serve", "--config", "tripline.yaml"], stdin: #"{"id":"a","type":"phone","value":"+32470000001"}"# + "\n",
            cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let dead = try CLITests.run(
            ["outbox", "list", "--dead", "--config", "tripline.yaml", "--as", "analyst-ops", "--reason", "check"],
            cwd: dir)
        #expect(
            dead.lines.count == 1
                && dead.lines[0]["last_error"]?.stringValue?.contains("554") == true, "\(dead.stdout)")
        let id = try #require(
            dead.lines.first.flatMap { o -> String? in
                if case .number(let n)? = o["id"] { return n } else { return nil }
            })
        let retry = try CLITests.run(
            ["outbox", "retry", id, "--config", "tripline.yaml", "--as", "analyst-ops", "--reason", "sink fixed"],
            cwd: dir)
        #expect(retry.status == 0, "\(retry.stderr)")
        let pending = try CLITests.run(
            ["outbox", "list", "--config", "tripline.yaml", "--as", "analyst-ops", "--reason", "check"], cwd: dir)
        #expect(pending.lines.first?["status"] == .string("pending"))
        // The server accepts now: the retried notification arrives, with the same Message-ID as before.
        let again = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: "", cwd: dir)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(smtp.received.count == 1 && smtp.received.first?["subject"]?.stringValue?.contains("FIRING") == true)
        let twice = try CLITests.run(
            ["outbox", "retry", id, "--config", "tripline.yaml", "--as", "analyst-ops", "--reason", "again"], cwd: dir)
        #expect(twice.status == 1)
        let add = try CLITests.run(
            [
                "silence", "add", "--config", "tripline.yaml", "--as", "analyst-be", "--reason", "r", "--comment", "c",
                #"list="crash""#,
            ], cwd: dir)
        let sid = add.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(add.status == 0 && !sid.isEmpty)
        let exp = try CLITests.run(
            ["silence", "expire", sid, "--config", "tripline.yaml", "--as", "analyst-be", "--reason", "done"], cwd: dir)
        #expect(exp.status == 0)
        let listed = try CLITests.run(
            ["silence", "list", "--expired", "--config", "tripline.yaml", "--as", "analyst-be", "--reason", "r"],
            cwd: dir)
        #expect(listed.lines.first?["active"] == .bool(false))
        let bad = try CLITests.run(
            [
                "silence", "add", "--config", "tripline.yaml", "--as", "analyst-be", "--reason", "r", "--comment", "c",
                "nonsense",
            ],
            cwd: dir)
        #expect(bad.status == 64)
    }

    @Test("a configuration error names file:line:col in check and serve, and serve does not start")
    func badConfig() throws {
        let dir = try Self.deployment(entries: 1, extra: "rate_limits: [{receiver: nobody, max: 3, per: 1m}]")
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: dir)
        #expect(c.status == 1)
        #expect(c.stderr.contains("tripline.yaml:15:26: rate limit for unknown receiver \"nobody\""), "\(c.stderr)")
        let s = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: "", cwd: dir)
        #expect(s.status == 1 && s.stderr.contains("unknown receiver"))
        let inline = try Self.deployment(entries: 1)
        defer { try? FileManager.default.removeItem(at: inline) }
        let path = inline.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: path, encoding: .utf8).replacingOccurrences(
            of: "file_configs: [{path: alerts.ndjson}]",
            with:
                "file_configs: [{path: alerts.ndjson}], webhook_configs: [{url: \"https://x.example\", secret: whsec_abc}]"
        )
        try text.write(to: path, atomically: true, encoding: .utf8)
        let w = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: inline)
        #expect(w.status == 1 && w.stderr.contains("\"secret\" must not be inline"), "\(w.stderr)")
        // Mail configs: unknown keys, a missing smarthost, a bad TLS flag, each at its place.
        for (mail, expected) in [
            (
                "{to: a@b.example, from: c@d.example, smarthost: \"m.example:25\", tls: yes}",
                ":12:150: unknown key \"tls\""
            ),
            ("{to: a@b.example, from: c@d.example}", ":12:86: each of email_configs needs \"smarthost\""),
            (
                "{to: a@b.example, from: c@d.example, smarthost: \"m.example:25\", tls_config: {insecure_skip_verify: maybe}}",
                ":12:185: \"tls_config.insecure_skip_verify\" is true or false"
            ),
            (
                "{to: a@b.example, from: c@d.example, smarthost: m.example, require_tls: false}",
                ":12:134: \"smarthost\" is host:port"
            ),
        ] {
            try text.replacingOccurrences(
                of: "webhook_configs: [{url: \"https://x.example\", secret: whsec_abc}]",
                with: "email_configs: [\(mail)]"
            )
            .write(to: path, atomically: true, encoding: .utf8)
            let m = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: inline)
            #expect(m.status == 1 && m.stderr.contains("tripline.yaml" + expected), "\(m.stderr)")
        }
    }

    @Test("SIGHUP reloads and keeps the running set when the new one is invalid; SIGTERM drains and exits 0")
    func signals() throws {
        let dir = try Self.deployment(entries: 20)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.ndjson")
        _ = FileManager.default.createFile(atPath: input.path, contents: Data())
        let (p, err) = try Self.start(["serve", "--config", "tripline.yaml", "--follow", input.path], cwd: dir)
        let log = dir.appendingPathComponent("alerts.ndjson").path
        func append(_ s: String) throws {
            let h = try FileHandle(forWritingTo: input)
            h.seekToEndOfFile()
            h.write(Data(s.utf8))
            try h.close()
        }
        try append(#"{"id":"a","type":"phone","value":"+32470000001"}"# + "\n")
        #expect(waitUntil(15) { readRecords(log).count == 1 })
        // A broken rule: reload refused, the service goes on with the old set.
        try
            "title: x\nid: broken\nlogsource: {product: tripline, category: selector}\ndetection: {s: {valu: 1}, condition: s}\n"
            .write(to: dir.appendingPathComponent("Rules/r.yml"), atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        usleep(500_000)
        try append(#"{"id":"b","type":"phone","value":"+32470000002"}"# + "\n")
        #expect(waitUntil(15) { readRecords(log).count == 2 })
        #expect(p.isRunning)
        // A valid rule: reloaded, and it fires.
        try
            "title: x\nid: fixed\nlogsource: {product: tripline, category: selector}\ndetection: {s: {value|endswith: '0003'}, condition: s}\nlevel: high\n"
            .write(to: dir.appendingPathComponent("Rules/r.yml"), atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        usleep(500_000)
        try append(#"{"id":"c","type":"phone","value":"+32470000003"}"# + "\n")
        #expect(
            waitUntil(15) { readRecords(log).contains { JSONWriter.string(.object($0)).contains("rule:fixed:") } }
        )
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("Rules/r.yml:4:17: unknown field \"valu\""), "\(text)")
        #expect(text.contains("the previous rule set stays in force") && text.contains("reloaded:"), "\(text)")
        #expect(Self.eventCounts(dir)["rules_rejected"] == 1)
    }

    @Test("crash test: SIGKILL at random moments on a followed file; every alert notified once, all accounted for")
    func crash() throws {
        let entries = 300
        let dir = try Self.deployment(entries: entries)
        defer { try? FileManager.default.removeItem(at: dir) }
        // 12,000 lines: every entry sighted ~10 times, among numbers on no list.
        var rng = SplitMix64(seed: 20_261_201)
        var text = ""
        for i in 0..<12_000 {
            let v = i % 4 == 0 ? Int.random(in: 0..<entries, using: &rng) : 500_000 + i
            text +=
                #"{"id":"s\#(i)","type":"phone","value":"+32470\#(String(format: "%06d", v))","source":{"item":"D\#(i / 100)"}}"#
                + "\n"
        }
        let input = dir.appendingPathComponent("in.ndjson")
        try text.write(to: input, atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("alerts.ndjson").path
        var kills: [Int] = []
        for _ in 0..<4 {
            let (p, _) = try Self.start(["serve", "--config", "tripline.yaml", "--follow", input.path], cwd: dir)
            let ms = Int.random(in: 150...900, using: &rng)
            kills.append(ms)
            usleep(useconds_t(ms * 1000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        let (p, err) = try Self.start(["serve", "--config", "tripline.yaml", "--follow", input.path], cwd: dir)
        func alertIDs() -> [String: Set<String>] {
            var byKey: [String: Set<String>] = [:]
            for l in readRecords(log) {
                for a in l["alerts"]?.arrayValue ?? [] {
                    if let k = a.objectValue?["key"]?.stringValue, let n = l["notification_id"]?.stringValue {
                        byKey[k, default: []].insert(n)
                    }
                }
            }
            return byKey
        }
        func pending() -> Int { Self.pendingOutbox(dir) }
        // Everything notified, and the outbox empty (a delivery cut short by a kill is redelivered, same id).
        let done = waitUntil(60) { alertIDs().count >= entries && pending() == 0 }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        _ = err.fileHandleForReading.readDataToEndOfFile()
        let byKey = alertIDs()
        #expect(done, "kills after \(kills) ms: \(byKey.count) of \(entries) alerts reached the receiver")
        let distinctEntries = Set(
            text.split(separator: "\n").compactMap { line -> String? in
                guard let r = line.range(of: "+32470") else { return nil }
                let n = Int(line[r.upperBound...].prefix(6))!
                return n < entries ? "wl:be-fedpol/crash/E\(n)" : nil
            })
        #expect(Set(byKey.keys) == distinctEntries, "kills after \(kills) ms")
        let twice = byKey.filter { $0.value.count > 1 }
        #expect(twice.isEmpty, "kills after \(kills) ms: notified under several ids: \(twice.prefix(3))")
        // The event table accounts for every alert: opened once, queued in a notification that was delivered.
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = [
            "python3", "-c",
            """
            import sqlite3, sys, json
            db = sqlite3.connect(sys.argv[1])
            events = [(json.loads(r), json.loads(p)) for r, p in db.execute(
                "select r.record, p.payload from audit_records r join audit_payloads p on p.idx = r.idx order by r.idx")]
            opened = {p.get("alert_key") for r, p in events if r["kind"] == "alert_opened"}
            n_opened = sum(1 for r, p in events if r["kind"] == "alert_opened")
            queued = {}
            for r, p in events:
                if r["kind"] == "notification_queued":
                    for a in p["detail"]["alerts"]: queued.setdefault(a, set()).add(p["detail"]["notification_id"])
            delivered = {p["detail"]["notification_id"] for r, p in events if r["kind"] == "delivered"}
            lines = sum(1 for r, p in events if r["kind"] == "ingest_batch")
            print(len(opened), n_opened, len(queued), sum(1 for v in queued.values() if len(v) > 1),
                  sum(1 for v in queued.values() if not (v & delivered)), lines > 0)
            """, dir.appendingPathComponent("state/state.sqlite").path,
        ]
        let out = Pipe()
        q.standardOutput = out
        try q.run()
        let summary = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        #expect(
            summary.trimmingCharacters(in: .whitespacesAndNewlines) == "\(entries) \(entries) \(entries) 0 0 True",
            "\(summary)")
    }
}
