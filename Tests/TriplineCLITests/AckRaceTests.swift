import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// Two processes on one state database: `serve` folding sightings into an alert without pause, and an operator
/// acknowledging it from the command line meanwhile. Neither change may overwrite the other.
@Suite("acks from the command line while serve folds sightings", .serialized)
struct AckRaceTests {
    /// Appends sighting lines of one number to a file from its own thread until stopped.
    final class Writer: @unchecked Sendable {
        private let lock = NSLock()
        private var stop = false
        private var n = 0
        let file: URL
        init(_ file: URL) { self.file = file }
        var written: Int { lock.withLock { n } }
        func halt() { lock.withLock { stop = true } }
        func run() throws {
            let h = try FileHandle(forWritingTo: file)
            defer { try? h.close() }
            h.seekToEndOfFile()
            while !lock.withLock({ stop }) {
                let i = written
                h.write(Data((#"{"id":"s\#(i)","type":"phone","value":"+32470000001"}"# + "\n").utf8))
                lock.withLock { n += 1 }
                usleep(2000)
            }
        }
    }

    @Test("every ack holds and every sighting is counted once")
    func acksWhileFolding() throws {
        let dir = try ServeTests.deployment(entries: 3)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.ndjson")
        _ = FileManager.default.createFile(atPath: input.path, contents: Data())
        let (p, err) = try ServeTests.start(
            ["serve", "--config", "tripline.yaml", "--follow", input.path], cwd: dir)
        let writer = Writer(input)
        let stopped = DispatchSemaphore(value: 0)
        Thread {
            try? writer.run()
            stopped.signal()
        }.start()
        let key = "wl:be-fedpol/crash/E1"
        var id = ""
        #expect(
            waitUntil(30) {
                id = ServeTests.query(dir, "select id from alerts where key = '\(key)'")
                return !id.isEmpty
            })
        func ack(_ principal: String, _ reason: String, until: String? = nil) -> CLITests.Run? {
            try? CLITests.run(
                ["alerts", "ack", id, "--as", principal, "--reason", reason, "--config", "tripline.yaml"]
                    + (until.map { ["--until", $0] } ?? []), cwd: dir)
        }
        // Short acks by one partner, each after the previous ran out, then one until resolved by each partner.
        var statuses: [Int32] = []
        for k in 0..<5 {
            statuses.append(ack("analyst-be", "short \(k)", until: "1s")?.status ?? -1)
            usleep(1_100_000)
        }
        statuses.append(ack("analyst-be", "until resolved")?.status ?? -1)
        statuses.append(ack("analyst-ops", "ops too")?.status ?? -1)
        usleep(300_000)
        writer.halt()
        stopped.wait()
        let sightings = writer.written
        // Every sighting folded in: the count reaches the lines written (a lost fold would leave it short).
        var count = 0
        let all = waitUntil(60) {
            count = Int(ServeTests.query(dir, "select count from alerts where key = '\(key)'")) ?? 0
            return count >= sightings
        }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(statuses == [0, 0, 0, 0, 0, 0, 0])
        #expect(all && count == sightings, "\(count) of \(sightings) sightings counted")
        #expect(sightings > 1000)

        // The acks hold: the last of each partner's, as the audit log has them.
        let acks = try JSONParser.parse(ServeTests.query(dir, "select acks from alerts where key = '\(key)'"))
            .objectValue
        let be = acks?["be-fedpol"]?.objectValue
        let ops = acks?["ops"]?.objectValue
        #expect(be?["by"] == .string("analyst-be") && be?["until"] == nil, "\(String(describing: acks))")
        #expect(ops?["by"] == .string("analyst-ops") && ops?["until"] == nil, "\(String(describing: acks))")
        #expect(ServeTests.eventCounts(dir)["alert_acknowledged"] == 7)
        #expect(ServeTests.eventCounts(dir)["alert_opened"] == 1)
        // Each sighting after the first folded once (the fold records name no receiver).
        let folds = ServeTests.query(
            dir,
            """
            select count(*) from audit_records r join audit_payloads p on p.idx = r.idx
            where json_extract(r.record, '$.kind') = 'suppressed' and json_extract(p.payload, '$.alert_key') = '\(key)'
            and json_extract(p.payload, '$.receiver') is null
            """)
        #expect(Int(folds) == sightings - 1)
    }
}
