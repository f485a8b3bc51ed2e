import Foundation
import Logging
import Synchronization
import Testing
import TriplineAlerts
import TriplineAudit
import TriplineJSON
import TriplineService
import TriplineSinks
import TriplineState
import TriplineStatePostgres
import TriplineTestSupport
import TriplineYAML

/// A sink that takes `seconds` over its first delivery (a node paused mid-delivery: SIGSTOP, a long GC, a stalled
/// peer), then delivers at once; keeps every notification id it was given.
final class SlowFirstSink: Sink, @unchecked Sendable {
    static let type = "slowfirst"
    static let resolvedByDefault = true
    static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject {
        try SinkConfig.read(entry, type: type, spec: SinkConfigSpec(keys: ["name"]), context: context)
    }
    let seconds: Double
    private let state = Mutex<(first: Bool, ids: [String])>((true, []))
    init(seconds: Double) { self.seconds = seconds }
    var ids: [String] { state.withLock { $0.ids } }
    func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        let first = state.withLock { s in
            defer { s.first = false }
            return s.first
        }
        if first { try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }
        state.withLock { $0.ids.append(item.payload["notification_id"]?.stringValue ?? "") }
    }
}

/// Several nodes delivering from one PostgreSQL outbox (issue 20): each lane by one node at a time, leases taken
/// over when they run out, fencing of a node that comes back late.
@Suite("Shared outbox on PostgreSQL", .serialized)
struct SharedOutboxTests {
    func service(_ store: any StateStore, _ h: DeliveryHarness, _ sinks: [any Sink]) -> DeliveryService {
        let cfg = h.config
        return DeliveryService(
            store: store, config: { cfg }, logger: Logger(label: "test"), drainTimeout: 1, maxBackoff: 0.05,
            sinks: SinkRegistry(sinks))
    }

    @Test("two nodes, six lanes, 60 notifications: each delivered once, by one node or the other, all recorded")
    func twoNodesShareTheWork() async throws {
        let url = try PostgresServer.shared().database("share") + "&lease=1"
        let a = try PostgresStateStore(url: url)
        let b = try PostgresStateStore(url: url)
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        try b.migrate()
        let receivers = (0..<6).map { ("r\($0)", [("memory", "m\($0)")]) }
        let h = DeliveryHarness(receivers, store: a)
        for n in 0..<60 { try h.queue("r\(n % 6)", id: "n\(n)") }
        let sinkA = MemorySink()
        let sinkB = MemorySink()
        let ta = Task { try await service(a, h, [sinkA]).run() }
        let tb = Task { try await service(b, h, [sinkB]).run() }
        func delivered() -> [String] {
            (0..<6).flatMap { i in
                (sinkA.received("m\(i)") + sinkB.received("m\(i)")).map {
                    $0.payload["notification_id"]?.stringValue ?? ""
                }
            }
        }
        let end = Date().addingTimeInterval(20)
        while Date() < end, (try? a.pendingOutboxCount()) != 0 { try await Task.sleep(nanoseconds: 20_000_000) }
        ta.cancel()
        tb.cancel()
        _ = try? await ta.value
        _ = try? await tb.value
        #expect(try a.pendingOutboxCount() == 0)
        #expect(delivered().sorted() == (0..<60).map { "n\($0)" }.sorted())
        // Each lane's ten, once each; and in order, whoever delivered them: the audit log (commit order) has each
        // lane's deliveries in the order the items were queued.
        for i in 0..<6 {
            let lane = (sinkA.received("m\(i)") + sinkB.received("m\(i)")).map(\.id)
            #expect(lane.count == 10 && Set(lane).count == 10)
        }
        #expect(try a.outbox(status: .delivered, limit: 100).count == 60)
        let deliveries = try b.events(after: 0, limit: 1000).filter { $0.event.kind == "delivered" }
        #expect(deliveries.count == 60)
        for i in 0..<6 {
            let ids = deliveries.filter { $0.event.receiver == "r\(i)" }.map {
                Int($0.event.detail["notification_id"]?.stringValue?.dropFirst() ?? "") ?? -1
            }
            #expect(ids == Array(stride(from: i, to: 60, by: 6)), "r\(i): \(ids)")
        }
        var v = AuditVerifier(vkey: nil, origin: nil)
        if case .failure(let f) = v.verify(try b.auditLog()) { Issue.record("\(f)") }
    }

    @Test(
        "a node paused past its lease: the lane is taken over, its late outcome refused, nothing sent twice but that one under its id"
    )
    func pausedNodeIsFenced() async throws {
        let url = try PostgresServer.shared().database("fence") + "&lease=0.5"
        let a = try PostgresStateStore(url: url)
        let b = try PostgresStateStore(url: url)
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        try b.migrate()
        let h = DeliveryHarness([("r", [("slowfirst", "m")])], store: a)
        for n in 0..<5 { try h.queue("r", id: "n\(n)") }
        // Node A's first delivery takes 2 s, four leases; node B starts once A has the lane.
        let slow = SlowFirstSink(seconds: 2)
        let ta = Task { try await service(a, h, [slow]).run() }
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(try b.claim(lane: OutboxLane(receiver: "r", integration: "slowfirst/0")) == nil)  // A holds it
        let fast = SlowFirstSink(seconds: 0)
        let tb = Task { try await service(b, h, [fast]).run() }
        let end = Date().addingTimeInterval(15)
        while Date() < end, fast.ids.count < 5 || slow.ids.isEmpty {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        try await Task.sleep(nanoseconds: 500_000_000)  // A's late outcome, had it been recorded
        ta.cancel()
        tb.cancel()
        _ = try? await ta.value
        _ = try? await tb.value
        // B sent all five (the first again, under its id); A sent only the first and sent nothing after it.
        #expect(fast.ids == (0..<5).map { "n\($0)" })
        #expect(slow.ids == ["n0"])
        let delivered = try a.events(after: 0, limit: 100).filter { $0.event.kind == "delivered" }
        #expect(delivered.count == 5)  // A's outcome for n0 was refused, not recorded twice
        #expect(try a.outbox(status: .delivered, limit: 10).allSatisfy { $0.attempts == 1 })
    }

    @Test("a notification queued on one node wakes another's delivery at once (LISTEN/NOTIFY), not at its next second")
    func otherNodesAreWoken() async throws {
        let url = try PostgresServer.shared().database("wake") + "&lease=5"
        let a = try PostgresStateStore(url: url)
        let b = try PostgresStateStore(url: url)
        defer {
            a.close()
            b.close()
        }
        try a.migrate()
        try b.migrate()
        let h = DeliveryHarness([("r", [("memory", "m")])], store: a)
        let sink = MemorySink()
        let tb = Task { try await service(b, h, [sink]).run() }
        try await Task.sleep(nanoseconds: 1_500_000_000)  // B listening, its first reads done
        var latencies: [Double] = []
        var rng = SplitMix64(seed: 9)
        for n in 0..<5 {
            try await Task.sleep(nanoseconds: UInt64.random(in: 100_000_000...900_000_000, using: &rng))
            let queued = Date()
            try h.queue("r", id: "w\(n)")
            while sink.received("m").count < n + 1 && Date().timeIntervalSince(queued) < 5 {
                try await Task.sleep(nanoseconds: 2_000_000)
            }
            latencies.append(Date().timeIntervalSince(queued))
        }
        tb.cancel()
        _ = try? await tb.value
        #expect(sink.received("m").count == 5)
        // Polled once a second, the five would wait 0.5 s on average; woken, each goes out within a fraction of it.
        #expect(latencies.max()! < 0.4, "\(latencies)")
    }
}
