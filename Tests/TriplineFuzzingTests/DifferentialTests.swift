import Crypto
import Foundation
import Testing
import TriplineAudit
import TriplineFuzzing
import TriplineJSON
import TriplineTestSupport

/// Writes inputs to a scratch directory, one file each, in order; returns their paths.
func writeInputs(_ inputs: [[UInt8]], tag: String) throws -> (URL, [String]) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    var paths: [String] = []
    for (i, b) in inputs.enumerated() {
        let p = dir.appendingPathComponent(String(format: "%05d", i)).path
        try Data(b).write(to: URL(fileURLWithPath: p))
        paths.append(p)
    }
    return (dir, paths)
}

/// Runs a command, `stdin` fed to it; its standard output's lines.
func runLines(_ arguments: [String], stdin: String = "", environment: [String: String] = [:]) throws -> [String] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe()
    let inp = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardInput = inp
    p.standardError = err
    try p.run()
    inp.fileHandleForWriting.write(Data(stdin.utf8))
    try inp.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw TestFailure("\(arguments.joined(separator: " ")) exited \(p.terminationStatus): \(errText)")
    }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
}

/// Byte-level mutations of seeds, with tokens of the format spliced in: what a fuzzer would try first.
func mutations(of seeds: [[UInt8]], tokens: [String], count: Int, seed: UInt64) -> [[UInt8]] {
    var rng = SplitMix64(seed: seed)
    var out: [[UInt8]] = []
    for _ in 0..<count {
        var b = seeds[Int(rng.next() % UInt64(seeds.count))]
        for _ in 0..<(1 + Int(rng.next() % 3)) {
            let at = b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count + 1))
            switch rng.next() % 5 {
            case 0 where at < b.count: b.remove(at: at)
            case 1: b.insert(contentsOf: Array(tokens[Int(rng.next() % UInt64(tokens.count))].utf8), at: at)
            case 2 where at < b.count: b[at] = UInt8(truncatingIfNeeded: rng.next())
            case 3 where at < b.count:
                let end = min(b.count, at + 1 + Int(rng.next() % 8))
                b.insert(contentsOf: b[at..<end], at: at)
            default: b.insert(UInt8(truncatingIfNeeded: rng.next() % 128), at: at)
            }
        }
        out.append(b)
    }
    return out
}

@Suite("Fuzz differentials")
struct DifferentialTests {
    static let root = FuzzReplayTests.root

    /// Tripline's JSON parser accepts exactly what Python's json accepts (made strict: no NaN or Infinity, no
    /// duplicate names, no lone surrogates, nesting to 64) on valid UTF-8, over the JSON and record corpora and
    /// 4,000 seeded mutations of them; what is not UTF-8 it refuses.
    @Test func jsonParserAgreesWithPython() throws {
        var seeds =
            (FuzzReplayTests.inputs("Corpus", "json") + FuzzReplayTests.inputs("Regressions", "json")
            + FuzzReplayTests.inputs("Corpus", "record")).map(\.1)
        seeds = seeds.filter { $0.count <= 8192 }
        let tokens = [
            "{", "}", "[", "]", ":", ",", "\"", "\\", "\\u", "\\ud800", "\\udc00", "\\ud83d\\ude00", "true", "null",
            "NaN", "Infinity", "-", "0", "1e5", ".", "E", "+", " ", "\t", "\r", "\n", "\u{0B}", "\u{FEFF}", "\u{7F}",
            "\"a\":1,", "\u{00E9}", "0x", "'",
        ]
        let inputs = seeds + mutations(of: seeds, tokens: tokens, count: 4000, seed: 16)
        let (dir, paths) = try writeInputs(inputs, tag: "json-diff")
        defer { try? FileManager.default.removeItem(at: dir) }
        let verdicts = try runLines(
            ["python3", Self.root.appendingPathComponent("scripts/json_oracle.py").path],
            stdin: paths.joined(separator: "\n"))
        try #require(verdicts.count == inputs.count)
        var compared = 0
        var accepted = 0
        for (i, input) in inputs.enumerated() {
            let ours = (try? JSONParser.parse(input)) != nil
            if verdicts[i] == "skip" {
                #expect(!ours, "accepted input that is not UTF-8: \(input)")
                continue
            }
            compared += 1
            if ours { accepted += 1 }
            #expect(
                ours == (verdicts[i] == "ok"),
                "input \(i) \(String(decoding: input.prefix(200), as: UTF8.self).debugDescription): Tripline \(ours ? "accepts" : "rejects"), Python: \(verdicts[i])"
            )
        }
        // Both verdicts occur in numbers, or the comparison would prove little.
        #expect(
            compared > 3000 && accepted > 300 && compared - accepted > 1000,
            "\(compared) compared, \(accepted) accepted")
    }

    /// Variants of a signed note that keep its signature good or make only the signature block odd: what the
    /// fuzzer cannot reach by mutation, since it cannot sign.
    static func noteVariants() throws -> [[UInt8]] {
        let signer = FuzzFixtures.signer
        let body = "fuzz.tripline.example/log\n7\n" + Data(count: 32).base64EncodedString() + "\n"
        let good = try signer.sign(body)
        let sigLine = String(good.split(separator: "\n").last!)
        var rng = SplitMix64(seed: 6962)
        // Well-formed lines (this key's signature; other keys', which are passed over; non-canonical final bits,
        // which base64.StdEncoding reads) and odd ones.
        let wellFormed = [
            sigLine, "— other.example/log AAAAAQ==", "— other.example/log AAAAAR==",
            "— fuzz.tripline.example/log AAAAAQ==", "— ÿ.example AAAAAAAA",
        ]
        let odd = [
            "— other.example/log AAAA", "— other.example/log AAAAAQ", "— other.example/log", "— other.example/log ",
            "—  other.example/log AAAAAQ==", "— other.example/log  AAAAAQ==", "— bad+name AAAAAQ==",
            "— bad name AAAAAQ==", "-- x AAAAAQ==", "", "— other.example/log AAAAAQ==\r", "— x\u{A0}y AAAAAQ==",
            "— other.example/log AA==AAAA", sigLine + "=", sigLine.replacingOccurrences(of: "=", with: ""),
            sigLine.replacingOccurrences(of: "— ", with: "—\u{2009}"),
        ]
        var out: [[UInt8]] = [Array(good.utf8)]
        for _ in 0..<300 {
            let n = Int(rng.next() % 4)
            var lines = (0..<n).map { _ in
                rng.next() % 10 < 8
                    ? wellFormed[Int(rng.next() % UInt64(wellFormed.count))] : odd[Int(rng.next() % UInt64(odd.count))]
            }
            if rng.next() % 10 < 9 { lines.insert(sigLine, at: Int(rng.next() % UInt64(n + 1))) }
            var text = body + "\n" + lines.joined(separator: "\n")
            if rng.next() % 8 != 0 { text += "\n" }
            out.append(Array(text.utf8))
        }
        // Texts with characters a note may not hold, signed properly.
        for bad in ["\t", "\r", "\u{0B}", "\u{7F}", "\u{85}", "\u{2028}", "\u{FEFF}", "\0"] {
            let t = body.replacingOccurrences(of: "/log", with: "/l\(bad)og")
            if let n = try? signer.sign(t) { out.append(Array(n.utf8)) }
        }
        // Not UTF-8 in the text or the signature block; 100 and 101 signatures.
        out.append(Array(good.utf8) + [0xFF, 0x0A])
        out.append(Array(body.utf8) + [0xC3, 0x28, 0x0A] + Array(good.utf8.dropFirst(body.utf8.count)))
        let other = "— other.example/log AAAAAQ==\n"
        out.append(Array((good + String(repeating: other, count: 99)).utf8))
        out.append(Array((good + String(repeating: other, count: 100)).utf8))
        out.append(Array((body + "\n" + String(repeating: other, count: 2)).utf8))
        return out
    }

    /// The note parser accepts exactly what golang.org/x/mod/sumdb/note accepts, with the fuzz key known: on the
    /// note corpus, 300 signature-block variants, signed texts with forbidden characters, and 2,000 mutations.
    @Test func noteParserAgreesWithGo() throws {
        let seeds = (FuzzReplayTests.inputs("Corpus", "note") + FuzzReplayTests.inputs("Regressions", "note")).map(\.1)
        let variants = try Self.noteVariants()
        let inputs =
            seeds + variants
            + mutations(of: seeds + variants, tokens: ["\n", "\n\n", "— ", " ", "=", "+", "\r"], count: 2000, seed: 1)
        let accepted = try Self.compareWithGo(inputs, FuzzFixtures.signer.verifier)
        #expect(accepted > 50 && inputs.count - accepted > 500, "\(accepted) of \(inputs.count) accepted")
    }

    /// Names judged per Unicode scalar and compared byte for byte, as Go does: a key named `café`, signature lines
    /// naming it decomposed, and other keys' names hiding '+' or a space behind a combining or prepended mark.
    @Test func noteNamesAgreeWithGo() throws {
        let seed = (0..<32).map { UInt8(($0 * 11 + 5) & 0xFF) }
        let signer = try NoteSigner(name: "café", key: Curve25519.Signing.PrivateKey(rawRepresentation: seed))
        let good = try signer.sign("café.example/log\n1\n" + Data(count: 32).base64EncodedString() + "\n")
        let sig = String(good.split(separator: "\n").last!)
        let body = String(good.dropLast(sig.count + 1))
        var inputs = [Array(good.utf8)]
        for line in [
            sig.replacingOccurrences(of: "café", with: "cafe\u{301}"), "— o+\u{301} AAAAAAAA", "— o\u{600}+ AAAAAAAA",
            "— o\u{600}\u{3000}x AAAAAAAA", "— o\u{301} AAAAAAAA", "— \u{85}o AAAAAAAA",
        ] {
            inputs.append(Array((body + line + "\n" + sig + "\n").utf8))
            inputs.append(Array((body + line + "\n").utf8))
        }
        let accepted = try Self.compareWithGo(inputs, signer.verifier)
        #expect(accepted == 3)
    }

    /// Each input opened by Tripline and by x/mod's note.Open with `verifier` known; every verdict must agree.
    /// Returns how many Tripline accepted.
    static func compareWithGo(_ inputs: [[UInt8]], _ verifier: NoteVerifier) throws -> Int {
        let (dir, paths) = try writeInputs(inputs, tag: "note-diff")
        defer { try? FileManager.default.removeItem(at: dir) }
        let verdicts = try runLines(
            ["go", "run", root.appendingPathComponent("scripts/notecheck.go").path, verifier.text] + paths,
            environment: [
                "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
                "GOCACHE": FileManager.default.temporaryDirectory.appendingPathComponent("tripline-gocache").path,
            ])
        try #require(verdicts.count == inputs.count)
        var accepted = 0
        for (i, input) in inputs.enumerated() {
            let ours = Result { () throws(AuditError) -> String in try verifier.open(bytes: input) }
            let goOK = verdicts[i] == "ok"
            if case .success = ours { accepted += 1 }
            let oursText: String
            switch ours {
            case .success: oursText = "accepts"
            case .failure(let e): oursText = "rejects (\(e))"
            }
            #expect(
                ((try? ours.get()) != nil) == goOK,
                "note \(i) \(String(decoding: input, as: UTF8.self).debugDescription): Tripline \(oursText), Go: \(verdicts[i])"
            )
        }
        return accepted
    }
}
