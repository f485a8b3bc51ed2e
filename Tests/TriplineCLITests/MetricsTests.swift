import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// `/metrics` scraped from a running `tripline serve` and read by the reference parser (Python's
/// `prometheus_client`): the series SPEC §10 names, with the values the run produced, and no partner content in any
/// label or anywhere else in the text.
@Suite("metrics", .serialized)
struct MetricsTests {
    @Test("the SPEC §10 series, parsed by prometheus_client, with exact values and no partner content")
    func scrape() throws {
        let dir = try APITests.smallDeployment("metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try APITests.Server(dir: dir)
        try server.issue("admin")
        try server.issue("auditor")
        try server.start()
        defer { server.stop() }
        // Two hits on the list's one selector (one alert), one line refused, one selector that matches nothing.
        let body = [
            #"{"id":"m1","type":"phone","value":"+32 470 00 00 01","source":{"item":"P-1"}}"#,
            #"{"id":"m2","type":"phone","value":"+32470000001","source":{"item":"P-1"}}"#,
            #"{"id":"m3","type":"phone"}"#,
            #"{"id":"m4","type":"email","value":"nobody@example.org","source":{"item":"P-1"}}"#,
        ].joined(separator: "\n")
        let ingest = try server.call("POST", "/v1/selectors", as: "admin", body: body)
        #expect(ingest.status == 202, "\(ingest.text)")
        #expect(
            waitUntil(20) {
                (try? String(contentsOf: dir.appendingPathComponent("alerts.ndjson"), encoding: .utf8))?.isEmpty
                    == false
            })
        var text = ""
        #expect(
            waitUntil(20) {
                text = (try? server.call("GET", "/metrics", as: "auditor").text) ?? ""
                return text.contains(#"tripline_notifications_total{receiver="log",outcome="delivered"} 1"#)
            }, "\(text)")
        let metrics = dir.appendingPathComponent("metrics.txt")
        try text.write(to: metrics, atomically: true, encoding: .utf8)
        // The reference parser: every family with its type and samples, as JSON lines.
        let parsed = try Self.python(
            [
                """
                import json, sys
                from prometheus_client.parser import text_string_to_metric_families
                for f in text_string_to_metric_families(open(sys.argv[1]).read()):
                    for s in f.samples:
                        print(json.dumps({"family": f.name, "type": f.type, "help": f.documentation,
                                          "name": s.name, "labels": s.labels, "value": s.value}, sort_keys=True))
                """,
                metrics.path,
            ])
        #expect(parsed.status == 0, "\(parsed.stderr)")
        let samples = parsed.lines
        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first {
                $0["name"]?.stringValue == name
                    && ($0["labels"]?.objectValue.map { o in
                        Dictionary(o.map { ($0.key, $0.value.stringValue ?? "") }, uniquingKeysWith: { a, _ in a })
                    } ?? [:]) == labels
            }?["value"].flatMap { v in v.doubleValue }
        }
        func type(_ family: String) -> String? {
            samples.first { $0["family"]?.stringValue == family }?["type"]?.stringValue
        }
        #expect(value("tripline_selectors_total", ["outcome": "accepted"]) == 3)
        #expect(value("tripline_selectors_total", ["outcome": "rejected"]) == 1)
        #expect(value("tripline_hits_total", ["kind": "watchlist"]) == 2)
        #expect(value("tripline_hits_total", ["kind": "rule"]) == 0)  // the series exists before the first
        #expect(value("tripline_alerts", ["state": "firing", "priority": "medium"]) == 1)
        #expect(value("tripline_alerts", ["state": "resolved", "priority": "medium"]) == 0)
        #expect(value("tripline_notifications_total", ["receiver": "log", "outcome": "delivered"]) == 1)
        #expect(value("tripline_outbox_items", ["receiver": "log", "status": "delivered"]) == 1)
        #expect(value("tripline_outbox_items", ["receiver": "log", "status": "pending"]) == 0)
        #expect(value("tripline_delivery_duration_seconds_count", ["receiver": "log"]) == 1)
        let records = Double(ServeTests.query(dir, "select count(*) from audit_records"))
        #expect(value("tripline_audit_records") == records && records ?? 0 > 5)
        #expect(type("tripline_selectors") == "counter")
        #expect(type("tripline_alerts") == "gauge")
        #expect(type("tripline_delivery_duration_seconds") == "histogram")
        #expect(
            samples.first { $0["family"]?.stringValue == "tripline_alerts" }?["help"]?.stringValue?.isEmpty == false)
        // Partner content appears nowhere: not the owner, the list, the entry, the selector or the input's ids.
        for secret in ["be-fedpol", "rf.yaml", "BE-1", "32470000001", "nobody", "m1", "partner-be"] {
            #expect(!text.contains(secret), "\(secret) in /metrics")
        }
        // Only these label names exist.
        var names = Set<String>()
        for s in samples { for k in s["labels"]?.objectValue?.map(\.key) ?? [] { names.insert(k) } }
        #expect(names == ["outcome", "kind", "state", "priority", "receiver", "status", "le"])
        // Without a token: the one 401.
        #expect(try APITests.send(server.port, "GET", "/metrics").status == 401)
    }

    /// `python3 -c SCRIPT ARGS…`: its status and output.
    static func python(_ args: [String]) throws -> CLITests.Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c"] + args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLITests.Run(
            status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }
}
