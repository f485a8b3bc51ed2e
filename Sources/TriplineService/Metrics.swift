import CoreMetrics
import Foundation
import Prometheus
import TriplineState
import TriplineWatchlists

/// The service's instruments (swift-metrics), made from the factory it is given, as swift-log's loggers are
/// handed in: the pipeline and the delivery count through these and never configure a backend. No label carries
/// partner content (SPEC §10): outcomes, hit kinds, states, priorities and the operator's receiver names only.
public struct ServiceMetrics: Sendable {
    let factory: any MetricsFactory
    let accepted: CoreMetrics.Counter
    let rejected: CoreMetrics.Counter
    let watchlistHits: CoreMetrics.Counter
    let ruleHits: CoreMetrics.Counter
    let conflicts: CoreMetrics.Counter

    public init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.factory = factory
        accepted = CoreMetrics.Counter(
            label: "tripline_selectors_total", dimensions: [("outcome", "accepted")], factory: factory)
        rejected = CoreMetrics.Counter(
            label: "tripline_selectors_total", dimensions: [("outcome", "rejected")], factory: factory)
        watchlistHits = CoreMetrics.Counter(
            label: "tripline_hits_total", dimensions: [("kind", "watchlist")], factory: factory)
        ruleHits = CoreMetrics.Counter(label: "tripline_hits_total", dimensions: [("kind", "rule")], factory: factory)
        conflicts = CoreMetrics.Counter(label: "tripline_commit_conflicts_total", factory: factory)
    }

    /// A batch's or a tick's commit refused because an alert changed under it (computed again).
    func conflict() { conflicts.increment() }

    /// One committed batch's counts.
    func batch(accepted a: Int, rejected r: Int, hits: Int, rules: Int) {
        if a > 0 { accepted.increment(by: Int64(a)) }
        if r > 0 { rejected.increment(by: Int64(r)) }
        if hits - rules > 0 { watchlistHits.increment(by: Int64(hits - rules)) }
        if rules > 0 { ruleHits.increment(by: Int64(rules)) }
    }

    /// One delivery attempt to a receiver: its outcome (delivered, failed, dead, disabled) and how long it took.
    func attempt(receiver: String, outcome: String, seconds: Double) {
        CoreMetrics.Counter(
            label: "tripline_notifications_total", dimensions: [("receiver", receiver), ("outcome", outcome)],
            factory: factory
        ).increment()
        CoreMetrics.Timer(
            label: "tripline_delivery_duration_seconds", dimensions: [("receiver", receiver)], factory: factory
        )
        .recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    /// Gauges read from the store at a scrape: alerts by state and priority, the outbox by receiver and status, and
    /// the audit log's size. Every combination known is set (to 0 when none), so a series never freezes.
    func scrape(_ counts: MetricCounts, receivers: [String], auditSize: Int?) {
        var priorities = Set(Priority.allCases.map(\.rawValue))
        for k in counts.alerts.keys { priorities.insert(k.b) }
        for state in AlertState.allCases {
            for p in priorities.sorted() {
                CoreMetrics.Gauge(
                    label: "tripline_alerts", dimensions: [("state", state.rawValue), ("priority", p)], factory: factory
                ).record(counts.alerts[.init(state.rawValue, p)] ?? 0)
            }
        }
        var names = Set(receivers)
        for k in counts.outbox.keys { names.insert(k.a) }
        for r in names.sorted() {
            for s in OutboxStatus.allCases {
                CoreMetrics.Gauge(
                    label: "tripline_outbox_items", dimensions: [("receiver", r), ("status", s.rawValue)],
                    factory: factory
                )
                .record(counts.outbox[.init(r, s.rawValue)] ?? 0)
            }
        }
        if let auditSize { CoreMetrics.Gauge(label: "tripline_audit_records", factory: factory).record(auditSize) }
    }
}

/// `/metrics`: the Prometheus registry behind the service's instruments, rendered in the text format with a HELP
/// line per family.
public struct MetricsEndpoint: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let metrics: ServiceMetrics

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Notifications take from a millisecond (a file) to the webhook timeout.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
        ]
        metrics = ServiceMetrics(factory: factory)
    }

    static let help: [String: String] = [
        "tripline_selectors_total": "Selector records read, by outcome (accepted, rejected).",
        "tripline_hits_total": "Hits, by kind (watchlist, rule).",
        "tripline_commit_conflicts_total":
            "Batches and timer runs computed again because an operator changed one of their alerts meanwhile.",
        "tripline_alerts": "Alerts in the store, by state and priority.",
        "tripline_notifications_total": "Delivery attempts, by receiver and outcome.",
        "tripline_delivery_duration_seconds": "How long a delivery attempt took, by receiver.",
        "tripline_outbox_items": "Outbox items, by receiver and status (pending is the depth).",
        "tripline_audit_records": "Records in the audit log.",
    ]

    /// The text exposition after reading the store's gauges.
    public func text(store: any DurableStore, receivers: [String]) -> String {
        if let counts = try? store.metricCounts() {
            metrics.scrape(counts, receivers: receivers, auditSize: try? store.auditSize())
        }
        var out = ""
        for line in registry.emitToString().split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.split(separator: " ").dropFirst(2).first,
                let h = Self.help[String(name)]
            {
                out += "# HELP \(name) \(h)\n"
            }
            out += line
            out += "\n"
        }
        while out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }
}
