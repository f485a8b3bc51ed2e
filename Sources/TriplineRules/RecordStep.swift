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

    /// The screen for this step's normaliser, lists and rules (see `RecordScreen`).
    public var screening: RecordScreen {
        RecordScreen(normalizer: normalizer, index: matcher.index, quiet: screens ? engine.ruleSet.quietTypes : [])
    }

    /// False turns the screen off: every line through the whole step (heartbeats need every selector's fields).
    public var screens = true

    /// `RecordScreen.screen(_:)` with this step's screen.
    public func screen(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { screening.screen(bytes) }

    /// `RecordScreen.screen(_:lines:)` with this step's screen.
    public func screen(_ buffer: UnsafeBufferPointer<UInt8>, lines: UnsafeBufferPointer<Range<Int>>) -> Int {
        screening.screen(buffer, lines: lines)
    }

    public static var screenBatch: Int { RecordScreen.batch }

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
