import Foundation
import Testing
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplineOperations
import TriplineState
import TriplineStores
import TriplineTestSupport

/// The acknowledge-link pages in process (SPEC §11): what a page may say, and what a link that does not verify costs
/// the audit log. Alert 1 is on be-fedpol's list (AuthorizationTests.deployment).
@Suite("acknowledge-link pages")
struct AckLinkPageTests {
    static func operations(_ dir: URL) throws -> (Operations, any DurableStore) {
        let path = dir.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: path, encoding: .utf8)
        try
            (text
            + "\nhttp: {listen: \"127.0.0.1:9\", external_url: \"http://links.example/\", link_key_file: link.key}\n")
            .write(to: path, atomically: true, encoding: .utf8)
        let config = try Configuration.load(config: path.path)
        let store = try StateStores.open(config.state)
        return (try Operations(config: config, store: store), store)
    }

    /// A partner's link to an alert its partner acknowledged already is refused in fixed words: the page does not
    /// name the principal who acknowledged (the link is not a login; the audit record says everything).
    @Test func alreadyAcknowledgedNamesNobody() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (ops, store) = try Self.operations(dir)
        let links = try #require(ops.ackLinks)
        let now = ops.clock()
        let token = links.token(links.claim(alertID: 1, receiver: "be-oncall", partner: "be-fedpol", now: now))
        #expect(ops.ackLink(token: token, post: false).status == 200)
        let analyst = try #require(ops.config.alerts.principal("analyst-be"))
        _ = try Dispatcher.act(
            on: 1, state: .acknowledged, principal: analyst, reason: "on it", store: store, now: now)
        for post in [false, true] {
            let page = ops.ackLink(token: token, post: post)
            #expect(page.status == 409)
            #expect(page.html.contains("already acknowledged for be-fedpol"), "\(page.html)")
            #expect(!page.html.contains("analyst-be"))
        }
        // The link was not used up by the refusals: nothing but the analyst's ack is recorded.
        #expect(try store.usedAckLink(nonce: links.verify(token, now: now).get().nonce) == nil)
    }

    /// Every page that is audited and changes nothing spends the caller's budget — a link that does not verify, a
    /// verified link refused, a look at the confirmation page (the review found a holder of one link could fill the
    /// audit log): within it audited with what the budget adds; beyond it not audited — a link that does not verify
    /// gets 429 with the wait, a verified link its page all the same (whoever is on call must reach the button). The
    /// acknowledgement itself is not held back by it.
    @Test func auditedPagesSpendABudget() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (ops, store) = try Self.operations(dir)
        func records(_ kind: String) throws -> [JSONObject] {
            try store.events(after: 0, limit: 10_000).filter { $0.event.kind == kind }.map(\.event.detail)
        }
        let peer: () -> AckLinkBudget = { .audit([("peer", .string("192.0.2.7"))]) }
        let spent: () -> AckLinkBudget = { .exhausted(wait: 2.5) }
        let audited = ops.ackLink(token: "not-a-token", post: true, budget: peer)
        #expect(audited.status == 400 && audited.retryAfter == nil)
        let over = ops.ackLink(token: "not-a-token", post: true, budget: spent)
        #expect(over.status == 429 && over.retryAfter == 2.5 && over.html.isEmpty)
        #expect(try records("ack_link_refused").map { $0["peer"] } == [.string("192.0.2.7")])
        // A verified link to an alert that does not exist: the same.
        let links = try #require(ops.ackLinks)
        let missing = links.token(
            links.claim(alertID: 99, receiver: "be-oncall", partner: "be-fedpol", now: ops.clock()))
        #expect(ops.ackLink(token: missing, post: true, budget: spent).status == 404)
        #expect(ops.ackLink(token: missing, post: true, budget: peer).status == 404)
        #expect(try records("ack_link_refused").count == 2)
        // Looks at a good link's page: shown either way, audited within the budget only.
        let good = links.token(links.claim(alertID: 1, receiver: "be-oncall", partner: "be-fedpol", now: ops.clock()))
        #expect(ops.ackLink(token: good, post: false, budget: peer).status == 200)
        let unaudited = ops.ackLink(token: good, post: false, budget: spent)
        #expect(unaudited.status == 200 && unaudited.html.contains("<form method=\"post\">"))
        #expect(try records("ack_link_viewed").map { $0["peer"] } == [.string("192.0.2.7")])
        // The acknowledgement goes through whatever the budget says, once.
        #expect(ops.ackLink(token: good, post: true, budget: spent).status == 200)
        #expect(try records("alert_acknowledged").count == 1)
    }
}
