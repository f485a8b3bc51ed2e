import TriplineJSON

/// Where the pipeline keeps what must survive a crash (SPEC §6, §8): alerts, the append-only event table, the
/// outbox, the notification log, silences and input offsets. One small protocol; `MemoryStateStore` beside it,
/// `SQLiteStateStore` and `PostgresStateStore` in their own modules — all held to one conformance suite.
public protocol StateStore: AnyObject, Sendable {
    /// Creates or upgrades the schema (versioned migrations); idempotent.
    func migrate() throws(StateError)
    /// Applies everything in `c` atomically: all of it is durable, or none of it.
    func commit(_ c: Commit) throws(StateError)

    func alert(id: Int64) throws(StateError) -> AlertRecord?
    func alert(key: String) throws(StateError) -> AlertRecord?
    /// The stored alerts of `keys`, by key (a default reads them one by one).
    func alerts(keys: [String]) throws(StateError) -> [String: AlertRecord]
    /// The stored alerts of `ids`, by id (those not stored are absent).
    func alerts(ids: [Int64]) throws(StateError) -> [Int64: AlertRecord]
    /// Alerts, newest update first, optionally only in the given states.
    func alerts(states: Set<AlertState>?, limit: Int) throws(StateError) -> [AlertRecord]
    /// Alerts with an id below `idBelow` (all when nil), highest id first: a page of the API's alert list.
    func alerts(idBelow: Int64?, limit: Int) throws(StateError) -> [AlertRecord]
    /// Alerts changed at or after `since` (operators' changes from another process), oldest change first.
    func alerts(updatedSince since: Double, limit: Int) throws(StateError) -> [AlertRecord]
    /// Alerts in `states` last seen before `before` (resolve timeouts), oldest sighting first.
    func alerts(states: Set<AlertState>, lastSeenBefore before: Double, limit: Int) throws(StateError) -> [AlertRecord]
    func maxAlertID() throws(StateError) -> Int64

    func notifyLog() throws(StateError) -> [NotifyLogEntry]

    /// Pending items whose next attempt is due, highest priority first, then oldest.
    func dueOutbox(now: Double, limit: Int) throws(StateError) -> [OutboxItem]
    /// The delivery lanes (receiver, integration) whose oldest pending item is due, the lane with the oldest first.
    /// A lane is delivered in order (first in, first out): a later item never overtakes one waiting for a retry.
    func dueLanes(now: Double) throws(StateError) -> [OutboxLane]
    /// One lane's pending items in order, up to the first that is not due yet.
    func dueOutbox(lane: OutboxLane, now: Double, limit: Int) throws(StateError) -> [OutboxItem]
    func outbox(status: OutboxStatus?, limit: Int) throws(StateError) -> [OutboxItem]
    func pendingOutboxCount() throws(StateError) -> Int
    /// Counts for `/metrics`: alerts by state and priority, outbox items by receiver and status.
    func metricCounts() throws(StateError) -> MetricCounts
    /// Records delivery attempts' outcomes and their events, all in one transaction or none (a lane's batch: the
    /// items a sink took at once).
    func finishAttempts(_ outcomes: [AttemptOutcome]) throws(StateError)
    /// A dead item back to pending (`tripline outbox retry`); false when there is no such dead item.
    func retry(outboxID: Int64, event: EventDraft) throws(StateError) -> Bool

    func silences(includeExpired: Bool) throws(StateError) -> [Silence]
    /// Receivers' rate-limit state (recent notification times, alerts folded into the next digest).
    func rateStates() throws(StateError) -> [RateState]
    /// Every escalation in progress (or run to its end while its alert is open), by alert key then route.
    func escalations() throws(StateError) -> [EscalationState]
    /// One alert's escalations, by route.
    func escalations(key: String) throws(StateError) -> [EscalationState]
    /// The use of an acknowledge link, if it was used.
    func usedAckLink(nonce: String) throws(StateError) -> UsedAckLink?
    /// The lists' handlings as the service last loaded them (`owner/list` → handling); nil before any load.
    func listHandlings() throws(StateError) -> [String: JSONObject]?
    /// The API token with this hash (SHA-256 hex of the token), if any.
    func token(hash: String) throws(StateError) -> TokenRecord?
    /// Every API token (hashes only), oldest first.
    func tokens() throws(StateError) -> [TokenRecord]
    /// The current version of every list submitted through the API (SPEC §10), in the order they became current;
    /// a withdrawn list's has `withdrawnAt`. `yaml` is read only when `content` (else empty).
    func submittedLists(content: Bool) throws(StateError) -> [SubmittedList]
    /// Every stored version of one submitted list, without content, in the order they became current (the
    /// current one last).
    func submittedVersions(owner: String, list: String) throws(StateError) -> [SubmittedList]
    /// One stored version of a submitted list, with its content.
    func submittedList(owner: String, list: String, version: String) throws(StateError) -> SubmittedList?
    func offset(source: String) throws(StateError) -> Int64?
    /// Events after `seq`, oldest first.
    func events(after seq: Int64, limit: Int) throws(StateError) -> [EventRecord]
}

/// An alert's state. `acknowledged` is a view: an alert stays `firing` and keeps the partners that acknowledged it
/// (`AlertRecord.acks`); a principal or receiver of such a partner sees it as acknowledged (SPEC §6).
public enum AlertState: String, Sendable, CaseIterable, Codable {
    case firing, acknowledged, resolved
}

/// One partner's acknowledgement: who, when, and until when (nil: until the alert resolves).
public struct Ack: Sendable, Equatable {
    public var by: String
    public var at: Double
    public var until: Double?
    public init(by: String, at: Double, until: Double? = nil) {
        self.by = by
        self.at = at
        self.until = until
    }
    public func holds(at t: Double) -> Bool { until.map { t < $0 } ?? true }
}

public enum OutboxStatus: String, Sendable, CaseIterable {
    case pending, delivered, dead
}

/// One alert (SPEC §6 identity): a dedup key, its state, and what later sightings folded in.
///
/// Its fields live in one shared box, copied when a copy is changed: an alert is copied often on its way (read,
/// kept, folded, committed, rendered) and copying a box is one reference count, not one per field.
public struct AlertRecord: Sendable, Equatable {
    final class Fields: @unchecked Sendable {
        var id: Int64
        var key: String
        var kind: String
        var priority: String
        var priorityRank: Int
        var state: AlertState
        var labels: JSONObject
        var firstSeen: Double
        var lastSeen: Double
        var count: Int
        var sources: [String]
        var payload: JSONObject
        var ackedBy: String?
        var acks: [String: Ack]
        var updatedAt: Double
        var version: Int64?

        init(
            id: Int64, key: String, kind: String, priority: String, priorityRank: Int, state: AlertState,
            labels: JSONObject, firstSeen: Double, lastSeen: Double, count: Int, sources: [String],
            payload: JSONObject, ackedBy: String?, acks: [String: Ack], updatedAt: Double, version: Int64?
        ) {
            self.id = id
            self.key = key
            self.kind = kind
            self.priority = priority
            self.priorityRank = priorityRank
            self.state = state
            self.labels = labels
            self.firstSeen = firstSeen
            self.lastSeen = lastSeen
            self.count = count
            self.sources = sources
            self.payload = payload
            self.ackedBy = ackedBy
            self.acks = acks
            self.updatedAt = updatedAt
            self.version = version
        }

        func copy() -> Fields {
            Fields(
                id: id, key: key, kind: kind, priority: priority, priorityRank: priorityRank, state: state,
                labels: labels, firstSeen: firstSeen, lastSeen: lastSeen, count: count, sources: sources,
                payload: payload, ackedBy: ackedBy, acks: acks, updatedAt: updatedAt, version: version)
        }
    }
    private var f: Fields

    /// The box, made this copy's own before a change.
    private mutating func own() -> Fields {
        if !isKnownUniquelyReferenced(&f) { f = f.copy() }
        return f
    }

    public var id: Int64 {
        get { f.id }
        _modify { yield &own().id }
    }
    public var key: String {
        get { f.key }
        _modify { yield &own().key }
    }
    public var kind: String {
        get { f.kind }
        _modify { yield &own().kind }
    }
    public var priority: String {
        get { f.priority }
        _modify { yield &own().priority }
    }
    public var priorityRank: Int {
        get { f.priorityRank }
        _modify { yield &own().priorityRank }
    }
    public var state: AlertState {
        get { f.state }
        _modify { yield &own().state }
    }
    public var labels: JSONObject {
        get { f.labels }
        _modify { yield &own().labels }
    }
    public var firstSeen: Double {
        get { f.firstSeen }
        _modify { yield &own().firstSeen }
    }
    public var lastSeen: Double {
        get { f.lastSeen }
        _modify { yield &own().lastSeen }
    }
    public var count: Int {
        get { f.count }
        _modify { yield &own().count }
    }
    /// Source items that sighted it (first 100).
    public var sources: [String] {
        get { f.sources }
        _modify { yield &own().sources }
    }
    /// The first hit (selector, watchlist or rule part, handling, basis): what renderings are made from.
    public var payload: JSONObject {
        get { f.payload }
        _modify { yield &own().payload }
    }
    public var ackedBy: String? {
        get { f.ackedBy }
        _modify { yield &own().ackedBy }
    }
    /// Acknowledgements by partner (SPEC §6: an ack stops repeats for the acknowledging partner only).
    public var acks: [String: Ack] {
        get { f.acks }
        _modify { yield &own().acks }
    }
    public var updatedAt: Double {
        get { f.updatedAt }
        _modify { yield &own().updatedAt }
    }
    /// The version of the stored row this copy was read at (nil: an alert not stored yet). Every commit of an alert
    /// is conditional on it (optimistic concurrency): a copy that another writer changed since it was read — an
    /// operator's ack landing while the pipeline folds a sighting into the same alert — is refused with
    /// `StateError.conflict` instead of overwriting that change; the writer reads again and redoes its change.
    public var version: Int64? {
        get { f.version }
        _modify { yield &own().version }
    }

    public init(
        id: Int64, key: String, kind: String, priority: String, priorityRank: Int, state: AlertState,
        labels: JSONObject, firstSeen: Double, lastSeen: Double, count: Int, sources: [String], payload: JSONObject,
        ackedBy: String? = nil, acks: [String: Ack] = [:], updatedAt: Double, version: Int64? = nil
    ) {
        f = Fields(
            id: id, key: key, kind: kind, priority: priority, priorityRank: priorityRank, state: state, labels: labels,
            firstSeen: firstSeen, lastSeen: lastSeen, count: count, sources: sources, payload: payload,
            ackedBy: ackedBy, acks: acks, updatedAt: updatedAt, version: version)
    }

    public static func == (a: AlertRecord, b: AlertRecord) -> Bool {
        if a.f === b.f { return true }
        return a.id == b.id && a.key == b.key && a.kind == b.kind && a.priority == b.priority
            && a.priorityRank == b.priorityRank && a.state == b.state && a.labels == b.labels
            && a.firstSeen == b.firstSeen && a.lastSeen == b.lastSeen && a.count == b.count && a.sources == b.sources
            && a.payload == b.payload && a.ackedBy == b.ackedBy && a.acks == b.acks && a.updatedAt == b.updatedAt
            && a.version == b.version
    }
}

extension AlertRecord {
    /// The state as `partner` sees it at `t`: acknowledged when its partner acknowledged the firing alert.
    public func state(for partner: String?, at t: Double) -> AlertState {
        if state == .firing, let partner, let ack = acks[partner], ack.holds(at: t) { return .acknowledged }
        return state
    }
}

/// An event to append: who did or decided what, when, about which alert, and why.
public struct EventDraft: Sendable, Equatable {
    public var at: Double
    public var kind: String
    public var alertKey: String?
    public var receiver: String?
    public var principal: String?
    public var reason: String?
    public var detail: JSONObject

    public init(
        at: Double, kind: String, alertKey: String? = nil, receiver: String? = nil, principal: String? = nil,
        reason: String? = nil, detail: JSONObject = JSONObject()
    ) {
        self.at = at
        self.kind = kind
        self.alertKey = alertKey
        self.receiver = receiver
        self.principal = principal
        self.reason = reason
        self.detail = detail
    }
}

public struct EventRecord: Sendable, Equatable {
    public var seq: Int64
    public var event: EventDraft
    public init(seq: Int64, event: EventDraft) {
        self.seq = seq
        self.event = event
    }
}

/// Where an outbox item goes: one integration of one receiver (its mail, its webhook, its log file). Each lane
/// is delivered in order and on its own, so a slow or failing integration never holds up another.
public struct OutboxLane: Sendable, Hashable, CustomStringConvertible {
    public var receiver: String
    /// `type/index` (`webhook/0`); empty for items queued before integrations had lanes (all of the receiver's).
    public var integration: String
    public init(receiver: String, integration: String) {
        self.receiver = receiver
        self.integration = integration
    }
    public var description: String { integration.isEmpty ? receiver : receiver + " " + integration }
}

/// A notification waiting for (or done with) delivery through one integration of one receiver.
public struct OutboxItem: Sendable, Equatable {
    public var id: Int64
    public var receiver: String
    /// The integration (`webhook/0`, `email/0`, `file/0`) this item is for.
    public var integration: String
    public var priorityRank: Int
    public var createdAt: Double
    public var nextAttemptAt: Double
    public var attempts: Int
    public var status: OutboxStatus
    /// The rendering for this receiver (already filtered by need-to-know).
    public var payload: JSONObject { didSet { payloadText = nil } }
    /// `payload` as the store holds it (compact JSON), when read from a store and not changed since: a sink that
    /// writes the payload as it is takes these bytes instead of writing it again. Not part of equality.
    public var payloadText: String?
    public var lastError: String?
    public var lane: OutboxLane { OutboxLane(receiver: receiver, integration: integration) }

    public static func == (a: OutboxItem, b: OutboxItem) -> Bool {
        a.id == b.id && a.receiver == b.receiver && a.integration == b.integration && a.priorityRank == b.priorityRank
            && a.createdAt == b.createdAt && a.nextAttemptAt == b.nextAttemptAt && a.attempts == b.attempts
            && a.status == b.status && a.payload == b.payload && a.lastError == b.lastError
    }

    public init(
        id: Int64 = 0, receiver: String, integration: String = "", priorityRank: Int, createdAt: Double,
        nextAttemptAt: Double, attempts: Int = 0, status: OutboxStatus = .pending, payload: JSONObject,
        lastError: String? = nil
    ) {
        self.id = id
        self.receiver = receiver
        self.integration = integration
        self.priorityRank = priorityRank
        self.createdAt = createdAt
        self.nextAttemptAt = nextAttemptAt
        self.attempts = attempts
        self.status = status
        self.payload = payload
        self.lastError = lastError
    }
}

extension StateStore {
    /// The stored alerts of `keys`, by key (those not stored are absent). One read per key here; a store where a
    /// read is a round trip to a server (PostgreSQL) answers all of them with one.
    public func alerts(keys: [String]) throws(StateError) -> [String: AlertRecord] {
        var out: [String: AlertRecord] = [:]
        for k in keys where out[k] == nil { if let a = try alert(key: k) { out[k] = a } }
        return out
    }

    /// The stored alerts of `ids` (one read per id here, one round trip on PostgreSQL).
    public func alerts(ids: [Int64]) throws(StateError) -> [Int64: AlertRecord] {
        var out: [Int64: AlertRecord] = [:]
        for id in ids where out[id] == nil { if let a = try alert(id: id) { out[id] = a } }
        return out
    }

    /// Records one delivery attempt's outcome and its event, atomically.
    public func finishAttempt(_ a: AttemptOutcome) throws(StateError) { try finishAttempts([a]) }
}

/// A store that several writers (nodes) share (PostgreSQL). New alerts take ids from blocks the store reserves for
/// one node alone, instead of counting on from `maxAlertID` (two nodes would count the same ids). Each alert belongs
/// to the node that opened it, which notifies it (the others count their sightings into it); a node keeps itself
/// alive with `heartbeat`, and the alerts of a node whose heartbeat stopped (killed, lost) are adopted, each by one
/// of the others.
public protocol SharedAlerts {
    /// A block of ids no other writer is given; the ids of a block not used are never used.
    func reserveAlertIDs() throws(StateError) -> Range<Int64>
    /// This node is alive for another lease.
    func heartbeat() throws(StateError)
    /// How often a node beats (well inside its lease).
    var heartbeatEvery: Double { get }
    /// Alerts not resolved whose node's heartbeat has stopped, now this node's (each adopted by one node only), with
    /// what their receivers were told and their escalations.
    func adoptOrphans(limit: Int) throws(StateError) -> GatheredAlerts
    /// Which of `keys` are alerts this node holds (opened or adopted, and not adopted away since).
    func owned(keys: [String]) throws(StateError) -> Set<String>
    /// Alerts left for the dispatcher (`AlertHolder.dispatcher`: opened or reopened at another node, or changed by an
    /// operator — resolved ones too), now this node's (each gathered by one node only), with what their receivers
    /// were told and their escalations.
    func gather(limit: Int) throws(StateError) -> GatheredAlerts
    /// This node's open alerts left for the dispatcher (it no longer holds the dispatcher's lease).
    func leaveAlerts() throws(StateError)
    /// How many open alerts wait for the dispatcher to gather them: of `keys`, or of all when nil.
    func ungathered(keys: [String]?) throws(StateError) -> Int
}

/// Alerts one node took (`SharedAlerts.gather`) with what goes with them.
public struct GatheredAlerts: Sendable {
    public var alerts: [AlertRecord]
    public var notified: [NotifyLogEntry]
    public var escalations: [EscalationState]
    public init(alerts: [AlertRecord] = [], notified: [NotifyLogEntry] = [], escalations: [EscalationState] = []) {
        self.alerts = alerts
        self.notified = notified
        self.escalations = escalations
    }
}

public struct AttemptOutcome: Sendable {
    public var outboxID: Int64
    public var status: OutboxStatus
    public var attempts: Int
    public var nextAttemptAt: Double
    public var error: String?
    public var event: EventDraft
    /// The claim the attempt was made under, on a store several nodes share (`SharedOutbox`): the outcome is
    /// recorded only while the claim is still this node's.
    public var fence: LaneClaim?
    public init(
        outboxID: Int64, status: OutboxStatus, attempts: Int, nextAttemptAt: Double, error: String?, event: EventDraft,
        fence: LaneClaim? = nil
    ) {
        self.outboxID = outboxID
        self.status = status
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.error = error
        self.event = event
        self.fence = fence
    }
}

/// A node's claim on an outbox lane (`SharedOutbox`): its token moves on whenever the lane changes hands.
public struct LaneClaim: Sendable, Equatable {
    public var lane: OutboxLane
    public var token: Int64
    public init(lane: OutboxLane, token: Int64) {
        self.lane = lane
        self.token = token
    }
}

/// A store that tells when the outbox may have work (PostgreSQL: LISTEN/NOTIFY on every commit that queues items
/// and every lane released), so that delivery reads it when told, and otherwise only once a second (for retries
/// coming due), instead of every few milliseconds.
public protocol OutboxWakeups: Sendable {
    /// Moves on whenever any node queued outbox items or released a lane (read cheaply, in memory).
    var outboxGeneration: Int { get }
}

/// An outbox several nodes deliver from (PostgreSQL): a lane is delivered by one node at a time, the one holding
/// its lease. A node claims a lane before it sends (renewing its own claim), records outcomes only under a claim
/// that is still its own (fencing: a node paused past its lease finds the lane taken and sends nothing more, and
/// its late outcomes are refused as a conflict), and releases the lane when it has nothing due. A node that dies
/// holding a lane loses it when the lease runs out; the next holder sends its items again under the same ids.
public protocol SharedOutbox {
    /// This node's claim on `lane` (taken, or renewed for another lease); nil while another node's lease runs.
    func claim(lane: OutboxLane) throws(StateError) -> LaneClaim?
    /// Gives the lane up at once (other nodes need not wait for the lease to run out).
    func release(_ claim: LaneClaim) throws(StateError)
}

/// What `/metrics` counts in the store at a scrape: no alert content, only states, priorities and receiver names.
public struct MetricCounts: Sendable, Equatable {
    /// (state, priority) → alerts.
    public var alerts: [Pair: Int] = [:]
    /// (receiver, status) → outbox items.
    public var outbox: [Pair: Int] = [:]
    public struct Pair: Hashable, Sendable {
        public var a: String
        public var b: String
        public init(_ a: String, _ b: String) {
            self.a = a
            self.b = b
        }
    }
    public init() {}
}

/// The last state of an alert each receiver was told of (Alertmanager's nflog).
public struct NotifyLogEntry: Sendable, Equatable {
    public var receiver: String
    public var key: String
    public var state: AlertState
    public var notifiedAt: Double
    public init(receiver: String, key: String, state: AlertState, notifiedAt: Double) {
        self.receiver = receiver
        self.key = key
        self.state = state
        self.notifiedAt = notifiedAt
    }
}

public struct Silence: Sendable, Equatable {
    public var id: String
    public var matchers: [String]
    public var startsAt: Double
    public var endsAt: Double
    public var createdBy: String
    public var comment: String
    public var expiredAt: Double?
    /// The partner whose receivers it silences (its creator's); nil: every receiver (an operator's silence).
    public var partner: String?
    public init(
        id: String, matchers: [String], startsAt: Double, endsAt: Double, createdBy: String, comment: String,
        expiredAt: Double? = nil, partner: String? = nil
    ) {
        self.partner = partner
        self.id = id
        self.matchers = matchers
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.createdBy = createdBy
        self.comment = comment
        self.expiredAt = expiredAt
    }
    public func isActive(at t: Double) -> Bool { expiredAt == nil && startsAt <= t && t < endsAt }
    /// Whether it applies to a receiver of `partner`.
    public func covers(partner p: String) -> Bool { partner == nil || partner == p }
}

/// A receiver's rate-limit state: when its recent notifications went out, and the alerts waiting for its digest
/// ("and N more"), kept across restarts.
public struct RateState: Sendable, Equatable {
    public var receiver: String
    public var sent: [Double]
    public var digest: [Int64]
    /// On a store several nodes share: the row's version as read (0: no row), and in a commit the version it is
    /// written over (another node's write meanwhile makes the commit a conflict); nil elsewhere. Not in `==`.
    public var version: Int64?
    public init(receiver: String, sent: [Double], digest: [Int64], version: Int64? = nil) {
        self.receiver = receiver
        self.sent = sent
        self.digest = digest
        self.version = version
    }
    public static func == (a: RateState, b: RateState) -> Bool {
        a.receiver == b.receiver && a.sent == b.sent && a.digest == b.digest
    }
}

/// An API credential (SPEC §10): the token itself is shown once; only its SHA-256 is kept.
public struct TokenRecord: Sendable, Equatable {
    public var id: String
    public var principal: String
    public var hash: String
    public var createdAt: Double
    public var expiresAt: Double?
    public var revokedAt: Double?
    public var createdBy: String
    public init(
        id: String, principal: String, hash: String, createdAt: Double, expiresAt: Double?, revokedAt: Double? = nil,
        createdBy: String
    ) {
        self.id = id
        self.principal = principal
        self.hash = hash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.createdBy = createdBy
    }
    public func valid(at t: Double) -> Bool { revokedAt == nil && (expiresAt.map { t < $0 } ?? true) }
}

/// One atomic change: what a batch of input, a timer, or an operator's action did.
public struct Commit: Sendable {
    /// Inserted (`version` nil: there must be no alert with its id) or replaced by id, each only when the stored
    /// row is still at the copy's `version`; else the whole commit is refused with `StateError.conflict`.
    public var alerts: [AlertRecord] = []
    public var events: [EventDraft] = []
    public var outbox: [OutboxItem] = []
    public var notifyLog: [NotifyLogEntry] = []
    /// Inserted or replaced by id.
    public var silences: [Silence] = []
    /// The input positions this commit consumes up to.
    public var offsets: [(source: String, offset: Int64)] = []
    /// Replaced by receiver.
    public var rateStates: [RateState] = []
    /// When set, replaces every list handling (a load or reload of the lists).
    public var listHandlings: [String: JSONObject]?
    /// Inserted or replaced by id.
    public var tokens: [TokenRecord] = []
    /// Lists submitted through the API: new current versions, withdrawals (in order).
    public var listSubmissions: [ListSubmission] = []
    /// Escalations: each replaced by (alert key, route); then every escalation of the alert keys in
    /// `escalationsEnded` removed (applied after the replacements).
    public var escalations: [EscalationState] = []
    public var escalationsEnded: [String] = []
    /// Acknowledge links used (SPEC §11: each once): inserted; a nonce already there refuses the whole commit.
    public var usedAckLinks: [UsedAckLink] = []
    /// Records for the shared correlation feed (`SharedCorrelation`), appended in commit order.
    public var correlationFeed: [FeedRecord] = []
    /// When set, the commit holds only while the stored offset of `source` (0 when none) is `expected`: else it is
    /// refused as a conflict (`StateError.conflict`) — the correlator's fence.
    public var offsetGuard: (source: String, expected: Int64)?
    /// On a store several nodes share (`SharedAlerts`): who holds the alerts this commit opens or reopens — this
    /// node (it holds the dispatcher's lease) or the node that will (they are left unheld for it to gather). Alerts
    /// not named keep their holder.
    public var holders: [String: AlertHolder] = [:]
    /// On a store several nodes share: the commit holds only while this claim (the dispatcher's lease) is still the
    /// node's and running, else it is refused as a conflict — a dispatcher that lost its lease (paused past it)
    /// commits no notification decided before it noticed.
    public var fence: LaneClaim?

    public init() {}
    public var isEmpty: Bool {
        alerts.isEmpty && events.isEmpty && outbox.isEmpty && notifyLog.isEmpty && silences.isEmpty && offsets.isEmpty
            && rateStates.isEmpty && listHandlings == nil && tokens.isEmpty && listSubmissions.isEmpty
            && escalations.isEmpty && escalationsEnded.isEmpty && usedAckLinks.isEmpty && correlationFeed.isEmpty
    }
}

extension Commit {
    /// The one reading of `offsetGuard`, given the offset stored now (nil: none): a conflict when it moved on.
    public func checkOffsetGuard(stored: Int64?) throws(StateError) {
        if let g = offsetGuard, (stored ?? 0) != g.expected {
            throw .conflict("offset \(g.source) moved on from \(g.expected)")
        }
    }
}

/// One input record a node sends to the correlator: the line as read and the time it was ingested.
public struct FeedRecord: Sendable, Equatable {
    public var seq: Int64
    public var line: [UInt8]
    public var ingestTime: Double
    public init(seq: Int64 = 0, line: [UInt8], ingestTime: Double) {
        self.seq = seq
        self.line = line
        self.ingestTime = ingestTime
    }
}

/// Correlation across nodes (a store several nodes share): every node puts the records that feed a correlation
/// into one feed, in commit order (`Commit.correlationFeed`); one node at a time — the one holding the correlator's
/// lease (`SharedOutbox.claim` on `correlatorLane`) — reads the feed in order and keeps the windows, so that a
/// device's selectors that arrive at different nodes meet in one window and a correlation fires once. Its position
/// is an offset (`correlatorOffset`) committed with what the records made, fenced by `Commit.offsetGuard`.
public protocol SharedCorrelation {
    /// Feed records after `seq` (in order), at most `limit`, those ingested before `since` left out.
    func feed(after seq: Int64, since: Double, limit: Int) throws(StateError) -> [FeedRecord]
    /// Drops records ingested before `before` and at or below `seq` (read and past every window).
    func pruneFeed(through seq: Int64, before: Double) throws(StateError)
    /// The number of the feed's last record (0 when empty).
    func feedEnd() throws(StateError) -> Int64
}

/// Who groups and notifies an alert on a store several nodes share: one node at a time, the one holding the
/// dispatcher's lease (`AlertHolder.dispatcherLane`), so that the alerts of one group meet in one group whichever
/// node sighted them (Alertmanager's groups, formed once for the cluster).
public enum AlertHolder: Sendable, Equatable {
    /// This node holds the dispatcher's lease and the alert.
    case thisNode
    /// Left for the holder of the lease to gather (`SharedAlerts.gather`).
    case dispatcher

    /// The lease of the node that groups and notifies every alert (a lane no notification is queued on: no
    /// receiver has an empty name).
    public static let dispatcherLane = OutboxLane(receiver: "", integration: "dispatcher")
}

public enum CorrelationFeed {
    /// The lease the correlator holds (a lane no notification is queued on: no receiver has an empty name).
    public static let correlatorLane = OutboxLane(receiver: "", integration: "correlator")
    /// The offset of the feed consumed.
    public static let correlatorOffset = "correlation-feed"
}

/// An acknowledge link's single use: its nonce, for which alert and receiver, when.
public struct UsedAckLink: Sendable, Equatable {
    public var nonce: String
    public var alertID: Int64
    public var receiver: String
    public var usedAt: Double
    public init(nonce: String, alertID: Int64, receiver: String, usedAt: Double) {
        self.nonce = nonce
        self.alertID = alertID
        self.receiver = receiver
        self.usedAt = usedAt
    }
}

/// An alert's escalation along one route (SPEC §11): when it started — the first notification of the route's own
/// receivers, step 0 — and how many later steps are done, over every round. Kept while the alert is open (a step
/// is never run twice, also after a restart), removed when it resolves.
public struct EscalationState: Sendable, Equatable {
    public var key: String
    public var route: Int
    public var startedAt: Double
    public var done: Int
    public init(key: String, route: Int, startedAt: Double, done: Int) {
        self.key = key
        self.route = route
        self.startedAt = startedAt
        self.done = done
    }
}

/// One version of a list submitted through the API (SPEC §10): the bytes as submitted (its version is their
/// lower-case hex SHA-256), who submitted it and when, and when the list was withdrawn while this was current.
public struct SubmittedList: Sendable, Equatable {
    public var owner: String
    public var list: String
    public var version: String
    /// The YAML as submitted (empty where read without content).
    public var yaml: [UInt8]
    /// Its length in bytes.
    public var size: Int
    public var submittedAt: Double
    public var submittedBy: String
    public var withdrawnAt: Double?
    public init(
        owner: String, list: String, version: String, yaml: [UInt8], size: Int? = nil, submittedAt: Double,
        submittedBy: String, withdrawnAt: Double? = nil
    ) {
        self.owner = owner
        self.list = list
        self.version = version
        self.yaml = yaml
        self.size = size ?? yaml.count
        self.submittedAt = submittedAt
        self.submittedBy = submittedBy
        self.withdrawnAt = withdrawnAt
    }
}

/// A change to the submitted lists.
public enum ListSubmission: Sendable {
    /// A version stored (once per version: submitting a stored version again records who and when anew) and made
    /// the list's current one.
    case submit(SubmittedList)
    /// The list's current version withdrawn: the list stops matching (its versions stay readable).
    case withdraw(owner: String, list: String, at: Double)
}

/// A state store failure.
public struct StateError: Error, CustomStringConvertible, Sendable {
    private enum Kind: Sendable {
        case database(String)
        case record(String)
        case schema(String)
        case conflict(String)
    }
    private let kind: Kind
    /// The database failed (busy, locked, I/O, full): the same change may succeed later.
    public static func database(_ m: String) -> StateError { StateError(kind: .database(m)) }
    /// The change itself was refused (a constraint, a value too big): retrying it as it is cannot succeed.
    public static func record(_ m: String) -> StateError { StateError(kind: .record(m)) }
    public static func schema(_ m: String) -> StateError { StateError(kind: .schema(m)) }
    /// An alert in the commit was changed by another writer since it was read (its version moved on), or one
    /// to be inserted exists already: nothing was committed. Neither retrying as it is (it would conflict again)
    /// nor a fault of the change: the writer reads the alerts again and computes its change anew.
    public static func conflict(_ m: String) -> StateError { StateError(kind: .conflict(m)) }
    /// Whether the change itself was refused (see `record`), rather than the database failing.
    public var refusedChange: Bool {
        if case .record = kind { return true }
        return false
    }
    /// Whether the change was made from stale copies (see `conflict`).
    public var isConflict: Bool {
        if case .conflict = kind { return true }
        return false
    }
    public var description: String {
        switch kind {
        case .database(let m), .record(let m): "state database: \(m)"
        case .conflict(let m): "state database: conflict: \(m)"
        case .schema(let m): "state schema: \(m)"
        }
    }
}
