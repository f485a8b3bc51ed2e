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
    /// What the reader found wrong with the stored bytes themselves (text that is not UTF-8, a record that is not
    /// text): the entry fails verification with this reason.
    public var defect: String?

    public init(record: String, salt: [UInt8]?, payload: String?, defect: String? = nil) {
        self.record = record
        self.salt = salt
        self.payload = payload
        self.defect = defect
    }

    public static func payloadHash(salt: [UInt8], payload: String) -> String {
        var h = SHA256()
        h.update(data: salt)
        var text = payload
        text.withUTF8 { h.update(bufferPointer: UnsafeRawBufferPointer($0)) }  // the bytes in place, not copied
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

    /// RFC 3339 UTC with milliseconds, without Foundation's formatter (hot on the append path): the digits
    /// written into one 24-byte buffer.
    static func time(_ t: Double) -> String {
        let ms = Int64((t * 1000).rounded(.down))
        var secs = time_t(ms / 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        let year = Int(tm.tm_year) + 1900
        guard (0...9999).contains(year) else { return slowTime(tm, ms) }
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ v: Int, _ width: Int, at i: Int) {
                var v = v
                for k in stride(from: i + width - 1, through: i, by: -1) {
                    out[k] = UInt8(ascii: "0") &+ UInt8(v % 10)
                    v /= 10
                }
            }
            put(year, 4, at: 0)
            out[4] = UInt8(ascii: "-")
            put(Int(tm.tm_mon) + 1, 2, at: 5)
            out[7] = UInt8(ascii: "-")
            put(Int(tm.tm_mday), 2, at: 8)
            out[10] = UInt8(ascii: "T")
            put(Int(tm.tm_hour), 2, at: 11)
            out[13] = UInt8(ascii: ":")
            put(Int(tm.tm_min), 2, at: 14)
            out[16] = UInt8(ascii: ":")
            put(Int(tm.tm_sec), 2, at: 17)
            out[19] = UInt8(ascii: ".")
            put(Int(((ms % 1000) + 1000) % 1000), 3, at: 20)
            out[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// `time` for a year outside 0...9999 (more digits, or a sign): padded text as before.
    static func slowTime(_ tm: tm, _ ms: Int64) -> String {
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
    /// Indices of payloads stored for no record (a record deleted, its payload left behind).
    public var strayPayloads: [Int]

    public struct NodeKey: Hashable, Sendable {
        public var level: Int
        public var index: Int
        public init(level: Int, index: Int) {
            self.level = level
            self.index = index
        }
    }

    public init(entries: [AuditEntry], nodes: [NodeKey: Hash], checkpoints: [String], strayPayloads: [Int] = []) {
        self.entries = entries
        self.nodes = nodes
        self.checkpoints = checkpoints
        self.strayPayloads = strayPayloads
    }

    /// Every record's payload status (SPEC §7: erased only when an audited erasure names it).
    public func payloadStatuses() -> [PayloadStatus] {
        let erasures = Erasures(entries.enumerated().map { ($0.offset, $0.element) })
        return entries.enumerated().map { erasures.status(index: $0.offset, entry: $0.element) }
    }
}

/// Recomputes everything and names the first problem (SPEC §7: it fails loudly, never just warns): the first record
/// that does not parse, sits at the wrong index, has a payload that neither matches nor was erased by an audited
/// erasure, or does not hash to its stored leaf; then the stored interior nodes; then the checkpoints.
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
    private var lastRecomputed: Recomputed?

    struct Parsed {
        var index: Int
        var kind: String
        var payloadHash: String
    }

    /// What the records alone give: the tree nodes over the records before the first bad one (all of them when
    /// none is bad), and that first bad record.
    struct Recomputed {
        var nodes: [AuditLog.NodeKey: Hash]
        var root: Hash
        var erased: Int
        var failure: Failure?
    }

    static func parse(_ record: String) -> Result<Parsed, Failure> {
        let v: JSONValue
        do { v = try JSONParser.parse(record) } catch {
            return .failure(Failure(index: nil, reason: "record is not JSON (\(error))"))
        }
        guard case .object(let r) = v else {
            return .failure(Failure(index: nil, reason: "record is not a JSON object"))
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
        return .success(Parsed(index: i, kind: r["kind"]?.stringValue ?? "", payloadHash: ph))
    }

    public init(vkey: NoteVerifier?, origin: String?) {
        self.vkey = vkey
        self.origin = origin
    }

    public mutating func verify(_ log: AuditLog, checkpoints extra: [String] = []) -> Result<Report, Failure> {
        let recomputed: Recomputed
        if let last = lastRecomputed, Self.sameStorage(log.entries, lastEntries) {
            recomputed = last
        } else {
            recomputed = recompute(log.entries)
            lastEntries = log.entries
            lastRecomputed = recomputed
        }
        return check(log, recomputed, extra)
    }

    static func sameStorage(_ a: [AuditEntry], _ b: [AuditEntry]) -> Bool {
        a.count == b.count
            && a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.baseAddress == y.baseAddress } }
    }

    private mutating func parsed(_ record: String) -> Result<Parsed, Failure> {
        if let p = parsedCache[record] { return .success(p) }
        let r = Self.parse(record)
        if case .success(let p) = r { parsedCache[record] = p }
        return r
    }

    private mutating func recompute(_ entries: [AuditEntry]) -> Recomputed {
        // The erasures first: an erasure record comes after the record it erases.
        var erasures = Erasures()
        for (i, e) in entries.enumerated() where e.defect == nil {
            if case .success(let p) = parsed(e.record) { erasures.note(index: i, parsed: p, entry: e) }
        }
        var range = CompactRange()
        var expected: [AuditLog.NodeKey: Hash] = [:]
        expected.reserveCapacity(entries.count * 2)
        var erased = 0
        func failed(_ i: Int, _ why: String) -> Recomputed {
            Recomputed(nodes: expected, root: range.root, erased: erased, failure: Failure(index: i, reason: why))
        }
        for (i, e) in entries.enumerated() {
            if let d = e.defect { return failed(i, d) }
            let p: Parsed
            switch parsed(e.record) {
            case .success(let v): p = v
            case .failure(let why): return failed(i, why.reason)
            }
            guard p.index == i else {
                return failed(i, "record says index \(p.index): records deleted, inserted, duplicated or reordered")
            }
            switch erasures.status(index: i, entry: e, parsed: p) {
            case .present: break
            case .erased: erased += 1
            case .bad(let why): return failed(i, why)
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
        return Recomputed(nodes: expected, root: range.root, erased: erased, failure: nil)
    }

    private func check(_ log: AuditLog, _ recomputed: Recomputed, _ extra: [String]) -> Result<Report, Failure> {
        let expected = recomputed.nodes
        let n = log.entries.count
        // The records themselves first: each recomputed leaf against its stored level-0 node, the lowest index that
        // differs named (a changed record is that record, not the subtree above it).
        for i in 0..<(recomputed.failure?.index ?? n) {
            let k = AuditLog.NodeKey(level: 0, index: i)
            guard let have = log.nodes[k] else {
                return .failure(Failure(index: i, reason: "its leaf hash (tree node level 0, index \(i)) is missing"))
            }
            if have != expected[k] {
                return .failure(
                    Failure(
                        index: i,
                        reason: "record does not hash to its stored leaf (tree node level 0, index \(i)): changed"))
            }
        }
        if let f = recomputed.failure { return .failure(f) }
        // Then every stored interior node must be the recomputed one, and no node may be missing or extra. A changed
        // node changes every node above it: the lowest differing node of each chain is named, the one over the
        // lowest records first.
        var bad: [AuditLog.NodeKey: String] = [:]
        for (k, h) in log.nodes {
            if k.level == 0 && k.index >= 0 && k.index < n { continue }
            guard let want = expected[k] else {
                bad[k] = "is beyond the records"
                continue
            }
            if want != h { bad[k] = "differs from the records' hashes" }
        }
        if log.nodes.count < expected.count {
            for k in expected.keys where log.nodes[k] == nil { bad[k] = "is missing" }
        }
        var first: (start: Int, level: Int, why: String)?
        for (k, why) in bad {
            // Stored keys are anyone's numbers: positions are computed only for nodes that can be in a tree.
            let sane = k.level >= 0 && k.level < 62 && k.index >= 0 && k.index < 1 << (62 - k.level)
            if sane && k.level > 0 {
                let below = [2 * k.index, 2 * k.index + 1].map { AuditLog.NodeKey(level: k.level - 1, index: $0) }
                if below.contains(where: { bad[$0] != nil }) { continue }
            }
            let start = sane ? k.index << k.level : Int.max
            if let f = first, (f.start, f.level) <= (start, k.level) { continue }
            let end = sane ? min((k.index + 1) << k.level, n) : 0
            let span = start < end ? ", over records \(start)..<\(end)," : ""
            first = (start, k.level, "stored tree node (level \(k.level), index \(k.index))\(span) \(why)")
        }
        if let f = first { return .failure(Failure(index: f.start == Int.max ? nil : f.start, reason: f.why)) }
        if let stray = log.strayPayloads.min() {
            return .failure(Failure(index: stray, reason: "a payload is stored for a record that is not in the log"))
        }
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
            if c.size > n {
                return .failure(
                    Failure(index: n, reason: "the log has \(n) records but a checkpoint covers \(c.size): truncated"))
            }
            let root =
                c.size == 0
                ? Merkle.emptyRoot : Merkle.subtreeHash(0, c.size) { expected[AuditLog.NodeKey(level: $0, index: $1)]! }
            if root != c.root {
                // Every record matches its stored leaf and every node its records: the records were rewritten
                // consistently, and without the old leaves no single record can be named.
                return .failure(
                    Failure(index: nil, reason: "records 0..<\(c.size) do not hash to the checkpoint's root"))
            }
            verified += 1
        }
        return .success(
            Report(size: n, root: recomputed.root, checkpointsVerified: verified, erased: recomputed.erased))
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
