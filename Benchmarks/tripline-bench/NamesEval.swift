import Foundation
import TriplineSelectors
import TriplineWatchlists

/// The UN-list name evaluation (the same as the test suite's), in a release build, for both the indexed search
/// and the full scan: `TRIPLINE_BENCH=names-eval` (needs ../shared/data and python3).
func namesEval() {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let list = root.deletingLastPathComponent().appendingPathComponent("shared/data/un-consolidated-2026-01-28.xml")
        .path
    let script = root.appendingPathComponent("scripts/name_eval.py").path
    func python(_ args: [String]) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let out = Pipe()
        p.standardOutput = out
        try? p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: d, as: UTF8.self)
    }
    var items: [(String, HitRef)] = []
    var originals: [(String, Int)] = []
    var idOf: [String: Int] = [:]
    for (k, line) in python([script, "individuals", list]).split(separator: "\n").enumerated() {
        guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
        idOf[o["id"] as! String] = k
        for n in o["names"] as! [String] {
            items.append(
                (NameNormalizer.tokenize(n).joined(separator: " "), HitRef(list: 0, entry: Int32(k), selector: 0)))
        }
        if let orig = o["original"] as? String, !orig.isEmpty { originals.append((orig, k)) }
    }
    let idx = NameIndex(items)
    let verbose = ProcessInfo.processInfo.environment["NAMES_VERBOSE"] != nil
    if let q = ProcessInfo.processInfo.environment["NAMES_EXPLAIN"] {
        for x in q.split(separator: "|") {
            print(x, NameModel.form(String(x)).terms.map(\.canon), idx.explain(NameModel.form(String(x))))
            for m in idx.scan(NameModel.form(String(x)), minScore: 0.5).prefix(3) {
                print("  ", m.matched, m.score, m.alignment)
            }
        }
        return
    }
    for mode in ["index", "scan"] {
        func hits(_ q: String) -> [NameMatch] {
            mode == "index"
                ? idx.query(NameModel.form(q)) { _ in NameIndex.defaultMinScore }
                : idx.scan(NameModel.form(q), minScore: NameIndex.defaultMinScore)
        }
        var found = 0
        var misses: [String] = []
        for (q, k) in originals {
            if hits(q).contains(where: { $0.ref.entry == Int32(k) }) {
                found += 1
            } else {
                if verbose && mode == "index"
                    && idx.scan(NameModel.form(q), minScore: 0.8).contains(where: { $0.ref.entry == Int32(k) })
                {
                    print("  index, not scan: \(q) \(idx.explain(NameModel.form(q)))")
                }
                let near = idx.scan(NameModel.form(q), minScore: 0).first { $0.ref.entry == Int32(k) }
                misses.append(
                    "\(q) (\(NameModel.form(q).terms.map(\.text).joined(separator: " ")) ~ \(near?.matched ?? "?") \(near?.score ?? 0))"
                )
            }
        }
        var byKind: [String: (Int, Int)] = [:]
        var vmiss: [String] = []
        for line in python([script, "variants", list, "20261123"]).split(separator: "\n") {
            let f = line.split(separator: "\t").map(String.init)
            let k = idOf[f[2]]!
            let ok = hits(f[1]).contains { $0.ref.entry == Int32(k) }
            byKind[f[0], default: (0, 0)].0 += ok ? 1 : 0
            byKind[f[0], default: (0, 0)].1 += 1
            if !ok {
                let near = idx.scan(NameModel.form(f[1]), minScore: 0).first { $0.ref.entry == Int32(k) }
                vmiss.append("\(f[0]): \(f[1]) ~ \(near?.matched ?? "?") \(near?.score ?? 0)")
            }
        }
        let total = byKind.values.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        let negatives =
            (try? String(
                contentsOfFile: root.appendingPathComponent("Tests/Data/names-not-listed.txt").path, encoding: .utf8))?
            .split(separator: "\n").filter { !$0.hasPrefix("#") } ?? []
        var fps: [String] = []
        for n in negatives {
            if let m = hits(String(n)).first { fps.append("\(n) ~ \(m.matched) \(m.score) \(m.alignment)") }
        }
        print(
            "names-eval \(mode): arabic \(found)/\(originals.count) = \(String(format: "%.3f", Double(found) / Double(originals.count))); variants \(total.0)/\(total.1) = \(String(format: "%.4f", Double(total.0) / Double(total.1))) ("
                + byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.0)/\($0.value.1)" }.joined(
                    separator: ", ")
                + "); false positives \(fps.count)/\(negatives.count)")
        if verbose {
            print("  arabic misses:\n    " + misses.joined(separator: "\n    "))
            print("  variant misses:\n    " + vmiss.joined(separator: "\n    "))
            print("  false positives:\n    " + fps.joined(separator: "\n    "))
        }
    }
}
