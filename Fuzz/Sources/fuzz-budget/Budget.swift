import CAllocationCounter
import Foundation
import TriplineFuzzing

/// The record step's budget (issue 16): no record of up to 64 KiB may take more than 10 ms or 10 MB of heap.
/// Replays every line of the corpus directories given, and records built to be expensive, through the record
/// step (release build, no sanitizers); prints the worst, and exits 1 when a record is over.
///   fuzz-budget [--ms 10] [--mb 10] DIR...
@main
struct Budget {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        var limitMs = 10.0
        var limitMB = 10.0
        func option(_ flag: String) -> Double? {
            guard let i = args.firstIndex(of: flag), i + 1 < args.count, let v = Double(args[i + 1]) else { return nil }
            args.removeSubrange(i...(i + 1))
            return v
        }
        limitMs = option("--ms") ?? limitMs
        limitMB = option("--mb") ?? limitMB

        var records: [(String, [UInt8])] = []
        for dir in args {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            for f in files {
                guard let data = FileManager.default.contents(atPath: dir + "/" + f) else { continue }
                for (n, line) in [UInt8](data).split(separator: 0x0A).enumerated() where line.count <= 64 * 1024 {
                    records.append(("\(dir)/\(f):\(n + 1)", Array(line)))
                }
            }
        }
        records += ExpensiveRecords.all

        var step = RecordBudget()
        // One unmeasured pass first: tables built on first use (numbering plans, name variants) are the
        // process's cost, not a record's.
        for (_, bytes) in records { _ = step.measure(bytes) }
        var worstTime = (0.0, "")
        var worstHeap = (0, "")
        var over: [String] = []
        for (name, bytes) in records {
            var times: [Double] = []
            var heap = 0
            for _ in 0..<3 {
                let (t, h) = step.measure(bytes)
                times.append(t)
                heap = max(heap, h)
            }
            let t = times.sorted()[1]
            if t > worstTime.0 { worstTime = (t, name) }
            if heap > worstHeap.0 { worstHeap = (heap, name) }
            if t * 1000 > limitMs || Double(heap) > limitMB * 1_048_576 {
                over.append(String(format: "%@: %.2f ms, %.2f MB", name, t * 1000, Double(heap) / 1_048_576))
            }
        }
        print(
            String(
                format:
                    "fuzz-budget: %d records (%d built to be expensive); slowest %.3f ms (%@); most heap %.2f MB (%@)",
                records.count, ExpensiveRecords.all.count, worstTime.0 * 1000, worstTime.1,
                Double(worstHeap.0) / 1_048_576, worstHeap.1))
        for o in over { print("over budget (\(limitMs) ms, \(limitMB) MB): \(o)") }
        exit(over.isEmpty ? 0 : 1)
    }
}

/// One record through the record step, fresh correlation state each time: its wall time and the most heap it
/// had live at once beyond what was live before.
struct RecordBudget {
    mutating func measure(_ bytes: [UInt8]) -> (Double, Int) {
        var step = FuzzFixtures.step()
        let base = tripline_alloc_live()
        tripline_alloc_reset_peak()
        let start = DispatchTime.now().uptimeNanoseconds
        _ = step.run(bytes[...], ingestTime: FuzzFixtures.now, now: FuzzFixtures.now)
        let t = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (t, Int(tripline_alloc_peak() - base))
    }
}
