import Foundation
import Testing
import TriplineFuzzing

/// Every fuzz target over its seed corpus and its regressions (Fuzz/Corpus, Fuzz/Regressions): what the fuzzer once
/// found stays fixed, and the properties hold on every seed.
@Suite("Fuzz corpus replay")
struct FuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

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

    @Test func everyTargetHasASeedCorpusAndADictionaryOrAReason() {
        let dirs = Set(
            ((try? FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Fuzz/Corpus").path))
                ?? []))
        #expect(dirs == Set(FuzzTargets.all.map(\.name)))
        for t in FuzzTargets.all {
            #expect(Self.inputs("Corpus", t.name).count >= 3, "target \(t.name) has too few seeds")
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func replay(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let all = Self.inputs("Corpus", name) + Self.inputs("Regressions", name)
        #expect(!all.isEmpty)
        for (file, bytes) in all where bytes.count <= target.maxLength {
            #expect(throws: Never.self, "\(file)") { try target.run(bytes) }
        }
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
