import Foundation
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineState
import TriplineTestSupport
import TriplineWatchlists

func hit(
    owner: String = "be-fedpol", list: String = "l1", ref: String = "R1", priority: Priority = .high,
    value: String = "+32470123456", item: String = "P-1", tlp: TLP = .amber, notify: Bool = true
) -> Hit {
    let sel = selector(#"{"id":"\#(ref)-\#(item)","type":"phone","value":"\#(value)","source":{"item":"\#(item)"}}"#)
    let w = WatchlistHit(
        owner: owner, list: list, version: "v", ref: ref, label: "label",
        handling: Handling(tlp: tlp, releasableTo: [owner], originatorNotified: notify), score: 1, via: "exact",
        watched: sel.value)
    return Hit(id: sel.id, selector: sel, kind: .watchlist, priority: priority, watchlist: w)
}

/// A dispatcher over a memory store; `step` ingests and ticks like the pipeline does.
struct Harness {
    let store = MemoryStateStore()
    let config: AlertsConfig
    let d: Dispatcher
    let dir = scratchDirectory("dispatch")

    init(route r: Route? = nil, edit: (inout AlertsConfig) -> Void = { _ in }) throws {
        var c = alertsConfig(dir, route: r)
        edit(&c)
        config = c
        d = try Dispatcher(config: c, store: store, now: t0)
    }

    /// As the pipeline does: the dispatcher computes, the harness commits, then tells the dispatcher.
    func step(_ hits: [Hit], at t: Double) throws {
        d.begin()
        var c = Commit()
        try d.ingest(hits, now: t, into: &c)
        try store.commit(c)
        d.end(committed: c)
        try tick(t)
    }

    func tick(_ t: Double, flushAll: Bool = false) throws {
        d.begin()
        let c = try d.tick(now: t, flushAll: flushAll)
        try store.commit(c)
        d.end(committed: c)
    }

    func outbox(_ receiver: String? = nil) throws -> [OutboxItem] {
        try store.outbox(status: nil, limit: 1000).filter { receiver == nil || $0.receiver == receiver }
    }

    func events(_ kind: String, reason: String? = nil) throws -> [EventDraft] {
        try store.events(after: 0, limit: 10_000).map(\.event).filter {
            $0.kind == kind && (reason == nil || $0.reason == reason)
        }
    }

    func states(_ receiver: String) throws -> [String] {
        try outbox(receiver).flatMap { $0.payload["alerts"]?.arrayValue ?? [] }.compactMap {
            $0.objectValue?["state"]?.stringValue
        }
    }
}

@Suite("Dispatcher")
struct DispatcherTests {
    @Test func laterSightingsFoldIntoTheOpenAlert() throws {
        let h = try Harness()
        try h.step([hit(item: "P-1")], at: t0)
        try h.step([hit(item: "P-2"), hit(item: "P-2")], at: t0 + 5)
        let alerts = try h.store.alerts(states: nil, limit: 10)
        #expect(alerts.count == 1)
        #expect(alerts[0].count == 3 && alerts[0].sources == ["P-1", "P-2"] && alerts[0].key == "wl:be-fedpol/l1/R1")
        #expect(try h.outbox("ops-rx").count == 1)
        #expect(try h.events("suppressed", reason: "dedup").count == 2)
    }

    @Test func groupWaitIntervalAndRepeat() throws {
        let h = try Harness(route: route("ops-rx", wait: 30, interval: 60, repeatInterval: 600))
        try h.step([hit(ref: "A")], at: t0)
        #expect(try h.outbox("ops-rx").isEmpty)  // waiting for the group
        try h.step([hit(ref: "B")], at: t0 + 10)
        try h.tick(t0 + 30)
        let first = try h.outbox("ops-rx")
        #expect(first.count == 1 && first[0].payload["alerts"]?.arrayValue?.count == 2)  // one notification, both
        try h.step([hit(ref: "A")], at: t0 + 100)
        try h.tick(t0 + 200)
        #expect(try h.outbox("ops-rx").count == 1)  // nothing new
        try h.tick(t0 + 700)
        #expect(try h.outbox("ops-rx").count == 2)  // repeat_interval passed
    }

    @Test func routingContinueJurisdictionOriginator() throws {
        let tree = route(
            "ops-rx",
            children: [
                route("nl-nctv-rx", matchers: [#"priority="critical""#], continue: true, index: 1),
                route("fr-dgsi-rx", matchers: [#"priority=~"critical|high""#], index: 2),
                route("ops-rx", index: 3),
            ])
        let h = try Harness(route: tree)
        try h.step([hit(priority: .critical, value: "+33612345678")], at: t0)  // FR number, BE list
        #expect(try h.outbox("nl-nctv-rx").count == 1)  // continue: true
        #expect(try h.outbox("fr-dgsi-rx").count == 1)  // matched, and jurisdiction (FR)
        #expect(try h.outbox("be-fedpol-rx").count == 1)  // originator
        #expect(try h.outbox("ops-rx").isEmpty)  // fr-dgsi's route did not continue
        let quiet = try Harness()
        try quiet.step([hit(value: "+31612345678", notify: false)], at: t0)
        #expect(try quiet.outbox("be-fedpol-rx").isEmpty)  // originator_notified: false
        #expect(try quiet.outbox("nl-nctv-rx").count == 1)  // NL number: NL's jurisdiction
    }

    @Test func silencesSuppressAndAreRecorded() throws {
        let h = try Harness()
        var c = Commit()
        c.silences = [
            Silence(
                id: "s1", matchers: [#"owner="be-fedpol""#], startsAt: t0 - 1, endsAt: t0 + 100, createdBy: "a",
                comment: "x")
        ]
        try h.store.commit(c)
        try h.tick(t0 + 2)  // picks up the silence
        try h.step([hit()], at: t0 + 3)
        #expect(try h.outbox("ops-rx").isEmpty)
        #expect(try h.events("suppressed", reason: "silence").count >= 1)
        try h.step([hit(owner: "fr-dgsi", list: "other")], at: t0 + 4)
        #expect(try h.outbox("ops-rx").count == 1)
    }

    @Test func acknowledgementsNotifyOnceThenSuppress() throws {
        let h = try Harness()
        try h.step([hit()], at: t0)
        let id = try #require(try h.store.alerts(states: nil, limit: 1).first?.id)
        _ = try Dispatcher.act(
            on: id, state: .acknowledged, principal: Principal(id: "analyst", partner: "ops", role: .analyst),
            reason: "case 12", store: h.store, now: t0 + 10)
        try h.tick(t0 + 12)
        #expect(try h.states("ops-rx") == ["firing"])  // the group's interval has not passed
        try h.tick(t0 + 61)
        #expect(try h.states("ops-rx") == ["firing", "acknowledged"])
        try h.step([hit(item: "P-9")], at: t0 + 20)
        try h.tick(t0 + 200)
        #expect(try h.states("ops-rx") == ["firing", "acknowledged"])
        #expect(try h.events("suppressed", reason: "acknowledged").count == 1)
        #expect(try h.events("alert_acknowledged").first?.principal == "analyst")
    }

    @Test("an acknowledgement stops repeats for the acknowledging partner's receivers only")
    func acknowledgementIsPerPartner() throws {
        // ops-rx by the route; be-fedpol-rx as the list's owner (originator). Repeats every 100 s.
        let h = try Harness(route: route("ops-rx", repeatInterval: 100))
        try h.step([hit(tlp: .clear)], at: t0)
        #expect(try h.states("ops-rx") == ["firing"] && h.states("be-fedpol-rx") == ["firing"])
        let id = try #require(try h.store.alerts(states: nil, limit: 1).first?.id)
        _ = try Dispatcher.act(
            on: id, state: .acknowledged, principal: Principal(id: "analyst-be", partner: "be-fedpol", role: .analyst),
            reason: "on it", store: h.store, now: t0 + 10)
        let acked = try #require(try h.store.alert(id: id))
        #expect(acked.state == .firing && acked.acks["be-fedpol"]?.by == "analyst-be")
        try h.tick(t0 + 11)
        try h.tick(t0 + 300)
        try h.tick(t0 + 500)
        // be-fedpol: told once that its partner acknowledged, then nothing; ops: repeats go on.
        #expect(try h.states("be-fedpol-rx") == ["firing", "acknowledged"])
        #expect(try h.states("ops-rx") == ["firing", "firing", "firing"])
        #expect(
            throws: AlertsError.self,
            performing: {
                try Dispatcher.act(
                    on: id, state: .acknowledged,
                    principal: Principal(id: "analyst-b2", partner: "be-fedpol", role: .analyst), reason: "again",
                    store: h.store, now: t0 + 501)
            })
    }

    @Test("a notification queued before its list was made stricter goes out as the handling is now")
    func queuedNotificationsFollowAStricterHandling() throws {
        let h = try Harness()
        // be-fedpol's amber list, releasable to fr-dgsi; an FR number, so fr-dgsi's receiver is routed it.
        var x = hit(value: "+33612345678", tlp: .amber)
        x.watchlist!.handling = Handling(tlp: .amber, releasableTo: ["be-fedpol", "fr-dgsi"], originatorNotified: true)
        try h.step([x], at: t0)
        let fr = try #require(try h.outbox("fr-dgsi-rx").first)
        #expect(fr.payload["alerts"]?.arrayValue?.first?.objectValue?["watchlist"] != nil)  // entitled when queued
        // The owner makes the list amber+strict; the service records the handlings it loads.
        var c = Commit()
        c.listHandlings = ["be-fedpol/l1": JSONObject([("tlp", .string("amber+strict"))])]
        try h.store.commit(c)
        try h.d.reconfigure(h.config, now: t0 + 1)
        let now = try #require(h.d.refresh(fr))
        let view = now.payload["alerts"]?.arrayValue?.first?.objectValue
        #expect(view?["restricted"] == .bool(true) && view?["watchlist"] == nil)
        #expect(!JSONWriter.string(.object(now.payload)).contains("+33612345678"))
        #expect(now.payload["notification_id"] == fr.payload["notification_id"])  // the same id, for dedup
    }

    @Test("a rule alert takes the handling of lists behind later sightings")
    func ruleAlertTakesLaterProtections() throws {
        let h = try Harness()
        let sel = selector(#"{"id":"v1","type":"phone","value":"+33612345678"}"#)
        let plain = Hit(id: "v1", selector: sel, kind: .rule, priority: .high, rule: RuleHit(id: "r", title: "t"))
        try h.step([plain], at: t0)
        let red = WatchlistHit(
            owner: "be-fedpol", list: "red", version: "v", ref: "R", label: "L",
            handling: Handling(tlp: .red, releasableTo: ["be-fedpol"], originatorNotified: true), score: 1,
            via: "exact", watched: sel.value)
        var later = plain
        later.basis = [red]
        try h.step([later], at: t0 + 5)
        let a = try #require(try h.store.alerts(states: nil, limit: 1).first)
        #expect(a.count == 2)
        #expect(Protection.from(a.payload).map(\.tlp) == ["red"])
        #expect(Renderer(config: h.config).access(a, partner: "fr-dgsi", sink: true) == .notice)
    }

    @Test("a partner's silence matches the labels as that partner sees them (no probing of list names)")
    func silencesSeeWhatTheirPartnerSees() throws {
        let h = try Harness(route: route("fr-dgsi-rx"))
        var c = Commit()
        c.silences = [
            Silence(
                id: "probe", matchers: [#"list=~"l.*""#], startsAt: t0 - 1, endsAt: t0 + 1000, createdBy: "analyst-fr",
                comment: "probe", partner: "fr-dgsi")
        ]
        try h.store.commit(c)
        try h.tick(t0 + 1)
        try h.step([hit(list: "l1", tlp: .amberStrict)], at: t0 + 2)  // fr-dgsi sees a handle, not "l1"
        #expect(try h.outbox("fr-dgsi-rx").count == 1)
        #expect(try h.events("suppressed", reason: "silence").isEmpty)
    }

    @Test("a rate limit's digest and window survive a restart")
    func digestSurvivesRestart() throws {
        let h = try Harness { $0.rateLimits = [RateLimit(receiver: "ops-rx", max: 1, per: 60)] }
        try h.step((1...3).map { hit(list: "l\($0)", tlp: .clear) }, at: t0)
        #expect(try h.outbox("ops-rx").count == 1)
        // A new dispatcher on the same store (a restart): the two folded alerts still come as a digest.
        let d2 = try Dispatcher(config: h.config, store: h.store, now: t0 + 1)
        d2.begin()
        let c = try d2.tick(now: t0 + 61)
        try h.store.commit(c)
        d2.end(committed: c)
        #expect(try h.outbox("ops-rx").count == 2)
        #expect(try h.outbox("ops-rx").last?.payload["more"] == .number("2"))
    }

    @Test func resolveTimeoutSendsResolved() throws {
        let h = try Harness { $0.resolveTimeout = 100 }
        try h.step([hit()], at: t0)
        try h.tick(t0 + 150)
        #expect(try h.states("ops-rx") == ["firing", "resolved"])
        #expect(try h.store.alerts(states: [.resolved], limit: 5).count == 1)
        try h.step([hit()], at: t0 + 160)  // fires again: the same alert, reopened
        #expect(try h.states("ops-rx") == ["firing", "resolved", "firing"])
        #expect(try h.events("alert_reopened").count == 1)
    }

    @Test("resolved notifications reach every integration that asks for them, webhook- and mail-only included")
    func resolvedPerIntegration() throws {
        let tree = route(
            "ops-rx",
            children: [
                route("hook-only", continue: true, index: 1), route("mail-only", continue: true, index: 2),
                route("both", index: 3),
            ])
        let h = try Harness(route: tree) {
            $0.resolveTimeout = 100
            let url = JSONObject([("url", .string("http://127.0.0.1:9/h"))])
            var hook = Receiver(name: "hook-only", partner: "ops")
            hook.add("webhook", url, sendResolved: true)
            var mail = Receiver(name: "mail-only", partner: "ops")
            mail.add("email", JSONObject(), sendResolved: true)
            var both = Receiver(name: "both", partner: "ops")
            both.add("webhook", url, sendResolved: true)
            both.add("email", JSONObject(), sendResolved: false)
            $0.receivers += [hook, mail, both]
        }
        try h.step([hit(tlp: .clear)], at: t0)
        try h.tick(t0 + 150)  // resolve timeout
        func sent(_ receiver: String) throws -> [String] {
            try h.outbox(receiver).map { "\($0.integration) \($0.payload["status"]?.stringValue ?? "")" }
        }
        #expect(try sent("hook-only") == ["webhook/0 firing", "webhook/0 resolved"])
        #expect(try sent("mail-only") == ["email/0 firing", "email/0 resolved"])
        // Each integration its own policy: the mail of `both` does not get the resolve, its webhook does.
        #expect(try sent("both") == ["webhook/0 firing", "email/0 firing", "webhook/0 resolved"])
    }

    @Test func inhibition() throws {
        let h = try Harness {
            $0.inhibitRules = [
                InhibitRule(
                    sourceMatchers: [try! LabelMatcher(#"priority="critical""#)],
                    targetMatchers: [try! LabelMatcher(#"priority="low""#)], equal: ["item"])
            ]
        }
        try h.step([hit(list: "a", priority: .critical, item: "P-1", tlp: .clear)], at: t0)
        try h.step(
            [
                hit(list: "b", priority: .low, item: "P-1", tlp: .clear),
                hit(list: "c", priority: .low, item: "P-2", tlp: .clear),
            ],
            at: t0 + 1)
        let lists = try h.outbox("ops-rx").flatMap { $0.payload["alerts"]?.arrayValue ?? [] }
            .compactMap { $0.objectValue?["labels"]?.objectValue?["list"]?.stringValue }
        #expect(lists.sorted() == ["a", "c"])
        #expect(try h.events("suppressed", reason: "inhibition").filter { $0.receiver == "ops-rx" }.count == 1)
    }

    @Test func rateLimitFoldsOverflowIntoADigest() throws {
        let h = try Harness { $0.rateLimits = [RateLimit(receiver: "ops-rx", max: 2, per: 60)] }
        try h.step((1...5).map { hit(list: "l\($0)", priority: $0 == 5 ? .critical : .medium) }, at: t0)
        let sent = try h.outbox("ops-rx")
        #expect(sent.count == 2)
        #expect(sent[0].payload["alerts"]?.arrayValue?.first?.objectValue?["priority"] == .string("critical"))
        #expect(try h.events("suppressed", reason: "rate_limit").count == 3)
        try h.tick(t0 + 61)
        let digest = try h.outbox("ops-rx")
        #expect(digest.count == 3)
        #expect(digest[2].payload["digest"] == .string("and 3 more (rate limit)"))
    }

    @Test func recoveryAfterACrashSendsWhatWasNotSent() throws {
        let dir = scratchDirectory("recover")
        let store = MemoryStateStore()
        let c = alertsConfig(dir, route: route("ops-rx", wait: 30))
        let d1 = try Dispatcher(config: c, store: store, now: t0)
        var commit = Commit()
        try d1.ingest([hit()], now: t0, into: &commit)
        try store.commit(commit)
        // The process dies before the group's timer fires; a new one starts.
        let d2 = try Dispatcher(config: c, store: store, now: t0 + 50)
        try store.commit(try d2.tick(now: t0 + 80))
        #expect(try store.outbox(status: nil, limit: 10).filter { $0.receiver == "ops-rx" }.count == 1)
        let d3 = try Dispatcher(config: c, store: store, now: t0 + 90)
        try store.commit(try d3.tick(now: t0 + 200))
        #expect(try store.outbox(status: nil, limit: 10).filter { $0.receiver == "ops-rx" }.count == 1)  // not again
    }

    @Test func matchersFollowAlertmanager() throws {
        var l = JSONObject()
        l.append("priority", .string("high"))
        l.append("owner", .string("be-fedpol"))
        #expect(try LabelMatcher(#"priority="high""#).matches(l))
        #expect(try LabelMatcher("priority=high").matches(l))
        #expect(try LabelMatcher(#"owner=~"be-.*""#).matches(l))
        #expect(try !LabelMatcher(#"owner=~"be""#).matches(l))  // anchored
        #expect(try LabelMatcher(#"area!="x""#).matches(l))
        #expect(try LabelMatcher(#"area="""#).matches(l))  // missing label = empty
        #expect(try !LabelMatcher(#"priority!~"high|critical""#).matches(l))
        #expect(throws: AlertsError.self) { try LabelMatcher("nonsense") }
    }
}

@Suite("Dispatcher cost")
struct DispatcherCostTests {
    /// A group that grows to 8,000 alerts: an alert added late costs about what one added early does (a group
    /// copied per alert made this quadratic: 100,000 alerts took 192 s, now 19 s). The bound (4x) leaves room for
    /// noise; the quadratic version measured over 8x here.
    @Test("alerts joining a large group cost the same early and late")
    func groupGrowthIsLinear() throws {
        let h = try Harness()
        func phase(_ range: Range<Int>) throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for batch in stride(from: range.lowerBound, to: range.upperBound, by: 200) {
                let hits = (batch..<min(batch + 200, range.upperBound)).map {
                    hit(ref: "R\($0)", value: "+3247\(String(1_000_000 + $0))", item: "P-\($0)")
                }
                do {
                    h.d.begin()
                    var c = Commit()
                    try h.d.ingest(hits, now: t0, into: &c)
                    try h.store.commit(c)
                    h.d.end(committed: c)
                }
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(range.count)
        }
        let early = try phase(0..<1000)
        _ = try phase(1000..<7000)
        let late = try phase(7000..<8000)
        #expect(try h.store.alerts(states: nil, limit: 10_000).count == 8000)
        #expect(late < 4 * early, "per alert: \(Int(early)) ns early, \(Int(late)) ns late")
    }
}
