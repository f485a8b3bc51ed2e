import Foundation
import Testing
import TriplineHTTP
import TriplineJSON
import TriplineTestSupport

/// The HTTP API (SPEC §10) against the real `tripline serve` on a loopback port: the OpenAPI document against the
/// router's own routes, authentication as MISP tests its keys (every bad credential one byte-identical 401, each
/// audited with its cause), SPEC §8's role table over every route × role × own/other partner (every refusal
/// audited), and schemathesis against the served document.
@Suite("HTTP API", .serialized)
struct APITests {
    // MARK: A served deployment

    /// `tripline serve` with the API on a free loopback port, in a deployment directory; its standard error goes to
    /// `serve.log` there (never a pipe nobody reads).
    final class Server: @unchecked Sendable {
        let dir: URL
        let port = freePort()
        var process: Process?
        var tokens: [String: String] = [:]

        /// Adds `http:` (and `extra` settings of it) to the deployment's configuration.
        init(dir: URL, http extra: String = "") throws {
            self.dir = dir
            let config = dir.appendingPathComponent("tripline.yaml")
            var text = try String(contentsOf: config, encoding: .utf8)
            text += "\nhttp: {listen: \"127.0.0.1:\(port)\"\(extra)}\n"
            try text.write(to: config, atomically: true, encoding: .utf8)
        }

        /// A token for `principal`, issued on the local state database by admin (`tokens issue`); its id too.
        @discardableResult
        func issue(_ principal: String, expires: String = "90d", name: String? = nil) throws -> (
            token: String, id: String
        ) {
            let r = try CLITests.run(
                [
                    "tokens", "issue", "--config", "tripline.yaml", "--principal", principal, "--expires", expires,
                    "--as", "admin", "--reason", "api tests",
                ], cwd: dir)
            guard r.status == 0 else { throw TestFailure("tokens issue: \(r.stderr)") }
            let token = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let id = r.stderr.split(separator: " ").first { $0.hasPrefix("tok_") }.map(String.init) ?? ""
            tokens[name ?? principal] = token
            return (token, id)
        }

        /// Starts `serve` and waits until `ready` (by default: `/healthz` answers 200 over plain HTTP).
        func start(ready: (() -> Bool)? = nil) throws {
            let p = Process()
            p.executableURL = CLITests.binary
            p.arguments = ["serve", "--config", "tripline.yaml", "--drain-timeout", "2"]
            p.currentDirectoryURL = dir
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            let log = dir.appendingPathComponent("serve.log")
            if !FileManager.default.fileExists(atPath: log.path) {
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            }
            let handle = try FileHandle(forWritingTo: log)
            handle.seekToEndOfFile()
            p.standardError = handle
            try p.run()
            process = p
            let port = port
            let answers = ready ?? { (try? APITests.send(port, "GET", "/healthz"))?.status == 200 }
            guard waitUntil(30, { answers() || !p.isRunning })
            else { throw TestFailure("serve did not answer on port \(port)") }
            guard p.isRunning else {
                throw TestFailure("serve exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            }
        }

        /// SIGTERM (or SIGKILL when the state is about to be thrown away), and the process's end.
        func stop(signal: Int32 = SIGTERM) {
            guard let p = process else { return }
            if p.isRunning { kill(p.processIdentifier, signal) }
            p.waitUntilExit()
            process = nil
        }

        func hup() {
            if let p = process { kill(p.processIdentifier, SIGHUP) }
        }

        deinit {
            stop()
            sql.stop()
        }

        /// Queries on the state database, by one Python sqlite3 process for the whole test (not ours: the test does
        /// not share the server's reader); each query opens the database anew, so a restored state is seen.
        lazy var sql = SQLReader(dir.appendingPathComponent("state/state.sqlite").path)

        /// A request as `who` (by its token) with a reason.
        func call(
            _ method: String, _ path: String, as who: String, body: String? = nil, reason: String = "api tests"
        ) throws -> Reply {
            try APITests.send(
                port, method, path,
                headers: [("Authorization", "Bearer \(tokens[who] ?? "")"), ("Tripline-Reason", reason)],
                body: body.map { Array($0.utf8) } ?? [])
        }

        /// Audit records of `kind`, in order: their payloads (principal, reason, detail).
        func audited(_ kind: String) -> [JSONObject] {
            sql.query(
                "select p.payload from audit_records r join audit_payloads p on p.idx = r.idx "
                    + "where json_extract(r.record, '$.kind') = '\(kind)' order by r.idx"
            ).split(separator: "\n").compactMap { try? JSONParser.parse(String($0)).objectValue }
        }
    }

    /// A Python sqlite3 process answering one query per line (rows `|`-separated, a record separator after each
    /// answer), so that a test making hundreds of queries does not start hundreds of interpreters.
    final class SQLReader: @unchecked Sendable {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        var buffer = Data()

        init(_ path: String) {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "python3", "-u", "-c",
                """
                import sqlite3, sys
                for line in sys.stdin:
                    try:
                        c = sqlite3.connect(sys.argv[1], timeout=10)
                        out = '\\n'.join('|'.join(map(str, r)) for r in c.execute(line).fetchall())
                        c.close()
                    except Exception as e:
                        out = 'error: %s' % e
                    sys.stdout.write(out + '\\n\\x1e\\n')
                    sys.stdout.flush()
                """,
                path,
            ]
            process.standardInput = input
            process.standardOutput = output
            try? process.run()
        }

        func query(_ sql: String) -> String {
            guard process.isRunning else { return "" }
            input.fileHandleForWriting.write(Data((sql.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
            let end = Data("\n\u{1e}\n".utf8)
            while buffer.range(of: end) == nil {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { return "" }
                buffer += chunk
            }
            let r = buffer.range(of: end)!
            let answer = String(decoding: buffer[buffer.startIndex..<r.lowerBound], as: UTF8.self)
            buffer = Data(buffer[r.upperBound...])
            return answer.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func stop() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    // MARK: HTTP over a plain socket

    struct Reply {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: JSONObject? { try? JSONParser.parse(text).objectValue }
    }

    /// One HTTP/1.1 exchange on its own connection; every byte of the request is the caller's (an empty or odd
    /// `Authorization` goes out exactly as written, as no HTTP client library would let it).
    static func send(
        _ port: Int, _ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8] = []
    ) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestFailure("connect to \(port): \(errno)") }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { head += "Content-Length: \(body.count)\r\n" }
        let request = Array((head + "\r\n").utf8) + body
        var off = 0
        while off < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            guard n > 0 else { throw TestFailure("write: \(errno)") }
            off += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            answer += buffer[0..<n]
        }
        guard let end = answer.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw TestFailure("no HTTP answer from \(method) \(path): \(String(decoding: answer, as: UTF8.self))")
        }
        let lines = String(decoding: answer[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw TestFailure("bad status line \(lines[0])")
        }
        var fields: [(String, String)] = []
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: ":") else { continue }
            fields.append((String(l[..<colon]), l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var content = Array(answer[end.upperBound...])
        let reply = Reply(status: status, headers: fields, body: [])
        if reply.header("Transfer-Encoding")?.lowercased() == "chunked" {
            var decoded: [UInt8] = []
            var rest = content[...]
            while let lineEnd = rest.firstRange(of: Array("\r\n".utf8)),
                let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16), size > 0
            {
                decoded += rest[lineEnd.upperBound..<lineEnd.upperBound + size]
                rest = rest[(lineEnd.upperBound + size + 2)...]
            }
            content = decoded
        } else if let length = reply.header("Content-Length").flatMap({ Int($0) }) {
            content = Array(content.prefix(length))
        }
        return Reply(status: status, headers: fields, body: content)
    }

    // MARK: The document and the routes

    static let documentPath = repositoryRoot.appendingPathComponent("Sources/TriplineHTTP/Resources/openapi.json")

    static func document() throws -> JSONObject {
        let text = try String(contentsOf: documentPath, encoding: .utf8)
        return try #require(try JSONParser.parse(text).objectValue)
    }

    /// `METHOD /path` of every operation the document describes.
    static func documentedOperations(_ doc: JSONObject) -> Set<String> {
        var out = Set<String>()
        for (path, item) in doc["paths"]?.objectValue ?? JSONObject() {
            for method in item.objectValue?.keys ?? []
            where ["get", "put", "post", "delete", "patch", "head", "options"].contains(method) {
                out.insert("\(method.uppercased()) \(path)")
            }
        }
        return out
    }

    /// The router's own routes (Hummingbird's `Router.routes` of `API.router`, the router `serve` runs) and the
    /// document's operations are the same set: a route added without its description fails here, and the reverse.
    @Test("the OpenAPI 3.1 document describes exactly the routes the router has, each with its errors")
    func documentMatchesRoutes() throws {
        let doc = try Self.document()
        #expect(doc["openapi"] == .string("3.1.0"))
        let routes = Set(API.routes.map { "\($0.method) \($0.path)" })
        #expect(routes.count == API.routes.count)
        let documented = Self.documentedOperations(doc)
        #expect(routes.subtracting(documented).sorted() == [], "routes the document does not describe")
        #expect(documented.subtracting(routes).sorted() == [], "operations the router does not have")
        // SPEC §10's watchlist and export routes are among them.
        for r in [
            "GET /v1/watchlists", "PUT /v1/watchlists/{owner}/{list}", "GET /v1/watchlists/{owner}/{list}",
            "DELETE /v1/watchlists/{owner}/{list}", "GET /v1/watchlists/{owner}/{list}/versions",
            "POST /v1/audit/exports",
        ] {
            #expect(routes.contains(r), "\(r)")
        }
        // Nothing alters or erases the audit log over the API: its routes read, and export.
        #expect(
            routes.filter { $0.contains(" /v1/audit/") }.sorted() == [
                "GET /v1/audit/checkpoint", "GET /v1/audit/proof/consistency", "GET /v1/audit/proof/inclusion",
                "GET /v1/audit/records", "POST /v1/audit/exports",
            ])
        // Bearer tokens everywhere but the health probes; each authenticated operation documents 401 and 429, each
        // body its 413, each problem as application/problem+json.
        let scheme = JSONValue.object(doc)[path: "components.securitySchemes.bearer"]?.objectValue
        #expect(scheme?["type"] == .string("http") && scheme?["scheme"] == .string("bearer"))
        // Or, over TLS with a client CA, a client certificate (the alternative of the global requirement).
        let mutual = JSONValue.object(doc)[path: "components.securitySchemes.mutualTLS"]?.objectValue
        #expect(mutual?["type"] == .string("mutualTLS"))
        #expect(
            doc["security"]
                == .array([
                    .object(JSONObject([("bearer", .array([]))])), .object(JSONObject([("mutualTLS", .array([]))])),
                ]))
        let responses = try #require(JSONValue.object(doc)[path: "components.responses"]?.objectValue)
        for (name, r) in responses {
            #expect(r[path: "content"]?.objectValue?.keys == ["application/problem+json"], "\(name)")
        }
        #expect(responses["TooManyRequests"]?[path: "headers.Retry-After"] != nil)
        #expect(responses["Unauthorized"]?[path: "headers.WWW-Authenticate"] != nil)
        var missing: [String] = []
        for (path, item) in doc["paths"]?.objectValue ?? JSONObject() {
            for (method, op) in item.objectValue ?? JSONObject() where method != "parameters" {
                let codes = Set(op[path: "responses"]?.objectValue?.keys ?? [])
                let open = op[path: "security"] == .array([])
                // Open: the probes, and acknowledge links (the token in the path is the credential).
                #expect(
                    open == ["/healthz", "/readyz", "/v1/ack/{token}"].contains(path), "\(method) \(path) security")
                var want: Set<String> = open ? [] : ["401", "429"]
                if op[path: "requestBody"] != nil { want.insert("413") }
                if !codes.isSuperset(of: want) { missing.append("\(method) \(path): \(want.subtracting(codes))") }
            }
        }
        #expect(missing == [])
    }

    // MARK: Authentication

    /// A small deployment: one list, the principals the authentication tests use.
    static func smallDeployment(_ tag: String) throws -> URL {
        let dir = scratchDirectory(tag)
        let lists = dir.appendingPathComponent("Watchlists/be-fedpol")
        try FileManager.default.createDirectory(at: lists, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
        try """
        watchlist: rf
        owner: be-fedpol
        review_by: 2099-01-01
        entries:
          - {ref: BE-1, selectors: [{type: phone, value: "+32470000001"}]}
        """.write(to: lists.appendingPathComponent("rf.yaml"), atomically: true, encoding: .utf8)
        try """
        rules: Rules
        watchlists: Watchlists
        state: state/state.sqlite
        operator: ops
        partners:
          - {id: ops, name: Ops, countries: [], contact: ops@example}
          - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
        principals:
          - {id: admin, partner: ops, role: admin}
          - {id: auditor, partner: ops, role: auditor}
          - {id: partner-be, partner: be-fedpol, role: partner}
          - {id: analyst-gone, partner: be-fedpol, role: analyst}
        receivers:
          - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
        route: {receiver: log, group_wait: 0s}
        audit: {origin: test.example/audit, key_file: audit.key}
        """.write(to: dir.appendingPathComponent("tripline.yaml"), atomically: true, encoding: .utf8)
        let key = try CLITests.run(["audit", "keygen", "--out", "audit.key"], cwd: dir)
        guard key.status == 0 else { throw TestFailure(key.stderr) }
        return dir
    }

    /// MISP's key tests, for bearer tokens: whatever is wrong with the credential — none, empty, another scheme, the
    /// wrong length, the right prefix and length with a wrong middle, expired, revoked, its principal removed from
    /// the configuration at a reload — the answer is 401 with one byte-identical body, and each is audited
    /// (`auth_failed`) with its cause, the method and the path.
    @Test("every bad credential: 401, one byte-identical body, audited with its cause")
    func authentication() throws {
        let dir = try Self.smallDeployment("api-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        let admin = try server.issue("admin").token
        let revoked = try server.issue("partner-be")
        let gone = try server.issue("analyst-gone").token
        try server.start()
        defer { server.stop() }
        let port = server.port

        // The valid tokens work (each of them, before it is made invalid).
        for who in ["admin", "partner-be", "analyst-gone"] {
            #expect(try server.call("GET", "/v1/openapi.json", as: who).status == 200, "\(who)")
        }
        // The health probes need no credential.
        #expect(try Self.send(port, "GET", "/healthz").status == 200)
        #expect(try Self.send(port, "GET", "/readyz").status == 200)

        // A token with a 1-second life, tried after it ended.
        let expiring = try server.issue("auditor", expires: "1s").token
        Thread.sleep(forTimeInterval: 1.5)
        // partner-be's token revoked by admin on the local database.
        let rv = try CLITests.run(
            ["tokens", "revoke", revoked.id, "--config", "tripline.yaml", "--as", "admin", "--reason", "leaked"],
            cwd: dir)
        #expect(rv.status == 0, "\(rv.stderr)")

        var middle = Array(admin)
        middle[20] = middle[20] == "A" ? "B" : "A"  // same prefix, same length, one character changed
        let cases: [(what: String, method: String, path: String, header: String?, cause: String)] = [
            ("no header", "GET", "/v1/alerts", nil, "missing"),
            ("an empty header", "GET", "/v1/alerts", "", "missing"),
            ("another scheme (Basic)", "GET", "/metrics", "Basic YWRtaW46YWRtaW4=", "malformed"),
            ("another scheme with a valid token", "POST", "/v1/audit/exports", "Token \(admin)", "malformed"),
            ("the scheme alone", "GET", "/v1/openapi.json", "Bearer", "malformed"),
            ("too short", "GET", "/v1/tokens", "Bearer tl_abc", "malformed"),
            ("one character too long", "GET", "/v1/tokens", "Bearer \(admin)A", "malformed"),
            ("the wrong prefix", "GET", "/v1/tokens", "Bearer tk_" + String(admin.dropFirst(3)), "malformed"),
            (
                "a character outside base64url", "GET", "/v1/tokens", "Bearer " + String(admin.dropLast()) + "+",
                "malformed"
            ),
            (
                "the right prefix and length, a wrong middle", "DELETE", "/v1/tokens/tok_x", "Bearer \(String(middle))",
                "unknown"
            ),
            ("expired", "GET", "/v1/audit/records", "Bearer \(expiring)", "expired"),
            ("revoked", "POST", "/v1/silences", "Bearer \(revoked.token)", "revoked"),
        ]
        var replies: [(String, Reply)] = []
        for c in cases {
            let headers =
                c.header.map { [("Authorization", $0), ("Tripline-Reason", "r")] } ?? [("Tripline-Reason", "r")]
            replies.append((c.what, try Self.send(port, c.method, c.path, headers: headers)))
        }
        // A token in the query string is no credential.
        replies.append(("a token in the query", try Self.send(port, "GET", "/v1/alerts?access_token=\(admin)")))

        // analyst-gone removed from the configuration; SIGHUP reloads it; its token is dead.
        let config = dir.appendingPathComponent("tripline.yaml")
        let before = server.audited("config_reloaded").count
        try String(contentsOf: config, encoding: .utf8).replacingOccurrences(
            of: "  - {id: analyst-gone, partner: be-fedpol, role: analyst}\n", with: ""
        ).write(to: config, atomically: true, encoding: .utf8)
        server.hup()
        #expect(waitUntil(20) { server.audited("config_reloaded").count > before }, "the reload was not recorded")
        replies.append(
            (
                "principal removed",
                try Self.send(port, "GET", "/v1/openapi.json", headers: [("Authorization", "Bearer \(gone)")])
            ))

        let reference = Array(#"{"type":"about:blank","title":"Unauthorized","status":401}"#.utf8)
        for (what, r) in replies {
            #expect(r.status == 401, "\(what)")
            #expect(r.body == reference, "\(what): \(r.text)")
            #expect(r.header("Content-Type") == "application/problem+json", "\(what)")
            #expect(r.header("WWW-Authenticate") == "Bearer", "\(what)")
        }
        // The admin token still works: nothing above locked it out.
        #expect(try server.call("GET", "/v1/openapi.json", as: "admin").status == 200)

        // Every failure audited, in order, with its cause, method and path (never the credential itself).
        let audited = server.audited("auth_failed").map { p -> String in
            let d = p["detail"]?.objectValue
            return
                "\(p["reason"]?.stringValue ?? "?") \(d?["method"]?.stringValue ?? "?") \(d?["path"]?.stringValue ?? "?")"
        }
        let expected =
            cases.map { "\($0.cause) \($0.method) \($0.path)" } + [
                "missing GET /v1/alerts", "principal removed GET /v1/openapi.json",
            ]
        #expect(audited == expected)
        let log = ServeTests.query(dir, "select payload from audit_payloads")
        #expect(!log.contains(admin) && !log.contains(expiring) && !log.contains(gone) && !log.contains(revoked.token))
    }

    @Test("a principal over its request budget: 429 with Retry-After, as problem+json; other principals unaffected")
    func rateLimit() throws {
        let dir = try Self.smallDeployment("api-rate")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir, http: ", rate_limit: 1, rate_burst: 2")
        try server.issue("admin")
        try server.issue("auditor")
        try server.start()
        defer { server.stop() }
        let first = try server.call("GET", "/v1/openapi.json", as: "admin")
        let second = try server.call("GET", "/v1/openapi.json", as: "admin")
        let third = try server.call("GET", "/v1/openapi.json", as: "admin")
        #expect([first.status, second.status, third.status] == [200, 200, 429] as [Int])
        let wait = try #require(third.header("Retry-After").flatMap { Int($0) })
        #expect(wait >= 1)
        #expect(third.header("Content-Type") == "application/problem+json")
        #expect(third.json?["status"] == .number("429"))
        #expect(try server.call("GET", "/v1/openapi.json", as: "auditor").status == 200)
    }
}
