/// Finds which of many literals occur in a short subject. Each literal of four bytes or more is keyed by its
/// rarest 4-byte gram; a filter of those grams (up to 2^20 bits, cache-resident) is probed at every position of
/// the subject, and only a probe that hits looks the gram up in an open-addressing table and compares the literals
/// keyed by it (their bytes in one pool: no reference counting, no hashing beyond one multiply). Text of a selector
/// mostly misses every literal, so a scan costs one multiply and one bit test per byte. Literals under four bytes go
/// to an Aho–Corasick automaton.
final class LiteralSet: Sendable {
    /// Filter size: about 32 bits per keyed literal, between 2^15 (4 KiB) and 2^20 bits (128 KiB); the smaller it
    /// is, the more of it stays in the first-level cache (a probe per byte of every selector).
    private let bitsLog2: Int
    private let bits: [UInt64]
    /// Literals grouped by key gram: bytes `pool[start..<start+count]`, key gram at `offset` within it.
    private struct Entry: Sendable {
        var start: Int32
        var count: Int32
        var offset: Int32
        var value: Int32
    }
    private let entries: [Entry]
    private let pool: [UInt8]
    /// Open addressing on the gram: `first..<first+count` of `entries`; count 0 is an empty slot.
    private struct Slot: Sendable {
        var gram: UInt32 = 0
        var first: Int32 = 0
        var count: Int32 = 0
    }
    private let slots: [Slot]
    private let slotShift: UInt32
    private let short: AhoCorasick
    let isEmpty: Bool
    var count: Int { entries.count + short.patternCount }

    init(patterns: [[UInt8]], values: [Int32]) {
        let anyLong = patterns.contains { $0.count >= 4 }
        var entries: [Entry] = []
        var pool: [UInt8] = []
        var slots: [Slot] = []
        var slotShift: UInt32 = 32
        let longCount = patterns.reduce(0) { $0 + ($1.count >= 4 ? 1 : 0) }
        var log2 = 15
        while log2 < 20 && 1 << log2 < longCount * 32 { log2 += 1 }
        bitsLog2 = log2
        var bits = [UInt64](repeating: 0, count: anyLong ? 1 << (log2 - 6) : 0)
        var frequency: [UInt32: Int] = [:]
        for p in patterns where p.count >= 4 {
            var seen = Set<UInt32>()
            for i in 0...(p.count - 4) where seen.insert(Self.gram(p, i)).inserted {
                frequency[Self.gram(p, i), default: 0] += 1
            }
        }
        var shortPatterns: [[UInt8]] = []
        var shortValues: [Int32] = []
        var keyed: [(gram: UInt32, literal: [UInt8], offset: Int, value: Int32)] = []
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
            keyed.append((g, p, best, v))
            let h = Self.slot(g, log2)
            bits[h >> 6] |= 1 << UInt64(h & 63)
        }
        // Group by gram (stable: a gram's literals keep their order), then one slot per distinct gram.
        let order = keyed.indices.sorted { (keyed[$0].gram, $0) < (keyed[$1].gram, $1) }
        var distinct = 0
        var previous: UInt32?
        for k in order {
            let e = keyed[k]
            if e.gram != previous { distinct += 1 }
            previous = e.gram
            entries.append(
                Entry(
                    start: Int32(pool.count), count: Int32(e.literal.count), offset: Int32(e.offset), value: e.value))
            pool += e.literal
        }
        if distinct > 0 {
            var slotLog2 = 1
            while 1 << slotLog2 < distinct * 2 { slotLog2 += 1 }
            slots = [Slot](repeating: Slot(), count: 1 << slotLog2)
            slotShift = UInt32(32 - slotLog2)
            var i = 0
            while i < order.count {
                let g = keyed[order[i]].gram
                var j = i
                while j < order.count && keyed[order[j]].gram == g { j += 1 }
                var s = Int((g &* 0x9E37_79B1) >> slotShift)
                while slots[s].count != 0 { s = (s + 1) & (slots.count - 1) }
                slots[s] = Slot(gram: g, first: Int32(i), count: Int32(j - i))
                i = j
            }
        }
        short = AhoCorasick(patterns: shortPatterns, values: shortValues)
        self.bits = bits
        self.entries = entries
        self.pool = pool
        self.slots = slots
        self.slotShift = slotShift
        isEmpty = entries.isEmpty && short.isEmpty
    }

    @inline(__always)
    static func gram(_ p: [UInt8], _ i: Int) -> UInt32 {
        UInt32(p[i]) | UInt32(p[i + 1]) << 8 | UInt32(p[i + 2]) << 16 | UInt32(p[i + 3]) << 24
    }

    @inline(__always)
    static func slot(_ g: UInt32, _ log2: Int) -> Int { Int((g &* 0x9E37_79B1) >> UInt32(32 - log2)) }

    /// Calls `found` with the value of each literal occurring in `s` (once per occurrence).
    @inline(__always)
    func scan(_ s: UnsafeBufferPointer<UInt8>, _ found: (Int32) -> Void) {
        if !short.isEmpty { short.scan(s, found) }
        guard !entries.isEmpty, s.count >= 4 else { return }
        let shift = UInt32(32 - bitsLog2)
        bits.withUnsafeBufferPointer { bits in
            var g = UInt32(s[0]) << 8 | UInt32(s[1]) << 16 | UInt32(s[2]) << 24
            for i in 3..<s.count {
                g = g >> 8 | UInt32(s[i]) << 24
                let h = Int((g &* 0x9E37_79B1) >> shift)
                if bits[h >> 6] & (1 << UInt64(h & 63)) != 0 { confirm(s, gramAt: i - 3, g, found) }
            }
        }
    }

    private func confirm(_ s: UnsafeBufferPointer<UInt8>, gramAt at: Int, _ g: UInt32, _ found: (Int32) -> Void) {
        slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var k = Int((g &* 0x9E37_79B1) >> slotShift)
            while slots[k].count != 0 && slots[k].gram != g { k = (k + 1) & mask }
            let slot = slots[k]
            guard slot.count != 0 else { return }
            entries.withUnsafeBufferPointer { entries in
                pool.withUnsafeBufferPointer { pool in
                    for e in entries[Int(slot.first)..<Int(slot.first + slot.count)] {
                        let start = at - Int(e.offset)
                        let n = Int(e.count)
                        guard start >= 0, start + n <= s.count else { continue }
                        var j = 0
                        let p = Int(e.start)
                        while j < n && s[start + j] == pool[p + j] { j += 1 }
                        if j == n { found(e.value) }
                    }
                }
            }
        }
    }
}
