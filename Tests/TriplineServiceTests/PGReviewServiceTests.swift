import Foundation
import Logging
import Testing
import TriplineConfig
import TriplineJSON
import TriplineService
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport

/// Review of issue 20 (several nodes on one PostgreSQL): nodes as the pipeline drives them, in-process, each with
/// its own store (its own node id) on one database.
@Suite("PG review: nodes", .serialized)
struct PGReviewServiceTests {
    static let perDevice = """
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

    /// A deployment like `Deployment` with its route's group wait and resolve timeout chosen.
    static func configuration(
        groupWait: String, resolveTimeout: String = "10m", rules: String = "", routeExtra: String = "",
        groupBy: String = "[owner, list]", extra: String = ""
    ) throws
        -> Configuration
    {
        let dir = scratchDirectory("pgreview")
        let lists = dir.appendingPathComponent("Watchlists/be-fedpol")
        try FileManager.default.createDirectory(at: lists, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
        var yaml = "watchlist: l\nowner: be-fedpol\nhandling: {tlp: green}\nreview_by: 2099-01-01\nentries:\n"
        for i in 0..<10 { yaml += "  - {ref: E\(i), selectors: [{type: phone, value: \"+3247000000\(i)\"}]}\n" }
        try yaml.write(to: lists.appendingPathComponent("l.yaml"), atomically: true, encoding: .utf8)
        if !rules.isEmpty {
            try rules.write(to: dir.appendingPathComponent("Rules/r.yml"), atomically: true, encoding: .utf8)
        }
        try """
        rules: Rules
        watchlists: Watchlists
        state: state/state.sqlite
        resolve_timeout: \(resolveTimeout)
        partners:
          - {id: ops, name: Ops, countries: [], contact: ops@example}
          - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
        receivers:
          - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
          - {name: duty, partner: ops, file_configs: [{path: duty.ndjson}]}
        route: {receiver: log, group_by: \(groupBy), group_wait: \(groupWait), group_interval: 1s, repeat_interval: 100h\(routeExtra)}
        operator: ops
        \(extra)
        """.write(to: dir.appendingPathComponent("tripline.yaml"), atomically: true, encoding: .utf8)
        return try Configuration.load(config: dir.appendingPathComponent("tripline.yaml").path)
    }

    static func node(_ config: Configuration, _ url: String, now: Double) throws -> (Pipeline, PostgresStateStore) {
        let (loaded, errors, _) = Loaded.load(config, now: now)
        guard let loaded else { throw TestFailure("\(errors)") }
        let store = try PostgresStateStore(url: url)
        try store.migrate()
        let p = try Pipeline(loaded: loaded, store: store, logger: Logger(label: "test"), now: now)
        return (p, store)
    }

    /// The alert keys in each outbox item for `receiver`, in outbox order.
    static func notified(_ store: PostgresStateStore, _ receiver: String = "log") throws -> [[String]] {
        try store.outbox(status: nil, limit: 1000).filter { $0.receiver == receiver }.map { item in
            (item.payload["alerts"]?.arrayValue ?? []).compactMap {
                let o = $0.objectValue
                return (o?["alert_id"] ?? o?["id"]).map { "\($0)" } ?? o?["state"]?.stringValue
            }
        }
    }

    @Test(
        "PG review: a watched phone whose source.item holds a NUL byte is alerted on PostgreSQL as on SQLite (PipelineTests.nulInKeys), not rejected"
    )
    func nulByteInCorrelationKey() async throws {
        let url = try PostgresServer.shared().database("pgrnul")
        let config = try Self.configuration(groupWait: "0s", rules: Self.perDevice)
        let (pipeline, store) = try Self.node(config, url, now: t0)
        defer { store.close() }
        // A listed number, seen on a device whose name carries a NUL (the per-device correlation's key holds it).
        let input = batch([phone("x", "+32470000001", item: #"P\u0000x"#), phone("c", "+32470000002")])
        try await pipeline.process(input, now: t0)
        // On a shared store the correlations are the correlator's (this node, taking the lease at its first turn).
        await pipeline.correlate(now: t0)
        let keys = try store.alerts(states: nil, limit: 10).map(\.key).sorted()
        // SQLite stores all four (PipelineTests.nulInKeys); PostgreSQL's text refuses NUL (22021): the whole line —
        // and with it the watchlist hit on +32470000001 — is rejected.
        #expect(
            keys == ["rule:per-device:P\u{0}x", "rule:per-device:P-1", "wl:be-fedpol/l/E1", "wl:be-fedpol/l/E2"])
        let rejected = try store.events(after: 0, limit: 1000).map(\.event).filter { $0.kind == "input_rejected" }
        #expect(rejected.isEmpty)
        #expect(try store.alert(key: "wl:be-fedpol/l/E1") != nil)
    }

    @Test(
        "PG review: an alert its dead node had already notified, once adopted, is still resolved by the resolve timeout"
    )
    func adoptedNotifiedAlertResolves() async throws {
        let url = try PostgresServer.shared().database("pgradopt") + "&lease=0.5"
        let config = try Self.configuration(groupWait: "0s", resolveTimeout: "10m")
        let (a, storeA) = try Self.node(config, url, now: t0)
        let (b, storeB) = try Self.node(config, url, now: t0)
        defer { storeB.close() }
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)
        #expect(try Self.notified(storeB).count == 1)  // A opened and notified it
        // Node A dies (kill -9): its heartbeat runs out.
        storeA.close()
        try await Task.sleep(nanoseconds: 900_000_000)
        try await b.tick(now: t0 + 5)  // adopts A's open alert
        // Well past the resolve timeout (10 min) with no sighting: the alert resolves, as on one node.
        for s in stride(from: 700.0, through: 760, by: 15) { try await b.tick(now: t0 + s) }
        let alert = try storeB.alert(key: "wl:be-fedpol/l/E1")
        #expect(alert?.state == .resolved)
        #expect(try Self.notified(storeB).count == 2)  // firing, then resolved
        _ = a
    }

    @Test(
        "PG review: a node paused past its heartbeat lease, whose alert another node adopted and notified, does not notify it again when it continues"
    )
    func pausedNodeDoesNotNotifyAdoptedAlertAgain() async throws {
        let url = try PostgresServer.shared().database("pgrpause") + "&lease=0.5"
        let config = try Self.configuration(groupWait: "30s")
        let (a, storeA) = try Self.node(config, url, now: t0)
        let (b, storeB) = try Self.node(config, url, now: t0)
        defer {
            storeA.close()
            storeB.close()
        }
        // A opens the alert; it waits in A's group (group_wait 30 s) when A is paused (SIGSTOP) past its lease.
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)
        #expect(try Self.notified(storeB).isEmpty)
        try await Task.sleep(nanoseconds: 900_000_000)
        // B adopts it and notifies it after its own group wait.
        try await b.tick(now: t0 + 1)
        try await b.tick(now: t0 + 40)
        #expect(try Self.notified(storeB).count == 1)
        // A continues (SIGCONT): its group's timer is long due.
        try await a.tick(now: t0 + 41)
        try await a.tick(now: t0 + 45)
        // One alert, told once: not a second notification (another outbox item, another notification id).
        let items = try storeB.outbox(status: nil, limit: 100).filter { $0.receiver == "log" }
        #expect(items.count == 1, "\(items.map { $0.payload["notification_id"]?.stringValue ?? "" })")
        #expect(try storeB.alerts(states: nil, limit: 10).count == 1)
    }

    @Test(
        "PG review: on a route with an escalation policy the alert's first notification and escalation are committed (route identity is a 63-bit hash; escalations.route is INTEGER)"
    )
    func escalatingRouteNotifies() async throws {
        let url = try PostgresServer.shared().database("pgresc1")
        let config = try Self.configuration(
            groupWait: "0s", resolveTimeout: "10h", routeExtra: ", escalation: [{after: 5m, receivers: [duty]}]")
        let (a, storeA) = try Self.node(config, url, now: t0)
        defer { storeA.close() }
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)
        try await a.tick(now: t0 + 2)
        // On SQLite: one notification and a running escalation. Here every tick's commit fails with
        // "integer out of range (22003)" (logged "timers: commit failed, retrying"): nothing is ever notified, and
        // after `retryFor` the node stops — as does every node that adopts the alert after it.
        #expect(try Self.notified(storeA).count == 1)
        #expect(try storeA.escalations().count == 1)
        try await a.tick(now: t0 + 301)
        #expect(try Self.notified(storeA, "duty").count == 1)
        let healthy = await a.healthy
        #expect(healthy)
    }

    @Test(
        "PG review: a node that starts while another node escalates an alert does not page the escalation's step a second time"
    )
    func escalationStepPagedOnce() async throws {
        let url = try PostgresServer.shared().database("pgresc") + "&lease=30"
        let config = try Self.configuration(
            groupWait: "0s", resolveTimeout: "10h", routeExtra: ", escalation: [{after: 5m, receivers: [duty]}]")
        // Past the INTEGER column (escalatingRouteNotifies): the schema migrated, then the column widened here, so
        // that this test shows the second problem alone.
        let first = try PostgresStateStore(url: url)
        try first.migrate()
        first.close()
        _ = try PostgresServer.shared().psql([
            "-d", PostgresServer.shared().name(of: url), "-c", "ALTER TABLE escalations ALTER COLUMN route TYPE BIGINT",
        ])
        let (a, storeA) = try Self.node(config, url, now: t0)
        defer { storeA.close() }
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)
        try await a.tick(now: t0 + 2)
        #expect(try Self.notified(storeA).count == 1)
        #expect(try storeA.escalations().count == 1)
        // A second node joins (both alive the whole time): it loads every escalation in the database at start
        // (Dispatcher.init: store.escalations()), and `escalate` does not ask whose alert it is.
        let (b, storeB) = try Self.node(config, url, now: t0 + 10)
        defer { storeB.close() }
        for s in [60.0, 301, 320, 400] {
            try await a.tick(now: t0 + s)
            try await b.tick(now: t0 + s)
        }
        // The duty officer is paged once for step 1, by the alert's node.
        let pages = try Self.notified(storeA, "duty").count
        #expect(pages == 1)
    }
}
