import Crypto
import Foundation
import TriplineJSON
import TriplineSelectors
import TriplineState

/// Need-to-know (SPEC §6): what one partner may see of one alert, and the rendering that follows from it.
public enum Access: String, Sendable {
    /// Everything.
    case full
    /// An opaque handle and the owners' contact route: never list name, ref, label, watched or sighted value.
    case opaque
    /// TLP:RED in a sink: only a notice naming the alert id.
    case notice
}

/// The list handlings behind an alert (the list of a watchlist hit; the list hits a rule saw).
public struct Protection: Sendable {
    public var owner: String
    public var list: String = ""
    public var tlp: String
    public var releasableTo: [String]

    /// Whether `partner` is entitled to content under this handling.
    public func entitles(_ partner: String) -> Bool {
        switch tlp {
        case "clear", "green": return true
        case "amber+strict": return partner == owner
        case "red": return partner == owner || releasableTo.contains(partner)
        default: return partner == owner || releasableTo.contains(partner)
        }
    }

    public static func from(_ payload: JSONObject) -> [Protection] {
        (payload["protections"]?.arrayValue ?? []).compactMap { v in
            guard let o = v.objectValue, let owner = o["owner"]?.stringValue,
                let h = o["handling"]?.objectValue, let tlp = h["tlp"]?.stringValue
            else { return nil }
            let rel = h["releasable_to"]?.arrayValue?.compactMap(\.stringValue) ?? [owner]
            var p = Protection(owner: owner, tlp: tlp, releasableTo: rel)
            p.list = o["list"]?.stringValue ?? ""
            return p
        }
    }

    /// The protection as the list's handling is *now* (SPEC §6): a list made stricter protects its open alerts at
    /// once; a withdrawn list (no longer among `current`) entitles its owner alone.
    public func current(_ handlings: [String: JSONObject]?) -> Protection {
        guard let handlings else { return self }
        guard let h = handlings[owner + "/" + list] else {
            return Protection(owner: owner, list: list, tlp: "amber+strict", releasableTo: [owner])
        }
        return Protection(
            owner: owner, list: list, tlp: h["tlp"]?.stringValue ?? tlp,
            releasableTo: h["releasable_to"]?.arrayValue?.compactMap(\.stringValue) ?? [owner])
    }
}

public struct Renderer: Sendable {
    public let config: AlertsConfig
    /// The lists' handlings now (`owner/list` → handling), as the service last loaded them; nil: unknown, the
    /// handling recorded with the alert applies.
    public let handlings: [String: JSONObject]?

    public init(config: AlertsConfig, handlings: [String: JSONObject]? = nil) {
        self.config = config
        self.handlings = handlings
    }

    /// The access `partner` has to `alert`; `sink` is true for mail, webhook and log renderings. Judged against the
    /// lists' handling now, not when the alert was opened.
    public func access(_ alert: AlertRecord, partner: String?, sink: Bool) -> Access {
        let ps = Protection.from(alert.payload).map { $0.current(handlings) }
        if sink && ps.contains(where: { $0.tlp == "red" }) { return .notice }
        guard let partner else { return ps.isEmpty ? .full : .opaque }
        return ps.allSatisfy { $0.entitles(partner) } ? .full : .opaque
    }

    /// A keyed hash of protected text: stable per deployment, meaningless without the key.
    public func handle(_ text: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: SymmetricKey(data: config.handleKey))
        return "h-" + mac.prefix(10).map { String(format: "%02x", $0) }.joined()
    }

    /// The alert's labels as a partner with `access` sees them: the list and ref are opaque handles unless entitled.
    public func labels(_ a: AlertRecord, access: Access) -> JSONObject {
        var labels = JSONObject()
        for (k, v) in a.labels {
            if access != .full && (k == "list" || k == "ref") {
                labels.append(k, .string(handle(v.stringValue ?? "")))
            } else {
                labels.append(k, v)
            }
        }
        return labels
    }

    /// How strict an access is (a rendering is redone when the access became stricter).
    public static func strictness(_ a: Access) -> Int {
        switch a {
        case .full: 0
        case .opaque: 1
        case .notice: 2
        }
    }

    /// The access a rendered view was made with.
    public static func access(of view: JSONObject) -> Access {
        view["notice"] != nil ? .notice : view["restricted"] == .bool(true) ? .opaque : .full
    }

    /// The alert as `partner` may see it.
    public func view(_ a: AlertRecord, access: Access) -> JSONObject {
        var o = JSONObject()
        o.append("alert_id", .number(String(a.id)))
        switch access {
        case .notice:
            o.append("state", .string(a.state.rawValue))
            o.append("priority", .string(a.priority))
            o.append(
                "notice",
                .string(
                    "restricted alert (TLP:RED): its content is not sent; look it up with `tripline alerts show \(a.id)`"
                ))
            return o
        case .full:
            o.append("key", .string(a.key))
        case .opaque:
            o.append("key", .string(handle(a.key)))
        }
        o.append("state", .string(a.state.rawValue))
        o.append("priority", .string(a.priority))
        o.append("kind", .string(a.kind))
        o.append("labels", .object(labels(a, access: access)))
        o.append("count", .number(String(a.count)))
        o.append("first_seen", .string(Self.time(a.firstSeen)))
        o.append("last_seen", .string(Self.time(a.lastSeen)))
        o.append("sources", .array(a.sources.map { .string($0) }))
        if access == .full {
            for k in ["selector", "watchlist", "rule"] { if let v = a.payload[k] { o.append(k, v) } }
        } else {
            // What the operating agency itself found, minus the value (it may equal the watched one).
            var sel = JSONObject()
            if let s = a.payload["selector"]?.objectValue {
                for k in ["type", "country", "area", "line_type", "observed_at"] {
                    if let v = s[k] { sel.append(k, v) }
                }
            }
            o.append("selector", .object(sel))
            if let r = a.payload["rule"]?.objectValue {
                var rule = JSONObject()
                for k in ["id", "title"] { if let v = r[k] { rule.append(k, v) } }
                o.append("rule", .object(rule))
            }
            let owners = Set(Protection.from(a.payload).map(\.owner)).sorted()  // contact routes only
            o.append(
                "contact",
                .array(
                    owners.map { id in
                        var c = JSONObject()
                        c.append("partner", .string(id))
                        if let p = config.partner(id) { c.append("contact", .string(p.contact)) }
                        return .object(c)
                    }))
            o.append("restricted", .bool(true))
        }
        return o
    }

    /// RFC 3339 in UTC, whole seconds: the one time formatter (`Timestamp.format`).
    public static func time(_ t: Double) -> String { Timestamp.format(t) }
}
