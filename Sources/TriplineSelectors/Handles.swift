import Foundation
import TriplineJSON

/// Usernames (platform-qualified handles) and identity documents.
enum Handles {
    /// Longer than any platform's handle (with its platform), or any document number with its country: refused
    /// before any Unicode work, so a 64 KiB value costs nothing (a 64 KiB document number took 9 ms).
    static let maxBytes = 512

    static func username(_ text: String, platform: String?) throws(SelectorError) -> (String, JSONObject) {
        guard text.utf8.count <= maxBytes else {
            throw SelectorError("username: \(text.utf8.count) bytes, longer than any handle")
        }
        var p = platform?.trimmingWhitespace.lowercased()
        var handle = text
        if let (head, rest) = splitAtColon(text),
            p == nil || text.lowercased().unicodeScalars.starts(with: (p! + ":").unicodeScalars)
        {
            p = head.trimmingWhitespace.lowercased()
            handle = rest
        }
        guard let platform = p, !platform.isEmpty else {
            throw SelectorError("username: no platform (give \"platform\" or write platform:handle)")
        }
        guard platform.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw SelectorError("username: invalid platform \"\(platform)\"")
        }
        handle = handle.trimmingWhitespace.precomposedStringWithCompatibilityMapping.lowercased()
        // Every leading '@' (`@@name` once kept one, so the normalised handle normalised again lost it).
        while handle.hasPrefix("@") { handle.removeFirst() }
        guard !handle.isEmpty else { throw SelectorError("username: empty handle") }
        guard !handle.contains(where: { $0.isWhitespace }) else {
            throw SelectorError("username: handle has whitespace")
        }
        var f = JSONObject()
        f.append("platform", .string(platform))
        let value = platform + ":" + handle
        // The result is bounded too (half the input's bound), so reading it again passes the input's bound.
        guard value.utf8.count <= maxBytes / 2 else { throw SelectorError("username: longer than any handle") }
        return (value, f)
    }

    /// The text before and after its first ':' — found among the Unicode scalars, not the characters: a
    /// combining mark after the colon makes one character of both, which a character search passes over (the
    /// fuzzer's `BE:\u{0740}…` normalised to `BE:BE:…`).
    static func splitAtColon(_ text: String) -> (String, String)? {
        guard let colon = text.unicodeScalars.firstIndex(of: ":") else { return nil }
        let after = text.unicodeScalars.index(after: colon)
        return (String(text.unicodeScalars[..<colon]), String(text.unicodeScalars[after...]))
    }

    static func document(_ text: String, country: String?, kind: String?) throws(SelectorError) -> (String, JSONObject)
    {
        guard text.utf8.count <= maxBytes else {
            throw SelectorError("document: \(text.utf8.count) bytes, longer than any document number")
        }
        var cc = country?.trimmingWhitespace.uppercased()
        var number = text
        if let (prefix, rest) = splitAtColon(text) {
            let head = prefix.trimmingCharacters(in: .whitespaces).uppercased()
            if head.count == 2 || head.count == 3 {
                cc = cc ?? head
                number = rest
            }
        }
        guard let cc, !cc.isEmpty else {
            throw SelectorError("document: no issuing country (give \"country\" or write CC:number)")
        }
        guard cc.count == 2 || cc.count == 3, cc.allSatisfy({ $0.isASCII && $0.isLetter }) else {
            throw SelectorError("document: issuing country \"\(cc)\" is not an ISO 3166 code")
        }
        let cleaned = number.precomposedStringWithCompatibilityMapping.uppercased().filter {
            !($0.isWhitespace || $0 == "-" || $0 == "." || $0 == "/" || $0 == "<")
        }
        guard !cleaned.isEmpty else { throw SelectorError("document: empty number") }
        var f = JSONObject()
        let ok = cleaned.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) } && (5...20).contains(cleaned.count)
        f.append("valid", .bool(ok))
        if !ok { f.append("invalid_reason", .string("a document number has 5 to 20 letters and digits")) }
        f.append("country", .string(cc))
        f.append("kind", .string(kind?.lowercased() ?? guessKind(cleaned)))
        let value = cc + ":" + cleaned
        // Upper-casing may lengthen the text (ß → SS): the result is bounded to half the input's bound, so reading
        // it again passes (the smoke run's 510-byte document normalised to 514 bytes, refused a second time).
        guard value.utf8.count <= maxBytes / 2 else {
            throw SelectorError("document: longer than any document number")
        }
        return (value, f)
    }

    /// Passport numbers are mostly 8-9 alphanumerics with a letter; national ID cards vary too much to tell.
    static func guessKind(_ n: String) -> String {
        (8...9).contains(n.count) && n.first!.isLetter ? "passport" : "unknown"
    }
}
