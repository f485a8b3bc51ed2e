import Foundation
import Testing

@testable import TriplineYAML

@Suite("YAML reader")
struct YAMLTests {
    let reader = YAMLReader()

    /// Duplicate keys are found by a linear search while a mapping is small and by a set past 15 keys — also when
    /// the 16th key is a collection (the set was then never made: 20,000 keys after it took 31 s, now linear).
    @Test func duplicateKeysStayLinearAfterACollectionKey() throws {
        var text = (0..<15).map { "k\($0): 1\n" }.joined() + "? [c]\n: 1\n"
        text += (0..<20_000).map { "x\($0): 1\n" }.joined()
        let start = Date()
        let root = try #require(try reader.parse(text, file: "wide.yaml"))
        #expect(root.mapping?.count == 20_016)
        #expect(Date().timeIntervalSince(start) < 5)  // 0.2 s on this machine; 31 s before
        #expect(throws: LocatedError.self) { try reader.parse(text + "x17: 2\n", file: "wide.yaml") }
    }

    @Test("every node keeps its line and column")
    func positions() throws {
        let text = """
            watchlist: x
            entries:
              - ref: A
                selectors:
                  - {type: phone, value: "+32 2"}
            """
        let root = try #require(try reader.parse(text, file: "w.yaml"))
        #expect(root["watchlist"]?.mark == Mark(line: 1, column: 12))
        let entry = try #require(root["entries"]?.sequence?.first)
        #expect(entry.mark == Mark(line: 3, column: 5))
        let sel = try #require(entry["selectors"]?.sequence?.first)
        #expect(sel["value"]?.mark == Mark(line: 5, column: 30))
        #expect(sel["value"]?.scalar == "+32 2")
    }

    @Test("streaming the root's entries: each item handed over in order with its position, none kept in the tree")
    func streamingEntries() throws {
        let text = """
            watchlist: x
            entries:
              - &first {ref: A, v: 1}
              - {ref: B, v: *first}
              - ref: C
                nested: {entries: [1, 2]}
            other: [1, 2]
            """
        var seen: [Node] = []
        let root = try #require(
            try reader.parse(Array(text.utf8), file: "w.yaml", streaming: "entries") { seen.append($0) })
        #expect(seen.map { $0["ref"]?.scalar } == ["A", "B", "C"])
        #expect(seen.map(\.mark) == [Mark(line: 3, column: 5), Mark(line: 4, column: 5), Mark(line: 5, column: 5)])
        #expect(seen[1]["v"]?["ref"]?.scalar == "A")  // an alias to an earlier item resolves
        #expect(seen[2]["nested"]?["entries"]?.sequence?.count == 2)  // only the root's key is streamed
        #expect(root["entries"]?.sequence?.isEmpty == true && root["entries"]?.mark == Mark(line: 3, column: 3))
        #expect(root["other"]?.sequence?.count == 2 && root["watchlist"]?.scalar == "x")

        // A key that is not a sequence stays in the tree (the validator says what is wrong with it).
        var none = 0
        let scalar = try #require(
            try reader.parse(Array("entries: 3\n".utf8), file: "w.yaml", streaming: "entries") { _ in none += 1 })
        #expect(none == 0 && scalar["entries"]?.scalar == "3")
    }

    @Test("streaming keeps every limit: nodes counted across streamed items (a billion laughs), depth, syntax errors")
    func streamingLimits() throws {
        var limits = YAMLReader.Limits()
        limits.maxNodes = 1000
        let small = YAMLReader(limits: limits)
        let laughs =
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nentries:\n"
            + String(repeating: "  - [*a, *a, *a, *a, *a]\n", count: 40)
        var got = 0
        #expect(throws: LocatedError.self) {
            _ = try small.parse(Array(laughs.utf8), file: "l.yaml", streaming: "entries") { _ in got += 1 }
        }
        #expect(got < 40)
        let deep = "entries:\n  - " + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "\n"
        #expect(throws: LocatedError.self) {
            _ = try reader.parse(Array(deep.utf8), file: "d.yaml", streaming: "entries") { _ in }
        }
        let broken = "entries:\n  - {ref: A}\n  - {ref: B\n"
        let error = #expect(throws: LocatedError.self) {
            _ = try reader.parse(Array(broken.utf8), file: "b.yaml", streaming: "entries") { _ in }
        }
        #expect(error?.file == "b.yaml" && error?.mark.line == 4)
    }

    @Test("several documents: one per rule, positions per file, anchors local to their document")
    func documents() throws {
        let text = "title: a\nx: &k 1\n---\n---\ntitle: b\ny: *k\n"
        #expect {
            _ = try reader.parseAll(Array(text.utf8), file: "r.yml")
        } throws: { error in
            (error as? LocatedError)?.mark.line == 6
        }
        let docs = try reader.parseAll(Array("title: a\n---\ntitle: b\n".utf8), file: "r.yml")
        #expect(docs.map { $0["title"]?.scalar } == ["a", "b"])
        #expect(docs[1]["title"]?.mark == Mark(line: 3, column: 8))
        #expect(throws: LocatedError.self) { _ = try reader.parse("a: 1\n---\nb: 2\n", file: "one.yaml") }
    }

    @Test("syntax errors read file:line:col: message")
    func syntaxError() {
        #expect {
            _ = try reader.parse("a: [1, 2\nb: c\n", file: "bad.yaml")
        } throws: { error in
            let e = error as! LocatedError
            return e.description.hasPrefix("bad.yaml:") && e.mark.line == 2 && !e.message.isEmpty
        }
    }

    @Test("YAML 1.2 core schema: plain scalars stay text")
    func coreSchema() throws {
        let root = try #require(try reader.parse("country: NO\nphone: 0470123456\nflag: yes\n", file: "s.yaml"))
        #expect(root["country"]?.scalar == "NO")
        #expect(root["phone"]?.scalar == "0470123456")
        #expect(root["flag"]?.scalar == "yes")
    }

    @Test("duplicate keys are errors at the second key")
    func duplicateKeys() {
        #expect {
            _ = try reader.parse("a: 1\nb: 2\na: 3\n", file: "d.yaml")
        } throws: { ($0 as! LocatedError).description == "d.yaml:3:1: duplicate key \"a\"" }
    }

    @Test("a billion-laughs file fails fast with a clear error")
    func billionLaughs() {
        var text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for i in 1...9 {
            let refs = Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ")
            text += "a\(i): &a\(i) [\(refs)]\n"
        }
        let start = Date()
        #expect {
            _ = try reader.parse(text, file: "lol.yaml")
        } throws: { error in
            (error as! LocatedError).message.contains("nodes (after alias expansion)")
        }
        #expect(Date().timeIntervalSince(start) < 0.5)
    }

    @Test("nesting deeper than the limit is refused")
    func depth() {
        let text = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect {
            _ = try reader.parse(text, file: "deep.yaml")
        } throws: { ($0 as! LocatedError).message.contains("nesting deeper") }
    }

    @Test("files over the size limit are refused before parsing")
    func size() {
        var limits = YAMLReader.Limits()
        limits.maxBytes = 100
        let small = YAMLReader(limits: limits)
        #expect {
            _ = try small.parse(String(repeating: "a: b\n", count: 50), file: "big.yaml")
        } throws: { ($0 as! LocatedError).message.contains("larger than 100 bytes") }
    }

    @Test("a second document is an error")
    func multipleDocuments() {
        #expect(throws: LocatedError.self) { _ = try reader.parse("a: 1\n---\nb: 2\n", file: "m.yaml") }
    }
}
