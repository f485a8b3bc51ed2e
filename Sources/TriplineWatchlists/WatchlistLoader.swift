import Crypto
import Foundation
import TriplineSelectors
import TriplineYAML

/// Reads and strictly validates watchlist files (SPEC §4). A list with any error is not loaded;
/// every error names `file:line:col`.
public struct WatchlistLoader: Sendable {
    public var normalizer: SelectorNormalizer
    public var reader: YAMLReader

    public init(normalizer: SelectorNormalizer = SelectorNormalizer(), reader: YAMLReader = YAMLReader()) {
        self.normalizer = normalizer
        self.reader = reader
    }

    public struct Result: Sendable {
        public var lists: [Watchlist] = []
        public var errors: [LocatedError] = []
        public var warnings: [LocatedError] = []
    }

    public static let selectorTypes =
        SelectorType.allCases.map(\.rawValue) + ["phone_prefix", "ip_cidr"]

    /// Every `*.yaml` / `*.yml` file under `directory` (sorted, so loading is deterministic).
    public func load(directory: String, now: Double) -> Result {
        var result = Result()
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            result.errors.append(
                LocatedError(file: directory, mark: Mark(line: 1, column: 1), message: "watchlist directory not found"))
            return result
        }
        let files = (fm.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        var seen: [String: String] = [:]
        for rel in files {
            let path = (directory as NSString).appendingPathComponent(rel)
            let one = load(file: path, relativePath: rel, now: now)
            result.errors += one.errors
            result.warnings += one.warnings
            if let list = one.lists.first {
                let key = list.owner + "/" + list.name
                if let other = seen[key] {
                    result.errors.append(
                        LocatedError(
                            file: path, mark: Mark(line: 1, column: 1),
                            message: "watchlist \(key) is also defined in \(other)"))
                    continue
                }
                seen[key] = path
                result.lists.append(list)
            }
        }
        return result
    }

    /// One file. `relativePath` (`owner/list.yaml`) is checked against the list's owner when given.
    public func load(file path: String, relativePath: String? = nil, now: Double) -> Result {
        var result = Result()
        guard let data = FileManager.default.contents(atPath: path) else {
            result.errors.append(LocatedError(file: path, mark: Mark(line: 1, column: 1), message: "cannot read file"))
            return result
        }
        let bytes = [UInt8](data)
        let root: Node?
        do { root = try reader.parse(bytes, file: path) } catch {
            result.errors.append(error)
            return result
        }
        guard let root else {
            result.errors.append(
                LocatedError(file: path, mark: Mark(line: 1, column: 1), message: "empty watchlist file"))
            return result
        }
        var v = Validator(normalizer: normalizer, now: now)
        let list = v.watchlist(root, path: path, relativePath: relativePath, version: Self.sha256Hex(bytes))
        let byPosition: (LocatedError, LocatedError) -> Bool = {
            ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column)
        }
        result.errors = v.errors.sorted(by: byPosition)
        result.warnings = v.warnings.sorted(by: byPosition)
        if v.errors.isEmpty, let list { result.lists.append(list) }
        return result
    }

    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { b in
            let h = String(b, radix: 16)
            return b < 16 ? "0" + h : h
        }.joined()
    }
}

/// Collects every error in one pass, so `check` reports them all.
struct Validator {
    let normalizer: SelectorNormalizer
    let now: Double
    var errors: [LocatedError] = []
    var warnings: [LocatedError] = []

    mutating func fail(_ node: Node, _ message: String) { errors.append(node.error(message)) }

    mutating func string(_ node: Node?, _ field: String, in parent: Node, required: Bool = false) -> String? {
        guard let node, !node.isNull else {
            if required { fail(parent, "missing required field \"\(field)\"") }
            return nil
        }
        guard let s = node.scalar else {
            fail(node, "\"\(field)\" must be a string, not \(node.kindName)")
            return nil
        }
        return s
    }

    mutating func date(_ node: Node?, _ field: String, in parent: Node, required: Bool = false) -> Double? {
        guard let s = string(node, field, in: parent, required: required) else { return nil }
        guard let t = Timestamp.parse(s) else {
            fail(node!, "\"\(field)\" must be a date (YYYY-MM-DD) or an RFC 3339 time, not \"\(s)\"")
            return nil
        }
        return t
    }

    mutating func priority(_ node: Node?, _ field: String, in parent: Node) -> Priority? {
        guard let s = string(node, field, in: parent) else { return nil }
        guard let p = Priority(rawValue: s.lowercased()) else {
            fail(
                node!,
                "unknown \(field) \"\(s)\" (expected \(Priority.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        return p
    }

    mutating func checkKeys(_ node: Node, allowed: Set<String>, what: String) {
        for (k, _) in node.mapping ?? [] {
            guard let ks = k.scalar else {
                fail(k, "\(what) keys must be strings")
                continue
            }
            if !allowed.contains(ks) {
                fail(
                    k,
                    "unknown field \"\(ks)\" in \(what) (expected one of \(allowed.sorted().joined(separator: ", ")))")
            }
        }
    }

    mutating func watchlist(_ root: Node, path: String, relativePath: String?, version: String) -> Watchlist? {
        guard root.mapping != nil else {
            fail(root, "a watchlist must be a mapping, not \(root.kindName)")
            return nil
        }
        checkKeys(
            root,
            allowed: [
                "watchlist", "owner", "description", "handling", "review_by", "default_priority", "min_score",
                "entries",
            ], what: "watchlist")
        let name = string(root["watchlist"], "watchlist", in: root, required: true)
        let owner = string(root["owner"], "owner", in: root, required: true)
        if let owner, let rel = relativePath {
            let parts = rel.split(separator: "/")
            if parts.count >= 2, parts[parts.count - 2] != owner {
                fail(root["owner"]!, "owner \"\(owner)\" does not match the directory \"\(parts[parts.count - 2])\"")
            }
        }
        for (field, value) in [("watchlist", name), ("owner", owner)] {
            if let value, !Self.isIdentifier(value) {
                fail(root[field]!, "\"\(field)\" must be letters, digits, '-', '_' or '.', not \"\(value)\"")
            }
        }
        let description = string(root["description"], "description", in: root)
        let handling = self.handling(root["handling"], owner: owner ?? "", in: root)
        let reviewBy = date(root["review_by"], "review_by", in: root, required: true)
        if let reviewBy, reviewBy <= now {
            warnings.append(
                root["review_by"]!.error(
                    "review_by \(Timestamp.format(reviewBy)) has passed: the list loads but never matches"))
        }
        let defaultPriority = priority(root["default_priority"], "default_priority", in: root) ?? .medium
        var minScore: Double?
        if let ms = string(root["min_score"], "min_score", in: root) {
            if let d = Double(ms), d >= 0, d <= 1 {
                minScore = d
            } else {
                fail(root["min_score"]!, "min_score must be a number from 0 to 1")
            }
        }
        var entries: [Entry] = []
        var refs: [String: Mark] = [:]
        if let en = root["entries"] {
            if let seq = en.sequence {
                for e in seq {
                    if let entry = self.entry(e) {
                        if let first = refs[entry.ref] {
                            fail(e["ref"] ?? e, "duplicate ref \"\(entry.ref)\" (first at line \(first.line))")
                        } else {
                            refs[entry.ref] = (e["ref"] ?? e).mark
                        }
                        entries.append(entry)
                    }
                }
            } else if !en.isNull {
                fail(en, "\"entries\" must be a sequence, not \(en.kindName)")
            }
        } else {
            fail(root, "missing required field \"entries\"")
        }
        guard let name, let owner, let reviewBy, let handling else { return nil }
        return Watchlist(
            name: name, owner: owner, description: description, handling: handling, reviewBy: reviewBy,
            defaultPriority: defaultPriority, minScore: minScore, version: version, file: path, entries: entries)
    }

    static func isIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    mutating func handling(_ node: Node?, owner: String, in parent: Node) -> Handling? {
        var h = Handling(tlp: .amber, releasableTo: [owner], originatorNotified: true)
        guard let node, !node.isNull else { return h }
        guard node.mapping != nil else {
            fail(node, "\"handling\" must be a mapping, not \(node.kindName)")
            return nil
        }
        checkKeys(node, allowed: ["tlp", "releasable_to", "originator_notified"], what: "handling")
        if let t = string(node["tlp"], "tlp", in: node) {
            guard let tlp = TLP(rawValue: t.lowercased().replacingOccurrences(of: "tlp:", with: "")) else {
                fail(node["tlp"]!, "unknown tlp \"\(t)\" (expected clear, green, amber, amber+strict or red)")
                return nil
            }
            h.tlp = tlp
        }
        if let r = node["releasable_to"], !r.isNull {
            guard let seq = r.sequence else {
                fail(r, "\"releasable_to\" must be a list of partner ids")
                return nil
            }
            for p in seq {
                guard let id = p.scalar, Self.isIdentifier(id) else {
                    fail(p, "\"releasable_to\" items must be partner ids")
                    continue
                }
                if !h.releasableTo.contains(id) { h.releasableTo.append(id) }
            }
        }
        if let o = node["originator_notified"], !o.isNull {
            switch o.scalar?.lowercased() {
            case "true": h.originatorNotified = true
            case "false": h.originatorNotified = false
            default: fail(o, "\"originator_notified\" must be true or false")
            }
        }
        return h
    }

    mutating func entry(_ node: Node) -> Entry? {
        guard node.mapping != nil else {
            fail(node, "an entry must be a mapping, not \(node.kindName)")
            return nil
        }
        checkKeys(node, allowed: ["ref", "label", "priority", "expires", "selectors"], what: "entry")
        let ref = string(node["ref"], "ref", in: node, required: true)
        let label = string(node["label"], "label", in: node)
        let priority = self.priority(node["priority"], "priority", in: node)
        let expires = date(node["expires"], "expires", in: node)
        if let expires, expires <= now, let ref {
            warnings.append(
                node["expires"]!.error("entry \(ref) expired \(Timestamp.format(expires)): it never matches"))
        }
        var selectors: [WatchSelector] = []
        if let sel = node["selectors"], let seq = sel.sequence {
            for s in seq { if let w = selector(s) { selectors.append(w) } }
            if seq.isEmpty { fail(sel, "an entry needs at least one selector") }
        } else {
            fail(node["selectors"] ?? node, "an entry needs \"selectors\": a list of {type, value}")
        }
        guard let ref else { return nil }
        return Entry(ref: ref, label: label, priority: priority, expires: expires, selectors: selectors)
    }

    mutating func selector(_ node: Node) -> WatchSelector? {
        guard node.mapping != nil else {
            fail(node, "a selector must be a mapping {type, value}, not \(node.kindName)")
            return nil
        }
        checkKeys(
            node, allowed: ["type", "value", "aliases", "platform", "chain", "country", "kind"], what: "selector")
        guard let typeName = string(node["type"], "type", in: node, required: true),
            let value = string(node["value"], "value", in: node, required: true)
        else { return nil }
        let at = node["value"]!
        switch typeName {
        case "phone_prefix":
            do {
                return WatchSelector(
                    kind: .phonePrefix, value: try normalizer.normalizePhonePrefix(value), aliases: [],
                    line: at.mark.line)
            } catch {
                fail(at, "unparseable phone_prefix \"\(value)\": \(error)")
                return nil
            }
        case "ip_cidr":
            guard let c = CIDR(value) else {
                fail(at, "unparseable ip_cidr \"\(value)\": expected address/prefix-length")
                return nil
            }
            return WatchSelector(kind: .ipCIDR, value: c.description, aliases: [], line: at.mark.line)
        default:
            guard let type = SelectorType(rawValue: typeName) else {
                fail(
                    node["type"]!,
                    "unknown selector type \"\(typeName)\" (expected one of \(WatchlistLoader.selectorTypes.joined(separator: ", ")))"
                )
                return nil
            }
            // The script each name was written in (value, then aliases): fuzzy matching treats unvocalised Arabic
            // apart, and the normalised value is already Latin.
            var scripts: [String?] = []
            func norm(_ v: String, _ where_: Node) -> String? {
                do {
                    let (n, fields) = try normalizer.normalizeValue(
                        type, v,
                        regions: type == .phone ? [node["country"]?.scalar?.uppercased()].compactMap { $0 } : [],
                        country: node["country"]?.scalar, platform: node["platform"]?.scalar,
                        chain: node["chain"]?.scalar, kind: node["kind"]?.scalar)
                    if case .bool(false)? = fields["valid"] {
                        let why = fields["invalid_reason"]?.stringValue ?? "invalid"
                        warnings.append(
                            where_.error("\(type.rawValue) \"\(v)\" is not valid (\(why)); it is watched as \(n)"))
                    }
                    scripts.append(fields["script"]?.stringValue)
                    return n
                } catch {
                    fail(where_, "unparseable \(type.rawValue) \"\(v)\": \(error.message)")
                    return nil
                }
            }
            guard let n = norm(value, at) else { return nil }
            var aliases: [String] = []
            if let al = node["aliases"] {
                if type != .name {
                    fail(al, "\"aliases\" is only for name selectors")
                } else if let seq = al.sequence {
                    for a in seq {
                        guard let s = a.scalar else {
                            fail(a, "aliases must be strings")
                            continue
                        }
                        if let an = norm(s, a) { aliases.append(an) }
                    }
                } else {
                    fail(al, "\"aliases\" must be a list of names")
                }
            }
            var w = WatchSelector(kind: .exact(type), value: n, aliases: aliases, line: at.mark.line)
            if type == .name { w.scripts = scripts }
            return w
        }
    }
}
