import TriplineJSON

/// Normalises and enriches selectors (SPEC §3): one entry point per record, one per bare value.
public struct SelectorNormalizer: Sendable {
    /// Region used for national phone numbers when the record gives no hint (`--region`, config default).
    public var defaultRegion: String?
    /// Provider-specific e-mail folding (Gmail dots and `+tags`), only where configured.
    public var foldEmailProviders: Bool

    let phone: PhoneNormalizer
    /// The default region's plan: the one region hint of a record whose source names no country.
    let defaultPlan: RegionPlan?

    public init(defaultRegion: String? = nil, foldEmailProviders: Bool = false) {
        self.defaultRegion = defaultRegion?.uppercased()
        self.foldEmailProviders = foldEmailProviders
        self.phone = .shared
        self.defaultPlan = defaultRegion.flatMap { PhoneNormalizer.shared.plans.region($0.uppercased()) }
    }

    /// Normalises one input record.
    public func normalize(_ input: SelectorInput) throws(SelectorError) -> NormalizedSelector {
        var hints = input.regionHints
        if let d = defaultRegion, !hints.contains(d) { hints.append(d) }
        let (value, fields) = try normalizeValue(
            input.type, input.value, regions: hints, country: input.country, platform: input.platform,
            chain: input.chain, kind: input.kind)
        return NormalizedSelector(input: input, value: value, fields: fields)
    }

    /// The normalised value `normalizeValue` gives, for the common forms it can read without allocating:
    /// international phone numbers and e-mail addresses in plain ASCII. Written to `out` (256 bytes at least); its
    /// length, or nil when the value needs the full reading (which also decides what is an error).
    /// `hinted`: the record's source names a country (a region hint before the default region).
    public func key(
        _ type: SelectorType, _ text: UnsafeBufferPointer<UInt8>, hinted: Bool,
        into out: UnsafeMutableBufferPointer<UInt8>
    ) -> Int? {
        switch type {
        case .phone: return phone.parser.internationalE164(text, region: hinted ? nil : defaultPlan, into: out)
        case .email: return EmailNormalizer.asciiKey(text, foldProviders: foldEmailProviders, into: out)
        default: return nil
        }
    }

    /// Normalises a bare value of a type: the normalised form and the enrichment fields.
    public func normalizeValue(
        _ type: SelectorType, _ raw: String, regions: [String] = [], country: String? = nil,
        platform: String? = nil, chain: String? = nil, kind: String? = nil
    ) throws(SelectorError) -> (String, JSONObject) {
        let text = raw.trimmingWhitespace
        if text.isEmpty { throw SelectorError("empty value") }
        switch type {
        case .phone: return try normalizePhone(text, regions: regions)
        case .email: return try EmailNormalizer.normalize(text, foldProviders: foldEmailProviders)
        case .imei: return try DeviceIDs.imei(text)
        case .imsi: return try DeviceIDs.imsi(text)
        case .ip: return try IPAddress.normalize(text)
        case .username: return try Handles.username(text, platform: platform)
        case .document: return try Handles.document(text, country: country, kind: kind)
        case .wallet: return try Wallets.normalize(text, chain: chain)
        case .name: return try NameNormalizer.normalize(text)
        }
    }

    func normalizePhone(_ text: String, regions: [String]) throws(SelectorError) -> (String, JSONObject) {
        let n: PhoneNumber
        do { n = try phone.normalize(text, regions: regions) } catch { throw SelectorError("phone: \(error)") }
        var f = JSONObject()
        f.append("valid", .bool(n.valid))
        if let r = n.invalidReason { f.append("invalid_reason", .string(r)) }
        if let c = n.region { f.append("country", .string(c)) }
        if let t = n.lineType { f.append("line_type", .string(t.rawValue)) }
        if let a = n.area { f.append("area", .string(a)) }
        return (n.e164, f)
    }

    /// Reads a phone number prefix (`+32 2`, `+964 60`): E.164-style digits with the leading `+`.
    public func normalizePhonePrefix(_ raw: String) throws(SelectorError) -> String {
        let t = raw.trimmingWhitespace
        guard t.hasPrefix("+") else { throw SelectorError("phone prefix must start with '+' and the country code") }
        var digits = "+"
        for c in t.unicodeScalars.dropFirst() {
            if let d = PhoneParser.decimalValue(c) {
                digits.append(Character(Unicode.Scalar(d + 48)))
            } else if !" -.()/\u{00A0}".unicodeScalars.contains(c) {
                throw SelectorError("phone prefix has an unexpected character '\(c)'")
            }
        }
        guard digits.count >= 2 else { throw SelectorError("phone prefix has no digits") }
        guard digits.count <= 18 else { throw SelectorError("phone prefix is longer than any phone number") }
        let d = digits.utf8.dropFirst()
        if phone.plans.leadingCallingCode(d) == nil && d.count >= 3 {
            throw SelectorError("phone prefix \(digits) starts with no country calling code")
        }
        return digits
    }
}

extension String {
    var trimmingWhitespace: String {
        // Most values start and end with a printable ASCII character: nothing to trim, nothing to copy.
        if let first = utf8.first, let last = utf8.last, (0x21...0x7E).contains(first), (0x21...0x7E).contains(last) {
            return self
        }
        let scalars = unicodeScalars
        guard let a = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let b = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[a...b])
    }
}
