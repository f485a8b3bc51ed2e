import TriplineRegex
import TriplineSelectors
import TriplineWatchlists
import TriplineYAML

/// A compiled rule set (Falco-style: read, collect, compile once, then evaluate cheaply). Each field that rules
/// test has one index: exact values in hash maps, and the literals of wildcard values and the atoms of regexes
/// in one Aho–Corasick automaton. A rule is evaluated only when one of its trigger atoms fired — atoms chosen
/// so that the rule cannot match without one of them — or when it has none (the always-check list).
public final class RuleSet: Sendable {
    public let rules: [DetectionRule]
    public let correlations: [CorrelationRule]
    let atoms: [Atom]
    let fieldIndexes: [FieldIndex]
    /// Per atom: its truth comes from the indexes (absent from the hits means false).
    let indexed: [Bool]
    /// Per atom: firing it makes its rule a candidate.
    let isTrigger: [Bool]
    /// Per atom: an occurrence of its indexed literal proves it (`contains` on folded text: `*literal*`), so the
    /// candidate's condition need not test it again.
    let literalProves: [Bool]
    /// Selector types no detection rule can match without a watchlist hit (`QuietTypes`): the screen may pass
    /// such a selector over when it meets no list.
    public let quietTypes: Set<SelectorType>
    /// Per rule, its condition (evaluating one does not copy the whole rule).
    let conditions: [Expr]
    /// Per atom: its rule, and whether it is negated (read on the hot path without copying the atom).
    let atomRule: [Int32]
    let atomNegated: [Bool]
    /// Rules with no trigger, evaluated on every selector.
    public let alwaysCheck: [Int32]
    /// Per detection rule, the correlations that count it.
    let correlationsOf: [[Int]]
    let compileWarnings: [LocatedError]

    /// One field's indexes. Exact values share the watchlists' `ExactIndex` (Bloom filter in front of open
    /// addressing); key k of an index fires the atoms in `foldedAtoms[k]` / `casedAtoms[k]`.
    final class FieldIndex: Sendable {
        let field: Field
        let folded: ExactIndex?
        let foldedAtoms: [[Int32]]
        let cased: ExactIndex?
        let casedAtoms: [[Int32]]
        let literals: LiteralSet

        init(field: Field, folded: [String: [Int32]], cased: [String: [Int32]], literals: LiteralSet) {
            self.field = field
            func table(_ d: [String: [Int32]]) -> (ExactIndex?, [[Int32]]) {
                if d.isEmpty { return (nil, []) }
                let keys = d.keys.sorted()
                let items = keys.enumerated().map { (k, key) in
                    (SelectorType.username, key, HitRef(list: 0, entry: Int32(k), selector: 0))
                }
                return (ExactIndex(items), keys.map { d[$0]! })
            }
            (self.folded, foldedAtoms) = table(folded)
            (self.cased, casedAtoms) = table(cased)
            self.literals = literals
        }

        var exactCount: Int { foldedAtoms.count + casedAtoms.count }
    }

    /// An empty set.
    public convenience init() {
        self.init(builder: Builder(loader: RuleLoader(now: 0)))
    }

    init(builder b: Builder) {
        rules = b.rules
        correlations = b.correlations
        // Keep only atoms of rules that compiled.
        atoms = b.atoms
        var warnings: [LocatedError] = []
        // What each atom could be indexed by: its exact key, or the literals one of which it needs.
        enum Key {
            case none
            case exact(String, cased: Bool)
            case literals([[UInt8]])
        }
        var keys = [Key](repeating: .none, count: atoms.count)
        var proves = [Bool](repeating: false, count: atoms.count)
        var cost = [Double](repeating: .infinity, count: atoms.count)
        for (i, a) in atoms.enumerated() where !a.negated {
            if case .anywhere = a.field { continue }
            let low = a.field.isLowCardinality ? 20.0 : 1.0
            switch a.test {
            case .equals(let s, let isCased):
                keys[i] = .exact(s, cased: isCased)
                cost[i] = low
            case .pattern(let p, _):
                let lit = p.longestLiteral
                guard !lit.isEmpty else { continue }
                let f = Array(foldCase(String(decoding: lit, as: UTF8.self)).utf8)
                keys[i] = .literals([f])
                if case .pattern(_, let isCased) = a.test, !isCased, p.pieces == [.any, .literal(f), .any] {
                    proves[i] = true
                }
                cost[i] = low * (1 + 4 / Double(f.count))
            case .regex(let r):
                guard let set = RegexAtoms.extract(r.pattern) else {
                    let rule = b.rules[Int(a.rule)]
                    warnings.append(
                        LocatedError(
                            file: rule.file, mark: Mark(line: rule.line, column: 1),
                            message:
                                "warning: rule \(rule.id): regex /\(r.pattern)/ has no literal the prefilter can use; "
                                + "it runs on every selector"))
                    continue
                }
                keys[i] = .literals(set)
                let shortest = Double(set.map(\.count).min() ?? 1)
                cost[i] = low * (1.5 + 4 / shortest) * Double(set.count)
            default:
                continue
            }
        }

        // Triggers: a set of indexable atoms at least one of which holds whenever the condition holds; of an
        // `and`, the cheapest part's (a rare value rather than `type: phone`).
        func triggers(_ e: Expr) -> (cost: Double, atoms: [Int32])? {
            switch e {
            case .atom(let a): return cost[Int(a)].isFinite ? (cost[Int(a)], [a]) : nil
            case .constant(let v): return v ? nil : (0, [])
            case .not: return nil
            case .and(let parts):
                return parts.compactMap(triggers).min { $0.cost < $1.cost }
            case .or(let parts), .atLeast(_, let parts):
                var total = 0.0
                var all: [Int32] = []
                for p in parts {
                    guard let t = triggers(p) else { return nil }
                    total += t.cost
                    all += t.atoms
                }
                return (total, all)
            }
        }
        var isTrigger = [Bool](repeating: false, count: atoms.count)
        var always: [Int32] = []
        for (r, rule) in rules.enumerated() {
            if let t = triggers(rule.condition) {
                for a in t.atoms { isTrigger[Int(a)] = true }
            } else {
                always.append(Int32(r))
            }
        }
        self.isTrigger = isTrigger
        alwaysCheck = always

        // Only trigger atoms go into the indexes; every other atom is tested when its rule is a candidate.
        var literals: [Field: (patterns: [[UInt8]], values: [Int32])] = [:]
        var folded: [Field: [String: [Int32]]] = [:]
        var cased: [Field: [String: [Int32]]] = [:]
        for (i, a) in atoms.enumerated() where isTrigger[i] {
            switch keys[i] {
            case .exact(let s, let isCased):
                if isCased {
                    cased[a.field, default: [:]][s, default: []].append(Int32(i))
                } else {
                    folded[a.field, default: [:]][s, default: []].append(Int32(i))
                }
            case .literals(let set):
                for l in set {
                    literals[a.field, default: ([], [])].patterns.append(l)
                    literals[a.field, default: ([], [])].values.append(Int32(i))
                }
            case .none: break
            }
        }
        var fields = Set(folded.keys)
        fields.formUnion(cased.keys)
        fields.formUnion(literals.keys)
        fieldIndexes = fields.sorted { $0.description < $1.description }.map { f in
            let l = literals[f] ?? ([], [])
            return FieldIndex(
                field: f, folded: folded[f] ?? [:], cased: cased[f] ?? [:],
                literals: LiteralSet(patterns: l.patterns, values: l.values))
        }
        indexed = isTrigger
        literalProves = proves
        conditions = rules.map(\.condition)
        quietTypes = QuietTypes.of(rules: rules, atoms: atoms)
        atomRule = atoms.map(\.rule)
        atomNegated = atoms.map(\.negated)
        var uses = [[Int]](repeating: [], count: rules.count)
        for (ci, c) in correlations.enumerated() { for r in Set(c.rules) { uses[r].append(ci) } }
        correlationsOf = uses
        compileWarnings = warnings
    }

    /// Figures for `check` and the benchmark.
    public var summary: String {
        let exact = fieldIndexes.reduce(0) { $0 + $1.exactCount }
        let literals = fieldIndexes.reduce(0) { $0 + $1.literals.count }
        return "\(rules.count) rules, \(correlations.count) correlations; \(atoms.count) atoms; "
            + "\(fieldIndexes.count) indexed fields: \(exact) exact values, \(literals) literals; "
            + "\(alwaysCheck.count) always checked"
    }
}

/// Evaluates a rule set on one event after another. Holds per-event scratch state, so one per thread.
public struct RuleEvaluator {
    public let ruleSet: RuleSet
    private var epoch: UInt32 = 0
    private var hitStamp: [UInt32]
    private var hitVerified: [Bool]
    private var memoStamp: [UInt32]
    private var memo: [Bool]
    private var ruleStamp: [UInt32]
    private var candidates: [Int32] = []
    private let scratch = Regex.Scratch()
    /// Rule conditions evaluated so far (candidates plus always-checked rules): how well the prefilter works.
    public private(set) var evaluatedRules = 0
    /// Regex matches stopped by a PCRE2 limit (each is also reported to the caller).
    public private(set) var limitHits = 0

    /// Without the prefilter every rule and atom is evaluated directly: the reference the indexed path is
    /// tested against.
    let prefilter: Bool

    public init(_ ruleSet: RuleSet) { self.init(ruleSet, prefilter: true) }

    public init(_ ruleSet: RuleSet, prefilter: Bool) {
        self.ruleSet = ruleSet
        self.prefilter = prefilter
        hitStamp = [UInt32](repeating: 0, count: ruleSet.atoms.count)
        hitVerified = [Bool](repeating: false, count: ruleSet.atoms.count)
        memoStamp = [UInt32](repeating: 0, count: ruleSet.atoms.count)
        memo = [Bool](repeating: false, count: ruleSet.atoms.count)
        ruleStamp = [UInt32](repeating: 0, count: ruleSet.rules.count)
    }

    /// Indices of the detection rules that match, in rule order. `problem` hears of regex limits hit.
    public mutating func evaluate(_ event: RuleEvent, problem: (String) -> Void = { _ in }) -> [Int] {
        epoch &+= 1
        if epoch == 0 {  // wrapped: clear the stamps
            for i in hitStamp.indices { hitStamp[i] = 0 }
            for i in memoStamp.indices { memoStamp[i] = 0 }
            for i in ruleStamp.indices { ruleStamp[i] = 0 }
            epoch = 1
        }
        candidates.removeAll(keepingCapacity: true)
        let set = ruleSet
        if !prefilter {
            var matched: [Int] = []
            for r in set.rules.indices where eval(set.conditions[r], event, problem) { matched.append(r) }
            return matched
        }
        for fi in set.fieldIndexes {
            event.forEachText(fi.field) { text in
                if fi.folded != nil || !fi.literals.isEmpty {
                    withFoldedBytes(text) { buf in
                        if let ix = fi.folded {
                            let k = ix.find(.username, bytes: buf)
                            if k >= 0 { for a in fi.foldedAtoms[k] { fire(a, verified: true) } }
                        }
                        let literals = fi.literals
                        if !literals.isEmpty {
                            set.literalProves.withUnsafeBufferPointer { proves in
                                literals.scan(buf) { a in fire(a, verified: proves[Int(a)]) }
                            }
                        }
                    }
                }
                if let ix = fi.cased {
                    var t = text
                    let k = t.withUTF8 { ix.find(.username, bytes: $0) }
                    if k >= 0 { for a in fi.casedAtoms[k] { fire(a, verified: true) } }
                }
            }
        }
        if !set.alwaysCheck.isEmpty { candidates += set.alwaysCheck }
        if candidates.isEmpty { return [] }
        candidates.sort()
        evaluatedRules += candidates.count
        var matched: [Int] = []
        for r in candidates where eval(set.conditions[Int(r)], event, problem) { matched.append(Int(r)) }
        return matched
    }

    @inline(__always)
    private mutating func fire(_ a: Int32, verified: Bool) {
        let i = Int(a)
        if hitStamp[i] != epoch {
            hitStamp[i] = epoch
            hitVerified[i] = verified
        } else if verified {
            hitVerified[i] = true
        }
        if ruleSet.isTrigger[i] {
            let r = Int(ruleSet.atomRule[i])
            if ruleStamp[r] != epoch {
                ruleStamp[r] = epoch
                candidates.append(Int32(r))
            }
        }
    }

    private mutating func eval(_ e: Expr, _ ev: RuleEvent, _ problem: (String) -> Void) -> Bool {
        switch e {
        case .atom(let a): return atom(a, ev, problem)
        case .constant(let v): return v
        case .not(let x): return !eval(x, ev, problem)
        case .and(let xs):
            for x in xs where !eval(x, ev, problem) { return false }
            return true
        case .or(let xs):
            for x in xs where eval(x, ev, problem) { return true }
            return false
        case .atLeast(let n, let xs):
            var k = 0
            for x in xs where eval(x, ev, problem) {
                k += 1
                if k >= n { return true }
            }
            return false
        }
    }

    private mutating func atom(_ a: Int32, _ ev: RuleEvent, _ problem: (String) -> Void) -> Bool {
        let i = Int(a)
        if prefilter && ruleSet.indexed[i] {
            guard hitStamp[i] == epoch else { return false }  // its literal or value is absent
            if hitVerified[i] { return true }
        }
        if memoStamp[i] == epoch { return memo[i] }
        let v = test(ruleSet.atoms[i], ev, problem) != ruleSet.atomNegated[i]
        memoStamp[i] = epoch
        memo[i] = v
        if prefilter && ruleSet.indexed[i] { hitVerified[i] = v }
        return v
    }

    private mutating func test(_ a: Atom, _ ev: RuleEvent, _ problem: (String) -> Void) -> Bool {
        var found = false
        switch a.test {
        case .equals(let s, let cased):
            ev.forEachText(a.field) { t in if !found && (cased ? t == s : foldCase(t) == s) { found = true } }
        case .pattern(let p, let cased):
            ev.forEachText(a.field) { t in
                guard !found else { return }
                var f = cased ? t : foldCase(t)
                found = f.withUTF8 { p.matches($0) }
            }
        case .regex(let r):
            var limit: RegexError?
            let scratch = self.scratch
            ev.forEachText(a.field) { t in
                guard !found else { return }
                var s = t
                let result = s.withUTF8 { buf in
                    Result { () throws(RegexError) -> Bool in try r.matches(in: buf, scratch: scratch) }
                }
                switch result {
                case .success(let m): found = m
                case .failure(let e): limit = e
                }
            }
            if let limit {
                limitHits += 1
                let rule = ruleSet.rules[Int(a.rule)]
                problem("rule \(rule.id): field \(a.field): \(limit.description); treated as no match")
            }
        case .cidr(let c):
            ev.forEachText(a.field) { t in
                if !found, let ip = IPAddress.parse(t), c.contains(ip) { found = true }
            }
        case .compare(let op, let d):
            ev.forEachText(a.field) { t in if !found, let x = Double(t), op.holds(x, d) { found = true } }
        case .exists(let want):
            found = ev.exists(a.field) == want
        case .null:
            found = !ev.exists(a.field)
        case .fieldref(let other, let cased, let position):
            var theirs: [String] = []
            ev.forEachText(other) { theirs.append(cased ? $0 : foldCase($0)) }
            ev.forEachText(a.field) { t in
                guard !found else { return }
                let mine = cased ? t : foldCase(t)
                for o in theirs {
                    let hit: Bool
                    switch position {
                    case .equal: hit = mine == o
                    case .contains: hit = mine.utf8.count >= o.utf8.count && mine.contains(o)
                    case .start: hit = mine.utf8.starts(with: o.utf8)
                    case .end: hit = mine.utf8.reversed().starts(with: o.utf8.reversed())
                    }
                    if hit {
                        found = true
                        return
                    }
                }
            }
        }
        return found
    }
}

extension CIDR {
    /// Whether `ip` lies in this network.
    func contains(_ ip: IPAddress.Bytes) -> Bool {
        guard ip.version == address.version else { return false }
        var bitsLeft = bits
        for i in 0..<16 where bitsLeft > 0 {
            let n = min(8, bitsLeft)
            let mask: UInt8 = n == 8 ? 0xFF : ~(0xFF >> UInt8(n))
            if ip.bytes[i] & mask != address.bytes[i] & mask { return false }
            bitsLeft -= n
        }
        return true
    }
}
