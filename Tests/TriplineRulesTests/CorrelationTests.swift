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
        return events.flatMap { engine.process($0, watchlist: [], ingestTime: 0) }
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
        _ = engine.process(
            event("new", "phone", "+3224561234", minute: 120, item: "OTHER"), watchlist: [], ingestTime: 0)
        _ = engine.process(event("a", "phone", "+3224561234", minute: 0), watchlist: [], ingestTime: 0)
        let hits = engine.process(event("b", "phone", "+3224561235", minute: 1), watchlist: [], ingestTime: 0)
        #expect(hits.isEmpty)
        #expect(engine.correlation.lateEvents == 2)
    }

    @Test func memoryStaysFlatOnAnEndlessStream() {
        let set = correlation(
            "  type: event_count\n  rules: [phone]\n  group-by: [source.item]\n  timespan: 10m\n  condition: {gte: 1000}"
        )
        var options = CorrelationOptions()
        options.allowedLateness = 60
        var engine = RuleEngine(set, options: options)
        var peak = 0
        for k in 0..<60_000 {
            // A new device every few events, time moving forward ten seconds an event.
            let sel = event("e\(k)", "phone", "+3224561234", minute: 0, item: "D\(k / 5)")
            var s = sel
            s.observedAt = Timestamp.format(1_476_950_400 + Double(k * 10))
            _ = engine.process(s, watchlist: [], ingestTime: 0)
            peak = max(peak, engine.correlation.entryCount)
        }
        // Window + lateness = 11 minutes = 66 events; a sweep runs every 4096 events.
        #expect(peak < 4096 + 100)
        #expect(engine.correlation.groupCount < 1000)
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
