import Foundation
import Testing
import TriplineTestSupport

@testable import TriplineYAML

/// The one-line flow items of a split list's part are read without libyaml (`FlowItems`): the nodes, marks, sizes
/// and counts must be exactly libyaml's, and whatever libyaml refuses must still be refused.
@Suite("Flow items read without libyaml")
struct FlowItemsTests {
    let reader = YAMLReader()

    /// A node written out with everything a consumer can see: kind, style, text, line:column, expanded size.
    static func describe(_ n: Node) -> String {
        let at = "\(n.mark.line):\(n.mark.column)/\(n.expandedSize)"
        switch n.kind {
        case .scalar(let s, let plain): return "\(plain ? "P" : "Q")\(at)<\(s)>"
        case .sequence(let items): return "S\(at)[" + items.map(describe).joined(separator: ",") + "]"
        case .mapping(let pairs):
            return "M\(at){" + pairs.map { describe($0.key) + "=" + describe($0.value) }.joined(separator: ",") + "}"
        }
    }

    /// The part read both ways: the items' descriptions and counts, or "refused".
    func bothWays(_ text: String, line: Int = 7) -> (fast: String, libyaml: String, flowItems: Int, items: Int) {
        func read(_ flow: Bool) -> (String, Int, Int) {
            var items: [String] = []
            do {
                let counts = try reader.parse(part: ArraySlice(text.utf8), file: "p.yaml", line: line, flowItems: flow)
                {
                    items.append(Self.describe($0))
                }
                return (
                    items.joined(separator: "\n") + "\n#\(counts.nodes)/\(counts.aliases)", counts.flowItems,
                    items.count
                )
            } catch {
                return ("refused", 0, 0)
            }
        }
        let f = read(true)
        return (f.0, read(false).0, f.1, f.2)
    }

    @Test func aGeneratedListReadsAsLibyamlReadsIt() {
        let text = (0..<50).map { i in
            i % 2 == 0
                ? "  - {ref: E\(i), selectors: [{type: phone, value: \"+3247000\(i)\"}]}\n"
                : "  - {ref: E\(i), selectors: [{type: email, value: u\(i).1@example.org}], note: 'x y'}  # c\n"
        }.joined()
        let r = bothWays(text)
        #expect(r.fast == r.libyaml)
        #expect(r.flowItems == 50)
        #expect(r.fast.hasSuffix("#550/0"))
        #expect(r.fast.hasPrefix("M7:5/10{P7:6/1<ref>=P7:11/1<E0>,P7:15/1<selectors>=S7:26/6[M7:27/5{"))
    }

    /// Pieces in the subset, and pieces just outside it (what libyaml reads otherwise, or refuses).
    static let good = [
        "E1", "John Smith", "u1.2@example.org", "+32 470", "O'Brien", "a  b", "a b   ", "(x)", "_y", ".5", "/p", "null",
        "~x", "'s q'", "''", "\"dq\"", "\"\"", "\"a: #b\"", "'a: #b'", "{}", "[]", "{a: b}", "[a, b]",
        "[a, [b, {c: d}]]", "{a: [1, 2], b: {c: \"d\"}}", "{ a: b }", "[ a , b ]",
    ]
    static let odd = [
        "x:y", "x: y", "a #b", "a#b", "-x", "- x", "?x", "~", "", "'it''s'", "\"a\\\"b\"", "\"\\n\"", "é", "a\tb",
        "&a x",
        "*a", "!!str x", "|", "%x", "@x", "`x", "x,y", "x]", "a:", "{a: b, a: c}", "[a,]", "{a: b,}", "{a}", "{a: }",
        "{a:b}", "{\"k\": v}", "{? k: v}", "{a: b", "[a", "\"open", "'open", "&x {a: b}",
    ]
    static let goodKeys = ["ref", "type", "value", "a-b", "_x", "1", "k_9", "note", "kind", "w"]
    static let oddKeys = ["\"q\"", "k ", "-k", "k\t", "<<", "é", "? k", "", "ref", "type"]

    static func item(_ g: inout SplitMix64) -> String {
        func pick(_ good: [String], _ odd: [String], _ oddOneIn: Int) -> String {
            Int.random(in: 0..<oddOneIn, using: &g) == 0
                ? odd.randomElement(using: &g)! : good.randomElement(using: &g)!
        }
        func value(_ depth: Int) -> String {
            switch Int.random(in: 0..<10, using: &g) {
            case 0 where depth < 4:
                return "["
                    + (0..<Int.random(in: 0...3, using: &g)).map { _ in value(depth + 1) }
                    .joined(separator: pick([", ", " , "], [",", ",  "], 8)) + "]"
            case 1 where depth < 4, 2 where depth < 4: return mapping(depth + 1)
            default: return pick(good, odd, 30)
            }
        }
        func mapping(_ depth: Int) -> String {
            // Distinct keys, but for an odd one now and then (a duplicate among them).
            let keys = goodKeys.shuffled(using: &g).prefix(Int.random(in: 0...4, using: &g))
            let pairs = keys.map { key in
                (Int.random(in: 0..<40, using: &g) == 0 ? oddKeys.randomElement(using: &g)! : key)
                    + pick([": ", ":  "], [":", " : ", ":\t"], 40) + value(depth)
            }
            return pick(["{", "{ "], ["{\t"], 40) + pairs.joined(separator: pick([", ", " ,  "], [",", ",\t"], 20))
                + pick(["}", " }"], [",}", "\t}"], 40)
        }
        let dash = pick(["  - ", "  -  "], ["  -", "  -\t", "   - ", " - "], 40)
        let body = Int.random(in: 0..<20, using: &g) == 0 ? value(0) : mapping(2)
        let tail = pick(["", "", "  ", " # note", "\r"], ["# note", " #é", " \t# x", "\t"], 30)
        var text = dash + body + tail + "\n"
        switch Int.random(in: 0..<16, using: &g) {
        case 0: text += "\n"
        case 1: text += "    # a comment\n"
        case 2: text += "# at column 1\n"
        case 3: text += "    more: x\n"
        case 4: text += "  # é\n"
        case 5: text += "   \n"
        default: break
        }
        return text
    }

    static let parts = Int(ProcessInfo.processInfo.environment["TRIPLINE_FLOW_PARTS"] ?? "") ?? 6_000

    /// `parts` parts of 1–6 items from a fixed seed: every part reads the same both ways, or both refuse it. The
    /// figures printed say how much of it each way read (so the test is known to cover both).
    @Test(arguments: [0x5EED_F10E])
    func randomPartsReadAsLibyamlReadsThem(seed: UInt64) {
        var g = SplitMix64(seed: seed)
        var same = 0
        var refused = 0
        var flowItems = 0
        var items = 0
        for _ in 0..<Self.parts {
            let text = (0..<Int.random(in: 1...6, using: &g)).map { _ in Self.item(&g) }.joined()
            let r = bothWays(text, line: Int.random(in: 1...100, using: &g))
            #expect(r.fast == r.libyaml, "\(text)")
            if r.fast == r.libyaml { same += 1 }
            if r.libyaml == "refused" { refused += 1 }
            flowItems += r.flowItems
            items += r.items
        }
        #expect(same == Self.parts)
        print(
            "flow items: \(Self.parts - refused) parts read (\(flowItems) of their \(items) items without libyaml), \(refused) refused"
        )
        // Both readers and refusals all well represented.
        #expect(refused > Self.parts / 10 && refused < Self.parts / 2)
        #expect(flowItems > items / 3 && flowItems < items * 9 / 10)
    }
}
