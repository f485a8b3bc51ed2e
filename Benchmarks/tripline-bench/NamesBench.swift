import Foundation
import TriplineSelectors
import TriplineWatchlists

/// Fuzzy names at scale (issue 7): 1,000,000 synthetic names from realistic parts (given names with their
/// transliterations; family names built on Arabic root patterns, nisbas and regional surnames, with a long
/// tail), queried with listed names in contact-list spellings and names not listed.
func namesBench() {
    var g = SplitMix(s: 7_700_001)
    let given = [
        "mohammed", "muhammad", "mohamed", "ahmad", "ahmed", "ali", "omar", "umar", "hassan", "hussein", "ibrahim",
        "yusuf", "youssef", "khalid", "abdullah", "abdelkader", "abderrahmane", "mustafa", "mahmoud", "said", "salim",
        "karim", "tariq", "walid", "bilal", "hamza", "idris", "ismail", "jamal", "nabil", "samir", "rachid", "yassin",
        "anas", "ayman", "osama", "faisal", "hisham", "ziad", "amine", "mehdi", "reza", "hamid", "farid", "timur",
        "ruslan", "shamil", "magomed", "akhmed", "aslan", "zelimkhan", "dzhokhar", "abu bakr", "abd al-aziz",
        "abd al-rahman", "sulayman", "dawud", "harun", "ilyas", "yunus", "musa", "isa", "yahya", "zakariya",
        "fatima", "aisha", "khadija", "maryam", "zaynab", "amina", "hafsa", "safiya", "asma", "sumayya", "layla",
    ]
    let roots = Array("bdfhjklmnqrstwyzgs")
    // Root consonants C1 C2 C3 in a pattern (C1aC2iC3, C1uC2aC3, maC1C2uC3...).
    let patterns = ["1a2i3", "1u2a3", "ma12u3", "1a22a3", "1i2a3", "1a2a3i"]
    func family() -> String {
        let r = (0..<3).map { _ in roots[Int(g.next() % UInt64(roots.count))] }
        var base = ""
        for c in patterns[Int(g.next() % UInt64(patterns.count))] {
            if let d = c.wholeNumberValue { base.append(r[d - 1]) } else { base.append(c) }
        }
        switch g.next() % 4 {
        case 0: return "al-" + base + "i"
        case 1: return base + "i"
        case 2: return base + "ov"
        default: return base
        }
    }
    // Zipf-like: a few given names very common, family names from a long tail.
    func pickGiven() -> String {
        let u = Double(g.next() % 1_000_000) / 1_000_000
        return given[min(given.count - 1, Int(pow(u, 2.2) * Double(given.count)))]
    }
    let families = (0..<60_000).map { _ in family() }
    var names: [String] = []
    names.reserveCapacity(1_000_000)
    for _ in 0..<1_000_000 {
        var parts = [pickGiven()]
        if g.next() % 3 == 0 { parts.append(pickGiven()) }
        parts.append(families[Int(g.next() % UInt64(families.count))])
        if g.next() % 5 == 0 { parts.append(families[Int(g.next() % UInt64(families.count))]) }
        names.append(parts.joined(separator: " "))
    }
    let items = names.enumerated().map {
        (
            NameNormalizer.tokenize($0.element).joined(separator: " "),
            HitRef(list: 0, entry: Int32($0.offset), selector: 0)
        )
    }
    let t0 = nowNS()
    let index = NameIndex(items)
    let build = Double(nowNS() - t0) / 1e9
    print(
        "names: largest term-key bucket \(index.largestKeyBucket) terms (cap \(NameIndex.keyBucketCap)); "
            + "two-letters-out key posted by \(index.largestPairPosting) terms (cap \(NameIndex.pairKeyCap)); "
            + "\(index.droppedKeys) keys left out; largest alike row \(index.largestAlikeRow) terms; widest reach "
            + "\(index.widestReach) postings (cap \(NameIndex.reachVisitCap)), \(index.comparisons) comparisons "
            + "(budget \(NameIndex.comparisonBudget)), \(index.crowdedTerms) crowded terms")
    // Queries: half listed names re-spelled (order swapped, one typo), half names not listed.
    var queries: [String] = []
    for i in 0..<2_000 {
        if i % 2 == 0 {
            var t = names[Int(g.next() % UInt64(names.count))].split(separator: " ").map(String.init)
            t.swapAt(0, t.count - 1)
            if var w = t.last.map(Array.init), w.count > 4 {
                w[2] = "e"
                t[t.count - 1] = String(w)
            }
            queries.append(t.joined(separator: " "))
        } else {
            queries.append(pickGiven() + " " + family() + "x")
        }
    }
    if ProcessInfo.processInfo.environment["NAMES_EXPLAIN"] != nil {
        for q in queries.prefix(12) { print(q, "|", index.explain(NameModel.form(q))) }
    }
    // NAMES_PROFILE=N: the queries N more times and nothing else (to profile the query path alone).
    if let n = ProcessInfo.processInfo.environment["NAMES_PROFILE"].flatMap(Int.init) {
        var hits = 0
        let forms = queries.map { NameModel.form($0) }
        var each: [Double] = []
        let t = nowNS()
        for _ in 0..<n {
            for f in forms {
                let s = nowNS()
                hits += index.query(f) { _ in 0.8 }.count
                each.append(Double(nowNS() - s) / 1e3)
            }
        }
        let total = Double(nowNS() - t) / 1e3
        each.sort()
        var formTime = nowNS()
        for q in queries { _ = NameModel.form(q) }
        formTime = nowNS() - formTime
        print(
            String(
                format:
                    "names: without forming names: mean %.0f µs, p50 %.0f µs, p99 %.0f µs a query (%d hits); forming a query name %.1f µs",
                total / Double(n * forms.count), each[each.count / 2], each[each.count * 99 / 100], hits,
                Double(formTime) / 1e3 / Double(queries.count)))
        return
    }
    var lat: [Double] = []
    var found = 0
    for q in queries {
        let s = nowNS()
        let r = index.query(NameModel.form(q)) { _ in 0.8 }
        lat.append(Double(nowNS() - s) / 1000)
        if !r.isEmpty { found += 1 }
    }
    if ProcessInfo.processInfo.environment["NAMES_EXPLAIN"] != nil {
        let ranked = zip(queries, lat).sorted(by: { $0.1 > $1.1 })
        for (q, l) in ranked.prefix(6) + ranked[(ranked.count / 2 - 3)..<(ranked.count / 2 + 3)] {
            print(String(format: "slow %.0f µs", l), q, "|", index.explain(NameModel.form(q)).prefix(200))
        }
    }
    lat.sort()
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    print(
        String(
            format:
                "names: 1,000,000-name index built in %.1f s; query p50 %.0f µs, p99 %.0f µs, max %.0f µs (%d queries, %d with hits); max RSS %.0f MB",
            build, lat[lat.count / 2], lat[lat.count * 99 / 100], lat.last!, queries.count, found,
            Double(usage.ru_maxrss) / 1024))
    // Recall of the indexed search against scoring every name, on a sample.
    var agree = 0
    var total = 0
    var alerted = 0
    var scanAlerted = 0
    var bestFound = 0
    for q in queries.prefix(100) {
        let form = NameModel.form(q)
        let truth = index.scan(form, minScore: 0.8)
        if truth.isEmpty { continue }
        let got = index.query(form) { _ in 0.8 }
        agree += Set(truth.map(\.ref.entry)).intersection(got.map(\.ref.entry)).count
        total += truth.count
        scanAlerted += 1
        if !got.isEmpty { alerted += 1 }
        if let b = got.first, b.score >= truth[0].score { bestFound += 1 }
    }
    print(
        String(
            format:
                "names: indexed search against a full scan (same scorer, 100 queries): every match %d / %d = %.3f; "
                + "a hit whenever the scan has one %d / %d; the scan's best score found %d / %d",
            agree, total, total == 0 ? 1 : Double(agree) / Double(total), alerted, scanAlerted, bestFound,
            scanAlerted))
}

/// A list built to be expensive (issue 19's review): one 14-letter spelling with two letters inserted anywhere, N
/// times, so that thousands of terms share keys and are alike to each other. `TRIPLINE_BENCH=names-hostile`;
/// `TRIPLINE_NAMEKEYCAP` and `TRIPLINE_NAMECAP` set the caps (`NameIndex.keyBucketCap`, `.pairKeyCap`),
/// `TRIPLINE_NAMES_N` the sizes (default 2000,8000,32000); `TRIPLINE_HOSTILE=dense`: every 10-letter spelling over
/// three letters instead (the review's second construction).
func namesHostileBench() {
    var g = SplitMix(s: 19)
    let env = ProcessInfo.processInfo.environment
    let cap = Int(env["TRIPLINE_NAMECAP"] ?? "") ?? NameIndex.pairKeyCap
    let keyCap = Int(env["TRIPLINE_NAMEKEYCAP"] ?? "") ?? NameIndex.keyBucketCap
    let sizes = (env["TRIPLINE_NAMES_N"] ?? "2000,8000,32000").split(separator: ",").compactMap { Int($0) }
    let base = Array("qarawindelsmut".utf8)
    let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
    for n in sizes {
        var seen = Set<String>()
        var items: [(String, HitRef)] = []
        if env["TRIPLINE_HOSTILE"] == "dense" {
            // Every 10-letter spelling over three letters, in order: each alike to hundreds of others.
            let abc = Array("lmr".utf8)
            for k in 0..<n {
                var x = k
                let t = (0..<10).map { _ -> UInt8 in
                    defer { x /= 3 }
                    return abc[x % 3]
                }
                items.append(
                    (String(decoding: t, as: UTF8.self) + " haddad", HitRef(list: 0, entry: Int32(k), selector: 0)))
            }
        }
        while items.count < n {
            var t = base
            for _ in 0..<2 {
                t.insert(letters[Int(g.next() % 26)], at: Int(g.next() % UInt64(t.count + 1)))
            }
            let term = String(decoding: t, as: UTF8.self)
            if seen.insert(term).inserted {
                items.append((term + " haddad", HitRef(list: 0, entry: Int32(items.count), selector: 0)))
            }
        }
        let t0 = nowNS()
        let index = NameIndex(items, keyBucketCap: keyCap, pairKeyCap: cap)
        print(
            String(
                format: "names, a list built around one key: %d names, caps %d/%d: built in %.2f s; largest key %d, "
                    + "%d keys left out, largest alike row %d, %d comparisons, %d crowded terms", n, keyCap, cap,
                Double(nowNS() - t0) / 1e9, index.largestKeyBucket, index.droppedKeys, index.largestAlikeRow,
                index.comparisons, index.crowdedTerms))
        fflush(nil)
    }
}
