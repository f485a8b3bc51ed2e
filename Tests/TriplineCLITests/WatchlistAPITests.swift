import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Partners' lists through the HTTP API (SPEC §10 Watchlists), against the real `tripline serve` on loopback: a
/// submission matches the next selector, a bad one is refused with every error while the previous version keeps
/// matching, withdrawal stops matching, versions survive a restart, and another partner learns nothing.
@Suite("watchlists over the API", .serialized)
struct WatchlistAPITests {
    /// A deployment: be-fedpol's file list `rf` (operator-managed), partners be-fedpol and fr-dgsi, a log receiver,
    /// the API on a free loopback port, and a token per principal.
    final class Deployment: @unchecked Sendable {
        let dir = scratchDirectory("wlapi")
        let port = freePort()
        var tokens: [String: String] = [:]
        var process: Process?

        init() throws {
            let lists = dir.appendingPathComponent("Watchlists/be-fedpol")
            try FileManager.default.createDirectory(at: lists, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(
                at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
            try """
            watchlist: rf
            owner: be-fedpol
            review_by: 2099-01-01
            entries:
              - {ref: FILE-1, selectors: [{type: phone, value: "+32470000009"}]}
            """.write(to: lists.appendingPathComponent("rf.yaml"), atomically: true, encoding: .utf8)
            try """
            rules: Rules
            watchlists: Watchlists
            state: state/state.sqlite
            operator: ops
            partners:
              - {id: ops, name: Ops, countries: [], contact: ops@example}
              - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
              - {id: fr-dgsi, name: FR, countries: [FR], contact: fr@example}
            principals:
              - {id: partner-be, partner: be-fedpol, role: partner}
              - {id: partner-fr, partner: fr-dgsi, role: partner}
              - {id: analyst-be, partner: be-fedpol, role: analyst}
              - {id: auditor, partner: ops, role: auditor}
              - {id: admin, partner: ops, role: admin}
            receivers:
              - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
            route: {receiver: log, group_wait: 0s}
            http: {listen: "127.0.0.1:\(port)"}
            """.write(to: dir.appendingPathComponent("tripline.yaml"), atomically: true, encoding: .utf8)
            for p in ["partner-be", "partner-fr", "analyst-be", "auditor", "admin"] {
                let r = try CLITests.run(
                    [
                        "tokens", "issue", "--config", "tripline.yaml", "--principal", p, "--as", "admin", "--reason",
                        "r",
                    ],
                    cwd: dir)
                guard r.status == 0 else { throw TestFailure(r.stderr) }
                tokens[p] = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            try start()
        }

        func start() throws {
            let (p, _) = try ServeTests.start(["serve", "--config", "tripline.yaml"], cwd: dir)
            process = p
            final class Flag: @unchecked Sendable { var up = false }
            let up = waitUntil(30) {
                let s = DispatchSemaphore(value: 0)
                let flag = Flag()
                var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/healthz")!)
                r.timeoutInterval = 1
                URLSession.shared.dataTask(with: r) { _, response, _ in
                    flag.up = (response as? HTTPURLResponse)?.statusCode == 200
                    s.signal()
                }.resume()
                s.wait()
                return flag.up
            }
            guard up else { throw TestFailure("serve did not answer on port \(port)") }
        }

        func stop() {
            guard let p = process else { return }
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
            process = nil
        }

        deinit {
            stop()
            try? FileManager.default.removeItem(at: dir)
        }

        struct Answer: Sendable {
            var status: Int
            var body: Data
            var headers: [String: String]
            var text: String { String(decoding: body, as: UTF8.self) }
            var json: JSONObject { (try? JSONParser.parse(text).objectValue) ?? JSONObject() }
        }

        /// One request as `who` (with a reason), its answer.
        func call(_ method: String, _ path: String, as who: String, body: String? = nil) async throws -> Answer {
            var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            r.httpMethod = method
            r.setValue("Bearer \(tokens[who]!)", forHTTPHeaderField: "Authorization")
            r.setValue("watchlist tests", forHTTPHeaderField: "Tripline-Reason")
            r.httpBody = body.map { Data($0.utf8) }
            r.timeoutInterval = 30
            let request = r
            return try await withCheckedThrowingContinuation { c in
                URLSession.shared.dataTask(with: request) { data, response, error in
                    guard let h = response as? HTTPURLResponse else {
                        c.resume(throwing: error ?? TestFailure("no response"))
                        return
                    }
                    var headers: [String: String] = [:]
                    for (k, v) in h.allHeaderFields { headers["\(k)".lowercased()] = "\(v)" }
                    c.resume(returning: Answer(status: h.statusCode, body: data ?? Data(), headers: headers))
                }.resume()
            }
        }

        /// Ingests one phone selector (admin) and answers the keys of every alert afterwards.
        func sight(_ id: String, _ phone: String) async throws -> [String] {
            let a = try await call(
                "POST", "/v1/selectors", as: "admin", body: #"{"id":"\#(id)","type":"phone","value":"\#(phone)"}"#)
            guard a.status == 202, a.json["accepted"] == .number("1") else { throw TestFailure(a.text) }
            return alerts()
        }

        func alerts() -> [String] {
            ServeTests.query(dir, "select key from alerts order by id").split(separator: "\n").map(String.init)
        }

        /// Audit records of `kind`: their payloads' details.
        func audited(_ kind: String) -> [JSONObject] {
            ServeTests.query(
                dir,
                "select p.payload from audit_records r join audit_payloads p on p.idx = r.idx "
                    + "where json_extract(r.record, '$.kind') = '\(kind)' order by r.idx"
            ).split(separator: "\n").compactMap {
                try? JSONParser.parse(String($0)).objectValue?["detail"]?.objectValue
            }
        }
    }

    static func list(_ name: String = "sub", owner: String = "be-fedpol", entries: [(String, String)]) -> String {
        var y = "watchlist: \(name)\nowner: \(owner)\nhandling: {tlp: amber}\nreview_by: 2099-01-01\nentries:\n"
        for (ref, phone) in entries {
            y += "  - {ref: \(ref), label: Canary \(ref), selectors: [{type: phone, value: \"\(phone)\"}]}\n"
        }
        return y
    }

    static let v1 = list(entries: [("S-1", "+32470000001"), ("S-2", "+32470000002")])
    static let v2 = list(entries: [("S-3", "+32470000003")])

    /// The version SPEC §4 names (lower-case hex SHA-256 of the bytes), by Python's hashlib.
    static func sha256(_ s: String) -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("wlapi-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try? s.write(to: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c", "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
            file.path,
        ]
        let out = Pipe()
        p.standardOutput = out
        try? p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("a good list matches the next selector; a bad one is refused with every error and the previous one stays")
    func submitRefuseReplaceWithdraw() async throws {
        let d = try Deployment()
        let path = "/v1/watchlists/be-fedpol/sub"
        let put1 = try await d.call("PUT", path, as: "partner-be", body: Self.v1)
        #expect(put1.status == 201, "\(put1.text)")
        #expect(put1.json["version"] == .string(Self.sha256(Self.v1)))
        #expect(put1.json["previous_version"] == .null)
        #expect(put1.json["warnings"] == .array([]))
        #expect(try await d.sight("a", "+32470000001") == ["wl:be-fedpol/sub/S-1"])

        // Refused with every error located as owner/list.yaml:line:col; the previous version keeps matching.
        let bad = """
            watchlist: sub
            owner: fr-dgsi
            review_by: 2099-01-01
            entries:
              - {ref: B-1, selectors: [{type: phonez, value: "+32470000003"}]}
              - {ref: B-1, selectors: [{type: phone, value: "+32470000003"}]}
            """
        let put2 = try await d.call("PUT", path, as: "partner-be", body: bad)
        #expect(put2.status == 422, "\(put2.text)")
        #expect(put2.headers["content-type"] == "application/problem+json")
        #expect(
            put2.json["errors"]
                == .array([
                    .string("be-fedpol/sub.yaml:2:8: \"owner\" must be be-fedpol, the owner the URL names"),
                    .string(
                        "be-fedpol/sub.yaml:5:35: unknown selector type (expected one of phone, email, imei, imsi, "
                            + "ip, username, document, wallet, name, phone_prefix, ip_cidr)"),
                    .string("be-fedpol/sub.yaml:6:11: duplicate ref: the entry at line 5 has the same ref"),
                ]), "\(put2.text)")
        #expect(put2.json["detail"] == .string("the list has 3 errors; the previous version stays in force"))
        #expect(try await d.sight("b", "+32470000002") == ["wl:be-fedpol/sub/S-1", "wl:be-fedpol/sub/S-2"])
        #expect(try await d.sight("c", "+32470000003") == ["wl:be-fedpol/sub/S-1", "wl:be-fedpol/sub/S-2"])

        // A new version replaces the previous one for the next selector, with its warnings.
        let v2 = Self.v2 + "  - {ref: S-4, expires: 2020-01-01, selectors: [{type: phone, value: \"+32470000004\"}]}\n"
        let put3 = try await d.call("PUT", path, as: "partner-be", body: v2)
        #expect(put3.status == 201, "\(put3.text)")
        #expect(put3.json["previous_version"] == .string(Self.sha256(Self.v1)))
        #expect(
            put3.json["warnings"]
                == .array([
                    .string(
                        "be-fedpol/sub.yaml:7:25: the entry at line 7 expired 2020-01-01T00:00:00Z: it never matches")
                ]),
            "\(put3.text)")
        let three = ["wl:be-fedpol/sub/S-1", "wl:be-fedpol/sub/S-2", "wl:be-fedpol/sub/S-3"]
        #expect(try await d.sight("d", "+32470000003") == three)
        #expect(try await d.sight("e", "+32470000001") == three)  // S-1 is gone with version 1

        // Versions, the current YAML and an older one by ?version=.
        let versions = try await d.call("GET", path + "/versions", as: "partner-be")
        #expect(versions.status == 200)
        let listed = versions.json["versions"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(listed.map { $0["version"] } == [.string(Self.sha256(Self.v1)), .string(Self.sha256(v2))])
        #expect(listed.map { $0["in_force"] } == [.bool(false), .bool(true)])
        #expect(listed.map { $0["submitted_by"] } == [.string("partner-be"), .string("partner-be")])
        let current = try await d.call("GET", path, as: "partner-be")
        #expect(current.status == 200 && current.text == v2)
        #expect(current.headers["etag"] == "\"\(Self.sha256(v2))\"")
        let old = try await d.call("GET", path + "?version=\(Self.sha256(Self.v1))", as: "partner-be")
        #expect(old.status == 200 && old.text == Self.v1)
        let none = try await d.call("GET", path + "?version=\(String(repeating: "0", count: 64))", as: "partner-be")
        #expect(none.status == 404)

        // Withdrawn: it stops matching; its open alerts entitle the owner alone (no handling in force); the list
        // shows as withdrawn; its versions stay readable.
        #expect(ServeTests.query(d.dir, "select key from list_handlings order by key") == "be-fedpol/rf\nbe-fedpol/sub")
        let del = try await d.call("DELETE", path, as: "partner-be")
        #expect(del.status == 204, "\(del.text)")
        #expect(ServeTests.query(d.dir, "select key from list_handlings order by key") == "be-fedpol/rf")
        #expect(try await d.sight("f", "+32470000003") == three)  // S-3 no longer matches: no new sighting either
        #expect(ServeTests.query(d.dir, "select count from alerts where key = 'wl:be-fedpol/sub/S-3'") == "1")
        #expect(try await d.call("GET", path, as: "partner-be").status == 404)
        #expect(try await d.call("DELETE", path, as: "partner-be").status == 404)
        let mine = try await d.call("GET", "/v1/watchlists", as: "partner-be")
        let rows = mine.json["watchlists"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(rows.map { $0["list"] } == [.string("rf"), .string("sub")])
        #expect(rows.map { $0["source"] } == [.string("file"), .string("api")])
        #expect(rows.map { $0["in_force"] } == [.bool(true), .bool(false)])
        #expect(rows.last?["withdrawn_at"]?.stringValue != nil)

        // Audited: owner, list, version and counts; never the content.
        #expect(
            d.audited("watchlist_submitted").map { [$0["owner"], $0["list"], $0["version"], $0["errors"]] } == [
                [.string("be-fedpol"), .string("sub"), .string(Self.sha256(Self.v1)), .number("0")],
                [.string("be-fedpol"), .string("sub"), .string(Self.sha256(v2)), .number("0")],
            ])
        #expect(
            d.audited("watchlist_refused").map { [$0["owner"], $0["list"], $0["version"], $0["errors"]] } == [
                [.string("be-fedpol"), .string("sub"), .string(Self.sha256(bad)), .number("3")]
            ])
        #expect(
            d.audited("watchlist_withdrawn").map { [$0["owner"], $0["list"], $0["version"]] } == [
                [.string("be-fedpol"), .string("sub"), .string(Self.sha256(v2))]
            ])
        #expect(
            ServeTests.query(
                d.dir, "select count(*) from audit_payloads where payload like '%Canary%' or payload like '%phonez%'")
                == "0")
    }

    @Test("another partner cannot read, replace, list or learn of a list (404); an analyst cannot submit (403)")
    func needToKnow() async throws {
        let d = try Deployment()
        let path = "/v1/watchlists/be-fedpol/sub"
        #expect(try await d.call("PUT", path, as: "partner-be", body: Self.v1).status == 201)
        let missing = "/v1/watchlists/be-fedpol/no-such-list"
        for (method, suffix, body) in [
            ("GET", "", nil), ("GET", "/versions", nil), ("PUT", "", Self.v2), ("DELETE", "", nil),
        ] as [(String, String, String?)] {
            let a = try await d.call(method, path + suffix, as: "partner-fr", body: body)
            let b = try await d.call(method, missing + suffix, as: "partner-fr", body: body)
            #expect(a.status == 404, "\(method) \(suffix): \(a.text)")
            // The same answer as for a list that does not exist: nothing to learn from it.
            #expect(a.text == b.text, "\(method) \(suffix)")
            #expect(!a.text.contains("sub"))
        }
        let frs = try await d.call("GET", "/v1/watchlists", as: "partner-fr")
        #expect(frs.status == 200 && frs.json["watchlists"] == .array([]), "\(frs.text)")
        // Still be-fedpol's version 1, matching.
        #expect(try await d.sight("a", "+32470000003") == [])
        #expect(try await d.sight("b", "+32470000001") == ["wl:be-fedpol/sub/S-1"])

        let analyst = try await d.call("PUT", path, as: "analyst-be", body: Self.v2)
        #expect(analyst.status == 403, "\(analyst.text)")
        #expect(try await d.call("GET", "/v1/watchlists", as: "analyst-be").status == 403)
        #expect(try await d.call("DELETE", path, as: "analyst-be").status == 403)
        #expect(try await d.call("PUT", path, as: "auditor", body: Self.v2).status == 403)
        #expect(try await d.call("PUT", path, as: "admin", body: Self.v2).status == 403)
        let all = try await d.call("GET", "/v1/watchlists", as: "auditor")
        #expect(
            all.json["watchlists"]?.arrayValue?.compactMap { $0.objectValue?["list"] } == [
                .string("rf"), .string("sub"),
            ])
        #expect(try await d.call("GET", path, as: "auditor").text == Self.v1)
        // Every refusal on the list audited: 4 × 2 hidden for fr-dgsi, 2 for the analyst, 2 for auditor and admin.
        #expect(d.audited("refused").filter { $0["owner"] == .string("be-fedpol") }.count == 12)

        // The file's list is the operator's: PUT and DELETE answer 409 (reading it is fine).
        let put = try await d.call(
            "PUT", "/v1/watchlists/be-fedpol/rf", as: "partner-be", body: Self.list("rf", entries: [("X", "+3247")]))
        #expect(put.status == 409, "\(put.text)")
        #expect(try await d.call("DELETE", "/v1/watchlists/be-fedpol/rf", as: "partner-be").status == 409)
        #expect(try await d.sight("c", "+32470000009") == ["wl:be-fedpol/sub/S-1", "wl:be-fedpol/rf/FILE-1"])
        let file = try await d.call("GET", "/v1/watchlists/be-fedpol/rf", as: "partner-be")
        #expect(file.status == 200 && file.text.hasPrefix("watchlist: rf\n"))
    }

    @Test("a list beyond the 16 MiB of other bodies is taken; a body over 256 MiB answers 413 naming the limit")
    func sizes() async throws {
        let d = try Deployment()
        let big = Self.v1 + "# " + String(repeating: "x", count: 20 << 20) + "\n"
        let put = try await d.call("PUT", "/v1/watchlists/be-fedpol/sub", as: "partner-be", body: big)
        #expect(put.status == 201, "\(put.text.prefix(500))")
        #expect(put.json["version"] == .string(Self.sha256(big)))
        // Only the request head: the length alone is refused before any of the body is read.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c",
            """
            import socket, sys
            s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
            s.sendall(('PUT /v1/watchlists/be-fedpol/big HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer %s\\r\\n'
                       'Tripline-Reason: r\\r\\nContent-Length: 268435457\\r\\n\\r\\n' % sys.argv[2]).encode())
            data = b''
            while b'}' not in data:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
            print(data.decode())
            """,
            String(d.port), d.tokens["partner-be"]!,
        ]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text.hasPrefix("HTTP/1.1 413"), "\(text)")
        #expect(text.contains(#""detail":"the body is larger than 268435456 bytes","limit":268435456"#), "\(text)")
    }

    @Test("a submitted list survives a restart, with its versions")
    func restart() async throws {
        let d = try Deployment()
        let path = "/v1/watchlists/be-fedpol/sub"
        #expect(try await d.call("PUT", path, as: "partner-be", body: Self.v1).status == 201)
        #expect(try await d.call("PUT", path, as: "partner-be", body: Self.v2).status == 201)
        d.stop()
        try d.start()
        #expect(try await d.sight("a", "+32470000003") == ["wl:be-fedpol/sub/S-3"])
        #expect(try await d.sight("b", "+32470000001") == ["wl:be-fedpol/sub/S-3"])
        // A reload (as SIGHUP) keeps it too.
        #expect(try await d.call("POST", "/-/reload", as: "admin").status == 200)
        #expect(try await d.sight("b", "+32470000003") == ["wl:be-fedpol/sub/S-3"])
        #expect(ServeTests.query(d.dir, "select count from alerts") == "2")
        let versions = try await d.call("GET", path + "/versions", as: "partner-be")
        #expect(
            versions.json["versions"]?.arrayValue?.compactMap { $0.objectValue?["version"] } == [
                .string(Self.sha256(Self.v1)), .string(Self.sha256(Self.v2)),
            ])
        // Withdrawn, it stays withdrawn after a restart.
        #expect(try await d.call("DELETE", path, as: "partner-be").status == 204)
        d.stop()
        try d.start()
        #expect(try await d.sight("c", "+32470000003") == ["wl:be-fedpol/sub/S-3"])
        #expect(ServeTests.query(d.dir, "select count from alerts") == "2")
    }

    @Test("concurrent submissions of one list serialise: both stored and audited, the last one in force")
    func concurrent() async throws {
        let d = try Deployment()
        let path = "/v1/watchlists/be-fedpol/sub"
        async let a = d.call("PUT", path, as: "partner-be", body: Self.v1)
        async let b = d.call("PUT", path, as: "partner-be", body: Self.v2)
        let (ra, rb) = try await (a, b)
        #expect(ra.status == 201 && rb.status == 201, "\(ra.text) \(rb.text)")
        let versions = try await d.call("GET", path + "/versions", as: "partner-be")
        let listed = versions.json["versions"]?.arrayValue?.compactMap { $0.objectValue?["version"]?.stringValue } ?? []
        #expect(Set(listed) == [Self.sha256(Self.v1), Self.sha256(Self.v2)])
        // One ran after the other: the first found no version in force, the second found the first's.
        let byVersion = Dictionary(uniqueKeysWithValues: [ra, rb].map { ($0.json["version"]?.stringValue ?? "", $0) })
        #expect(byVersion[listed.first ?? ""]?.json["previous_version"] == .null)
        #expect(byVersion[listed.last ?? ""]?.json["previous_version"] == .string(listed.first ?? ""))
        let audited = d.audited("watchlist_submitted").compactMap { $0["version"]?.stringValue }
        #expect(audited == listed)  // in the order they became current
        let current = try await d.call("GET", path, as: "partner-be")
        #expect(current.headers["etag"] == "\"\(listed.last ?? "")\"")
        let last = listed.last == Self.sha256(Self.v1) ? "wl:be-fedpol/sub/S-1" : "wl:be-fedpol/sub/S-3"
        _ = try await d.sight("x", "+32470000001")
        #expect(try await d.sight("y", "+32470000003") == [last])
    }
}
