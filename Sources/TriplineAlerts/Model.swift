import Foundation
import TriplineJSON
import TriplineRegex
import TriplineState

/// An Alertmanager label matcher: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"` (regexes
/// anchored at both ends; quotes optional).
public struct LabelMatcher: Sendable, CustomStringConvertible {
    public enum Op: String, Sendable { case eq = "=", ne = "!=", re = "=~", nre = "!~" }
    public let name: String
    public let op: Op
    public let value: String
    private let regex: Regex?

    public init(_ text: String) throws(AlertsError) {
        let t = text.trimmingCharacters(in: .whitespaces)
        let chars = Array(t)
        var opStart = -1
        var opText = ""
        for i in chars.indices {
            let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
            if chars[i] == "!" && (next == "=" || next == "~") {
                opStart = i
                opText = "!" + String(next!)
                break
            }
            if chars[i] == "=" {
                opStart = i
                opText = next == "~" ? "=~" : "="
                break
            }
        }
        guard opStart >= 0 else { throw AlertsError.config("matcher \"\(text)\" needs =, !=, =~ or !~") }
        let first = t.index(t.startIndex, offsetBy: opStart)..<t.index(t.startIndex, offsetBy: opStart + opText.count)
        let name = t[..<first.lowerBound].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw AlertsError.config("matcher \"\(text)\" has no label name")
        }
        var value = t[first.upperBound...].trimmingCharacters(in: .whitespaces)
        if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") {
            value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
        }
        self.name = name
        self.op = Op(rawValue: String(t[first]))!
        self.value = value
        if op == .re || op == .nre {
            do { regex = try Regex("^(?:" + value + ")$") } catch {
                throw AlertsError.config("matcher \"\(text)\": bad regex: \(error.description)")
            }
        } else {
            regex = nil
        }
    }

    /// A missing label matches as the empty string, as in Alertmanager.
    public func matches(_ labels: JSONObject) -> Bool {
        let v = labels[name]?.stringValue ?? ""
        switch op {
        case .eq: return v == value
        case .ne: return v != value
        case .re: return ((try? regex!.firstMatch(in: v)) ?? nil) != nil
        case .nre: return ((try? regex!.firstMatch(in: v)) ?? nil) == nil
        }
    }

    public var description: String { "\(name)\(op.rawValue)\"\(value)\"" }
}

extension Array where Element == LabelMatcher {
    public func matches(_ labels: JSONObject) -> Bool { allSatisfy { $0.matches(labels) } }
}

/// A partner agency (the operating agency is one too).
public struct Partner: Sendable {
    public var id: String
    public var name: String
    public var countries: [String]
    public var contact: String
    public init(id: String, name: String, countries: [String], contact: String) {
        self.id = id
        self.name = name
        self.countries = countries
        self.contact = contact
    }
}

public struct Principal: Sendable {
    /// SPEC §8: `ingest` is a source system (it may only submit selectors).
    public enum Role: String, Sendable, CaseIterable { case partner, analyst, auditor, admin, ingest }
    public var id: String
    public var partner: String
    public var role: Role
    /// The client-certificate subject that stands for this principal (config `subject:`); without it, a verified
    /// certificate whose only common name is `id` does (SPEC §10).
    public var subject: SubjectName?
    public init(id: String, partner: String, role: Role, subject: SubjectName? = nil) {
        self.id = id
        self.partner = partner
        self.role = role
        self.subject = subject
    }
}

/// One integration of a receiver (Alertmanager's `notify.Integration`): its type (`file`, `webhook`, `email`, ...:
/// the `<type>_configs` key it came from), its position among the receiver's integrations of that type, its
/// settings as configured (validated by its sink), and its own resolved policy. Each integration is delivered on
/// its own lane with its own retries.
public struct Integration: Sendable {
    public var type: String
    public var index: Int
    public var settings: JSONObject
    public var sendResolved: Bool
    public init(type: String, index: Int, settings: JSONObject, sendResolved: Bool) {
        self.type = type
        self.index = index
        self.settings = settings
        self.sendResolved = sendResolved
    }
    /// `type/index`: the lane an outbox item names.
    public var name: String { "\(type)/\(index)" }
}

/// A receiver: a name, the partner it belongs to, and its integrations.
public struct Receiver: Sendable {
    public var name: String
    public var partner: String
    public var integrations: [Integration] = []
    public init(name: String, partner: String, integrations: [Integration] = []) {
        self.name = name
        self.partner = partner
        self.integrations = integrations
    }
    /// Whether any integration of the receiver wants resolved notifications.
    public var sendResolved: Bool { integrations.contains { $0.sendResolved } }
    public func integration(_ name: String) -> Integration? { integrations.first { $0.name == name } }
    /// The settings of the receiver's integrations of one type (setting them replaces those integrations; the
    /// resolved policy is read from `send_resolved`, defaulting to true except for mail, as in Alertmanager).
    public func settings(of type: String) -> [JSONObject] { integrations.filter { $0.type == type }.map(\.settings) }
    public var emailConfigs: [JSONObject] {
        get { settings(of: "email") }
        set { replace("email", newValue, resolvedByDefault: false) }
    }
    public var webhookConfigs: [JSONObject] {
        get { settings(of: "webhook") }
        set { replace("webhook", newValue, resolvedByDefault: true) }
    }
    private mutating func replace(_ type: String, _ settings: [JSONObject], resolvedByDefault: Bool) {
        integrations.removeAll { $0.type == type }
        for s in settings {
            add(type, s, sendResolved: s["send_resolved"]?.stringValue.map { $0 == "true" } ?? resolvedByDefault)
        }
    }
    /// Adds an integration of `type` after the receiver's others of that type.
    public mutating func add(_ type: String, _ settings: JSONObject, sendResolved: Bool) {
        let index = integrations.filter { $0.type == type }.count
        integrations.append(Integration(type: type, index: index, settings: settings, sendResolved: sendResolved))
    }
}

/// One heartbeat (SPEC §11): `field` of each selector (`source.item`, `type`, ...), a glob over its value, the
/// longest silence allowed, who hears of it.
public struct Heartbeat: Sendable, Equatable {
    public let field: String
    public var match: String
    public var every: Double
    public var receiver: String
    /// `field` split at its dots once (read for every selector).
    public let path: [String]
    public init(field: String, match: String, every: Double, receiver: String) {
        self.field = field
        self.match = match
        self.every = every
        self.receiver = receiver
        path = field.split(separator: ".").map(String.init)
    }

    /// This heartbeat's name in the state database and its notifications.
    public var key: String { "heartbeat:" + field + "=" + match }

    /// `*` any run, `?` one character, everything else itself (no classes, no escapes).
    public func matches(_ value: String) -> Bool {
        let p = Array(match.unicodeScalars)
        let v = Array(value.unicodeScalars)
        var i = 0
        var j = 0
        var star = -1
        var mark = 0
        while j < v.count {
            if i < p.count && (p[i] == "?" || p[i] == v[j]) {
                i += 1
                j += 1
            } else if i < p.count && p[i] == "*" {
                star = i
                mark = j
                i += 1
            } else if star >= 0 {
                i = star + 1
                mark += 1
                j = mark
            } else {
                return false
            }
        }
        while i < p.count && p[i] == "*" { i += 1 }
        return i == p.count
    }
}

/// One escalation step: `after` seconds from the alert's first notification on the route, its receivers.
public struct EscalationStep: Sendable, Equatable {
    public var after: Double
    public var receivers: [String]
    public init(after: Double, receivers: [String]) {
        self.after = after
        self.receivers = receivers
    }
}

extension Route {
    /// This node and every node below it, depth first (the order of `index`).
    public var nodes: [Route] { [self] + routes.flatMap(\.nodes) }

    /// Every node by its identity (the first of two alike wins): its receiver and the matchers on its path from
    /// the root — what escalation state is kept under, because it survives a reload that adds, removes or moves
    /// other routes, where a node's `index` does not.
    public var identities: [(identity: Int, route: Route)] {
        var out: [(Int, Route)] = []
        var seen = Set<Int>()
        func walk(_ r: Route, _ path: String) {
            let here = path + "/" + r.matchers.map(\.description).joined(separator: ",")
            var h: UInt64 = 0xCBF2_9CE4_8422_2325
            for b in (here + "\u{0}" + r.receiver).utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
            let id = Int(h & 0x7FFF_FFFF_FFFF_FFFF)
            if seen.insert(id).inserted { out.append((id, r)) }
            for c in r.routes { walk(c, here) }
        }
        walk(self, "")
        return out
    }

    /// Steps over every round: `escalationRepeat` more rounds after the first, each from the first step's delay
    /// on; nil past the last.
    public func escalationStep(_ n: Int) -> (step: EscalationStep, index: Int, round: Int, due: Double)? {
        guard !escalation.isEmpty, n >= 0 else { return nil }
        let round = n / escalation.count
        let index = n % escalation.count
        guard round <= escalationRepeat else { return nil }
        let period = escalation.last!.after
        return (escalation[index], index, round, Double(round) * period + escalation[index].after)
    }
}

/// A node of the routing tree (Alertmanager's shape); children inherit what they do not set.
public final class Route: Sendable {
    public let receiver: String
    public let matchers: [LabelMatcher]
    public let groupBy: [String]
    public let groupWait: Double
    public let groupInterval: Double
    public let repeatInterval: Double
    public let `continue`: Bool
    public let routes: [Route]
    /// Position in a depth-first walk: identifies the node for aggregation groups.
    public let index: Int
    /// Escalation (SPEC §11): later steps after the route's own receiver (step 0), and how many more rounds of
    /// them after the last. Inherited like the route's other settings.
    public let escalation: [EscalationStep]
    public let escalationRepeat: Int

    public init(
        receiver: String, matchers: [LabelMatcher], groupBy: [String], groupWait: Double, groupInterval: Double,
        repeatInterval: Double, continue: Bool, routes: [Route], index: Int, escalation: [EscalationStep] = [],
        escalationRepeat: Int = 0
    ) {
        self.escalation = escalation
        self.escalationRepeat = escalationRepeat
        self.receiver = receiver
        self.matchers = matchers
        self.groupBy = groupBy
        self.groupWait = groupWait
        self.groupInterval = groupInterval
        self.repeatInterval = repeatInterval
        self.continue = `continue`
        self.routes = routes
        self.index = index
    }

    /// The nodes an alert is routed to: depth first, the first matching child unless `continue`, the node itself
    /// when no child matches.
    public func match(_ labels: JSONObject) -> [Route] {
        guard matchers.matches(labels) else { return [] }
        var out: [Route] = []
        for child in routes {
            let m = child.match(labels)
            if !m.isEmpty {
                out += m
                if !child.continue { break }
            }
        }
        return out.isEmpty ? [self] : out
    }
}

public struct InhibitRule: Sendable {
    public var sourceMatchers: [LabelMatcher]
    public var targetMatchers: [LabelMatcher]
    public var equal: [String]
    public init(sourceMatchers: [LabelMatcher], targetMatchers: [LabelMatcher], equal: [String]) {
        self.sourceMatchers = sourceMatchers
        self.targetMatchers = targetMatchers
        self.equal = equal
    }
}

public struct RateLimit: Sendable {
    public var receiver: String
    public var max: Int
    public var per: Double
    public init(receiver: String, max: Int, per: Double) {
        self.receiver = receiver
        self.max = max
        self.per = per
    }
}

/// A text template over the rendered (need-to-know filtered) view: `{{priority}}`, `{{labels.country}}`,
/// `{{alerts.0.key}}`, `{{count}}`. It can only show what the receiver may see.
public struct Template: Sendable {
    public var name: String
    public var text: String
    public init(name: String, text: String) throws(AlertsError) {
        self.name = name
        self.text = text
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw AlertsError.config("template \(name): \"{{\" without \"}}\"")
            }
            let path = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if path.isEmpty || path.contains(where: { $0 == " " }) {
                throw AlertsError.config("template \(name): bad placeholder \"{{\(path)}}\"")
            }
            rest = rest[close.upperBound...]
        }
    }

    public func render(_ view: JSONObject) -> String {
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
            out += rest[..<open.lowerBound]
            let path = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            var cur: JSONValue? = .object(view)
            for part in path.split(separator: ".") {
                switch cur {
                case .object(let o)?: cur = o[String(part)]
                case .array(let a)?: cur = Int(part).flatMap { $0 < a.count ? a[$0] : nil }
                default: cur = nil
                }
            }
            switch cur {
            case .string(let s)?: out += s
            case .number(let n)?: out += n
            case .bool(let b)?: out += b ? "true" : "false"
            case .array(let a)?: out += a.compactMap(\.stringValue).joined(separator: ", ")
            default: break
            }
            rest = rest[close.upperBound...]
        }
        return out + rest
    }
}

/// Everything the alert stage needs from the configuration.
public struct AlertsConfig: Sendable {
    public var partners: [Partner] = []
    public var principals: [Principal] = []
    public var receivers: [Receiver] = []
    public var route: Route
    public var inhibitRules: [InhibitRule] = []
    public var rateLimits: [RateLimit] = []
    public var templates: [Template] = []
    public var resolveTimeout: Double = 86_400
    /// SPEC §11 `watchdog: {receiver, every}`: a notification at that interval while Tripline runs, so that its
    /// absence is noticed.
    public var watchdog: (receiver: String, every: Double)?
    /// Heartbeats (SPEC §11, dead man's switch): a notification fires when no selector whose `field` matches
    /// `match` (a glob) arrived within `every`, and resolves when one does.
    public var heartbeats: [Heartbeat] = []
    /// Acknowledge links put in notifications (SPEC §11), when `http.external_url` and its key are configured.
    public var ackLinks: AckLinks?
    /// Key for opaque handles (keyed hashes of protected text).
    public var handleKey: [UInt8]

    public init(route: Route, handleKey: [UInt8]) {
        self.route = route
        self.handleKey = handleKey
    }

    public func partner(_ id: String) -> Partner? { partners.first { $0.id == id } }

    /// The receivers an alert goes to, each with the route whose timings apply: the route tree, then
    /// jurisdiction (receivers of partners covering the selector's country), then the originator (the list
    /// owner's receivers, unless the list says otherwise).
    public func targets(_ a: AlertRecord) -> [(Route, String)] {
        var out: [(Route, String)] = []
        for r in route.match(a.labels) where !out.contains(where: { $0.1 == r.receiver }) {
            out.append((r, r.receiver))
        }
        if let country = a.labels["country"]?.stringValue {
            for p in partners where p.countries.contains(country) {
                for r in receivers where r.partner == p.id && !out.contains(where: { $0.1 == r.name }) {
                    out.append((route, r.name))
                }
            }
        }
        if a.kind == "watchlist", let w = a.payload["watchlist"]?.objectValue, let owner = w["owner"]?.stringValue,
            w["handling"]?.objectValue?["originator_notified"] != .bool(false)
        {
            for r in receivers where r.partner == owner && !out.contains(where: { $0.1 == r.name }) {
                out.append((route, r.name))
            }
        }
        return out
    }
    public func receiver(_ name: String) -> Receiver? { receivers.first { $0.name == name } }
    public func principal(_ id: String) -> Principal? { principals.first { $0.id == id } }
    public func template(_ name: String?) -> Template? { name.flatMap { n in templates.first { $0.name == n } } }
}

/// An alert-stage failure.
public struct AlertsError: Error, CustomStringConvertible, Sendable {
    private enum Kind: Sendable {
        case config(String)
        case state(String)
        case notFound(String)
        case denied(String)
        case storage(String)
    }
    private let kind: Kind
    public static func config(_ m: String) -> AlertsError { AlertsError(kind: .config(m)) }
    public static func state(_ m: String) -> AlertsError { AlertsError(kind: .state(m)) }
    public static func notFound(_ m: String) -> AlertsError { AlertsError(kind: .notFound(m)) }
    public static func denied(_ m: String) -> AlertsError { AlertsError(kind: .denied(m)) }
    /// The state store failed (not the alert's state): a 500 / exit 2, never a conflict.
    public static func storage(_ m: String) -> AlertsError { AlertsError(kind: .storage(m)) }
    public var isStorage: Bool {
        if case .storage = kind { return true }
        return false
    }
    public var description: String {
        switch kind {
        case .config(let m), .state(let m), .notFound(let m), .denied(let m), .storage(let m): m
        }
    }
}
