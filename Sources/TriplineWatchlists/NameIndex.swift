import Foundation
import TriplineSelectors

/// A fuzzy name hit: which entry name or alias, how well, and how the tokens lined up (SPEC §9).
public struct NameMatch: Sendable {
    public var ref: HitRef
    public var score: Double
    /// The entry's name or alias that matched (normalised).
    public var matched: String
    /// Token pairs (selector term, entry term, similarity).
    public var alignment: [(String, String, Double)]
    /// One term, or a kunya only: a weak identifier.
    public var weak: Bool
}

/// Candidates for a name come from an inverted index over every watched name and alias: each term is posted
/// under its variant group, its consonant skeleton, and its first and last three letters. Postings longer than `cap` are
/// not walked (a common name says little); a candidate must share keys with two of the query's terms (one for
/// a one-term query). Candidates are then scored by token alignment (`NameScorer`).
public final class NameIndex: @unchecked Sendable {
    /// The threshold of a list without `min_score`, chosen from the evaluation on the UN list (BENCHMARKS.md).
    public static let defaultMinScore = 0.8

    let forms: [NameForm]
    let refs: [HitRef]
    let names: [String]
    let postings: [String: [Int32]]
    let df: [String: Int32]
    let cap: Int
    private let lock = NSLock()
    private var scratch: [[UInt32]] = []

    public var count: Int { forms.count }

    /// `items`: (normalised name, where it is watched).
    public init(_ items: [(String, HitRef)], cap: Int? = nil) {
        var forms: [NameForm] = []
        var refs: [HitRef] = []
        var names: [String] = []
        var postings: [String: [Int32]] = [:]
        var df: [String: Int32] = [:]
        forms.reserveCapacity(items.count)
        for (name, ref) in items {
            let f = NameModel.form(name)
            let id = Int32(forms.count)
            forms.append(f)
            refs.append(ref)
            names.append(name)
            var seen = Set<String>()
            for t in f.terms where !t.initial {
                if seen.insert("c" + t.canon).inserted { df[t.canon, default: 0] += 1 }
                for k in Self.keys(t) where seen.insert(k).inserted { postings[k, default: []].append(id) }
            }
        }
        self.forms = forms
        self.refs = refs
        self.names = names
        self.postings = postings
        self.df = df
        self.cap = cap ?? max(2_000, items.count / 200)
    }

    static func keys(_ t: NameTerm) -> [String] {
        let base = t.text.split(separator: " ").last.map(String.init) ?? t.text
        var k = ["c:" + t.canon, "s:" + t.skeleton, "l:" + t.loose]
        if base.count >= 4 {
            let tag = t.kunya ? "abu " : ""
            k.append("p:" + tag + base.prefix(3))
            k.append("x:" + tag + base.suffix(3))
        }
        return k
    }

    /// Rarity weight of a term: log(1 + N / df), the full weight for a term no name has.
    func weight(_ t: NameTerm) -> Double {
        let n = Double(max(1, forms.count))
        var w = log(1 + n / Double(max(1, df[t.canon] ?? 0)))
        if t.initial { w *= 0.3 }
        if t.kunya { w *= 0.6 }
        return max(w, 0.05)
    }

    /// Entry names scoring at least `minScore(ref)` against `query`, best first.
    public func query(_ query: NameForm, minScore: (HitRef) -> Double) -> [NameMatch] {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty || forms.isEmpty { return [] }
        let need = min(2, content.count)
        var masks = takeScratch()
        defer { giveScratch(&masks) }
        var touched: [Int32] = []
        var overCap: [(Int, [Int32])] = []
        for (i, t) in content.prefix(32).enumerated() {
            let bit = UInt32(1) << UInt32(i)
            for k in Self.keys(t) {
                guard let p = postings[k] else { continue }
                if p.count > cap {
                    overCap.append((i, p))
                    continue
                }
                for id in p {
                    if masks[Int(id)] == 0 { touched.append(id) }
                    masks[Int(id)] |= bit
                }
            }
        }
        var candidates: [Int32] = touched.filter { masks[Int($0)].nonzeroBitCount >= need }
        // Every key of some term was too common: pair its longest posting walk with the others by intersection.
        if candidates.count < 1 && !overCap.isEmpty {
            for (i, p) in overCap {
                let bit = UInt32(1) << UInt32(i)
                for id in p where masks[Int(id)] != 0 && masks[Int(id)] & bit == 0 {
                    masks[Int(id)] |= bit
                }
            }
            candidates = touched.filter { masks[Int($0)].nonzeroBitCount >= need }
            if candidates.isEmpty && need == 2 && overCap.count >= 2 {
                // Both terms common: intersect their two shortest postings (ids ascending).
                let sorted = overCap.sorted { $0.1.count < $1.1.count }
                if let second = sorted.dropFirst().first(where: { $0.0 != sorted[0].0 }) {
                    candidates = Self.intersect(sorted[0].1, second.1)
                }
            }
        }
        for id in touched { masks[Int(id)] = 0 }
        var out: [NameMatch] = []
        let qw = content.map(weight)
        for id in candidates {
            let ref = refs[Int(id)]
            let (score, pairs) = score(query: content, weights: qw, entry: forms[Int(id)])
            if score >= minScore(ref) {
                out.append(
                    NameMatch(
                        ref: ref, score: (score * 1000).rounded() / 1000, matched: names[Int(id)], alignment: pairs,
                        weak: query.weak || forms[Int(id)].weak))
            }
        }
        return out.sorted { $0.score > $1.score }
    }

    static func intersect(_ a: [Int32], _ b: [Int32]) -> [Int32] {
        var i = 0
        var j = 0
        var out: [Int32] = []
        while i < a.count && j < b.count {
            if a[i] == b[j] {
                out.append(a[i])
                i += 1
                j += 1
            } else if a[i] < b[j] {
                i += 1
            } else {
                j += 1
            }
        }
        return out
    }

    /// Token alignment: every (query term, entry term) pair by similarity, taken greedily best first; the score
    /// is 0.6 × the query's weighted coverage + 0.4 × the entry's, weights by rarity (a one-term query: its
    /// coverage × (0.5 + 0.5 × the entry's)).
    func score(query: [NameTerm], weights qw: [Double], entry: NameForm) -> (Double, [(String, String, Double)]) {
        let et = entry.terms
        if et.isEmpty { return (0, []) }
        var pairs: [(Int, Int, Double)] = []
        for (i, q) in query.enumerated() {
            for (j, e) in et.enumerated() {
                let s = NameModel.similarity(q, e)
                if s > 0 { pairs.append((i, j, s)) }
            }
        }
        pairs.sort { $0.2 > $1.2 }
        var usedQ = [Bool](repeating: false, count: query.count)
        var usedE = [Bool](repeating: false, count: et.count)
        var chosen: [(String, String, Double)] = []
        let ew = et.map(weight)
        var coveredQ = 0.0
        var coveredE = 0.0
        for (i, j, s) in pairs where !usedQ[i] && !usedE[j] {
            usedQ[i] = true
            usedE[j] = true
            coveredQ += s * qw[i]
            coveredE += s * ew[j]
            chosen.append((query[i].text, et[j].text, (s * 1000).rounded() / 1000))
        }
        let totalQ = qw.reduce(0, +)
        let totalE = ew.reduce(0, +)
        let covQ = coveredQ / totalQ
        let covE = coveredE / totalE
        // One term says little: it must also cover much of the entry.
        if query.count == 1 && et.count > 1 { return (covQ * (0.5 + 0.5 * covE), chosen) }
        return (0.6 * covQ + 0.4 * covE, chosen)
    }

    /// Every name scored (the reference the indexed search is measured against).
    public func scan(_ query: NameForm, minScore: Double) -> [NameMatch] {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty { return [] }
        let qw = content.map(weight)
        var out: [NameMatch] = []
        for id in forms.indices {
            let (score, pairs) = score(query: content, weights: qw, entry: forms[id])
            if score >= minScore {
                out.append(
                    NameMatch(
                        ref: refs[id], score: (score * 1000).rounded() / 1000, matched: names[id], alignment: pairs,
                        weak: query.weak || forms[id].weak))
            }
        }
        return out.sorted { $0.score > $1.score }
    }

    private func takeScratch() -> [UInt32] {
        lock.lock()
        defer { lock.unlock() }
        return scratch.popLast() ?? [UInt32](repeating: 0, count: forms.count)
    }

    private func giveScratch(_ s: inout [UInt32]) {
        lock.lock()
        defer { lock.unlock() }
        scratch.append(s)
    }
}
