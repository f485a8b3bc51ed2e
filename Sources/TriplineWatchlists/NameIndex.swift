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

/// Every watched name and alias, compiled for fuzzy search (issue 7). Two levels:
///
/// - the **vocabulary**: each distinct term once, with its rarity weight and term-level keys (variant group,
///   skeletons, the spelling and its one-letter deletions, first and last three letters, initials). A query term
///   finds the vocabulary terms alike to it through those keys, and each is scored once per query
///   (`NameModel.similarity`), not once per name that carries it;
/// - the **names**: each name's term ids, and two postings per term — every name carrying it, and the names in
///   whose *rare prefix* it stands (their rarest terms, up to what a match must cover of them).
///
/// A name scoring at least the floor must cover ≥ (floor − 0.4) / 0.6 of the query's weight and ≥ (floor − 0.6) /
/// 0.4 of its own (the score is 0.6 × one + 0.4 × the other): so it shares a term with the query's rarest terms, and
/// one of its own rarest terms is alike to a query term. The query walks whichever of the two posting sets is
/// shorter; common terms ("Mohammed") stand in almost no name's rare prefix, so their long postings are never
/// walked for them — that is the cap on over-common postings, exact rather than a cut-off. `scan` scores every name
/// with the same scorer (the reference the index is measured against).
public final class NameIndex: @unchecked Sendable {
    /// The threshold of a list without `min_score`, chosen from the evaluation on the UN list (BENCHMARKS.md).
    public static let defaultMinScore = 0.8
    /// The query's share of the score (the name's is the rest).
    static let queryShare = 0.6

    // Vocabulary.
    let vocab: [NameTerm]
    let vocabWeight: [Double]
    let termKeys: [UInt64: [Int32]]
    let df: [String: Int32]
    // Names.
    let start: [Int32]
    let terms: [Int32]
    let total: [Double]
    let weakName: [Bool]
    let refs: [HitRef]
    let names: [String]
    let full: [[Int32]]
    let prefix: [[Int32]]
    /// The lowest threshold the postings were cut for.
    public let floor: Double
    private let lock = NSLock()
    private var scratch: [Scratch] = []

    public var count: Int { refs.count }

    /// `items`: (normalised name, where it is watched); `floor`: the lowest `min_score` any list uses.
    public init(_ items: [(String, HitRef)], floor: Double = NameIndex.defaultMinScore) {
        var ids: [NameTerm: Int32] = [:]
        var vocab: [NameTerm] = []
        var start: [Int32] = [0]
        var terms: [Int32] = []
        var weakName: [Bool] = []
        var refs: [HitRef] = []
        var names: [String] = []
        var dfById: [Int32] = []
        start.reserveCapacity(items.count + 1)
        terms.reserveCapacity(items.count * 3)
        for (name, ref) in items {
            let f = NameModel.form(name)
            var seenCanon: Set<String> = []
            for t in f.terms {
                let id: Int32
                if let known = ids[t] {
                    id = known
                } else {
                    id = Int32(vocab.count)
                    ids[t] = id
                    vocab.append(t)
                    dfById.append(0)
                }
                terms.append(id)
                if !t.initial && seenCanon.insert(t.canon).inserted { dfById[Int(id)] += 1 }
            }
            start.append(Int32(terms.count))
            weakName.append(f.weak)
            refs.append(ref)
            names.append(name)
        }
        // Document frequency per variant group (canon), then weights.
        var df: [String: Int32] = [:]
        for (i, t) in vocab.enumerated() where dfById[i] > 0 { df[t.canon, default: 0] += dfById[i] }
        let n = Double(max(1, refs.count))
        let vocabWeight = vocab.map { Self.weight($0, df: df, n: n) }
        var termKeys: [UInt64: [Int32]] = [:]
        for (i, t) in vocab.enumerated() {
            for k in Self.keys(t, entry: true) { termKeys[k, default: []].append(Int32(i)) }
        }
        // Postings: every name per term, and the names whose rare prefix holds it.
        let coverE = max(0, (floor - Self.queryShare) / (1 - Self.queryShare))
        var full = [[Int32]](repeating: [], count: vocab.count)
        var prefix = [[Int32]](repeating: [], count: vocab.count)
        var total: [Double] = []
        total.reserveCapacity(refs.count)
        var order: [Int32] = []
        for e in 0..<refs.count {
            let r = Int(start[e])..<Int(start[e + 1])
            var w = 0.0
            for j in r { w += vocabWeight[Int(terms[j])] }
            total.append(w)
            order.removeAll(keepingCapacity: true)
            for j in r where !order.contains(terms[j]) { order.append(terms[j]) }
            for t in order { full[Int(t)].append(Int32(e)) }
            order.sort { vocabWeight[Int($0)] > vocabWeight[Int($1)] }
            var rest = w
            for t in order {
                if rest < coverE * w && coverE > 0 { break }
                prefix[Int(t)].append(Int32(e))
                for j in r where terms[j] == t { rest -= vocabWeight[Int(t)] }
            }
        }
        self.vocab = vocab
        self.vocabWeight = vocabWeight
        self.termKeys = termKeys
        self.df = df
        self.start = start
        self.terms = terms
        self.total = total
        self.weakName = weakName
        self.refs = refs
        self.names = names
        self.full = full
        self.prefix = prefix
        self.floor = floor
    }

    /// Rarity weight of a term: log(1 + N / df), the full weight for a term no name has.
    static func weight(_ t: NameTerm, df: [String: Int32], n: Double) -> Double {
        var w = log(1 + n / Double(max(1, df[t.canon] ?? 0)))
        if t.initial { w *= 0.3 }
        if t.kunya { w *= 0.6 }
        return max(w, 0.05)
    }

    func weight(_ t: NameTerm) -> Double { Self.weight(t, df: df, n: Double(max(1, refs.count))) }

    /// Term-level keys: two terms `NameModel.similarity` finds alike share one — the variant group, the skeleton,
    /// the spelling or one of its one-letter deletions (one edit apart), an initial's letter; against Arabic script
    /// also the loose skeleton, the skeleton's one-letter deletions and the consonants. Vocabulary terms post the
    /// Arabic-only keys under one tag when they are from Arabic script and another when not; a Latin query term looks
    /// up only the first (a Latin pair never uses them), an Arabic one both.
    static func keys(_ t: NameTerm, entry: Bool) -> [UInt64] {
        var k: [UInt64] = [hash(1, t.canon)]
        if !t.skeleton.isEmpty { k.append(hash(2, t.skeleton)) }
        let tags: [UInt8] = entry ? [t.arabic ? 0 : 1] : t.arabic ? [0, 1] : [0]
        if t.loose.count >= 2 { for a in tags { k.append(hash(3 + a * 10, t.loose)) } }
        if t.initial {
            if entry { k.append(hash(4, t.text)) }
            return k
        }
        if !entry, t.canon.firstIndex(of: ":") == nil, let c = t.text.first { k.append(hash(4, String(c))) }
        let text = Array(t.text.utf8)
        deletions(text, tag: 5, into: &k)
        let skel = Array(t.skeleton.utf8)
        if skel.count >= 3 { for a in tags { deletions(skel, tag: 6 + a * 10, into: &k) } }
        if skel.count >= 4 { deletions(skel, tag: 7, into: &k) }
        let consonants = text.filter { !"aeiou".utf8.contains($0) }
        if consonants.count >= 2 { for a in tags { k.append(hash(9 + a * 10, consonants[...])) } }
        return k
    }

    /// The spelling and each spelling with one letter left out: two spellings one edit apart share one.
    static func deletions(_ s: [UInt8], tag: UInt8, into k: inout [UInt64]) {
        k.append(hash(tag, s[...]))
        if s.count > 24 { return }
        var d = s
        for i in 0..<s.count {
            d.remove(at: i)
            k.append(hash(tag, d[...]))
            d.insert(s[i], at: i)
        }
    }

    static func hash(_ tag: UInt8, _ s: String) -> UInt64 { hash(tag, Array(s.utf8)[...]) }

    static func hash(_ tag: UInt8, _ s: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(tag)
        for b in s {
            h ^= UInt64(b)
            h &*= 0x100_0000_01b3
        }
        return h
    }

    /// Entry names scoring at least `minScore(ref)` against `query`, best first. `minScore` below `floor` is
    /// treated as `floor` for finding candidates.
    public func query(_ query: NameForm, minScore: (HitRef) -> Double) -> [NameMatch] {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty || refs.isEmpty { return [] }
        let s = takeScratch()
        defer { giveScratch(s) }
        s.begin(content)
        // Vocabulary terms alike to some query term, scored against every query term once.
        for q in content {
            for k in Self.keys(q, entry: false) {
                guard let p = termKeys[k] else { continue }
                for v in p where s.vocabStamp[Int(v)] != s.gen { s.add(v, vocab[Int(v)], content) }
            }
        }
        s.refineWeights()
        let candidates = self.candidates(content, s)
        return collect(content, weak: query.weak, s, candidates, minScore: minScore)
    }

    /// Names worth scoring: from the query's rarest terms (every name carrying an alike term) or from every query
    /// term (the names whose rare prefix holds an alike term), whichever walks fewer postings.
    func candidates(_ content: [NameTerm], _ s: Scratch) -> [Int32] {
        let qn = content.count
        let qw = s.qw
        let wq = qw.reduce(0, +)
        let coverQ = qn == 1 ? floor : (floor - (1 - Self.queryShare)) / Self.queryShare
        // The rarest query terms, until what is left could not reach the coverage a match needs.
        let byWeight = (0..<qn).sorted { qw[$0] > qw[$1] }
        var rare = [Bool](repeating: false, count: qn)
        var rest = wq
        for i in byWeight {
            if rest < coverQ * wq && coverQ > 0 { break }
            rare[i] = true
            rest -= qw[i]
        }
        var costA = 0
        var costB = 0
        for r in 0..<s.rows {
            let v = Int(s.rowVocab[r])
            for i in 0..<qn where s.sims[r * qn + i] > 0 {
                costB += prefix[v].count
                if rare[i] { costA += full[v].count }
            }
        }
        s.entryGen &+= 1
        if s.entryGen == 0 {
            for i in s.entryStamp.indices { s.entryStamp[i] = 0 }
            s.entryGen = 1
        }
        var out: [Int32] = []
        for r in 0..<s.rows {
            let v = Int(s.rowVocab[r])
            var walk = false
            for i in 0..<qn where s.sims[r * qn + i] > 0 && (costA > costB || rare[i]) { walk = true }
            if !walk { continue }
            for e in costA <= costB ? full[v] : prefix[v] where s.entryStamp[Int(e)] != s.entryGen {
                s.entryStamp[Int(e)] = s.entryGen
                out.append(e)
            }
        }
        return out
    }

    func collect(
        _ content: [NameTerm], weak: Bool, _ s: Scratch, _ candidates: [Int32], minScore: (HitRef) -> Double
    ) -> [NameMatch] {
        var out: [NameMatch] = []
        for e in candidates {
            let score = score(Int(e), s, pairs: nil)
            let ref = refs[Int(e)]
            if score >= minScore(ref) {
                var pairs: [(String, String, Double)] = []
                _ = self.score(Int(e), s, pairs: &pairs)
                out.append(
                    NameMatch(
                        ref: ref, score: (score * 1000).rounded() / 1000, matched: names[Int(e)], alignment: pairs,
                        weak: weak || weakName[Int(e)]))
            }
        }
        return out.sorted { $0.score > $1.score || ($0.score == $1.score && $0.ref.entry < $1.ref.entry) }
    }

    /// Token alignment: every (query term, name term) pair by similarity, taken greedily best first; the score
    /// is 0.6 × the query's weighted coverage + 0.4 × the name's, weights by rarity (a one-term query against a
    /// longer name: its coverage × (0.5 + 0.5 × the name's)).
    func score(_ e: Int, _ s: Scratch, pairs: UnsafeMutablePointer<[(String, String, Double)]>?) -> Double {
        let lo = Int(start[e])
        let hi = Int(start[e + 1])
        let en = hi - lo
        if en == 0 { return 0 }
        let qn = s.qn
        var found: [(Int32, Int32, Double)] = s.pairBuffer
        found.removeAll(keepingCapacity: true)
        for j in 0..<en {
            let v = Int(terms[lo + j])
            guard s.vocabStamp[v] == s.gen else { continue }
            let r = Int(s.vocabSlot[v]) * qn
            for i in 0..<qn where s.sims[r + i] > 0 { found.append((Int32(i), Int32(j), s.sims[r + i])) }
        }
        if found.isEmpty {
            s.pairBuffer = found
            return 0
        }
        // Best first; ties by position, so the query and the scan align alike.
        found.sort { $0.2 > $1.2 || ($0.2 == $1.2 && ($0.0, $0.1) < ($1.0, $1.1)) }
        var usedQ: UInt64 = 0
        var usedE: UInt64 = 0
        var coveredQ = 0.0
        var coveredE = 0.0
        for (i, j, sim) in found where usedQ & (1 << UInt64(i)) == 0 && usedE & (1 << UInt64(min(j, 63))) == 0 {
            usedQ |= 1 << UInt64(i)
            usedE |= 1 << UInt64(min(j, 63))
            let v = Int(terms[lo + Int(j)])
            coveredQ += sim * s.qw[Int(i)]
            coveredE += sim * vocabWeight[v]
            if let pairs {
                pairs.pointee.append((s.content[Int(i)].text, vocab[v].text, (sim * 1000).rounded() / 1000))
            }
        }
        s.pairBuffer = found
        let covQ = coveredQ / s.wq
        let covE = coveredE / total[e]
        // One term says little: it must also cover much of the name.
        if qn == 1 && en > 1 { return covQ * (0.5 + 0.5 * covE) }
        // A one-term name (weak) inside a longer query: the query's other terms count against it.
        if en == 1 && qn > 1 { return covE * (0.3 + 0.7 * covQ) }
        return Self.queryShare * covQ + (1 - Self.queryShare) * covE
    }

    /// Every name scored with the same scorer, every vocabulary term compared with every query term (the
    /// reference the indexed search is measured against).
    public func scan(_ query: NameForm, minScore: Double) -> [NameMatch] {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty || refs.isEmpty { return [] }
        let s = takeScratch()
        defer { giveScratch(s) }
        s.begin(content)
        for v in vocab.indices { s.add(Int32(v), vocab[v], content) }
        s.refineWeights()
        return collect(content, weak: query.weak, s, (0..<Int32(refs.count)).map { $0 }, minScore: { _ in minScore })
    }

    /// Per-query working memory, reused: stamps over the vocabulary and the names instead of clearing.
    final class Scratch {
        var vocabStamp: [UInt32]
        var vocabSlot: [Int32]
        var entryStamp: [UInt32]
        var gen: UInt32 = 0
        var entryGen: UInt32 = 0
        var qn = 0
        var rows = 0
        var rowVocab: [Int32] = []
        var sims: [Double] = []
        var qw: [Double] = []
        var wq = 0.0
        var content: [NameTerm] = []
        var pairBuffer: [(Int32, Int32, Double)] = []
        unowned let index: NameIndex

        init(_ index: NameIndex) {
            self.index = index
            vocabStamp = [UInt32](repeating: 0, count: index.vocab.count)
            vocabSlot = [Int32](repeating: 0, count: index.vocab.count)
            entryStamp = [UInt32](repeating: 0, count: index.refs.count)
        }

        func begin(_ content: [NameTerm]) {
            gen &+= 1
            if gen == 0 {
                for i in vocabStamp.indices { vocabStamp[i] = 0 }
                gen = 1
            }
            qn = content.count
            self.content = content
            qw = content.map(index.weight)
            wq = qw.reduce(0, +)
            rows = 0
            rowVocab.removeAll(keepingCapacity: true)
            sims.removeAll(keepingCapacity: true)
        }

        /// A query term no name carries (a misspelling, or a spelling from another script) weighs what the most
        /// alike vocabulary term weighs: "Mohammad" misspelt is still common, and unvocalised محمد is Muhammad.
        func refineWeights() {
            for i in 0..<qn where index.df[content[i].canon] == nil {
                var best = 0.0
                var w = qw[i]
                for r in 0..<rows where !index.vocab[Int(rowVocab[r])].initial {
                    let sim = sims[r * qn + i]
                    let vw = index.vocabWeight[Int(rowVocab[r])]
                    if sim > best || (sim == best && sim > 0 && vw < w) {
                        best = sim
                        w = vw
                    }
                }
                qw[i] = w
            }
            wq = qw.reduce(0, +)
        }

        func add(_ v: Int32, _ t: NameTerm, _ content: [NameTerm]) {
            vocabStamp[Int(v)] = gen
            vocabSlot[Int(v)] = Int32(rows)
            rowVocab.append(v)
            for q in content { sims.append(NameModel.similarity(q, t)) }
            rows += 1
        }
    }

    private func takeScratch() -> Scratch {
        lock.lock()
        defer { lock.unlock() }
        return scratch.popLast() ?? Scratch(self)
    }

    private func giveScratch(_ s: Scratch) {
        lock.lock()
        defer { lock.unlock() }
        scratch.append(s)
    }
}

extension NameIndex {
    /// Debug: (rows scored, candidates) for a query; misses of the term keys against a full vocabulary scan.
    public func explain(_ query: NameForm) -> String {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty { return "" }
        let s = Scratch(self)
        s.begin(content)
        for q in content {
            for k in Self.keys(q, entry: false) {
                guard let p = termKeys[k] else { continue }
                for v in p where s.vocabStamp[Int(v)] != s.gen { s.add(v, vocab[Int(v)], content) }
            }
        }
        let rows = s.rows
        s.refineWeights()
        var best: [String] = []
        for r in 0..<s.rows {
            for i in 0..<s.qn where s.sims[r * s.qn + i] > 0 {
                best.append(
                    "\(content[i].text)~\(vocab[Int(s.rowVocab[r])].text) \(s.sims[r * s.qn + i]) w \(vocabWeight[Int(s.rowVocab[r])])"
                )
            }
        }
        var alike = 0
        for r in 0..<s.rows where (0..<s.qn).contains(where: { s.sims[r * s.qn + $0] > 0 }) { alike += 1 }
        let c = candidates(content, s)
        var missed: [String] = []
        for (i, q) in content.enumerated() {
            for v in vocab.indices where s.vocabStamp[v] != s.gen {
                let sim = NameModel.similarity(q, vocab[v])
                if sim > 0 { missed.append("\(i):\(q.text)~\(vocab[v].text) \(sim)") }
            }
        }
        return
            "\(best) rows \(rows) alike \(alike) candidates \(c.count) missed \(missed.count) \(missed.prefix(6)) w \(s.qw)"
    }
}
