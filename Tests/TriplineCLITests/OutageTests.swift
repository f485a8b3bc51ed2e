import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// SPEC §6 durability through outages: a delivery storm to a webhook receiver and an SMTP server that are down,
/// then failing (5xx, 429, SMTP 4xx), then up, while `serve` is SIGKILLed and restarted; at the end every
/// (receiver, dedup key, state) notification has arrived once, counting by webhook-id and Message-ID as a
/// receiver that drops repeats does.
@Suite("delivery through outages and crashes", .serialized)
struct OutageTests {
    @Test("down, failing, up, with SIGKILL restarts: every notification arrives, once per id, none missing")
    func outageAndCrash() throws {
        let entries = 90
        let dir = try ServeTests.deployment(entries: entries)
        defer { try? FileManager.default.removeItem(at: dir) }
        let smtpPort = freePort()
        let hookPort = freePort()
        let secret = "whsec_" + Data("outage-test-secret-0123456789abc".utf8).base64EncodedString()
        try secret.write(to: dir.appendingPathComponent("whsec"), atomically: true, encoding: .utf8)
        let smtpMode = dir.appendingPathComponent("smtp.mode")
        let hookMode = dir.appendingPathComponent("hook.mode")
        let cfg = dir.appendingPathComponent("tripline.yaml")
        try String(contentsOf: cfg, encoding: .utf8)
            .replacingOccurrences(
                of: "file_configs: [{path: alerts.ndjson}]",
                with: """
                    webhook_configs: [{url: "http://127.0.0.1:\(hookPort)/hook", secret_file: whsec, timeout: 2s}],
                         email_configs: [{to: oncall@rx.example, from: tripline@ops.example, smarthost: "127.0.0.1:\(smtpPort)",
                                          require_tls: false, send_resolved: true, timeout: 2s}]
                    """
            )
            .replacingOccurrences(of: "group_by: [owner, list]", with: "group_by: ['...']")
            .write(to: cfg, atomically: true, encoding: .utf8)

        // The input, appended in three parts (one per phase): every entry sighted, among numbers on no list.
        let input = dir.appendingPathComponent("in.ndjson")
        _ = FileManager.default.createFile(atPath: input.path, contents: nil)
        func append(part: Int) throws {
            var text = ""
            for i in 0..<600 {
                let n = i % 5 == 0 ? (part * 30 + (i / 5) % 30) : 700_000 + part * 1000 + i
                text +=
                    #"{"id":"p\#(part)-\#(i)","type":"phone","value":"+32470\#(String(format: "%06d", n))"}"# + "\n"
            }
            let h = try FileHandle(forWritingTo: input)
            h.seekToEndOfFile()
            h.write(Data(text.utf8))
            try h.close()
        }
        let serveArgs = ["serve", "--config", "tripline.yaml", "--follow", input.path, "--max-backoff", "1"]
        var kills: [Int] = []
        var rng = SplitMix64(seed: 20_261_201)
        /// Runs serve for a random 500–1,500 ms, then SIGKILLs it.
        func crashOnce() throws {
            let (p, _) = try ServeTests.start(serveArgs, cwd: dir)
            let ms = Int.random(in: 500...1500, using: &rng)
            kills.append(ms)
            usleep(useconds_t(ms * 1000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }

        // Down: nobody listens.
        try append(part: 0)
        try crashOnce()
        try crashOnce()
        // Failing: webhooks 503, then 429; mail 451 (4xx: retried) once webhooks pass.
        try "451".write(to: smtpMode, atomically: true, encoding: .utf8)
        try "503".write(to: hookMode, atomically: true, encoding: .utf8)
        let smtp = try SMTPServer(["--mode-file", smtpMode.path], port: smtpPort)
        defer { smtp.stop() }
        let hooks = try WebhookReceiver(
            secret: secret, arguments: ["--port", String(hookPort), "--mode-file", hookMode.path])
        defer { hooks.stop() }
        try append(part: 1)
        for mode in ["503", "429", "up"] {
            try mode.write(to: hookMode, atomically: true, encoding: .utf8)
            try crashOnce()
            try crashOnce()
        }
        // Up.
        try "up".write(to: smtpMode, atomically: true, encoding: .utf8)
        try append(part: 2)
        try crashOnce()

        let (p, err) = try ServeTests.start(serveArgs, cwd: dir)
        let keys = Set((0..<entries).map { "wl:be-fedpol/crash/E\($0)" })
        /// Notifications as a receiver that drops repeated ids counts them: (key, action) per distinct id.
        func webhookArrivals() -> [String: [String]] {
            var byID: [String: JSONObject] = [:]
            for r in hooks.received where r["status"] == .number("200") {
                if let id = r["id"]?.stringValue, let b = r["body"]?.objectValue { byID[id] = b }
            }
            var out: [String: [String]] = [:]
            for (_, b) in byID {
                for a in b["alerts"]?.arrayValue ?? [] {
                    let o = a.objectValue!
                    out[o["dedup_key"]?.stringValue ?? "?", default: []].append(o["event_action"]?.stringValue ?? "?")
                }
            }
            return out
        }
        func mailArrivals() -> [String: Int] {
            var byID: [String: String] = [:]
            for m in smtp.received {
                byID[m["message_id"]?.stringValue ?? "?"] =
                    m["parts"]?.arrayValue?.first?.objectValue?["content"]?.stringValue ?? ""
            }
            var out: [String: Int] = [:]
            for (_, text) in byID {
                for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("  key: ") {
                    out[String(line.dropFirst(7)), default: 0] += 1
                }
            }
            return out
        }
        let done = waitUntil(90) {
            Set(webhookArrivals().keys).isSuperset(of: keys) && Set(mailArrivals().keys).isSuperset(of: keys)
                && ServeTests.pendingOutbox(dir) == 0
        }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        _ = err.fileHandleForReading.readDataToEndOfFile()
        let hooked = webhookArrivals()
        let mailed = mailArrivals()
        let context = "kills after \(kills) ms; \(hooks.received.count) webhook requests, \(smtp.received.count) mails"
        #expect(done, "\(context): \(hooked.count) keys by webhook, \(mailed.count) by mail of \(entries)")
        #expect(Set(hooked.keys) == keys, "\(context)")
        #expect(
            hooked.values.allSatisfy { $0 == ["trigger"] }, "\(context): \(hooked.filter { $0.value != ["trigger"] })")
        #expect(Set(mailed.keys) == keys, "\(context)")
        #expect(mailed.values.allSatisfy { $0 == 1 }, "\(context): \(mailed.filter { $0.value != 1 })")
        #expect(hooks.received.allSatisfy { $0["verified"] == .bool(true) })
        // The failures happened and were recorded as attempts; nothing went to dead letters.
        #expect(hooks.received.contains { $0["status"] == .number("503") })
        #expect(hooks.received.contains { $0["status"] == .number("429") })
        let events = ServeTests.eventCounts(dir)
        let ids = Set(hooks.received.compactMap { $0["id"]?.stringValue }).count
        let mids = Set(smtp.received.compactMap { $0["message_id"]?.stringValue }).count
        print(
            "outage test: \(context) (\(ids) webhook-ids, \(mids) Message-IDs); attempts failed "
                + "\(events["delivery_failed"] ?? 0), delivered \(events["delivered"] ?? 0)")
        #expect((events["delivery_failed"] ?? 0) > 0 && (events["delivered"] ?? 0) > 0, "\(events)")
        #expect(events["dead_letter"] == nil, "\(events)")
    }
}
