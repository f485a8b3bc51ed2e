import Foundation
import Testing
import TriplineSelectors
import TriplineYAML

@testable import TriplineWatchlists

/// Issue "need-to-know hardening", items 6, 10 and 15 on the loader's side: the owner is the directory, a list is
/// accepted or refused on its own, names are capped, and no message carries a list's content.
@Suite("Watchlist loader: ownership, isolation, need-to-know")
struct LoaderTests {
    static func list(_ name: String, owner: String, ref: String = "X-1", tlp: String = "amber") -> String {
        """
        watchlist: \(name)
        owner: \(owner)
        handling: {tlp: \(tlp)}
        review_by: 2031-05-01
        entries:
          - ref: \(ref)
            selectors:
              - {type: phone, value: "+32 470 12 34 56"}
        """
    }

    @Test("a list file sits directly in Watchlists/<owner>/: nested and top-level files are refused")
    func placement() {
        let d = TempDir()
        d.write("be-fedpol/returning-fighters.yaml", goodList)
        // Planted by someone who may write under fr-dgsi/, claiming to be be-fedpol's.
        d.write("fr-dgsi/be-fedpol/planted.yaml", Self.list("planted", owner: "be-fedpol"))
        d.write("top.yaml", Self.list("top", owner: "be-fedpol"))
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.map(\.name) == ["returning-fighters"])
        #expect(
            r.errors.map(\.description) == [
                d.path + "/fr-dgsi/be-fedpol/planted.yaml:1:1: a list file sits directly in Watchlists/<owner>/: "
                    + "this file is in a subdirectory of fr-dgsi/, so it is not loaded",
                d.path + "/top.yaml:1:1: a list file sits directly in Watchlists/<owner>/: this file is at the top "
                    + "of the watchlist directory, so it is not loaded",
            ])
    }

    @Test("one partner's invalid file is refused with its errors; every other list loads")
    func isolation() throws {
        let d = TempDir()
        d.write("be-fedpol/returning-fighters.yaml", goodList)
        d.write(
            "fr-dgsi/contacts.yaml",
            Self.list("contacts", owner: "fr-dgsi").replacingOccurrences(of: "type: phone", with: "type: fax"))
        d.write("nl-nctv/travellers.yaml", Self.list("travellers", owner: "nl-nctv"))
        d.write("nl-nctv/broken.yml", "watchlist: [unclosed\n")
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.map { "\($0.owner)/\($0.name)" } == ["be-fedpol/returning-fighters", "nl-nctv/travellers"])
        #expect(r.directoryErrors.isEmpty)
        #expect(
            r.files.map(\.path) == [
                d.path + "/be-fedpol/returning-fighters.yaml", d.path + "/fr-dgsi/contacts.yaml",
                d.path + "/nl-nctv/broken.yml", d.path + "/nl-nctv/travellers.yaml",
            ])
        #expect(r.files.map(\.accepted) == [true, false, false, true])
        #expect(r.files.map(\.owner) == ["be-fedpol", "fr-dgsi", "nl-nctv", "nl-nctv"])
        #expect(r.files.map(\.name) == ["returning-fighters", "contacts", nil, "travellers"])
        let contacts = r.files[1]
        #expect(contacts.list == nil)
        #expect(
            contacts.version == WatchlistLoader.sha256Hex(Array(FileManager.default.contents(atPath: contacts.path)!)))
        #expect(
            contacts.errors.map { "\($0.mark): \($0.message)" } == [
                "8:16: unknown selector type (expected one of phone, email, imei, imsi, ip, username, document, wallet, "
                    + "name, phone_prefix, ip_cidr)"
            ])
        #expect(r.files[2].errors.map(\.mark) == [Mark(line: 2, column: 1)])
        #expect(r.files[2].version != nil)
        // Every error is a refused file's; the accepted ones have none.
        #expect(r.errors == r.files.flatMap(\.errors))
        #expect(r.refused.map(\.path) == [contacts.path, r.files[2].path])
        #expect(r.files[0].list?.version == r.files[0].version)
    }

    @Test("two files naming one owner's list: the first in path order is that list, later ones are refused")
    func duplicates() {
        let d = TempDir()
        d.write("be-fedpol/a.yaml", Self.list("fighters", owner: "be-fedpol", ref: "A-1"))
        d.write("be-fedpol/b.yaml", Self.list("fighters", owner: "be-fedpol", ref: "B-1"))
        d.write("be-fedpol/c.yaml", Self.list("fighters", owner: "be-fedpol", ref: "C-1"))
        // Another owner may use the same list name.
        d.write("fr-dgsi/fighters.yaml", Self.list("fighters", owner: "fr-dgsi"))
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(
            r.lists.map { "\($0.owner)/\($0.name)/\($0.entries[0].ref)" } == [
                "be-fedpol/fighters/A-1", "fr-dgsi/fighters/X-1",
            ])
        #expect(r.files.map(\.accepted) == [true, false, false, true])
        #expect(
            r.errors.map(\.description)
                == ["b", "c"].map {
                    d.path + "/be-fedpol/\($0).yaml:1:12: be-fedpol already has a list of this name in " + d.path
                        + "/be-fedpol/a.yaml: the first file in path order is that list, so this one is refused"
                })
    }

    @Test("a duplicate of a refused list is refused too: the name stays with the first file")
    func duplicateOfRefused() {
        let d = TempDir()
        d.write(
            "be-fedpol/a.yaml",
            Self.list("fighters", owner: "be-fedpol").replacingOccurrences(of: "review_by: 2031-05-01\n", with: ""))
        d.write("be-fedpol/b.yaml", Self.list("fighters", owner: "be-fedpol"))
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.isEmpty)
        #expect(r.files.map(\.accepted) == [false, false])
        #expect(
            r.errors.map { "\($0.mark): \($0.message.prefix(30))" } == [
                "1:1: missing required field \"review", "1:12: be-fedpol already has a list o",
            ])
    }

    @Test("one file loaded on its own: its relative path names the owner, or refuses it")
    func singleFile() {
        let d = TempDir()
        d.write("be-fedpol/returning-fighters.yaml", goodList)
        let path = d.path + "/be-fedpol/returning-fighters.yaml"
        let ok = WatchlistLoader().load(file: path, relativePath: "be-fedpol/returning-fighters.yaml", now: now2030)
        #expect(ok.lists.count == 1 && ok.errors.isEmpty && ok.files.map(\.owner) == ["be-fedpol"])
        let wrong = WatchlistLoader().load(file: path, relativePath: "fr-dgsi/returning-fighters.yaml", now: now2030)
        #expect(wrong.lists.isEmpty)
        #expect(wrong.errors.map(\.mark) == [Mark(line: 2, column: 8)])
        let nested = WatchlistLoader().load(file: path, relativePath: "x/be-fedpol/l.yaml", now: now2030)
        #expect(nested.lists.isEmpty)
        #expect(
            nested.errors.map(\.message) == [
                "a list file sits directly in Watchlists/<owner>/, so this file is not loaded"
            ])
        // A submission: bytes, the owner it must belong to, and the name its messages use.
        let sub = WatchlistLoader().outcome(
            bytes: Array(goodList.utf8), file: "be-fedpol submission", owner: "be-fedpol", now: now2030)
        #expect(
            sub.accepted && sub.name == "returning-fighters"
                && sub.version == WatchlistLoader.sha256Hex(Array(goodList.utf8)))
    }

    @Test("a list file over the size limit is refused before it is read; the default limits are SPEC §4's")
    func sizeLimit() {
        let d = TempDir()
        d.write("be-fedpol/big.yaml", Self.list("big", owner: "be-fedpol"))
        var limits = WatchlistLoader.limits
        limits.maxBytes = 100
        let r = WatchlistLoader(reader: YAMLReader(limits: limits)).load(directory: d.path, now: now2030)
        #expect(r.errors.map(\.message) == ["file is larger than 100 bytes, the limit for a list file"])
        #expect(r.files.count == 1 && r.files[0].version == nil)
        let spec = WatchlistLoader().reader.limits
        let values: [Int] = [spec.maxBytes, spec.maxNodes, spec.maxDepth, spec.maxAliases]
        #expect(values == [268_435_456, 20_000_000, 64, 10_000])
    }

    /// A long list is validated on a second thread as it is read: the outcome is the one-thread outcome, errors,
    /// warnings and entries alike, also when the YAML breaks off half-way.
    @Test func handOffGivesTheOneThreadOutcome() throws {
        let head = "watchlist: long\nowner: be-fedpol\nreview_by: 2099-01-01\nentries:\n"
        var body = ""
        for k in 0..<30_000 {
            switch k % 997 {
            case 5: body += "  - {ref: R\(k), selectors: [{type: phone, value: \"not a number\"}]}\n"
            case 6: body += "  - {ref: R\(k - 1), selectors: [{type: email, value: \"x\(k)@example.org\"}]}\n"
            case 7:
                body +=
                    "  - {ref: R\(k), expires: 2001-01-01, selectors: [{type: email, value: \"E\(k)@Example.org\"}]}\n"
            default: body += "  - {ref: R\(k), selectors: [{type: phone, value: \"+32470\(100_000 + k)\"}]}\n"
            }
        }
        let broken = body.prefix(body.count / 2) + "  - {ref: [unclosed\n" + body.suffix(body.count / 2)
        for text in [head + body, head + broken] {
            var one = WatchlistLoader()
            one.handOffBytes = .max
            let two = WatchlistLoader()
            let a = one.outcome(bytes: Array(text.utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
            let b = two.outcome(bytes: Array(text.utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
            #expect(text.utf8.count >= two.handOffBytes)
            #expect(a.errors.map(\.description) == b.errors.map(\.description))
            #expect(a.warnings.map(\.description) == b.warnings.map(\.description))
            #expect(a.list?.entries.map(\.ref) == b.list?.entries.map(\.ref))
        }
        let whole = WatchlistLoader().outcome(
            bytes: Array((head + body).utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
        #expect(whole.errors.count == 62)
        #expect(whole.warnings.count == 31)
    }

    @Test("a 20,000-entry list loads whole; one bad entry or a repeated ref at its end refuses it, at file:line:col")
    func longListRefusedByItsLastEntry() throws {
        let head = "watchlist: long\nowner: be-fedpol\nreview_by: 2099-01-01\nentries:\n"
        let body = (0..<20_000).map {
            "  - {ref: R\($0), selectors: [{type: phone, value: \"+32470\(100_000 + $0)\"}]}\n"
        }
        .joined()
        let good = WatchlistLoader().outcome(
            bytes: Array((head + body).utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
        #expect(good.accepted && good.errors.isEmpty)
        #expect(good.list?.entries.count == 20_000 && good.list?.entries.last?.ref == "R19999")
        let badLine = 4 + 20_000 + 1
        let bad = WatchlistLoader().outcome(
            bytes: Array((head + body + "  - {ref: X, selectors: [{type: phone, value: \"not a number\"}]}\n").utf8),
            file: "long.yaml", owner: "be-fedpol", now: now2030)
        #expect(!bad.accepted && bad.list == nil)
        #expect(bad.errors.map { "\($0.mark.line)" } == ["\(badLine)"])
        let repeated = WatchlistLoader().outcome(
            bytes: Array((head + body + "  - {ref: R7, selectors: [{type: phone, value: \"+32470999999\"}]}\n").utf8),
            file: "long.yaml", owner: "be-fedpol", now: now2030)
        #expect(!repeated.accepted)
        #expect(
            repeated.errors.map(\.description) == [
                "long.yaml:\(badLine):11: duplicate ref: the entry at line 12 has the same ref"
            ])
        // Entries before the list's own fields, and the fields' errors, still in file order.
        let fieldsLast =
            "entries:\n  - {ref: A, selectors: [{type: phone, value: \"x\"}]}\nwatchlist: l\nowner: be-fedpol\n"
        let late = WatchlistLoader().outcome(
            bytes: Array(fieldsLast.utf8), file: "late.yaml", owner: "be-fedpol", now: now2030)
        #expect(late.errors.map(\.mark.line) == [1, 2])
    }

    @Test("watched names and aliases are capped like sighted ones: errors at file:line:col")
    func nameCaps() {
        let d = TempDir()
        let long = String(repeating: "Abdelhamid ", count: 60) + "Abaaoud"  // 667 bytes
        let many = (1...17).map { "N\($0)" }.joined(separator: " ")
        d.write(
            "be-fedpol/names.yaml",
            """
            watchlist: names
            owner: be-fedpol
            review_by: 2031-05-01
            entries:
              - ref: N-1
                selectors:
                  - {type: name, value: "\(long)"}
                  - {type: name, value: "Abdelhamid Abaaoud", aliases: ["\(many)"]}
            """)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.isEmpty)
        #expect(
            r.errors.map { "\($0.mark): \($0.message)" } == [
                "7:29: unparseable name: 667 bytes, longer than the 512 a name may have",
                "8:61: unparseable name: 17 words, more than the 16 a name may have",
            ])
    }

    @Test("a long but legal name loads and still matches")
    func longLegalName() throws {
        let d = TempDir()
        // 16 words (the cap), 100 bytes; and a real 11-word name from the UN list.
        let long = "Abu Bakr Muhammad bin Abd al-Rahman bin Muhammad bin Ali bin Hasan bin Umar Baghdadi"
        d.write(
            "be-fedpol/names.yaml",
            """
            watchlist: names
            owner: be-fedpol
            review_by: 2031-05-01
            entries:
              - ref: N-1
                selectors:
                  - {type: name, value: "\(long)"}
              - ref: N-2
                selectors:
                  - {type: name, value: "Zine El Abidine Ben Haj Hamda Ben Haj Hassen BEN ALI"}
            """)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.errors.isEmpty)
        let idx = WatchlistIndex(lists: r.lists)
        let n = SelectorNormalizer()
        for (query, entry) in [
            ("Abou Bakr Mohammed ben Abdul Rahman ben Mohamed ben Aly ben Hassan ben Omar Baghdadi", 0),
            ("Zine el-Abidine Ben Ali", 1),
        ] {
            let (v, f) = try n.normalizeValue(.name, query)
            let found = idx.names.query(NameModel.form(normalized: v, script: f["script"]?.stringValue)) { _ in
                NameIndex.defaultMinScore
            }
            #expect(found.first?.ref.entry == Int32(entry), "\(query): \(found.map { ($0.ref.entry, $0.score) })")
        }
    }

    /// A red list whose every kind of mistake and warning would once have quoted it.
    static let redList = """
        watchlist: covert-sources
        owner: be-fedpol
        description: Informants of the Molenbeek cell
        handling:
          tlp: red
          releasable_to: [fr-dgsi]
        review_by: 2031-05-01
        entries:
          - ref: RED-SECRET-0001
            label: Informant Falcon in the Molenbeek cell
            expires: 2030-02-01
            selectors:
              - {type: phone, value: "+32 470 98 76 54"}
              - {type: name, value: "Yassine Falconetti", aliases: ["Abou Falcon al-Belgiki"]}
          - ref: RED-SECRET-0002
            label: Handler Kestrel
            selectors:
              - {type: phone, value: "+32 470 98 76"}
              - {type: phone, value: "call kestrel"}
              - {type: phone_prefix, value: "+999 47"}
              - {type: phone_prefix, value: "+32 47q"}
              - {type: ip_cidr, value: "198.51.100.77/99"}
              - {type: ip, value: "198.51.100.777"}
              - {type: email, value: "kestrel@bad..example.org"}
              - {type: email, value: "kestrel-handler"}
              - {type: username, value: "kestrelhandler", platform: "kestrel network"}
              - {type: document, value: "KS1234567", country: "KESTRELAND"}
              - {type: imei, value: "35-209900-176148-X"}
              - {type: wallet, value: "kestrel wallet 0001"}
              - {type: name, value: "###"}
              - {type: kestrel_type, value: "Kestrel Secret"}
            expires: "Kestrel-Day"
            priority: kestrel-urgent
            kestrel_notes: Handler Kestrel meets at the Falcon
          - ref: RED-SECRET-0001
            label: Falcon again
            selectors:
              - {type: name, value: "Yassine Falconetti Secondo"}
          - RED-SECRET-0003 Falcon as a bare string
        """

    /// What the red list holds that is partner content: refs, labels, values, aliases, the description, and the
    /// digits and normalised forms of its numbers.
    static let redContent = [
        "RED-SECRET", "SECRET-000", "Informant", "Falcon", "falcon", "Molenbeek", "Kestrel", "kestrel", "Yassine",
        "yassine", "Belgiki", "belgiki", "Secondo", "secondo", "+32470987654", "470 98 76", "470987654", "4709876",
        "98 76", "9876", "987", "+999", "999", "47q", "198.51", "51.100", "777", "bad..", "example",
        "KS1234567", "1234567", "KESTRELAND", "35-209900", "209900", "176148", "0001", "###", "Secret", "Handler",
        "handler", "Day", "urgent", "notes", "bare",
    ]

    @Test("no warning or error of a red list carries its refs, labels or values")
    func noContent() throws {
        let d = TempDir()
        d.write("be-fedpol/covert-sources.yaml", Self.redList)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.isEmpty)
        let texts = (r.errors + r.warnings).map(\.description)
        // Every mistake is reported (so each was given the chance to leak).
        #expect(r.errors.count == 18, "\(texts.joined(separator: "\n"))")
        #expect(r.warnings.count == 2, "\(r.warnings)")
        for t in texts {
            let bare = String(t.dropFirst(d.path.count))
            for c in Self.redContent {
                #expect(!bare.contains(c), "\"\(c)\" in: \(bare)")
            }
        }
        #expect(
            r.warnings.map { "\($0.mark): \($0.message)" } == [
                "11:14: the entry at line 9 expired 2030-02-01T00:00:00Z: it never matches",
                "18:30: this phone value is not valid (too short for BE): it is watched in its normalised form",
            ])
        #expect(
            r.errors.map { "\($0.mark): \($0.message)" } == [
                "19:30: unparseable phone: not a phone number",
                "20:37: unparseable phone_prefix: phone prefix (not shown) starts with no country calling code",
                "21:37: unparseable phone_prefix: phone prefix has an unexpected character (not shown)",
                "22:32: unparseable ip_cidr: expected address/prefix-length",
                "23:27: unparseable ip: (not shown) is not an IPv4 or IPv6 address",
                "24:30: unparseable email: empty label in domain (not shown)",
                "25:30: unparseable email: no '@'",
                "26:33: unparseable username: invalid platform (not shown)",
                "27:33: unparseable document: issuing country (not shown) is not an ISO 3166 code",
                "28:29: unparseable imei: unexpected character (not shown)",
                "29:31: unparseable wallet: an address has letters and digits only",
                "30:29: unparseable name: no letters",
                "31:16: unknown selector type (expected one of phone, email, imei, imsi, ip, username, document, wallet, "
                    + "name, phone_prefix, ip_cidr)",
                "32:14: \"expires\" must be a date (YYYY-MM-DD) or an RFC 3339 time",
                "33:15: unknown priority (expected informational, low, medium, high, critical)",
                "34:5: unknown field in entry (expected one of expires, label, priority, ref, selectors)",
                "35:10: duplicate ref: the entry at line 9 has the same ref",
                "39:5: an entry must be a mapping, not a scalar",
            ])
    }

    @Test("the YAML reader's quoted keys and alias names are left out of its errors")
    func yamlErrors() {
        let d = TempDir()
        d.write("be-fedpol/dup.yaml", "watchlist: x\nRED-SECRET-0009: a\nRED-SECRET-0009: b\n")
        d.write("be-fedpol/alias.yaml", "watchlist: x\nentries: *RED-SECRET-0009\n")
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(
            r.errors.map { "\($0.mark): \($0.message)" } == [
                "2:10: unknown alias *(not shown)", "3:1: duplicate key (not shown)",
            ])
    }

    @Test(
        "reasons lose what they quote and what they share with the value, and keep their own counts",
        arguments: [
            (
                "ip: \"10.0.0.999\" is not an IPv4 or IPv6 address", "10.0.0.999",
                "ip: (not shown) is not an IPv4 or IPv6 address"
            ),
            (
                "phone prefix +32999 starts with no country calling code", "+32 999",
                "phone prefix (not shown) starts with no country calling code"
            ),
            ("unknown country calling code +9", "+9 123 456", "unknown country calling code (not shown)"),
            ("imsi: 13 digits (an IMSI has 14 or 15)", "2060112345678", "imsi: 13 digits (an IMSI has 14 or 15)"),
            (
                "phone prefix must start with '+' and the country code", "32 2",
                "phone prefix must start with '+' and the country code"
            ),
            ("imei: unexpected character 'Z'", "3520990017614Z", "imei: unexpected character (not shown)"),
            ("email: empty label in domain \"unterminated", "a@b..c", "email: empty label in domain (not shown)"),
            (
                "name: 667 bytes, longer than the 512 a name may have", "Abu Omar",
                "name: 667 bytes, longer than the 512 a name may have"
            ),
            ("not a phone number", "call Falcon number", "not a phone (not shown)"),
            ("wallet: 5120 digits", "wallet 51200", "(not shown) (not shown) digits"),
            ("too short for BE", "+32 12", "too short for BE"),
        ] as [(String, String, String)])
    func redaction(_ message: String, _ value: String, _ expected: String) {
        #expect(Redact.reason(message, value: value) == expected)
    }
}
