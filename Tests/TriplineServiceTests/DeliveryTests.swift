import Foundation
import Logging
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineService
import TriplineSinks
import TriplineState
import TriplineStateSQLite
import TriplineTestSupport
import TriplineYAML

/// A sink that holds every delivery for a minute (a peer that never answers), unless cancelled.
struct StuckSink: Sink {
    static let type = "stuck"
    static let resolvedByDefault = true
    static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject {
        try SinkConfig.read(entry, type: type, spec: SinkConfigSpec(keys: ["name"]), context: context)
    }
    func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        try? await Task.sleep(nanoseconds: 60_000_000_000)
        throw DeliveryFailure("cancelled")
    }
}

/// The delivery service as a value, on a memory store, with memory sinks: lanes, retries, holds.
struct DeliveryHarness {
    var store: any StateStore = MemoryStateStore()
    let memory = MemorySink()
    let config: AlertsConfig

    /// Receivers named by their integrations: `("r", [("memory", "m1"), ("stuck", "s")])`.
    init(_ receivers: [(String, [(String, String)])], store: (any StateStore)? = nil) {
        if let store { self.store = store }
        let route = Route(
            receiver: receivers[0].0, matchers: [], groupBy: [], groupWait: 0, groupInterval: 1, repeatInterval: 3600,
            continue: false, routes: [], index: 0)
        var c = AlertsConfig(route: route, handleKey: Array("k".utf8))
        c.partners = [Partner(id: "ops", name: "Ops", countries: [], contact: "c")]
        for (name, integrations) in receivers {
            var r = Receiver(name: name, partner: "ops")
            for (type, n) in integrations { r.add(type, JSONObject([("name", .string(n))]), sendResolved: true) }
            c.receivers.append(r)
        }
        config = c
    }

    /// One notification per integration of `receiver`, as the dispatcher queues it.
    func queue(_ receiver: String, id: String, at t: Double = Date().timeIntervalSince1970) throws {
        var c = Commit()
        for i in config.receiver(receiver)!.integrations {
            c.outbox.append(
                OutboxItem(
                    receiver: receiver, integration: i.name, priorityRank: 3, createdAt: t, nextAttemptAt: t,
                    payload: JSONObject([("notification_id", .string(id)), ("status", .string("firing"))])))
        }
        try store.commit(c)
    }

    /// Runs the service until `until` holds (or `seconds` pass), then cancels it.
    func run(maxBackoff: Double = 0.05, seconds: Double = 10, until: @escaping () -> Bool) async -> Bool {
        let cfg = config
        let service = DeliveryService(
            store: store, config: { cfg }, logger: Logger(label: "test"), drainTimeout: 1, maxBackoff: maxBackoff,
            sinks: SinkRegistry([memory, StuckSink()]))
        let task = Task { try await service.run() }
        let end = Date().addingTimeInterval(seconds)
        var met = until()
        while !met && Date() < end {
            try? await Task.sleep(nanoseconds: 10_000_000)
            met = until()
        }
        task.cancel()
        _ = try? await task.value
        return met
    }

    func events(_ kind: String) throws -> [EventDraft] {
        try store.events(after: 0, limit: 10_000).map(\.event).filter { $0.kind == kind }
    }
}

@Suite("Delivery lanes")
struct DeliveryTests {
    @Test("a receiver that never answers delays no other receiver, nor the other integration of its own")
    func stuckLaneDelaysNobody() async throws {
        let h = DeliveryHarness([
            ("stuck", [("stuck", "s")]), ("fast", [("memory", "f")]), ("mixed", [("stuck", "s2"), ("memory", "m")]),
        ])
        try h.queue("stuck", id: "n1")
        try h.queue("fast", id: "n2")
        try h.queue("mixed", id: "n3")
        let start = Date()
        let done = await h.run { h.memory.received("f").count == 1 && h.memory.received("m").count == 1 }
        #expect(done)
        // Tolerance: well under a second, while the stuck lanes hold for a minute.
        #expect(Date().timeIntervalSince(start) < 1)
    }

    @Test("a failing integration retries alone: its receiver's other integration is delivered once")
    func integrationsRetryAlone() async throws {
        let h = DeliveryHarness([("r", [("memory", "ok"), ("memory", "flaky")])])
        h.memory.fail("flaky", with: DeliveryFailure("451 try later"), times: 3)
        try h.queue("r", id: "n1")
        let done = await h.run { h.memory.received("flaky").count == 1 }
        #expect(done)
        #expect(h.memory.received("ok").count == 1 && h.memory.attempts("ok") == 1)
        #expect(h.memory.attempts("flaky") == 4)
        #expect(try h.events("delivery_failed").count == 3 && h.events("delivered").count == 2)
    }

    @Test("Retry-After is capped at 24 h: 1e309 (infinity) and 200,000 s both mean a retry within a day")
    func retryAfterCapped() async throws {
        for after in [1e300 * 10, 200_000.0] {
            let h = DeliveryHarness([("r", [("memory", "m")])])
            let before = Date().timeIntervalSince1970
            h.memory.fail("m", with: DeliveryFailure("429", retryAfter: after), times: 1)
            try h.queue("r", id: "n")
            _ = await h.run { (try? h.events("delivery_failed").count) == 1 }
            let next = try #require(try h.store.outbox(status: .pending, limit: 10).first?.nextAttemptAt)
            #expect(next.isFinite && next >= before + 86_400 - 1 && next <= Date().timeIntervalSince1970 + 86_400)
        }
    }

    @Test("a lane is first in, first out: a later notification never overtakes one waiting for its retry")
    func laneOrder() async throws {
        let h = DeliveryHarness([("r", [("memory", "m")])])
        h.memory.fail("m", with: DeliveryFailure("503", retryAfter: 0.4), times: 1)
        try h.queue("r", id: "trigger")
        try h.queue("r", id: "resolve")
        let done = await h.run { h.memory.received("m").count == 2 }
        #expect(done)
        #expect(h.memory.received("m").map { $0.payload["notification_id"]?.stringValue } == ["trigger", "resolve"])
        #expect(h.memory.attempts("m") == 3)
    }

    @Test("delivered but not recorded (the database locked): not sent again; recorded when the database is back")
    func unrecordedOutcomeIsNotResent() async throws {
        let dir = scratchDirectory("unrecorded")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.sqlite").path
        let store = try SQLiteStateStore(path: path, busyTimeout: 0.05)
        try store.migrate()
        let h = DeliveryHarness([("r", [("memory", "m")])], store: store)
        try h.queue("r", id: "n1")
        let locker = try DatabaseLocker(path)
        Task.detached {
            try? await Task.sleep(nanoseconds: 1_500_000_000)
            locker.release()
        }
        let done = await h.run { (try? h.store.outbox(status: .delivered, limit: 10).count) == 1 }
        #expect(done)
        #expect(h.memory.received("m").count == 1 && h.memory.attempts("m") == 1)
        #expect(try h.events("delivered").count == 1)
    }

    @Test("a 410 holds the lane without attempts or records until the receiver is enabled")
    func goneHoldsTheLane() async throws {
        let h = DeliveryHarness([("r", [("memory", "gone"), ("memory", "other")])])
        h.memory.fail("gone", with: DeliveryFailure("410 Gone", permanent: true, gone: true))
        try h.queue("r", id: "n1")
        try h.queue("r", id: "n2")
        _ = await h.run(seconds: 1.5) { false }  // runs 1.5 s
        #expect(h.memory.attempts("gone") == 1)  // the second notification was not tried
        #expect(h.memory.received("other").count == 2)  // the other integration went on
        let records = try h.store.events(after: 0, limit: 1000).count
        #expect(try h.events("receiver_disabled").count == 1)
        #expect(try h.store.outbox(status: .dead, limit: 10).isEmpty)
        _ = await h.run(seconds: 1) { false }
        #expect(try h.store.events(after: 0, limit: 1000).count == records)  // held: no records while nothing changes
        // Enabled (as `tripline receivers enable` commits): both go out, the refused one under its id.
        h.memory.fail("gone", with: nil)
        var c = Commit()
        c.offsets = [(DeliveryFailure.disabledKey(OutboxLane(receiver: "r", integration: "memory/0")), 0)]
        try h.store.commit(c)
        let done = await h.run { h.memory.received("gone").count == 2 }
        #expect(done)
        #expect(h.memory.received("gone").map { $0.payload["notification_id"]?.stringValue } == ["n1", "n2"])
    }
}
