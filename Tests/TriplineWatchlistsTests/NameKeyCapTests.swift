import Foundation
import Testing
import TriplineSelectors
import TriplineTestSupport

@testable import TriplineWatchlists

/// A list built to be expensive for the name index: one spelling and thousands of spellings two letters longer,
/// which all share the key of the spelling with two letters left out. Before the caps on a key's terms, the index
/// compared each with every other when it was built (quadratic: in this debug build 1,000 such names took 8 s, 2,000
/// 30 s, 4,000 137 s; `TRIPLINE_BENCH=names-hostile` has the release figures).
@Suite("Name index: a list built around one key")
struct NameKeyCapTests {
    static func hostile(_ count: Int, seed: UInt64) -> [String] {
        var g = SplitMix64(seed: seed)
        let base = Array("qarawindelsmut".utf8)
        let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var seen = Set<String>()
        var out: [String] = []
        while out.count < count {
            var t = base
            for _ in 0..<2 {
                t.insert(letters.randomElement(using: &g)!, at: Int.random(in: 0...t.count, using: &g))
            }
            let term = String(decoding: t, as: UTF8.self)
            if seen.insert(term).inserted { out.append(term + " haddad") }
        }
        return out
    }

    @Test func aListBuiltAroundOneKeyBuildsInTime() throws {
        let names = Self.hostile(1_500, seed: 17) + ["Omar Haddad", "Qarawindelsmut Haddad"]
        let items = names.enumerated().map {
            (NameNormalizer.tokenize($1).joined(separator: " "), HitRef(list: 0, entry: Int32($0), selector: 0))
        }
        let start = Date()
        let idx = NameIndex(items)
        let took = Date().timeIntervalSince(start)
        print(
            "names: 1,502 names around one key: built in \(String(format: "%.2f", took)) s; largest key "
                + "\(idx.largestKeyBucket) terms; \(idx.droppedKeys) keys left out")
        // The shared key is left out (1,500 terms post it, over `pairKeyCap`); every other key stays.
        #expect(idx.droppedKeys == 1)
        #expect(idx.largestPairPosting == 1_500)
        #expect(took < 30)  // ~6 s in this debug build; ~17 s without the caps
        // The list's plain names are still found, and exactly.
        let hit = idx.query(NameModel.form("Omar Haddad")) { _ in 0.8 }
        #expect(hit.first?.ref.entry == 1_500)
        #expect(hit.first?.score == 1)
    }

    /// Terms past the build's budget of comparisons are *crowded*: no row, reached through their keys when a query
    /// has them — slower for that query, the same matches. 3,000 eight-letter spellings over three letters (each
    /// alike to hundreds of others) with a budget that runs out a tenth of the way: every query finds what the index
    /// without a budget finds, and what the scan finds.
    @Test func crowdedTermsFindTheSame() {
        let abc = Array("lmr".utf8)
        let names = Self.dense(3_000).map { $0 + " haddad" }
        let items = names.enumerated().map { ($1, HitRef(list: 0, entry: Int32($0), selector: 0)) }
        let tight = NameIndex(items, comparisonBudget: 100_000)
        let full = NameIndex(items)
        #expect(tight.crowdedTerms > 1_000)
        #expect(full.crowdedTerms == 0)
        var g = SplitMix64(seed: 19)
        for _ in 0..<60 {
            var t = Array(names[Int.random(in: 0..<names.count, using: &g)].utf8.prefix(8))
            t[Int.random(in: 0..<8, using: &g)] = abc.randomElement(using: &g)!  // a typo, or none
            let form = NameModel.form(String(decoding: t, as: UTF8.self) + " haddad")
            func found(_ m: [NameMatch]) -> [String] { m.map { "\($0.ref.entry):\($0.score)" }.sorted() }
            let a = found(tight.query(form) { _ in 0.8 })
            #expect(a == found(full.query(form) { _ in 0.8 }))
            #expect(a == found(full.scan(form, minScore: 0.8)))
        }
    }

    /// The budget goes to the terms whose keys visit fewest postings first: ordinary names listed after a list of
    /// thousands of mutually alike spellings keep their rows (a query with them stays as fast), the spellings do not.
    @Test func ordinaryNamesKeepTheirRowsBesideACrowd() throws {
        let dense = Self.dense(3_000)
        let ordinary = ["Omar Farouk Haddad", "Mohammed Ali Hassan", "Fatima Zahra Benali", "Youssef Karimi"]
        let names = dense + ordinary
        let items = names.enumerated().map {
            (NameNormalizer.tokenize($1).joined(separator: " "), HitRef(list: 0, entry: Int32($0), selector: 0))
        }
        let idx = NameIndex(items, comparisonBudget: 100_000)
        #expect(idx.crowdedTerms > 1_000)
        for name in ordinary {
            for t in NameModel.form(name).terms {
                let id = try #require(idx.termIDs[t])
                #expect(!idx.crowded[Int(id)], "\(t.text)")
            }
        }
        #expect(NameKeyCapTests.best(idx, "Omar Farouk Hadad") == 3_000)
    }

    /// `n` eight-letter spellings over three letters (every other one, in order): each alike to hundreds of others.
    static func dense(_ n: Int) -> [String] {
        let abc = Array("lmr".utf8)
        return (0..<n).map { k in
            var x = k * 2
            return String(
                decoding: (0..<8).map { _ in
                    defer { x /= 3 }; return abc[x % 3]
                }, as: UTF8.self)
        }
    }

    static func best(_ idx: NameIndex, _ q: String) -> Int32? {
        idx.query(NameModel.form(q)) { _ in 0.8 }.first?.ref.entry
    }

    /// The operator is told which lists the caps touched (owner/list, most names first; never a name), and `check`
    /// builds the same name index as `serve` to say it.
    @Test func warningsNameTheListsTheCapsTouched() throws {
        func list(_ owner: String, _ name: String, _ names: [String]) throws -> Watchlist {
            var text = "watchlist: \(name)\nowner: \(owner)\nreview_by: 2099-01-01\nentries:\n"
            for (i, n) in names.enumerated() {
                text += "  - {ref: N\(i), selectors: [{type: name, value: \"\(n)\"}]}\n"
            }
            let o = WatchlistLoader().outcome(bytes: Array(text.utf8), file: "\(name).yaml", owner: owner, now: 0)
            return try #require(o.list, "\(o.errors)")
        }
        let lists = [
            try list("be-fedpol", "ordinary", ["Omar Haddad", "Youssef Karimi"]),
            try list("nl-police", "one-spelling", Self.hostile(1_500, seed: 17)),
        ]
        let names = WatchlistIndex.names(of: lists)
        #expect(names.droppedNamesByList == [1: 1_500])
        let w = WatchlistIndex.warnings(names, lists: lists)
        #expect(w.count == 1)
        #expect(w.first?.contains("in nl-police/one-spelling (1500 names) — is a list built") == true)
        #expect(w.first?.contains("be-fedpol") == false)
        #expect(WatchlistIndex(lists: lists).warnings == w)
        // Crowded terms are named too (a budget that runs out at once crowds every term of both lists).
        let items =
            [("omar haddad", HitRef(list: 0, entry: 0, selector: 0))]
            + Self.dense(300).enumerated().map { ($1 + " haddad", HitRef(list: 1, entry: Int32($0), selector: 0)) }
        let tight = NameIndex(items, comparisonBudget: 10)
        let c = WatchlistIndex.warnings(tight, lists: lists)
        #expect(tight.crowdedNamesByList[1] == 300 && tight.crowdedNamesByList[0] == 1)
        #expect(c.count == 1 && c[0].contains("in nl-police/one-spelling (300 names), be-fedpol/ordinary (1 names)"))
    }
}
