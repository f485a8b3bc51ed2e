import Foundation
import Testing
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport

@testable import TriplineService

/// Issue 20: a heartbeat's selectors arrive at whichever node reads their source; the node holding the dispatcher's
/// lease judges it from what every node saw (a node that never reads that source must not call it silent).
@Suite("Several nodes: heartbeats, lost commit answers", .serialized)
struct SharedNodesTests {
    @Test(
        "a heartbeat seen only at the node that does not dispatch: no false alarm; silent, it fires once, and resolves when that node sees it again"
    )
    func heartbeatAcrossNodes() async throws {
        let url = try PostgresServer.shared().database("heartbeat")
        let config = try PGReviewServiceTests.configuration(
            groupWait: "0s",
            extra: "heartbeats: [{field: source.item, match: \"RAQQA-*\", every: 120s, receiver: duty}]")
        let (a, storeA) = try PGReviewServiceTests.node(config, url, now: t0)
        let (b, storeB) = try PGReviewServiceTests.node(config, url, now: t0)
        defer {
            storeA.close()
            storeB.close()
        }
        func beats() throws -> [String] {
            try storeA.outbox(status: nil, limit: 100).filter { $0.receiver == "duty" }.map {
                $0.payload["status"]?.stringValue ?? "?"
            }
        }
        try await a.tick(now: t0)  // A takes the dispatcher's lease
        try await b.tick(now: t0)
        try await b.process(batch([phone("s1", "+32479999999", item: "RAQQA-7")]), now: t0 + 100)
        try await a.tick(now: t0 + 130)
        try await b.tick(now: t0 + 130)
        #expect(try beats() == [])
        try await a.tick(now: t0 + 230)
        try await b.tick(now: t0 + 231)
        #expect(try beats() == ["firing"])
        try await b.process(batch([phone("s2", "+32479999998", item: "RAQQA-7")]), now: t0 + 240)
        try await b.tick(now: t0 + 250)
        try await a.tick(now: t0 + 250)
        #expect(try beats() == ["firing", "resolved"])
    }

    @Test(
        "a batch whose COMMIT landed and whose answer was lost: the sighting is counted once (not retried as a second sighting), the audit log holds it once"
    )
    func lostCommitAnswerCountsOnce() async throws {
        let url = try PostgresServer.shared().database("cutbatch")
        let relay = try CommitCutRelay(target: url, armed: true)
        defer { relay.stop() }
        let config = try PGReviewServiceTests.configuration(groupWait: "1h")
        let (direct, store) = try PGReviewServiceTests.node(config, url, now: t0)
        _ = direct
        defer { store.close() }
        let (p, cut) = try PGReviewServiceTests.node(config, relay.through(url), now: t0)
        defer { cut.close() }
        let before = try store.events(after: 0, limit: 10_000).count
        relay.arm()
        try await p.process(batch([phone("h1", "+32470000001")]), now: t0 + 1)
        #expect(relay.cutsMade == 1)
        let a = try #require(try store.alerts(states: nil, limit: 10).first)
        #expect(a.count == 1)
        let events = try store.events(after: 0, limit: 10_000).dropFirst(before).map(\.event.kind)
        #expect(events.filter { $0 == "alert_opened" }.count == 1)
        #expect(!events.contains("sighting"))
    }
}
