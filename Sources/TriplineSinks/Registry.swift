import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineState
import TriplineYAML

/// Sinks by integration type (`<type>_configs` in a receiver): the delivery service looks an integration's sink
/// up here. A new sink is one new file and one line in `standard`.
public struct SinkRegistry: Sendable {
    public var sinks: [String: any Sink]
    /// The types in registration order (the order receivers' keys are listed in errors).
    public var types: [String]
    public init(_ sinks: [any Sink]) {
        self.sinks = [:]
        types = []
        for s in sinks {
            let t = type(of: s).type
            self.sinks[t] = s
            types.append(t)
        }
    }

    public static let standard = SinkRegistry([
        FileSink(),
        WebhookSink(),
        MailSink(),
    ])

    public func sink(_ type: String) -> (any Sink)? { sinks[type] }

    /// Reads a receiver's `<type>_configs` list into its integrations, each with its resolved policy.
    public func read(_ type: String, _ list: Node, into receiver: inout Receiver, context: SinkConfigContext)
        throws(LocatedError)
    {
        guard let sink = sinks[type] else { throw list.error("no sink for \(type)_configs") }
        guard let items = list.sequence else { throw list.error("\"\(type)_configs\" must be a list") }
        let kind = Swift.type(of: sink)
        for item in items {
            let settings = try kind.settings(item, context)
            let resolved = settings["send_resolved"]?.stringValue.map { $0 == "true" } ?? kind.resolvedByDefault
            receiver.add(type, settings, sendResolved: resolved)
        }
    }

    /// Delivers `item` through one integration of `receiver` (the sinks see a receiver holding only it).
    public func deliver(_ item: OutboxItem, to receiver: Receiver, integration: Integration, config: AlertsConfig)
        async throws(DeliveryFailure)
    {
        guard let sink = sinks[integration.type] else {
            throw DeliveryFailure("no sink for \(integration.type) integrations", permanent: true)
        }
        var only = receiver
        only.integrations = [integration]
        try await sink.deliver(item, to: only, config: config)
    }
}

extension SinkRegistry {
    /// How many items of one lane the integration's sink takes at once.
    public func batchLimit(_ integration: Integration) -> Int {
        sinks[integration.type].map { max(1, type(of: $0).batchLimit) } ?? 1
    }

    /// Delivers `items` of one lane through one integration of `receiver`, as many at once as its sink takes.
    public func deliver(
        batch items: [OutboxItem], to receiver: Receiver, integration: Integration, config: AlertsConfig
    )
        async -> BatchDelivery
    {
        guard let sink = sinks[integration.type] else {
            return BatchDelivery(
                delivered: 0, failure: DeliveryFailure("no sink for \(integration.type) integrations", permanent: true))
        }
        var only = receiver
        only.integrations = [integration]
        return await sink.deliver(batch: items, to: only, config: config)
    }
}

/// A sink that keeps what it is given, for tests of delivery: by the integration's `name` setting, every
/// notification in order; `fail` (set by a test) makes deliveries fail with that failure, `times` times or until
/// cleared.
public final class MemorySink: Sink, @unchecked Sendable {
    public static let type = "memory"
    public static let resolvedByDefault = true
    /// `memory_configs` entries: `name` (what the test reads back), `send_resolved`.
    public static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject {
        var spec = SinkConfigSpec(keys: ["name", "send_resolved"])
        spec.required = ["name"]
        return try SinkConfig.read(entry, type: type, spec: spec, context: context)
    }

    private let lock = NSLock()
    private var delivered: [String: [OutboxItem]] = [:]
    private var failures: [String: (failure: DeliveryFailure, left: Int)] = [:]
    private var attempts: [String: Int] = [:]

    public init() {}

    public func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        for i in receiver.integrations {
            let name = i.settings["name"]?.stringValue ?? receiver.name
            let failure = locked { () -> DeliveryFailure? in
                attempts[name, default: 0] += 1
                guard let f = failures[name] else { return nil }
                if f.left <= 1 { failures[name] = nil } else { failures[name] = (f.failure, f.left - 1) }
                return f.failure
            }
            if let failure { throw failure }
            locked { delivered[name, default: []].append(item) }
        }
    }

    /// What `name` received so far.
    public func received(_ name: String) -> [OutboxItem] { locked { delivered[name] ?? [] } }
    /// Deliveries tried through `name`, failed ones included.
    public func attempts(_ name: String) -> Int { locked { attempts[name] ?? 0 } }
    /// Makes `name` fail `times` times (nil: deliver again).
    public func fail(_ name: String, with f: DeliveryFailure?, times: Int = .max) {
        locked { failures[name] = f.map { ($0, times) } }
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}
