import TriplineJSON
import TriplineSelectors
import TriplineWatchlists

/// A match of one selector (SPEC §9's `match` output).
public struct Hit: Sendable {
    public enum Kind: String, Sendable { case watchlist, rule }
    public var id: String
    public var selector: NormalizedSelector
    public var kind: Kind
    public var priority: Priority
    public var watchlist: WatchlistHit?
    public var rule: RuleHit?
    /// For a rule hit: the selector's watchlist hits the rule saw (an alert takes their strictest handling).
    public var basis: [WatchlistHit] = []

    public init(
        id: String, selector: NormalizedSelector, kind: Kind, priority: Priority, watchlist: WatchlistHit? = nil,
        rule: RuleHit? = nil, basis: [WatchlistHit] = []
    ) {
        self.id = id
        self.selector = selector
        self.kind = kind
        self.priority = priority
        self.watchlist = watchlist
        self.rule = rule
        self.basis = basis
    }

    public var json: JSONObject {
        var o = JSONObject()
        o.append("id", .string(id))
        o.append("selector", .object(selector.json))
        o.append("kind", .string(kind.rawValue))
        o.append("priority", .string(priority.rawValue))
        if let w = watchlist { o.append("watchlist", .object(w.json)) }
        if let r = rule { o.append("rule", .object(r.json)) }
        return o
    }
}

/// The rule part of a hit: which rule, and for a correlation the group and the events that made it fire.
public struct RuleHit: Sendable, Equatable {
    public var id: String
    public var title: String
    /// Correlation only: ids of the contributing events, oldest first (the firing event included).
    public var events: [String]?
    /// Correlation only: the group-by fields and their values.
    public var group: JSONObject?

    public init(id: String, title: String, events: [String]? = nil, group: JSONObject? = nil) {
        self.id = id
        self.title = title
        self.events = events
        self.group = group
    }

    public var json: JSONObject {
        var o = JSONObject()
        o.append("id", .string(id))
        o.append("title", .string(title))
        if let events { o.append("events", .array(events.map { .string($0) })) }
        if let group { o.append("group", .object(group)) }
        return o
    }
}

/// The watchlist part of a hit: what was matched, whose, and how it may be handled.
public struct WatchlistHit: Sendable {
    public var owner: String
    public var list: String
    public var version: String
    public var ref: String
    public var label: String?
    public var handling: Handling
    public var score: Double
    /// How the selector met the entry: `exact`, `prefix`, `cidr`, or `alias` for a name alias.
    public var via: String
    /// The watched value (normalised) that matched: for a name, the entry's name or alias.
    public var watched: String
    /// For a fuzzy name hit: token pairs (selector term, entry term, similarity, how they met), and whether it is
    /// weak.
    public var alignment: [(String, String, Double, String)]?
    public var weak: Bool?

    public init(
        owner: String, list: String, version: String, ref: String, label: String?, handling: Handling, score: Double,
        via: String, watched: String
    ) {
        self.owner = owner
        self.list = list
        self.version = version
        self.ref = ref
        self.label = label
        self.handling = handling
        self.score = score
        self.via = via
        self.watched = watched
    }

    public var json: JSONObject {
        var o = JSONObject()
        o.append("owner", .string(owner))
        o.append("list", .string(list))
        o.append("version", .string(version))
        o.append("ref", .string(ref))
        if let label { o.append("label", .string(label)) }
        o.append("handling", handling.json)
        o.append("score", .number(score == 1 ? "1.0" : String(score)))
        o.append("matched", .string(watched))
        o.append("via", .string(via))
        if let alignment {
            o.append(
                "alignment",
                .array(
                    alignment.map { p in
                        .object(
                            JSONObject([
                                ("selector", .string(p.0)), ("entry", .string(p.1)),
                                ("similarity", .number(String(p.2))), ("how", .string(p.3)),
                            ]))
                    }))
        }
        if let weak { o.append("weak", .bool(weak)) }
        return o
    }
}

/// Matches normalised selectors against the compiled watchlist index at a given time.
public struct Matcher: Sendable {
    public let index: WatchlistIndex
    public var now: Double

    public init(index: WatchlistIndex, now: Double) {
        self.index = index
        self.now = now
    }

    /// The fuzzy-name threshold of a list without `min_score` (chosen from the evaluation, BENCHMARKS.md).
    public static let defaultMinScore = NameIndex.defaultMinScore

    /// Hits for one selector at the matcher's `now`.
    public func match(_ s: NormalizedSelector) -> [Hit] { match(s, at: now) }

    /// Hits for one selector, highest priority first, judged at `now`: a list past its review date and an entry
    /// past its expiry never match, also when the time passed after the lists were loaded.
    public func match(_ s: NormalizedSelector, at now: Double) -> [Hit] {
        if s.type == .name { return matchName(s, at: now) }
        let refs = index.candidates(s)
        if refs.isEmpty { return [] }
        var hits: [Hit] = []
        var seen = Set<Int64>()  // one hit per (list, entry)
        for r in refs where seen.insert(Int64(r.list) << 32 | Int64(r.entry)).inserted {
            let l = index.lists[Int(r.list)]
            guard l.isActive(at: now) else { continue }
            let e = l.entries[Int(r.entry)]
            if let exp = e.expires, exp <= now { continue }
            let sel = e.selectors[Int(r.selector)]
            let via: String
            switch sel.kind {
            case .exact: via = r.viaAlias ? "alias" : "exact"
            case .phonePrefix: via = "prefix"
            case .ipCIDR: via = "cidr"
            }
            let w = WatchlistHit(
                owner: l.owner, list: l.name, version: l.version, ref: e.ref, label: e.label, handling: l.handling,
                score: 1.0, via: via, watched: sel.value)
            hits.append(
                Hit(id: s.id, selector: s, kind: .watchlist, priority: e.priority ?? l.defaultPriority, watchlist: w))
        }
        return hits.sorted { $0.priority > $1.priority }
    }

    /// Names: scored against every watched name and alias (the best per entry), per list `min_score`.
    func matchName(_ s: NormalizedSelector, at now: Double) -> [Hit] {
        let form = NameModel.form(normalized: s.value, script: s.fields["script"]?.stringValue)
        let lists = index.lists
        let found = index.names.query(form) { r in lists[Int(r.list)].minScore ?? Self.defaultMinScore }
        var hits: [Hit] = []
        var seen = Set<Int64>()
        for m in found where seen.insert(Int64(m.ref.list) << 32 | Int64(m.ref.entry)).inserted {
            let l = lists[Int(m.ref.list)]
            guard l.isActive(at: now) else { continue }
            let e = l.entries[Int(m.ref.entry)]
            if let exp = e.expires, exp <= now { continue }
            var w = WatchlistHit(
                owner: l.owner, list: l.name, version: l.version, ref: e.ref, label: e.label, handling: l.handling,
                score: m.score, via: m.ref.viaAlias ? "alias" : (m.score >= 1 ? "exact" : "fuzzy"), watched: m.matched)
            w.alignment = m.alignment
            w.weak = m.weak
            hits.append(
                Hit(id: s.id, selector: s, kind: .watchlist, priority: e.priority ?? l.defaultPriority, watchlist: w))
        }
        return hits.sorted { $0.priority > $1.priority }
    }
}
