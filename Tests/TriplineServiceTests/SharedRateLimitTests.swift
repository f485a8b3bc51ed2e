import Foundation
import Logging
import Testing
import TriplineConfig
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport

@testable import TriplineService

/// Issue 20: a receiver's rate limit is one limit whichever nodes notify it (its window and digest shared through
/// the database, each write over the version read).
@Suite("Several nodes: shared rate limits", .serialized)
struct SharedRateLimitTests {
    static func config() throws -> Configuration {
        try PGReviewServiceTests.configuration(
            groupWait: "0s", groupBy: "['...']", extra: "rate_limits: [{receiver: log, max: 2, per: 1h}]")
    }

    @Test("two nodes notify one receiver limited to 2 an hour: 2 notifications in all, the rest in its digest")
    func oneLimitAcrossNodes() async throws {
        let url = try PostgresServer.shared().database("rates")
        let config = try Self.config()
        let (a, storeA) = try PGReviewServiceTests.node(config, url, now: t0)
        let (b, storeB) = try PGReviewServiceTests.node(config, url, now: t0)
        defer {
            storeA.close()
            storeB.close()
        }
        // Two alerts at A, which holds the dispatcher's lease (a notification each); then A gives the lease up, and
        // B, holding it now, notifies two more: over the limit A's notifications used.
        try await a.process(batch([phone("a0", "+32470000000"), phone("a1", "+32470000001")]), now: t0)
        try await a.tick(now: t0 + 1)
        try await b.process(batch([phone("b2", "+32470000002"), phone("b3", "+32470000003")]), now: t0 + 2)
        try await b.tick(now: t0 + 2.5)
        #expect(try storeA.outbox(status: nil, limit: 100).filter { $0.receiver == "log" }.count == 2)
        await a.stepDown()
        try await b.tick(now: t0 + 3)
        let items = try storeA.outbox(status: nil, limit: 100).filter { $0.receiver == "log" }
        #expect(items.count == 2)
        let state = try storeB.rateStates().first { $0.receiver == "log" }
        #expect(state?.sent.count == 2)
        #expect(state?.digest.count == 2)
        let events: [EventDraft] = try storeA.events(after: 0, limit: 1000).map(\.event)
        let limited = events.filter { e in e.kind == "suppressed" && e.reason == "rate_limit" }
        #expect(limited.count == 2)
    }

    @Test("a rate state written over a version another node moved on is a conflict; over the current one it lands")
    func staleRateStateIsAConflict() throws {
        let url = try PostgresServer.shared().database("ratever")
        let a = try PostgresStateStore(url: url)
        let b = try PostgresStateStore(url: url)
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        var first = Commit()
        first.rateStates = [RateState(receiver: "log", sent: [1], digest: [], version: 0)]
        try a.commit(first)
        // B read nothing (version 0) and writes: A's write moved the row on.
        var stale = Commit()
        stale.rateStates = [RateState(receiver: "log", sent: [2], digest: [], version: 0)]
        #expect(throws: StateError.self) { try b.commit(stale) }
        #expect((try? b.commit(stale)) == nil)
        let read = try #require(try b.rateStates().first)
        #expect(read.sent == [1] && read.version == 1)
        var current = Commit()
        current.rateStates = [RateState(receiver: "log", sent: [1, 2], digest: [7], version: read.version)]
        try b.commit(current)
        #expect(try a.rateStates() == [RateState(receiver: "log", sent: [1, 2], digest: [7])])
        #expect(try a.rateStates().first?.version == 2)
    }
}
