import Foundation
import Testing
import TriplineSelectors
import TriplineTestSupport
import TriplineYAML

@testable import TriplineWatchlists

/// A temporary watchlist directory, removed when the test ends.
final class TempDir {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-wl-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func write(_ rel: String, _ text: String) {
        let full = path + "/" + rel
        try! FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: full, atomically: true, encoding: .utf8)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let now2030 = Timestamp.parse("2030-06-01T00:00:00Z")!

let goodList = """
    watchlist: returning-fighters
    owner: be-fedpol
    handling: {tlp: amber, releasable_to: [fr-dgsi]}
    review_by: 2031-05-01
    default_priority: high
    entries:
      - ref: BE-1
        label: first
        priority: critical
        selectors:
          - {type: phone, value: "+32 470 12 34 56"}
          - {type: name, value: "Abdelhamid Abaaoud", aliases: ["Abou Omar al-Baljiki"]}
      - ref: BE-2
        expires: 2030-01-01
        selectors:
          - {type: phone, value: "+32 486 55 01 23"}
      - ref: BE-3
        selectors:
          - {type: phone_prefix, value: "+32 2"}
          - {type: ip_cidr, value: "192.0.2.77/24"}
          - {type: ip_cidr, value: "2001:db8:bad::/48"}
    """

@Suite("Watchlists")
struct WatchlistTests {
    @Test("a name watched as written in Arabic script keeps its script for fuzzy matching")
    func arabicScriptName() throws {
        let d = TempDir()
        d.write(
            "be-fedpol/returning-fighters.yaml",
            goodList.replacingOccurrences(
                of: "aliases: [\"Abou Omar al-Baljiki\"]",
                with: "aliases: [\"Abou Omar al-Baljiki\", \"عزت ابراهيم الدوري\"]"))
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.errors.isEmpty)
        let sel = try #require(r.lists.first?.entries.first?.selectors.first { $0.kind == .exact(.name) })
        #expect(sel.scripts == ["Latn", "Latn", "Arab"])
        // The Latin spelling meets the unvocalised alias only when the index knows it was Arabic script (read as a
        // Latin spelling, "azt abrahym dwry" is too far from "Izzat Ibrahim al-Duri").
        let idx = WatchlistIndex(lists: r.lists)
        let found = idx.names.query(NameModel.form("Izzat Ibrahim al-Duri")) { _ in NameIndex.defaultMinScore }
        #expect(found.contains { $0.ref.viaAlias && $0.ref.entry == 0 })
    }

    @Test("a valid list loads with its handling, priorities and version")
    func loads() throws {
        let d = TempDir()
        d.write("be-fedpol/returning-fighters.yaml", goodList)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.errors.isEmpty)
        let l = try #require(r.lists.first)
        #expect(l.handling.tlp == .amber)
        #expect(l.handling.releasableTo == ["be-fedpol", "fr-dgsi"])
        #expect(l.handling.originatorNotified)
        #expect(l.entries.map(\.ref) == ["BE-1", "BE-2", "BE-3"])
        #expect(l.entries[0].selectors[0].value == "+32470123456")
        #expect(l.entries[0].selectors[1].aliases == ["abou omar al baljiki"])
        #expect(l.entries[2].selectors[1].value == "192.0.2.0/24")
        #expect(l.version == WatchlistLoader.sha256Hex(Array(goodList.utf8)))
        // The expired entry is a warning naming its line (not its ref), not an error.
        #expect(r.warnings.map(\.mark) == [Mark(line: 14, column: 14)])
        #expect(r.warnings.map(\.message) == ["the entry at line 13 expired 2030-01-01T00:00:00Z: it never matches"])
    }

    @Test(
        "strict validation names file:line:col",
        arguments: [
            ("review_by: 2031-05-01\n", "", "1:1: missing required field \"review_by\""),
            ("- ref: BE-1\n", "- ref: BE-1\n        ", "13:10: duplicate ref: the entry at line 7 has the same ref"),
            (
                "{type: phone_prefix,", "{type: fax,",
                "19:16: unknown selector type (expected one of phone, email, imei, imsi, ip, username, document, "
                    + "wallet, name, phone_prefix, ip_cidr)"
            ),
            ("\"+32 2\"", "\"+32 xx\"", "19:37: unparseable phone_prefix: phone prefix has an unexpected character"),
            ("\"192.0.2.77/24\"", "\"192.0.2.77/33\"", "20:32: unparseable ip_cidr: expected address/prefix-length"),
            ("\"+32 486 55 01 23\"", "\"call me\"", "16:30: unparseable phone: not a phone number"),
            ("tlp: amber", "tlp: orange", "3:17: unknown tlp (expected clear, green, amber, amber+strict or red)"),
            (
                "label: first", "lable: first",
                "8:5: unknown field in entry (did you mean \"label\"? expected one of expires, label, priority, ref, "
                    + "selectors)"
            ),
            ("priority: critical", "priority: urgent", "9:15: unknown priority (expected informational, low, medium"),
        ] as [(String, String, String)])
    func errors(_ find: String, _ replace: String, _ expected: String) throws {
        var text = goodList
        if find.hasPrefix("- ref: BE-1") {
            // duplicate the first entry's ref on the second entry
            text = text.replacingOccurrences(of: "- ref: BE-2", with: "- ref: BE-1")
        } else {
            text = text.replacingOccurrences(of: find, with: replace)
        }
        let d = TempDir()
        d.write("be-fedpol/returning-fighters.yaml", text)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.isEmpty, "a list with errors must not load")
        let e = try #require(r.errors.first, "expected an error for \(expected)")
        #expect(e.description.contains(expected), "\(e.description)")
        #expect(e.description.hasPrefix(d.path + "/be-fedpol/returning-fighters.yaml:"))
        #expect(e.mark.line >= 1 && e.mark.column >= 1)
    }

    @Test("every error in a file is reported, and good files still load")
    func allErrors() {
        let d = TempDir()
        d.write("be-fedpol/returning-fighters.yaml", goodList)
        d.write(
            "fr-dgsi/bad.yaml",
            """
            watchlist: bad
            owner: fr-dgsi
            entries:
              - ref: A
                selectors: [{type: fax, value: "1"}]
              - ref: A
                selectors: [{type: email, value: "nobody"}]
            """)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.map(\.name) == ["returning-fighters"])
        let lines = r.errors.map { "\($0.mark.line):\($0.mark.column)" }
        #expect(lines.count == 4, "\(r.errors)")
        #expect(r.errors.contains { $0.message.contains("review_by") })
        #expect(r.errors.contains { $0.message.hasPrefix("unknown selector type (expected") && $0.mark.line == 5 })
        #expect(r.errors.contains { $0.message.contains("duplicate ref") && $0.mark.line == 6 })
        #expect(r.errors.contains { $0.message.contains("email") && $0.mark.line == 7 })
    }

    @Test("owner must match its directory")
    func ownerDirectory() {
        let d = TempDir()
        d.write("nl-nctv/returning-fighters.yaml", goodList)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.isEmpty)
        #expect(
            r.errors.map(\.description) == [
                d.path + "/nl-nctv/returning-fighters.yaml:2:8: \"owner\" must name the directory the file sits in, "
                    + "nl-nctv (a list file sits directly in Watchlists/<owner>/)"
            ])
    }

    @Test("a hostile YAML file is refused with a clear error")
    func hostile() {
        let d = TempDir()
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ",") + "]\n"
        }
        d.write("x/lol.yaml", text)
        let r = WatchlistLoader().load(directory: d.path, now: now2030)
        #expect(r.lists.isEmpty)
        #expect(r.errors.first?.message.contains("alias expansion") == true)
    }
}

@Suite("Watchlist index")
struct IndexTests {
    @Test("exact index finds every key and rejects others, at scale")
    func exactScale() {
        var items: [(SelectorType, String, HitRef)] = []
        for i in 0..<200_000 {
            items.append(
                (.phone, "+3247\(1_000_000 + i * 7)", HitRef(list: 0, entry: Int32(i), selector: 0, viaAlias: false)))
        }
        items.append((.email, "+32471000000", HitRef(list: 1, entry: 0, selector: 0, viaAlias: false)))
        let idx = ExactIndex(items)
        #expect(idx.entryCount == 200_001)
        for i in stride(from: 0, to: 200_000, by: 997) {
            #expect(idx.lookup(.phone, "+3247\(1_000_000 + i * 7)")?.first?.entry == Int32(i))
        }
        var falseHits = 0
        for i in 0..<50_000 where idx.lookup(.phone, "+3247\(1_000_000 + i * 7 + 3)") != nil { falseHits += 1 }
        #expect(falseHits == 0)
        // Same text, other type: its own entry.
        #expect(idx.lookup(.email, "+32471000000")?.first?.list == 1)
        #expect(idx.lookup(.phone, "+32471000000")?.first?.list == 0)
    }

    @Test("prefix trie returns every watched prefix of a number")
    func prefixes() {
        let t = PrefixTrie([
            ("+32", HitRef(list: 0, entry: 0, selector: 0, viaAlias: false)),
            ("+322", HitRef(list: 0, entry: 1, selector: 0, viaAlias: false)),
            ("+3247", HitRef(list: 0, entry: 2, selector: 0, viaAlias: false)),
        ])
        func find(_ s: String) -> [Int32] {
            var out: [HitRef] = []
            var v = s
            v.withUTF8 { t.lookup($0, into: &out) }
            return out.map(\.entry)
        }
        #expect(find("+3224561234") == [0, 1])
        #expect(find("+32470123456") == [0, 2])
        #expect(find("+33142685300") == [])
    }

    @Test("large prefix sets (hashed by length) give the same answers as a brute-force scan")
    func largePrefixSet() {
        var g = SplitMix64(seed: 20_261_201)
        var prefixes = Set<String>()
        while prefixes.count < PrefixTrie.hashedThreshold + 1_000 {
            let len = Int.random(in: 3...8, using: &g)
            prefixes.insert("+" + String((0..<len).map { _ in Character(String(Int.random(in: 0...9, using: &g))) }))
        }
        let list = Array(prefixes)
        let trie = PrefixTrie(list.enumerated().map { ($1, HitRef(list: 0, entry: Int32($0), selector: 0)) })
        #expect(trie.isHashed, "the set must be large enough to exercise the hashed layout")
        for k in 0..<2_000 {
            // Half the numbers extend a watched prefix, half are random.
            var number = k % 2 == 0 ? list[k] : "+"
            while number.count < 12 { number += String(Int.random(in: 0...9, using: &g)) }
            var out: [HitRef] = []
            var v = number
            v.withUTF8 { trie.lookup($0, into: &out) }
            let found = Set(out.map { list[Int($0.entry)] })
            let expected = Set((2...number.count).map { String(number.prefix($0)) }.filter { prefixes.contains($0) })
            #expect(found == expected, "\(number)")
            if found != expected { break }
        }
    }

    @Test("CIDR trie contains IPv4 and IPv6 networks")
    func cidr() throws {
        let t = CIDRTrie([
            (CIDR("192.0.2.0/24")!, HitRef(list: 0, entry: 0, selector: 0, viaAlias: false)),
            (CIDR("2001:db8:bad::/48")!, HitRef(list: 0, entry: 1, selector: 0, viaAlias: false)),
            (CIDR("0.0.0.0/0")!, HitRef(list: 0, entry: 2, selector: 0, viaAlias: false)),
        ])
        func find(_ s: String) -> [Int32] {
            var out: [HitRef] = []
            t.lookup(IPAddress.parse(s)!, into: &out)
            return out.map(\.entry).sorted()
        }
        #expect(find("192.0.2.200") == [0, 2])
        #expect(find("192.0.3.1") == [2])
        #expect(find("2001:db8:bad:1::5") == [1])
        #expect(find("2001:db8:bae::1") == [])
        #expect(CIDR("192.0.2.77/24")?.description == "192.0.2.0/24")
        #expect(CIDR("2001:db8::1/129") == nil)
    }
}
