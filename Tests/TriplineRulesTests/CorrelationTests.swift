import Foundation
import Testing
import TriplineMatch
import TriplineSelectors

@testable import TriplineRules

@Suite("Correlation rules")
struct CorrelationTests {
    static let base = """
        title: Phone
        id: base-phone
        name: phone
        logsource: {product: tripline, category: selector}
        detection:
          s: {type: phone}
          condition: s
        ---
        title: Mail
        id: base-mail
        name: mail
        logsource: {product: tripline, category: selector}
        detection:
          s: {type: email}
          condition: s
        """

    /// The ingest clock: 2030, after every observed_at of these tests.
    static let ingest = 1_900_000_000.0

    func correlation(_ body: String) -> RuleSet {
        let r = loadRules(Self.base + "\n---\ntitle: C\nid: corr\nlevel: high\ncorrelation:\n" + body)
        #expect(r.errors.isEmpty, "\(r.errors)")
        return r.ruleSet
    }

    func event(_ id: String, _ type: String, _ value: String, minute: Int, item: String = "D1") -> NormalizedSelector {
        let t = Timestamp.format(1_476_950_400 + Double(minute * 60))
        return selector(
            #"{"id":"\#(id)","type":"\#(type)","value":"\#(value)","observed_at":"\#(t)","source":{"item":"\#(item)"}}"#
        )
    }

    func run(_ set: RuleSet, _ events: [NormalizedSelector], lateness: Double = 3600) -> [Hit] {
        var options = CorrelationOptions()
        options.allowedLateness = lateness
        var engine = RuleEngine(set, options: options)
        return events.flatMap { engine.process($0, watchlist: [], ingestTime: Self.ingest) }
    }

    @Test func eventCountSlidingNotBucketed() {
        let set = correlation(
            "  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 10m\n  condition: {gte: 3}")
        // 08:58, 09:02, 09:05: one 10-minute window holds all three although they straddle an hour boundary.
        let hits = run(
            set,
            [
                event("a", "phone", "+3224561234", minute: 58), event("b", "phone", "+3224561235", minute: 62),
                event("c", "phone", "+3224561236", minute: 65),
            ])
        #expect(hits.count == 1)
        #expect(hits.first?.rule?.events == ["a", "b", "c"])
        #expect(hits.first?.id == "c")
        #expect(hits.first?.priority == .high)
        #expect(hits.first?.rule?.group?["source.item"] == .string("D1"))
        // generate is false: the base rule gives no hits of its own
        #expect(hits.allSatisfy { $0.rule?.id == "corr" })
    }

    @Test func generateTrueKeepsBaseHits() {
        let set = correlation(
            "  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 10m\n  generate: true\n  condition: {gte: 2}"
        )
        let hits = run(
            set, [event("a", "phone", "+3224561234", minute: 0), event("b", "phone", "+3224561235", minute: 1)])
        #expect(hits.map { $0.rule!.id } == ["base-phone", "base-phone", "corr"])
    }

    @Test func temporalNeedsEveryRuleInTheWindow() {
        let set = correlation("  type: temporal\n  rules: [phone, mail]\n  group-by: [source.item]\n  timespan: 5m")
        #expect(
            run(set, [event("a", "phone", "+3224561234", minute: 0), event("b", "email", "a@b.example", minute: 9)])
                .isEmpty)
        let hits = run(
            set, [event("a", "phone", "+3224561234", minute: 0), event("b", "email", "a@b.example", minute: 4)])
        #expect(hits.map(\.id) == ["b"])
        #expect(hits.first?.rule?.events == ["a", "b"])
    }

    @Test func temporalOrderedNeedsTheOrder() {
        let set = correlation(
            "  type: temporal_ordered\n  rules: [mail, phone]\n  group-by: [source.item]\n  timespan: 5m")
        #expect(
            run(set, [event("a", "phone", "+3224561234", minute: 0), event("b", "email", "a@b.example", minute: 1)])
                .isEmpty)
        #expect(
            run(set, [event("b", "email", "a@b.example", minute: 0), event("a", "phone", "+3224561234", minute: 1)])
                .count
                == 1)
    }

    @Test func valueCountCountsDistinctValues() {
        let set = correlation(
            "  type: value_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 1h\n  condition: {gte: 2, field: value}"
        )
        #expect(
            run(set, [event("a", "phone", "+3224561234", minute: 0), event("b", "phone", "+3224561234", minute: 1)])
                .isEmpty)
        #expect(
            run(set, [event("a", "phone", "+3224561234", minute: 0), event("b", "phone", "+3224561299", minute: 1)])
                .count
                == 1)
    }

    @Test func lateEventsAreCountedButLeftOutOfWindows() {
        let set = correlation(
            "  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 1h\n  condition: {gte: 2}")
        var options = CorrelationOptions()
        options.allowedLateness = 600
        var engine = RuleEngine(set, options: options)
        // D1's own newest event is at 10:00; 08:00 and 08:01 are more than ten minutes behind it.
        _ = engine.process(event("new", "phone", "+3224561234", minute: 120), watchlist: [], ingestTime: Self.ingest)
        _ = engine.process(event("a", "phone", "+3224561234", minute: 0), watchlist: [], ingestTime: Self.ingest)
        let hits = engine.process(event("b", "phone", "+3224561235", minute: 1), watchlist: [], ingestTime: Self.ingest)
        #expect(hits.isEmpty)
        #expect(engine.correlation.lateEvents == 2)
        #expect(engine.correlation.entryCount == 1)
    }

    @Test func latenessIsJudgedPerGroup() {
        let set = correlation(
            "  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 1h\n  condition: {gte: 2}")
        var options = CorrelationOptions()
        options.allowedLateness = 600
        var engine = RuleEngine(set, options: options)
        // Another device two hours ahead does not make D1 late.
        _ = engine.process(
            event("new", "phone", "+3224561234", minute: 120, item: "OTHER"), watchlist: [], ingestTime: Self.ingest)
        _ = engine.process(event("a", "phone", "+3224561234", minute: 0), watchlist: [], ingestTime: Self.ingest)
        let hits = engine.process(event("b", "phone", "+3224561235", minute: 1), watchlist: [], ingestTime: Self.ingest)
        #expect(hits.map(\.id) == ["b"])
        #expect(hits.first?.rule?.events == ["a", "b"])
        #expect(engine.correlation.lateEvents == 0)
    }

    @Test func memoryStaysFlatOnAnEndlessStream() {
        let set = correlation(
            "  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 10m\n  condition: {gte: 1000}"
        )
        var options = CorrelationOptions()
        options.allowedLateness = 60
        var engine = RuleEngine(set, options: options)
        var peak = 0
        var peakGroups = 0
        for k in 0..<60_000 {
            // A new device every few events and one device always, time (event and ingest) moving forward ten
            // seconds an event.
            var s = event("e\(k)", "phone", "+3224561234", minute: 0, item: k % 2 == 0 ? "D\(k / 10)" : "ALWAYS")
            let t = 1_476_950_400 + Double(k * 10)
            s.observedAt = Timestamp.format(t)
            _ = engine.process(s, watchlist: [], ingestTime: t)
            peak = max(peak, engine.correlation.entryCount)
            peakGroups = max(peakGroups, engine.correlation.groupCount)
        }
        // A group idle for window + lateness (11 minutes of ingest) is forgotten: at most 7 device groups of 5
        // entries and ALWAYS with its 11 minutes (34 entries), whatever the length of the stream.
        #expect(peak == 72)
        #expect(peakGroups == 9)
        #expect(engine.correlation.groupCount == 8)
        #expect(engine.correlation.idleGroups == 6_001 - 8)
    }

    @Test func groupCapForgetsTheLeastRecentlyFedGroup() {
        // `match` has one ingest time for the whole run: only max_groups bounds the groups.
        let set = correlation(
            "  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 10m\n  condition: {gte: 3}")
        var options = CorrelationOptions()
        options.maxGroups = 100
        var engine = RuleEngine(set, options: options)
        var hits: [Hit] = []
        for k in 0..<10_000 {
            // P1 every tenth event; a new device for the others.
            var s = event("e\(k)", "phone", "+3224561234", minute: 0, item: k % 10 == 0 ? "P1" : "D\(k)")
            s.observedAt = Timestamp.format(1_476_950_400 + Double(k))
            hits += engine.process(s, watchlist: [], ingestTime: Self.ingest)
        }
        #expect(engine.correlation.groupCount == 100)
        #expect(engine.correlation.droppedGroups == 9_001 - 100)
        #expect(hits.map(\.id) == ["e20"])
        // P1 holds window + lateness (4,200 s of its events, one in ten seconds); the others one each.
        #expect(engine.correlation.entryCount == 421 + 99)
    }

    @Test func correlationErrors() {
        let r = loadRules(
            Self.base
                + "\n---\ntitle: C\nid: corr\ncorrelation:\n  type: event_count\n  rules: [nothing]\n  timespan: 1h\n  condition: {gte: 2}"
        )
        #expect(r.errors.first?.message.contains("unknown rule \"nothing\"") == true)
        let t = loadRules(
            Self.base
                + "\n---\ntitle: C\nid: corr\ncorrelation:\n  type: event_count\n  rules: [phone]\n  timespan: soon\n  condition: {gte: 2}"
        )
        #expect(t.errors.first?.message.contains("timespan") == true)
        let k = loadRules(
            Self.base + "\n---\ntitle: C\nid: corr\ncorrelation:\n  type: value_sum\n  rules: [phone]\n  timespan: 1h")
        #expect(k.errors.first?.message.contains("event_count, value_count, temporal or temporal_ordered") == true)
    }
}
