import Foundation
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineMatch
import TriplineState
import TriplineTestSupport

/// Escalation cases found by an adversarial review (each failed before its fix): route identity across a reload,
/// originator copies and inherited policies, step 0 held back, resolving many escalating alerts. Each test states
/// the behaviour SPEC §11 asks for.
@Suite("Escalation, adversarial cases")
struct EscalationReviewTests {
    /// Partners' file receivers (ops-rx, be-fedpol-rx, fr-dgsi-rx, nl-nctv-rx) plus nl-duty (nl-nctv) and fr-duty
    /// (fr-dgsi).
    static func config(_ dir: URL, route r: Route) -> AlertsConfig {
        var c = alertsConfig(dir, route: r)
        for (name, partner) in [("nl-duty", "nl-nctv"), ("fr-duty", "fr-dgsi")] {
            var rx = Receiver(name: name, partner: partner)
            rx.add(
                "file", JSONObject([("path", .string(dir.appendingPathComponent("\(name).ndjson").path))]),
                sendResolved: true)
            c.receivers.append(rx)
        }
        return c
    }

    static func node(
        _ receiver: String, index: Int, matchers: [String] = [], children: [Route] = [],
        escalation: [EscalationStep] = [], continue c: Bool = false
    ) -> Route {
        Route(
            receiver: receiver, matchers: matchers.map { try! LabelMatcher($0) }, groupBy: ["owner", "list"],
            groupWait: 0, groupInterval: 60, repeatInterval: 3600, continue: c, routes: children, index: index,
            escalation: escalation)
    }

    typealias Service = EscalationTests.Service

    /// Escalations are keyed by route *index* (a depth-first position). A SIGHUP that inserts a route before the
    /// escalating one makes the running escalation follow the new route at that index: another partner's duty
    /// officer is paged for an alert that was never routed to it, and the right one is never paged.
    @Test func reconfigureThatShiftsRouteIndexesPagesTheWrongReceivers() throws {
        let dir = scratchDirectory("esc-review")
        defer { try? FileManager.default.removeItem(at: dir) }
        let critical = Self.node(
            "be-fedpol-rx", index: 1, matchers: ["priority=\"critical\""],
            escalation: [EscalationStep(after: 900, receivers: ["nl-duty"])])
        let before = Self.config(dir, route: Self.node("ops-rx", index: 0, children: [critical]))
        let s = try Service(config: before)
        try s.ingest([hit(priority: .critical)], at: t0)
        #expect(try s.sent() == ["be-fedpol-rx": 1])
        // The operator adds a route for rule alerts in front of it (fr-dgsi's own escalation policy).
        let rules = Self.node(
            "fr-dgsi-rx", index: 1, matchers: ["kind=\"rule\""],
            escalation: [EscalationStep(after: 300, receivers: ["fr-duty"])])
        let shifted = Self.node(
            "be-fedpol-rx", index: 2, matchers: ["priority=\"critical\""],
            escalation: [EscalationStep(after: 900, receivers: ["nl-duty"])])
        try s.d.reconfigure(
            Self.config(dir, route: Self.node("ops-rx", index: 0, children: [rules, shifted])), now: t0 + 60)
        for t in [t0 + 300, t0 + 900, t0 + 1000] { try s.tick(t) }
        // Expected: the watchlist alert's escalation (be-fedpol route) pages nl-duty at 15 min; fr-duty never.
        #expect(try s.sent()["fr-duty"] == nil)
        #expect(try s.sent()["nl-duty"] == 1)
    }

    /// An originator (or jurisdiction) receiver is grouped under the *root* route. When it is the root's receiver,
    /// its notification starts the root's escalation although the alert took a child route, which (YAML: children
    /// inherit `escalation` and cannot turn it off) escalates too: every step pages its receivers twice.
    @Test func originatorReceiverStartsASecondEscalationAndDoublesEveryStep() throws {
        let dir = scratchDirectory("esc-review")
        defer { try? FileManager.default.removeItem(at: dir) }
        let steps = [EscalationStep(after: 900, receivers: ["nl-duty"])]
        let child = Self.node("fr-dgsi-rx", index: 1, matchers: ["priority=\"critical\""], escalation: steps)
        let root = Self.node("be-fedpol-rx", index: 0, children: [child], escalation: steps)
        let s = try Service(config: Self.config(dir, route: root))
        // A critical hit on be-fedpol's own list: routed to fr-dgsi-rx by the child; be-fedpol-rx as originator.
        try s.ingest([hit(priority: .critical)], at: t0)
        #expect(try s.sent() == ["be-fedpol-rx": 1, "fr-dgsi-rx": 1])
        try s.tick(t0 + 900)
        let running = try s.store.escalations()
        #expect(running.count == 1, "\(running)")
        #expect(try s.sent()["nl-duty"] == 1)  // one page for step 1, not two
    }

    /// Step 0 held back by the route receiver's rate limit (folded into a digest) never starts the escalation: the
    /// alert is recorded as notified, so its first real notification is the repeat an hour later, and the
    /// escalation with it. In an alert storm the alerts over the limit do not escalate.
    @Test func alertFoldedIntoADigestDoesNotEscalate() throws {
        let dir = scratchDirectory("esc-review")
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = Self.node(
            "be-fedpol-rx", index: 0, escalation: [EscalationStep(after: 900, receivers: ["nl-duty"])])
        var c = Self.config(dir, route: root)
        c.rateLimits = [RateLimit(receiver: "be-fedpol-rx", max: 1, per: 60)]
        let s = try Service(config: c)
        try s.ingest([hit(ref: "R1", priority: .critical), hit(ref: "R2", priority: .critical)], at: t0)
        for m in 1...15 { try s.tick(t0 + Double(m) * 60) }
        // Both alerts are firing and unacknowledged: both escalate to nl-duty at 15 min.
        #expect(try s.store.escalations().map(\.key).sorted() == ["wl:be-fedpol/l1/R1", "wl:be-fedpol/l1/R2"])
        #expect(try s.sent()["nl-duty"] == 2)
    }

    /// A silence scoped to be-fedpol (the route receiver's side) stops nl-nctv's escalation steps too, although
    /// §11 says escalation notifications pass silences *of the receiving side*; when it ends, nothing escalates until
    /// the route's repeat_interval.
    @Test func aSilenceOnStepZeroSuppressesEveryOtherPartnersSteps() throws {
        let dir = scratchDirectory("esc-review")
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = Self.node(
            "be-fedpol-rx", index: 0, escalation: [EscalationStep(after: 900, receivers: ["nl-duty"])])
        let s = try Service(config: Self.config(dir, route: root))
        var c = Commit()
        c.silences = [
            Silence(
                id: "s1", matchers: ["owner=\"be-fedpol\""], startsAt: t0 - 1, endsAt: t0 + 300,
                createdBy: "be-analyst",
                comment: "maintenance", partner: "be-fedpol")
        ]
        try s.store.commit(c)
        try s.tick(t0 + 1)
        try s.ingest([hit(priority: .critical)], at: t0 + 2)
        for m in 1...20 { try s.tick(t0 + Double(m) * 60) }
        #expect(try s.sent()["nl-duty"] == 1)
    }

    /// Many escalating alerts resolving in one tick: every escalation ends, each once. (Its cost was quadratic —
    /// `endEscalations` scanned every escalation per resolved alert; it now looks at the escalating routes only.
    /// The time is a benchmark's business, `TRIPLINE_BENCH=dispatch`, not an assertion here.)
    @Test func manyEscalatingAlertsResolvingTogether() throws {
        let dir = scratchDirectory("esc-review")
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = Self.node("be-fedpol-rx", index: 0, escalation: [EscalationStep(after: 900, receivers: ["nl-duty"])])
        var c = Self.config(dir, route: root)
        c.resolveTimeout = 3600
        let s = try Service(config: c)
        let n = 3_000
        try s.ingest((0..<n).map { hit(ref: "R\($0)", priority: .critical) }, at: t0)
        #expect(try s.store.escalations().count == n)
        try s.tick(t0 + 3700)
        try s.tick(t0 + 3701)
        #expect(try s.store.escalations().isEmpty)
        let ended = try s.store.events(after: 0, limit: 1_000_000).map(\.event).filter { $0.kind == "escalation_ended" }
        #expect(ended.count == n && Set(ended.compactMap(\.alertKey)).count == n)
    }
}
