import Foundation
import TriplineMatch
import TriplineRegex
import TriplineSelectors
import TriplineWatchlists
import TriplineYAML

/// Reads Sigma rules (SPEC §5) and compiles them into a `RuleSet`. Every error names `file:line:col`; a rule with an
/// error is left out, and callers refuse a set with errors (the previous set stays active).
public struct RuleLoader: Sendable {
    /// Lists that `expand` placeholders (`%owner/list%` or `%list%`) resolve to.
    public var watchlists: [Watchlist]
    public var now: Double
    public var reader: YAMLReader
    public var regexLimits: Regex.Limits

    public init(
        watchlists: [Watchlist] = [], now: Double, reader: YAMLReader = YAMLReader(),
        regexLimits: Regex.Limits = Regex.Limits()
    ) {
        self.watchlists = watchlists
        self.now = now
        self.reader = reader
        self.regexLimits = regexLimits
    }

    public struct Result: Sendable {
        public var ruleSet: RuleSet
        public var errors: [LocatedError]
        public var warnings: [LocatedError]
        /// Each file read, with the lower-case hex SHA-256 of its bytes (for the audit log).
        public var files: [(path: String, sha256: String)]
        /// The documents read, per file: what `recompile` compiles again (at another `now`, for `expand`).
        public var documents: [(file: String, nodes: [Node])] = []
    }

    /// The same documents compiled again with this loader's lists and `now` — the `expand` placeholders of a
    /// running service follow entries that expire and lists that pass their review date, without reading the
    /// rule files again (a change to them waits for a reload).
    public func recompile(_ r: Result) -> Result {
        var b = Builder(loader: self)
        for (_, nodes) in r.documents { for d in nodes { b.document(d) } }
        b.resolveCorrelations()
        let set = RuleSet(builder: b)
        b.warnings += set.compileWarnings
        var out = Result(
            ruleSet: set, errors: b.errors.sorted(by: Self.byPosition),
            warnings: b.warnings.sorted(by: Self.byPosition),
            files: r.files)
        out.documents = r.documents
        return out
    }

    /// Every `*.yml` file under `directory`, except those under `tests/` (rule unit tests), in sorted order.
    public func load(directory: String) -> Result {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            return load(
                files: [],
                missing: LocatedError(
                    file: directory, mark: Mark(line: 1, column: 1),
                    message: "rules directory not found"))
        }
        let files = (FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? [])
            .filter { $0.hasSuffix(".yml") && !$0.hasPrefix("tests/") && !$0.contains("/tests/") }
            .sorted()
            .map { (directory as NSString).appendingPathComponent($0) }
        return load(files: files)
    }

    public func load(files: [String]) -> Result { load(files: files, missing: nil) }

    private func load(files: [String], missing: LocatedError?) -> Result {
        var b = Builder(loader: self)
        if let missing { b.errors.append(missing) }
        var digests: [(String, String)] = []
        var documents: [(file: String, nodes: [Node])] = []
        for f in files {
            if let data = FileManager.default.contents(atPath: f) {
                digests.append((f, WatchlistLoader.sha256Hex([UInt8](data))))
            }
            let docs: [Node]
            do { docs = try reader.readAll(path: f) } catch {
                b.errors.append(error)
                continue
            }
            for d in docs { b.document(d) }
            documents.append((f, docs))
        }
        return finish(b, files: digests, documents: documents)
    }

    /// Rules from bytes (`file` names them in messages): what `load(files:)` does with one file's contents.
    public func load(bytes: [UInt8], file: String) -> Result {
        var b = Builder(loader: self)
        var documents: [(file: String, nodes: [Node])] = []
        do {
            let docs = try reader.parseAll(bytes, file: file)
            for d in docs { b.document(d) }
            documents.append((file, docs))
        } catch {
            b.errors.append(error)
        }
        return finish(b, files: [(file, WatchlistLoader.sha256Hex(bytes))], documents: documents)
    }

    private func finish(
        _ builder: Builder, files digests: [(String, String)], documents: [(file: String, nodes: [Node])]
    )
        -> Result
    {
        var b = builder
        b.resolveCorrelations()
        let set = RuleSet(builder: b)
        b.warnings += set.compileWarnings
        var result = Result(
            ruleSet: set, errors: b.errors.sorted(by: Self.byPosition),
            warnings: b.warnings.sorted(by: Self.byPosition),
            files: digests)
        result.documents = documents
        return result
    }

    static func byPosition(_ a: LocatedError, _ b: LocatedError) -> Bool {
        (a.file, a.mark.line, a.mark.column) < (b.file, b.mark.line, b.mark.column)
    }
}

/// How one value is tested against a field's values.
enum Test: @unchecked Sendable {
    case equals(String, cased: Bool)  // folded unless cased
    case pattern(Pattern, cased: Bool)  // Sigma wildcards or contains/startswith/endswith
    case regex(Regex)
    case cidr(CIDR)
    case compare(Comparison, Double)
    case exists(Bool)
    case null
    /// Compared with another field's values: equal, or (`contains`/`startswith`/`endswith`) containing them.
    case fieldref(Field, cased: Bool, position: FieldrefPosition)
}

enum FieldrefPosition: Sendable {
    case equal, contains, start, end
}

enum Comparison: String, Sendable {
    case lt, lte, gt, gte
    func holds(_ a: Double, _ b: Double) -> Bool {
        switch self {
        case .lt: a < b
        case .lte: a <= b
        case .gt: a > b
        case .gte: a >= b
        }
    }
}

/// One value test on one field of one rule: the leaves of a compiled condition.
struct Atom: Sendable {
    var field: Field
    var test: Test
    var negated: Bool
    var rule: Int32
}

/// A compiled condition over atoms.
indirect enum Expr: Sendable {
    case atom(Int32)
    case and([Expr])
    case or([Expr])
    case not(Expr)
    case atLeast(Int, [Expr])
    case constant(Bool)
}

/// A detection rule, compiled.
public struct DetectionRule: Sendable {
    public var id: String
    public var name: String?
    public var title: String
    public var level: Priority
    public var status: String?
    public var file: String
    public var line: Int
    /// False when a correlation uses the rule and does not ask for its hits (`generate: false`).
    public var generates = true
    var condition: Expr
    /// The lists its `expand` placeholders took values from: its alerts take their handling too (SPEC §6), as
    /// hits without an entry (`ref` empty, `via: expand`).
    public var expandedFrom: [WatchlistHit] = []
}

/// A correlation rule (Sigma correlation), compiled.
public struct CorrelationRule: Sendable {
    public enum Kind: String, Sendable {
        case eventCount = "event_count"
        case valueCount = "value_count"
        case temporal
        case temporalOrdered = "temporal_ordered"
    }
    public var id: String
    public var name: String?
    public var title: String
    public var level: Priority
    public var kind: Kind
    /// Indices of the detection rules it counts, in the order given (for `temporal_ordered`).
    public var rules: [Int]
    var groupBy: [Field]
    public var groupByNames: [String]
    /// Seconds.
    public var timespan: Double
    var valueField: Field?
    /// Every comparison must hold (`gte: 3`, or a range `gt: 1, lte: 5`).
    var thresholds: [(Comparison?, Double)]  // nil comparison: eq; neq stored as negative marker below
    var notEqual: [Double]
    var ruleRefs: [(name: String, node: Node)]
    var generate: Bool
    public var file: String
    public var line: Int
}

/// Collects rules from YAML documents.
struct Builder {
    let loader: RuleLoader
    var errors: [LocatedError] = []
    var warnings: [LocatedError] = []
    var rules: [DetectionRule] = []
    var correlations: [CorrelationRule] = []
    var atoms: [Atom] = []
    var ids: [String: Node] = [:]
    /// Per rule index: the lists its `expand` placeholders drew on.
    var expanded: [Int32: [WatchlistHit]] = [:]

    init(loader: RuleLoader) { self.loader = loader }

    static let levels: Set<String> = Set(Priority.allCases.map(\.rawValue))
    static let statuses: Set<String> = ["stable", "test", "experimental", "deprecated", "unsupported"]

    mutating func fail(_ n: Node, _ message: String, offset: Int = 0) {
        var col = n.mark.column + offset
        if case .scalar(_, let plain) = n.kind, !plain, offset > 0 { col += 1 }
        errors.append(LocatedError(file: n.file, mark: Mark(line: n.mark.line, column: col), message: message))
    }

    mutating func warn(_ n: Node, _ message: String) { warnings.append(n.error(message)) }

    mutating func document(_ doc: Node) {
        guard doc.mapping != nil else { return fail(doc, "a rule must be a mapping") }
        if doc["action"] != nil {
            return fail(doc["action"]!, "legacy multi-document actions (action: global ...) are not supported")
        }
        guard let title = doc["title"]?.scalar, !title.isEmpty else { return fail(doc, "rule has no \"title\"") }
        guard let idNode = doc["id"], let id = idNode.scalar, !id.isEmpty else {
            return fail(doc, "rule \"\(title)\" has no \"id\" (alert identity needs one)")
        }
        if let other = ids[id] {
            return fail(
                idNode, "duplicate rule id \(id) (also at \(other.file):\(other.mark.line):\(other.mark.column))")
        }
        ids[id] = idNode
        var level = Priority.medium
        if let l = doc["level"] {
            guard let s = l.scalar, let p = Priority(rawValue: s) else {
                return fail(l, "\"level\" must be one of informational, low, medium, high, critical")
            }
            level = p
        }
        let status = doc["status"]?.scalar
        if let s = doc["status"], !Self.statuses.contains(s.scalar ?? "") {
            return fail(s, "\"status\" must be one of stable, test, experimental, deprecated, unsupported")
        }
        let name = doc["name"]?.scalar
        if let c = doc["correlation"] {
            correlation(c, id: id, name: name, title: title, level: level, doc: doc)
        } else {
            detection(doc, id: id, name: name, title: title, level: level, status: status)
        }
    }

    // MARK: Detection

    mutating func detection(_ doc: Node, id: String, name: String?, title: String, level: Priority, status: String?) {
        guard let ls = doc["logsource"] else { return fail(doc, "rule \(id) has no \"logsource\"") }
        if ls["product"]?.scalar != "tripline" || ls["category"]?.scalar != "selector" {
            return fail(ls, "logsource must be {product: tripline, category: selector}")
        }
        guard let det = doc["detection"], let members = det.mapping else {
            return fail(doc["detection"] ?? doc, "rule \(id) needs a \"detection\" mapping")
        }
        let ruleIndex = Int32(rules.count)
        let firstAtom = atoms.count
        defer {  // not compiled: its atoms and expansions go
            if rules.count == Int(ruleIndex) {
                atoms.removeSubrange(firstAtom..<atoms.count)
                expanded[ruleIndex] = nil
            }
        }
        let before = errors.count
        var selections: [(name: String, expr: Expr)] = []
        var conditionNode: Node?
        for (k, v) in members {
            let key = k.scalar ?? ""
            if key == "condition" {
                conditionNode = v
            } else if key == "timeframe" {
                fail(k, "\"timeframe\" is not supported: write a correlation rule with \"timespan\"")
            } else {
                if let e = selection(v, rule: ruleIndex) { selections.append((key, e)) }
            }
        }
        guard let cn = conditionNode else { return fail(det, "detection has no \"condition\"") }
        guard errors.count == before else { return }  // a broken selection: no second error from the condition
        var conditions: [Node] = []
        if let s = cn.sequence { conditions = s } else { conditions = [cn] }
        var exprs: [Expr] = []
        for c in conditions {
            guard let text = c.scalar else {
                fail(c, "a condition must be a string")
                continue
            }
            do {
                let parsed = try ConditionParser.parse(text)
                if let e = resolve(parsed, selections: selections, node: c) { exprs.append(e) }
            } catch {
                fail(c, "condition: \(error.message)", offset: error.offset)
            }
        }
        guard errors.count == before, !exprs.isEmpty else { return }
        var rule = DetectionRule(
            id: id, name: name, title: title, level: level, status: status, file: doc.file, line: doc.mark.line,
            condition: exprs.count == 1 ? exprs[0] : .or(exprs))
        rule.expandedFrom = expanded[Int32(rules.count)] ?? []
        rules.append(rule)
    }

    /// A selection: a map (all fields), a list of maps (any), or a list of keywords (any, anywhere in the record).
    mutating func selection(_ v: Node, rule: Int32) -> Expr? {
        if v.mapping != nil { return fieldMap(v, rule: rule) }
        if let seq = v.sequence {
            if seq.isEmpty {
                fail(v, "an empty selection never matches")
                return nil
            }
            var alts: [Expr] = []
            for item in seq {
                if item.mapping != nil {
                    if let e = fieldMap(item, rule: rule) { alts.append(e) }
                } else if let s = item.scalar {
                    alts.append(
                        .atom(
                            add(
                                Atom(
                                    field: .anywhere,
                                    test: .pattern(Pattern(sigma: s, fold: true), cased: false).wrapping(
                                        contains: true), negated: false, rule: rule))))
                } else {
                    fail(item, "a selection list holds field maps or keyword strings")
                }
            }
            return .or(alts)
        }
        if let s = v.scalar, !v.isNull {
            return .atom(
                add(
                    Atom(
                        field: .anywhere,
                        test: .pattern(Pattern(sigma: s, fold: true), cased: false).wrapping(contains: true),
                        negated: false, rule: rule)))
        }
        fail(v, "a selection must be a map of fields, a list of maps, or a list of keywords")
        return nil
    }

    mutating func add(_ a: Atom) -> Int32 {
        atoms.append(a)
        return Int32(atoms.count - 1)
    }

    static let unsupportedModifiers: Set<String> = [
        "base64", "base64offset", "wide", "utf16", "utf16le", "utf16be", "windash",
    ]

    mutating func fieldMap(_ m: Node, rule: Int32) -> Expr? {
        var parts: [Expr] = []
        var ok = true
        for (k, v) in m.mapping! {
            guard let key = k.scalar, !key.isEmpty else {
                fail(k, "a field name must be a string")
                ok = false
                continue
            }
            if let e = fieldTest(key: k, keyText: key, value: v, rule: rule) { parts.append(e) } else { ok = false }
        }
        guard ok else { return nil }
        return parts.count == 1 ? parts[0] : .and(parts)
    }

    /// `field|mod|mod: value(s)`.
    mutating func fieldTest(key: Node, keyText: String, value: Node, rule: Int32) -> Expr? {
        let segments = keyText.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        let fieldName = segments[0]
        guard let field = Field(name: fieldName) else {
            fail(
                key,
                "unknown field \"\(fieldName)\": use a field of the normalised record (value, country, area, ...), "
                    + "source.*, context.* or watchlist.*")
            return nil
        }
        var offset = fieldName.utf8.count + 1
        var transform: String?
        var isRegex = false
        var reFlags: Regex.Options = []
        var all = false, exists = false, cased = false, neq = false, cidr = false, fieldref = false, expand = false
        var comparison: Comparison?
        for mod in segments.dropFirst() {
            switch mod {
            case "contains", "startswith", "endswith":
                if transform != nil || isRegex {
                    fail(key, "modifier \"\(mod)\" cannot follow \"\(transform ?? "re")\"", offset: offset)
                    return nil
                }
                transform = mod
            case "re": isRegex = true
            case "i", "m", "s":
                guard isRegex else {
                    fail(key, "modifier \"\(mod)\" applies to \"re\" only", offset: offset)
                    return nil
                }
                reFlags.insert(mod == "i" ? .caseInsensitive : mod == "m" ? .multiline : .dotAll)
            case "all": all = true
            case "exists": exists = true
            case "cased": cased = true
            case "neq": neq = true
            case "cidr": cidr = true
            case "fieldref": fieldref = true
            case "expand": expand = true
            case "lt", "lte", "gt", "gte": comparison = Comparison(rawValue: mod)
            default:
                if Self.unsupportedModifiers.contains(mod) {
                    fail(key, "modifier \"\(mod)\" is not supported on selector records", offset: offset)
                } else {
                    fail(key, "unknown modifier \"\(mod)\"", offset: offset)
                }
                return nil
            }
            offset += mod.utf8.count + 1
        }
        if case .watchlist(nil) = field, !exists {
            fail(key, "\"watchlist\" takes only the exists modifier; name a member such as watchlist.owner")
            return nil
        }

        // Values.
        var valueNodes: [Node]
        if let seq = value.sequence {
            valueNodes = seq
            if seq.isEmpty {
                fail(value, "an empty value list never matches")
                return nil
            }
        } else if value.mapping != nil {
            fail(value, "a field's value must be a string or a list of strings")
            return nil
        } else {
            valueNodes = [value]
        }

        if exists {
            guard valueNodes.count == 1, let s = valueNodes[0].scalar, s == "true" || s == "false" else {
                fail(value, "\"exists\" takes true or false")
                return nil
            }
            return .atom(add(Atom(field: field, test: .exists(s == "true"), negated: neq, rule: rule)))
        }

        var texts: [(String, Node)] = []
        for n in valueNodes {
            if n.isNull {
                texts.append(("\u{0}null", n))
            } else if let s = n.scalar {
                texts.append((s, n))
            } else {
                fail(n, "a value must be a string, a number or null")
                return nil
            }
        }
        if expand {
            var out: [(String, Node)] = []
            for (t, n) in texts {
                // A watched value placed into a regex is a literal (a phone's "+" is no quantifier).
                guard let expanded = expandPlaceholders(t, node: n, rule: rule, quote: isRegex) else { return nil }
                out += expanded.map { ($0, n) }
            }
            texts = out
            if texts.isEmpty { return .constant(neq) }
        }

        var leaves: [Expr] = []
        for (t, n) in texts {
            let test: Test
            if t == "\u{0}null" {
                test = .null
            } else if let comparison {
                guard let d = Double(t) else {
                    // A value from a list (expand) is partner content: never quoted in an error.
                    fail(
                        n,
                        "\"\(comparison.rawValue)\" needs a number, not \(expand ? "a value of the list" : "\"\(t)\"")")
                    return nil
                }
                test = .compare(comparison, d)
            } else if fieldref {
                guard let other = Field(name: t) else {
                    fail(n, "fieldref names an unknown field\(expand ? " (a value of the list)" : " \"\(t)\"")")
                    return nil
                }
                let position: FieldrefPosition =
                    switch transform {
                    case "contains": .contains
                    case "startswith": .start
                    case "endswith": .end
                    default: .equal
                    }
                test = .fieldref(other, cased: cased, position: position)
            } else if cidr {
                guard let c = CIDR(t) else {
                    if expand { continue }
                    fail(n, "\"\(t)\" is not a CIDR network")
                    return nil
                }
                test = .cidr(c)
            } else if isRegex {
                do {
                    test = .regex(try Regex(t, options: reFlags, limits: loader.regexLimits))
                } catch {
                    fail(n, "bad regular expression: \(error.message)", offset: error.offset)
                    return nil
                }
            } else {
                var p = Pattern(sigma: t, fold: !cased)
                switch transform {
                case "contains": p = p.wrapped(leading: true, trailing: true)
                case "startswith": p = p.wrapped(leading: false, trailing: true)
                case "endswith": p = p.wrapped(leading: true, trailing: false)
                default: break
                }
                if let lit = p.literal {
                    test = .equals(String(decoding: lit, as: UTF8.self), cased: cased)
                } else {
                    test = .pattern(p, cased: cased)
                }
            }
            leaves.append(.atom(add(Atom(field: field, test: test, negated: neq, rule: rule))))
        }
        if leaves.count == 1 { return leaves[0] }
        // pySigma: `neq` negates the whole item, so each leaf is negated and, by De Morgan, a list means none of
        // the values (all of them with `all`: not every one).
        if neq { return all ? .or(leaves) : .and(leaves) }
        return all ? .and(leaves) : .or(leaves)
    }

    /// `%owner/list%` or `%list%` replaced by each watched value of the list (active entries only).
    mutating func expandPlaceholders(_ text: String, node: Node, rule: Int32, quote: Bool = false) -> [String]? {
        guard let open = text.firstIndex(of: "%") else { return [text] }
        let rest = text[text.index(after: open)...]
        guard let close = rest.firstIndex(of: "%") else { return [text] }
        let name = String(rest[..<close])
        let lists = loader.watchlists.filter { $0.owner + "/" + $0.name == name || $0.name == name }
        guard !lists.isEmpty else {
            fail(node, "placeholder %\(name)% names no loaded watchlist (use %owner/list% or %list%)")
            return nil
        }
        if lists.count > 1 {
            fail(node, "placeholder %\(name)% is ambiguous: name it as %owner/list%")
            return nil
        }
        let list = lists[0]
        if !(expanded[rule] ?? []).contains(where: { $0.owner == list.owner && $0.list == list.name }) {
            expanded[rule, default: []].append(
                WatchlistHit(
                    owner: list.owner, list: list.name, version: list.version, ref: "", label: nil,
                    handling: list.handling, score: 1, via: "expand", watched: ""))
        }
        var values: [String] = []
        if list.isActive(at: loader.now) {
            for e in list.entries where (e.expires ?? .infinity) > loader.now {
                for s in e.selectors { values.append(s.value) }
            }
        }
        let prefix = String(text[..<open])
        let suffix = String(rest[rest.index(after: close)...])
        guard let tails = expandPlaceholders(suffix, node: node, rule: rule, quote: quote) else { return nil }
        var out: [String] = []
        for v in values {
            let value = quote ? Self.regexLiteral(v) : v
            for t in tails { out.append(prefix + value + t) }
        }
        return out
    }

    /// `s` as a regex matching exactly it (metacharacters escaped one by one, which the prefilter reads as literals).
    static func regexLiteral(_ s: String) -> String {
        var out = ""
        for c in s {
            if "\\^$.|?*+()[]{}-/#".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// Turns a parsed condition into an expression over the selections.
    mutating func resolve(_ c: Condition, selections: [(name: String, expr: Expr)], node: Node) -> Expr? {
        switch c {
        case .selection(let name, let offset):
            guard let s = selections.first(where: { $0.name == name }) else {
                fail(node, "condition names undefined selection \"\(name)\"", offset: offset)
                return nil
            }
            return s.expr
        case .not(let inner):
            return resolve(inner, selections: selections, node: node).map { .not($0) }
        case .and(let parts):
            var out: [Expr] = []
            for p in parts {
                guard let e = resolve(p, selections: selections, node: node) else { return nil }
                out.append(e)
            }
            return .and(out)
        case .or(let parts):
            var out: [Expr] = []
            for p in parts {
                guard let e = resolve(p, selections: selections, node: node) else { return nil }
                out.append(e)
            }
            return .or(out)
        case .of(let count, let pattern, let offset):
            let matched: [Expr]
            if pattern.lowercased() == "them" {
                matched = selections.filter { !$0.name.hasPrefix("_") }.map(\.expr)
            } else {
                let p = Pattern(sigma: pattern, fold: false)
                matched = selections.filter { sel in
                    var n = sel.name
                    return n.withUTF8 { p.matches($0) }
                }.map(\.expr)
            }
            guard !matched.isEmpty else {
                fail(node, "\"\(pattern)\" matches no selection", offset: offset)
                return nil
            }
            guard let count else { return .and(matched) }
            if count > matched.count {
                fail(node, "\(count) of \(pattern): only \(matched.count) selections match", offset: offset)
                return nil
            }
            return count == 1 ? .or(matched) : .atLeast(count, matched)
        }
    }

    // MARK: Correlation

    mutating func correlation(_ c: Node, id: String, name: String?, title: String, level: Priority, doc: Node) {
        guard c.mapping != nil else { return fail(c, "\"correlation\" must be a mapping") }
        guard let t = c["type"], let kind = CorrelationRule.Kind(rawValue: t.scalar ?? "") else {
            return fail(
                c["type"] ?? c, "correlation \"type\" must be event_count, value_count, temporal or temporal_ordered")
        }
        guard let rulesNode = c["rules"] else { return fail(c, "correlation has no \"rules\"") }
        let refNodes = rulesNode.sequence ?? [rulesNode]
        var refs: [(String, Node)] = []
        for r in refNodes {
            guard let s = r.scalar, !s.isEmpty else { return fail(r, "\"rules\" lists rule names or ids") }
            refs.append((s, r))
        }
        var groupBy: [Field] = []
        var groupNames: [String] = []
        if let g = c["group-by"] {
            for n in g.sequence ?? [g] {
                guard let s = n.scalar, let f = Field(name: s) else {
                    return fail(n, "unknown group-by field \"\(n.scalar ?? "?")\"")
                }
                groupBy.append(f)
                groupNames.append(s)
            }
        }
        guard let ts = c["timespan"] ?? c["timeframe"] else { return fail(c, "correlation has no \"timespan\"") }
        guard let span = parseDuration(ts.scalar ?? ""), span > 0 else {
            return fail(ts, "\"timespan\" must be a number and a unit: 30s, 10m, 1h, 2d, 1w")
        }
        if c["aliases"] != nil { return fail(c["aliases"]!, "correlation \"aliases\" are not supported") }
        var generate = false
        if let g = c["generate"] ?? doc["generate"] {
            guard let s = g.scalar, s == "true" || s == "false" else { return fail(g, "\"generate\" is true or false") }
            generate = s == "true"
        }
        var thresholds: [(Comparison?, Double)] = []
        var notEqual: [Double] = []
        var valueField: Field?
        if let cond = c["condition"] {
            guard let m = cond.mapping else { return fail(cond, "correlation \"condition\" must be a mapping") }
            for (k, v) in m {
                let key = k.scalar ?? ""
                if key == "field" {
                    guard let s = v.scalar, let f = Field(name: s) else {
                        return fail(v, "unknown field \"\(v.scalar ?? "?")\"")
                    }
                    valueField = f
                    continue
                }
                guard let d = v.scalar.flatMap(Double.init) else { return fail(v, "\"\(key)\" needs a number") }
                switch key {
                case "gt", "gte", "lt", "lte": thresholds.append((Comparison(rawValue: key), d))
                case "eq": thresholds.append((nil, d))
                case "neq": notEqual.append(d)
                default: return fail(k, "unknown condition operator \"\(key)\" (gt, gte, lt, lte, eq, neq, field)")
                }
            }
        } else if kind == .eventCount || kind == .valueCount {
            return fail(c, "\(kind.rawValue) needs a \"condition\"")
        }
        if kind == .valueCount && valueField == nil {
            return fail(c["condition"] ?? c, "value_count needs \"field\" in its condition")
        }
        if kind == .temporal || kind == .temporalOrdered, thresholds.isEmpty && notEqual.isEmpty {
            thresholds = [(.gte, Double(refs.count))]
        }
        correlations.append(
            CorrelationRule(
                id: id, name: name, title: title, level: level, kind: kind, rules: [], groupBy: groupBy,
                groupByNames: groupNames, timespan: span, valueField: valueField, thresholds: thresholds,
                notEqual: notEqual, ruleRefs: refs, generate: generate, file: doc.file, line: doc.mark.line))
    }

    /// Binds correlations to the detection rules they name (by `name` or `id`).
    mutating func resolveCorrelations() {
        var keep: [CorrelationRule] = []
        for var c in correlations {
            var ok = true
            for (ref, node) in c.ruleRefs {
                if let i = rules.firstIndex(where: { $0.name == ref || $0.id == ref }) {
                    c.rules.append(i)
                } else if correlations.contains(where: { $0.name == ref || $0.id == ref }) {
                    fail(node, "correlation of a correlation (\(ref)) is not supported")
                    ok = false
                } else {
                    fail(node, "correlation names unknown rule \"\(ref)\"")
                    ok = false
                }
            }
            if ok { keep.append(c) }
        }
        correlations = keep
        // Base rules stay quiet unless a correlation using them asks for their hits.
        for c in correlations where !c.generate { for r in c.rules { rules[r].generates = false } }
        for c in correlations where c.generate { for r in c.rules { rules[r].generates = true } }
    }

}

extension Test {
    /// Keyword values match as substrings, like Sigma's full-text keywords.
    func wrapping(contains: Bool) -> Test {
        guard case .pattern(let p, let cased) = self else { return self }
        return .pattern(p.wrapped(leading: contains, trailing: contains), cased: cased)
    }
}
