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
/// notification in order; `fail` (set by a test) makes deliveries fail with that failure, `times` times or until
/// cleared.
public final class MemorySink: Sink, @unchecked Sendable {
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
