import Foundation
import TriplineAudit
import TriplineJSON

/// Seeds that must be computed (signed under the fixed key): the replay test keeps `Fuzz/Corpus` equal to them
/// (and writes them when asked), so the fuzzer starts from inputs that pass the signature and reach the parsers
/// behind it.
public enum FuzzSeeds {
    /// File name under `Fuzz/Corpus/<target>/` → contents.
    public static func computed() -> [String: [String: [UInt8]]] {
        var note: [String: [UInt8]] = [:]
        let (records, proofs, checkpoint) = bundle(size: 5)
        note["signed-checkpoint"] = checkpoint
        note["two-signatures"] = Array(
            (String(decoding: checkpoint, as: UTF8.self) + "— other.example/log AAAAAQ==\n").utf8)
        note["extension-lines"] = sign(
            "fuzz.tripline.example/log\n3\n" + Data(count: 32).base64EncodedString() + "\nx\n")
        var bundles: [String: [UInt8]] = [:]
        bundles["bundle-5"] = records + [0xFF] + proofs + [0xFF] + checkpoint
        let (r1, p1, c1) = bundle(size: 1)
        bundles["bundle-1"] = r1 + [0xFF] + p1 + [0xFF] + c1
        let (r3, p3, c3) = bundle(size: 3)
        bundles["bundle-3"] = r3 + [0xFF] + p3 + [0xFF] + c3
        return ["note": note, "audit-bundle": bundles]
    }

    static func sign(_ text: String) -> [UInt8] {
        guard let n = try? FuzzFixtures.signer.sign(text) else { fatalError("fixture signing") }
        return Array(n.utf8)
    }

    /// A log of `size` records, every record's inclusion proof, the signed checkpoint.
    static func bundle(size: Int) -> (records: [UInt8], proofs: [UInt8], checkpoint: [UInt8]) {
        var entries: [AuditEntry] = []
        for i in 0..<size {
            var f = JSONObject()
            f.append("principal", .string("analyst-\(i)"))
            f.append("alert", .string("a\(i)"))
            entries.append(
                AuditEntry.make(
                    index: i, at: FuzzFixtures.now + Double(i), kind: i % 2 == 0 ? "alert.created" : "alert.viewed",
                    fields: f, salt: (0..<16).map { UInt8(($0 + i) & 0xFF) }))
        }
        let leaves = entries.map(\.leaf)
        let root = Merkle.root(leaves[...])
        var records = ""
        var proofs = ""
        for (i, e) in entries.enumerated() {
            records += JSONWriter.string(.object(AuditBundle.line(index: i, entry: e, status: .present))) + "\n"
            let path = Merkle.inclusionProof(index: i, size: size) { (a: Int, b: Int) -> Hash in
                Merkle.root(leaves[a..<b])
            }
            var p = JSONObject()
            p.append("index", .number(String(i)))
            p.append("size", .number(String(size)))
            p.append("proof", .array(path.map { .string(Data($0).base64EncodedString()) }))
            proofs += JSONWriter.string(.object(p)) + "\n"
        }
        let cp = Checkpoint(origin: "fuzz.tripline.example/log", size: size, root: root)
        return (Array(records.utf8), Array(proofs.utf8), sign(cp.text))
    }
}
