import Foundation
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineSinks
import TriplineState
import TriplineTestSupport

/// Mail headers of grouped notifications and of very long subjects, sent to a real SMTP server (aiosmtpd) and
/// parsed back by Python's `email` package.
@Suite("mail headers", .serialized)
struct MailHeaderTests {
    /// A notification of `count` alerts with distinct keys, the first one labelled `label`.
    static func grouped(_ count: Int, label: String = "first alert") -> JSONObject {
        var p = MailTests.payload()
        var views: [JSONValue] = []
        for i in 0..<count {
            var v = JSONObject()
            v.append("alert_id", .number(String(i + 1)))
            v.append("key", .string("wl:be-fedpol/op-zaid/E\(i + 1)"))
            v.append("state", .string("firing"))
            v.append("priority", .string(i == 0 ? "high" : "low"))
            v.append("watchlist", .object(JSONObject([("label", .string(i == 0 ? label : "alert \(i + 1)"))])))
            views.append(.object(v))
        }
        p["alerts"] = .array(views)
        return p
    }

    static func rawHeaderLines(_ record: JSONObject) -> [Substring] {
        let raw = record["raw"]?.stringValue ?? ""
        let head = raw.components(separatedBy: "\r\n\r\n").first ?? ""
        return head.split(separator: "\r\n", omittingEmptySubsequences: false).map { Substring($0) }
    }

    @Test("a grouped notification: References names each alert's thread and ends with the In-Reply-To id")
    func groupedThreading() async throws {
        let server = try SMTPServer()
        defer { server.stop() }
        try await MailTests.deliver(MailTests.basic(server.port), payload: Self.grouped(3))
        let got = server.received
        try #require(got.count == 1)
        let inReplyTo = try #require(header(got[0], "In-Reply-To"))
        let references = (header(got[0], "References") ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        #expect(references.count == 3 && Set(references).count == 3, "\(references)")
        #expect(references.last == inReplyTo)
        #expect(got[0]["subject"] == .string("[HIGH] FIRING: first alert (+2 more)"))

        // The first alert alone threads under the same id.
        try await MailTests.deliver(MailTests.basic(server.port), payload: Self.grouped(1))
        #expect(header(server.received[1], "In-Reply-To") == inReplyTo)
        #expect(header(server.received[1], "References") == inReplyTo)
    }

    @Test("25 alerts: References keeps 20 ids, the last the In-Reply-To; no header line passes 78 characters")
    func manyAlerts() throws {
        let m = MailMessage(
            payload: Self.grouped(25), from: "tripline@ops.example", to: ["oncall@fedpol.example"],
            domain: "ops.example")
        let inReplyTo = try #require(m.headers.first { $0.0 == "In-Reply-To" }?.1)
        let references = (m.headers.first { $0.0 == "References" }?.1 ?? "").split(separator: " ").map(String.init)
        #expect(references.count == 20 && Set(references).count == 20)
        #expect(references.last == inReplyTo)
        let text = String(decoding: m.bytes(), as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n")[0]
        #expect(head.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 78 }, "\(head)")
    }

    /// 2,000-character subjects (one ASCII word, ASCII words, non-ASCII) and a 951-character word with a tail.
    @Test(
        "long subjects: header lines within 998 octets, encoded words within 75 characters, decoded back whole",
        arguments: [
            String(repeating: "a", count: 2_000),
            String(repeating: "word ", count: 400).trimmingCharacters(in: .whitespaces),
            String(repeating: "Zaïd ", count: 400).trimmingCharacters(in: .whitespaces),
            "x" + String(repeating: "y", count: 950) + " then a short tail",
        ])
    func longSubject(label: String) async throws {
        let server = try SMTPServer()
        defer { server.stop() }
        try await MailTests.deliver(MailTests.basic(server.port), payload: Self.grouped(1, label: label))
        let got = server.received
        try #require(got.count == 1)
        #expect(got[0]["defects"]?.arrayValue?.isEmpty == true)
        #expect(got[0]["subject"] == .string("[HIGH] FIRING: " + label))
        let lines = Self.rawHeaderLines(got[0])
        #expect(lines.allSatisfy { $0.utf8.count <= 998 }, "\(lines.map(\.utf8.count).max() ?? 0)")
        let words = lines.flatMap { $0.split(separator: " ") }.filter { $0.hasPrefix("=?") }
        #expect(words.allSatisfy { $0.count <= 75 && $0.hasSuffix("?=") })
        // Lines holding encoded words stay within 76 characters (RFC 2047 §2).
        #expect(lines.filter { $0.contains("=?") }.allSatisfy { $0.utf8.count <= 76 })
    }

    @Test("a subject word of 900 characters stays plain; 901 is encoded")
    func plainWordLimit() {
        #expect(MailMessage.encodeHeader(String(repeating: "a", count: 900)) == String(repeating: "a", count: 900))
        let encoded = MailMessage.encodeHeader(String(repeating: "a", count: 901))
        #expect(encoded.split(separator: " ").allSatisfy { $0.hasPrefix("=?UTF-8?B?") && $0.count <= 75 })
    }
}
