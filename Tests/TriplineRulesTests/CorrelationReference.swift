import TriplineMatch

@testable import TriplineRules

/// The brute force the correlation engine replaced, kept as the reference: per group a sorted array of entries,
/// and on each event every window start in [t - timespan, t] rescanned with a set per window. Lateness is per group
/// (the group's newest event time), as in the engine; there are no caps.
struct ReferenceCorrelation {
    struct Entry {
        var time: Double
        var id: String
        var value: String?
        var rule: Int
    }

    struct Group {
        var entries: [Entry] = []
        var firing = false
        var newest = -Double.infinity
    }

    struct Fired: Equatable, CustomStringConvertible {
        var rule: String
        var id: String
        var events: [String]
        var description: String { "\(rule)@\(id)\(events)" }
    }

    let ruleSet: RuleSet
    let lateness: Double
    var groups: [[String: Group]]
    var lateEvents = 0

    init(_ ruleSet: RuleSet, lateness: Double) {
        self.ruleSet = ruleSet
        self.lateness = lateness
        groups = Array(repeating: [:], count: ruleSet.correlations.count)
    }

    mutating func process(_ event: RuleEvent, time: Double, matched: [Int]) -> [Fired] {
        var touched: [Int] = []
        for r in matched { for c in ruleSet.correlationsOf[r] where !touched.contains(c) { touched.append(c) } }
        var out: [Fired] = []
        var late = false
        for ci in touched.sorted() {
            let c = ruleSet.correlations[ci]
            var keyParts: [String] = []
            for f in c.groupBy {
                var first: String?
                event.forEachText(f) { if first == nil { first = $0 } }
                guard let v = first else { break }
                keyParts.append(v)
            }
            guard keyParts.count == c.groupBy.count else { continue }
            var value: String?
            if let vf = c.valueField {
                event.forEachText(vf) { if value == nil { value = $0 } }
                guard value != nil else { continue }
            }
            let key = keyParts.joined(separator: "\u{1F}")
            var g = groups[ci][key] ?? Group()
            if time < g.newest - lateness {
                late = true
                continue
            }
            g.newest = max(g.newest, time)
            for r in matched where c.rules.contains(r) {
                let e = Entry(time: time, id: event.selector.id, value: value, rule: r)
                let at = g.entries.firstIndex { $0.time > time } ?? g.entries.count
                g.entries.insert(e, at: at)
            }
            if let events = Self.satisfied(c, g.entries, at: time) {
                if !g.firing {
                    g.firing = true
                    out.append(Fired(rule: c.id, id: event.selector.id, events: events))
                }
            } else {
                g.firing = false
            }
            groups[ci][key] = g
        }
        if late { lateEvents += 1 }
        return out
    }

    /// Ids of the events of the first window containing `t` where the condition holds, or nil (the old engine's
    /// code, unchanged).
    static func satisfied(_ c: CorrelationRule, _ entries: [Entry], at t: Double) -> [String]? {
        let span = c.timespan
        // Windows [x, x + span] containing t start at an entry time x in [t - span, t].
        var s = entries.firstIndex { $0.time >= t - span } ?? entries.count
        while s < entries.count && entries[s].time <= t {
            let start = entries[s].time
            var e = s
            while e < entries.count && entries[e].time <= start + span { e += 1 }
            let window = entries[s..<e]
            let n: Int
            switch c.kind {
            case .eventCount: n = Set(window.map(\.id)).count
            case .valueCount: n = Set(window.compactMap(\.value)).count
            case .temporal: n = Set(window.map(\.rule)).count
            case .temporalOrdered: n = orderedPrefix(c.rules, window)
            }
            if CorrelationEngine.holds(c, n) {
                var seen = Set<String>()
                return window.map(\.id).filter { seen.insert($0).inserted }
            }
            // Skip starts at the same time: same window.
            let time = entries[s].time
            while s < entries.count && entries[s].time == time { s += 1 }
        }
        return nil
    }

    /// How many of `rules` occur in order in the window (greedy earliest match).
    static func orderedPrefix(_ rules: [Int], _ window: ArraySlice<Entry>) -> Int {
        var k = 0
        for e in window where k < rules.count && e.rule == rules[k] { k += 1 }
        return k
    }
}
