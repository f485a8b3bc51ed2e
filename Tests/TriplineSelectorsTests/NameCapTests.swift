import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

@testable import TriplineSelectors

/// Issue "need-to-know hardening" item 15: a name costs at most what a name can.
@Suite("Name length caps")
struct NameCapTests {
    let n = SelectorNormalizer()

    /// How long `body` takes, in milliseconds.
    func millis(_ body: () -> Void) -> Double {
        let start = ContinuousClock.now
        body()
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    @Test("a 60 KB name is rejected at once, with the reason (tolerance: 50 ms)")
    func huge() {
        let name = String(repeating: "Abdelhamid ", count: 5_586)  // 61,446 bytes, 61,445 after trimming
        let ms = millis {
            #expect(throws: SelectorError("name: 61445 bytes, longer than the 512 a name may have")) {
                _ = try n.normalizeValue(.name, name)
            }
        }
        #expect(ms < 50, "took \(ms) ms")
    }

    @Test("a 1,000-token name is rejected at once, with the reason (tolerance: 50 ms)")
    func manyTokens() {
        var g = SplitMix64(seed: 15)
        let tokens = (0..<1_000).map { _ in String(UnicodeScalar(UInt8(97 + g.next() % 26))) }
        let name = tokens.joined(separator: " ")  // 1,999 bytes
        let ms = millis {
            #expect(throws: SelectorError("name: 1999 bytes, longer than the 512 a name may have")) {
                _ = try n.normalizeValue(.name, name)
            }
        }
        #expect(ms < 50, "took \(ms) ms")
    }

    @Test("a name of 17 words under 512 bytes is rejected for its words; 16 are a name")
    func words() throws {
        let words = [
            "Abu", "Bakr", "Muhammad", "bin", "Abd", "al-Rahman", "bin", "Muhammad", "bin", "Ali", "bin", "Hasan",
            "bin", "Umar", "al-Baghdadi",
        ]  // 17 tokens: al-Rahman and al-Baghdadi are two each
        let seventeen = words.joined(separator: " ")
        #expect(throws: SelectorError("name: 17 words, more than the 16 a name may have")) {
            _ = try n.normalizeValue(.name, seventeen)
        }
        let sixteen = words.dropLast().joined(separator: " ") + " Baghdadi"
        let (v, f) = try n.normalizeValue(.name, sixteen)
        #expect(v == "abu bakr muhammad bin abd al rahman bin muhammad bin ali bin hasan bin umar baghdadi")
        #expect(f["tokens"]?.arrayValue?.count == 16)
    }

    @Test("512 bytes after trimming is a name; 513 is not (Arabic script: two bytes a letter)")
    func boundary() throws {
        // 16 words of 15 Arabic letters (30 bytes) and 15 spaces: 495 bytes; padded with whitespace that is trimmed.
        let word = String(repeating: "\u{0628}", count: 15)
        let name = Array(repeating: word, count: 16).joined(separator: " ")
        #expect(name.utf8.count == 495)
        let (v, f) = try n.normalizeValue(.name, "   " + name + String(repeating: " ", count: 40))
        #expect(v.split(separator: " ").count == 16)
        #expect(f["script"] == "Arab")
        let exact = name + " " + String(repeating: "b", count: 16)  // 512 bytes, 17 words
        #expect(exact.utf8.count == 512)
        #expect(throws: SelectorError("name: 17 words, more than the 16 a name may have")) {
            _ = try n.normalizeValue(.name, exact)
        }
        #expect(throws: SelectorError("name: 513 bytes, longer than the 512 a name may have")) {
            _ = try n.normalizeValue(.name, exact + "b")
        }
    }

    @Test("a record with a huge name is rejected alone, with the reason")
    func record() throws {
        let o = try JSONParser.parse(
            #"{"id":"r-1","type":"name","value":""# + String(repeating: "x ", count: 30_000) + #""}"#
        ).objectValue!
        let input = try SelectorInput(json: o)
        #expect(throws: SelectorError("name: 59999 bytes, longer than the 512 a name may have")) {
            _ = try n.normalize(input)
        }
    }
}
