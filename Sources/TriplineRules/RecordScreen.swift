import TriplineJSON
import TriplineSelectors
import TriplineWatchlists

/// The screen in front of the record step (issue 17): for a line, true when the full step would accept it and find
/// nothing — no watchlist hit, no rule that could match — decided without building the record. A value: the lists'
/// index, the normaliser and the types no rule can match without a list hit (`RuleSet.quietTypes`; a type some rule
/// might match goes through the step), so a reading thread can screen with the pipeline's current one.
public struct RecordScreen: Sendable {
    public let normalizer: SelectorNormalizer
    public let index: WatchlistIndex
    /// Phone numbers / e-mail addresses may be passed over (no rule can match one that meets no list).
    let phones: Bool
    let emails: Bool
    /// False when the screen passes nothing.
    public var active: Bool { phones || emails }

    /// `quiet`: the selector types no rule can match without a watchlist hit (all of them when no rules are loaded).
    public init(normalizer: SelectorNormalizer, index: WatchlistIndex, quiet: Set<SelectorType>) {
        self.normalizer = normalizer
        self.index = index
        phones = quiet.contains(.phone)
        emails = quiet.contains(.email)
    }

    /// True when the full step would accept `bytes` and find nothing — no watchlist hit, no rule to run — decided
    /// without building the record (issue 17): the line is read in place (`RecordScan`), its value normalised into
    /// a stack buffer, and the indexes probed. False is "not known": the full step then runs and decides, so a
    /// screened line is one the step would pass over in silence, and everything else goes through it unchanged.
    /// Covers international phone numbers and e-mail addresses in plain ASCII, the bulk of seized-media streams.
    public func screen(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.keyCapacity) { out in
            guard let (type, n) = screenKey(bytes, into: out) else { return false }
            return !index.mayMeet(type, UnsafeBufferPointer(rebasing: out[..<n]))
        }
    }

    /// `screen` over a run of lines (ranges in `buffer`, at most `batch`): how many of them, from the first,
    /// it passes. All the lines' keys are made and their index probes issued (the filter blocks prefetched) before
    /// any probe is awaited, so the cache misses of a million-entry index overlap instead of queueing.
    public func screen(_ buffer: UnsafeBufferPointer<UInt8>, lines: UnsafeBufferPointer<Range<Int>>) -> Int {
        let count = min(lines.count, Self.batch)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.keyCapacity * Self.batch) { keys in
            withUnsafeTemporaryAllocation(of: (SelectorType, Int, UInt64).self, capacity: Self.batch) { made in
                var n = 0
                while n < count {
                    let out = UnsafeMutableBufferPointer(
                        rebasing: keys[(n * Self.keyCapacity)...].prefix(Self.keyCapacity))
                    guard let (type, length) = screenKey(UnsafeBufferPointer(rebasing: buffer[lines[n]]), into: out)
                    else { break }
                    let h = ExactIndex.hash(type, UnsafeBufferPointer(rebasing: out[..<length]))
                    index.exact.prefetch(h)
                    made[n] = (type, length, h)
                    n += 1
                }
                for i in 0..<n {
                    let (type, length, h) = made[i]
                    let key = UnsafeBufferPointer(
                        rebasing: keys[(i * Self.keyCapacity)..<(i * Self.keyCapacity + length)])
                    if index.mayMeet(type, key, hash: h) { return i }
                }
                return n
            }
        }
    }

    /// Lines per `screen(_:lines:)`: enough to cover a memory access, few enough that the lines after a hit, which
    /// are read again, cost little.
    public static let batch = 8
    /// Room for one key: e-mail addresses longer than this go through the full step. With `batch`, 1 KiB: the
    /// most a temporary allocation may take from the stack (a larger one is a malloc per run of lines).
    static let keyCapacity = 128

    /// A line's normalised value (written to `out`) and type, when the full step would accept the line and the
    /// value alone decides whether it is watched; nil otherwise.
    @inline(__always)
    func screenKey(_ bytes: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>) -> (
        SelectorType, Int
    )? {
        guard phones || emails, let f = RecordScan.scan(bytes), !f.id.isEmpty, !f.value.isEmpty,
            f.type.count == 5
        else { return nil }
        // The five bytes of the type name as one word: "phone" or "email".
        var word: UInt64 = 0
        for k in f.type { word = word << 8 | UInt64(bytes[k]) }
        let type: SelectorType
        switch word {
        case 0x70_686F_6E65 where phones: type = .phone
        case 0x65_6D61_696C where emails: type = .email
        default: return nil
        }
        if let at = f.observedAt, Timestamp.parse(UnsafeBufferPointer(rebasing: bytes[at])) == nil { return nil }
        guard
            let n = normalizer.key(type, UnsafeBufferPointer(rebasing: bytes[f.value]), hinted: f.regionHint, into: out)
        else { return nil }
        return (type, n)
    }
}
