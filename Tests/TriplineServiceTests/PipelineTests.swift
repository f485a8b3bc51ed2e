import Foundation
import Logging
import Testing
import TriplineConfig
import TriplineJSON
import TriplineService
import TriplineState
import TriplineStateSQLite
import TriplineTestSupport

/// 2030-01-01T00:00:00Z: the clock the in-process tests pass to the pipeline.
let t0 = 1_893_456_000.0

/// A deployment on disk (lists, rules, configuration) and the service's parts built from it, in-process.
struct Deployment {
    let dir: URL
    let config: Configuration
    var statePath: String { config.state }

    /// One list `l` of be-fedpol with phones +3247000000N (entry EN), `entryYAML` appended to the entries.
    init(entries: Int = 10, listExtra: String = "", entryYAML: String = "", rules: String = "", extra: String = "")
        throws
    {
        dir = scratchDirectory("pipeline")
        let lists = dir.appendingPathComponent("Watchlists/be-fedpol")
        try FileManager.default.createDirectory(at: lists, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
        var yaml =
            "watchlist: l\nowner: be-fedpol\nhandling: {tlp: green}\nreview_by: 2099-01-01\n\(listExtra)entries:\n"
        for i in 0..<entries {
            yaml += "  - {ref: E\(i), selectors: [{type: phone, value: \"+3247000000\(i)\"}]}\n"
        }
        yaml += entryYAML
        try yaml.write(to: lists.appendingPathComponent("l.yaml"), atomically: true, encoding: .utf8)
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
        receivers:
          - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
        route: {receiver: log, group_by: [owner, list], group_wait: 0s, group_interval: 1s, repeat_interval: 100h}
        operator: ops
        \(extra)
        """.write(to: dir.appendingPathComponent("tripline.yaml"), atomically: true, encoding: .utf8)
        config = try Configuration.load(config: dir.appendingPathComponent("tripline.yaml").path)
    }

    func pipeline(
        busyTimeout: Double = 0.1, retryFor: Double = 30, now: Double = t0, logger: Logger = Logger(label: "test")
    ) throws -> (Pipeline, SQLiteStateStore) {
        let (loaded, errors, _) = Loaded.load(config, now: now)
        guard let loaded else { throw TestFailure("\(errors)") }
        let store = try SQLiteStateStore(path: statePath, busyTimeout: busyTimeout)
        try store.migrate()
        let p = try Pipeline(
            loaded: loaded, store: store, logger: logger, now: now,
            durability: Durability(retryFor: retryFor))
        return (p, store)
    }
}

/// Keeps the messages logged through it (a test reads what the operator would see).
final class LogLines: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [String] = []
    var lines: [String] { lock.withLock { _lines } }
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { lock.withLock { _lines.append("\(event.level): \(event.message)") } }
    var logger: Logger { Logger(label: "test") { _ in self } }
}

/// Input lines as the sources hand them over.
func batch(_ records: [String], source: String = "test", first: Int = 1) -> InputBatch {
    var offset: Int64 = 0
    var lines: [InputLine] = []
    for (i, r) in records.enumerated() {
        offset += Int64(r.utf8.count + 1)
        lines.append(InputLine(bytes: Array(r.utf8), number: first + i, end: offset))
    }
    return InputBatch(source: source, lines: lines, offset: offset, lineNumber: first + records.count - 1)
}

func phone(_ id: String, _ value: String, item: String = "P-1") -> String {
    #"{"id":"\#(id)","type":"phone","value":"\#(value)","source":{"item":"\#(item)"}}"#
}

func kinds(_ store: SQLiteStateStore) throws -> [String: Int] {
    var out: [String: Int] = [:]
    for e in try store.events(after: 0, limit: 1_000_000) { out[e.event.kind, default: 0] += 1 }
    return out
}

@Suite("Pipeline transactions", .serialized)
struct PipelineTests {
    @Test("a locked database: the batch waits and is committed once; memory was rolled back, not run ahead")
    func lockedDatabaseRetriesTheSameBatch() async throws {
        let d = try Deployment()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        let locker = try DatabaseLocker(d.statePath)
        let started = Date()
        let input = batch([phone("a", "+32470000001"), phone("b", "+32470000002"), "{broken"])
        async let done = pipeline.process(input, now: t0)
        try await Task.sleep(nanoseconds: 1_200_000_000)
        locker.release()
        let outcome = try await done
        #expect(outcome.accepted == 2 && outcome.rejected.map(\.line) == [3])
        // It waited for the lock (several failed attempts, each rolled back), then committed once.
        #expect(Date().timeIntervalSince(started) >= 1.1)
        let alerts = try store.alerts(states: nil, limit: 10)
        #expect(alerts.map(\.id).sorted() == [1, 2])  // ids not used up by the failed attempts
        let k = try kinds(store)
        #expect(k["ingest_batch"] == 1 && k["alert_opened"] == 2 && k["input_rejected"] == 1)
        #expect(try store.offset(source: "test") == input.offset)
        #expect(try store.outbox(status: nil, limit: 10).count == 1)  // one notification for the group
        // The next batch folds into the same alerts: memory and database agree.
        try await pipeline.process(batch([phone("c", "+32470000001")], first: 4), now: t0 + 1)
        #expect(try store.alerts(states: nil, limit: 10).map(\.count).sorted() == [1, 2])
        #expect(try kinds(store)["alert_opened"] == 2)
    }

    @Test("a database locked past --db-timeout stops the pipeline; a restart commits the batch exactly once")
    func unwritableStopsThenResumes() async throws {
        let d = try Deployment()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let input = batch([phone("a", "+32470000001"), phone("b", "+32470000003")])
        do {
            let (pipeline, store) = try d.pipeline(retryFor: 0.6)
            let locker = try DatabaseLocker(d.statePath)
            await #expect(throws: PipelineFailure.self) { try await pipeline.process(input, now: t0) }
            locker.release()
            #expect(try store.offset(source: "test") == nil)  // nothing counted as consumed
            #expect(try store.alerts(states: nil, limit: 10).isEmpty)
        }
        let (again, store) = try d.pipeline()
        try await again.process(input, now: t0)
        #expect(try store.alerts(states: nil, limit: 10).map(\.id).sorted() == [1, 2])
        #expect(try kinds(store)["ingest_batch"] == 1)
        #expect(try store.offset(source: "test") == input.offset)
    }

    @Test("a record whose change the database refuses is rejected alone; the rest of its batch is committed")
    func refusedRecordIsRejectedAlone() async throws {
        let d = try Deployment()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        // A trigger refusing one entry's alert: a constraint failure tied to one record.
        _ = ServeQuery.run(
            d.statePath,
            "CREATE TRIGGER refuse BEFORE INSERT ON alerts WHEN NEW.key LIKE '%/E7' BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        let input = batch([phone("a", "+32470000001"), phone("x", "+32470000007"), phone("b", "+32470000002")])
        try await pipeline.process(input, now: t0)
        let keys = try store.alerts(states: nil, limit: 10).map(\.key).sorted()
        #expect(keys == ["wl:be-fedpol/l/E1", "wl:be-fedpol/l/E2"])
        let rejected = try store.events(after: 0, limit: 1000).map(\.event).filter { $0.kind == "input_rejected" }
        #expect(rejected.count == 1)
        #expect(rejected.first?.detail["id"] == .string("x") && rejected.first?.detail["line"] == .number("2"))
        #expect(try store.offset(source: "test") == input.offset)
        let (rejectedCount, acceptedCount) = (await pipeline.rejected, await pipeline.accepted)
        #expect(rejectedCount == 1 && acceptedCount == 2)
    }

    @Test("keys that differ only after a NUL byte are two alerts (text bound and read with its length)")
    func nulInKeys() async throws {
        // A correlation per device: its alert key is "rule:per-device:" + source.item, NUL and all.
        let rule = """
            title: Phone
            id: base-phone
            name: phone
            logsource: {product: tripline, category: selector}
            detection:
              s: {type: phone}
              condition: s
            ---
            title: Device
            id: per-device
            level: high
            correlation:
              type: event_count
              rules: [phone]
              group-by: [source.item]
              timespan: 1h
              condition: {gte: 1}
            """
        let d = try Deployment(rules: rule)
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        let input = batch([
            phone("a", "+33612345678", item: #"P\u0000a"#), phone("b", "+33612345679", item: #"P\u0000b"#),
            phone("c", "+32470000001"),
        ])
        try await pipeline.process(input, now: t0)
        let keys = try store.alerts(states: nil, limit: 10).map(\.key).sorted()
        #expect(
            keys == ["rule:per-device:P\u{0}a", "rule:per-device:P\u{0}b", "rule:per-device:P-1", "wl:be-fedpol/l/E1"])
        for k in keys { #expect(try store.alert(key: k)?.key == k) }
        #expect(try kinds(store)["input_rejected"] == nil)
        #expect(try store.offset(source: "test") == input.offset)
    }

    @Test("an entry's expiry and a list's review date are judged at each selector's time, without a reload")
    func timeIsJudgedLive() async throws {
        let d = try Deployment(
            entries: 2,
            entryYAML: """
                  - {ref: SOON, expires: "2030-01-01T00:00:08Z", selectors: [{type: phone, value: "+32470000008"}]}
                """)
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        try await pipeline.process(batch([phone("before", "+32470000008")]), now: t0 + 4)
        try await pipeline.process(batch([phone("after", "+32470000008")], first: 2), now: t0 + 12)
        let opened = try store.events(after: 0, limit: 100).map(\.event).filter { $0.kind == "alert_opened" }
        #expect(opened.map { $0.detail["selector"] } == [.string("before")])
        #expect(await pipeline.hits == 1)
    }

    @Test("a rule expanding a list follows the entries' expiry, and its alert takes the list's handling")
    func expandFollowsExpiry() async throws {
        let rule = """
            title: Contact of a watched number
            id: contact-rule
            logsource: {product: tripline, category: selector}
            level: high
            detection:
              s: {context.contact_number|expand: '%be-fedpol/l%'}
              condition: s
            """
        let d = try Deployment(
            entries: 1,
            entryYAML: """
                  - {ref: SOON, expires: "2030-01-01T00:00:08Z", selectors: [{type: phone, value: "+32470000008"}]}
                """, rules: rule)
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let path = d.dir.appendingPathComponent("Watchlists/be-fedpol/l.yaml")
        try String(contentsOf: path, encoding: .utf8).replacingOccurrences(
            of: "handling: {tlp: green}", with: "handling: {tlp: amber}"
        ).write(to: path, atomically: true, encoding: .utf8)
        let (pipeline, store) = try d.pipeline()
        func contact(_ id: String) -> String {
            #"{"id":"\#(id)","type":"phone","value":"+33612345678","context":{"contact_number":"+32470000008"}}"#
        }
        try await pipeline.process(batch([contact("before")]), now: t0 + 4)
        try await pipeline.process(batch([contact("after")], first: 2), now: t0 + 12)
        let rules = try store.alerts(states: nil, limit: 10).filter { $0.kind == "rule" }
        #expect(rules.count == 1 && rules.first?.count == 1)  // the later sighting found no rule hit
        let protections = rules.first?.payload["protections"]?.arrayValue ?? []
        #expect(protections.count == 1)
        #expect(protections.first?.objectValue?["owner"] == .string("be-fedpol"))
        #expect(protections.first?.objectValue?["handling"]?.objectValue?["tlp"] == .string("amber"))
    }

    @Test("a reload that cannot be recorded (the database locked) does not take effect")
    func reloadIsRecordedOrRefused() async throws {
        let d = try Deployment(entries: 2)
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        let before = try kinds(store)["config_reloaded"]
        let locker = try DatabaseLocker(d.statePath)
        let ok = await pipeline.reload(configPath: d.dir.appendingPathComponent("tripline.yaml").path, now: t0)
        locker.release()
        #expect(!ok)
        #expect(try kinds(store)["config_reloaded"] == before)
        let again = await pipeline.reload(configPath: d.dir.appendingPathComponent("tripline.yaml").path, now: t0)
        #expect(again)
        #expect(try kinds(store)["config_reloaded"] == 1)
    }

    @Test("the name index's warning is logged when a reload brings it or changes it, not again on every reload")
    func indexWarningsLoggedOnChange() async throws {
        // 600 spellings two letters longer than one: their shared key is left out (over `NameIndex.pairKeyCap`).
        var g = SplitMix64(seed: 23)
        func spellings(_ n: Int) -> String {
            var out = ""
            var seen = Set<String>()
            while seen.count < n {
                var t = Array("qarawindelsmut".utf8)
                for _ in 0..<2 {
                    t.insert(UInt8.random(in: 97...122, using: &g), at: Int.random(in: 0...t.count, using: &g))
                }
                let term = String(decoding: t, as: UTF8.self)
                if seen.insert(term).inserted {
                    out += "  - {ref: H\(seen.count), selectors: [{type: name, value: \"\(term) Haddad\"}]}\n"
                }
            }
            return out
        }
        let d = try Deployment(entries: 2)
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let log = LogLines()
        let (pipeline, _) = try d.pipeline(logger: log.logger)
        let config = d.dir.appendingPathComponent("tripline.yaml").path
        let list = d.dir.appendingPathComponent("Watchlists/be-fedpol/l.yaml")
        let plain = try String(contentsOf: list, encoding: .utf8)
        func warned() -> [String] { log.lines.filter { $0.contains("name index:") } }
        try (plain + spellings(600)).write(to: list, atomically: true, encoding: .utf8)
        #expect(await pipeline.reload(configPath: config, now: t0))
        #expect(warned().count == 1)
        #expect(warned().first?.contains("in be-fedpol/l (600 names)") == true)
        #expect(await pipeline.reload(configPath: config, now: t0))
        #expect(warned().count == 1)  // the same warning: not logged again
        try "rules: [unclosed".write(toFile: config, atomically: true, encoding: .utf8)
        #expect(!(await pipeline.reload(configPath: config, now: t0)))
        #expect(warned().count == 1)
    }

    @Test("one partner's invalid list is refused alone: its previous version stays in force, other lists reload")
    func refusedListKeepsItsPreviousVersion() async throws {
        let d = try Deployment(entries: 3)
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let other = d.dir.appendingPathComponent("Watchlists/ops")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        let otherList = other.appendingPathComponent("o.yaml")
        try
            "watchlist: o\nowner: ops\nreview_by: 2099-01-01\nentries:\n  - {ref: O1, selectors: [{type: phone, value: \"+32470000051\"}]}\n"
            .write(to: otherList, atomically: true, encoding: .utf8)
        let (pipeline, store) = try d.pipeline()
        // be-fedpol's list breaks (a duplicate ref); ops's list gains an entry.
        let list = d.dir.appendingPathComponent("Watchlists/be-fedpol/l.yaml")
        try
            (String(contentsOf: list, encoding: .utf8)
            + "  - {ref: E1, selectors: [{type: phone, value: \"+32470000009\"}]}\n")
            .write(to: list, atomically: true, encoding: .utf8)
        try
            (String(contentsOf: otherList, encoding: .utf8)
            + "  - {ref: O2, selectors: [{type: phone, value: \"+32470000052\"}]}\n")
            .write(to: otherList, atomically: true, encoding: .utf8)
        #expect(await pipeline.reload(configPath: d.dir.appendingPathComponent("tripline.yaml").path, now: t0))
        try await pipeline.process(
            batch([phone("a", "+32470000001"), phone("b", "+32470000009"), phone("c", "+32470000052")]), now: t0)
        let keys = try store.alerts(states: nil, limit: 10).map(\.key).sorted()
        #expect(keys == ["wl:be-fedpol/l/E1", "wl:ops/o/O2"])  // the old be-fedpol list, the new ops list
        let refused = try store.events(after: 0, limit: 1000).map(\.event).filter { $0.kind == "watchlist_refused" }
        #expect(refused.count == 1 && refused.first?.detail["previous_version_kept"] == .bool(true))
    }

    @Test("acknowledgements from before per-partner acks are migrated at start, audited")
    func acknowledgementsMigrate() async throws {
        let d = try Deployment(entries: 2, extra: "principals: [{id: analyst-be, partner: be-fedpol, role: analyst}]")
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let store = try SQLiteStateStore(path: d.statePath)
        try store.migrate()
        var c = Commit()
        c.alerts = [
            AlertRecord(
                id: 1, key: "wl:be-fedpol/l/E1", kind: "watchlist", priority: "high", priorityRank: 3,
                state: .acknowledged, labels: JSONObject(), firstSeen: t0, lastSeen: t0, count: 1, sources: [],
                payload: JSONObject(), ackedBy: "analyst-be", updatedAt: t0),
            AlertRecord(
                id: 2, key: "wl:be-fedpol/l/E0", kind: "watchlist", priority: "high", priorityRank: 3,
                state: .acknowledged, labels: JSONObject(), firstSeen: t0, lastSeen: t0, count: 1, sources: [],
                payload: JSONObject(), ackedBy: "gone-principal", updatedAt: t0),
        ]
        try store.commit(c)
        let (_, s) = try d.pipeline(now: t0 + 1)
        let a = try #require(try s.alert(id: 1))
        let b = try #require(try s.alert(id: 2))
        #expect(a.state == .firing && a.acks["be-fedpol"]?.by == "analyst-be" && a.acks.count == 1)
        #expect(b.state == .firing && b.acks["ops"]?.by == "gone-principal")  // the operating partner's
        #expect(try kinds(s)["ack_migrated"] == 2)
    }

    @Test("a list past its review date stops matching while the service runs")
    func reviewDatePassesLive() async throws {
        let d = try Deployment(entries: 2, listExtra: "")
        defer { try? FileManager.default.removeItem(at: d.dir) }
        // Same list with a review date in 10 s.
        let path = d.dir.appendingPathComponent("Watchlists/be-fedpol/l.yaml")
        try String(contentsOf: path, encoding: .utf8).replacingOccurrences(
            of: "review_by: 2099-01-01", with: "review_by: \"2030-01-01T00:00:10Z\""
        ).write(to: path, atomically: true, encoding: .utf8)
        let (pipeline, _) = try d.pipeline()
        try await pipeline.process(batch([phone("a", "+32470000001")]), now: t0 + 5)
        try await pipeline.process(batch([phone("b", "+32470000001")], first: 2), now: t0 + 11)
        #expect(await pipeline.hits == 1)
    }
}

/// SQL through Python's sqlite3 (another connection, as an operator's tool would be).
enum ServeQuery {
    @discardableResult
    static func run(_ db: String, _ sql: String) -> String {
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = [
            "python3", "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None); print('\\n'.join('|'.join(map(str, r)) for r in c.execute(sys.argv[2])))",
            db, sql,
        ]
        let out = Pipe()
        q.standardOutput = out
        try? q.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
