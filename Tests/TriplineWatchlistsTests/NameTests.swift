import Foundation
import Testing
import TriplineSelectors
import TriplineTestSupport

@testable import TriplineWatchlists

/// Fuzzy person names (issue 7): normalisation, scoring, and the evaluation on the real UN list.
@Suite("person names")
struct NameTests {
    static func index(_ names: [String], floor: Double = NameIndex.defaultMinScore) -> NameIndex {
        NameIndex(
            names.enumerated().map {
                (
                    NameNormalizer.tokenize($0.element).joined(separator: " "),
                    HitRef(list: 0, entry: Int32($0.offset), selector: 0)
                )
            }, floor: floor)
    }

    static func best(_ idx: NameIndex, _ q: String, min: Double = 0.8) -> NameMatch? {
        idx.query(NameModel.form(q)) { _ in min }.first
    }

    /// Issue 19, item 3: a term one edit away (a letter changed, added, left out, or two neighbours swapped) from a
    /// listed term of six letters or more counts as that term; two edits away from one of nine or more (both eight or
    /// more), it counts when the rest of the name agrees.
    @Test func typosCountAsTheTerm() throws {
        func sim(_ a: String, _ b: String) -> Double {
            NameModel.similarity(NameModel.form(a).terms[0], NameModel.form(b).terms[0])
        }
        var failed: [String] = []
        for listed in ["khalil", "rezvani", "hussein", "tikriti", "baljiki", "nazarbayev", "kovalchuk"] {
            let w = Array(listed)
            var edits = Set<String>()
            for i in w.indices {
                edits.insert(String(w[..<i] + w[(i + 1)...]))  // left out
                edits.insert(String(w[..<i] + ["x"] + w[(i + 1)...]))  // changed
                edits.insert(String(w[..<i] + ["y"] + w[i...]))  // added
                if i + 1 < w.count { edits.insert(String(w[..<i] + [w[i + 1], w[i]] + w[(i + 2)...])) }  // swapped
            }
            for e in edits.sorted() where e != listed && sim(e, listed) < 0.87 { failed.append("\(e)~\(listed)") }
        }
        #expect(failed.isEmpty, "\(failed)")
        // Two edits in a long term: alike, and the whole name found where the rest agrees; not in a short one.
        #expect(sim("Bakhtiyarovich", "Bahtiyarovic") >= 0.87)
        #expect(sim("Kovalcuk", "Kowalchuk") >= 0.87)
        #expect(sim("Hassan", "Hosain") == 0)
        // A swap of neighbours is one edit of the two (a letter left out and a swap: Evgenivcih / Evgenievich).
        func two(_ a: String, _ b: String) -> Bool {
            var x = a
            var y = b
            return x.withUTF8 { p in y.withUTF8 { q in NameModel.withinTwoEdits(p, q) } }
        }
        #expect(two("evgenivcih", "evgenievich") && two("bacdefghji", "abcdefghij"))
        #expect(!two("bacdefhgji", "abcdefghij") && !two("evgenivcihx", "evgenievich"))
        #expect(sim("Evgenivcih", "Evgenievich") >= 0.87)
        let swapped = Self.index(["Vadim Evgenievich SHADURA", "Vadim Petrovich SHADRIN"])
        let f = NameModel.form("Vadimm Evgenivcih Shadura")
        #expect(swapped.query(f) { _ in 0.8 }.first?.ref.entry == 0)
        #expect(Set(swapped.query(f) { _ in 0.8 }.map(\.ref)) == Set(swapped.scan(f, minScore: 0.8).map(\.ref)))
        // Past 24 letters spellings are not compared by edits (the index keys no deletions of them): whatever the
        // scorer finds alike, the index finds (the review's 24/25-letter pairs), for one and two edits.
        let long = "Kristobalxmnprstvwzqbdfgk"  // 25 letters, a skeleton of 21
        let listed = Self.index(["Ruslan " + String(long.dropLast()), "Ruslan " + long])
        for q in [long + "h", "X" + long.dropFirst(), String(long.dropLast(2)) + "hh", String(long.dropFirst(2))] {
            let form = NameModel.form("Ruslan " + q)
            let found = Set(listed.query(form) { _ in NameIndex.defaultMinScore }.map(\.ref))
            #expect(found == Set(listed.scan(form, minScore: NameIndex.defaultMinScore).map(\.ref)), "\(q)")
        }
        let idx = Self.index(["Ruslan Bakhtiyarovich AKHMEDOV", "Ruslan Ivanovich PETROV"])
        #expect(Self.best(idx, "Ruslan Bahtiyarovic Akhmedov")?.ref.entry == 0)
        #expect(Self.best(idx, "Ruslan Bahtiyarovic Petrenko") == nil)
    }

    /// Issue 19, item 3, by rule rather than by a longer list: an article written onto the name (Alshami, Elsayed)
    /// meets the name without it; a spelling one typo from a variant group's spelling meets the group; a typo of a
    /// glued kunya meets it. The issue's misses, and what must not meet.
    @Test func gluedArticlesAndKunyasByRule() throws {
        let idx = Self.index([
            "AL-SHAMI, Ahmad", "ADAN, Abukar Ali", "Abu Ali Hassan", "El Sayed Mahmoud", "Xander Petrov",
            "HUSAYN, 'Ali",
        ])
        #expect(Self.best(idx, "Ahmed Alshami")?.ref.entry == 0)
        #expect(Self.best(idx, "AHMET ALSHAMI")?.ref.entry == 0)
        #expect(Self.best(idx, "Abukar Ali Adan")?.ref.entry == 1)
        #expect(Self.best(idx, "Abuali Hassan")?.ref.entry == 2)
        #expect(Self.best(idx, "Elsayed Mahmoud")?.ref.entry == 3)
        #expect(Self.best(idx, "Alexander Petrov") == nil)  // "exander" is not "xander"
        #expect(Self.best(idx, "Ahmad Alshamiri") == nil)
        // "Abukar" is read as the kunya "Abu Kar" (a glued "abu" comes apart): a typo of it still meets it.
        #expect(Self.best(idx, "Abkuar Aly Adan")?.ref.entry == 1)
        #expect(Self.best(idx, "Abkuar Hassan") == nil)  // not the kunya of "Abu Ali Hassan"
        // A given name re-spelled and mistyped: "Hsusein" is Husein (of Husayn's group) with a typo.
        let h = try #require(Self.best(idx, "ALY HSUSEIN"))
        #expect(h.ref.entry == 5)
        #expect(
            h.alignment.map { "\($0.0)/\($0.1)/\($0.3)" }.sorted() == [
                "aly/ali/variant group", "hsusein/husayn/variant group, one typo",
            ])
        // Not at a name's end (Hassani is not Hassan), nor another name one letter away (the review's, from the EU
        // list: Yasser/Nasir, Ghassan/Hasan, Marina/Maryam, Jassem/Qasim, Israel/Ismail, Peyman/Ayman).
        #expect(NameModel.form("Hassani").terms[0].near == nil)
        #expect(NameModel.form("Hsusein").terms[0].near == "husayn")
        // A letter left out may take a consonant with it (Mohaed: Mohamed less its m); a letter added or changed
        // must keep the skeleton (below).
        #expect(NameModel.form("Mohaed").terms[0].near == "muhammad")
        for other in ["Yasser", "Ghassan", "Marina", "Jassem", "Israel", "Peyman", "Zuhair", "Mehsud", "Waheed"] {
            #expect(NameModel.form(other).terms[0].near == nil, "\(other)")
        }
        let distinct = Self.index(["Nasir Ahmad", "Ford Smith", "Issa Karimov"])
        #expect(Self.best(distinct, "Yasser Ahmad") == nil)
        #expect(Self.best(distinct, "Alford Smith") == nil)  // the article rule needs five letters after it
        #expect(Self.best(distinct, "Alissa Karimov") == nil)
        // Latin given names that begin as the article does (the review's Alfredo/Fredo, Alberto/Berto).
        let latin = Self.index(["Fredo Garcia", "Berto Ruiz", "Fonso Diaz"])
        for q in ["Alfredo Garcia", "Alberto Ruiz", "Alfonso Diaz"] { #expect(Self.best(latin, q) == nil, "\(q)") }
        let m = try #require(Self.best(idx, "Ahmed Alshami"))
        #expect(
            m.alignment.map { "\($0.0)/\($0.1)/\($0.3)" }.sorted() == [
                "ahmed/ahmad/variant group", "alshami/shami/article glued",
            ])
        // And the index finds exactly what the scan finds for them.
        for q in [
            "Ahmed Alshami", "Shami Ahmad", "Abkuar Aly Adan", "Elsayed Mahmoud", "Alsayed Mahmoud", "Aly Hsusein",
        ] {
            let form = NameModel.form(q)
            #expect(
                Set(idx.query(form) { _ in 0.8 }.map(\.ref)) == Set(idx.scan(form, minScore: 0.8).map(\.ref)), "\(q)")
        }
    }

    /// Issue 19, EU false positives: Arabic script writes long vowels (و ū/ō/w, ي ī/ē/y, a final ا/ى/ة) and leaves
    /// short ones out, so a Latin spelling that writes none where the Arabic has one is another name with the same
    /// consonants; and a title after "Āl" and its article (آل الشيخ) is a family name, not a title set aside.
    @Test func crossScriptLongVowels() throws {
        func agree(_ arabic: String, _ latin: String) -> Bool {
            let a = NameModel.form(arabic).terms[0]
            #expect(a.arabic)
            var x = a.text
            var y = NameModel.form(latin).terms[0].text
            return x.withUTF8 { p in y.withUTF8 { q in NameModel.longVowelsAgree(arabic: p, latin: q) } }
        }
        for (arabic, same, other) in [
            ("حسين", "Hussein", "Hassan"), ("سعود", "Saud", "Said"), ("محمدي", "Mohammadi", "Mohammad"),
            ("مليكا", "Malika", "Malik"), ("راشد", "Rashid", "Rashidi"), ("عيسى", "Issa", "Aws"),
            ("عیسی", "Isa", "Asas"), ("ربيع", "Rabi", "Rab"), ("داوود", "Daoud", "Dad"),
        ] {
            #expect(agree(arabic, same), "\(arabic) \(same)")
            #expect(!agree(arabic, other), "\(arabic) \(other)")
        }
        // Whole names: the EU evaluation's false positives no longer hit; the UN's original-script names still do.
        let idx = Self.index(["Mohammad NAIM", "Ali OMAR", "Mohammad Essa AKHUND", "Mansur SAADI", "Muslim"])
        #expect(Self.best(idx, "نیما محمدی") == nil)  // Nima Mohammadi
        #expect(Self.best(idx, "ميرا آل علي") == nil)  // Mira Al Ali
        #expect(Self.best(idx, "محمد نعيم")?.ref.entry == 0)
        #expect(Self.best(idx, "عمر علي")?.ref.entry == 1)
        #expect(Self.best(idx, "محمد عیسی آخوند")?.ref.entry == 2)
        #expect(Self.best(idx, "منصور سعدي")?.ref.entry == 3)
        // Āl al-Shaykh, the family: its title is a name term; a title before the name is still set aside.
        #expect(NameModel.form("مسلم آل الشيخ").terms.map(\.text) == ["mslm", "shykh"])
        #expect(NameModel.form("Muslim Al al-Sheikh").terms.map(\.text) == ["muslim", "sheikh"])
        #expect(NameModel.form("الشيخ أسامة").honorifics == ["alshykh"])
        #expect(NameModel.form("Ahmad al-Sayyed").honorifics == ["sayyed"])
        #expect(NameModel.form("SHEIKH, Elshafee El").honorifics == ["sheikh"])
        #expect(Self.best(idx, "مسلم آل الشيخ") == nil)
        for q in ["نیما محمدی", "ميرا آل علي", "محمد نعيم", "محمد عیسی آخوند", "مسلم آل الشيخ"] {
            let form = NameModel.form(q)
            #expect(
                Set(idx.query(form) { _ in 0.8 }.map(\.ref)) == Set(idx.scan(form, minScore: 0.8).map(\.ref)), "\(q)")
        }
    }

    /// Issue 19, EU false positives: a word-initial vowel is written in Arabic script (alif, ayn), and a match across
    /// scripts needs two terms met by their consonants (the same skeleton, a group, or look-alike letters as Latin
    /// spells that Arabic letter), or its one term where a name has one — not one term and a near miss.
    @Test func crossScriptNeedsTwoTerms() throws {
        func agree(_ arabic: String, _ latin: String) -> Bool {
            var x = NameModel.form(arabic).terms[0].text
            var y = NameModel.form(latin).terms[0].text
            return x.withUTF8 { p in y.withUTF8 { q in NameModel.longVowelsAgree(arabic: p, latin: q) } }
        }
        #expect(!agree("حمد", "Ahmed") && agree("حمد", "Hamad"))
        #expect(!agree("معين", "Amin") && agree("أمين", "Amin"))
        #expect(!agree("پرهام", "Ibrahim") && agree("ابراهيم", "Ibrahim"))
        #expect(agree("استانکزی", "Stanekzai") && !agree("افتكار", "Fikir"))  // an alif before a cluster only
        #expect(agree("الصبار", "Essabar") && agree("وليد", "Oualid"))  // a glued article; و read ou
        func lookAlike(_ arabic: String, _ latin: String) -> Bool {
            var x = NameModel.form(arabic).terms[0].skeleton
            var y = NameModel.form(latin).terms[0].skeleton
            var t = NameModel.form(latin).terms[0].text
            return x.withUTF8 { p in
                t.withUTF8 { u in y.withUTF8 { q in NameModel.lookAlikesAgree(arabic: p, latin: u, latinSkeleton: q) } }
            }
        }
        #expect(lookAlike("فضل", "Fazal") && lookAlike("ذاكر", "Zakir") && lookAlike("لاغوب", "Laagoub"))
        #expect(lookAlike("قاسمي", "Gasmi") && lookAlike("كاظم", "Kadhim"))
        #expect(!lookAlike("نقيب", "Najib") && !lookAlike("صاحب", "Shahab") && !lookAlike("جزار", "Qadur"))
        #expect(NameModel.form("عبدالحی").terms.map(\.text) == ["abd hy"])  // Abd al-Hayy: al- split however short
        let idx = Self.index([
            "Ali MALIK", "Fazal RAHIM", "Faridun ABBASI DAWANI", "Abdulhai SALEK", "Ali Asghar NOROUZI",
        ])
        #expect(Self.best(idx, "علی ملکیان") == nil)  // Ali Malekian: a group and a near miss
        #expect(Self.best(idx, "ثنا عباسی") == nil)  // Sana Abbasi: one term and a near miss
        #expect(Self.best(idx, "فضل رحيم")?.ref.entry == 1)  // ض as z
        #expect(Self.best(idx, "عبدالحی سالک")?.ref.entry == 3)
        #expect(Self.best(idx, "علی اصغر نوروزی")?.ref.entry == 4)
        for q in ["علی ملکیان", "ثنا عباسی", "فضل رحيم", "عبدالحی سالک", "Ali Malik", "Fazal Rahim"] {
            let form = NameModel.form(q)
            #expect(
                Set(idx.query(form) { _ in 0.8 }.map(\.ref)) == Set(idx.scan(form, minScore: 0.8).map(\.ref)), "\(q)")
        }
        // The other way round, Latin names against Arabic-script entries: the same rule.
        let arabic = NameIndex(
            ["علی ملکیان", "فضل رحيم"].enumerated().map {
                (
                    NameNormalizer.tokenize($0.element).joined(separator: " "),
                    HitRef(list: 0, entry: Int32($0.offset), selector: 0)
                )
            }, scripts: ["Arab", "Arab"])
        #expect(arabic.query(NameModel.form("Ali Malik")) { _ in 0.8 }.isEmpty)
        #expect(arabic.query(NameModel.form("Fazal Rahim")) { _ in 0.8 }.first?.ref.entry == 1)
    }

    /// Read from Arabic script, "sh" is ش or س/ص before ح/ه (صحراوي Sahraoui), "zh" ژ or ز before ه (زهراني
    /// Zahrani): against a Latin spelling the skeleton with the h read apart may meet too.
    @Test func arabicHDigraphs() throws {
        #expect(NameModel.form("صحراوي").terms[0].skeleton2 == "shr")
        #expect(NameModel.form("زهراني").terms[0].skeleton2 == "zhrn")
        #expect(NameModel.form("شريف").terms[0].skeleton2 == "shrf")
        #expect(NameModel.form("Sahraoui").terms[0].skeleton2 == nil)
        let idx = Self.index(["Nessim Ben Romdhane SAHRAOUI", "Faysal Ahmad bin Ali AL-ZAHRANI", "Sharif SHAKIR"])
        #expect(Self.best(idx, "نسيم بن رمضان صحراوي")?.ref.entry == 0)
        #expect(Self.best(idx, "فيصل احمد بن علي الزهراني")?.ref.entry == 1)
        #expect(Self.best(idx, "شريف شاكر")?.ref.entry == 2)
        for q in ["نسيم بن رمضان صحراوي", "فيصل احمد بن علي الزهراني", "شريف شاكر", "Nessim Sahraoui"] {
            let form = NameModel.form(q)
            #expect(
                Set(idx.query(form) { _ in 0.8 }.map(\.ref)) == Set(idx.scan(form, minScore: 0.8).map(\.ref)), "\(q)")
        }
        // The other way round: Latin names against Arabic-script entries.
        let arabic = NameIndex(
            [
                (
                    NameNormalizer.tokenize("نسيم بن رمضان صحراوي").joined(separator: " "),
                    HitRef(list: 0, entry: 0, selector: 0)
                )
            ],
            scripts: ["Arab"])
        #expect(arabic.query(NameModel.form("Nessim Romdhane Sahraoui")) { _ in 0.8 }.first?.ref.entry == 0)
    }

    /// Issue 19, EU aliases: the Swedish, German, Polish and Czech romanisations of a Russian or Belarusian name
    /// (Aleksejevitj, Anatolijewicz, Jurij, Maxim) meet the English one (Alekseevich, Anatolevich, Yuriy, Maksim)
    /// through a second skeleton; the readings must still be alike (Jaro–Winkler), as for any shared skeleton.
    @Test func slavicRomanisations() throws {
        #expect(NameModel.slavicReading("aleksejevitj") == "alekseyevich")
        #expect(NameModel.slavicReading("anatolijewicz") == "anatoliyevich")
        #expect(NameModel.slavicReading("jevgenij") == "evgeniy")
        #expect(NameModel.slavicReading("jurij") == "yuriy")
        #expect(NameModel.slavicReading("maxim") == "maksim")
        #expect(NameModel.slavicReading("narysjkin") == "naryshkin")
        #expect(NameModel.slavicReading("djamel") == "djamel")
        #expect(NameModel.slavicReading("jack") == "jack" && NameModel.slavicReading("jamal") == "jamal")
        #expect(NameModel.form("Aleksejevitj").terms[0].skeleton2 == NameModel.form("Alekseevich").terms[0].skeleton)
        #expect(NameModel.form("Alekseevich").terms[0].skeleton2 == nil)
        let idx = Self.index([
            "Maksim Alekseevich PROTASOV", "Yuriy Anatolevich PETROV", "Sergey Evgenevich NARYSHKIN", "Viktor IVANOV",
        ])
        #expect(Self.best(idx, "Maxim Aleksejevitj PROTASOV")?.ref.entry == 0)
        #expect(Self.best(idx, "Jurij Anatoljevitj PETROV")?.ref.entry == 1)
        #expect(Self.best(idx, "Sergej Jevgenjevitj NARYSJKIN")?.ref.entry == 2)
        #expect(Self.best(idx, "Jurij Anatoljevitj IVANOV") == nil)  // a given name and a patronymic only
        #expect(NameModel.similarity(NameModel.form("Jack").terms[0], NameModel.form("Yak").terms[0]) == 0)
        #expect(NameModel.similarity(NameModel.form("Jakov").terms[0], NameModel.form("Yahya").terms[0]) == 0)
        for q in [
            "Maxim Aleksejevitj PROTASOV", "Jurij Anatoljevitj PETROV", "Sergej Jevgenjevitj NARYSJKIN", "Jurij Ivanov",
        ] {
            let form = NameModel.form(q)
            #expect(
                Set(idx.query(form) { _ in 0.8 }.map(\.ref)) == Set(idx.scan(form, minScore: 0.8).map(\.ref)), "\(q)")
        }
    }

    /// Each aligned pair says how its terms met (issue 19, item 4), so an analyst can judge a weak hit.
    @Test func howTermsMet() throws {
        func how(_ q: String, _ e: String) -> String {
            NameModel.how(NameModel.form(q).terms[0], NameModel.form(e).terms[0])
        }
        #expect(how("Omar", "omar") == "same")
        #expect(how("Mohamed", "Muhammad") == "variant group")
        #expect(how("Khalill", "Khalil") == "edit")
        #expect(how("Hsuein", "Hussein") == "skeleton")
        #expect(how("Husayn", "Hussein") == "variant group")
        #expect(how("حسين", "Hussein") == "transliteration")
        // In a hit: every pair carries it, in `match` output and the alert's hit alike (`WatchlistHit.json`).
        let idx = Self.index(["Hussein Tarek KHALIL"])
        let m = try #require(Self.best(idx, "Hsuein Tarek Khalill"))
        #expect(
            m.alignment.map { "\($0.0)/\($0.1)/\($0.3)" }.sorted() == [
                "hsuein/hussein/skeleton", "khalill/khalil/edit", "tarek/tarek/same",
            ])
    }

    @Test("particles, honorifics, variant groups, scripts and token order")
    func normalisation() {
        let f = NameModel.form("Sheikh Abou Omar al-Baljiki")
        #expect(f.honorifics == ["sheikh"])
        #expect(f.terms.map(\.canon) == ["ABU:umar", "baljiki"])
        #expect(f.tokens == ["sheikh", "abou", "omar", "al", "baljiki"])
        #expect(NameModel.form("Abdelhamid").terms.map(\.canon) == NameModel.form("Abd al-Hamid").terms.map(\.canon))
        #expect(NameModel.form("Mhd").terms.first?.canon == "muhammad")
        #expect(NameModel.form("Joseph").terms.first?.canon == NameModel.form("Youssef").terms.first?.canon)
        #expect(NameNormalizer.tokenize("Шамиль Басаев") == ["shamil", "basaev"])
        #expect(NameNormalizer.tokenize("Γιώργος") == ["giorgos"])
        #expect(NameModel.skeleton("hussein") == NameModel.skeleton("husayn"))
        #expect(NameModel.form("حسين").terms.first?.skeleton == NameModel.skeleton("hussein"))
        #expect(NameModel.form("Omar").weak && NameModel.form("Abu Omar").weak && !NameModel.form("Omar Khan").weak)
    }

    @Test("scores explain themselves; a common given name alone never fires")
    func scoring() throws {
        let idx = Self.index(["Abdelhamid Abaaoud", "Mohammed Khalil Hassan", "Mohammed Yusuf Baljiki"])
        let m = try #require(Self.best(idx, "ABAAOUD, Abd al-Hamid"))
        #expect(m.ref.entry == 0 && m.score == 1 && !m.weak)
        #expect(m.alignment.map(\.0).sorted() == ["abaaoud", "abd hamid"])
        let v = try #require(Self.best(idx, "Muhammad Khalill Hasan"))
        #expect(v.ref.entry == 1 && v.score > 0.9 && v.score < 1)
        #expect(v.alignment.contains { $0.0 == "khalill" && $0.1 == "khalil" && $0.2 < 1 && $0.3 == "edit" })
        #expect(Self.best(idx, "Mohammed") == nil)
        #expect(Self.best(idx, "Mohammed Ali") == nil)
        // Below the floor the index was cut for, a lower threshold finds nothing more; an index cut lower does.
        #expect(Self.best(idx, "Abaaoud", min: 0.5) == nil)
        let low = Self.index(["Abdelhamid Abaaoud", "Mohammed Khalil Hassan", "Mohammed Yusuf Baljiki"], floor: 0.5)
        let weak = try #require(Self.best(low, "Abaaoud", min: 0.5))
        #expect(weak.weak && weak.ref.entry == 0)
        #expect(NameModel.jaroWinkler("martha", "marhta") > 0.96 && NameModel.jaroWinkler("abc", "xyz") == 0)
    }

    static var unList: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
                "shared/data/un-consolidated-2026-01-28.xml"
            ).path
    }

    static func python(_ args: [String]) throws -> String { try python3(args) }

    @Test("evaluation on the UN Security Council list: original script, spelling variants, names not listed")
    func unEvaluation() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/name_eval.py").path
        try #require(FileManager.default.fileExists(atPath: Self.unList), "the UN list beside the project")
        var items: [(String, HitRef)] = []
        var originals: [(String, Int)] = []
        var idOf: [String: Int] = [:]
        var primary: [Int: String] = [:]
        for (k, line) in try Self.python([script, "individuals", Self.unList]).split(separator: "\n").enumerated() {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            idOf[o["id"] as! String] = k
            if let first = (o["names"] as! [String]).first { primary[k] = first }
            for n in o["names"] as! [String] {
                items.append(
                    (NameNormalizer.tokenize(n).joined(separator: " "), HitRef(list: 0, entry: Int32(k), selector: 0)))
            }
            if let orig = o["original"] as? String, !orig.isEmpty { originals.append((orig, k)) }
        }
        let idx = NameIndex(items)
        print("names, UN: largest term-key bucket \(idx.largestKeyBucket) terms (cap \(NameIndex.keyBucketCap))")
        #expect(idx.droppedKeys == 0)
        #expect(idx.largestKeyBucket * 8 < NameIndex.keyBucketCap)
        #expect(idx.crowdedTerms == 0 && idx.widestReach * 8 < NameIndex.reachVisitCap)
        // The packed similarity the index runs is NameModel.similarity (every pair of a vocabulary sample).
        var g = SplitMix64(seed: 20_261_201)
        let sample = (0..<150).map { _ in Int.random(in: 0..<idx.vocab.count, using: &g) }
        var disagree: [String] = []
        for a in sample {
            for b in idx.vocab.indices
            where idx.packedSimilarity(a, b) != NameModel.similarity(idx.vocab[a], idx.vocab[b]) {
                disagree.append("\(idx.vocab[a].text)~\(idx.vocab[b].text)")
            }
        }
        #expect(disagree.isEmpty, "packed and model similarity differ: \(disagree.prefix(5))")
        // Precision over every query with a listed individual: hits on that individual against hits on others.
        var rightHits = 0
        var otherHits = 0
        func finds(_ q: String, _ k: Int) -> Bool {
            let hits = Set(idx.query(NameModel.form(q)) { _ in NameIndex.defaultMinScore }.map(\.ref.entry))
            let ok = hits.contains(Int32(k))
            rightHits += ok ? 1 : 0
            otherHits += hits.count - (ok ? 1 : 0)
            return ok
        }
        // Original script (mostly Arabic, unvocalised).
        var misses: [String] = []
        var found = 0
        for (q, k) in originals {
            if finds(q, k) {
                found += 1
            } else {
                let near = idx.scan(NameModel.form(q), minScore: 0).first { $0.ref.entry == Int32(k) }
                misses.append(
                    "\(q) (\(NameModel.form(q).terms.map(\.text).joined(separator: " ")) ~ \(near?.matched ?? "?") \(near?.score ?? 0))"
                )
            }
        }
        let arabicRecall = Double(found) / Double(originals.count)
        print(
            "names: original-script recall \(found)/\(originals.count) = \(arabicRecall); misses e.g. \(misses.prefix(8))"
        )
        // Spelling variants by kind.
        var byKind: [String: (Int, Int)] = [:]
        var variantMisses: [String] = []
        var variantQueries: [String] = []
        for line in try Self.python([script, "variants", Self.unList, "20261123"]).split(separator: "\n") {
            let f = line.split(separator: "\t").map(String.init)
            variantQueries.append(f[1])
            let k = idOf[f[2]]!
            let ok = finds(f[1], k)
            byKind[f[0], default: (0, 0)].0 += ok ? 1 : 0
            byKind[f[0], default: (0, 0)].1 += 1
            if !ok { variantMisses.append("\(f[0]): \(f[1])") }
        }
        let total = byKind.values.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        let variantRecall = Double(total.0) / Double(total.1)
        print(
            "names: variant recall \(total.0)/\(total.1) = \(variantRecall); by kind "
                + byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.0)/\($0.value.1)" }.joined(
                    separator: ", ")
                + "; misses e.g. \(variantMisses.prefix(10))")
        // Names not on the list.
        let negatives = try String(
            contentsOf: root.appendingPathComponent("Tests/Data/names-not-listed.txt"), encoding: .utf8
        )
        .split(separator: "\n").filter { !$0.hasPrefix("#") }
        var falsePositives: [String] = []
        for n in negatives {
            if let m = idx.query(NameModel.form(String(n)), minScore: { _ in NameIndex.defaultMinScore }).first {
                falsePositives.append("\(n) ~ \(m.matched) \(m.score)")
            }
        }
        let fpRate = Double(falsePositives.count) / Double(negatives.count)
        // The other way round: names watched as written in Arabic script, found by their Latin primary names. The
        // entries' script must reach the index (their normalised value is already Latin).
        let arabicOriginals = originals.filter { o in
            o.0.unicodeScalars.contains { (0x0600...0x06FF).contains($0.value) }
        }
        let watchedArabic = arabicOriginals.map {
            (NameNormalizer.tokenize($0.0).joined(separator: " "), HitRef(list: 0, entry: Int32($0.1), selector: 0))
        }
        func reverseRecall(_ index: NameIndex) -> Double {
            let found = arabicOriginals.filter { o in
                primary[o.1].map { p in
                    index.query(NameModel.form(p)) { _ in NameIndex.defaultMinScore }.contains {
                        $0.ref.entry == Int32(o.1)
                    }
                } ?? false
            }
            return Double(found.count) / Double(arabicOriginals.count)
        }
        let withScript = reverseRecall(NameIndex(watchedArabic, scripts: watchedArabic.map { _ in "Arab" }))
        let withoutScript = reverseRecall(NameIndex(watchedArabic))
        print("names: Arabic-script entries found by Latin names: \(withScript) (read as Latin: \(withoutScript))")
        #expect(withScript >= 0.85 && withScript > withoutScript)
        // The index finds every name a full scan with the same scorer finds (variants, negatives, originals).
        var differ: [String] = []
        let probes = originals.map(\.0) + negatives.prefix(300).map(String.init) + variantQueries.prefix(300)
        for q in probes {
            let form = NameModel.form(q)
            let got = Set(idx.query(form) { _ in NameIndex.defaultMinScore }.map(\.ref))
            let all = Set(idx.scan(form, minScore: NameIndex.defaultMinScore).map(\.ref))
            if got != all { differ.append(q) }
        }
        print("names: indexed search against a full scan: \(probes.count - differ.count)/\(probes.count) queries agree")
        #expect(differ.isEmpty, "index and scan differ for \(differ.prefix(5))")
        print(
            "names: false positives \(falsePositives.count)/\(negatives.count) = \(fpRate): \(falsePositives.prefix(8))"
        )
        let precision = Double(rightHits) / Double(max(1, rightHits + otherHits + falsePositives.count))
        print(
            "names: precision \(rightHits)/\(rightHits + otherHits + falsePositives.count) = \(precision) "
                + "(hits on the queried individual, against hits on other individuals and on names not listed)")
        // The issue's targets.
        #expect(arabicRecall >= 0.9)
        #expect(variantRecall >= 0.98)
        #expect(fpRate <= 0.001)
    }
}
