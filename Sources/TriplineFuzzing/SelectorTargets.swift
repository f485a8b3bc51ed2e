import TriplineJSON
import TriplineSelectors
import TriplineWatchlists

/// Phone numbers, e-mail addresses (IDNA), every selector type's normaliser, and the name model.
enum SelectorTargets {
    static let regions: [String?] = [nil, "BE", "FR", "US", "IQ", "GB", "DE", "SY", "TR", "IN", "BR", "JP", "RU", "NL"]

    /// The text after a first byte that chooses the options.
    static func split(_ bytes: [UInt8]) -> (UInt8, String)? {
        guard let first = bytes.first else { return nil }
        return (first, String(decoding: bytes.dropFirst(), as: UTF8.self))
    }

    /// Property: a valid number read once reads again, from its E.164 form and without a region, as the same
    /// number. (Not an invalid one: like libphonenumber, a reading strips one national prefix after the calling
    /// code — `+44 (0)0456…` reads as `+440456…`, which reads as `+44456…` — and Tripline agrees with
    /// libphonenumber on every number.)
    static let phone = FuzzTarget(name: "phone", maxLength: 256) { bytes throws(FuzzFailure) in
        guard let (opt, text) = split(bytes) else { return }
        let hints = [regions[Int(opt) % regions.count], regions[Int(opt / 16) % regions.count]].compactMap { $0 }
        guard let n = try? PhoneNormalizer.shared.normalize(text, regions: hints), n.valid else { return }
        let again: PhoneNumber
        do { again = try PhoneNormalizer.shared.normalize(n.e164, regions: []) } catch {
            throw FuzzFailure(
                target: "phone", message: "\(n.e164) (from \(text.debugDescription)) does not read: \(error)")
        }
        try FuzzTarget.check(
            again.e164 == n.e164 && again.valid == n.valid && again.region == n.region, "phone",
            "\(text.debugDescription) read as \(n.e164) \(n.valid) \(n.region ?? "-"), that again as \(again.e164) \(again.valid) \(again.region ?? "-")"
        )
    }

    /// Property: an address normalised once normalises to itself (with and without provider folding).
    static let email = FuzzTarget(name: "email", maxLength: 1024) { bytes throws(FuzzFailure) in
        guard let (opt, text) = split(bytes) else { return }
        try idempotent(.email, text, SelectorNormalizer(foldEmailProviders: opt & 1 == 1), attributes: Attributes())
    }

    struct Attributes {
        var regions: [String] = []
        var country: String?
        var platform: String?
        var chain: String?
        var kind: String?
    }

    /// Every type: the first byte chooses the type and the record's attributes. Property: normalising twice
    /// equals normalising once.
    static let normalize = FuzzTarget(name: "normalize", maxLength: 1024) { bytes throws(FuzzFailure) in
        guard let (opt, text) = split(bytes) else { return }
        let types = SelectorType.allCases
        let type = types[Int(opt) % types.count]
        let k = Int(opt) / types.count
        var a = Attributes()
        a.regions = [regions[k % regions.count]].compactMap { $0 }
        a.country = ["BE", nil, "FRA", "x"][k % 4]
        a.platform = [nil, "telegram", "signal", "x.com"][(k / 2) % 4]
        a.chain = [nil, "btc", "eth", "xmr"][(k / 4) % 4]
        a.kind = [nil, "passport", "id_card"][k % 3]
        try idempotent(type, text, SelectorNormalizer(foldEmailProviders: k & 1 == 1), attributes: a)
    }

    static func idempotent(_ type: SelectorType, _ text: String, _ n: SelectorNormalizer, attributes a: Attributes)
        throws(FuzzFailure)
    {
        func run(_ t: String) throws(SelectorError) -> String {
            try n.normalizeValue(
                type, t, regions: a.regions, country: a.country, platform: a.platform, chain: a.chain, kind: a.kind
            ).0
        }
        guard
            let (once, fields) = try? n.normalizeValue(
                type, text, regions: a.regions, country: a.country, platform: a.platform, chain: a.chain, kind: a.kind)
        else { return }
        // An invalid phone number is kept as libphonenumber reads it, not re-read (see `phone`).
        if type == .phone && fields["valid"] != .bool(true) { return }
        let twice: String
        do { twice = try run(once) } catch {
            throw FuzzFailure(
                target: "normalize",
                message: "\(type) \(text.debugDescription) → \(once.debugDescription), refused then: \(error)")
        }
        try FuzzTarget.check(
            once == twice, "normalize",
            "\(type) \(text.debugDescription) → \(once.debugDescription) → \(twice.debugDescription)")
    }

    /// Watched names for the name target: invented, in several scripts, with shared and rare terms.
    static let names = [
        "Abdelhamid Abaaoud", "Abou Omar al-Baljiki", "Mohammed Al-Shami", "Ahmad Al Shami", "Abukar Ali Adan",
        "Ali Husayn", "Mohamed Ali", "Omar Abdel Rahman", "Ivan Petrov", "Иван Петров", "عبد الله الحسين",
        "Abu Bakr al-Baghdadi", "Jean-Pierre Dupont", "Zine El Abidine Ben Ali", "Qusay Hussein", "Oudaï Hussein",
        "Li Wei", "Nguyen Van An", "Maria Garcia Lopez", "Hassan", "Abu Yahya", "Umm Sayyaf", "Muhammad bin Salman",
        "Osama Bin Laden", "Ayman al-Zawahiri",
    ]

    static let nameIndex: NameIndex = {
        let items = names.enumerated().map { (i, n) in
            (n, HitRef(list: 0, entry: Int32(i), selector: 0))
        }
        return NameIndex(items, scripts: names.map { NameNormalizer.dominantScript($0) })
    }()

    /// The name model: normalise, form, search the fixed names. Properties: the index finds exactly what scoring
    /// every name finds, with the same scores; every score lies in [0, 1].
    static let name = FuzzTarget(name: "name", maxLength: 1024) { bytes throws(FuzzFailure) in
        let text = String(decoding: bytes, as: UTF8.self)
        guard let (normalized, fields) = try? SelectorNormalizer().normalizeValue(.name, text) else { return }
        let form = NameModel.form(normalized: normalized, script: fields["script"]?.stringValue)
        let floor = NameIndex.defaultMinScore
        let fast = nameIndex.query(form, minScore: { _ in floor })
        let full = nameIndex.scan(form, minScore: floor)
        func key(_ m: [NameMatch]) -> [String] {
            m.map { "\($0.ref.entry)/\($0.matched)/\(Int(($0.score * 1e6).rounded()))" }.sorted()
        }
        try FuzzTarget.check(
            key(fast) == key(full), "name",
            "\(text.debugDescription): index found \(key(fast)), full scan \(key(full))")
        for m in full {
            try FuzzTarget.check(m.score >= 0 && m.score <= 1, "name", "score \(m.score) for \(text.debugDescription)")
        }
    }
}
