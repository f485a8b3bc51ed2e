import Foundation
import TriplineJSON

/// Usernames (platform-qualified handles) and identity documents.
enum Handles {
    static func username(_ text: String, platform: String?) throws(SelectorError) -> (String, JSONObject) {
        var p = platform?.trimmingWhitespace.lowercased()
        var handle = text
        if let colon = text.firstIndex(of: ":"), p == nil || text.lowercased().hasPrefix(p! + ":") {
            p = String(text[..<colon]).trimmingWhitespace.lowercased()
            handle = String(text[text.index(after: colon)...])
        }
        guard let platform = p, !platform.isEmpty else {
            throw SelectorError("username: no platform (give \"platform\" or write platform:handle)")
        }
        guard platform.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw SelectorError("username: invalid platform \"\(platform)\"")
        }
        handle = handle.trimmingWhitespace.precomposedStringWithCompatibilityMapping.lowercased()
        if handle.hasPrefix("@") { handle.removeFirst() }
        guard !handle.isEmpty else { throw SelectorError("username: empty handle") }
        guard !handle.contains(where: { $0.isWhitespace }) else {
            throw SelectorError("username: handle has whitespace")
        }
        var f = JSONObject()
        f.append("platform", .string(platform))
        return (platform + ":" + handle, f)
    }

    static func document(_ text: String, country: String?, kind: String?) throws(SelectorError) -> (String, JSONObject)
    {
        var cc = country?.trimmingWhitespace.uppercased()
        var number = text
        if let colon = text.firstIndex(of: ":") {
            let head = text[..<colon].trimmingCharacters(in: .whitespaces).uppercased()
            if head.count == 2 || head.count == 3 {
                cc = cc ?? head
                number = String(text[text.index(after: colon)...])
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
        return (cc + ":" + cleaned, f)
    }

    /// Passport numbers are mostly 8-9 alphanumerics with a letter; national ID cards vary too much to tell.
    static func guessKind(_ n: String) -> String {
        (8...9).contains(n.count) && n.first!.isLetter ? "passport" : "unknown"
    }
}
