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
    correlationBench()
}

/// Correlation cost on the adversarial stream of the "service faults" issue: one device (`source.item`), one area,
/// two alternating numbers, events 0.1 s apart; a value_count `{gte: 3, field: value}` over 1h grouped by
/// [source.item, area] (never true: two values) and an event_count `{gte: 5}` (true throughout), through
/// `RuleEngine.process` (detection and correlation; selectors normalised beforehand). Then the same events out of
/// order (up to 50 minutes behind), and the brute force the engine replaced on a smaller stream.
func correlationBench() {
    let text = """
        title: Number with an area
        id: bench-base
        name: base
        logsource: {product: tripline, category: selector}
        detection:
          s: {type: phone, area|exists: true}
          condition: s
        ---
        title: Three numbers into one area
        id: bench-values
        correlation:
          type: value_count
          rules: [base]
          group-by: [source.item, area]
          timespan: 1h
          condition: {gte: 3, field: value}
        ---
        title: Five records into one area
        id: bench-events
        correlation:
          type: event_count
          rules: [base]
          group-by: [source.item, area]
          timespan: 1h
          condition: {gte: 5}
        """
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-correlation-bench")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("correlation.yml").path
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    let loaded = RuleLoader(now: 0).load(files: [path])
    precondition(loaded.errors.isEmpty, "\(loaded.errors)")
    let normalizer = SelectorNormalizer()
    let base = 1_476_950_400
    func stream(_ n: Int, shuffled: Bool) -> [NormalizedSelector] {
        var r = SplitMix(s: 77)
        return (0..<n).map { k in
            // Out of order: up to 50 minutes behind the in-order time (the allowed lateness is 1h).
            let tenths = shuffled ? max(0, k - Int(r.next() % 30_000)) : k
            let at = Timestamp.format(Double(base + tenths / 10)).dropLast() + ".\(tenths % 10)Z"
            var input = SelectorInput(
                id: "e\(k)", type: .phone, value: k % 2 == 0 ? "+32 2 456 12 34" : "+32 2 511 22 33")
            input.observedAt = String(at)
            input.source = .object(JSONObject([("item", .string("P-1")), ("country", .string("IQ"))]))
            return try! normalizer.normalize(input)
        }
    }
    func run(_ events: [NormalizedSelector], options: CorrelationOptions) -> (seconds: Double, hits: Int, late: Int) {
        var engine = RuleEngine(loaded.ruleSet, options: options)
        let t0 = nowNS()
        var hits = 0
        for e in events { hits += engine.process(e, watchlist: [], ingestTime: 1_900_000_000).count }
        return (Double(nowNS() - t0) / 1e9, hits, engine.correlation.lateEvents)
    }
    let n = 100_000
    let inOrder = stream(n, shuffled: false)
    let outOfOrder = stream(n, shuffled: true)
    var evaluator = RuleEvaluator(loaded.ruleSet)
    let d0 = nowNS()
    var matchedCount = 0
    for e in inOrder { matchedCount += evaluator.evaluate(RuleEvent(selector: e, watchlist: [])).count }
    let detection = Double(nowNS() - d0) / 1e9
    let pad = "correlation: 100,000 events, detection alone".padding(toLength: 78, withPad: " ", startingAt: 0)
    print(pad + String(format: " %7.3f s  (%d matched)", detection, matchedCount))
    var unbounded = CorrelationOptions()
    unbounded.maxEntriesPerGroup = 1_000_000
    for (label, events, options) in [
        ("in order, 10,000 entries per group (default)", inOrder, CorrelationOptions()),
        ("in order, no entry cap (72,000 entries)", inOrder, unbounded),
        ("out of order, no entry cap", outOfOrder, unbounded),
    ] {
        let r = run(events, options: options)
        let pad = "correlation: 100,000 events, \(label)".padding(toLength: 78, withPad: " ", startingAt: 0)
        print(
            pad
                + String(
                    format: " %7.3f s  (%.1f µs/event, %d hits, %d late)", r.seconds, r.seconds * 1e6 / Double(n),
                    r.hits, r.late))
    }
    // The brute force it replaced: every window start rescanned, a set per window, for the value_count alone.
    if ProcessInfo.processInfo.environment["TRIPLINE_PROFILE"] != nil { return }
    for m in [500, 1_000] {
        var entries: [(time: Double, value: String)] = []
        let t0 = nowNS()
        var fired = 0
        for k in 0..<m {
            let t = Double(k) / 10
            entries.append((t, k % 2 == 0 ? "a" : "b"))
            var s = entries.firstIndex { $0.time >= t - 3600 } ?? entries.count
            var found = false
            while !found && s < entries.count && entries[s].time <= t {
                var e = s
                while e < entries.count && entries[e].time <= entries[s].time + 3600 { e += 1 }
                found = Set(entries[s..<e].map(\.value)).count >= 3
                s += 1
            }
            if found { fired += 1 }
        }
        let seconds = Double(nowNS() - t0) / 1e9
        let pad = "correlation: \(m) events, the old brute force (value_count)".padding(
            toLength: 78, withPad: " ", startingAt: 0)
        print(pad + String(format: " %7.3f s  (%.1f µs/event, %d hits)", seconds, seconds * 1e6 / Double(m), fired))
    }
}

/// The throughput issue's rules mix (Benchmarks/gen_rules.py writes it; Benchmarks/bench_rules.py runs this beside
/// python-hyperscan): for each `rules-N.yml` in `TRIPLINE_RULES_MIX`, the median ns/selector of `TRIPLINE_RUNS`
/// rounds of the evaluator over `selectors.tsv`, the hits, and a digest of which rules each selector met (FNV-1a
/// over "index:rule,rule\n", the same as the Python side computes from hyperscan's matches).
func rulesMixBench() {
    let env = ProcessInfo.processInfo.environment
    guard let dir = env["TRIPLINE_RULES_MIX"] else { fatalError("TRIPLINE_RULES_MIX is not set") }
    let runs = Int(env["TRIPLINE_RUNS"] ?? "5") ?? 5
    let normalizer = SelectorNormalizer()
    let text = try! String(contentsOfFile: dir + "/selectors.tsv", encoding: .utf8)
    var events: [RuleEvent] = []
    for (k, line) in text.split(separator: "\n").enumerated() {
        let parts = line.split(separator: "\t", maxSplits: 1)
        let input = SelectorInput(id: "s\(k)", type: SelectorType(rawValue: String(parts[0]))!, value: String(parts[1]))
        let normalized = try! normalizer.normalize(input)
        precondition(normalized.value == input.value, "selector \(k) normalises to \(normalized.value)")
        events.append(RuleEvent(selector: normalized, watchlist: []))
    }
    let counts =
        (try? FileManager.default.contentsOfDirectory(atPath: dir))?
        .compactMap { name -> Int? in
            guard name.hasPrefix("rules-"), name.hasSuffix(".yml") else { return nil }
            return Int(name.dropFirst(6).dropLast(4))
        }.sorted() ?? []
    for count in counts {
        let loaded = RuleLoader(now: 0).load(files: [dir + "/rules-\(count).yml"])
        precondition(loaded.errors.isEmpty && loaded.ruleSet.rules.count == count, "\(loaded.errors.prefix(3))")
        var ev = RuleEvaluator(loaded.ruleSet)
        var hits = 0
        var digest: UInt64 = 0xCBF2_9CE4_8422_2325
        for (k, e) in events.enumerated() {
            let matched = ev.evaluate(e)
            guard !matched.isEmpty else { continue }
            hits += matched.count
            for b in "\(k):\(matched.map(String.init).joined(separator: ","))\n".utf8 {
                digest = (digest ^ UInt64(b)) &* 0x100_0000_01B3
            }
        }
        let evaluated = ev.evaluatedRules
        var times: [Double] = []
        for _ in 0..<runs {
            let t0 = nowNS()
            var n = 0
            events.withUnsafeBufferPointer { events in
                for i in events.indices { n += ev.evaluate(events[i]).count }
            }
            precondition(n == hits)
            times.append(Double(nowNS() - t0) / Double(events.count))
        }
        times.sort()
        print(
            "rules-mix \(count) \(String(format: "%.1f", times[times.count / 2])) \(hits) "
                + "\(String(repeating: "0", count: 16 - String(digest, radix: 16).count) + String(digest, radix: 16)) "
                + "\(evaluated) \(String(format: "%.1f", times[0]))")
        print("  \(loaded.ruleSet.summary)")
    }
}
