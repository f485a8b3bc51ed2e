import Foundation
import Testing
import TriplineTestSupport

/// `make run`'s story (scripts/demo.py) on the samples, with the binary under test: it must keep telling the truth
/// as the product changes.
@Suite("make run")
struct DemoTests {
    @Test("the samples' story: a list submitted over HTTP, the stream, 41 alerts with who was told, a checkpoint")
    func story() throws {
        let dir = scratchDirectory("demo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", CLITests.root.appendingPathComponent("scripts/demo.py").path, CLITests.binary.path]
        p.environment = ProcessInfo.processInfo.environment.merging(["TRIPLINE_DEMO_DIR": dir.path]) { $1 }
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(errors)")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("   201 Created: version 76a9c208a58cf748…, 2 entries"))
        #expect(
            lines.contains(
                "4. The extraction workstation posts Examples/selectors.ndjson: 34 selectors accepted, 0 rejected"))
        #expect(lines.filter { $0.hasPrefix("   #") }.count == 41)
        // The submitted list's hit is shown in full to the operating agency (releasable to it), told to its owner.
        #expect(
            lines.contains {
                $0.hasPrefix("   #12 high nl-nctv/returnees-2026 NL-RT-0031")
                    && $0.hasSuffix("→ nl-nctv@nl-oncall, ops@ops-oncall") && $0.contains("phone +31612345678")
            })
        // A partner's restricted list: neither its name nor the value reaches the operating agency's view.
        #expect(lines.contains { $0.hasPrefix("   #1  crit be-fedpol (restricted)") && $0.contains("(ask be-fedpol)") })
        #expect(!text.contains("returning-fighters") && !text.contains("+32470123456"))
        // The checkpoint: origin, tree size, root hash, a signature line.
        let note = lines.drop { !$0.hasPrefix("6. ") }.dropFirst()
        #expect(note.first == "   demo.tripline.example/audit")
        #expect(note.dropFirst().first.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0 > 50)
        #expect(note.contains { $0.hasPrefix("   — demo.tripline.example/audit ") })
    }
}
