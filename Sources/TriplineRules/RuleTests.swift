import Foundation
import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineWatchlists
import TriplineYAML

/// Rule unit tests (`tripline test`), promtool-style. One YAML file holds:
///
///     rule_files: [../phone-area-burst.yml]   # relative to the test file
///     watchlists: ../../Watchlists             # optional directory, relative to the test file
///     now: 2030-06-01T12:00:00Z                # the clock: list review dates, ingest time
///     region: BE                               # optional default region for national numbers
///     allowed_lateness: 1h                     # optional
///     tests:
///       - name: three Brussels numbers within an hour
///         input:                               # selector records, as on the NDJSON stream
///           - {id: c1, type: phone, value: "+32 2 555 01 01", observed_at: "2030-05-01T08:00:00Z"}
///         expect:                              # every rule hit, and nothing else
///           - {rule: 6f1c..., id: c3, events: [c1, c2, c3]}   # events and priority are optional
///
/// Each test case starts with empty correlation windows.
public struct RuleTestRunner {
    public struct Outcome: Sendable {
        public var passed = 0
        public var failed = 0
        /// Readable report lines (failures with their diff, and errors).
        public var report: [String] = []
        public var errors = 0
    }

    public init() {}

    public func run(files: [String]) -> Outcome {
        var out = Outcome()
        for f in files { run(file: f, into: &out) }
        return out
    }

    /// Every `*.yml` / `*.yaml` file under `directory`, sorted.
    public static func files(in directory: String) -> [String] {
        (FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? [])
            .filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted()
            .map { (directory as NSString).appendingPathComponent($0) }
    }

    private func run(file: String, into out: inout Outcome) {
        func error(_ e: LocatedError) {
            out.errors += 1
            out.report.append(e.description)
        }
        let root: Node
        do {
            guard let r = try YAMLReader().read(path: file), r.mapping != nil else {
                return error(
                    LocatedError(file: file, mark: Mark(line: 1, column: 1), message: "a rule test file is a mapping"))
            }
            root = r
        } catch let e { return error(e) }
        for (k, _) in root.mapping! {
            let known = ["rule_files", "watchlists", "now", "region", "allowed_lateness", "tests"]
            if !known.contains(k.scalar ?? "") {
                error(k.error("unknown key \"\(k.scalar ?? "?")\" (\(known.joined(separator: ", ")))"))
            }
        }
        let base = (file as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p) }
        guard let nowNode = root["now"], let now = nowNode.scalar.flatMap(Timestamp.parse) else {
            return error((root["now"] ?? root).error("\"now\" must be an RFC 3339 time"))
        }
        var region: String?
        if let r = root["region"] {
            guard let s = r.scalar?.uppercased(), PhoneNormalizer.shared.knowsRegion(s) else {
                return error(r.error("\"region\" must be a region code with a numbering plan"))
            }
            region = s
        }
        var options = CorrelationOptions()
        if let l = root["allowed_lateness"] {
            guard let d = l.scalar.flatMap(parseDuration) else {
                return error(l.error("\"allowed_lateness\" must be a duration such as 10m or 1h"))
            }
            options.allowedLateness = d
        }
        let normalizer = SelectorNormalizer(defaultRegion: region)
        var lists: [Watchlist] = []
        if let w = root["watchlists"] {
            guard let dir = w.scalar else { return error(w.error("\"watchlists\" is a directory")) }
            let r = WatchlistLoader(normalizer: normalizer).load(directory: resolve(dir), now: now)
            if !r.errors.isEmpty {
                for e in r.errors { error(e) }
                return
            }
            lists = r.lists
        }
        guard let rf = root["rule_files"], let ruleNodes = rf.sequence ?? (rf.scalar != nil ? [rf] : nil) else {
            return error((root["rule_files"] ?? root).error("\"rule_files\" lists the rule files under test"))
        }
        var ruleFiles: [String] = []
        for n in ruleNodes {
            guard let s = n.scalar else { return error(n.error("a rule file path is a string")) }
            guard FileManager.default.fileExists(atPath: resolve(s)) else {
                return error(n.error("rule file \(s) not found (paths are relative to the test file)"))
            }
            ruleFiles.append(resolve(s))
        }
        let loaded = RuleLoader(watchlists: lists, now: now).load(files: ruleFiles)
        if !loaded.errors.isEmpty {
            for e in loaded.errors { error(e) }
            return
        }
        let index = WatchlistIndex(lists: lists)
        guard let tests = root["tests"]?.sequence else {
            return error((root["tests"] ?? root).error("\"tests\" lists the test cases"))
        }
        for t in tests {
            let name = t["name"]?.scalar ?? "test at line \(t.mark.line)"
            guard let input = t["input"]?.sequence else {
                error(t.error("test \"\(name)\" has no \"input\" list"))
                continue
            }
            var step = RecordStep(
                normalizer: normalizer, matcher: Matcher(index: index, now: now),
                engine: RuleEngine(loaded.ruleSet, options: options))
            var actual: [Hit] = []
            var bad = false
            for rec in input {
                let json = Self.json(rec)
                guard case .object(let o) = json else {
                    error(rec.error("an input record is a mapping"))
                    bad = true
                    continue
                }
                switch step.run(object: o, ingestTime: now, now: now) {
                case .accepted(_, let hits): actual += hits.filter { $0.kind == .rule }
                case .rejected(let r):
                    out.errors += 1
                    out.report.append(rec.error("input rejected: \(r.message)").description)
                    bad = true
                case .blank: break
                }
            }
            if bad { continue }
            var expected: [(Node, [String: JSONValue])] = []
            for e in t["expect"]?.sequence ?? [] {
                guard case .object(let o) = Self.json(e), o["rule"] != nil, o["id"] != nil else {
                    error(
                        e.error("an expected hit is a mapping with \"rule\" and \"id\" (and optional events, priority)")
                    )
                    bad = true
                    continue
                }
                var d: [String: JSONValue] = [:]
                for (k, v) in o { d[k] = v }
                expected.append((e, d))
            }
            if bad { continue }
            // Pair each expectation with a hit it describes; the rest on either side is the diff.
            var unmatched = Array(actual.indices)
            var missing: [[String: JSONValue]] = []
            for (_, exp) in expected {
                if let k = unmatched.firstIndex(where: { Self.describes(exp, actual[$0]) }) {
                    unmatched.remove(at: k)
                } else {
                    missing.append(exp)
                }
            }
            if missing.isEmpty && unmatched.isEmpty {
                out.passed += 1
                continue
            }
            out.failed += 1
            out.report.append("\(file):\(t.mark.line):\(t.mark.column): FAIL \(name)")
            for m in missing { out.report.append("  - missing:    " + Self.render(m)) }
            for k in unmatched { out.report.append("  + unexpected: " + Self.render(Self.summary(actual[k]))) }
        }
    }

    static func summary(_ h: Hit) -> [String: JSONValue] {
        var d: [String: JSONValue] = [
            "rule": .string(h.rule?.id ?? ""), "id": .string(h.id), "priority": .string(h.priority.rawValue),
        ]
        if let e = h.rule?.events { d["events"] = .array(e.map { .string($0) }) }
        return d
    }

    static func describes(_ exp: [String: JSONValue], _ h: Hit) -> Bool {
        let s = summary(h)
        for (k, v) in exp where s[k] != v { return false }
        return true
    }

    static func render(_ d: [String: JSONValue]) -> String {
        var o = JSONObject()
        for k in ["rule", "id", "priority", "events"] { if let v = d[k] { o.append(k, v) } }
        for (k, v) in d.sorted(by: { $0.key < $1.key }) where o[k] == nil { o.append(k, v) }
        return JSONWriter.string(.object(o))
    }

    /// YAML to JSON for records: scalars stay strings (core schema) except where a record needs otherwise.
    static func json(_ n: Node) -> JSONValue {
        switch n.kind {
        case .scalar(let s, _): return n.isNull ? .null : .string(s)
        case .sequence(let items): return .array(items.map(json))
        case .mapping(let members):
            var o = JSONObject()
            for (k, v) in members { o.append(k.scalar ?? "", json(v)) }
            return .object(o)
        }
    }
}
