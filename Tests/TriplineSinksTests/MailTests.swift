import Foundation
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineSinks
import TriplineState
import TriplineTestSupport

/// The mail sink against a real SMTP server (aiosmtpd), every received message parsed back by Python's `email`
/// package: plain, STARTTLS with AUTH PLAIN, implicit TLS with AUTH LOGIN, failures and timeouts.
@Suite("mail delivery", .serialized)
struct MailTests {
    static let label = "Opération Zaïd — تجربة الاسم الطويل"
    static let template =
        ".leading dot stays\n.\n..two dots\nline with trailing space \n" + String(repeating: "é", count: 60)

    static func payload(id: String = UUID().uuidString.lowercased(), status: String = "firing") -> JSONObject {
        var view = JSONObject()
        view.append("alert_id", .number("7"))
        view.append("key", .string("wl:be-fedpol/op-zaid/E1"))
        view.append("state", .string(status))
        view.append("priority", .string("critical"))
        view.append("kind", .string("watchlist"))
        view.append(
            "labels",
            .object(
                JSONObject([("owner", .string("be-fedpol")), ("list", .string("op-zaid")), ("ref", .string("E1"))])))
        view.append("count", .number("3"))
        view.append("watchlist", .object(JSONObject([("label", .string(label))])))
        view.append("selector", .object(JSONObject([("type", .string("phone")), ("value", .string("+32470000001"))])))
        var p = JSONObject()
        p.append("notification_id", .string(id))
        p.append("receiver", .string("be-oncall"))
        p.append("status", .string(status))
        p.append("alerts", .array([.object(view)]))
        return p
    }

    static func config() -> AlertsConfig {
        var c = AlertsConfig(
            route: Route(
                receiver: "be-oncall", matchers: [], groupBy: [], groupWait: 0, groupInterval: 60, repeatInterval: 60,
                continue: false, routes: [], index: 0),
            handleKey: Array("k".utf8))
        c.templates = [try! Template(name: "brief", text: template)]
        return c
    }

    static func receiver(_ ec: [(String, String)]) -> Receiver {
        var r = Receiver(name: "be-oncall", partner: "be-fedpol")
        r.emailConfigs = [JSONObject(ec.map { ($0.0, JSONValue.string($0.1)) })]
        return r
    }

    static func deliver(_ ec: [(String, String)], payload: JSONObject = payload()) async throws(DeliveryFailure) {
        try await MailSink().deliver(
            OutboxItem(receiver: "be-oncall", priorityRank: 4, createdAt: 0, nextAttemptAt: 0, payload: payload),
            to: receiver(ec), config: config())
    }

    static func basic(_ port: Int, host: String = "127.0.0.1") -> [(String, String)] {
        [
            ("to", "On-call <oncall@fedpol.example>, desk@fedpol.example"), ("from", "Tripline <tripline@ops.example>"),
            ("smarthost", "\(host):\(port)"), ("require_tls", "false"), ("template", "brief"), ("timeout", "60s"),
        ]
    }

    @Test("RFC 5322 message: headers, RFC 2047 subject, threading, multipart text and HTML, dot-stuffing")
    func message() async throws {
        let server = try SMTPServer()
        defer { server.stop() }
        let id = UUID().uuidString.lowercased()
        try await Self.deliver(Self.basic(server.port), payload: Self.payload(id: id))
        let got = server.received
        try #require(got.count == 1)
        let m = got[0]
        #expect(m["defects"]?.arrayValue?.isEmpty == true)
        #expect(m["mail_from"] == .string("tripline@ops.example"))
        #expect(m["rcpt_tos"] == .array([.string("oncall@fedpol.example"), .string("desk@fedpol.example")]))
        // The subject carries the priority; decoded by the parser it is the UTF-8 text again.
        #expect(m["subject"] == .string("[CRITICAL] FIRING: \(Self.label)"))
        let rawSubject =
            m["raw_headers"]?.arrayValue?.compactMap(\.arrayValue).first {
                $0.first == .string("Subject")
            }?.last?.stringValue ?? ""
        #expect(rawSubject.contains("=?UTF-8?B?"))
        #expect(m["message_id"] == .string("<\(id)@ops.example>"))
        #expect(m["date_ok"] == .bool(true))
        #expect(header(m, "Auto-Submitted") == "auto-generated")
        let thread = try #require(header(m, "In-Reply-To"))
        #expect(thread.hasPrefix("<alert.") && thread.hasSuffix("@ops.example>"))
        #expect(header(m, "References") == thread)
        #expect(m["content_type"] == .string("multipart/alternative"))
        let parts = m["parts"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(parts.map { $0["type"]?.stringValue ?? "" } == ["text/plain", "text/html"])
        #expect(parts.allSatisfy { $0["defects"]?.arrayValue?.isEmpty == true })
        let text = (parts.first?["content"]?.stringValue ?? "").replacingOccurrences(of: "\r\n", with: "\n")
        // Lines starting with "." (and a line that is only ".") arrive intact: dot-stuffing worked both ways.
        #expect(text.hasPrefix(Self.template + "\n"), "\(text)")
        #expect(text.contains(Self.label))
        let html = parts.last?["content"]?.stringValue ?? ""
        #expect(html.contains("<h3>") && html.contains(Self.label))
        // Every raw line within 998 octets, 7-bit.
        let raw = m["raw"]?.stringValue ?? ""
        #expect(raw.utf8.split(separator: 0x0A).allSatisfy { $0.count <= 999 }, "\(raw)")
        #expect(raw.unicodeScalars.allSatisfy { $0.value < 0x80 })
    }

    @Test("the same notification again carries the same Message-ID; later states thread under the same alert")
    func redeliveryAndThreading() async throws {
        let server = try SMTPServer()
        defer { server.stop() }
        let id = UUID().uuidString.lowercased()
        try await Self.deliver(Self.basic(server.port), payload: Self.payload(id: id))
        try await Self.deliver(Self.basic(server.port), payload: Self.payload(id: id))
        try await Self.deliver(Self.basic(server.port), payload: Self.payload(status: "acknowledged"))
        // Resolved notifications are left out unless send_resolved (as in Alertmanager).
        try await Self.deliver(Self.basic(server.port), payload: Self.payload(status: "resolved"))
        try await Self.deliver(
            Self.basic(server.port) + [("send_resolved", "true")], payload: Self.payload(status: "resolved"))
        let got = server.received
        try #require(got.count == 4)
        #expect(got[0]["message_id"] == got[1]["message_id"] && got[1]["duplicate"] == .bool(true))
        #expect(got[2]["message_id"] != got[0]["message_id"])
        #expect(Set(got.map { header($0, "References") ?? "" }).count == 1)
        #expect(got[3]["subject"]?.stringValue?.hasPrefix("[CRITICAL] RESOLVED: ") == true)
    }

    @Test("STARTTLS (certificate verified against the CA file) with AUTH PLAIN")
    func startTLSPlain() async throws {
        let dir = scratchDirectory("tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try localhostCertificate(dir)
        try "s3cret-pw\n".write(toFile: dir.appendingPathComponent("pw").path, atomically: true, encoding: .utf8)
        let server = try SMTPServer(["--starttls", cert, key, "--auth", "tripline:s3cret-pw"])
        defer { server.stop() }
        var ec = Self.basic(server.port, host: "localhost").filter { $0.0 != "require_tls" }
        ec += [
            ("tls_config.ca_file", cert), ("auth_username", "tripline"),
            ("auth_password_file", dir.appendingPathComponent("pw").path),
        ]
        try await Self.deliver(ec)
        let got = server.received
        try #require(got.count == 1)
        #expect(got[0]["tls"] == .bool(true) && got[0]["auth"] == .string("tripline"))

        // A certificate the client cannot verify is refused (no CA file: the system roots do not know it).
        await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver(ec.filter { $0.0 != "tls_config.ca_file" })
        }
        // A wrong password is a 5xx: not retried, and the password is not in the error.
        try "wrong-pw".write(toFile: dir.appendingPathComponent("bad").path, atomically: true, encoding: .utf8)
        do {
            try await Self.deliver(
                ec.map { $0.0 == "auth_password_file" ? ($0.0, dir.appendingPathComponent("bad").path) : $0 })
            Issue.record("a wrong password was accepted")
        } catch {
            #expect(error.permanent && error.message.contains("535"), "\(error.message)")
            #expect(!error.message.contains("wrong-pw") && !error.message.contains("s3cret"))
        }
        // require_tls (the default) against a server without STARTTLS: refused before any credential is sent.
        let plain = try SMTPServer()
        defer { plain.stop() }
        do {
            try await Self.deliver(Self.basic(plain.port).filter { $0.0 != "require_tls" })
            Issue.record("sent without TLS")
        } catch {
            #expect(error.message.contains("STARTTLS"), "\(error)")
        }
        #expect(plain.received.isEmpty)
    }

    @Test("implicit TLS with AUTH LOGIN")
    func implicitTLSLogin() async throws {
        let dir = scratchDirectory("tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try localhostCertificate(dir)
        let server = try SMTPServer(["--implicit", cert, key, "--auth", "tripline:pw-from-env"])
        defer { server.stop() }
        setenv("TRIPLINE_TEST_SMTP_PW", "pw-from-env", 1)
        var ec = Self.basic(server.port, host: "localhost").filter { $0.0 != "require_tls" }
        ec += [
            ("implicit_tls", "true"), ("tls_config.ca_file", cert), ("auth_username", "tripline"),
            ("auth_password_env", "TRIPLINE_TEST_SMTP_PW"), ("auth_mechanism", "LOGIN"),
        ]
        try await Self.deliver(ec)
        let got = server.received
        try #require(got.count == 1)
        #expect(got[0]["tls"] == .bool(true) && got[0]["auth"] == .string("tripline"))
    }

    @Test("4xx replies, refused connections and silent servers are retried; 5xx replies are not")
    func failures() async throws {
        let server = try SMTPServer(["--fail", "451,554"])
        defer { server.stop() }
        do {
            try await Self.deliver(Self.basic(server.port))
            Issue.record("451 accepted")
        } catch { #expect(!error.permanent && error.message.contains("451"), "\(error)") }
        do {
            try await Self.deliver(Self.basic(server.port))
            Issue.record("554 accepted")
        } catch { #expect(error.permanent && error.message.contains("554"), "\(error)") }
        try await Self.deliver(Self.basic(server.port))
        #expect(server.received.count == 1)

        // Nobody listening.
        let closed = server.port
        server.stop()
        do {
            try await Self.deliver(Self.basic(closed))
            Issue.record("delivered to a closed port")
        } catch { #expect(!error.permanent, "\(error)") }

        // A server that accepts the connection and never greets: the read timeout ends it.
        let (fd, silent) = loopbackSocket(listen: true)
        defer { close(fd) }
        let start = Date()
        do {
            try await Self.deliver(Self.basic(silent).map { $0.0 == "timeout" ? ($0.0, "500ms") : $0 })
            Issue.record("delivered to a silent server")
        } catch {
            #expect(!error.permanent && error.message.contains("timed out"), "\(error.message)")
        }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test("encoders: RFC 2047 words stay within 75 characters; quoted-printable lines within 76")
    func encoders() {
        let long = String(repeating: "Ünïcödé ", count: 20)
        let encoded = MailMessage.encodeHeader(long)
        #expect(encoded.split(separator: " ").allSatisfy { $0.count <= 75 && $0.hasPrefix("=?UTF-8?B?") })
        #expect(MailMessage.encodeHeader("plain ascii") == "plain ascii")
        let qp = MailMessage.quotedPrintable(String(repeating: "a=b ", count: 40) + "\nend ")
        #expect(qp.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 76 })
        #expect(qp.hasSuffix("end=20"))
        #expect(SMTPClient.dotStuffed(Array(".a\r\n.\nb".utf8)) == Array("..a\r\n..\r\nb\r\n.\r\n".utf8))
    }
}
