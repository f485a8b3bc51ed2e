/// The items of a part of a split document (`YAMLReader.parse(part:…)`) that each stand on one line as a flow
/// collection — `  - {ref: E1, selectors: [{type: phone, value: "+32470000000"}]}`, the shape of a long generated
/// list — read without libyaml: one pass over the line's bytes builds the same nodes, with the same marks, that
/// libyaml's events would. Only a strict subset is read here: printable ASCII on the line; keys of letters, digits,
/// `_` and `-` followed by `: `; plain values of letters, digits and ` -._+/()@'` (not starting with a punctuation
/// mark but `+._/(`); quoted values without escapes; nested flow mappings and sequences. Anything else (a tab, a
/// `:` or `#` in a plain value, an escape, an empty value, a duplicate key, a trailing comma, a multi-line item)
/// is not read here but by libyaml, item runs in order, so the result never depends on which reader read an item.
/// Keys over 1,000 bytes and mappings of more than 16 keys are libyaml's too. An item is the lines up to the next
/// line that starts an item: a quoted scalar running onto a line that looks like an item is cut there, libyaml
/// refuses the piece, and the caller reads the whole file (the outcome is the same; only slower).
struct FlowItems {
    /// The longest key read here (libyaml's limit on a simple key is 1,024 characters).
    static let maxKeyLength = 1_000
    /// The most keys of a mapping read here.
    static let maxKeys = 16

    let b: UnsafeBufferPointer<UInt8>
    let fileID: Int32
    /// Deeper than this (or than the reader's limit) is left to libyaml, which reports it.
    let maxDepth: Int

    /// Where the line at `i` ends: the index of its LF (or the end), and the end of its content (before a CR LF).
    @inline(__always)
    func lineEnd(_ i: Int) -> (next: Int, content: Int) {
        var j = i
        let n = b.count
        while j < n && b[j] != 0x0A { j += 1 }
        let content = j > i && b[j - 1] == 0x0D ? j - 1 : j
        return (j, content)
    }

    /// Leading spaces of the line `[i, end)`, and whether it is blank or a comment in printable ASCII (`printable`
    /// is false when it has any other byte: libyaml then judges it).
    @inline(__always)
    func lineShape(_ i: Int, _ end: Int) -> (indent: Int, blank: Bool, printable: Bool) {
        var j = i
        while j < end && b[j] == 0x20 { j += 1 }
        let indent = j - i
        guard j < end else { return (indent, true, true) }
        guard b[j] == 0x23 else { return (indent, false, true) }
        var k = j
        while k < end {
            if b[k] < 0x20 || b[k] > 0x7E { return (indent, true, false) }
            k += 1
        }
        return (indent, true, true)
    }

    /// The item on the line `[start, end)` (file line `line`), which starts with `indent` spaces and `- `: the node
    /// of its flow collection, or nil when the line is not in the subset.
    func item(_ start: Int, _ end: Int, indent: Int, line: Int) -> Node? {
        var s = Scanner(b: b, i: start + indent + 1, end: end, lineStart: start, line: line, fileID: fileID)
        // Every byte of the line printable ASCII: libyaml's checks of the encoding and of control characters pass.
        var k = start
        while k < end {
            if b[k] < 0x20 || b[k] > 0x7E { return nil }
            k += 1
        }
        guard s.i < end, b[s.i] == 0x20 else { return nil }
        s.spaces()
        guard s.i < end, b[s.i] == UInt8(ascii: "{") || b[s.i] == UInt8(ascii: "[") else { return nil }
        // The items of a document's top-level mapping's sequence are at depth 2 (`Builder.part`).
        guard let node = s.value(depth: 2, maxDepth: maxDepth) else { return nil }
        // Then only spaces, or spaces and a comment.
        let afterValue = s.i
        s.spaces()
        if s.i < end {
            guard b[s.i] == UInt8(ascii: "#"), s.i > afterValue else { return nil }
        }
        return node
    }

    struct Scanner {
        let b: UnsafeBufferPointer<UInt8>
        var i: Int
        let end: Int
        let lineStart: Int
        let line: Int
        let fileID: Int32

        @inline(__always)
        func mark(_ at: Int) -> Mark { Mark(line: line, column: at - lineStart + 1) }

        @inline(__always)
        mutating func spaces() { while i < end && b[i] == 0x20 { i += 1 } }

        @inline(__always)
        static func isAlnum(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
        }

        /// A byte a plain value may hold past its first: letters, digits, ` -._+/()@'`.
        @inline(__always)
        static func isPlainInner(_ c: UInt8) -> Bool {
            if isAlnum(c) { return true }
            switch c {
            case 0x20, 0x2D, 0x2E, 0x5F, 0x2B, 0x2F, 0x28, 0x29, 0x40, 0x27: return true
            default: return false
            }
        }

        /// A byte a plain value may start with: letters, digits, `+._/(`.
        @inline(__always)
        static func isPlainFirst(_ c: UInt8) -> Bool {
            if isAlnum(c) { return true }
            switch c {
            case 0x2B, 0x2E, 0x5F, 0x2F, 0x28: return true
            default: return false
            }
        }

        mutating func value(depth: Int, maxDepth: Int) -> Node? {
            guard depth <= maxDepth, i < end else { return nil }
            switch b[i] {
            case UInt8(ascii: "{"): return mapping(depth: depth, maxDepth: maxDepth)
            case UInt8(ascii: "["): return sequence(depth: depth, maxDepth: maxDepth)
            case UInt8(ascii: "\""), UInt8(ascii: "'"): return quoted()
            default: return plain()
            }
        }

        /// A plain value in a flow collection, ended by `,`, `}` or `]` (spaces before it are not part of it).
        mutating func plain() -> Node? {
            let from = i
            guard i < end, Self.isPlainFirst(b[i]) else { return nil }
            i += 1
            var last = i  // past the last byte that is not a space
            while i < end {
                let c = b[i]
                if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") || c == UInt8(ascii: "]") { break }
                guard Self.isPlainInner(c) else { return nil }
                i += 1
                if c != 0x20 { last = i }
            }
            guard i < end else { return nil }
            i = last
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[from..<last]), as: UTF8.self)
            return Node(kind: .scalar(text, plain: true), mark: mark(from), fileID: fileID, expandedSize: 1)
        }

        /// A single- or double-quoted value without escapes (no `\` in double quotes, no `''` in single).
        mutating func quoted() -> Node? {
            let from = i
            let q = b[i]
            i += 1
            let textStart = i
            while i < end && b[i] != q {
                if q == UInt8(ascii: "\"") && b[i] == UInt8(ascii: "\\") { return nil }
                i += 1
            }
            guard i < end else { return nil }
            let textEnd = i
            i += 1
            if q == UInt8(ascii: "'") && i < end && b[i] == q { return nil }  // `''` stands for one quote
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[textStart..<textEnd]), as: UTF8.self)
            return Node(kind: .scalar(text, plain: false), mark: mark(from), fileID: fileID, expandedSize: 1)
        }

        /// A key: letters, digits, `_` and `-` (starting with a letter, digit or `_`), then `:` and a space; at most
        /// `maxKeyLength` bytes (libyaml drops a simple key whose `:` is over 1,024 characters on: it refuses the
        /// mapping).
        mutating func key() -> Node? {
            let from = i
            guard i < end, Self.isAlnum(b[i]) || b[i] == UInt8(ascii: "_") else { return nil }
            while i < end && (Self.isAlnum(b[i]) || b[i] == UInt8(ascii: "_") || b[i] == UInt8(ascii: "-")) {
                i += 1
            }
            guard i - from <= FlowItems.maxKeyLength, i + 1 < end, b[i] == UInt8(ascii: ":"), b[i + 1] == 0x20
            else { return nil }
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[from..<i]), as: UTF8.self)
            i += 2
            return Node(kind: .scalar(text, plain: true), mark: mark(from), fileID: fileID, expandedSize: 1)
        }

        mutating func mapping(depth: Int, maxDepth: Int) -> Node? {
            let from = i
            i += 1
            spaces()
            var pairs: [(key: Node, value: Node)] = []
            pairs.reserveCapacity(4)
            var size = 1
            if i < end && b[i] == UInt8(ascii: "}") {
                i += 1
                return Node(kind: .mapping(pairs), mark: mark(from), fileID: fileID, expandedSize: size)
            }
            while true {
                // A wide mapping is libyaml's (its duplicate keys found through a set, not a search per key).
                guard pairs.count < FlowItems.maxKeys, let k = key() else { return nil }
                spaces()
                guard let v = value(depth: depth + 1, maxDepth: maxDepth) else { return nil }
                let ks = k.scalar
                if pairs.contains(where: { $0.key.scalar == ks }) { return nil }  // libyaml's reading reports it
                pairs.append((k, v))
                size += 1 + v.expandedSize
                guard let more = separator(closing: UInt8(ascii: "}")) else { return nil }
                if !more { return Node(kind: .mapping(pairs), mark: mark(from), fileID: fileID, expandedSize: size) }
            }
        }

        /// After a collection's item: `,` (true: another item follows), or `closing` (false: the collection ends);
        /// nil for anything else.
        mutating func separator(closing: UInt8) -> Bool? {
            spaces()
            guard i < end else { return nil }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                spaces()
                return true
            }
            guard b[i] == closing else { return nil }
            i += 1
            return false
        }

        mutating func sequence(depth: Int, maxDepth: Int) -> Node? {
            let from = i
            i += 1
            spaces()
            var items: [Node] = []
            var size = 1
            if i < end && b[i] == UInt8(ascii: "]") {
                i += 1
                return Node(kind: .sequence(items), mark: mark(from), fileID: fileID, expandedSize: size)
            }
            while true {
                guard let v = value(depth: depth + 1, maxDepth: maxDepth) else { return nil }
                items.append(v)
                size += v.expandedSize
                guard let more = separator(closing: UInt8(ascii: "]")) else { return nil }
                if !more { return Node(kind: .sequence(items), mark: mark(from), fileID: fileID, expandedSize: size) }
            }
        }
    }
}
