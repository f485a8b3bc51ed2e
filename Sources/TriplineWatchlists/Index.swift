import CPrefetch
import Foundation
import TriplineSelectors

/// Which watchlist selector a lookup found: indexes into the loaded lists.
public struct HitRef: Sendable, Hashable {
    public var list: Int32
    public var entry: Int32
    public var selector: Int32
    /// True when the hit came through a name alias rather than the entry's own value.
    public var viaAlias: Bool

    public init(list: Int32, entry: Int32, selector: Int32, viaAlias: Bool = false) {
        self.list = list
        self.entry = entry
        self.selector = selector
        self.viaAlias = viaAlias
    }
}

/// A fast 64-bit hash of bytes (8-byte chunks, multiply-xorshift mixing), seeded by selector type.
@inline(__always)
func hashBytes(_ p: UnsafeBufferPointer<UInt8>, seed: UInt64) -> UInt64 {
    var h = seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(p.count)
    var i = 0
    let raw = UnsafeRawBufferPointer(p)
    while i + 8 <= p.count {
        let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        i += 8
    }
    if i < p.count {
        var w: UInt64 = 0
        var s: UInt64 = 0
        while i < p.count {
            w |= UInt64(p[i]) << s
            s += 8
            i += 1
        }
        h = (h ^ w) &* 0x94D0_49BB_1331_11EB
    }
    h ^= h >> 29
    h = h &* 0xBF58_476D_1CE4_E5B9
    return h ^ (h >> 32)
}

/// Exact values: a blocked Bloom filter (one 64-byte block per key, cache-resident for a million keys)
/// in front of an open-addressing table, so the common case — a selector on no list — costs one probe.
/// Immutable once built; raw buffers keep reference counting off the lookup path.
public final class ExactIndex: @unchecked Sendable {
    private let bloom: UnsafeMutablePointer<UInt64>
    private let bloomMask: Int
    private let slots: UnsafeMutablePointer<UInt64>  // hash | 1, 0 = empty
    private let slotValue: UnsafeMutablePointer<Int32>  // index into the key arrays
    private let capacity: Int
    /// Keys' bytes back to back; key i is arena[keyStart[i] ..< keyStart[i + 1]].
    private let arena: UnsafeMutablePointer<UInt8>
    private let keyStart: UnsafeMutablePointer<Int>
    private let keyType: UnsafeMutablePointer<UInt8>
    private let refs: [[HitRef]]
    public let entryCount: Int

    @inline(__always)
    static func seed(_ t: SelectorType) -> UInt64 {
        switch t {
        case .phone: 1
        case .email: 2
        case .imei: 3
        case .imsi: 4
        case .ip: 5
        case .username: 6
        case .document: 7
        case .wallet: 8
        case .name: 9
        }
    }

    /// Builds the table for `items` (type, normalised value, where it is watched).
    public init(_ items: [(SelectorType, String, HitRef)]) {
        var position: [String: Int] = [:]
        var keys: [String] = []
        var types: [SelectorType] = []
        var refs: [[HitRef]] = []
        for (t, v, r) in items {
            let key = t.rawValue + "\u{0}" + v
            if let i = position[key] {
                refs[i].append(r)
            } else {
                position[key] = keys.count
                keys.append(v)
                types.append(t)
                refs.append([r])
            }
        }
        let n = keys.count
        entryCount = n
        self.refs = refs
        // Bloom: ~16 bits per key, power-of-two number of 512-bit blocks.
        var blocks = 1
        while blocks * 512 < max(n, 1) * 16 { blocks <<= 1 }
        bloom = .allocate(capacity: blocks * 8)
        bloom.initialize(repeating: 0, count: blocks * 8)
        bloomMask = blocks - 1
        var cap = 16
        while cap < n * 2 { cap <<= 1 }
        capacity = cap
        slots = .allocate(capacity: cap)
        slots.initialize(repeating: 0, count: cap)
        slotValue = .allocate(capacity: cap)
        slotValue.initialize(repeating: -1, count: cap)
        let total = keys.reduce(0) { $0 + $1.utf8.count }
        arena = .allocate(capacity: max(total, 1))
        keyStart = .allocate(capacity: n + 1)
        keyType = .allocate(capacity: max(n, 1))
        var off = 0
        for i in 0..<n {
            keyStart[i] = off
            for b in keys[i].utf8 {
                arena[off] = b
                off += 1
            }
            keyType[i] = UInt8(Self.seed(types[i]))
            let h =
                hashBytes(
                    UnsafeBufferPointer(start: arena + keyStart[i], count: off - keyStart[i]), seed: Self.seed(types[i])
                ) | 1
            addBloom(h)
            var s = Int(truncatingIfNeeded: h >> 7) & (cap - 1)
            while slots[s] != 0 { s = (s + 1) & (cap - 1) }
            slots[s] = h
            slotValue[s] = Int32(i)
        }
        keyStart[n] = off
    }

    deinit {
        bloom.deallocate()
        slots.deallocate()
        slotValue.deallocate()
        arena.deallocate()
        keyStart.deallocate()
        keyType.deallocate()
    }

    private func addBloom(_ h: UInt64) {
        let block = Int(truncatingIfNeeded: h >> 40) & bloomMask
        var x = h
        for _ in 0..<6 {
            let bit = Int(x & 511)
            bloom[block * 8 + bit >> 6] |= 1 << UInt64(bit & 63)
            x >>= 9
        }
    }

    @inline(__always)
    private func mayContain(_ h: UInt64) -> Bool {
        let base = bloom + (Int(truncatingIfNeeded: h >> 40) & bloomMask) &* 8
        var x = h
        for _ in 0..<6 {
            let bit = Int(x & 511)
            if base[bit >> 6] & (1 << UInt64(bit & 63)) == 0 { return false }
            x >>= 9
        }
        return true
    }

    /// Where `value` (already normalised) of `type` is watched.
    public func lookup(_ type: SelectorType, _ value: String) -> [HitRef]? {
        if entryCount == 0 { return nil }
        var v = value
        return v.withUTF8 { lookup(type, bytes: $0) }
    }

    /// A key's hash: what `prefetch` and `find(_:bytes:hash:)` take.
    @inline(__always)
    public static func hash(_ type: SelectorType, _ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        hashBytes(bytes, seed: seed(type)) | 1
    }

    /// Starts loading the filter block of a hash, so that a `find` a little later does not wait for memory.
    @inline(__always)
    public func prefetch(_ h: UInt64) {
        if entryCount > 0 { tripline_prefetch(bloom + (Int(truncatingIfNeeded: h >> 40) & bloomMask) &* 8) }
    }

    /// The slot of a key, or -1; the hot path, free of allocation and reference counting.
    @inline(__always)
    public func find(_ type: SelectorType, bytes: UnsafeBufferPointer<UInt8>) -> Int {
        find(type, bytes: bytes, hash: Self.hash(type, bytes))
    }

    /// The same with the key's hash already computed.
    @inline(__always)
    public func find(_ type: SelectorType, bytes: UnsafeBufferPointer<UInt8>, hash h: UInt64) -> Int {
        if entryCount == 0 { return -1 }
        let seed = Self.seed(type)
        guard mayContain(h) else { return -1 }
        var s = Int(truncatingIfNeeded: h >> 7) & (capacity - 1)
        while true {
            let e = slots[s]
            if e == 0 { return -1 }
            if e == h {
                let i = Int(slotValue[s])
                let len = keyStart[i + 1] - keyStart[i]
                if keyType[i] == UInt8(seed) && len == bytes.count
                    && (len == 0 || memcmp(arena + keyStart[i], bytes.baseAddress!, len) == 0)
                {
                    return i
                }
            }
            s = (s + 1) & (capacity - 1)
        }
    }

    public func lookup(_ type: SelectorType, bytes: UnsafeBufferPointer<UInt8>) -> [HitRef]? {
        let i = find(type, bytes: bytes)
        return i < 0 ? nil : refs[i]
    }
}

/// Phone prefixes in a compact digit trie: each node a 10-bit child mask and the index of its first child,
/// children stored together, so a walk touches one small node per digit.
public final class PrefixTrie: @unchecked Sendable {
    /// One 64-bit word per node, so a level costs one memory access: bits 0-9 the child mask, bit 10 "has refs",
    /// bits 32-63 the index of the first child (children are stored together, in digit order).
    private let nodes: UnsafeMutablePointer<UInt64>
    private let nodeCount: Int
    /// Per node with the "has refs" bit: its index into `refs` (read only on a hit).
    private let refsIndex: [Int32]
    private let refs: [[HitRef]]
    /// Large sets (see `hashedThreshold`): prefixes by length in an exact index behind its Bloom filter, so
    /// a number costs one cache-resident filter probe per prefix length present instead of a trie walk whose
    /// lower levels miss the cache.
    private let hashed: ExactIndex?
    private let lengths: UInt32

    /// From this many distinct prefixes on, the hashed layout beats the trie on this machine.
    public static let hashedThreshold = 100_000

    public var isEmpty: Bool { refs.isEmpty && hashed == nil }

    /// True when the set is large enough to be hashed by length rather than laid out as a trie.
    public var isHashed: Bool { hashed != nil }

    /// `items`: E.164-style prefixes (`+322`) and where they are watched.
    public init(_ items: [(String, HitRef)]) {
        let digitsOnly = items.map { (String($0.0.unicodeScalars.filter { $0.value >= 48 && $0.value <= 57 }), $0.1) }
        if Set(digitsOnly.map(\.0)).count >= Self.hashedThreshold {
            var mask: UInt32 = 0
            for (d, _) in digitsOnly where d.utf8.count < 32 { mask |= 1 << UInt32(d.utf8.count) }
            hashed = ExactIndex(digitsOnly.map { (SelectorType.phone, $0.0, $0.1) })
            lengths = mask
            nodes = .allocate(capacity: 1)
            nodes.initialize(to: 0)
            nodeCount = 1
            refs = []
            refsIndex = [-1]
            return
        }
        hashed = nil
        lengths = 0
        // Build a pointer trie, then lay it out breadth-first.
        final class B {
            var children: [B?] = Array(repeating: nil, count: 10)
            var refs: [HitRef] = []
        }
        let root = B()
        for (p, r) in items {
            var n = root
            for d in p.utf8 where d >= 48 && d <= 57 {
                let i = Int(d - 48)
                if n.children[i] == nil { n.children[i] = B() }
                n = n.children[i]!
            }
            n.refs.append(r)
        }
        var order: [B] = [root]
        var words: [UInt64] = []
        var refs: [[HitRef]] = []
        var refsIndex: [Int32] = []
        var head = 0
        while head < order.count {
            let n = order[head]
            var m: UInt64 = 0
            let first = UInt64(order.count)
            for (i, c) in n.children.enumerated() {
                if let c {
                    m |= 1 << UInt64(i)
                    order.append(c)
                }
            }
            if !n.refs.isEmpty {
                m |= 1 << 10
                refsIndex.append(Int32(refs.count))
                refs.append(n.refs)
            } else {
                refsIndex.append(-1)
            }
            words.append(m | first << 32)
            order[head] = root  // release the builder node as we go
            head += 1
        }
        nodeCount = words.count
        nodes = .allocate(capacity: words.count)
        nodes.initialize(from: words, count: words.count)
        self.refs = refs
        self.refsIndex = refsIndex
    }

    deinit { nodes.deallocate() }

    /// True when some watched prefix starts the E.164 number `digits` (ASCII, `+` ignored).
    public func meets(_ digits: UnsafeBufferPointer<UInt8>) -> Bool {
        var met = false
        walk(digits) { _ in
            met = true
            return false
        }
        return met
    }

    /// Every watched prefix of the E.164 number `digits` (ASCII, `+` ignored), shortest first.
    @inline(__always)
    public func lookup(_ digits: UnsafeBufferPointer<UInt8>, into out: inout [HitRef]) {
        walk(digits) { r in
            out += r
            return true
        }
    }

    /// The one walk behind `meets` and `lookup`: each watched prefix of `digits`, shortest first, to `found`, until
    /// it answers false.
    @inline(__always)
    private func walk(_ digits: UnsafeBufferPointer<UInt8>, _ found: ([HitRef]) -> Bool) {
        if let hashed {
            // E.164 text: skip the "+", then one probe per prefix length present.
            let skip = digits.first == UInt8(ascii: "+") ? 1 : 0
            var m = lengths
            while m != 0 {
                let len = m.trailingZeroBitCount
                m &= m - 1
                if len > digits.count - skip { break }
                let probe = UnsafeBufferPointer(rebasing: digits[skip..<(skip + len)])
                if let r = hashed.lookup(.phone, bytes: probe), !found(r) { return }
            }
            return
        }
        if refs.isEmpty { return }
        var node = 0
        for d in digits {
            if d &- 48 > 9 { continue }
            let bit = UInt64(1) &<< UInt64(d &- 48)
            let w = nodes[node]
            if w & bit == 0 { return }
            node = Int(truncatingIfNeeded: w >> 32) &+ (w & (bit &- 1) & 0x3FF).nonzeroBitCount
            if nodes[node] & (1 << 10) != 0, !found(refs[Int(refsIndex[node])]) { return }
        }
    }
}

/// An IP network: address bytes (16, IPv4 mapped) and prefix length over those 128 bits.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress.Bytes
    public var bits: Int

    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, var a = IPAddress.parse(String(parts[0])) else { return nil }
        let maxBits = a.version == 4 ? 32 : 128
        var b = maxBits
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= maxBits else { return nil }
            b = n
        }
        let total = a.version == 4 ? b + 96 : b
        for i in 0..<16 {  // clear host bits: 192.0.2.7/24 watches 192.0.2.0/24
            let keep = max(0, min(8, total - i * 8))
            a.bytes[i] &= keep == 8 ? 0xFF : ~(0xFF >> UInt8(keep)) & 0xFF
        }
        address = a
        bits = total
    }

    public var description: String {
        "\(IPAddress.format(address))/\(address.version == 4 ? bits - 96 : bits)"
    }
}

/// CIDR ranges (IPv4 and IPv6 in one space) in a binary trie.
public struct CIDRTrie: Sendable {
    private var next: [Int32] = [-1, -1]
    private var refsAt: [Int32: [HitRef]] = [:]

    public var isEmpty: Bool { refsAt.isEmpty }

    public init(_ items: [(CIDR, HitRef)]) {
        for (c, r) in items {
            var node = 0
            for i in 0..<c.bits {
                let bit = Int(c.address.bytes[i >> 3] >> UInt8(7 - i & 7)) & 1
                if next[node * 2 + bit] < 0 {
                    next[node * 2 + bit] = Int32(next.count / 2)
                    next += [-1, -1]
                }
                node = Int(next[node * 2 + bit])
            }
            refsAt[Int32(node), default: []].append(r)
        }
    }

    /// Every watched network containing `address`.
    public func lookup(_ address: IPAddress.Bytes, into out: inout [HitRef]) {
        if refsAt.isEmpty { return }
        var node = 0
        if let r = refsAt[0] { out += r }
        for i in 0..<128 {
            let bit = Int(address.bytes[i >> 3] >> UInt8(7 - i & 7)) & 1
            let n = next[node * 2 + bit]
            if n < 0 { return }
            node = Int(n)
            if let r = refsAt[Int32(node)] { out += r }
        }
    }
}

/// All loaded lists, compiled into their indexes.
public struct WatchlistIndex: Sendable {
    public let lists: [Watchlist]
    public let exact: ExactIndex
    public let prefixes: PrefixTrie
    public let networks: CIDRTrie
    /// Watched names and aliases, for fuzzy matching.
    public let names: NameIndex

    public init(lists: [Watchlist]) {
        self.lists = lists
        let items = Items(lists)
        exact = ExactIndex(items.exact)
        names = NameIndex(items.names, scripts: items.scripts, floor: Self.floor(lists))
        prefixes = PrefixTrie(items.prefixes)
        networks = CIDRTrie(items.cidrs)
    }

    /// Every selector of `lists` with where it is watched, by the index it goes to (`namesOnly`: names alone).
    struct Items {
        var exact: [(SelectorType, String, HitRef)] = []
        var prefixes: [(String, HitRef)] = []
        var cidrs: [(CIDR, HitRef)] = []
        var names: [(String, HitRef)] = []
        var scripts: [String?] = []

        init(_ lists: [Watchlist], namesOnly: Bool = false) {
            for (li, l) in lists.enumerated() {
                for (ei, e) in l.entries.enumerated() {
                    for (si, s) in e.selectors.enumerated() {
                        let ref = HitRef(list: Int32(li), entry: Int32(ei), selector: Int32(si), viaAlias: false)
                        switch s.kind {
                        case .exact(.name):
                            names.append((s.value, ref))
                            scripts.append(s.scripts.first ?? nil)
                            for (k, a) in s.aliases.enumerated() where a != s.value {
                                var r = ref
                                r.viaAlias = true
                                names.append((a, r))
                                scripts.append(k + 1 < s.scripts.count ? s.scripts[k + 1] : nil)
                            }
                        case _ where namesOnly: continue
                        case .exact(let t):
                            exact.append((t, s.value, ref))
                            for a in s.aliases where a != s.value {
                                var r = ref
                                r.viaAlias = true
                                exact.append((t, a, r))
                            }
                        case .phonePrefix: prefixes.append((s.value, ref))
                        case .ipCIDR: if let c = CIDR(s.value) { cidrs.append((c, ref)) }
                        }
                    }
                }
            }
        }
    }

    /// What an operator should know about how the lists compiled: name keys left out (`NameIndex.droppedKeys`), and
    /// terms crowded (`NameIndex.crowdedTerms`), each with the lists whose names they touch (owner/list, most
    /// names first; never a name).
    public var warnings: [String] { Self.warnings(names, lists: lists) }

    public static func warnings(_ names: NameIndex, lists: [Watchlist]) -> [String] {
        func named(_ byList: [Int32: Int]) -> String {
            let top = byList.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
            var parts = top.prefix(5).map { l, n in
                let list = Int(l) < lists.count ? lists[Int(l)].owner + "/" + lists[Int(l)].name : "list \(l)"
                return "\(list) (\(n) names)"
            }
            if top.count > 5 { parts.append("\(top.count - 5) more lists") }
            return parts.joined(separator: ", ")
        }
        var out: [String] = []
        if names.droppedKeys > 0 {
            out.append(
                "name index: \(names.droppedKeys) keys left out (one key shared by more than \(NameIndex.keyBucketCap) "
                    + "spellings, or a spelling with two letters left out by more than \(NameIndex.pairKeyCap)): names "
                    + "alike only through them are not found; in \(named(names.droppedNamesByList)) — is a list built "
                    + "around one spelling?")
        }
        if names.crowdedTerms > 0 {
            out.append(
                "name index: \(names.crowdedTerms) name terms crowded (their keys visit more than "
                    + "\(NameIndex.reachVisitCap) postings, or past the build's budget of "
                    + "\(NameIndex.comparisonBudget) comparisons): queries with them compare at query time, slower; "
                    + "in \(named(names.crowdedNamesByList)) — is a list built around one spelling?")
        }
        return out
    }

    /// Only the name index of `lists` (what `tripline check` builds to show its warnings).
    public static func names(of lists: [Watchlist]) -> NameIndex {
        let items = Items(lists, namesOnly: true)
        return NameIndex(items.names, scripts: items.scripts, floor: floor(lists))
    }

    /// Candidates are cut for the lowest threshold a list asks for.
    static func floor(_ lists: [Watchlist]) -> Double {
        lists.map { $0.minScore ?? NameIndex.defaultMinScore }.min() ?? NameIndex.defaultMinScore
    }

    /// True when a normalised value (its bytes) of a type that `candidates` reads by value alone — anything but a
    /// name or an IP address — meets some watchlist selector: the screen in front of the whole match, allocation-free.
    public func mayMeet(_ type: SelectorType, _ value: UnsafeBufferPointer<UInt8>) -> Bool {
        mayMeet(type, value, hash: ExactIndex.hash(type, value))
    }

    /// The same with the value's `ExactIndex.hash` computed (and its filter block prefetched) ahead.
    @inline(__always)
    public func mayMeet(_ type: SelectorType, _ value: UnsafeBufferPointer<UInt8>, hash: UInt64) -> Bool {
        precondition(type != .name && type != .ip, "names and addresses are matched by more than their bytes")
        if exact.find(type, bytes: value, hash: hash) >= 0 { return true }
        return type == .phone && prefixes.meets(value)
    }

    /// Every watchlist selector a normalised selector meets, before time and handling rules.
    public func candidates(_ s: NormalizedSelector) -> [HitRef] {
        var out: [HitRef] = exact.lookup(s.type, s.value) ?? []
        switch s.type {
        case .phone:
            var v = s.value
            v.withUTF8 { prefixes.lookup($0, into: &out) }
        case .ip:
            if let a = IPAddress.parse(s.value) { networks.lookup(a, into: &out) }
        default: break
        }
        return out
    }
}
