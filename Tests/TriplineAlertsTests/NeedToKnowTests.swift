import Foundation
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineMatch
import TriplineRules
import TriplineSelectors
import TriplineSinks
import TriplineState
import TriplineTestSupport
import TriplineWatchlists

/// SPEC §6 need-to-know as a matrix: TLP × releasable_to × receiver partner × template, canaries planted in every
/// protected field; no canary may reach a receiver that is not entitled, and red content reaches no sink at all —
/// the log file, every header and decoded MIME part of the mail (a real SMTP server, parsed back by Python's
/// `email`), and the webhook body and headers (a real receiver).
@Suite("Need-to-know canary matrix")
struct NeedToKnowTests {
    static let canaries = ["canary-list-q7x", "CANARY-REF-Q7X", "CANARY-LABEL-Q7X", "998877"]
    static let brief = try! Template(
        name: "brief",
        text:
            "{{priority}} {{key}} {{labels.list}} {{labels.ref}} {{watchlist.label}} {{selector.value}} {{alerts.0.key}}"
    )

    @Test(arguments: ["clear", "green", "amber", "amber+strict", "red"], [false, true])
    func canariesStayWithTheEntitled(tlp: String, releasableToFR: Bool) async throws {
        for template in [nil, Self.brief] {
            try await run(tlp: tlp, releasableToFR: releasableToFR, template: template)
        }
    }

    func run(tlp: String, releasableToFR: Bool, template: Template?) async throws {
        let dir = scratchDirectory("ntk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let rel = releasableToFR ? "[be-fedpol, fr-dgsi]" : "[be-fedpol]"
        let lists = loadList(
            dir, owner: "be-fedpol",
            yaml: """
                watchlist: canary-list-q7x
                owner: be-fedpol
                handling: {tlp: "\(tlp)", releasable_to: \(rel)}
                review_by: 2031-01-01
                entries:
                  - ref: CANARY-REF-Q7X
                    label: CANARY-LABEL-Q7X
                    priority: high
                    selectors:
                      - {type: phone, value: "+32 470 99 88 77"}
                """)
        // Every partner's receiver is routed every alert.
        let tree = route(
            "ops-rx",
            children: ["ops-rx", "be-fedpol-rx", "fr-dgsi-rx", "nl-nctv-rx"].enumerated().map {
                route($0.element, continue: true, index: $0.offset + 1)
            })
        var config = alertsConfig(dir, route: tree, templates: template.map { [$0] } ?? [])
        let smtp = try SMTPServer()
        defer { smtp.stop() }
        let secret = "whsec_" + Data("need-to-know-test-secret-0123456".utf8).base64EncodedString()
        let hooks = try WebhookReceiver(secret: secret)
        defer { hooks.stop() }
        try secret.write(to: dir.appendingPathComponent("whsec"), atomically: true, encoding: .utf8)
        for i in config.receivers.indices {
            let p = config.receivers[i].partner
            var mail: [(String, JSONValue)] = [
                ("to", .string("\(p)@rx.example")), ("from", .string("tripline@ops.example")),
                ("smarthost", .string("127.0.0.1:\(smtp.port)")), ("require_tls", .string("false")),
                ("send_resolved", .string("true")),
            ]
            if let t = template { mail.append(("template", .string(t.name))) }
            config.receivers[i].emailConfigs = [JSONObject(mail)]
            config.receivers[i].webhookConfigs = [
                JSONObject([
                    ("url", .string("http://127.0.0.1:\(hooks.port)/\(p)")),
                    ("secret_file", .string(dir.appendingPathComponent("whsec").path)),
                ])
            ]
        }
        let store = MemoryStateStore()
        let d = try Dispatcher(config: config, store: store, now: t0)
        // A list hit, and a rule hit built on it (its key holds the sighted value).
        let ruleFile = dir.appendingPathComponent("r.yml")
        try """
        title: Escalate
        id: esc
        logsource: {product: tripline, category: selector}
        detection:
          s: {watchlist|exists: true}
          condition: s
        """.write(to: ruleFile, atomically: true, encoding: .utf8)
        var engine = RuleEngine(RuleLoader(watchlists: lists, now: t0).load(files: [ruleFile.path]).ruleSet)
        let sel = selector(
            #"{"id":"s1","type":"phone","value":"+32 470 99 88 77","source":{"item":"P-1","country":"IQ"}}"#)
        let hits = Matcher(index: WatchlistIndex(lists: lists), now: t0).match(sel)
        #expect(hits.count == 1)
        let all = hits + engine.process(sel, watchlist: hits, ingestTime: t0)
        #expect(all.count == 2)
        var c = Commit()
        try d.ingest(all, now: t0, into: &c)
        try store.commit(c)
        try store.commit(try d.tick(now: t0, flushAll: true))
        try await deliverAll(store, config, now: t0)

        let entitled: Set<String> =
            switch tlp {
            case "clear", "green": ["ops", "be-fedpol", "fr-dgsi", "nl-nctv"]
            case "amber+strict": ["be-fedpol"]
            default: releasableToFR ? ["be-fedpol", "fr-dgsi"] : ["be-fedpol"]
            }
        let renderer = Renderer(config: config)
        for p in ["ops", "be-fedpol", "fr-dgsi", "nl-nctv"] {
            let file = dir.appendingPathComponent("\(p).ndjson")
            let text = String(decoding: FileManager.default.contents(atPath: file.path) ?? Data(), as: UTF8.self)
            let case_ =
                "tlp \(tlp), releasable to FR \(releasableToFR), template \(template?.name ?? "none"), partner \(p)"
            // What each sink delivered to this partner: the log lines; every mail header (decoded and raw) and
            // every decoded MIME part; every webhook header and body.
            let mails = smtp.received.filter { $0["rcpt_tos"] == .array([.string("\(p)@rx.example")]) }
            let mailText = mails.map { m in
                ["headers", "raw_headers", "parts"].map { JSONWriter.string(m[$0] ?? .null) }.joined()
            }.joined()
            let posts = hooks.received.filter { $0["path"] == .string("/\(p)") }
            let hookText = posts.map {
                JSONWriter.string($0["headers"] ?? .null) + JSONWriter.string($0["body"] ?? .null)
            }
            .joined()
            #expect(posts.allSatisfy { $0["verified"] == .bool(true) }, "\(case_): signed")
            for (sink, delivered, count) in [
                ("log", text, lines(file).count), ("mail", mailText, mails.count), ("webhook", hookText, posts.count),
            ] {
                #expect(!delivered.isEmpty && count == lines(file).count, "\(case_): \(sink) was routed the alerts")
                let leaked = Self.canaries.filter { delivered.contains($0) }
                if tlp == "red" || !entitled.contains(p) {
                    #expect(leaked.isEmpty, "\(case_): \(leaked) reached the \(sink) sink")
                } else {
                    #expect(
                        leaked.count == Self.canaries.count, "\(case_): an entitled \(sink) receiver sees the content")
                }
            }
            for line in lines(file) {
                for a in line["alerts"]?.arrayValue ?? [] {
                    let o = a.objectValue!
                    if tlp == "red" {
                        #expect(o["notice"] != nil && o.count == 4, "\(case_): red gives a notice only")
                    } else if !entitled.contains(p) {
                        #expect(o["restricted"] == .bool(true))
                        #expect(JSONWriter.string(a).contains("be@example"), "\(case_): the owner's contact route")
                    }
                }
            }
            // `alerts show` (not a sink): red content for the entitled only.
            var views = ""
            for a in try store.alerts(states: nil, limit: 10) {
                views += JSONWriter.string(
                    .object(renderer.view(a, access: renderer.access(a, partner: p, sink: false))))
            }
            let shown = Self.canaries.filter { views.contains($0) }
            if entitled.contains(p) {
                #expect(shown.count == Self.canaries.count, "\(case_): show gives the entitled everything")
            } else {
                #expect(shown.isEmpty, "\(case_): show leaked \(shown)")
            }
        }
    }
}
