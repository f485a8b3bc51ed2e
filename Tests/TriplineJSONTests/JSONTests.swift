import Foundation
import Testing
import TriplineIngest

@testable import TriplineJSON

@Suite("JSON reader and writer")
struct JSONTests {
    @Test("objects keep member order and number text")
    func order() throws {
        let v = try JSONParser.parse(#"{"b":1,"a":[true,null,-1.5e3],"c":{"x":"y"}}"#)
        #expect(v.objectValue?.keys == ["b", "a", "c"])
        #expect(JSONWriter.string(v) == #"{"b":1,"a":[true,null,-1.5e3],"c":{"x":"y"}}"#)
    }

    @Test("escapes and surrogate pairs decode; control characters are escaped on output")
    func escapes() throws {
        let v = try JSONParser.parse(#""a\"b\\c\n\u00e9\ud83d\ude00""#)
        #expect(v.stringValue == "a\"b\\c\né😀")
        #expect(JSONWriter.string(.string("tab\there\u{1}")) == #""tab\there\u0001""#)
    }

    @Test(
        "malformed input is rejected with an offset",
        arguments: [
            #"{"a":1"#, #"{"a" 1}"#, "[1,]", "01", "1.", #""\x""#, "tru", #"{"a":1}x"#, #""\ud800""#,
            #"{"a":1,"a":2}"#,
        ])
    func malformed(_ text: String) {
        #expect(throws: JSONError.self) { _ = try JSONParser.parse(text) }
    }

    @Test("invalid UTF-8 inside a string is an error")
    func invalidUTF8() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: JSONError.self) { _ = try JSONParser.parse(bytes) }
    }

    @Test("nesting is bounded")
    func depth() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONError.self) { _ = try JSONParser.parse(deep) }
    }

    @Test("the line reader numbers lines, strips CR, and skips over an oversized record")
    func lineReader() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lines-\(getpid()).ndjson").path
        let big = String(repeating: "x", count: 3000)
        try "one\r\ntwo\n\(big)\nfour\nfive".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var r = try LineReader(path: path, maxRecord: 1000)
        var seen: [String] = []
        while let l = try r.next() {
            switch l {
            case .record(let b, let n): seen.append("\(n):\(String(decoding: b, as: UTF8.self))")
            case .oversized(let n, let len, let head):
                seen.append("\(n):oversized \(len)")
                #expect(head == Array(big.utf8.prefix(LineReader.headLength)))
            }
        }
        #expect(seen == ["1:one", "2:two", "3:oversized 3000", "4:four", "5:five"])
    }
}
