import Foundation
import Testing
import TriplineHTTP
import TriplineJSON
import TriplineTestSupport

/// SPEC §8's role table over the HTTP API: every route × every role × own/other partner, on the deployment of the
/// command-line matrix (AuthorizationTests), every refusal audited with its principal and reason.
extension APITests {
    /// The principals of AuthorizationTests.deployment(), in the order of the cells below.
    static let matrixPrincipals = [
        "partner-be", "analyst-be", "partner-fr", "analyst-fr", "analyst-ops", "auditor", "admin", "ingest-1",
    ]

    struct Row {
        var method: String
        /// The route as the router and the document name it.
        var route: String
        /// The request's path and query.
        var path: String
        var body: String?
        /// Whether an allowed request changes the state (the server is then restored before the next cell).
        var mutates: Bool
        /// One per principal: the status expected, or `#n`: 200 with n items listed.
        var cells: [String]
    }

    /// SPEC §8, written out cell by cell (not derived from the policy). The alert (1) is on be-fedpol's amber list
    /// `rf` (a file of the operator's directory), routed to be-fedpol's webhook (a dead letter) and the operating
    /// agency's log; `sub` is a list be-fedpol submitted through the API; the silence is analyst-be's. 403: the
    /// role may not; 404: the object belongs to another partner (its existence is protected); both audited.
    static func matrix(silence: String, dead: String, spareToken: String) -> [Row] {
        let list = { (name: String) in
            "watchlist: \(name)\nowner: be-fedpol\nreview_by: 2099-01-01\nentries:\n"
                + "  - {ref: M-1, selectors: [{type: phone, value: \"+32470000077\"}]}\n"
        }
        let all200 = Array(repeating: "200", count: 8)
        func only(_ who: String, _ status: String) -> [String] {
            matrixPrincipals.map { $0 == who ? status : "403" }
        }
        return [
            // partner-be, analyst-be, partner-fr, analyst-fr, analyst-ops, auditor, admin, ingest-1
            Row(method: "GET", route: "/healthz", path: "/healthz", mutates: false, cells: all200),
            Row(method: "GET", route: "/readyz", path: "/readyz", mutates: false, cells: all200),
            Row(method: "GET", route: "/metrics", path: "/metrics", mutates: false, cells: all200),
            // Acknowledge links: the token is the credential, whoever else is asking (links are not configured here).
            Row(
                method: "GET", route: "/v1/ack/{token}", path: "/v1/ack/x", mutates: false,
                cells: Array(repeating: "400", count: 8)),
            Row(
                method: "POST", route: "/v1/ack/{token}", path: "/v1/ack/x", mutates: false,
                cells: Array(repeating: "400", count: 8)),
            Row(method: "GET", route: "/v1/openapi.json", path: "/v1/openapi.json", mutates: false, cells: all200),
            Row(
                method: "GET", route: "/v1/audit/checkpoint", path: "/v1/audit/checkpoint", mutates: false,
                cells: all200),
            Row(method: "POST", route: "/-/reload", path: "/-/reload", mutates: true, cells: only("admin", "200")),
            Row(
                method: "POST", route: "/v1/selectors", path: "/v1/selectors",
                body: #"{"id":"m","type":"phone","value":"+32470000099"}"#, mutates: true,
                cells: ["403", "403", "403", "403", "403", "403", "202", "202"]),
            Row(
                method: "GET", route: "/v1/watchlists", path: "/v1/watchlists", mutates: false,
                cells: ["#2", "403", "#0", "403", "403", "#2", "403", "403"]),
            Row(
                method: "GET", route: "/v1/watchlists/{owner}/{list}", path: "/v1/watchlists/be-fedpol/rf",
                mutates: false, cells: ["200", "403", "404", "403", "403", "200", "403", "403"]),
            Row(
                method: "GET", route: "/v1/watchlists/{owner}/{list}/versions",
                path: "/v1/watchlists/be-fedpol/sub/versions", mutates: false,
                cells: ["200", "403", "404", "403", "403", "200", "403", "403"]),
            Row(
                method: "PUT", route: "/v1/watchlists/{owner}/{list}", path: "/v1/watchlists/be-fedpol/new",
                body: list("new"), mutates: true, cells: ["201", "403", "404", "403", "403", "403", "403", "403"]),
            // The operator's file: its owner is told 409; another partner still learns nothing (404).
            Row(
                method: "PUT", route: "/v1/watchlists/{owner}/{list}", path: "/v1/watchlists/be-fedpol/rf",
                body: list("rf"), mutates: true, cells: ["409", "403", "404", "403", "403", "403", "403", "403"]),
            Row(
                method: "DELETE", route: "/v1/watchlists/{owner}/{list}", path: "/v1/watchlists/be-fedpol/sub",
                mutates: true, cells: ["204", "403", "404", "403", "403", "403", "403", "403"]),
            Row(
                method: "DELETE", route: "/v1/watchlists/{owner}/{list}", path: "/v1/watchlists/be-fedpol/rf",
                mutates: true, cells: ["409", "403", "404", "403", "403", "403", "403", "403"]),
            Row(
                method: "GET", route: "/v1/alerts", path: "/v1/alerts", mutates: false,
                cells: ["#1", "#1", "#0", "#0", "#1", "#1", "403", "403"]),
            Row(
                method: "GET", route: "/v1/alerts/{id}", path: "/v1/alerts/1", mutates: false,
                cells: ["200", "200", "404", "404", "200", "200", "403", "403"]),
            Row(
                method: "POST", route: "/v1/alerts/{id}/ack", path: "/v1/alerts/1/ack", mutates: true,
                cells: ["403", "200", "403", "404", "200", "403", "403", "403"]),
            Row(
                method: "POST", route: "/v1/alerts/{id}/resolve", path: "/v1/alerts/1/resolve", mutates: true,
                cells: ["200", "200", "404", "404", "200", "403", "403", "403"]),
            Row(
                method: "GET", route: "/v1/silences", path: "/v1/silences", mutates: false,
                cells: ["403", "#1", "403", "#0", "#0", "#1", "#1", "403"]),
            Row(
                method: "POST", route: "/v1/silences", path: "/v1/silences",
                body: #"{"matchers":["priority=\"low\""],"comment":"matrix"}"#, mutates: true,
                cells: ["403", "201", "403", "201", "201", "403", "201", "403"]),
            Row(
                method: "DELETE", route: "/v1/silences/{id}", path: "/v1/silences/\(silence)", mutates: true,
                cells: ["403", "204", "403", "404", "404", "403", "204", "403"]),
            Row(
                method: "GET", route: "/v1/outbox", path: "/v1/outbox", mutates: false,
                cells: ["403", "#2", "403", "#0", "#1", "#3", "#3", "403"]),
            Row(
                method: "POST", route: "/v1/outbox/{id}/retry", path: "/v1/outbox/\(dead)/retry", mutates: true,
                cells: ["403", "202", "403", "404", "404", "403", "202", "403"]),
            Row(
                method: "POST", route: "/v1/receivers/{name}/enable", path: "/v1/receivers/be-hook/enable",
                mutates: true, cells: ["403", "204", "403", "404", "404", "403", "204", "403"]),
            Row(
                method: "GET", route: "/v1/audit/records", path: "/v1/audit/records", mutates: false,
                cells: only("auditor", "200")),
            Row(
                method: "GET", route: "/v1/audit/proof/inclusion", path: "/v1/audit/proof/inclusion?index=0",
                mutates: false, cells: only("auditor", "200")),
            Row(
                method: "GET", route: "/v1/audit/proof/consistency", path: "/v1/audit/proof/consistency?old=1&new=2",
                mutates: false, cells: only("auditor", "200")),
            Row(
                method: "POST", route: "/v1/audit/exports", path: "/v1/audit/exports", body: "{}", mutates: false,
                cells: only("auditor", "200")),
            Row(method: "GET", route: "/v1/tokens", path: "/v1/tokens", mutates: false, cells: only("admin", "200")),
            Row(
                method: "POST", route: "/v1/tokens", path: "/v1/tokens", body: #"{"principal":"partner-fr"}"#,
                mutates: true, cells: only("admin", "201")),
            Row(
                method: "DELETE", route: "/v1/tokens/{id}", path: "/v1/tokens/\(spareToken)", mutates: true,
                cells: only("admin", "204")),
        ]
    }

    /// Refusals audited so far, and the last one's principal and reason.
    static func refusals(_ server: Server) -> (count: Int, last: String) {
        let r = server.sql.query(
            "select count(*), coalesce((select json_extract(p.payload, '$.principal') || ' ' || json_extract(p.payload, '$.reason') from audit_records r join audit_payloads p on p.idx = r.idx where json_extract(r.record, '$.kind') = 'refused' order by r.idx desc limit 1), '') from audit_records where json_extract(record, '$.kind') = 'refused'"
        ).split(separator: "|", omittingEmptySubsequences: false)
        return (Int(r.first ?? "") ?? -1, r.count > 1 ? String(r[1]) : "")
    }

    @Test("SPEC §8 over the API: every route × every role × own/other partner; every refusal audited")
    func authorizationMatrix() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        for p in Self.matrixPrincipals { try server.issue(p) }
        let spare = try server.issue("partner-fr", name: "spare").id
        // be-fedpol submits `sub` through the API, so that there is a submitted list to read and withdraw.
        try server.start()
        let sub = try server.call(
            "PUT", "/v1/watchlists/be-fedpol/sub", as: "partner-be",
            body: "watchlist: sub\nowner: be-fedpol\nreview_by: 2099-01-01\nentries:\n"
                + "  - {ref: S-1, selectors: [{type: phone, value: \"+32470000055\"}]}\n")
        #expect(sub.status == 201, "\(sub.text)")
        server.stop()
        let silence = try String(contentsOf: dir.appendingPathComponent("silence-id"), encoding: .utf8)
        let dead = ServeTests.query(dir, "select id from outbox where status = 'dead'")
        #expect(!dead.isEmpty && !silence.isEmpty && !spare.isEmpty)
        let state = dir.appendingPathComponent("state")
        let pristine = dir.appendingPathComponent("state.pristine")
        try FileManager.default.copyItem(at: state, to: pristine)
        try server.start()
        defer { server.stop() }

        let rows = Self.matrix(silence: silence, dead: dead, spareToken: spare)
        // Every route of the router is in the matrix.
        #expect(
            Set(rows.map { "\($0.method) \($0.route)" }).sorted()
                == Set(API.routes.map { "\($0.method) \($0.path)" }).sorted())

        var failures: [String] = []
        var shown: [String: String] = [:]
        var before = Self.refusals(server)
        for row in rows {
            for (who, want) in zip(Self.matrixPrincipals, row.cells) {
                let r = try server.call(row.method, row.path, as: who, body: row.body, reason: "matrix")
                let after = Self.refusals(server)
                var got = String(r.status)
                if r.status == 200, want.hasPrefix("#") {
                    let listed = r.json?.members.first { $0.value.arrayValue != nil }?.value.arrayValue
                    got = listed.map { "#\($0.count)" } ?? "200 without a list: \(r.text)"
                }
                if [403, 404, 409].contains(r.status) {
                    if after.count != before.count + 1 || after.last != "\(who) matrix" {
                        got += " (refusal not audited: \(after.count - before.count) records, last \(after.last))"
                    }
                } else if after.count != before.count {
                    got += " (\(after.count - before.count) refusals audited)"
                }
                if got != want { failures.append("\(row.method) \(row.path) as \(who): expected \(want), got \(got)") }
                if row.path == "/v1/alerts/1" { shown[who] = r.text }
                // Each cell starts from the same state: a change is undone before the next.
                if row.mutates, (200..<300).contains(r.status) {
                    server.stop(signal: SIGKILL)
                    try FileManager.default.removeItem(at: state)
                    try FileManager.default.copyItem(at: pristine, to: state)
                    try server.start()
                    before = Self.refusals(server)
                } else {
                    before = after
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")

        // Need-to-know: be-fedpol and the auditor see the amber list's content; the operating agency's analyst lists
        // the alert (routed to its log) but sees no content.
        for who in ["partner-be", "analyst-be", "auditor"] {
            #expect(shown[who]?.contains("Canary label") == true, "\(who)")
        }
        let ops = try #require(shown["analyst-ops"])
        #expect(!ops.contains("Canary label") && !ops.contains("+32470000001") && ops.contains(#""restricted":true"#))
        for who in ["partner-fr", "analyst-fr"] { #expect(shown[who]?.contains("Canary") == false, "\(who)") }

        // No route alters or erases the audit log, for admin or anyone: these answer 404 and the log stays whole.
        let size = ServeTests.query(dir, "select count(*) from audit_records")
        for (method, path) in [
            ("DELETE", "/v1/audit/records"), ("PUT", "/v1/audit/records"), ("PATCH", "/v1/audit/records"),
            ("DELETE", "/v1/audit/records/0"), ("POST", "/v1/audit/erase"), ("POST", "/v1/audit/records/0/erase"),
        ] {
            for who in ["admin", "auditor"] {
                #expect(try server.call(method, path, as: who, body: "{}").status == 404, "\(method) \(path) as \(who)")
            }
        }
        #expect(ServeTests.query(dir, "select count(*) from audit_records") == size)
        let verify = try CLITests.run(["audit", "verify", "--config", "tripline.yaml"], cwd: dir)
        #expect(verify.status == 0, "\(verify.stderr)")
    }
}
