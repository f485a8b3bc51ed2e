/// A JSON syntax error and the byte offset (0-based) where it was found.
public struct JSONError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public let offset: Int
    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }
    public var description: String { "\(message) at byte \(offset + 1)" }
}

/// A byte-level JSON reader (RFC 8259): strict syntax, validated UTF-8, bounded nesting.
public struct JSONParser {
    public static let maxDepth = 64

    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0
    private var depth = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Parses exactly one JSON value (surrounding whitespace allowed).
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONError) -> JSONValue {
        var p = JSONParser(bytes)
        p.skipSpace()
        let v = try p.value()
        p.skipSpace()
        if p.i != bytes.count { throw JSONError("unexpected data after the JSON value", offset: p.i) }
        return v
    }

    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        var copy = text
        let r = copy.withUTF8 { buf in Result { () throws(JSONError) -> JSONValue in try parse(buf) } }
        return try r.get()
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        let r = bytes.withUnsafeBufferPointer { buf in Result { () throws(JSONError) -> JSONValue in try parse(buf) } }
        return try r.get()
    }

    @inline(__always)
    private mutating func skipSpace() {
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { break }
        }
    }

    private mutating func value() throws(JSONError) -> JSONValue {
        guard i < bytes.count else { throw JSONError("unexpected end of input", offset: i) }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw JSONError("unexpected character '\(Self.show(bytes[i]))'", offset: i)
        }
    }

    private static func show(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw JSONError("invalid literal", offset: i) }
        let p = word.utf8Start
        for k in 0..<n where bytes[i + k] != p[k] { throw JSONError("invalid literal", offset: i) }
        i += n
    }

    private mutating func enter() throws(JSONError) {
        depth += 1
        if depth > Self.maxDepth { throw JSONError("nesting deeper than \(Self.maxDepth)", offset: i) }
    }

    private mutating func object() throws(JSONError) -> JSONValue {
        try enter()
        i += 1
        var members: [(key: String, value: JSONValue)] = []
        members.reserveCapacity(8)
        // Duplicate names: a linear search while the object is small (records are), a set beyond, so a wide
        // object costs linear time, not quadratic (a 64 KiB record of 5,000 members took 43 ms).
        var names: Set<String>?
        skipSpace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            return .object(JSONObject(members))
        }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                throw JSONError("expected a member name in double quotes", offset: i)
            }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw JSONError("expected ':'", offset: i) }
            i += 1
            skipSpace()
            let v = try value()
            let duplicate: Bool
            if let seen = names {
                duplicate = seen.contains(key)
                if !duplicate { names!.insert(key) }
            } else {
                duplicate = members.contains(where: { $0.key == key })
                if !duplicate && members.count == 15 { names = Set(members.map(\.key) + [key]) }
            }
            if duplicate { throw JSONError("duplicate member \"\(key)\"", offset: i) }
            members.append((key, v))
            skipSpace()
            guard i < bytes.count else { throw JSONError("unterminated object", offset: i) }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "}") {
                i += 1
                break
            }
            throw JSONError("expected ',' or '}'", offset: i)
        }
        depth -= 1
        return .object(JSONObject(members))
    }

    private mutating func array() throws(JSONError) -> JSONValue {
        try enter()
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "]") {
            i += 1
            depth -= 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value())
            skipSpace()
            guard i < bytes.count else { throw JSONError("unterminated array", offset: i) }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "]") {
                i += 1
                break
            }
            throw JSONError("expected ',' or ']'", offset: i)
        }
        depth -= 1
        return .array(items)
    }

    private mutating func number() throws(JSONError) -> JSONValue {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.bytes.count && p.bytes[p.i] >= 48 && p.bytes[p.i] <= 57 { p.i += 1 }
            return p.i - s
        }
        guard i < bytes.count else { throw JSONError("invalid number", offset: start) }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if digits(&self) == 0 {
            throw JSONError("invalid number", offset: start)
        }
        if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
            i += 1
            if digits(&self) == 0 { throw JSONError("invalid number", offset: start) }
        }
        if i < bytes.count && (bytes[i] | 0x20) == UInt8(ascii: "e") {
            i += 1
            if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
            if digits(&self) == 0 { throw JSONError("invalid number", offset: start) }
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
    }

    private mutating func string() throws(JSONError) -> String {
        let start = i
        i += 1
        // Fast path: no escapes.
        var j = i
        var ascii = true
        while j < bytes.count {
            let c = bytes[j]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 { break }
            if c >= 0x80 { ascii = false }
            j += 1
        }
        guard j < bytes.count else { throw JSONError("unterminated string", offset: start) }
        if bytes[j] == UInt8(ascii: "\"") {
            let slice = UnsafeBufferPointer(rebasing: bytes[i..<j])
            i = j + 1
            if ascii { return String(decoding: slice, as: UTF8.self) }
            guard let s = String(validating: slice, as: UTF8.self) else {
                throw JSONError("invalid UTF-8 in string", offset: start)
            }
            return s
        }
        var out: [UInt8] = Array(bytes[i..<j])
        i = j
        while true {
            guard i < bytes.count else { throw JSONError("unterminated string", offset: start) }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if c < 0x20 { throw JSONError("control character in string", offset: i) }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < bytes.count else { throw JSONError("unterminated escape", offset: i) }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if code >= 0xD800 && code < 0xDC00 {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw JSONError("unpaired surrogate", offset: i)
                    }
                    i += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw JSONError("unpaired surrogate", offset: i) }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if code >= 0xDC00 && code < 0xE000 {
                    throw JSONError("unpaired surrogate", offset: i)
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(code)!)).utf8)
            default: throw JSONError("invalid escape '\\\(Self.show(e))'", offset: i - 1)
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else {
            throw JSONError("invalid UTF-8 in string", offset: start)
        }
        return s
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw JSONError("invalid \\u escape", offset: i) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw JSONError("invalid \\u escape", offset: i)
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}
