import Foundation
import Testing
import TriplineTestSupport

@testable import TriplineHTTP

/// The `next` links of paged answers: each query component percent-encoded byte by byte (RFC 3986 §2.1, §2.3),
/// checked against Foundation's decoder on seeded random strings and on fixed cases.
@Suite("HTTP: query components of next links")
struct QueryEncodingTests {
    @Test func fixedCases() {
        #expect(API.queryEncoded("firing") == "firing")
        #expect(API.queryEncoded("a b&c=d") == "a%20b%26c%3Dd")
        #expect(API.queryEncoded("-._~") == "-._~")
        #expect(API.queryEncoded("é") == "%C3%A9")
        #expect(API.queryEncoded("+/?#%") == "%2B%2F%3F%23%25")
        #expect(API.queryEncoded("") == "")
    }

    @Test func decodesBackToTheSameString() {
        var g = SplitMix64(seed: 77)
        let alphabet = Array("aZ09-._~ %+&=?#/éü中\u{0}\u{7F}😀")
        for _ in 0..<2_000 {
            let s = String((0..<Int.random(in: 0..<24, using: &g)).map { _ in alphabet.randomElement(using: &g)! })
            let e = API.queryEncoded(s)
            #expect(e.utf8.allSatisfy { $0 < 0x80 && $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "&") })
            #expect(e.removingPercentEncoding == s)
        }
    }
}
