import Foundation
import Testing
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplineMatch
import TriplineSinks
import TriplineState
import TriplineStateSQLite
import TriplineTestSupport
import TriplineYAML

/// Escalation (SPEC §11, issue 18) in the dispatcher, with the clock passed to each tick (minutes pass at once).
/// Times are exact: a step is due at first notification + `after`, and a tick at that instant runs it.
@Suite("Escalation")
struct EscalationTests {
    /// be-fedpol's route: its receiver, then nl-nctv's duty officer after 15 min, fr-dgsi's receiver after 30,
    /// nl-nctv's chief after 45 (not the list owner's receivers: as originator they hear of the alert anyway).
    static func config(_ dir: URL, repeat rounds: Int = 0) -> AlertsConfig {
        let r = Route(
            receiver: "be-fedpol-rx", matchers: [], groupBy: ["owner", "list"], groupWait: 0, groupInterval: 60,
            repeatInterval: 3600, continue: false, routes: [], index: 0,
            escalation: [
                EscalationStep(after: 900, receivers: ["nl-duty"]),
                EscalationStep(after: 1800, receivers: ["fr-dgsi-rx"]),
                EscalationStep(after: 2700, receivers: ["nl-chief"]),
            ], escalationRepeat: rounds)
        var c = alertsConfig(dir, route: r)
        for name in ["nl-duty", "nl-chief"] {
            var rx = Receiver(name: name, partner: "nl-nctv")
            rx.add(
                "file", JSONObject([("path", .string(dir.appendingPathComponent("\(name).ndjson").path))]),
                sendResolved: true)
            c.receivers.append(rx)
        }
        return c
    }

    final class Service {
        let store: any StateStore
        let config: AlertsConfig
        var d: Dispatcher
        init(store: any StateStore, config: AlertsConfig, now: Double) throws {
            self.store = store
            self.config = config
            d = try Dispatcher(config: config, store: store, now: now)
        }
        /// On an empty memory store, at `t0`.
        convenience init(config: AlertsConfig) throws {
            try self.init(store: MemoryStateStore(), config: config, now: t0)
        }
        func restart(at t: Double) throws { d = try Dispatcher(config: config, store: store, now: t) }
        func ingest(_ hits: [Hit], at t: Double) throws {
            d.begin()
            var c = Commit()
            try d.ingest(hits, now: t, into: &c)
            try store.commit(c)
            d.end(committed: c)
            try tick(t)
        }
        func tick(_ t: Double) throws {
            d.begin()
            let c = try d.tick(now: t)
            try store.commit(c)
            d.end(committed: c)
        }
        /// Notifications per receiver so far.
        func sent() throws -> [String: Int] {
            var out: [String: Int] = [:]
            for o in try store.outbox(status: nil, limit: 100_000) { out[o.receiver, default: 0] += 1 }
            return out
        }
        func events(_ kind: String) throws -> [EventDraft] {
            try store.events(after: 0, limit: 100_000).map(\.event).filter { $0.kind == kind }
        }
    }

    static let nlPrincipal = Principal(id: "nl-analyst", partner: "nl-nctv", role: .analyst)
    static let frPrincipal = Principal(id: "fr-analyst", partner: "fr-dgsi", role: .analyst)

    @Test func stepsAtTheirTimesAndAnAckStopsItsPartnersSteps() throws {
        let dir = scratchDirectory("escalation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try Service(store: MemoryStateStore(), config: Self.config(dir), now: t0)
        try s.ingest([hit(priority: .critical)], at: t0)
        #expect(try s.sent() == ["be-fedpol-rx": 1])
        try s.tick(t0 + 899)
        #expect(try s.sent() == ["be-fedpol-rx": 1])
        try s.tick(t0 + 900)
        #expect(try s.sent() == ["be-fedpol-rx": 1, "nl-duty": 1])
        try s.tick(t0 + 901)
        try s.tick(t0 + 1800)
        #expect(try s.sent() == ["be-fedpol-rx": 1, "nl-duty": 1, "fr-dgsi-rx": 1])
        // fr-dgsi acknowledges: nl-nctv's step 3 still runs (an ack stops the acknowledging partner's steps).
        let id = try s.store.alert(key: "wl:be-fedpol/l1/R1")!.id
        _ = try Dispatcher.act(
            on: id, state: .acknowledged, principal: Self.frPrincipal, reason: "on it", store: s.store, now: t0 + 2000)
        try s.tick(t0 + 2700)
        #expect(try s.sent() == ["be-fedpol-rx": 1, "nl-duty": 1, "fr-dgsi-rx": 1, "nl-chief": 1])
        let steps = try s.events("escalation_step")
        #expect(steps.map { $0.detail["step"]?.doubleValue } == [1, 2, 3])
        #expect(
            steps.map { $0.detail["notified"]?.arrayValue?.compactMap(\.stringValue) } == [
                ["nl-duty"], ["fr-dgsi-rx"], ["nl-chief"],
            ])
        // Past the last step (no escalation_repeat): no more steps; the route's own repeat_interval (1 h) goes on.
        try s.tick(t0 + 100_000)
        #expect(try s.sent() == ["be-fedpol-rx": 2, "nl-duty": 1, "fr-dgsi-rx": 1, "nl-chief": 1])
        // The escalation payload says which step it is.
        let chief = try s.store.outbox(status: nil, limit: 100).first { $0.receiver == "nl-chief" }!
        #expect(chief.payload["escalation"]?.objectValue?["step"]?.doubleValue == 3)
    }

    @Test func anAckAfterStepTwoStopsStepThree() throws {
        let dir = scratchDirectory("escalation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try Service(store: MemoryStateStore(), config: Self.config(dir), now: t0)
        try s.ingest([hit(priority: .critical)], at: t0)
        try s.tick(t0 + 900)
        try s.tick(t0 + 1800)
        let id = try s.store.alert(key: "wl:be-fedpol/l1/R1")!.id
        _ = try Dispatcher.act(
            on: id, state: .acknowledged, principal: Self.nlPrincipal, reason: "on it", store: s.store, now: t0 + 2000)
        try s.tick(t0 + 2700)
        #expect(try s.sent() == ["be-fedpol-rx": 1, "nl-duty": 1, "fr-dgsi-rx": 1])
        let skipped = try s.events("suppressed").filter { $0.receiver == "nl-chief" }
        #expect(skipped.count == 1 && skipped[0].reason == "acknowledged")
        #expect(try s.events("escalation_step").last?.detail["acknowledged"] == .array([.string("nl-chief")]))
    }

    @Test func anAckForADurationResumesAtTheNextStepDue() throws {
        let dir = scratchDirectory("escalation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try Service(store: MemoryStateStore(), config: Self.config(dir, repeat: 1), now: t0)
        try s.ingest([hit(priority: .critical)], at: t0)
        let id = try s.store.alert(key: "wl:be-fedpol/l1/R1")!.id
        // Acknowledged for 20 minutes from minute 1: step 1 (15 min, nl-duty) is skipped; the ack has run out by
        // step 3 (45 min, nl-chief); round 2 starts at 45 + 15 = 60 min.
        _ = try Dispatcher.act(
            on: id, state: .acknowledged, principal: Self.nlPrincipal, reason: "looking", until: t0 + 60 + 1200,
            store: s.store, now: t0 + 60)
        for m in stride(from: 1, through: 120, by: 1) { try s.tick(t0 + Double(m) * 60) }
        // be-fedpol-rx: the first notification and its hourly repeats at 60 and 120 min.
        #expect(try s.sent() == ["be-fedpol-rx": 3, "fr-dgsi-rx": 2, "nl-chief": 2, "nl-duty": 1])
        #expect(try s.events("escalation_step").map { $0.at - t0 } == [900, 1800, 2700, 3600, 4500, 5400])
        #expect(try s.events("escalation_step").count == 6)
    }

    @Test func aResolveStopsEverythingAndAFreshFiringEscalatesAfresh() throws {
        let dir = scratchDirectory("escalation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try Service(store: MemoryStateStore(), config: Self.config(dir), now: t0)
        try s.ingest([hit(priority: .critical)], at: t0)
        try s.tick(t0 + 900)
        let id = try s.store.alert(key: "wl:be-fedpol/l1/R1")!.id
        let ops = Principal(id: "ops-admin", partner: "ops", role: .admin)
        _ = try Dispatcher.act(on: id, state: .resolved, principal: ops, reason: "done", store: s.store, now: t0 + 1000)
        for m in 17...60 { try s.tick(t0 + Double(m) * 60) }
        // be-fedpol-rx: firing, then resolved; no further step.
        #expect(try s.sent() == ["be-fedpol-rx": 2, "nl-duty": 1])
        #expect(try s.store.escalations().isEmpty)
        #expect(try s.events("escalation_ended").map(\.reason) == ["resolved"])
        // It fires again: a first notification again, and its steps from there.
        let again = t0 + 4000
        try s.ingest([hit(priority: .critical)], at: again)
        try s.tick(again + 900)
        #expect(try s.sent() == ["be-fedpol-rx": 3, "nl-duty": 2])
        #expect(try s.store.escalations().map(\.startedAt) == [again])
    }

    /// Resolved by an operator and seen again before any tick told the receivers it resolved: for them it never
    /// stopped firing (no new first notification comes), so its escalation goes on — not ended and never restarted.
    @Test func aResolveNotYetToldThenFiringAgainKeepsEscalating() throws {
        let dir = scratchDirectory("escalation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try Service(store: MemoryStateStore(), config: Self.config(dir), now: t0)
        try s.ingest([hit(priority: .critical)], at: t0)
        let id = try s.store.alert(key: "wl:be-fedpol/l1/R1")!.id
        let ops = Principal(id: "ops-admin", partner: "ops", role: .admin)
        _ = try Dispatcher.act(on: id, state: .resolved, principal: ops, reason: "done", store: s.store, now: t0 + 500)
        s.d.begin()
        var c = Commit()
        try s.d.ingest([hit(priority: .critical)], now: t0 + 600, into: &c)  // before the next tick
        try s.store.commit(c)
        s.d.end(committed: c)
        for m in 11...20 { try s.tick(t0 + Double(m) * 60) }
        #expect(try s.sent() == ["be-fedpol-rx": 1, "nl-duty": 1])
        #expect(try s.events("escalation_step").map { $0.at - t0 } == [900])
    }

    /// The state is in the database: a dispatcher started again on the same SQLite file (as after kill -9, where
    /// a tick's notifications and its step are one commit) runs each later step once, at its time; a tick computed
    /// but never committed (the crash came first) leaves the step to be run again.
    @Test func stepsSurviveARestartNeitherLostNorDoubled() throws {
        let dir = scratchDirectory("escalation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.sqlite").path
        let store = try SQLiteStateStore(path: path)
        try store.migrate()
        let s = try Service(store: store, config: Self.config(dir), now: t0)
        try s.ingest([hit(priority: .critical)], at: t0)
        try s.tick(t0 + 900)
        // Step 2 computed, then the process dies before its commit.
        s.d.begin()
        _ = try s.d.tick(now: t0 + 1800)
        let reopened = try SQLiteStateStore(path: path)
        try reopened.migrate()
        let again = try Service(store: reopened, config: Self.config(dir), now: t0 + 1801)
        #expect(try reopened.escalations().map(\.done) == [1])
        try again.tick(t0 + 1801)
        try again.tick(t0 + 1802)
        #expect(try again.sent() == ["be-fedpol-rx": 1, "nl-duty": 1, "fr-dgsi-rx": 1])
        try again.restart(at: t0 + 2000)
        try again.tick(t0 + 2699)
        try again.tick(t0 + 2700)
        try again.restart(at: t0 + 2701)
        try again.tick(t0 + 2701)
        #expect(try again.sent() == ["be-fedpol-rx": 1, "nl-duty": 1, "fr-dgsi-rx": 1, "nl-chief": 1])
        #expect(try again.events("escalation_step").count == 3)
    }

    @Test func checkRefusesABadPolicy() throws {
        let dir = scratchDirectory("escalation-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        func config(_ escalation: String) -> String {
            """
            watchlists: Watchlists
            state: state.sqlite
            operator: ops
            partners:
              - {id: ops, name: Ops, countries: [], contact: ops@example}
              - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
            receivers:
              - {name: log, partner: be-fedpol, file_configs: [{path: alerts.ndjson}]}
              - {name: duty, partner: be-fedpol, file_configs: [{path: duty.ndjson}]}
            route:
              receiver: log
              escalation: \(escalation)
            """
        }
        let cases: [(String, String)] = [
            (
                "[{after: 30m, receivers: [duty]}, {after: 15m, receivers: [log]}]",
                "tripline.yaml:12:57: escalation steps go in increasing order of \"after\""
            ),
            (
                "[{after: 15m, receivers: [nobody]}]",
                "tripline.yaml:12:40: escalation step names unknown receiver \"nobody\""
            ),
            (
                "[{after: 0s, receivers: [duty]}]",
                "tripline.yaml:12:24: an escalation step's \"after\" must be longer than 0s"
            ),
            ("[{after: 15m}]", "tripline.yaml:12:16: an escalation step needs \"receivers\""),
        ]
        let path = dir.appendingPathComponent("tripline.yaml").path
        for (escalation, expected) in cases {
            try config(escalation).write(toFile: path, atomically: true, encoding: .utf8)
            let error = #expect(throws: LocatedError.self) { try Configuration.load(config: path) }
            #expect(error?.description.hasSuffix(expected) == true, "\(String(describing: error))")
        }
        try config("[{after: 15m, receivers: [duty]}]\n  escalation_repeat: 2").write(
            toFile: path, atomically: true, encoding: .utf8)
        let good = try Configuration.load(config: path)
        #expect(good.alerts.route.escalation == [EscalationStep(after: 900, receivers: ["duty"])])
        #expect(good.alerts.route.escalationRepeat == 2)
    }
}

/// The watchdog (SPEC §11): an always-firing notification at its interval, from start, kept across restarts.
@Suite("Watchdog")
struct WatchdogTests {
    @Test func atStartThenEveryIntervalAcrossARestart() throws {
        let dir = scratchDirectory("watchdog")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = alertsConfig(dir)
        c.watchdog = ("ops-rx", 600)
        let store = MemoryStateStore()
        let s = try EscalationTests.Service(store: store, config: c, now: t0)
        try s.tick(t0)
        #expect(try s.sent() == ["ops-rx": 1])
        try s.tick(t0 + 599)
        #expect(try s.sent() == ["ops-rx": 1])
        try s.tick(t0 + 600)
        #expect(try s.sent() == ["ops-rx": 2])
        try s.restart(at: t0 + 700)
        try s.tick(t0 + 700)
        try s.tick(t0 + 1199)
        #expect(try s.sent() == ["ops-rx": 2])
        try s.tick(t0 + 1200)
        #expect(try s.sent() == ["ops-rx": 3])
        let item = try store.outbox(status: nil, limit: 10).first!
        #expect(item.payload["watchdog"]?.objectValue?["every"] == .string("10m"))
        #expect(item.payload["group_labels"] == .object(JSONObject([("alertname", .string("Watchdog"))])))
        #expect(item.payload["alerts"] == .array([]))
        let mail = MailMessage(
            payload: item.payload, from: "t@example.org", to: ["o@example.org"], domain: "example.org")
        #expect(mail.headers.first { $0.0 == "Subject" }?.1 == "[INFO] FIRING: Watchdog: Tripline is running")
        #expect(mail.text.contains("Watchdog: Tripline is running; the next one within 10m."))
    }

    /// A clock stepped back behind the last watchdog (or a stored time ahead of this clock after a restart) sends one
    /// at once and counts from there: the dead man's switch does not fall silent until the clock catches up.
    @Test func aClockSteppedBackDoesNotSilenceIt() throws {
        let dir = scratchDirectory("watchdog-back")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = alertsConfig(dir)
        c.watchdog = ("ops-rx", 600)
        let store = MemoryStateStore()
        let s = try EscalationTests.Service(store: store, config: c, now: t0)
        try s.tick(t0 + 3600)
        #expect(try s.sent() == ["ops-rx": 1])
        try s.tick(t0)  // an hour back
        #expect(try s.sent() == ["ops-rx": 2])
        try s.tick(t0 + 599)
        #expect(try s.sent() == ["ops-rx": 2])
        try s.tick(t0 + 600)
        #expect(try s.sent() == ["ops-rx": 3])
        // Restarted on a clock a day behind the stored time.
        try s.tick(t0 + 86_400)
        #expect(try s.sent() == ["ops-rx": 4])
        try s.restart(at: t0 + 1000)
        try s.tick(t0 + 1000)
        #expect(try s.sent() == ["ops-rx": 5])
        try s.tick(t0 + 1599)
        #expect(try s.sent() == ["ops-rx": 5])
    }

    /// A clock swinging back and forth by more than `every` (found by the review): at most one watchdog per `every`
    /// on each of the two clocks, not one per tick.
    @Test func aSwingingClockDoesNotFloodIt() throws {
        let dir = scratchDirectory("watchdog-swing")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = alertsConfig(dir)
        c.watchdog = ("ops-rx", 600)
        let s = try EscalationTests.Service(store: MemoryStateStore(), config: c, now: t0)
        for k in 0..<60 {
            let t = t0 + Double(k) * 10
            try s.tick(k % 2 == 0 ? t + 700 : t)
        }
        #expect(try s.sent() == ["ops-rx": 2])
        // Ten minutes on, each clock has one more due.
        for k in 60..<62 {
            let t = t0 + Double(k) * 10
            try s.tick(k % 2 == 0 ? t + 700 : t)
        }
        #expect(try s.sent() == ["ops-rx": 4])
    }

    @Test func checkRefusesABadWatchdog() throws {
        let dir = scratchDirectory("watchdog-config")
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = """
            watchlists: Watchlists
            state: state.sqlite
            operator: ops
            partners:
              - {id: ops, name: Ops, countries: [], contact: ops@example}
            receivers:
              - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
            route: {receiver: log}

            """
        let path = dir.appendingPathComponent("tripline.yaml").path
        for (watchdog, expected) in [
            (
                "watchdog: {receiver: nobody, every: 1h}",
                "tripline.yaml:9:22: watchdog names unknown receiver \"nobody\""
            ),
            (
                "watchdog: {receiver: log, every: 0s}",
                "tripline.yaml:9:34: the watchdog's \"every\" must be at least 1s"
            ),
            ("watchdog: {receiver: log}", "tripline.yaml:9:11: \"watchdog\" needs receiver and every"),
        ] {
            try (base + watchdog + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let error = #expect(throws: LocatedError.self) { try Configuration.load(config: path) }
            #expect(error?.description.hasSuffix(expected) == true, "\(String(describing: error))")
        }
        try (base + "watchdog: {receiver: log, every: 1h}\n").write(toFile: path, atomically: true, encoding: .utf8)
        let c = try Configuration.load(config: path)
        #expect(c.alerts.watchdog?.receiver == "log" && c.alerts.watchdog?.every == 3600)
    }
}

/// Heartbeats (SPEC §11): silence detection per source pattern, firing once and resolving on the next selector.
@Suite("Heartbeats")
struct HeartbeatTests {
    static func observe(_ s: EscalationTests.Service, item: String, at t: Double) throws {
        let sel = selector(#"{"id":"h","type":"phone","value":"+32470999999","source":{"item":"\#(item)"}}"#)
        s.d.begin()
        s.d.observe(sel, now: t)
        var c = Commit()
        try s.d.ingest([], now: t, into: &c)
        try s.store.commit(c)
        s.d.end(committed: c)
    }

    @Test func firesOnceWhenSilentAndResolvesOnTheNextSelector() throws {
        let dir = scratchDirectory("heartbeat")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = alertsConfig(dir)
        c.heartbeats = [
            Heartbeat(field: "source.item", match: "RAQQA-*", every: 600, receiver: "ops-rx"),
            Heartbeat(field: "source.item", match: "MOSUL-?", every: 600, receiver: "nl-nctv-rx"),
        ]
        let store = MemoryStateStore()
        let s = try EscalationTests.Service(store: store, config: c, now: t0)
        try Self.observe(s, item: "RAQQA-PHONE-7", at: t0 + 100)
        try Self.observe(s, item: "XRAQQA-1", at: t0 + 200)  // not RAQQA-*
        try s.tick(t0 + 599)
        #expect(try s.sent().isEmpty)
        // Never seen: counted from the start.
        try s.tick(t0 + 600)
        #expect(try s.sent() == ["nl-nctv-rx": 1])
        try s.tick(t0 + 699)
        #expect(try s.sent() == ["nl-nctv-rx": 1])
        try s.tick(t0 + 700)
        #expect(try s.sent() == ["nl-nctv-rx": 1, "ops-rx": 1])
        for m in 8...14 { try s.tick(t0 + Double(m) * 100) }
        #expect(try s.sent() == ["nl-nctv-rx": 1, "ops-rx": 1])
        // A selector again: resolved at the next tick.
        try Self.observe(s, item: "RAQQA-PHONE-9", at: t0 + 1450)
        try s.tick(t0 + 1451)
        #expect(try s.sent() == ["nl-nctv-rx": 1, "ops-rx": 2])
        let items = try store.outbox(status: nil, limit: 10).filter { $0.receiver == "ops-rx" }
        #expect(items.map { $0.payload["status"]?.stringValue } == ["firing", "resolved"])
        #expect(items[0].payload["heartbeat"]?.objectValue?["match"] == .string("RAQQA-*"))
        #expect(try s.events("heartbeat_missed").count == 2 && s.events("heartbeat_resumed").count == 1)
        // A restart keeps the last-seen time and the firing state: the next miss at 1450 + 600, not at start + 600.
        try s.restart(at: t0 + 1500)
        try s.tick(t0 + 2049)
        #expect(try s.sent() == ["nl-nctv-rx": 1, "ops-rx": 2])
        try s.tick(t0 + 2050)
        #expect(try s.sent() == ["nl-nctv-rx": 1, "ops-rx": 3])
    }

    /// A firing heartbeat resolves on a selector seen after it fired, not on the clock: not when the clock steps back
    /// behind the last selector, not when a reload lengthens `every`, not across a restart; and a selector seen
    /// while it fires resolves it even when the clock has stepped back behind the miss.
    @Test func resolvesOnlyOnASelector() throws {
        let dir = scratchDirectory("heartbeat-clock")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = alertsConfig(dir)
        c.heartbeats = [Heartbeat(field: "source.item", match: "RAQQA-*", every: 600, receiver: "ops-rx")]
        let store = MemoryStateStore()
        let s = try EscalationTests.Service(store: store, config: c, now: t0)
        try Self.observe(s, item: "RAQQA-1", at: t0 + 100)
        try s.tick(t0 + 700)
        #expect(try s.sent() == ["ops-rx": 1])
        try s.tick(t0 + 200)  // the clock steps back: silent for 100 s only, but nothing arrived
        try s.tick(t0 + 250)
        #expect(try s.sent() == ["ops-rx": 1])
        // A reload with a longer interval: the silence is shorter than it now, still nothing arrived.
        var longer = c
        longer.heartbeats = [Heartbeat(field: "source.item", match: "RAQQA-*", every: 7200, receiver: "ops-rx")]
        try s.d.reconfigure(longer, now: t0 + 800)
        try s.tick(t0 + 800)
        #expect(try s.sent() == ["ops-rx": 1])
        // Across a restart too; then a selector at a clock behind the miss resolves it, once.
        let t = try EscalationTests.Service(store: store, config: longer, now: t0 + 300)
        try t.tick(t0 + 300)
        #expect(try t.sent() == ["ops-rx": 1])
        try Self.observe(t, item: "RAQQA-2", at: t0 + 310)
        // Killed before the tick: the selector's arrival is in the store and still resolves after a restart.
        let u = try EscalationTests.Service(store: store, config: longer, now: t0 + 320)
        try u.tick(t0 + 320)
        try u.tick(t0 + 330)
        #expect(try u.sent() == ["ops-rx": 2])
        let items = try store.outbox(status: nil, limit: 10)
        #expect(items.map { $0.payload["status"]?.stringValue } == ["firing", "resolved"])
        #expect(try u.events("heartbeat_missed").count == 1 && u.events("heartbeat_resumed").count == 1)
    }

    /// The clock an hour fast while the last selector came in, then set right, and the feed dead from then on (found
    /// by the review): the silence counts from the step back, and the heartbeat fires after `every`, once.
    @Test func firesAfterAClockSteppedBackBehindTheLastSelector() throws {
        let dir = scratchDirectory("heartbeat-back")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = alertsConfig(dir)
        c.heartbeats = [Heartbeat(field: "source.item", match: "RAQQA-*", every: 600, receiver: "ops-rx")]
        let store = MemoryStateStore()
        let s = try EscalationTests.Service(store: store, config: c, now: t0)
        try Self.observe(s, item: "RAQQA-1", at: t0 + 3600)
        for m in 0..<10 { try s.tick(t0 + Double(m) * 60) }
        #expect(try s.sent().isEmpty)
        try s.tick(t0 + 600)
        #expect(try s.sent() == ["ops-rx": 1])
        for m in 11..<59 { try s.tick(t0 + Double(m) * 60) }
        #expect(try s.sent() == ["ops-rx": 1])
        // The last-seen time stays the selector's own, in the store and in the notification.
        #expect(try store.offset(source: "hb-seen:" + c.heartbeats[0].key) == Int64((t0 + 3600) * 1000))
        let missed = try #require(store.outbox(status: nil, limit: 10).first?.payload["heartbeat"]?.objectValue)
        #expect(missed["last_seen"] == .string(Renderer.time(t0 + 3600)))
    }

    /// A heartbeat firing when a reload drops it (removed, or its pattern changed) resolves at the next tick, saying
    /// why, once; its receiver's incident does not stay open. A rollback of that tick keeps it due.
    @Test func aHeartbeatDroppedByAReloadResolves() throws {
        let dir = scratchDirectory("heartbeat-dropped")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = alertsConfig(dir)
        c.heartbeats = [Heartbeat(field: "source.item", match: "RAQQA-*", every: 600, receiver: "ops-rx")]
        let store = MemoryStateStore()
        let s = try EscalationTests.Service(store: store, config: c, now: t0)
        try s.tick(t0 + 600)
        #expect(try s.sent() == ["ops-rx": 1])
        var reloaded = c
        reloaded.heartbeats = [Heartbeat(field: "source.item", match: "RAQQA-PHONE-*", every: 600, receiver: "ops-rx")]
        try s.d.reconfigure(reloaded, now: t0 + 610)
        s.d.begin()
        _ = try s.d.tick(now: t0 + 611)
        s.d.rollback()
        try s.tick(t0 + 612)
        try s.tick(t0 + 613)
        let items = try store.outbox(status: nil, limit: 10).map(\.payload)
        // The old one resolved, saying why; the new one, never seen, counted from the start: firing at once.
        #expect(
            items.map {
                "\($0["status"]?.stringValue ?? "")/\($0["heartbeat"]?.objectValue?["match"]?.stringValue ?? "")"
            } == [
                "firing/RAQQA-*", "resolved/RAQQA-*", "firing/RAQQA-PHONE-*",
            ])
        #expect(items[1]["heartbeat"]?.objectValue?["why"] == .string("removed from the configuration"))
        #expect(try s.events("heartbeat_removed").count == 1)
        #expect(try store.offset(source: "hb-firing:" + c.heartbeats[0].key) == 0)
        // Dropped and put back by two reloads before a tick: still firing, nothing resolved, no second firing.
        try s.d.reconfigure(c, now: t0 + 620)
        try s.d.reconfigure(reloaded, now: t0 + 621)
        try s.tick(t0 + 622)
        #expect(try store.outbox(status: nil, limit: 10).count == 3)
        #expect(try s.events("heartbeat_removed").count == 1)
    }

    @Test func globs() {
        let h = Heartbeat(field: "source.item", match: "RAQQA-*-?", every: 60, receiver: "r")
        #expect(h.matches("RAQQA-PHONE-7") && h.matches("RAQQA--x") && h.matches("RAQQA-a-b-c"))
        #expect(!h.matches("RAQQA-7") && !h.matches("XRAQQA-P-7") && !h.matches("raqqa-P-7") && !h.matches(""))
        #expect(Heartbeat(field: "f", match: "*", every: 1, receiver: "r").matches(""))
    }
}
