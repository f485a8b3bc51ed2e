import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

@testable import TriplineSelectors

@Suite("Selector normalisation")
struct SelectorTests {
    let n = SelectorNormalizer()

    func value(_ t: SelectorType, _ v: String, regions: [String] = []) throws -> (String, JSONObject) {
        try n.normalizeValue(t, v, regions: regions)
    }

    @Test(
        "phone numbers in every written form",
        arguments: [
            ("+32 470 12 34 56", [], "+32470123456"),
            ("0470/12.34.56", ["BE"], "+32470123456"),
            ("00 32 470 12 34 56", ["IQ"], "+32470123456"),
            ("011 32 470 12 34 56", ["US"], "+32470123456"),
            ("8~10 32 470 12 34 56", ["RU"], "+32470123456"),
            ("tel:+32-470-12-34-56", [], "+32470123456"),
            ("tel:0470123456;phone-context=+32", [], "+32470123456"),
            ("+32 (0)2 456 12 34", [], "+3224561234"),
            ("1-800-FLOWERS", ["US"], "+18003569377"),
            ("０４７０ １２ ３４ ５６", ["BE"], "+32470123456"),
            ("+32 470 12 34 56 ext. 12", [], "+32470123456"),
            ("0770 123 4567", ["BE", "IQ"], "+9647701234567"),
        ] as [(String, [String], String)])
    func phoneForms(_ input: String, _ regions: [String], _ e164: String) throws {
        let (v, f) = try value(.phone, input, regions: regions)
        #expect(v == e164)
        #expect(f["valid"] == .bool(true))
    }

    @Test("phone enrichment: country, line type, area for fixed lines")
    func phoneEnrichment() throws {
        let (_, brussels) = try value(.phone, "+32 2 456 12 34")
        #expect(brussels["country"] == "BE")
        #expect(brussels["line_type"] == "fixed_line")
        #expect(brussels["area"] == "Brussels")
        let (_, mosul) = try value(.phone, "060 812 345", regions: ["IQ"])
        #expect(mosul["area"] == "Mosul")
        let (_, mobile) = try value(.phone, "+33 6 12 34 56 78")
        #expect(mobile["line_type"] == "mobile")
        #expect(mobile["area"] == nil)
    }

    @Test("a number outside its plan is kept and flagged with the reason")
    func phoneInvalid() throws {
        let (v, f) = try value(.phone, "0470 12 34", regions: ["BE"])
        #expect(v.hasPrefix("+32"))
        #expect(f["valid"] == .bool(false))
        #expect(f["invalid_reason"] == "too short for BE")
        let (_, long) = try value(.phone, "+32 470 12 34 56 78 9")
        #expect(long["invalid_reason"] == "too long for BE")
    }

    @Test("what cannot be a phone number is rejected", arguments: ["hello", "+", "12", "0470 12 34 56"])
    func phoneRejected(_ s: String) {
        #expect(throws: SelectorError.self) { _ = try n.normalizeValue(.phone, s) }
    }

    @Test("IMEI: Luhn, IMEISV reduction, TAC")
    func imei() throws {
        let (v, f) = try value(.imei, "35-209900-176148-1")
        #expect(v == "352099001761481")
        #expect(f["valid"] == .bool(true))
        #expect(f["tac"] == "35209900")
        let (sv, svf) = try value(.imei, "3520990017614823")  // IMEISV: software version 23
        #expect(sv == "352099001761481")
        #expect(svf["valid"] == .bool(true))
        let (_, bad) = try value(.imei, "352099001761482")
        #expect(bad["valid"] == .bool(false))
        #expect(throws: SelectorError.self) { _ = try n.normalizeValue(.imei, "1234") }
    }

    @Test("IMSI: MCC to country, MNC length by MCC")
    func imsi() throws {
        let (_, be) = try value(.imsi, "206012345678901")
        #expect(be["country"] == "BE")
        #expect(be["mcc"] == "206")
        #expect(be["mnc"] == "01")
        let (_, us) = try value(.imsi, "310260123456789")
        #expect(us["country"] == "US")
        #expect(us["mnc"] == "260")
        let (_, iq) = try value(.imsi, "418051234567890")
        #expect(iq["country"] == "IQ")
    }

    @Test(
        "IP addresses in canonical text",
        arguments: [
            ("192.0.2.1", "192.0.2.1", 4), ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1", 6),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", 6), ("[::FFFF:192.0.2.1]", "::ffff:192.0.2.1", 6),
            ("fe80::1%eth0", "fe80::1", 6),
        ] as [(String, String, Int)])
    func ip(_ input: String, _ canonical: String, _ version: Int) throws {
        let (v, f) = try value(.ip, input)
        #expect(v == canonical)
        #expect(f["version"] == .number(String(version)))
    }

    @Test("bad IPs are rejected", arguments: ["256.1.1.1", "1.2.3", "1.2.3.4.5", "2001:db8:::1", "x"])
    func badIP(_ s: String) {
        #expect(throws: SelectorError.self) { _ = try n.normalizeValue(.ip, s) }
    }

    @Test("e-mail: case-folded, IDNA domain (RFC 3492 Punycode)")
    func email() throws {
        let (v, f) = try value(.email, "  Abou.Omar@Bücher.Example ")
        #expect(v == "abou.omar@xn--bcher-kva.example")
        #expect(f["domain"] == "xn--bcher-kva.example")
        // RFC 3492 §7.1 sample (L): Japanese.
        #expect(Punycode.encode("3年B組金八先生") == "3B-ww4c5e180e575a65lsy2b")
        #expect(Punycode.encode("ليهمابتكلموشعربي؟") == "egbpdaj6bu4bxfgehfvwxn")
        #expect(throws: SelectorError.self) { _ = try n.normalizeValue(.email, "no-at-sign.example") }
        #expect(try n.normalizeValue(.email, "Abu Omar <Abu.Omar@Example.ORG>").0 == "abu.omar@example.org")
        #expect(try n.normalizeValue(.email, "mailto:X@Y.example").0 == "x@y.example")
        let folding = SelectorNormalizer(foldEmailProviders: true)
        #expect(try folding.normalizeValue(.email, "A.b.C+news@gmail.com").0 == "abc@gmail.com")
        #expect(try n.normalizeValue(.email, "A.b.C+news@gmail.com").0 == "a.b.c+news@gmail.com")
    }

    @Test("e-mail folding: ASCII text lowered without Foundation gives what NFKC + lower case gives, for every byte")
    func emailFoldFastPath() throws {
        // Every ASCII byte (controls included) alone and inside an address, seeded random ASCII texts, and texts
        // that are not ASCII (which take Foundation's path).
        var texts = (0..<128).map { b in String(decoding: [UInt8(b)], as: UTF8.self) }
        texts += (0..<128).map { b in "Ab" + String(decoding: [UInt8(b)], as: UTF8.self) + "Z@Ex.ORG" }
        var g = SplitMix64(seed: 17)
        for _ in 0..<2000 {
            let n = Int(g.next() % 40)
            texts.append(String(decoding: (0..<n).map { _ in UInt8(g.next() % 128) }, as: UTF8.self))
        }
        texts += ["Bücher", "ＡＢＣ@ｅｘ．ｏｒｇ", "ǅemal", "Straße", "İstanbul", "ﬁ@x.example"]
        for t in texts {
            #expect(EmailNormalizer.fold(t) == t.precomposedStringWithCompatibilityMapping.lowercased(), "\(t)")
        }
    }

    @Test("usernames are platform-qualified and case-folded")
    func username() throws {
        #expect(try n.normalizeValue(.username, "@Abu_X", platform: "Telegram").0 == "telegram:abu_x")
        #expect(try n.normalizeValue(.username, "telegram:@Abu_X").0 == "telegram:abu_x")
        #expect(throws: SelectorError.self) { _ = try n.normalizeValue(.username, "abu_x") }
    }

    @Test("documents: issuing country + number without separators")
    func document() throws {
        let (v, f) = try n.normalizeValue(.document, "eh-123 456", country: "be")
        #expect(v == "BE:EH123456")
        #expect(f["country"] == "BE")
        #expect(f["valid"] == .bool(true))
        #expect(throws: SelectorError.self) { _ = try n.normalizeValue(.document, "EH123456") }
    }

    @Test("wallets: chain detection, canonical case, checksums")
    func wallet() throws {
        let (v, f) = try value(.wallet, "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ")
        #expect(v == "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")
        #expect(f["chain"] == "bitcoin")
        #expect(f["valid"] == .bool(true))
        let (_, p2pkh) = try value(.wallet, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
        #expect(p2pkh["valid"] == .bool(true))
        let (_, broken) = try value(.wallet, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
        #expect(broken["valid"] == .bool(false))
        let (eth, ef) = try value(.wallet, "0x52908400098527886E0F7030069857D2E4169EE7")
        #expect(eth == "0x52908400098527886e0f7030069857d2e4169ee7")
        #expect(ef["chain"] == "ethereum")
    }

    @Test("names: NFKC, case-folded, diacritics removed, Arabic transliterated, tokens and script")
    func names() throws {
        let (v, f) = try value(.name, "Abou Omar al-Baljikî")
        #expect(v == "abou omar al baljiki")
        #expect(f["tokens"] == .array(["abou", "omar", "al", "baljiki"]))
        #expect(f["script"] == "Latn")
        let (a, af) = try value(.name, "عبد الحميد أباعود")
        #expect(af["script"] == "Arab")
        #expect(a == "abd alhmyd abaawd")  // ayn as "a" (docs/DATA.md)
        let (c, _) = try value(.name, "ＭＵＨＡＭＭＡＤ  Ǆemal")
        #expect(c == "muhammad dzemal")
    }

    @Test("records: required fields, type, region hints in SPEC order")
    func records() throws {
        let o = try JSONParser.parse(
            #"{"id":"x","type":"phone","value":"0470 12 34 56","source":{"country":"IQ","sim_country":"be"}}"#
        ).objectValue!
        let input = try SelectorInput(json: o)
        #expect(input.regionHints == ["BE", "IQ"])
        let rec = try n.normalize(input)
        #expect(rec.value == "+32470123456")
        #expect(rec.json.keys == ["id", "type", "value", "raw", "valid", "country", "line_type", "source"])
        for bad in [
            #"{"type":"phone","value":"1"}"#, #"{"id":"x","type":"fax","value":"1"}"#, #"{"id":"x","type":"phone"}"#,
        ] {
            #expect(throws: SelectorError.self) { _ = try SelectorInput(json: try JSONParser.parse(bad).objectValue!) }
        }
    }

    @Test("timestamps: RFC 3339 with offsets and fractions, and dates")
    func timestamps() {
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2016-10-20T10:15:00+02:00") == Timestamp.parse("2016-10-20T08:15:00Z"))
        #expect(Timestamp.parse("2031-05-01") == Timestamp.parse("2031-05-01T00:00:00Z"))
        #expect(Timestamp.parse("2031-02-30") == nil)
        #expect(Timestamp.parse("yesterday") == nil)
        #expect(Timestamp.format(Timestamp.parse("2030-06-01T12:34:56Z")!) == "2030-06-01T12:34:56Z")
    }

    /// From 1583 on: before the Gregorian reform Foundation switches to the Julian calendar, where RFC 3339 (and
    /// `Timestamp`) keep the proleptic Gregorian one (0001-01-01 is -62135596800 either way, checked alone).
    @Test("the time formatter agrees with Foundation's ISO 8601 formatter, years 1583 to 9999, fractions cut")
    func timeFormatter() {
        let reference = ISO8601DateFormatter()
        var rng = SplitMix64(seed: 20_261_130)
        var cases: [Double] = [0, -1, -0.5, 86_399.999, 951_782_400, 4_107_542_399, -12_212_553_600, 253_402_300_799]
        for _ in 0..<5000 { cases.append(Double(Int64(rng.next() % 265_614_854_400) - 12_212_553_600) + 0.25) }
        #expect(Timestamp.format(-62_135_596_800) == "0001-01-01T00:00:00Z")
        for t in cases {
            #expect(
                Timestamp.format(t) == reference.string(from: Date(timeIntervalSince1970: t.rounded(.down))), "\(t)")
        }
    }
}

/// The in-place reading of plain ASCII addresses (the screen's key, and the common case of `normalize`) gives what
/// the general reading gives, or leaves the address to it; seeded addresses built to sit on every edge it checks.
@Suite struct EmailFastPathTests {
    @Test(arguments: [false, true])
    func asciiKeyAgreesWithTheGeneralReading(fold: Bool) {
        var g = SplitMix64(seed: 41)
        let parts = [
            "a", "Z", "j.doe", "J.Doe+tag", "x-y", "_u", ".", "..", "-", "@", "\"q\"", " ", "mailto:", "MAILTO:", "<",
            ">", "example", "ORG", "gmail", "com", "googlemail", "xn--bcher-kva", "a_b", "-ex", "ex-", "1", "\u{7F}",
            String(repeating: "a", count: 63), String(repeating: "b", count: 64),
        ]
        var decided = 0
        for _ in 0..<30_000 {
            var text = ""
            for _ in 0..<(1 + g.next() % 7) { text += parts[Int(g.next() % UInt64(parts.count))] }
            if g.next() % 3 != 0 { text += "@" }
            for _ in 0..<(g.next() % 6) {
                text += parts[Int(g.next() % UInt64(parts.count))] + (g.next() % 2 == 0 ? "." : "")
            }
            let key = Array(text.utf8).withUnsafeBufferPointer { b in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2048) { out -> String? in
                    EmailNormalizer.asciiKey(b, foldProviders: fold, into: out).map {
                        String(decoding: UnsafeBufferPointer(rebasing: out[..<$0]), as: UTF8.self)
                    }
                }
            }
            guard let key else { continue }
            decided += 1
            let general = try? EmailNormalizer.normalizeInGeneral(text, foldProviders: fold)
            #expect(general?.0 == key, "\(text): fast \(key), general \(general?.0 ?? "an error")")
            #expect(general?.1["domain"]?.stringValue == key.split(separator: "@").last.map(String.init))
        }
        #expect(decided == (fold ? 1_284 : 1_285))  // counted once with this seed
    }
}
