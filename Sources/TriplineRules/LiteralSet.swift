/// Finds which of many literals occur in a short subject. Each literal of four bytes or more is keyed by its
/// rarest 4-byte gram; a 2^20-bit filter of those grams (128 KiB, cache-resident) is probed at every position of
/// the subject, and only a probe that hits looks the gram up and compares the literals keyed by it. Text of a
/// selector mostly misses every literal, so a scan costs one multiply and one bit test per byte. Literals under
/// four bytes go to an Aho–Corasick automaton.
struct LiteralSet: Sendable {
    private static let bitsLog2 = 20
    private var bits: [UInt64]
    private var table: [UInt32: [Int32]] = [:]  // gram -> entries
    private var entries: [(literal: [UInt8], offset: Int, value: Int32)] = []
    private var short: AhoCorasick
    let isEmpty: Bool
    var count: Int { entries.count + short.patternCount }

    init(patterns: [[UInt8]], values: [Int32]) {
        let anyLong = patterns.contains { $0.count >= 4 }
        bits = [UInt64](repeating: 0, count: anyLong ? 1 << (Self.bitsLog2 - 6) : 0)
        var frequency: [UInt32: Int] = [:]
        for p in patterns where p.count >= 4 {
            var seen = Set<UInt32>()
            for i in 0...(p.count - 4) where seen.insert(Self.gram(p, i)).inserted {
                frequency[Self.gram(p, i), default: 0] += 1
            }
        }
        var shortPatterns: [[UInt8]] = []
        var shortValues: [Int32] = []
        for (p, v) in zip(patterns, values) {
            if p.isEmpty { continue }
            if p.count < 4 {
                shortPatterns.append(p)
                shortValues.append(v)
                continue
            }
            var best = 0
            for i in 0...(p.count - 4) where frequency[Self.gram(p, i)]! < frequency[Self.gram(p, best)]! { best = i }
            let g = Self.gram(p, best)
            table[g, default: []].append(Int32(entries.count))
            entries.append((p, best, v))
            let h = Self.slot(g)
            bits[h >> 6] |= 1 << UInt64(h & 63)
        }
        short = AhoCorasick(patterns: shortPatterns, values: shortValues)
        isEmpty = entries.isEmpty && short.isEmpty
    }

    @inline(__always)
    static func gram(_ p: [UInt8], _ i: Int) -> UInt32 {
        UInt32(p[i]) | UInt32(p[i + 1]) << 8 | UInt32(p[i + 2]) << 16 | UInt32(p[i + 3]) << 24
    }

    @inline(__always)
    static func slot(_ g: UInt32) -> Int { Int((g &* 0x9E37_79B1) >> UInt32(32 - bitsLog2)) }

    /// Calls `found` with the value of each literal occurring in `s` (once per occurrence).
    @inline(__always)
    func scan(_ s: UnsafeBufferPointer<UInt8>, _ found: (Int32) -> Void) {
        if !short.isEmpty { short.scan(s, found) }
        guard !entries.isEmpty, s.count >= 4 else { return }
        bits.withUnsafeBufferPointer { bits in
            var g = UInt32(s[0]) << 8 | UInt32(s[1]) << 16 | UInt32(s[2]) << 24
            for i in 3..<s.count {
                g = g >> 8 | UInt32(s[i]) << 24
                let h = Self.slot(g)
                if bits[h >> 6] & (1 << UInt64(h & 63)) != 0 { confirm(s, gramAt: i - 3, g, found) }
            }
        }
    }

    private func confirm(_ s: UnsafeBufferPointer<UInt8>, gramAt at: Int, _ g: UInt32, _ found: (Int32) -> Void) {
        guard let list = table[g] else { return }
        for k in list {
            let e = entries[Int(k)]
            let start = at - e.offset
            guard start >= 0, start + e.literal.count <= s.count else { continue }
            var same = true
            for j in 0..<e.literal.count where s[start + j] != e.literal[j] {
                same = false
                break
            }
            if same { found(e.value) }
        }
    }
}
