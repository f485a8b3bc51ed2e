import Foundation
import Testing
import TriplineJSON

/// End-to-end tests of the built `tripline` binary on the samples, as a user runs it.
@Suite("tripline command line")
struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var binary: URL {
        // The test bundle sits beside the products of the same build.
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [beside, beside.deletingLastPathComponent(), root.appendingPathComponent(".build/debug")] {
            let b = dir.appendingPathComponent("tripline")
            if FileManager.default.isExecutableFile(atPath: b.path) { return b }
        }
        return root.appendingPathComponent(".build/debug/tripline")
    }

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
        var lines: [JSONObject] {
            stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)).objectValue }
        }
    }

    static func run(_ args: [String], stdin: String? = nil, cwd: URL = root) throws -> Run {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = cwd
        let out = Pipe()
        let err = Pipe()
        let inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(
            status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }

    let now = "--now=2030-06-01T00:00:00Z"

    @Test("check passes on the samples and warns about the expired entry")
    func checkSamples() throws {
        let r = try Self.run(["check", now])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            r.stderr.contains("Watchlists/fr-dgsi/known-contacts.yaml:")
                && r.stderr.contains("warning: the entry at line 24 expired"), "\(r.stderr)")
        #expect(!r.stderr.contains("FR-KC-0023"))  // no entry ref of a partner's list in the operator's output
    }

    @Test("match on the sample stream: hits with the SPEC §9 fields, expired entries silent")
    func matchSamples() throws {
        let r = try Self.run(["match", now, "Examples/selectors.ndjson"])
        #expect(r.status == 0, "\(r.stderr)")
        let hits = r.lines
        #expect(hits.count >= 15)
        let byID = Dictionary(grouping: hits) { $0["id"]!.stringValue! }
        // Belgian SIM, national format, read with the SIM's region first.
        let c17 = try #require(byID["mosul-0042-c17"]?.first)
        #expect(c17["kind"] == "watchlist")
        #expect(c17["priority"] == "critical")
        let w = try #require(c17["watchlist"]?.objectValue)
        #expect(w["owner"] == "be-fedpol")
        #expect(w["list"] == "returning-fighters")
        #expect(w["ref"] == "BE-RF-0001")
        #expect(w["label"] == "Returning fighter, Molenbeek network")
        #expect(w["version"]?.stringValue?.count == 64)
        #expect(w["handling"]?[path: "tlp"] == "amber")
        #expect(w["score"] == .number("1.0"))
        #expect(c17["selector"]?[path: "value"] == "+32470123456")
        #expect(c17["selector"]?[path: "source.item"] == "MOSUL-PHONE-0042")
        // Brussels landline: prefix hit on BE-RF-0107.
        #expect(byID["mosul-0042-c18"]?.contains { $0["watchlist"]?[path: "ref"] == "BE-RF-0107" } == true)
        // Mosul landline: the NL prefix list.
        #expect(byID["mosul-0042-c22"]?.first?["watchlist"]?[path: "ref"] == "NL-PX-0001")
        // IPv6 inside a watched /48 and an IPv4 inside a /24.
        #expect(byID["raqqa-0007-ip2"]?.first?["watchlist"]?[path: "ref"] == "NL-PX-0004")
        #expect(byID["raqqa-0007-ip1"]?.first?["watchlist"]?[path: "ref"] == "BE-RF-0107")
        // Name through its alias, e-mail case-folded, IMEI punctuated.
        #expect(byID["mosul-0042-n1"]?.first?["watchlist"]?[path: "via"] == "alias")
        // The Arabic-script contact: each aligned term says how it met the listed one (issue 19, item 4).
        let n2 = try #require(byID["mosul-0042-n2"]?.first?["watchlist"]?[path: "alignment"]?.arrayValue)
        #expect(
            n2.compactMap { $0.objectValue?["how"]?.stringValue }
                == Array(repeating: "transliteration", count: n2.count)
                && !n2.isEmpty, "\(n2)")
        #expect(byID["mosul-0042-e1"] != nil)
        #expect(byID["mosul-0042-i1"] != nil)
        // FR-KC-0023 expired in 2030-01: its number is not a hit.
        #expect(byID["mosul-0051-c4"] == nil)
        // Unwatched numbers give no output.
        #expect(byID["raqqa-0007-c2"] == nil)
    }

    @Test("a list past its review date stops matching")
    func reviewDate() throws {
        let r = try Self.run(["match", "--now=2031-02-01T00:00:00Z", "Examples/selectors.ndjson"])
        #expect(r.status == 0)
        #expect(!r.lines.contains { $0["watchlist"]?[path: "owner"] == "nl-nctv" })
        #expect(r.lines.contains { $0["watchlist"]?[path: "owner"] == "fr-dgsi" })
    }

    @Test("bad lines: one error each with line and id, the stream goes on, exit 1")
    func badLines() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rejects = dir.appendingPathComponent("rejects.ndjson").path
        let r = try Self.run(["normalize", "--rejects", rejects, "Examples/bad-selectors.ndjson"])
        #expect(r.status == 1)
        #expect(r.lines.map { $0["id"]!.stringValue! } == ["bad-01", "bad-17"])
        let errs = try String(contentsOfFile: rejects, encoding: .utf8).split(separator: "\n").map {
            try JSONParser.parse(String($0)).objectValue!
        }
        let input = try Data(contentsOf: Self.root.appendingPathComponent("Examples/bad-selectors.ndjson"))
        let total = input.split(separator: 0x0A).filter { !$0.isEmpty }.count
        #expect(errs.count == total - 2)
        #expect(errs.allSatisfy { $0["line"] != nil && $0["error"]?.stringValue?.isEmpty == false })
        #expect(errs.first { $0["id"] == "bad-03" }?["error"]?.stringValue?.contains("unknown type \"fax\"") == true)
        let truncated = errs.first { $0["line"] == .number("2") }
        #expect(truncated?["error"]?.stringValue?.hasPrefix("invalid JSON") == true)
        #expect(truncated?["id"] == "bad-02", "the id of a broken line is still named when it can be read")
        #expect(errs.contains { $0["error"]?.stringValue?.contains("64 KiB") == true })
        #expect(errs.contains { $0["error"]?.stringValue?.contains("invalid UTF-8") == true })
    }

    @Test("standard input in, region flag for numbers without hints")
    func stdinRegion() throws {
        let r = try Self.run(
            ["normalize", "--region", "fr"], stdin: #"{"id":"1","type":"phone","value":"06 12 34 56 78"}"# + "\n")
        #expect(r.status == 0)
        #expect(r.lines.first?["value"] == "+33612345678")
        let bad = try Self.run(["normalize", "--region", "XX"], stdin: "")
        #expect(bad.status == 64)
    }

    @Test("a broken watchlist: check lists file:line:col, match exits 1 before reading input")
    func brokenWatchlist() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        let wl = dir.appendingPathComponent("Watchlists/be-fedpol")
        try FileManager.default.createDirectory(at: wl, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
        watchlist: broken
        owner: be-fedpol
        review_by: 2031-01-01
        entries:
          - ref: A
            selectors: [{type: phone, value: "+32 470 12 34 56"}]
          - ref: A
            selectors: [{type: telex, value: "1"}]
        """.write(to: wl.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
        let c = try Self.run(["check", now], cwd: dir)
        #expect(c.status == 1)
        #expect(
            c.stderr.contains(
                "Watchlists/be-fedpol/broken.yaml:7:10: duplicate ref: the entry at line 5 has the same ref"),
            "\(c.stderr)")
        #expect(c.stderr.contains("Watchlists/be-fedpol/broken.yaml:8:24: unknown selector type (expected one of"))
        let m = try Self.run(
            ["match", now], stdin: #"{"id":"1","type":"phone","value":"+32470123456"}"# + "\n", cwd: dir)
        #expect(m.status == 1)
        #expect(m.stdout.isEmpty)
    }

    @Test("configuration: paths relative to the file, default region, errors with file:line:col")
    func config() throws {
        let r = try Self.run(
            ["normalize", "--config", "Examples/tripline.yaml"],
            stdin: #"{"id":"1","type":"phone","value":"02 456 12 34"}"# + "\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines.first?["area"] == "Brussels")
        let c = try Self.run(["check", "--config", "Examples/tripline.yaml", now])
        #expect(c.status == 0, "\(c.stderr)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("tripline.yaml")
        try "rules: Rules\nwatchlist: Watchlists\n".write(to: bad, atomically: true, encoding: .utf8)
        let e = try Self.run(["check", "--config", bad.path, now])
        #expect(e.status == 1)
        #expect(e.stderr.contains("\(bad.path):2:1: unknown configuration key \"watchlist\""))
    }
}
