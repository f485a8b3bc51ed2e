import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// `tripline serve` and the operator commands with their state on PostgreSQL (issue 20): the same outcome as on
/// SQLite, and configuration errors at their line.
@Suite("tripline on PostgreSQL", .serialized)
struct PostgresServeTests {
    /// The sample configuration in a scratch directory, its state at `state` (a file path or a URL).
    static func samples(state: String, dir: URL) throws -> String {
        let text = try String(
            contentsOf: CLITests.root.appendingPathComponent("Examples/tripline.yaml"), encoding: .utf8
        )
        .replacingOccurrences(of: "state: ../.tripline/state.sqlite", with: "state: \(state)")
        .replacingOccurrences(of: "../.tripline/", with: dir.path + "/")
        .replacingOccurrences(of: "rules: ../Rules", with: "rules: \(CLITests.root.path)/Rules")
        .replacingOccurrences(of: "watchlists: ../Watchlists", with: "watchlists: \(CLITests.root.path)/Watchlists")
        let config = dir.appendingPathComponent("tripline.yaml").path
        try
            (text + "handle_key_file: \(dir.path)/handle.key\n"
            + "audit: {key_file: \(dir.path)/audit.key, origin: pg.tripline.test/audit, checkpoint_interval: 1h}\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let key = try CLITests.run(["audit", "keygen", "--config", config])
        #expect(key.status == 0, "\(key.stderr)")
        return config
    }

    /// Alert keys and states as an analyst lists them, and how many alerts each receiver's file was told of (on
    /// PostgreSQL a correlation fires through the correlator a moment later, in a notification of its own: as many
    /// alerts reach each receiver, not always in as many notifications; keys a receiver is not entitled to are
    /// handles, which differ between the two deployments' keys).
    static func outcome(_ config: String, _ dir: URL) throws -> (alerts: [String], files: [String: Int]) {
        let listed = try CLITests.run([
            "alerts", "list", "--config", config, "--as", "analyst-be", "--reason", "compare", "--limit", "500",
        ])
        #expect(listed.status == 0, "\(listed.stderr)")
        let alerts = listed.lines.map { l in
            "\(l["key"]?.stringValue ?? "?") \(l["state"]?.stringValue ?? "?") \(l["count"].map { "\($0)" } ?? "?")"
        }.sorted()
        var files: [String: Int] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: dir.path) where f.hasSuffix(".ndjson") {
            files[f] = readRecords(dir.appendingPathComponent(f).path).reduce(0) {
                $0 + ($1["alerts"]?.arrayValue?.count ?? 0)
            }
        }
        return (alerts, files)
    }

    @Test("the samples served on PostgreSQL give the alerts and notifications SQLite gives; the log verifies")
    func samplesAsOnSQLite() throws {
        let input = try String(
            contentsOf: CLITests.root.appendingPathComponent("Examples/selectors.ndjson"), encoding: .utf8)
        let sqliteDir = scratchDirectory("serve-sqlite")
        let pgDir = scratchDirectory("serve-pg")
        defer {
            try? FileManager.default.removeItem(at: sqliteDir)
            try? FileManager.default.removeItem(at: pgDir)
        }
        let url = try PostgresServer.shared().database("serve")
        var results: [(alerts: [String], files: [String: Int])] = []
        for (state, dir) in [(sqliteDir.path + "/state.sqlite", sqliteDir), (url, pgDir)] {
            let config = try Self.samples(state: state, dir: dir)
            let r = try CLITests.run(["serve", "--config", config], stdin: input)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("end of input: 34 selectors"), "\(r.stderr)")
            // The log names the database without its parameters (the password file's path stays out of logs).
            #expect(!r.stderr.contains("password_file"), "\(r.stderr)")
            results.append(try Self.outcome(config, dir))
            let cp = try CLITests.run(["audit", "checkpoint", "--config", config])
            #expect(cp.status == 0, "\(cp.stderr)")
            let verify = try CLITests.run(["audit", "verify", "--config", config])
            #expect(verify.status == 0 && verify.stdout.hasPrefix("ok: "), "\(verify.stdout) \(verify.stderr)")
        }
        #expect(results[1].alerts.count == results[0].alerts.count && !results[0].alerts.isEmpty)
        #expect(results[1].alerts == results[0].alerts)
        #expect(results[1].files == results[0].files && results[0].files.count == 4, "\(results)")
    }

    @Test("a PostgreSQL state with a password in its URL, a bad parameter or no handle key is refused at its line")
    func configurationErrors() throws {
        let dir = scratchDirectory("pg-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tripline.yaml").path
        for (state, extra, message) in [
            ("postgres://u:hunter2@db.example/t", "handle_key_file: k\n", "a password in the URL is refused"),
            ("postgres://u@db.example/t?sslmode=sometimes", "handle_key_file: k\n", "sslmode must be"),
            ("postgres://u@db.example/t", "", "needs handle_key_file"),
        ] {
            try
                "rules: \(CLITests.root.path)/Rules\nwatchlists: \(CLITests.root.path)/Watchlists\nstate: \(state)\n\(extra)"
                .write(toFile: path, atomically: true, encoding: .utf8)
            let r = try CLITests.run(["check", "--config", path])
            #expect(r.status != 0)
            #expect(r.stderr.contains("\(path):3:8:") && r.stderr.contains(message), "\(r.stderr)")
            #expect(!r.stderr.contains("hunter2"), "\(r.stderr)")
        }
    }

    /// A correlation over one device's phones (three within an hour), its base rule generating nothing itself.
    static let oneDevice = """
        title: Device phone
        id: device-phone
        name: device_phone
        logsource: {product: tripline, category: selector}
        detection:
          s: {type: phone, source.item: DEV-X}
          condition: s
        ---
        title: One device, three phones
        id: device-three
        level: high
        correlation:
          type: event_count
          rules: [device_phone]
          group-by: [source.item]
          timespan: 1h
          condition: {gte: 3}
        """

    @Test(
        "three nodes on one database, 30,000 selectors with 300 listed numbers seen at one to three nodes and a correlation over a device seen at all three: every alert once, the correlation fires once, every notification delivered once, the log verifies"
    )
    func threeNodes() throws {
        let dir = try ServeTests.deployment(entries: 300, rules: Self.oneDevice)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try PostgresServer.shared()
        // A lease well over a send: a lane changes hands only when idle (a lease run out mid-send under load would
        // mean the item again, under its id, which the kill test allows and this one does not).
        let url = try server.database("three") + "&lease=5"
        try Self.onPostgres(dir, url, extra: "audit: {key_file: audit.key, origin: three.tripline.test/audit}\n")
        #expect(try CLITests.run(["audit", "keygen", "--config", "tripline.yaml"], cwd: dir).status == 0)
        // 10,000 unlisted numbers per node; each listed number seen at one, two or three nodes, at seeded places.
        var rng = SplitMix64(seed: 20)
        var inputs: [[String]] = (0..<3).map { n in
            (0..<10_000).map { k in
                #"{"id":"s\#(n)-\#(k)","type":"phone","value":"+32471\#(String(format: "%06d", n * 10_000 + k))"}"#
            }
        }
        var sightings = 0
        for i in 0..<300 {
            let nodes = Array((0..<3).shuffled(using: &rng).prefix(Int.random(in: 1...3, using: &rng)))
            for n in nodes {
                let line = #"{"id":"h\#(n)-\#(i)","type":"phone","value":"+32470\#(String(format: "%06d", i))"}"#
                inputs[n].insert(line, at: Int.random(in: 0...inputs[n].count, using: &rng))
                sightings += 1
            }
        }
        // One device's three phones, one at each node (each alone cannot fire the correlation).
        for n in 0..<3 {
            let line =
                #"{"id":"d\#(n)","type":"phone","value":"+3247200000\#(n)","source":{"item":"DEV-X"}}"#
            inputs[n].insert(line, at: Int.random(in: 0...inputs[n].count, using: &rng))
        }
        let nodes = try (0..<3).map { n in
            try ServeTests.start(
                ["serve", "--config", "tripline.yaml"], cwd: dir, stdin: inputs[n].joined(separator: "\n") + "\n")
        }
        var logs: [String] = []
        for (p, err) in nodes {
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            logs.append(text)
            #expect(p.terminationStatus == 0, "\(text)")
        }
        let db = server.name(of: url)
        let counts = try server.psql(["-d", db, "-Atc", "SELECT COUNT(*), COUNT(DISTINCT key), SUM(count) FROM alerts"])
        #expect(counts.trimmingCharacters(in: .whitespacesAndNewlines) == "301|301|\(sightings + 1)")
        let fired = try server.psql(["-d", db, "-Atc", "SELECT key, count FROM alerts WHERE kind = 'rule'"])
        #expect(fired.trimmingCharacters(in: .whitespacesAndNewlines) == "rule:device-three:DEV-X|1")
        let outbox = try server.psql(["-d", db, "-Atc", "SELECT status, COUNT(*) FROM outbox GROUP BY 1"])
        let sent = readRecords(dir.appendingPathComponent("alerts.ndjson").path)
        // What the nodes logged goes with a failure (a notification sent twice says why in a warning).
        let said = logs.joined(separator: "\n----\n")
        #expect(outbox.trimmingCharacters(in: .whitespacesAndNewlines) == "delivered|\(sent.count)", "\(said)")
        // Each notification once (distinct ids), and every alert in one of them.
        let ids = sent.compactMap { $0["notification_id"]?.stringValue }
        #expect(ids.count == sent.count && Set(ids).count == ids.count, "\(ids)\n\(said)")
        var alerts = Set<String>()
        for r in sent {
            for a in r["alerts"]?.arrayValue ?? [] { alerts.insert(a.objectValue?["key"]?.stringValue ?? "") }
        }
        #expect(alerts.count == 301 && alerts.contains("rule:device-three:DEV-X"))
        let told = sent.filter { r in
            (r["alerts"]?.arrayValue ?? []).contains {
                $0.objectValue?["key"]?.stringValue == "rule:device-three:DEV-X"
            }
        }
        #expect(told.count == 1)
        let verify = try CLITests.run(["audit", "verify", "--config", "tripline.yaml"], cwd: dir)
        #expect(verify.status == 0 && verify.stdout.hasPrefix("ok: "), "\(verify.stdout) \(verify.stderr)")
    }

    @Test(
        "kill -9 the node that keeps the correlations: another takes its lease, builds the windows again from the feed, and the correlation fires once at its third event"
    )
    func correlatorKilled() throws {
        let dir = try ServeTests.deployment(entries: 10, rules: Self.oneDevice)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try PostgresServer.shared()
        let url = try server.database("correlator") + "&lease=1"
        try Self.onPostgres(dir, url)
        let (a, inA) = try Self.node(dir)
        let (b, inB) = try Self.node(dir)
        defer { for p in [a, b] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        func phone(_ n: Int) -> Data {
            Data((#"{"id":"d\#(n)","type":"phone","value":"+3247200000\#(n)","source":{"item":"DEV-X"}}"# + "\n").utf8)
        }
        let db = server.name(of: url)
        func count(_ sql: String) -> String {
            ((try? server.psql(["-d", db, "-Atc", sql])) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // Two of the device's phones, one at each node: read by the correlator, whichever node it is.
        try inA.write(contentsOf: phone(1))
        try inB.write(contentsOf: phone(2))
        #expect(waitUntil(20) { count("SELECT position FROM offsets WHERE source = 'correlation-feed'") == "2" })
        #expect(count("SELECT COUNT(*) FROM alerts WHERE kind = 'rule'") == "0")
        let holder = count("SELECT node FROM outbox_lanes WHERE integration = 'correlator'")
        #expect(!holder.isEmpty)
        let (victim, survivor, input) = holder.contains("/\(a.processIdentifier)/") ? (a, b, inB) : (b, a, inA)
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        // The third at the survivor: it fires only if the windows came back with the first two.
        try input.write(contentsOf: phone(3))
        #expect(waitUntil(20) { count("SELECT COUNT(*) FROM alerts WHERE kind = 'rule'") == "1" })
        try input.close()
        survivor.waitUntilExit()
        #expect(survivor.terminationStatus == 0)
        #expect(count("SELECT key, count FROM alerts WHERE kind = 'rule'") == "rule:device-three:DEV-X|1")
        #expect(count("SELECT position FROM offsets WHERE source = 'correlation-feed'") == "3")
        let told = readRecords(dir.appendingPathComponent("alerts.ndjson").path).filter { r in
            (r["alerts"]?.arrayValue ?? []).contains {
                $0.objectValue?["key"]?.stringValue == "rule:device-three:DEV-X"
            }
        }
        #expect(told.count == 1)
    }

    /// The deployment's configuration moved to the PostgreSQL state `url` (with the handle key every node needs),
    /// each of `changes` made to it and `extra` appended.
    static func onPostgres(_ dir: URL, _ url: String, _ changes: [(String, String)] = [], extra: String = "") throws {
        let configPath = dir.appendingPathComponent("tripline.yaml")
        var yaml = try String(contentsOf: configPath, encoding: .utf8)
            .replacingOccurrences(of: "state: state/state.sqlite", with: "state: \(url)")
        for (from, to) in changes { yaml = yaml.replacingOccurrences(of: from, with: to) }
        try (yaml + "\nhandle_key_file: handle.key\n" + extra).write(to: configPath, atomically: true, encoding: .utf8)
    }

    /// How many nodes hold the dispatcher's lease (`AlertHolder.dispatcherLane`).
    static let dispatcherSQL =
        "SELECT COUNT(*) FROM outbox_lanes WHERE receiver = '' AND integration = 'dispatcher' AND until > EXTRACT(EPOCH FROM clock_timestamp())"

    /// A `serve` node reading a standard input the test keeps open (a node that is still serving).
    static func node(_ dir: URL) throws -> (Process, FileHandle) {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = ["serve", "--config", "tripline.yaml"]
        p.currentDirectoryURL = dir
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let input = Pipe()
        p.standardInput = input
        try p.run()
        return (p, input.fileHandleForWriting)
    }

    @Test(
        "alerts of one group sighted at two nodes within its group wait go out in one notification (one node groups every alert), and after its group interval a third in one more"
    )
    func oneGroupAcrossNodes() throws {
        let dir = try ServeTests.deployment(entries: 10)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try PostgresServer.shared()
        let url = try server.database("groups") + "&lease=1"
        try Self.onPostgres(
            dir, url, [("group_wait: 0s, group_interval: 1s", "group_wait: 2s, group_interval: 2s")])
        let (a, inA) = try Self.node(dir)
        let (b, inB) = try Self.node(dir)
        defer { for p in [a, b] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        func hit(_ i: Int) -> Data {
            Data((#"{"id":"h\#(i)","type":"phone","value":"+32470\#(String(format: "%06d", i))"}"# + "\n").utf8)
        }
        let log = dir.appendingPathComponent("alerts.ndjson").path
        func keys(_ r: JSONObject) -> [String] {
            (r["alerts"]?.arrayValue ?? []).compactMap { $0.objectValue?["key"]?.stringValue }.sorted()
        }
        // Two listed numbers of one list (one group), one at each node, well within the group wait.
        try inA.write(contentsOf: hit(1))
        try inB.write(contentsOf: hit(2))
        #expect(waitUntil(15) { readRecords(log).count == 1 })
        Thread.sleep(forTimeInterval: 1)  // a second node's own group would flush by now
        var sent = readRecords(log)
        #expect(sent.count == 1 && sent.first.map(keys)?.count == 2, "\(sent.map(keys))")
        // Later, at the node that does not group: the same group's next notification (after its interval).
        try inB.write(contentsOf: hit(3))
        try inA.write(contentsOf: hit(4))
        #expect(waitUntil(15) { readRecords(log).count == 2 })
        try inA.close()
        try inB.close()
        a.waitUntilExit()
        b.waitUntilExit()
        #expect(a.terminationStatus == 0 && b.terminationStatus == 0)
        sent = readRecords(log)
        #expect(sent.count == 2, "\(sent.map(keys))")
        #expect(sent.map(keys).joined().count == 4)
        #expect(Set(sent.map(keys).joined()).count == 4)
    }

    @Test("a node stopped (SIGSTOP) past its heartbeat has its alerts adopted; continued, it does not notify them too")
    func stoppedNodeDoesNotNotifyAdoptedAlerts() throws {
        let dir = try ServeTests.deployment(entries: 50)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try PostgresServer.shared()
        let url = try server.database("stop") + "&lease=1"
        try Self.onPostgres(dir, url, [("group_wait: 0s", "group_wait: 3s")])
        let db = server.name(of: url)
        func count(_ sql: String) -> String {
            ((try? server.psql(["-d", db, "-Atc", sql])) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // A first, so that it holds the dispatcher's lease (it groups and notifies every alert).
        let (a, inA) = try Self.node(dir)
        #expect(waitUntil(10) { count(Self.dispatcherSQL) == "1" })
        let (b, inB) = try Self.node(dir)
        defer { for p in [a, b] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let hits = (0..<50).map { #"{"id":"h\#($0)","type":"phone","value":"+32470\#(String(format: "%06d", $0))"}"# }
        try inA.write(contentsOf: Data((hits.joined(separator: "\n") + "\n").utf8))
        #expect(waitUntil(20) { count("SELECT COUNT(*) FROM alerts") == "50" })
        let first = count("SELECT DISTINCT owner FROM alerts")
        kill(a.processIdentifier, SIGSTOP)
        // B adopts the 50 alerts once A's heartbeat has run out; then A goes on, its group wait long over.
        #expect(
            waitUntil(10) {
                let o = count("SELECT DISTINCT owner FROM alerts"); return !o.isEmpty && o != first && !o.contains("\n")
            })
        kill(a.processIdentifier, SIGCONT)
        let log = dir.appendingPathComponent("alerts.ndjson").path
        #expect(waitUntil(15) { readRecords(log).count >= 1 })
        Thread.sleep(forTimeInterval: 4)  // A's flush, had it kept its old group
        try inA.close()
        try inB.close()
        a.waitUntilExit()
        b.waitUntilExit()
        let sent = readRecords(log)
        #expect(sent.count == 1, "\(sent.map { $0["alerts"]?.arrayValue?.count ?? 0 })")
        #expect(sent.first?["alerts"]?.arrayValue?.count == 50)
    }

    @Test(
        "kill -9 one of three nodes before it has notified its alerts: another adopts them when its heartbeat runs out and notifies each; nothing lost"
    )
    func killedNodesAlertsAreAdopted() throws {
        let dir = try ServeTests.deployment(entries: 100)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try PostgresServer.shared()
        let url = try server.database("kill") + "&lease=1"
        try Self.onPostgres(dir, url, [("group_wait: 0s", "group_wait: 4s")])
        let db = server.name(of: url)
        func count(_ sql: String) -> String {
            ((try? server.psql(["-d", db, "-Atc", sql])) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // A first, so that it holds the dispatcher's lease (it groups and notifies every alert).
        let (a, inA) = try Self.node(dir)
        #expect(waitUntil(10) { count(Self.dispatcherSQL) == "1" })
        let (b, inB) = try Self.node(dir)
        let (c, inC) = try Self.node(dir)
        defer { for p in [a, b, c] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let hits = (0..<100).map { #"{"id":"h\#($0)","type":"phone","value":"+32470\#(String(format: "%06d", $0))"}"# }
        try inA.write(contentsOf: Data((hits.joined(separator: "\n") + "\n").utf8))
        #expect(waitUntil(20) { count("SELECT COUNT(*) FROM alerts") == "100" })
        // Killed within its group wait: its alerts are in the database, not yet in any notification.
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        let log = dir.appendingPathComponent("alerts.ndjson").path
        func notified() -> Set<String> {
            var keys = Set<String>()
            for r in readRecords(log) {
                for x in r["alerts"]?.arrayValue ?? [] { keys.insert(x.objectValue?["key"]?.stringValue ?? "") }
            }
            return keys
        }
        let early = notified().count
        #expect(
            waitUntil(30) { notified().count == 100 }, "\(notified().count) of 100 notified (\(early) before the kill)")
        #expect(
            count(
                "SELECT COUNT(*) FROM alerts WHERE owner IN (SELECT node FROM nodes WHERE until >= extract(epoch from clock_timestamp()))"
            ) == "100")
        try inB.close()
        try inC.close()
        b.waitUntilExit()
        c.waitUntilExit()
        #expect(b.terminationStatus == 0 && c.terminationStatus == 0)
        let sent = readRecords(log)
        let ids = sent.compactMap { $0["notification_id"]?.stringValue }
        // Every notification delivered; one sent again after a lease ran out mid-send comes under its own id.
        #expect(count("SELECT status, COUNT(*) FROM outbox GROUP BY 1") == "delivered|\(Set(ids).count)")
    }

    @Test(
        "kill -9 one of three nodes mid-storm to a webhook and a mail server that fail some requests: every notification delivered by both, duplicates only under the same webhook-id and Message-ID"
    )
    func killedMidStormToAWebhook() throws {
        let secret = "whsec_" + Data("tripline-test-secret-key-N-32byte".utf8).base64EncodedString()
        // The first two requests fail (the lane retries its first item, in order, then goes on); so do the mail
        // server's first two transactions (451: try again later).
        let hook = try WebhookReceiver(secret: secret, statuses: "503,500")
        defer { hook.stop() }
        let smtp = try SMTPServer(["--fail", "451,451"])
        defer { smtp.stop() }
        let dir = try ServeTests.deployment(entries: 100)
        defer { try? FileManager.default.removeItem(at: dir) }
        try secret.write(to: dir.appendingPathComponent("whsec"), atomically: true, encoding: .utf8)
        let server = try PostgresServer.shared()
        let url = try server.database("storm") + "&lease=1"
        try Self.onPostgres(
            dir, url,
            [
                ("group_by: [owner, list]", "group_by: ['...']"),
                (
                    "file_configs: [{path: alerts.ndjson}]",
                    "webhook_configs: [{url: \"http://127.0.0.1:\(hook.port)/hook\", secret_file: whsec}], "
                        + "email_configs: [{to: oncall@ops.example, from: tripline@ops.example, "
                        + "smarthost: \"127.0.0.1:\(smtp.port)\", require_tls: false}]"
                ),
            ])
        let (a, inA) = try Self.node(dir)
        let (b, inB) = try Self.node(dir)
        let (c, inC) = try Self.node(dir)
        defer { for p in [a, b, c] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let hits = (0..<100).map { #"{"id":"h\#($0)","type":"phone","value":"+32470\#(String(format: "%06d", $0))"}"# }
        try inA.write(contentsOf: Data((hits.joined(separator: "\n") + "\n").utf8))
        // A storm of 100 notifications (a group per alert), A killed once a third of them have reached the peer.
        #expect(waitUntil(30) { hook.received.count >= 33 })
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        let db = server.name(of: url)
        func count(_ sql: String) -> String {
            ((try? server.psql(["-d", db, "-Atc", sql])) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // The survivors take over its lanes after the lease and adopt what it had not queued.
        #expect(
            waitUntil(60) {
                count("SELECT COUNT(*) FROM outbox WHERE status <> 'delivered'") == "0"
                    && count("SELECT COUNT(*) FROM alerts") == "100" && count("SELECT COUNT(*) FROM outbox") != "0"
                    && Set(
                        hook.received.filter { $0["status"] == .number("200") }.compactMap {
                            $0["body"]?.objectValue?["alerts"]?.arrayValue?.first?.objectValue?["fingerprint"]?
                                .stringValue
                        }
                    ).count == 100
                    && Set(smtp.received.compactMap { $0["message_id"]?.stringValue }).count == 100
            })
        try inB.close()
        try inC.close()
        b.waitUntilExit()
        c.waitUntilExit()
        let received = hook.received
        #expect(received.allSatisfy { $0["verified"] == .bool(true) })
        let ok = received.filter { $0["status"] == .number("200") }
        let ids = Set(ok.compactMap { $0["id"]?.stringValue })
        // Every notification delivered: one webhook-id per outbox item; a second delivery only under the same id.
        #expect(String(ids.count) == count("SELECT COUNT(*) FROM outbox WHERE integration LIKE 'webhook/%'"))
        // And one Message-ID per mail item: a mail sent again (a lease run out mid-send) comes under its own.
        let mails = smtp.received
        let messageIDs = Set(mails.compactMap { $0["message_id"]?.stringValue })
        #expect(String(messageIDs.count) == count("SELECT COUNT(*) FROM outbox WHERE integration LIKE 'email/%'"))
        #expect(messageIDs.count == 100)
        #expect(mails.filter { $0["duplicate"] == .bool(true) }.count == mails.count - messageIDs.count)
        var keys = Set<String>()
        for r in ok {
            for x in r["body"]?.objectValue?["alerts"]?.arrayValue ?? [] {
                keys.insert(x.objectValue?["fingerprint"]?.stringValue ?? "")
            }
        }
        #expect(keys.count == 100)
        #expect(received.count - ok.count == 2)  // the peer's two failures, retried
    }
}
