import Foundation
import TriplineJSON
import TriplineRules
import TriplineSelectors

/// Rule-engine figures: N generated rules (40% exact values, 40% contains/startswith literals, 20% regexes with a
/// literal core) over short username selectors of which about 1% hit; compile time of the same sets.
func rulesBench() {
    var g = SplitMix(s: 5_000)
    let letters = Array("abcdefghijklmnopqrstuvwxyz")
    func token(_ n: Int) -> String { String((0..<n).map { _ in letters[Int(g.next() % 26)] }) }

    func generate(_ count: Int) -> (text: String, hitValues: [String]) {
        var docs: [String] = []
        var hitValues: [String] = []
        for i in 0..<count {
            let t = token(8)
            let test: String
            switch i % 10 {
            case 0, 1, 2, 3:
                test = "value: 'telegram:\(t)'"
                hitValues.append("telegram:\(t)")
            case 4, 5:
                test = "value|contains: '\(t)'"
                hitValues.append("telegram:x\(t)y")
            case 6, 7:
                test = "value|startswith: 'telegram:\(t)'"
                hitValues.append("telegram:\(t)99")
            default:
                test = "value|re: '^telegram:\(t)[0-9]{2,4}$'"
                hitValues.append("telegram:\(t)123")
            }
            docs.append(
                """
                title: Generated \(i)
                id: gen-\(i)
                logsource: {product: tripline, category: selector}
                level: medium
                detection:
                  sel:
                    type: username
                    \(test)
                  condition: sel
                """)
        }
        return (docs.joined(separator: "\n---\n") + "\n", hitValues)
    }

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-rules-bench")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let normalizer = SelectorNormalizer()
    var perSelector: [Int: Double] = [:]
    for count in [1_000, 5_000, 10_000] {
        let (text, hitValues) = generate(count)
        let path = dir.appendingPathComponent("rules-\(count).yml").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        var best = Double.infinity
        var loaded: RuleLoader.Result?
        for _ in 0..<3 {
            let t0 = nowNS()
            loaded = RuleLoader(now: 0).load(files: [path])
            best = min(best, Double(nowNS() - t0) / 1e9)
        }
        let set = loaded!.ruleSet
        precondition(loaded!.errors.isEmpty && set.rules.count == count, "\(loaded!.errors.prefix(3))")
        let pad = "rules: read + compile \(count) rules".padding(toLength: 58, withPad: " ", startingAt: 0)
        print(pad + String(format: " %9.3f s        (%@)", best, set.summary))

        // 100,000 short selectors, 1% built to hit one rule.
        var events: [RuleEvent] = []
        for k in 0..<100_000 {
            let v: String
            if k % 100 == 0 {
                v = hitValues[Int(g.next() % UInt64(hitValues.count))]
            } else {
                v = "telegram:" + token(6 + Int(g.next() % 10))
            }
            let input = SelectorInput(id: "u\(k)", type: .username, value: v)
            events.append(RuleEvent(selector: try! normalizer.normalize(input), watchlist: []))
        }
        var ev = RuleEvaluator(set)
        var hits = 0
        for e in events { hits += ev.evaluate(e).count }
        precondition(hits >= 1000, "expected the 1% to hit, got \(hits)")
        print("rules: \(ev.evaluatedRules) conditions evaluated for \(events.count) selectors, \(hits) hits")
        var bestNS = Double.infinity
        let rounds = ProcessInfo.processInfo.environment["TRIPLINE_PROFILE"] == nil ? 5 : 40
        measure("rules: evaluate, \(count) rules, 1% of selectors hit", n: events.count, rounds: rounds) {
            let t0 = nowNS()
            var n = 0
            events.withUnsafeBufferPointer { events in
                for i in events.indices { n += ev.evaluate(events[i]).count }
            }
            bestNS = min(bestNS, Double(nowNS() - t0) / Double(events.count))
            return n
        }
        perSelector[count] = bestNS
        if count == 1_000 && ProcessInfo.processInfo.environment["TRIPLINE_PROFILE"] == nil {
            var slow = RuleEvaluator(set, prefilter: false)
            let sample = Array(events.prefix(2_000))
            measure("rules: every rule evaluated directly, \(count) rules", n: sample.count, rounds: 2) {
                var n = 0
                for e in sample { n += slow.evaluate(e).count }
                return n
            }
        }
    }
    if let a = perSelector[1_000], let c = perSelector[10_000] {
        print(String(format: "rules: 10,000 rules cost %.2fx what 1,000 cost", c / a))
    }
}
