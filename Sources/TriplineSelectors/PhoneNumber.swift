import Foundation

/// A phone number read, validated and enriched.
public struct PhoneNumber: Sendable, Equatable {
    /// `+` and the digits of the calling code and national significant number.
    public var e164: String
    public var countryCode: Int
    /// The national significant number: the E.164 digits after the calling code.
    public var nationalNumber: Substring { e164.dropFirst(1 + String(countryCode).count) }
    /// ISO 3166 alpha-2 region, nil for non-geographic calling codes (+800, +882...).
    public var region: String?
    public var valid: Bool
    public var invalidReason: String?
    /// Known only for valid numbers.
    public var lineType: LineType?
    /// Geographic area, for fixed lines where the public data has one.
    public var area: String?
}

/// Phone normalisation and enrichment over the generated numbering-plan data.
public struct PhoneNormalizer: Sendable {
    let plans: PhonePlanSet
    let parser: PhoneParser

    public static let shared = PhoneNormalizer(plans: .shared)

    init(plans: PhonePlanSet) {
        self.plans = plans
        self.parser = PhoneParser(plans: plans)
    }

    /// The libphonenumber metadata version the data was generated from.
    public var metadataVersion: String { plans.version }

    /// True when `region` is a region with a numbering plan.
    public func knowsRegion(_ region: String) -> Bool { plans.region(region) != nil }

    /// Reads `text` with the region hints in order of preference; the first hint that gives a valid number
    /// wins, else the first reading. Throws only when the text cannot be a phone number at all.
    public func normalize(_ text: String, regions: [String]) throws(PhoneParseFailure) -> PhoneNumber {
        var firstFailure: PhoneParseFailure?
        var firstReading: PhoneNumber?
        let international = text.utf8.first == UInt8(ascii: "+")
        for k in 0..<max(1, regions.count) {
            let hint = regions.isEmpty ? nil : regions[k]
            do {
                let (cc, nsn) = try parser.parse(text, region: hint)
                let number = describe(cc: cc, nsn: nsn, hint: hint)
                if number.valid { return number }
                if firstReading == nil { firstReading = number }
            } catch {
                if firstFailure == nil || firstFailure == .noRegion { firstFailure = error }
            }
            if international { break }  // the hint cannot change an international reading
        }
        if let firstReading { return firstReading }
        throw firstFailure ?? .notANumber
    }

    func describe(cc: Int, nsn: [UInt8], hint: String?) -> PhoneNumber {
        // "+", calling code, national number: composed on the stack, one String at the end.
        let e164 = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: nsn.count + 5) { buf -> String in
            buf[0] = UInt8(ascii: "+")
            var digits = 0
            var c = cc
            repeat {
                digits += 1
                c /= 10
            } while c > 0
            c = cc
            for k in stride(from: digits, through: 1, by: -1) {
                buf[k] = UInt8(48 + c % 10)
                c /= 10
            }
            for (k, d) in nsn.enumerated() { buf[1 + digits + k] = d }
            return String(decoding: UnsafeBufferPointer(rebasing: buf[0..<(1 + digits + nsn.count)]), as: UTF8.self)
        }
        var number = PhoneNumber(
            e164: e164, countryCode: cc, region: nil,
            valid: false, invalidReason: nil, lineType: nil, area: nil)
        if let plan = plans.plan(forCode: cc, nsn: nsn) {
            let type = plan.numberType(nsn)
            if type != .unknown {
                number.valid = true
                number.region = plan.isNonGeographic ? nil : plan.id
                number.lineType = type
                if type.isFixed { number.area = PhoneGeography.shared.area(cc: cc, nsn: nsn) }
                return number
            }
        }
        // Invalid: explain against the hinted region when it shares the calling code, else the main one.
        let hinted = hint.flatMap { plans.region($0) }
        guard let plan = (hinted?.countryCode == cc ? hinted : nil) ?? plans.mainPlan(forCode: cc) else {
            number.invalidReason = "unknown country calling code +\(cc)"
            return number
        }
        number.region = plan.isNonGeographic ? nil : plan.id
        let name = plan.displayName
        // A national number still carrying its trunk prefix is judged without it ("0470 12 34": too short).
        var length = plan.testLength(nsn.count)
        let prefix = plan.nationalPrefix
        if !prefix.isEmpty && nsn.starts(with: prefix) {
            let stripped = plan.testLength(nsn.count - prefix.count)
            if stripped != .possible { length = stripped }
        }
        switch length {
        case .tooShort: number.invalidReason = plan.reasons.tooShort
        case .tooLong: number.invalidReason = plan.reasons.tooLong
        case .invalidLength: number.invalidReason = "\(nsn.count) digits is not a length used in \(name)"
        case .localOnly: number.invalidReason = plan.reasons.localOnly
        case .possible: number.invalidReason = plan.reasons.notInPlan
        }
        return number
    }
}

/// Longest-prefix lookup of geographic areas (English names), loaded on first use.
final class PhoneGeography: Sendable {
    static let shared = PhoneGeography()

    private let names: [String]
    /// key: prefix value * 16 + prefix length.
    private let prefixes: [UInt64: Int32]
    private let longest: Int
    /// Per calling code (index), a bit mask of the prefix lengths present: lookups skip the others.
    private let lengthsByCode: [UInt32]

    init() {
        guard let url = Bundle.module.url(forResource: "phonegeo", withExtension: "tsv"),
            let data = FileManager.default.contents(atPath: url.path)
        else { fatalError("phone area resource phonegeo.tsv is missing from the bundle") }
        var names: [String] = []
        var prefixes: [UInt64: Int32] = [:]
        prefixes.reserveCapacity(160_000)
        var longest = 0
        var lengths = [UInt32](repeating: 0, count: 1000)
        let plans = PhonePlanSet.shared
        // Byte-level reading: `N\tname` and `P\tdigits\tindex` lines (String splitting costs ~10x more).
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            var i = 0
            while i < b.count {
                var end = i
                while end < b.count && b[end] != 0x0A { end += 1 }
                defer { i = end + 1 }
                guard end - i > 2, b[i + 1] == 0x09 else { continue }
                if b[i] == UInt8(ascii: "N") {
                    names.append(String(decoding: UnsafeBufferPointer(rebasing: b[(i + 2)..<end]), as: UTF8.self))
                } else if b[i] == UInt8(ascii: "P") {
                    var k = i + 2
                    var value: UInt64 = 0
                    var len = 0
                    let digitsStart = k
                    while k < end && b[k] != 0x09 {
                        value = value &* 10 &+ UInt64(b[k] &- 48)
                        len += 1
                        k += 1
                    }
                    let cc = plans.leadingCallingCode(b[digitsStart..<k])?.code ?? 0
                    var index: Int32 = 0
                    k += 1
                    while k < end {
                        index = index &* 10 &+ Int32(b[k] &- 48)
                        k += 1
                    }
                    prefixes[value &* 16 &+ UInt64(len)] = index
                    longest = max(longest, len)
                    if cc < 1000 { lengths[cc] |= 1 << UInt32(len) }
                }
            }
        }
        self.names = names
        self.prefixes = prefixes
        self.longest = longest
        self.lengthsByCode = lengths
    }

    func area(cc: Int, nsn: [UInt8]) -> String? {
        // The number as digits: calling code then national number, longest prefix first.
        var ccDigits = 0
        var c = cc
        while c > 0 {
            ccDigits += 1
            c /= 10
        }
        let total = min(longest, ccDigits + nsn.count)
        var full: UInt64 = UInt64(cc)
        for d in nsn.prefix(total - ccDigits) { full = full &* 10 &+ UInt64(d &- 48) }
        let present = cc < 1000 ? lengthsByCode[cc] : UInt32.max
        var len = total
        while len >= 1 {
            if present & (1 << UInt32(len)) != 0, let i = prefixes[full &* 16 &+ UInt64(len)] { return names[Int(i)] }
            full /= 10
            len -= 1
        }
        return nil
    }
}
