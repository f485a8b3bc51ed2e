import Foundation
import NIOCore
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineSinks
import TriplineState
import TriplineTestSupport

/// The webhook sink's limits against real HTTP peers (scripts/webhook_receiver.py): one deadline over the whole
/// request, body included; redirects not followed; `Retry-After` bounded; the URL's secrets kept out of errors.
@Suite("webhook limits", .serialized)
struct WebhookLimitsTests {
    static let secret = "whsec_" + Data((0..<24).map { UInt8($0 * 7 + 3) }).base64EncodedString()

    static func deliver(_ settings: [(String, String)]) async throws(DeliveryFailure) {
        let dir = scratchDirectory("whsec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("secret").path
        try? (secret + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        var r = Receiver(name: "be-oncall", partner: "be-fedpol")
        r.webhookConfigs = [JSONObject((settings + [("secret_file", file)]).map { ($0.0, JSONValue.string($0.1)) })]
        try await WebhookSink().deliver(
            OutboxItem(
                receiver: "be-oncall", priorityRank: 4, createdAt: 0, nextAttemptAt: 0, payload: MailTests.payload()),
            to: r, config: MailTests.config())
    }

    @Test("a peer that answers 200 and trickles its body 1 byte/s fails the delivery at the 1 s timeout")
    func tricklingBody() async throws {
        let peer = try WebhookReceiver(secret: Self.secret, arguments: ["--trickle", "1"])
        defer { peer.stop() }
        let start = Date()
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver([("url", "http://127.0.0.1:\(peer.port)/hook"), ("timeout", "1s")])
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(error?.message == "http://127.0.0.1:\(peer.port)/hook: no complete response within 1 s (timeout)")
        #expect(error?.permanent == false)
        // The deadline is 1 s; tolerance: 0.1 s early (clock granularity), 2 s late (a loaded machine).
        #expect(elapsed >= 0.9 && elapsed < 3, "\(elapsed) s")
        #expect(peer.received.count == 1)
    }

    @Test("a 302 to another peer is a permanent failure with its status; the other peer receives nothing")
    func redirectNotFollowed() async throws {
        let other = try WebhookReceiver(secret: Self.secret)
        defer { other.stop() }
        let peer = try WebhookReceiver(
            secret: Self.secret, arguments: ["--redirect", "http://127.0.0.1:\(other.port)/elsewhere"])
        defer { peer.stop() }
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver([("url", "http://127.0.0.1:\(peer.port)/hook")])
        }
        #expect(error?.message == "http://127.0.0.1:\(peer.port)/hook: 302: 3xx redirect not followed")
        #expect(error?.permanent == true && error?.gone == false)
        #expect(peer.received.count == 1)
        usleep(300_000)
        #expect(other.received.isEmpty)
    }

    @Test("the URL's query and user info appear in no error message: HTTP status, refused connection, timeout")
    func secretsNotInErrors() async throws {
        let peer = try WebhookReceiver(secret: Self.secret, statuses: "500")
        defer { peer.stop() }
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver([("url", "http://hook-user:pw-SECRET@127.0.0.1:\(peer.port)/hook?token=SECRET")])
        }
        #expect(error?.message == "http://127.0.0.1:\(peer.port)/hook: 500")
        #expect(peer.received.count == 1)
        #expect(peer.received.first?["path"] == .string("/hook?token=SECRET"))

        // Nobody listening (AsyncHTTPClient retries a refused connection until the deadline).
        let closed = freePort()
        let refused = await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver([
                ("url", "http://hook-user:pw-SECRET@127.0.0.1:\(closed)/hook?token=SECRET"), ("timeout", "1s"),
            ])
        }
        let text = refused?.message ?? ""
        #expect(text.hasPrefix("http://127.0.0.1:\(closed)/hook: "), "\(text)")
        #expect(!text.contains("SECRET") && !text.contains("hook-user") && !text.contains("token"), "\(text)")
        #expect(refused?.permanent == false)

        let slow = try WebhookReceiver(secret: Self.secret, arguments: ["--trickle", "1"])
        defer { slow.stop() }
        let late = await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver([
                ("url", "http://hook-user:pw-SECRET@127.0.0.1:\(slow.port)/hook?token=SECRET"), ("timeout", "500ms"),
            ])
        }
        #expect(late?.message == "http://127.0.0.1:\(slow.port)/hook: no complete response within 500 ms (timeout)")
    }

    @Test("Retry-After from a real 503: an exponent is not delta-seconds (nil), a long delay is capped at 24 h")
    func retryAfterFromPeer() async throws {
        let peer = try WebhookReceiver(secret: Self.secret, statuses: "503", arguments: ["--retry-after", "1e309"])
        defer { peer.stop() }
        let error = await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver([("url", "http://127.0.0.1:\(peer.port)/hook")])
        }
        #expect(error?.message == "http://127.0.0.1:\(peer.port)/hook: 503")
        #expect(error?.permanent == false && error?.retryAfter == nil)

        let busy = try WebhookReceiver(secret: Self.secret, statuses: "429", arguments: ["--retry-after", "604800"])
        defer { busy.stop() }
        let limited = await #expect(throws: DeliveryFailure.self) {
            try await Self.deliver([("url", "http://127.0.0.1:\(busy.port)/hook")])
        }
        #expect(limited?.message == "http://127.0.0.1:\(busy.port)/hook: 429 Too Many Requests")
        #expect(limited?.retryAfter == 86_400)
    }

    @Test("Retry-After parsing: delta-seconds and the three HTTP-date forms, capped at 24 h; garbage is nil")
    func retryAfterParsing() {
        let now = Date(timeIntervalSince1970: 784_111_777)  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(WebhookSink.retryAfter("120", now: now) == 120)
        #expect(WebhookSink.retryAfter(" 0 ", now: now) == 0)
        #expect(WebhookSink.retryAfter("1.5", now: now) == 1.5)
        #expect(WebhookSink.retryAfter("86401", now: now) == 86_400)
        #expect(WebhookSink.retryAfter(String(repeating: "9", count: 400), now: now) == 86_400)
        for garbage in ["1e309", "-5", "abc", "", "+5", "5s", "1.", ".5", "inf", "nan", "0x10"] {
            #expect(WebhookSink.retryAfter(garbage, now: now) == nil, "\(garbage)")
        }
        #expect(WebhookSink.retryAfter(nil, now: now) == nil)
        #expect(WebhookSink.retryAfter("Sun, 06 Nov 1994 08:51:07 GMT", now: now) == 90)
        #expect(WebhookSink.retryAfter("Sunday, 06-Nov-94 08:51:07 GMT", now: now) == 90)
        #expect(WebhookSink.retryAfter("Sun Nov  6 08:51:07 1994", now: now) == 90)
        // Two days ahead: capped; in the past: now.
        #expect(WebhookSink.retryAfter("Tue, 08 Nov 1994 08:49:37 GMT", now: now) == 86_400)
        #expect(WebhookSink.retryAfter("Sat, 05 Nov 1994 08:49:37 GMT", now: now) == 0)
        #expect(WebhookSink.retryAfter("Sun, 06 Nov 1994 08:51:07 PST", now: now) == nil)
    }

    @Test("the timeout key: a duration, 10 s by default, at most 24 h; anything else is a permanent failure")
    func timeoutKey() throws {
        #expect(try WebhookSink.timeout(JSONObject()) == .seconds(10))
        #expect(try WebhookSink.timeout(JSONObject([("timeout", .string("1500ms"))])) == .milliseconds(1500))
        #expect(try WebhookSink.timeout(JSONObject([("timeout", .string("48h"))])) == .hours(24))
        #expect(try WebhookSink.timeout(JSONObject(), default: .hours(25)) == .hours(24))
        for bad in ["0s", "soon", "-1s"] {
            let error = #expect(throws: DeliveryFailure.self) {
                try WebhookSink.timeout(JSONObject([("timeout", .string(bad))]))
            }
            #expect(error?.message == "webhook config timeout \"\(bad)\" is not a positive duration")
            #expect(error?.permanent == true)
        }
    }

    @Test("URLs in messages: scheme://host[:port]/path only")
    func redaction() {
        #expect(
            WebhookSink.redactedURL("https://u:p@hooks.example:8443/a/b?token=x#frag")
                == "https://hooks.example:8443/a/b")
        #expect(WebhookSink.redactedURL("HTTPS://hooks.example/t?x=1") == "https://hooks.example/t")
        #expect(WebhookSink.redactedURL("http://[::1]:9/x?y=2") == "http://[::1]:9/x")
        #expect(WebhookSink.redactedURL("not a url ?token=abc") == "(unparsable webhook URL)")
    }
}
