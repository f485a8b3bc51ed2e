import TriplineJSON
import TriplineMatch
import TriplineRules
import TriplineSelectors

/// The record step: parse → validate → normalise (every type) → match the fixed list → rules and correlation.
enum RecordTarget {
    /// Up to 16 lines (each at most the 64 KiB record limit) through one step, so correlations see several
    /// events. Properties: a line is accepted only when it is a JSON object; every hit is about its line's
    /// selector; the same lines through a fresh step give the same hits.
    static let record = FuzzTarget(name: "record", maxLength: 64 * 1024, timeout: 2) { bytes throws(FuzzFailure) in
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).prefix(16)
        let first = try run(lines)
        let second = try run(lines)
        try FuzzTarget.check(first == second, "record", "the same lines gave other hits through a fresh step")
    }

    static func run(_ lines: ArraySlice<ArraySlice<UInt8>>) throws(FuzzFailure) -> [String] {
        var step = FuzzFixtures.step()
        var out: [String] = []
        for line in lines where line.count <= LineLimits.maxRecord {
            guard
                case .accepted(let sel, let hits) = step.run(line, ingestTime: FuzzFixtures.now, now: FuzzFixtures.now)
            else { continue }
            guard case .object? = try? JSONParser.parse(Array(line)) else {
                throw FuzzFailure(target: "record", message: "accepted a line that is not a JSON object")
            }
            for h in hits {
                try FuzzTarget.check(h.id == sel.id, "record", "a hit names \(h.id), not the record \(sel.id)")
                out.append(JSONWriter.string(.object(h.json)))
            }
        }
        return out
    }
}
