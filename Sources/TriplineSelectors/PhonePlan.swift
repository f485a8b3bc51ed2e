import Foundation
import TriplineRegex

/// Number types of libphonenumber's metadata, in the bit order of the generated resource.
enum PhoneDescType: Int, CaseIterable {
    case general = 0, premiumRate, tollFree, sharedCost, voip, personalNumber, pager, uan, voicemail
    case fixedLine, mobile
}

/// A number's line type as Tripline reports it (`line_type`).
public enum LineType: String, Sendable, CaseIterable {
    case fixedLine = "fixed_line"
    case mobile
    case fixedLineOrMobile = "fixed_line_or_mobile"
    case tollFree = "toll_free"
    case premiumRate = "premium_rate"
    case sharedCost = "shared_cost"
    case voip
    case personalNumber = "personal_number"
    case pager
    case uan
    case voicemail
    case unknown

    /// Fixed lines carry a geographic area.
    public var isFixed: Bool { self == .fixedLine || self == .fixedLineOrMobile }
}

/// A minimised deterministic automaton over the digits 0-9, generated from a libphonenumber pattern set.
/// Immutable after loading; raw buffers keep reference counting off the per-digit walk.
final class DigitDFA: @unchecked Sendable {
    /// `next[state * 10 + digit]`, -1 for the dead state.
    let next: UnsafeMutablePointer<Int32>
    /// Bit mask of the patterns that accept in this state.
    let accept: UnsafeMutablePointer<UInt16>
    let stateCount: Int

    deinit {
        next.deallocate()
        accept.deallocate()
    }

    init(encoded: Substring) {
        // "t0,t1,...,t9:mask;" per state, read byte by byte.
        var next: [Int32] = []
        var accept: [UInt16] = []
        next.reserveCapacity(encoded.utf8.count / 3)
        var value: Int32 = 0
        var hasValue = false
        var inMask = false
        var mask: UInt16 = 0
        func hex(_ c: UInt8) -> UInt16 { c <= 57 ? UInt16(c - 48) : UInt16((c | 0x20) - 87) }
        for c in encoded.utf8 {
            switch c {
            case UInt8(ascii: ","):
                next.append(hasValue ? value : -1)
                value = 0
                hasValue = false
            case UInt8(ascii: ":"):
                next.append(hasValue ? value : -1)
                value = 0
                hasValue = false
                inMask = true
                mask = 0
            case UInt8(ascii: ";"):
                accept.append(mask)
                inMask = false
            default:
                if inMask {
                    mask = mask << 4 | hex(c)
                } else {
                    value = value * 10 + Int32(c - 48)
                    hasValue = true
                }
            }
        }
        if inMask { accept.append(mask) }
        precondition(next.count == accept.count * 10, "corrupt phone DFA")
        stateCount = accept.count
        self.next = .allocate(capacity: next.count)
        self.next.initialize(from: next, count: next.count)
        self.accept = .allocate(capacity: accept.count)
        self.accept.initialize(from: accept, count: accept.count)
    }

    /// The mask of patterns that fully match `digits` (ASCII '0'...'9').
    @inline(__always)
    func fullMatch<C: Collection>(_ digits: C) -> UInt16 where C.Element == UInt8 {
        var s: Int32 = 0
        for d in digits {
            s = next[Int(s) &* 10 &+ Int(d &- 48)]
            if s < 0 { return 0 }
        }
        return accept[Int(s)]
    }

    /// True when some prefix of `digits` (possibly empty) is accepted: `re.match` semantics.
    func matchesPrefix<C: Collection>(_ digits: C) -> Bool where C.Element == UInt8 {
        var s: Int32 = 0
        if accept[0] != 0 { return true }
        for d in digits {
            s = next[Int(s) &* 10 &+ Int(d &- 48)]
            if s < 0 { return false }
            if accept[Int(s)] != 0 { return true }
        }
        return false
    }
}

/// One region's numbering plan (or one non-geographic calling code's).
final class RegionPlan: Sendable {
    let id: String
    let countryCode: Int
    let countryCodeDigits: [UInt8]
    let internationalPrefix: Regex?
    let nationalPrefixForParsing: Regex?
    /// The patterns above when they are plain digit strings ("00", "0"): compared without PCRE2.
    let internationalPrefixLiteral: [UInt8]?
    let nationalPrefixLiteral: [UInt8]?
    /// When the national-prefix pattern cannot match a number, decided without PCRE2: nil when not known, else
    /// the first digits (bit d) and the lengths (bit n) at which it might (see `trunkScreen`).
    let nationalPrefixCan: (firstDigits: UInt16, lengths: UInt64)?
    let transformRule: String?
    let nationalPrefix: [UInt8]
    let sameMobileAndFixed: Bool
    let localOnlyLengths: UInt32
    /// Per `PhoneDescType`: -1 no numbers of the type, 0 no length rule, else a bit mask of lengths.
    let lengths: [Int64]
    let leadingDigits: DigitDFA?
    let dfa: DigitDFA

    let isNonGeographic: Bool
    /// `BE`, or `+800` for a non-geographic calling code: how reasons name the plan.
    let displayName: String
    /// The invalid reasons for this plan, composed once.
    let reasons: (tooShort: String, tooLong: String, localOnly: String, notInPlan: String)

    init(line fields: [Substring]) throws {
        // R id cc idd preferredIdd nationalPrefix npfp transform same localOnly lengths leading dfa
        let key = fields[1]
        id = key.hasPrefix("001/") ? "001" : String(key)
        isNonGeographic = id == "001"
        let name = isNonGeographic ? "+" + fields[2] : id
        displayName = name
        reasons = (
            "too short for \(name)", "too long for \(name)", "local number without its area code in \(name)",
            "not in the numbering plan of \(name)"
        )
        countryCode = Int(fields[2])!
        countryCodeDigits = Array(fields[2].utf8)
        func opt(_ s: Substring) -> String? { s == "-" ? nil : String(s) }
        internationalPrefix = try opt(fields[3]).map { try Regex($0) }
        nationalPrefixForParsing = try opt(fields[6]).map { try Regex($0) }
        transformRule = opt(fields[7])
        func literal(_ s: Substring) -> [UInt8]? {
            s != "-" && s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) ? Array(s.utf8) : nil
        }
        internationalPrefixLiteral = literal(fields[3])
        nationalPrefixLiteral = literal(fields[6])
        nationalPrefixCan = fields[6] == "-" ? nil : Self.trunkScreen(fields[6])
        nationalPrefix = fields[5] == "-" ? [] : Array(fields[5].utf8)
        sameMobileAndFixed = fields[8] == "1"
        localOnlyLengths = UInt32(fields[9], radix: 16)!
        lengths = fields[10].split(separator: ",").map { Int64($0)! }
        leadingDigits = fields[11] == "-" ? nil : DigitDFA(encoded: fields[11])
        dfa = DigitDFA(encoded: fields[12])
    }

    /// Reads the shapes most national-prefix patterns have — alternatives of digit strings (`0|180020`) and of
    /// numbers of one length (`([2-9]\d{6})$`, which matches only a 7-digit number) — into the first digits and
    /// the lengths at which the pattern might match; nil for any other shape (PCRE2 then decides).
    static func trunkScreen(_ pattern: Substring) -> (firstDigits: UInt16, lengths: UInt64)? {
        var first: UInt16 = 0
        var lengths: UInt64 = 0
        for alt in pattern.split(separator: "|", omittingEmptySubsequences: false) {
            if !alt.isEmpty && alt.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                first |= 1 << UInt16(alt.utf8.first! - 48)
                continue
            }
            // "([...]\d{N})$": a class of one digit and N more, to the end.
            guard alt.hasPrefix("(["), alt.hasSuffix("})$"), let close = alt.firstIndex(of: "]"),
                alt[alt.index(after: close)...].hasPrefix("\\d{"),
                let n = Int(alt[alt.index(close, offsetBy: 4)..<alt.index(alt.endIndex, offsetBy: -3)]), n < 62
            else { return nil }
            lengths |= 1 << UInt64(n + 1)
        }
        return (first, lengths)
    }

    /// libphonenumber's number-type decision, from one DFA walk.
    func numberType<C: Collection>(_ nsn: C) -> LineType where C.Element == UInt8 {
        let raw = dfa.fullMatch(nsn)
        if raw & 1 == 0 { return .unknown }
        let n = nsn.count
        // The types whose pattern matched and whose length rule allows n digits.
        var mask: UInt16 = 0
        for t in 0..<11 where raw & (1 << UInt16(t)) != 0 {
            let m = lengths[t]
            if m == 0 || (m > 0 && n < 63 && (m >> Int64(n)) & 1 == 1) { mask |= 1 << UInt16(t) }
        }
        @inline(__always) func has(_ t: PhoneDescType) -> Bool { mask & (1 << UInt16(t.rawValue)) != 0 }
        guard has(.general) else { return .unknown }
        if has(.premiumRate) { return .premiumRate }
        if has(.tollFree) { return .tollFree }
        if has(.sharedCost) { return .sharedCost }
        if has(.voip) { return .voip }
        if has(.personalNumber) { return .personalNumber }
        if has(.pager) { return .pager }
        if has(.uan) { return .uan }
        if has(.voicemail) { return .voicemail }
        if has(.fixedLine) {
            if sameMobileAndFixed || has(.mobile) { return .fixedLineOrMobile }
            return .fixedLine
        }
        if !sameMobileAndFixed && has(.mobile) { return .mobile }
        return .unknown
    }

    /// Full match of the general pattern, without the length rule (libphonenumber's `_match_national_number`).
    @inline(__always)
    func matchesGeneralPattern<C: Collection>(_ nsn: C) -> Bool where C.Element == UInt8 {
        dfa.fullMatch(nsn) & 1 != 0
    }

    enum LengthCheck { case possible, localOnly, tooShort, tooLong, invalidLength }

    func testLength(_ count: Int) -> LengthCheck {
        let mask = lengths[PhoneDescType.general.rawValue]
        if mask <= 0 { return mask < 0 ? .invalidLength : .possible }
        if count < 32 && (localOnlyLengths >> UInt32(count)) & 1 == 1 { return .localOnly }
        let minimum = mask.trailingZeroBitCount
        let maximum = 63 - mask.leadingZeroBitCount
        if count == minimum { return .possible }
        if count < minimum { return .tooShort }
        if count > maximum { return .tooLong }
        return (mask >> Int64(count)) & 1 == 1 ? .possible : .invalidLength
    }
}

/// Country calling codes, regions and their plans, loaded once from the shipped resource.
final class PhonePlanSet: Sendable {
    let version: String
    let regions: [String: RegionPlan]
    /// Calling code (1...999) -> plans in libphonenumber's order (main region first).
    private let codeTable: [[RegionPlan]?]
    /// Per calling code: its main plan, and whether other regions share the code (no array traffic).
    private let mainTable: [RegionPlan?]
    private let sharedTable: [Bool]
    private let regionTable: [RegionPlan?]

    static let shared: PhonePlanSet = {
        guard let url = Bundle.module.url(forResource: "phonemeta", withExtension: "tsv"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { fatalError("phone numbering-plan resource phonemeta.tsv is missing from the bundle") }
        do { return try PhonePlanSet(text: text) } catch {
            fatalError("phone numbering-plan resource is corrupt: \(error)")
        }
    }()

    init(text: String) throws {
        var version = ""
        var regions: [String: RegionPlan] = [:]
        var nonGeo: [Int: RegionPlan] = [:]
        var codes: [(Int, [String])] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            switch f[0] {
            case "V": version = String(f[1])
            case "C": codes.append((Int(f[1])!, f[2].split(separator: ",").map(String.init)))
            case "R":
                let plan = try RegionPlan(line: f)
                if plan.isNonGeographic { nonGeo[plan.countryCode] = plan } else { regions[plan.id] = plan }
            default: continue
            }
        }
        var byCode: [Int: [RegionPlan]] = [:]
        for (cc, ids) in codes {
            byCode[cc] = ids.compactMap { $0 == "001" ? nonGeo[cc] : regions[$0] }
        }
        self.version = version
        self.regions = regions
        var table = [[RegionPlan]?](repeating: nil, count: 1000)
        for (cc, p) in byCode where cc < 1000 { table[cc] = p }
        codeTable = table
        mainTable = table.map { $0?.first }
        sharedTable = table.map { ($0?.count ?? 0) > 1 }
        var rt = [RegionPlan?](repeating: nil, count: 26 * 26)
        for (id, p) in regions {
            let u = Array(id.utf8)
            if u.count == 2 { rt[(Int(u[0]) - 65) * 26 + Int(u[1]) - 65] = p }
        }
        regionTable = rt
    }

    /// A region by its ISO code without hashing a String: two ASCII letters index a 26x26 table.
    @inline(__always)
    func region(_ code: String) -> RegionPlan? {
        var it = code.utf8.makeIterator()
        guard let a = it.next(), let b = it.next(), it.next() == nil else { return nil }
        let x = Int(a | 0x20) - 97
        let y = Int(b | 0x20) - 97
        guard x >= 0, x < 26, y >= 0, y < 26 else { return nil }
        return regionTable[x * 26 + y]
    }

    @inline(__always)
    func plansByCode(_ cc: Int) -> [RegionPlan]? { cc > 0 && cc < 1000 ? codeTable[cc] : nil }

    @inline(__always)
    func isCallingCode(_ cc: Int) -> Bool { cc > 0 && cc < 1000 && mainTable[cc] != nil }

    /// The calling code at the start of ASCII `digits` and its length (1-3), if there is one: calling codes
    /// are prefix-free, so the first match is the code.
    @inline(__always)
    func leadingCallingCode<C: Collection>(_ digits: C) -> (code: Int, length: Int)? where C.Element == UInt8 {
        var value = 0
        var length = 0
        for d in digits.prefix(3) {
            if length == 0 && d == UInt8(ascii: "0") { return nil }
            value = value * 10 + Int(d &- 48)
            length += 1
            if isCallingCode(value) { return (value, length) }
        }
        return nil
    }

    @inline(__always)
    func mainPlan(forCode cc: Int) -> RegionPlan? { cc > 0 && cc < 1000 ? mainTable[cc] : nil }

    /// libphonenumber's region for a number whose calling code several regions share.
    func plan(forCode cc: Int, nsn: [UInt8]) -> RegionPlan? {
        guard cc > 0 && cc < 1000, let main = mainTable[cc] else { return nil }
        if !sharedTable[cc] { return main }
        guard let plans = codeTable[cc] else { return nil }
        for p in plans {
            if let lead = p.leadingDigits {
                if lead.matchesPrefix(nsn) { return p }
            } else if p.numberType(nsn) != .unknown {
                return p
            }
        }
        return nil
    }
}
