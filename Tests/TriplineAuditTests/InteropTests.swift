import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

@testable import TriplineAudit

/// Checkpoints, notes and proofs checked by Go's golang.org/x/mod (sumdb/note, sumdb/tlog).
@Suite("Interop with golang.org/x/mod")
struct InteropTests {
    func goCheck(_ vkey: String, _ note: String, _ proofs: JSONValue) throws -> (Int32, String) {
        try tlogCheck(vkey: vkey, note: note, proofs: proofs)
    }

    @Test func goVerifiesNotesAndProofs() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/gocode/src/golang.org/x/mod/sumdb/note") else {
            Issue.record("golang-go and golang-golang-x-mod-dev are missing: run scripts/setup.sh --peers")
            return
        }
        var tree = NodeTree()
        let ls = leaves(137)
        for l in ls { tree.append(l) }
        let signer = try NoteSigner(name: "tripline.example/audit")
        let note = try signer.sign(Checkpoint(origin: "tripline.example/audit", size: 137, root: tree.range.root).text)
        func b64(_ h: Hash) -> JSONValue { .string(Data(h).base64EncodedString()) }
        var inclusion: [JSONValue] = []
        for m in stride(from: 0, to: 137, by: 7) {
            let p = Merkle.inclusionProof(index: m, size: 137) { tree.hash($0, $1) }
            inclusion.append(
                .object(
                    JSONObject([("index", .number(String(m))), ("leaf", b64(ls[m])), ("proof", .array(p.map(b64)))])))
        }
        var consistency: [JSONValue] = []
        for m in [1, 2, 3, 8, 64, 100, 136, 137] {
            let p = Merkle.consistencyProof(old: m, new: 137) { tree.hash($0, $1) }
            consistency.append(
                .object(
                    JSONObject([
                        ("size", .number(String(m))), ("root", b64(tree.hash(0, m))), ("proof", .array(p.map(b64))),
                    ])))
        }
        let proofs = JSONValue.object(
            JSONObject([("inclusion", .array(inclusion)), ("consistency", .array(consistency))]))
        let (status, text) = try goCheck(signer.verifier.text, note, proofs)
        #expect(status == 0, "\(text)")
        #expect(text.hasPrefix("ok tripline.example/audit 137 20 8"), "\(text)")
        // The same checker refuses a changed checkpoint.
        let forged = note.replacingOccurrences(of: "\n137\n", with: "\n138\n")
        let (bad, badText) = try goCheck(signer.verifier.text, forged, proofs)
        #expect(bad != 0 && badText.contains("note"), "\(badText)")
    }
}
