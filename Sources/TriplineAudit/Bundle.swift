import Foundation
import TriplineJSON

/// An export bundle (SPEC §7): a directory of `records.ndjson` (one line per record: index, record, and the salt and
/// payload, or `erased` and the erasure record that says so), `proofs.ndjson` (an inclusion proof per record, in the
/// same order), the signed `checkpoint` the proofs lead to, and the `vkey` that signed it. It verifies offline.
public enum AuditBundle {
    public static let recordsFile = "records.ndjson"
    public static let proofsFile = "proofs.ndjson"
    public static let checkpointFile = "checkpoint"
    public static let vkeyFile = "vkey"

    /// A records.ndjson line (also what `audit query` prints). A payload that is neither stored intact nor erased
    /// by an audited erasure is never shown as genuine: the line says what is wrong in `problem`.
    public static func line(index: Int, entry e: AuditEntry, status: PayloadStatus) -> JSONObject {
        var o = JSONObject()
        o.append("index", .number(String(index)))
        o.append("record", .string(e.record))
        switch status {
        case .present, .bad:
            if let s = e.salt { o.append("salt", .string(Data(s).base64EncodedString())) }
            if let p = e.payload { o.append("payload", .string(p)) }
            if case .bad(let why) = status { o.append("problem", .string(why)) }
        case .erased(let j):
            o.append("erased", .bool(true))
            o.append("erased_by", .number(String(j)))
        }
        return o
    }

    public struct Summary: Sendable {
        public var records: Int
        public var erased: Int
        public var checkpoint: Checkpoint
    }

    public typealias Failure = AuditVerifier.Failure

    /// Verifies a bundle's files, byte for byte: every line well formed, indices ascending, every record canonical
    /// and at its index, every payload stored intact or erased by an erasure record in the bundle, every proof
    /// leading to the signed checkpoint's root. Names the first bad record.
    public static func verify(records: [UInt8], proofs: [UInt8], checkpoint: [UInt8], vkey: NoteVerifier) -> Result<
        Summary, Failure
    > {
        func fail(_ i: Int?, _ why: String) -> Result<Summary, Failure> { .failure(Failure(index: i, reason: why)) }
        guard let note = String(validating: checkpoint, as: UTF8.self) else {
            return fail(nil, "checkpoint: not UTF-8")
        }
        let cp: Checkpoint
        do { cp = try Checkpoint(text: try vkey.open(note)) } catch { return fail(nil, "checkpoint: \(error)") }

        // records.ndjson
        var entries: [(Int, AuditEntry)] = []
        var claims: [(erased: Bool, erasedBy: Int?)] = []
        for (n, line) in lines(records) {
            func bad(_ why: String) -> Result<Summary, Failure> { fail(nil, "\(recordsFile) line \(n): \(why)") }
            guard case .object(let o)? = try? JSONParser.parse(Array(line)) else { return bad("not a JSON object") }
            guard case .number(let num)? = o["index"], let i = Int(num), i >= 0, case .string(let record)? = o["record"]
            else { return bad("a record line without index and record") }
            if let last = entries.last?.0, i <= last {
                return fail(i, "\(recordsFile) line \(n): indices must ascend (\(i) after \(last))")
            }
            if i >= cp.size { return fail(i, "not in the checkpoint's tree of \(cp.size)") }
            var salt: [UInt8]?
            switch o["salt"] {
            case nil: break
            case .string(let s)?:
                guard let d = Data(base64Encoded: s) else { return fail(i, "salt is not base64") }
                salt = Array(d)
            default: return fail(i, "salt is not a string")
            }
            var payload: String?
            switch o["payload"] {
            case nil: break
            case .string(let s)?: payload = s
            default: return fail(i, "payload is not a string")
            }
            var claim: (erased: Bool, erasedBy: Int?) = (false, nil)
            switch o["erased"] {
            case nil: break
            case .bool(let b)?: claim.erased = b
            default: return fail(i, "erased is not true or false")
            }
            switch o["erased_by"] {
            case nil: break
            case .number(let s)? where Int(s) != nil: claim.erasedBy = Int(s)
            default: return fail(i, "erased_by is not a record index")
            }
            if o["problem"] != nil { return fail(i, "exported with a problem: \(o["problem"]!.stringValue ?? "")") }
            entries.append((i, AuditEntry(record: record, salt: salt, payload: payload)))
            claims.append(claim)
        }

        // proofs.ndjson, one per record line and in the same order
        let proofLines = lines(proofs)
        guard proofLines.count == entries.count else {
            return fail(nil, "\(entries.count) records but \(proofLines.count) proofs")
        }
        var paths: [[Hash]] = []
        for ((n, line), (i, _)) in zip(proofLines, entries) {
            func bad(_ why: String) -> Result<Summary, Failure> { fail(i, "\(proofsFile) line \(n): \(why)") }
            guard case .object(let o)? = try? JSONParser.parse(Array(line)) else { return bad("not a JSON object") }
            guard case .number(let pi)? = o["index"], Int(pi) == i else { return bad("not the proof of record \(i)") }
            guard case .number(let ps)? = o["size"], Int(ps) == cp.size else {
                return bad("not a proof for the checkpoint's tree of \(cp.size)")
            }
            guard case .array(let hashes)? = o["proof"] else { return bad("no proof") }
            var path: [Hash] = []
            for h in hashes {
                guard case .string(let s) = h, let d = Data(base64Encoded: s), d.count == 32 else {
                    return bad("a proof hash that is not 32 bytes of base64")
                }
                path.append(Array(d))
            }
            paths.append(path)
        }

        // Each record: canonical, at its index, its payload intact or erased by an erasure in the bundle, included.
        let erasures = Erasures(entries)
        var erased = 0
        for ((i, e), (claim, path)) in zip(entries, zip(claims, paths)) {
            let p: AuditVerifier.Parsed
            switch AuditVerifier.parse(e.record) {
            case .success(let v): p = v
            case .failure(let why): return fail(i, why.reason)
            }
            guard p.index == i else { return fail(i, "record says index \(p.index)") }
            switch erasures.status(index: i, entry: e, parsed: p) {
            case .present:
                if claim.erased || claim.erasedBy != nil {
                    return fail(i, "said to be erased, yet carries its payload")
                }
            case .erased(let j):
                guard claim.erased, claim.erasedBy == nil || claim.erasedBy == j else {
                    return fail(i, "payload missing; the line does not say it was erased by record \(j)")
                }
                erased += 1
            case .bad(let why):
                return fail(i, e.salt == nil && e.payload == nil ? why + " in the bundle" : why)
            }
            if !Merkle.verifyInclusion(
                leaf: Merkle.leafHash(Array(e.record.utf8)), index: i, size: cp.size, proof: path, root: cp.root)
            {
                return fail(i, "inclusion proof does not lead to the checkpoint's root")
            }
        }
        return .success(Summary(records: entries.count, erased: erased, checkpoint: cp))
    }

    /// Non-empty lines with their 1-based numbers, split on LF only (a CR is JSON whitespace).
    static func lines(_ bytes: [UInt8]) -> [(Int, ArraySlice<UInt8>)] {
        var out: [(Int, ArraySlice<UInt8>)] = []
        var n = 0
        for l in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            n += 1
            if !l.isEmpty { out.append((n, l)) }
        }
        return out
    }
}
