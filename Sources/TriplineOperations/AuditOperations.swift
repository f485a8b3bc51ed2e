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
    public init() {}

    /// The indexes of the records that match.
    public func matching(_ log: AuditLog, _ c: Configuration) -> [Int] {
        var out: [Int] = []
        for (i, e) in log.entries.enumerated() {
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
    public func auditRecords(_ c: Caller, _ filter: AuditFilter) throws(OperationError) -> (
        lines: [JSONObject], problem: String?
    ) {
        try reasoned(c)
        try require(policy.decide(c.principal, .queryAudit), c, .queryAudit)
        let log: AuditLog
        do { log = try store.auditLog() } catch { throw .failed(error.description) }
        let statuses = log.payloadStatuses()
        let hits = filter.matching(log, config)
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
        return (lines, problem)
    }

    /// The latest signed checkpoint (any authenticated principal, SPEC §8), signed now if the log grew since.
    public func checkpoint(signer: NoteSigner?) throws(OperationError) -> String {
        do {
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
    public func proof(_ c: Caller, inclusion index: Int?, size: Int?, old: Int?, new: Int?) throws(OperationError)
        -> [Hash]
    {
        try require(policy.decide(c.principal, .proveAudit), c, .proveAudit)
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
