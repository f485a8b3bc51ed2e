import Foundation
import Testing

@testable import TriplineYAML

@Suite("YAML reader")
struct YAMLTests {
    let reader = YAMLReader()

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
