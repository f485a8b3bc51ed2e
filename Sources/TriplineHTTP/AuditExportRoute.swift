import Hummingbird
import TriplineAudit
import TriplineJSON
import TriplineOperations
import TriplineSelectors

extension API {
    /// `POST /v1/audit/exports` (SPEC §7, §10): a bundle — the records matching the filters of `audit query`, an
    /// inclusion proof for each, the checkpoint signed now that the proofs lead to, and its verifier key — as one
    /// JSON document; its parts are the bundle directory's files (`records.ndjson`, `proofs.ndjson`, `checkpoint`,
    /// `vkey`), and it verifies offline. Auditors only; the export is audited (a refusal too). The reason is the
    /// `Tripline-Reason` header or the body's `reason`.
    static func addAuditExport(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.post("/v1/audit/exports") { request, context in
            var c = try caller(context)
            let body = try await object(request, context) ?? JSONObject()
            let known: Set = ["from", "to", "selector", "partner", "list", "rule", "receiver", "reason"]
            if let unknown = body.keys.first(where: { !known.contains($0) }) {
                throw APIError.invalid(
                    "\(unknown) is not a filter of an export (\(known.sorted().joined(separator: ", ")))")
            }
            if c.reason.trimmingCharacters(in: .whitespaces).isEmpty, let reason = body["reason"]?.stringValue {
                c.reason = reason
            }
            var f = AuditFilter()
            func text(_ key: String) throws -> String? {
                switch body[key] {
                case nil, .null?: return nil
                case .string(let s)?: return s
                default: throw APIError.invalid("\(key) is a string")
                }
            }
            f.from = try API.time(try text("from").map { Substring($0) }, "from")
            f.to = try API.time(try text("to").map { Substring($0) }, "to")
            f.selector = try text("selector")
            f.partner = try text("partner")
            f.list = try text("list")
            f.rule = try text("rule")
            f.receiver = try text("receiver")
            _ = try text("reason")
            let (bundle, problem) = try await operations(context, services).exportAudit(c, f, signer: services.signer)
            guard let bundle else {
                return API.problem(
                    .conflict, "audit log verification FAILED: \(problem ?? "?"); nothing exported")
            }
            return json(
                JSONObject([
                    ("records", .array(bundle.records.map { .object($0) })),
                    ("proofs", .array(bundle.proofs.map { .object($0) })),
                    ("checkpoint", .string(bundle.checkpoint)), ("vkey", .string(bundle.vkey)),
                ]))
        }
    }
}
