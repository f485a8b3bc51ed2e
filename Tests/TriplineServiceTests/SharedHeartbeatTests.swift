import Foundation
import Testing
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport

@testable import TriplineService

/// Issue 20: a heartbeat's selectors arrive at whichever node reads their source; the node holding the dispatcher's
/// lease judges it from what every node saw (a node that never reads that source must not call it silent).
@Suite("Several nodes: heartbeats", .serialized)
struct SharedHeartbeatTests {
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
}
