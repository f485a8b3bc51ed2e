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

    /// `waiting`: a pipe with nothing more to read says so (standard input's batch is then sent, not held for
    /// 32,768 lines); with a line buffered or bytes ready, it does not.
    @Test func waitingOnAPausedPipe() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[1]) }
        var r = LineReader(fd: fds[0], ownsFD: true)
        _ = "a\nb\n".withCString { write(fds[1], $0, 4) }
        guard case .record(let first, 1)? = try r.next() else {
            Issue.record("no first line")
            return
        }
        #expect(String(decoding: first, as: UTF8.self) == "a")
        let afterFirst = r.waiting  // "b" is buffered
        _ = try r.next()
        let afterSecond = r.waiting  // nothing buffered, nothing to read
        _ = "c".withCString { write(fds[1], $0, 1) }
        let withBytes = r.waiting  // bytes ready to be read
        #expect([afterFirst, afterSecond, withBytes] == [false, true, false])
    }

    /// `next(passing:)` (the record step's screen): the lines passed over are consumed in place and counted, the
    /// others come out as `next()` gives them, with their own line numbers, however the reads cut the input.
    @Test(arguments: [nil, 1, 7, 64])
    func passingLinesOverInRuns(readSize: Int?) throws {
        let path = NSTemporaryDirectory() + "tripline-pass-\(UUID().uuidString).txt"
        var lines: [String] = []
        for k in 0..<400 {
            let kind = (k * 7919 + k / 13) % 10
            lines.append(
                kind < 7 ? "pass \(k)" : kind == 7 ? "keep \(k)\r" : kind == 8 ? "" : String(repeating: "p", count: 300)
            )
        }
        try (lines.joined(separator: "\n") + "\npass last").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_RDONLY)
        var r = LineReader(fd: fd, maxRecord: 200, ownsFD: true, readSize: readSize)
        var seenByPass: [String] = []
        var out: [String] = []
        while let l = try r.next(passing: { buf, run, _ in
            var n = 0
            for range in run {
                let text = String(decoding: buf[range], as: UTF8.self)
                guard text.hasPrefix("pass") else { break }
                seenByPass.append(text)
                n += 1
            }
            return n
        }) {
            switch l {
            case .record(let b, let n): out.append("\(n):\(String(decoding: b, as: UTF8.self))")
            case .oversized(let n, let len, _): out.append("\(n):oversized \(len)")
            }
        }
        let all = lines + ["pass last"]
        let expected = all.enumerated().compactMap { (i, t) -> String? in
            if t.count > 200 { return "\(i + 1):oversized \(t.count)" }
            let text = t.hasSuffix("\r") ? String(t.dropLast()) : t
            // The last line has no newline: `next` returns it, the screen never sees it.
            return text.hasPrefix("pass") && i < lines.count ? nil : "\(i + 1):\(text)"
        }
        #expect(out == expected)
        #expect(seenByPass == lines.filter { $0.hasPrefix("pass") })
        #expect(r.passed == seenByPass.count)
        #expect(r.line == all.count)
    }
}
