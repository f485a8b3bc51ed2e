import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import TriplineAlerts
import TriplineJSON
import TriplineState

/// Standard Webhooks signing: `webhook-id`, `webhook-timestamp`, and `webhook-signature: v1,<base64>` — the
/// HMAC-SHA256 of `id.timestamp.body` under each `whsec_` secret (several during a key rotation).
public struct WebhookSigner: Sendable {
    public let keys: [[UInt8]]

    /// `whsec_<base64>` secrets, one per line.
    public init(secrets: String) throws(DeliveryFailure) {
        var keys: [[UInt8]] = []
        for line in secrets.split(whereSeparator: \.isNewline) {
            let s = line.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { continue }
            guard s.hasPrefix("whsec_"), let k = Data(base64Encoded: String(s.dropFirst(6))), !k.isEmpty else {
                throw DeliveryFailure("a webhook secret is whsec_ followed by base64", permanent: true)
            }
            keys.append(Array(k))
        }
        guard !keys.isEmpty else { throw DeliveryFailure("no webhook secret", permanent: true) }
        self.keys = keys
    }

    public func headers(id: String, timestamp: Int, body: [UInt8]) -> [(String, String)] {
        let content = Array("\(id).\(timestamp).".utf8) + body
        let sigs = keys.map { k in
            "v1,"
                + Data(HMAC<SHA256>.authenticationCode(for: content, using: SymmetricKey(data: k)))
                .base64EncodedString()
        }
        return [
            ("webhook-id", id), ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", sigs.joined(separator: " ")),
        ]
    }
}

/// The webhook body: Alertmanager's fields (`status`, `receiver`, `groupLabels`, `commonLabels`, `alerts[]` with
/// `labels`, `annotations`, `startsAt`, `fingerprint`) plus `dedup_key`, `severity` and `event_action`, made from
/// the receiver's need-to-know view only.
public enum WebhookBody {
    public static func make(_ payload: JSONObject) -> JSONObject {
        let views = (payload["alerts"]?.arrayValue ?? []).compactMap(\.objectValue)
        var alerts: [JSONValue] = []
        var common: JSONObject?
        for v in views {
            let labels = v["labels"]?.objectValue ?? JSONObject()
            common = common.map { c in JSONObject(c.members.filter { labels[$0.key] == $0.value }) } ?? labels
            var a = JSONObject()
            let state = v["state"]?.stringValue ?? "firing"
            a.append("status", .string(state == "resolved" ? "resolved" : "firing"))
            a.append("labels", .object(labels))
            var ann = JSONObject()
            if let n = v["notice"] { ann.append("notice", n) }
            if let w = v["watchlist"]?.objectValue, let l = w["label"] { ann.append("summary", l) }
            if let r = v["rule"]?.objectValue, let t = r["title"] { ann.append("rule", t) }
            if let c = v["contact"] { ann.append("contact", c) }
            a.append("annotations", .object(ann))
            if let s = v["selector"] { a.append("selector", s) }
            a.append("startsAt", v["first_seen"] ?? .null)
            a.append("endsAt", state == "resolved" ? (v["last_seen"] ?? .null) : .string("0001-01-01T00:00:00Z"))
            let key = v["key"] ?? .string("alert-" + (v["alert_id"].map { JSONWriter.string($0) } ?? ""))
            a.append("fingerprint", key)
            a.append("dedup_key", key)
            a.append("alert_id", v["alert_id"] ?? .null)
            a.append("severity", v["priority"] ?? .null)
            a.append(
                "event_action",
                .string(state == "resolved" ? "resolve" : state == "acknowledged" ? "acknowledge" : "trigger"))
            if let c = v["count"] { a.append("count", c) }
            alerts.append(.object(a))
        }
        var o = JSONObject()
        o.append("version", .string("4"))
        o.append("notification_id", payload["notification_id"] ?? .null)
        o.append("status", payload["status"] ?? .string("firing"))
        o.append("receiver", payload["receiver"] ?? .null)
        o.append("groupLabels", payload["group_labels"] ?? .object(JSONObject()))
        o.append("commonLabels", .object(common ?? JSONObject()))
        let first = alerts.first?.objectValue
        o.append("dedup_key", first?["dedup_key"] ?? .null)
        o.append("severity", first?["severity"] ?? .null)
        o.append("event_action", first?["event_action"] ?? .string("trigger"))
        if let d = payload["digest"] { o.append("digest", d) }
        o.append("alerts", .array(alerts))
        return o
    }
}

/// Posts notifications to `webhook_configs` URLs, signed. 2xx: delivered; 429 and 408 and 5xx: retried (429's
/// `Retry-After` honoured); 410: the endpoint is gone (the receiver is disabled until an operator enables it);
/// other 4xx: dead letter.
public struct WebhookSink: Sink {
    let client: HTTPClient
    let timeout: TimeAmount

    public init(client: HTTPClient = .shared, timeout: TimeAmount = .seconds(10)) {
        self.client = client
        self.timeout = timeout
    }

    public func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        for wc in receiver.webhookConfigs {
            if item.payload["status"] == .string("resolved") && wc["send_resolved"]?.stringValue == "false" { continue }
            guard let url = wc["url"]?.stringValue else {
                throw DeliveryFailure("webhook config without url", permanent: true)
            }
            let signer = try WebhookSigner(secrets: try Secrets.read(wc, "secret", what: "webhook secret"))
            let body = Array(JSONWriter.string(.object(WebhookBody.make(item.payload))).utf8)
            let id = item.payload["notification_id"]?.stringValue ?? "outbox-\(item.id)"
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.headers.add(name: "user-agent", value: "tripline")
            for (k, v) in signer.headers(id: id, timestamp: Int(Date().timeIntervalSince1970), body: body) {
                request.headers.add(name: k, value: v)
            }
            request.body = .bytes(ByteBuffer(bytes: body))
            let response: HTTPClientResponse
            do { response = try await client.execute(request, timeout: timeout) } catch {
                throw DeliveryFailure("\(url): \(error)")
            }
            let code = Int(response.status.code)
            _ = try? await response.body.collect(upTo: 64 * 1024)
            switch code {
            case 200..<300: continue
            case 429:
                throw DeliveryFailure(
                    "\(url): 429 Too Many Requests",
                    retryAfter: Self.retryAfter(response.headers.first(name: "retry-after")))
            case 410: throw DeliveryFailure("\(url): 410 Gone: endpoint disabled", permanent: true, gone: true)
            case 408, 500..<600:
                throw DeliveryFailure(
                    "\(url): \(code)", retryAfter: Self.retryAfter(response.headers.first(name: "retry-after")))
            default: throw DeliveryFailure("\(url): \(code) (not retried)", permanent: true)
            }
        }
    }

    /// `Retry-After` as seconds or an HTTP date.
    static func retryAfter(_ v: String?) -> Double? {
        guard let v = v?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        if let s = Double(v) { return max(0, s) }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: v).map { max(0, $0.timeIntervalSinceNow) }
    }
}
