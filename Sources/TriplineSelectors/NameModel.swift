import Foundation

/// One matching term of a person name: a given name, family name or nisba, with the particle that binds to it
/// (`abd` of "Abd al-Rahman", `abu` of a kunya) folded in.
public struct NameTerm: Sendable, Hashable {
    /// The normalised spelling (`abu omar` for a kunya).
    public var text: String
    /// The variant group's name (`muhammad` for Mohamed, Mhd...), or the spelling; with the particle symbol.
    public var canon: String
    /// Consonant skeleton: vowels and inner semivowels dropped, digraphs and look-alike letters merged, doubles
    /// collapsed (`hsn` for Hussein, Husayn and unvocalised حسين).
    public var skeleton: String
    /// The skeleton with look-alike classes merged (t/d/z, s/sh, k/kh/q/g/j/gh): transliterations of one Arabic
    /// letter disagree most there (Maghrebi g for qaf, Egyptian g for jim).
    public var loose: String
    /// A kunya (`abu ...`, `umm ...`): a weak identifier on its own.
    public var kunya: Bool
    /// Transliterated from Arabic script (no short vowels; look-alike letters ambiguous).
    public var arabic: Bool = false
    /// Read from Arabic script: the skeleton with an h after s, z, t, d, k, g or p read as a letter of its own, where
    /// that differs ("shrawy" from صحراوي: `srw`, Sahraoui — not ش). Against a Latin spelling either skeleton may meet.
    public var skeleton2: String? = nil
    /// A Latin spelling's Slavic reading (`NameModel.slavicReading`) where its skeleton is `skeleton2`: compared
    /// instead of the spelling when that skeleton is the one that meets.
    public var slavic: String? = nil
    /// A single letter (an initial).
    public var initial: Bool
    /// A Latin spelling no variant group holds, one typo from a spelling exactly one group holds (`nearGroup`):
    /// that group ("hsusein": Husein, so Husayn).
    public var near: String? = nil
}

/// A name prepared for matching (SPEC §3 name, issue 7): the normalised tokens, the terms after particles are
/// mapped to symbols and honorifics set aside, and whether the name is weak (one term, or a kunya only).
public struct NameForm: Sendable {
    public var tokens: [String]
    public var terms: [NameTerm]
    public var honorifics: [String]
    public var weak: Bool {
        let content = terms.filter { !$0.initial }
        return content.count <= 1 || content.allSatisfy(\.kunya)
    }
}

public enum NameModel {
    /// The particles, as the shared symbols they stand for.
    static let particles: [String: String] = {
        var m: [String: String] = [:]
        for a in ["al", "el", "ul", "il", "ad", "ar", "as", "at", "az", "an", "ash", "ed", "er", "es", "ez", "l"] {
            m[a] = "AL"
        }
        for b in ["bin", "ben", "ibn", "ould", "walad", "bint", "ibnu", "bn", "ibni", "binti", "abn", "wld"] {
            m[b] = "BIN"
        }
        for a in ["abu", "abou", "abo", "aboo", "bou", "abi", "abw"] { m[a] = "ABU" }
        for a in ["abd", "abdul", "abdel", "abdal", "abdoul", "abdur", "abdil", "abdol", "abdu", "bd"] { m[a] = "ABD" }
        for u in ["umm", "um", "oum", "om", "omm", "ummu"] { m[u] = "UMM" }
        return m
    }()

    /// Honorifics and titles, set aside.
    static let honorifics: Set<String> = [
        "dr", "doctor", "docteur", "sheikh", "shaykh", "sheik", "shaikh", "cheikh", "cheik", "shaych", "hajji", "haji",
        "hadj", "hajj", "hadji", "el-hadj", "mullah", "mulla", "mollah", "molla", "emir", "maulana", "mawlana",
        "mawlawi", "maulvi", "mufti", "ustadh", "ustaz", "col", "colonel", "gen", "general", "mr", "mrs", "ms", "sir",
        "prof", "professor", "qari", "hafiz", "sayyed", "syed", "imam",
        // as transliterated from Arabic script
        "mla", "mlla", "shykh", "hajy", "hjy", "haj", "dktwr", "alhaj", "alshykh", "almla", "qary", "syd", "mwlwy",
        "mwlana",
    ]

    /// Titles long enough to be recognised when misspelt by one letter (not those that are also given names).
    static let longHonorifics = [
        "sheikh", "shaykh", "shaikh", "cheikh", "mullah", "maulana", "mawlana", "mawlawi", "maulvi", "hajji", "hadji",
        "colonel", "doctor", "docteur", "general", "professor", "ustadh",
    ]

    static func misspeltHonorific(_ t: String) -> Bool {
        guard t.utf8.count >= 5, variants[t] == nil else { return false }
        return longHonorifics.contains { $0.first == t.first && jaroWinkler($0, t) >= 0.9 }
    }

    /// Given-name variant groups (generated: scripts/gen_name_variants.py).
    static let variants: [String: String] = {
        guard let url = Bundle.module.url(forResource: "namevariants", withExtension: "tsv"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return [:] }
        var m: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "\t")
            guard parts.count == 2 else { continue }
            for v in parts[1].split(separator: " ") { m[String(v)] = String(parts[0]) }
        }
        return m
    }()

    /// The variant group a spelling belongs to, if any.
    public static func variantGroup(_ token: String) -> String? { variants[token] }

    /// Prepares a name for matching; `script` (ISO 15924) when the text is already normalised from another script.
    public static func form(_ text: String, script: String? = nil) -> NameForm {
        form(tokens: NameNormalizer.tokenize(text), arabic: (script ?? NameNormalizer.dominantScript(text)) == "Arab")
    }

    /// Prepares a name already normalised (`NameNormalizer`'s tokens, joined by spaces), from the script it was
    /// written in: no second tokenizing pass.
    public static func form(normalized: String, script: String?) -> NameForm {
        form(tokens: normalized.split(separator: " ").map(String.init), arabic: script == "Arab")
    }

    static func form(tokens: [String], arabic: Bool) -> NameForm {
        var honors: [String] = []
        // Particles glued to what follows ("abdelhamid", "albaljiki" from Arabic script) come apart first.
        var parts: [String] = []
        for (n, t) in tokens.enumerated() {
            if tokens.count > 1 && (honorifics.contains(t) || misspeltHonorific(t)) {
                // A title after "Āl" (the family of) and its own article names a family, not a person's title: "Āl
                // al-Shaykh" (آل الشيخ, "al alshykh"; "Al al-Sheikh"). A title with its article alone is a title
                // ("al-Shaykh Usama", الملا).
                let glued = t.hasPrefix("al") && honorifics.contains(String(t.dropFirst(2)))
                let family =
                    n >= 1 && particles[tokens[n - 1]] == "AL"
                    && (glued || n >= 2 && particles[tokens[n - 2]] == "AL")
                if !family {
                    honors.append(t)
                    continue
                }
            }
            parts += split(t, arabic: arabic)
        }
        var terms: [NameTerm] = []
        var pending: String?
        for p in parts {
            if let sym = particles[p] {
                switch sym {
                case "AL", "BIN": continue
                default:
                    pending = sym
                    continue
                }
            }
            var t = term(p, prefix: pending)
            t.arabic = arabic
            if arabic {
                t.near = nil  // read from Arabic script: its own skeleton and consonant rules
                if t.skeleton.hasSuffix(skeleton(p)) {
                    let alt = t.skeleton.dropLast(skeleton(p).count) + skeleton(p, hDigraphs: false)
                    if alt != t.skeleton { t.skeleton2 = String(alt) }
                }
            } else if pending == nil && !t.initial {
                if let reading = slavicReadingIfAny(p) {
                    let alt = skeleton(reading)
                    if alt != t.skeleton && !alt.isEmpty {
                        t.skeleton2 = alt
                        t.slavic = reading
                    }
                }
            }
            terms.append(t)
            pending = nil
        }
        if let pending {
            if let first = terms.first, first.canon.firstIndex(of: ":") == nil, terms.count > 1 || pending != "ABU" {
                // A particle left at the end belongs to the first name of an inverted "SURNAME, Given Abd Al".
                var t = term(first.text, prefix: pending)
                t.arabic = first.arabic
                t.near = nil
                terms[0] = t
            } else if terms.isEmpty || pending != "ABD" {
                terms.append(term(pending.lowercased(), prefix: nil))
            }
        }
        return NameForm(tokens: tokens, terms: terms, honorifics: honors)
    }

    static let gluedABD = ["abdul", "abdel", "abdal", "abdoul", "abdur", "abdol", "abdil"]

    static func split(_ t: String, arabic: Bool) -> [String] {
        if variants[t] != nil || particles[t] != nil { return [t] }
        if arabic && t.hasPrefix("al") && t.count > 4 { return ["al"] + split(String(t.dropFirst(2)), arabic: true) }
        if arabic && t.hasPrefix("abd") && t.count > 5 {
            // "Abd" is always followed by al- and a name of God, however short (عبدالحی: Abd al-Hayy).
            let rest = String(t.dropFirst(3))
            if rest.hasPrefix("al") && rest.count >= 4 { return ["abd", "al", String(rest.dropFirst(2))] }
            return ["abd"] + split(rest, arabic: true)
        }
        if arabic && t.hasPrefix("abw") && t.count > 5 { return ["abw"] + split(String(t.dropFirst(3)), arabic: true) }
        for g in gluedABD where t.hasPrefix(g) && t.count >= g.count + 3 {
            return ["abd", String(t.dropFirst(g.count))]
        }
        if t.hasPrefix("abu") && t.count >= 6 && !arabic { return ["abu", String(t.dropFirst(3))] }
        // "al-Din" glued to its article ("Nor Eldin") is "Din".
        if ["eldin", "aldin", "uddin", "eddin", "eddine", "addin", "aldyn"].contains(t) { return ["din"] }
        // Persian "-zada" (son of) written onto the name (Akhunzada, Kakazada) meets "Akhund Zadah".
        for suffix in ["zada", "zadeh", "zadah", "zadh"] where t.hasSuffix(suffix) && t.count >= suffix.count + 3 {
            return [String(t.dropLast(suffix.count)), suffix]
        }
        // "X al-Din" written as one word (Salahaldin, Nuruddin, Nasreddine) meets "Salah al-Din".
        for suffix in ["aldin", "uddin", "eddine", "eddin", "addin", "aldeen", "uddeen", "edine", "aldyn"]
        where t.hasSuffix(suffix) && t.count >= suffix.count + 3 {
            return [String(t.dropLast(suffix.count)), "din"]
        }
        // A glued article before an assimilated letter ("elsseid", "assayed" is left alone: one vowel).
        if t.count >= 6, t.hasPrefix("al") || t.hasPrefix("el") {
            let c = Array(t)
            if c[2] == c[3], !"aeiouy".contains(c[2]) { return ["al", String(c[2...])] }
        }
        // Compounds with "allah" written as one word (Khayrallah, Nasrallah) meet their two-word spelling.
        for suffix in ["allah", "ullah", "ollah", "allh"] where t.hasSuffix(suffix) && t.count >= suffix.count + 3 {
            let stem = String(t.dropLast(suffix.count))
            // "Abbdullah", "Abdoallah": Abdullah misspelt, not a name before "Allah".
            return [skeleton(stem) == "bd" ? "abd" : stem, "allah"]
        }
        return [t]
    }

    static func term(_ base: String, prefix: String?) -> NameTerm {
        var canon = variants[base] ?? base
        var skel = skeleton(base)
        if prefix == "ABD",
            ["allah", "llah", "lah", "ullah", "alla", "ala", "allh", "llh"].contains(base)
                || base.first == "l" && skeleton(base) == "lh"
        {
            canon = "abdullah"
            skel = skeleton("abdullah")
            return NameTerm(
                text: "abd " + base, canon: canon, skeleton: skel, loose: loosen(skel), kunya: false, initial: false)
        }
        if let prefix {
            canon = prefix + ":" + canon
            skel = prefix + ":" + skel
        }
        let text = prefix.map { $0.lowercased() + " " + base } ?? base
        return NameTerm(
            text: text, canon: canon, skeleton: skel, loose: loosen(skel), kunya: prefix == "ABU" || prefix == "UMM",
            initial: base.count == 1 && prefix == nil, near: prefix == nil ? nearGroup(base) : nil)
    }

    /// Every spelling of the variant groups under itself and each of its one-letter deletions.
    static let variantKeys: [String: [String]] = {
        var m: [String: [String]] = [:]
        for v in variants.keys {
            let c = Array(v.utf8)
            m[v, default: []].append(v)
            for i in c.indices {
                var d = c
                d.remove(at: i)
                m[String(decoding: d, as: UTF8.self), default: []].append(v)
            }
        }
        return m
    }()

    /// The variant group of the spellings one typo from `base` (a letter changed, added or left out, two swapped —
    /// not at the end, which makes another name: Hassan, Hassani, Hassane — and with the same consonant skeleton,
    /// which a typo of the same name keeps and another name does not: Yasser, Naser), when `base` is six
    /// letters or more, in no group, and every such spelling is of one group. Issue 19: a re-spelled given name with
    /// a typo ("Hsusein") meets the group's other spellings ("Husayn") without listing typos.
    static func nearGroup(_ base: String) -> String? {
        let c = Array(base.utf8)
        guard c.count >= 6, c.count <= maxEditLength, variants[base] == nil,
            c.allSatisfy({ $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") })
        else { return nil }
        var found: String?
        let baseSkeleton = skeleton(base)
        func consider(_ key: String) -> Bool {
            for v in variantKeys[key] ?? [] {
                let w = Array(v.utf8)
                let alike = c.withUnsafeBufferPointer { x in w.withUnsafeBufferPointer { y in withinOneEdit(x, y) } }
                let atEnd = w.last != c.last || w.count != c.count && (c.starts(with: w) || w.starts(with: c))
                // The same consonant skeleton too: Yasser is not Naser, nor Ghassan Hassan, Marina Maryam.
                // A letter left out or two swapped (the typos of issue 19) may lose a consonant from the skeleton
                // (Mohaed, Mohamed); a letter changed or added must keep it.
                guard alike && !atEnd, let g = variants[v] else { continue }
                if skeleton(v) != baseSkeleton {
                    let slip = w.count == c.count + 1 || w.count == c.count && w.sorted() == c.sorted()
                    if !slip { continue }
                }
                if found != nil && found != g { return false }
                found = g
            }
            return true
        }
        guard consider(base) else { return nil }
        for i in c.indices {
            var d = c
            d.remove(at: i)
            guard consider(String(decoding: d, as: UTF8.self)) else { return nil }
        }
        return found
    }

    /// Two terms of which one is a near spelling (`NameTerm.near`) of the other's group, or both of one group.
    public static func nearGroups(_ q: NameTerm, _ e: NameTerm) -> Bool {
        if let n = q.near, n == e.canon || n == e.near { return true }
        if let n = e.near, n == q.canon { return true }
        return false
    }

    static func loosen(_ skel: String) -> String {
        var out: [Character] = []
        for c in skel {
            let m: Character =
                switch c {
                case "t", "z": "d"
                case "S": "s"
                case "K": "k"
                case "G", "j": "k"
                default: c
                }
            if out.last != m { out.append(m) }
        }
        return String(out)
    }

    /// The consonant skeleton of a Latin-letter token (see `NameTerm.skeleton`).
    public static func skeleton(_ token: String) -> String { skeleton(token, hDigraphs: true) }

    /// A Latin spelling read as the English romanisation of a Slavic name would write it, for its second skeleton
    /// (`NameTerm.skeleton2`): the Swedish, German, Polish and Czech spellings of one Cyrillic letter are one —
    /// tj, tsj, cz (ч) as ch, sj, sz (ш) as sh, zj (ж) as zh, j (й, я, ю, е) as y (Jurij, Yuriy; an initial je as e:
    /// Jevgenij, Evgeniy), x as ks (Maxim, Maksim), and the patronymic's -vitj, -witsch, -wicz, -vic as
    /// -vich (Aleksejevitj, Alekseevich).
    public static func slavicReading(_ token: String) -> String { slavicReadingIfAny(token) ?? token }

    /// `slavicReading`, nil when it is the spelling itself (most names: no j, x, cz, sz or patronymic ending) —
    /// one pass over the bytes, no copy.
    static let patronymicEndings = ["vitsj", "vitsch", "witsch", "vitj", "wicz", "vicz", "vits", "vic"]

    static func slavicReadingIfAny(_ token: String) -> String? {
        let u = token.utf8
        var marked = false
        var prev: UInt8 = 0
        for b in u {
            guard b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") else { return nil }
            if b == UInt8(ascii: "j") || b == UInt8(ascii: "x")
                || b == UInt8(ascii: "z") && (prev == UInt8(ascii: "c") || prev == UInt8(ascii: "s"))
            {
                marked = true
            }
            prev = b
        }
        var ending: (drop: Int, add: String)?
        for from in patronymicEndings
        where u.count > from.utf8.count + 2 && u.suffix(from.utf8.count).elementsEqual(from.utf8) {
            ending = (from.utf8.count, "vich")
            break
        }
        if !marked && ending == nil { return nil }
        var b = Array(u)
        if let ending {
            b.removeLast(ending.drop)
            b += ending.add.utf8
        }
        // Cyrillic letters spelt with two letters, or x: as the English romanisation spells them.
        var out: [UInt8] = []
        out.reserveCapacity(b.count + 4)
        var i = 0
        func at(_ k: Int) -> UInt8 { k < b.count ? b[k] : 0 }
        while i < b.count {
            let c = b[i]
            let n = at(i + 1)
            if c == UInt8(ascii: "t") && n == UInt8(ascii: "s") && at(i + 2) == UInt8(ascii: "j") {
                out += "ch".utf8
                i += 3
            } else if n == UInt8(ascii: "j")
                && (c == UInt8(ascii: "t") || c == UInt8(ascii: "s") || c == UInt8(ascii: "z"))
            {
                out.append(c == UInt8(ascii: "t") ? UInt8(ascii: "c") : c)
                out.append(UInt8(ascii: "h"))
                i += 2
            } else if n == UInt8(ascii: "z") && (c == UInt8(ascii: "c") || c == UInt8(ascii: "s")) {
                out.append(c)
                out.append(UInt8(ascii: "h"))
                i += 2
            } else if c == UInt8(ascii: "x") {
                out += "ks".utf8
                i += 1
            } else {
                out.append(c)
                i += 1
            }
        }
        if out.count > 2 && out[0] == UInt8(ascii: "j") && out[1] == UInt8(ascii: "e") { out.removeFirst() }
        let innerJ = out.dropFirst().contains(UInt8(ascii: "j"))
        for k in out.indices where out[k] == UInt8(ascii: "j") {
            if k > 0 && (out[k - 1] == UInt8(ascii: "d") || out[k - 1] == UInt8(ascii: "z")) { continue }
            // An initial j is y only in a spelling that writes y as j inside too (Jurij, Jurjevitj): Jack, Jamal
            // and Juma are j.
            if k == 0 && !innerJ { continue }
            out[k] = UInt8(ascii: "y")
        }
        return out.elementsEqual(u) ? nil : String(decoding: out, as: UTF8.self)
    }

    /// The skeleton, with `hDigraphs` false reading s, z, t, d, k, g, p before h as two letters: in a spelling read
    /// from Arabic script "sh" is ش or س/ص with ح/ه (صحراوي "shrawy", Sahraoui; زهراني "zhrany", Zahrani).
    public static func skeleton(_ token: String, hDigraphs: Bool) -> String {
        // Over scalars (cheap to compare), not Characters: a name's tokens hold no combining marks.
        let s = Array(token.unicodeScalars)
        var out = String.UnicodeScalarView()
        var last: Unicode.Scalar?
        var i = 0
        func at(_ k: Int) -> Unicode.Scalar? { k < s.count ? s[k] : nil }
        while i < s.count {
            let c = s[i]
            let n = at(i + 1)
            var mapped: Unicode.Scalar?
            var step = 1
            switch (c, n) {
            case ("s", "c") where at(i + 2) == "h": mapped = "S"; step = 3
            case ("t", "c") where at(i + 2) == "h": mapped = "S"; step = 3
            case ("s", "h") where hDigraphs, ("c", "h"): mapped = "S"; step = 2
            case ("k", "h") where hDigraphs: mapped = "K"; step = 2
            case ("g", "h") where hDigraphs: mapped = "G"; step = 2
            case ("t", "h") where hDigraphs: mapped = "t"; step = 2
            case ("d", "h") where hDigraphs: mapped = "d"; step = 2
            case ("p", "h") where hDigraphs: mapped = "f"; step = 2
            case ("d", "j"), ("d", "z"),
                ("z", "h") where hDigraphs:
                mapped = "j"; step = 2  // Dzhokhar, Razhapovich
            case ("c", "k"): mapped = "k"; step = 2
            case ("q", "u") where at(i + 2).map({ "aeiou".unicodeScalars.contains($0) }) == true:
                mapped = "k"
                step = 2
            case ("c", "e"), ("c", "i"), ("c", "y"): mapped = "s"  // French and Spanish soft c (Lounici)
            default:
                switch c {
                case "a", "e", "i", "o", "u": mapped = nil
                case "y", "w": mapped = i == 0 ? c : nil
                case "q", "c", "k": mapped = "k"
                case "g": mapped = "j"
                case "p": mapped = "b"
                case "v": mapped = "f"
                case "x": mapped = "K"
                default: mapped = isLetterOrNumber(c) ? c : nil
                }
            }
            if let m = mapped, last != m {
                out.append(m)
                last = m
            }
            i += step
        }
        return String(out)
    }

    /// `Character.isLetter || isNumber` for one scalar, without the property lookup for ASCII.
    static func isLetterOrNumber(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII {
            return ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
        }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return c.properties.numericType != nil
        }
    }

    /// Jaro–Winkler similarity of two strings (bytes), prefix scale 0.1 over at most 4 characters.
    public static func jaroWinkler(_ a: String, _ b: String) -> Double {
        var a = a
        var b = b
        return a.withUTF8 { x in b.withUTF8 { y in jaroWinkler(x, y) } }
    }

    static func jaroWinkler(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Double {
        if x.isEmpty || y.isEmpty { return x.isEmpty && y.isEmpty ? 1 : 0 }
        if x.count == y.count && memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 { return 1 }
        let window = max(0, max(x.count, y.count) / 2 - 1)
        return withUnsafeTemporaryAllocation(of: Bool.self, capacity: x.count + y.count) { flags in
            flags.initialize(repeating: false)
            var matches = 0
            for i in 0..<x.count {
                let lo = max(0, i - window)
                let hi = min(y.count - 1, i + window)
                if lo > hi { continue }
                for j in lo...hi where !flags[x.count + j] && x[i] == y[j] {
                    flags[i] = true
                    flags[x.count + j] = true
                    matches += 1
                    break
                }
            }
            if matches == 0 { return 0 }
            var t = 0
            var k = 0
            for i in 0..<x.count where flags[i] {
                while !flags[x.count + k] { k += 1 }
                if x[i] != y[k] { t += 1 }
                k += 1
            }
            let m = Double(matches)
            let jaro = (m / Double(x.count) + m / Double(y.count) + (m - Double(t / 2)) / m) / 3
            var prefix = 0
            while prefix < min(4, min(x.count, y.count)) && x[prefix] == y[prefix] { prefix += 1 }
            return jaro + Double(prefix) * 0.1 * (1 - jaro)
        }
    }

    /// How alike two terms are, in [0, 1]: the same variant group 1; the same skeleton 0.92 (between Latin
    /// spellings only when they are alike too); against Arabic script the same loose skeleton 0.86; an initial and a
    /// name with that letter 0.75; a Latin spelling and the same with the article glued on (Alshami, Shami) 0.95; else Jaro–Winkler over spellings one edit apart (a letter changed, added, left
    /// out, or two swapped) or with skeletons of four or more one edit apart (Izmaylov, Ismailov) and, against Arabic
    /// script, over skeletons one edit apart or spellings with the same consonants — 0 below 0.87 (0.92 for Latin names of four letters or fewer; 0.84 against Arabic script).
    /// Between a spelling read from Arabic script and a Latin one, 0 when their written vowels disagree
    /// (`longVowelsAgree`).
    /// Bounding the edits is what lets an index find every alike term through keys (the spelling and its one-letter
    /// deletions) instead of comparing with all of them.
    public static func similarity(_ q: NameTerm, _ e: NameTerm) -> Double {
        let s = withoutNearGroups(q, e)
        return nearGroups(q, e) ? max(s, nearGroupSimilarity) : s
    }

    /// `similarity` but for `NameTerm.near`.
    static func withoutNearGroups(_ q: NameTerm, _ e: NameTerm) -> Double {
        if q.canon == e.canon { return 1 }
        let qp = q.canon.firstIndex(of: ":").map { q.canon[..<$0] }
        let ep = e.canon.firstIndex(of: ":").map { e.canon[..<$0] }
        if qp != ep {
            guard !q.arabic && !e.arabic, qp == nil && ep == "ABU" || qp == "ABU" && ep == nil else { return 0 }
            var a = q.text
            var b = e.text
            return a.withUTF8 { x in b.withUTF8 { y in kunyaGlued(x, y) } }
        }
        let arabic = q.arabic || e.arabic
        var qt = q.text
        var et = e.text
        var qs = q.skeleton
        var es = e.skeleton
        if q.arabic != e.arabic {
            // The Arabic one's second skeleton (h read apart) may meet the Latin one's.
            if q.arabic, let alt = q.skeleton2, alt == es { qs = alt }
            if e.arabic, let alt = e.skeleton2, alt == qs { es = alt }
        } else if !q.arabic && qs != es {
            // Two Latin spellings: either one's second (Slavic) reading may meet the other's, compared as read.
            if let alt = q.skeleton2, alt == es {
                qs = alt
                qt = q.slavic ?? qt
            } else if let alt = e.skeleton2, alt == qs {
                es = alt
                et = e.slavic ?? et
            } else if let a = q.skeleton2, let b = e.skeleton2, a == b {
                qs = a
                es = b
                qt = q.slavic ?? qt
                et = e.slavic ?? et
            }
        }
        return qt.withUTF8 { a in
            et.withUTF8 { b in
                if q.arabic != e.arabic
                    && !(q.arabic ? longVowelsAgree(arabic: a, latin: b) : longVowelsAgree(arabic: b, latin: a))
                {
                    return 0
                }
                return qs.withUTF8 { x in
                    es.withUTF8 { y in
                        similarity(
                            text: a, b, skeleton: x, y, loose: arabic && q.loose == e.loose, arabic: arabic,
                            initial: q.initial || e.initial, short: min(q.text.count, e.text.count) <= 4)
                    }
                }
            }
        }
    }

    /// Two spellings met through a variant group one typo away (`NameTerm.near`).
    public static let nearGroupSimilarity = 0.9

    /// How two alike terms met, for an analyst judging a hit (issue 19): `same` (one spelling), `variant group` (two
    /// spellings of one given name: Mohamed / Muhammad), `transliteration` (one side read from Arabic script, met by
    /// its consonants), `initial`, `article glued` (Alshami / Al-Shami), `edit` (one letter changed, added, left out,
    /// or two swapped), `skeleton` (the same consonant skeleton: Hussein / Husayn), `skeleton (look-alike letters)`
    /// (k/q/g/j, t/d/z merged), `spelling` (alike letters in order, Jaro–Winkler); `variant group, one typo`
    /// (Hsusein: Husein with a typo, so Husayn) before `edit` when only it makes them alike, and `kunya glued, one
    /// typo` (Abkuar / Abukar, read as "Abu Kar"). The first that holds, in
    /// that order; `similarity` gives the figure.
    public static func how(_ q: NameTerm, _ e: NameTerm) -> String {
        if q.text == e.text { return "same" }
        if q.canon == e.canon { return "variant group" }
        if q.arabic != e.arabic { return "transliteration" }
        if q.initial || e.initial { return "initial" }
        var a = q.text
        var b = e.text
        if a.withUTF8({ x in b.withUTF8 { y in articleGlued(x, y) } }) { return "article glued" }
        if nearGroups(q, e) && withoutNearGroups(q, e) < nearGroupSimilarity { return "variant group, one typo" }
        if q.kunya != e.kunya { return "kunya glued, one typo" }
        if a.withUTF8({ x in b.withUTF8 { y in withinOneEdit(x, y) } }) { return "edit" }
        if !q.skeleton.isEmpty && q.skeleton == e.skeleton { return "skeleton" }
        if (q.arabic || e.arabic) && q.loose == e.loose { return "skeleton (look-alike letters)" }
        return "spelling"
    }

    /// `similarity` over the bytes of two terms of one particle class whose variant groups differ.
    public static func similarity(
        text a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>, skeleton x: UnsafeBufferPointer<UInt8>,
        _ y: UnsafeBufferPointer<UInt8>, loose: Bool, arabic: Bool, initial: Bool, short: Bool
    ) -> Double {
        // Between two Latin spellings a shared skeleton counts only when the spellings are alike too (Kanaan and
        // Kony, Siavash and Isaevich share one); against unvocalised Arabic it is most of the evidence.
        let sameSkeleton = !x.isEmpty && x.count == y.count && memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0
        var textJW = -1.0
        if sameSkeleton {
            if arabic { return x.count >= 2 ? 0.92 : 0.85 }
            // One edit apart, four letters or more: Jaro–Winkler is at least 0.83 without computing it.
            if min(a.count, b.count) >= 4 && withinOneEdit(a, b) { return x.count >= 2 ? 0.92 : 0.85 }
            textJW = jaroWinkler(a, b)
            if textJW >= 0.75 { return x.count >= 2 ? 0.92 : 0.85 }
        }
        if loose && looseLength(x) >= 2 { return 0.86 }
        if initial { return a.first == b.first ? 0.75 : 0 }
        if !arabic && articleGlued(a, b) { return 0.95 }
        var s = 0.0
        let editable = max(a.count, b.count) <= maxEditLength
        let skeletonEditable = max(x.count, y.count) <= maxEditLength
        if editable && withinOneEdit(a, b) || arabic && sameConsonants(a, b)
            || skeletonEditable && x.count >= 4 && y.count >= 4 && withinOneEdit(x, y)
            || editable && !arabic && twoEditsLong(a, b)
        {
            s = textJW >= 0 ? textJW : jaroWinkler(a, b)
        }
        if arabic && skeletonEditable && x.count >= 3 && y.count >= 3 && withinOneEdit(x, y) {
            s = max(s, 0.95 * jaroWinkler(x, y))
        }
        // Between Latin spellings, short names are alike by chance (Walid and Ali, Sami and Ami): they need more.
        return s >= (arabic ? 0.84 : short ? 0.92 : 0.87) ? s : 0
    }

    /// Arabic script leaves short vowels out but writes long ones: a و (read `w`) after the first letter is ū, ō or w,
    /// a ي (`y`) ī, ē or y, and a word-final ا, ى or ة (`a`) a final vowel; a final ي is the ī of a nisba or a name
    /// (Muhammadi, Hadi). A Latin spelling of the same name writes a vowel for each: so a Latin spelling with no
    /// u/o/w/v where the Arabic has a و, no i/y/e/j where it has a ي, no final i/y/e where it ends in ي, ending in
    /// a consonant where it ends in a vowel, or ending in i/y where it ends in a consonant, spells another name that
    /// shares its consonants (Hassan is not حسين Husayn, Said not سعود Saud, Mohammad not محمدي Muhammadi, Malik not
    /// مليكا Malika, Rashidi not راشد Rashid). Only the letters after a particle prefix ("abd ", "abu ") are read.
    public static func longVowelsAgree(arabic a: UnsafeBufferPointer<UInt8>, latin l: UnsafeBufferPointer<UInt8>)
        -> Bool
    {
        func word(_ b: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
            guard let sp = b.lastIndex(of: UInt8(ascii: " ")) else { return b }
            return UnsafeBufferPointer(rebasing: b[(sp + 1)...])
        }
        let a = word(a)
        let l = word(l)
        guard a.count >= 2, l.count >= 2 else { return true }
        func isVowel(_ c: UInt8) -> Bool {
            c == UInt8(ascii: "a") || c == UInt8(ascii: "e") || c == UInt8(ascii: "i") || c == UInt8(ascii: "o")
                || c == UInt8(ascii: "u") || c == UInt8(ascii: "y")
        }
        func latinHas(_ set: String) -> Bool { l.contains { set.utf8.contains($0) } }
        // The Latin spelling's final vowels ("ai" of Karzai, "" of Hassan).
        var tail = l.count
        while tail > 0 && isVowel(l[tail - 1]) { tail -= 1 }
        func tailHas(_ set: String) -> Bool { l[tail...].contains { set.utf8.contains($0) } }
        // A word-initial vowel is written too, with alif or ayn (read a, i, u): a Latin spelling that begins with a
        // vowel where the Arabic begins with a consonant, or the other way round, is another name (Ahmed is not حمد
        // Hamad, Amin not معين Muin, Ibrahim not پرهام Parham) — but for و and ي read as a vowel (Ouali, Iyad) and an
        // article glued onto the Latin spelling (Elhassan, Essabar).
        func plainVowel(_ c: UInt8) -> Bool { c != UInt8(ascii: "y") && isVowel(c) }
        if plainVowel(a[0]) != plainVowel(l[0]) {
            let glued =
                plainVowel(l[0]) && l.count >= 4
                && (l[1] == UInt8(ascii: "l") || l[1] == l[2] && !isVowel(l[1]))
            let semivowel =
                a[0] == UInt8(ascii: "w") && (l[0] == UInt8(ascii: "o") || l[0] == UInt8(ascii: "u"))
                || a[0] == UInt8(ascii: "y") && (l[0] == UInt8(ascii: "i") || l[0] == UInt8(ascii: "e"))
            // Persian and Pashto write an alif before a word-initial consonant cluster (استانکزی Stanekzai).
            let prosthetic =
                a.count >= 3 && a[0] == UInt8(ascii: "a") && !isVowel(a[1]) && !isVowel(a[2]) && l[0] == a[1]
                && l[1] == a[2]
            if !glued && !semivowel && !prosthetic { return false }
        }
        let rest = a.dropFirst()
        if rest.contains(UInt8(ascii: "w")) && !latinHas("uowv") { return false }
        if rest.contains(UInt8(ascii: "y")) && !latinHas("iyej") { return false }
        switch a[a.count - 1] {
        // A final ي or ی: ī, or in Persian and Egyptian spelling the ā of a final ى (عیسی Isa, موسی Musa).
        case UInt8(ascii: "y"): if !tailHas("iyea") { return false }
        case UInt8(ascii: "w"):
            if !tailHas("uo") && l[l.count - 1] != UInt8(ascii: "w") && l[l.count - 1] != UInt8(ascii: "v") {
                return false
            }
        case UInt8(ascii: "a"): if !isVowel(l[l.count - 1]) && l[l.count - 1] != UInt8(ascii: "h") { return false }
        case UInt8(ascii: "i"), UInt8(ascii: "e"): break
        default:
            if l.count >= 3 && (l[l.count - 1] == UInt8(ascii: "i") || l[l.count - 1] == UInt8(ascii: "y")) {
                return false
            }
        }
        return true
    }

    /// Two consonant skeletons, the first read from Arabic script, that differ only where the Arabic letter has the
    /// Latin look-alike a romanisation gives it: د ض ذ (d) as z or t (Fazal, Zakir, Ahmet), ز ظ (z) as d (Kadhim),
    /// ش (sh) as s (Turkish ş), ق ك (k) as g or gh (Gasmi, Ghasem), غ (gh) as g, خ (kh) as k. Not the other way
    /// round: an Arabic س is not a Latin sh, nor a ج a Latin q; and a g, not a j (both `j` in a skeleton), for ق and
    /// غ. `latin` is the Latin spelling, `latinSkeleton` its skeleton.
    public static func lookAlikesAgree(
        arabic x: UnsafeBufferPointer<UInt8>, latin text: UnsafeBufferPointer<UInt8>,
        latinSkeleton y: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        guard x.count == y.count, !x.isEmpty else { return false }
        for i in 0..<x.count where x[i] != y[i] {
            switch (Unicode.Scalar(x[i]), Unicode.Scalar(y[i])) {
            case ("d", "z"), ("d", "t"), ("z", "d"), ("S", "s"), ("k", "G"), ("K", "k"): continue
            case ("k", "j"), ("G", "j"): if text.contains(UInt8(ascii: "g")) { continue } else { return false }
            default: return false
            }
        }
        return true
    }

    /// One Latin spelling the other with the article written onto it: "alshami" and "shami" (Al-Shami), "elsayed"
    /// and "sayed" — what follows the article five letters or more (Alford is not Ford, Alissa not Issa), not ending
    /// in "o", which romanised Arabic names do not (Alfredo is not Fredo, Alberto not Berto, Alfonso not Fonso).
    /// (From Arabic script the article is split off when the name is read.)
    public static func articleGlued(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        let (s, l) = a.count <= b.count ? (a, b) : (b, a)
        guard s.count >= 5, l.count == s.count + 2, l[1] == UInt8(ascii: "l"),
            l[0] == UInt8(ascii: "a") || l[0] == UInt8(ascii: "e"), s[s.count - 1] != UInt8(ascii: "o")
        else { return false }
        return memcmp(s.baseAddress!, l.baseAddress! + 2, s.count) == 0
    }

    /// A Latin name and a kunya written as one word with a typo: "abkuar" and "abu kar" (read from "Abukar", a given
    /// name whose glued "abu" came apart) — the kunya's spelling without its space one edit from the name, both of
    /// six letters or more: Jaro–Winkler over the two, 0 below 0.87. Any other pair across a kunya: 0.
    public static func kunyaGlued(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Double {
        let (k, o) = a.starts(with: "abu ".utf8) ? (a, b) : (b, a)
        guard k.starts(with: "abu ".utf8), !o.starts(with: "abu ".utf8), o.count >= 6, k.count >= 7,
            k.count <= maxEditLength + 1, o.count <= maxEditLength
        else { return 0 }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: k.count - 1) { g in
            g[0] = k[0]
            g[1] = k[1]
            g[2] = k[2]
            for i in 4..<k.count { g[i - 1] = k[i] }
            let glued = UnsafeBufferPointer(g)
            guard withinOneEdit(glued, o) else { return 0 }
            let s = jaroWinkler(glued, o)
            return s >= 0.87 ? s : 0
        }
    }

    /// The spelling after a glued article (`articleGlued`), if the term has one to give.
    public static func afterArticle(_ text: String) -> Substring? {
        guard text.utf8.count >= 7, text.hasPrefix("al") || text.hasPrefix("el") else { return nil }
        return text.dropFirst(2)
    }

    /// The length of the loose skeleton, counted on the skeleton (look-alike runs merge).
    static func looseLength(_ x: UnsafeBufferPointer<UInt8>) -> Int {
        var n = 0
        var last: UInt8 = 0
        for c in x {
            let m = looseByte(c)
            if m != last { n += 1 }
            last = m
        }
        return n
    }

    static func looseByte(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "t"), UInt8(ascii: "z"): UInt8(ascii: "d")
        case UInt8(ascii: "S"): UInt8(ascii: "s")
        case UInt8(ascii: "K"), UInt8(ascii: "G"), UInt8(ascii: "j"): UInt8(ascii: "k")
        default: c
        }
    }

    /// One edit apart or equal: a letter changed, added or left out, or two neighbours swapped.
    public static func withinOneEdit(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        let (s, l) = a.count <= b.count ? (a, b) : (b, a)
        if l.count - s.count > 1 { return false }
        var i = 0
        while i < s.count && s[i] == l[i] { i += 1 }
        if i == s.count { return true }
        if s.count == l.count {
            // Changed at i, or i and i + 1 swapped.
            var j = s.count - 1
            while j > i && s[j] == l[j] { j -= 1 }
            if j == i { return true }
            return j == i + 1 && s[i] == l[i + 1] && s[i + 1] == l[i]
        }
        // l has one letter more at i.
        var j = i
        while j < s.count && s[j] == l[j + 1] { j += 1 }
        return j == s.count
    }

    /// The longest spelling compared by edits: the index keys a term's spellings with letters left out only up to
    /// this length (a term of thousands of letters would post millions of keys), so longer ones are alike only by
    /// their skeleton or group — whatever two terms `similarity` finds alike, the index finds through a shared key.
    public static let maxEditLength = 24

    /// Two long Latin spellings two edits apart (issue 19: a re-spelling and a typo in one patronymic): both of eight
    /// letters or more, one of nine or more, at most two letters changed, added or left out or neighbours swapped
    /// (`withinTwoEdits`). Jaro–Winkler then decides, as for one edit.
    static func twoEditsLong(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        min(a.count, b.count) >= 8 && max(a.count, b.count) >= 9 && withinTwoEdits(a, b)
    }

    /// At most two edits apart: letters changed, added or left out, or two neighbours swapped, each one edit
    /// (optimal string alignment distance). A swap is one slip of the hand, as `withinOneEdit` counts it; the
    /// index still finds every such pair, through spellings with up to two letters left out on each side.
    public static func withinTwoEdits(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        let (s, l) = a.count <= b.count ? (a, b) : (b, a)
        if l.count - s.count > 2 { return false }
        let m = l.count
        if s.isEmpty { return m <= 2 }
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * (m + 1)) { buf in
            var older = buf.baseAddress!
            var prev = older + (m + 1)
            var cur = prev + (m + 1)
            for j in 0...m {
                prev[j] = j
                older[j] = j
            }
            for i in 1...s.count {
                cur[0] = i
                var rowMin = cur[0]
                for j in 1...m {
                    let cost = s[i - 1] == l[j - 1] ? 0 : 1
                    cur[j] = min(prev[j - 1] + cost, prev[j] + 1, cur[j - 1] + 1)
                    if i > 1 && j > 1 && s[i - 1] == l[j - 2] && s[i - 2] == l[j - 1] {
                        cur[j] = min(cur[j], older[j - 2] + 1)
                    }
                    rowMin = min(rowMin, cur[j])
                }
                if rowMin > 2 { return false }
                let t = older
                older = prev
                prev = cur
                cur = t
            }
            return prev[m] <= 2
        }
    }

    /// The same letters once vowels are left out ("th" and Taha).
    static func sameConsonants(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        func vowel(_ c: UInt8) -> Bool {
            c == UInt8(ascii: "a") || c == UInt8(ascii: "e") || c == UInt8(ascii: "i") || c == UInt8(ascii: "o")
                || c == UInt8(ascii: "u")
        }
        var i = 0
        var j = 0
        var n = 0
        while true {
            while i < a.count && vowel(a[i]) { i += 1 }
            while j < b.count && vowel(b[j]) { j += 1 }
            if i == a.count || j == b.count { return i == a.count && j == b.count && n >= 2 }
            if a[i] != b[j] { return false }
            i += 1
            j += 1
            n += 1
        }
    }
}
