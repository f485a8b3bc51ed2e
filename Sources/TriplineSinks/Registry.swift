import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineState

/// Sinks by integration type (`<type>_configs` in a receiver): the delivery service looks an integration's sink
/// up here. A new sink is one new file and one line in `standard`.
public struct SinkRegistry: Sendable {
    public var sinks: [String: any Sink]
    public init(_ sinks: [String: any Sink]) { self.sinks = sinks }

    public static let standard = SinkRegistry([
        "file": FileSink(),
        "webhook": WebhookSink(),
        "email": MailSink(),
    ])

    public func sink(_ type: String) -> (any Sink)? { sinks[type] }

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

/// A sink that keeps what it is given, for tests of delivery: by the integration's `name` setting, every
/// notification in order; `fail` (set by a test) makes deliveries fail with that failure.
public final class MemorySink: Sink, @unchecked Sendable {
    private let lock = NSLock()
    private var delivered: [String: [OutboxItem]] = [:]
    private var failures: [String: DeliveryFailure] = [:]

    public init() {}

    public func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        for i in receiver.integrations {
            let name = i.settings["name"]?.stringValue ?? receiver.name
            if let f = locked({ failures[name] }) { throw f }
            locked { delivered[name, default: []].append(item) }
        }
    }

    /// What `name` received so far.
    public func received(_ name: String) -> [OutboxItem] { locked { delivered[name] ?? [] } }
    /// Makes `name` fail (nil: deliver again).
    public func fail(_ name: String, with f: DeliveryFailure?) { locked { failures[name] = f } }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

