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
        // Members seen: known names by bit (a second one is a duplicate), other names by range.
        var known: UInt16 = 0
        var others = InlineArray<16, Range<Int>>(repeating: 0..<0)
        var n = 0
        r.space()
        guard r.take(UInt8(ascii: "{")) else { return nil }
        r.space()
        if !r.take(UInt8(ascii: "}")) {
            while true {
                r.space()
                guard let key = r.string() else { return nil }
                let name = r.name(key)
                if name == .other {
                    guard n < maxMembers else { return nil }
                    for k in 0..<n where r.equal(others[k], key) { return nil }
                    others[n] = key
                    n += 1
                } else {
                    let bit: UInt16 = 1 << UInt16(name.rawValue)
                    if known & bit != 0 { return nil }
                    known |= bit
                }
                r.space()
                guard r.take(UInt8(ascii: ":")) else { return nil }
                r.space()
                switch name {
                case .id, .type, .value, .observedAt, .country, .platform, .chain, .kind:
                    guard let s = r.string() else { return nil }
                    switch name {
                    case .id: out.id = s
                    case .type: out.type = s
                    case .value: out.value = s
                    case .observedAt: out.observedAt = s
                    default: out.typeFields = true
                    }
                case .source:
                    guard r.peek == UInt8(ascii: "{"), r.object(depth: 1, hints: &out.regionHint) else { return nil }
                case .context:
                    var ignored = false
                    guard r.peek == UInt8(ascii: "{"), r.object(depth: 1, hints: &ignored) else { return nil }
                case .other:
                    guard r.value(depth: 1) else { return nil }
                }
                r.space()
                if r.take(UInt8(ascii: ",")) { continue }
                guard r.take(UInt8(ascii: "}")) else { return nil }
                break
            }
        }
        guard known & 0b111 == 0b111 else { return nil }
        r.space()
        return r.i == b.count ? out : nil
    }

    enum Name: Int { case id, type, value, observedAt, country, platform, chain, kind, source, context, other }

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

        /// A string of printable ASCII without escapes: its contents' range. Eight bytes at a time: the lowest byte
        /// the word test flags is a genuine '"', '\\', control or non-ASCII byte (borrows only run upwards).
        @inline(__always)
        mutating func string() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = i
            let raw = UnsafeRawBufferPointer(b)
            let ones: UInt64 = 0x0101_0101_0101_0101
            let high: UInt64 = 0x8080_8080_8080_8080
            while i + 8 <= b.count {
                let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let q = w ^ (ones &* 0x22)
                let s = w ^ (ones &* 0x5C)
                let flags = (((q &- ones) & ~q) | ((s &- ones) & ~s) | ((w &- ones &* 0x20) & ~w) | w) & high
                if flags == 0 {
                    i += 8
                    continue
                }
                i += flags.trailingZeroBitCount >> 3
                guard b[i] == UInt8(ascii: "\"") else { return nil }
                i += 1
                return start..<(i - 1)
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

        /// The first (up to) eight bytes of a range, big-endian: names compare as one word.
        @inline(__always)
        func word(_ k: Range<Int>) -> UInt64 {
            var w: UInt64 = 0
            for j in k.lowerBound..<min(k.upperBound, k.lowerBound + 8) { w = w << 8 | UInt64(b[j]) }
            return w
        }

        func name(_ k: Range<Int>) -> Name {
            switch (k.count, word(k)) {
            case (2, 0x6964): return .id
            case (4, 0x7479_7065): return .type
            case (4, 0x6B69_6E64): return .kind
            case (5, 0x76_616C_7565): return .value
            case (5, 0x63_6861_696E): return .chain
            case (6, 0x736F_7572_6365): return .source
            case (7, 0x63_6F6E_7465_7874): return .context
            case (7, 0x63_6F75_6E74_7279): return .country
            case (8, 0x706C_6174_666F_726D): return .platform
            case (11, 0x6F62_7365_7276_6564): return equal(k, "observed_at") ? .observedAt : .other
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
            var keys = InlineArray<16, Range<Int>>(repeating: 0..<0)
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
