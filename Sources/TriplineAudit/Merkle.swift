import Crypto
import Foundation

/// A SHA-256 hash.
public typealias Hash = [UInt8]

/// RFC 6962 §2.1 Merkle tree hashing: leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right); the empty
/// tree's hash is SHA-256 of nothing.
public enum Merkle {
    public static let emptyRoot: Hash = Array(SHA256.hash(data: [UInt8]()))

    public static func leafHash(_ data: [UInt8]) -> Hash {
        var h = SHA256()
        h.update(data: [0x00])
        h.update(data: data)
        return Array(h.finalize())
    }

    public static func nodeHash(_ left: Hash, _ right: Hash) -> Hash {
        var h = SHA256()
        h.update(data: [0x01])
        h.update(data: left)
        h.update(data: right)
        return Array(h.finalize())
    }

    /// The largest power of two strictly less than `n` (n ≥ 2).
    static func split(_ n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    /// MTH over leaf hashes (reference, O(n)).
    public static func root(_ leaves: ArraySlice<Hash>) -> Hash {
        if leaves.isEmpty { return emptyRoot }
        if leaves.count == 1 { return leaves.first! }
        let k = split(leaves.count)
        let s = leaves.startIndex
        return nodeHash(root(leaves[s..<s + k]), root(leaves[(s + k)...]))
    }

    /// MTH of leaves [a, b) from stored perfect-subtree nodes: O(log n) lookups.
    public static func subtreeHash<E: Error>(_ a: Int, _ b: Int, node: (_ level: Int, _ index: Int) throws(E) -> Hash)
        throws(E) -> Hash
    {
        let n = b - a
        if n & (n - 1) == 0 && a % n == 0 { return try node(n.trailingZeroBitCount, a / n) }
        let k = split(n)
        return nodeHash(try subtreeHash(a, a + k, node: node), try subtreeHash(a + k, b, node: node))
    }

    /// RFC 6962 §2.1.1 PATH(m, D[a:b]) given a subtree-hash source; proofs list hashes leaf to root.
    public static func inclusionProof<E: Error>(index m: Int, size n: Int, hash: (Int, Int) throws(E) -> Hash) throws(E)
        -> [Hash]
    {
        precondition(m >= 0 && m < n)
        func path(_ m: Int, _ a: Int, _ b: Int) throws(E) -> [Hash] {
            if b - a == 1 { return [] }
            let k = split(b - a)
            if m < k { return try path(m, a, a + k) + [hash(a + k, b)] }
            return try path(m - k, a + k, b) + [hash(a, a + k)]
        }
        return try path(m, 0, n)
    }

    /// RFC 6962 §2.1.2 PROOF(m, D[n]).
    public static func consistencyProof<E: Error>(old m: Int, new n: Int, hash: (Int, Int) throws(E) -> Hash) throws(E)
        -> [Hash]
    {
        precondition(0 < m && m <= n)
        func subproof(_ m: Int, _ a: Int, _ b: Int, _ complete: Bool) throws(E) -> [Hash] {
            let n = b - a
            if m == n { return complete ? [] : [try hash(a, b)] }
            let k = split(n)
            if m <= k { return try subproof(m, a, a + k, complete) + [hash(a + k, b)] }
            return try subproof(m - k, a + k, b, false) + [hash(a, a + k)]
        }
        return try subproof(m, 0, n, true)
    }

    /// RFC 9162 §2.1.3.2: whether `proof` shows `leaf` at `index` in the tree of `size` with `root`.
    public static func verifyInclusion(leaf: Hash, index: Int, size: Int, proof: [Hash], root: Hash) -> Bool {
        guard index >= 0, index < size, proof.allSatisfy({ $0.count == 32 }) else { return false }
        var fn = index
        var sn = size - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `size1` with `root1` is a prefix of `size2`/`root2`.
    public static func verifyConsistency(size1: Int, size2: Int, proof: [Hash], root1: Hash, root2: Hash) -> Bool {
        guard size1 >= 0, size2 >= size1, proof.allSatisfy({ $0.count == 32 }) else { return false }
        if size1 == size2 { return proof.isEmpty && root1 == root2 }
        if size1 == 0 { return proof.isEmpty }
        guard !proof.isEmpty else { return false }
        var path = proof
        // If size1 is an exact power of two, prepend root1.
        if size1 & (size1 - 1) == 0 { path.insert(root1, at: 0) }
        var fn = size1 - 1
        var sn = size2 - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == root1 && sr == root2 && sn == 0
    }
}

/// The right edge of a growing tree: the roots of the perfect subtrees that make up [0, size), largest first.
/// Appending is amortised O(1) and emits the completed nodes (level, index, hash) for storage; the root folds
/// the edge right to left.
public struct CompactRange: Sendable, Equatable {
    public private(set) var size = 0
    public private(set) var hashes: [Hash] = []

    public init() {}

    /// Rebuilds the edge of a tree of `size` from stored perfect-subtree nodes.
    public init<E: Error>(size: Int, node: (_ level: Int, _ index: Int) throws(E) -> Hash) throws(E) {
        self.size = size
        var start = 0
        for level in stride(from: 62, through: 0, by: -1) where size & (1 << level) != 0 {
            hashes.append(try node(level, start >> level))
            start += 1 << level
        }
    }

    /// Appends a leaf hash; calls `emit` for the leaf and for every node it completes.
    public mutating func append<E: Error>(
        _ leaf: Hash, emit: (_ level: Int, _ index: Int, _ hash: Hash) throws(E) -> Void
    )
        throws(E)
    {
        try emit(0, size, leaf)
        hashes.append(leaf)
        var level = 0
        var index = size
        while index & 1 == 1 {
            let right = hashes.removeLast()
            let left = hashes.removeLast()
            let h = Merkle.nodeHash(left, right)
            level += 1
            index >>= 1
            try emit(level, index, h)
            hashes.append(h)
        }
        size += 1
    }

    public var root: Hash {
        guard var h = hashes.last else { return Merkle.emptyRoot }
        for left in hashes.dropLast().reversed() { h = Merkle.nodeHash(left, h) }
        return h
    }
}
