import Foundation
import TriplineJSON

/// E-mail addresses: trimmed, case-folded, domain in IDNA A-label form (RFC 5891 / RFC 3492).
enum EmailNormalizer {
    /// The longest text read as an address: a display name and the address in angle brackets. An address has at
    /// most 254 octets (RFC 5321 §4.5.3.1: a 256-octet path with its brackets); a longer value is refused before
    /// any Unicode work, so a 64 KiB one costs nothing (it took 18 ms).
    static let maxBytes = 1024

    static func normalize(_ text: String, foldProviders: Bool) throws(SelectorError) -> (String, JSONObject) {
        guard text.utf8.count <= maxBytes else {
            throw SelectorError("email: \(text.utf8.count) bytes, longer than any address")
        }
        // Plain printable ASCII, the common case: read in place, without String work.
        var copy = text
        let fast = copy.withUTF8 { b in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxBytes) { out -> (String, String)? in
                guard let n = asciiKey(b, foldProviders: foldProviders, into: out) else { return nil }
                let at = out[..<n].lastIndex(of: UInt8(ascii: "@"))!
                return (
                    String(decoding: UnsafeBufferPointer(rebasing: out[..<n]), as: UTF8.self),
                    String(decoding: UnsafeBufferPointer(rebasing: out[(at + 1)..<n]), as: UTF8.self)
                )
            }
        }
        if let (address, domain) = fast {
            var f = JSONObject()
            f.append("domain", .string(domain))
            return (address, f)
        }
        return try normalizeInGeneral(text, foldProviders: foldProviders)
    }

    /// Every form: display names, `mailto:`, quoted local parts, Unicode (NFKC, IDNA).
    static func normalizeInGeneral(_ text: String, foldProviders: Bool) throws(SelectorError) -> (String, JSONObject) {
        var t = text
        // "Display Name <addr@example.org>" and "<addr@example.org>": the address inside the angle brackets; then
        // a mailto: scheme, inside them or not (the fuzzer's `A<mailto:i@G>` kept it, and lost it when read again).
        if t.hasSuffix(">"), let open = t.lastIndex(of: "<") {
            t = String(t[t.index(after: open)..<t.index(before: t.endIndex)])
        }
        while t.lowercased().hasPrefix("mailto:") { t = String(t.dropFirst(7)) }  // every one: `mailto:mailto:`
        guard let at = t.lastIndex(of: "@") else { throw SelectorError("email: no '@'") }
        var local = fold(String(t[..<at]))
        let domainText = String(t[t.index(after: at)...])
        guard !local.isEmpty else { throw SelectorError("email: empty local part") }
        guard local.utf8.count <= 64 else { throw SelectorError("email: local part longer than 64 octets") }
        guard !local.contains(where: { $0.isWhitespace || $0 == "@" && !local.hasPrefix("\"") }) else {
            throw SelectorError("email: local part has whitespace or '@'")
        }
        // RFC 5322 allows no control characters in a local part, quoted or not (the fuzzer sent NULs).
        guard !local.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw SelectorError("email: local part has control characters")
        }
        let domain = try idnaDomain(domainText)
        if foldProviders && (domain == "gmail.com" || domain == "googlemail.com") {
            if let plus = local.firstIndex(of: "+") { local = String(local[..<plus]) }
            local.removeAll { $0 == "." }
            // `+tag@gmail.com` or `...@gmail.com` folded to nothing: no mailbox (it read as "@gmail.com").
            guard !local.isEmpty else { throw SelectorError("email: empty local part once folded") }
        }
        var f = JSONObject()
        f.append("domain", .string(domain))
        return (local + "@" + domain, f)
    }

    /// The address `normalize` gives for plain printable ASCII text (`J.Doe@Example.ORG`), lower-cased into `out`
    /// without allocating: its length. Nil when the text needs the general reading (a display name, `mailto:`, a
    /// quoted local part, outer blanks, provider folding, non-ASCII) or is no address: `normalize` then decides.
    static func asciiKey(
        _ t: UnsafeBufferPointer<UInt8>, foldProviders: Bool, into out: UnsafeMutableBufferPointer<UInt8>
    )
        -> Int?
    {
        @inline(__always) func lower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c | 0x20 : c }
        guard t.count > 2, t.count <= min(maxBytes, out.count), t[0] != 0x20, t[t.count - 1] != 0x20,
            t[t.count - 1] != UInt8(ascii: ">")
        else { return nil }
        var at = -1
        for k in 0..<t.count {
            let c = t[k]
            // Printable ASCII only; no blanks, quotes or angle brackets (the general reading's cases).
            if c <= 0x20 || c >= 0x7F || c == UInt8(ascii: "\"") || c == UInt8(ascii: "<") { return nil }
            out[k] = lower(c)
            if c == UInt8(ascii: "@") {
                if at >= 0 { return nil }
                at = k
            }
        }
        guard at > 0, at <= 64 else { return nil }
        if at >= 7 && memcmp(out.baseAddress!, "mailto:", 7) == 0 { return nil }
        // The domain: labels of [a-z0-9_-], none empty, longer than 63 or with a hyphen at an end; one final dot
        // dropped; 253 octets at most.
        var end = t.count
        if out[end - 1] == UInt8(ascii: ".") { end -= 1 }
        guard end > at + 1, end - at - 1 <= 253 else { return nil }
        var start = at + 1
        for k in (at + 1)...end where k == end || out[k] == UInt8(ascii: ".") {
            let n = k - start
            guard n > 0, n <= 63, out[start] != UInt8(ascii: "-"), out[k - 1] != UInt8(ascii: "-") else { return nil }
            for j in start..<k {
                let c = out[j]
                guard (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
                else { return nil }
            }
            start = k + 1
        }
        if foldProviders {
            let domain = UnsafeBufferPointer(rebasing: out[(at + 1)..<end])
            if domain.elementsEqual("gmail.com".utf8) || domain.elementsEqual("googlemail.com".utf8) { return nil }
        }
        return end
    }

    /// NFKC, then lower case. ASCII text is its own NFKC form: only lowered, without Foundation's Unicode work
    /// (which cost most of a million-entry list's e-mails).
    static func fold(_ s: String) -> String {
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return s.lowercased() }
        return s.precomposedStringWithCompatibilityMapping.lowercased()
    }

    /// A domain name in lower-case A-label form; each label checked for length and characters.
    static func idnaDomain(_ text: String) throws(SelectorError) -> String {
        var d = fold(text)
        // IDNA separators: full stop and its ideographic / full-width / half-width forms (none in ASCII text).
        if !d.utf8.allSatisfy({ $0 < 0x80 }) {
            for sep in ["\u{3002}", "\u{FF0E}", "\u{FF61}"] { d = d.replacingOccurrences(of: sep, with: ".") }
        }
        if d.hasSuffix(".") { d.removeLast() }
        guard !d.isEmpty else { throw SelectorError("email: empty domain") }
        var labels: [String] = []
        for label in d.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty else { throw SelectorError("email: empty label in domain \"\(text)\"") }
            let a: String
            if label.unicodeScalars.allSatisfy({ $0.isASCII }) {
                a = String(label)
            } else {
                guard let p = Punycode.encode(String(label)) else {
                    throw SelectorError("email: cannot encode domain label \"\(label)\"")
                }
                a = "xn--" + p
            }
            guard a.utf8.count <= 63 else { throw SelectorError("email: domain label longer than 63 octets") }
            guard
                a.utf8.allSatisfy({
                    ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: "-")
                        || $0 == UInt8(ascii: "_")
                }), !a.hasPrefix("-"), !a.hasSuffix("-")
            else { throw SelectorError("email: invalid domain label \"\(label)\"") }
            labels.append(a)
        }
        let out = labels.joined(separator: ".")
        guard out.utf8.count <= 253 else { throw SelectorError("email: domain longer than 253 octets") }
        return out
    }
}

/// RFC 3492 Punycode encoder (written from the RFC's description of the algorithm).
enum Punycode {
    static let base = 36, tMin = 1, tMax = 26, skew = 38, damp = 700, initialBias = 72, initialN = 128

    static func adapt(_ delta0: Int, _ numPoints: Int, _ first: Bool) -> Int {
        var delta = first ? delta0 / damp : delta0 / 2
        delta += delta / numPoints
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }

    static func digit(_ d: Int) -> Character {
        Character(Unicode.Scalar(UInt8(d < 26 ? 97 + d : 22 + d)))
    }

    static func encode(_ input: String) -> String? {
        let cps = input.unicodeScalars.map { Int($0.value) }
        var out = String(input.unicodeScalars.filter { $0.isASCII }.map(Character.init))
        let b = out.count
        var h = b
        if b > 0 { out.append("-") }
        var n = initialN
        var delta = 0
        var bias = initialBias
        while h < cps.count {
            guard let m = cps.filter({ $0 >= n }).min() else { return nil }
            let (mul, o1) = (m - n).multipliedReportingOverflow(by: h + 1)
            if o1 { return nil }
            delta += mul
            n = m
            for c in cps {
                if c < n { delta += 1 }
                if c == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                        if q < t { break }
                        out.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    out.append(digit(q))
                    bias = adapt(delta, h + 1, h == b)
                    delta = 0
                    h += 1
                }
            }
            delta += 1
            n += 1
        }
        return out
    }
}
