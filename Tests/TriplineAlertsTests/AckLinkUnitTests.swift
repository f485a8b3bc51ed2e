import Foundation
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineState
import TriplineTestSupport

@Suite("Acknowledge link tokens")
struct AckLinkUnitTests {
    static let key = Array("0123456789abcdef0123456789abcdef".utf8)
    static let links = AckLinks(baseURL: "https://tripline.example/", key: key)!

    @Test func roundTripAndBinding() throws {
        let c = Self.links.claim(alertID: 42, receiver: "fr-mail", partner: "fr-dgsi", now: t0)
        #expect(c.expires == t0 + 86_400 && c.nonce.count == 32)
        let url = Self.links.url(c)
        #expect(url.hasPrefix("https://tripline.example/v1/ack/"))
        let token = String(url.dropFirst("https://tripline.example/v1/ack/".count))
        #expect(Self.links.verify(token, now: t0 + 10) == .success(c))
        #expect(Self.links.verify(token, now: t0 + 86_400) == .failure(.expired))
        // Another key: not ours.
        let other = AckLinks(baseURL: "https://x", key: Array(repeating: 7, count: 32))!
        #expect(other.verify(token, now: t0) == .failure(.invalid))
        // Two claims for the same alert and receiver are two links (each single-use).
        #expect(Self.links.claim(alertID: 42, receiver: "fr-mail", partner: "fr-dgsi", now: t0).nonce != c.nonce)
        #expect(AckLinks(baseURL: "https://x", key: Array(repeating: 7, count: 31)) == nil)
    }

    /// Every change of one character of a token, and every truncation, is refused (seeded).
    @Test func tamperingIsRefused() throws {
        let c = Self.links.claim(alertID: 7, receiver: "be-mail", partner: "be-fedpol", now: t0)
        let token = Array(Self.links.token(c))
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %")
        var g = SplitMix64(seed: 11)
        var refused = 0
        for i in token.indices {
            var t = token
            var r = alphabet[Int(g.next() % UInt64(alphabet.count))]
            if r == t[i] { r = t[i] == "A" ? "B" : "A" }
            t[i] = r
            if case .failure(.invalid) = Self.links.verify(String(t), now: t0) { refused += 1 }
        }
        #expect(refused == token.count)
        for n in 0..<token.count {
            #expect(Self.links.verify(String(token.prefix(n)), now: t0) == .failure(.invalid))
        }
        for junk in ["", ".", "..", "a.b", String(repeating: "A", count: 5_000), "djE.x", "\u{0}.\u{0}"] {
            #expect(Self.links.verify(junk, now: t0) == .failure(.invalid))
        }
    }

    /// Views get a link only while firing as the receiver sees them, one per alert and receiver.
    @Test func firingViewsCarryALink() throws {
        let h = try Harness { $0.ackLinks = Self.links }
        try h.step([hit()], at: t0)
        let items = try h.outbox()
        // The route's receiver (ops) and the list owner's (be-fedpol): a link each, bound to it.
        #expect(items.map(\.receiver).sorted() == ["be-fedpol-rx", "ops-rx"])
        var alertID: Int64 = 0
        var nonces = Set<String>()
        for item in items {
            let view = try #require(item.payload["alerts"]?.arrayValue?.first?.objectValue)
            let url = try #require(view["ack_url"]?.stringValue)
            let token = String(url.dropFirst("https://tripline.example/v1/ack/".count))
            guard case .success(let c) = Self.links.verify(token, now: t0) else {
                Issue.record("the link does not verify")
                return
            }
            #expect(c.alertID == view["alert_id"]?.doubleValue.map { Int64($0) })
            #expect(c.receiver == item.receiver && c.partner == h.config.receiver(item.receiver)?.partner)
            alertID = c.alertID
            nonces.insert(c.nonce)
        }
        #expect(nonces.count == 2)
        let c = (alertID: alertID, unused: 0)
        // Resolved: its notification has no link.
        let ops = Principal(id: "ops-admin", partner: "ops", role: .admin)
        _ = try Dispatcher.act(
            on: c.alertID, state: .resolved, principal: ops, reason: "r", store: h.store, now: t0 + 5)
        try h.tick(t0 + 3600)
        let resolved = try h.outbox().last!.payload["alerts"]?.arrayValue?.first?.objectValue
        #expect(resolved?["state"] == .string("resolved") && resolved?["ack_url"] == nil)
    }
}
