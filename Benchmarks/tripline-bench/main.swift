// `make bench`: the speed figures recorded in BENCHMARKS.md.
import Foundation
import TriplineIngest
import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineWatchlists

func nowNS() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Runs `body` over `n` items `rounds` times and reports the best round in ns per item.
func measure(_ label: String, n: Int, rounds: Int = 5, _ body: () -> Int) {
    var best = Double.infinity
    var sink = 0
    for _ in 0..<rounds {
        let t0 = nowNS()
        sink &+= body()
        let t1 = nowNS()
        best = min(best, Double(t1 - t0) / Double(n))
    }
    let pad = label.padding(toLength: 58, withPad: " ", startingAt: 0)
    print(pad + String(format: " %9.1f ns/op   (best of %d, %d ops, check %d)", best, rounds, n, sink))
}

struct SplitMix: RandomNumberGenerator {
    var s: UInt64
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
var g = SplitMix(s: 20_261_123)

if ProcessInfo.processInfo.environment["TRIPLINE_BENCH"] == "rules-mix" {
    // Driven by Benchmarks/bench_rules.py, which runs python-hyperscan on the same files.
    rulesMixBench()
    exit(0)
}
print("Tripline benchmarks (release build, \(ProcessInfo.processInfo.activeProcessorCount) cores)")

// 1. Phone normalisation over realistic mixed formats.
let phone = PhoneNormalizer.shared
let templates: [(String, [String])] = [
    ("+32 470 %02d %02d %02d", []), ("0470 %02d %02d %02d", ["BE"]), ("00 33 6 12 %02d %02d %02d", ["IQ"]),
    ("+964 770 1%02d %02d%02d", []), ("0770 1%02d %02d%02d", ["IQ"]), ("+44 7700 9%02d%02d%02d", []),
    ("(202) 555-%02d%02d", ["US"]), ("+49 1512 34%02d%02d%02d", []), ("+33 1 42 %02d %02d %02d", []),
    ("+963 944 1%02d %02d%02d", []),
]
var phones: [(String, [String])] = []
for i in 0..<100_000 {
    let (t, r) = templates[i % templates.count]
    let a = Int.random(in: 0..<100, using: &g)
    let b = Int.random(in: 0..<100, using: &g)
    let c = Int.random(in: 0..<100, using: &g)
    phones.append((String(format: t, a, b, c), r))
}
let _ = try? phone.normalize("+32 2 456 12 34", regions: [])  // load the data before timing
measure(
    "phone normalisation, mixed formats", n: phones.count,
    rounds: ProcessInfo.processInfo.environment["TRIPLINE_BENCH"] == "phone" ? 40 : 5
) {
    var valid = 0
    for (p, r) in phones { if let n = try? phone.normalize(p, regions: r), n.valid { valid += 1 } }
    return valid
}
let e164Only = phones.compactMap { try? phone.normalize($0.0, regions: $0.1).e164 }
measure("phone normalisation, E.164 input", n: e164Only.count) {
    var valid = 0
    for p in e164Only { if let n = try? phone.normalize(p, regions: []), n.valid { valid += 1 } }
    return valid
}

// TRIPLINE_BENCH=phone|rules|correlation|audit|names|names-eval|stream runs one part (for profiling; rules includes
// correlation); unset runs everything.
let only = ProcessInfo.processInfo.environment["TRIPLINE_BENCH"]
let parts: [String: () -> Void] = [
    "phone": {}, "rules": rulesBench, "correlation": correlationBench, "audit": auditBench, "names": namesBench,
    "names-eval": namesEval, "dispatch": dispatchBench, "names-hostile": namesHostileBench,
]
if let only, let part = parts[only] {
    part()
    exit(0)
}

// 2. Exact lookup against a 1,000,000-entry watchlist (10% of queries hit).
let entries = 1_000_000
var watched: [String] = []
watched.reserveCapacity(entries)
for _ in 0..<entries { watched.append("+3247\(UInt64.random(in: 1_000_000...9_999_999, using: &g))") }
var items: [(SelectorType, String, HitRef)] = []
for (i, w) in watched.enumerated() {
    items.append((.phone, w, HitRef(list: 0, entry: Int32(i), selector: 0, viaAlias: false)))
}
let t0 = nowNS()
let exact = ExactIndex(items)
print(String(format: "exact index build, %d entries: %.0f ms", entries, Double(nowNS() - t0) / 1e6))
// Most selectors miss every list: 1% of the queries are watched numbers, the rest other numbers.
var queries: [[UInt8]] = []
for i in 0..<1_000_000 {
    queries.append(
        Array((i % 100 == 0 ? watched[i] : "+3348\(UInt64.random(in: 1_000_000...9_999_999, using: &g))").utf8))
}
let hitsOnly = (0..<100_000).map { Array(watched[$0 * 7].utf8) }
func exactBench(_ exact: ExactIndex, _ queries: [[UInt8]], _ hitsOnly: [[UInt8]]) {
    measure("exact lookup, 1M-entry list, hits only (found + compared)", n: hitsOnly.count) {
        var hits = 0
        for q in hitsOnly { q.withUnsafeBufferPointer { if exact.find(.phone, bytes: $0) >= 0 { hits += 1 } } }
        return hits
    }
    measure("exact lookup, 1M-entry list, 1% hits", n: queries.count) {
        var hits = 0
        for q in queries { q.withUnsafeBufferPointer { if exact.find(.phone, bytes: $0) >= 0 { hits += 1 } } }
        return hits
    }
    // The same queries laid out back to back, as a batch from the NDJSON reader holds them.
    var flat: [UInt8] = []
    var offsets: [Int] = [0]
    for q in queries {
        flat += q
        offsets.append(flat.count)
    }
    measure("exact lookup, 1M-entry list, 1% hits, contiguous batch", n: queries.count) {
        var hits = 0
        flat.withUnsafeBufferPointer { all in
            for k in 0..<(offsets.count - 1) {
                let q = UnsafeBufferPointer(rebasing: all[offsets[k]..<offsets[k + 1]])
                if exact.find(.phone, bytes: q) >= 0 { hits += 1 }
            }
        }
        return hits
    }
}
if only == nil { exactBench(exact, queries, hitsOnly) }

// 3. Prefix lookup: a realistic prefix list (10,000 area prefixes) and a stress case (1,000,000 prefixes).
func prefixBench(_ count: Int, lengths: ClosedRange<Int>, _ g: inout SplitMix) {
    // Distinct prefixes of `lengths` digits (country code + area code + exchange block), as prefix lists hold.
    var pfx: [(String, HitRef)] = []
    var seen = Set<String>()
    while pfx.count < count {
        let len = Int.random(in: lengths, using: &g)
        var s = "+"
        for _ in 0..<len { s.append(Character(Unicode.Scalar(UInt8(48 + Int.random(in: 0...9, using: &g))))) }
        if seen.insert(s).inserted { pfx.append((s, HitRef(list: 0, entry: Int32(pfx.count), selector: 0))) }
    }
    let trie = PrefixTrie(pfx)
    // Numbers back to back in one buffer, as the NDJSON reader's chunk holds them.
    var flat: [UInt8] = []
    var offsets: [Int] = [0]
    for _ in 0..<1_000_000 {
        flat.append(UInt8(ascii: "+"))
        for _ in 0..<11 { flat.append(UInt8(48 + Int.random(in: 0...9, using: &g))) }
        offsets.append(flat.count)
    }
    var out: [HitRef] = []
    out.reserveCapacity(16)
    measure("prefix lookup, \(count) prefixes of \(lengths) digits, random numbers", n: offsets.count - 1) {
        var hits = 0
        flat.withUnsafeBufferPointer { all in
            for k in 0..<(offsets.count - 1) {
                out.removeAll(keepingCapacity: true)
                trie.lookup(UnsafeBufferPointer(rebasing: all[offsets[k]..<offsets[k + 1]]), into: &out)
                hits += out.count
            }
        }
        return hits
    }
}
if only == nil {
    prefixBench(10_000, lengths: 5...9, &g)
    prefixBench(1_000_000, lengths: 5...9, &g)
    prefixBench(1_000_000, lengths: 7...10, &g)
}

// 4. Whole stream: NDJSON lines -> parse -> normalise -> match -> NDJSON hits, against the 1M-entry list.
let lists = [
    Watchlist(
        name: "bench", owner: "bench", description: nil,
        handling: Handling(tlp: .amber, releasableTo: ["bench"], originatorNotified: true), reviewBy: 4e9,
        defaultPriority: .high, minScore: nil, version: String(repeating: "0", count: 64), file: "bench.yaml",
        entries: watched.enumerated().map { i, w in
            Entry(
                ref: "B-\(i)", label: nil, priority: nil, expires: nil,
                selectors: [WatchSelector(kind: .exact(.phone), value: w, aliases: [], line: 1)])
        })
]
let index = WatchlistIndex(lists: lists)
let matcher = Matcher(index: index, now: 2e9)
let normalizer = SelectorNormalizer()
var ndjson: [UInt8] = []
let lineCount = 200_000
for i in 0..<lineCount {
    let v = i % 20 == 0 ? watched[i] : phones[i % phones.count].0
    let hint = phones[i % phones.count].1.first ?? "BE"
    let line =
        #"{"id":"dev-\#(i)","type":"phone","value":"\#(v)","observed_at":"2016-10-20T08:15:00Z","source":{"item":"PHONE-0042","country":"\#(hint)"}}"#
    ndjson += Array(line.utf8)
    ndjson.append(0x0A)
}
let path = NSTemporaryDirectory() + "tripline-bench-\(getpid()).ndjson"
_ = FileManager.default.createFile(atPath: path, contents: Data(ndjson))
defer { try? FileManager.default.removeItem(atPath: path) }
var bestRate = 0.0
var hitsOut = 0
for _ in 0..<3 {
    let s0 = nowNS()
    var reader = try LineReader(path: path)
    var out: [UInt8] = []
    var hits = 0
    while let l = try reader.next() {
        guard case .record(let bytes, _) = l else { continue }
        let v = bytes.withUnsafeBufferPointer { try? JSONParser.parse($0) }
        guard let o = v?.objectValue, let input = try? SelectorInput(json: o),
            let sel = try? normalizer.normalize(input)
        else { continue }
        for h in matcher.match(sel) {
            var w = JSONWriter()
            w.write(h.json)
            out += w.bytes
            hits += 1
        }
        if out.count > 1 << 20 { out.removeAll(keepingCapacity: true) }
    }
    let secs = Double(nowNS() - s0) / 1e9
    bestRate = max(bestRate, Double(lineCount) / secs)
    hitsOut = hits
}
print(
    String(
        format:
            "whole stream (parse+normalise+match+write), %d lines of ~%d bytes: %.0f selectors/s, %.1f MB/s (%d hits)",
        lineCount, ndjson.count / lineCount, bestRate, bestRate * Double(ndjson.count / lineCount) / 1e6, hitsOut))

// Stage breakdown of the same stream (ns per line), to show where the time goes.
func stages(_ lines: [[UInt8]]) {
    var values: [JSONValue] = []
    measure("  stage: JSON parse of a line", n: lines.count, rounds: 3) {
        values = lines.map { l in l.withUnsafeBufferPointer { (try? JSONParser.parse($0)) ?? .null } }
        return values.count
    }
    var inputs: [SelectorInput] = []
    measure("  stage: record validation", n: lines.count, rounds: 3) {
        inputs = values.compactMap { $0.objectValue.flatMap { try? SelectorInput(json: $0) } }
        return inputs.count
    }
    var sels: [NormalizedSelector] = []
    measure("  stage: normalise + enrich", n: lines.count, rounds: 3) {
        sels = inputs.compactMap { try? normalizer.normalize($0) }
        return sels.count
    }
    measure("  stage: match", n: lines.count, rounds: 3) {
        sels.reduce(0) { $0 + matcher.match($1).count }
    }
    measure("  stage: write normalised record", n: lines.count, rounds: 3) {
        var total = 0
        for s in sels {
            var w = JSONWriter()
            w.write(s.json)
            total += w.bytes.count
        }
        return total
    }
}
stages(ndjson.split(separator: 0x0A).map { Array($0) })

// 5. Rule engine.
if only == nil { rulesBench() }

// 6. Audit log.
if only == nil {
    auditBench()
    namesBench()
    dispatchBench()
}
