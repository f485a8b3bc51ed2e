import Foundation
import Testing
import TriplineTestSupport

@testable import TriplineAudit

/// The audit record's time, written digit by digit into one buffer, is the text the padded formatter wrote (the
/// records' bytes are what the tree and the independent verifier hash).
@Suite("Audit record time")
struct EntryTimeTests {
    @Test func sameTextAsThePaddedFormatter() {
        var g = SplitMix64(seed: 41)
        var times: [Double] = [0, -0.0005, -1, 1e-3, 946_684_799.999, 951_782_400, 4_102_444_800, 253_402_300_799.9995]
        for _ in 0..<20_000 { times.append(Double.random(in: -62_135_596_800..<253_402_300_800, using: &g)) }
        for _ in 0..<2_000 { times.append(Double(Int64.random(in: 0..<4_102_444_800_000, using: &g)) / 1000) }
        for t in times {
            let ms = Int64((t * 1000).rounded(.down))
            var secs = time_t(ms / 1000)
            var tm = tm()
            gmtime_r(&secs, &tm)
            #expect(AuditEntry.time(t) == AuditEntry.slowTime(tm, ms), "\(t)")
        }
        #expect(AuditEntry.time(1_893_456_000.123) == "2030-01-01T00:00:00.123Z")
    }
}
