import Foundation
import TriplineSelectors

/// A fuzzy name hit: which entry name or alias, how well, and how the tokens lined up (SPEC §9).
public struct NameMatch: Sendable {
    public var ref: HitRef
    public var score: Double
    /// The entry's name or alias that matched (normalised).
    public var matched: String
    /// Token pairs (selector term, entry term, similarity, how they met: `NameModel.how`).
    public var alignment: [(String, String, Double, String)]
    /// One term, or a kunya only: a weak identifier.
    public var weak: Bool
}

/// Every watched name and alias, compiled for fuzzy search (issue 7). Two levels:
///
/// - the **vocabulary**: each distinct term once, with its rarity weight and term-level keys (variant group,
///   skeleton, the spelling and its one-letter deletions, initials; against Arabic script the loose skeleton, the
///   skeleton's deletions and the consonants). Two terms `NameModel.similarity` finds alike always share a key, so
///   a query term finds every alike vocabulary term through them, and each is scored once per query, not once per
///   name that carries it;
/// - the **names**: each name's term ids, and two postings per term — every name carrying it, and the names in
///   whose *rare prefix* it stands (their rarest terms, up to what a match must cover of them).
///
/// A name scoring at least the floor must cover ≥ (floor − 0.4) / 0.6 of the query's weight and ≥ (floor − 0.6) /
/// 0.4 of its own (the score is 0.6 × one + 0.4 × the other): so it shares a term with the query's rarest terms, and
/// one of its own rarest terms is alike to a query term. The query walks whichever of the two posting sets is
/// shorter (on the query's side, the cheapest set of terms whose absence would leave too little); common terms ("Mohammed") stand in almost no name's rare prefix, so their long postings are never
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
    /// Each vocabulary term read from Arabic script, and whether any is.
    let arabicTerm: [Bool]
    let hasArabic: Bool
    /// The vocabulary as `similarity` reads it: ids for groups and loose skeletons, spellings as bytes.
    let packed: [Packed]
    let bytes: [UInt8]
    let canonIDs: [String: Int32]
    let looseIDs: [String: Int32]
    let termKeys: [UInt64: [Int32]]
    /// Most vocabulary terms sharing one key, and how many keys were left out (over `keyBucketCap`, or a spelling
    /// with two letters left out posted by more than `pairKeyCap` terms).
    public let largestKeyBucket: Int
    public let droppedKeys: Int
    /// Most terms posting one spelling-with-two-letters-left-out (before `pairKeyCap`).
    public let largestPairPosting: Int
    /// The most vocabulary terms one key may hold: a backstop, far above lists of real names (the 1,000,000-name
    /// benchmark's largest, a short key, is printed by `make bench`; the UN and EU lists' by the suite).
    public static let keyBucketCap = 2_048
    /// The most terms one spelling-with-two-letters-left-out may be posted by. Below both, the index finds exactly
    /// what the scan finds; a key left out loses only the pairs alike through it alone (two edits apart, where
    /// hundreds of other terms are as near).
    public static let pairKeyCap = 512

    /// Vocabulary terms without a row (see `reachVisitCap`): a query reaches their alike terms through keys.
    let crowded: [Bool]
    public let crowdedTerms: Int
    /// By list (`HitRef.list`): how many of its names carry a crowded term, and how many a term that lost a key to a
    /// cap — for the operator's warning, most first (the list built around one spelling leads).
    public let crowdedNamesByList: [Int32: Int]
    public let droppedNamesByList: [Int32: Int]
    /// Most postings one term's keys visited at build time (terms with a row), and comparisons made in all.
    public let widestReach: Int
    public let comparisons: Int
    /// The most postings a term's keys may visit for it to get a row when the index is built, and the most
    /// comparisons the build makes in all: far above lists of real names (the 1,000,000-name benchmark's figures are
    /// printed by `make bench`).
    public static let reachVisitCap = 16_384
    public static let comparisonBudget = 64_000_000

    /// Most alike terms one vocabulary term has (its row, found when the index was built).
    public var largestAlikeRow: Int {
        var m = 0
        for i in 0..<(alikeAt.count - 1) { m = max(m, Int(alikeAt[i + 1] - alikeAt[i])) }
        return m
    }
    /// Each vocabulary term's alike terms with their similarity, found and scored once when the index is built: a
    /// query term that is a known spelling reads its row here instead of comparing.
    let termIDs: [NameTerm: Int32]
    let alikeAt: [Int32]
    let alikeTerm: [Int32]
    let alikeSim: [Double]
    let df: [String: Int32]
    // Names.
    /// Each name as one record, where its postings point: [entry, term count, total weight (Float bits), term ids...]
    /// — a candidate costs one cache line, not three.
    let records: [Int32]
    let recordAt: [Int32]
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

    /// `items`: (normalised name, where it is watched); `scripts`: the script each was written in (ISO 15924; none:
    /// Latin); `floor`: the lowest `min_score` any list uses; the caps and the budget: see `NameIndex.keyBucketCap`,
    /// `.pairKeyCap`, `.comparisonBudget`.
    public init(
        _ items: [(String, HitRef)], scripts: [String?] = [], floor: Double = NameIndex.defaultMinScore,
        keyBucketCap: Int = NameIndex.keyBucketCap, pairKeyCap: Int = NameIndex.pairKeyCap,
        comparisonBudget: Int = NameIndex.comparisonBudget
    ) {
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
        for (i, (name, ref)) in items.enumerated() {
            let f = NameModel.form(normalized: name, script: i < scripts.count ? scripts[i] : nil)
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
        var canonIDs: [String: Int32] = [:]
        var looseIDs: [String: Int32] = [:]
        var bytes: [UInt8] = []
        func id(_ key: String, _ ids: inout [String: Int32]) -> Int32 {
            if let known = ids[key] { return known }
            ids[key] = Int32(ids.count)
            return Int32(ids.count - 1)
        }
        let packed = vocab.map {
            var p = Self.pack(
                $0, canon: id($0.canon, &canonIDs), loose: $0.loose.count >= 2 ? id($0.loose, &looseIDs) : -1,
                into: &bytes)
            if let near = $0.near { p.near = id(near, &canonIDs) }
            return p
        }
        // Term keys. A spelling with two letters left out (`deletionPairs`) is posted only while few terms post it
        // so: one spelling and thousands of spellings two letters longer share it — a list built around one key,
        // each of whose terms would be compared with every other (quadratic; 32,000 such names took minutes).
        var termKeys: [UInt64: [Int32]] = [:]
        var pairPostings: [UInt64: [Int32]] = [:]
        for (i, t) in vocab.enumerated() {
            let own = Set(Self.keys(t, entry: true, pairs: false))
            for k in own { termKeys[k, default: []].append(Int32(i)) }
            for k in Set(Self.pairKeys(t)) where !own.contains(k) { pairPostings[k, default: []].append(Int32(i)) }
        }
        var droppedPairs = 0
        var largestPairs = 0
        for (k, v) in pairPostings {
            largestPairs = max(largestPairs, v.count)
            if v.count > pairKeyCap {
                droppedPairs += 1
            } else if termKeys[k] == nil {
                termKeys[k] = v
            } else {
                termKeys[k]! += v
                termKeys[k]!.sort()  // in term order, as each term posted its keys
            }
        }
        // Any key more terms share than a list of real names has them share (a backstop: see `keyBucketCap`).
        var largest = 0
        var overFull: [UInt64] = []
        for (k, v) in termKeys {
            largest = max(largest, v.count)
            if v.count > keyBucketCap { overFull.append(k) }
        }
        var lostKey = [Bool](repeating: false, count: vocab.count)
        for (_, v) in pairPostings where v.count > pairKeyCap { for t in v { lostKey[Int(t)] = true } }
        for k in overFull {
            for t in termKeys[k]! { lostKey[Int(t)] = true }
            termKeys[k] = nil
        }
        // Alike terms of every term, as a query term would find them.
        var alikeAt: [Int32] = [0]
        var alikeTerm: [Int32] = []
        var alikeSim: [Double] = []
        let seen = Scratch(vocab: vocab.count)
        var reached: [Int32] = []
        // A term whose keys visit more postings than a real name's do, or past the build's budget, is *crowded*: no
        // row; a query with it reaches its alike terms through its keys, as for a spelling no name has (the same
        // terms, found at query time). So a list of thousands of mutually alike spellings costs bounded time and
        // memory to build, and what is found stays what the scan finds. The budget goes to the terms whose keys visit
        // fewest postings first: ordinary names keep their rows when such a list has spent the rest.
        var visitsOf = [Int](repeating: 0, count: vocab.count)
        for a in vocab.indices {
            var c = 0
            for k in Self.keys(vocab[a], entry: false) { c += termKeys[k]?.count ?? 0 }
            visitsOf[a] = c
        }
        var crowded = [Bool](repeating: false, count: vocab.count)
        var planned = 0
        for a in vocab.indices.sorted(by: { (visitsOf[$0], $0) < (visitsOf[$1], $1) }) {
            if visitsOf[a] > Self.reachVisitCap || planned + visitsOf[a] > comparisonBudget {
                crowded[a] = true
            } else {
                planned += visitsOf[a]
            }
        }
        var compared = 0
        var widest = 0
        bytes.withUnsafeBufferPointer { b in
            for a in vocab.indices {
                if crowded[a] {
                    alikeAt.append(Int32(alikeTerm.count))
                    continue
                }
                seen.gen += 1
                reached.removeAll(keepingCapacity: true)
                let visits = Self.reach(vocab[a], termKeys, seen, into: &reached)
                widest = max(widest, visits)
                compared += reached.count
                for v in reached {
                    let sim = Self.similarity(packed[a], b, packed[Int(v)], b)
                    if sim > 0 {
                        alikeTerm.append(v)
                        alikeSim.append(sim)
                    }
                }
                alikeAt.append(Int32(alikeTerm.count))
            }
        }
        // Postings: every name per term, and the names whose rare prefix holds it.
        let coverE = max(0, (floor - Self.queryShare) / (1 - Self.queryShare))
        var full = [[Int32]](repeating: [], count: vocab.count)
        var prefix = [[Int32]](repeating: [], count: vocab.count)
        var records: [Int32] = []
        records.reserveCapacity(terms.count + 3 * refs.count)
        var recordAt: [Int32] = []
        recordAt.reserveCapacity(refs.count)
        var order: [Int32] = []
        for e in 0..<refs.count {
            let r = Int(start[e])..<Int(start[e + 1])
            var w = 0.0
            for j in r { w += vocabWeight[Int(terms[j])] }
            let at = Int32(records.count)
            recordAt.append(at)
            records += [Int32(e), Int32(r.count), Int32(bitPattern: Float(w).bitPattern)]
            records += terms[r]
            order.removeAll(keepingCapacity: true)
            for j in r where !order.contains(terms[j]) { order.append(terms[j]) }
            for t in order { full[Int(t)].append(at) }
            order.sort { vocabWeight[Int($0)] > vocabWeight[Int($1)] }
            var rest = w
            for t in order {
                if rest < coverE * w && coverE > 0 { break }
                prefix[Int(t)].append(at)
                for j in r where terms[j] == t { rest -= vocabWeight[Int(t)] }
            }
        }
        self.vocab = vocab
        self.packed = packed
        self.arabicTerm = vocab.map(\.arabic)
        self.hasArabic = vocab.contains(where: \.arabic)
        self.bytes = bytes
        self.canonIDs = canonIDs
        self.looseIDs = looseIDs
        self.termIDs = ids
        self.alikeAt = alikeAt
        self.alikeTerm = alikeTerm
        self.alikeSim = alikeSim
        self.vocabWeight = vocabWeight
        self.termKeys = termKeys
        self.crowded = crowded
        self.crowdedTerms = crowded.count { $0 }
        var crowdedByList: [Int32: Int] = [:]
        var droppedByList: [Int32: Int] = [:]
        if crowdedTerms > 0 || !overFull.isEmpty || droppedPairs > 0 {
            for e in 0..<refs.count {
                let r = terms[Int(start[e])..<Int(start[e + 1])]
                if r.contains(where: { crowded[Int($0)] }) { crowdedByList[refs[e].list, default: 0] += 1 }
                if r.contains(where: { lostKey[Int($0)] }) { droppedByList[refs[e].list, default: 0] += 1 }
            }
        }
        self.crowdedNamesByList = crowdedByList
        self.droppedNamesByList = droppedByList
        self.widestReach = widest
        self.comparisons = compared
        self.largestKeyBucket = largest
        self.droppedKeys = overFull.count + droppedPairs
        self.largestPairPosting = largestPairs
        self.df = df
        self.records = records
        self.recordAt = recordAt
        self.weakName = weakName
        self.refs = refs
        self.names = names
        self.full = full
        self.prefix = prefix
        self.floor = floor
    }

    /// A term as `similarity` reads it.
    struct Packed {
        var canon: Int32
        /// `NameTerm.near`'s id among the canons (-1: none).
        var near: Int32 = -1
        var loose: Int32
        var prefix: UInt8
        var arabic: Bool
        var initial: Bool
        var short: Bool
        var text: Int32
        var textCount: Int32
        var skeleton: Int32
        var skeletonCount: Int32
        /// `NameTerm.skeleton2` (count 0: none).
        var skeleton2: Int32 = 0
        var skeleton2Count: Int32 = 0
        /// `NameTerm.slavic` (count 0: none).
        var slavic: Int32 = 0
        var slavicCount: Int32 = 0
    }

    /// Packs a term, its spelling and skeleton appended to `bytes`; `canon` and `loose` are its ids (-1: none).
    static func pack(_ t: NameTerm, canon: Int32, loose: Int32, into bytes: inout [UInt8]) -> Packed {
        let prefix: UInt8 =
            t.canon.hasPrefix("ABU:") ? 1 : t.canon.hasPrefix("ABD:") ? 2 : t.canon.hasPrefix("UMM:") ? 3 : 0
        let text = Int32(bytes.count)
        bytes += t.text.utf8
        let skeleton = Int32(bytes.count)
        bytes += t.skeleton.utf8
        var p = Packed(
            canon: canon, loose: loose, prefix: prefix, arabic: t.arabic, initial: t.initial, short: t.text.count <= 4,
            text: text, textCount: skeleton - text, skeleton: skeleton, skeletonCount: Int32(bytes.count) - skeleton)
        if let alt = t.skeleton2 {
            p.skeleton2 = Int32(bytes.count)
            bytes += alt.utf8
            p.skeleton2Count = Int32(bytes.count) - p.skeleton2
        }
        if let reading = t.slavic {
            p.slavic = Int32(bytes.count)
            bytes += reading.utf8
            p.slavicCount = Int32(bytes.count) - p.slavic
        }
        return p
    }

    /// A query term packed against this vocabulary (ids it does not have are -1).
    func pack(query t: NameTerm, into bytes: inout [UInt8]) -> Packed {
        var p = Self.pack(
            t, canon: canonIDs[t.canon] ?? -1, loose: t.loose.count >= 2 ? looseIDs[t.loose] ?? -1 : -1, into: &bytes)
        if let near = t.near { p.near = canonIDs[near] ?? -1 }
        return p
    }

    /// `NameModel.similarity` over packed terms (the test suite checks they agree).
    @inline(__always)
    static func similarity(
        _ q: Packed, _ qb: UnsafeBufferPointer<UInt8>, _ v: Packed, _ vb: UnsafeBufferPointer<UInt8>
    ) -> Double {
        if q.canon >= 0 && q.canon == v.canon { return 1 }
        if q.prefix != v.prefix {
            // A kunya glued onto a name with a typo (`NameModel.kunyaGlued`); nothing else across a kunya.
            guard q.prefix + v.prefix == 1, !q.arabic, !v.arabic else { return 0 }
            return NameModel.kunyaGlued(
                UnsafeBufferPointer(rebasing: qb[Int(q.text)..<Int(q.text + q.textCount)]),
                UnsafeBufferPointer(rebasing: vb[Int(v.text)..<Int(v.text + v.textCount)]))
        }
        let near =
            q.near >= 0 && (q.near == v.canon || q.near == v.near) || v.near >= 0 && v.near == q.canon
        if near { return max(nearless(q, qb, v, vb), NameModel.nearGroupSimilarity) }
        return nearless(q, qb, v, vb)
    }

    @inline(__always)
    static func nearless(
        _ q: Packed, _ qb: UnsafeBufferPointer<UInt8>, _ v: Packed, _ vb: UnsafeBufferPointer<UInt8>
    ) -> Double {
        let arabic = q.arabic || v.arabic
        func slice(_ b: UnsafeBufferPointer<UInt8>, _ at: Int32, _ n: Int32) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: b[Int(at)..<Int(at + n)])
        }
        var x = slice(qb, q.skeleton, q.skeletonCount)
        var y = slice(vb, v.skeleton, v.skeletonCount)
        var a = slice(qb, q.text, q.textCount)
        var b = slice(vb, v.text, v.textCount)
        if !q.arabic && !v.arabic && (q.skeleton2Count > 0 || v.skeleton2Count > 0) && !x.elementsEqual(y) {
            // Two Latin spellings: either one's second (Slavic) reading may meet the other's, compared as read.
            let qa = slice(qb, q.skeleton2, q.skeleton2Count)
            let va = slice(vb, v.skeleton2, v.skeleton2Count)
            let qr = slice(qb, q.slavic, q.slavicCount)
            let vr = slice(vb, v.slavic, v.slavicCount)
            if q.skeleton2Count > 0 && qa.elementsEqual(y) {
                x = qa
                a = qr
            } else if v.skeleton2Count > 0 && va.elementsEqual(x) {
                y = va
                b = vr
            } else if q.skeleton2Count > 0 && v.skeleton2Count > 0 && qa.elementsEqual(va) {
                x = qa
                y = va
                a = qr
                b = vr
            }
        }
        if q.arabic != v.arabic {
            if !(q.arabic
                ? NameModel.longVowelsAgree(arabic: a, latin: b) : NameModel.longVowelsAgree(arabic: b, latin: a))
            {
                return 0
            }
            (x, y) = skeletons(q, qb, v, vb)
        }
        return NameModel.similarity(
            text: a, b, skeleton: x, y,
            loose: arabic && q.loose >= 0 && q.loose == v.loose, arabic: arabic, initial: q.initial || v.initial,
            short: q.short || v.short)
    }

    /// The skeletons two terms of different scripts are compared by: the Arabic one's `skeleton2` where it is the
    /// Latin one's skeleton (as `NameModel.similarity` picks them; a Latin term's `skeleton2` is for Latin pairs).
    @inline(__always)
    static func skeletons(
        _ q: Packed, _ qb: UnsafeBufferPointer<UInt8>, _ v: Packed, _ vb: UnsafeBufferPointer<UInt8>
    ) -> (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) {
        func slice(_ b: UnsafeBufferPointer<UInt8>, _ at: Int32, _ n: Int32) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: b[Int(at)..<Int(at + n)])
        }
        var x = slice(qb, q.skeleton, q.skeletonCount)
        var y = slice(vb, v.skeleton, v.skeletonCount)
        if q.arabic && q.skeleton2Count > 0 {
            let alt = slice(qb, q.skeleton2, q.skeleton2Count)
            if alt.elementsEqual(y) { x = alt }
        }
        if v.arabic && v.skeleton2Count > 0 {
            let alt = slice(vb, v.skeleton2, v.skeleton2Count)
            if alt.elementsEqual(x) { y = alt }
        }
        return (x, y)
    }

    /// Packed similarity of two vocabulary terms (for the test suite's agreement check).
    func packedSimilarity(_ a: Int, _ b: Int) -> Double {
        bytes.withUnsafeBufferPointer { Self.similarity(packed[a], $0, packed[b], $0) }
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
    static func keys(_ t: NameTerm, entry: Bool, pairs: Bool = true) -> [UInt64] {
        var k: [UInt64] = [hash(1, t.canon)]
        // A spelling one typo from a variant group (`NameTerm.near`) is posted under the group with a tag of its own
        // (so typos never crowd the group's own key); a query looks up both tags, for its group and its near group.
        if entry {
            if let near = t.near { k.append(hash(10, near)) }
        } else {
            k.append(hash(10, t.canon))
            if let near = t.near { k += [hash(1, near), hash(10, near)] }
        }
        if !t.skeleton.isEmpty { k.append(hash(2, t.skeleton)) }
        if let alt = t.skeleton2 { k.append(hash(2, alt)) }
        let tags: [UInt8] = entry ? [t.arabic ? 0 : 1] : t.arabic ? [0, 1] : [0]
        if t.loose.count >= 2 { for a in tags { k.append(hash(3 + a * 10, t.loose)) } }
        if t.initial {
            if entry { k.append(hash(4, t.text)) }
            return k
        }
        if !entry, t.canon.firstIndex(of: ":") == nil, let c = t.text.first { k.append(hash(4, String(c))) }
        let text = Array(t.text.utf8)
        deletions(text, tag: 5, into: &k)
        // "alshami" meets "shami" (`NameModel.articleGlued`) through the spelling of what follows the article.
        if !t.arabic, let rest = NameModel.afterArticle(t.text) { k.append(hash(5, Array(rest.utf8)[...])) }
        // "abu kar" (from "Abukar") meets "abkuar" (`NameModel.kunyaGlued`) through its spelling without the space.
        if !t.arabic && t.canon.hasPrefix("ABU:") && text.starts(with: Array("abu ".utf8)) {
            deletions(Array(text[..<3] + text[4...]), tag: 5, into: &k)
        }
        // Long Latin spellings two edits apart (`NameModel.twoEditsLong`) share a spelling with two letters left out.
        if pairs && !t.arabic && text.count >= 8 { deletionPairs(text, tag: 5, into: &k) }
        let skel = Array(t.skeleton.utf8)
        if skel.count >= 3 { for a in tags { deletions(skel, tag: 6 + a * 10, into: &k) } }
        if skel.count >= 4 { deletions(skel, tag: 7, into: &k) }
        let consonants = text.filter { !"aeiou".utf8.contains($0) }
        if consonants.count >= 2 { for a in tags { k.append(hash(9 + a * 10, consonants[...])) } }
        return k
    }

    /// The keys `keys` gives a term through `deletionPairs` (none for a short, Arabic or initial term).
    static func pairKeys(_ t: NameTerm) -> [UInt64] {
        var k: [UInt64] = []
        if t.initial || t.arabic { return k }
        let text = Array(t.text.utf8)
        if text.count >= 8 { deletionPairs(text, tag: 5, into: &k) }
        return k
    }

    /// The spelling and each spelling with one letter left out: two spellings one edit apart share one.
    static func deletions(_ s: [UInt8], tag: UInt8, into k: inout [UInt64]) {
        k.append(hash(tag, s[...]))
        if s.count > NameModel.maxEditLength { return }
        var d = s
        for i in 0..<s.count {
            d.remove(at: i)
            k.append(hash(tag, d[...]))
            d.insert(s[i], at: i)
        }
    }

    /// The spelling with two of its letters left out (up to 24 letters; a doubled letter gives a key twice, as in
    /// `deletions`: the build posts each key once, a query reaches each term once).
    static func deletionPairs(_ s: [UInt8], tag: UInt8, into k: inout [UInt64]) {
        if s.count > NameModel.maxEditLength { return }
        var d = [UInt8]()
        d.reserveCapacity(s.count)
        for i in 0..<s.count {
            for j in (i + 1)..<s.count {
                d.removeAll(keepingCapacity: true)
                for (n, c) in s.enumerated() where n != i && n != j { d.append(c) }
                k.append(hash(tag, d[...]))
            }
        }
    }

    static func hash(_ tag: UInt8, _ s: String) -> UInt64 { hash(tag, Array(s.utf8)[...]) }

    static func hash(_ tag: UInt8, _ s: ArraySlice<UInt8>) -> UInt64 {
        // FNV-1a with the tag as a byte of its own (XORed into the seed it would collide with first letters).
        var h: UInt64 = (0xcbf2_9ce4_8422_2325 ^ UInt64(tag)) &* 0x100_0000_01b3
        for b in s {
            h ^= UInt64(b)
            h &*= 0x100_0000_01b3
        }
        return h
    }

    /// Entry names scoring at least `minScore(ref)` against `query`, best first. `minScore` below `floor` is
    /// treated as `floor`.
    public func query(_ query: NameForm, minScore: (HitRef) -> Double) -> [NameMatch] {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty || refs.isEmpty { return [] }
        let s = takeScratch()
        defer { giveScratch(s) }
        prepare(s, content)
        let candidates = self.candidates(s)
        return collect(s, weak: query.weak, candidates, floor: floor, minScore: minScore)
    }

    /// The rows of a query: vocabulary terms alike to some query term. Spellings no name has: through the term keys,
    /// each found term compared with every query term. Then known spellings: their alike terms as the build found
    /// them (a term alike to an unknown query term was already found through its keys).
    func prepare(_ s: Scratch, _ content: [NameTerm]) {
        begin(s, content)
        let known = content.map { termIDs[$0] }
        var fresh: [Int32] = []
        for (q, id) in zip(content, known) where id == nil || crowded[Int(id!)] {
            Self.reach(q, termKeys, s, into: &fresh)
        }
        addRows(s, fresh)
        for (i, id) in known.enumerated() {
            guard let id, !crowded[Int(id)] else { continue }
            addKnownRows(s, i, Int(alikeAt[Int(id)])..<Int(alikeAt[Int(id) + 1]))
        }
        refineWeights(s)
    }

    /// The vocabulary terms a query term's keys reach and `s` has not stamped yet, each once (stamped now).
    /// Returns the postings visited.
    @discardableResult
    static func reach(_ q: NameTerm, _ termKeys: [UInt64: [Int32]], _ s: Scratch, into out: inout [Int32]) -> Int {
        let stamp = s.vocabStamp
        let gen = s.gen
        var visits = 0
        for k in keys(q, entry: false) {
            guard let p = termKeys[k] else { continue }
            visits += p.count
            for v in p where stamp[Int(v)] != gen {
                stamp[Int(v)] = gen
                out.append(v)
            }
        }
        return visits
    }

    /// The alike terms of query term `i` (a known spelling), from the build: new rows start at 0 for the other
    /// query terms (their own lists, or their keys, fill them in).
    func addKnownRows(_ s: Scratch, _ i: Int, _ range: Range<Int>) {
        let qn = s.qn
        let gen = s.gen
        let stamp = s.vocabStamp
        let slot = s.vocabSlot
        for n in range {
            let v = Int(alikeTerm[n])
            if stamp[v] != gen {
                stamp[v] = gen
                slot[v] = Int32(s.rows)
                s.rowVocab.append(Int32(v))
                s.sims.append(contentsOf: repeatElement(0, count: qn))
                s.rows += 1
            }
            s.sims[Int(slot[v]) * qn + i] = alikeSim[n]
        }
    }

    /// Every name scored with the same scorer, every vocabulary term compared with every query term (the
    /// reference the indexed search is measured against).
    public func scan(_ query: NameForm, minScore: Double) -> [NameMatch] {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty || refs.isEmpty { return [] }
        let s = takeScratch()
        defer { giveScratch(s) }
        begin(s, content)
        addRows(s, Array(0..<Int32(vocab.count)))
        refineWeights(s)
        return collect(
            s, weak: query.weak, recordAt, floor: minScore, minScore: { _ in minScore })
    }

    func begin(_ s: Scratch, _ content: [NameTerm]) {
        s.gen &+= 1
        if s.gen == 0 {
            s.vocabStamp.update(repeating: 0, count: vocab.count)
            s.gen = 1
        }
        s.qn = content.count
        s.content = content
        s.queryBytes.removeAll(keepingCapacity: true)
        s.packedQuery = content.map { pack(query: $0, into: &s.queryBytes) }
        s.qw = content.map(weight)
        s.wq = s.qw.reduce(0, +)
        s.rows = 0
        s.rowVocab.removeAll(keepingCapacity: true)
        s.sims.removeAll(keepingCapacity: true)
    }

    /// Scores vocabulary terms not seen yet in this query (`ids`, distinct) against every query term.
    func addRows(_ s: Scratch, _ ids: [Int32]) {
        let gen = s.gen
        let stamp = s.vocabStamp
        let slot = s.vocabSlot
        var rows = s.rows
        var rowVocab = s.rowVocab
        var sims = s.sims
        s.rowVocab = []
        s.sims = []
        s.packedQuery.withUnsafeBufferPointer { pq in
            s.queryBytes.withUnsafeBufferPointer { qb in
                packed.withUnsafeBufferPointer { pk in
                    bytes.withUnsafeBufferPointer { vb in
                        // Touch the packed terms, then their spellings, before comparing: independent loads overlap.
                        var touch: Int32 = 0
                        for v in ids { touch &+= pk[Int(v)].text }
                        for v in ids { touch &+= Int32(vb[Int(pk[Int(v)].text)]) }
                        s.touched = touch
                        for v in ids {
                            stamp[Int(v)] = gen
                            slot[Int(v)] = Int32(rows)
                            rowVocab.append(v)
                            let t = pk[Int(v)]
                            for q in pq { sims.append(Self.similarity(q, qb, t, vb)) }
                            rows += 1
                        }
                    }
                }
            }
        }
        s.rows = rows
        s.rowVocab = rowVocab
        s.sims = sims
    }

    /// A query term no name carries (a misspelling, or a spelling from another script) weighs what the most
    /// alike vocabulary term weighs: "Mohammad" misspelt is still common, and unvocalised محمد is Muhammad.
    func refineWeights(_ s: Scratch) {
        let qn = s.qn
        for i in 0..<qn where df[s.content[i].canon] == nil {
            var best = 0.0
            var w = s.qw[i]
            for r in 0..<s.rows where !packed[Int(s.rowVocab[r])].initial {
                let sim = s.sims[r * qn + i]
                let vw = vocabWeight[Int(s.rowVocab[r])]
                if sim > best || (sim == best && sim > 0 && vw < w) {
                    best = sim
                    w = vw
                }
            }
            s.qw[i] = w
        }
        s.wq = s.qw.reduce(0, +)
    }

    /// Names worth scoring: from the query's rarest terms (every name carrying an alike term) or from every query
    /// term (the names whose rare prefix holds an alike term), whichever walks fewer postings.
    func candidates(_ s: Scratch) -> [Int32] {
        let qn = s.qn
        let qw = s.qw
        let wq = s.wq
        let coverQ = qn == 1 ? floor : (floor - (1 - Self.queryShare)) / Self.queryShare
        // What walking every name with a term alike to query term i costs, and the rare prefix's cost.
        var costOf = [Int](repeating: 0, count: qn)
        var costB = 0
        var alike = [UInt64](repeating: 0, count: s.rows)
        for r in 0..<s.rows {
            let v = Int(s.rowVocab[r])
            for i in 0..<qn where s.sims[r * qn + i] > 0 {
                alike[r] |= 1 << UInt64(i & 63)
                costOf[i] += full[v].count
            }
            if alike[r] != 0 { costB += prefix[v].count }
        }
        // Query terms a match must meet one of: any set whose complement weighs less than the coverage a match
        // needs; the cheapest such set (up to 12 terms; beyond, the rarest terms in order).
        var rare: UInt64 = (1 << UInt64(min(qn, 63))) - 1
        var costA = costOf.reduce(0, +)
        if qn <= 12 {
            for mask in 1..<(UInt64(1) << UInt64(qn)) {
                var rest = 0.0
                var cost = 0
                for i in 0..<qn {
                    if mask & (1 << UInt64(i)) != 0 { cost += costOf[i] } else { rest += qw[i] }
                }
                if rest < coverQ * wq && cost < costA {
                    rare = mask
                    costA = cost
                }
            }
        }
        // Postings are concatenated, not deduplicated: a name reached twice is scored twice (rare — a name seldom
        // has two terms alike to the query's) and its hit kept once, which costs less than a stamp per name.
        let byRare = costA <= costB
        var out: [Int32] = []
        out.reserveCapacity(min(costA, costB))
        for r in 0..<s.rows where byRare ? alike[r] & rare != 0 : alike[r] != 0 {
            let v = Int(s.rowVocab[r])
            out += byRare ? full[v] : prefix[v]
        }
        return out
    }

    func collect(
        _ s: Scratch, weak: Bool, _ candidates: [Int32], floor: Double, minScore: (HitRef) -> Double
    ) -> [NameMatch] {
        let keep: [(Int32, Double)] = withProbe(s) { p in
            // Touch every candidate's record first: independent loads overlap (one cache miss each is most of
            // the cost), then scoring finds them in cache.
            var touch: Int32 = 0
            for at in candidates { touch &+= p.rec[Int(at) + 1] }
            s.touched = touch
            var found: [(Int32, Double)] = []
            for at in candidates {
                let score = Self.score(p, Int(at), pairs: nil)
                if score >= floor { found.append((at, score)) }
            }
            return found
        }
        var out: [NameMatch] = []
        var seen = Set<Int32>()
        for (at, score) in keep where seen.insert(at).inserted {
            let e = records[Int(at)]
            let ref = refs[Int(e)]
            guard score >= minScore(ref) else { continue }
            var pairs: [(Int, Int32, Double)] = []
            withProbe(s) { _ = Self.score($0, Int(at), pairs: &pairs) }
            out.append(
                NameMatch(
                    ref: ref, score: (score * 1000).rounded() / 1000, matched: names[Int(e)],
                    alignment: pairs.map {
                        (
                            s.content[$0.0].text, vocab[Int($0.1)].text, ($0.2 * 1000).rounded() / 1000,
                            NameModel.how(s.content[$0.0], vocab[Int($0.1)])
                        )
                    },
                    weak: weak || weakName[Int(e)]))
        }
        return out.sorted { $0.score > $1.score || ($0.score == $1.score && $0.ref.entry < $1.ref.entry) }
    }

    func withProbe<T>(_ s: Scratch, _ body: (Probe) -> T) -> T {
        s.sims.withUnsafeBufferPointer { sims in
            s.qw.withUnsafeBufferPointer { qw in
                records.withUnsafeBufferPointer { rec in
                    vocabWeight.withUnsafeBufferPointer { vw in
                        s.packedQuery.withUnsafeBufferPointer { pq in
                            s.queryBytes.withUnsafeBufferPointer { qb in
                                packed.withUnsafeBufferPointer { pv in
                                    bytes.withUnsafeBufferPointer { vb in
                                        arabicTerm.withUnsafeBufferPointer { at in
                                            body(
                                                Probe(
                                                    qn: s.qn, gen: s.gen, stamp: s.vocabStamp, slot: s.vocabSlot,
                                                    sims: sims, qw: qw, wq: s.wq, rec: rec, weights: vw, query: pq,
                                                    queryBytes: qb, vocab: pv, vocabBytes: vb,
                                                    crossScripts: hasArabic || s.content.contains(where: \.arabic),
                                                    arabicTerm: at))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// What scoring reads, fetched once per query.
    struct Probe {
        let qn: Int
        let gen: UInt32
        let stamp: UnsafeMutablePointer<UInt32>
        let slot: UnsafeMutablePointer<Int32>
        let sims: UnsafeBufferPointer<Double>
        let qw: UnsafeBufferPointer<Double>
        let wq: Double
        let rec: UnsafeBufferPointer<Int32>
        let weights: UnsafeBufferPointer<Double>
        let query: UnsafeBufferPointer<Packed>
        let queryBytes: UnsafeBufferPointer<UInt8>
        let vocab: UnsafeBufferPointer<Packed>
        let vocabBytes: UnsafeBufferPointer<UInt8>
        /// Whether a pair may be of two scripts (the query or the vocabulary has a term read from Arabic script),
        /// and each vocabulary term's: the cross-script rule costs nothing to lists and queries of one script.
        let crossScripts: Bool
        let arabicTerm: UnsafeBufferPointer<Bool>
    }

    /// Whether a query term and a vocabulary term, one read from Arabic script and the other not, met by their
    /// consonants rather than by chance: one variant group; the same skeleton (of one letter, only when the Latin
    /// spelling is not shorter than the Arabic by more than a letter — unvocalised Arabic is rarely the longer
    /// spelling); or look-alike letters each spelt as Latin spells that Arabic letter (`NameModel.lookAlikesAgree`).
    /// Nil when both are of one script.
    static func crossScriptStrong(_ p: Probe, _ i: Int, _ v: Int) -> Bool? {
        let q = p.query[i]
        if q.arabic == p.arabicTerm[v] { return nil }
        let t = p.vocab[v]
        if q.canon >= 0 && q.canon == t.canon { return true }
        let (a, l, lb) = q.arabic ? (q, t, p.vocabBytes) : (t, q, p.queryBytes)
        let (qs, vs) = skeletons(q, p.queryBytes, t, p.vocabBytes)
        let (x, y) = q.arabic ? (qs, vs) : (vs, qs)
        if x.count == y.count && x.elementsEqual(y) { return x.count >= 2 || l.textCount + 1 >= a.textCount }
        let text = UnsafeBufferPointer(rebasing: lb[Int(l.text)..<Int(l.text + l.textCount)])
        return NameModel.lookAlikesAgree(arabic: x, latin: text, latinSkeleton: y)
    }

    /// Token alignment: every (query term, name term) pair by similarity, taken greedily best first; the score
    /// is 0.6 × the query's weighted coverage + 0.4 × the name's, weights by rarity (a one-term query against a
    /// longer name: its coverage × (0.5 + 0.5 × the name's); a one-term name inside a longer query: its coverage ×
    /// (0.3 + 0.7 × the query's)). `pairs` receives (query term, vocabulary term, similarity).
    static func score(_ p: Probe, _ at: Int, pairs: UnsafeMutablePointer<[(Int, Int32, Double)]>?) -> Double {
        let rec = p.rec
        let en = Int(rec[at + 1])
        if en == 0 { return 0 }
        let total = Double(Float(bitPattern: UInt32(bitPattern: rec[at + 2])))
        let lo = at + 3
        let qn = p.qn
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: qn * en) { sim in
            // sim[i * en + j]: the query term i against the name's term j (0 when not alike).
            var any = false
            for j in 0..<en {
                let v = Int(rec[lo + j])
                let seen = p.stamp[v] == p.gen
                let r = seen ? Int(p.slot[v]) * qn : 0
                for i in 0..<qn {
                    let x = seen ? p.sims[r + i] : 0
                    sim[i * en + j] = x
                    any = any || x > 0
                }
            }
            if !any { return 0 }
            // Greedy, best pair first (ties: lower query term, then lower name term).
            var usedQ: UInt64 = 0
            var usedE: UInt64 = 0
            var coveredQ = 0.0
            var coveredE = 0.0
            var crossScript = false
            var strong = 0
            for _ in 0..<min(qn, en) {
                var best = 0.0
                var bi = -1
                var bj = -1
                for i in 0..<qn where usedQ & (1 << UInt64(i & 63)) == 0 {
                    for j in 0..<en where usedE & (1 << UInt64(j & 63)) == 0 && sim[i * en + j] > best {
                        best = sim[i * en + j]
                        bi = i
                        bj = j
                    }
                }
                if bi < 0 { break }
                usedQ |= 1 << UInt64(bi & 63)
                usedE |= 1 << UInt64(bj & 63)
                let v = rec[lo + bj]
                coveredQ += best * p.qw[bi]
                coveredE += best * p.weights[Int(v)]
                pairs?.pointee.append((bi, v, best))
                if p.crossScripts, let s = crossScriptStrong(p, bi, Int(v)) {
                    crossScript = true
                    strong += s ? 1 : 0
                } else {
                    strong += 1
                }
            }
            // Across scripts consonants meet by chance (unvocalised Arabic has few): a match needs two terms met by
            // their consonants or group, or its one term where either name has only one (issue 19, the EU list).
            if crossScript && strong < min(2, qn, en) { return 0 }
            let covQ = coveredQ / p.wq
            let covE = coveredE / total
            // One term says little: it must also cover much of the name.
            if qn == 1 && en > 1 { return covQ * (0.5 + 0.5 * covE) }
            // A one-term name (weak) inside a longer query: the query's other terms count against it.
            if en == 1 && qn > 1 { return covE * (0.3 + 0.7 * covQ) }
            return queryShare * covQ + (1 - queryShare) * covE
        }
    }

    /// Per-query working memory, reused: stamps over the vocabulary instead of clearing.
    final class Scratch {
        let vocabStamp: UnsafeMutablePointer<UInt32>
        let vocabSlot: UnsafeMutablePointer<Int32>
        var gen: UInt32 = 0
        var qn = 0
        var rows = 0
        var rowVocab: [Int32] = []
        var sims: [Double] = []
        var qw: [Double] = []
        var wq = 0.0
        var content: [NameTerm] = []
        var packedQuery: [Packed] = []
        var queryBytes: [UInt8] = []
        /// Keeps the touching loads from being optimised away.
        var touched: Int32 = 0

        /// Forgets the last query (its terms and scores), and gives back any buffer grown past `keeping` elements.
        func release(keeping: Int) {
            if sims.capacity > keeping { sims = [] } else { sims.removeAll(keepingCapacity: true) }
            if rowVocab.capacity > keeping { rowVocab = [] } else { rowVocab.removeAll(keepingCapacity: true) }
            if queryBytes.capacity > keeping { queryBytes = [] } else { queryBytes.removeAll(keepingCapacity: true) }
            content = []
            packedQuery = []
            qw = []
            rows = 0
            qn = 0
        }

        var heldBytes: Int {
            sims.capacity * MemoryLayout<Double>.stride + rowVocab.capacity * MemoryLayout<Int32>.stride
                + queryBytes.capacity + content.capacity * MemoryLayout<NameTerm>.stride
                + packedQuery.capacity * MemoryLayout<Packed>.stride + qw.capacity * MemoryLayout<Double>.stride
        }

        init(vocab: Int) {
            vocabStamp = .allocate(capacity: max(1, vocab))
            vocabStamp.initialize(repeating: 0, count: max(1, vocab))
            vocabSlot = .allocate(capacity: max(1, vocab))
            vocabSlot.initialize(repeating: 0, count: max(1, vocab))
        }

        deinit {
            vocabStamp.deallocate()
            vocabSlot.deallocate()
        }
    }

    private func takeScratch() -> Scratch {
        lock.lock()
        defer { lock.unlock() }
        return scratch.popLast() ?? Scratch(vocab: vocab.count)
    }

    private func giveScratch(_ s: Scratch) {
        s.release(keeping: Self.scratchKeep)
        lock.lock()
        defer { lock.unlock() }
        scratch.append(s)
    }

    /// The most elements a pooled scratch keeps room for between queries (a row of `sims` per alike vocabulary
    /// term and query term): an ordinary name needs far less, and one unusual query must not leave the service
    /// holding what it grew to.
    static let scratchKeep = 1 << 16

    /// The bytes the pooled scratches hold beyond their vocabulary stamps (for the test suite).
    var pooledScratchBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return scratch.reduce(0) { $0 + $1.heldBytes }
    }
}

extension NameIndex {
    /// What a query costs and whether an alike term was missed: vocabulary rows, rows alike, candidates scored, and
    /// alike terms neither the keys nor the build's alike lists reached (`TRIPLINE_BENCH=names NAMES_EXPLAIN=1`).
    public func explain(_ query: NameForm) -> String {
        let content = query.terms.filter { !$0.initial }
        if content.isEmpty { return "" }
        let s = Scratch(vocab: vocab.count)
        prepare(s, content)
        var alike = 0
        for r in 0..<s.rows where (0..<s.qn).contains(where: { s.sims[r * s.qn + $0] > 0 }) { alike += 1 }
        let rows = s.rows
        let c = candidates(s)
        var missed: [String] = []
        for (i, q) in content.enumerated() {
            for v in vocab.indices where s.vocabStamp[v] != s.gen {
                let sim = NameModel.similarity(q, vocab[v])
                if sim > 0 { missed.append("\(i):\(q.text)~\(vocab[v].text) \(sim)") }
            }
        }
        return "rows \(rows) alike \(alike) candidates \(c.count) missed \(missed.count) \(missed.prefix(6)) w \(s.qw)"
    }
}
