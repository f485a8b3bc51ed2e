import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// The API under attack (a review): a stranger flooding bad credentials, principals giving reasons that would bloat
/// the audit log or none at all, an admin reloading and an auditor asking for proofs without a trace, CRLF NDJSON,
/// and another partner probing for lists by every spelling of their names.
extension APITests {
    /// A stranger's flood of bad credentials costs a bounded number of audit records, each of bounded size: past
    /// the per-address budget (burst 30, then 1 a second) it is answered 429 and counted into the next audited
    /// refusal, so the records still account for every refusal. A valid token from the same address still works.
    @Test("a flood of bad credentials: bounded audit records, each bounded, every refusal counted; no lockout")
    func badCredentialFlood() throws {
        let dir = try Self.smallDeployment("api-attack-flood")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        try server.issue("admin")
        try server.start()
        defer { server.stop() }
        let long = "/v1/alerts/" + String(repeating: "x", count: 20_000)
        let flood = 200
        let start = Date()
        var statuses: [Int: Int] = [:]
        for _ in 0..<flood {
            let r = try Self.send(server.port, "GET", long, headers: [("Authorization", "Bearer tl_nope")])
            statuses[r.status, default: 0] += 1
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(statuses.keys.sorted() == [401, 429])
        let audited = server.audited("auth_failed")
        #expect(audited.count == statuses[401])
        #expect(audited.count <= 30 + Int(elapsed.rounded(.up)) + 1, "\(audited.count) records in \(elapsed) s")
        #expect(
            audited.allSatisfy {
                $0["detail"]?.objectValue?["path"]?.stringValue?.count == 256
                    && $0["detail"]?.objectValue?["path_length"] == .number(String(long.count))
                    && $0["detail"]?.objectValue?["peer"] == .string("127.0.0.1")
            })
        // The same address with a valid token is not locked out.
        #expect(try server.call("GET", "/v1/openapi.json", as: "admin").status == 200)
        // Once the budget has refilled, the next refusal is audited with the count of those answered 429.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try Self.send(server.port, "GET", "/v1/alerts").status == 401)
        let after = server.audited("auth_failed")
        let throttled = after.compactMap { $0["detail"]?.objectValue?["throttled"]?.doubleValue }.reduce(0, +)
        #expect(after.count + Int(throttled) == flood + 1)
        #expect(Int(throttled) == statuses[429])
    }

    /// A reason is at most 1024 bytes (every audit record of the request keeps it; HTTP alone would allow ~80 KB).
    @Test("a reason over 1024 bytes: 400, nothing consulted; 1024 bytes: kept whole")
    func longReason() throws {
        let dir = try Self.smallDeployment("api-attack-reason")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        try server.issue("auditor")
        try server.start()
        defer { server.stop() }
        let long = try server.call(
            "GET", "/v1/alerts", as: "auditor", reason: String(repeating: "é", count: 513))
        #expect(long.status == 400)
        #expect(long.json?["detail"] == .string("a reason is at most 1024 bytes"))
        let body = #"{"reason":"\#(String(repeating: "r", count: 1025))"}"#
        let export = try Self.send(
            server.port, "POST", "/v1/audit/exports",
            headers: [("Authorization", "Bearer \(server.tokens["auditor"] ?? "")")], body: Array(body.utf8))
        #expect(export.status == 400)
        #expect(server.audited("consultation").isEmpty && server.audited("audit_consultation").isEmpty)
        // Each refused, and audited as a refusal: the reason cut to 1024 bytes, its length kept; none at all too.
        #expect(try server.call("GET", "/v1/alerts", as: "auditor", reason: "").status == 400)
        let refused = server.audited("refused").map { p -> String in
            let d = p["detail"]?.objectValue
            return [
                p["principal"]?.stringValue, p["reason"]?.stringValue.map { "\($0.utf8.count) bytes" },
                d?["why"]?.stringValue, d?["reason_length"]?.doubleValue.map { "\(Int($0))" },
            ].map { $0 ?? "-" }.joined(separator: " | ")
        }
        #expect(
            refused == [
                "auditor | 1024 bytes | a reason is at most 1024 bytes | 1026",
                "auditor | 1024 bytes | a reason is at most 1024 bytes | 1025",
                "auditor | 0 bytes | a reason is required (Tripline-Reason header, --reason) | 0",
            ], "\(refused)")
        let reason = String(repeating: "r", count: 1024)
        #expect(try server.call("GET", "/v1/alerts", as: "auditor", reason: reason).status == 200)
        #expect(server.audited("consultation").map { $0["reason"] } == [.string(reason)])
    }

    /// `POST /-/reload` acts: it carries a reason, and the request is audited with its principal and outcome.
    @Test("a reload over the API: a reason required; audited with the admin, its reason and the outcome")
    func reloadIsAudited() throws {
        let dir = try Self.smallDeployment("api-attack-reload")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        let admin = try server.issue("admin")
        try server.issue("auditor")
        try server.start()
        defer { server.stop() }
        let reloads = { server.audited("config_reloaded").count }
        let before = reloads()
        let unreasoned = try server.call("POST", "/-/reload", as: "admin", reason: "")
        #expect(unreasoned.status == 400)
        #expect(reloads() == before)
        #expect(try server.call("POST", "/-/reload", as: "auditor", reason: "curious").status == 403)
        #expect(try server.call("POST", "/-/reload", as: "admin", reason: "rotated the receivers").status == 200)
        #expect(reloads() == before + 1)
        let requested = server.audited("reload_requested")
        #expect(requested.count == 1)
        #expect(requested.first?["principal"] == .string("admin"))
        #expect(requested.first?["reason"] == .string("rotated the receivers"))
        #expect(requested.first?["detail"]?.objectValue?["outcome"] == .string("reloaded"))
        #expect(requested.first?["detail"]?.objectValue?["token"] == .string(admin.id))
        let refused = server.audited("refused").filter {
            $0["detail"]?.objectValue?["command"] == .string("config reload")
        }
        #expect(refused.map { $0["principal"] } == [.string("auditor")])
    }

    /// Audit proofs are consultations of the audit log like queries: a reason, and an audit record.
    @Test("audit proofs over the API: a reason required; each proof audited with the auditor and its reason")
    func proofsAreAudited() throws {
        let dir = try Self.smallDeployment("api-attack-proof")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        try server.issue("auditor")
        try server.start()
        defer { server.stop() }
        #expect(try server.call("GET", "/v1/audit/proof/inclusion?index=0", as: "auditor", reason: "").status == 400)
        #expect(
            try server.call("GET", "/v1/audit/proof/consistency?old=1&new=2", as: "auditor", reason: " ").status
                == 400)
        #expect(server.audited("audit_consultation").isEmpty)
        #expect(
            try server.call("GET", "/v1/audit/proof/inclusion?index=0", as: "auditor", reason: "case 7").status == 200)
        #expect(
            try server.call("GET", "/v1/audit/proof/consistency?old=1&new=2", as: "auditor", reason: "case 7").status
                == 200)
        let proofs = server.audited("audit_consultation").map { p -> String in
            let d = p["detail"]?.objectValue
            return [
                p["principal"]?.stringValue, p["reason"]?.stringValue, d?["command"]?.stringValue,
                d?["index"]?.doubleValue.map { "\(Int($0))" }, d?["old"]?.doubleValue.map { "\(Int($0))" },
                d?["new"]?.doubleValue.map { "\(Int($0))" },
            ].map { $0 ?? "-" }.joined(separator: " ")
        }
        #expect(proofs == ["auditor case 7 audit prove 0 - -", "auditor case 7 audit prove - 1 2"])
    }

    /// Any principal may fetch the checkpoint, and the log grows with every request (each is audited): signed anew
    /// on every call, the checkpoints would grow without bound. At most one new signature a second; in between,
    /// the latest one. Eight partners asking 40 times in a burst add one or two.
    @Test("a burst of checkpoint requests signs at most one new checkpoint a second")
    func checkpointBurst() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        try server.issue("partner-fr")
        try server.start()
        defer { server.stop() }
        func stored() -> Int { Int(server.sql.query("select count(*) from audit_checkpoints")) ?? -1 }
        let before = stored()
        var notes = Set<String>()
        let start = ContinuousClock.now
        for _ in 0..<40 {
            let r = try server.call("GET", "/v1/audit/checkpoint", as: "partner-fr")
            #expect(r.status == 200)
            notes.insert(r.text)
        }
        let d = ContinuousClock.now - start
        let seconds = Int(d.components.seconds) + 1
        #expect(stored() - before >= 1 && stored() - before <= seconds, "\(stored() - before) new in \(d)")
        #expect(notes.count == stored() - before, "each answer one of the checkpoints signed")
    }

    /// NDJSON from a CRLF file reads over the API as from standard input: the CR is not part of the line (a blank
    /// CRLF line is blank, not a rejected record).
    @Test("CRLF NDJSON over the API: the lines standard input would read, no blank line rejected")
    func crlfIngest() throws {
        let dir = try Self.smallDeployment("api-attack-crlf")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        try server.issue("admin")
        try server.start()
        defer { server.stop() }
        let body =
            #"{"id":"c1","type":"phone","value":"+32470000009"}"# + "\r\n\r\n"
            + #"{"id":"c2","type":"phone","value":"+32470000008"}"# + "\r\n" + #"{"id":"c3","type":"nope"}"#
        let r = try server.call("POST", "/v1/selectors", as: "admin", body: body)
        #expect(r.status == 202)
        #expect(
            r.text
                == #"{"accepted":2,"rejected":1,"rejects":[{"line":4,"id":"c3","error":"unknown type \"nope\" (expected one of phone, email, imei, imsi, ip, username, document, wallet, name)"}]}"#
        )
    }

    /// Another partner learns nothing of be-fedpol's lists: the file list, a submitted one, a withdrawn one and one
    /// that never existed answer the same 404 body for every route and spelling (case, encoded slash, trailing
    /// slash), and each probe is audited.
    @Test("another partner probing lists: one 404 body per owner whatever exists, every probe audited")
    func listProbes() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        for p in ["partner-be", "partner-fr"] { try server.issue(p) }
        try server.start()
        defer { server.stop() }
        let list = { (name: String) in
            "watchlist: \(name)\nowner: be-fedpol\nreview_by: 2099-01-01\nentries:\n"
                + "  - {ref: S-1, label: Secret, selectors: [{type: phone, value: \"+32470000055\"}]}\n"
        }
        #expect(
            try server.call("PUT", "/v1/watchlists/be-fedpol/sub", as: "partner-be", body: list("sub")).status == 201)
        #expect(
            try server.call("PUT", "/v1/watchlists/be-fedpol/gone", as: "partner-be", body: list("gone")).status == 201)
        #expect(try server.call("DELETE", "/v1/watchlists/be-fedpol/gone", as: "partner-be").status == 204)
        let refusedBefore = server.audited("refused").count
        var bodies = Set<String>()
        var probes = 0
        for name in ["rf", "sub", "gone", "never"] {
            for (method, path, body) in [
                ("GET", "/v1/watchlists/be-fedpol/\(name)", nil),
                ("GET", "/v1/watchlists/be-fedpol/\(name)?version=0", nil),
                ("GET", "/v1/watchlists/be-fedpol/\(name)/versions", nil),
                ("GET", "/v1/watchlists/be-fedpol/\(name)/", nil),
                ("PUT", "/v1/watchlists/be-fedpol/\(name)", list(name)),
                ("DELETE", "/v1/watchlists/be-fedpol/\(name)", nil),
            ] as [(String, String, String?)] {
                let r = try server.call(method, path, as: "partner-fr", body: body)
                #expect(r.status == 404, "\(method) \(path)")
                bodies.insert(r.text)
                probes += 1
            }
        }
        #expect(
            bodies == [
                #"{"type":"about:blank","title":"Not Found","status":404,"detail":"no list of be-fedpol visible to partner-fr"}"#
            ])
        #expect(server.audited("refused").count == refusedBefore + probes)
        // Other spellings of the owner name another owner (or none): still nothing about be-fedpol's lists.
        for path in ["/v1/watchlists/BE-FEDPOL/sub", "/v1/watchlists/be-fedpol%2Fsub/versions"] {
            let r = try server.call("GET", path, as: "partner-fr")
            #expect(r.status == 404, "\(path)")
            #expect(!r.text.contains("Secret") && !r.text.contains("+32470000055"), "\(path)")
        }
        // Its own list listing shows none of them.
        #expect(try server.call("GET", "/v1/watchlists", as: "partner-fr").text == #"{"watchlists":[]}"#)
    }
}

extension APITests {
    /// A silence's comment and matchers are bounded (its audit record keeps them; the body alone allows 1 MiB).
    @Test("a silence with a 1 MiB comment or too many matchers: 400, nothing stored or audited")
    func silenceFieldLimits() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        try server.issue("analyst-be")
        try server.start()
        defer { server.stop() }
        let before = server.audited("silence_added").count
        let huge = String(repeating: "c", count: 1_000_000)
        let many = (0..<65).map { #""priority=\"p\#($0)\"""# }.joined(separator: ",")
        for body in [
            #"{"matchers":["priority=\"low\""],"comment":"\#(huge)"}"#, #"{"matchers":[\#(many)],"comment":"c"}"#,
            #"{"matchers":["priority=\"\#(String(repeating: "l", count: 1100))\""],"comment":"c"}"#,
        ] {
            let r = try server.call("POST", "/v1/silences", as: "analyst-be", body: body)
            #expect(r.status == 400)
            #expect(
                r.json?["detail"]
                    == .string(
                        "a silence has at most 64 matchers of at most 1024 bytes, and a comment of at most 4096 bytes"))
        }
        #expect(server.audited("silence_added").count == before)
        let ok = try server.call(
            "POST", "/v1/silences", as: "analyst-be",
            body: #"{"matchers":["priority=\"low\""],"comment":"\#(String(repeating: "c", count: 4096))"}"#)
        #expect(ok.status == 201)
    }
}

/// The command line's token goes to `--server` and nowhere else.
@Suite("command line through the API, attacked", .serialized)
struct RemoteAttackTests {
    /// A server (or whoever answers in its place over plain HTTP) that redirects: the client does not follow, so the
    /// token never reaches the redirect's target; and plain HTTP to another machine is refused before any request.
    @Test("the token goes to --server alone: no redirect followed, no plain http:// to another machine")
    func tokenStaysWithServer() throws {
        let dir = scratchDirectory("remote-attack")
        defer { try? FileManager.default.removeItem(at: dir) }
        let token = "tl_" + String(repeating: "S", count: 43)
        try token.write(to: dir.appendingPathComponent("t.tok"), atomically: true, encoding: .utf8)
        let (from, to) = (freePort(), freePort())
        let received = dir.appendingPathComponent("received")
        let ready = dir.appendingPathComponent("ready")
        let peer = Process()
        peer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        peer.arguments = [
            "python3", "-c",
            """
            import http.server, sys, threading
            a, b, log, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
            class Redirect(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(302)
                    self.send_header('Location', 'http://localhost:%d%s' % (b, self.path))
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                def log_message(self, *a): pass
            class Target(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    open(log, 'a').write('%s\\n' % self.headers.get('Authorization'))
                    body = b'{"alerts":[]}'
                    self.send_response(200)
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *a): pass
            servers = [http.server.HTTPServer(('127.0.0.1', a), Redirect), http.server.HTTPServer(('127.0.0.1', b), Target)]
            for s in servers: threading.Thread(target=s.serve_forever, daemon=True).start()
            open(ready, 'w').write('ok')
            threading.Event().wait()
            """,
            String(from), String(to), received.path, ready.path,
        ]
        try peer.run()
        defer {
            kill(peer.processIdentifier, SIGKILL)  // it inherits the test's blocked SIGTERM
            peer.waitUntilExit()
        }
        #expect(waitUntil(15) { FileManager.default.fileExists(atPath: ready.path) })
        let redirected = try CLITests.run(
            ["alerts", "list", "--server", "http://127.0.0.1:\(from)", "--token-file", "t.tok", "--reason", "r"],
            cwd: dir)
        #expect(redirected.status == 1)
        #expect(
            redirected.stderr
                == "tripline: 302: the server redirects to http://localhost:\(to)/v1/alerts?limit=100; not followed (the token "
                + "goes to --server alone)\n")
        #expect(!FileManager.default.fileExists(atPath: received.path))

        for server in ["http://tripline.example:9466", "HTTP://10.0.0.1", "ftp://127.0.0.1"] {
            let clear = try CLITests.run(
                ["alerts", "list", "--server", server, "--token-file", "t.tok", "--reason", "r"], cwd: dir)
            #expect(clear.status == 64, "\(server)")
            #expect(clear.stderr.contains("the token would cross the network in clear"), "\(server): \(clear.stderr)")
        }
    }
}
