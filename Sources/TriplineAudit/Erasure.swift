import Foundation
import TriplineJSON

/// What became of a record's payload: stored and matching its record, erased by an audited erasure, or neither (a
/// verification failure: the reason names what is wrong).
public enum PayloadStatus: Sendable, Equatable {
    case present
    case erased(by: Int)
    case bad(String)
}

/// Erasure is only what an audited erasure says (SPEC §7, §8): a payload counts as erased when an intact
/// `payload_erased` record, later in the log, names it; any other missing or partial payload (no row, no salt, no
/// payload, a salt of the wrong length) is a failure. Erasure records and an auditor's own consultations are never
/// erased.
public struct Erasures: Sendable {
    /// The kind of the record `audit erase` writes; its payload's `detail.index` names the erased record.
    public static let kind = "payload_erased"
    /// Every stored salt is 16 bytes.
    public static let saltLength = 16
    /// The kinds of record that log a principal's consultation.
    public static let consultationKinds: Set<String> = ["audit_consultation", "consultation"]

    /// Erased record → the first intact erasure record that names it.
    public private(set) var by: [Int: Int] = [:]

    public init() {}

    /// The erasure map of a log or of a bundle's records (indices ascending; records that do not parse are skipped
    /// here and fail on their own).
    public init<S: Sequence>(_ records: S) where S.Element == (Int, AuditEntry) {
        for (i, e) in records {
            if case .success(let p) = AuditVerifier.parse(e.record) { note(index: i, parsed: p, entry: e) }
        }
    }

    /// Notes record `index` when it is an intact erasure record: its payload stored, matching, naming an earlier
    /// record.
    mutating func note(index: Int, parsed: AuditVerifier.Parsed, entry e: AuditEntry) {
        guard parsed.kind == Self.kind, e.defect == nil, let salt = e.salt, salt.count == Self.saltLength,
            let payload = e.payload, AuditEntry.payloadHash(salt: salt, payload: payload) == parsed.payloadHash,
            case .object(let fields)? = try? JSONParser.parse(payload),
            case .number(let n)? = fields["detail"]?.objectValue?["index"], let target = Int(n), target >= 0,
            target < index, by[target] == nil
        else { return }
        by[target] = index
    }

    /// The status of record `index`'s payload (its record must parse: `status(index:entry:)` parses it).
    func status(index: Int, entry e: AuditEntry, parsed: AuditVerifier.Parsed) -> PayloadStatus {
        if let d = e.defect { return .bad(d) }
        let j = by[index]
        switch (e.salt, e.payload) {
        case (nil, nil):
            guard let j else { return .bad("payload missing, and no audited erasure (payload_erased record) names it") }
            if parsed.kind == Self.kind {
                return .bad("payload erased by record \(j), but erasure records are never erased")
            }
            return .erased(by: j)
        case (nil, .some): return .bad("payload stored without its salt")
        case (.some, nil): return .bad("salt stored without its payload")
        case (let salt?, let payload?):
            if salt.count != Self.saltLength {
                return .bad("salt is \(salt.count) bytes, not \(Self.saltLength)")
            }
            if AuditEntry.payloadHash(salt: salt, payload: payload) != parsed.payloadHash {
                return .bad("payload does not match the record's payload_sha256")
            }
            if let j { return .bad("record \(j) erased this payload, yet it is still stored") }
            return .present
        }
    }

    /// The status of record `index`'s payload; a record that does not parse is `.bad` with the reason.
    public func status(index: Int, entry: AuditEntry) -> PayloadStatus {
        switch AuditVerifier.parse(entry.record) {
        case .failure(let f): return .bad(f.reason)
        case .success(let p): return status(index: index, entry: entry, parsed: p)
        }
    }

    /// Why `caller` may not erase the payload of record `index` of `kind` whose payload names `principal`, or nil
    /// when it may (SPEC §8: never an erasure record, never one's own consultations).
    public static func refusal(index: Int, kind: String, principal: String?, caller: String) -> String? {
        if kind == Self.kind {
            return "record \(index) is an erasure record (\(Self.kind)): erasure records are never erased"
        }
        if consultationKinds.contains(kind), principal == caller {
            return "record \(index) logs \(caller)'s own consultation (\(kind)): an auditor never erases its own"
                + " consultations"
        }
        if principal == caller {
            // Its own actions and refused attempts too: no one erases the trace of what they did themselves.
            return "record \(index) logs \(caller)'s own action (\(kind)): an auditor never erases its own records"
        }
        return nil
    }
}
