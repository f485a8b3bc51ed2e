import TriplineRegex

/// Why a string cannot be read as a phone number at all.
public enum PhoneParseFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case notANumber
    case noRegion
    case invalidCountryCode
    case tooShortAfterIDD
    case tooShort
    case tooLong

    public var description: String {
        switch self {
        case .notANumber: "not a phone number"
        case .noRegion: "national number without a region hint (source.sim_country, source.country or --region)"
        case .invalidCountryCode: "unknown country calling code"
        case .tooShortAfterIDD: "too short after the international prefix"
        case .tooShort: "too short to be a phone number"
        case .tooLong: "too long to be a phone number"
        }
    }
}

/// Reads phone numbers in every written form the way libphonenumber's `parse` does: E.164, international
/// with the region's own international prefixes, national with trunk prefixes, RFC 3966 and vanity forms.
/// The numbering-plan data is generated from libphonenumber's metadata (see `scripts/gen_phone_metadata.py`).
struct PhoneParser: Sendable {
    let plans: PhonePlanSet

    static let maxInputLength = 250
    static let minNSN = 2
    static let maxNSN = 17

    /// The calling code and national significant number (ASCII digits).
    func parse(_ input: String, region: String?) throws(PhoneParseFailure) -> (cc: Int, nsn: [UInt8]) {
        if input.utf8.count > Self.maxInputLength { throw .tooLong }
        let hasPlus: Bool
        let digits: [UInt8]
        if let fast = Self.plainASCII(input) {
            (hasPlus, digits) = fast
        } else {
            var number = try Self.nationalNumberForParsing(input)
            let cut = Self.extensionStart(number)  // looked for once, used twice
            guard Self.isViable(number, extensionAt: cut) else { throw .notANumber }
            if let cut, Self.isViable(Array(number[..<cut])) { number = Array(number[..<cut]) }
            hasPlus = Self.startsWithPlus(number)
            digits = Self.normalize(number)
        }
        let regionPlan = region.flatMap { plans.region($0) }
        if regionPlan == nil && !hasPlus { throw .noRegion }

        var cc = 0
        var nsn: [UInt8] = []
        if hasPlus, digits.count > Self.minNSN, let (code, length) = plans.leadingCallingCode(digits) {
            // The common international case: drop the calling code in place, without a copy.
            cc = code
            nsn = consume digits
            nsn.removeFirst(length)
        } else {
            do {
                (cc, nsn) = try extractCountryCode(digits, hasPlus: hasPlus, regionPlan)
            } catch .invalidCountryCode where hasPlus {
                (cc, nsn) = try extractCountryCode(digits, hasPlus: false, regionPlan)
                if cc == 0 { throw .invalidCountryCode }
            }
            if cc == 0 {
                nsn = consume digits  // the national number as written, shared rather than copied
                if let regionPlan { cc = regionPlan.countryCode }
            }
        }
        var meta = regionPlan
        if cc != 0, let main = plans.mainPlan(forCode: cc), main !== regionPlan { meta = main }
        if nsn.count < Self.minNSN { throw .tooShort }
        if let meta {
            // The stripped form is kept unless it is too short or of a length the plan does not use.
            func acceptable(_ count: Int) -> Bool {
                switch meta.testLength(count) {
                case .tooShort, .localOnly, .invalidLength: return false
                default: return true
                }
            }
            switch Self.trunkStrip(nsn, meta) {
            case .none: break
            case .drop(let n): if acceptable(nsn.count - n) { nsn.removeFirst(n) }
            case .replace(let t): if acceptable(t.count) { nsn = t }
            }
        }
        if nsn.count < Self.minNSN { throw .tooShort }
        if nsn.count > Self.maxNSN { throw .tooLong }
        if cc == 0 { throw .invalidCountryCode }
        return (cc, nsn)
    }

    /// The common case without a scalar array: ASCII digits, an optional leading `+`, and separators
    /// (space - . ( ) /). Such text has no extension, no RFC 3966 form and no vanity letters, so libphonenumber's
    /// clean-up reduces to "digits after the first + or digit". Nil sends the text down the general path.
    @inline(__always)
    static func plainASCII(_ input: String) -> (Bool, [UInt8])? {
        var digits: [UInt8] = []
        digits.reserveCapacity(20)
        guard let plus = plainASCII(input.utf8, digit: { digits.append($0) }), digits.count >= 3 else { return nil }
        return (plus, digits)
    }

    /// `plainASCII`'s reading over bytes: each digit handed to `digit`; whether the text has a leading `+`, or nil.
    @inline(__always)
    static func plainASCII<S: Sequence<UInt8>>(_ input: S, digit: (UInt8) -> Void) -> Bool? {
        var plus = false
        var started = false
        for b in input {
            switch b {
            case 48...57:
                started = true
                digit(b)
            case UInt8(ascii: "+"):
                if started || plus { return nil }
                plus = true
                started = true
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"),
                UInt8(ascii: "/"):
                continue
            default:
                return nil
            }
        }
        return plus
    }

    /// The E.164 text `parse` reads from an international number in plain ASCII (`+32 470 12 34 56`, or `0032...`
    /// with the international prefix of `region`, the one region hint), written to `out` (24 bytes at least)
    /// without allocating: its length. Nil when the text needs the general reading (national, vanity, RFC 3966, an
    /// extension, a trunk prefix after the calling code) or is no number: `parse` then decides.
    func internationalE164(
        _ text: UnsafeBufferPointer<UInt8>, region: RegionPlan?, into out: UnsafeMutableBufferPointer<UInt8>
    )
        -> Int?
    {
        guard text.count <= Self.maxInputLength, out.count >= 24 else { return nil }
        var count = 0
        let plus = Self.plainASCII(text) { d in
            if count < 23 { out[1 + count] = d }
            count += 1
        }
        guard let plus, count >= 3, count <= 23 else { return nil }
        var from = 1
        if !plus {
            // `stripIDD`'s literal case: the region's international prefix, not followed by a 0.
            guard let literal = region?.internationalPrefixLiteral,
                UnsafeBufferPointer(rebasing: out[1..<(1 + count)]).starts(with: literal),
                count > literal.count + Self.minNSN, out[1 + literal.count] != UInt8(ascii: "0")
            else { return nil }
            from += literal.count
        }
        let digits = UnsafeBufferPointer(rebasing: out[from..<(1 + count)])
        guard digits.count > Self.minNSN, let (code, length) = plans.leadingCallingCode(digits) else { return nil }
        let nsn = UnsafeBufferPointer(rebasing: digits[length...])
        guard nsn.count >= Self.minNSN, nsn.count <= Self.maxNSN, let meta = plans.mainPlan(forCode: code) else {
            return nil
        }
        if meta.nationalPrefixForParsing != nil {
            // Only a trunk-prefix pattern that cannot match the number is decided here (`trunkStrip` is `.none`).
            guard let can = meta.nationalPrefixCan, can.firstDigits & (1 << UInt16(nsn[0] &- 48)) == 0,
                nsn.count >= 64 || can.lengths & (1 << UInt64(nsn.count)) == 0
            else { return nil }
        }
        out[0] = UInt8(ascii: "+")
        if from > 1 { for k in 0..<digits.count { out[1 + k] = out[from + k] } }
        return 1 + digits.count
    }

    // MARK: country calling code

    private func extractCountryCode(_ digits: [UInt8], hasPlus: Bool, _ meta: RegionPlan?) throws(PhoneParseFailure)
        -> (Int, [UInt8])
    {
        if digits.isEmpty { return (0, []) }
        var full = digits
        var fromDefault = false
        if !hasPlus {
            if let meta, let stripped = Self.stripIDD(meta, full) {
                full = stripped
            } else {
                fromDefault = true
            }
        }
        if !fromDefault {
            if full.count <= Self.minNSN { throw .tooShortAfterIDD }
            let (cc, rest) = extractLeadingCode(full)
            if cc != 0 { return (cc, rest) }
            throw .invalidCountryCode
        }
        if let meta {
            // A national number that starts with the region's own calling code, written without "+".
            let code = meta.countryCodeDigits
            if full.starts(with: code) {
                var potential = Array(full[code.count...])
                potential = Self.stripNationalPrefix(potential, meta)
                if (!meta.matchesGeneralPattern(full) && meta.matchesGeneralPattern(potential))
                    || meta.testLength(full.count) == .tooLong
                {
                    return (meta.countryCode, potential)
                }
            }
        }
        return (0, [])
    }

    private func extractLeadingCode(_ digits: [UInt8]) -> (Int, [UInt8]) {
        guard let (code, length) = plans.leadingCallingCode(digits) else { return (0, digits) }
        return (code, Array(digits[length...]))
    }

    private static func stripIDD(_ meta: RegionPlan, _ digits: [UInt8]) -> [UInt8]? {
        let end: Int
        if let literal = meta.internationalPrefixLiteral {
            guard digits.starts(with: literal) else { return nil }
            end = literal.count
        } else {
            guard let idd = meta.internationalPrefix else { return nil }
            let m = digits.withUnsafeBufferPointer { buf in try? idd.firstMatch(in: buf, anchored: true) }
            guard let m, let whole = m[0] else { return nil }
            end = whole.upperBound
        }
        let whole = 0..<end
        // Calling codes never start with 0: "00 0..." is not an international prefix.
        if whole.upperBound < digits.count && digits[whole.upperBound] == UInt8(ascii: "0") { return nil }
        return Array(digits[whole.upperBound...])
    }

    // MARK: national prefix

    /// libphonenumber's national-prefix (trunk prefix) and carrier-code stripping, with its transform rule.
    /// What libphonenumber's national-prefix (trunk prefix, carrier code) rule does to a number.
    enum TrunkStrip {
        case none
        /// Drop this many leading digits.
        case drop(Int)
        /// Replace the number (a transform rule, as Argentina's mobile "15").
        case replace([UInt8])
    }

    /// libphonenumber's national-prefix and carrier-code stripping, with its transform rule; decided without
    /// building the stripped number unless a transform rule makes a new one.
    static func trunkStrip(_ number: [UInt8], _ meta: RegionPlan) -> TrunkStrip {
        guard !number.isEmpty, let npfp = meta.nationalPrefixForParsing else { return .none }
        if let literal = meta.nationalPrefixLiteral {
            guard number.starts(with: literal) else { return .none }
            return dropUnlessWorse(number, literal.count, meta)
        }
        let found = number.withUnsafeBufferPointer { buf in try? npfp.firstMatch(in: buf, anchored: true) }
        guard let m = found, let whole = m[0] else { return .none }
        let lastGroupSet = m.count > 1 && m[m.count - 1] != nil
        if let rule = meta.transformRule, lastGroupSet {
            var transformed: [UInt8] = []
            var bytes = rule.utf8.makeIterator()
            while let b = bytes.next() {
                if b == UInt8(ascii: "\\"), let g = bytes.next(), g >= 48, g <= 57 {
                    let gi = Int(g - 48)
                    if gi < m.count, let r = m[gi] { transformed += number[r] }
                } else {
                    transformed.append(b)
                }
            }
            transformed += number[whole.upperBound...]
            // Keep the original when it fits the plan and the stripped form does not.
            if !meta.matchesGeneralPattern(transformed) && meta.matchesGeneralPattern(number) { return .none }
            return .replace(transformed)
        }
        return dropUnlessWorse(number, whole.upperBound, meta)
    }

    @inline(__always)
    private static func dropUnlessWorse(_ number: [UInt8], _ n: Int, _ meta: RegionPlan) -> TrunkStrip {
        if !meta.matchesGeneralPattern(number[n...]) && meta.matchesGeneralPattern(number) { return .none }
        return .drop(n)
    }

    /// The number after `trunkStrip`, as a new array.
    static func stripNationalPrefix(_ number: [UInt8], _ meta: RegionPlan) -> [UInt8] {
        switch trunkStrip(number, meta) {
        case .none: return number
        case .drop(let n): return Array(number[n...])
        case .replace(let t): return t
        }
    }

    // MARK: text clean-up

    static func isPlus(_ c: Unicode.Scalar) -> Bool { c == "+" || c == "\u{FF0B}" }

    static func startsWithPlus(_ s: [Unicode.Scalar]) -> Bool { s.first.map(isPlus) ?? false }

    @inline(__always)
    static func decimalValue(_ c: Unicode.Scalar) -> UInt8? {
        if c.value >= 48 && c.value <= 57 { return UInt8(c.value) - 48 }
        if c.value < 128 { return nil }
        guard c.properties.numericType == .decimal, let v = c.properties.numericValue else { return nil }
        return UInt8(v)
    }

    static func isASCIILetter(_ c: Unicode.Scalar) -> Bool {
        (c.value >= 65 && c.value <= 90) || (c.value >= 97 && c.value <= 122)
    }

    /// Keypad letters: ABC=2 ... WXYZ=9.
    static let keypad: [UInt8] = Array("22233344455566677778889999".utf8)

    /// Digits only; with three or more letters (a vanity number) letters become keypad digits.
    static func normalize(_ s: [Unicode.Scalar]) -> [UInt8] {
        var letters = 0
        for c in s where isASCIILetter(c) {
            letters += 1
            if letters >= 3 { break }
        }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        if letters >= 3 {
            for c in s {
                if c.value >= 48 && c.value <= 57 {
                    out.append(UInt8(c.value))
                } else if isASCIILetter(c) {
                    out.append(keypad[Int((c.value | 0x20) - 97)])
                }
            }
        } else {
            for c in s { if let d = decimalValue(c) { out.append(d + 48) } }
        }
        return out
    }

    static let punctuation: Set<Unicode.Scalar> = {
        var s = Set(
            "-x\u{2010}\u{2011}\u{2012}\u{2013}\u{2014}\u{2015}\u{2212}\u{30FC}\u{FF0D}\u{FF0E}\u{FF0F} \u{00A0}\u{00AD}\u{200B}\u{2060}\u{3000}()\u{FF08}\u{FF09}\u{FF3B}\u{FF3D}.[]/~\u{2053}\u{223C}\u{FF5E}*"
                .unicodeScalars)
        s.insert("X")
        return s
    }()

    /// libphonenumber's shape test for "could be a phone number" (before its extension is split off).
    static func isViable(_ s: [Unicode.Scalar]) -> Bool { isViable(s, extensionAt: extensionStart(s)) }

    /// The same with the extension's start already known (evaluated only when the shape alone fails).
    static func isViable(_ s: [Unicode.Scalar], extensionAt cut: @autoclosure () -> Int?) -> Bool {
        if s.count < 2 { return false }
        if s.count == 2 && s.allSatisfy({ decimalValue($0) != nil }) { return true }
        if shapeIsViable(s[...]) { return true }
        if let cut = cut() { return shapeIsViable(s[..<cut]) }
        return false
    }

    /// `[+]*(?:[punct]*\d){3,}[punct alpha digit]*`
    private static func shapeIsViable(_ s: ArraySlice<Unicode.Scalar>) -> Bool {
        var i = s.startIndex
        while i < s.endIndex && isPlus(s[i]) { i += 1 }
        var digits = 0
        while i < s.endIndex {
            let c = s[i]
            if decimalValue(c) != nil {
                digits += 1
            } else if punctuation.contains(c) {
            } else if isASCIILetter(c) {
                if digits < 3 { return false }
            } else {
                return false
            }
            i += 1
        }
        return digits >= 3
    }

    // Extension forms libphonenumber accepts when parsing (";ext=", "ext.", "x", "#", ",,", ...).
    private static let extensionPattern: Regex = {
        let d = "(\\p{Nd}"
        let sep = "[ \\x{A0}\\t,]*"
        let after = "[:\\.\\x{FF0E}]?[ \\x{A0}\\t,-]*"
        let explicit =
            "(?:e?xt(?:ensi(?:o\\x{301}?|\\x{F3}))?n?|\\x{FF45}?\\x{FF58}\\x{FF54}\\x{FF4E}?|\\x{434}\\x{43E}\\x{431}|anexo)"
        let ambiguous = "(?:[x\\x{FF58}#\\x{FF03}~\\x{FF5E}]|int|\\x{FF49}\\x{FF4E}\\x{FF54})"
        let noComma = "[ \\x{A0}\\t]*"
        let alternatives = [
            ";ext=\(d){1,20})",
            "\(sep)\(explicit)\(after)\(d){1,20})#?",
            "\(sep)\(ambiguous)\(after)\(d){1,9})#?",
            "[- ]+\(d){1,6})#",
            "\(noComma)(?:,{2}|;)\(after)\(d){1,15})#?",
            "\(noComma)(?:,)+\(after)\(d){1,9})#?",
        ]
        let pattern = "(?:" + alternatives.joined(separator: "|") + ")$"
        return try! Regex(pattern, options: [.caseInsensitive, Regex.Options(rawValue: 0x0002_0000)])  // PCRE2_UCP
    }()

    /// Where an extension starts, if the string ends in one.
    static func extensionStart(_ s: [Unicode.Scalar]) -> Int? {
        // Fast path: every extension form needs a letter or one of # ; , ~ (or their full-width forms).
        guard
            s.contains(where: {
                isASCIILetter($0) || $0 == "#" || $0 == ";" || $0 == "," || $0 == "~" || $0.value > 127
            })
        else { return nil }
        let text = String(String.UnicodeScalarView(s))
        guard let m = try? extensionPattern.firstMatch(in: text), let whole = m[0] else { return nil }
        // byte offset -> scalar index
        var bytes = 0
        for (i, c) in s.enumerated() {
            if bytes == whole.lowerBound { return i }
            bytes += String(c).utf8.count
        }
        return nil
    }

    /// RFC 3966 (`tel:` with `;phone-context=`) or the span of the text that can hold a number.
    static func nationalNumberForParsing(_ input: String) throws(PhoneParseFailure) -> [Unicode.Scalar] {
        let s = Array(input.unicodeScalars)
        var out: [Unicode.Scalar] = []
        if let ctx = find(s, ";phone-context=") {
            let start = ctx + 15
            var end = start
            while end < s.count && s[end] != ";" { end += 1 }
            if end == start { throw .notANumber }
            if s[start] == "+" { out += s[start..<end] }
            let tel = find(s, "tel:").map { $0 + 4 } ?? 0
            if tel <= ctx { out += s[tel..<ctx] }
        } else {
            out = extractPossibleNumber(s)
        }
        if let isub = find(out, ";isub="), isub > 0 { out = Array(out[..<isub]) }
        return out
    }

    private static func find(_ s: [Unicode.Scalar], _ needle: String) -> Int? {
        let n = Array(needle.unicodeScalars)
        guard s.count >= n.count else { return nil }
        outer: for i in 0...(s.count - n.count) {
            for j in 0..<n.count where s[i + j] != n[j] { continue outer }
            return i
        }
        return nil
    }

    static func extractPossibleNumber(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard let start = s.firstIndex(where: { isPlus($0) || decimalValue($0) != nil }) else { return [] }
        var end = s.count
        while end > start {
            let c = s[end - 1]
            if decimalValue(c) != nil || isASCIILetter(c) || c == "#" { break }
            end -= 1
        }
        var out = Array(s[start..<end])
        // A second number after "/ x" or "\ x" is dropped.
        var i = 0
        while i < out.count {
            if out[i] == "/" || out[i] == "\\" {
                var j = i + 1
                while j < out.count && out[j] == " " { j += 1 }
                if j < out.count && out[j] == "x" {
                    out = Array(out[..<i])
                    break
                }
            }
            i += 1
        }
        return out
    }
}
