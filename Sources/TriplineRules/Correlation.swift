import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineWatchlists

/// Window limits, lateness and event-time trust for correlation rules.
public struct CorrelationOptions: Sendable {
    /// How far behind its group's newest event time an event may arrive and still enter windows (seconds).
    public var allowedLateness: Double = 3600
    /// An `observed_at` later than the ingest time plus this is not trusted: the ingest time is the event time.
    public var maxFutureSkew: Double = 300
    /// Entries kept per (correlation, group); the oldest go first beyond it.
    public var maxEntriesPerGroup = 10_000
    /// Groups kept per correlation; beyond it the least recently touched group is forgotten (and counted).
    public var maxGroups = 1_000_000
    /// A group that received no event for this long (ingest time) is forgotten; nil: the allowed lateness plus
    /// the correlation's timespan.
    public var maxIdle: Double? = nil
    public init() {}
}

/// Sigma correlations over true sliding windows by event time. Each event that a counted rule matched enters the
/// windows of its group (one entry per counted rule). A correlation fires when its condition becomes true for a
/// group, and again only after it has been false; the hit carries the id of the event that made it true and the
/// ids of the events of the window that satisfies it, oldest first.
///
/// Conditions:
/// - `gt`/`gte` (and `event_count`/`value_count`/`temporal`/`temporal_ordered` without a condition): true when
///   some window [x, x + timespan] that contains the new event satisfies it, x being an entry time in
///   [t - timespan, t]; the hit's events are those of the earliest such window. This is exact in any arrival
///   order (the brute force over every window start is the reference in the tests).
/// - `temporal_ordered`: "in order" is by event time, then arrival.
/// - Any condition with `lt`, `lte`, `eq` or `neq`: decided on the one window [t - timespan, t] that ends at the
///   new event (the count is not monotone in the window, and "some window" would make `lt` true almost always).
///
/// Cost: every event is amortised O(log n) in the entries of its group (ordered-rule chains: times the number of
/// rules), whatever the order and spacing of events; see `CorrelationWindows` for the structures.
///
/// Lateness is per group: an event more than `allowedLateness` behind the newest event time of *its* group is
/// late — counted in `lateEvents`, still matched by detection rules, left out of the windows. A new group is never
/// late, so no record of another group can make a group late. Entries that no on-time event can share a window
/// with are dropped when their group is next fed. Memory: a group that received no event for `maxIdle` of ingest
/// time is forgotten, and beyond `maxGroups` the least recently fed group is; both go by arrival, never by event
/// time, so a seized phone's 2016 records keep their windows while 2026 records stream past.
///
/// Batches: between `beginBatch` and `endBatch` every change is journalled, and `rollbackBatch` restores the state
/// of `beginBatch` in time proportional to the changes; outside a batch nothing is journalled.
public struct CorrelationEngine {
    public let ruleSet: RuleSet
    public var options: CorrelationOptions
    var windows: [CorrelationWindows]
    private var seq = 0
    private var clock = -Double.infinity
    /// Events too late for the windows of their group (still matched by detection rules).
    public private(set) var lateEvents = 0
    /// Entries dropped by the per-group cap, and groups forgotten because of the group cap.
    public private(set) var droppedEntries = 0
    public private(set) var droppedGroups = 0
    /// Groups forgotten after `maxIdle` without events.
    public private(set) var idleGroups = 0
    private var saved: Saved?

    struct Saved {
        var seq: Int
        var clock: Double
        var lateEvents: Int
        var droppedEntries: Int
        var droppedGroups: Int
        var idleGroups: Int
    }

    public init(_ ruleSet: RuleSet, options: CorrelationOptions = CorrelationOptions()) {
        self.ruleSet = ruleSet
        self.options = options
        windows = ruleSet.correlations.enumerated().map { (i, c) in
            CorrelationWindows(c, seed: 0x9E37_79B9_7F4A_7C15 &* UInt64(i + 1))
        }
    }

    /// Entries held in windows now (for tests and metrics).
    public var entryCount: Int { windows.reduce(0) { $0 + $1.entryTotal } }
    public var groupCount: Int { windows.reduce(0) { $0 + $1.index.count } }

    /// Feeds one event (its time and the detection rules it matched); returns the correlations that fired.
    /// `ingestTime` is the clock for forgetting idle groups.
    /// `byIngest`: the time is the ingest time (no trusted `observed_at`); such events judge lateness among their
    /// own kind within a group.
    /// `basis`: the lists behind the event (its watchlist hits, its rules' expansions; default its hits).
    public mutating func process(
        _ event: RuleEvent, time: Double, byIngest: Bool = false, ingestTime: Double = -.infinity, matched: [Int],
        basis: [WatchlistHit]? = nil
    ) -> [Hit] {
        guard !windows.isEmpty else { return [] }
        var touched: [Int] = []
        for r in matched { for c in ruleSet.correlationsOf[r] where !touched.contains(c) { touched.append(c) } }
        if touched.isEmpty { return [] }
        if ingestTime > clock { clock = ingestTime }
        var hits: [Hit] = []
        var late = false
        let correlations = ruleSet.correlations
        for ci in touched.sorted() {
            var keyParts: [String] = []
            let groupBy = correlations[ci].groupBy
            for f in groupBy {
                var first: String?
                event.forEachText(f) { if first == nil { first = $0 } }
                guard let v = first else { break }
                keyParts.append(v)
            }
            guard keyParts.count == groupBy.count else { continue }  // a group-by field is missing
            var distinct: String?
            switch correlations[ci].kind {
            case .eventCount: distinct = event.selector.id
            case .valueCount:
                if let vf = correlations[ci].valueField {
                    event.forEachText(vf) { if distinct == nil { distinct = $0 } }
                }
                guard distinct != nil else { continue }
            case .temporal, .temporalOrdered: break
            }
            let idle = options.maxIdle ?? (options.allowedLateness + correlations[ci].timespan)
            idleGroups += windows[ci].evictIdle(before: clock - idle)
            var rules: [Int32] = []
            for r in matched where windows[ci].pattern.contains(Int32(r)) { rules.append(Int32(r)) }
            let outcome = windows[ci].feed(
                key: keyParts.joined(separator: "\u{1F}"), values: keyParts, distinct: distinct, rules: rules,
                id: event.selector.id, basis: basis ?? event.watchlist.compactMap(\.watchlist), time: time,
                byIngest: byIngest, ingest: ingestTime, seq: &seq, options: options,
                droppedEntries: &droppedEntries, droppedGroups: &droppedGroups)
            switch outcome {
            case .untracked, .quiet: break
            case .late: late = true
            case .fired(let g, let from, let to):
                let c = correlations[ci]
                var group = JSONObject()
                for (n, v) in zip(c.groupByNames, windows[ci].groups[g].values) { group.append(n, .string(v)) }
                let events = windows[ci].ids(windows[ci].groups[g].entries, from: from, to: to)
                // The alert takes the handling of every list its events were on, not only the last event's.
                let basis = windows[ci].basis(windows[ci].groups[g].entries, from: from, to: to)
                hits.append(
                    Hit(
                        id: event.selector.id, selector: event.selector, kind: .rule, priority: c.level,
                        rule: RuleHit(id: c.id, title: c.title, events: events, group: group), basis: basis))
            }
        }
        if late { lateEvents += 1 }
        return hits
    }

    /// Whether a count satisfies a correlation's condition (every comparison, no `neq` value, and not zero).
    static func holds(_ c: CorrelationRule, _ n: Int) -> Bool {
        let x = Double(n)
        if n == 0 { return false }
        for (op, d) in c.thresholds {
            if let op { if !op.holds(x, d) { return false } } else if x != d { return false }
        }
        return !c.notEqual.contains(x)
    }

    /// Drops, in every group, the entries that no on-time event can share a window with (the engine does this for
    /// a group whenever it is fed; this is for a caller that wants it for all groups now).
    public mutating func sweep() {
        for i in windows.indices { windows[i].sweep(lateness: options.allowedLateness) }
    }

    // MARK: Batches

    /// Whether changes are being journalled.
    public var inBatch: Bool { saved != nil }

    /// Starts journalling changes (ending any batch in progress).
    public mutating func beginBatch() {
        if saved != nil { endBatch() }
        saved = Saved(
            seq: seq, clock: clock, lateEvents: lateEvents, droppedEntries: droppedEntries,
            droppedGroups: droppedGroups, idleGroups: idleGroups)
        for i in windows.indices { windows[i].journaling = true }
    }

    /// Keeps the changes since `beginBatch` and stops journalling.
    public mutating func endBatch() {
        saved = nil
        for i in windows.indices where windows[i].journaling || !windows[i].journal.isEmpty {
            windows[i].journaling = false
            windows[i].journal.removeAll(keepingCapacity: windows[i].journal.count < 65_536)
        }
    }

    /// Undoes every change since `beginBatch` (in time proportional to them) and stops journalling.
    public mutating func rollbackBatch() {
        guard let s = saved else { return }
        for i in windows.indices { windows[i].rollback() }
        seq = s.seq
        clock = s.clock
        lateEvents = s.lateEvents
        droppedEntries = s.droppedEntries
        droppedGroups = s.droppedGroups
        idleGroups = s.idleGroups
        saved = nil
    }
}

/// Detection and correlation together: what `match` and `serve` run after the watchlist index.
public struct RuleEngine {
    public var evaluator: RuleEvaluator
    public var correlation: CorrelationEngine
    /// Events whose `observed_at` lay beyond the ingest time plus the tolerated skew (their ingest time was used).
    public private(set) var untrustedTimes = 0
    private var savedUntrusted: Int?

    public init(_ ruleSet: RuleSet, options: CorrelationOptions = CorrelationOptions()) {
        evaluator = RuleEvaluator(ruleSet)
        correlation = CorrelationEngine(ruleSet, options: options)
    }

    public var ruleSet: RuleSet { evaluator.ruleSet }

    /// False on a node of several sharing one database: the correlations are kept by the correlator alone, and
    /// `process` only tells (`fedCorrelation`) that the selector feeds one — the node puts it into the shared feed.
    public var correlates = true
    /// Whether the last selector `process` judged matched a rule that a correlation counts (set when
    /// `correlates` is false).
    public private(set) var fedCorrelation = false

    /// Rule hits for one selector with its watchlist hits. Event time is `observed_at`, unless it is missing or
    /// later than `ingestTime` plus `maxFutureSkew`: then `ingestTime`.
    public mutating func process(
        _ selector: NormalizedSelector, watchlist: [Hit], ingestTime: Double, problem: (String) -> Void = { _ in }
    ) -> [Hit] {
        let set = evaluator.ruleSet
        fedCorrelation = false
        if set.rules.isEmpty { return [] }
        let event = RuleEvent(selector: selector, watchlist: watchlist)
        let matched = evaluator.evaluate(event, problem: problem)
        if matched.isEmpty { return [] }
        var hits: [Hit] = []
        for r in matched where set.rules[r].generates {
            let rule = set.rules[r]
            hits.append(
                Hit(
                    id: selector.id, selector: selector, kind: .rule, priority: rule.level,
                    rule: RuleHit(id: rule.id, title: rule.title),
                    basis: watchlist.compactMap(\.watchlist) + rule.expandedFrom))
        }
        if !set.correlations.isEmpty && !correlates {
            fedCorrelation = matched.contains { !set.correlationsOf[$0].isEmpty }
        } else if !set.correlations.isEmpty {
            var time = ingestTime
            var byIngest = true
            if let observed = selector.observedAt.flatMap({ Timestamp.parse($0) }) {
                if observed > ingestTime + correlation.options.maxFutureSkew {
                    untrustedTimes += 1
                } else {
                    time = observed
                    byIngest = false
                }
            }
            var basis = watchlist.compactMap(\.watchlist)
            for r in matched { basis += set.rules[r].expandedFrom }
            hits += correlation.process(
                event, time: time, byIngest: byIngest, ingestTime: ingestTime, matched: matched, basis: basis)
        }
        return hits
    }

    // MARK: Batches (the service commits a batch of records at once)

    /// Starts journalling correlation state, so that `rollbackBatch` can restore it (ending any batch in progress).
    public mutating func beginBatch() {
        savedUntrusted = untrustedTimes
        correlation.beginBatch()
    }

    /// Keeps the batch's changes.
    public mutating func endBatch() {
        savedUntrusted = nil
        correlation.endBatch()
    }

    /// Restores the correlation state and counters of `beginBatch`, in time proportional to the batch's changes.
    public mutating func rollbackBatch() {
        if let s = savedUntrusted { untrustedTimes = s }
        savedUntrusted = nil
        correlation.rollbackBatch()
    }
}
