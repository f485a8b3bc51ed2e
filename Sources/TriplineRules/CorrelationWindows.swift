import TriplineMatch

/// How a correlation's condition is decided for a new event at time t (see `CorrelationEngine`).
enum WindowMode: Equatable {
    /// `gt`/`gte` conditions of `event_count`, `value_count`, `temporal`: at least `k` distinct keys (ids, values,
    /// rules) in some window of length `timespan` containing the event.
    case atLeastDistinct(Int32)
    /// `gt`/`gte` conditions of `temporal_ordered` (by default all its rules): the first `k` rules in order in
    /// some window of length `timespan` containing the event.
    case atLeastOrdered(Int)
    /// Any other condition (`lt`, `lte`, `eq`, `neq`): decided on the window [t - timespan, t].
    case trailing

    init(_ c: CorrelationRule) {
        self = .trailing
        guard c.notEqual.isEmpty else { return }
        var k = 1.0
        for (op, d) in c.thresholds {
            switch op {
            case .gte?: k = max(k, d.rounded(.up))
            case .gt?: k = max(k, d.rounded(.down) + 1)
            default: return
            }
        }
        k = min(k, Double(1 << 30))
        self = c.kind == .temporalOrdered ? .atLeastOrdered(Int(k)) : .atLeastDistinct(Int32(k))
    }
}

/// The windows of one correlation rule, for all its groups.
///
/// Per group, in pools shared by the groups of the correlation (indices, -1 for none), each a treap:
/// - the entries by (event time, arrival sequence) — one entry per counted rule an event matched;
/// - the same entries by (distinct key, time, sequence): the key is the event id (`event_count`), the value
///   (`value_count`) or the rule (`temporal`, `temporal_ordered`), so an entry's previous and next occurrence of
///   its key are a logarithmic search away;
/// - distinct kinds: the function g(x) = number of distinct keys in the window [x, x + timespan], kept as +1/-1
///   steps ("deltas") at the ends of each key's coverage {x : some occurrence s with x <= s <= x + timespan} in a
///   tree that sums them and keeps the best prefix sum of each subtree: a range-add/range-max over window starts
///   where a new or removed entry changes at most four steps, and "the earliest window start where g reaches k"
///   is one descent;
/// - `temporal_ordered`: the minimal short chains — hulls [first, last] of an ordered match of the rules within
///   `timespan` that contain no other such match. They never nest, so they are sorted by first and by last at
///   once; a new entry adds at most one per position of its rule in the pattern (the tightest chain through it:
///   latest predecessors, earliest successors) and removes the hulls that contain it.
///
/// Every change inside a batch goes to an undo journal of logical steps (entry added or removed, hull added or
/// removed, group created, touched or evicted); `rollback` undoes them in reverse.
struct CorrelationWindows {
    struct Node {
        var time: Double
        var seq: Int
        var key: Int32
        var rule: Int32
        var prio: UInt32
        var left: Int32 = -1
        var right: Int32 = -1
        var kLeft: Int32 = -1
        var kRight: Int32 = -1
    }

    struct Delta {
        /// The occurrence time: a start step sits at pos - span (compared as pos <= x + span), an end step just
        /// after pos.
        var pos: Double
        var isEnd: Bool
        var delta: Int32
        var sum: Int32 = 0
        var best: Int32 = 0
        var prio: UInt32
        var left: Int32 = -1
        var right: Int32 = -1
    }

    struct Hull {
        var sTime: Double
        var sSeq: Int
        var bTime: Double
        var bSeq: Int
        var prio: UInt32 = 0
        var left: Int32 = -1
        var right: Int32 = -1
    }

    struct Group {
        var key: String
        var values: [String]
        var entries: Int32 = -1
        var byKey: Int32 = -1
        var deltas: Int32 = -1
        var hulls: Int32 = -1
        var count = 0
        var firing = false
        /// The newest event time of the group's events timed by their `observed_at`, and of those timed by ingest
        /// (no `observed_at`, or one too far in the future): each judges lateness for its own kind, so one undated
        /// record among a seized phone's 2016 records does not make the rest of them late.
        var newest = -Double.infinity
        var newestByIngest = -Double.infinity
        var lastIngest = -Double.infinity
        /// LRU list: `prev` towards the most recently touched.
        var prev: Int32 = -1
        var next: Int32 = -1
        var live = true
        /// The older of the two newest times that are known: entries before it minus lateness and span can share a
        /// window with no on-time event.
        var watermark: Double {
            if newest == -.infinity { return newestByIngest }
            if newestByIngest == -.infinity { return newest }
            return min(newest, newestByIngest)
        }
    }

    enum Op {
        case entryAdded(group: Int32, time: Double, seq: Int)
        case entryRemoved(
            group: Int32, time: Double, seq: Int, key: String?, rule: Int32, id: String, basis: [WatchlistHit])
        case hullAdded(group: Int32, time: Double, seq: Int)
        case hullRemoved(group: Int32, Hull)
        case groupCreated(group: Int32, appended: Bool)
        case groupRemoved(group: Int32, Group)
        case touched(group: Int32, Group)
    }

    let rule: CorrelationRule
    let span: Double
    let mode: WindowMode
    /// `temporal_ordered`: the rules in order.
    let pattern: [Int32]
    /// The distinct key is a string (ids, values), interned; else the rule.
    let stringKeys: Bool

    var index: [String: Int32] = [:]
    var groups: [Group] = []
    var freeGroups: [Int32] = []
    var lruHead: Int32 = -1
    var lruTail: Int32 = -1
    var entryTotal = 0

    var nodes: [Node] = []
    var ids: [String] = []
    /// Per node: the watchlist hits of its event (an alert on a correlation takes the handling of every list its
    /// events were on; empty for most events, which share one empty array).
    var bases: [[WatchlistHit]] = []
    var freeNodes: [Int32] = []
    var deltas: [Delta] = []
    var freeDeltas: [Int32] = []
    var hulls: [Hull] = []
    var freeHulls: [Int32] = []
    var interned: [String: Int32] = [:]
    var internText: [String] = []
    var internRefs: [Int32] = []
    var freeIntern: [Int32] = []
    var rng: UInt64

    var journaling = false
    var journal: [Op] = []

    static let negative = Int32.min / 4

    init(_ rule: CorrelationRule, seed: UInt64) {
        self.rule = rule
        span = rule.timespan
        mode = WindowMode(rule)
        pattern = rule.rules.map { Int32($0) }
        stringKeys = rule.kind == .eventCount || rule.kind == .valueCount
        rng = seed | 1
    }

    mutating func priority() -> UInt32 {
        rng ^= rng << 13
        rng ^= rng >> 7
        rng ^= rng << 17
        return UInt32(truncatingIfNeeded: rng >> 16)
    }

    // MARK: Interned keys

    mutating func intern(_ s: String) -> Int32 {
        if let k = interned[s] {
            internRefs[Int(k)] += 1
            return k
        }
        let k: Int32
        if let f = freeIntern.popLast() {
            k = f
            internText[Int(k)] = s
            internRefs[Int(k)] = 1
        } else {
            k = Int32(internText.count)
            internText.append(s)
            internRefs.append(1)
        }
        interned[s] = k
        return k
    }

    mutating func release(_ k: Int32) {
        internRefs[Int(k)] -= 1
        if internRefs[Int(k)] == 0 {
            interned[internText[Int(k)]] = nil
            internText[Int(k)] = ""
            freeIntern.append(k)
        }
    }

    // MARK: Entries by (time, seq)

    @inline(__always)
    static func before(_ t1: Double, _ s1: Int, _ t2: Double, _ s2: Int) -> Bool {
        t1 < t2 || (t1 == t2 && s1 < s2)
    }

    mutating func insertByTime(_ root: Int32, _ n: Int32) -> Int32 {
        if root < 0 { return n }
        let r = Int(root)
        if Self.before(nodes[Int(n)].time, nodes[Int(n)].seq, nodes[r].time, nodes[r].seq) {
            let l = insertByTime(nodes[r].left, n)
            nodes[r].left = l
            if nodes[Int(l)].prio > nodes[r].prio {
                nodes[r].left = nodes[Int(l)].right
                nodes[Int(l)].right = root
                return l
            }
        } else {
            let x = insertByTime(nodes[r].right, n)
            nodes[r].right = x
            if nodes[Int(x)].prio > nodes[r].prio {
                nodes[r].right = nodes[Int(x)].left
                nodes[Int(x)].left = root
                return x
            }
        }
        return root
    }

    mutating func mergeByTime(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        if nodes[Int(a)].prio > nodes[Int(b)].prio {
            let m = mergeByTime(nodes[Int(a)].right, b)
            nodes[Int(a)].right = m
            return a
        }
        let m = mergeByTime(a, nodes[Int(b)].left)
        nodes[Int(b)].left = m
        return b
    }

    mutating func removeByTime(_ root: Int32, _ t: Double, _ s: Int) -> Int32 {
        let r = Int(root)
        if nodes[r].time == t && nodes[r].seq == s { return mergeByTime(nodes[r].left, nodes[r].right) }
        if Self.before(t, s, nodes[r].time, nodes[r].seq) {
            let l = removeByTime(nodes[r].left, t, s)
            nodes[r].left = l
        } else {
            let x = removeByTime(nodes[r].right, t, s)
            nodes[r].right = x
        }
        return root
    }

    func findByTime(_ root: Int32, _ t: Double, _ s: Int) -> Int32 {
        var n = root
        while n >= 0 {
            let node = nodes[Int(n)]
            if node.time == t && node.seq == s { return n }
            n = Self.before(t, s, node.time, node.seq) ? node.left : node.right
        }
        return -1
    }

    func oldest(_ root: Int32) -> Int32 {
        var n = root
        if n < 0 { return -1 }
        while nodes[Int(n)].left >= 0 { n = nodes[Int(n)].left }
        return n
    }

    /// The first entry (in time order) whose time satisfies `ok`, which is false then true along the order.
    func firstEntry(_ root: Int32, _ ok: (Double) -> Bool) -> Int32 {
        var n = root
        var found: Int32 = -1
        while n >= 0 {
            if ok(nodes[Int(n)].time) {
                found = n
                n = nodes[Int(n)].left
            } else {
                n = nodes[Int(n)].right
            }
        }
        return found
    }

    /// Ids of the entries with lo <= time <= hi, in order, each once.
    func ids(_ root: Int32, from lo: Double, to hi: Double) -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        var stack: [Int32] = []
        var n = root
        while n >= 0 || !stack.isEmpty {
            while n >= 0 {
                if nodes[Int(n)].time >= lo {
                    stack.append(n)
                    n = nodes[Int(n)].left
                } else {
                    n = nodes[Int(n)].right
                }
            }
            guard let top = stack.popLast() else { break }
            let node = nodes[Int(top)]
            if node.time > hi { break }
            if seen.insert(ids[Int(top)]).inserted { out.append(ids[Int(top)]) }
            n = node.right
        }
        return out
    }

    /// The watchlist hits of the entries with lo <= time <= hi, each list entry once.
    func basis(_ root: Int32, from lo: Double, to hi: Double) -> [WatchlistHit] {
        var out: [WatchlistHit] = []
        var seen = Set<String>()
        for n in allEntries(root) where nodes[Int(n)].time >= lo && nodes[Int(n)].time <= hi {
            for w in bases[Int(n)] where seen.insert(w.owner + "/" + w.list + "/" + w.ref).inserted { out.append(w) }
        }
        return out
    }

    /// Every entry of a tree, in order.
    func allEntries(_ root: Int32) -> [Int32] {
        var out: [Int32] = []
        var stack: [Int32] = []
        var n = root
        while n >= 0 || !stack.isEmpty {
            while n >= 0 {
                stack.append(n)
                n = nodes[Int(n)].left
            }
            let top = stack.removeLast()
            out.append(top)
            n = nodes[Int(top)].right
        }
        return out
    }

    // MARK: Entries by (key, time, seq)

    @inline(__always)
    func keyLess(_ n: Int32, _ k: Int32, _ t: Double, _ s: Int) -> Bool {
        let node = nodes[Int(n)]
        return node.key < k || (node.key == k && Self.before(node.time, node.seq, t, s))
    }

    @inline(__always)
    func keyGreater(_ n: Int32, _ k: Int32, _ t: Double, _ s: Int) -> Bool {
        let node = nodes[Int(n)]
        return node.key > k || (node.key == k && Self.before(t, s, node.time, node.seq))
    }

    mutating func insertByKey(_ root: Int32, _ n: Int32) -> Int32 {
        if root < 0 { return n }
        let r = Int(root)
        let node = nodes[Int(n)]
        if keyGreater(root, node.key, node.time, node.seq) {
            let l = insertByKey(nodes[r].kLeft, n)
            nodes[r].kLeft = l
            if nodes[Int(l)].prio > nodes[r].prio {
                nodes[r].kLeft = nodes[Int(l)].kRight
                nodes[Int(l)].kRight = root
                return l
            }
        } else {
            let x = insertByKey(nodes[r].kRight, n)
            nodes[r].kRight = x
            if nodes[Int(x)].prio > nodes[r].prio {
                nodes[r].kRight = nodes[Int(x)].kLeft
                nodes[Int(x)].kLeft = root
                return x
            }
        }
        return root
    }

    mutating func mergeByKey(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        if nodes[Int(a)].prio > nodes[Int(b)].prio {
            let m = mergeByKey(nodes[Int(a)].kRight, b)
            nodes[Int(a)].kRight = m
            return a
        }
        let m = mergeByKey(a, nodes[Int(b)].kLeft)
        nodes[Int(b)].kLeft = m
        return b
    }

    mutating func removeByKey(_ root: Int32, _ n: Int32) -> Int32 {
        if root == n { return mergeByKey(nodes[Int(n)].kLeft, nodes[Int(n)].kRight) }
        let node = nodes[Int(n)]
        let r = Int(root)
        if keyGreater(root, node.key, node.time, node.seq) {
            let l = removeByKey(nodes[r].kLeft, n)
            nodes[r].kLeft = l
        } else {
            let x = removeByKey(nodes[r].kRight, n)
            nodes[r].kRight = x
        }
        return root
    }

    /// The latest occurrence of key `k` before (t, s).
    func occurrence(_ root: Int32, _ k: Int32, before t: Double, _ s: Int) -> Int32 {
        var n = root
        var best: Int32 = -1
        while n >= 0 {
            if keyLess(n, k, t, s) {
                best = n
                n = nodes[Int(n)].kRight
            } else {
                n = nodes[Int(n)].kLeft
            }
        }
        return best >= 0 && nodes[Int(best)].key == k ? best : -1
    }

    /// The earliest occurrence of key `k` after (t, s).
    func occurrence(_ root: Int32, _ k: Int32, after t: Double, _ s: Int) -> Int32 {
        var n = root
        var best: Int32 = -1
        while n >= 0 {
            if keyGreater(n, k, t, s) {
                best = n
                n = nodes[Int(n)].kLeft
            } else {
                n = nodes[Int(n)].kRight
            }
        }
        return best >= 0 && nodes[Int(best)].key == k ? best : -1
    }

    // MARK: Coverage steps (distinct kinds)

    /// Order of steps: start steps at pos - span, end steps just after pos (compared without subtracting, so that
    /// the order agrees with the window test `x <= s && s <= x + span` exactly).
    @inline(__always)
    func stepLess(_ aPos: Double, _ aEnd: Bool, _ bPos: Double, _ bEnd: Bool) -> Bool {
        if aEnd == bEnd { return aPos < bPos }
        if !aEnd { return aPos <= bPos + span }
        return bPos > aPos + span
    }

    /// Whether a step counts for the window starting at x.
    @inline(__always)
    func counts(_ d: Int32, at x: Double) -> Bool {
        let s = deltas[Int(d)]
        return s.isEnd ? s.pos < x : s.pos <= x + span
    }

    mutating func pull(_ n: Int32) {
        let i = Int(n)
        let l = deltas[i].left
        let r = deltas[i].right
        var s = deltas[i].delta
        var b: Int32
        if l >= 0 {
            s += deltas[Int(l)].sum
            b = max(deltas[Int(l)].best, s)
        } else {
            b = s
        }
        if r >= 0 {
            b = max(b, s + deltas[Int(r)].best)
            s += deltas[Int(r)].sum
        }
        deltas[i].sum = s
        deltas[i].best = b
    }

    mutating func mergeDeltas(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        if deltas[Int(a)].prio > deltas[Int(b)].prio {
            let m = mergeDeltas(deltas[Int(a)].right, b)
            deltas[Int(a)].right = m
            pull(a)
            return a
        }
        let m = mergeDeltas(a, deltas[Int(b)].left)
        deltas[Int(b)].left = m
        pull(b)
        return b
    }

    mutating func addStep(_ root: Int32, _ pos: Double, _ isEnd: Bool, _ d: Int32) -> Int32 {
        if root < 0 {
            let node = Delta(pos: pos, isEnd: isEnd, delta: d, sum: d, best: d, prio: priority())
            if let f = freeDeltas.popLast() {
                deltas[Int(f)] = node
                return f
            }
            deltas.append(node)
            return Int32(deltas.count - 1)
        }
        let r = Int(root)
        let here = deltas[r]
        if here.isEnd == isEnd && here.pos == pos {
            deltas[r].delta += d
            if deltas[r].delta == 0 {
                freeDeltas.append(root)
                return mergeDeltas(here.left, here.right)
            }
            pull(root)
            return root
        }
        if stepLess(pos, isEnd, here.pos, here.isEnd) {
            let l = addStep(here.left, pos, isEnd, d)
            deltas[r].left = l
            if l >= 0 && deltas[Int(l)].prio > here.prio {
                deltas[r].left = deltas[Int(l)].right
                pull(root)
                deltas[Int(l)].right = root
                pull(l)
                return l
            }
        } else {
            let x = addStep(here.right, pos, isEnd, d)
            deltas[r].right = x
            if x >= 0 && deltas[Int(x)].prio > here.prio {
                deltas[r].right = deltas[Int(x)].left
                pull(root)
                deltas[Int(x)].left = root
                pull(x)
                return x
            }
        }
        pull(root)
        return root
    }

    /// g(x): the sum of the steps that count for the window starting at x.
    func coverage(_ root: Int32, at x: Double) -> Int32 {
        var n = root
        var acc: Int32 = 0
        while n >= 0 {
            let d = deltas[Int(n)]
            if counts(n, at: x) {
                acc += (d.left >= 0 ? deltas[Int(d.left)].sum : 0) + d.delta
                n = d.right
            } else {
                n = d.left
            }
        }
        return acc
    }

    /// The first step that does not count at x where the running sum reaches k.
    func firstReaching(_ n: Int32, _ acc: Int32, after x: Double, _ k: Int32) -> Int32 {
        if n < 0 || acc + deltas[Int(n)].best < k { return -1 }  // no prefix in this subtree reaches k
        let d = deltas[Int(n)]
        let leftSum = d.left >= 0 ? deltas[Int(d.left)].sum : 0
        if counts(n, at: x) { return firstReaching(d.right, acc + leftSum + d.delta, after: x, k) }
        let l = firstReaching(d.left, acc, after: x, k)
        if l >= 0 { return l }
        var a = acc + leftSum + d.delta
        if a >= k { return n }
        guard d.right >= 0, a + deltas[Int(d.right)].best >= k else { return -1 }
        var m = d.right
        while true {
            let e = deltas[Int(m)]
            if e.left >= 0 && a + deltas[Int(e.left)].best >= k {
                m = e.left
                continue
            }
            a += (e.left >= 0 ? deltas[Int(e.left)].sum : 0) + e.delta
            if a >= k { return m }
            m = e.right
        }
    }

    /// The steps of one key's coverage between consecutive occurrences p and q (either may be absent), times sign.
    mutating func boundary(_ g: Int, _ p: Int32, _ q: Int32, _ sign: Int32) {
        if p < 0 && q < 0 { return }
        let gap = p < 0 || q < 0 || nodes[Int(q)].time > nodes[Int(p)].time + span
        guard gap else { return }
        var root = groups[g].deltas
        if p >= 0 { root = addStep(root, nodes[Int(p)].time, true, -sign) }
        if q >= 0 { root = addStep(root, nodes[Int(q)].time, false, sign) }
        groups[g].deltas = root
    }

    // MARK: Hulls (temporal_ordered)

    mutating func insertHull(_ root: Int32, _ n: Int32) -> Int32 {
        if root < 0 { return n }
        let r = Int(root)
        if Self.before(hulls[Int(n)].sTime, hulls[Int(n)].sSeq, hulls[r].sTime, hulls[r].sSeq) {
            let l = insertHull(hulls[r].left, n)
            hulls[r].left = l
            if hulls[Int(l)].prio > hulls[r].prio {
                hulls[r].left = hulls[Int(l)].right
                hulls[Int(l)].right = root
                return l
            }
        } else {
            let x = insertHull(hulls[r].right, n)
            hulls[r].right = x
            if hulls[Int(x)].prio > hulls[r].prio {
                hulls[r].right = hulls[Int(x)].left
                hulls[Int(x)].left = root
                return x
            }
        }
        return root
    }

    mutating func mergeHulls(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        if hulls[Int(a)].prio > hulls[Int(b)].prio {
            let m = mergeHulls(hulls[Int(a)].right, b)
            hulls[Int(a)].right = m
            return a
        }
        let m = mergeHulls(a, hulls[Int(b)].left)
        hulls[Int(b)].left = m
        return b
    }

    mutating func removeHull(_ root: Int32, _ t: Double, _ s: Int) -> Int32 {
        let r = Int(root)
        if hulls[r].sTime == t && hulls[r].sSeq == s {
            freeHulls.append(root)
            return mergeHulls(hulls[r].left, hulls[r].right)
        }
        if Self.before(t, s, hulls[r].sTime, hulls[r].sSeq) {
            let l = removeHull(hulls[r].left, t, s)
            hulls[r].left = l
        } else {
            let x = removeHull(hulls[r].right, t, s)
            hulls[r].right = x
        }
        return root
    }

    /// The hull starting at (t, s), if any.
    func hull(_ root: Int32, _ t: Double, _ s: Int) -> Int32 {
        var n = root
        while n >= 0 {
            let h = hulls[Int(n)]
            if h.sTime == t && h.sSeq == s { return n }
            n = Self.before(t, s, h.sTime, h.sSeq) ? h.left : h.right
        }
        return -1
    }

    /// The first hull starting at or after (t, s).
    func hull(_ root: Int32, atOrAfter t: Double, _ s: Int) -> Int32 {
        var n = root
        var best: Int32 = -1
        while n >= 0 {
            let h = hulls[Int(n)]
            if !Self.before(h.sTime, h.sSeq, t, s) {
                best = n
                n = h.left
            } else {
                n = h.right
            }
        }
        return best
    }

    /// The last hull starting at or before (t, s).
    func hull(_ root: Int32, atOrBefore t: Double, _ s: Int) -> Int32 {
        var n = root
        var best: Int32 = -1
        while n >= 0 {
            let h = hulls[Int(n)]
            if !Self.before(t, s, h.sTime, h.sSeq) {
                best = n
                n = h.right
            } else {
                n = h.left
            }
        }
        return best
    }

    func allHulls(_ root: Int32) -> [Int32] {
        var out: [Int32] = []
        var stack: [Int32] = []
        var n = root
        while n >= 0 || !stack.isEmpty {
            while n >= 0 {
                stack.append(n)
                n = hulls[Int(n)].left
            }
            let top = stack.removeLast()
            out.append(top)
            n = hulls[Int(top)].right
        }
        return out
    }

    mutating func addHull(_ g: Int, _ h: Hull) {
        var node = h
        node.prio = priority()
        node.left = -1
        node.right = -1
        let n: Int32
        if let f = freeHulls.popLast() {
            n = f
            hulls[Int(f)] = node
        } else {
            n = Int32(hulls.count)
            hulls.append(node)
        }
        groups[g].hulls = insertHull(groups[g].hulls, n)
        if journaling { journal.append(.hullAdded(group: Int32(g), time: h.sTime, seq: h.sSeq)) }
    }

    mutating func dropHull(_ g: Int, _ n: Int32) {
        let h = hulls[Int(n)]
        if journaling { journal.append(.hullRemoved(group: Int32(g), h)) }
        groups[g].hulls = removeHull(groups[g].hulls, h.sTime, h.sSeq)
    }

    /// After entry `n` was added: the tightest ordered chains through it, kept when short and minimal.
    mutating func chains(_ g: Int, through n: Int32, length k: Int) {
        guard k <= pattern.count else { return }
        let e = nodes[Int(n)]
        for j in 0..<k where pattern[j] == e.rule {
            var first = n
            var ok = true
            var i = j - 1
            while i >= 0 {
                let f = nodes[Int(first)]
                first = occurrence(groups[g].byKey, pattern[i], before: f.time, f.seq)
                if first < 0 {
                    ok = false
                    break
                }
                i -= 1
            }
            guard ok else { continue }
            var last = n
            for i in (j + 1)..<k {
                let l = nodes[Int(last)]
                last = occurrence(groups[g].byKey, pattern[i], after: l.time, l.seq)
                if last < 0 {
                    ok = false
                    break
                }
            }
            guard ok else { continue }
            let s = nodes[Int(first)]
            let b = nodes[Int(last)]
            guard b.time <= s.time + span else { continue }
            // A hull inside the new one: the new one is not minimal.
            let inside = hull(groups[g].hulls, atOrAfter: s.time, s.seq)
            if inside >= 0 && !Self.before(b.time, b.seq, hulls[Int(inside)].bTime, hulls[Int(inside)].bSeq) {
                continue
            }
            // Hulls around the new one are no longer minimal.
            while true {
                let around = hull(groups[g].hulls, atOrBefore: s.time, s.seq)
                guard around >= 0, !Self.before(hulls[Int(around)].bTime, hulls[Int(around)].bSeq, b.time, b.seq)
                else { break }
                dropHull(g, around)
            }
            addHull(g, Hull(sTime: s.time, sSeq: s.seq, bTime: b.time, bSeq: b.seq))
        }
    }

    // MARK: Entry primitives (no hull upkeep, no journal)

    mutating func insertEntry(
        _ g: Int, time: Double, seq: Int, key: String?, rule: Int32, id: String, basis: [WatchlistHit] = []
    ) {
        let k = stringKeys ? intern(key ?? "") : rule
        let node = Node(time: time, seq: seq, key: k, rule: rule, prio: priority())
        let n: Int32
        if let f = freeNodes.popLast() {
            n = f
            nodes[Int(f)] = node
            ids[Int(f)] = id
            bases[Int(f)] = basis
        } else {
            n = Int32(nodes.count)
            nodes.append(node)
            ids.append(id)
            bases.append(basis)
        }
        groups[g].entries = insertByTime(groups[g].entries, n)
        if case .atLeastOrdered = mode {
        } else {
            let p = occurrence(groups[g].byKey, k, before: time, seq)
            let q = occurrence(groups[g].byKey, k, after: time, seq)
            boundary(g, p, q, -1)
            boundary(g, p, n, 1)
            boundary(g, n, q, 1)
        }
        groups[g].byKey = insertByKey(groups[g].byKey, n)
        groups[g].count += 1
        entryTotal += 1
    }

    mutating func removeEntry(_ g: Int, time: Double, seq: Int) {
        let n = findByTime(groups[g].entries, time, seq)
        precondition(n >= 0, "correlation entry to remove not found")
        removeEntry(g, node: n, oldest: false)
    }

    /// Removes the leftmost (oldest) entry of a tree by time.
    mutating func removeLeftmost(_ root: Int32) -> Int32 {
        var parent: Int32 = -1
        var n = root
        while nodes[Int(n)].left >= 0 {
            parent = n
            n = nodes[Int(n)].left
        }
        if parent < 0 { return nodes[Int(n)].right }
        nodes[Int(parent)].left = nodes[Int(n)].right
        return root
    }

    mutating func removeEntry(_ g: Int, node n: Int32, oldest: Bool) {
        let time = nodes[Int(n)].time
        let seq = nodes[Int(n)].seq
        if oldest {
            groups[g].entries = removeLeftmost(groups[g].entries)
        } else {
            groups[g].entries = removeByTime(groups[g].entries, time, seq)
        }
        groups[g].byKey = removeByKey(groups[g].byKey, n)
        let k = nodes[Int(n)].key
        if case .atLeastOrdered = mode {
        } else {
            let p = occurrence(groups[g].byKey, k, before: time, seq)
            let q = occurrence(groups[g].byKey, k, after: time, seq)
            boundary(g, p, n, -1)
            boundary(g, n, q, -1)
            boundary(g, p, q, 1)
        }
        if stringKeys { release(k) }
        ids[Int(n)] = ""
        bases[Int(n)] = []
        freeNodes.append(n)
        groups[g].count -= 1
        entryTotal -= 1
    }

    /// Removes the oldest entry and the hull starting at it (journalled).
    mutating func dropOldest(_ g: Int, _ oldestNode: Int32? = nil) {
        let n = oldestNode ?? oldest(groups[g].entries)
        let e = nodes[Int(n)]
        if case .atLeastOrdered = mode {
            let h = hull(groups[g].hulls, e.time, e.seq)
            if h >= 0 { dropHull(g, h) }
        }
        if journaling {
            journal.append(
                .entryRemoved(
                    group: Int32(g), time: e.time, seq: e.seq, key: stringKeys ? internText[Int(e.key)] : nil,
                    rule: e.rule, id: ids[Int(n)], basis: bases[Int(n)]))
        }
        removeEntry(g, node: n, oldest: true)
    }

    // MARK: Groups and the LRU list

    mutating func unlink(_ g: Int32) {
        let p = groups[Int(g)].prev
        let n = groups[Int(g)].next
        if p >= 0 { groups[Int(p)].next = n } else { lruHead = n }
        if n >= 0 { groups[Int(n)].prev = p } else { lruTail = p }
        groups[Int(g)].prev = -1
        groups[Int(g)].next = -1
    }

    /// Links `g` between `prev` and `next` (which are adjacent, or -1 for the ends).
    mutating func link(_ g: Int32, prev: Int32, next: Int32) {
        groups[Int(g)].prev = prev
        groups[Int(g)].next = next
        if prev >= 0 { groups[Int(prev)].next = g } else { lruHead = g }
        if next >= 0 { groups[Int(next)].prev = g } else { lruTail = g }
    }

    mutating func createGroup(key: String, values: [String]) -> Int {
        let g: Int32
        let appended: Bool
        if let f = freeGroups.popLast() {
            g = f
            groups[Int(f)] = Group(key: key, values: values)
            appended = false
        } else {
            g = Int32(groups.count)
            groups.append(Group(key: key, values: values))
            appended = true
        }
        index[key] = g
        link(g, prev: -1, next: lruHead)
        if journaling { journal.append(.groupCreated(group: g, appended: appended)) }
        return Int(g)
    }

    /// Moves the group to the front of the LRU list and records its ingest time (journalled with its state).
    mutating func touch(_ g: Int, ingest: Double) {
        if journaling { journal.append(.touched(group: Int32(g), groups[g])) }
        if lruHead != Int32(g) {
            unlink(Int32(g))
            link(Int32(g), prev: -1, next: lruHead)
        }
        groups[g].lastIngest = max(groups[g].lastIngest, ingest)
    }

    /// Forgets a group and everything in its windows.
    mutating func evict(_ g: Int) {
        let entries = allEntries(groups[g].entries)
        if journaling {
            for n in entries {
                let e = nodes[Int(n)]
                journal.append(
                    .entryRemoved(
                        group: Int32(g), time: e.time, seq: e.seq, key: stringKeys ? internText[Int(e.key)] : nil,
                        rule: e.rule, id: ids[Int(n)], basis: bases[Int(n)]))
            }
            for h in allHulls(groups[g].hulls) { journal.append(.hullRemoved(group: Int32(g), hulls[Int(h)])) }
            journal.append(.groupRemoved(group: Int32(g), groups[g]))
        }
        for n in entries {
            if stringKeys { release(nodes[Int(n)].key) }
            ids[Int(n)] = ""
            bases[Int(n)] = []
            freeNodes.append(n)
        }
        freeDeltaTree(groups[g].deltas)
        freeHulls += allHulls(groups[g].hulls)
        entryTotal -= groups[g].count
        unlink(Int32(g))
        index[groups[g].key] = nil
        groups[g] = Group(key: "", values: [], live: false)
        freeGroups.append(Int32(g))
    }

    mutating func freeDeltaTree(_ root: Int32) {
        guard root >= 0 else { return }
        var stack = [root]
        while let n = stack.popLast() {
            let d = deltas[Int(n)]
            if d.left >= 0 { stack.append(d.left) }
            if d.right >= 0 { stack.append(d.right) }
            freeDeltas.append(n)
        }
    }

    // MARK: Deciding

    /// The window [from, to] (its entries are the hit's events) that satisfies the condition for an event at t,
    /// or nil. Distinct and ordered kinds with `gt`/`gte`: the earliest window start x, an entry time in
    /// [t - span, t], whose window [x, x + span] satisfies it (what the brute force finds); other conditions:
    /// [t - span, t].
    func decide(_ g: Int, at t: Double) -> (from: Double, to: Double)? {
        let grp = (entries: groups[g].entries, deltas: groups[g].deltas, hulls: groups[g].hulls, byKey: groups[g].byKey)
        let lo = t - span
        switch mode {
        case .atLeastDistinct(let k):
            let x0 = firstEntry(grp.entries) { $0 >= lo }
            guard x0 >= 0 else { return nil }
            let start0 = nodes[Int(x0)].time
            if coverage(grp.deltas, at: start0) >= k { return (start0, start0 + span) }
            // Past start0, g changes only at steps; the first where it reaches k, if the event is still in
            // windows starting there, gives the earliest entry time whose window has it.
            let c = firstReaching(grp.deltas, 0, after: start0, k)
            guard c >= 0, counts(c, at: t) else { return nil }
            let d = deltas[Int(c)]
            let span = self.span
            let x = d.isEnd ? firstEntry(grp.entries) { $0 > d.pos } : firstEntry(grp.entries) { $0 + span >= d.pos }
            guard x >= 0 else { return nil }
            return (nodes[Int(x)].time, nodes[Int(x)].time + span)
        case .atLeastOrdered(let k):
            guard k <= pattern.count else { return nil }
            // The minimal hull starting at or after t - span that ends first; the earliest start whose window
            // reaches its end.
            let h = hull(grp.hulls, atOrAfter: lo, Int.min)
            guard h >= 0 else { return nil }
            let b = hulls[Int(h)].bTime
            let span = self.span
            let x = firstEntry(grp.entries) { $0 >= lo && $0 + span >= b }
            guard x >= 0, nodes[Int(x)].time <= t else { return nil }
            return (nodes[Int(x)].time, nodes[Int(x)].time + span)
        case .trailing:
            let hi = lo + span
            var n = 0
            if rule.kind == .temporalOrdered {
                var time = lo
                var seq = Int.min
                for r in pattern {
                    let e = occurrence(grp.byKey, r, after: time, seq)
                    guard e >= 0, nodes[Int(e)].time <= hi else { break }
                    n += 1
                    time = nodes[Int(e)].time
                    seq = nodes[Int(e)].seq
                }
            } else {
                n = Int(coverage(grp.deltas, at: lo))
            }
            return CorrelationEngine.holds(rule, n) ? (lo, hi) : nil
        }
    }

    enum Outcome {
        case untracked
        case late
        case quiet
        case fired(group: Int, from: Double, to: Double)
    }

    /// Feeds one event of the group `key` (its counted rules, in order) and decides the condition.
    mutating func feed(
        key: String, values: [String], distinct: String?, rules: [Int32], id: String,
        basis: [WatchlistHit] = [], time t: Double, byIngest: Bool = false, ingest: Double, seq: inout Int,
        options: CorrelationOptions,
        droppedEntries: inout Int, droppedGroups: inout Int
    ) -> Outcome {
        let g: Int
        if let s = index[key] {
            g = Int(s)
            let late = t < (byIngest ? groups[g].newestByIngest : groups[g].newest) - options.allowedLateness
            touch(g, ingest: ingest)
            if late { return .late }
        } else {
            guard options.maxGroups > 0 else {
                droppedGroups += 1
                return .untracked
            }
            while index.count >= options.maxGroups && lruTail >= 0 {
                evict(Int(lruTail))
                droppedGroups += 1
            }
            g = createGroup(key: key, values: values)
            groups[g].lastIngest = ingest
        }
        if byIngest {
            if t > groups[g].newestByIngest { groups[g].newestByIngest = t }
        } else if t > groups[g].newest {
            groups[g].newest = t
        }
        // Entries no on-time event (of either kind) can share a window with.
        let horizon = groups[g].watermark - options.allowedLateness - span
        while groups[g].count > 0 {
            let o = oldest(groups[g].entries)
            guard nodes[Int(o)].time < horizon else { break }
            dropOldest(g, o)
        }
        for r in rules {
            let s = seq
            seq += 1
            insertEntry(g, time: t, seq: s, key: distinct, rule: r, id: id, basis: basis)
            if journaling { journal.append(.entryAdded(group: Int32(g), time: t, seq: s)) }
            if case .atLeastOrdered(let k) = mode { chains(g, through: findByTime(groups[g].entries, t, s), length: k) }
        }
        while groups[g].count > max(options.maxEntriesPerGroup, 0) {
            dropOldest(g)
            droppedEntries += 1
        }
        if groups[g].count > 0, let w = decide(g, at: t) {
            if groups[g].firing { return .quiet }
            groups[g].firing = true
            return .fired(group: g, from: w.from, to: w.to)
        }
        groups[g].firing = false
        return .quiet
    }

    /// Forgets the groups that received nothing since `limit` (ingest time), least recently touched first.
    mutating func evictIdle(before limit: Double) -> Int {
        var n = 0
        while lruTail >= 0 && groups[Int(lruTail)].lastIngest < limit {
            evict(Int(lruTail))
            n += 1
        }
        return n
    }

    /// Drops every group's entries that no on-time event can share a window with.
    mutating func sweep(lateness: Double) {
        for g in groups.indices where groups[g].live && groups[g].count > 0 {
            let horizon = groups[g].watermark - lateness - span
            while groups[g].count > 0 && nodes[Int(oldest(groups[g].entries))].time < horizon { dropOldest(g) }
        }
    }

    // MARK: Undo

    mutating func rollback() {
        journaling = false
        while let op = journal.popLast() {
            switch op {
            case .entryAdded(let g, let t, let s):
                removeEntry(Int(g), time: t, seq: s)
            case .entryRemoved(let g, let t, let s, let key, let rule, let id, let basis):
                insertEntry(Int(g), time: t, seq: s, key: key, rule: rule, id: id, basis: basis)
            case .hullAdded(let g, let t, let s):
                groups[Int(g)].hulls = removeHull(groups[Int(g)].hulls, t, s)
            case .hullRemoved(let g, let h):
                addHull(Int(g), h)
            case .groupCreated(let g, let appended):
                unlink(g)
                index[groups[Int(g)].key] = nil
                if appended && Int(g) == groups.count - 1 {
                    groups.removeLast()
                } else {
                    groups[Int(g)] = Group(key: "", values: [], live: false)
                    freeGroups.append(g)
                }
            case .groupRemoved(let g, let saved):
                if freeGroups.last == g {
                    freeGroups.removeLast()
                } else if let i = freeGroups.lastIndex(of: g) {
                    freeGroups.remove(at: i)
                }
                var restored = saved
                restored.entries = -1
                restored.byKey = -1
                restored.deltas = -1
                restored.hulls = -1
                restored.count = 0
                groups[Int(g)] = restored
                index[saved.key] = g
                link(g, prev: saved.prev, next: saved.next)
            case .touched(let g, let saved):
                if saved.prev >= 0 {
                    unlink(g)
                    link(g, prev: saved.prev, next: saved.next)
                }
                groups[Int(g)].firing = saved.firing
                groups[Int(g)].newest = saved.newest
                groups[Int(g)].newestByIngest = saved.newestByIngest
                groups[Int(g)].lastIngest = saved.lastIngest
            }
        }
    }
}
