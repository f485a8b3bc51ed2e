import Foundation
import NIOCore
import Testing
import TriplineJSON
import TriplineSinks
import TriplineTestSupport

/// The SMTP client against servers that break the rules (scripts/smtp_misbehave.py, real sockets on loopback):
/// silent, flooding, trickling and slow servers; servers that echo credentials; junk pipelined before TLS.
@Suite("SMTP limits", .serialized)
struct SMTPLimitsTests {
    static let message = Array("Subject: test\r\n\r\nbody\r\n".utf8)

    static func settings(
        _ port: Int, host: String = "127.0.0.1", timeout: TimeAmount = .seconds(10), transaction: TimeAmount? = nil
    ) -> SMTPSettings {
        var s = SMTPSettings(host: host, port: port)
        s.security = .none
        s.timeout = timeout
        s.transactionTimeout = transaction
        return s
    }

    static func send(_ settings: SMTPSettings) async throws(DeliveryFailure) {
        try await SMTPClient.send(
            from: "tripline@ops.example", to: ["oncall@fedpol.example"], message: message, settings: settings)
    }

    static func commands(_ peer: Peer) -> [String] { peer.received.compactMap { $0["cmd"]?.stringValue } }

    @Test("a server that accepts and never greets: fails at the 500 ms reply timeout, retried")
    func silent() async throws {
        let peer = try MisbehavingSMTPServer("silent")
        defer { peer.stop() }
        let start = Date()
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.send(Self.settings(peer.port, timeout: .milliseconds(500)))
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(error?.message == "smtp://127.0.0.1:\(peer.port): timed out waiting for the server (500 ms)")
        #expect(error?.permanent == false)
        // Tolerance: 0.05 s early, 1.5 s late.
        #expect(elapsed >= 0.45 && elapsed < 2, "\(elapsed) s")
    }

    @Test("a greeting of endless 220- lines: a bounded-reply protocol error, not unbounded memory")
    func endlessReply() async throws {
        let peer = try MisbehavingSMTPServer("endless")
        defer { peer.stop() }
        let start = Date()
        let error = await #expect(throws: DeliveryFailure.self) { try await Self.send(Self.settings(peer.port)) }
        #expect(
            error?.message
                == "smtp://127.0.0.1:\(peer.port): reply longer than 100 lines or 64 KiB (not an SMTP server?)")
        #expect(error?.permanent == false)
        // Found after 100 lines, well before any timeout (10 s); tolerance for a loaded machine: 5 s.
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test("a reply trickled byte by byte forever: the 1.5 s transaction deadline ends it (reply timeout 30 s)")
    func trickle() async throws {
        let peer = try MisbehavingSMTPServer("trickle", delay: 0.05)
        defer { peer.stop() }
        let start = Date()
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.send(Self.settings(peer.port, timeout: .seconds(30), transaction: .milliseconds(1500)))
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(
            error?.message
                == "smtp://127.0.0.1:\(peer.port): the transaction took longer than 1500 ms (its deadline)")
        #expect(error?.permanent == false)
        // Tolerance: 0.1 s early, 2 s late.
        #expect(elapsed >= 1.4 && elapsed < 3.5, "\(elapsed) s")
    }

    @Test("every reply within the 2 s reply timeout but 0.4 s apart: the 1.5 s transaction deadline ends it")
    func slowServer() async throws {
        let peer = try MisbehavingSMTPServer("slow", delay: 0.4)
        defer { peer.stop() }
        let start = Date()
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.send(Self.settings(peer.port, timeout: .seconds(2), transaction: .milliseconds(1500)))
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(
            error?.message
                == "smtp://127.0.0.1:\(peer.port): the transaction took longer than 1500 ms (its deadline)")
        // Tolerance: 0.1 s early, 2 s late.
        #expect(elapsed >= 1.4 && elapsed < 3.5, "\(elapsed) s")
        #expect(peer.received.compactMap { $0["message"] }.isEmpty)
        // The same server with the default deadline (5 min) takes the message.
        try await Self.send(Self.settings(peer.port, timeout: .seconds(2)))
        #expect(peer.received.compactMap { $0["message"] }.count == 1)
    }

    @Test("the transaction deadline: max(5 min, 10 × timeout) by default, at most 24 h; the reply timeout too")
    func deadlineDefaults() {
        #expect(SMTPSettings(host: "h", port: 25).transactionLimit == .minutes(5))
        #expect(Self.settings(25, timeout: .seconds(60)).transactionLimit == .minutes(10))
        #expect(Self.settings(25, timeout: .hours(3)).transactionLimit == .hours(24))
        #expect(Self.settings(25, transaction: .hours(48)).transactionLimit == .hours(24))
        #expect(Self.settings(25, transaction: .seconds(7)).transactionLimit == .seconds(7))
        #expect(Self.settings(25, timeout: .hours(48)).replyLimit == .hours(24))
    }

    static let user = "tripline"
    static let password = "hunter2-Sup3rSecret"

    static func authSettings(_ port: Int, host: String = "127.0.0.1", mechanism: String? = nil) -> SMTPSettings {
        var s = settings(port, host: host)
        s.username = user
        s.password = password
        s.mechanism = mechanism
        return s
    }

    static func leaks(_ text: String) -> Bool {
        let plain = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
        let login = Data(password.utf8).base64EncodedString()
        return text.contains(plain) || text.contains(login) || text.contains(password)
            || text.contains(String(plain.prefix(16))) || text.contains(String(login.prefix(16)))
    }

    @Test("a server echoing the AUTH argument: errors of AUTH steps quote the code only; later ones cut it out")
    func echoedCredentials() async throws {
        let peer = try MisbehavingSMTPServer("echo-auth")
        defer { peer.stop() }
        let plain = await #expect(throws: DeliveryFailure.self) { try await Self.send(Self.authSettings(peer.port)) }
        #expect(plain?.message == "smtp://127.0.0.1:\(peer.port): AUTH PLAIN: 535")
        #expect(plain?.permanent == true)
        // The server did get (and echo) the credential: the test would catch a leak.
        #expect(Self.commands(peer).contains { $0.hasPrefix("AUTH PLAIN ") && Self.leaks($0) })

        let login = await #expect(throws: DeliveryFailure.self) {
            try await Self.send(Self.authSettings(peer.port, mechanism: "LOGIN"))
        }
        #expect(login?.message == "smtp://127.0.0.1:\(peer.port): AUTH LOGIN password: 535")
        #expect(!Self.leaks(login?.message ?? ""))

        let garbled = try MisbehavingSMTPServer("echo-auth-garbled")
        defer { garbled.stop() }
        let bad = await #expect(throws: DeliveryFailure.self) { try await Self.send(Self.authSettings(garbled.port)) }
        #expect(bad?.message == "smtp://127.0.0.1:\(garbled.port): AUTH PLAIN: malformed reply line")
        #expect(!Self.leaks(bad?.message ?? ""))

        // A later step's reply is quoted, with what AUTH sent cut out.
        let later = try MisbehavingSMTPServer("echo-later")
        defer { later.stop() }
        let mail = await #expect(throws: DeliveryFailure.self) { try await Self.send(Self.authSettings(later.port)) }
        #expect(mail?.message == "smtp://127.0.0.1:\(later.port): MAIL FROM: 550 5.7.1 you said AUTH PLAIN …")
        #expect(!Self.leaks(mail?.message ?? ""))
    }

    @Test("credentials in clear only to a literal loopback address: not to 127.evil.example, not to localhost")
    func clearTextOnlyToLoopbackAddresses() async throws {
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.send(Self.authSettings(25, host: "127.evil.example"))
        }
        #expect(
            error?.message
                == "smtp://127.evil.example:25: refusing to send credentials without TLS to a server that is not "
                + "a loopback address (127.0.0.0/8, ::1)")
        #expect(error?.permanent == true)

        // "localhost" is a name: refused before connecting, so the server never hears from us.
        let peer = try MisbehavingSMTPServer("echo-auth")
        defer { peer.stop() }
        let named = await #expect(throws: DeliveryFailure.self) {
            try await Self.send(Self.authSettings(peer.port, host: "localhost"))
        }
        #expect(named?.message.contains("refusing to send credentials without TLS") == true)
        #expect(peer.received.isEmpty)
        // Any literal in 127.0.0.0/8 passes the check: nobody listens on 127.0.0.2, so the connection is what fails.
        let other = await #expect(throws: DeliveryFailure.self) {
            try await Self.send(Self.authSettings(peer.port, host: "127.0.0.2"))
        }
        #expect(other?.message.contains("refusing") == false)
    }

    @Test("junk a server pipelines after its 220 to STARTTLS is discarded, not read as replies (RFC 3207 §4.2)")
    func startTLSJunk() async throws {
        let dir = scratchDirectory("tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try localhostCertificate(dir)
        let peer = try MisbehavingSMTPServer("starttls-junk", tls: (cert, key))
        defer { peer.stop() }
        var s = Self.settings(peer.port, host: "localhost")
        s.security = .startTLS
        s.tls.trustRoots = .file(cert)
        try await Self.send(s)
        #expect(
            Self.commands(peer) == [
                "EHLO localhost", "STARTTLS", "EHLO localhost", "MAIL FROM:<tripline@ops.example>",
                "RCPT TO:<oncall@fedpol.example>", "DATA", "QUIT",
            ])
        let messages = peer.received.filter { $0["message"] != nil }
        #expect(messages.count == 1 && messages.first?["tls"] == .bool(true))
    }
}
