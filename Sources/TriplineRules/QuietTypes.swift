import TriplineRegex
import TriplineSelectors

/// Which selector types no detection rule can match when the selector meets no watchlist: for such a selector the
/// rule step has nothing to do, so the screen in front of the step may pass it over (issue 17), rules loaded or
/// not. Decided once per rule set by evaluating each rule's condition in three-valued logic with what is known of
/// such a selector — its `type`, and that `watchlist` and its sub-fields have no values — and every other atom
/// unknown. A rule that is not certainly false for a type keeps that type in the step. Correlations count only
/// the selectors their detection rules matched, so they add nothing here.
enum QuietTypes {
    enum Truth { case yes, no, unknown }

    static func of(rules: [DetectionRule], atoms: [Atom]) -> Set<SelectorType> {
        var quiet = Set<SelectorType>()
        for type in SelectorType.allCases {
            let silent = rules.allSatisfy { rule in
                truth(rule.condition) { a in known(atoms[Int(a)], type: type) } == .no
            }
            if silent { quiet.insert(type) }
        }
        return quiet
    }

    static func truth(_ e: Expr, _ atom: (Int32) -> Truth) -> Truth {
        switch e {
        case .atom(let a): return atom(a)
        case .constant(let v): return v ? .yes : .no
        case .not(let x):
            switch truth(x, atom) {
            case .yes: return .no
            case .no: return .yes
            case .unknown: return .unknown
            }
        case .and(let xs):
            var result = Truth.yes
            for x in xs {
                switch truth(x, atom) {
                case .no: return .no
                case .unknown: result = .unknown
                case .yes: break
                }
            }
            return result
        case .or(let xs):
            var result = Truth.no
            for x in xs {
                switch truth(x, atom) {
                case .yes: return .yes
                case .unknown: result = .unknown
                case .no: break
                }
            }
            return result
        case .atLeast(let n, let xs):
            var yes = 0
            var unknown = 0
            for x in xs {
                switch truth(x, atom) {
                case .yes: yes += 1
                case .unknown: unknown += 1
                case .no: break
                }
            }
            if yes >= n { return .yes }
            return yes + unknown < n ? .no : .unknown
        }
    }

    /// An atom's value on a selector of `type` with no watchlist hits, where that alone decides it.
    static func known(_ a: Atom, type: SelectorType) -> Truth {
        let texts: [String]
        switch a.field {
        case .type: texts = [type.rawValue]
        case .watchlist: texts = []
        default: return .unknown
        }
        var found = false
        switch a.test {
        case .equals(let s, let cased):
            found = texts.contains { (cased ? $0 : foldCase($0)) == s }
        case .pattern(let p, let cased):
            found = texts.contains { t in
                var f = cased ? t : foldCase(t)
                return f.withUTF8 { p.matches($0) }
            }
        case .regex(let r):
            let scratch = Regex.Scratch()
            for t in texts {
                var s = t
                guard let m = try? s.withUTF8({ buf throws(RegexError) in try r.matches(in: buf, scratch: scratch) })
                else { return .unknown }
                found = found || m
            }
        case .cidr(let c):
            found = texts.contains { IPAddress.parse($0).map(c.contains) ?? false }
        case .compare(let op, let d):
            found = texts.contains { Double($0).map { op.holds($0, d) } ?? false }
        case .exists(let want):
            found = !texts.isEmpty == want
        case .null:
            found = texts.isEmpty
        case .fieldref:
            return .unknown
        }
        return found != a.negated ? .yes : .no
    }
}
