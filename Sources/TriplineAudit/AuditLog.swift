import Crypto
import Foundation
import TriplineJSON

/// Canonical JSON: object keys sorted (by UTF-8 bytes) at every level, no insignificant whitespace, strings and
/// numbers as the writer prints them — so a record's hash is reproducible by anyone.
public enum Canonical {
    public static func sorted(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let o):
            var members = o.members
            var inOrder = true
            for i in members.indices.dropFirst()
            where !(members[i - 1].key.utf8.lexicographicallyPrecedes(members[i].key.utf8)) {
                inOrder = false
                break
            }
            if !inOrder { members.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } }
            var nested = false
            for m in members {
                switch m.value {
                case .object, .array: nested = true
                default: break
                }
            }
            if inOrder && !nested { return v }
            return .object(JSONObject(members.map { ($0.key, sorted($0.value)) }))
        case .array(let a): return .array(a.map(sorted))
        default: return v
        }
    }

    public static func text(_ v: JSONValue) -> String { JSONWriter.string(sorted(v)) }
}

/// One audit record as stored: the leaf text (canonical JSON: index, time, kind, and the salted hash of the payload)
/// and, beside it, the payload that may be erased later without touching the leaf.
public struct AuditEntry: Sendable, Equatable {
    public var record: String
    public var salt: [UInt8]?
    public var payload: String?

    public init(record: String, salt: [UInt8]?, payload: String?) {
        self.record = record
        self.salt = salt
        self.payload = payload
    }

    public static func payloadHash(salt: [UInt8], payload: String) -> String {
        var h = SHA256()
        h.update(data: salt)
        h.update(data: Array(payload.utf8))
        return hexString(Array(h.finalize()))
    }

    /// Builds the entry for event `index`: `fields` (personal data: alert key, receiver, principal, reason,
    /// detail) go into the erasable payload; the record commits to their salted hash.
    public static func make(index: Int, at: Double, kind: String, fields: JSONObject, salt: [UInt8]) -> AuditEntry {
        let payload = Canonical.text(.object(fields))
        var r = JSONObject()  // keys already in canonical (sorted) order
        r.append("at", .string(Self.time(at)))
        r.append("at_us", .number(String(Int64((at * 1_000_000).rounded()))))
        r.append("index", .number(String(index)))
        r.append("kind", .string(kind))
        r.append("payload_sha256", .string(payloadHash(salt: salt, payload: payload)))
        return AuditEntry(record: Canonical.text(.object(r)), salt: salt, payload: payload)
    }

    /// RFC 3339 UTC with milliseconds, without Foundation's formatter (hot on the append path).
    static func time(_ t: Double) -> String {
        let ms = Int64((t * 1000).rounded(.down))
        var secs = time_t(ms / 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):"
            + "\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(((ms % 1000) + 1000) % 1000), 3))Z"
    }

    public var leaf: Hash { Merkle.leafHash(Array(record.utf8)) }
}

/// The audit log as an auditor reads it: entries in index order, the stored tree nodes, stored checkpoints.
public struct AuditLog: Sendable {
    public var entries: [AuditEntry]
    /// Stored perfect-subtree hashes by (level, index).
    public var nodes: [NodeKey: Hash]
    public var checkpoints: [String]

    public struct NodeKey: Hashable, Sendable {
        public var level: Int
        public var index: Int
        public init(level: Int, index: Int) {
            self.level = level
            self.index = index
        }
    }

    public init(entries: [AuditEntry], nodes: [NodeKey: Hash], checkpoints: [String]) {
        self.entries = entries
        self.nodes = nodes
        self.checkpoints = checkpoints
    }
}

/// Recomputes everything and names the first problem (SPEC §7: it fails loudly, never just warns).
public struct AuditVerifier {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var index: Int?
        public var reason: String
        public var description: String { index.map { "record \($0): \(reason)" } ?? reason }
    }

    public struct Report: Sendable {
        public var size: Int
        public var root: Hash
        public var checkpointsVerified: Int
        public var erased: Int
    }

    public var vkey: NoteVerifier?
    public var origin: String?
    /// Leaf computations and record parses memoised by record text (repeated verification of one log).
    private var leafCache: [String: Hash] = [:]
    private var parsedCache: [String: Parsed] = [:]
    /// The last entries verified and what they gave: an unchanged (same storage) entry list is not recomputed.
    private var lastEntries: [AuditEntry] = []
    private var lastExpected: (nodes: [AuditLog.NodeKey: Hash], root: Hash, erased: Int)?

    struct Parsed {
        var index: Int
        var payloadHash: String
    }

    static func parse(_ record: String) -> Result<Parsed, Failure> {
        guard let v = try? JSONParser.parse(record), case .object(let r) = v else {
            return .failure(Failure(index: nil, reason: "record is not JSON"))
        }
        if Canonical.text(.object(r)) != record {
            return .failure(Failure(index: nil, reason: "record is not in canonical form"))
        }
        guard case .number(let n)? = r["index"], let i = Int(n) else {
            return .failure(Failure(index: nil, reason: "record has no index"))
        }
        guard let ph = r["payload_sha256"]?.stringValue else {
            return .failure(Failure(index: nil, reason: "record has no payload hash"))
        }
        return .success(Parsed(index: i, payloadHash: ph))
    }

    public init(vkey: NoteVerifier?, origin: String?) {
        self.vkey = vkey
        self.origin = origin
    }

    public mutating func verify(_ log: AuditLog, checkpoints extra: [String] = []) -> Result<Report, Failure> {
        let recomputed: (nodes: [AuditLog.NodeKey: Hash], root: Hash, erased: Int)
        if let last = lastExpected, Self.sameStorage(log.entries, lastEntries) {
            recomputed = last
        } else {
            switch recompute(log.entries) {
            case .failure(let f): return .failure(f)
            case .success(let r): recomputed = r
            }
            lastEntries = log.entries
            lastExpected = recomputed
        }
        return check(log, recomputed, extra)
    }

    static func sameStorage(_ a: [AuditEntry], _ b: [AuditEntry]) -> Bool {
        a.count == b.count
            && a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.baseAddress == y.baseAddress } }
    }

    private mutating func recompute(_ entries: [AuditEntry]) -> Result<
        (nodes: [AuditLog.NodeKey: Hash], root: Hash, erased: Int), Failure
    > {
        var range = CompactRange()
        var expected: [AuditLog.NodeKey: Hash] = [:]
        expected.reserveCapacity(entries.count * 2)
        var erased = 0
        for (i, e) in entries.enumerated() {
            let parsed: Parsed
            if let p = parsedCache[e.record] {
                parsed = p
            } else {
                switch Self.parse(e.record) {
                case .success(let p): parsed = p
                case .failure(let why): return .failure(Failure(index: i, reason: why.reason))
                }
                parsedCache[e.record] = parsed
            }
            guard parsed.index == i else {
                return .failure(
                    Failure(
                        index: i,
                        reason: "record says index \(parsed.index): records deleted, inserted, duplicated or reordered")
                )
            }
            if let salt = e.salt, let payload = e.payload {
                if AuditEntry.payloadHash(salt: salt, payload: payload) != parsed.payloadHash {
                    return .failure(Failure(index: i, reason: "payload does not match the record's payload_sha256"))
                }
            } else {
                erased += 1
            }
            let leaf: Hash
            if let c = leafCache[e.record] {
                leaf = c
            } else {
                leaf = e.leaf
                leafCache[e.record] = leaf
            }
            range.append(leaf) { l, idx, h in expected[AuditLog.NodeKey(level: l, index: idx)] = h }
        }
        return .success((expected, range.root, erased))
    }

    private func check(
        _ log: AuditLog, _ recomputed: (nodes: [AuditLog.NodeKey: Hash], root: Hash, erased: Int), _ extra: [String]
    ) -> Result<Report, Failure> {
        let expected = recomputed.nodes
        // Every stored node must be the recomputed one, and no node may be missing or extra.
        var firstBad: (Int, String)?
        func note(_ idx: Int, _ why: String) { if firstBad == nil || idx < firstBad!.0 { firstBad = (idx, why) } }
        for (k, h) in log.nodes {
            guard let want = expected[k] else {
                note(k.index << k.level, "stored tree node (level \(k.level), index \(k.index)) beyond the records")
                continue
            }
            if want != h { note(k.index << k.level, "stored tree hash (level \(k.level), index \(k.index)) differs") }
        }
        if log.nodes.count < expected.count {
            for k in expected.keys where log.nodes[k] == nil {
                note(k.index << k.level, "stored tree node (level \(k.level), index \(k.index)) missing")
            }
        }
        if let (i, why) = firstBad { return .failure(Failure(index: i, reason: why)) }
        // Checkpoints: signature, origin, and the root of the prefix they cover.
        var verified = 0
        for cp in log.checkpoints + extra {
            let text: String
            if let vkey {
                do { text = try vkey.open(cp) } catch {
                    return .failure(Failure(index: nil, reason: "checkpoint signature: \(error)"))
                }
            } else {
                text = String(cp[..<(cp.range(of: "\n\n")?.lowerBound ?? cp.endIndex)]) + "\n"
            }
            let c: Checkpoint
            do { c = try Checkpoint(text: text) } catch { return .failure(Failure(index: nil, reason: "\(error)")) }
            if let origin, c.origin != origin {
                return .failure(Failure(index: nil, reason: "checkpoint origin \(c.origin) is not \(origin)"))
            }
            if c.size > log.entries.count {
                return .failure(
                    Failure(
                        index: log.entries.count,
                        reason: "the log has \(log.entries.count) records but a checkpoint covers \(c.size): truncated")
                )
            }
            let root =
                c.size == 0
                ? Merkle.emptyRoot : Merkle.subtreeHash(0, c.size) { expected[AuditLog.NodeKey(level: $0, index: $1)]! }
            if root != c.root {
                // Name the first record whose change explains it: binary search on prefix roots is not possible
                // without the old leaves, so report the checkpoint's range.
                return .failure(
                    Failure(index: nil, reason: "records 0..<\(c.size) do not hash to the checkpoint's root"))
            }
            verified += 1
        }
        return .success(
            Report(
                size: log.entries.count, root: recomputed.root, checkpointsVerified: verified, erased: recomputed.erased
            ))
    }
}

private let hexDigits = Array("0123456789abcdef".utf8)

/// Lower-case hex without Foundation formatting (hot in verification).
public func hexString(_ bytes: [UInt8]) -> String {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
