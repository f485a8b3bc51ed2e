import Foundation
import Testing
import TriplineMatch
import TriplineSelectors
import TriplineTestSupport
import TriplineWatchlists

@testable import TriplineRules

/// Rules for the randomized tests: three base rules over `context.k` (an event may match several) and correlations
/// of every kind with `gt`/`gte` conditions, some with a rule twice in order, one without group-by.
private let differentialRules: String = {
    var docs: [String] = []
    for r in ["a", "b", "c"] {
        docs.append(
            """
            title: Base \(r)
            id: base-\(r)
            name: \(r)
            logsource: {product: tripline, category: selector}
            detection:
              s: {context.k|contains: \(r)}
              condition: s
            """)
    }
    let correlations: [(String, String)] = [
        (
            "ev3",
            "type: event_count\n  rules: [a, b, c]\n  group-by: [source.item]\n  timespan: 10m\n  condition: {gte: 3}"
        ),
        ("ev-gt", "type: event_count\n  rules: [a]\n  group-by: [source.item]\n  timespan: 5m\n  condition: {gt: 1}"),
        (
            "val3",
            "type: value_count\n  rules: [a, b]\n  group-by: [source.item]\n  timespan: 10m\n  condition: {gte: 3, field: value}"
        ),
        (
            "val-range",
            "type: value_count\n  rules: [a, b, c]\n  group-by: [source.item, context.zone]\n  timespan: 20m\n  condition: {gte: 2, gt: 2.5, field: value}"
        ),
        ("tmp", "type: temporal\n  rules: [a, b, c]\n  group-by: [source.item]\n  timespan: 10m"),
        (
            "tmp2",
            "type: temporal\n  rules: [a, b, c]\n  group-by: [source.item]\n  timespan: 3m\n  condition: {gte: 2}"
        ),
        ("ord", "type: temporal_ordered\n  rules: [a, b, c]\n  group-by: [source.item]\n  timespan: 10m"),
        ("ord-aba", "type: temporal_ordered\n  rules: [a, b, a]\n  group-by: [source.item]\n  timespan: 10m"),
        (
            "ord2",
            "type: temporal_ordered\n  rules: [c, a, b]\n  group-by: [source.item]\n  timespan: 5m\n  condition: {gte: 2}"
        ),
        ("all-b", "type: event_count\n  rules: [b]\n  timespan: 1m\n  condition: {gte: 4}"),
    ]
    for (id, body) in correlations { docs.append("title: \(id)\nid: \(id)\ncorrelation:\n  \(body)") }
    return docs.joined(separator: "\n---\n")
}()

/// One generated event: the selector and its event time.
struct TimedEvent {
    var selector: NormalizedSelector
    var time: Double
}

/// A seeded stream over a few devices, values and rule combinations. In order: times only grow, by steps that
/// include ties, exactly one timespan and sub-second steps. Out of order: times scatter up to 5000 s behind a
/// moving cursor (some beyond the allowed lateness of their group). Some ids repeat.
func generatedStream(seed: UInt64, count: Int, inOrder: Bool, devices: Int = 3, values: Int = 5) -> [TimedEvent] {
    var rng = SplitMix64(seed: seed)
    func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
    let combos = ["a", "b", "c", "ab", "bc", "ac", "abc", "x"]
    var t = 1_476_950_400.0
    var out: [TimedEvent] = []
    for i in 0..<count {
        let time: Double
        if inOrder {
            t += pick([0, 0, 30, 60, 60, 120, 180, 300, 600, 601, 0.5, 1200])
            time = t
        } else {
            t += pick([0, 30, 60, 120])
            time = t - pick([0, 0, 0, 30, 60, 300, 599.5, 600, 1200, 3000, 5000])
        }
        let id = i > 0 && rng.next() % 10 == 0 ? "e\(i - 1)" : "e\(i)"
        let json =
            #"{"id":"\#(id)","type":"email","value":"v\#(rng.next() % UInt64(values))@x.example","#
            + #""source":{"item":"D\#(rng.next() % UInt64(devices))"},"#
            + #""context":{"k":"\#(pick(combos))","zone":"z\#(rng.next() % 2)"}}"#
        out.append(TimedEvent(selector: selector(json), time: time))
    }
    return out
}

func fired(_ hits: [Hit]) -> [ReferenceCorrelation.Fired] {
    hits.map { ReferenceCorrelation.Fired(rule: $0.rule!.id, id: $0.id, events: $0.rule!.events ?? []) }
}

@Suite("Correlation engine against the brute force")
struct CorrelationDifferentialTests {
    static let loaded: RuleSet = {
        let r = loadRules(differentialRules)
        precondition(r.errors.isEmpty, "\(r.errors)")
        return r.ruleSet
    }()

    /// Feeds the stream to the engine and the reference; returns (fires, late events, mismatching events).
    func compare(_ stream: [TimedEvent]) -> (fires: Int, late: Int, mismatches: [String]) {
        let set = Self.loaded
        var options = CorrelationOptions()
        options.allowedLateness = 3600
        var engine = CorrelationEngine(set, options: options)
        var reference = ReferenceCorrelation(set, lateness: 3600)
        var evaluator = RuleEvaluator(set)
        var fires = 0
        var mismatches: [String] = []
        for e in stream {
            let event = RuleEvent(selector: e.selector, watchlist: [])
            let matched = evaluator.evaluate(event)
            let got = fired(engine.process(event, time: e.time, matched: matched))
            let want = reference.process(event, time: e.time, matched: matched)
            fires += want.count
            if got != want && mismatches.count < 3 { mismatches.append("\(e.selector.id): got \(got), want \(want)") }
        }
        #expect(engine.lateEvents == reference.lateEvents)
        return (fires, reference.lateEvents, mismatches)
    }

    @Test func inOrderStreamsFireExactlyWhenTheBruteForceDoes() {
        var fires = 0
        for seed in UInt64(1)...4 {
            let r = compare(generatedStream(seed: seed, count: 1500, inOrder: true))
            #expect(r.mismatches.isEmpty, "seed \(seed): \(r.mismatches)")
            #expect(r.late == 0)
            fires += r.fires
        }
        #expect(fires == 5563)
    }

    @Test func outOfOrderStreamsFireExactlyWhenTheBruteForceDoes() {
        var fires = 0
        var late = 0
        for seed in UInt64(11)...14 {
            let r = compare(generatedStream(seed: seed, count: 1500, inOrder: false))
            #expect(r.mismatches.isEmpty, "seed \(seed): \(r.mismatches)")
            fires += r.fires
            late += r.late
        }
        #expect(fires == 7591)
        #expect(late == 459)
    }

    @Test func denseWindowsWithManyDevices() {
        // Sub-second spacing piles hundreds of entries into each window.
        var rng = SplitMix64(seed: 99)
        var stream = generatedStream(seed: 21, count: 3000, inOrder: true, devices: 2, values: 40)
        var t = stream[0].time
        for i in stream.indices {
            t += Double(rng.next() % 3) * 0.25
            stream[i].time = t - (rng.next() % 4 == 0 ? Double(rng.next() % 700) : 0)
        }
        let r = compare(stream)
        #expect(r.mismatches.isEmpty, "\(r.mismatches)")
        #expect(r.fires == 40)
    }
}

/// The logical state of an engine: per correlation, the groups in LRU order with their scalars, entries and hulls.
func snapshot(_ e: CorrelationEngine) -> [String] {
    var out: [String] = []
    for w in e.windows {
        var g = w.lruHead
        while g >= 0 {
            let grp = w.groups[Int(g)]
            let entries = w.allEntries(grp.entries).map { n in
                let node = w.nodes[Int(n)]
                return
                    "\(node.time)/\(node.seq)/\(w.ids[Int(n)])/\(node.rule)/\(w.stringKeys ? w.internText[Int(node.key)] : "")"
            }
            let hulls = w.allHulls(grp.hulls).map { h in
                let x = w.hulls[Int(h)]
                return "\(x.sTime)/\(x.sSeq)-\(x.bTime)/\(x.bSeq)"
            }
            out.append(
                "\(w.rule.id) \(grp.key) \(grp.firing) \(grp.newest) \(grp.lastIngest) \(grp.count) \(entries) \(hulls)"
            )
            g = grp.next
        }
    }
    out.append("late \(e.lateEvents) entries \(e.droppedEntries) groups \(e.droppedGroups) idle \(e.idleGroups)")
    out.append("count \(e.entryCount) \(e.groupCount)")
    return out
}

@Suite("Correlation batches roll back")
struct CorrelationRollbackTests {
    /// Batches of a stream with evictions of every kind (group cap, entry cap, idle groups, late events); a third
    /// of them rolled back and fed again. After each rollback the state equals that of an engine that never saw
    /// the batch, and every committed batch gives the same hits as that engine.
    @Test func rolledBackBatchesLeaveNoTrace() {
        let set = CorrelationDifferentialTests.loaded
        var options = CorrelationOptions()
        options.allowedLateness = 1800
        options.maxGroups = 2
        options.maxEntriesPerGroup = 12
        options.maxIdle = 900
        var batched = CorrelationEngine(set, options: options)
        var plain = CorrelationEngine(set, options: options)
        var evaluator = RuleEvaluator(set)
        var rng = SplitMix64(seed: 5)
        let stream = generatedStream(seed: 31, count: 2000, inOrder: false, devices: 4).enumerated().map { (i, e) in
            // Ingest time: 7 s a record, and a pause of 1000 s every 200 records (idle groups go).
            (e, RuleEvent(selector: e.selector, watchlist: []), Double(i) * 7 + Double(i / 200) * 1000)
        }
        let matched = stream.map { evaluator.evaluate($0.1) }
        var i = 0
        var rollbacks = 0
        var hits = 0
        var rolledBack = false
        while i < stream.count {
            let size = 1 + Int(rng.next() % 40)
            let range = i..<min(i + size, stream.count)
            batched.beginBatch()
            var got: [ReferenceCorrelation.Fired] = []
            for k in range {
                got += fired(
                    batched.process(stream[k].1, time: stream[k].0.time, ingestTime: stream[k].2, matched: matched[k]))
            }
            if !rolledBack && rng.next() % 3 == 0 {
                batched.rollbackBatch()
                rollbacks += 1
                rolledBack = true
                #expect(snapshot(batched) == snapshot(plain), "after rolling back \(range)")
                continue
            }
            rolledBack = false
            batched.endBatch()
            var want: [ReferenceCorrelation.Fired] = []
            for k in range {
                want += fired(
                    plain.process(stream[k].1, time: stream[k].0.time, ingestTime: stream[k].2, matched: matched[k]))
            }
            #expect(got == want, "batch \(range)")
            hits += want.count
            i = range.upperBound
        }
        #expect(snapshot(batched) == snapshot(plain))
        #expect(rollbacks == 40)
        #expect(hits == 1798)
        #expect(
            [plain.droppedGroups, plain.droppedEntries, plain.idleGroups, plain.lateEvents] == [7698, 511, 171, 241]
                as [Int])
    }

    /// The service's case through `RuleEngine`: records, a batch that fires and is rolled back (counters too),
    /// then the same records again fire as for an engine that never saw the rolled-back batch.
    @Test func ruleEngineRollbackRestoresHitsAndCounters() throws {
        let rules = RuleLoader(now: 0).load(
            files: [FileManager.default.currentDirectoryPath + "/Rules/phone-foreign-area-burst.yml"])
        #expect(rules.errors.isEmpty)
        func record(_ id: String, _ value: String, _ at: String?) -> NormalizedSelector {
            let time = at.map { #","observed_at":"\#($0)""# } ?? ""
            return selector(
                #"{"id":"\#(id)","type":"phone","value":"\#(value)"\#(time),"source":{"item":"P1","country":"IQ"}}"#)
        }
        let before = [record("a1", "+32 2 456 12 34", "2016-10-20T08:00:00Z")]
        let batch = [
            record("a2", "+32 2 511 22 33", "2016-10-20T08:20:00Z"),
            record("a3", "+32 2 513 00 00", "2016-10-20T08:30:00Z"),
            record("late", "+32 2 513 00 01", "2016-10-20T01:00:00Z"),
            record("future", "+32 2 513 00 02", "9999-12-31T00:00:00Z"),
        ]
        let now = try #require(Timestamp.parse("2026-11-30T12:00:00Z"))
        var engine = RuleEngine(rules.ruleSet)
        var fresh = RuleEngine(rules.ruleSet)
        for r in before {
            _ = engine.process(r, watchlist: [], ingestTime: now)
            _ = fresh.process(r, watchlist: [], ingestTime: now)
        }
        engine.beginBatch()
        let first = batch.flatMap { engine.process($0, watchlist: [], ingestTime: now) }
        #expect(first.map(\.id) == ["a3"])
        #expect(engine.correlation.lateEvents == 1)
        #expect(engine.untrustedTimes == 1)
        engine.rollbackBatch()
        #expect(engine.correlation.lateEvents == 0)
        #expect(engine.untrustedTimes == 0)
        #expect(snapshot(engine.correlation) == snapshot(fresh.correlation))
        engine.beginBatch()
        let again = batch.flatMap { engine.process($0, watchlist: [], ingestTime: now) }
        engine.endBatch()
        let reference = batch.flatMap { fresh.process($0, watchlist: [], ingestTime: now) }
        #expect(fired(again) == fired(reference))
        #expect(again.first?.rule?.events == ["a1", "a2", "a3"])
        #expect(snapshot(engine.correlation) == snapshot(fresh.correlation))
    }

    /// The journal holds the batch's changes, not the state: one event on top of ten thousand costs a handful of
    /// steps; outside a batch nothing is journalled.
    @Test func rollbackCostFollowsTheBatchNotTheState() {
        let set = CorrelationDifferentialTests.loaded
        var engine = CorrelationEngine(set)
        var evaluator = RuleEvaluator(set)
        let stream = generatedStream(seed: 41, count: 10_001, inOrder: true, devices: 400)
        for e in stream.dropLast() {
            let ev = RuleEvent(selector: e.selector, watchlist: [])
            _ = engine.process(ev, time: e.time, matched: evaluator.evaluate(ev))
        }
        #expect(engine.windows.allSatisfy { $0.journal.isEmpty })
        let state = snapshot(engine)
        engine.beginBatch()
        let last = RuleEvent(selector: stream.last!.selector, watchlist: [])
        _ = engine.process(last, time: stream.last!.time, matched: evaluator.evaluate(last))
        let steps = engine.windows.reduce(0) { $0 + $1.journal.count }
        #expect(engine.entryCount > 5_000)
        #expect(steps <= 50)
        engine.rollbackBatch()
        #expect(snapshot(engine) == state)
    }
}

@Suite("Correlation event time")
struct CorrelationEventTimeTests {
    let rules: RuleSet = {
        let r = RuleLoader(now: 0).load(
            files: [FileManager.default.currentDirectoryPath + "/Rules/phone-foreign-area-burst.yml"])
        precondition(r.errors.isEmpty)
        return r.ruleSet
    }()
    let now = Timestamp.parse("2026-11-30T12:00:00Z")!

    func record(_ id: String, _ item: String, _ value: String, _ at: String?) -> NormalizedSelector {
        let time = at.map { #","observed_at":"\#($0)""# } ?? ""
        return selector(
            #"{"id":"\#(id)","type":"phone","value":"\#(value)"\#(time),"source":{"item":"\#(item)","country":"IQ"}}"#)
    }

    /// SPEC §6: a correlation alert takes the handling of the list hits of every event in its window, not only
    /// of the event that made it fire.
    @Test func aCorrelationCarriesTheListsOfAllItsEvents() {
        var engine = RuleEngine(rules)
        let first = record("a1", "P1", "+32 2 456 12 34", "2016-10-20T08:00:00Z")
        let red = WatchlistHit(
            owner: "be-fedpol", list: "red-list", version: "v", ref: "R-1", label: nil,
            handling: Handling(tlp: .red, releasableTo: ["be-fedpol"], originatorNotified: true), score: 1,
            via: "exact", watched: first.value)
        var hits = engine.process(
            first, watchlist: [Hit(id: "a1", selector: first, kind: .watchlist, priority: .high, watchlist: red)],
            ingestTime: now)
        hits += engine.process(
            record("a2", "P1", "+32 2 511 22 33", "2016-10-20T08:20:00Z"), watchlist: [], ingestTime: now)
        hits += engine.process(
            record("a3", "P1", "+32 2 513 00 00", "2016-10-20T08:50:00Z"), watchlist: [], ingestTime: now)
        #expect(hits.map(\.id) == ["a3"])
        #expect(hits.first?.basis.map { "\($0.owner)/\($0.list)/\($0.ref)" } == ["be-fedpol/red-list/R-1"])
    }

    @Test func aFarFutureRecordMakesNoOtherGroupLate() {
        var engine = RuleEngine(rules)
        var hits: [Hit] = []
        for r in [
            record("a1", "P1", "+32 2 456 12 34", "2016-10-20T08:00:00Z"),
            record("a2", "P1", "+32 2 511 22 33", "2016-10-20T08:20:00Z"),
            // Not trusted: its ingest time (2026) is its event time, in P2's group.
            record("x", "P2", "+32 2 513 00 00", "9999-12-31T00:00:00Z"),
            record("a3", "P1", "+32 2 513 00 00", "2016-10-20T08:50:00Z"),
            // P2's 2026 records share a window with x at its ingest time.
            record("y1", "P2", "+32 2 514 00 00", "2026-11-30T11:50:00Z"),
            record("y2", "P2", "+32 2 515 00 00", "2026-11-30T11:55:00Z"),
        ] {
            hits += engine.process(r, watchlist: [], ingestTime: now)
        }
        #expect(hits.map(\.id) == ["a3", "y2"])
        #expect(hits.map { $0.rule?.events ?? [] } == [["a1", "a2", "a3"], ["y1", "y2", "x"]])
        #expect(engine.untrustedTimes == 1)
        #expect(engine.correlation.lateEvents == 0)
    }

    @Test func aRecordWithoutObservedAtMakesNoOther2016GroupLate() {
        var engine = RuleEngine(rules)
        var hits: [Hit] = []
        for r in [
            record("b1", "P1", "+32 2 456 12 34", "2016-10-20T08:00:00Z"),
            record("b2", "P1", "+32 2 511 22 33", "2016-10-20T08:20:00Z"),
            // The same phone, an Antwerp number, no observed_at: ingest time, group (P1, Antwerp).
            record("u", "P1", "+32 3 201 45 67", nil),
            record("b3", "P1", "+32 2 513 00 00", "2016-10-20T08:50:00Z"),
        ] {
            hits += engine.process(r, watchlist: [], ingestTime: now)
        }
        #expect(hits.map(\.id) == ["b3"])
        #expect(hits.first?.rule?.events == ["b1", "b2", "b3"])
        #expect(engine.correlation.lateEvents == 0)
        #expect(engine.correlation.groupCount == 2)
    }

    /// The undated record is in the same group this time (same phone, same area): it is timed by ingest, and
    /// judges lateness among ingest-timed records only, so the group's 2016 records stay on time.
    @Test func aRecordWithoutObservedAtInTheSameGroupMakesNoneOfIt2016RecordsLate() {
        var engine = RuleEngine(rules)
        var hits: [Hit] = []
        for r in [
            record("b1", "P1", "+32 2 456 12 34", "2016-10-20T08:00:00Z"),
            record("u", "P1", "+32 2 599 45 67", nil),
            record("f", "P1", "+32 2 599 45 68", "9999-12-31T23:59:59Z"),
            record("b2", "P1", "+32 2 511 22 33", "2016-10-20T08:20:00Z"),
            record("b3", "P1", "+32 2 513 00 00", "2016-10-20T08:50:00Z"),
        ] {
            hits += engine.process(r, watchlist: [], ingestTime: now)
        }
        #expect(hits.map(\.id) == ["b3"])
        #expect(hits.first?.rule?.events == ["b1", "b2", "b3"])
        #expect(engine.correlation.lateEvents == 0)
        #expect(engine.correlation.groupCount == 1)
        #expect(engine.untrustedTimes == 1)
    }

    /// 2026 records of ever new devices stream past (ingest time advancing a second a record); the 2016 phone,
    /// one record in twenty, keeps its group and its window under a group cap far below the number of devices.
    @Test func a2016PhoneKeepsItsWindowAmong2026Records() {
        var options = CorrelationOptions()
        options.maxGroups = 50
        var engine = RuleEngine(rules, options: options)
        var hits: [Hit] = []
        let old = ["+32 2 456 12 34", "+32 2 511 22 33", "+32 2 513 00 00"]
        let seized = Timestamp.parse("2016-10-20T08:00:00Z")!
        for k in 0..<3_000 {
            let ingest = now + Double(k)
            let r: NormalizedSelector
            if k % 20 == 19 {
                // Two numbers over and over; the third one last.
                let value = k == 2_999 ? old[2] : old[(k / 20) % 2]
                r = record("old\(k)", "P1", value, Timestamp.format(seized + Double(k)))
            } else {
                r = record("new\(k)", "D\(k)", "+32 2 456 12 34", Timestamp.format(ingest - 5))
            }
            hits += engine.process(r, watchlist: [], ingestTime: ingest)
        }
        #expect(hits.map(\.id) == ["old2999"])
        #expect(hits.first?.rule?.events?.count == 150)
        #expect(hits.first?.rule?.events?.first == "old19")
        #expect(engine.correlation.groupCount == 50)
        #expect(engine.correlation.lateEvents == 0)
    }
}

@Suite("Correlation conditions that are not at-least")
struct CorrelationTrailingTests {
    @Test func lessThanIsDecidedOnTheWindowEndingAtTheEvent() {
        let r = loadRules(
            CorrelationTests.base
                + "\n---\ntitle: C\nid: corr\ncorrelation:\n  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 10m\n  condition: {lt: 3}"
        )
        #expect(r.errors.isEmpty)
        var engine = CorrelationEngine(r.ruleSet)
        var evaluator = RuleEvaluator(r.ruleSet)
        var ids: [String] = []
        var events: [[String]] = []
        for (id, minute) in [("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 20), ("f", 21)] {
            let s = selector(#"{"id":"\#(id)","type":"phone","value":"+3224561234","source":{"item":"D1"}}"#)
            let ev = RuleEvent(selector: s, watchlist: [])
            for h in engine.process(ev, time: Double(minute * 60), matched: evaluator.evaluate(ev)) {
                ids.append(h.id)
                events.append(h.rule?.events ?? [])
            }
        }
        // a: 1 event (fires); b: 2 (still true); c: 3 (false); d: 4; e: alone in [10m, 20m] (fires again); f: 2.
        #expect(ids == ["a", "e"])
        #expect(events == [["a"], ["e"]])
    }
}
