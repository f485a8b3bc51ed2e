/// A multi-pattern automaton (Aho–Corasick) over bytes: one pass over a subject reports every pattern it
/// contains. Transitions are a dense table over byte classes (bytes that occur in no pattern share one class),
/// so a step is one load; each state's outputs (its own and its suffixes') are a slice of one flat array.
struct AhoCorasick: Sendable {
    private var classOf = [UInt8](repeating: 0, count: 256)
    private var classes = 1
    private var next: [Int32] = []  // state * classes + class
    private var outStart: [Int32] = []  // per state, into outputs; outStart[state + 1] ends it
    private var outputs: [Int32] = []
    private(set) var stateCount = 0
    private(set) var patternCount = 0

    /// `patterns[i]` reports `values[i]`; empty patterns are ignored.
    init(patterns: [[UInt8]], values: [Int32]) {
        // Byte classes.
        var used = [Bool](repeating: false, count: 256)
        for p in patterns { for b in p { used[Int(b)] = true } }
        var n = 1
        for b in 0..<256 where used[b] {
            classOf[b] = UInt8(truncatingIfNeeded: n)
            n += 1
        }
        precondition(n <= 256, "byte classes")
        classes = n

        // Trie.
        var goto: [[Int32]] = [[Int32](repeating: -1, count: n)]
        var own: [[Int32]] = [[]]
        for (k, p) in patterns.enumerated() where !p.isEmpty {
            var s = 0
            for b in p {
                let c = Int(classOf[Int(b)])
                if goto[s][c] < 0 {
                    goto[s][c] = Int32(goto.count)
                    goto.append([Int32](repeating: -1, count: n))
                    own.append([])
                }
                s = Int(goto[s][c])
            }
            own[s].append(values[k])
        }

        // Failure links breadth first; complete the transition table; merge outputs along failure links.
        let count = goto.count
        var fail = [Int32](repeating: 0, count: count)
        var order: [Int] = []
        order.reserveCapacity(count)
        for c in 0..<n {
            if goto[0][c] < 0 {
                goto[0][c] = 0
            } else {
                fail[Int(goto[0][c])] = 0
                order.append(Int(goto[0][c]))
            }
        }
        var head = 0
        while head < order.count {
            let s = order[head]
            head += 1
            for c in 0..<n {
                let t = goto[s][c]
                if t < 0 {
                    goto[s][c] = goto[Int(fail[s])][c]
                } else {
                    fail[Int(t)] = goto[Int(fail[s])][c]
                    order.append(Int(t))
                }
            }
        }
        // Outputs: a state's own plus its failure state's (already complete: BFS order).
        var merged = own
        for s in order where !merged[Int(fail[s])].isEmpty { merged[s] += merged[Int(fail[s])] }

        next.reserveCapacity(count * n)
        for row in goto { next += row }
        outStart.reserveCapacity(count + 1)
        for m in merged {
            outStart.append(Int32(outputs.count))
            outputs += m
        }
        outStart.append(Int32(outputs.count))
        stateCount = count
        patternCount = patterns.filter { !$0.isEmpty }.count
    }

    var isEmpty: Bool { stateCount <= 1 }

    /// Calls `found` with the value of every pattern occurrence in `subject` (a value once per occurrence).
    @inline(__always)
    func scan(_ subject: UnsafeBufferPointer<UInt8>, _ found: (Int32) -> Void) {
        next.withUnsafeBufferPointer { next in
            outStart.withUnsafeBufferPointer { outStart in
                classOf.withUnsafeBufferPointer { classOf in
                    var s = 0
                    let width = classes
                    for b in subject {
                        s = Int(next[s &* width &+ Int(classOf[Int(b)])])
                        let lo = Int(outStart[s])
                        let hi = Int(outStart[s &+ 1])
                        if lo != hi { for k in lo..<hi { found(outputs[k]) } }
                    }
                }
            }
        }
    }
}
