import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// The command line as a client of the API (`--server`, a token): the server decides with the token's principal.
@Suite("command line through the API", .serialized)
struct RemoteCLITests {
    @Test("alerts, silences and refusals through --server with a token; the principal is the token's")
    func remote() throws {
        let port = freePort()
        let dir = try ServeTests.deployment(entries: 3, extra: "http: {listen: \"127.0.0.1:\(port)\"}")
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = ["--config", "tripline.yaml"]
        let yaml = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: yaml, encoding: .utf8)
            .replacingOccurrences(
                of: "principals:\n", with: "principals:\n  - {id: admin, partner: ops, role: admin}\n"
            )
            .write(to: yaml, atomically: true, encoding: .utf8)
        for who in ["analyst-be", "analyst-ops"] {
            let issued = try CLITests.run(
                ["tokens", "issue", "--principal", who, "--as", "admin", "--reason", "setup"] + c, cwd: dir)
            #expect(issued.status == 0, "\(issued.stderr)")
            try issued.stdout.write(to: dir.appendingPathComponent(who + ".tok"), atomically: true, encoding: .utf8)
        }
        let input = dir.appendingPathComponent("in.ndjson")
        try FaultTests.line("a", 1).write(to: input, atomically: true, encoding: .utf8)
        let (p, _) = try ServeTests.start(["serve", "--follow", input.path] + c, cwd: dir)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let server = ["--server", "http://127.0.0.1:\(port)", "--reason", "remote"]
        func run(_ args: [String], as who: String) throws -> CLITests.Run {
            try CLITests.run(args + server + ["--token-file", who + ".tok"], cwd: dir)
        }
        #expect(waitUntil(15) { ((try? run(["alerts", "list"], as: "analyst-be").lines.count) ?? 0) == 1 })
        let ack = try run(["alerts", "ack", "1"], as: "analyst-be")
        #expect(ack.status == 0, "\(ack.stderr)")
        #expect(try run(["alerts", "show", "1"], as: "analyst-be").lines.first?["state"] == .string("acknowledged"))
        #expect(try run(["alerts", "show", "1"], as: "analyst-ops").lines.first?["state"] == .string("firing"))
        let sid = try run(["silence", "add", "--comment", "quiet", #"priority="low""#], as: "analyst-be").stdout
        #expect(!sid.isEmpty)
        #expect(try run(["silence", "list"], as: "analyst-be").lines.count == 1)
        #expect(try run(["silence", "list"], as: "analyst-ops").lines.isEmpty)  // another partner's silence
        let refused = try run(["audit", "query"], as: "analyst-be")
        #expect(refused.status == 1 && refused.stderr.contains("403"), "\(refused.stderr)")
        let missing = try CLITests.run(["alerts", "list"] + server, cwd: dir)
        #expect(missing.status == 64)  // no token
        // The audit log names the token's principal and its token id, not anything the client claimed.
        let acks = ServeTests.query(
            dir,
            "select json_extract(p.payload, '$.principal') || ' ' || json_extract(p.payload, '$.detail.token') from audit_records r join audit_payloads p on p.idx = r.idx where json_extract(r.record, '$.kind') = 'alert_acknowledged'"
        )
        #expect(acks.hasPrefix("analyst-be tok_"), "\(acks)")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
    }
}
