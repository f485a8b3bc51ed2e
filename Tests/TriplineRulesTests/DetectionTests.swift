import Foundation
import Testing
import TriplineJSON
import TriplineMatch
import TriplineRegex
import TriplineSelectors
import TriplineTestSupport
import TriplineWatchlists

@testable import TriplineRules

func listHit(_ sel: NormalizedSelector, owner: String, list: String, priority: Priority = .high) -> Hit {
    let w = WatchlistHit(
        owner: owner, list: list, version: "v1", ref: "R-1", label: nil,
        handling: Handling(tlp: .amber, releasableTo: [owner], originatorNotified: true), score: 1, via: "exact",
        watched: sel.value)
    return Hit(id: sel.id, selector: sel, kind: .watchlist, priority: priority, watchlist: w)
}

@Suite("Condition grammar")
struct ConditionTests {
    @Test func precedenceNotAndOr() throws {
        // a or b and not c  ==  a or (b and (not c))
        let c = try ConditionParser.parse("a or b and not c")
        #expect(
            c
                == .or([
                    .selection("a", offset: 0),
                    .and([.selection("b", offset: 5), .not(.selection("c", offset: 15))]),
                ]))
    }

    @Test func parenthesesAndQuantifiers() throws {
        let c = try ConditionParser.parse("(1 of sel_* or all of them) and not _filter")
        guard case .and(let parts) = c, case .or(let ors) = parts[0] else {
            Issue.record("shape: \(c)")
            return
        }
        #expect(ors[0] == .of(count: 1, pattern: "sel_*", offset: 6))
        #expect(ors[1] == .of(count: nil, pattern: "them", offset: 22))
        #expect(parts[1] == .not(.selection("_filter", offset: 36)))
    }

    @Test func syntaxErrorsCarryOffsets() {
        #expect(throws: ConditionError.self) { try ConditionParser.parse("a and (b or c") }
        do {
            _ = try ConditionParser.parse("a and or b")
            Issue.record("\"a and or b\" parsed")
        } catch {
            #expect(error.offset == 6)
        }
        do {
            _ = try ConditionParser.parse("sel | count() > 3")
            Issue.record("\"sel | count() > 3\" parsed")
        } catch {
            #expect(error.offset == 4)
            #expect(error.message.contains("correlation"))
        }
    }
}

@Suite("Sigma values and regex atoms")
struct PatternTests {
    func m(_ p: String, _ s: String, fold: Bool = true) -> Bool {
        var subject = fold ? s.lowercased() : s
        return subject.withUTF8 { Pattern(sigma: p, fold: fold).matches($0) }
    }

    @Test func wildcards() {
        #expect(m("abu*", "Abu Omar"))
        #expect(m("*omar", "Abu Omar"))
        #expect(m("a?u*", "abu"))
        #expect(!m("a?u", "abbu"))
        #expect(m("*b*b*", "abab"))
        #expect(!m("*b*b*c", "ababab"))
        #expect(m("?", "é"))  // one character, two bytes
        #expect(m("a*", "a"))
    }

    @Test func escapes() {
        #expect(m(#"100\*"#, "100*"))
        #expect(!m(#"100\*"#, "1000"))
        #expect(m(#"what\?"#, "what?"))
        #expect(m(#"c:\\temp"#, #"c:\temp"#))
        #expect(m(#"c:\temp"#, #"c:\temp"#))  // a lone backslash is itself
    }

    @Test func cased() {
        #expect(!m("Abu*", "abu omar", fold: false))
        #expect(m("Abu*", "Abu omar", fold: false))
    }

    @Test func regexAtomsAreRequiredLiterals() {
        func atoms(_ p: String) -> [String]? {
            RegexAtoms.extract(p).map { $0.map { String(decoding: $0, as: UTF8.self) } }
        }
        #expect(atoms("^telegram:abu[_.]?[a-z]+$") == ["telegram:abu"])
        #expect(atoms("(?i)Abu_(Omar|Hamza)") == ["abu_"] || atoms("(?i)Abu_(Omar|Hamza)") == ["omar", "hamza"])
        #expect(Set(atoms("omar|hamza") ?? []) == ["omar", "hamza"])
        #expect(atoms("x(abc)?y") == nil)  // 'x' and 'y' are too short; abc is optional
        #expect(atoms("[a-z]+\\d{3}") == nil)
        #expect(atoms("foo(bar|.)") == ["foo"])
        #expect(atoms("(?x) a b c") == nil)  // extended syntax is not read
        #expect(atoms("a{0,3}bcd") == ["bcd"])
        #expect(atoms("ab+cd") == ["ab", "cd"] || atoms("ab+cd") == ["ab"] || atoms("ab+cd") == ["cd"])
        #expect(atoms("\\+32\\s?2") == ["+32"])
    }

    @Test func automatonFindsEveryOccurrence() {
        let ac = AhoCorasick(
            patterns: [Array("he".utf8), Array("she".utf8), Array("hers".utf8), Array("his".utf8)],
            values: [0, 1, 2, 3])
        var found: [Int32] = []
        var s = "ushers"
        s.withUTF8 { ac.scan($0) { found.append($0) } }
        #expect(found.sorted() == [0, 1, 2])
    }
}

@Suite("Detection rules")
struct DetectionTests {
    let phone = selector(
        #"{"id":"p1","type":"phone","value":"+32 2 456 12 34","observed_at":"2016-10-20T08:00:00Z","source":{"item":"P-1","operation":"mosul","country":"IQ"},"context":{"contact_name":"Abu Omar"}}"#
    )

    func one(_ detection: String, _ sel: NormalizedSelector, watchlist: [Hit] = []) -> Bool {
        let r = loadRules(rule(detection))
        #expect(r.errors.isEmpty, "\(r.errors)")
        return matches(r.ruleSet, sel, watchlist: watchlist) == ["r1"]
    }

    @Test func plainValuesAreCaseInsensitiveWithWildcards() {
        #expect(one("  s: {context.contact_name: abu omar}\n  condition: s", phone))
        #expect(one("  s: {context.contact_name: 'ABU*'}\n  condition: s", phone))
        #expect(!one("  s: {context.contact_name|cased: abu omar}\n  condition: s", phone))
        #expect(one("  s: {context.contact_name|cased: Abu Omar}\n  condition: s", phone))
        #expect(one("  s: {area: brussels, line_type: fixed_line}\n  condition: s", phone))
        #expect(!one("  s: {area: brussels, line_type: mobile}\n  condition: s", phone))
    }

    @Test func stringModifiers() {
        #expect(one("  s: {context.contact_name|contains: 'BU OM'}\n  condition: s", phone))
        #expect(one("  s: {value|startswith: '+322'}\n  condition: s", phone))
        #expect(one("  s: {value|endswith: '1234'}\n  condition: s", phone))
        #expect(!one("  s: {value|endswith: '+32'}\n  condition: s", phone))
        #expect(one("  s: {source.item|contains|cased: '-1'}\n  condition: s", phone))
    }

    @Test func listsAreAnyUnlessAll() {
        #expect(one("  s: {context.contact_name|contains: [zzz, omar]}\n  condition: s", phone))
        #expect(!one("  s: {context.contact_name|contains|all: [zzz, omar]}\n  condition: s", phone))
        #expect(one("  s: {context.contact_name|contains|all: [abu, omar]}\n  condition: s", phone))
    }

    @Test func regexModifiers() {
        #expect(one("  s: {context.contact_name|re: '^Abu \\w+$'}\n  condition: s", phone))
        #expect(!one("  s: {context.contact_name|re: '^abu'}\n  condition: s", phone))  // case-sensitive
        #expect(one("  s: {context.contact_name|re|i: '^abu'}\n  condition: s", phone))
        let multi = selector(#"{"id":"m","type":"name","value":"x","context":{"note":"line one\nabu line"}}"#)
        #expect(!one("  s: {context.note|re: '^abu'}\n  condition: s", multi))
        #expect(one("  s: {context.note|re|m: '^abu'}\n  condition: s", multi))
        #expect(!one("  s: {context.note|re: 'one.abu'}\n  condition: s", multi))
        #expect(one("  s: {context.note|re|s: 'one.abu'}\n  condition: s", multi))
    }

    @Test func cidrExistsNeqComparisons() {
        let ip = selector(#"{"id":"i","type":"ip","value":"192.0.2.44"}"#)
        #expect(one("  s: {value|cidr: 192.0.2.0/24}\n  condition: s", ip))
        #expect(!one("  s: {value|cidr: 198.51.100.0/24}\n  condition: s", ip))
        #expect(one("  s: {version|gte: 4, version|lt: 6}\n  condition: s", ip))
        #expect(!one("  s: {version|gt: 4}\n  condition: s", ip))
        #expect(one("  s: {area|exists: true}\n  condition: s", phone))
        #expect(one("  s: {area|exists: false}\n  condition: s", ip))
        #expect(one("  s: {country|neq: FR}\n  condition: s", phone))
        #expect(!one("  s: {country|neq: be}\n  condition: s", phone))
        #expect(one("  s: {context.missing: null}\n  condition: s", phone))
        #expect(!one("  s: {area: null}\n  condition: s", phone))
    }

    @Test func neqListMeansNoneOfTheValues() {
        // pySigma negates the whole item: a list under neq holds when the field equals none of the values.
        #expect(!one("  s: {country|neq: [FR, BE]}\n  condition: s", phone))
        #expect(!one("  s: {country|neq: [be, FR]}\n  condition: s", phone))
        #expect(one("  s: {country|neq: [FR, DE, NL]}\n  condition: s", phone))
        #expect(!one("  s: {context.contact_name|contains|neq: [zzz, omar]}\n  condition: s", phone))
        #expect(one("  s: {context.contact_name|contains|neq: [zzz, yyy]}\n  condition: s", phone))
        // With all: not every one of them.
        #expect(one("  s: {context.contact_name|contains|neq|all: [abu, zzz]}\n  condition: s", phone))
        #expect(!one("  s: {context.contact_name|contains|neq|all: [abu, omar]}\n  condition: s", phone))
        // In a selection with another field, and as a filter.
        #expect(one("  s: {type: phone, country|neq: [FR, DE]}\n  condition: s", phone))
        #expect(!one("  s: {type: phone}\n  f: {country|neq: [FR, DE]}\n  condition: s and not f", phone))
    }

    @Test func fieldref() {
        #expect(!one("  s: {country|fieldref: source.country}\n  condition: s", phone))
        let home = selector(#"{"id":"h","type":"phone","value":"+32 2 456 12 34","source":{"country":"be"}}"#)
        #expect(one("  s: {country|fieldref: source.country}\n  condition: s", home))
        #expect(!one("  s: {country|fieldref|cased: source.country}\n  condition: s", home))
        let e = selector(#"{"id":"m","type":"email","value":"abu.omar@example.org","context":{"owner":"Abu.Omar"}}"#)
        #expect(one("  s: {value|fieldref|startswith: context.owner}\n  condition: s", e))
        #expect(one("  s: {value|fieldref|contains: context.owner}\n  condition: s", e))
        #expect(!one("  s: {value|fieldref|endswith: context.owner}\n  condition: s", e))
        #expect(!one("  s: {value|fieldref: context.owner}\n  condition: s", e))
    }

    @Test func keywordsSearchEveryString() {
        #expect(one("  keywords: [molenbeek, 'omar']\n  condition: keywords", phone))
        #expect(!one("  keywords: [molenbeek]\n  condition: keywords", phone))
    }

    @Test func watchlistFieldHoldsIfAnyElementDoes() {
        let hits = [listHit(phone, owner: "fr-dgsi", list: "a"), listHit(phone, owner: "be-fedpol", list: "b")]
        #expect(one("  s: {watchlist.owner: be-fedpol}\n  condition: s", phone, watchlist: hits))
        #expect(!one("  s: {watchlist.owner: nl-nctv}\n  condition: s", phone, watchlist: hits))
        #expect(one("  s: {watchlist|exists: true}\n  condition: s", phone, watchlist: hits))
        #expect(!one("  s: {watchlist|exists: true}\n  condition: s", phone))
        #expect(one("  s: {watchlist.priority: high}\n  condition: s", phone, watchlist: hits))
    }

    @Test func conditionQuantifiers() {
        let d = """
              sel_a: {area: brussels}
              sel_b: {country: FR}
              _aux: {type: email}
            """
        #expect(one(d + "\n  condition: 1 of sel_*", phone))
        #expect(!one(d + "\n  condition: all of sel_*", phone))
        #expect(!one(d + "\n  condition: all of them", phone))  // _aux is not in "them"
        #expect(one(d + "\n  condition: 1 of them and not _aux", phone))
        #expect(one(d + "\n  condition: not sel_b and (sel_a or _aux)", phone))
        #expect(one(d + "\n  condition: [sel_b, sel_a]", phone))  // a list of conditions: any
    }

    @Test func expandResolvesWatchlists() throws {
        let dir = FileManager.default.currentDirectoryPath + "/Watchlists"
        let lists = WatchlistLoader().load(directory: dir, now: 1_900_000_000).lists
        #expect(!lists.isEmpty)
        let r = loadRules(
            rule("  s: {value|expand: '%be-fedpol/returning-fighters%'}\n  condition: s"), watchlists: lists)
        #expect(r.errors.isEmpty, "\(r.errors)")
        let listed = selector(#"{"id":"x","type":"phone","value":"+32 470 12 34 56"}"#)
        #expect(matches(r.ruleSet, listed) == ["r1"])
        #expect(matches(r.ruleSet, phone).isEmpty)
        let bad = loadRules(rule("  s: {value|expand: '%nobody/nothing%'}\n  condition: s"), watchlists: lists)
        #expect(bad.errors.first?.message.contains("names no loaded watchlist") == true)
    }

    @Test("expand under re takes watched values as literals; errors never quote a watched value")
    func expandIsLiteralAndQuiet() throws {
        let dir = FileManager.default.currentDirectoryPath + "/Watchlists"
        let lists = WatchlistLoader().load(directory: dir, now: 1_900_000_000).lists
        // "+32470123456": a regex would read "+" as a quantifier with nothing to repeat.
        let re = loadRules(
            rule("  s: {value|expand|re: '^%be-fedpol/returning-fighters%$'}\n  condition: s"), watchlists: lists)
        #expect(re.errors.isEmpty, "\(re.errors)")
        #expect(matches(re.ruleSet, selector(#"{"id":"x","type":"phone","value":"+32 470 12 34 56"}"#)) == ["r1"])
        #expect(matches(re.ruleSet, selector(#"{"id":"y","type":"phone","value":"+32 470 12 34 57"}"#)).isEmpty)
        let values = lists.flatMap { $0.entries.flatMap { $0.selectors.map(\.value) } }
        for bad in [
            "  s: {value|expand|gt: '%be-fedpol/returning-fighters%'}\n  condition: s",
            "  s: {value|expand|fieldref: '%be-fedpol/returning-fighters%'}\n  condition: s",
        ] {
            let r = loadRules(rule(bad), watchlists: lists)
            #expect(r.errors.count == 1)
            let text = r.errors.map(\.description).joined()
            #expect(!values.contains { text.contains($0) }, "\(text)")
        }
    }

    @Test func multipleDocumentsAndDuplicates() {
        let text =
            rule("  s: {type: phone}\n  condition: s") + "\n---\n" + rule("  s: {type: ip}\n  condition: s", id: "r2")
        let r = loadRules(text)
        #expect(r.errors.isEmpty)
        #expect(r.ruleSet.rules.map(\.id) == ["r1", "r2"])
        let dup = loadRules(
            rule("  s: {type: phone}\n  condition: s") + "\n---\n" + rule("  s: {type: ip}\n  condition: s"))
        #expect(dup.errors.count == 1)
        #expect(dup.errors.first?.message.contains("duplicate rule id") == true)
    }
}

@Suite("Rule errors")
struct RuleErrorTests {
    func error(_ detection: String) -> String {
        let r = loadRules(rule(detection))
        #expect(r.errors.count == 1, "\(r.errors)")
        #expect(r.ruleSet.rules.isEmpty)
        return r.errors.first?.description ?? ""
    }

    @Test func errorsNameFileLineColumn() {
        // Line 6 is the first detection line; columns count from 1.
        #expect(
            error("  s: {value|contanis: x}\n  condition: s").hasSuffix(#"rule.yml:6:13: unknown modifier "contanis""#))
        #expect(error("  s: {valu: x}\n  condition: s").contains("rule.yml:6:7: unknown field \"valu\""))
        #expect(error("  s: {value|base64: x}\n  condition: s").contains("6:13: modifier \"base64\" is not supported"))
        #expect(
            error("  s: {value: x}\n  condition: s and t").hasSuffix(
                #"rule.yml:7:20: condition names undefined selection "t""#))
        #expect(error("  s: {value: x}\n  condition: 's and t'").contains("rule.yml:7:21:"))
        #expect(error("  s: {value|re: 'ab(c'}\n  condition: s").contains("rule.yml:6:22: bad regular expression"))
        #expect(error("  s: {value|gt: many}\n  condition: s").contains("needs a number"))
        #expect(error("  s: {value|exists: maybe}\n  condition: s").contains("true or false"))
        #expect(error("  s: {value: x}").contains("no \"condition\""))
        #expect(error("  s: {value|i: x}\n  condition: s").contains("applies to \"re\" only"))
    }

    @Test func otherRulesStillLoadAndAllErrorsAreReported() {
        let text =
            rule("  s: {valu: x}\n  condition: s") + "\n---\n" + rule("  s: {type: ip}\n  condition: s", id: "r2")
            + "\n---\n" + rule("  s: {type: ip}\n  condition: nope", id: "r3")
        let r = loadRules(text)
        #expect(r.errors.count == 2)
        #expect(r.ruleSet.rules.map(\.id) == ["r2"])
    }

    @Test func logsourceAndLevelAreChecked() {
        let wrong = "title: t\nid: x\nlogsource: {product: windows}\ndetection:\n  s: {value: x}\n  condition: s\n"
        #expect(loadRules(wrong).errors.first?.message.contains("logsource") == true)
        let level = rule("  s: {value: x}\n  condition: s", level: "urgent")
        #expect(loadRules(level).errors.first?.message.contains("level") == true)
    }

    @Test func regexLimitsStopHostilePatternsAndAreReported() {
        let r = RuleLoader(now: 0, regexLimits: Regex.Limits(match: 10_000, depth: 1000, heapKiB: 1024))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-redos-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("redos.yml").path
        _ = FileManager.default.createFile(
            atPath: path, contents: Data(rule("  s: {context.note|re: '^(a+)+$'}\n  condition: s").utf8))
        let loaded = r.load(files: [path])
        #expect(loaded.errors.isEmpty)
        #expect(loaded.warnings.contains { $0.message.contains("runs on every selector") })
        let evil = selector(
            #"{"id":"evil","type":"name","value":"x","context":{"note":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"}}"#)
        var ev = RuleEvaluator(loaded.ruleSet)
        var problems: [String] = []
        let start = Date()
        let m = ev.evaluate(RuleEvent(selector: evil, watchlist: [])) { problems.append($0) }
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(m.isEmpty)
        #expect(ev.limitHits == 1)
        #expect(problems.first?.contains("limit") == true)
    }
}

@Suite("Prefilter agrees with direct evaluation")
struct PrefilterTests {
    /// Random rules over a small vocabulary, evaluated on random selectors with and without the index:
    /// the index may only skip rules that cannot match.
    @Test func randomRulesAndEvents() {
        var rng = SplitMix64(seed: 20_261_123)
        let words = ["abu", "omar", "hamza", "ab", "mar", "x", "bru", "+3224", "tele", "gram", "be", "fr"]
        func word() -> String { words[Int(rng.next() % UInt64(words.count))] }
        func value() -> String {
            switch rng.next() % 6 {
            case 0: return word()
            case 1: return "'*" + word() + "*'"
            case 2: return "'" + word() + "?" + word() + "*'"
            default: return "'" + word() + "*'"
            }
        }
        let fields = ["context.contact_name", "value", "source.item", "area"]
        let mods = [
            "", "|contains", "|startswith", "|endswith", "|re", "|cased", "|neq", "|contains|all", "|contains|neq",
            "|neq|cased",
        ]
        var docs: [String] = []
        for i in 0..<300 {
            var sels: [String] = []
            for s in 0..<3 {
                let f = fields[Int(rng.next() % UInt64(fields.count))]
                let mod = mods[Int(rng.next() % UInt64(mods.count))]
                let v: String
                if mod == "|re" {
                    let w = word().replacingOccurrences(of: "+", with: "\\+")
                    v =
                        "'" + w
                        + (rng.next() % 2 == 0 ? "[a-z_]*" : "|" + word().replacingOccurrences(of: "+", with: "\\+"))
                        + "'"
                } else if mod == "|contains|all" {
                    v = "[" + word() + ", " + word() + "]"
                } else if mod.contains("neq") && rng.next() % 4 != 0 {
                    // A list under neq: none of the values.
                    v = "[" + value() + ", " + value() + (rng.next() % 2 == 0 ? "" : ", " + value()) + "]"
                } else {
                    v = value()
                }
                sels.append("  s\(s): {\(f)\(mod): \(v)}")
            }
            let conds = [
                "s0", "s0 and s1", "s0 or s1 and not s2", "1 of them", "all of them", "not s0", "(s0 or s1) and s2",
            ]
            let c = conds[Int(rng.next() % UInt64(conds.count))]
            docs.append(rule(sels.joined(separator: "\n") + "\n  condition: \(c)", id: "r\(i)"))
        }
        let r = loadRules(docs.joined(separator: "\n---\n"))
        #expect(r.errors.isEmpty, "\(r.errors.prefix(3))")
        var total = 0
        for k in 0..<2000 {
            let name = (0..<3).map { _ in word() }.joined(separator: rng.next() % 2 == 0 ? " " : "_")
            let item = word().uppercased() + "-\(k)"
            let sel = selector(
                #"{"id":"e\#(k)","type":"phone","value":"+32 2 4\#(k % 10)5 12 34","source":{"item":"\#(item)"},"context":{"contact_name":"\#(name)"}}"#
            )
            total += matches(r.ruleSet, sel).count  // preconditions that both paths agree
        }
        #expect(total > 100)
    }
}

@Suite("Literal filter")
struct LiteralSetTests {
    /// Every occurrence the filter reports is real and none is missed, against a naive search.
    @Test func agreesWithNaiveSearch() {
        var rng = SplitMix64(seed: 7)
        let alphabet = Array("abcde:+0".utf8)
        func text(_ n: Int) -> [UInt8] { (0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] } }
        let patterns = (0..<400).map { _ in text(1 + Int(rng.next() % 9)) }
        let set = LiteralSet(patterns: patterns, values: patterns.indices.map { Int32($0) })
        for _ in 0..<2000 {
            let t = text(Int(rng.next() % 30))
            var found: [Int32] = []
            t.withUnsafeBufferPointer { buf in set.scan(buf) { found.append($0) } }
            var expected: [Int32] = []
            for (k, p) in patterns.enumerated() where p.count <= t.count {
                for start in 0...(t.count - p.count) where Array(t[start..<start + p.count]) == p {
                    expected.append(Int32(k))
                }
            }
            #expect(found.sorted() == expected.sorted())
        }
    }
}
