import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// The API over TLS (SPEC §10, `http.tls`): real HTTPS on loopback through curl, with throwaway CAs and certificates
/// made by the openssl command line. A verified client certificate stands for a principal by its subject; a request
/// with `Authorization` is judged by its token alone; every authentication failure is the one byte-identical 401,
/// audited with its cause; a certificate the client CA did not sign, or an expired one, fails the TLS handshake.
@Suite("HTTP API over TLS", .serialized)
struct APITLSTests {
    // MARK: Throwaway certificates

    /// A certificate authority in `dir` (an EC P-256 key and a self-signed certificate) issuing server and client
    /// certificates with the openssl command line.
    struct CA {
        let dir: URL
        let name: String
        var cert: String { dir.appendingPathComponent("\(name).pem").path }
        var key: String { dir.appendingPathComponent("\(name).key").path }
        var config: String { dir.appendingPathComponent("\(name).cnf").path }

        init(_ dir: URL, name: String) throws {
            self.dir = dir
            self.name = name
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let db = dir.appendingPathComponent("\(name)-db")
            try FileManager.default.createDirectory(at: db, withIntermediateDirectories: true)
            try Data().write(to: db.appendingPathComponent("index.txt"))
            try "1000\n".write(to: db.appendingPathComponent("serial"), atomically: true, encoding: .utf8)
            try """
            [req]
            distinguished_name = dn
            prompt = no
            [dn]
            [ca_ext]
            basicConstraints = critical,CA:TRUE
            keyUsage = critical,keyCertSign,cRLSign
            subjectKeyIdentifier = hash
            [server_ext]
            basicConstraints = CA:FALSE
            keyUsage = critical,digitalSignature
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:localhost,IP:127.0.0.1
            [client_ext]
            basicConstraints = CA:FALSE
            keyUsage = critical,digitalSignature
            extendedKeyUsage = clientAuth
            [ca]
            default_ca = this_ca
            [this_ca]
            database = \(db.path)/index.txt
            new_certs_dir = \(db.path)
            serial = \(db.path)/serial
            default_md = sha256
            policy = any
            unique_subject = no
            [any]
            commonName = supplied
            """.write(toFile: config, atomically: true, encoding: .utf8)
            try Self.openssl(
                [
                    "req", "-x509", "-config", config, "-extensions", "ca_ext", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj",
                    "/CN=\(name)",
                ])
        }

        /// A certificate for `subject` (openssl's `/A=v/B=w` form, most significant first) with `ext` (`client_ext`
        /// or `server_ext`), valid for two days from now; `expired`: valid for one day in 2020 only.
        func issue(_ file: String, subject: String, ext: String = "client_ext", expired: Bool = false) throws -> (
            cert: String, key: String
        ) {
            let cert = dir.appendingPathComponent("\(file).pem").path
            let key = dir.appendingPathComponent("\(file).key").path
            let csr = dir.appendingPathComponent("\(file).csr").path
            try Self.openssl(
                [
                    "req", "-new", "-config", config, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", subject,
                ])
            if expired {
                // `openssl x509 -req` of OpenSSL 3.0 cannot date a certificate in the past; `openssl ca` can.
                try Self.openssl(
                    [
                        "ca", "-batch", "-config", config, "-cert", self.cert, "-keyfile", self.key, "-in", csr,
                        "-out", cert, "-notext", "-extensions", ext, "-startdate", "20200101000000Z", "-enddate",
                        "20200102000000Z",
                    ])
            } else {
                try Self.openssl(
                    [
                        "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-set_serial",
                        String(UInt32.random(in: 1...UInt32.max)), "-days", "2", "-extfile", config, "-extensions",
                        ext, "-out", cert,
                    ])
            }
            return (cert, key)
        }

        static func openssl(_ arguments: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["openssl"] + arguments
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            let said = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw TestFailure(
                    "openssl \(arguments.joined(separator: " ")): \(String(decoding: said, as: UTF8.self))")
            }
        }
    }

    // MARK: HTTPS through curl

    /// curl's exit status (0, or why it failed: 56 when the server's TLS alert ends the exchange), its error text,
    /// and the answer when there was one (status 0 when there was none).
    struct Exchange {
        var exit: Int32
        var error: String
        var reply: APITests.Reply
    }

    /// One HTTPS request with curl, trusting `ca`, with a client certificate and an `Authorization` header when given.
    static func curl(
        _ port: Int, _ path: String, ca: String, cert: (cert: String, key: String)? = nil, authorization: String? = nil,
        reason: String = "tls tests", scratch: URL
    ) throws -> Exchange {
        let body = scratch.appendingPathComponent("curl-body-\(UUID().uuidString)")
        let head = scratch.appendingPathComponent("curl-head-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: body)
            try? FileManager.default.removeItem(at: head)
        }
        var arguments = [
            "curl", "-sS", "--max-time", "30", "--cacert", ca, "-o", body.path, "-D", head.path, "-w", "%{http_code}",
            "-H", "Tripline-Reason: \(reason)",
        ]
        if let cert { arguments += ["--cert", cert.cert, "--key", cert.key] }
        if let authorization { arguments += ["-H", "Authorization: \(authorization)"] }
        arguments.append("https://127.0.0.1:\(port)\(path)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let code = out.fileHandleForReading.readDataToEndOfFile()
        let said = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var fields: [(String, String)] = []
        let headText = (try? String(contentsOf: head, encoding: .utf8)) ?? ""
        for line in headText.components(separatedBy: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append(
                (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let bytes = (try? Data(contentsOf: body)).map { Array($0) } ?? []
        return Exchange(
            exit: p.terminationStatus,
            error: String(decoding: said, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
            reply: APITests.Reply(
                status: Int(String(decoding: code, as: UTF8.self)) ?? -1, headers: fields, body: bytes))
    }

    /// The authorisation deployment with TLS on: a server certificate for 127.0.0.1, client certificates of the
    /// client CA, and analyst-be named by an explicit subject (written in another spelling than the certificate's,
    /// with an escaped comma).
    static func tlsDeployment() throws -> (dir: URL, ca: CA, other: CA, server: APITests.Server) {
        let dir = try AuthorizationTests.deployment()
        let pki = dir.appendingPathComponent("pki")
        let ca = try CA(pki, name: "client-ca")
        let other = try CA(pki, name: "other-ca")
        _ = try ca.issue("server", subject: "/CN=localhost", ext: "server_ext")
        let config = dir.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: config, encoding: .utf8)
        let analyst = "  - {id: analyst-be, partner: be-fedpol, role: analyst}\n"
        #expect(text.contains(analyst))
        try text.replacingOccurrences(
            of: analyst,
            with:
                #"  - {id: analyst-be, partner: be-fedpol, role: analyst, subject: 'cn = Analyst BE, ou=Liaison\, Brussels, o=Federal Police, c=BE'}"#
                + "\n"
        ).write(to: config, atomically: true, encoding: .utf8)
        let server = try APITests.Server(
            dir: dir,
            http: ", tls: {cert_file: pki/server.pem, key_file: pki/server.key, client_ca_file: pki/client-ca.pem}")
        return (dir, ca, other, server)
    }

    static let unauthorized = Array(#"{"type":"about:blank","title":"Unauthorized","status":401}"#.utf8)

    // MARK: Tests

    @Test("client certificates over TLS: a principal by subject, the token first, one 401, handshake refusals")
    func clientCertificates() throws {
        let (dir, ca, other, server) = try Self.tlsDeployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let auditor = try server.issue("auditor").token
        let port = server.port
        func https(
            _ path: String, cert: (cert: String, key: String)? = nil, authorization: String? = nil
        ) throws -> Exchange {
            try Self.curl(port, path, ca: ca.cert, cert: cert, authorization: authorization, scratch: dir)
        }
        try server.start(ready: { (try? https("/healthz"))?.reply.status == 200 })
        defer { server.stop() }
        let log = try String(contentsOf: dir.appendingPathComponent("serve.log"), encoding: .utf8)
        #expect(log.contains("API listening on https://127.0.0.1:\(port)"), "\(log)")

        let partnerBE = try ca.issue("partner-be", subject: "/CN=partner-be")
        let analystDN = try ca.issue(
            "analyst-be-dn", subject: "/C=BE/O=Federal Police/OU=Liaison, Brussels/CN=Analyst BE")
        let analystCN = try ca.issue("analyst-be-cn", subject: "/CN=analyst-be")
        let unknown = try ca.issue("unknown-x", subject: "/CN=unknown-x")
        let analystFR = try ca.issue("analyst-fr", subject: "/CN=analyst-fr")
        let foreign = try other.issue("foreign-partner-be", subject: "/CN=partner-be")
        let expired = try ca.issue("expired-partner-be", subject: "/CN=partner-be", expired: true)

        // A certificate whose common name is a principal's id, no token: that principal, its view (the one alert on
        // its own list), audited with the certificate's subject and no token.
        let asPartner = try https("/v1/alerts", cert: partnerBE)
        #expect(asPartner.exit == 0 && asPartner.reply.status == 200, "\(asPartner.error) \(asPartner.reply.text)")
        #expect(asPartner.reply.json?["alerts"]?.arrayValue?.count == 1)
        let partnerRecord = try #require(server.audited("consultation").last)
        #expect(partnerRecord["principal"] == .string("partner-be"))
        #expect(partnerRecord["reason"] == .string("tls tests"))
        #expect(partnerRecord["detail"]?.objectValue?["certificate"] == .string("CN=partner-be"))
        #expect(partnerRecord["detail"]?.objectValue?["token"] == nil)
        // The certificate's principal gets what its role allows, no more: the audit records are the auditor's.
        #expect(try https("/v1/audit/records", cert: partnerBE).reply.status == 403)

        // A principal with `subject:` is matched by that subject (another spelling, the comma escaped) ...
        let asAnalyst = try https("/v1/alerts", cert: analystDN)
        #expect(asAnalyst.reply.status == 200, "\(asAnalyst.error) \(asAnalyst.reply.text)")
        #expect(asAnalyst.reply.json?["alerts"]?.arrayValue?.count == 1)
        let analystRecord = try #require(server.audited("consultation").last)
        #expect(analystRecord["principal"] == .string("analyst-be"))
        #expect(
            analystRecord["detail"]?.objectValue?["certificate"]
                == .string(#"CN=Analyst BE,OU=Liaison\, Brussels,O=Federal Police,C=BE"#))
        // ... and no longer by its id as common name.
        let byCN = try https("/v1/alerts", cert: analystCN)

        // A bearer token over TLS without a client certificate; a token with a certificate of another principal:
        // the token's principal (partner-be's certificate would be refused the audit records).
        let tokenOnly = try https("/v1/audit/records", authorization: "Bearer \(auditor)")
        #expect(tokenOnly.exit == 0 && tokenOnly.reply.status == 200, "\(tokenOnly.error) \(tokenOnly.reply.text)")
        let tokenAndCert = try https("/v1/audit/records", cert: partnerBE, authorization: "Bearer \(auditor)")
        #expect(tokenAndCert.reply.status == 200, "\(tokenAndCert.reply.text)")
        let tokenRecords = server.audited("audit_consultation")
        #expect(tokenRecords.count == 2)
        #expect(tokenRecords.first?["principal"] == .string("auditor"))
        let tokenRecord = try #require(tokenRecords.last)
        #expect(tokenRecord["principal"] == .string("auditor"))
        #expect(tokenRecord["detail"]?.objectValue?["token"]?.stringValue?.hasPrefix("tok_") == true)
        #expect(tokenRecord["detail"]?.objectValue?["certificate"] == nil)

        // A bad token with a good certificate, an unknown subject, no credential at all: the one 401.
        let badToken = try https(
            "/v1/alerts", cert: partnerBE, authorization: "Bearer tl_" + String(repeating: "A", count: 43))
        let unknownSubject = try https("/v1/silences", cert: unknown)
        let nothing = try https("/v1/outbox")

        // analyst-fr's certificate works until analyst-fr is removed from the configuration (SIGHUP).
        #expect(try https("/v1/silences", cert: analystFR).reply.status == 200)
        let config = dir.appendingPathComponent("tripline.yaml")
        let before = server.audited("config_reloaded").count
        try String(contentsOf: config, encoding: .utf8).replacingOccurrences(
            of: "  - {id: analyst-fr, partner: fr-dgsi, role: analyst}\n", with: ""
        ).write(to: config, atomically: true, encoding: .utf8)
        server.hup()
        #expect(waitUntil(20) { server.audited("config_reloaded").count > before }, "the reload was not recorded")
        let removed = try https("/v1/silences", cert: analystFR)

        for (what, e) in [
            ("CN of a principal with subject:", byCN), ("bad token, good certificate", badToken),
            ("unknown subject", unknownSubject), ("no credential", nothing), ("principal removed", removed),
        ] {
            #expect(e.exit == 0 && e.reply.status == 401, "\(what): \(e.error)")
            #expect(e.reply.body == Self.unauthorized, "\(what): \(e.reply.text)")
            #expect(e.reply.header("Content-Type") == "application/problem+json", "\(what)")
            #expect(e.reply.header("WWW-Authenticate") == "Bearer", "\(what)")
        }
        let failures = server.audited("auth_failed").map { p -> String in
            let d = p["detail"]?.objectValue
            return [
                p["reason"]?.stringValue ?? "?", d?["method"]?.stringValue ?? "?", d?["path"]?.stringValue ?? "?",
                d?["certificate"]?.stringValue ?? "-",
            ].joined(separator: " ")
        }
        #expect(
            failures == [
                "certificate unknown GET /v1/alerts CN=analyst-be", "unknown GET /v1/alerts -",
                "certificate unknown GET /v1/silences CN=unknown-x", "missing GET /v1/outbox -",
                "certificate unknown GET /v1/silences CN=analyst-fr",
            ])

        // A certificate the client CA did not sign, and an expired one of that CA: the server's TLS alert ends the
        // handshake (curl 56 once TLS 1.3 has sent the request), no HTTP answer, nothing reaches the API.
        let requests = server.audited("consultation").count
        let refusedCA = try https("/v1/alerts", cert: foreign)
        #expect(refusedCA.exit == 56 && refusedCA.reply.status == 0, "\(refusedCA.error)")
        #expect(refusedCA.error.contains("alert unknown ca"), "\(refusedCA.error)")
        let refusedExpired = try https("/v1/alerts", cert: expired)
        #expect(refusedExpired.exit == 56 && refusedExpired.reply.status == 0, "\(refusedExpired.error)")
        #expect(refusedExpired.error.contains("alert certificate expired"), "\(refusedExpired.error)")
        // The client CA's own server certificate is no client certificate (its extended key usage is serverAuth).
        let pki = dir.appendingPathComponent("pki")
        let serverAsClient = try https(
            "/v1/alerts",
            cert: (pki.appendingPathComponent("server.pem").path, pki.appendingPathComponent("server.key").path))
        #expect(serverAsClient.exit == 56 && serverAsClient.reply.status == 0, "\(serverAsClient.error)")
        #expect(serverAsClient.error.contains("alert unsupported certificate"), "\(serverAsClient.error)")
        #expect(server.audited("consultation").count == requests)
        #expect(server.audited("auth_failed").count == failures.count)

        // Plain HTTP to the TLS port gets no HTTP answer.
        #expect(throws: TestFailure.self) { try APITests.send(port, "GET", "/healthz") }
        // The server is still up and answers over TLS.
        #expect(try https("/readyz").reply.status == 200)
    }

    @Test("serve stops with exit 2 naming the TLS file that is missing, unreadable or not usable")
    func tlsFiles() throws {
        let (dir, ca, _, _) = try Self.tlsDeployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: config, encoding: .utf8)
        let pki = dir.appendingPathComponent("pki")
        let another = try ca.issue("another", subject: "/CN=another", ext: "server_ext")
        try FileManager.default.createDirectory(
            at: pki.appendingPathComponent("a-directory"), withIntermediateDirectories: true)
        try "not a certificate\n".write(to: pki.appendingPathComponent("junk.pem"), atomically: true, encoding: .utf8)
        for (tls, expected) in [
            (
                "cert_file: pki/missing.pem, key_file: pki/server.key",
                "tripline: http.tls: pki/missing.pem: no such file"
            ),
            (
                "cert_file: pki/server.pem, key_file: pki/a-directory",
                "tripline: http.tls: pki/a-directory: cannot be read"
            ),
            (
                "cert_file: pki/junk.pem, key_file: pki/server.key",
                "tripline: http.tls: pki/junk.pem: the certificate chain could not be read as PEM certificates"
            ),
            (
                "cert_file: pki/server.pem, key_file: pki/junk.pem",
                "tripline: http.tls: pki/junk.pem: not a PEM private key, or an encrypted one"
            ),
            (
                "cert_file: pki/server.pem, key_file: pki/server.key, client_ca_file: pki/missing-ca.pem",
                "tripline: http.tls: pki/missing-ca.pem: no such file"
            ),
            (
                "cert_file: pki/server.pem, key_file: \(another.key)",
                "tripline: http.tls: \(another.key): the private key cannot be used with the certificate of pki/server.pem"
            ),
        ] {
            try text.replacingOccurrences(
                of: "cert_file: pki/server.pem, key_file: pki/server.key, client_ca_file: pki/client-ca.pem", with: tls
            ).write(to: config, atomically: true, encoding: .utf8)
            let r = try CLITests.run(["serve", "--config", "tripline.yaml"], stdin: "", cwd: dir)
            #expect(r.status == 2, "\(tls): \(r.stderr)")
            #expect(r.stderr.contains(expected), "\(tls): \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error"), "\(r.stderr)")
        }
    }

    @Test("check: a principal's subject is an RFC 4514 string, one per principal, errors at file:line:col")
    func principalSubjectConfig() throws {
        let dir = try ServeTests.deployment(entries: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: path, encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let at = try #require(lines.firstIndex(of: "principals:"))
        func check(_ principals: [String], http: String? = nil) throws -> CLITests.Run {
            var edited = lines
            edited.insert(contentsOf: principals, at: at + 1)
            if let http { edited.append(http) }
            try edited.joined(separator: "\n").write(to: path, atomically: true, encoding: .utf8)
            return try CLITests.run(["check", "--config", "tripline.yaml"], cwd: dir)
        }
        let line = at + 2  // the first inserted principal's line, 1-based
        // One subject, two spellings (case of the types, spaces, an escaped comma as \, and as \2C; YAML's single
        // quotes keep the backslashes): the same name.
        let same = try check([
            #"  - {id: liaison-a, partner: ops, role: analyst, subject: 'CN=Liaison,O=Police\, Federal,C=BE'}"#,
            #"  - {id: liaison-b, partner: ops, role: analyst, subject: 'cn=Liaison, o=Police\2C Federal , C = BE'}"#,
        ])
        #expect(same.status == 1)
        #expect(
            same.stderr.contains(
                #"tripline.yaml:\#(line + 1):59: principals "liaison-a" and "liaison-b" have the same subject "CN=Liaison,O=Police\, Federal,C=BE""#
            ), "\(same.stderr)")
        // Different values are different subjects (values compare exactly, case included): accepted.
        let distinct = try check([
            #"  - {id: liaison-a, partner: ops, role: analyst, subject: "CN=Liaison,O=Police,C=BE"}"#,
            #"  - {id: liaison-b, partner: ops, role: analyst, subject: "CN=liaison,O=Police,C=BE"}"#,
        ])
        #expect(distinct.status == 0, "\(distinct.stderr)")
        let list = try check([#"  - {id: liaison-a, partner: ops, role: analyst, subject: [CN=Liaison]}"#])
        #expect(list.status == 1)
        #expect(list.stderr.contains("tripline.yaml:\(line):59: \"subject\" must be a string"), "\(list.stderr)")
        let malformed = try check([#"  - {id: liaison-a, partner: ops, role: analyst, subject: "Liaison"}"#])
        #expect(malformed.status == 1)
        #expect(
            malformed.stderr.contains(
                "tripline.yaml:\(line):59: \"subject\" is a distinguished name as RFC 4514 writes it"),
            "\(malformed.stderr)")
        // Two principals with one id would share every credential: refused at the second.
        let twice = try check([
            #"  - {id: liaison-a, partner: ops, role: analyst}"#, #"  - {id: liaison-a, partner: ops, role: admin}"#,
        ])
        #expect(twice.status == 1)
        #expect(
            twice.stderr.contains("tripline.yaml:\(line + 1):5: duplicate principal \"liaison-a\""), "\(twice.stderr)")
        // A client CA without the server's certificate and key would leave the API on plain HTTP: refused.
        let caOnly = try check([], http: "http: {listen: \"127.0.0.1:9466\", tls: {client_ca_file: ca.pem}}")
        #expect(caOnly.status == 1)
        #expect(
            caOnly.stderr.contains(
                "tripline.yaml:\(lines.count + 1):39: \"tls\" needs both cert_file and key_file"),
            "\(caOnly.stderr)")
    }
}
