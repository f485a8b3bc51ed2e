import Foundation
import Testing
import TriplineFuzzing
import TriplineFuzzingHTTP

/// Every fuzz target over its seed corpus and its regressions (Fuzz/Corpus, Fuzz/Regressions): what the fuzzer once
/// found stays fixed, and the properties hold on every seed.
@Suite("Fuzz corpus replay")
struct FuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Every target: the parsers' and the HTTP API's.
    static let targets = FuzzTargets.all + [HTTPFuzzTarget.target]

    static func inputs(_ kind: String, _ target: String) -> [(String, [UInt8])] {
        let dir = root.appendingPathComponent("Fuzz/\(kind)/\(target)")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter {
            !$0.hasPrefix(".")
        }.sorted()
        return names.compactMap { n in
            FileManager.default.contents(atPath: dir.appendingPathComponent(n).path).map {
                ("\(kind)/\(target)/\(n)", [UInt8]($0))
            }
        }
    }

    @Test func everyTargetHasASeedCorpus() {
        let dirs = Set(
            ((try? FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Fuzz/Corpus").path))
                ?? []))
        #expect(dirs == Set(Self.targets.map(\.name)))
        #expect(Self.targets.count == 16)
        for t in Self.targets {
            #expect(Self.inputs("Corpus", t.name).count >= 3, "target \(t.name) has too few seeds")
        }
    }

    @Test(arguments: FuzzReplayTests.targets.map(\.name))
    func replay(_ name: String) async throws {
        let target = try #require(Self.targets.first { $0.name == name })
        let all = Self.inputs("Corpus", name) + Self.inputs("Regressions", name)
        #expect(!all.isEmpty)
        // On a thread of its own: the HTTP target waits for the router, which needs the concurrency pool.
        let failures = await offPool {
            all.filter { $0.1.count <= target.maxLength }.compactMap { (file, bytes) -> String? in
                do {
                    try target.run(bytes)
                    return nil
                } catch { return "\(file): \(error)" }
            }
        }
        #expect(failures == [])
    }

    /// The seeds signed under the fixed key are what `FuzzSeeds` computes (`TRIPLINE_WRITE_SEEDS=1` rewrites them).
    @Test func computedSeedsAreCurrent() throws {
        let write = ProcessInfo.processInfo.environment["TRIPLINE_WRITE_SEEDS"] == "1"
        for (target, files) in FuzzSeeds.computed() {
            for (name, bytes) in files {
                let url = Self.root.appendingPathComponent("Fuzz/Corpus/\(target)/\(name)")
                if write {
                    try FileManager.default.createDirectory(
                        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Data(bytes).write(to: url)
                }
                #expect(FileManager.default.contents(atPath: url.path).map { [UInt8]($0) } == bytes, "\(url.path)")
            }
        }
    }

    /// Records built to be expensive go through the step (their cost is `fuzz-budget`'s, in a release build).
    @Test func expensiveRecordsAreHandled() throws {
        let target = try #require(FuzzTargets.named("record"))
        #expect(ExpensiveRecords.all.count == 31)
        for (name, bytes) in ExpensiveRecords.all {
            #expect(bytes.count <= 64 * 1024, "\(name)")
            #expect(throws: Never.self, "\(name)") { try target.run(bytes) }
        }
    }
}

/// Runs `body` on a thread outside the cooperative pool (a fuzz target blocks its thread while the API answers).
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// The HTTP target reaches the routes it is meant to fuzz: its seeds are answered as the API answers them, so a
/// fuzzed input that keeps their shape exercises authentication, the policy and the routes, not only a 404.
@Suite("HTTP fuzz target")
struct HTTPFuzzTargetTests {
    func request(_ method: UInt8, _ who: UInt8, _ head: String, _ body: String = "") -> [UInt8] {
        [method, who] + Array(head.utf8) + [0x0A, 0x0A] + Array(body.utf8)
    }

    func answer(_ bytes: [UInt8]) async -> (status: Int, body: String)? {
        await offPool { HTTPFuzzTarget.answer(bytes) }
    }

    @Test func seedsReachTheRoutes() async throws {
        // GET as partner-fr (3) sees fr-dgsi's list and its canary; for partner-be (5) it does not exist.
        let own = try #require(await answer(request(0, 3, "/v1/watchlists/fr-dgsi/contacts")))
        #expect(own.status == 200)
        #expect(own.body.contains("CANARY-FR-7Q2X"))
        let other = try #require(await answer(request(0, 5, "/v1/watchlists/fr-dgsi/contacts")))
        #expect(other.status == 404)
        #expect(!other.body.contains("CANARY"))
        // No credential and a forged one: the same 401.
        let none = try #require(await answer(request(0, 0, "/v1/alerts")))
        let forged = try #require(await answer(request(0, 1, "/v1/alerts")))
        #expect(none.status == 401 && forged.status == 401 && none.body == forged.body)
        // An analyst cannot submit a list (403), the auditor reads the audit log (200).
        let submit = try #require(
            await answer(request(2, 2, "/v1/watchlists/fr-dgsi/contacts", "watchlist: contacts\n")))
        #expect(submit.status == 403)
        let audit = try #require(await answer(request(0, 6, "/v1/audit/records?limit=2")))
        #expect(audit.status == 200)
    }
}
