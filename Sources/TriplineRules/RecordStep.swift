import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineWatchlists

/// The one record step (SPEC §2): parse → validate → normalise → match the watchlists → rules. `serve`, `match`,
/// `normalize` (its first half) and the rule test runner all go through it, so a record is judged, and a bad one
/// rejected with the same words, everywhere.
public struct RecordStep {
    public var normalizer: SelectorNormalizer
    public var matcher: Matcher
    public var engine: RuleEngine

    /// Why a record was rejected, and its id when one could be read (also out of broken JSON).
    public struct Rejection: Error, Sendable, Equatable {
        public var id: String?
        public var message: String
        public init(id: String?, message: String) {
            self.id = id
            self.message = message
        }
    }

    public enum Outcome {
        /// A line of blanks: skipped, not counted.
        case blank
        case rejected(Rejection)
        /// The normalised selector and its hits: watchlist hits first, then rule hits.
        case accepted(NormalizedSelector, hits: [Hit])
    }

    public init(normalizer: SelectorNormalizer, matcher: Matcher, engine: RuleEngine) {
        self.normalizer = normalizer
        self.matcher = matcher
        self.engine = engine
    }

    // MARK: Parse, validate, normalise

    /// A line over the record size limit; `head` is what the reader kept of its start (for the id).
    public static func oversized(length: Int, head: ArraySlice<UInt8>) -> Rejection {
        Rejection(
            id: salvageID(head),
            message: "record of \(length) bytes is over the \(LineLimits.maxRecord / 1024) KiB limit")
    }

    /// One NDJSON line to a normalised selector; nil for a blank line.
    public static func prepare(_ bytes: ArraySlice<UInt8>, normalizer: SelectorNormalizer) throws(Rejection)
        -> NormalizedSelector?
    {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
        let parsed = bytes.withUnsafeBufferPointer { buf in
            Result { () throws(JSONError) -> JSONValue in try JSONParser.parse(buf) }
        }
        let value: JSONValue
        switch parsed {
        case .failure(let e): throw Rejection(id: salvageID(bytes), message: "invalid JSON: \(e.description)")
        case .success(let v): value = v
        }
        guard case .object(let o) = value else {
            throw Rejection(id: nil, message: "a selector record must be a JSON object, not \(value.typeName)")
        }
        return try prepare(object: o, normalizer: normalizer)
    }

    /// A record already read as an object (the rule test runner's YAML input) to a normalised selector.
    public static func prepare(object o: JSONObject, normalizer: SelectorNormalizer) throws(Rejection)
        -> NormalizedSelector
    {
        do { return try normalizer.normalize(try SelectorInput(json: o)) } catch {
            throw Rejection(id: o["id"]?.stringValue, message: error.message)
        }
    }

    // MARK: The screen in front of the step

    /// True when the full step would accept `bytes` and find nothing — no watchlist hit, no rule to run — decided
    /// without building the record (issue 17): the line is read in place (`RecordScan`), its value normalised into
    /// a stack buffer, and the indexes probed. False is "not known": the full step then runs and decides, so a
    /// screened line is one the step would pass over in silence, and everything else goes through it unchanged.
    /// Covers international phone numbers and e-mail addresses in plain ASCII, the bulk of seized-media streams.
    public func screen(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.keyCapacity) { out in
            guard let (type, n) = screenKey(bytes, into: out) else { return false }
            return !matcher.index.mayMeet(type, UnsafeBufferPointer(rebasing: out[..<n]))
        }
    }

    /// `screen` over a run of lines (ranges in `buffer`, at most `screenBatch`): how many of them, from the first,
    /// it passes. All the lines' keys are made and their index probes issued (the filter blocks prefetched) before
    /// any probe is awaited, so the cache misses of a million-entry index overlap instead of queueing.
    public func screen(_ buffer: UnsafeBufferPointer<UInt8>, lines: UnsafeBufferPointer<Range<Int>>) -> Int {
        let count = min(lines.count, Self.screenBatch)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.keyCapacity * Self.screenBatch) { keys in
            withUnsafeTemporaryAllocation(of: (SelectorType, Int, UInt64).self, capacity: Self.screenBatch) { made in
                var n = 0
                while n < count {
                    let out = UnsafeMutableBufferPointer(
                        rebasing: keys[(n * Self.keyCapacity)...].prefix(Self.keyCapacity))
                    guard let (type, length) = screenKey(UnsafeBufferPointer(rebasing: buffer[lines[n]]), into: out)
                    else { break }
                    let h = ExactIndex.hash(type, UnsafeBufferPointer(rebasing: out[..<length]))
                    matcher.index.exact.prefetch(h)
                    made[n] = (type, length, h)
                    n += 1
                }
                for i in 0..<n {
                    let (type, length, h) = made[i]
                    let key = UnsafeBufferPointer(
                        rebasing: keys[(i * Self.keyCapacity)..<(i * Self.keyCapacity + length)])
                    if matcher.index.mayMeet(type, key, hash: h) { return i }
                }
                return n
            }
        }
    }

    /// Lines per `screen(_:lines:)`: enough to cover a memory access, few enough that the lines after a hit, which
    /// are read again, cost little.
    public static let screenBatch = 8
    /// Room for one key: e-mail addresses longer than this go through the full step. With `screenBatch`, 1 KiB: the
    /// most a temporary allocation may take from the stack (a larger one is a malloc per run of lines).
    static let keyCapacity = 128

    /// A line's normalised value (written to `out`) and type, when the full step would accept the line and the
    /// value alone decides whether it is watched; nil otherwise.
    @inline(__always)
    func screenKey(_ bytes: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>) -> (
        SelectorType, Int
    )? {
        guard engine.ruleSet.rules.isEmpty, let f = RecordScan.scan(bytes), !f.id.isEmpty, !f.value.isEmpty,
            f.type.count == 5
        else { return nil }
        // The five bytes of the type name as one word: "phone" or "email".
        var word: UInt64 = 0
        for k in f.type { word = word << 8 | UInt64(bytes[k]) }
        let type: SelectorType
        switch word {
        case 0x70_686F_6E65: type = .phone
        case 0x65_6D61_696C: type = .email
        default: return nil
        }
        if let at = f.observedAt, Timestamp.parse(UnsafeBufferPointer(rebasing: bytes[at])) == nil { return nil }
        guard
            let n = normalizer.key(type, UnsafeBufferPointer(rebasing: bytes[f.value]), hinted: f.regionHint, into: out)
        else { return nil }
        return (type, n)
    }

    // MARK: The whole step

    /// One line through the whole step. Watchlist entries and lists are judged at `now` (expiry, review date);
    /// event time falls back to `ingestTime`. `problem` hears of regex matches stopped by a limit.
    public mutating func run(
        _ bytes: ArraySlice<UInt8>, ingestTime: Double, now: Double, problem: (String) -> Void = { _ in }
    ) -> Outcome {
        let sel: NormalizedSelector?
        do { sel = try Self.prepare(bytes, normalizer: normalizer) } catch { return .rejected(error) }
        guard let sel else { return .blank }
        return .accepted(sel, hits: match(sel, ingestTime: ingestTime, now: now, problem: problem))
    }

    /// A record already read as an object through the whole step.
    public mutating func run(
        object: JSONObject, ingestTime: Double, now: Double, problem: (String) -> Void = { _ in }
    ) -> Outcome {
        let sel: NormalizedSelector
        do { sel = try Self.prepare(object: object, normalizer: normalizer) } catch { return .rejected(error) }
        return .accepted(sel, hits: match(sel, ingestTime: ingestTime, now: now, problem: problem))
    }

    /// Matching alone: the watchlist hits, then the rule hits over the selector and them.
    public mutating func match(
        _ sel: NormalizedSelector, ingestTime: Double, now: Double, problem: (String) -> Void = { _ in }
    ) -> [Hit] {
        let wl = matcher.match(sel, at: now)
        let rules = engine.process(sel, watchlist: wl, ingestTime: ingestTime) { problem("selector \(sel.id): \($0)") }
        return rules.isEmpty ? wl : wl + rules
    }

    /// Best effort for a line that is not valid JSON: the text of a leading `"id": "..."` member, when it is
    /// plain valid UTF-8 without escapes, so the error still names the record.
    public static func salvageID(_ bytes: ArraySlice<UInt8>) -> String? {
        let key = Array(#""id""#.utf8)
        guard let start = bytes.indices.first(where: { bytes[$0...].starts(with: key) }) else { return nil }
        var i = start + key.count
        while i < bytes.endIndex && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
        guard i < bytes.endIndex, bytes[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        while i < bytes.endIndex && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
        guard i < bytes.endIndex, bytes[i] == UInt8(ascii: "\"") else { return nil }
        let from = i + 1
        var j = from
        while j < bytes.endIndex && bytes[j] != UInt8(ascii: "\"") && bytes[j] != UInt8(ascii: "\\") && j - from < 256 {
            j += 1
        }
        guard j < bytes.endIndex, bytes[j] == UInt8(ascii: "\""), j > from else { return nil }
        return String(validating: bytes[from..<j], as: UTF8.self)
    }
}

/// The record size limit every reader applies (SPEC §8: records have size limits).
public enum LineLimits {
    public static let maxRecord = 64 * 1024
}
