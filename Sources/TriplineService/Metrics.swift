import Foundation
import TriplineState

/// `/metrics` in the Prometheus text format: counts only, never a label carrying partner content (SPEC §10).
enum Metrics {
    static func text(pipeline: Pipeline, store: any DurableStore) async -> String {
        let accepted = await pipeline.accepted
        let rejected = await pipeline.rejected
        let hits = await pipeline.hits
        var out = ""
        out += "# HELP tripline_selectors_total Selector records read, by outcome.\n"
        out += "# TYPE tripline_selectors_total counter\n"
        out += "tripline_selectors_total{outcome=\"accepted\"} \(accepted)\n"
        out += "tripline_selectors_total{outcome=\"rejected\"} \(rejected)\n"
        out += "# HELP tripline_hits_total Watchlist and rule hits.\n# TYPE tripline_hits_total counter\n"
        out += "tripline_hits_total \(hits)\n"
        if let pending = try? store.pendingOutboxCount() {
            out += "# HELP tripline_outbox_pending Notifications waiting for delivery.\n"
            out += "# TYPE tripline_outbox_pending gauge\ntripline_outbox_pending \(pending)\n"
        }
        if let size = try? store.auditSize() {
            out += "# HELP tripline_audit_records Records in the audit log.\n"
            out += "# TYPE tripline_audit_records gauge\ntripline_audit_records \(size)\n"
        }
        return out
    }
}
