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

let t0 = 1_900_000_000.0

func route(
    _ receiver: String, children: [Route] = [], groupBy: [String] = ["owner", "list"], wait: Double = 0,
    interval: Double = 60, repeatInterval: Double = 3600, matchers: [String] = [], continue c: Bool = false,
    index: Int = 0
)
    -> Route
{
    Route(
        receiver: receiver, matchers: matchers.map { try! LabelMatcher($0) }, groupBy: groupBy, groupWait: wait,
        groupInterval: interval, repeatInterval: repeatInterval, continue: c, routes: children, index: index)
}

/// Partners be-fedpol (BE), fr-dgsi (FR), nl-nctv (NL) and the operating agency `ops`, one file receiver each.
func alertsConfig(_ dir: URL, route r: Route? = nil, templates: [Template] = []) -> AlertsConfig {
    let partners = [
        Partner(id: "ops", name: "Ops", countries: [], contact: "ops@example"),
        Partner(id: "be-fedpol", name: "BE", countries: ["BE"], contact: "be@example"),
        Partner(id: "fr-dgsi", name: "FR", countries: ["FR"], contact: "fr@example"),
        Partner(id: "nl-nctv", name: "NL", countries: ["NL"], contact: "nl@example"),
    ]
    var c = AlertsConfig(route: r ?? route("ops-rx"), handleKey: Array("test-handle-key-0123456789".utf8))
    c.partners = partners
    c.templates = templates
    c.receivers = partners.map { p in
        var r = Receiver(name: p.id + "-rx", partner: p.id)
        var settings = JSONObject([("path", .string(dir.appendingPathComponent("\(p.id).ndjson").path))])
        if let t = templates.first?.name { settings.append("template", .string(t)) }
        r.add("file", settings, sendResolved: true)
        return r
    }
    return c
}

/// A watchlist written to disk and loaded by the real loader.
func loadList(_ dir: URL, owner: String, yaml: String) -> [Watchlist] {
    let d = dir.appendingPathComponent("lists/\(owner)")
    try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    try! yaml.write(to: d.appendingPathComponent("list.yaml"), atomically: true, encoding: .utf8)
    let r = WatchlistLoader().load(directory: dir.appendingPathComponent("lists").path, now: t0)
    precondition(r.errors.isEmpty, "\(r.errors)")
    return r.lists
}

func selector(_ json: String) -> NormalizedSelector {
    var s = json
    let v = try! s.withUTF8 { try JSONParser.parse($0) }
    return try! SelectorNormalizer().normalize(try! SelectorInput(json: v.objectValue!))
}

/// Delivers every due outbox item with the file, webhook and mail sinks, like the delivery service.
func deliverAll(_ store: any StateStore, _ config: AlertsConfig, now: Double) async throws {
    for item in try store.dueOutbox(now: now, limit: 10_000) {
        let receiver = config.receiver(item.receiver)!
        try await FileSink().deliver(item, to: receiver, config: config)
        try await WebhookSink().deliver(item, to: receiver, config: config)
        try await MailSink().deliver(item, to: receiver, config: config)
        try store.finishAttempt(
            AttemptOutcome(
                outboxID: item.id, status: .delivered, attempts: 1, nextAttemptAt: now, error: nil,
                event: EventDraft(at: now, kind: "delivered", receiver: item.receiver)))
    }
}

func lines(_ url: URL) -> [JSONObject] {
    guard let d = FileManager.default.contents(atPath: url.path) else { return [] }
    return String(decoding: d, as: UTF8.self).split(separator: "\n").map { line in
        var s = String(line)
        return try! s.withUTF8 { try JSONParser.parse($0) }.objectValue!
    }
}
