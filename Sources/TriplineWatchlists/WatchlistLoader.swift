import Crypto
import Foundation
import TriplineSelectors
import TriplineYAML

/// Reads and strictly validates watchlist files (SPEC §4). Each file is one list, accepted or refused on its own:
/// a list with any error is not loaded, and every error names `file:line:col`.
///
/// No message names a ref, label or watched value, nor echoes any text of the file (SPEC §6: a list's content
/// never reaches the operator unless the list is clear or green, and its handling may be read after the errors):
/// messages say "the entry at line N" and "this value"; what the normaliser or the YAML reader quote is left out.
public struct WatchlistLoader: Sendable {
    public var normalizer: SelectorNormalizer
    public var reader: YAMLReader
    /// From this size on, a list's entries are validated on a second thread while the reader reads on.
    public var handOffBytes = 1 << 20
    /// From this size on, a list's `entries` are cut into one run of items per core, each read and validated on its
    /// own thread (`YAMLReader.split`), when the file has that shape; the outcome is the one-thread outcome.
    public var splitBytes = 4 << 20
    /// How many threads a split list is read on (the cores, at most 8).
    public var splitThreads = min(8, ProcessInfo.processInfo.activeProcessorCount)

    /// The limits on one list file (SPEC §4): 256 MiB, 20,000,000 nodes, depth 64, 10,000 aliases.
    public static let limits: YAMLReader.Limits = {
        var l = YAMLReader.Limits()
        l.maxBytes = 256 * 1024 * 1024
        l.maxNodes = 20_000_000
        l.maxDepth = 64
        l.maxAliases = 10_000
        return l
    }()

    public init(
        normalizer: SelectorNormalizer = SelectorNormalizer(),
        reader: YAMLReader = YAMLReader(limits: WatchlistLoader.limits)
    ) {
        self.normalizer = normalizer
        self.reader = reader
    }

    /// What became of one list file.
    public struct FileOutcome: Sendable {
        /// The file as found (the directory joined with its relative path).
        public var path: String
        /// The partner the file belongs to: its directory (`Watchlists/<owner>/`); nil for a file outside any
        /// owner's directory, or, for a file loaded on its own without one, its `owner:` field when it is an id.
        public var owner: String?
        /// The `watchlist:` field, when the file could be read and it is an id.
        public var name: String?
        /// Lower-case hex SHA-256 of the file's bytes, when it could be read.
        public var version: String?
        /// The list, when it is wholly valid; nil when refused.
        public var list: Watchlist?
        /// Every error (sorted by position); none when `list` is set.
        public var errors: [LocatedError] = []
        public var warnings: [LocatedError] = []
        /// Where the `watchlist:` field is (duplicate lists are reported there).
        var nameMark: Mark?

        public var accepted: Bool { list != nil }

        init(path: String, owner: String?) {
            self.path = path
            self.owner = owner
        }
    }

    public struct Result: Sendable {
        /// The accepted lists, in path order.
        public var lists: [Watchlist] = []
        /// Every error: the directory's, then each file's in path order.
        public var errors: [LocatedError] = []
        public var warnings: [LocatedError] = []
        /// Every `*.yaml` / `*.yml` file under the directory, in path order, accepted or refused.
        public var files: [FileOutcome] = []
        /// Errors about the directory itself (not found): no file could be judged.
        public var directoryErrors: [LocatedError] = []

        /// The files refused, with their errors.
        public var refused: [FileOutcome] { files.filter { !$0.accepted } }

        /// Refuses the lists whose owner (their directory) is not one of `partners`.
        public mutating func refuse(ownersNotIn partners: Set<String>) {
            for (i, f) in files.enumerated() where f.accepted && !partners.contains(f.owner ?? "") {
                let e = LocatedError(
                    file: f.path, mark: Mark(line: 1, column: 1),
                    message: "the list's owner \"\(f.owner ?? "")\" is not a partner of the configuration")
                files[i].errors.append(e)
                files[i].list = nil
                errors.append(e)
            }
            lists = files.compactMap(\.list)
        }
    }

    public static let selectorTypes =
        SelectorType.allCases.map(\.rawValue) + ["phone_prefix", "ip_cidr"]

    /// The rule every list file follows (SPEC §4).
    public static let placementRule = "a list file sits directly in Watchlists/<owner>/"

    /// Every `*.yaml` / `*.yml` file under `directory` (sorted, so loading is deterministic), each accepted or refused
    /// on its own. A file not directly in an owner's directory is refused. When two files name the same list of one
    /// owner, the first in path order is judged as usual and every later one is refused.
    public func load(directory: String, now: Double) -> Result {
        var result = Result()
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            let e = LocatedError(
                file: directory, mark: Mark(line: 1, column: 1), message: "watchlist directory not found")
            result.directoryErrors.append(e)
            result.errors.append(e)
            return result
        }
        let files = (fm.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        var seen: [String: String] = [:]
        for rel in files {
            let path = (directory as NSString).appendingPathComponent(rel)
            let parts = rel.split(separator: "/", omittingEmptySubsequences: true)
            var one: FileOutcome
            if parts.count == 2 {
                one = outcome(file: path, owner: String(parts[0]), now: now)
            } else {
                one = FileOutcome(path: path, owner: nil)
                let where_ =
                    parts.count < 2
                    ? "this file is at the top of the watchlist directory"
                    : "this file is in a subdirectory of \(parts[0])/"
                one.errors.append(
                    LocatedError(
                        file: path, mark: Mark(line: 1, column: 1),
                        message: "\(Self.placementRule): \(where_), so it is not loaded"))
            }
            if let owner = one.owner, let name = one.name {
                let key = owner + "/" + name
                if let first = seen[key] {
                    one.errors.append(
                        LocatedError(
                            file: path, mark: one.nameMark ?? Mark(line: 1, column: 1),
                            message:
                                "\(owner) already has a list of this name in \(first): the first file in path order "
                                + "is that list, so this one is refused"))
                    one.errors.sort(by: Self.byPosition)
                    one.list = nil
                } else {
                    seen[key] = path
                }
            }
            result.files.append(one)
            result.errors += one.errors
            result.warnings += one.warnings
            if let list = one.list { result.lists.append(list) }
        }
        return result
    }

    /// One file. `relativePath` (`owner/list.yaml`, relative to the watchlist directory) names the owner when given:
    /// the list's `owner:` must be that directory, and a path of any other shape is refused.
    public func load(file path: String, relativePath: String? = nil, now: Double) -> Result {
        var one: FileOutcome
        if let rel = relativePath {
            let parts = rel.split(separator: "/", omittingEmptySubsequences: true)
            if parts.count == 2 {
                one = outcome(file: path, owner: String(parts[0]), now: now)
            } else {
                one = FileOutcome(path: path, owner: nil)
                one.errors.append(
                    LocatedError(
                        file: path, mark: Mark(line: 1, column: 1),
                        message: "\(Self.placementRule), so this file is not loaded"))
            }
        } else {
            one = outcome(file: path, owner: nil, now: now)
        }
        var result = Result()
        result.files = [one]
        result.errors = one.errors
        result.warnings = one.warnings
        if let list = one.list { result.lists = [list] }
        return result
    }

    /// One file of `owner` (its directory; nil: the list's `owner:` field is taken as it is).
    public func outcome(file path: String, owner: String?, now: Double) -> FileOutcome {
        // The size first: a file over the limit is not read into memory at all.
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
            size.int64Value > Int64(reader.limits.maxBytes)
        {
            var one = FileOutcome(path: path, owner: owner)
            one.errors.append(
                LocatedError(
                    file: path, mark: Mark(line: 1, column: 1),
                    message: "file is larger than \(reader.limits.maxBytes) bytes, the limit for a list file"))
            return one
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            var one = FileOutcome(path: path, owner: owner)
            one.errors.append(LocatedError(file: path, mark: Mark(line: 1, column: 1), message: "cannot read file"))
            return one
        }
        return outcome(bytes: [UInt8](data), file: path, owner: owner, now: now)
    }

    /// A list from its bytes (a submission): `file` is how messages name it (its owner and version for a
    /// submitted list), `owner` the partner it must belong to (nil: its `owner:` field).
    public func outcome(bytes: [UInt8], file path: String, owner: String?, now: Double) -> FileOutcome {
        var one = FileOutcome(path: path, owner: owner)
        one.version = Self.sha256Hex(bytes)
        let root: Node?
        // The entries are validated as they are read (a million-entry list never exists as one YAML tree), on a
        // second thread for a long list: the reader reads on, the worker validates and normalises.
        func validator() -> Validator {
            var v = Validator(normalizer: normalizer, now: now)
            // Room for the entries a file of this size usually holds (a one-line entry is 60-100 bytes), so a
            // million are not copied over again as the arrays and the ref table grow.
            v.entries.reserveCapacity(bytes.count / 96)
            v.refs.reserveCapacity(bytes.count / 96)
            return v
        }
        if bytes.count >= splitBytes, splitThreads >= 2,
            let split = outcome(splitting: bytes, file: path, owner: owner, version: one.version!, now: now)
        {
            return split
        }
        let handOff = bytes.count >= handOffBytes ? HandOff(validator()) { $0.add(entry: $1) } : nil
        var v = handOff == nil ? validator() : Validator(normalizer: normalizer, now: now)
        do {
            root = try reader.parse(bytes, file: path, streaming: "entries") { e in
                if let handOff { handOff.put(e) } else { v.add(entry: e) }
            }
        } catch {
            _ = handOff?.finish()
            one.errors.append(LocatedError(file: error.file, mark: error.mark, message: Redact.yaml(error.message)))
            return one
        }
        if let handOff { v = handOff.finish() }
        guard let root else {
            one.errors.append(LocatedError(file: path, mark: Mark(line: 1, column: 1), message: "empty watchlist file"))
            return one
        }
        return Self.finish(&v, root: root, one)
    }

    /// The list's own fields read from `root` after its entries, and the outcome: errors and warnings by position,
    /// the list only when there is no error.
    static func finish(_ v: inout Validator, root: Node, _ outcome: FileOutcome) -> FileOutcome {
        var one = outcome
        let list = v.watchlist(root, path: one.path, owner: one.owner, version: one.version!)
        one.errors = v.errors.sorted(by: Self.byPosition)
        one.warnings = v.warnings.sorted(by: Self.byPosition)
        one.name = v.name
        one.nameMark = v.nameMark
        if one.owner == nil { one.owner = v.owner }
        if v.errors.isEmpty, let list { one.list = list }
        return one
    }

    /// A long list read on several threads: its entries cut into runs of items, each run parsed and validated on its
    /// own thread, then joined (a ref repeated across runs is found on joining) and the rest of the file read with
    /// the entries blanked out. Nil when the file is not of that shape or any part does not parse on its own: the
    /// caller reads it whole, so that errors are reported exactly as they are for any file.
    func outcome(
        splitting bytes: [UInt8], file path: String, owner: String?, version: String? = nil, now: Double
    ) -> FileOutcome? {
        guard let split = reader.split(bytes, key: "entries", parts: splitThreads) else { return nil }
        final class Part: @unchecked Sendable {
            var validator: Validator
            var counts: YAMLReader.Counts?
            init(_ v: Validator) { validator = v }
        }
        let parts = split.parts.map { p -> Part in
            var v = Validator(normalizer: normalizer, now: now)
            // Room for the part's entries (a one-line entry is 60-100 bytes): no table grows and rehashes.
            v.entries.reserveCapacity(p.bytes.count / 64)
            v.refs.reserveCapacity(p.bytes.count / 64)
            v.deferDuplicates = true
            return Part(v)
        }
        let reader = self.reader
        @Sendable func run(_ k: Int) {
            let p = split.parts[k]
            let part = parts[k]
            part.counts = try? reader.parse(part: bytes[p.bytes], file: path, line: p.line) {
                part.validator.add(entry: $0)
            }
        }
        let group = DispatchGroup()
        for k in 1..<parts.count {
            let t = Thread {
                run(k); group.leave()
            }
            t.stackSize = 8 << 20
            group.enter()
            t.start()
        }
        run(0)
        group.wait()
        guard let header = try? reader.parseCounting(split.header, file: path), let root = header.0,
            let entries = root["entries"], entries.isNull, entries.mark.line == split.keyLine
        else { return nil }
        var nodes = header.1.nodes
        var aliases = header.1.aliases
        for p in parts {
            guard let c = p.counts else { return nil }
            nodes += c.nodes
            aliases += c.aliases
        }
        guard nodes <= reader.limits.maxNodes, aliases <= reader.limits.maxAliases else { return nil }
        var v = parts[0].validator
        var earlier = [v.refs]
        for p in parts.dropFirst() {
            v.join(p.validator, earlier: earlier, file: path)
            earlier.append(p.validator.refs)
        }
        v.reportDeferredDuplicates(earlier, file: path)
        var one = FileOutcome(path: path, owner: owner)
        one.version = version ?? Self.sha256Hex(bytes)
        return Self.finish(&v, root: root, one)
    }

    static func byPosition(_ a: LocatedError, _ b: LocatedError) -> Bool {
        (a.mark.line, a.mark.column) < (b.mark.line, b.mark.column)
    }

    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { b in
            let h = String(b, radix: 16)
            return b < 16 ? "0" + h : h
        }.joined()
    }
}

/// Reasons from the normaliser and the YAML reader without the text they quote: a list's errors never carry its
/// content (SPEC §6).
enum Redact {
    static let hidden = "(not shown)"

    /// A normaliser's reason about `value`: quoted text, a quoted character other than punctuation, and any word
    /// that shares with the value a word of three letters or more, three digits in a row, or a number written with
    /// a `+` (`+999`) are left out. The reason's own counts and limits ("667 bytes", "ISO 3166") stay.
    static func reason(_ message: String, value: String) -> String {
        func runs(_ s: Substring, _ keep: (Character) -> Bool) -> [String] {
            var out: [String] = []
            var cur = ""
            for c in s {
                if keep(c) {
                    cur.append(c)
                } else if !cur.isEmpty {
                    out.append(cur)
                    cur = ""
                }
            }
            if !cur.isEmpty { out.append(cur) }
            return out
        }
        let isDigit: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        let valueWords = Set(
            runs(Substring(value.lowercased()), { $0.isLetter || $0.isNumber }).filter { $0.count >= 3 })
        let valueDigits = String(value.filter(isDigit))
        func leaks(_ w: Substring) -> Bool {
            let lower = Substring(w.lowercased())
            if runs(lower, { $0.isLetter || $0.isNumber }).contains(where: valueWords.contains) { return true }
            for d in runs(w, isDigit) where d.count >= 3 && valueDigits.contains(d) { return true }
            // "+9": a calling code taken from the value.
            var rest = w[...]
            while let plus = rest.firstIndex(of: "+") {
                rest = rest[rest.index(after: plus)...]
                let d = String(rest.prefix(while: isDigit))
                if !d.isEmpty && valueDigits.contains(d) { return true }
            }
            return false
        }
        return unquote(message).split(separator: " ", omittingEmptySubsequences: false)
            .map { leaks($0) ? Substring(hidden) : $0 }.joined(separator: " ")
    }

    /// A YAML reader's error: quoted text and alias names left out (its counts and limits are its own).
    static func yaml(_ message: String) -> String {
        // A quote inside quoted text cannot be paired reliably: from the first quote on, nothing is shown.
        var message = message
        if let q = message.firstIndex(where: { $0 == "\"" || $0 == "'" }) {
            message = String(message[..<q]) + hidden
        }
        var out = ""
        var alias = false
        for c in unquote(message) {
            if alias {
                if c.isLetter || c.isNumber || c == "-" || c == "_" || c == "." { continue }
                alias = false
                out += hidden
            }
            out.append(c)
            if c == "*" { alias = true }
        }
        if alias { out += hidden }
        return out
    }

    /// `"..."` (to its closing quote, or the end) and `'c'` (one character, unless punctuation) left out.
    static func unquote(_ message: String) -> String {
        let c = Array(message)
        var out = ""
        var i = 0
        while i < c.count {
            if c[i] == "\"" {
                var j = i + 1
                while j < c.count && c[j] != "\"" { j += 1 }
                out += hidden
                i = j + 1
                continue
            }
            if c[i] == "'" && i + 2 < c.count && c[i + 2] == "'" {
                let q = c[i + 1]
                out += q.isASCII && q.isPunctuation || q.isASCII && q.isSymbol ? "'\(q)'" : hidden
                i += 3
                continue
            }
            out.append(c[i])
            i += 1
        }
        return out
    }
}

/// Collects every error in one pass, so `check` reports them all. No message quotes the file's text.
struct Validator {
    let normalizer: SelectorNormalizer
    let now: Double
    var errors: [LocatedError] = []
    var warnings: [LocatedError] = []
    /// The `watchlist:` and `owner:` fields, when they are ids, and where the name is.
    var name: String?
    var owner: String?
    var nameMark: Mark?
    /// The entries validated so far, and the line of each ref's entry and where the ref is.
    var entries: [Entry] = []
    var refs: [String: (line: Int, at: Mark)] = [:]
    /// A part of a split list (`WatchlistLoader.outcome(splitting:…)`): a repeated ref is kept here, and reported
    /// once the parts are joined (its first entry may be in an earlier part).
    var deferDuplicates = false
    var duplicates: [(ref: String, at: Mark)] = []

    mutating func fail(_ node: Node, _ message: String) { errors.append(node.error(message)) }

    mutating func string(_ node: Node?, _ field: String, in parent: Node, required: Bool = false) -> String? {
        guard let node, !node.isNull else {
            if required { fail(parent, "missing required field \"\(field)\"") }
            return nil
        }
        guard let s = node.scalar else {
            fail(node, "\"\(field)\" must be a string, not \(node.kindName)")
            return nil
        }
        return s
    }

    mutating func date(_ node: Node?, _ field: String, in parent: Node, required: Bool = false) -> Double? {
        guard let s = string(node, field, in: parent, required: required) else { return nil }
        guard let t = Timestamp.parse(s) else {
            fail(node!, "\"\(field)\" must be a date (YYYY-MM-DD) or an RFC 3339 time")
            return nil
        }
        return t
    }

    mutating func priority(_ node: Node?, _ field: String, in parent: Node) -> Priority? {
        guard let s = string(node, field, in: parent) else { return nil }
        guard let p = Priority(rawValue: s.lowercased()) else {
            fail(
                node!,
                "unknown \(field) (expected \(Priority.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        return p
    }

    mutating func checkKeys(_ node: Node, allowed: [String], what: String) {
        fields(node, allowed: allowed, what: what) { _, _ in }
    }

    /// The values of a mapping's keys, read in one pass (a million-entry list reads each entry's fields once), every
    /// other key reported as `checkKeys` does. `set` takes a known key's index in `allowed` and its value.
    mutating func fields(_ node: Node, allowed: [String], what: String, _ set: (Int, Node) -> Void) {
        guard case .mapping(let pairs) = node.kind else { return }
        for (k, v) in pairs {
            guard case .scalar(let ks, _) = k.kind else {
                fail(k, "\(what) keys must be strings")
                continue
            }
            guard let i = allowed.firstIndex(of: ks) else {
                let hint = Self.closest(ks, allowed).map { "did you mean \"\($0)\"? " } ?? ""
                fail(k, "unknown field in \(what) (\(hint)expected one of \(allowed.sorted().joined(separator: ", ")))")
                continue
            }
            set(i, v)
        }
    }

    static let entryKeys = ["ref", "label", "priority", "expires", "selectors"]
    static let selectorKeys = ["type", "value", "aliases", "platform", "chain", "country", "kind"]

    /// The allowed word one or two edits from `s`, if one is (a misspelt field, named without echoing it).
    static func closest(_ s: String, _ allowed: [String]) -> String? {
        let a = Array(s.lowercased().utf8)
        if a.count > 40 { return nil }
        var best: (word: String, distance: Int)?
        for w in allowed {
            let d = editDistance(a, Array(w.utf8))
            if d <= 2 && 2 * d < w.utf8.count && d < best?.distance ?? .max { best = (w, d) }
        }
        return best?.word
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }

    mutating func watchlist(_ root: Node, path: String, owner directory: String?, version: String) -> Watchlist? {
        guard root.mapping != nil else {
            fail(root, "a watchlist must be a mapping, not \(root.kindName)")
            return nil
        }
        checkKeys(
            root,
            allowed: [
                "watchlist", "owner", "description", "handling", "review_by", "default_priority", "min_score",
                "entries",
            ], what: "watchlist")
        var name = string(root["watchlist"], "watchlist", in: root, required: true)
        var owner = string(root["owner"], "owner", in: root, required: true)
        for (field, value) in [("watchlist", name), ("owner", owner)] {
            if let value, !Self.isIdentifier(value) {
                fail(root[field]!, "\"\(field)\" must be letters, digits, '-', '_' or '.'")
                if field == "watchlist" { name = nil } else { owner = nil }
            }
        }
        if let directory, let owner, owner != directory {
            fail(
                root["owner"]!,
                "\"owner\" must name the directory the file sits in, \(directory) (\(WatchlistLoader.placementRule))")
        }
        self.name = name
        self.nameMark = root["watchlist"]?.mark
        self.owner = owner
        let description = string(root["description"], "description", in: root)
        let handling = self.handling(root["handling"], owner: owner ?? "", in: root)
        let reviewBy = date(root["review_by"], "review_by", in: root, required: true)
        if let reviewBy, reviewBy <= now {
            warnings.append(
                root["review_by"]!.error(
                    "review_by \(Timestamp.format(reviewBy)) has passed: the list loads but never matches"))
        }
        let defaultPriority = priority(root["default_priority"], "default_priority", in: root) ?? .medium
        var minScore: Double?
        if let ms = string(root["min_score"], "min_score", in: root) {
            if let d = Double(ms), d >= 0, d <= 1 {
                minScore = d
            } else {
                fail(root["min_score"]!, "min_score must be a number from 0 to 1")
            }
        }
        if let en = root["entries"] {
            if let seq = en.sequence {
                for e in seq { add(entry: e) }  // none when the reader streamed them to `add(entry:)`
            } else if !en.isNull {
                fail(en, "\"entries\" must be a sequence, not \(en.kindName)")
            }
        } else {
            fail(root, "missing required field \"entries\"")
        }
        guard let name, let owner, let reviewBy, let handling else { return nil }
        return Watchlist(
            name: name, owner: owner, description: description, handling: handling, reviewBy: reviewBy,
            defaultPriority: defaultPriority, minScore: minScore, version: version, file: path, entries: entries)
    }

    /// One item of `entries`, validated (errors and warnings kept); a ref seen before is an error.
    mutating func add(entry e: Node) {
        guard let entry = self.entry(e) else { return }
        let at = (e["ref"] ?? e).mark
        if let first = refs[entry.ref] {
            if deferDuplicates {
                duplicates.append((entry.ref, at))
            } else {
                errors.append(Self.duplicate(file: e.file, at: at, first: first.line))
            }
        } else {
            refs[entry.ref] = (e.mark.line, at)
        }
        entries.append(entry)
    }

    static func duplicate(file: String, at: Mark, first: Int) -> LocatedError {
        LocatedError(file: file, mark: at, message: "duplicate ref: the entry at line \(first) has the same ref")
    }

    /// The next part of a split list after this one: its entries, errors and warnings follow; a ref of its that an
    /// earlier part has (`earlier`: their refs, in order) is a duplicate.
    mutating func join(_ next: Validator, earlier: [[String: (line: Int, at: Mark)]], file: String) {
        entries += next.entries
        errors += next.errors
        warnings += next.warnings
        for (ref, first) in next.refs {
            if let line = Self.first(ref, earlier) {
                errors.append(Self.duplicate(file: file, at: first.at, first: line))
            }
        }
        duplicates += next.duplicates
    }

    /// The line of a ref's first entry in the parts' refs, in order.
    static func first(_ ref: String, _ parts: [[String: (line: Int, at: Mark)]]) -> Int? {
        for p in parts { if let f = p[ref] { return f.line } }
        return nil
    }

    /// The repeated refs within the joined parts, each against its ref's first entry in the whole list.
    mutating func reportDeferredDuplicates(_ parts: [[String: (line: Int, at: Mark)]], file: String) {
        for d in duplicates {
            errors.append(Self.duplicate(file: file, at: d.at, first: Self.first(d.ref, parts) ?? 0))
        }
        duplicates = []
    }

    static func isIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    mutating func handling(_ node: Node?, owner: String, in parent: Node) -> Handling? {
        var h = Handling(tlp: .amber, releasableTo: [owner], originatorNotified: true)
        guard let node, !node.isNull else { return h }
        guard node.mapping != nil else {
            fail(node, "\"handling\" must be a mapping, not \(node.kindName)")
            return nil
        }
        checkKeys(node, allowed: ["tlp", "releasable_to", "originator_notified"], what: "handling")
        if let t = string(node["tlp"], "tlp", in: node) {
            guard let tlp = TLP(rawValue: t.lowercased().replacingOccurrences(of: "tlp:", with: "")) else {
                fail(node["tlp"]!, "unknown tlp (expected clear, green, amber, amber+strict or red)")
                return nil
            }
            h.tlp = tlp
        }
        if let r = node["releasable_to"], !r.isNull {
            guard let seq = r.sequence else {
                fail(r, "\"releasable_to\" must be a list of partner ids")
                return nil
            }
            for p in seq {
                guard let id = p.scalar, Self.isIdentifier(id) else {
                    fail(p, "\"releasable_to\" items must be partner ids")
                    continue
                }
                if !h.releasableTo.contains(id) { h.releasableTo.append(id) }
            }
        }
        if let o = node["originator_notified"], !o.isNull {
            switch o.scalar?.lowercased() {
            case "true": h.originatorNotified = true
            case "false": h.originatorNotified = false
            default: fail(o, "\"originator_notified\" must be true or false")
            }
        }
        return h
    }

    mutating func entry(_ node: Node) -> Entry? {
        guard case .mapping = node.kind else {
            fail(node, "an entry must be a mapping, not \(node.kindName)")
            return nil
        }
        var f: (ref: Node?, label: Node?, priority: Node?, expires: Node?, selectors: Node?)
        fields(node, allowed: Self.entryKeys, what: "entry") { i, v in
            switch i {
            case 0: f.ref = v
            case 1: f.label = v
            case 2: f.priority = v
            case 3: f.expires = v
            default: f.selectors = v
            }
        }
        let ref = string(f.ref, "ref", in: node, required: true)
        let label = string(f.label, "label", in: node)
        let priority = self.priority(f.priority, "priority", in: node)
        let expires = date(f.expires, "expires", in: node)
        if let expires, expires <= now {
            warnings.append(
                f.expires!.error(
                    "the entry at line \(node.mark.line) expired \(Timestamp.format(expires)): it never matches"))
        }
        var selectors: [WatchSelector] = []
        if let sel = f.selectors, case .sequence(let seq) = sel.kind {
            selectors.reserveCapacity(seq.count)
            for s in seq { if let w = selector(s) { selectors.append(w) } }
            if seq.isEmpty { fail(sel, "an entry needs at least one selector") }
        } else {
            fail(f.selectors ?? node, "an entry needs \"selectors\": a list of {type, value}")
        }
        guard let ref else { return nil }
        return Entry(ref: ref, label: label, priority: priority, expires: expires, selectors: selectors)
    }

    mutating func selector(_ node: Node) -> WatchSelector? {
        guard case .mapping = node.kind else {
            fail(node, "a selector must be a mapping {type, value}, not \(node.kindName)")
            return nil
        }
        var f: (type: Node?, value: Node?, aliases: Node?, platform: Node?, chain: Node?, country: Node?, kind: Node?)
        fields(node, allowed: Self.selectorKeys, what: "selector") { i, v in
            switch i {
            case 0: f.type = v
            case 1: f.value = v
            case 2: f.aliases = v
            case 3: f.platform = v
            case 4: f.chain = v
            case 5: f.country = v
            default: f.kind = v
            }
        }
        guard let typeName = string(f.type, "type", in: node, required: true),
            let value = string(f.value, "value", in: node, required: true)
        else { return nil }
        let at = f.value!
        switch typeName {
        case "phone_prefix":
            do {
                return WatchSelector(
                    kind: .phonePrefix, value: try normalizer.normalizePhonePrefix(value), aliases: [],
                    line: at.mark.line)
            } catch {
                fail(at, "unparseable phone_prefix: \(Redact.reason(error.message, value: value))")
                return nil
            }
        case "ip_cidr":
            guard let c = CIDR(value) else {
                fail(at, "unparseable ip_cidr: expected address/prefix-length")
                return nil
            }
            return WatchSelector(kind: .ipCIDR, value: c.description, aliases: [], line: at.mark.line)
        default:
            guard let type = SelectorType(rawValue: typeName) else {
                fail(
                    f.type!,
                    "unknown selector type (expected one of \(WatchlistLoader.selectorTypes.joined(separator: ", ")))")
                return nil
            }
            // The script each name was written in (value, then aliases): fuzzy matching treats unvocalised Arabic
            // apart, and the normalised value is already Latin.
            var scripts: [String?] = []
            func norm(_ v: String, _ where_: Node) -> String? {
                do {
                    let (n, fields) = try normalizer.normalizeValue(
                        type, v,
                        regions: type == .phone ? f.country?.scalar.map { [$0.uppercased()] } ?? [] : [],
                        country: f.country?.scalar, platform: f.platform?.scalar,
                        chain: f.chain?.scalar, kind: f.kind?.scalar)
                    if case .bool(false)? = fields["valid"] {
                        let why = fields["invalid_reason"]?.stringValue.map { Redact.reason($0, value: v) } ?? "invalid"
                        warnings.append(
                            where_.error(
                                "this \(type.rawValue) value is not valid (\(why)): it is watched in its normalised form"
                            ))
                    }
                    scripts.append(fields["script"]?.stringValue)
                    return n
                } catch {
                    // The normaliser's reasons start with the type ("name: ..."): named once.
                    var why = error.message
                    if why.hasPrefix(type.rawValue + ": ") { why.removeFirst(type.rawValue.count + 2) }
                    fail(where_, "unparseable \(type.rawValue): \(Redact.reason(why, value: v))")
                    return nil
                }
            }
            guard let n = norm(value, at) else { return nil }
            var aliases: [String] = []
            if let al = f.aliases {
                if type != .name {
                    fail(al, "\"aliases\" is only for name selectors")
                } else if let seq = al.sequence {
                    for a in seq {
                        guard let s = a.scalar else {
                            fail(a, "aliases must be strings")
                            continue
                        }
                        if let an = norm(s, a) { aliases.append(an) }
                    }
                } else {
                    fail(al, "\"aliases\" must be a list of names")
                }
            }
            var w = WatchSelector(kind: .exact(type), value: n, aliases: aliases, line: at.mark.line)
            if type == .name { w.scripts = scripts }
            return w
        }
    }
}
