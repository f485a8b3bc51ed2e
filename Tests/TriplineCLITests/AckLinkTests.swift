import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// Acknowledge links (SPEC §11, issue 18) end to end: `serve` with the API and link keys, two partners' mail
/// receivers on a real SMTP server (aiosmtpd), links parsed out of the delivered mail and followed over HTTP.
@Suite("acknowledge links")
struct AckLinkTests {
    @Test func fromTheMailToTheAcknowledgement() throws {
        let dir = try ServeTests.deployment(entries: 3)
        defer { try? FileManager.default.removeItem(at: dir) }
        let smtp = try SMTPServer()
        defer { smtp.stop() }
        let path = dir.appendingPathComponent("tripline.yaml")
        var text = try String(contentsOf: path, encoding: .utf8)
        func mail(_ to: String) -> String {
            "email_configs: [{to: \(to), from: tripline@ops.example, smarthost: \"127.0.0.1:\(smtp.port)\", require_tls: false}]"
        }
        text = text.replacingOccurrences(
            of: "  - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}\n",
            with: """
                  - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
                  - {id: fr-dgsi, name: FR, countries: [FR], contact: fr@example}

                """)
        text = text.replacingOccurrences(
            of: "  - {id: auditor, partner: ops, role: auditor}\n",
            with:
                "  - {id: auditor, partner: ops, role: auditor}\n  - {id: feeder, partner: ops, role: ingest}\n"
                + "  - {id: admin, partner: ops, role: admin}\n")
        text = text.replacingOccurrences(
            of: "  - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}\n",
            with: """
                  - {name: log, partner: ops, file_configs: [{path: alerts.ndjson}]}
                  - {name: be-mail, partner: be-fedpol, \(mail("be@be.example"))}
                  - {name: fr-mail, partner: fr-dgsi, \(mail("fr@fr.example"))}

                """)
        text = text.replacingOccurrences(of: "route: {receiver: log,", with: "route: {receiver: fr-mail,")
        try text.write(to: path, atomically: true, encoding: .utf8)
        let server = try APITests.Server(dir: dir)
        text = try String(contentsOf: path, encoding: .utf8).replacingOccurrences(
            of: "http: {listen: \"127.0.0.1:\(server.port)\"}",
            with:
                "http: {listen: \"127.0.0.1:\(server.port)\", external_url: \"http://127.0.0.1:\(server.port)/\", link_key_file: link.key}"
        )
        try text.write(to: path, atomically: true, encoding: .utf8)
        try server.issue("feeder")
        try server.start()
        defer { server.stop() }
        let ingest = try server.call(
            "POST", "/v1/selectors", as: "feeder", body: #"{"id":"s1","type":"phone","value":"+32470000001"}"# + "\n")
        #expect(ingest.status == 202, "\(ingest.text)")
        #expect(waitUntil(20) { smtp.received.count == 2 })

        // The link of each partner's mail, from the text part; the HTML part links to the same.
        func link(_ to: String) throws -> String {
            let m = try #require(smtp.received.first { JSONWriter.string(.object($0)).contains(to) })
            let parts = m["parts"]?.arrayValue?.compactMap(\.objectValue) ?? []
            let plain = parts.first { $0["type"] == .string("text/plain") }?["content"]?.stringValue ?? ""
            let html = parts.first { $0["type"] == .string("text/html") }?["content"]?.stringValue ?? ""
            let line = try #require(plain.split(whereSeparator: \.isNewline).first { $0.contains("Acknowledge: ") })
            let url = String(line.split(separator: " ").last!)
            #expect(html.contains("<a href=\"\(url)\">Acknowledge</a>"))
            let prefix = "http://127.0.0.1:\(server.port)/v1/ack/"
            #expect(url.hasPrefix(prefix))
            return String(url.dropFirst(prefix.count - "/v1/ack/".count))
        }
        let fr = try link("fr@fr.example")
        let be = try link("be@be.example")
        #expect(fr != be)
        func acks() -> String { server.sql.query("select acks from alerts where id = 1") }
        let before = acks()

        // GET shows a confirmation page and changes nothing; so do a mail scanner's GETs of every link, twice.
        let page = try APITests.send(server.port, "GET", fr)
        #expect(page.status == 200)
        #expect(page.text.contains("<form method=\"post\">") && page.text.contains("for fr-dgsi"))
        #expect(page.header("Referrer-Policy") == "no-referrer" && page.header("Cache-Control") == "no-store")
        for p in [fr, be, fr, be] { #expect(try APITests.send(server.port, "GET", p).status == 200) }
        #expect(acks() == before)

        // POST acknowledges for the link's partner only, once.
        let done = try APITests.send(server.port, "POST", fr)
        #expect(done.status == 200, "\(done.text)")
        let after = acks()
        #expect(after.contains("fr-dgsi") && !after.contains("be-fedpol"), "\(after)")
        #expect(after.contains("receiver:fr-mail"))
        let again = try APITests.send(server.port, "POST", fr)
        #expect(again.status == 409 && again.text.contains("used already"))
        #expect(try APITests.send(server.port, "GET", fr).status == 409)

        // A forged link (another signature) and a malformed one: refused, nothing changes.
        var forged = Array(be)
        let last = forged.count - 2
        forged[last] = forged[last] == "A" ? "B" : "A"
        #expect(try APITests.send(server.port, "POST", String(forged)).status == 400)
        #expect(try APITests.send(server.port, "POST", "/v1/ack/not-a-token").status == 400)
        #expect(acks() == after)

        // be-fedpol's own link acknowledges for be-fedpol.
        #expect(try APITests.send(server.port, "POST", be).status == 200)
        #expect(acks().contains("be-fedpol"))

        // Every look, use and refusal is in the audit log.
        #expect(server.audited("ack_link_viewed").count == 5)
        #expect(server.audited("ack_link_refused").count == 4)
        let acked = server.audited("alert_acknowledged")
        #expect(acked.map { $0["principal"]?.stringValue } == ["receiver:fr-mail", "receiver:be-mail"])
        #expect(acked.allSatisfy { $0["reason"] == .string("ack link") })

        // Links that do not verify are failed credentials: within the peer's budget (burst 30, 1/s) each is audited;
        // beyond it 429 with Retry-After and counted into the next one audited — every refusal accounted for, and a
        // stranger cannot fill the audit log. (Timing: how many of the 40 get 429 depends on the machine's pace; the
        // accounting below is exact whatever it is.)
        var answered: [Int: Int] = [:]
        for i in 0..<40 {
            let r = try APITests.send(server.port, "POST", "/v1/ack/not-a-token-\(i)")
            answered[r.status, default: 0] += 1
            if r.status == 429 { #expect(Int(r.header("Retry-After") ?? "") ?? 0 >= 1) }
        }
        #expect(answered.keys.sorted() == [400, 429], "\(answered)")
        Thread.sleep(forTimeInterval: 1.2)
        #expect(try APITests.send(server.port, "GET", "/v1/ack/one-more").status == 400)
        let refused = server.audited("ack_link_refused")
        #expect(refused.count == 4 + answered[400, default: 0] + 1)
        let counted = refused.compactMap { $0["detail"]?.objectValue?["throttled"]?.doubleValue }.reduce(0, +)
        #expect(Int(counted) == answered[429, default: 0])
        #expect(refused.last?["detail"]?.objectValue?["peer"] == .string("127.0.0.1"))
    }
}
