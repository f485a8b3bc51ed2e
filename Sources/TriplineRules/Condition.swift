/// A Sigma detection condition: `not` binds tighter than `and`, which binds tighter than `or`; parentheses;
/// `1 of PATTERN`, `all of PATTERN`, `N of PATTERN` (`any of` = `1 of`) where `PATTERN` is a search identifier
/// with `*` wildcards or `them` (every identifier not starting with `_`).
indirect enum Condition: Equatable, Sendable {
    case selection(String, offset: Int)
    case not(Condition)
    case and([Condition])
    case or([Condition])
    /// `count` nil means `all`.
    case of(count: Int?, pattern: String, offset: Int)
}

/// A condition syntax error with its byte offset in the condition text.
struct ConditionError: Error {
    let message: String
    let offset: Int
}

struct ConditionParser {
    enum Token: Equatable {
        case word(String)
        case open, close
        case end
    }

    private var tokens: [(Token, Int)] = []
    private var pos = 0

    static func parse(_ text: String) throws(ConditionError) -> Condition {
        var p = ConditionParser()
        p.tokens = try tokenize(text)
        let c = try p.orExpr()
        guard case .end = p.tokens[p.pos].0 else {
            throw ConditionError(message: "unexpected \(p.describe(p.tokens[p.pos].0))", offset: p.tokens[p.pos].1)
        }
        return c
    }

    private static func tokenize(_ text: String) throws(ConditionError) -> [(Token, Int)] {
        var out: [(Token, Int)] = []
        let b = Array(text.utf8)
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D {
                i += 1
            } else if c == UInt8(ascii: "(") {
                out.append((.open, i))
                i += 1
            } else if c == UInt8(ascii: ")") {
                out.append((.close, i))
                i += 1
            } else if c == UInt8(ascii: "|") {
                throw ConditionError(
                    message: "aggregation expressions (`| count() ...`) are not supported: use a correlation rule",
                    offset: i)
            } else {
                let start = i
                while i < b.count, ![0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "("), UInt8(ascii: ")")].contains(b[i]) {
                    i += 1
                }
                out.append((.word(String(decoding: b[start..<i], as: UTF8.self)), start))
            }
        }
        out.append((.end, b.count))
        return out
    }

    private func describe(_ t: Token) -> String {
        switch t {
        case .word(let w): "\"\(w)\""
        case .open: "\"(\""
        case .close: "\")\""
        case .end: "end of condition"
        }
    }

    private func keyword(_ t: Token) -> String? {
        guard case .word(let w) = t else { return nil }
        let l = w.lowercased()
        return ["and", "or", "not"].contains(l) ? l : nil
    }

    private mutating func orExpr() throws(ConditionError) -> Condition {
        var parts = [try andExpr()]
        while keyword(tokens[pos].0) == "or" {
            pos += 1
            parts.append(try andExpr())
        }
        return parts.count == 1 ? parts[0] : .or(parts)
    }

    private mutating func andExpr() throws(ConditionError) -> Condition {
        var parts = [try notExpr()]
        while keyword(tokens[pos].0) == "and" {
            pos += 1
            parts.append(try notExpr())
        }
        return parts.count == 1 ? parts[0] : .and(parts)
    }

    private mutating func notExpr() throws(ConditionError) -> Condition {
        if keyword(tokens[pos].0) == "not" {
            pos += 1
            return .not(try notExpr())
        }
        return try primary()
    }

    private mutating func primary() throws(ConditionError) -> Condition {
        let (t, offset) = tokens[pos]
        switch t {
        case .open:
            pos += 1
            let c = try orExpr()
            guard case .close = tokens[pos].0 else {
                throw ConditionError(message: "expected \")\", found \(describe(tokens[pos].0))", offset: tokens[pos].1)
            }
            pos += 1
            return c
        case .word(let w) where keyword(t) == nil:
            pos += 1
            let quantity = w.lowercased()
            if case .word(let of) = tokens[pos].0, of.lowercased() == "of" {
                let count: Int?
                if quantity == "all" {
                    count = nil
                } else if quantity == "any" {
                    count = 1
                } else if let n = Int(quantity), n >= 1 {
                    count = n
                } else {
                    throw ConditionError(
                        message: "expected \"1 of\", \"all of\" or a number before \"of\"", offset: offset)
                }
                pos += 1
                guard case .word(let pattern) = tokens[pos].0, keyword(tokens[pos].0) == nil else {
                    throw ConditionError(
                        message:
                            "expected a selection pattern or \"them\" after \"of\", found \(describe(tokens[pos].0))",
                        offset: tokens[pos].1)
                }
                let at = tokens[pos].1
                pos += 1
                return .of(count: count, pattern: pattern, offset: at)
            }
            if quantity == "them" || quantity == "of" {
                throw ConditionError(message: "\"\(w)\" must follow \"1 of\" or \"all of\"", offset: offset)
            }
            return .selection(w, offset: offset)
        default:
            throw ConditionError(message: "expected a selection, found \(describe(t))", offset: offset)
        }
    }
}

/// The condition syntax alone, for tools (and the fuzzer): nil when `text` is a valid Sigma condition, else the
/// error and its byte offset in `text`.
public enum SigmaConditionSyntax {
    public static func check(_ text: String) -> (message: String, offset: Int)? {
        do {
            _ = try ConditionParser.parse(text)
            return nil
        } catch { return (error.message, error.offset) }
    }
}
