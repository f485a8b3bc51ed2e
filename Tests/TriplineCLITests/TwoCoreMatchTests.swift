import Foundation
import Testing

/// `match --threads 2` (issue 17): the reading thread reads and screens blocks, the calling thread runs the record
/// step, and the output must be byte for byte that of one thread — hits, their order, rejections with their file
/// and line, the exit status — on a stream built to cross every block boundary with something awkward.
@Suite("match on two cores")
struct TwoCoreMatchTests {
    struct Outcome: Equatable {
        var status: Int32
        var stdout: Data
        var rejects: Data
        var stderr: String
    }

    static func match(threads: Int, files: [String], stdin: String? = nil, in dir: URL) throws -> Outcome {
        let p = Process()
        p.executableURL = CLITests.binary
        let rejects = dir.appendingPathComponent("rejects-\(threads).ndjson")
        let out = dir.appendingPathComponent("out-\(threads).ndjson")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        p.arguments =
            ["match", "--now=2030-06-01T00:00:00Z", "--threads", "\(threads)", "--rejects", rejects.path] + files
        p.currentDirectoryURL = CLITests.root
        p.standardOutput = try FileHandle(forWritingTo: out)
        let err = Pipe()
        p.standardError = err
        p.standardInput =
            try stdin.map { try FileHandle(forReadingFrom: URL(fileURLWithPath: $0)) }
            ?? FileHandle.nullDevice
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(
            status: p.terminationStatus, stdout: try Data(contentsOf: out),
            rejects: (try? Data(contentsOf: rejects)) ?? Data(), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Seeded lines: the sample selectors (hits, a correlation), clean misses the screen passes, broken records,
    /// blank and CRLF lines, now and then a line over the 64 KiB limit.
    static func lines(_ count: Int, seed: UInt64) throws -> [String] {
        let samples = try String(
            contentsOf: CLITests.root.appendingPathComponent("Examples/selectors.ndjson"), encoding: .utf8
        ).split(separator: "\n").map(String.init)
        var g = seed
        func next() -> UInt64 {
            g &+= 0x9E37_79B9_7F4A_7C15
            var z = g
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var out: [String] = []
        for k in 0..<count {
            switch next() % 100 {
            case 0..<3: out.append(samples[Int(next() % UInt64(samples.count))])
            case 3..<5: out.append(#"{"id":"bad-\#(k)","type":"phone","value":"not a number"}"#)
            case 5: out.append("")
            case 6: out.append(#"{"id":"crlf-\#(k)","type":"email","value":"x\#(k)@example.org"}"#.appending("\r"))
            case 7: out.append("{broken json \(k)")
            case 8 where next() % 20 == 0:
                out.append(
                    #"{"id":"huge-\#(k)","type":"email","value":""# + String(repeating: "a", count: 70_000) + "\"}")
            case 9..<55:
                out.append(#"{"id":"p\#(k)","type":"phone","value":"+32 470 \#(100_000 + next() % 900_000)"}"#)
            default:
                out.append(#"{"id":"e\#(k)","type":"email","value":"user\#(next() % 1_000_000)@example.org"}"#)
            }
        }
        return out
    }

    @Test func sameOutputAsOneThread() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-two-cores-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Three files (the last without a final newline), ~3.5 blocks each.
        var files: [String] = []
        for f in 0..<3 {
            let text = try Self.lines(15_000, seed: UInt64(f + 1)).joined(separator: "\n") + (f == 2 ? "" : "\n")
            let path = dir.appendingPathComponent("in-\(f).ndjson").path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            files.append(path)
        }
        let one = try Self.match(threads: 1, files: files, in: dir)
        let two = try Self.match(threads: 2, files: files, in: dir)
        #expect(one.status == 1, "rejections make the status 1: \(one.stderr)")
        #expect(one.stdout.count > 10_000 && one.rejects.count > 10_000)
        #expect(two == one)
        // Standard input, one file's worth.
        let a = try Self.match(threads: 1, files: [], stdin: files[0], in: dir)
        let b = try Self.match(threads: 2, files: [], stdin: files[0], in: dir)
        #expect(b == a)
        #expect(a.stdout.count > 1_000)
        // A file that cannot be opened, between two that can: the first one's hits, then the error, on both.
        let missing = dir.appendingPathComponent("missing.ndjson").path
        let c = try Self.match(threads: 1, files: [files[0], missing, files[1]], in: dir)
        let d = try Self.match(threads: 2, files: [files[0], missing, files[1]], in: dir)
        #expect(c.status == 2 && c.stderr.contains("missing.ndjson"))
        #expect(d == c)
        #expect(c.stdout == a.stdout)
    }
}
