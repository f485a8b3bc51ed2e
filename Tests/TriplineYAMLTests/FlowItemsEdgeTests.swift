import Foundation
import Testing

@testable import TriplineYAML

/// The edges of `FlowItems` an adversarial review found (each failed before its fix), read both ways.
@Suite("Flow items: the review's edges")
struct FlowItemsEdgeTests {
    func read(_ text: String, flow: Bool, reader: YAMLReader = YAMLReader()) -> String {
        var items: [String] = []
        do {
            let counts = try reader.parse(part: ArraySlice(text.utf8), file: "p.yaml", line: 7, flowItems: flow) {
                items.append(FlowItemsTests.describe($0))
            }
            return items.joined(separator: "\n") + "\n#\(counts.nodes)/\(counts.aliases)"
        } catch {
            return "refused"
        }
    }

    /// libyaml refuses a flow mapping whose key's `:` comes over 1,024 characters after the key starts (a stale
    /// simple key); the fast path took it.
    @Test(arguments: [1_000, 1_024, 1_025, 3_000])
    func longKeys(length: Int) {
        let text = "  - {ref: E1, \(String(repeating: "k", count: length)): v}\n  - {ref: E2}\n"
        #expect(read(text, flow: true) == read(text, flow: false))
    }

    /// A mapping of thousands of keys on one line: the fast path searched the keys before each key (quadratic:
    /// 80,000 keys took 16 s against libyaml's 0.06 s); such a mapping is libyaml's now.
    @Test func wideMappingsAreLibyamls() {
        let keys = (0..<20_000).map { "k\($0): v" }.joined(separator: ", ")
        let text = "  - {ref: E1, x: {\(keys)}}\n  - {ref: E2}\n"
        var t = Date()
        let slow = read(text, flow: false)
        let libyaml = Date().timeIntervalSince(t)
        t = Date()
        let fast = read(text, flow: true)
        let flow = Date().timeIntervalSince(t)
        #expect(fast == slow)
        #expect(flow < 3 * libyaml + 0.5, "\(flow) s against libyaml's \(libyaml) s")
        let sixteen = "  - {" + (0..<16).map { "k\($0): v" }.joined(separator: ", ") + "}\n"
        let seventeen = "  - {" + (0..<17).map { "k\($0): v" }.joined(separator: ", ") + "}\n"
        #expect(read(sixteen, flow: true) == read(sixteen, flow: false))
        #expect(read(seventeen, flow: true) == read(seventeen, flow: false))
    }

    /// The node limit counts the part's sequence, as libyaml's reading of a part does.
    @Test func theNodeLimitAtItsEdge() {
        var limits = YAMLReader.Limits()
        limits.maxNodes = 10
        let r = YAMLReader(limits: limits)
        let ten = "  - {a: b, c: d, e: f, g: [h]}\n"  // 10 nodes, and the sequence
        let nine = "  - {a: b, c: d, e: f, g: h}\n"
        #expect(read(ten, flow: true, reader: r) == "refused")
        #expect(read(ten, flow: false, reader: r) == "refused")
        #expect(read(nine, flow: true, reader: r) == read(nine, flow: false, reader: r))
        #expect(read(nine, flow: true, reader: r) != "refused")
    }

    /// A quoted scalar running onto a line that starts like an item is cut there (an item is the lines up to the
    /// next item's start): the piece is refused, so the caller reads the whole file — slower, same outcome.
    @Test func aQuotedScalarOverAnItemLikeLine() {
        for text in ["  - {a: \"x\n  - {b: c} # \"}\n", "  - \"abc\n  - {a: b} #\"\n"] {
            #expect(read(text, flow: true) == "refused")
            #expect(read(text, flow: false) != "refused")
        }
    }

    /// Nesting at the depth limit reads the same both ways.
    @Test(arguments: [60, 62, 63, 64])
    func nestingAtTheLimit(levels: Int) {
        let text =
            "  - " + String(repeating: "[", count: levels) + "a" + String(repeating: "]", count: levels) + "\n"
            + "  - {a: " + String(repeating: "{b: ", count: levels - 1) + "c" + String(repeating: "}", count: levels)
            + "\n"
        #expect(read(text, flow: true) == read(text, flow: false))
    }
}
