import Crypto
import Foundation
import Testing

@testable import TriplineAudit

func hex(_ h: Hash) -> String { h.map { String(format: "%02x", $0) }.joined() }

/// A tree held in memory the way the store holds it: perfect-subtree nodes by (level, index).
struct NodeTree {
    var nodes: [Int: Hash] = [:]
    var range = CompactRange()
    static func key(_ l: Int, _ i: Int) -> Int { l << 40 | i }
    mutating func append(_ leaf: Hash) { range.append(leaf) { l, i, h in nodes[Self.key(l, i)] = h } }
    func hash(_ a: Int, _ b: Int) -> Hash { Merkle.subtreeHash(a, b) { nodes[Self.key($0, $1)]! } }
}

func leaves(_ n: Int) -> [Hash] { (0..<n).map { Merkle.leafHash(Array("record \($0)".utf8)) } }

@Suite("RFC 6962 Merkle tree")
struct MerkleTests {
    @Test func knownAnswers() throws {
        #expect(hex(Merkle.emptyRoot) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(Merkle.leafHash([])) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        #expect(hex(CompactRange().root) == hex(Merkle.emptyRoot))
        // Small trees against an independent implementation of RFC 6962 §2.1 (Python hashlib).
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c",
            """
            import hashlib
            def mth(d):
                if not d: return hashlib.sha256(b"").hexdigest()
                if len(d) == 1: return hashlib.sha256(b"\\x00" + d[0]).hexdigest()
                k = 1
                while k * 2 < len(d): k *= 2
                return hashlib.sha256(b"\\x01" + bytes.fromhex(mth(d[:k])) + bytes.fromhex(mth(d[k:]))).hexdigest()
            data = [b"", b"\\x00", b"\\x10", b"\\x20\\x21", b"\\x30\\x31", b"\\x40\\x41\\x42\\x43",
                    b"\\x50\\x51\\x52\\x53\\x54\\x55\\x56\\x57", bytes(range(0x60, 0x70))] + [bytes([i]) * i for i in range(8, 40)]
            for n in range(len(data) + 1): print(mth(data[:n]))
            """,
        ]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let expected = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(
            separator: "\n")
        p.waitUntilExit()
        var data: [[UInt8]] = [[], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43]]
        data.append(Array(0x50...0x57))
        data.append(Array(0x60..<0x70))
        for i in 8..<40 { data.append([UInt8](repeating: UInt8(i), count: i)) }
        #expect(expected.count == data.count + 1)
        var tree = NodeTree()
        #expect(hex(tree.range.root) == expected[0])
        for (n, d) in data.enumerated() {
            tree.append(Merkle.leafHash(d))
            let ls = data[0...n].map { Merkle.leafHash($0) }
            #expect(hex(Merkle.root(ls[...])) == expected[n + 1], "size \(n + 1)")
            #expect(hex(tree.range.root) == expected[n + 1], "compact range, size \(n + 1)")
        }
        // The 8-leaf reference tree of RFC 6962's test data.
        #expect(expected[8] == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
    }

    @Test func proofsRoundTripForEverySize() {
        var tree = NodeTree()
        let ls = leaves(260)
        for n in 1...260 {
            tree.append(ls[n - 1])
            let root = tree.range.root
            #expect(root == tree.hash(0, n))
            var fine = true
            for m in 0..<n {
                let p = Merkle.inclusionProof(index: m, size: n) { tree.hash($0, $1) }
                fine = fine && Merkle.verifyInclusion(leaf: ls[m], index: m, size: n, proof: p, root: root)
            }
            for m in 1...n {
                let p = Merkle.consistencyProof(old: m, new: n) { tree.hash($0, $1) }
                fine =
                    fine && Merkle.verifyConsistency(size1: m, size2: n, proof: p, root1: tree.hash(0, m), root2: root)
            }
            #expect(fine, "size \(n)")
            // Rebuilding the edge from stored nodes gives the same range.
            #expect(CompactRange(size: n) { tree.nodes[NodeTree.key($0, $1)]! } == tree.range)
        }
    }

    /// Each class of corruption that transparency-dev's proof generator produces must be rejected.
    @Test func corruptedProofsAreRejected() {
        var tree = NodeTree()
        let ls = leaves(70)
        for l in ls { tree.append(l) }
        func flips(_ p: [Hash]) -> [[Hash]] {
            var out: [[Hash]] = []
            for i in p.indices {
                for bit in [0, 7, 100, 255] {
                    var q = p
                    q[i][bit / 8] ^= UInt8(1 << (bit % 8))
                    out.append(q)
                }
            }
            return out
        }
        let junk = Merkle.leafHash([9, 9])
        var checked = 0
        for (m, n) in [(0, 1), (0, 2), (1, 2), (3, 8), (4, 9), (6, 7), (13, 70), (69, 70), (31, 64), (32, 33)] {
            let root = tree.hash(0, n)
            let p = Merkle.inclusionProof(index: m, size: n) { tree.hash($0, $1) }
            #expect(Merkle.verifyInclusion(leaf: ls[m], index: m, size: n, proof: p, root: root))
            // Wrong tree size as transparency-dev mutates it (×2, ÷2): a size whose tree has the same shape on the
            // leaf's path cannot be told apart by any verifier, so ±1 is not a corruption class.
            var bad: [(Hash, Int, Int, [Hash], Hash)] = [
                (ls[m], m, n * 2, p, root), (ls[m], m + 1, n, p, root), (ls[m], m - 1, n, p, root),
                (ls[m], m, n, p, junk), (junk, m, n, p, root), (ls[m], m, n, p + [junk], root),
                (ls[m], m, n, [junk] + p, root),
                (ls[m], n, n, p, root), (ls[m], -1, n, p, root),
            ]
            if n > 2 && n / 2 > m { bad.append((ls[m], m, n / 2, p, root)) }
            if !p.isEmpty { bad += [(ls[m], m, n, [], root), (ls[m], m, n, Array(p.dropLast()), root)] }
            for q in flips(p) { bad.append((ls[m], m, n, q, root)) }
            for b in bad {
                #expect(
                    !Merkle.verifyInclusion(leaf: b.0, index: b.1, size: b.2, proof: b.3, root: b.4),
                    "inclusion \(m)/\(n)")
                checked += 1
            }
        }
        for (m, n) in [(1, 2), (1, 8), (3, 8), (4, 9), (6, 7), (13, 70), (64, 70), (31, 64), (32, 33), (1, 70)] {
            let r1 = tree.hash(0, m)
            let r2 = tree.hash(0, n)
            let p = Merkle.consistencyProof(old: m, new: n) { tree.hash($0, $1) }
            #expect(Merkle.verifyConsistency(size1: m, size2: n, proof: p, root1: r1, root2: r2))
            var bad: [(Int, Int, [Hash], Hash, Hash)] = [
                (m, n * 2, p, r1, r2), (m + 1, n, p, r1, r2), (m - 1, n, p, r1, r2), (m, n, p, r2, r1),
                (m, n, p, junk, r2),
                (m, n, p, r1, junk), (m, n, [], r1, r2), (m, n, Array(p.dropLast()), r1, r2),
                (m, n, p + [junk], r1, r2),
                (m, n, [junk] + p, r1, r2), (n, m, p, r2, r1),
            ]
            for q in flips(p) { bad.append((m, n, q, r1, r2)) }
            for b in bad {
                #expect(
                    !Merkle.verifyConsistency(size1: b.0, size2: b.1, proof: b.2, root1: b.3, root2: b.4),
                    "consistency \(m)/\(n)")
                checked += 1
            }
        }
        #expect(checked > 450)
    }
}

@Suite("Signed notes and checkpoints")
struct NoteTests {
    @Test func signOpenAndTamper() throws {
        let signer = try NoteSigner(name: "tripline.example/audit")
        let text = Checkpoint(origin: "tripline.example/audit", size: 5, root: Merkle.leafHash([1])).text
        let note = try signer.sign(text)
        #expect(try signer.verifier.open(note) == text)
        #expect(try Checkpoint(text: text).size == 5)
        // Round trips of the key texts.
        let again = try NoteSigner(text: signer.text)
        #expect(again.verifier == signer.verifier)
        #expect(try NoteVerifier(text: signer.verifier.text) == signer.verifier)
        #expect(signer.verifier.text.hasPrefix("tripline.example/audit+"))
        // Any change to the text or the signature, or another key, fails.
        #expect(throws: AuditError.self) {
            try signer.verifier.open(note.replacingOccurrences(of: "\n5\n", with: "\n6\n"))
        }
        let other = try NoteSigner(name: "tripline.example/audit")
        #expect(throws: AuditError.self) { try other.verifier.open(note) }
        var bytes = Array(note.utf8)
        bytes[bytes.count - 10] ^= 0x01
        #expect(throws: AuditError.self) { try signer.verifier.open(String(decoding: bytes, as: UTF8.self)) }
        #expect(throws: AuditError.self) { try NoteVerifier(text: "name+00000000+AAAA") }
    }
}
