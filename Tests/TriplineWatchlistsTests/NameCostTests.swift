import Testing
import TriplineSelectors
import TriplineTestSupport

@testable import TriplineWatchlists

/// Issue "need-to-know hardening" item 15: what one name query may cost, and keep.
@Suite("Name query cost")
struct NameCostTests {
    /// 5,000 made-up names of two to four words, from a seeded generator.
    static func names(_ g: inout SplitMix64) -> [String] {
        let syllables = ["ab", "del", "ha", "mid", "om", "ar", "kha", "lil", "yus", "uf", "ras", "hid", "ka", "rim"]
        func word() -> String { (0..<(2 + Int(g.next() % 2))).map { _ in syllables[Int(g.next() % 14)] }.joined() }
        return (0..<5_000).map { _ in (0..<(2 + Int(g.next() % 3))).map { _ in word() }.joined(separator: " ") }
    }

    @Test("one huge query does not leave the index's pooled scratch grown")
    func scratchReleased() {
        var g = SplitMix64(seed: 15)
        let names = Self.names(&g)
        let idx = NameIndex(names.enumerated().map { ($1, HitRef(list: 0, entry: Int32($0), selector: 0)) })
        #expect(idx.query(NameModel.form(names[42])) { _ in NameIndex.defaultMinScore }.contains { $0.ref.entry == 42 })
        #expect(idx.pooledScratchBytes < 64 * 1024)
        // Over 600 words: no normalised record carries that many (a name has at most 16), but the index must not keep
        // what such a query grows its scratch to.
        let huge = (0..<300).map { _ in names[Int(g.next() % 5_000)] }.joined(separator: " ")
        let form = NameModel.form(normalized: huge, script: nil)
        #expect(form.terms.count > 600)
        _ = idx.query(form) { _ in NameIndex.defaultMinScore }
        #expect(idx.pooledScratchBytes <= 832 * 1024, "\(idx.pooledScratchBytes) bytes kept")
        // And the next ordinary query still finds its name.
        #expect(idx.query(NameModel.form(names[7])) { _ in NameIndex.defaultMinScore }.contains { $0.ref.entry == 7 })
    }
}
