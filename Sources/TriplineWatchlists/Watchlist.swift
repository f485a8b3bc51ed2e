import TriplineJSON
import TriplineSelectors

/// Alert priority: Sigma levels, lowest first.
public enum Priority: String, Sendable, CaseIterable, Comparable {
    case informational, low, medium, high, critical
    public var rank: Int {
        switch self {
        case .informational: 0
        case .low: 1
        case .medium: 2
        case .high: 3
        case .critical: 4
        }
    }
    public static func < (a: Priority, b: Priority) -> Bool { a.rank < b.rank }
}

/// Traffic Light Protocol 2.0 labels, least strict first.
public enum TLP: String, Sendable, CaseIterable, Comparable {
    case clear, green, amber
    case amberStrict = "amber+strict"
    case red
    public static func < (a: TLP, b: TLP) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
}

/// Who may see a list's entries (SPEC §4, §6).
public struct Handling: Sendable, Equatable {
    public var tlp: TLP
    /// Partner ids; always includes the owner.
    public var releasableTo: [String]
    public var originatorNotified: Bool

    public init(tlp: TLP, releasableTo: [String], originatorNotified: Bool) {
        self.tlp = tlp
        self.releasableTo = releasableTo
        self.originatorNotified = originatorNotified
    }

    public var json: JSONValue {
        var o = JSONObject()
        o.append("tlp", .string(tlp.rawValue))
        o["releasable_to"] = .array(releasableTo.map { .string($0) })
        o.append("originator_notified", .bool(originatorNotified))
        return .object(o)
    }
}

/// What one watchlist selector watches for.
public enum WatchKind: Sendable, Equatable {
    /// The normalised value of a selector type (names: their normalised tokens).
    case exact(SelectorType)
    /// Phone numbers starting with these E.164 digits.
    case phonePrefix
    /// IP addresses inside this network.
    case ipCIDR
}

public struct WatchSelector: Sendable {
    public var kind: WatchKind
    /// The normalised watched value (`+32470123456`, `+322`, `192.0.2.0/24`, `abdelhamid abaaoud`).
    public var value: String
    /// Further normalised forms that match too (name aliases).
    public var aliases: [String]
    /// Names: the script each was written in (ISO 15924), the value's first, then the aliases' (nil: unknown).
    public var scripts: [String?] = []
    public var line: Int

    public init(kind: WatchKind, value: String, aliases: [String] = [], line: Int) {
        self.kind = kind
        self.value = value
        self.aliases = aliases
        self.line = line
    }
}

public struct Entry: Sendable {
    public var ref: String
    public var label: String?
    public var priority: Priority?
    /// Seconds since the epoch; the entry never matches from then on.
    public var expires: Double?
    public var selectors: [WatchSelector]

    public init(ref: String, label: String?, priority: Priority?, expires: Double?, selectors: [WatchSelector]) {
        self.ref = ref
        self.label = label
        self.priority = priority
        self.expires = expires
        self.selectors = selectors
    }
}

/// One partner's list, loaded all-or-nothing from one file.
public struct Watchlist: Sendable {
    public var name: String
    public var owner: String
    public var description: String?
    public var handling: Handling
    public var reviewBy: Double
    public var defaultPriority: Priority
    public var minScore: Double?
    /// Lower-case hex SHA-256 of the file's bytes.
    public var version: String
    public var file: String
    public var entries: [Entry]

    public init(
        name: String, owner: String, description: String?, handling: Handling, reviewBy: Double,
        defaultPriority: Priority, minScore: Double?, version: String, file: String, entries: [Entry]
    ) {
        self.name = name
        self.owner = owner
        self.description = description
        self.handling = handling
        self.reviewBy = reviewBy
        self.defaultPriority = defaultPriority
        self.minScore = minScore
        self.version = version
        self.file = file
        self.entries = entries
    }

    public func isActive(at now: Double) -> Bool { reviewBy > now }
}
