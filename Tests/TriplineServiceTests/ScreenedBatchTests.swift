import Crypto
import Foundation
import Testing
import TriplineService
import TriplineStateSQLite
import TriplineTestSupport

/// The reading thread's screen (issue 17): lines it passed are counted without the step only while its screen is the
/// pipeline's current one; a batch screened before a reload (a list changed in between) is judged line by line.
@Suite("Screened batches", .serialized)
struct ScreenedBatchTests {
    /// `records` as a reading thread hands them over, each marked by the screen in force now.
    static func screened(_ pipeline: Pipeline, _ records: [String], first: Int = 1) -> InputBatch {
        let screen = pipeline.screens.now
        var b = batch(records, first: first)
        for i in b.lines.indices {
            b.lines[i].screened = b.lines[i].bytes.withUnsafeBufferPointer { screen.screen.screen($0) }
        }
        b.screenGeneration = screen.generation
        return b
    }

    @Test("trusted under its own generation; judged again after a submitted list changed the index")
    func staleScreenIsNotTrusted() async throws {
        let d = try Deployment()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        // Screened now: the unlisted number passes the screen, the listed one does not.
        let now = Self.screened(pipeline, [phone("a", "+32470999999"), phone("b", "+32470000001")])
        #expect(now.lines.map(\.screened) == [true, false])
        let first = try await pipeline.process(now, now: t0)
        #expect(first.accepted == 2)
        #expect(try store.alerts(states: nil, limit: 10).count == 1)

        // Screened, then the number is put on a list (a reload of the files): the batch is judged in full.
        let before = Self.screened(pipeline, [phone("c", "+32470999998"), phone("d", "+32470999999")], first: 3)
        #expect(before.lines.map(\.screened) == [true, true])
        let list = d.dir.appendingPathComponent("Watchlists/be-fedpol/l.yaml")
        let text = try String(contentsOf: list, encoding: .utf8)
        try (text + "  - {ref: NEW, selectors: [{type: phone, value: \"+32470999998\"}]}\n")
            .write(to: list, atomically: true, encoding: .utf8)
        #expect(await pipeline.reload(configPath: d.dir.appendingPathComponent("tripline.yaml").path, now: t0))
        #expect(pipeline.screens.now.generation == before.screenGeneration! + 1)
        let second = try await pipeline.process(before, now: t0 + 1)
        #expect(second.accepted == 2)
        let alerts = try store.alerts(states: nil, limit: 10)
        #expect(alerts.count == 2)  // +32470000001 before, +32470999998 now; +32470999999 is on no list
        #expect(try kinds(store)["ingest_batch"] == 2)
    }

    /// HTTP ingest's batches are made as a reading thread makes them: screened and hashed off the actor.
    @Test("an HTTP batch: screened, hashed and numbered as the reading thread's; the same outcome as judged in full")
    func httpBatchIsScreened() async throws {
        let d = try Deployment()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        let oversized = #"{"id":"big","type":"phone","value":""# + String(repeating: "9", count: 70_000) + #""}"#
        let records = [phone("a", "+32470999999"), phone("b", "+32470000001"), "{not json", oversized]
        let lines = records.map { Array($0.utf8) }
        let b = InputBatch.screened(lines[...], firstNumber: 5, source: "http:p", screens: pipeline.screens)
        #expect(b.lines.map(\.screened) == [true, false, false, false])
        #expect(b.lines.map(\.number) == [5, 6, 7, 8])
        #expect(b.lines.map(\.oversized) == [nil, nil, nil, lines[3].count])
        var hash = SHA256()
        for l in lines { hash.update(data: l.count > 65_536 ? Array(l.prefix(512)) : l) }
        #expect(b.digest == Array(hash.finalize()))
        let done = try await pipeline.process(b, now: t0)
        #expect(done.accepted == 2)
        #expect(done.rejected.map(\.line) == [7, 8])
        #expect(try store.alerts(states: nil, limit: 10).map(\.key) == ["wl:be-fedpol/l/E1"])
        // A large request is screened in two parts at once: the same flags as line by line.
        var g = SplitMix64(seed: 29)
        let many = (0..<5_001).map { k -> [UInt8] in
            switch Int.random(in: 0..<4, using: &g) {
            case 0: Array(phone("x\(k)", "+32470000001").utf8)
            case 1: Array("{broken \(k)".utf8)
            default: Array(phone("y\(k)", "+3247\(1_000_000 + k)").utf8)
            }
        }
        let big = InputBatch.screened(many[...], firstNumber: 1, source: "http:p", screens: pipeline.screens)
        let screen = pipeline.screens.now.screen
        #expect(big.lines.map(\.screened) == many.map { l in l.withUnsafeBufferPointer { screen.screen($0) } })
        #expect(big.lines.filter(\.screened).count > 2_000)
    }

    /// A reading thread's batch comes without its digest: the pipeline hashes its buffer in one pass, the same
    /// SHA-256 as the lines' bytes in order (what the `ingest_batch` record commits to).
    @Test("a reading thread's batch is hashed by the pipeline: the ingest record's sha256 is the lines' bytes in order")
    func batchBufferHashedByThePipeline() async throws {
        let d = try Deployment()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        let records = [phone("a", "+32470999999"), phone("b", "+32470000001"), "{not json"]
        var chunk: [UInt8] = []
        var lines: [InputLine] = []
        for (k, r) in records.enumerated() {
            let start = chunk.count
            chunk += Array(r.utf8)
            lines.append(InputLine(bytes: chunk[start..<chunk.count], number: k + 1, end: Int64(chunk.count)))
        }
        // Slices of the finished buffer, as the reading thread hands them over.
        lines = lines.map { InputLine(bytes: chunk[$0.bytes.indices], number: $0.number, end: $0.end) }
        var b = InputBatch(source: "stdin", lines: lines, offset: Int64(chunk.count), lineNumber: 3)
        b.chunk = chunk
        #expect(b.digest == nil)
        _ = try await pipeline.process(b, now: t0)
        let record = try store.events(after: 0, limit: 100).map(\.event).first { $0.kind == "ingest_batch" }
        let want = SHA256.hash(data: Array(records.joined().utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(record?.detail["sha256"] == .string(want))
    }

    /// A reload that comes in while a failed commit waits to be retried: the retry judges the screened lines against
    /// the new lists (they were trusted on the strength of the generation read before the first try).
    @Test("a reload during a commit's backoff: the retry does not trust the old screen")
    func reloadDuringBackoff() async throws {
        let d = try Deployment()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let (pipeline, store) = try d.pipeline()
        let input = Self.screened(pipeline, [phone("a", "+32470999998")])
        #expect(input.lines.map(\.screened) == [true])
        let list = d.dir.appendingPathComponent("Watchlists/be-fedpol/l.yaml")
        let text = try String(contentsOf: list, encoding: .utf8)
        try (text + "  - {ref: NEW, selectors: [{type: phone, value: \"+32470999998\"}]}\n")
            .write(to: list, atomically: true, encoding: .utf8)
        let locker = try DatabaseLocker(d.statePath)
        async let done = pipeline.process(input, now: t0)
        // Tries fail at ~0.1, 0.3, 0.6 and 1.1 s (each waits 0.1 s for the lock), then back off 0.8 s: the lock is let
        // go and the lists reloaded in the middle of that wait.
        try await Task.sleep(nanoseconds: 1_400_000_000)
        locker.release()
        #expect(await pipeline.reload(configPath: d.dir.appendingPathComponent("tripline.yaml").path, now: t0))
        let outcome = try await done
        #expect(outcome.accepted == 1)
        #expect(try store.alerts(states: nil, limit: 10).count == 1)
    }
}
