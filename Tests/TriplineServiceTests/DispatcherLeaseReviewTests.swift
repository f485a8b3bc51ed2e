import Foundation
import Testing
import TriplineAlerts
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport

@testable import TriplineService

/// Review of issue 20's one dispatcher across nodes (the dispatcher's lease, `AlertHolder`): nodes on one
/// PostgreSQL database, in-process, each with its own store (its own node id).
@Suite("Review: the dispatcher's lease", .serialized)
struct DispatcherLeaseReviewTests {
    @Test(
        "a tick decided under the dispatcher's lease and committed after the lease ran out (the node stalled between its decisions and its commit) does not notify an alert the new holder notified"
    )
    func staleTickCommitAfterLeaseLost() async throws {
        let url = try PostgresServer.shared().database("lrstale") + "&lease=0.5"
        let config = try PGReviewServiceTests.configuration(groupWait: "0s")
        let (b, storeB) = try PGReviewServiceTests.node(config, url, now: t0)
        let storeA = try PostgresStateStore(url: url, node: "review-a")
        defer {
            storeA.close()
            storeB.close()
        }
        // Node A's dispatcher driven by hand, so that its tick's decisions and its commit can be told apart.
        let dA = try Dispatcher(config: await b.alertsConfig, store: storeA, now: t0)
        dA.begin()
        var c = try dA.tick(now: t0)
        try storeA.commit(c)
        dA.end(committed: c)
        #expect(try dA.leads())
        // B does not hold the lease: the alert it opens is left for A.
        try await b.process(batch([phone("x", "+32470000001")]), now: t0)
        dA.begin()
        c = try dA.tick(now: t0 + 1)  // A gathers it and decides to notify it
        #expect(c.outbox.count == 1)
        // A stalls (SIGSTOP, a commit waiting on the database) past its lease before its commit goes out.
        try await Task.sleep(nanoseconds: 900_000_000)
        try await b.tick(now: t0 + 2)  // B takes the lease, adopts the alert (A's heartbeat ran out), notifies it
        #expect(try PGReviewServiceTests.notified(storeB).count == 1)
        // A's commit lands now: nothing fences it by the lease it decided under.
        do {
            try storeA.commit(c)
            dA.end(committed: c)
        } catch {
            dA.rollback()
        }
        let items = try PGReviewServiceTests.notified(storeB)
        #expect(items.count == 1, "one alert, notified by two nodes: \(items)")
    }

    @Test(
        "a node that lost the dispatcher's lease and takes it back later does not page an escalation step that the holder in between already paged"
    )
    func formerLeaderRepagesEscalationStep() async throws {
        let url = try PostgresServer.shared().database("lrescal") + "&lease=0.5"
        let config = try PGReviewServiceTests.configuration(
            groupWait: "0s", resolveTimeout: "10h", routeExtra: ", escalation: [{after: 5m, receivers: [duty]}]")
        let (a, storeA) = try PGReviewServiceTests.node(config, url, now: t0)
        let (b, storeB) = try PGReviewServiceTests.node(config, url, now: t0)
        defer {
            storeA.close()
            storeB.close()
        }
        try await a.tick(now: t0)  // A takes the dispatcher's lease
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)
        try await a.tick(now: t0 + 1)
        #expect(try PGReviewServiceTests.notified(storeA).count == 1)
        #expect(try storeA.escalations().count == 1)
        // A is stopped (SIGSTOP) past its lease; B takes the lease and the alert with its escalation.
        try await Task.sleep(nanoseconds: 900_000_000)
        try await b.tick(now: t0 + 10)
        try await a.tick(now: t0 + 11)  // A goes on, without the lease (its step 1 is not due yet)
        try await b.tick(now: t0 + 301)  // B pages step 1
        #expect(try PGReviewServiceTests.notified(storeA, "duty").count == 1)
        #expect(try storeA.escalations().first?.done == 1)
        // B's input ends: it gives the lease up with its alerts; A takes both back.
        await b.stepDown()
        try await a.tick(now: t0 + 302)
        try await a.tick(now: t0 + 303)
        let pages = try PGReviewServiceTests.notified(storeA, "duty").count
        #expect(pages == 1, "step 1 paged \(pages) times")
    }

    @Test(
        "a batch whose connection is lost after its COMMIT went out, while the server is still committing it (fsync, a synchronous standby): the sighting is counted once, not again by a retry that the token check allowed"
    )
    func lostCommitStillInFlightCountsOnce() async throws {
        let server = try PostgresServer.shared()
        let url = try server.database("cutslow")
        let relay = try CommitCutRelay(target: url, armed: true, early: true)
        defer { relay.stop() }
        let config = try PGReviewServiceTests.configuration(groupWait: "1h")
        let (_, store) = try PGReviewServiceTests.node(config, url, now: t0)
        defer { store.close() }
        let (p, cut) = try PGReviewServiceTests.node(config, relay.through(url), now: t0)
        defer { cut.close() }
        // The next commit takes 3 s at the server (a deferred trigger: it runs inside COMMIT).
        try server.psql([
            "-d", server.name(of: url), "-c",
            """
            CREATE TABLE slow_once (x int); INSERT INTO slow_once VALUES (1);
            CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE n int; BEGIN DELETE FROM slow_once; GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON commit_tokens DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION slow_commit();
            """,
        ])
        relay.arm()
        try await p.process(batch([phone("h1", "+32470000001")]), now: t0 + 1)
        #expect(relay.cutsMade == 1)
        let a = try #require(try store.alerts(states: nil, limit: 10).first)
        #expect(a.count == 1, "one sighting counted \(a.count) times")
    }

    @Test(
        "an operator's resolution made through another node just before the dispatcher's holder dies is told to the receivers by the node that takes the lease over"
    )
    func resolutionBeforeHolderDiesIsTold() async throws {
        let url = try PostgresServer.shared().database("lrresolve") + "&lease=0.5"
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
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)
        try await a.tick(now: t0 + 1)
        #expect(try states() == ["firing"])
        // An analyst resolves it through node B's API; A dies (kill -9) before its next tick.
        let id = try #require(try storeB.alerts(states: nil, limit: 1).first?.id)
        _ = try Dispatcher.act(
            on: id, state: .resolved, principal: Principal(id: "analyst", partner: "ops", role: .analyst),
            reason: "false positive", store: storeB, now: t0 + 5)
        storeA.close()
        try await Task.sleep(nanoseconds: 900_000_000)
        for s in [6.0, 8, 20, 60] { try await b.tick(now: t0 + s) }  // B takes the lease over
        let told = try states()
        #expect(told == ["firing", "resolved"], "told: \(told)")
        _ = a
    }

    @Test(
        "an alert resolved through one node and seen again at another before the dispatcher told the resolution keeps its escalation (its receivers were never told it ended): step 1 is paged once, when due"
    )
    func reopenedElsewhereKeepsEscalating() async throws {
        let url = try PostgresServer.shared().database("lrreopen")
        let config = try PGReviewServiceTests.configuration(
            groupWait: "0s", resolveTimeout: "10h", routeExtra: ", escalation: [{after: 5m, receivers: [duty]}]")
        let (a, storeA) = try PGReviewServiceTests.node(config, url, now: t0)
        let (b, storeB) = try PGReviewServiceTests.node(config, url, now: t0)
        defer {
            storeA.close()
            storeB.close()
        }
        try await a.tick(now: t0)  // A holds the dispatcher's lease
        try await a.process(batch([phone("x", "+32470000001")]), now: t0)
        try await a.tick(now: t0 + 1)  // notified at t0 + 1: step 1 due at t0 + 301
        #expect(try storeA.escalations().count == 1)
        // Resolved through B's API at t0 + 200, seen again at B at t0 + 250, before A's next tick.
        let id = try #require(try storeB.alerts(states: nil, limit: 1).first?.id)
        _ = try Dispatcher.act(
            on: id, state: .resolved, principal: Principal(id: "analyst", partner: "ops", role: .analyst),
            reason: "looked", store: storeB, now: t0 + 200)
        try await b.process(batch([phone("y", "+32470000001")]), now: t0 + 250)
        try await a.tick(now: t0 + 251)  // A gathers the reopened alert (firing, as its receivers know it)
        #expect(try PGReviewServiceTests.notified(storeA).count == 1)  // nothing new to tell them
        try await a.tick(now: t0 + 302)  // step 1 due
        #expect(try PGReviewServiceTests.notified(storeA, "duty").count == 1)
        try await a.tick(now: t0 + 552)
        #expect(try PGReviewServiceTests.notified(storeA, "duty").count == 1)
    }

    @Test(
        "a heartbeat's selector seen at a node that does not dispatch, within a second after the holder fired the heartbeat: the heartbeat resolves"
    )
    func heartbeatSeenRightAfterItFiredResolves() async throws {
        let url = try PostgresServer.shared().database("lrbeat")
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
        try await b.tick(now: t0 + 129.5)
        try await a.tick(now: t0 + 130)
        #expect(try beats() == ["firing"])
        // The source speaks again at B half a second later (B read the heartbeat's state before it fired).
        try await b.process(batch([phone("s1", "+32479999999", item: "RAQQA-7")]), now: t0 + 130.5)
        for s in [131.0, 133, 140, 200] {
            try await b.tick(now: t0 + s)
            try await a.tick(now: t0 + s)
        }
        let told = try beats()
        #expect(told == ["firing", "resolved"], "told: \(told)")
    }
}
