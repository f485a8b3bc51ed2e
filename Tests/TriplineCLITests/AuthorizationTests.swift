import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// SPEC §8's role table through the real commands: every action × every role × own/other partner. The expected
/// outcome of each cell is written out below from the SPEC's table, not derived from the policy under test.
@Suite("authorisation matrix", .serialized)
struct AuthorizationTests {
    static let secret = "whsec_" + Data("tripline-test-secret-key-A-32byte".utf8).base64EncodedString()

    /// One alert on be-fedpol's amber list (releasable to be-fedpol only), routed to the operating agency's log
    /// and, as the owner's, to be-fedpol's receivers; a dead letter on be-fedpol's webhook; a silence of
    /// analyst-be's; fr-dgsi is the other partner, with nothing routed to it.
    static func deployment() throws -> URL {
        let dir = scratchDirectory("authz")
        let lists = dir.appendingPathComponent("Watchlists/be-fedpol")
        try FileManager.default.createDirectory(at: lists, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
        try """
        watchlist: rf
        owner: be-fedpol
        handling: {tlp: amber, releasable_to: [be-fedpol]}
        review_by: 2099-01-01
        entries:
          - {ref: BE-1, label: Canary label, selectors: [{type: phone, value: "+32470000001"}]}
        """.write(to: lists.appendingPathComponent("rf.yaml"), atomically: true, encoding: .utf8)
        try secret.write(to: dir.appendingPathComponent("whsec"), atomically: true, encoding: .utf8)
        let hook = try WebhookReceiver(secret: secret, statuses: "404")
        defer { hook.stop() }
        try """
        rules: Rules
        watchlists: Watchlists
        state: state/state.sqlite
        operator: ops
        partners:
          - {id: ops, name: Ops, countries: [], contact: ops@example}
          - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
          - {id: fr-dgsi, name: FR, countries: [FR], contact: fr@example}
        principals:
          - {id: partner-be, partner: be-fedpol, role: partner}
          - {id: analyst-be, partner: be-fedpol, role: analyst}
          - {id: partner-fr, partner: fr-dgsi, role: partner}
          - {id: analyst-fr, partner: fr-dgsi, role: analyst}
          - {id: analyst-ops, partner: ops, role: analyst}
          - {id: auditor, partner: ops, role: auditor}
          - {id: admin, partner: ops, role: admin}
          - {id: ingest-1, partner: ops, role: ingest}
        receivers:
          - {name: ops-log, partner: ops, file_configs: [{path: ops.ndjson}]}
          - {name: be-oncall, partner: be-fedpol, file_configs: [{path: be.ndjson}]}
          - {name: be-hook, partner: be-fedpol, webhook_configs: [{url: "http://127.0.0.1:\(hook.port)/h", secret_file: whsec}]}
          - {name: fr-oncall, partner: fr-dgsi, file_configs: [{path: fr.ndjson}]}
        route:
          receiver: ops-log
          group_wait: 0s
          routes: [{matchers: ['owner="be-fedpol"'], receiver: be-hook, continue: true}, {receiver: ops-log}]
        audit: {origin: test.example/audit, key_file: audit.key}
        """.write(to: dir.appendingPathComponent("tripline.yaml"), atomically: true, encoding: .utf8)
        let key = try CLITests.run(["audit", "keygen", "--out", "audit.key"], cwd: dir)
        guard key.status == 0 else { throw TestFailure(key.stderr) }
        let s = try CLITests.run(
            ["serve", "--config", "tripline.yaml", "--drain-timeout", "5"],
            stdin: #"{"id":"a","type":"phone","value":"+32470000001","source":{"item":"P-1"}}"# + "\n", cwd: dir)
        guard s.status == 0 else { throw TestFailure(s.stderr) }
        let add = try CLITests.run(
            [
                "silence", "add", "--config", "tripline.yaml", "--as", "analyst-be", "--reason", "r", "--comment",
                "quiet", #"priority="low""#,
            ], cwd: dir)
        guard add.status == 0 else { throw TestFailure(add.stderr) }
        try add.stdout.trimmingCharacters(in: .whitespacesAndNewlines).write(
            to: dir.appendingPathComponent("silence-id"), atomically: true, encoding: .utf8)
        return dir
    }

    static let principals = [
        "partner-be", "analyst-be", "partner-fr", "analyst-fr", "analyst-ops", "auditor", "admin", "ingest-1",
    ]

    /// SPEC §8, written out: for list commands the number of records each principal gets, else "ok" or "refused".
    /// The alert is on be-fedpol's list (own for *-be, other for *-fr) and routed to the operating agency's log.
    static let expected: [(action: String, cells: [String])] = [
        // partner-be, analyst-be, partner-fr, analyst-fr, analyst-ops, auditor, admin, ingest-1
        ("alerts list", ["1", "1", "0", "0", "1", "1", "refused", "refused"]),
        ("alerts show", ["ok", "ok", "refused", "refused", "ok", "ok", "refused", "refused"]),
        ("alerts ack", ["refused", "ok", "refused", "refused", "ok", "refused", "refused", "refused"]),
        ("alerts resolve", ["ok", "ok", "refused", "refused", "ok", "refused", "refused", "refused"]),
        ("silence add", ["refused", "ok", "refused", "ok", "ok", "refused", "ok", "refused"]),
        ("silence list", ["refused", "1", "refused", "0", "0", "1", "1", "refused"]),
        ("silence expire", ["refused", "ok", "refused", "refused", "refused", "refused", "ok", "refused"]),
        ("outbox list", ["refused", "2", "refused", "0", "1", "3", "3", "refused"]),
        ("outbox retry", ["refused", "ok", "refused", "refused", "refused", "refused", "ok", "refused"]),
        ("receivers enable", ["refused", "ok", "refused", "refused", "refused", "refused", "ok", "refused"]),
        ("audit query", ["refused", "refused", "refused", "refused", "refused", "ok", "refused", "refused"]),
        ("audit export", ["refused", "refused", "refused", "refused", "refused", "ok", "refused", "refused"]),
    ]

    func arguments(_ action: String, dir: URL) throws -> [String] {
        let sid = try String(contentsOf: dir.appendingPathComponent("silence-id"), encoding: .utf8)
        let dead = ServeTests.query(dir, "select id from outbox where status = 'dead'")
        switch action {
        case "alerts show": return ["alerts", "show", "1"]
        case "alerts ack": return ["alerts", "ack", "1"]
        case "alerts resolve": return ["alerts", "resolve", "1"]
        case "silence add": return ["silence", "add", "--comment", "c", #"priority="low""#]
        case "silence expire": return ["silence", "expire", sid]
        case "outbox retry": return ["outbox", "retry", dead]
        case "receivers enable": return ["receivers", "enable", "be-hook"]
        case "audit export": return ["audit", "export", "--out", dir.appendingPathComponent("bundle-\(UUID())").path]
        default: return action.split(separator: " ").map(String.init)
        }
    }

    func refusals(_ dir: URL) -> Int {
        Int(
            ServeTests.query(
                dir, "select count(*) from audit_records where json_extract(record, '$.kind') = 'refused'")) ?? -1
    }

    @Test("every action × every role × own/other partner, as SPEC §8's table says; every refusal audited")
    func matrix() throws {
        let dir = try Self.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(ServeTests.query(dir, "select count(*) from outbox where status = 'dead'") == "1")
        let state = dir.appendingPathComponent("state")
        let pristine = dir.appendingPathComponent("state.pristine")
        try FileManager.default.copyItem(at: state, to: pristine)
        var failures: [String] = []
        for (action, cells) in Self.expected {
            for (who, want) in zip(Self.principals, cells) {
                // Every cell starts from the same state (acks, resolves, expiries do not carry over).
                try FileManager.default.removeItem(at: state)
                try FileManager.default.copyItem(at: pristine, to: state)
                let before = refusals(dir)
                let r = try CLITests.run(
                    try arguments(action, dir: dir) + [
                        "--config", "tripline.yaml", "--as", who, "--reason", "matrix",
                    ], cwd: dir)
                let got: String
                if r.status == 1 && refusals(dir) == before + 1 {
                    got = "refused"
                } else if r.status != 0 {
                    got = "exit \(r.status) without an audited refusal: \(r.stderr)"
                } else if Int(want) != nil {
                    got = String(r.lines.count)
                } else {
                    got = "ok"
                }
                if got != want { failures.append("\(action) as \(who): expected \(want), got \(got)") }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test(
        "entitlement follows the list's handling now: made amber+strict, fr-dgsi no longer sees it, in views or sinks")
    func entitlementFollowsCurrentHandling() throws {
        let dir = try Self.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = ["--config", "tripline.yaml"]
        let list = dir.appendingPathComponent("Watchlists/be-fedpol/rf.yaml")
        let cfg = dir.appendingPathComponent("tripline.yaml")
        // fr-dgsi entitled and told (its receiver routed every alert), then the owner makes the list strict.
        try String(contentsOf: list, encoding: .utf8).replacingOccurrences(
            of: "releasable_to: [be-fedpol]", with: "releasable_to: [be-fedpol, fr-dgsi]"
        ).write(to: list, atomically: true, encoding: .utf8)
        try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(
            of: "{receiver: ops-log}]", with: "{receiver: fr-oncall, continue: true}, {receiver: ops-log}]"
        ).write(to: cfg, atomically: true, encoding: .utf8)
        let first = try CLITests.run(
            ["serve", "--drain-timeout", "3"] + c,
            stdin: #"{"id":"b","type":"phone","value":"+32470000001","source":{"item":"P-2"}}"# + "\n", cwd: dir)
        #expect(first.status == 0, "\(first.stderr)")
        let before = try CLITests.run(["alerts", "show", "1", "--as", "analyst-fr", "--reason", "r"] + c, cwd: dir)
        #expect(before.stdout.contains("Canary label"), "\(before.stdout)")
        try String(contentsOf: list, encoding: .utf8).replacingOccurrences(
            of: "{tlp: amber, releasable_to: [be-fedpol, fr-dgsi]}", with: "{tlp: amber+strict}"
        ).write(to: list, atomically: true, encoding: .utf8)
        // The service (re)loads the lists; then the owner resolves, and fr-dgsi's receiver is told.
        let second = try CLITests.run(["serve", "--drain-timeout", "3"] + c, stdin: "", cwd: dir)
        #expect(second.status == 0, "\(second.stderr)")
        let after = try CLITests.run(["alerts", "show", "1", "--as", "analyst-fr", "--reason", "r"] + c, cwd: dir)
        #expect(after.status == 0 && !after.stdout.contains("Canary label") && !after.stdout.contains("+32470000001"))
        #expect(after.lines.first?["restricted"] == .bool(true))
        let resolve = try CLITests.run(
            ["alerts", "resolve", "1", "--as", "analyst-be", "--reason", "done"] + c, cwd: dir)
        #expect(resolve.status == 0, "\(resolve.stderr)")
        let third = try CLITests.run(["serve", "--drain-timeout", "3"] + c, stdin: "", cwd: dir)
        #expect(third.status == 0)
        let fr = try String(contentsOf: dir.appendingPathComponent("fr.ndjson"), encoding: .utf8)
        let frLines = fr.split(separator: "\n")
        #expect(frLines.count == 2)  // the firing (entitled then), the resolve (not any more)
        #expect(frLines.first?.contains("Canary label") == true)
        #expect(frLines.last.map { !$0.contains("Canary label") && !$0.contains("+32470000001") } == true)
    }

    @Test("a partner's silence quiets only its own receivers; acks stop only the acknowledging partner's repeats")
    func scopes() throws {
        let dir = try Self.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = ["--config", "tripline.yaml"]
        // nl-style attack: fr-dgsi's analyst silences be-fedpol's alerts for 1000 days.
        let silence = try CLITests.run(
            ["silence", "add", "--as", "analyst-fr", "--reason", "r", "--comment", "x", "--duration", "300d"] + c
                + [#"owner="be-fedpol""#], cwd: dir)
        #expect(silence.status == 0, "\(silence.stderr)")
        let tooLong = try CLITests.run(
            ["silence", "add", "--as", "admin", "--reason", "r", "--comment", "x", "--duration", "1000d"] + c
                + [#"owner="be-fedpol""#], cwd: dir)
        #expect(tooLong.status == 64 && tooLong.stderr.contains("at most 365d"), "\(tooLong.stderr)")
        // A second sighting after be-fedpol's repeat would be due: be-fedpol's receivers still hear of it.
        let s = try CLITests.run(
            ["serve", "--drain-timeout", "3"] + c,
            stdin: #"{"id":"b","type":"phone","value":"+32470000001","source":{"item":"P-2"}}"# + "\n", cwd: dir)
        #expect(s.status == 0, "\(s.stderr)")
        let suppressed = ServeTests.query(
            dir,
            "select count(*) from audit_records r join audit_payloads p on p.idx = r.idx where json_extract(r.record, '$.kind') = 'suppressed' and json_extract(p.payload, '$.reason') = 'silence'"
        )
        #expect(suppressed == "0")  // fr-dgsi's silence applies to fr-dgsi's receivers, which get nothing here
        // The acknowledging partner sees "acknowledged"; another sees "firing".
        let ack = try CLITests.run(["alerts", "ack", "1", "--as", "analyst-be", "--reason", "on it"] + c, cwd: dir)
        #expect(ack.status == 0, "\(ack.stderr)")
        let be = try CLITests.run(["alerts", "show", "1", "--as", "analyst-be", "--reason", "r"] + c, cwd: dir)
        let ops = try CLITests.run(["alerts", "show", "1", "--as", "analyst-ops", "--reason", "r"] + c, cwd: dir)
        #expect(be.lines.first?["state"] == .string("acknowledged"))
        #expect(be.lines.first?["acknowledged_by"]?.arrayValue?.count == 1)
        #expect(ops.lines.first?["state"] == .string("firing"))
        #expect(ops.lines.first?["acknowledged_by"] == nil)  // not entitled: no content, no partner list
        #expect(!ops.stdout.contains("Canary label") && !ops.stdout.contains("+32470000001"))
    }
}
