import Foundation
import Testing
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplineOperations
import TriplineState
import TriplineStateSQLite
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

    /// A link that does not verify is a failed credential: audited within the caller's budget, with what the
    /// budget adds; beyond it answered 429 with the wait and not audited. A verified link's refusal is always audited.
    @Test func unverifiedLinksSpendABudget() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (ops, store) = try Self.operations(dir)
        func refused() throws -> [JSONObject] {
            try store.events(after: 0, limit: 10_000).filter { $0.event.kind == "ack_link_refused" }.map(\.event.detail)
        }
        let audited = ops.ackLink(token: "not-a-token", post: true) { .audit([("peer", .string("192.0.2.7"))]) }
        #expect(audited.status == 400 && audited.retryAfter == nil)
        let spent = ops.ackLink(token: "not-a-token", post: true) { .exhausted(wait: 2.5) }
        #expect(spent.status == 429 && spent.retryAfter == 2.5 && spent.html.isEmpty)
        let records = try refused()
        #expect(records.count == 1)
        #expect(records.first?["peer"] == .string("192.0.2.7"))
        // A verified link to an alert that does not exist: refused and audited whatever the budget says.
        let links = try #require(ops.ackLinks)
        let token = links.token(links.claim(alertID: 99, receiver: "be-oncall", partner: "be-fedpol", now: ops.clock()))
        let missing = ops.ackLink(token: token, post: true) { .exhausted(wait: 1) }
        #expect(missing.status == 404)
        #expect(try refused().count == 2)
    }
}
