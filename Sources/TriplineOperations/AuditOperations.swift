import Foundation
import TriplineAudit
import TriplineConfig
import TriplineJSON
import TriplinePolicy
import TriplineSelectors
import TriplineState

/// The audit query filters (SPEC §7): time range, selector, partner, list, rule, receiver.
public struct AuditFilter: Sendable {
    public var from: Double?
    public var to: Double?
    public var selector: String?
    public var partner: String?
    public var list: String?
    public var rule: String?
    public var receiver: String?
    /// A page: records after index `after` (exclusive), at most `limit` of them (nil: all).
    public var after: Int?
    public var limit: Int?
    public init() {}

    /// The indexes of the records that match.
    public func matching(_ log: AuditLog, _ c: Configuration) -> [Int] {
        var out: [Int] = []
        for (i, e) in log.entries.enumerated() {
            if let after, i <= after { continue }
            if let limit, out.count == limit + 1 { break }
            guard let rec = try? JSONParser.parse(e.record).objectValue else { continue }
            var at = 0.0
            if case .number(let us)? = rec["at_us"] { at = (Double(us) ?? 0) / 1e6 }
            if let from, at < from { continue }
            if let to, at > to { continue }
            let payload = e.payload ?? ""
            let p = (try? JSONParser.parse(payload).objectValue) ?? JSONObject()
            let key = p["alert_key"]?.stringValue ?? ""
            let rx = p["receiver"]?.stringValue
            if let selector, !payload.contains(selector) { continue }
            if let list, !key.contains("/\(list)/") && !payload.contains("\"list\":\"\(list)\"") { continue }
            if let rule, !key.hasPrefix("rule:\(rule):") && !payload.contains(rule) { continue }
            if let receiver, rx != receiver { continue }
            if let partner {
                let viaReceiver = rx.flatMap { c.alerts.receiver($0)?.partner } == partner
                let viaPrincipal = p["principal"]?.stringValue.flatMap { c.alerts.principal($0)?.partner } == partner
                if !(key.hasPrefix("wl:\(partner)/") || viaReceiver || viaPrincipal) { continue }
            }
            out.append(i)
        }
        return out
    }

    public var description: JSONObject {
        var o = JSONObject()
        for (k, v) in [
            ("from", from.map(Timestamp.format)), ("to", to.map(Timestamp.format)), ("selector", selector),
            ("partner", partner), ("list", list), ("rule", rule), ("receiver", receiver),
        ] {
            if let v { o.append(k, .string(v)) }
        }
        return o
    }
}

extension Operations {
    /// Audit records matching `filter` (auditors), each with its payload status; the consultation is itself audited.
    /// `problem` names the first record whose payload is neither intact nor erased by an audited erasure.
    /// With a `limit`, `next` is the index to pass as `after` for the following page (nil on the last page).
    public func auditRecords(_ c: Caller, _ filter: AuditFilter) throws(OperationError) -> (
        lines: [JSONObject], problem: String?, next: Int?
    ) {
        try reasoned(c)
        try require(policy.decide(c.principal, .queryAudit), c, .queryAudit)
        let log: AuditLog
        do { log = try store.auditLog() } catch { throw .failed(error.description) }
        let statuses = log.payloadStatuses()
        var hits = filter.matching(log, config)
        var next: Int?
        if let limit = filter.limit, hits.count > limit {
            hits.removeLast(hits.count - limit)
            next = hits.last
        }
        var lines: [JSONObject] = []
        var problem: String?
        for i in hits {
            lines.append(AuditBundle.line(index: i, entry: log.entries[i], status: statuses[i]))
            if problem == nil, case .bad(let why) = statuses[i] { problem = "record \(i): \(why)" }
        }
        try record(
            event(
                "audit_consultation", c,
                [
                    ("command", .string("audit query")), ("filters", .object(filter.description)),
                    ("records", .number(String(hits.count))),
                ]))
        return (lines, problem, next)
    }

    /// The latest signed checkpoint (any authenticated principal, SPEC §8), signed now if the log grew since.
    /// `fresh` false: the latest stored checkpoint when there is one (the API signs anew at most once a second, so
    /// that no caller can grow the checkpoints without bound).
    public func checkpoint(signer: NoteSigner?, fresh: Bool = true) throws(OperationError) -> String {
        do {
            if !fresh, let last = try store.checkpoints().last { return last.note }
            if let signer {
                return try store.checkpoint(
                    origin: config.audit["origin"] ?? "tripline.local/audit", signer: signer,
                    at: clock())
            }
            guard let last = try store.checkpoints().last else { throw OperationError.hidden("no checkpoint yet") }
            return last.note
        } catch let e as OperationError {
            throw e
        } catch { throw .failed("\(error)") }
    }

    /// RFC 6962 proofs (auditors): inclusion of record `index` in the tree of `size`, or consistency of two sizes.
    /// A consultation of the audit log like any other: it carries a reason and is audited.
    public func proof(_ c: Caller, inclusion index: Int?, size: Int?, old: Int?, new: Int?) throws(OperationError)
        -> [Hash]
    {
        try reasoned(c)
        try require(policy.decide(c.principal, .proveAudit), c, .proveAudit)
        let proof = try provenBy(inclusion: index, size: size, old: old, new: new)
        let asked: [(String, JSONValue)] = [
            ("index", index), ("size", size), ("old", old), ("new", new),
        ].compactMap { k, v in v.map { (k, .number(String($0))) } }
        try record(event("audit_consultation", c, [("command", .string("audit prove"))] + asked))
        return proof
    }

    /// The proof itself (`proof`'s work once allowed).
    func provenBy(inclusion index: Int?, size: Int?, old: Int?, new: Int?) throws(OperationError) -> [Hash] {
        do {
            let current = try store.auditSize()
            if let index {
                let n = size ?? current
                guard index >= 0, index < n, n <= current else {
                    throw OperationError.invalid("record \(index) is not in a tree of \(n)")
                }
                return try store.inclusionProof(index: index, size: n)
            }
            guard let old, let new, 0 < old, old <= new, new <= current else {
                throw OperationError.invalid("need 0 < old <= new <= \(current)")
            }
            return try store.consistencyProof(old: old, new: new)
        } catch let e as OperationError {
            throw e
        } catch { throw .failed("\(error)") }
    }
}

/// An export bundle (SPEC §7) as built in memory: the `records.ndjson` lines, the `proofs.ndjson` lines (an
/// inclusion proof per record, in the same order), the signed checkpoint the proofs lead to, and its verifier key.
/// The command line writes it as a directory; the API returns it as JSON.
public struct AuditExport: Sendable {
    public var records: [JSONObject]
    public var proofs: [JSONObject]
    /// The signed note (the checkpoint file's bytes).
    public var checkpoint: String
    /// The verifier key text (`name+hexkeyid+base64`).
    public var vkey: String
    /// The tree size of the checkpoint.
    public var size: Int

    /// One file's bytes: the lines of `lines`, each a JSON object and a newline.
    public static func ndjson(_ lines: [JSONObject]) -> [UInt8] {
        var out: [UInt8] = []
        for l in lines { out += Array((JSONWriter.string(.object(l)) + "\n").utf8) }
        return out
    }
}

extension Operations {
    /// An export bundle (auditors) of the records matching `filter`, each erased record with the erasure record that
    /// erased it, against a checkpoint signed now with `signer` that covers at least what was read. The export is
    /// audited as a consultation. `problem` names the first record whose payload is neither intact nor erased by an
    /// audited erasure: then nothing is exported (and that is audited too).
    public func exportAudit(_ c: Caller, _ filter: AuditFilter, signer: NoteSigner?) throws(OperationError) -> (
        bundle: AuditExport?, problem: String?
    ) {
        try reasoned(c)
        try require(policy.decide(c.principal, .exportAudit), c, .exportAudit)
        guard let signer else {
            throw .conflict("the configuration names no audit.key_file: no checkpoint can be signed for a bundle")
        }
        func consulted(_ command: String, _ n: Int) throws(OperationError) {
            try record(
                event(
                    "audit_consultation", c,
                    [
                        ("command", .string(command)), ("filters", .object(filter.description)),
                        ("records", .number(String(n))),
                    ]))
        }
        do {
            // The log first, then a checkpoint covering at least what was read.
            let log = try store.auditLog()
            let note = try store.checkpoint(
                origin: config.audit["origin"] ?? "tripline.local/audit", signer: signer, at: clock())
            let cp = try Checkpoint(text: try signer.verifier.open(note))
            let statuses = log.payloadStatuses()
            var hits = Set(filter.matching(log, config).filter { $0 < cp.size })
            // Each erased record travels with the erasure record that erased it: the bundle proves the erasure was
            // audited.
            for i in hits { if case .erased(let j) = statuses[i] { hits.insert(j) } }
            let indices = hits.sorted()
            if let i = indices.first(where: { if case .bad = statuses[$0] { true } else { false } }),
                case .bad(let why) = statuses[i]
            {
                try consulted("audit export (failed: record \(i))", 0)
                return (nil, "record \(i): \(why)")
            }
            var bundle = AuditExport(
                records: [], proofs: [], checkpoint: note, vkey: signer.verifier.text, size: cp.size)
            for i in indices {
                bundle.records.append(AuditBundle.line(index: i, entry: log.entries[i], status: statuses[i]))
                let path = try store.inclusionProof(index: i, size: cp.size).map {
                    JSONValue.string(Data($0).base64EncodedString())
                }
                bundle.proofs.append(
                    JSONObject([
                        ("index", .number(String(i))), ("size", .number(String(cp.size))), ("proof", .array(path)),
                    ]))
            }
            try consulted("audit export", indices.count)
            return (bundle, nil)
        } catch let e as OperationError {
            throw e
        } catch { throw .failed("\(error)") }
    }
}
