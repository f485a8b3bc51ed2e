import Foundation
import Testing
import TriplineAudit
import TriplineJSON
import TriplineOperations
import TriplineState
import TriplineStores
import TriplineTestSupport

/// The API's audit records written together (`AuditBatcher`), on a real SQLite file: every record of every
/// concurrent request durable before its answer, each once, and a request whose records cannot be written fails.
@Suite("Audit batcher", .serialized)
struct AuditBatcherTests {
    static func event(_ n: Int) -> EventDraft {
        EventDraft(
            at: 1_800_000_000, kind: "consultation", principal: "p-\(n % 7)", reason: "batch test",
            detail: JSONObject([("n", .number(String(n)))]))
    }

    /// The `n` details of the records in the log, in log order.
    static func logged(_ store: any DurableStore) throws -> [Int] {
        try store.auditLog().entries.compactMap {
            guard let p = $0.payload, let o = try? JSONParser.parse(p).objectValue,
                case .number(let n)? = o["detail"]?.objectValue?["n"]
            else { return nil }
            return Int(n)
        }
    }

    @Test("400 concurrent requests, 1 to 3 records each: every record once, durable when its request answers")
    func concurrentRequests() async throws {
        let dir = scratchDirectory("batcher")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try StateStores.open(dir.appendingPathComponent("state.sqlite").path)
        let batcher = AuditBatcher(store: store)
        let reader = try StateStores.open(dir.appendingPathComponent("state.sqlite").path)
        let seen = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for r in 0..<400 {
                group.addTask {
                    let mine = (0..<(1 + r % 3)).map { r * 10 + $0 }
                    try await batcher.collecting {
                        for n in mine { batcher.record(Self.event(n)) }
                    }
                    // Answered: its records are in the log already.
                    let log = Set(try Self.logged(reader))
                    return (r, mine.allSatisfy(log.contains))
                }
            }
            var out: [Int: Bool] = [:]
            for try await (r, ok) in group { out[r] = ok }
            return out
        }
        #expect(seen.count == 400)
        #expect(seen.values.allSatisfy { $0 })
        let all = try Self.logged(store)
        let expected: Int = (0..<400).map { 1 + $0 % 3 }.reduce(0, +)
        #expect(all.count == expected)
        #expect(Set(all).count == all.count)
        // Within a request, its records keep their order.
        for r in 0..<400 {
            let mine = all.filter { $0 / 10 == r }
            #expect(mine == mine.sorted())
        }
        var verifier = AuditVerifier(vkey: nil, origin: nil)
        if case .failure(let f) = verifier.verify(try store.auditLog()) {
            Issue.record("the log does not verify: \(f)")
        }
    }

    @Test("a database that stays locked: the request fails (no answer without its record); later ones go through")
    func lockedDatabase() async throws {
        let dir = scratchDirectory("batcher-locked")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.sqlite").path
        let store = try StateStores.open(path, busyTimeout: 0.2)
        let batcher = AuditBatcher(store: store)
        let locker = try DatabaseLocker(path)
        await #expect(throws: OperationError.self) { () async throws -> Void in
            try await batcher.collecting { batcher.record(Self.event(1)) }
        }
        locker.release()
        let answer = try await batcher.collecting { () -> String in
            batcher.record(Self.event(2))
            return "answered"
        }
        #expect(answer == "answered")
        #expect(try Self.logged(store) == [2])
    }
}
