import Foundation

/// A Sigma string value: literal bytes with the wildcards `*` (any run) and `?` (one character); `\*`, `\?` and
/// `\\` stand for the characters themselves, and a backslash before anything else is a plain backslash.
struct Pattern: Sendable, Equatable {
    enum Piece: Sendable, Equatable {
        case literal([UInt8])
        case any  // *
        case one  // ?
    }

    var pieces: [Piece]

    /// Parses a Sigma value; `fold` lower-cases the literal parts (case-insensitive matching).
    init(sigma text: String, fold: Bool) {
        let source = fold ? foldCase(text) : text
        var pieces: [Piece] = []
        var lit: [UInt8] = []
        func flush() {
            if !lit.isEmpty { pieces.append(.literal(lit)) }
            lit = []
        }
        let b = Array(source.utf8)
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\\"), i + 1 < b.count,
                [UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "\\")].contains(b[i + 1])
            {
                lit.append(b[i + 1])
                i += 2
                continue
            }
            if c == UInt8(ascii: "*") {
                flush()
                if pieces.last != .any { pieces.append(.any) }
            } else if c == UInt8(ascii: "?") {
                flush()
                pieces.append(.one)
            } else {
                lit.append(c)
            }
            i += 1
        }
        flush()
        self.pieces = pieces
    }

    init(pieces: [Piece]) { self.pieces = pieces }

    /// The value as one literal when it has no wildcard.
    var literal: [UInt8]? {
        if pieces.isEmpty { return [] }
        if pieces.count == 1, case .literal(let l) = pieces[0] { return l }
        return nil
    }

    /// `contains`: `*value*`; `startswith`: `value*`; `endswith`: `*value`.
    func wrapped(leading: Bool, trailing: Bool) -> Pattern {
        var p = pieces
        if leading && p.first != .any { p.insert(.any, at: 0) }
        if trailing && p.last != .any { p.append(.any) }
        return Pattern(pieces: p)
    }

    /// The longest literal part: a string every match must contain (the prefilter's atom).
    var longestLiteral: [UInt8] {
        var best: [UInt8] = []
        for case .literal(let l) in pieces where l.count > best.count { best = l }
        return best
    }

    /// Whole-subject match. `?` consumes one UTF-8 character; `*` any run, found by the classic
    /// backtrack-to-last-star method (linear in practice, never exponential).
    func matches(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        var pi = 0  // piece index
        var si = 0  // subject index
        var starPiece = -1
        var starSubject = 0
        func charLength(_ at: Int) -> Int {
            let c = s[at]
            if c < 0xC0 { return 1 }
            if c < 0xE0 { return 2 }
            if c < 0xF0 { return 3 }
            return 4
        }
        while true {
            if pi < pieces.count {
                switch pieces[pi] {
                case .any:
                    starPiece = pi
                    starSubject = si
                    pi += 1
                    continue
                case .one:
                    if si < s.count {
                        si = min(s.count, si + charLength(si))
                        pi += 1
                        continue
                    }
                case .literal(let l):
                    if si + l.count <= s.count,
                        l.withUnsafeBufferPointer({ lb in
                            memcmp(lb.baseAddress!, s.baseAddress! + si, l.count) == 0
                        })
                    {
                        si += l.count
                        pi += 1
                        continue
                    }
                }
            } else if si == s.count {
                return true
            }
            // Mismatch: let the last `*` swallow one more character, or fail.
            guard starPiece >= 0, starSubject < s.count else { return false }
            starSubject += charLength(starSubject)
            si = starSubject
            pi = starPiece + 1
        }
    }
}

/// Case folding used on both sides of every case-insensitive comparison: ASCII fast path, else Unicode lower case.
@inline(__always)
func foldCase(_ s: String) -> String {
    var ascii = true
    var upper = false
    for b in s.utf8 {
        if b >= 0x80 {
            ascii = false
            break
        }
        if b >= 0x41 && b <= 0x5A { upper = true }
    }
    if ascii && !upper { return s }
    return s.lowercased()
}

/// Calls `body` with the UTF-8 bytes of `foldCase(s)`, in place when `s` is already folded ASCII in contiguous
/// storage (no copy, no uniqueness check).
@inline(__always)
func withFoldedBytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    let direct = s.utf8.withContiguousStorageIfAvailable { buf -> R? in
        for b in buf where b >= 0x80 || (b >= 0x41 && b <= 0x5A) { return nil }
        return body(buf)
    }
    if let r = direct ?? nil { return r }
    var f = foldCase(s)
    return f.withUTF8(body)
}
