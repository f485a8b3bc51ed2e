import Foundation
import TriplineJSON

/// Person names: NFKC, case-folded, diacritics removed, Arabic, Cyrillic and Greek script transliterated, tokens.
/// Fuzzy matching (particles as symbols, variant groups, skeletons, scoring) is `NameModel`'s.
public enum NameNormalizer {
    /// The longest name, in UTF-8 bytes after trimming. In the UN consolidated list and the EU sanctions list
    /// (January 2026) the longest one person's name is 77 bytes (six words in Arabic script, two bytes a
    /// letter) and the longest name field of an individual 193 (a name with a note on false
    /// documents). 512 holds any real name in any script with room to spare, and bounds what a hostile record costs.
    public static let maxBytes = 512
    /// The most tokens a name may have. The longest single names in the UN and EU lists have 11 ("Zine El Abidine
    /// Ben Haj Hamda Ben Haj Hassen BEN ALI", particles counted); every field with 12 or more is several names joined
    /// by ";" or a name with a note. Fuzzy matching compares every query token with every alike watched token, and
    /// picks which tokens a match must meet among all subsets of up to 12: 16 bounds that work.
    public static let maxTokens = 16

    static func normalize(_ text: String) throws(SelectorError) -> (String, JSONObject) {
        // Counted before any Unicode work, so a huge value costs nothing (`text` is already trimmed).
        let bytes = text.utf8.count
        guard bytes <= maxBytes else {
            throw SelectorError("name: \(bytes) bytes, longer than the \(maxBytes) a name may have")
        }
        let tokens = tokenize(text)
        guard !tokens.isEmpty else { throw SelectorError("name: no letters") }
        guard tokens.count <= maxTokens else {
            throw SelectorError("name: \(tokens.count) words, more than the \(maxTokens) a name may have")
        }
        let script = dominantScript(text)
        var f = JSONObject()
        f["tokens"] = .array(tokens.map { .string($0) })
        f.append("script", .string(script))
        return (tokens.joined(separator: " "), f)
    }

    /// The normalised tokens of a name.
    public static func tokenize(_ text: String) -> [String] {
        if let ascii = asciiTokens(text) { return ascii }
        let nfkc = text.precomposedStringWithCompatibilityMapping
        var latin = ""
        for s in nfkc.unicodeScalars {
            if let t = arabic[s.value] ?? cyrillic[s.value] ?? greek[s.value] {
                latin += t
            } else if s.value >= 0x0370 && s.value < 0x0530 || s.value >= 0x1F00 && s.value < 0x2000 {
                // Accented Greek and Cyrillic: the base letter's transliteration.
                for d in String(s).decomposedStringWithCanonicalMapping.unicodeScalars {
                    if let t = cyrillic[d.value] ?? greek[d.value] {
                        latin += t
                    } else {
                        latin.unicodeScalars.append(d)
                    }
                }
            } else {
                latin.unicodeScalars.append(s)
            }
        }
        let folded = latin.lowercased().decomposedStringWithCanonicalMapping
        var out: [String] = []
        var cur = ""
        for s in folded.unicodeScalars {
            let p = s.properties
            if p.generalCategory == .nonspacingMark || p.generalCategory == .enclosingMark { continue }
            if s == "'" || s == "\u{2019}" || s == "`" || s == "\u{02BF}" || s == "\u{02BE}" { continue }
            if p.isAlphabetic || p.numericType != nil {
                cur.unicodeScalars.append(s)
            } else if !cur.isEmpty {
                out.append(cur)
                cur = ""
            }
        }
        if !cur.isEmpty { out.append(cur) }
        // "al-baljiki" became two tokens: keep the article as its own token.
        return out.map { $0.precomposedStringWithCanonicalMapping }
    }

    /// Plain ASCII (most names): the same tokens without the Unicode passes — lower-cased letters and digits,
    /// apostrophes and backquotes dropped, anything else a separator. Nil when the text is not ASCII.
    static func asciiTokens(_ text: String) -> [String]? {
        var t = text
        return t.withUTF8 { bytes -> [String]? in
            var out: [String] = []
            var cur: [UInt8] = []
            for b in bytes {
                if b >= 0x80 { return nil }
                switch b {
                case 0x41...0x5A: cur.append(b | 0x20)
                case 0x61...0x7A, 0x30...0x39: cur.append(b)
                case 0x27, 0x60: continue
                default:
                    if !cur.isEmpty {
                        out.append(String(decoding: cur, as: UTF8.self))
                        cur.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !cur.isEmpty { out.append(String(decoding: cur, as: UTF8.self)) }
            return out
        }
    }

    /// ISO 15924 code of the script most letters are in.
    public static func dominantScript(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            return text.utf8.contains { ($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "z") }
                ? "Latn" : "Zyyy"
        }
        var counts: [String: Int] = [:]
        for s in text.unicodeScalars where s.properties.isAlphabetic {
            let v = s.value
            let script: String
            switch v {
            case 0x0600...0x06FF, 0x0750...0x077F, 0x08A0...0x08FF, 0xFB50...0xFDFF, 0xFE70...0xFEFF: script = "Arab"
            case 0x0400...0x052F: script = "Cyrl"
            case 0x0370...0x03FF, 0x1F00...0x1FFF: script = "Grek"
            case 0x0590...0x05FF: script = "Hebr"
            case 0x4E00...0x9FFF, 0x3400...0x4DBF: script = "Hani"
            case 0...0x024F, 0x1E00...0x1EFF: script = "Latn"
            default: script = "Zyyy"
            }
            counts[script, default: 0] += 1
        }
        return counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key ?? "Zyyy"
    }

    /// A simple, defined Arabic-to-Latin scheme (close to common English transliteration, without diacritics):
    /// short vowels are written only where the text carries harakat.
    static let arabic: [UInt32: String] = [
        0x0621: "", 0x0622: "a", 0x0623: "a", 0x0624: "u", 0x0625: "i", 0x0626: "i", 0x0627: "a", 0x0628: "b",
        0x0629: "a", 0x062A: "t", 0x062B: "th", 0x062C: "j", 0x062D: "h", 0x062E: "kh", 0x062F: "d", 0x0630: "dh",
        0x0631: "r", 0x0632: "z", 0x0633: "s", 0x0634: "sh", 0x0635: "s", 0x0636: "d", 0x0637: "t", 0x0638: "z",
        0x0639: "a", 0x063A: "gh", 0x0640: "", 0x0641: "f", 0x0642: "q", 0x0643: "k", 0x0644: "l", 0x0645: "m",
        0x0646: "n", 0x0647: "h", 0x0648: "w", 0x0649: "a", 0x064A: "y", 0x064E: "a", 0x064F: "u", 0x0650: "i",
        0x064B: "", 0x064C: "", 0x064D: "", 0x0651: "", 0x0652: "", 0x0670: "a", 0x0671: "a", 0x067E: "p",
        0x0686: "ch", 0x0698: "zh", 0x06A9: "k", 0x06AF: "g", 0x06CC: "y", 0x06C1: "h", 0x06D2: "e",
        // Urdu and Pashto letters
        0x06BE: "h", 0x06C0: "h", 0x0679: "t", 0x0688: "d", 0x0691: "r", 0x06BA: "n", 0x0681: "z", 0x0685: "ts",
        0x0689: "d", 0x0693: "r", 0x0696: "zh", 0x069A: "kh", 0x06AB: "g", 0x06BC: "n", 0x06CD: "y", 0x06D0: "e",
    ]

    /// Cyrillic to Latin, close to BGN/PCGN without diacritics (Russian, Ukrainian, common Caucasus letters).
    static let cyrillic: [UInt32: String] = {
        let pairs: [(String, String)] = [
            ("а", "a"), ("б", "b"), ("в", "v"), ("г", "g"), ("д", "d"), ("е", "e"), ("ё", "e"), ("ж", "zh"),
            ("з", "z"), ("и", "i"), ("й", "y"), ("к", "k"), ("л", "l"), ("м", "m"), ("н", "n"), ("о", "o"),
            ("п", "p"), ("р", "r"), ("с", "s"), ("т", "t"), ("у", "u"), ("ф", "f"), ("х", "kh"), ("ц", "ts"),
            ("ч", "ch"), ("ш", "sh"), ("щ", "shch"), ("ъ", ""), ("ы", "y"), ("ь", ""), ("э", "e"), ("ю", "yu"),
            ("я", "ya"), ("і", "i"), ("ї", "yi"), ("є", "ye"), ("ґ", "g"), ("ә", "a"), ("ө", "o"), ("ү", "u"),
            ("ң", "ng"), ("һ", "h"), ("қ", "q"), ("ғ", "gh"), ("ӏ", ""),
        ]
        var m: [UInt32: String] = [:]
        for (c, l) in pairs {
            m[c.unicodeScalars.first!.value] = l
            m[c.uppercased().unicodeScalars.first!.value] = l
        }
        return m
    }()

    /// Greek to Latin, close to ELOT 743 without diacritics.
    static let greek: [UInt32: String] = {
        let pairs: [(String, String)] = [
            ("α", "a"), ("β", "v"), ("γ", "g"), ("δ", "d"), ("ε", "e"), ("ζ", "z"), ("η", "i"), ("θ", "th"),
            ("ι", "i"), ("κ", "k"), ("λ", "l"), ("μ", "m"), ("ν", "n"), ("ξ", "x"), ("ο", "o"), ("π", "p"),
            ("ρ", "r"), ("σ", "s"), ("ς", "s"), ("τ", "t"), ("υ", "y"), ("φ", "f"), ("χ", "ch"), ("ψ", "ps"),
            ("ω", "o"),
        ]
        var m: [UInt32: String] = [:]
        for (c, l) in pairs {
            m[c.unicodeScalars.first!.value] = l
            m[c.uppercased().unicodeScalars.first!.value] = l
        }
        return m
    }()
}
