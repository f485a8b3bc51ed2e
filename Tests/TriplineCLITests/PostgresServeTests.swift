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

    /// Alert keys and states as an analyst lists them, and the receivers' files' record counts.
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
            files[f] = readRecords(dir.appendingPathComponent(f).path).count
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
}
