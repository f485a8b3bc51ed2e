/// Where the members of a selector record lie in its line: byte ranges of the string contents (quotes excluded).
public struct RecordFields: Sendable, Equatable {
    public var id: Range<Int> = 0..<0
    public var type: Range<Int> = 0..<0
    public var value: Range<Int> = 0..<0
    public var observedAt: Range<Int>?
    /// `source` has a `sim_country` or `country` member (a region hint for national phone numbers).
    public var regionHint = false
    /// One of the type-specific members (`country`, `platform`, `chain`, `kind`) is present.
    public var typeFields = false
}

/// A tape-style reader for the common shape of a selector record (SPEC §3), allocation-free: one pass over the
/// line that validates it and notes where `id`, `type`, `value` and `observed_at` lie, without building values.
/// It reads a strict subset of JSON — printable ASCII strings without escapes, at most 16 members per object,
/// nesting to depth 8 — and answers nil for anything else (escapes, non-ASCII text, a duplicate member, a
/// member of the wrong kind, broken JSON): the full parser then judges the line, so a line this reader accepts
/// is one `JSONParser` accepts, read the same way.
public enum RecordScan {
    static let maxMembers = 16
    static let maxDepth = 8

    public static func scan(_ b: UnsafeBufferPointer<UInt8>) -> RecordFields? {
        var r = Reader(b: b)
        var out = RecordFields()
        var seen: UInt8 = 0  // id, type, value
        r.space()
        guard r.take(UInt8(ascii: "{")) else { return nil }
        let ok = withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: maxMembers) { keys -> Bool in
            var n = 0
            r.space()
            if r.take(UInt8(ascii: "}")) { return true }
            while true {
                r.space()
                guard let key = r.string(), n < maxMembers else { return false }
                for k in 0..<n where r.equal(keys[k], key) { return false }
                keys[n] = key
                n += 1
                r.space()
                guard r.take(UInt8(ascii: ":")) else { return false }
                r.space()
                switch r.name(key) {
                case .id, .type, .value, .observedAt, .typeField:
                    guard let s = r.string() else { return false }
                    switch r.name(key) {
                    case .id:
                        out.id = s
                        seen |= 1
                    case .type:
                        out.type = s
                        seen |= 2
                    case .value:
                        out.value = s
                        seen |= 4
                    case .observedAt: out.observedAt = s
                    default: out.typeFields = true
                    }
                case .source:
                    guard r.peek == UInt8(ascii: "{"), r.object(depth: 1, hints: &out.regionHint) else { return false }
                case .context:
                    var ignored = false
                    guard r.peek == UInt8(ascii: "{"), r.object(depth: 1, hints: &ignored) else { return false }
                case .other:
                    guard r.value(depth: 1) else { return false }
                }
                r.space()
                if r.take(UInt8(ascii: ",")) { continue }
                return r.take(UInt8(ascii: "}"))
            }
        }
        guard ok, seen == 7 else { return nil }
        r.space()
        return r.i == b.count ? out : nil
    }

    enum Name { case id, type, value, observedAt, typeField, source, context, other }

    struct Reader {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        var peek: UInt8 { i < b.count ? b[i] : 0 }

        @inline(__always)
        mutating func space() {
            while i < b.count {
                let c = b[i]
                if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
            }
        }

        @inline(__always)
        mutating func take(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        /// A string of printable ASCII without escapes: its contents' range. Eight bytes at a time.
        @inline(__always)
        mutating func string() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = i
            let raw = UnsafeRawBufferPointer(b)
            while i + 8 <= b.count {
                let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                // Bytes that are '"' (0x22), '\' (0x5C), below 0x20, or 0x80 and above, flagged in their top bit.
                let ones: UInt64 = 0x0101_0101_0101_0101
                let high: UInt64 = 0x8080_8080_8080_8080
                let q = w ^ (ones &* 0x22)
                let s = w ^ (ones &* 0x5C)
                let flags =
                    ((q &- ones) & ~q) | ((s &- ones) & ~s) | ((w &- ones &* 0x20) & ~w) | w
                if flags & high != 0 { break }
                i += 8
            }
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return start..<(i - 1)
                }
                if c < 0x20 || c >= 0x80 || c == UInt8(ascii: "\\") { return nil }
                i += 1
            }
            return nil
        }

        func equal(_ x: Range<Int>, _ y: Range<Int>) -> Bool {
            x.count == y.count && (0..<x.count).allSatisfy { b[x.lowerBound + $0] == b[y.lowerBound + $0] }
        }

        func equal(_ x: Range<Int>, _ s: StaticString) -> Bool {
            guard x.count == s.utf8CodeUnitCount else { return false }
            let p = s.utf8Start
            for k in 0..<x.count where b[x.lowerBound + k] != p[k] { return false }
            return true
        }

        func name(_ k: Range<Int>) -> Name {
            switch k.count {
            case 2: return equal(k, "id") ? .id : .other
            case 4: return equal(k, "type") ? .type : equal(k, "kind") ? .typeField : .other
            case 5: return equal(k, "value") ? .value : equal(k, "chain") ? .typeField : .other
            case 6: return equal(k, "source") ? .source : .other
            case 7: return equal(k, "context") ? .context : equal(k, "country") ? .typeField : .other
            case 8: return equal(k, "platform") ? .typeField : .other
            case 11: return equal(k, "observed_at") ? .observedAt : .other
            default: return .other
            }
        }

        /// Any value of the subset, validated and skipped.
        mutating func value(depth: Int) -> Bool {
            switch peek {
            case UInt8(ascii: "\""): return string() != nil
            case UInt8(ascii: "{"):
                var ignored = false
                return object(depth: depth, hints: &ignored)
            case UInt8(ascii: "["): return array(depth: depth)
            case UInt8(ascii: "t"): return word("true")
            case UInt8(ascii: "f"): return word("false")
            case UInt8(ascii: "n"): return word("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
            default: return false
            }
        }

        mutating func word(_ w: StaticString) -> Bool {
            let n = w.utf8CodeUnitCount
            guard i + n <= b.count else { return false }
            for k in 0..<n where b[i + k] != w.utf8Start[k] { return false }
            i += n
            return true
        }

        /// RFC 8259's number grammar.
        mutating func number() -> Bool {
            _ = take(UInt8(ascii: "-"))
            func digit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
            if take(UInt8(ascii: "0")) {
            } else {
                guard i < b.count, digit(b[i]) else { return false }
                while i < b.count && digit(b[i]) { i += 1 }
            }
            if take(UInt8(ascii: ".")) {
                guard i < b.count, digit(b[i]) else { return false }
                while i < b.count && digit(b[i]) { i += 1 }
            }
            if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
                i += 1
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard i < b.count, digit(b[i]) else { return false }
                while i < b.count && digit(b[i]) { i += 1 }
            }
            return true
        }

        mutating func array(depth: Int) -> Bool {
            guard depth < RecordScan.maxDepth, take(UInt8(ascii: "[")) else { return false }
            space()
            if take(UInt8(ascii: "]")) { return true }
            while true {
                space()
                guard value(depth: depth + 1) else { return false }
                space()
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "]"))
            }
        }

        /// An object; `hints` is set when it has a `sim_country` or `country` member.
        mutating func object(depth: Int, hints: inout Bool) -> Bool {
            guard depth < RecordScan.maxDepth, take(UInt8(ascii: "{")) else { return false }
            return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: RecordScan.maxMembers) { keys in
                var n = 0
                space()
                if take(UInt8(ascii: "}")) { return true }
                while true {
                    space()
                    guard let key = string(), n < RecordScan.maxMembers else { return false }
                    for k in 0..<n where equal(keys[k], key) { return false }
                    keys[n] = key
                    n += 1
                    if equal(key, "country") || equal(key, "sim_country") { hints = true }
                    space()
                    guard take(UInt8(ascii: ":")) else { return false }
                    space()
                    guard value(depth: depth + 1) else { return false }
                    space()
                    if take(UInt8(ascii: ",")) { continue }
                    return take(UInt8(ascii: "}"))
                }
            }
        }
    }
}
