import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// `tripline serve` on a bad day, as an operator meets it: a locked database, a rotated log, hostile records,
/// receivers that never answer, durations nobody meant.
@Suite("serve under faults", .serialized)
struct FaultTests {
    static func append(_ url: URL, _ s: String) throws {
        let h = try FileHandle(forWritingTo: url)
        h.seekToEndOfFile()
        h.write(Data(s.utf8))
        try h.close()
    }

    static func line(_ id: String, _ n: Int, item: String = "P-1") -> String {
        #"{"id":"\#(id)","type":"phone","value":"+32470\#(String(format: "%06d", n))","source":{"item":"\#(item)"}}"#
            + "\n"
    }

    @Test("a database locked past --db-timeout: serve stops with exit 2 and says why; a restart skips nothing")
    func lockedDatabaseStopsThenResumes() throws {
        let dir = try ServeTests.deployment(entries: 20)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.ndjson")
        try (Self.line("a", 1) + Self.line("b", 2)).write(to: input, atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("alerts.ndjson").path
        let args = ["serve", "--config", "tripline.yaml", "--follow", input.path, "--db-timeout", "1.5"]
        let (p, err) = try ServeTests.start(args, cwd: dir)
        #expect(waitUntil(15) { readRecords(log).count == 1 })
        let locker = try DatabaseLocker(dir.appendingPathComponent("state/state.sqlite").path)
        // A backlog of several batches behind the failing one (the reader is held at its gate when it stops).
        var backlog = Self.line("c", 3)
        for i in 0..<1500 { backlog += #"{"id":"n\#(i)","type":"phone","value":"+33612345678"}"# + "\n" }
        try Self.append(input, backlog + Self.line("d", 4))
        p.waitUntilExit()
        locker.release()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("stayed unwritable"), "\(stderr)")
        // Restarted: c and d are read from the committed position, once.
        let (q, _) = try ServeTests.start(Array(args.dropLast(2)), cwd: dir)
        func refs() -> [String] {
            readRecords(log).flatMap { $0["alerts"]?.arrayValue ?? [] }.compactMap {
                $0.objectValue?["key"]?.stringValue
            }
        }
        #expect(waitUntil(15) { refs().count == 4 })
        kill(q.processIdentifier, SIGTERM)
        q.waitUntilExit()
        let refs = refs()
        #expect(
            refs.sorted() == [
                "wl:be-fedpol/crash/E1", "wl:be-fedpol/crash/E2", "wl:be-fedpol/crash/E3", "wl:be-fedpol/crash/E4",
            ])
        let lines = ServeTests.query(
            dir,
            "select sum(json_extract(p.payload, '$.detail.lines')) from audit_records r join audit_payloads p on p.idx = r.idx where json_extract(r.record, '$.kind') = 'ingest_batch'"
        )
        #expect(Int(lines) == 1504)  // every line once: 2 before, 1502 after the restart
    }

    @Test("SIGTERM while a batch waits for a locked database: serve stops at once, and the batch is read again")
    func sigtermWhileRetrying() throws {
        let dir = try ServeTests.deployment(entries: 20)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.ndjson")
        try Self.line("a", 1).write(to: input, atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("alerts.ndjson").path
        let args = ["serve", "--config", "tripline.yaml", "--follow", input.path, "--drain-timeout", "1"]
        let (p, _) = try ServeTests.start(args + ["--db-timeout", "60"], cwd: dir)
        #expect(waitUntil(15) { readRecords(log).count == 1 })
        let locker = try DatabaseLocker(dir.appendingPathComponent("state/state.sqlite").path)
        try Self.append(input, Self.line("b", 2))
        usleep(1_000_000)  // the batch is now retrying
        let stop = Date()
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        locker.release()
        // Tolerance: the drain timeout (1 s) and a few seconds, not the 60 s of --db-timeout.
        #expect(Date().timeIntervalSince(stop) < 6, "took \(Date().timeIntervalSince(stop)) s")
        #expect(p.terminationStatus == 0)
        let (q, _) = try ServeTests.start(args, cwd: dir)
        #expect(waitUntil(15) { readRecords(log).count == 2 })
        kill(q.processIdentifier, SIGTERM)
        q.waitUntilExit()
    }

    @Test("a followed file that is rotated or truncated is read again from its start; nothing is skipped")
    func rotationAndTruncation() throws {
        let dir = try ServeTests.deployment(entries: 20)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.ndjson")
        // A long first file, so that the position after it is past the start of the new one's hit.
        var first = ""
        for i in 0..<5 { first += #"{"id":"pad\#(i)","type":"phone","value":"+33612345678"}"# + "\n" }
        first += Self.line("a", 1)
        try first.write(to: input, atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("alerts.ndjson").path
        let args = ["serve", "--config", "tripline.yaml", "--follow", input.path]
        let (p, _) = try ServeTests.start(args, cwd: dir)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        #expect(waitUntil(15) { readRecords(log).count == 1 })
        // Rotation: the file moves away and a new, shorter one takes its place.
        try FileManager.default.moveItem(at: input, to: dir.appendingPathComponent("in.ndjson.1"))
        try Self.line("b", 2).write(to: input, atomically: false, encoding: .utf8)
        #expect(waitUntil(15) { readRecords(log).count == 2 }, "\(readRecords(log))")
        // Truncation in place (copytruncate), then at once more than was there before: a hit at the start.
        let h = try FileHandle(forWritingTo: input)
        try h.truncate(atOffset: 0)
        try h.write(
            contentsOf: Data(
                (Self.line("c", 3)
                    + String(repeating: #"{"id":"p","type":"phone","value":"+33612345679"}"# + "\n", count: 20)).utf8))
        try h.close()
        #expect(waitUntil(15) { readRecords(log).count == 3 }, "\(readRecords(log))")
        // A restart resumes in the current file, at its committed position: nothing twice.
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        try Self.append(input, Self.line("d", 4))
        // While it is down the file is rewritten in place (same inode), longer than the committed position.
        let committed =
            Int(ServeTests.query(dir, "select offset from offsets where source = 'file:\(input.path)'")) ?? 0
        #expect(committed > 0)
        let (q, _) = try ServeTests.start(args, cwd: dir)
        #expect(waitUntil(15) { readRecords(log).count == 4 })
        usleep(300_000)
        kill(q.processIdentifier, SIGTERM)
        q.waitUntilExit()
        let keys = readRecords(log).flatMap { $0["alerts"]?.arrayValue ?? [] }.compactMap {
            $0.objectValue?["key"]?.stringValue
        }
        #expect(
            keys == [
                "wl:be-fedpol/crash/E1", "wl:be-fedpol/crash/E2", "wl:be-fedpol/crash/E3", "wl:be-fedpol/crash/E4",
            ])
    }

    @Test("bad records are rejected alone, with the same words in serve and match: oversized (id kept), broken JSON")
    func badRecordsAlone() throws {
        let dir = try ServeTests.deployment(entries: 5)
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = #"{"id":"huge-1","type":"name","value":""# + String(repeating: "a", count: 70_000) + "\"}\n"
        let broken = #"{"id":"broken-2\nFORGED: admin logged in","type":"phone","value":"+32470000002""# + "\n"
        let input = Self.line("ok-1", 1) + big + broken + Self.line("ok-4", 3)
        let s = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: input, cwd: dir)
        #expect(s.status == 0, "\(s.stderr)")
        let rejected = ServeTests.query(
            dir,
            "select json_extract(p.payload, '$.detail.line'), json_extract(p.payload, '$.detail.id'), json_extract(p.payload, '$.detail.error') from audit_records r join audit_payloads p on p.idx = r.idx where json_extract(r.record, '$.kind') = 'input_rejected' order by r.idx"
        ).split(separator: "\n").map(String.init)
        #expect(rejected.count == 2, "\(rejected)")
        #expect(rejected.first?.hasPrefix("2|huge-1|record of 70") == true, "\(rejected)")
        #expect(rejected.first?.hasSuffix("bytes is over the 64 KiB limit") == true, "\(rejected)")
        #expect(
            rejected.last?.hasPrefix("3|broken-2\\nFORGED") == false && rejected.last?.contains("invalid JSON") == true)
        // A record's id cannot forge a log line: control characters are escaped.
        #expect(!s.stderr.split(separator: "\n").contains { $0.hasPrefix("FORGED") }, "\(s.stderr)")
        // The two good records' alerts, each told once (in one notification, or in two when the reading thread
        // handed the lines over in two batches — the 70 KB line can make it wait for the pipe in between).
        let told = readRecords(dir.appendingPathComponent("alerts.ndjson").path).flatMap {
            $0["alerts"]?.arrayValue ?? []
        }.compactMap { $0.objectValue?["key"]?.stringValue }
        #expect(told.sorted() == ["wl:be-fedpol/crash/E1", "wl:be-fedpol/crash/E3"], "\(told)")
        let m = try CLITests.run(["match", "--config", "tripline.yaml"], stdin: input, cwd: dir)
        let errors = m.stderr.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)).objectValue }
        #expect(errors.count == 2)
        #expect(errors.first?["id"] == .string("huge-1"))
        #expect(errors.first?["error"]?.stringValue?.hasSuffix("bytes is over the 64 KiB limit") == true)
        #expect(errors.last?["error"]?.stringValue?.hasPrefix("invalid JSON") == true)
    }

    @Test("durations past their documented maximum are refused at file:line:col by check and serve")
    func durationMaxima() throws {
        let dir = try ServeTests.deployment(entries: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: path, encoding: .utf8)
        for (from, to, expected) in [
            (
                "file_configs: [{path: alerts.ndjson}]",
                "webhook_configs: [{url: \"http://127.0.0.1:9/h\", secret_env: S, timeout: 10000000000000000000h}]",
                ":12:103: \"timeout\" is at most 24h"
            ),
            ("repeat_interval: 100h", "repeat_interval: 400d", ":13:102: \"repeat_interval\" is at most 365d"),
            ("group_interval: 1s", "group_interval: 0s", ":13:81: \"group_interval\" must be longer than 0s"),
        ] {
            try text.replacingOccurrences(of: from, with: to).write(to: path, atomically: true, encoding: .utf8)
            let c = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: dir)
            #expect(c.status == 1 && c.stderr.contains("tripline.yaml" + expected), "\(c.stderr)")
            let s = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: "", cwd: dir)
            #expect(s.status == 1 && s.stderr.contains(expected), "\(s.stderr)")
        }
    }

    @Test("receivers are isolated: a trickling webhook and a silent mail server delay nobody else")
    func receiversIsolated() throws {
        let secret = "whsec_" + Data("tripline-test-secret-key-A-32byte".utf8).base64EncodedString()
        let hook = try WebhookReceiver(secret: secret, arguments: ["--trickle", "1"])
        defer { hook.stop() }
        let (silent, smtpPort) = loopbackSocket(listen: true)
        defer { close(silent) }
        let dir = try ServeTests.deployment(entries: 5)
        defer { try? FileManager.default.removeItem(at: dir) }
        try secret.write(to: dir.appendingPathComponent("whsec"), atomically: true, encoding: .utf8)
        let cfg = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(
            of: "  - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}",
            with: """
                  - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
                  - {name: slow, partner: ops, webhook_configs: [{url: "http://127.0.0.1:\(hook.port)/h", secret_file: whsec, timeout: 30s}]}
                  - {name: mute, partner: ops, email_configs: [{to: a@b.example, from: t@ops.example, smarthost: "127.0.0.1:\(smtpPort)", require_tls: false, timeout: 30s}]}
                """
        ).replacingOccurrences(
            of: "route: {receiver: log,",
            with:
                "route: {routes: [{receiver: slow, continue: true}, {receiver: mute, continue: true}, {receiver: log}], receiver: log,"
        ).write(to: cfg, atomically: true, encoding: .utf8)
        let input = dir.appendingPathComponent("in.ndjson")
        _ = FileManager.default.createFile(atPath: input.path, contents: Data())
        let (p, _) = try ServeTests.start(
            ["serve", "--config", "tripline.yaml", "--follow", input.path, "--drain-timeout", "1"], cwd: dir)
        let log = dir.appendingPathComponent("alerts.ndjson").path
        usleep(300_000)
        for (i, id) in ["a", "b", "c"].enumerated() {
            let sent = Date()
            try Self.append(input, Self.line(id, i + 1))
            #expect(waitUntil(10) { readRecords(log).count == i + 1 })
            // Tolerance: the file receiver is told within 1.5 s (the stuck peers hold their lanes for 30 s).
            #expect(
                Date().timeIntervalSince(sent) < 1.5, "notification \(i + 1) took \(Date().timeIntervalSince(sent)) s")
        }
        // SIGTERM: in-flight deliveries are cancelled after the drain timeout (1 s), not held to their 30 s.
        let stop = Date()
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(Date().timeIntervalSince(stop) < 6, "shutdown took \(Date().timeIntervalSince(stop)) s")
    }

    @Test("a failing mail integration never resends its receiver's webhook")
    func integrationsProgressAlone() throws {
        let secret = "whsec_" + Data("tripline-test-secret-key-A-32byte".utf8).base64EncodedString()
        let hook = try WebhookReceiver(secret: secret)
        defer { hook.stop() }
        let smtp = try SMTPServer(["--fail", "451,451,451"])
        defer { smtp.stop() }
        let dir = try ServeTests.deployment(entries: 5)
        defer { try? FileManager.default.removeItem(at: dir) }
        try secret.write(to: dir.appendingPathComponent("whsec"), atomically: true, encoding: .utf8)
        let cfg = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(
            of: "file_configs: [{path: alerts.ndjson}]",
            with:
                "webhook_configs: [{url: \"http://127.0.0.1:\(hook.port)/h\", secret_file: whsec}], email_configs: [{to: a@b.example, from: t@ops.example, smarthost: \"127.0.0.1:\(smtp.port)\", require_tls: false}]"
        ).write(to: cfg, atomically: true, encoding: .utf8)
        let r = try CLITests.run(
            ["serve", "--config", "tripline.yaml", "--drain-timeout", "20", "--max-backoff", "0.3"],
            stdin: Self.line("a", 1), cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(smtp.received.count == 1)  // after three 451s
        #expect(hook.received.count == 1)  // once, although the mail was tried four times
        let failed = ServeTests.eventCounts(dir)["delivery_failed"]
        #expect(failed == 3)
    }
}

/// SPEC §8 "Files": only the operating-system user that runs Tripline reads the state.
@Suite("state file modes", .serialized)
struct FileModeTests {
    func mode(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions]) as? Int ?? -1) & 0o777
    }

    @Test("state directory 0700, database and handle key 0600; looser ones tightened once and audited")
    func modes() throws {
        let dir = try ServeTests.deployment(entries: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("state")
        let db = state.appendingPathComponent("state.sqlite")
        let s = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: FaultTests.line("a", 0), cwd: dir)
        #expect(s.status == 0, "\(s.stderr)")
        #expect(mode(state) == 0o700 && mode(db) == 0o600)
        #expect(mode(state.appendingPathComponent("handle.key")) == 0o600)
        #expect(ServeTests.eventCounts(dir)["file_modes_tightened"] == nil)
        // Someone loosened them: the next start tightens them, and says so in the audit log.
        chmod(state.path, 0o755)
        chmod(db.path, 0o644)
        let again = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: "", cwd: dir)
        #expect(again.status == 0)
        #expect(mode(state) == 0o700 && mode(db) == 0o600)
        #expect(ServeTests.eventCounts(dir)["file_modes_tightened"] == 1)
        // A handle key too short to keep handles opaque is an error, not silently replaced.
        try Data([1, 2, 3]).write(to: state.appendingPathComponent("handle.key"))
        let short = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: "", cwd: dir)
        #expect(short.status == 2 && short.stderr.contains("the handle key has 3 bytes"), "\(short.stderr)")
        #expect(try Data(contentsOf: state.appendingPathComponent("handle.key")).count == 3)
    }
}

/// SPEC §4 and §6: what an operator's files and a partner's directory may and may not do.
@Suite("keys and owners", .serialized)
struct KeysAndOwnersTests {
    @Test("an audit key readable by others is tightened at start, with an audit record")
    func auditKeyTightened() throws {
        let dir = try ServeTests.deployment(
            entries: 1, extra: #"audit: {origin: "tripline.test/audit", key_file: keys/audit.key}"#)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("keys/audit.key")
        let k = try CLITests.run(["audit", "keygen", "--out", key.path], cwd: dir)
        #expect(k.status == 0, "\(k.stderr)")
        chmod(key.path, 0o644)
        let s = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: "", cwd: dir)
        #expect(s.status == 0, "\(s.stderr)")
        let mode =
            ((try FileManager.default.attributesOfItem(atPath: key.path)[.posixPermissions]) as? Int ?? 0) & 0o777
        #expect(mode == 0o600)
        #expect(ServeTests.eventCounts(dir)["file_modes_tightened"] == 1)
    }

    @Test("a list in the directory of no configured partner is refused, by check and by serve")
    func ownerMustBeAPartner() throws {
        let dir = try ServeTests.deployment(entries: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        let zz = dir.appendingPathComponent("Watchlists/zz")
        try FileManager.default.createDirectory(at: zz, withIntermediateDirectories: true)
        try
            "watchlist: x\nowner: zz\nreview_by: 2099-01-01\nentries:\n  - {ref: Z, selectors: [{type: phone, value: \"+32470000099\"}]}\n"
            .write(to: zz.appendingPathComponent("x.yaml"), atomically: true, encoding: .utf8)
        let c = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: dir)
        #expect(
            c.status == 1 && c.stderr.contains("zz/x.yaml:1:1: the list's owner \"zz\" is not a partner"), "\(c.stderr)"
        )
        let s = try CLITests.run(
            ["serve", "--config", "tripline.yaml"], stdin: FaultTests.line("a", 99), cwd: dir)
        #expect(s.status == 0)
        #expect(ServeTests.eventCounts(dir)["alert_opened"] == nil)  // the planted list never matched
        #expect(ServeTests.eventCounts(dir)["watchlist_refused"] == 1)
    }
}
