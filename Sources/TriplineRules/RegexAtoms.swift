/// Extracts from a PCRE2 pattern a set of literal strings of which every match must contain at least one — the
/// atoms the Aho–Corasick prefilter looks for before the regex itself runs. Anything the reader does not fully
/// understand yields no atoms (the regex is then always checked), never wrong ones.
enum RegexAtoms {
    /// Lower-cased atoms (the prefilter runs on folded text), or nil when the pattern has no usable atom.
    static func extract(_ pattern: String, minLength: Int = 2) -> [[UInt8]]? {
        var p = Parser(bytes: Array(pattern.utf8))
        guard let alternatives = p.alternation(), p.i == p.bytes.count else { return nil }
        guard let set = best(alternatives) else { return nil }
        if set.contains(where: { $0.count < minLength }) { return nil }
        return set.map { Array(foldCase(String(decoding: $0, as: UTF8.self)).utf8) }
    }

    /// Parsed pattern: a sequence of items, each optional or required.
    indirect enum Item {
        case char(UInt8)
        case group([[Item]])  // alternatives
        case other  // class, dot, escape class, anchor with width 0 but breaking runs
        case optional(Item)  // quantifier with minimum 0
        case repeated(Item)  // quantifier with minimum >= 1: required once, run broken after it
    }

    struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func alternation() -> [[Item]]? {
            var alts: [[Item]] = [[]]
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "|") {
                    alts.append([])
                    i += 1
                    continue
                }
                if c == UInt8(ascii: ")") { break }
                guard var item = atom() else { return nil }
                guard let q = quantifier() else { return nil }
                switch q {
                case .none: break
                case .optional: item = .optional(item)
                case .repeated: item = .repeated(item)
                }
                alts[alts.count - 1].append(item)
            }
            return alts
        }

        enum Quantifier { case none, optional, repeated }

        mutating func quantifier() -> Quantifier? {
            guard i < bytes.count else { return Quantifier.none }
            var q: Quantifier
            switch bytes[i] {
            case UInt8(ascii: "*"), UInt8(ascii: "?"):
                q = .optional
                i += 1
            case UInt8(ascii: "+"):
                q = .repeated
                i += 1
            case UInt8(ascii: "{"):
                // {n}, {n,}, {n,m}; a brace that is not a quantifier is a literal in PCRE2: give up then.
                var j = i + 1
                var n = 0
                var digits = 0
                while j < bytes.count, bytes[j] >= 0x30, bytes[j] <= 0x39 {
                    n = n * 10 + Int(bytes[j] - 0x30)
                    digits += 1
                    j += 1
                }
                while j < bytes.count, bytes[j] != UInt8(ascii: "}") {
                    guard bytes[j] == UInt8(ascii: ",") || (bytes[j] >= 0x30 && bytes[j] <= 0x39) else { return nil }
                    j += 1
                }
                guard digits > 0, j < bytes.count else { return nil }
                i = j + 1
                q = n == 0 ? .optional : .repeated
            default:
                return Quantifier.none
            }
            // Lazy or possessive suffix.
            if i < bytes.count, bytes[i] == UInt8(ascii: "?") || bytes[i] == UInt8(ascii: "+") { i += 1 }
            return q
        }

        mutating func atom() -> Item? {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "("):
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "?") {
                    // Only plain non-capturing and named groups are understood; lookarounds, inline flags,
                    // conditionals and comments change what "required" means.
                    if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: ":") {
                        i += 2
                    } else if i + 2 < bytes.count,
                        bytes[i + 1] == UInt8(ascii: "<") || bytes[i + 1] == UInt8(ascii: "P"),
                        bytes[i + 2] != UInt8(ascii: "="), bytes[i + 2] != UInt8(ascii: "!")
                    {
                        guard let close = bytes[i...].firstIndex(of: UInt8(ascii: ">")) else { return nil }
                        i = close + 1
                    } else {
                        // Inline options (?i) (?s) (?m) (?-i) and scoped (?i:...); (?x) changes the syntax.
                        var j = i + 1
                        while j < bytes.count,
                            [
                                UInt8(ascii: "i"), UInt8(ascii: "m"), UInt8(ascii: "s"), UInt8(ascii: "n"),
                                UInt8(ascii: "-"),
                            ].contains(bytes[j])
                        { j += 1 }
                        guard j > i + 1, j < bytes.count else { return nil }
                        if bytes[j] == UInt8(ascii: ")") {
                            i = j + 1
                            return .group([[]])
                        }
                        guard bytes[j] == UInt8(ascii: ":") else { return nil }
                        i = j + 1
                    }
                }
                guard let alts = alternation(), i < bytes.count, bytes[i] == UInt8(ascii: ")") else { return nil }
                i += 1
                return .group(alts)
            case UInt8(ascii: "["):
                // Skip a character class, honouring escapes and a leading ] or ^].
                var j = i + 1
                if j < bytes.count, bytes[j] == UInt8(ascii: "^") { j += 1 }
                if j < bytes.count, bytes[j] == UInt8(ascii: "]") { j += 1 }
                while j < bytes.count, bytes[j] != UInt8(ascii: "]") {
                    if bytes[j] == UInt8(ascii: "\\") { j += 1 }
                    if bytes[j] == UInt8(ascii: "["), j + 1 < bytes.count, bytes[j + 1] == UInt8(ascii: ":") {
                        guard let end = bytes[(j + 2)...].firstIndex(of: UInt8(ascii: "]")) else { return nil }
                        j = end
                    }
                    j += 1
                }
                guard j < bytes.count else { return nil }
                i = j + 1
                return .other
            case UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "$"):
                i += 1
                return .other
            case UInt8(ascii: "\\"):
                guard i + 1 < bytes.count else { return nil }
                let e = bytes[i + 1]
                i += 2
                if (e >= 0x30 && e <= 0x39) || e == UInt8(ascii: "Q") || e == UInt8(ascii: "x")
                    || e == UInt8(ascii: "p")
                    || e == UInt8(ascii: "P") || e == UInt8(ascii: "k") || e == UInt8(ascii: "g")
                    || e == UInt8(ascii: "c") || e == UInt8(ascii: "o") || e == UInt8(ascii: "N")
                {
                    return nil  // back references, quoting, code points, properties: not read
                }
                if (e >= 0x41 && e <= 0x5A) || (e >= 0x61 && e <= 0x7A) {
                    return .other  // \d \w \s \b \t \n ... : a class or an assertion, not this letter
                }
                return .char(e)  // an escaped punctuation character stands for itself
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
                return nil
            default:
                i += 1
                if c >= 0x80 { return .other }  // multi-byte characters: keep atoms ASCII
                return .char(c)
            }
        }
    }

    /// The best required set of a sequence: the longest run of required characters, or a required group's
    /// set; scored by the length of the shortest atom.
    static func best(_ alternatives: [[Item]]) -> [[UInt8]]? {
        var union: [[UInt8]] = []
        for seq in alternatives {
            guard let s = bestOf(sequence: seq) else { return nil }
            union += s
        }
        return union.isEmpty ? nil : union
    }

    static func bestOf(sequence: [Item]) -> [[UInt8]]? {
        var candidates: [[[UInt8]]] = []
        var run: [UInt8] = []
        func endRun() {
            if !run.isEmpty { candidates.append([run]) }
            run = []
        }
        for item in sequence {
            switch item {
            case .char(let c): run.append(c)
            case .group(let alts):
                // A group of one plain literal alternative continues the run.
                if alts.count == 1, alts[0].allSatisfy({ if case .char = $0 { true } else { false } }) {
                    for case .char(let c) in alts[0] { run.append(c) }
                } else {
                    endRun()
                    if let s = best(alts) { candidates.append(s) }
                }
            case .repeated(let inner):
                if case .char(let c) = inner {
                    run.append(c)
                    endRun()
                } else {
                    endRun()
                    if case .group(let alts) = inner, let s = best(alts) { candidates.append(s) }
                }
            case .optional, .other:
                endRun()
            }
        }
        endRun()
        return candidates.max { score($0) < score($1) }
    }

    static func score(_ set: [[UInt8]]) -> Int {
        let shortest = set.map(\.count).min() ?? 0
        return shortest * 16 - set.count
    }
}
