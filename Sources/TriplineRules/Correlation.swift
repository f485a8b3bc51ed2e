import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineWatchlists

/// Window limits and lateness for correlation rules.
public struct CorrelationOptions: Sendable {
    /// How far behind the newest event time an event may arrive and still enter windows (seconds).
    public var allowedLateness: Double = 3600
    /// Entries kept per (correlation, group); the oldest go first beyond it.
    public var maxEntriesPerGroup = 10_000
    /// Groups kept per correlation; new groups beyond it are not tracked (and counted).
    public var maxGroups = 1_000_000
    public init() {}
}

/// Sigma correlations over true sliding windows by event time: each event that a counted rule matched enters the
/// windows of its group; the condition is checked over every window of length `timespan` that contains it. A
/// correlation fires when its condition becomes true for a group, and again only after it has been false. Events
/// older than the watermark (newest event time minus the allowed lateness) are left out of windows; entries that
/// no on-time event can share a window with are dropped, so memory stays flat on an endless stream.
public struct CorrelationEngine {
    public let ruleSet: RuleSet
    public var options: CorrelationOptions
    private var groups: [[String: Group]]
    private var newest = -Double.infinity
    private var sinceSweep = 0
    /// Events too late for the windows (still matched by detection rules).
    public private(set) var lateEvents = 0
    /// Entries dropped by the per-group cap, and groups not tracked because of the group cap.
    public private(set) var droppedEntries = 0
    public private(set) var droppedGroups = 0

    struct Entry {
        var time: Double
        var id: String
        var value: String?
        var rule: Int
    }

    struct Group {
        var entries: [Entry] = []
        var firing = false
        var values: [JSONValue] = []
    }

    public init(_ ruleSet: RuleSet, options: CorrelationOptions = CorrelationOptions()) {
        self.ruleSet = ruleSet
        self.options = options
        groups = Array(repeating: [:], count: ruleSet.correlations.count)
    }

    /// Entries held in windows now (for tests and metrics).
    public var entryCount: Int { groups.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.entries.count } } }
    public var groupCount: Int { groups.reduce(0) { $0 + $1.count } }

    /// Feeds one event (its time and the detection rules it matched); returns the correlations that fired.
    public mutating func process(_ event: RuleEvent, time: Double, matched: [Int]) -> [Hit] {
        guard !groups.isEmpty else { return [] }
        let late = time < newest - options.allowedLateness
        if time > newest { newest = time }
        sinceSweep += 1
        if sinceSweep >= 4096 { sweep() }
        var touched: [Int] = []
        for r in matched { for c in ruleSet.correlationsOf[r] where !touched.contains(c) { touched.append(c) } }
        if touched.isEmpty { return [] }
        if late {
            lateEvents += 1
            return []
        }
        var hits: [Hit] = []
        for ci in touched.sorted() {
            let c = ruleSet.correlations[ci]
            var keyParts: [String] = []
            var keyValues: [JSONValue] = []
            for f in c.groupBy {
                var first: String?
                event.forEachText(f) { if first == nil { first = $0 } }
                guard let v = first else { break }
                keyParts.append(v)
                keyValues.append(.string(v))
            }
            guard keyParts.count == c.groupBy.count else { continue }  // a group-by field is missing
            var value: String?
            if let vf = c.valueField {
                event.forEachText(vf) { if value == nil { value = $0 } }
                guard value != nil else { continue }
            }
            let key = keyParts.joined(separator: "\u{1F}")
            if groups[ci][key] == nil {
                if groups[ci].count >= options.maxGroups {
                    droppedGroups += 1
                    continue
                }
                groups[ci][key] = Group(values: keyValues)
            }
            var g = groups[ci].removeValue(forKey: key)!
            for r in matched where c.rules.contains(r) {
                let e = Entry(time: time, id: event.selector.id, value: value, rule: r)
                var lo = 0
                var hi = g.entries.count
                while lo < hi {  // after every entry at or before `time`: arrival order breaks ties
                    let mid = (lo + hi) / 2
                    if g.entries[mid].time <= time { lo = mid + 1 } else { hi = mid }
                }
                g.entries.insert(e, at: lo)
            }
            if g.entries.count > options.maxEntriesPerGroup {
                let extra = g.entries.count - options.maxEntriesPerGroup
                g.entries.removeFirst(extra)
                droppedEntries += extra
            }
            if let events = Self.satisfied(c, g.entries, at: time) {
                if !g.firing {
                    g.firing = true
                    var group = JSONObject()
                    for (n, v) in zip(c.groupByNames, g.values) { group.append(n, v) }
                    hits.append(
                        Hit(
                            id: event.selector.id, selector: event.selector, kind: .rule, priority: c.level,
                            rule: RuleHit(id: c.id, title: c.title, events: events, group: group),
                            basis: event.watchlist.compactMap(\.watchlist)))
                }
            } else {
                g.firing = false
            }
            groups[ci][key] = g
        }
        return hits
    }

    /// Ids of the events of the first window containing `t` where the condition holds, or nil.
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
            if holds(c, n) {
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

    static func holds(_ c: CorrelationRule, _ n: Int) -> Bool {
        let x = Double(n)
        if n == 0 { return false }
        for (op, d) in c.thresholds {
            if let op { if !op.holds(x, d) { return false } } else if x != d { return false }
        }
        return !c.notEqual.contains(x)
    }

    /// Drops entries that no on-time event can share a window with, and empty groups.
    public mutating func sweep() {
        sinceSweep = 0
        for ci in groups.indices {
            let horizon = newest - options.allowedLateness - ruleSet.correlations[ci].timespan
            for key in Array(groups[ci].keys) {
                var g = groups[ci][key]!
                let drop = g.entries.firstIndex { $0.time >= horizon } ?? g.entries.count
                if drop == 0 { continue }
                g.entries.removeFirst(drop)
                groups[ci][key] = g.entries.isEmpty ? nil : g
            }
        }
    }
}

/// Detection and correlation together: what `match` and `serve` run after the watchlist index.
public struct RuleEngine {
    public var evaluator: RuleEvaluator
    public var correlation: CorrelationEngine

    public init(_ ruleSet: RuleSet, options: CorrelationOptions = CorrelationOptions()) {
        evaluator = RuleEvaluator(ruleSet)
        correlation = CorrelationEngine(ruleSet, options: options)
    }

    public var ruleSet: RuleSet { evaluator.ruleSet }

    /// Rule hits for one selector with its watchlist hits. Event time is `observed_at`, else `ingestTime`.
    public mutating func process(
        _ selector: NormalizedSelector, watchlist: [Hit], ingestTime: Double, problem: (String) -> Void = { _ in }
    ) -> [Hit] {
        let set = evaluator.ruleSet
        if set.rules.isEmpty { return [] }
        let event = RuleEvent(selector: selector, watchlist: watchlist)
        let matched = evaluator.evaluate(event, problem: problem)
        if matched.isEmpty && set.correlations.isEmpty { return [] }
        var hits: [Hit] = []
        for r in matched where set.rules[r].generates {
            let rule = set.rules[r]
            hits.append(
                Hit(
                    id: selector.id, selector: selector, kind: .rule, priority: rule.level,
                    rule: RuleHit(id: rule.id, title: rule.title), basis: watchlist.compactMap(\.watchlist)))
        }
        if !set.correlations.isEmpty && !matched.isEmpty {
            let time = selector.observedAt.flatMap { Timestamp.parse($0) } ?? ingestTime
            hits += correlation.process(event, time: time, matched: matched)
        }
        return hits
    }
}
