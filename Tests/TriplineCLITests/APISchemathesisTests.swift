import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// Schemathesis (PyPI, pinned in scripts/requirements-peers.txt) against the document the server serves, on the
/// real `serve` of the authorisation deployment (an alert, a silence, a dead letter, the operator's list): examples,
/// coverage and fuzzing phases, a bounded number of cases per operation, as four principals (admin, auditor, a
/// partner, an analyst) so that each route is reached past its refusal by someone. No 5xx, and every answer conforms
/// to the document: its status, content type, headers and body schema.
extension APITests {
    static let schemathesisChecks = [
        "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
        "response_schema_conformance",
    ]

    /// Whether the peer is installed (`scripts/setup.sh --peers`); under CI=true the test runs regardless, and a
    /// missing peer fails it.
    static var schemathesisInstalled: Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import schemathesis"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    @Test(
        "schemathesis against the served document: no 5xx, every answer as documented",
        .enabled(if: inCI || schemathesisInstalled, "schemathesis is not installed (scripts/setup.sh --peers)"))
    func schemathesis() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        // No request budget in the way of the fuzzer (429 is documented, and tested on its own).
        let server = try Server(dir: dir, http: ", rate_limit: 100000, rate_burst: 100000")
        let runs = ["admin", "auditor", "partner-be", "analyst-be"]
        for p in runs { try server.issue(p) }
        try server.start()
        defer { server.stop() }
        // The document served is the one in the repository.
        let served = try server.call("GET", "/v1/openapi.json", as: "admin")
        #expect(served.body == Array(try Data(contentsOf: Self.documentPath)))

        var environment = ProcessInfo.processInfo.environment
        environment["SCHEMATHESIS_HOOKS"] = "schemathesis_hooks"  // the NDJSON body serializer
        environment["PYTHONPATH"] = repositoryRoot.appendingPathComponent("scripts").path
        environment["NO_COLOR"] = "1"
        for who in runs {
            let out = dir.appendingPathComponent("schemathesis-\(who).log")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments =
                [
                    "python3", "-m", "schemathesis.cli", "run", "http://127.0.0.1:\(server.port)/v1/openapi.json",
                    "--header", "Authorization: Bearer \(server.tokens[who] ?? "")",
                    "--header", "Tripline-Reason: schemathesis as \(who)",
                    "--checks", Self.schemathesisChecks.joined(separator: ","),
                    "--phases", "examples,coverage,fuzzing", "--max-examples", "8", "--seed", "20300601",
                    "--workers", "1", "--request-timeout", "30", "--max-failures", "20", "--no-shrink",
                ]
                // Revoking the tokens it finds would revoke its own: the revocation is the matrix's.
                + (who == "admin" ? ["--exclude-operation-id", "revokeToken"] : [])
            p.currentDirectoryURL = dir
            p.environment = environment
            p.standardInput = FileHandle.nullDevice
            let handle = try FileHandle(forWritingTo: out)
            p.standardOutput = handle
            p.standardError = handle
            try p.run()
            p.waitUntilExit()
            try handle.close()
            let log = try String(contentsOf: out, encoding: .utf8)
            let tail = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(80).joined(separator: "\n")
            #expect(p.terminationStatus == 0, "schemathesis as \(who):\n\(tail)")
            // Every operation selected ran (all of them but the one excluded), and every case passed.
            let selected = try #require(
                log.firstMatch(of: /Selected: (\d+)\/(\d+)/).map { (Int($0.1)!, Int($0.2)!) },
                "schemathesis as \(who):\n\(tail)")
            let tested = log.firstMatch(of: /Tested: (\d+)/).map { Int($0.1)! }
            #expect(selected.1 - selected.0 == (who == "admin" ? 1 : 0) && tested == selected.0, "\(tail)")
            let cases = log.firstMatch(of: /(\d+) generated, (\d+) passed/)
            #expect(cases != nil && cases?.1 == cases?.2, "schemathesis as \(who):\n\(tail)")
        }
        // Nothing made the server fail underneath: still up, its audit log intact.
        #expect(try Self.send(server.port, "GET", "/readyz").status == 200)
        let verify = try CLITests.run(["audit", "verify", "--config", "tripline.yaml"], cwd: dir)
        #expect(verify.status == 0, "\(verify.stderr)")
    }
}
