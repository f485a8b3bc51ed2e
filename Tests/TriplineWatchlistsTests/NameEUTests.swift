import Foundation
import Testing
import TriplineSelectors
import TriplineTestSupport

@testable import TriplineWatchlists

/// The second name evaluation (issue 19), on the EU consolidated list: built apart from the UN one and never used
/// to tune the matcher (scripts/name_eval_eu.py). Three parts: (a) each spelling alias of a person, queried, must find
/// its person through another of its names; (b) generated variants by kind; (c) false positives on 12,000 names of
/// sixteen locales far from every listed name. The figures are printed (BENCHMARKS.md keeps them beside the UN's);
/// the assertions hold today's figures so that a change that loses ground here fails.
@Suite("person names: EU evaluation")
struct NameEUTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let euList = root.deletingLastPathComponent().appendingPathComponent(
        "shared/data/eu-sanctions-individuals-2026-01-28.jsonl"
    ).path
    static let script = root.appendingPathComponent("scripts/name_eval_eu.py").path

    struct Figures {
        var aliasRecall = 0.0
        var variantRecall = 0.0
        var byKind: [String: Double] = [:]
        var falsePositiveRate = 0.0
        /// False positives of the names written in Latin script only.
        var latinFalsePositiveRate = 0.0
    }

    static func evaluate() throws -> Figures {
        var items: [(String, HitRef)] = []
        var idOf: [String: Int32] = [:]
        for (k, line) in try python3([script, "persons", euList]).split(separator: "\n").enumerated() {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            idOf[o["id"] as! String] = Int32(k)
            for (j, n) in (o["names"] as! [String]).enumerated() {
                items.append(
                    (
                        NameNormalizer.tokenize(n).joined(separator: " "),
                        HitRef(list: 0, entry: Int32(k), selector: Int32(j))
                    )
                )
            }
        }
        let idx = NameIndex(items)
        // No key of a real list's is near the cap: the index finds what the scan finds (NameKeyCapTests).
        print("names, EU: largest term-key bucket \(idx.largestKeyBucket) terms (cap \(NameIndex.keyBucketCap))")
        #expect(idx.droppedKeys == 0)
        #expect(idx.largestKeyBucket * 8 < NameIndex.keyBucketCap)
        #expect(idx.crowdedTerms == 0 && idx.widestReach * 8 < NameIndex.reachVisitCap)
        func hits(_ q: String) -> [NameMatch] {
            idx.query(NameModel.form(q)) { _ in NameIndex.defaultMinScore }
        }
        var f = Figures()
        // (a) Spelling aliases: found through another of the person's names (the alias itself does not count).
        var found = 0
        var total = 0
        var misses: [String] = []
        for line in try python3([script, "aliases", euList]).split(separator: "\n") {
            let c = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            let k = idOf[c[0]]!
            let j = Int32(c[1])!
            total += 1
            if hits(c[2]).contains(where: { $0.ref.entry == k && $0.ref.selector != j }) {
                found += 1
            } else {
                misses.append(c[2])
            }
        }
        f.aliasRecall = Double(found) / Double(total)
        print(
            "names (EU): alias-as-query recall \(found)/\(total) = \(f.aliasRecall); misses e.g. \(misses.prefix(10))")
        // (b) Variants by kind.
        var byKind: [String: (Int, Int)] = [:]
        var variantMisses: [String] = []
        for line in try python3([script, "variants", euList, "20261201"]).split(separator: "\n") {
            let c = line.split(separator: "\t").map(String.init)
            let ok = hits(c[1]).contains { $0.ref.entry == idOf[c[2]]! }
            byKind[c[0], default: (0, 0)].0 += ok ? 1 : 0
            byKind[c[0], default: (0, 0)].1 += 1
            if !ok { variantMisses.append("\(c[0]): \(c[1])") }
        }
        let sum = byKind.values.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        f.variantRecall = Double(sum.0) / Double(sum.1)
        f.byKind = byKind.mapValues { Double($0.0) / Double($0.1) }
        print(
            "names (EU): variant recall \(sum.0)/\(sum.1) = \(f.variantRecall); by kind "
                + byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.0)/\($0.value.1)" }.joined(
                    separator: ", ") + "; misses e.g. \(variantMisses.prefix(12))")
        // (c) Names not listed.
        let negatives = try String(
            contentsOf: root.appendingPathComponent("Tests/Data/eu-names-not-listed.txt"), encoding: .utf8
        ).split(separator: "\n").filter { !$0.hasPrefix("#") }
        var falsePositives: [String] = []
        var byScript: [Bool: (Int, Int)] = [:]
        for n in negatives {
            let latin = n.unicodeScalars.allSatisfy { $0.value < 0x250 || !$0.properties.isAlphabetic }
            let m = hits(String(n)).first
            byScript[latin, default: (0, 0)].0 += m == nil ? 0 : 1
            byScript[latin, default: (0, 0)].1 += 1
            if let m { falsePositives.append("\(n) ~ \(m.matched) \(m.score)") }
        }
        f.falsePositiveRate = Double(falsePositives.count) / Double(negatives.count)
        let latin = byScript[true] ?? (0, 1)
        let other = byScript[false] ?? (0, 1)
        f.latinFalsePositiveRate = Double(latin.0) / Double(latin.1)
        print(
            "names (EU): false positives \(falsePositives.count)/\(negatives.count) = \(f.falsePositiveRate) "
                + "(Latin script \(latin.0)/\(latin.1), other scripts \(other.0)/\(other.1)): "
                + "\(falsePositives.prefix(10))")
        if let out = ProcessInfo.processInfo.environment["TRIPLINE_EU_FP_OUT"] {
            try falsePositives.joined(separator: "\n").write(toFile: out, atomically: true, encoding: .utf8)
        }
        return f
    }

    @Test("evaluation on the EU consolidated list: spelling aliases, variants by kind, names not listed")
    func euEvaluation() throws {
        try #require(FileManager.default.fileExists(atPath: Self.euList), "the EU list beside the project")
        let f = try Self.evaluate()
        // Today's figures (2026-12-01, BENCHMARKS.md: aliases 0.841, 0.908 after the Slavic romanisations; variants
        // 0.952, 0.9575 once a swap counts one of two edits; false positives 1.08%, 0.092% after the cross-script
        // rules for Arabic-script names), less a small margin: the floor a change must not go under. The issue's
        // targets for variants (>= 0.97 and every kind >= 0.93) are not met yet; aliases >= 0.9 and false positives
        // <= 0.1% are.
        #expect(f.aliasRecall >= 0.9)
        #expect(f.variantRecall >= 0.95)
        #expect(f.byKind.count == 5 && f.byKind.values.allSatisfy { $0 >= 0.8 })
        #expect(f.falsePositiveRate <= 0.001)
    }
}
