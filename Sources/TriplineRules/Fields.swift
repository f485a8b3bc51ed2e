import TriplineJSON
import TriplineMatch
import TriplineSelectors

/// A field a rule names, resolved once at load time (SPEC §5: the normalised record's fields, `source.*`,
/// `context.*`, and `watchlist`).
enum Field: Hashable, Sendable, CustomStringConvertible {
    case id, type, value, raw, observedAt
    case enrichment(String)
    case source([String])
    case context([String])
    /// `watchlist.<sub>` (one value per hit), or `watchlist` itself (the hits, for `exists`).
    case watchlist(String?)
    /// Keyword selections: every string in the record.
    case anywhere

    static let enrichmentFields: Set<String> = [
        "valid", "invalid_reason", "country", "line_type", "area", "domain", "tac", "mcc", "mnc", "version",
        "platform", "chain", "kind", "tokens", "script",
    ]
    static let watchlistFields: Set<String> = [
        "owner", "list", "ref", "label", "priority", "score", "version", "matched", "via",
    ]

    init?(name: String) {
        switch name {
        case "id": self = .id
        case "type": self = .type
        case "value": self = .value
        case "raw": self = .raw
        case "observed_at": self = .observedAt
        case "watchlist": self = .watchlist(nil)
        default:
            let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            if parts.contains(where: \.isEmpty) { return nil }
            if parts.count >= 2 && parts[0] == "source" {
                self = .source(Array(parts.dropFirst()))
            } else if parts.count >= 2 && parts[0] == "context" {
                self = .context(Array(parts.dropFirst()))
            } else if parts.count == 2 && parts[0] == "watchlist" && Field.watchlistFields.contains(parts[1]) {
                self = .watchlist(parts[1])
            } else if parts.count == 1 && Field.enrichmentFields.contains(name) {
                self = .enrichment(name)
            } else {
                return nil
            }
        }
    }

    var description: String {
        switch self {
        case .id: "id"
        case .type: "type"
        case .value: "value"
        case .raw: "raw"
        case .observedAt: "observed_at"
        case .enrichment(let n): n
        case .source(let p): "source." + p.joined(separator: ".")
        case .context(let p): "context." + p.joined(separator: ".")
        case .watchlist(let s): s.map { "watchlist." + $0 } ?? "watchlist"
        case .anywhere: "*"
        }
    }

    /// Fields whose values are few and shared by many selectors: poor prefilter triggers.
    var isLowCardinality: Bool {
        switch self {
        case .type: true
        case .enrichment(let n):
            ["valid", "country", "line_type", "version", "platform", "chain", "kind", "script"].contains(n)
        case .watchlist(let s): s != "ref" && s != "matched"
        default: false
        }
    }
}

/// What rules see of one selector: the normalised record and its watchlist hits.
public struct RuleEvent: Sendable {
    public var selector: NormalizedSelector
    /// The selector's watchlist hits (`kind == .watchlist`).
    public var watchlist: [Hit]

    public init(selector: NormalizedSelector, watchlist: [Hit]) {
        self.selector = selector
        self.watchlist = watchlist
    }

    /// Whether the field is present (not missing, not null).
    func exists(_ f: Field) -> Bool {
        switch f {
        case .watchlist: return !watchlist.isEmpty
        case .anywhere: return true
        default:
            var any = false
            forEachText(f) { _ in any = true }
            if any { return true }
            if case .array(let a)? = json(f) { return !a.isEmpty }
            return false
        }
    }

    func json(_ f: Field) -> JSONValue? {
        switch f {
        case .id: .string(selector.id)
        case .type: .string(selector.type.rawValue)
        case .value: .string(selector.value)
        case .raw: .string(selector.raw)
        case .observedAt: selector.observedAt.map { .string($0) }
        case .enrichment(let n): selector.fields[n]
        case .source(let p): Self.walk(selector.source, p)
        case .context(let p): Self.walk(selector.context, p)
        case .watchlist, .anywhere: nil
        }
    }

    static func walk(_ v: JSONValue?, _ path: [String]) -> JSONValue? {
        var cur = v
        for k in path {
            guard case .object(let o)? = cur else { return nil }
            cur = o[k]
        }
        return cur
    }

    /// Calls `body` with the text of each scalar value of the field (an array gives each element; numbers their
    /// text, booleans `true`/`false`); missing and null fields give nothing.
    func forEachText(_ f: Field, _ body: (String) -> Void) {
        switch f {
        case .id: body(selector.id)
        case .type: body(selector.type.rawValue)
        case .value: body(selector.value)
        case .raw: body(selector.raw)
        case .observedAt: if let o = selector.observedAt { body(o) }
        case .watchlist(let sub?):
            for h in watchlist {
                guard let w = h.watchlist else { continue }
                switch sub {
                case "owner": body(w.owner)
                case "list": body(w.list)
                case "ref": body(w.ref)
                case "label": if let l = w.label { body(l) }
                case "priority": body(h.priority.rawValue)
                case "score": body(w.score == 1 ? "1.0" : String(w.score))
                case "version": body(w.version)
                case "matched": body(w.watched)
                case "via": body(w.via)
                default: break
                }
            }
        case .watchlist(nil): break
        case .anywhere:
            for (_, v) in selector.json { Self.texts(v, deep: true, body) }
        default:
            if let v = json(f) { Self.texts(v, deep: false, body) }
        }
    }

    static func texts(_ v: JSONValue, deep: Bool, _ body: (String) -> Void) {
        switch v {
        case .string(let s): body(s)
        case .number(let n): body(n)
        case .bool(let b): body(b ? "true" : "false")
        case .null: break
        case .array(let a): for e in a { texts(e, deep: deep, body) }
        case .object(let o): if deep { for (_, e) in o { texts(e, deep: deep, body) } }
        }
    }
}
