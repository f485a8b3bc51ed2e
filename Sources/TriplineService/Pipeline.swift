import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TriplineAlerts
import TriplineAudit
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
    /// The lists, and the rules as read: compiled again when an entry expires or a list passes its review date
    /// (`expand` placeholders follow the lists' time limits too).
    public var lists: [Watchlist] = []
    public var ruleSource: RuleLoader.Result?
    /// The lists of the watchlist directory in force (submitted lists are merged beside them), and `owner/list` →
    /// file for every list a file manages (SubmittedLists.swift).
    public var fileLists: [Watchlist] = []
    public var fileManaged: [String: String] = [:]

    /// Lists refused at this load (their previous version, if any, stays in force): file and error count.
    public var refused: [(file: String, errors: Int)] = []
    /// A reload's rule errors, when the previous rule set stayed in force.
    public var rulesRefused: [String] = []
    /// What the index warns of (`WatchlistIndex.warnings`): logged when the load takes effect, and on a reload only
    /// when it changed.
    public var indexWarnings: [String] = []

    /// Loads lists and rules. A list is accepted or refused on its own (SPEC §4): a refused list keeps its
    /// `previous` version in force (absent on a first start) and every other list loads; its errors are returned
    /// for the operator. Rules are all or nothing (nil when any has an error), as is a missing directory.
    public static func load(
        _ c: Configuration, now: Double, previous: Loaded? = nil, submitted: [SubmittedList] = []
    ) -> (
        Loaded?, errors: [String], warnings: [String]
    ) {
        let normalizer = SelectorNormalizer(defaultRegion: c.defaultRegion)
        var w = WatchlistLoader(normalizer: normalizer).load(directory: c.watchlists, now: now)
        // A list's owner is a configured partner: a directory named after nobody is refused (the embedded defaults
        // name no partners of their own, so there every directory is taken as one).
        if c.configFile != nil { w.refuse(ownersNotIn: Set(c.alerts.partners.map(\.id))) }
        var lists = w.lists
        var refused: [(String, Int)] = []
        for f in w.refused {
            refused.append((f.path, f.errors.count))
            let kept = previous?.lists.first { old in
                if let owner = f.owner, let name = f.name { return old.owner == owner && old.name == name }
                return old.file == f.path
            }
            if let kept, !lists.contains(where: { $0.owner == kept.owner && $0.name == kept.name }) {
                lists.append(kept)
            }
        }
        // Lists submitted through the API (SPEC §10) beside the files' (where a file names a list, it is the file's).
        let fromFiles = lists
        let managed = Self.fileManaged(w.files)
        let s = Self.submittedLists(
            submitted, managed: managed, previous: previous, config: c, normalizer: normalizer, now: now)
        lists += s.lists
        refused += s.refused
        var r = RuleLoader(watchlists: lists, now: now).load(directory: c.rules)
        var rulesRefused: [String] = []
        let errors = w.errors.map(\.description) + s.errors + r.errors.map(\.description)
        let warnings =
            w.warnings.map { "\($0.file):\($0.mark.line):\($0.mark.column): warning: \($0.message)" }
            + s.warnings + r.warnings.map(\.description)
        if !w.directoryErrors.isEmpty { return (nil, errors, warnings) }
        if !r.errors.isEmpty {
            // Rules are all or nothing (SPEC §5): on a reload the previous rule set stays in force, and the lists
            // still take effect (a partner's new list must not wait for a rule it did not write); at start, none.
            guard let previous, let source = previous.ruleSource else { return (nil, errors, warnings) }
            rulesRefused = r.errors.map(\.description)
            r = source
        }
        let files = lists.map { ($0.file, $0.version) } + r.files
        let index = WatchlistIndex(lists: lists)
        var l = Loaded(
            configuration: c, normalizer: normalizer, matcher: Matcher(index: index, now: now), rules: r.ruleSet,
            files: files)
        l.lists = lists
        l.fileLists = fromFiles
        l.fileManaged = managed
        l.ruleSource = r
        l.rulesRefused = rulesRefused
        l.refused = refused
        l.indexWarnings = index.warnings
        return (l, errors, warnings)
    }

    /// The lists' handlings now (`owner/list` → handling), for rendering by the current handling.
    public var handlings: [String: JSONObject] {
        var out: [String: JSONObject] = [:]
        for l in lists { out[l.owner + "/" + l.name] = l.handling.json.objectValue ?? JSONObject() }
        return out
    }

    /// Audit records of the lists refused at this load (file and error count; never their content).
    func refusalEvents(now: Double) -> [EventDraft] {
        (rulesRefused.isEmpty
            ? []
            : [
                EventDraft(
                    at: now, kind: "rules_rejected", reason: "the previous rule set stays in force",
                    detail: JSONObject([("errors", .array(rulesRefused.map { .string($0) }))]))
            ])
            + refused.map { f in
                EventDraft(
                    at: now, kind: "watchlist_refused", reason: "invalid list",
                    detail: JSONObject([
                        ("file", .string(f.file)), ("errors", .number(String(f.errors))),
                        ("previous_version_kept", .bool(lists.contains { $0.file == f.file })),
                    ]))
            }
    }

    /// The next time after `now` at which a list passes its review date or an entry expires.
    public func nextTimeLimit(after now: Double) -> Double {
        var next = Double.infinity
        for l in lists {
            if l.reviewBy > now { next = min(next, l.reviewBy) }
            for e in l.entries { if let x = e.expires, x > now { next = min(next, x) } }
        }
        return next
    }

    /// Whether a rule takes values from the lists (`expand`).
    public var expands: Bool { rules.rules.contains { !$0.expandedFrom.isEmpty } }
}

/// The service stopped because the state database stayed unwritable (SPEC §6 "Durability": input is never
/// skipped; the service retries the same batch, then stops with an error).
public struct PipelineFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The service is shutting down (SIGTERM) while a batch waited for the database: not an error; the batch
    /// stays uncommitted and is read again at the next start.
    public var stopped = false
}

/// Text from input made safe for a log line: control characters (a newline forging a log line, NUL, ESC) shown
/// as `\u{..}` escapes.
func printable(_ s: String) -> String {
    if !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return s }
    var out = ""
    for u in s.unicodeScalars {
        if u.value < 0x20 || u.value == 0x7F {
            out += "\\u{\(String(u.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(u)
        }
    }
    return out
}

/// How long a failing database is retried before the service stops (`serve --db-timeout`).
public struct Durability: Sendable {
    /// Give up (exit 2) when commits have failed for this long.
    public var retryFor: Double = 60
    public init(retryFor: Double = 60) { self.retryFor = retryFor }
    /// Retry delays: 50 ms doubling to 2 s.
    func delay(_ attempt: Int) -> Double { min(2, 0.05 * pow(2, Double(min(attempt, 10)))) }
    /// How many times in a row a batch (or a tick) is computed again at once when an alert it changed was changed
    /// by another writer meanwhile (`StateError.conflict`); past that, the conflict counts as a failing database.
    public var conflictRetries = 100
}

/// One line of input, with the byte offset just after it (where a restart resumes once it is committed).
public struct InputLine: Sendable {
    /// The line (a slice of its batch's buffer when a reading thread made the batch).
    public var bytes: ArraySlice<UInt8>
    public var number: Int
    public var end: Int64
    /// Set for a line over the record limit: its length (`bytes` holds its first bytes only).
    public var oversized: Int?
    /// The reading thread's screen passed the line (accepted, on no list, no rule to run); trusted only when the
    /// batch's `screenGeneration` is the pipeline's current one.
    public var screened = false
    public init(bytes: [UInt8], number: Int, end: Int64, oversized: Int? = nil) {
        self.init(bytes: bytes[...], number: number, end: end, oversized: oversized)
    }
    public init(bytes: ArraySlice<UInt8>, number: Int, end: Int64, oversized: Int? = nil) {
        self.bytes = bytes
        self.number = number
        self.end = end
        self.oversized = oversized
    }
}

/// A batch of lines from one source and the input position it consumes up to, committed with its effects.
public struct InputBatch: Sendable {
    public var source: String
    public var lines: [InputLine]
    public var offset: Int64
    public var lineNumber: Int
    /// Other keys committed with the position (a followed file's inode).
    public var marks: [(source: String, offset: Int64)]
    /// SHA-256 of the lines' bytes in order, when the reading thread took it (else the pipeline does).
    public var digest: [UInt8]?
    /// The buffer every line is a slice of, when a reading thread made the batch: runs of lines are screened
    /// together (their index probes prefetched), by their ranges in it.
    public var chunk: [UInt8]?
    /// The generation of the screen the reading thread applied (see `ScreenSource`).
    public var screenGeneration: Int?
    public init(
        source: String, lines: [InputLine], offset: Int64, lineNumber: Int, marks: [(String, Int64)] = [],
        digest: [UInt8]? = nil
    ) {
        self.source = source
        self.lines = lines
        self.offset = offset
        self.lineNumber = lineNumber
        self.marks = marks
        self.digest = digest
    }

    /// The keys to commit when everything up to `offset` (line `line`) is consumed.
    func positions(upTo offset: Int64, line: Int) -> [(source: String, offset: Int64)] {
        // The line number is kept beside the offset so that a restart reports the same numbers.
        [(source, offset), (source + "#line", Int64(line))] + marks
    }
}

/// The pipeline's screen and its generation, for the reading threads (issue 17): they screen lines as they read
/// them, on their own core. A batch screened by another generation (a reload came in between) is not trusted: the
/// pipeline judges its lines itself.
public final class ScreenSource: Sendable {
    private let current: Mutex<(generation: Int, screen: RecordScreen)>
    init(_ screen: RecordScreen) { current = Mutex((0, screen)) }
    func set(_ screen: RecordScreen) { current.withLock { $0 = ($0.generation &+ 1, screen) } }
    public var now: (generation: Int, screen: RecordScreen) { current.withLock { $0 } }
}

/// The generation of what a pipeline has loaded and its configuration, published for readers outside the actor.
public final class PublishedConfiguration: Sendable {
    private let current: Mutex<(generation: Int, configuration: Configuration)>
    init(_ configuration: Configuration) { current = Mutex((0, configuration)) }
    func set(_ generation: Int, _ configuration: Configuration) {
        current.withLock { $0 = (generation, configuration) }
    }
    public var now: (generation: Int, configuration: Configuration) { current.withLock { $0 } }
}

/// normalise → match (lists, rules) → alerts → outbox, one batch of input lines per transaction. An actor: input
/// batches, timer ticks and reloads take turns. The dispatcher and the rule engine compute; the pipeline owns the
/// transaction: when a commit fails their memory is rolled back to before the batch, and the batch is tried again
/// (a busy, locked or full database), or — when the database refuses the change itself — its lines are committed
/// one at a time and a line that is refused is rejected alone. Nothing is skipped: the service stops (exit 2)
/// rather than go past input it could not commit.
public actor Pipeline {
    public private(set) var loaded: Loaded {
        didSet {
            generation &+= 1
            published.set(generation, loaded.configuration)
        }
    }
    /// Changes whenever what is loaded (configuration, lists, their handlings) changes: what was built from the
    /// previous set (the API's operations) is built again.
    public private(set) var generation = 0
    /// The generation and configuration in force, readable without waiting for the actor (an API request must not
    /// queue behind a batch or a tick to learn them).
    public nonisolated let published: PublishedConfiguration
    /// The screen in force, for the reading threads.
    public nonisolated let screens: ScreenSource
    private var step: RecordStep
    public let dispatcher: Dispatcher
    public let store: any StateStore
    private let logger: Logger
    private let durability: Durability
    private let metrics: ServiceMetrics
    public private(set) var rejected = 0
    public private(set) var accepted = 0
    public private(set) var hits = 0
    /// Commits refused because an alert changed under them (an operator's ack or resolve between the read and the
    /// commit): each batch or tick computed again from the alerts as they are now.
    public private(set) var conflicts = 0
    /// When commits started failing (nil while they succeed).
    private var failingSince: Double?
    /// The next time a list passes its review date or an entry expires (matching judges these itself; rules
    /// using `expand` are compiled again, and the operator is told of a list past its review date).
    private var nextTimeLimit: Double
    private var limitsCheckedAt: Double
    private var tickFailingSince: Double?
    /// On a database several nodes share: the correlation feed, and this node's turn as the correlator.
    private let shared: (any SharedCorrelation & SharedOutbox)?
    private var correlator = Correlator()

    /// The correlator's state on this node: its claim (nil while another node holds the lease), the feed offset its
    /// windows have consumed, and when it last asked for the lease.
    struct Correlator {
        var claim: LaneClaim?
        var offset: Int64 = 0
        var askedAt = -Double.infinity
        var prunedAt = -Double.infinity
        /// Set at the end of input: the timers no longer ask for the lease (the node is about to stop).
        var stopping = false
        /// A feed or lease failure was logged and the feed has not been read since: the next ones go to debug (a
        /// database down for an hour is one warning, not one per tick).
        var troubled = false
    }

    /// A correlation-feed failure: a warning the first time since the feed was last read, debug after.
    private func feedTrouble(_ message: String) {
        if correlator.troubled {
            logger.debug("\(message)")
        } else {
            correlator.troubled = true
            logger.warning("\(message) (further failures logged at debug until the feed is read again)")
        }
    }

    public init(
        loaded: Loaded, store: any StateStore, logger: Logger, now: Double, durability: Durability = Durability(),
        metrics: ServiceMetrics = ServiceMetrics()
    ) throws {
        self.metrics = metrics
        self.loaded = loaded
        published = PublishedConfiguration(loaded.configuration)
        step = RecordStep(
            normalizer: loaded.normalizer, matcher: loaded.matcher,
            engine: RuleEngine(loaded.rules, options: loaded.configuration.correlation))
        shared = store as? any SharedCorrelation & SharedOutbox
        step.engine.correlates = shared == nil
        step.screens = loaded.configuration.alerts.heartbeats.isEmpty
        screens = ScreenSource(step.screening)
        var alerts = loaded.configuration.alerts
        alerts.handleKey = try loaded.configuration.loadHandleKey()
        alerts.ackLinks = try loaded.configuration.loadAckLinks()
        try Self.migratePartnerScopes(
            store: store, config: alerts, operatorPartner: loaded.configuration.operatorPartner, now: now,
            retries: durability.conflictRetries)
        // The lists' handlings now: alerts already open are rendered by them (a list made stricter, withdrawn).
        var handlings = Commit()
        handlings.listHandlings = loaded.handlings
        try store.commit(handlings)
        dispatcher = try Dispatcher(config: alerts, store: store, now: now)
        self.store = store
        self.logger = logger
        self.durability = durability
        nextTimeLimit = loaded.nextTimeLimit(after: now)
        limitsCheckedAt = now
        var c = Commit()
        c.events = [Self.configEvent(loaded, now: now, kind: "config_loaded")] + loaded.refusalEvents(now: now)
        try store.commit(c)
    }

    /// Schema v4's move to per-partner acks and scoped silences, committed; read and computed again when an
    /// operator changes one of the alerts in between (a conflict).
    static func migratePartnerScopes(
        store: any StateStore, config: AlertsConfig, operatorPartner: String, now: Double, retries: Int
    ) throws(StateError) {
        var conflicted = 0
        while true {
            let migrated = try Dispatcher.migratePartnerScopes(
                store: store, config: config, operatorPartner: operatorPartner, now: now)
            if migrated.isEmpty { return }
            do throws(StateError) {
                try store.commit(migrated)
                return
            } catch {
                conflicted += 1
                if !error.isConflict || conflicted > retries { throw error }
            }
        }
    }

    /// The alert configuration in force (receivers for delivery).
    public var alertsConfig: AlertsConfig { dispatcher.config }
    /// The configuration in force.
    public var configuration: Configuration { loaded.configuration }
    /// Commits succeed (readiness).
    public var healthy: Bool { failingSince == nil && tickFailingSince == nil }

    /// An outbox item rendered again where the lists' current handling is stricter than when it was queued.
    public func refresh(_ item: OutboxItem) -> OutboxItem? { dispatcher.refresh(item) }

    static func configEvent(_ l: Loaded, now: Double, kind: String) -> EventDraft {
        var files = JSONObject()
        for (p, h) in l.files { files.append(p, .string(h)) }
        return EventDraft(
            at: now, kind: kind,
            detail: JSONObject([
                ("config", .string(l.configuration.configFile ?? "embedded defaults")), ("files", .object(files)),
            ]))
    }

    /// Processes a batch and commits it with the input position it consumes up to; then runs the timers.
    @discardableResult
    public func process(_ batch: InputBatch, now: Double) async throws(PipelineFailure) -> BatchOutcome {
        if now >= nextTimeLimit { passTimeLimits(now: now) }
        outcome = BatchOutcome()
        let all = batch.positions(upTo: batch.offset, line: batch.lineNumber)
        // A reading thread's batch: its buffer is the lines' bytes in order, hashed here in one pass.
        let digest = batch.digest ?? batch.chunk.map { Array(SHA256.hash(data: $0)) }
        if try await attempt(
            batch.lines[...], source: batch.source, positions: all, now: now, digest: digest, chunk: batch.chunk,
            screenedBy: batch.screenGeneration)
        {
            try await tick(now: now)
            return outcome
        }
        // The database refused the change itself: one line per transaction, a refused line rejected alone.
        logger.warning("\(batch.source): the state database refused a batch; committing its lines one at a time")
        for (i, line) in batch.lines.enumerated() {
            let last = i == batch.lines.count - 1
            let positions =
                last ? all : batch.positions(upTo: line.end, line: line.number)
            if try await attempt(batch.lines[i...i], source: batch.source, positions: positions, now: now) { continue }
            _ = try await attempt(
                [], source: batch.source, positions: positions, now: now,
                refused: (line, "the state database refused the record's changes"))
        }
        try await tick(now: now)
        return outcome
    }

    /// What a processed batch came to (the HTTP ingest answers with it).
    public struct BatchOutcome: Sendable {
        public var accepted = 0
        public var rejected: [(line: Int, id: String?, error: String)] = []
    }
    private var outcome = BatchOutcome()

    /// A list passed its review date or an entry expired while the service runs: the operator is told (owner and
    /// file, never an entry), and rules that take values from the lists are compiled again at `now`.
    private func passTimeLimits(now: Double) {
        for l in loaded.lists where l.reviewBy <= now && l.reviewBy > limitsCheckedAt {
            logger.warning("\(l.file): watchlist \(l.owner)/\(l.name) passed its review date: it no longer matches")
        }
        if loaded.expands, let source = loaded.ruleSource {
            let r = RuleLoader(watchlists: loaded.lists, now: now).recompile(source)
            if r.errors.isEmpty {
                // Same documents, same rules in the same order: the correlation windows stay as they are.
                step.engine.evaluator = RuleEvaluator(r.ruleSet)
                screens.set(step.screening)
                loaded.rules = r.ruleSet
            }
        }
        nextTimeLimit = loaded.nextTimeLimit(after: now)
        limitsCheckedAt = now
    }

    /// One transaction for `lines`; true when committed, false when the database refused the change itself.
    /// A failing database is retried with backoff until `durability.retryFor`, then the service stops.
    private func attempt(
        _ lines: ArraySlice<InputLine>, source: String, positions: [(source: String, offset: Int64)], now: Double,
        refused: (InputLine, String)? = nil, digest given: [UInt8]? = nil, chunk: [UInt8]? = nil,
        screenedBy generation: Int? = nil
    ) async throws(PipelineFailure) -> Bool {
        var tries = 0
        var conflicted = 0
        while true {
            // Judged on every try: a reload or a submitted list may come in while a failed commit waits to retry,
            // and the lines the reading thread screened against the lists before it must then meet the new ones.
            let trusted = generation != nil && generation == screens.now.generation
            step.engine.beginBatch()
            dispatcher.begin()
            var commit = Commit()
            var log: [String] = []
            var rejections: [(line: Int, id: String?, error: String)] = []
            var counts = (accepted: 0, rejected: 0, hits: 0, rules: 0)
            do throws(StateError) {
                var found: [Hit] = []
                var digest = SHA256()
                // The screen (issue 17): lines accepted, on no list and with no rule to run, counted without the
                // step; runs of lines of one buffer screened together.
                let screening = step  // one copy per batch: reading the actor's property per line copied it
                var passUntil = lines.startIndex
                for i in lines.indices {
                    // Read in place: a line the screen passed is not copied (each copy retains its batch's buffer).
                    if given == nil { digest.update(data: lines[i].bytes) }
                    if i < passUntil { continue }
                    if trusted && lines[i].screened {
                        counts.accepted += 1
                        continue
                    }
                    let l = lines[i]
                    // A line the reading thread screened with this screen and did not pass needs the step: it is not
                    // screened again (with the lines after it) here.
                    if !trusted && l.oversized == nil {
                        let passed =
                            if let chunk {
                                Self.screenRun(screening, chunk, lines[i...].prefix(RecordStep.screenBatch))
                            } else {
                                l.bytes.withUnsafeBufferPointer { screening.screen($0) } ? 1 : 0
                            }
                        if passed > 0 {
                            counts.accepted += passed
                            passUntil = i + passed
                            continue
                        }
                    }
                    let outcome: RecordStep.Outcome
                    if let length = l.oversized {
                        outcome = .rejected(RecordStep.oversized(length: length, head: l.bytes[...]))
                    } else {
                        let logger = self.logger
                        outcome = step.run(l.bytes[...], ingestTime: now, now: now) { logger.warning("\($0)") }
                    }
                    switch outcome {
                    case .blank: continue
                    case .accepted(let selector, let hits):
                        counts.accepted += 1
                        found += hits
                        dispatcher.observe(selector, now: now)
                        // Kept by the correlator, whichever node that is: the line goes into the shared feed.
                        if step.engine.fedCorrelation {
                            commit.correlationFeed.append(FeedRecord(line: Array(l.bytes), ingestTime: now))
                        }
                    case .rejected(let r):
                        counts.rejected += 1
                        rejections.append((l.number, r.id, r.message))
                        log.append(
                            "\(source):\(l.number): \(r.id.map { "id \(printable($0)): " } ?? "")\(printable(r.message))"
                        )
                        commit.events.append(Self.rejection(r, source: source, line: l.number, now: now))
                    }
                }
                if let (l, why) = refused {
                    counts.rejected += 1
                    let r = RecordStep.Rejection(id: RecordStep.salvageID(l.bytes[...]), message: why)
                    rejections.append((l.number, r.id, r.message))
                    log.append(
                        "\(source):\(l.number): \(r.id.map { "id \(printable($0)): " } ?? "")\(printable(r.message))")
                    commit.events.append(Self.rejection(r, source: source, line: l.number, now: now))
                }
                counts.hits = found.count
                counts.rules = found.count { $0.kind == .rule }
                try dispatcher.ingest(found, now: now, into: &commit)
                commit.events.append(
                    EventDraft(
                        at: now, kind: "ingest_batch",
                        detail: JSONObject([
                            ("source", .string(source)), ("lines", .number(String(lines.count))),
                            (
                                "last_line",
                                .number(String(positions.first { $0.source == source + "#line" }?.offset ?? 0))
                            ),
                            ("offset", .number(String(positions.first { $0.source == source }?.offset ?? 0))),
                            ("sha256", .string(hexString(given ?? Array(digest.finalize())))),
                        ])))
                commit.offsets += positions  // after what the dispatcher put there (heartbeats seen)
                try store.commit(commit)
            } catch let e {
                step.engine.rollbackBatch()
                dispatcher.rollback()
                if e.isConflict {
                    // An alert the batch folded into was changed meanwhile (an operator's ack or resolve, here over
                    // the API or from another process): nothing was committed; the same batch again at once, from
                    // the alerts as they are now.
                    conflicts += 1
                    metrics.conflict()
                    conflicted += 1
                    if conflicted <= durability.conflictRetries {
                        logger.debug("\(source): \(e.description); processing the batch again")
                        continue
                    }
                }
                if e.refusedChange && refused == nil { return false }
                tries += 1
                try await wait(after: e, tries: tries, now: now, what: "\(source): commit")
                continue
            }
            dispatcher.end(committed: commit)
            step.engine.endBatch()
            if failingSince != nil {
                logger.info("\(source): the state database is writable again; nothing was skipped")
                failingSince = nil
            }
            accepted += counts.accepted
            rejected += counts.rejected
            hits += counts.hits
            metrics.batch(accepted: counts.accepted, rejected: counts.rejected, hits: counts.hits, rules: counts.rules)
            outcome.accepted += counts.accepted
            outcome.rejected += rejections
            for line in log { logger.warning("\(line)") }
            return true
        }
    }

    /// How many of `lines` (slices of `chunk`), from the first, the screen passes; stops at an oversized line.
    static func screenRun(_ step: RecordStep, _ chunk: [UInt8], _ lines: ArraySlice<InputLine>) -> Int {
        withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: RecordStep.screenBatch) { ranges in
            var n = 0
            for l in lines.prefix(RecordStep.screenBatch) {
                if l.oversized != nil { break }
                ranges[n] = l.bytes.startIndex..<l.bytes.endIndex
                n += 1
            }
            if n == 0 { return 0 }
            return chunk.withUnsafeBufferPointer { step.screen($0, lines: UnsafeBufferPointer(rebasing: ranges[..<n])) }
        }
    }

    /// Backoff after a failed commit; stops the service when the database has failed for too long.
    private func wait(after e: StateError, tries: Int, now: Double, what: String) async throws(PipelineFailure) {
        let start = failingSince ?? Date().timeIntervalSince1970
        if failingSince == nil {
            failingSince = start
            logger.warning("\(what) failed, retrying (nothing is skipped): \(e.description)")
        }
        let elapsed = Date().timeIntervalSince1970 - start
        if elapsed >= durability.retryFor {
            throw PipelineFailure(
                description:
                    "the state database stayed unwritable for \(Int(elapsed)) s (\(e.description)); stopping with "
                    + "the input kept: a restart resumes at the last committed position")
        }
        if Task.isCancelled || Task.isShuttingDownGracefully {
            throw PipelineFailure(
                description: "stopped while the state database was failing; the batch is read again at the next start",
                stopped: true)
        }
        try? await Task.sleep(nanoseconds: UInt64(durability.delay(tries) * 1e9))
    }

    static func rejection(_ r: RecordStep.Rejection, source: String, line: Int, now: Double) -> EventDraft {
        var d = JSONObject([("source", .string(source)), ("line", .number(String(line)))])
        if let id = r.id { d.append("id", .string(id)) }
        d.append("error", .string(r.message))
        return EventDraft(at: now, kind: "input_rejected", reason: r.message, detail: d)
    }

    /// Runs due timers; `flushAll` sends every pending group now (end of input). A failed commit rolls the
    /// dispatcher back (the next tick decides again); a database failing for too long stops the service.
    public func tick(now: Double, flushAll: Bool = false) async throws(PipelineFailure) {
        var conflicted = 0
        while true {
            dispatcher.begin()
            do throws(StateError) {
                let c = try dispatcher.tick(now: now, flushAll: flushAll)
                if !c.isEmpty { try store.commit(c) }
                dispatcher.end(committed: c)
                tickFailingSince = nil
                return
            } catch let e {
                dispatcher.rollback()
                // A resolve timeout over an alert an operator changed meanwhile: decided again at once.
                guard e.isConflict else { return try tickFailed(e) }
                conflicts += 1
                metrics.conflict()
                conflicted += 1
                if conflicted > durability.conflictRetries { return try tickFailed(e) }
            }
        }
    }

    /// A tick's commit failed (its memory rolled back): the next tick decides again, unless the database has failed
    /// for too long.
    private func tickFailed(_ e: StateError) throws(PipelineFailure) {
        let start = tickFailingSince ?? Date().timeIntervalSince1970
        if tickFailingSince == nil {
            tickFailingSince = start
            logger.warning("timers: commit failed, retrying: \(e.description)")
        }
        if Date().timeIntervalSince1970 - start >= durability.retryFor {
            throw PipelineFailure(
                description: "the state database stayed unwritable for the timers (\(e.description)); stopping")
        }
    }

    // MARK: One dispatcher across nodes

    /// At the end of input on a database several nodes share: the alerts this node left for the dispatcher (the node
    /// holding its lease, which groups and notifies every alert) are gathered — by this node when it can take the
    /// lease (the last tick then sends them), or by the node that holds it — waiting until `until` at most.
    public func drainAlerts(until: Double, clock: @Sendable () -> Double) async {
        guard store is any SharedAlerts else { return }
        while true {
            do {
                if try dispatcher.leads() || dispatcher.ungathered() == 0 { return }
            } catch {
                logger.warning("end of input: the alerts left for the dispatcher could not be looked at: \(error)")
                return
            }
            if clock() >= until {
                logger.warning("end of input: alerts this node opened still wait for the node that notifies them")
                return
            }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    /// At the end of input, after the last tick: the dispatcher's lease given up (another node takes this node's
    /// open alerts on at once, not after its heartbeat has run out).
    public func stepDown() {
        do { try dispatcher.stepDown() } catch {
            logger.warning("end of input: the dispatcher's lease could not be given up: \(error.description)")
        }
    }

    // MARK: Correlation across nodes

    /// How far back (in ingest time) the feed is kept and a new correlator builds its windows from it: a day, or the
    /// longest correlation's timespan with the lateness allowed (or `max_idle`) when longer. Windows are kept in
    /// event time: a group that never goes idle can hold a record ingested long before (a seized phone read over
    /// hours); a day of ingest covers such a group unless its records arrive more than a day apart.
    private var feedRetention: Double {
        let c = loaded.configuration.correlation
        let horizon = (loaded.rules.correlations.map(\.timespan).max() ?? 0) + c.allowedLateness
        return max(24 * 3600, horizon, c.maxIdle ?? 0)
    }

    /// The correlator's turn, on a database several nodes share (with the timers): the node holding the correlator's
    /// lease reads the feed on from its offset and keeps the windows; what fires becomes alerts like any other,
    /// committed with the new offset — only over the offset it read from, so a node that lost the lease meanwhile
    /// commits nothing. A node that takes the lease first builds the windows again from the feed (records within
    /// the retention, up to the offset: what they fired was committed then).
    public func correlate(now: Double) {
        guard let shared, !loaded.rules.correlations.isEmpty, !correlator.stopping else { return }
        // Due after `heartbeatEvery`, or at once when the clock was set back (else the lease would not be renewed).
        let every = (store as? any SharedAlerts)?.heartbeatEvery ?? 1
        if now - correlator.askedAt >= every || now < correlator.askedAt {
            correlator.askedAt = now
            guard takeLease(shared, now: now) else { return }
        }
        guard correlator.claim != nil, let records = unread(shared) else { return }
        if !records.isEmpty { _ = correlate(records, now: now) }
        if now - correlator.prunedAt >= 60 || now < correlator.prunedAt {
            correlator.prunedAt = now
            do { try shared.pruneFeed(through: correlator.offset, before: now - feedRetention) } catch {
                feedTrouble("correlation feed: old records could not be dropped: \(error.description)")
            }
        }
    }

    /// At the end of input (the node is about to stop): the feed read to its end — by this node, taking the lease
    /// (and giving it up after), or by the node that holds it — waiting until `until` at most.
    public func drainCorrelations(until: Double, clock: @Sendable () -> Double) async {
        guard let shared, !loaded.rules.correlations.isEmpty else { return }
        correlator.stopping = true
        while true {
            let now = clock()
            if takeLease(shared, now: now), let claim = correlator.claim {
                // Up to the feed's end as it is now, within the drain's time: nodes still feeding do not hold it.
                let end = (try? shared.feedEnd()) ?? Int64.max
                while correlator.offset < end, clock() < until, let records = unread(shared), !records.isEmpty,
                    correlate(records, now: clock())
                {}
                try? shared.release(claim)
                dropWindows()
                return
            }
            // Another node keeps the correlations: done when it has read what is in the feed now.
            if let end = try? shared.feedEnd(),
                ((try? store.offset(source: CorrelationFeed.correlatorOffset)) ?? 0) >= end
            {
                return
            }
            if now >= until {
                logger.warning("end of input: the correlator has not read the whole correlation feed yet")
                return
            }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    /// The next feed records after the correlator's offset (nil, logged, when the feed could not be read).
    private func unread(_ shared: any SharedCorrelation & SharedOutbox) -> [FeedRecord]? {
        do {
            let records = try shared.feed(after: correlator.offset, since: 0, limit: 1000)
            if correlator.troubled {
                correlator.troubled = false
                logger.info("correlation feed: read again")
            }
            return records
        } catch {
            feedTrouble("correlation feed: could not be read: \(error.description)")
            return nil
        }
    }

    /// Asks for the correlator's lease; true when this node holds it (its windows built again when newly taken).
    private func takeLease(_ shared: any SharedCorrelation & SharedOutbox, now: Double) -> Bool {
        let claim: LaneClaim?
        do { claim = try shared.claim(lane: CorrelationFeed.correlatorLane) } catch {
            feedTrouble("correlation feed: the correlator's lease could not be asked for: \(error.description)")
            return false
        }
        guard let claim else {
            if correlator.claim != nil {
                logger.info("correlation feed: another node keeps the correlations now")
                dropWindows()
            }
            return false
        }
        if correlator.claim?.token != claim.token {
            guard rebuildWindows(shared, now: now) else { return false }
            logger.info("correlation feed: this node keeps the correlations (from record \(correlator.offset))")
        }
        correlator.claim = claim
        return true
    }

    /// Empty windows (this node no longer, or not yet, the correlator).
    private func dropWindows() {
        correlator.claim = nil
        step.engine.correlation = CorrelationEngine(step.engine.ruleSet, options: step.engine.correlation.options)
    }

    /// The windows as the feed left them: the records within the retention up to the committed offset fed again,
    /// what they fire dropped (it was committed when they were first read). False when the feed could not be read.
    private func rebuildWindows(_ shared: any SharedCorrelation & SharedOutbox, now: Double) -> Bool {
        dropWindows()
        let offset: Int64
        do { offset = try store.offset(source: CorrelationFeed.correlatorOffset) ?? 0 } catch {
            feedTrouble("correlation feed: its offset could not be read: \(error.description)")
            return false
        }
        var after: Int64 = 0
        let since = now - feedRetention
        while true {
            let records: [FeedRecord]
            do { records = try shared.feed(after: after, since: since, limit: 1000) } catch {
                feedTrouble("correlation feed: could not be read: \(error.description)")
                return false
            }
            let read = records.prefix { $0.seq <= offset }
            for r in read { _ = correlated(r, now: now) }
            if read.count < 1000 { break }
            after = records[read.count - 1].seq
            // A long rebuild (a busy day's feed) keeps the lease it is for: renewed after each run of records, so
            // that it is not taken over (and rebuilt there, again and again) while this node reads.
            do {
                guard try shared.claim(lane: CorrelationFeed.correlatorLane) != nil else {
                    logger.info("correlation feed: the correlator's lease was taken while its windows were rebuilt")
                    return false
                }
            } catch {
                feedTrouble("correlation feed: the correlator's lease could not be renewed: \(error.description)")
                return false
            }
        }
        correlator.offset = offset
        return true
    }

    /// What one feed record fires (correlations only: its list and rule hits were its node's).
    private func correlated(_ r: FeedRecord, now: Double) -> [Hit] {
        step.engine.correlates = true
        defer { step.engine.correlates = false }
        let logger = self.logger
        guard
            case .accepted(_, let hits) = step.run(
                r.line[...], ingestTime: r.ingestTime, now: now, problem: { logger.debug("\($0)") })
        else {
            // Accepted where it was ingested, not here (a reload changed the normalisers since): counted, no content.
            logger.warning(
                "correlation feed: record \(r.seq) no longer reads as a selector here; left out of the windows")
            return []
        }
        return hits.filter { $0.rule?.events != nil }
    }

    /// Feeds `records` and commits what they fire with the offset after them (as a batch: rolled back whole).
    private func correlate(_ records: [FeedRecord], now: Double) -> Bool {
        var conflicted = 0
        while true {
            step.engine.beginBatch()
            dispatcher.begin()
            var commit = Commit()
            var found: [Hit] = []
            for r in records { found += correlated(r, now: now) }
            let first = records[0].seq
            let last = records[records.count - 1].seq
            do throws(StateError) {
                try dispatcher.ingest(found, now: now, into: &commit)
                commit.events.append(
                    EventDraft(
                        at: now, kind: "correlation_feed",
                        detail: JSONObject([
                            ("from", .number(String(first))), ("to", .number(String(last))),
                            ("records", .number(String(records.count))), ("fired", .number(String(found.count))),
                        ])))
                commit.offsets.append((CorrelationFeed.correlatorOffset, last))
                commit.offsetGuard = (CorrelationFeed.correlatorOffset, correlator.offset)
                try store.commit(commit)
            } catch let e {
                step.engine.rollbackBatch()
                dispatcher.rollback()
                if e.isConflict {
                    // Another node read the feed meanwhile (this one lost the lease): its windows are not this one's.
                    if let stored = try? store.offset(source: CorrelationFeed.correlatorOffset),
                        stored != correlator.offset
                    {
                        logger.info("correlation feed: another node moved the feed on; its windows dropped here")
                        dropWindows()
                        return false
                    }
                    conflicted += 1
                    if conflicted <= durability.conflictRetries { continue }
                }
                feedTrouble("correlation feed: commit failed, tried again at the next tick: \(e.description)")
                return false
            }
            dispatcher.end(committed: commit)
            step.engine.endBatch()
            correlator.offset = last
            hits += found.count
            return true
        }
    }

    /// Lists submitted through the API changed (SPEC §10): their current versions are loaded again beside the file
    /// lists as loaded (files, rules and configuration are read again by a reload only) and the new index takes
    /// effect for the next selector; correlation windows stay. False when the change could not be read or recorded.
    @discardableResult
    public func reloadLists(now: Double) -> Bool {
        let submitted: [SubmittedList]
        do { submitted = try store.submittedLists(content: true) } catch {
            logger.error("submitted lists could not be read (\(error.description)); the lists in force stay")
            return false
        }
        let (l, errors, warnings) = loaded.merging(submitted, now: now)
        for w in warnings { logger.warning("\(w)") }
        for e in errors { logger.error("\(e)") }
        var ev = Commit()
        ev.events = l.refusalEvents(now: now)
        let handlingsChanged = l.handlings != loaded.handlings
        if handlingsChanged { ev.listHandlings = l.handlings }
        if !ev.isEmpty {
            do { try store.commit(ev) } catch {
                logger.error("submitted lists: the change could not be recorded (\(error)); the lists in force stay")
                return false
            }
        }
        // A list withdrawn or its handling changed: open alerts are rendered by the handlings now.
        if handlingsChanged {
            do { try dispatcher.reconfigure(dispatcher.config, now: now) } catch {
                logger.error("submitted lists: the alerts could not be read again (\(error))")
            }
        }
        logIndexWarnings(l, over: loaded)
        loaded = l
        step.matcher = l.matcher
        if l.expands { step.engine.evaluator = RuleEvaluator(l.rules) }
        screens.set(step.screening)  // the reading threads screen against the new lists from their next batch
        nextTimeLimit = l.nextTimeLimit(after: now)
        return true
    }

    /// The index's warnings of a load taking effect that the one before it did not have.
    private func logIndexWarnings(_ l: Loaded, over old: Loaded) {
        for w in l.indexWarnings where !old.indexWarnings.contains(w) { logger.warning("\(w)") }
    }

    /// SIGHUP: reads the configuration, lists and rules again; keeps the running set when any of it is invalid.
    @discardableResult
    public func reload(configPath: String?, now: Double) -> Bool {
        let c: Configuration
        do { c = try Configuration.load(config: configPath) } catch {
            logger.error("reload refused, keeping the running configuration: \(error.description)")
            return false
        }
        let submitted: [SubmittedList]
        do { submitted = try store.submittedLists(content: true) } catch {
            logger.error("reload refused, keeping the running configuration: \(error.description)")
            return false
        }
        let (l, errors, warnings) = Loaded.load(c, now: now, previous: loaded, submitted: submitted)
        for w in warnings { logger.warning("\(w)") }
        if let l, !errors.isEmpty {
            for e in errors { logger.error("\(e)") }
            if !l.rulesRefused.isEmpty {
                logger.error("reload: \(l.rulesRefused.count) rule errors; the previous rule set stays in force")
            }
            if !l.refused.isEmpty {
                logger.error("reload: \(l.refused.count) watchlists refused (their previous versions stay in force)")
            }
        }
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
        var alerts = c.alerts
        do {
            alerts.handleKey = try c.loadHandleKey()
            alerts.ackLinks = try c.loadAckLinks()
        } catch {
            logger.error("reload refused: \(error)")
            return false
        }
        // The change is recorded before it takes effect: no configuration runs that the audit log does not show.
        var ev = Commit()
        ev.events = [Self.configEvent(l, now: now, kind: "config_reloaded")] + l.refusalEvents(now: now)
        ev.listHandlings = l.handlings
        do { try store.commit(ev) } catch {
            logger.error("reload refused, keeping the running configuration: it could not be recorded (\(error))")
            return false
        }
        do { try dispatcher.reconfigure(alerts, now: now) } catch {
            logger.error("reload: the alerts could not be read again (\(error)); routes apply from the next change")
        }
        logIndexWarnings(l, over: loaded)
        loaded = l
        nextTimeLimit = l.nextTimeLimit(after: now)
        limitsCheckedAt = now
        step = RecordStep(
            normalizer: l.normalizer, matcher: l.matcher, engine: RuleEngine(l.rules, options: c.correlation))
        step.engine.correlates = shared == nil
        correlator.claim = nil  // new windows: the correlator builds them again from the feed
        step.screens = c.alerts.heartbeats.isEmpty
        screens.set(step.screening)
        logger.info("reloaded: \(l.rules.rules.count) rules, configuration \(c.configFile ?? "embedded defaults")")
        return true
    }
}
