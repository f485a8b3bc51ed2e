import CYAML
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A position in a YAML file (1-based line and column).
public struct Mark: Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public var description: String { "\(line):\(column)" }
}

/// An error at a place in a file: prints as `file:line:col: message`.
public struct LocatedError: Error, Sendable, CustomStringConvertible, Equatable {
    public let file: String
    public let mark: Mark
    public let message: String
    public init(file: String, mark: Mark, message: String) {
        self.file = file
        self.mark = mark
        self.message = message
    }
    public var description: String { "\(file):\(mark.line):\(mark.column): \(message)" }
}

/// A YAML node with its position. Scalars keep their text: YAML 1.2 core schema, so plain scalars are strings
/// unless the consumer types the field (`NO` stays "NO", `0470123456` keeps its zero).
public final class Node: Sendable {
    public enum Kind: Sendable {
        case scalar(String, plain: Bool)
        case sequence([Node])
        case mapping([(key: Node, value: Node)])
    }

    public let kind: Kind
    public let mark: Mark
    /// The file's name, interned (`FileNames`): a node holds no reference to count.
    let fileID: Int32
    public var file: String { FileNames.name(fileID) }
    /// Nodes in this subtree, counting what aliases expand to.
    let expandedSize: Int

    init(kind: Kind, mark: Mark, file: String, expandedSize: Int) {
        self.kind = kind
        self.mark = mark
        self.fileID = FileNames.id(file)
        self.expandedSize = expandedSize
    }

    init(kind: Kind, mark: Mark, fileID: Int32, expandedSize: Int) {
        self.kind = kind
        self.mark = mark
        self.fileID = fileID
        self.expandedSize = expandedSize
    }

    public var scalar: String? {
        if case .scalar(let s, _) = kind { return s }
        return nil
    }

    public var sequence: [Node]? {
        if case .sequence(let s) = kind { return s }
        return nil
    }

    public var mapping: [(key: Node, value: Node)]? {
        if case .mapping(let m) = kind { return m }
        return nil
    }

    /// A plain `null`, `~` or empty scalar.
    public var isNull: Bool {
        if case .scalar(let s, let plain) = kind, plain {
            return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
        }
        return false
    }

    public var kindName: String {
        switch kind {
        case .scalar: "a scalar"
        case .sequence: "a sequence"
        case .mapping: "a mapping"
        }
    }

    /// The value of a mapping key, if this is a mapping that has it.
    public subscript(key: String) -> Node? {
        guard case .mapping(let pairs) = kind else { return nil }
        for p in pairs { if case .scalar(let s, _) = p.key.kind, s == key { return p.value } }
        return nil
    }

    public func error(_ message: String) -> LocatedError { LocatedError(file: file, mark: mark, message: message) }
}

/// Reads YAML with libyaml under limits that keep a hostile file from exhausting time or memory.
public struct YAMLReader: Sendable {
    public struct Limits: Sendable {
        public var maxBytes = 16 * 1024 * 1024
        public var maxDepth = 64
        /// Nodes after alias expansion: a billion-laughs file stops here.
        public var maxNodes = 1_000_000
        public var maxAliases = 10_000
        public init() {}
    }

    public var limits: Limits
    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Reads a file; errors name `file:line:col`.
    public func read(path: String) throws(LocatedError) -> Node? {
        try parse(readBytes(path: path), file: path)
    }

    /// Reads a file of one or more documents separated by `---` (Sigma rule files); empty documents are skipped.
    public func readAll(path: String) throws(LocatedError) -> [Node] {
        try parseAll(readBytes(path: path), file: path)
    }

    /// Parses every document of a stream; the node limits apply to the stream as a whole.
    public func parseAll(_ bytes: [UInt8], file: String) throws(LocatedError) -> [Node] {
        try parse(bytes, file: file, multiple: true).roots
    }

    private func readBytes(path: String) throws(LocatedError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            throw LocatedError(file: path, mark: Mark(line: 1, column: 1), message: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 65536) }
            if n < 0 {
                throw LocatedError(
                    file: path, mark: Mark(line: 1, column: 1), message: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            data += chunk[0..<n]
            if data.count > limits.maxBytes {
                throw LocatedError(
                    file: path, mark: Mark(line: 1, column: 1), message: "file is larger than \(limits.maxBytes) bytes")
            }
        }
        return data
    }

    /// Parses one YAML document (nil when the stream is empty).
    public func parse(_ bytes: [UInt8], file: String) throws(LocatedError) -> Node? {
        try parse(bytes, file: file, multiple: false).roots.first
    }

    /// Parses one document whose root mapping's `key` holds a long sequence (a list's `entries`): each item is
    /// handed to `each` as soon as it is read, in order, and not kept — in the tree the sequence is empty. Memory
    /// stays that of one item, not of a million. A `key` that is not a sequence is kept as usual.
    public func parse(_ bytes: [UInt8], file: String, streaming key: String, each: (Node) -> Void)
        throws(LocatedError) -> Node?
    {
        try withoutActuallyEscaping(each) { (each) throws(LocatedError) -> Node? in
            try parse(bytes, file: file, multiple: false, stream: (key, each)).roots.first
        }
    }

    private func parse(
        _ bytes: [UInt8], file: String, multiple: Bool, stream: (key: String, each: (Node) -> Void)? = nil
    ) throws(LocatedError) -> (roots: [Node], counts: Counts) {
        if bytes.count > limits.maxBytes {
            throw LocatedError(
                file: file, mark: Mark(line: 1, column: 1), message: "file is larger than \(limits.maxBytes) bytes")
        }
        return try bytes.withUnsafeBufferPointer { (buf) throws(LocatedError) -> ([Node], Counts) in
            try Self.withParser(buf, file: file) { (parser) throws(LocatedError) -> ([Node], Counts) in
                var builder = Builder(file: file, limits: limits, multiple: multiple)
                builder.stream = stream
                let roots = try builder.run(&parser)
                return (roots, Counts(nodes: builder.total, aliases: builder.aliases))
            }
        }
    }

    /// A libyaml parser over `bytes` for the length of `body`.
    private static func withParser<T>(
        _ bytes: UnsafeBufferPointer<UInt8>, file: String, _ body: (inout yaml_parser_t) throws(LocatedError) -> T
    ) throws(LocatedError) -> T {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw LocatedError(file: file, mark: Mark(line: 1, column: 1), message: "cannot initialise the YAML parser")
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
        return try body(&parser)
    }

    public func parse(_ text: String, file: String) throws(LocatedError) -> Node? {
        try parse(Array(text.utf8), file: file)
    }

    // MARK: One long sequence on several threads

    /// A document cut for parsing on several threads (`split`): `header` is the document with the lines of the
    /// sequence under `key` emptied (same lines and columns elsewhere; the key's value reads as null), `parts` runs of
    /// whole items of that sequence (byte ranges starting at a line start) with the file line each starts on, and
    /// `keyLine` the line of `key:`.
    public struct SplitDocument: Sendable {
        public var header: [UInt8]
        public var parts: [(bytes: Range<Int>, line: Int)]
        public var keyLine: Int
    }

    /// What one parse counted against the limits (nodes after alias expansion, aliases).
    public struct Counts: Sendable {
        public var nodes = 0
        public var aliases = 0
        /// Items read by `FlowItems` rather than libyaml (a part of a split document).
        public var flowItems = 0
    }

    /// Cuts a document whose top-level `key:` stands alone on its line, followed by a block sequence, into `parts`
    /// runs of items at lines that start an item at the sequence's indentation. Nil when the text does not have that
    /// shape. The cut is only a guess: the caller parses the header and each part (`parse(part:…)`) and must check
    /// that the header has `key` as a null at `keyLine`, that every part parsed, and that the counts add up within
    /// the limits — else it parses the whole document as usual, whose outcome (and errors) the cut must not change.
    public func split(_ bytes: [UInt8], key: String, parts: Int) -> SplitDocument? {
        guard parts >= 2, bytes.count <= limits.maxBytes, !bytes.starts(with: [0xEF, 0xBB, 0xBF]),
            !Self.hasOtherLineBreaks(bytes)
        else { return nil }
        let n = bytes.count
        let keyBytes = Array(key.utf8) + [UInt8(ascii: ":")]
        /// The end of the line starting at `i` (the index of its newline, or `n`).
        func lineEnd(_ i: Int) -> Int {
            bytes.withUnsafeBufferPointer { b in
                guard i < n, let p = memchr(b.baseAddress! + i, 0x0A, n - i) else { return n }
                return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
            }
        }
        /// Spaces at the start of the line at `i`, and whether the line is blank or a comment.
        func indent(_ i: Int, _ end: Int) -> (Int, blank: Bool) {
            var j = i
            while j < end && bytes[j] == 0x20 { j += 1 }
            return (j - i, j == end || bytes[j] == 0x23 || (bytes[j] == 0x0D && j + 1 == end))
        }
        // The key's line: `key:` at column 0, then only spaces, a comment or CR.
        var line = 1
        var i = 0
        var keyLine = 0
        while i < n {
            let end = lineEnd(i)
            // A directive (%TAG) would change how the parts read their tags: read whole.
            if bytes[i] == UInt8(ascii: "%") { return nil }
            if end - i >= keyBytes.count && bytes[i..<(i + keyBytes.count)].elementsEqual(keyBytes) {
                let rest = indent(i + keyBytes.count, end)
                if rest.blank && (rest.0 > 0 || i + keyBytes.count == end || bytes[i + keyBytes.count] != 0x23) {
                    keyLine = line
                    i = end + 1
                    line += 1
                    break
                }
            }
            i = end + 1
            line += 1
        }
        guard keyLine > 0 else { return nil }
        // The first item: `-` then a space or the line's end, at the sequence's indentation.
        var seqIndent = -1
        while i < n {
            let end = lineEnd(i)
            let (k, blank) = indent(i, end)
            if !blank {
                guard bytes[i + k] == UInt8(ascii: "-"), i + k + 1 == end || bytes[i + k + 1] == 0x20 else {
                    return nil
                }
                seqIndent = k
                break
            }
            i = end + 1
            line += 1
        }
        guard seqIndent >= 0 else { return nil }
        let start = i
        let startLine = line
        // Item starts (byte offset, line) until the first line that ends the sequence.
        var items: [(Int, Int)] = []
        while i < n {
            let end = lineEnd(i)
            let (k, blank) = indent(i, end)
            if !blank {
                if k < seqIndent { break }
                if k == seqIndent {
                    guard bytes[i + k] == UInt8(ascii: "-"), i + k + 1 == end || bytes[i + k + 1] == 0x20 else { break }
                    items.append((i, line))
                }
            }
            i = end + 1
            line += 1
        }
        let stop = min(i, n)
        guard items.count >= parts * 2 else { return nil }
        var cuts: [(bytes: Range<Int>, line: Int)] = []
        var from = items[0]
        var next = 1
        for p in 1..<parts {
            let target = start + (stop - start) * p / parts
            while next < items.count && items[next].0 < target { next += 1 }
            guard next < items.count else { break }  // the rest is one item (or no item starts past here)
            cuts.append((from.0..<items[next].0, from.1))
            from = items[next]
            next += 1
        }
        cuts.append((from.0..<stop, from.1))
        guard cuts.count >= 2, cuts.allSatisfy({ !$0.bytes.isEmpty }) else { return nil }
        // The header: the sequence's lines emptied, so lines and columns stay.
        var header: [UInt8] = []
        header.reserveCapacity(start + (line - startLine) + (n - stop))
        header += bytes[..<start]
        header += repeatElement(0x0A, count: line - startLine)
        header += bytes[stop...]
        return SplitDocument(header: header, parts: cuts, keyLine: keyLine)
    }

    /// Whether the text breaks lines other than with LF or CR LF — a lone CR, NEL, LS or PS, which libyaml counts as
    /// line breaks and the cut does not (its lines and columns would drift).
    static func hasOtherLineBreaks(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { b -> Bool in
            let n = b.count
            guard let base = b.baseAddress else { return false }
            for lead: Int32 in [0x0D, 0xC2, 0xE2] {
                var i = 0
                while i < n, let p = memchr(base + i, lead, n - i) {
                    let at = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
                    switch lead {
                    case 0x0D: if at + 1 >= n || b[at + 1] != 0x0A { return true }
                    case 0xC2: if at + 1 < n && b[at + 1] == 0x85 { return true }
                    default:
                        if at + 2 < n && b[at + 1] == 0x80 && (b[at + 2] == 0xA8 || b[at + 2] == 0xA9) { return true }
                    }
                    i = at + 1
                }
            }
            return false
        }
    }

    /// A document and what it counted against the limits (for the header of a split document).
    public func parseCounting(_ bytes: [UInt8], file: String) throws(LocatedError) -> (Node?, Counts) {
        let (roots, counts) = try parse(bytes, file: file, multiple: false)
        return (roots.first, counts)
    }

    /// One part of a split document: its items, in order, to `each`, with the file's lines and columns and at the
    /// depth they have in the whole document. Throws when the part is anything but one implicit document holding one
    /// block sequence at the part's first column (the caller then parses the whole document). The counts leave out
    /// the sequence itself (the header counted its null).
    public func parse(
        part bytes: ArraySlice<UInt8>, file: String, line: Int, flowItems: Bool = true, each: (Node) -> Void
    ) throws(LocatedError) -> Counts {
        try withoutActuallyEscaping(each) { (each) throws(LocatedError) -> Counts in
            try bytes.withUnsafeBufferPointer { (buf) throws(LocatedError) -> Counts in
                if flowItems, let counts = try parseFlowItems(buf, file: file, line: line, each: each) {
                    return counts
                }
                return try parseItems(buf, file: file, line: line, each: each)
            }
        }
    }

    /// Items of a part read by libyaml (`line`: the file line `buf` starts on).
    private func parseItems(_ buf: UnsafeBufferPointer<UInt8>, file: String, line: Int, each: @escaping (Node) -> Void)
        throws(LocatedError) -> Counts
    {
        try Self.withParser(buf, file: file) { (parser) throws(LocatedError) -> Counts in
            var builder = Builder(file: file, limits: limits, multiple: false)
            builder.lineOffset = line - 1
            builder.partMode = true
            try builder.part(&parser, each: each)
            return Counts(nodes: builder.total - 1, aliases: builder.aliases)
        }
    }

    /// A part read item by item: an item on one line in `FlowItems`' subset is read there, every run of other items
    /// by libyaml, in order. Nil (nothing handed to `each`) when the part does not start with an item.
    private func parseFlowItems(
        _ buf: UnsafeBufferPointer<UInt8>, file: String, line firstLine: Int, each: @escaping (Node) -> Void
    ) throws(LocatedError) -> Counts? {
        let flow = FlowItems(b: buf, fileID: FileNames.id(file), maxDepth: limits.maxDepth)
        let n = buf.count
        guard n > 0 else { return nil }
        let first = flow.lineEnd(0)
        let firstShape = flow.lineShape(0, first.content)
        let indent = firstShape.indent
        /// Whether the line `[i, end)` starts an item of the sequence: `-` at its indentation, then a space or the end.
        func startsItem(_ i: Int, _ end: Int) -> Bool {
            i + indent < end && buf[i + indent] == UInt8(ascii: "-")
                && (i + indent + 1 == end || buf[i + indent + 1] == 0x20)
                && flow.lineShape(i, end).indent == indent
        }
        guard !firstShape.blank, startsItem(0, first.content) else { return nil }
        var counts = Counts()
        var run: (start: Int, line: Int)?  // items not read here, waiting for libyaml
        func flush(_ upTo: Int) throws(LocatedError) {
            guard let r = run else { return }
            run = nil
            let c = try parseItems(
                UnsafeBufferPointer(rebasing: buf[r.start..<upTo]), file: file, line: r.line, each: each)
            counts.nodes += c.nodes
            counts.aliases += c.aliases
        }
        var i = 0
        var line = firstLine
        while i < n {
            // The item starting at `i`: its first line, then lines up to the next item's start.
            let head = flow.lineEnd(i)
            var next = head.next + 1
            var nextLine = line + 1
            var plain = true  // its other lines are blank or comments in printable ASCII
            while next < n {
                let e = flow.lineEnd(next)
                if startsItem(next, e.content) { break }
                let shape = flow.lineShape(next, e.content)
                if !shape.blank || !shape.printable { plain = false }
                next = e.next + 1
                nextLine += 1
            }
            next = min(next, n)
            if plain, let node = flow.item(i, head.content, indent: indent, line: line) {
                try flush(i)
                counts.nodes += node.expandedSize
                counts.flowItems += 1
                // + 1: libyaml's reading of a part counts the sequence too.
                if counts.nodes + 1 > limits.maxNodes {
                    throw LocatedError(
                        file: file, mark: node.mark,
                        message:
                            "more than \(limits.maxNodes) nodes (after alias expansion): refusing a document this large"
                    )
                }
                each(node)
            } else if run == nil {
                run = (i, line)
            }
            i = next
            line = nextLine
        }
        try flush(n)
        return counts
    }
}

private struct Builder {
    let file: String
    let limits: YAMLReader.Limits
    var anchors: [String: Node] = [:]
    var total = 0
    var aliases = 0
    var documents = 0
    let multiple: Bool
    /// The root mapping's key whose sequence items go to `each` instead of into the tree.
    var stream: (key: String, each: (Node) -> Void)?
    /// Added to every line (a part of a split document starts on this line of the file, less one).
    var lineOffset = 0
    /// Reading a part of a split document: an alias ends it at once (`part`).
    var partMode = false

    let fileID: Int32

    init(file: String, limits: YAMLReader.Limits, multiple: Bool) {
        self.file = file
        fileID = FileNames.id(file)
        self.limits = limits
        self.multiple = multiple
    }

    func mark(_ m: yaml_mark_t) -> Mark { Mark(line: Int(m.line) + 1 + lineOffset, column: Int(m.column) + 1) }

    func fail(_ m: Mark, _ message: String) -> LocatedError { LocatedError(file: file, mark: m, message: message) }

    mutating func next(_ parser: inout yaml_parser_t) throws(LocatedError) -> yaml_event_t {
        var event = yaml_event_t()
        if yaml_parser_parse(&parser, &event) != 1 {
            let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
            let m = mark(parser.problem_mark)
            var message = problem
            if let ctx = parser.context { message += " " + String(cString: ctx) }
            throw fail(m, message)
        }
        return event
    }

    mutating func run(_ parser: inout yaml_parser_t) throws(LocatedError) -> [Node] {
        var roots: [Node] = []
        while true {
            var ev = try next(&parser)
            defer { yaml_event_delete(&ev) }
            switch ev.type {
            case YAML_STREAM_END_EVENT: return roots
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 && !multiple {
                    throw fail(mark(ev.start_mark), "only one YAML document per file is allowed")
                }
                anchors = [:]  // anchors do not cross documents
            case YAML_STREAM_START_EVENT, YAML_DOCUMENT_END_EVENT: continue
            default:
                let root = try node(from: &ev, &parser, depth: 0)
                if !root.isNull { roots.append(root) }
            }
        }
    }

    /// A part of a split document (`YAMLReader.split`): one implicit document, one block sequence at column 1, its
    /// items streamed at the depth of a top-level mapping's sequence's items.
    mutating func part(_ parser: inout yaml_parser_t, each: @escaping (Node) -> Void) throws(LocatedError) {
        func expect(_ type: yaml_event_type_t, _ check: (yaml_event_t) -> Bool = { _ in true })
            throws(LocatedError)
        {
            var ev = try next(&parser)
            defer { yaml_event_delete(&ev) }
            guard ev.type == type, check(ev) else { throw fail(mark(ev.start_mark), "not a part of a sequence") }
        }
        try expect(YAML_STREAM_START_EVENT)
        try expect(YAML_DOCUMENT_START_EVENT) { $0.data.document_start.implicit == 1 }
        var ev = try next(&parser)
        defer { yaml_event_delete(&ev) }
        guard ev.type == YAML_SEQUENCE_START_EVENT, ev.data.sequence_start.anchor == nil,
            ev.data.sequence_start.style == YAML_BLOCK_SEQUENCE_STYLE
        else { throw fail(mark(ev.start_mark), "not a part of a sequence") }
        _ = try sequence(from: &ev, &parser, depth: 2, each: each)
        // An anchor in a part could stand for something else after it, in the whole document's reading.
        guard anchors.isEmpty else { throw fail(mark(ev.start_mark), "an anchor in a part of a sequence") }
        try expect(YAML_DOCUMENT_END_EVENT) { $0.data.document_end.implicit == 1 }
        try expect(YAML_STREAM_END_EVENT)
    }

    mutating func count(_ n: Int, at m: Mark) throws(LocatedError) {
        total += n
        if total > limits.maxNodes {
            throw fail(m, "more than \(limits.maxNodes) nodes (after alias expansion): refusing a document this large")
        }
    }

    mutating func register(_ anchor: UnsafeMutablePointer<UInt8>?, _ n: Node) {
        if let anchor { anchors[String(cString: anchor)] = n }
    }

    /// A sequence (its start event in `ev`) whose items are at `depth`: kept in the node, or — `each` given (the
    /// root's streamed key) — handed to `each` one by one and not kept.
    mutating func sequence(
        from ev: inout yaml_event_t, _ parser: inout yaml_parser_t, depth: Int, each: ((Node) -> Void)? = nil
    ) throws(LocatedError) -> Node {
        let m = mark(ev.start_mark)
        try count(1, at: m)
        let anchor = ev.data.sequence_start.anchor.map { String(cString: $0) }
        var items: [Node] = []
        var size = 1
        while true {
            var child = try next(&parser)
            defer { yaml_event_delete(&child) }
            if child.type == YAML_SEQUENCE_END_EVENT { break }
            let c = try node(from: &child, &parser, depth: depth)
            size += c.expandedSize
            if let each { each(c) } else { items.append(c) }
        }
        let n = Node(kind: .sequence(items), mark: m, fileID: fileID, expandedSize: size)
        if let anchor { anchors[anchor] = n }
        return n
    }

    mutating func node(from ev: inout yaml_event_t, _ parser: inout yaml_parser_t, depth: Int) throws(LocatedError)
        -> Node
    {
        let m = mark(ev.start_mark)
        if depth > limits.maxDepth { throw fail(m, "nesting deeper than \(limits.maxDepth) levels") }
        switch ev.type {
        case YAML_ALIAS_EVENT:
            // In a part of a split document an alias is refused at once, before any expansion is built (the whole
            // document's reading, with its one budget of nodes, judges it).
            if partMode { throw fail(m, "an alias in a part of a sequence") }
            let name = String(cString: ev.data.alias.anchor)
            guard let target = anchors[name] else { throw fail(m, "unknown alias *\(name)") }
            aliases += 1
            if aliases > limits.maxAliases { throw fail(m, "more than \(limits.maxAliases) aliases") }
            try count(target.expandedSize, at: m)
            return target
        case YAML_SCALAR_EVENT:
            try count(1, at: m)
            let s = ev.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)
            var plain = s.style == YAML_PLAIN_SCALAR_STYLE
            if let tag = s.tag {
                let t = String(cString: tag)
                if t == "!!str" || t == "tag:yaml.org,2002:str" { plain = false }
            }
            let n = Node(kind: .scalar(text, plain: plain), mark: m, fileID: fileID, expandedSize: 1)
            register(s.anchor, n)
            return n
        case YAML_SEQUENCE_START_EVENT:
            return try sequence(from: &ev, &parser, depth: depth + 1)
        case YAML_MAPPING_START_EVENT:
            try count(1, at: m)
            let anchor = ev.data.mapping_start.anchor.map { String(cString: $0) }
            var pairs: [(key: Node, value: Node)] = []
            pairs.reserveCapacity(4)
            // Duplicate keys: a linear search while the mapping is small (list entries are), a set beyond.
            var seen: Set<String>?
            var size = 1
            while true {
                var kev = try next(&parser)
                defer { yaml_event_delete(&kev) }
                if kev.type == YAML_MAPPING_END_EVENT { break }
                let k = try node(from: &kev, &parser, depth: depth + 1)
                var vev = try next(&parser)
                defer { yaml_event_delete(&vev) }
                let v: Node
                if depth == 0, let stream, k.scalar == stream.key, vev.type == YAML_SEQUENCE_START_EVENT {
                    v = try sequence(from: &vev, &parser, depth: 2, each: stream.each)
                } else {
                    v = try node(from: &vev, &parser, depth: depth + 1)
                }
                if let ks = k.scalar {
                    let duplicate = seen?.contains(ks) ?? pairs.contains { $0.key.scalar == ks }
                    if duplicate { throw fail(k.mark, "duplicate key \"\(ks)\"") }
                    if seen != nil {
                        seen!.insert(ks)
                    } else if pairs.count >= 15 {  // >=: the 16th key may have been a collection
                        seen = Set(pairs.compactMap(\.key.scalar) + [ks])
                    }
                }
                size += k.expandedSize + v.expandedSize
                pairs.append((k, v))
            }
            let n = Node(kind: .mapping(pairs), mark: m, fileID: fileID, expandedSize: size)
            if let anchor { anchors[anchor] = n }
            return n
        default:
            throw fail(m, "unexpected YAML event")
        }
    }
}

/// The names of the files nodes were read from, each stored once for the life of the process (a node keeps the
/// number): millions of nodes of one file then change no shared reference count — which, changed from two cores at
/// once, costs more than the parse.
enum FileNames {
    private static let table = Mutex<(names: [String], ids: [String: Int32])>(([], [:]))

    static func id(_ name: String) -> Int32 {
        table.withLock { t in
            if let id = t.ids[name] { return id }
            let id = Int32(t.names.count)
            t.names.append(name)
            t.ids[name] = id
            return id
        }
    }

    static func name(_ id: Int32) -> String { table.withLock { $0.names[Int(id)] } }
}

/// A duration as Alertmanager and Sigma write it — `0s`, `30s`, `5m`, `1h30m`, `2d`, `1w` — in seconds.
public func parseDuration(_ s: String) -> Double? {
    if s == "0" { return 0 }
    var total = 0.0
    var number = ""
    var any = false
    let chars = Array(s)
    var i = 0
    while i < chars.count {
        let ch = chars[i]
        if ch.isNumber || ch == "." {
            number.append(ch)
            i += 1
            continue
        }
        guard let n = Double(number), n.isFinite else { return nil }
        switch ch {
        case "m" where i + 1 < chars.count && chars[i + 1] == "s":
            total += n / 1000
            i += 1
        case "s": total += n
        case "m": total += n * 60
        case "h": total += n * 3600
        case "d": total += n * 86400
        case "w": total += n * 7 * 86400
        case "y": total += n * 365 * 86400
        default: return nil
        }
        number = ""
        any = true
        i += 1
    }
    return any && number.isEmpty ? total : nil
}
