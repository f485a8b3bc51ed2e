import Foundation
import Testing
import TriplineJSON

@testable import TriplineAudit

/// Offline verification of an export bundle, byte for byte: payloads intact or erased by an erasure in the bundle.
@Suite("Export bundles")
struct BundleTests {
    static let origin = "tripline.test/audit"

    /// Records 0..<6 (record 4 erases record 1's payload), a checkpoint over them, and a bundle of every record.
    struct Fixture {
        var lines: [JSONObject] = []
        var proofs: [String] = []
        var note = ""
        var vkey: NoteVerifier

        init() throws {
            var entries: [AuditEntry] = []
            func add(_ kind: String, _ fields: JSONObject) {
                entries.append(
                    AuditEntry.make(
                        index: entries.count, at: 1_900_000_000 + Double(entries.count), kind: kind, fields: fields,
                        salt: [UInt8](repeating: UInt8(entries.count), count: 16)))
            }
            for i in 0..<4 {
                add(
                    "suppressed",
                    JSONObject([("detail", .object(JSONObject([("selector", .string("caf\u{FFFD} \(i)"))])))]))
            }
            add(
                "payload_erased",
                JSONObject([
                    ("detail", .object(JSONObject([("index", .number("1"))]))), ("principal", .string("auditor-1")),
                    ("reason", .string("GDPR")),
                ]))
            add("suppressed", JSONObject([("detail", .object(JSONObject()))]))
            var range = CompactRange()
            var nodes: [Int: Hash] = [:]
            for e in entries { range.append(e.leaf) { l, i, h in nodes[l << 40 | i] = h } }
            let signer = try NoteSigner(name: BundleTests.origin)
            vkey = signer.verifier
            note = try signer.sign(Checkpoint(origin: BundleTests.origin, size: entries.count, root: range.root).text)
            entries[1].salt = nil
            entries[1].payload = nil
            let statuses = AuditLog(entries: entries, nodes: [:], checkpoints: []).payloadStatuses()
            #expect(statuses == [.present, .erased(by: 4), .present, .present, .present, .present])
            for (i, e) in entries.enumerated() {
                lines.append(AuditBundle.line(index: i, entry: e, status: statuses[i]))
                let p = Merkle.inclusionProof(index: i, size: entries.count) { a, b in
                    Merkle.subtreeHash(a, b) { nodes[$0 << 40 | $1]! }
                }
                proofs.append(
                    JSONWriter.string(
                        .object(
                            JSONObject([
                                ("index", .number(String(i))), ("size", .number(String(entries.count))),
                                ("proof", .array(p.map { .string(Data($0).base64EncodedString()) })),
                            ]))))
            }
        }

        func verify(_ lines: [JSONObject]? = nil, proofs: [String]? = nil, raw: [UInt8]? = nil) -> String {
            let records =
                raw ?? Array((lines ?? self.lines).map { JSONWriter.string(.object($0)) + "\n" }.joined().utf8)
            let r = AuditBundle.verify(
                records: records, proofs: Array(((proofs ?? self.proofs).joined(separator: "\n") + "\n").utf8),
                checkpoint: Array(note.utf8), vkey: vkey)
            switch r {
            case .success(let s): return "ok \(s.records) \(s.erased)"
            case .failure(let f): return f.description
            }
        }
    }

    @Test("an intact bundle verifies, its erasure explained by the erasure record it carries")
    func intact() throws {
        let f = try Fixture()
        #expect(f.verify() == "ok 6 1")
        #expect(
            f.lines[1]
                == JSONObject([("index", 1), ("record", f.lines[1]["record"]!), ("erased", true), ("erased_by", 4)]))
    }

    @Test("a missing or partial payload fails, naming the record: never skipped")
    func partialPayloads() throws {
        let f = try Fixture()
        var l = f.lines
        l[2]["salt"] = nil
        #expect(f.verify(l) == "record 2: payload stored without its salt")
        l = f.lines
        l[2]["salt"] = "not base64!"
        #expect(f.verify(l) == "record 2: salt is not base64")
        l = f.lines
        l[2]["salt"] = .string(Data([1]).base64EncodedString())
        #expect(f.verify(l) == "record 2: salt is 1 bytes, not 16")
        l = f.lines
        l[3]["payload"] = nil
        #expect(f.verify(l) == "record 3: salt stored without its payload")
        l = f.lines
        l[2]["salt"] = nil
        l[2]["payload"] = nil
        #expect(
            f.verify(l)
                == "record 2: payload missing, and no audited erasure (payload_erased record) names it in the bundle")
        l[2]["erased"] = true
        #expect(
            f.verify(l)
                == "record 2: payload missing, and no audited erasure (payload_erased record) names it in the bundle")
        // The erasure record left out: record 1's erasure is no longer shown to be audited.
        l = f.lines
        l.remove(at: 4)
        var p = f.proofs
        p.remove(at: 4)
        #expect(
            f.verify(l, proofs: p)
                == "record 1: payload missing, and no audited erasure (payload_erased record) names it in the bundle")
        // A payload said to be erased yet present.
        l = f.lines
        l[2]["erased"] = true
        #expect(f.verify(l) == "record 2: said to be erased, yet carries its payload")
    }

    @Test("text after a NUL byte and bytes that are not UTF-8 are verified as written")
    func exactBytes() throws {
        let f = try Fixture()
        var l = f.lines
        l[3]["payload"] = .string(l[3]["payload"]!.stringValue! + "\u{0}{\"forged\":true}")
        #expect(f.verify(l) == "record 3: payload does not match the record's payload_sha256")
        l = f.lines
        let record = l[2]["record"]!.stringValue!
        l[2]["record"] = .string(record + "\u{0}{\"forged\":true}")
        #expect(
            f.verify(l)
                == "record 2: record is not JSON (unexpected data after the JSON value at byte \(record.utf8.count + 1))"
        )
        // U+FFFD (EF BF BD) in a payload replaced by an invalid byte: not read back as the same text.
        var raw = Array(f.lines.map { JSONWriter.string(.object($0)) + "\n" }.joined().utf8)
        let at = try #require(raw.firstRange(of: [0xEF, 0xBF, 0xBD]))
        raw.replaceSubrange(at, with: [0xFF])
        #expect(f.verify(raw: raw) == "records.ndjson line 1: not a JSON object")
    }
}
