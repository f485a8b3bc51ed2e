import Foundation
import Testing
import TriplineTestSupport

@testable import TriplineHTTP

/// An ingest body split into lines (newlines found with memchr): the same lines as a byte-by-byte reading.
@Suite("HTTP ingest: lines of a body")
struct IngestLinesTests {
    static func reference(_ bytes: [UInt8]) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var start = 0
        func add(_ end: Int) {
            lines.append(Array(bytes[start..<(end > start && bytes[end - 1] == 0x0D ? end - 1 : end)]))
        }
        for (i, b) in bytes.enumerated() where b == 0x0A {
            add(i)
            start = i + 1
        }
        if start < bytes.count { add(bytes.count) }
        return lines
    }

    @Test func sameLinesAsByteByByte() {
        let fixed = ["", "x", "a\nb", "a\r\nb\r\n", "\n\n", "a\r", "\r\n", "\r\r\n"].map { Array($0.utf8) }
        var g = SplitMix64(seed: 31)
        let alphabet: [UInt8] = [0x0A, 0x0D, 0x61, 0x7B, 0x22, 0x00, 0xC3]
        let random = (0..<3_000).map { _ in
            (0..<Int.random(in: 0..<64, using: &g)).map { _ in alphabet.randomElement(using: &g)! }
        }
        for body in fixed + random {
            #expect(body.withUnsafeBytes { API.lines(of: $0) } == Self.reference(body), "\(body)")
        }
    }
}
