import Foundation
import Testing
import TriplineAlerts
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport

@testable import TriplineService

/// Review of the fixes to issue 20's one dispatcher across nodes (commits after 393acaf): nodes on one PostgreSQL
/// database, in-process, each with its own store (its own node id).
@Suite("Review: the dispatcher's fixes", .serialized)
struct DispatcherFixReviewTests {
    @Test(
        "a heartbeat whose last selector the dispatcher's holder saw itself, at a time with a fraction of a millisecond (any real clock), fires once and stays firing: it does not resolve a second later with no selector seen"
    )
    func heartbeatFiredAtSubMillisecondStaysFiring() async throws {
        let url = try PostgresServer.shared().database("fxbeat")
        let config = try PGReviewServiceTests.configuration(
            groupWait: "0s",
            extra: "heartbeats: [{field: source.item, match: \"RAQQA-*\", every: 120s, receiver: duty}]")
        let (a, storeA) = try PGReviewServiceTests.node(config, url, now: t0)
        defer { storeA.close() }
        func beats() throws -> [String] {
            try storeA.outbox(status: nil, limit: 100).filter { $0.receiver == "duty" }.map {
                $0.payload["status"]?.stringValue ?? "?"
            }
        }
        try await a.tick(now: t0)  // A holds the dispatcher's lease
        try await a.process(batch([phone("s1", "+32479999999", item: "RAQQA-7")]), now: t0 + 100.0004)
        try await a.tick(now: t0 + 230)
        #expect(try beats() == ["firing"])
        // No selector since: the stored hb-fired (whole milliseconds) is below the in-memory last-seen time.
        for s in [231.5, 233.0, 235.0] { try await a.tick(now: t0 + s) }
        let told = try beats()
        #expect(told == ["firing"], "told: \(told)")
    }

    @Test(
        "an operator's resolution gathered by the dispatcher's holder, which dies before the group's next flush (group_interval), is told by the node that takes the lease over"
    )
    func gatheredResolutionHolderDiesBeforeFlush() async throws {
        let url = try PostgresServer.shared().database("fxresolve") + "&lease=0.5"
        let config = try PGReviewServiceTests.configuration(groupWait: "0s")
        let (a, storeA) = try PGReviewServiceTests.node(config, url, now: t0)
        let (b, storeB) = try PGReviewServiceTests.node(config, url, now: t0)
        defer { storeB.close() }
        func states() throws -> [String] {
            try storeB.outbox(status: nil, limit: 100).filter { $0.receiver == "log" }.map {
                $0.payload["status"]?.stringValue ?? "?"
            }
        }
        try await a.tick(now: t0)  // A holds the dispatcher's lease
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)  // notified at t0
        #expect(try states() == ["firing"])
        // Resolved through B's API; A gathers the change at once, its group next due at t0 + 1 (group_interval).
        let id = try #require(try storeB.alerts(states: nil, limit: 1).first?.id)
        _ = try Dispatcher.act(
            on: id, state: .resolved, principal: Principal(id: "analyst", partner: "ops", role: .analyst),
            reason: "false positive", store: storeB, now: t0 + 0.2)
        try await a.tick(now: t0 + 0.5)
        #expect(try storeB.alerts(states: [.firing, .acknowledged], limit: 10).isEmpty)
        // A dies (kill -9) before its group is flushed; B takes the lease over.
        storeA.close()
        try await Task.sleep(nanoseconds: 900_000_000)
        for s in [6.0, 8, 20, 60] { try await b.tick(now: t0 + s) }
        let told = try states()
        #expect(told == ["firing", "resolved"], "told: \(told)")
        _ = a
    }
}
