import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import TriplineAlerts
import TriplineJSON
import TriplineState
import TriplineYAML

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

/// Posts notifications to `webhook_configs` URLs, signed. 2xx: delivered; 429 and 408 and 5xx: retried (their
/// `Retry-After` honoured); 410: the endpoint is gone (the receiver is disabled until an operator enables it);
/// 3xx: redirects are not followed (dead letter); other 4xx: dead letter.
///
/// Every request has one deadline for all of it — connecting, the response head and the response body (read up
/// to 64 KiB) — from the config's `timeout` (a duration; default 10 s, at most 24 h). Error messages name the
/// URL as `scheme://host[:port]/path` only: its query and user info (where tokens live) never appear.
public struct WebhookSink: Sink {
    let client: HTTPClient
    let timeout: TimeAmount

    /// `client` must not follow redirects (the default, `WebhookSink.client`, does not); `timeout` applies where
    /// a webhook config has no `timeout` key.
    public init(client: HTTPClient = WebhookSink.client, timeout: TimeAmount = .seconds(10)) {
        self.client = client
        self.timeout = timeout
    }

    public func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        for wc in receiver.webhookConfigs {
            if item.payload["status"] == .string("resolved") && wc["send_resolved"]?.stringValue == "false" { continue }
            // `url_file`: a URL that is itself a secret (a token in its path, as Slack-style hooks have) is read
            // from a file and never shown beyond scheme://host.
            let secretURL = wc["url"] == nil
            let url: String
            if let u = wc["url"]?.stringValue {
                url = u
            } else if wc["url_file"] != nil || wc["url_env"] != nil {
                url = try Secrets.read(wc, "url", what: "webhook URL").trimmingCharacters(in: .whitespacesAndNewlines)
                guard let u = URL(string: url), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                    throw DeliveryFailure("the webhook URL in url_file is not an http or https URL", permanent: true)
                }
            } else {
                throw DeliveryFailure("webhook config without url", permanent: true)
            }
            let limit = try Self.timeout(wc, default: timeout)
            let signer = try WebhookSigner(secrets: try Secrets.read(wc, "secret", what: "webhook secret"))
            let body = Array(JSONWriter.string(.object(WebhookBody.make(item.payload))).utf8)
            let id = item.payload["notification_id"]?.stringValue ?? "outbox-\(item.id)"
            let headers =
                [("content-type", "application/json"), ("user-agent", "tripline")]
                + signer.headers(id: id, timestamp: Int(Date().timeIntervalSince1970), body: body)
            try await Self.post(
                url: url, headers: headers, body: body, timeout: limit, client: client, hidePath: secretURL)
        }
    }

    /// The longest any network wait or `Retry-After` may be (SPEC §6): 24 h, in seconds.
    public static let maximumWait: Double = 86_400
    /// The most of a response body read (the rest is left unread and the connection closed).
    public static let maximumResponseBody = 64 * 1024

    /// The client webhooks use: the shared event loops, redirects not followed (a redirect would carry the signed
    /// body to a URL nobody configured).
    public static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }()

    /// The deadline of one request to this webhook config: its `timeout` (a duration string), else `fallback`;
    /// at most 24 h.
    public static func timeout(_ wc: JSONObject, default fallback: TimeAmount = .seconds(10)) throws(DeliveryFailure)
        -> TimeAmount
    {
        let cap = TimeAmount.seconds(Int64(maximumWait))
        guard let t = wc["timeout"]?.stringValue else { return min(fallback, cap) }
        guard let d = parseDuration(t), d.isFinite, d > 0 else {
            throw DeliveryFailure("webhook config timeout \"\(t)\" is not a positive duration", permanent: true)
        }
        return d >= maximumWait ? cap : .nanoseconds(Int64(d * 1_000_000_000))
    }

    /// What one request came to, before it is judged.
    enum Outcome: Sendable {
        case response(code: Int, retryAfter: String?)
        case failed(String)
        case deadline
    }

    /// POSTs `body` to `url` and judges the answer: returns on 2xx, throws a `DeliveryFailure` otherwise. Everything —
    /// connecting, the head and the body (read up to 64 KiB) — ends within `timeout` of the call (at most 24 h).
    /// Redirects are failures (permanent), whatever `client` does with them. Messages name the URL redacted
    /// (`redactedURL`), and quote no response body.
    public static func post(
        url: String, headers: [(String, String)], body: [UInt8], timeout: TimeAmount,
        client: HTTPClient = WebhookSink.client, hidePath: Bool = false
    ) async throws(DeliveryFailure) {
        let shown = redactedURL(url, path: !hidePath)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let prepared = request
        let limit = min(timeout, .seconds(Int64(maximumWait)))
        let deadline = NIODeadline.now() + limit
        let outcome = await withTaskGroup(of: Outcome.self) { group in
            group.addTask {
                do {
                    let response = try await client.execute(prepared, deadline: deadline)
                    // A client that follows redirects already did: still a failure.
                    if response.history.count > 1, let head = response.history.first?.responseHead {
                        return .response(code: Int(head.status.code), retryAfter: nil)
                    }
                    var received = 0
                    for try await chunk in response.body {
                        received += chunk.readableBytes
                        // Enough: the status decides; dropping the stream closes the connection.
                        if received > maximumResponseBody { break }
                    }
                    return .response(
                        code: Int(response.status.code), retryAfter: response.headers.first(name: "retry-after"))
                } catch let e as HTTPClientError where e == .deadlineExceeded {
                    return .deadline
                } catch {
                    return .failed(String(describing: error))
                }
            }
            group.addTask {
                let left = deadline - .now()
                if left > .nanoseconds(0) { try? await Task.sleep(for: .nanoseconds(left.nanoseconds)) }
                return .deadline
            }
            let first = await group.next() ?? .deadline
            group.cancelAll()
            return first
        }
        switch outcome {
        case .deadline:
            throw DeliveryFailure("\(shown): no complete response within \(format(limit)) (timeout)")
        case .failed(let text):
            throw DeliveryFailure("\(shown): \(scrub(text, url: url, path: hidePath))")
        case .response(let code, let retryAfterText):
            switch code {
            case 200..<300: return
            case 300..<400:
                throw DeliveryFailure("\(shown): \(code): 3xx redirect not followed", permanent: true)
            case 429:
                throw DeliveryFailure("\(shown): 429 Too Many Requests", retryAfter: retryAfter(retryAfterText))
            case 410: throw DeliveryFailure("\(shown): 410 Gone: endpoint disabled", permanent: true, gone: true)
            case 408, 500..<600:
                throw DeliveryFailure("\(shown): \(code)", retryAfter: retryAfter(retryAfterText))
            default: throw DeliveryFailure("\(shown): \(code) (not retried)", permanent: true)
            }
        }
    }

    /// `10 s`, `1500 ms`.
    static func format(_ t: TimeAmount) -> String {
        let ms = t.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }

    /// A URL as error messages show it: `scheme://host[:port]/path`, without user info, query or fragment.
    /// With `path: false` (a URL from `url_file`) the path is left out too.
    public static func redactedURL(_ url: String, path: Bool = true) -> String {
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host, !host.isEmpty else {
            return "(unparsable webhook URL)"
        }
        var out = scheme.lowercased() + "://" + (host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host)
        if let port = c.port { out += ":\(port)" }
        return out + (path ? c.percentEncodedPath : "/…")
    }

    /// `text` with the URL's secret parts (the whole URL, its query, fragment and user info) cut out, in case an
    /// underlying error quotes them.
    static func scrub(_ text: String, url: String, path: Bool = false) -> String {
        var secrets = [url]
        if let c = URLComponents(string: url) {
            if path && c.percentEncodedPath.count > 1 { secrets += [c.percentEncodedPath, c.path] }
            secrets += [c.percentEncodedQuery, c.query, c.percentEncodedFragment, c.fragment].compactMap { $0 }
            let user = c.percentEncodedUser ?? ""
            let password = c.percentEncodedPassword.map { ":" + $0 } ?? ""
            if !(user + password).isEmpty { secrets.append(user + password + "@") }
            secrets += [c.password, c.percentEncodedPassword].compactMap { $0 }
        }
        var out = text
        for s in secrets.filter({ $0.count >= 3 }).sorted(by: { $0.count > $1.count }) {
            out = out.replacingOccurrences(of: s, with: "…")
        }
        return out
    }

    /// `Retry-After` (RFC 9110 §10.2.3) in seconds: delta-seconds (digits; a fraction is tolerated) or an HTTP-date
    /// (IMF-fixdate, RFC 850 or asctime form; one in the past is 0), at most 24 h; anything else (a sign, an
    /// exponent, words) is nil.
    public static func retryAfter(_ v: String?, now: Date = Date()) -> Double? {
        guard let v = v?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        let digits = v.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        if digits.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }) {
            // Only digits: a number of seconds, however long (an endless one is the cap).
            return min(Double(v) ?? maximumWait, maximumWait)
        }
        let text = v.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.isLenient = false
        for format in ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEEE, dd-MMM-yy HH:mm:ss 'GMT'", "EEE MMM d HH:mm:ss yyyy"] {
            f.dateFormat = format
            if let d = f.date(from: text) { return min(max(0, d.timeIntervalSince(now)), maximumWait) }
        }
        return nil
    }
}

extension WebhookSink {
    public static let type = "webhook"
    /// As Alertmanager's webhook: resolved notifications unless `send_resolved: false`.
    public static let resolvedByDefault = true

    /// `webhook_configs` entries: `url` (http or https) or `url_file`/`url_env` (a URL that carries a secret),
    /// `secret_file`/`secret_env` (required: deliveries are signed), `send_resolved`, `timeout` (the whole request,
    /// body included; at most 24 h).
    public static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject {
        var spec = SinkConfigSpec(
            keys: ["url", "url_file", "url_env", "secret_file", "secret_env", "send_resolved", "timeout"])
        spec.deadlines = ["timeout"]
        spec.check = { key, value, node throws(LocatedError) in
            if key == "url" {
                guard let u = URL(string: value), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                    throw node.error("\"url\" must be an http or https URL")
                }
            }
        }
        spec.checkEntry = { s, node throws(LocatedError) in
            if [s["url"], s["url_file"], s["url_env"]].compactMap({ $0 }).count != 1 {
                throw node.error("each of webhook_configs needs one of \"url\", \"url_file\", \"url_env\"")
            }
            if s["secret_file"] == nil && s["secret_env"] == nil {
                throw node.error("a webhook config needs secret_file or secret_env (deliveries are signed)")
            }
        }
        return try SinkConfig.read(entry, type: type, spec: spec, context: context)
    }
}
