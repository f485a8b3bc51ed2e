import Crypto
import Foundation
import Logging
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplineMatch
import TriplineRules
import TriplineSelectors
import TriplineState
import TriplineWatchlists
import TriplineYAML

/// What the configuration names, loaded and compiled: the unit SIGHUP swaps, or keeps when the new one is invalid.
public struct Loaded: Sendable {
    public var configuration: Configuration
    public var normalizer: SelectorNormalizer
    public var matcher: Matcher
    public var rules: RuleSet
    public var files: [(path: String, sha256: String)]

    /// Loads lists and rules; every error (file:line:col) is returned, and nothing is usable if there is one.
    public static func load(_ c: Configuration, now: Double) -> (Loaded?, errors: [String], warnings: [String]) {
        let normalizer = SelectorNormalizer(defaultRegion: c.defaultRegion)
        let w = WatchlistLoader(normalizer: normalizer).load(directory: c.watchlists, now: now)
        let r = RuleLoader(watchlists: w.lists, now: now).load(directory: c.rules)
        let errors = w.errors.map(\.description) + r.errors.map(\.description)
        let warnings =
            w.warnings.map { "\($0.file):\($0.mark.line):\($0.mark.column): warning: \($0.message)" }
            + r.warnings.map(\.description)
        if !errors.isEmpty { return (nil, errors, warnings) }
        let files = w.lists.map { ($0.file, $0.version) } + r.files
        return (
            Loaded(
                configuration: c, normalizer: normalizer,
                matcher: Matcher(index: WatchlistIndex(lists: w.lists), now: now),
                rules: r.ruleSet, files: files), [], warnings
        )
    }
}

/// normalise → match (lists, rules) → alerts → outbox, one batch of input lines per transaction. An actor: input
/// batches, timer ticks and reloads take turns.
public actor Pipeline {
    public private(set) var loaded: Loaded
    private var engine: RuleEngine
    public let dispatcher: Dispatcher
    public let store: any StateStore
    private let logger: Logger
    public private(set) var rejected = 0
    public private(set) var accepted = 0
    public private(set) var hits = 0
    /// Called after a commit that queued notifications (wakes the delivery service).

    public init(loaded: Loaded, store: any StateStore, logger: Logger, now: Double) throws {
        self.loaded = loaded
        engine = RuleEngine(loaded.rules, options: loaded.configuration.correlation)
        var alerts = loaded.configuration.alerts
        alerts.handleKey = try loaded.configuration.loadHandleKey()
        dispatcher = try Dispatcher(config: alerts, store: store, now: now)
        self.store = store
        self.logger = logger
        var c = Commit()
        c.events = [Self.configEvent(loaded, now: now, kind: "config_loaded")]
        try store.commit(c)
    }

    /// The alert configuration in force (receivers for delivery).
    public var alertsConfig: AlertsConfig { dispatcher.config }

    static func configEvent(_ l: Loaded, now: Double, kind: String) -> EventDraft {
        var files = JSONObject()
        for (p, h) in l.files { files.append(p, .string(h)) }
        return EventDraft(
            at: now, kind: kind,
            detail: JSONObject([
                ("config", .string(l.configuration.configFile ?? "embedded defaults")), ("files", .object(files)),
            ]))
    }

    /// One line of input.
    public struct Line: Sendable {
        public var bytes: [UInt8]
        public var number: Int
        public init(bytes: [UInt8], number: Int) {
            self.bytes = bytes
            self.number = number
        }
    }

    /// Processes a batch and commits it with the input position it consumes up to.
    public func process(_ lines: [Line], source: String, offset: Int64, lineNumber: Int, now: Double) throws {
        var commit = Commit()
        var found: [Hit] = []
        var digest = SHA256()
        for l in lines {
            digest.update(data: l.bytes)
            if l.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let parsed = l.bytes.withUnsafeBufferPointer { buf in
                Result { () throws(JSONError) -> JSONValue in try JSONParser.parse(buf) }
            }
            var id: String?
            do {
                guard case .object(let o) = try parsed.get() else {
                    throw SelectorError("a selector record must be a JSON object")
                }
                id = o["id"]?.stringValue
                let sel = try loaded.normalizer.normalize(try SelectorInput(json: o))
                accepted += 1
                let wl = loaded.matcher.match(sel)
                found += wl
                let logger = self.logger
                found += engine.process(sel, watchlist: wl, ingestTime: now) { problem in
                    logger.warning("selector \(sel.id): \(problem)")
                }
            } catch {
                rejected += 1
                let message = (error as? SelectorError)?.message ?? "invalid JSON: \(error)"
                logger.warning("\(source):\(l.number): \(id.map { "id \($0): " } ?? "")\(message)")
                var d = JSONObject([("source", .string(source)), ("line", .number(String(l.number)))])
                if let id { d.append("id", .string(id)) }
                d.append("error", .string(message))
                commit.events.append(EventDraft(at: now, kind: "input_rejected", reason: message, detail: d))
            }
        }
        hits += found.count
        try dispatcher.ingest(found, now: now, into: &commit)
        commit.events.append(
            EventDraft(
                at: now, kind: "ingest_batch",
                detail: JSONObject([
                    ("source", .string(source)), ("lines", .number(String(lines.count))),
                    ("last_line", .number(String(lineNumber))), ("offset", .number(String(offset))),
                    ("sha256", .string(digest.finalize().map { String(format: "%02x", $0) }.joined())),
                ])))
        // The line number is kept beside the offset so that a restart reports the same numbers.
        commit.offsets = [(source, offset), (source + "#line", Int64(lineNumber))]
        try store.commit(commit)
        try tick(now: now)
    }

    /// Runs due timers; `flushAll` sends every pending group now (end of input).
    public func tick(now: Double, flushAll: Bool = false) throws {
        let c = try dispatcher.tick(now: now, flushAll: flushAll)
        if !c.isEmpty { try store.commit(c) }
    }

    /// SIGHUP: reads the configuration, lists and rules again; keeps the running set when any of it is invalid.
    @discardableResult
    public func reload(configPath: String?, now: Double) -> Bool {
        let c: Configuration
        do { c = try Configuration.load(config: configPath) } catch {
            logger.error("reload refused, keeping the running configuration: \(error.description)")
            return false
        }
        let (l, errors, warnings) = Loaded.load(c, now: now)
        for w in warnings { logger.warning("\(w)") }
        guard let l else {
            for e in errors { logger.error("\(e)") }
            logger.error("reload refused (\(errors.count) errors), keeping the running configuration")
            var ev = Commit()
            ev.events = [
                EventDraft(
                    at: now, kind: "config_rejected",
                    detail: JSONObject([("errors", .array(errors.map { .string($0) }))]))
            ]
            try? store.commit(ev)
            return false
        }
        do {
            var alerts = c.alerts
            alerts.handleKey = try c.loadHandleKey()
            try dispatcher.reconfigure(alerts, now: now)
        } catch {
            logger.error("reload refused: \(error)")
            return false
        }
        loaded = l
        engine = RuleEngine(l.rules, options: c.correlation)
        var ev = Commit()
        ev.events = [Self.configEvent(l, now: now, kind: "config_reloaded")]
        try? store.commit(ev)
        logger.info("reloaded: \(l.rules.rules.count) rules, configuration \(c.configFile ?? "embedded defaults")")
        return true
    }
}
