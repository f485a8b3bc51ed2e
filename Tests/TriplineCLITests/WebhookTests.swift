import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// Webhook delivery against a real HTTP receiver on loopback that checks every signature with the
/// `standardwebhooks` package.
@Suite("webhook delivery", .serialized)
struct WebhookTests {
    static let secretA = "whsec_" + Data("tripline-test-secret-key-A-32byte".utf8).base64EncodedString()
    static let secretB = "whsec_" + Data("tripline-test-secret-key-B-32byte".utf8).base64EncodedString()

    func deployment(port: Int, secrets: String) throws -> URL {
        let dir = try ServeTests.deployment(entries: 5)
        try secrets.write(to: dir.appendingPathComponent("whsec"), atomically: true, encoding: .utf8)
        let cfg = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(
            of: "file_configs: [{path: alerts.ndjson}]",
            with: "webhook_configs: [{url: \"http://127.0.0.1:\(port)/hook\", secret_file: whsec}]"
        ).write(to: cfg, atomically: true, encoding: .utf8)
        return dir
    }

    @Test("signed per Standard Webhooks (two secrets during rotation), retried on 503 and 429 with the same id")
    func signedAndRetried() throws {
        // The receiver knows only the new secret; Tripline signs with old and new during the rotation.
        let rx = try WebhookReceiver(secret: Self.secretB, statuses: "503,429")
        defer { rx.stop() }
        let dir = try deployment(port: rx.port, secrets: Self.secretA + "\n" + Self.secretB + "\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLITests.run(
            ["serve", "--config", "tripline.yaml", "--drain-timeout", "20"],
            stdin: #"{"id":"a","type":"phone","value":"+32470000001","source":{"item":"P-1"}}"# + "\n", cwd: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let got = rx.received
        #expect(got.count == 3, "\(got)")
        #expect(got.allSatisfy { $0["verified"] == .bool(true) }, "\(got.map { $0["error"] ?? .null })")
        #expect(Set(got.compactMap { $0["id"]?.stringValue }).count == 1)  // a redelivery reuses the webhook-id
        let body = try #require(got.last?["body"]?.objectValue)
        #expect(body["status"] == .string("firing") && body["event_action"] == .string("trigger"))
        #expect(body["dedup_key"]?.stringValue == "wl:be-fedpol/crash/E1")
        #expect(
            body["alerts"]?.arrayValue?.first?.objectValue?["labels"]?.objectValue?["owner"] == .string("be-fedpol"))
    }

    @Test("410 holds the receiver's notifications (not dead letters, no records while held) until enabled")
    func goneIsHeld() throws {
        let rx = try WebhookReceiver(secret: Self.secretA, statuses: "410")
        defer { rx.stop() }
        let dir = try deployment(port: rx.port, secrets: Self.secretA)
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = ["--config", "tripline.yaml"]
        let first = try CLITests.run(
            ["serve", "--drain-timeout", "2"] + c,
            stdin: #"{"id":"a","type":"phone","value":"+32470000001"}"# + "\n", cwd: dir)
        #expect(first.status == 0)
        let firstKinds = try auditKinds(dir)
        let heldFrom = firstKinds.count
        #expect(firstKinds.filter { $0 == "delivery_failed" }.count == 1, "\(firstKinds)")
        #expect(firstKinds.filter { $0 == "receiver_disabled" }.count == 1, "\(firstKinds)")
        let second = try CLITests.run(
            ["serve", "--drain-timeout", "2"] + c,
            stdin: #"{"id":"b","type":"phone","value":"+32470000002"}"# + "\n", cwd: dir)
        #expect(second.status == 0)
        #expect(rx.received.count == 1)  // held: b was not even tried
        // While held, no attempt and no record per held item: only the second run's own records.
        let during = try auditKinds(dir).dropFirst(heldFrom)
        #expect(!during.contains { $0.hasPrefix("delivery") })
        let dead = try CLITests.run(["outbox", "list", "--dead", "--as", "analyst-ops", "--reason", "r"] + c, cwd: dir)
        #expect(dead.lines.isEmpty)  // a 410 is not a dead letter
        let pending = try CLITests.run(["outbox", "list", "--as", "analyst-ops", "--reason", "r"] + c, cwd: dir)
        #expect(pending.lines.filter { $0["status"] == .string("pending") }.count == 2)
        let en = try CLITests.run(
            ["receivers", "enable", "log", "--as", "analyst-ops", "--reason", "endpoint back"] + c, cwd: dir)
        #expect(en.status == 0, "\(en.stderr)")
        let third = try CLITests.run(["serve", "--drain-timeout", "10"] + c, stdin: "", cwd: dir)
        #expect(third.status == 0)
        let got = rx.received
        #expect(got.count == 3 && got.allSatisfy { $0["verified"] == .bool(true) }, "\(got)")
        // The refused one went out again under its first webhook-id.
        #expect(got[0]["id"] == got[1]["id"] || got[0]["id"] == got[2]["id"])
        #expect(got.filter { $0["status"] == .number("200") }.count == 2)
    }

    /// The kinds of the audit records, in order.
    func auditKinds(_ dir: URL) throws -> [String] {
        let q = try CLITests.run(
            ["audit", "query", "--config", "tripline.yaml", "--as", "auditor", "--reason", "test"], cwd: dir)
        return q.lines.compactMap { l in
            (try? JSONParser.parse(l["record"]?.stringValue ?? ""))?.objectValue?["kind"]?.stringValue
        }
    }
}
