import Foundation
import TriplineAudit
import TriplineJSON

/// What the durable stores (SQLite, PostgreSQL) write and read the same way: audit salts, acks as JSON, audit
/// records read back as events, an event's canonical audit fields.
public enum StoreCoding {
    /// Per-partner acks as the JSON object a row keeps (partners in order).
    public static func acksJSON(_ acks: [String: Ack]) -> JSONObject {
        var o = JSONObject()
        for (partner, a) in acks.sorted(by: { $0.key < $1.key }) {
            var v = JSONObject([("by", .string(a.by)), ("at", .number(String(a.at)))])
            if let u = a.until { v.append("until", .number(String(u))) }
            o.append(partner, .object(v))
        }
        return o
    }

    public static func acks(_ o: JSONObject) -> [String: Ack] {
        var out: [String: Ack] = [:]
        for (partner, v) in o {
            guard let a = v.objectValue, let by = a["by"]?.stringValue else { continue }
            out[partner] = Ack(by: by, at: a["at"]?.doubleValue ?? 0, until: a["until"]?.doubleValue)
        }
        return out
    }

    public static func json(_ o: JSONObject) -> String { JSONWriter.string(.object(o)) }
    public static func strings(_ a: [String]) -> String { JSONWriter.string(.array(a.map { .string($0) })) }
    public static func numbers(_ a: [Double]) -> String { JSONWriter.string(.array(a.map { .number(String($0)) })) }
    public static func object(_ text: String?) -> JSONObject {
        (try? JSONParser.parse(text ?? "{}"))?.objectValue ?? JSONObject()
    }
    public static func stringList(_ text: String?) -> [String] {
        (try? JSONParser.parse(text ?? "[]"))?.arrayValue?.compactMap(\.stringValue) ?? []
    }
    public static func numberList(_ text: String?) -> [Double] {
        ((try? JSONParser.parse(text ?? "[]"))?.arrayValue ?? []).compactMap(\.doubleValue)
    }

    /// An event's audit entry at `index` (its fields in canonical, sorted key order).
    public static func entry(_ e: EventDraft, index: Int, salt: [UInt8]) -> AuditEntry {
        var fields = JSONObject()
        if let k = e.alertKey { fields.append("alert_key", .string(k)) }
        fields.append("detail", .object(e.detail))
        if let p = e.principal { fields.append("principal", .string(p)) }
        if let r = e.reason { fields.append("reason", .string(r)) }
        if let r = e.receiver { fields.append("receiver", .string(r)) }
        return AuditEntry.make(index: index, at: e.at, kind: e.kind, fields: fields, salt: salt)
    }

    /// Audit record `index` read back as an event; nil payload when it is missing (erased, or lost: see
    /// `markMissing`). A payload without its salt is as good as missing.
    public static func event(index: Int64, record: String?, payload: String?, salt: [UInt8]?) -> (
        EventRecord, missing: Bool
    ) {
        let rec = object(record)
        let body = salt?.count == Erasures.saltLength ? payload.flatMap { try? JSONParser.parse($0).objectValue } : nil
        var at = 0.0
        if case .number(let us)? = rec["at_us"] { at = (Double(us) ?? 0) / 1_000_000 }
        let e = EventDraft(
            at: at, kind: rec["kind"]?.stringValue ?? "", alertKey: body?["alert_key"]?.stringValue,
            receiver: body?["receiver"]?.stringValue, principal: body?["principal"]?.stringValue,
            reason: body?["reason"]?.stringValue, detail: body?["detail"]?.objectValue ?? JSONObject())
        return (EventRecord(seq: index + 1, event: e), body == nil)
    }

    /// Marks the events at `missing` (position in `out`, record index) erased when an audited erasure names them,
    /// missing otherwise; `erasureRecords` are the log's erasure records with their payloads.
    public static func markMissing(
        _ out: inout [EventRecord], _ missing: [(position: Int, index: Int)], erasureRecords: [(Int, AuditEntry)]
    ) {
        if missing.isEmpty { return }
        let erasures = Erasures(erasureRecords)
        for (position, index) in missing {
            out[position].event.detail =
                erasures.by[index] != nil
                ? JSONObject([("erased", .bool(true))]) : JSONObject([("payload_missing", .bool(true))])
        }
    }
}

/// Salts for audit payloads from a buffer refilled from /dev/urandom 4 KiB at a time (the system generator asks
/// the kernel for 8 bytes at a time). Not thread-safe: a store uses it under its own lock.
public final class SaltSource: @unchecked Sendable {
    private var buffer: [UInt8] = []
    public init() {}

    /// Fills `buf` from /dev/urandom: how many bytes were read.
    public static func urandom(_ buf: inout [UInt8]) -> Int {
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return 0 }
        defer { close(fd) }
        var got = 0
        while got < buf.count {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n <= 0 { break }
            got += n
        }
        return got
    }

    public func next() -> [UInt8] {
        if buffer.count < Erasures.saltLength {
            var buf = [UInt8](repeating: 0, count: 4096)
            // The system generator word by word if the device cannot be read.
            if Self.urandom(&buf) != buf.count {
                var g = SystemRandomNumberGenerator()
                buf.withUnsafeMutableBytes { raw in
                    let words = raw.bindMemory(to: UInt64.self)
                    for i in words.indices { words[i] = g.next() }
                }
            }
            buffer = buf
        }
        let salt = Array(buffer.suffix(Erasures.saltLength))
        buffer.removeLast(Erasures.saltLength)
        return salt
    }
}
