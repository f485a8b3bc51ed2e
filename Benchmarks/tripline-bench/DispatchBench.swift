import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineState
import TriplineStores
import TriplineWatchlists

/// Alert-stage figures (`TRIPLINE_BENCH=dispatch`): the timer tick with 100,000 open alerts and two inhibit rules
/// (target ≤ 50 ms), and 3,000 distinct rule alerts with one inhibit rule end to end (17.9 s before the inhibition
/// index), on a SQLite store as `serve` uses it.
func dispatchBench() {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-dispatch-bench-\(getpid())")
    try? FileManager.default.removeItem(at: dir)
    defer { try? FileManager.default.removeItem(at: dir) }
    func config(inhibit: Int) -> AlertsConfig {
        let route = Route(
            receiver: "log", matchers: [], groupBy: ["..."], groupWait: 0, groupInterval: 300,
            repeatInterval: 4 * 3600, continue: false, routes: [], index: 0)
        var c = AlertsConfig(route: route, handleKey: Array("bench-handle-key-0123456789".utf8))
        c.partners = [Partner(id: "ops", name: "Ops", countries: [], contact: "ops@example")]
        var r = Receiver(name: "log", partner: "ops")
        r.add(
            "file", JSONObject([("path", .string(dir.appendingPathComponent("log.ndjson").path))]), sendResolved: true)
        c.receivers = [r]
        let rules = [
            InhibitRule(
                sourceMatchers: [try! LabelMatcher(#"priority="critical""#)],
                targetMatchers: [try! LabelMatcher(#"priority=~"low|medium""#)], equal: ["item"]),
            InhibitRule(
                sourceMatchers: [try! LabelMatcher(#"kind="rule""#), try! LabelMatcher(#"priority="high""#)],
                targetMatchers: [try! LabelMatcher(#"kind="watchlist""#)], equal: ["item", "area"]),
        ]
        c.inhibitRules = Array(rules.prefix(inhibit))
        return c
    }
    let normalizer = SelectorNormalizer()
    func hit(_ i: Int, priority: Priority) -> Hit {
        let json = #"{"id":"s\#(i)","type":"phone","value":"+3247\#(1_000_000 + i)","source":{"item":"D\#(i % 5000)"}}"#
        let sel = try! normalizer.normalize(try! SelectorInput(json: try! JSONParser.parse(json).objectValue!))
        return Hit(
            id: sel.id, selector: sel, kind: .rule, priority: priority,
            rule: RuleHit(id: "r\(i)", title: "rule \(i)"))
    }
    func run(_ d: Dispatcher, _ store: any StateStore, _ hits: ArraySlice<Hit>, at t: Double) {
        d.begin()
        var c = Commit()
        try! d.ingest(Array(hits), now: t, into: &c)
        try! store.commit(c)
        d.end(committed: c)
        tick(d, store, at: t)
    }
    func tick(_ d: Dispatcher, _ store: any StateStore, at t: Double) {
        d.begin()
        let c = try! d.tick(now: t)
        try! store.commit(c)
        d.end(committed: c)
    }
    let t0 = 1_893_456_000.0

    // 3,000 distinct rule alerts, one inhibit rule: ingest and notify all of them.
    do {
        let store = try! StateStores.open(dir.appendingPathComponent("a.sqlite").path)
        let d = try! Dispatcher(config: config(inhibit: 1), store: store, now: t0)
        let hits = (0..<3000).map { hit($0, priority: $0 % 10 == 0 ? .critical : .medium) }
        let start = nowNS()
        for k in stride(from: 0, to: hits.count, by: 500) { run(d, store, hits[k..<k + 500], at: t0 + Double(k)) }
        let s = Double(nowNS() - start) / 1e9
        let queued = (try? store.outbox(status: nil, limit: 10_000).count) ?? 0
        print(
            String(
                format:
                    "dispatch: 3,000 distinct rule alerts, 1 inhibit rule, ingest + notify: %.2f s (%d notifications)",
                s, queued))
    }

    // 100,000 open alerts, two inhibit rules: the steady tick, and a tick that takes 100 new alerts.
    let store = try! StateStores.open(dir.appendingPathComponent("b.sqlite").path)
    let d = try! Dispatcher(config: config(inhibit: 2), store: store, now: t0)
    let total = 100_000
    let hits = (0..<total).map { hit($0, priority: $0 % 50 == 0 ? .critical : $0 % 7 == 0 ? .high : .medium) }
    let openStart = nowNS()
    for k in stride(from: 0, to: total, by: 1000) { run(d, store, hits[k..<k + 1000], at: t0 + 1) }
    print(
        String(
            format: "dispatch: 100,000 alerts opened and notified (two inhibit rules): %.1f s",
            Double(nowNS() - openStart) / 1e9))
    var steady: [Double] = []
    for k in 0..<50 {
        let s = nowNS()
        tick(d, store, at: t0 + 20 + Double(k) * 11)  // every tick: operators' sync; every one a resolve scan
        steady.append(Double(nowNS() - s) / 1e6)
    }
    steady.sort()
    var busy: [Double] = []
    for k in 0..<20 {
        let extra = (0..<100).map { hit(total + k * 100 + $0, priority: .medium) }
        let s = nowNS()
        run(d, store, extra[...], at: t0 + 600 + Double(k))
        busy.append(Double(nowNS() - s) / 1e6)
    }
    busy.sort()
    print(
        String(
            format:
                "dispatch: tick with 100,000 open alerts, two inhibit rules: p50 %.2f ms, max %.2f ms (nothing due); "
                + "with 100 new alerts (ingest + commit + tick): p50 %.1f ms, max %.1f ms (target ≤ 50 ms)",
            steady[steady.count / 2], steady.last!, busy[busy.count / 2], busy.last!))
    escalationBench(dir: dir, hit: hit, run: run, tick: tick)
}

/// Escalation (issue 18): 10,000 firing alerts under a two-step policy (duty officer at 15 min, chief at 30),
/// on a SQLite store. The tick with nothing due; ticks while steps fall due as they do when the alerts arrived over
/// 15 minutes (~11 per second); and the worst case, every alert's step due in one tick.
func escalationBench(
    dir: URL, hit: (Int, Priority) -> Hit, run: (Dispatcher, any StateStore, ArraySlice<Hit>, Double) -> Void,
    tick: (Dispatcher, any StateStore, Double) -> Void
) {
    let route = Route(
        receiver: "log", matchers: [], groupBy: ["..."], groupWait: 0, groupInterval: 300,
        repeatInterval: 4 * 3600, continue: false, routes: [], index: 0,
        escalation: [
            EscalationStep(after: 900, receivers: ["duty"]), EscalationStep(after: 1800, receivers: ["chief"]),
        ])
    var c = AlertsConfig(route: route, handleKey: Array("bench-handle-key-0123456789".utf8))
    c.partners = [Partner(id: "ops", name: "Ops", countries: [], contact: "ops@example")]
    c.receivers = ["log", "duty", "chief"].map { name in
        var r = Receiver(name: name, partner: "ops")
        r.add(
            "file", JSONObject([("path", .string(dir.appendingPathComponent("\(name).ndjson").path))]),
            sendResolved: true)
        return r
    }
    let t0 = 1_893_456_000.0
    let n = 10_000
    let hits = (0..<n).map { hit(200_000 + $0, .high) }
    func percentile(_ xs: [Double], _ p: Double) -> Double { xs.sorted()[min(xs.count - 1, Int(Double(xs.count) * p))] }
    // Spread: alert k opened at t0 + k * 0.09 s (10,000 over 15 minutes), in batches of 100.
    do {
        let store = try! StateStores.open(dir.appendingPathComponent("e1.sqlite").path)
        let d = try! Dispatcher(config: c, store: store, now: t0)
        for k in stride(from: 0, to: n, by: 100) { run(d, store, hits[k..<k + 100], t0 + Double(k) * 0.09) }
        var idle: [Double] = []
        for k in 0..<50 {
            let s = nowNS()
            tick(d, store, t0 + 901 + Double(k) * 0.001)  // the first steps come due from t0 + 900 on
            idle.append(Double(nowNS() - s) / 1e6)
        }
        var due: [Double] = []
        var compute: [Double] = []
        var t = t0 + 902
        while t < t0 + 1800 {
            let s = nowNS()
            d.begin()
            let c = try! d.tick(now: t)
            compute.append(Double(nowNS() - s) / 1e6)
            try! store.commit(c)
            d.end(committed: c)
            due.append(Double(nowNS() - s) / 1e6)
            t += 1
        }
        let steps = (try? store.outbox(status: nil, limit: 100_000).filter { $0.receiver == "duty" }.count) ?? 0
        print(
            String(
                format:
                    "dispatch: 10,000 firing alerts under escalation: tick p50 %.2f ms, max %.2f ms (about 11 steps due "
                    + "per 1 s tick: the dispatcher's tick p50 %.2f ms, p99 %.2f ms, max %.2f ms; with its commit p50 %.2f ms, "
                    + "p99 %.2f ms, max %.2f ms; %d duty-officer steps) (target ≤ 10 ms)",
                percentile(idle, 0.5), idle.max()!, percentile(compute, 0.5), percentile(compute, 0.99), compute.max()!,
                percentile(due, 0.5), percentile(due, 0.99), due.max()!, steps))
    }
    // Worst case: all opened at once, every first step due in one tick.
    do {
        let store = try! StateStores.open(dir.appendingPathComponent("e2.sqlite").path)
        let d = try! Dispatcher(config: c, store: store, now: t0)
        for k in stride(from: 0, to: n, by: 1000) { run(d, store, hits[k..<k + 1000], t0) }
        let s = nowNS()
        tick(d, store, t0 + 900)
        let ms = Double(nowNS() - s) / 1e6
        let steps = (try? store.outbox(status: nil, limit: 100_000).filter { $0.receiver == "duty" }.count) ?? 0
        print(
            String(
                format:
                    "dispatch: 10,000 escalation steps due in one tick (all alerts opened at once): %.0f ms (%d steps)",
                ms, steps))
    }
}
