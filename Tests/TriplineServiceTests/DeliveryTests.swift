import Foundation
import Logging
import ServiceLifecycle
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

/// A sink that takes up to 8 items at once and keeps each batch; `failAt` fails the item with that notification id
/// (`times` times).
final class BatchSink: Sink, @unchecked Sendable {
    static let type = "batch"
    static let resolvedByDefault = true
    static let batchLimit = 8
    static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject {
        try SinkConfig.read(entry, type: type, spec: SinkConfigSpec(keys: ["name"]), context: context)
    }
    private let lock = NSLock()
    private var _batches: [[String]] = []
    private var failing: (id: String, failure: DeliveryFailure, times: Int)?
    var batches: [[String]] { lock.withLock { _batches } }
    func fail(_ id: String, with f: DeliveryFailure, times: Int) { lock.withLock { failing = (id, f, times) } }
    func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        Issue.record("a batching sink is given batches")
    }
    func deliver(batch items: [OutboxItem], to receiver: Receiver, config: AlertsConfig) async -> BatchDelivery {
        let ids = items.map { $0.payload["notification_id"]?.stringValue ?? "" }
        return lock.withLock {
            _batches.append(ids)
            if let f = failing, f.times > 0, let at = ids.firstIndex(of: f.id) {
                failing = (f.id, f.failure, f.times - 1)
                return BatchDelivery(delivered: at, failure: f.failure)
            }
            return BatchDelivery(delivered: items.count, failure: nil)
        }
    }
}

/// The delivery service as a value, on a memory store, with memory sinks: lanes, retries, holds.
struct DeliveryHarness {
    var store: any StateStore = MemoryStateStore()
    let memory = MemorySink()
    let batch = BatchSink()
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
            for (type, n) in integrations {
                r.add(type, JSONObject([(type == "file" ? "path" : "name", .string(n))]), sendResolved: true)
            }
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
            sinks: SinkRegistry([memory, StuckSink(), batch, FileSink()]))
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

    @Test(
        "shutting down with an outcome not yet recorded (the database locked): the service records it before it ends, within the drain timeout — left pending, another node would send it again"
    )
    func shutdownRecordsWhatWasSent() async throws {
        let dir = scratchDirectory("unrecorded-stop")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.sqlite").path
        let store = try SQLiteStateStore(path: path, busyTimeout: 0.05)
        try store.migrate()
        let h = DeliveryHarness([("r", [("memory", "m")])], store: store)
        try h.queue("r", id: "n1")
        let locker = try DatabaseLocker(path)
        let cfg = h.config
        let service = DeliveryService(
            store: store, config: { cfg }, logger: Logger(label: "test"), drainTimeout: 5, maxBackoff: 0.05,
            sinks: SinkRegistry([h.memory]))
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        // Sent, its outcome not recorded (locked); then the service is asked to stop, and the database comes back.
        let sent = Date().addingTimeInterval(5)
        while h.memory.received("m").isEmpty && Date() < sent { try await Task.sleep(nanoseconds: 10_000_000) }
        try await Task.sleep(nanoseconds: 200_000_000)
        await group.triggerGracefulShutdown()
        try await Task.sleep(nanoseconds: 300_000_000)
        locker.release()
        try await running.value
        #expect(h.memory.received("m").count == 1)
        #expect(try store.outbox(status: .delivered, limit: 10).count == 1)
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

    @Test("a sink that takes batches gets the lane in order, 8 at a time; each item recorded and audited once")
    func batches() async throws {
        let h = DeliveryHarness([("r", [("batch", "b")])])
        for n in 0..<20 { try h.queue("r", id: "n\(n)") }
        let done = await h.run { (try? h.store.outbox(status: .delivered, limit: 100).count) == 20 }
        #expect(done)
        #expect(h.batch.batches.map(\.count) == [8, 8, 4])
        #expect(h.batch.batches.flatMap { $0 } == (0..<20).map { "n\($0)" })
        #expect(try h.events("delivered").count == 20)
    }

    @Test("a failure inside a batch: the items before it delivered, it retried, nothing after it overtakes it")
    func failureInsideABatch() async throws {
        let h = DeliveryHarness([("r", [("batch", "b")])])
        h.batch.fail("n3", with: DeliveryFailure("503", retryAfter: 0.3), times: 1)
        for n in 0..<10 { try h.queue("r", id: "n\(n)") }
        let done = await h.run { (try? h.store.outbox(status: .delivered, limit: 100).count) == 10 }
        #expect(done)
        let b = h.batch.batches
        #expect(b.count == 2)
        #expect(b.first == (0..<8).map { "n\($0)" })  // n3 failed: n4...n7 not delivered with it
        #expect(b.last == (3..<10).map { "n\($0)" })
        #expect(try h.events("delivery_failed").count == 1 && h.events("delivered").count == 10)
        let attempts = try h.store.outbox(status: .delivered, limit: 100).map(\.attempts)
        #expect(attempts.sorted() == Array(repeating: 1, count: 9) + [2])
    }

    @Test("a dead letter inside a batch lets the rest of the lane go on")
    func deadLetterInsideABatch() async throws {
        let h = DeliveryHarness([("r", [("batch", "b")])])
        h.batch.fail("n2", with: DeliveryFailure("400", permanent: true), times: 1)
        for n in 0..<6 { try h.queue("r", id: "n\(n)") }
        let done = await h.run { (try? h.store.outbox(status: .delivered, limit: 100).count) == 5 }
        #expect(done)
        #expect(h.batch.batches == [(0..<6).map { "n\($0)" }, ["n3", "n4", "n5"]])
        #expect(
            try h.store.outbox(status: .dead, limit: 10).map { $0.payload["notification_id"]?.stringValue } == ["n2"])
    }

    @Test("a log file lane: its notifications appended in order, once each; an unwritable path retried until it is not")
    func logFileLane() async throws {
        let dir = scratchDirectory("filelane")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("alerts.ndjson").path
        // A directory where the file should be: refused.
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let store = try SQLiteStateStore(path: dir.appendingPathComponent("state.sqlite").path)
        try store.migrate()
        let h = DeliveryHarness([("r", [("file", path)])], store: store)
        for n in 0..<100 { try h.queue("r", id: "n\(n)") }
        let failed = await h.run { ((try? h.events("delivery_failed").count) ?? 0) > 0 }
        #expect(failed)
        // Only the first is attempted (the batch failed as a whole); one audit record per attempt.
        let pending = try h.store.outbox(status: .pending, limit: 200)
        #expect(pending.count == 100 && pending.filter { $0.attempts > 0 }.map(\.id) == [pending.map(\.id).min()!])
        #expect(try h.events("delivery_failed").count == pending.map(\.attempts).reduce(0, +))
        try FileManager.default.removeItem(atPath: path)
        let done = await h.run { (try? h.store.outbox(status: .delivered, limit: 200).count) == 100 }
        #expect(done)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let ids = try lines.map { try JSONParser.parse(String($0)).objectValue?["notification_id"]?.stringValue }
        #expect(ids == (0..<100).map { "n\($0)" })
        #expect(try h.events("delivered").count == 100)
        // Each line is the payload as the writer writes it (from the store's text, not written again).
        #expect(try store.outbox(status: .delivered, limit: 1).first?.payloadText != nil)
        for l in lines {
            #expect(String(l) == JSONWriter.string(try JSONParser.parse(String(l))))
        }
    }

    @Test("an attempt waiting for its retry whose outcome could not be recorded (database locked) still holds its lane")
    func unrecordedFailureHoldsTheLane() async throws {
        let dir = scratchDirectory("unrecorded-fifo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.sqlite").path
        let store = try SQLiteStateStore(path: path, busyTimeout: 0.05)
        try store.migrate()
        let h = DeliveryHarness([("r", [("memory", "m")])], store: store)
        h.memory.fail("m", with: DeliveryFailure("503", retryAfter: 60), times: 1)
        try h.queue("r", id: "trigger")
        try h.queue("r", id: "resolve")
        let locker = try DatabaseLocker(path)
        Task.detached {
            try? await Task.sleep(nanoseconds: 1_500_000_000)
            locker.release()
        }
        _ = await h.run(seconds: 4) { false }
        // The trigger waits 60 s for its retry: the resolve may not overtake it.
        #expect(h.memory.received("m").isEmpty)
        #expect(h.memory.attempts("m") == 1)
        #expect(try h.events("delivery_failed").count == 1)  // recorded once the database was back
    }

    @Test("a log file batch cut short (a full disk, a size limit) leaves the file as it was; the retry writes it whole")
    func shortWriteLeavesNoTornLine() async throws {
        let dir = scratchDirectory("short-write")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("alerts.ndjson").path
        let h = DeliveryHarness([("r", [("file", path)])])  // a memory store: the size limit touches the log alone
        for n in 0..<40 { try h.queue("r", id: "n\(n)") }
        signal(SIGXFSZ, SIG_IGN)  // as `serve` does: past the limit a write fails instead of killing the process
        var old = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        var limit = rlimit(rlim_cur: 1000, rlim_max: old.rlim_max)
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
        let failed = await h.run { ((try? h.events("delivery_failed").count) ?? 0) > 0 }
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        #expect(failed)
        #expect(((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) == 0)
        let done = await h.run { (try? h.store.outbox(status: .delivered, limit: 100).count) == 40 }
        #expect(done)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let ids = lines.map { (try? JSONParser.parse(String($0)))?.objectValue?["notification_id"]?.stringValue }
        #expect(ids == (0..<40).map { "n\($0)" })  // none torn, none twice
    }

    @Test("an item whose entitlement cannot be judged now (refresh gives nil) is not sent, and holds its lane")
    func unjudgedItemIsNotSent() async throws {
        let h = DeliveryHarness([("r", [("memory", "m")])])
        try h.queue("r", id: "a")
        try h.queue("r", id: "b")
        let cfg = h.config
        let service = DeliveryService(
            store: h.store, config: { cfg }, logger: Logger(label: "test"), drainTimeout: 1, maxBackoff: 0.05,
            sinks: SinkRegistry([h.memory]), refresh: { _ in nil })
        let task = Task { try await service.run() }
        try await Task.sleep(nanoseconds: 500_000_000)
        task.cancel()
        _ = try? await task.value
        #expect(h.memory.received("m").isEmpty)
        // Not an attempt: no record, no attempt counted (the lane waits and tries to judge again).
        #expect(try h.store.events(after: 0, limit: 100).isEmpty)
        #expect(try h.store.outbox(status: .pending, limit: 10).map(\.attempts) == [0, 0])
    }

    @Test("a log receiver on a FIFO nobody reads delays no other log receiver (SPEC §6: delivery isolation)")
    func stalledLogFileDelaysNoOther() async throws {
        let dir = scratchDirectory("fifo-lane")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let plain = dir.appendingPathComponent("alerts.ndjson").path
        let h = DeliveryHarness([("stalled", [("file", fifo)]), ("plain", [("file", plain)])])
        try h.queue("stalled", id: "s1")
        try h.queue("plain", id: "p1")
        let start = Date()
        let done = await h.run { (try? String(contentsOfFile: plain, encoding: .utf8))?.contains("p1") == true }
        #expect(done)
        #expect(Date().timeIntervalSince(start) < 1)  // tolerance: well under a second; it waited 4 s behind the FIFO
        #expect(try h.store.outbox(status: .delivered, limit: 10).map(\.receiver) == ["plain"])
    }
}
