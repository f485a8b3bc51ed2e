import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// Escalation through `tripline serve` (issue 18): steps one, two and three virtual minutes after the first
/// notification, with time running 30 times as fast (`TRIPLINE_TEST_CLOCK`, the same virtual time across
/// restarts), and the service killed with SIGKILL between step 1 and step 2. Each step's receiver must get exactly
/// one notification, at its time: tolerance 20 virtual seconds (0.7 s of real time: a 50 ms tick is 1.5 virtual
/// seconds; the rest is scheduling on a loaded two-core machine).
@Suite("escalation through serve")
struct EscalationServeTests {
    static func start(_ dir: URL, clock: String, log name: String) throws -> Process {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = ["serve", "--config", "tripline.yaml", "--follow", dir.appendingPathComponent("in.ndjson").path]
        p.currentDirectoryURL = dir
        p.environment = ProcessInfo.processInfo.environment.merging(["TRIPLINE_TEST_CLOCK": clock]) { $1 }
        let log = dir.appendingPathComponent(name)
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: log)
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return p
    }

    static func time(_ s: String?) -> Double? {
        guard let s else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d.timeIntervalSince1970 }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)?.timeIntervalSince1970
    }

    @Test func killedBetweenStepsResumesAtTheRightStep() throws {
        let dir = try ServeTests.deployment(entries: 3)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tripline.yaml")
        var text = try String(contentsOf: path, encoding: .utf8)
        text = text.replacingOccurrences(
            of: "  - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}\n",
            with: """
                  - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
                  - {name: duty, partner: ops, file_configs: [{path: duty.ndjson}]}
                  - {name: chief, partner: ops, file_configs: [{path: chief.ndjson}]}
                  - {name: night, partner: ops, file_configs: [{path: night.ndjson}]}

                """)
        text = text.replacingOccurrences(
            of: "repeat_interval: 100h}",
            with:
                "repeat_interval: 100h, escalation: [{after: 60s, receivers: [duty]}, {after: 120s, receivers: [chief]}, {after: 180s, receivers: [night]}]}"
        )
        try text.write(to: path, atomically: true, encoding: .utf8)
        let check = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: dir)
        #expect(check.status == 0, "\(check.stderr)")
        let input = dir.appendingPathComponent("in.ndjson")
        _ = FileManager.default.createFile(atPath: input.path, contents: Data())
        let clock = "\(Int(Date().timeIntervalSince1970) - 1):30"
        func records(_ name: String) -> [JSONObject] { readRecords(dir.appendingPathComponent(name).path) }

        let a = try Self.start(dir, clock: clock, log: "serve-1.log")
        let h = try FileHandle(forWritingTo: input)
        h.write(Data((#"{"id":"s1","type":"phone","value":"+32470000001"}"# + "\n").utf8))
        try h.close()
        #expect(waitUntil(20) { records("duty.ndjson").count == 1 })
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        #expect(records("chief.ndjson").isEmpty, "step 2 ran before the kill")
        // `alerts show` gives the escalation: one step done, the next step, its time and receivers.
        let show = try CLITests.run(
            ["alerts", "show", "1", "--config", "tripline.yaml", "--as", "auditor", "--reason", "check"], cwd: dir)
        #expect(show.status == 0, "\(show.stderr)")
        let escalation = try #require(show.lines.first?["escalation"]?.arrayValue?.first?.objectValue)
        #expect(escalation["steps_done"] == .number("1") && escalation["next_step"] == .number("2"))
        #expect(escalation["next_receivers"] == .array([.string("chief")]))
        let due = try #require(Self.time(escalation["next_at"]?.stringValue))
        let started = try #require(Self.time(escalation["started_at"]?.stringValue))
        #expect(due - started == 120)

        let b = try Self.start(dir, clock: clock, log: "serve-2.log")
        #expect(waitUntil(30) { records("night.ndjson").count == 1 })
        usleep(1_500_000)  // 45 virtual seconds more: nothing else may come
        kill(b.processIdentifier, SIGTERM)
        b.waitUntilExit()
        let first = try #require(Self.time(records("alerts.ndjson").first?["at"]?.stringValue))
        #expect(records("alerts.ndjson").count == 1)
        for (name, after, step) in [("duty.ndjson", 60.0, 1), ("chief.ndjson", 120, 2), ("night.ndjson", 180, 3)] {
            let r = records(name)
            #expect(r.count == 1, "\(name): \(r.count) notifications")
            let at = try #require(Self.time(r.first?["at"]?.stringValue))
            #expect(at - first >= after && at - first < after + 20, "\(name) at +\(at - first) s, due at +\(after)")
            #expect(r.first?["escalation"]?.objectValue?["step"]?.doubleValue == Double(step))
        }
        let counts = ServeTests.eventCounts(dir)
        #expect(counts["escalation_started"] == 1)
        #expect(counts["escalation_step"] == 3)
    }

    /// A heartbeat through serve: selectors of a source that stops (misses on every list, which the screen would
    /// pass over unread: heartbeats turn it off), one missed notification at its time, one resolved on the next.
    @Test func heartbeatFiresWhenASourceStopsAndResolvesWhenItResumes() throws {
        let dir = try ServeTests.deployment(
            entries: 3, extra: "heartbeats: [{field: source.item, match: \"RAQQA-*\", every: 120s, receiver: log}]\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.ndjson")
        _ = FileManager.default.createFile(atPath: input.path, contents: Data())
        func append(_ item: String) throws {
            let h = try FileHandle(forWritingTo: input)
            h.seekToEndOfFile()
            h.write(
                Data((#"{"id":"x","type":"phone","value":"+32470999999","source":{"item":"\#(item)"}}"# + "\n").utf8))
            try h.close()
        }
        func beats() -> [String] {
            readRecords(dir.appendingPathComponent("alerts.ndjson").path).filter { $0["heartbeat"] != nil }
                .compactMap { $0["status"]?.stringValue }
        }
        // The source's first selector is in the file before serve starts, so it is read with the first batch; the
        // heartbeat's interval (120 virtual s = 4 s at 30x) leaves that much for start-up on a loaded machine (with
        // 60 s a slow start let the never-seen heartbeat fire first, then resolve on that selector).
        try append("RAQQA-PHONE-1")
        let p = try Self.start(dir, clock: "\(Int(Date().timeIntervalSince1970) - 1):30", log: "serve.log")
        #expect(waitUntil(20) { beats() == ["firing"] })
        try append("MOSUL-PHONE-1")  // another source: the heartbeat stays firing
        usleep(500_000)
        #expect(beats() == ["firing"])
        try append("RAQQA-PHONE-2")
        #expect(waitUntil(20) { beats() == ["firing", "resolved"] })
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let counts = ServeTests.eventCounts(dir)
        #expect(counts["heartbeat_missed"] == 1 && counts["heartbeat_resumed"] == 1)
        // The last-seen time is in the database (SPEC §11), committed with the batch that saw it.
        #expect(!ServeTests.query(dir, "select offset from offsets where source like 'hb-seen:%'").isEmpty)
    }

    @Test func aMalformedTestClockStopsServe() throws {
        let dir = try ServeTests.deployment(entries: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = FileManager.default.createFile(atPath: dir.appendingPathComponent("in.ndjson").path, contents: Data())
        let p = try Self.start(dir, clock: "soon:fast", log: "serve.log")
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        let log = try String(contentsOf: dir.appendingPathComponent("serve.log"), encoding: .utf8)
        #expect(log.contains("TRIPLINE_TEST_CLOCK is EPOCH:RATE"))
    }
}
