import Foundation
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineSinks
import TriplineState
import TriplineTestSupport

/// A webhook URL that is itself a secret (a token in its path) comes from `url_file` and is never shown past
/// scheme://host.
@Suite("webhook url_file", .serialized)
struct WebhookURLFileTests {
    @Test("a URL from url_file: delivered, and no error text shows its path or query")
    func urlFileIsNotShown() async throws {
        let secret = "whsec_" + Data("tripline-test-secret-key-A-32byte".utf8).base64EncodedString()
        let rx = try WebhookReceiver(secret: secret, statuses: "500")
        defer { rx.stop() }
        let dir = scratchDirectory("urlfile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let urlFile = dir.appendingPathComponent("url")
        try "http://127.0.0.1:\(rx.port)/hook/PATHTOKEN123?token=QUERYTOKEN456\n".write(
            to: urlFile, atomically: true, encoding: .utf8)
        let secretFile = dir.appendingPathComponent("whsec")
        try secret.write(to: secretFile, atomically: true, encoding: .utf8)
        var r = Receiver(name: "hook", partner: "ops")
        r.add(
            "webhook",
            JSONObject([("url_file", .string(urlFile.path)), ("secret_file", .string(secretFile.path))]),
            sendResolved: true)
        let route = Route(
            receiver: "hook", matchers: [], groupBy: [], groupWait: 0, groupInterval: 1, repeatInterval: 3600,
            continue: false, routes: [], index: 0)
        var config = AlertsConfig(route: route, handleKey: Array("k".utf8))
        config.receivers = [r]
        let item = OutboxItem(
            receiver: "hook", integration: "webhook/0", priorityRank: 3, createdAt: 0, nextAttemptAt: 0,
            payload: JSONObject([("notification_id", .string("n1")), ("status", .string("firing"))]))
        let failure = await #expect(throws: DeliveryFailure.self) {
            try await WebhookSink().deliver(item, to: r, config: config)
        }
        let text = failure?.message ?? ""
        #expect(text.contains("127.0.0.1") && text.contains("500"), "\(text)")
        #expect(!text.contains("PATHTOKEN123") && !text.contains("QUERYTOKEN456"), "\(text)")
        try await WebhookSink().deliver(item, to: r, config: config)  // the second answer is 200
        #expect(
            rx.received.map(\.["path"]) == [
                .string("/hook/PATHTOKEN123?token=QUERYTOKEN456"), .string("/hook/PATHTOKEN123?token=QUERYTOKEN456"),
            ])
    }
}
