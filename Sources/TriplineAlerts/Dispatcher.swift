import Foundation
import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineState
import TriplineWatchlists

/// Hits in, notifications out (SPEC §6). Folds sightings into open alerts by dedup key, routes alerts through the
/// tree (plus jurisdiction and originator receivers), gathers them in aggregation groups per (route, receiver,
/// group labels), and on each group's timer writes one notification per receiver to the outbox — rendered for
/// that receiver's partner. Every suppression (dedup, silence, acknowledgement, inhibition, rate limit) is an event.
///
/// The notification log (last state each receiver was told of each alert) lives in the store, so after a crash
/// whatever was not yet notified is found again and sent once.
///
/// The dispatcher computes; its caller commits. Between `begin()` and `end()` every change to its memory is
/// journalled (the first old value of each key), so that when the caller's commit fails `rollback()` puts back
/// exactly what was there before — the memory never runs ahead of the database.
public final class Dispatcher {
    public private(set) var config: AlertsConfig
    private var renderer: Renderer
    public let store: any StateStore
    private var nextID: Int64
    /// Ids reserved for this dispatcher when the store is shared (`SharedAlerts`); unused there otherwise.
    private var reservedIDs: Range<Int64> = 0..<0
    /// The store when several nodes share it: this dispatcher notifies the alerts it opened or adopted only.
    private let shared: (any SharedAlerts)?
    /// Alerts adopted from a node that stopped, not yet queued (journalled: a tick whose commit fails leaves them to
    /// the next).
    private var adopted: [AlertRecord] = []
    /// Alerts adopted since `begin()` (the store gave them to this node at once): queued again after a rollback.
    private var adoptedInBatch: [AlertRecord] = []
    private var lastAdoption = -Double.infinity
    /// Several nodes: this node's claim on the dispatcher's lease (`AlertHolder.dispatcherLane`) — while it holds
    /// it, it groups and notifies every alert; other nodes leave the alerts they open for it.
    private var lease: LaneClaim?
    /// This node lost the lease and still holds alerts it has not left to the dispatcher (retried on each tick).
    private var leaving = false
    /// End of input: the lease given up and not asked for again.
    private var stopping = false
    /// Escalations that came with gathered alerts (kept until a commit: a rolled-back tick gathers from here again).
    private var gatheredEscalations: [String: [EscalationState]] = [:]
    /// Alerts this node opened and left for the dispatcher (what end of input waits for; nil past `leftLimit`).
    private var left: Set<String>? = []
    static let leftLimit = 100_000
    private var nflog: [String: NotifyLogEntry] = [:]
    private var groups: [String: Group] = [:]
    /// Group timers, earliest first (stale entries are skipped when popped).
    private var timers = TimerHeap()
    /// Active silences with their matchers compiled once per load.
    private var silences: [(silence: Silence, matchers: [LabelMatcher])] = []
    private var sent: [String: [Double]] = [:]
    private var digest: [String: [Int64]] = [:]
    private var lastSync = -Double.infinity
    private var lastResolveScan = -Double.infinity
    private var lastChanges: Int64?
    private var inhibition: InhibitionIndex
    private var journal: Journal?
    /// Receivers whose rate-limit state changed since it was last put in a commit.
    private var ratesChanged = Set<String>()
    /// Several nodes: the version of each rate-limited receiver's state as last read (0: none stored), written over
    /// by this node's commits (another node's write in between makes them a conflict, decided again).
    private var rateVersions: [String: Int64] = [:]
    /// Escalations (SPEC §11) by "alert key NUL route identity", their next steps' times, and the routes by
    /// identity (`Route.identities`) and the other way round.
    private var escalations: [String: EscalationState] = [:]
    private var escalationTimers = TimerHeap()
    private var routesByIndex: [Int: Route] = [:]
    private var identityOf: [ObjectIdentifier: Int] = [:]
    /// Indexes of the routes with escalation steps, and of routes that had some before a reconfiguration (their
    /// escalations in progress end with their alerts).
    private var escalatingRoutes: [Int] = []
    /// Heartbeats (SPEC §11): when a matching selector was last seen, and whether the silence alert is firing —
    /// in the store's offsets (`hb-seen:KEY` in milliseconds, `hb-firing:KEY` 0, 1 firing, 2 firing and a selector
    /// seen since); `started` stands for "last seen" of one never seen; `heartbeatsDirty` are seen times not yet in
    /// a commit. A firing heartbeat resolves only on a selector seen after it fired (`heartbeatResumed`), never on
    /// the clock alone (a clock stepped back, or a reload with a longer `every`).
    private var heartbeatSeen: [String: Double] = [:]
    private var heartbeatFiring: [String: Bool] = [:]
    /// The last-seen time a heartbeat fired at (ms in the store): a later one means its selectors came back, seen at
    /// any node (several nodes: the node that saw it may not have known it was firing).
    private var heartbeatFiredSeen: [String: Double] = [:]
    private var heartbeatResumed = Set<String>()
    /// For a last-seen time ahead of the clock (stepped back): the first tick behind it, which the silence counts from.
    private var heartbeatBehindSince: [String: Double] = [:]
    /// Heartbeats firing when a reload dropped them (removed, or their field or pattern changed): resolved at the next
    /// tick, so that their receiver's incident does not stay open.
    private var heartbeatsRemoved: [Heartbeat] = []
    private var heartbeatsDirty = Set<String>()
    private var started: Double
    /// When the watchdog last went out (SPEC §11), kept in the store's offsets (milliseconds) across restarts.
    private var watchdogAt: Double?
    /// When a watchdog last went out on a clock behind `watchdogAt` (a clock stepped back): from there the next is
    /// due `every` later on that clock — so a clock stepped back never silences it, and one swinging back and forth
    /// sends at most twice per `every`, not at every tick.
    private var watchdogBehindAt: Double?
    public static let watchdogKey = "watchdog"

    struct Group {
        var route: Route
        var receiver: String
        var labels: JSONObject
        /// Alerts in the group that are not resolved (for repeats).
        var keys: Set<String>
        /// Alerts enqueued since the last flush, in order: the only ones a flush reads, unless repeats are due.
        var pending: [String]
        var pendingSet: Set<String>
        var next: Double
        var nextRepeat: Double
        /// When the group was last flushed: a new alert in an idle group waits at most `group_interval` from it.
        var lastFlush = -Double.infinity
        /// Highest priority enqueued: due groups flush highest first, so rate limits keep the important ones.
        var rank: Int
    }

    /// The first old value of everything changed since `begin()`.
    struct Journal {
        var nextID: Int64
        var adopted: [AlertRecord] = []
        var lastSync: Double
        var lastResolveScan: Double
        var lastChanges: Int64?
        var silences: [(silence: Silence, matchers: [LabelMatcher])]
        var groups: [String: Group?] = [:]
        var nflog: [String: NotifyLogEntry?] = [:]
        var sent: [String: [Double]?] = [:]
        var digest: [String: [Int64]?] = [:]
        var escalations: [String: EscalationState?] = [:]
        var watchdogAt: Double?
        var watchdogBehindAt: Double?
        var heartbeatSeen: [String: Double] = [:]
        var heartbeatFiring: [String: Bool] = [:]
        var heartbeatFiredSeen: [String: Double] = [:]
        var heartbeatResumed = Set<String>()
        var heartbeatsRemoved: [Heartbeat] = []
        var heartbeatsDirty = Set<String>()
    }

    /// The store key that commands bump when an operator changes an alert or a silence from another process.
    public static let changesKey = "operator-changes"

    public init(config: AlertsConfig, store: any StateStore, now: Double) throws(StateError) {
        self.config = config
        started = now
        renderer = Renderer(config: config, handlings: try store.listHandlings())
        self.store = store
        shared = store as? any SharedAlerts
        nextID = try store.maxAlertID() + 1
        for n in try store.notifyLog() { nflog[n.receiver + "\u{0}" + n.key] = n }
        silences = Self.compiled(try store.silences(includeExpired: false))
        for r in try store.rateStates() {
            sent[r.receiver] = r.sent
            digest[r.receiver] = r.digest
        }
        inhibition = InhibitionIndex(config.inhibitRules)
        routesByIndex = Self.routes(config.route)
        identityOf = Dictionary(
            routesByIndex.map { (ObjectIdentifier($0.value), $0.key) }, uniquingKeysWith: { a, _ in a })
        // Several nodes: a starting node holds no alert yet; the escalations of the alerts it adopts come with them.
        if shared == nil { for e in try store.escalations() { escalations[Self.escalationID(e.key, e.route)] = e } }
        scheduleEscalations()
        // Recovery: every open or recently changed alert some receiver has not been told of goes back to its group.
        // Several nodes: a node (re)starting is a new node, and the alerts of the one it was are adopted when that
        // one's heartbeat has run out (`SharedAlerts`), by one node; none is queued again here.
        for a in try store.alerts(states: nil, limit: Int.max) {
            if shared == nil { enqueue(a, now: now, recovering: true) }
            inhibition.update(a)
        }
        try shared?.heartbeat()
        lastChanges = try store.offset(source: Self.changesKey)
        watchdogAt = try store.offset(source: Self.watchdogKey).map { Double($0) / 1000 }
        try loadHeartbeats()
        lastSync = now
    }

    /// The heartbeats' last-seen times and states as stored (several nodes: the latest any node saw, and what the
    /// dispatcher's holder decided).
    private func loadHeartbeats() throws(StateError) {
        for h in config.heartbeats {
            if let ms = try store.offset(source: "hb-seen:" + h.key) {
                let t = Double(ms) / 1000
                heartbeatSeen[h.key] = shared == nil ? t : max(t, heartbeatSeen[h.key] ?? t)
            }
            let firing = try store.offset(source: "hb-firing:" + h.key) ?? 0
            heartbeatFiring[h.key] = firing != 0
            if let ms = try store.offset(source: "hb-fired:" + h.key) { heartbeatFiredSeen[h.key] = Double(ms) / 1000 }
            if firing == 2 { heartbeatResumed.insert(h.key) } else { heartbeatResumed.remove(h.key) }
        }
    }

    /// A new configuration (SIGHUP): routes and receivers may have changed; groups are rebuilt.
    public func reconfigure(_ c: AlertsConfig, now: Double) throws(StateError) {
        precondition(journal == nil, "reconfigure inside a batch")
        for h in config.heartbeats
        where heartbeatFiring[h.key] == true && !c.heartbeats.contains(where: { $0.key == h.key }) {
            heartbeatsRemoved.append(h)
            heartbeatFiring[h.key] = nil
            heartbeatResumed.remove(h.key)
        }
        // One dropped and put back before a tick resolved it (two reloads): it is firing still, nothing to resolve.
        heartbeatsRemoved.removeAll { h in c.heartbeats.contains { $0.key == h.key } }
        config = c
        renderer = Renderer(config: c, handlings: try store.listHandlings())
        groups = [:]
        timers = TimerHeap()
        inhibition = InhibitionIndex(c.inhibitRules)
        routesByIndex = Self.routes(c.route)
        identityOf = Dictionary(
            routesByIndex.map { (ObjectIdentifier($0.value), $0.key) }, uniquingKeysWith: { a, _ in a })
        scheduleEscalations()
        try loadHeartbeats()
        let all = try store.alerts(states: nil, limit: Int.max)
        // Several nodes: the groups are the dispatcher's (the lease holder's), of the alerts it holds.
        let mine = shared == nil ? nil : lease == nil ? Set<String>() : try owned(all.map(\.key))
        for a in all {
            if mine?.contains(a.key) ?? true { enqueue(a, now: now, recovering: true) }
            inhibition.update(a)
        }
    }

    /// The id of a new alert: counted on from the store's highest, or taken from a block the shared store reserved
    /// for this dispatcher (other nodes create alerts too). Ids of a rolled-back batch are counted again; a shared
    /// block's are not (a gap, never a reuse).
    private func newAlertID() throws(StateError) -> Int64 {
        if let shared {
            if reservedIDs.isEmpty { reservedIDs = try shared.reserveAlertIDs() }
            return reservedIDs.popFirst()!
        }
        defer { nextID += 1 }
        return nextID
    }

    // MARK: Batches

    /// Starts journalling: what changes from here can be taken back by `rollback()`.
    public func begin() {
        precondition(journal == nil, "begin inside a batch")
        adoptedInBatch = []
        journal = Journal(
            nextID: nextID, adopted: adopted, lastSync: lastSync, lastResolveScan: lastResolveScan,
            lastChanges: lastChanges,
            silences: silences, watchdogAt: watchdogAt, watchdogBehindAt: watchdogBehindAt,
            heartbeatSeen: heartbeatSeen, heartbeatFiring: heartbeatFiring, heartbeatFiredSeen: heartbeatFiredSeen,
            heartbeatResumed: heartbeatResumed, heartbeatsRemoved: heartbeatsRemoved,
            heartbeatsDirty: heartbeatsDirty)
    }

    /// The caller's commit of what this batch computed succeeded: `c` is now in the store.
    public func end(committed c: Commit) {
        journal = nil
        adoptedInBatch = []
        gatheredEscalations = [:]
        for (key, holder) in c.holders where holder == .dispatcher {
            left?.insert(key)
            if (left?.count ?? 0) > Self.leftLimit { left = nil }
        }
        for a in c.alerts {
            inhibition.update(a)
            if written.count >= Self.writtenLimit { written.removeAll(keepingCapacity: true) }
            written[a.id] = a
        }
    }

    /// The alerts this dispatcher committed last, by id (at most `writtenLimit`): what `refresh` judges a queued
    /// view by. Their protections — what decides entitlement — change only through this dispatcher's commits
    /// (operators change states and acks), so these copies are current for it.
    private var written: [Int64: AlertRecord] = [:]
    static let writtenLimit = 16_384

    /// The caller's commit failed: memory goes back to what it was at `begin()`.
    public func rollback() {
        guard let j = journal else { return }
        journal = nil
        lastAdoption = -.infinity  // several nodes: the lease asked for again at once (a fenced commit was refused)
        nextID = j.nextID
        adopted = j.adopted + adoptedInBatch
        adoptedInBatch = []
        lastSync = j.lastSync
        lastResolveScan = j.lastResolveScan
        lastChanges = j.lastChanges
        silences = j.silences
        watchdogAt = j.watchdogAt
        watchdogBehindAt = j.watchdogBehindAt
        heartbeatSeen = j.heartbeatSeen
        heartbeatFiring = j.heartbeatFiring
        heartbeatFiredSeen = j.heartbeatFiredSeen
        heartbeatResumed = j.heartbeatResumed
        heartbeatsRemoved = j.heartbeatsRemoved
        heartbeatsDirty = j.heartbeatsDirty
        for (k, v) in j.groups {
            groups[k] = v
            if let g = v { timers.push(g.next, k) }
        }
        for (k, v) in j.nflog { nflog[k] = v }
        for (k, v) in j.sent { sent[k] = v }
        for (k, v) in j.digest { digest[k] = v }
        for (k, v) in j.escalations {
            escalations[k] = v
            if let e = v, let due = dueTime(e) { escalationTimers.push(due, k) }
        }
        ratesChanged.formUnion(j.sent.keys)
        ratesChanged.formUnion(j.digest.keys)
    }

    private func setGroup(_ gid: String, _ g: Group?) {
        if journal != nil && journal!.groups.index(forKey: gid) == nil { journal!.groups[gid] = .some(groups[gid]) }
        if let g, g.next != groups[gid]?.next { timers.push(g.next, gid) }
        groups[gid] = g
    }

    /// Group `gid` removed from the table to be changed in place (its first old value journalled); the caller puts
    /// it back.
    private func takeGroup(_ gid: String) -> Group? {
        if journal != nil && journal!.groups.index(forKey: gid) == nil { journal!.groups[gid] = .some(groups[gid]) }
        return groups.removeValue(forKey: gid)
    }

    private func setNflog(_ k: String, _ n: NotifyLogEntry) {
        if journal != nil && journal!.nflog.index(forKey: k) == nil { journal!.nflog[k] = .some(nflog[k]) }
        nflog[k] = n
    }

    private func setSent(_ k: String, _ v: [Double]) {
        if journal != nil && journal!.sent.index(forKey: k) == nil { journal!.sent[k] = .some(sent[k]) }
        sent[k] = v
        ratesChanged.insert(k)
    }

    private func setDigest(_ k: String, _ v: [Int64]) {
        if journal != nil && journal!.digest.index(forKey: k) == nil { journal!.digest[k] = .some(digest[k]) }
        digest[k] = v
        ratesChanged.insert(k)
    }

    private func setEscalation(_ k: String, _ e: EscalationState?) {
        if journal != nil && journal!.escalations.index(forKey: k) == nil {
            journal!.escalations[k] = .some(escalations[k])
        }
        escalations[k] = e
    }

    /// The changed rate-limit states into the commit (so that a digest and a window survive a restart).
    private func persistRates(into c: inout Commit) {
        for r in ratesChanged.sorted() {
            c.rateStates.append(
                RateState(
                    receiver: r, sent: sent[r] ?? [], digest: digest[r] ?? [],
                    // Fenced only where a limit is shared (every notification counts into its receiver's window).
                    version: shared != nil && config.rateLimits.contains { $0.receiver == r }
                        ? rateVersions[r] ?? 0 : nil))
        }
        ratesChanged = []
    }

    /// Several nodes share each receiver's rate limit: its window and digest as the store has them now, read before
    /// this node decides what to send (a tick, a batch).
    private func refreshRates() throws(StateError) {
        guard shared != nil, !config.rateLimits.isEmpty else { return }
        let changed = ratesChanged  // what the store has is not a change to write back
        defer { ratesChanged = changed }
        var seen = Set<String>()
        for r in try store.rateStates() {
            seen.insert(r.receiver)
            if sent[r.receiver] != r.sent { setSent(r.receiver, r.sent) }
            if (digest[r.receiver] ?? []) != r.digest { setDigest(r.receiver, r.digest) }
            rateVersions[r.receiver] = r.version ?? 0
        }
        for l in config.rateLimits where !seen.contains(l.receiver) { rateVersions[l.receiver] = 0 }
    }

    // MARK: Identity and labels

    static func key(_ h: Hit) -> String {
        if let w = h.watchlist { return "wl:\(w.owner)/\(w.list)/\(w.ref)" }
        let r = h.rule!
        if let g = r.group, g.count > 0 {
            return "rule:\(r.id):" + g.map { $0.value.stringValue ?? "" }.joined(separator: "|")
        }
        return "rule:\(r.id):\(h.selector.value)"
    }

    static func labels(_ h: Hit) -> JSONObject {
        var l = JSONObject()
        l.append("priority", .string(h.priority.rawValue))
        l.append("kind", .string(h.kind.rawValue))
        if let w = h.watchlist {
            l.append("owner", .string(w.owner))
            l.append("list", .string(w.list))
        }
        if let r = h.rule { l.append("rule", .string(r.id)) }
        l.append("type", .string(h.selector.type.rawValue))
        if let c = h.selector.fields["country"]?.stringValue { l.append("country", .string(c)) }
        if let a = h.selector.fields["area"]?.stringValue { l.append("area", .string(a)) }
        if let s = h.selector.source?.objectValue {
            if let o = s["operation"]?.stringValue { l.append("operation", .string(o)) }
            if let i = s["item"]?.stringValue { l.append("item", .string(i)) }
        }
        return l
    }

    static func payload(_ h: Hit) -> JSONObject {
        var o = JSONObject()
        o.append("selector", .object(h.selector.json))
        if let w = h.watchlist { o.append("watchlist", .object(w.json)) }
        if let r = h.rule { o.append("rule", .object(r.json)) }
        let protections = (h.watchlist.map { [$0] } ?? h.basis).map { w -> JSONValue in
            var p = JSONObject()
            p.append("owner", .string(w.owner))
            p.append("list", .string(w.list))
            p.append("handling", w.handling.json)
            return .object(p)
        }
        o.append("protections", .array(protections))
        return o
    }

    /// `payload` with the protections of `other` added (each list once).
    static func mergingProtections(_ payload: JSONObject, _ other: JSONObject) -> JSONObject {
        var protections = payload["protections"]?.arrayValue ?? []
        func id(_ v: JSONValue) -> String {
            let o = v.objectValue
            return (o?["owner"]?.stringValue ?? "") + "/" + (o?["list"]?.stringValue ?? "") + "/"
                + JSONWriter.string(o?["handling"] ?? .null)
        }
        var seen = Set(protections.map(id))
        for p in other["protections"]?.arrayValue ?? [] where seen.insert(id(p)).inserted { protections.append(p) }
        var out = payload
        out["protections"] = .array(protections)
        return out
    }

    // MARK: Ingest

    /// Folds `hits` into alerts and queues them for their receivers; what changed goes into `c`.
    public func ingest(_ hits: [Hit], now: Double, into c: inout Commit) throws(StateError) {
        try refreshRates()
        for key in heartbeatsDirty.sorted() {
            if let t = heartbeatSeen[key] { c.offsets.append(("hb-seen:" + key, Int64((t * 1000).rounded(.down)))) }
            if heartbeatResumed.contains(key) { c.offsets.append(("hb-firing:" + key, 2)) }
        }
        heartbeatsDirty = []
        var batch: [String: AlertRecord] = [:]
        var order: [String] = []
        var opened = Set<String>()
        // The batch's alerts read at once (one round trip on a database server, not one per hit).
        let stored = try store.alerts(keys: hits.map(Self.key))
        for h in hits {
            let key = Self.key(h)
            let existing: AlertRecord?
            if let b = batch[key] { existing = b } else { existing = stored[key] }
            var a: AlertRecord
            if var e = existing, e.state != .resolved {
                e.count += 1
                e.lastSeen = now
                e.updatedAt = now
                if h.priority.rank > e.priorityRank {
                    e.priority = h.priority.rawValue
                    e.priorityRank = h.priority.rank
                    e.labels["priority"] = .string(h.priority.rawValue)
                }
                if let item = h.selector.source?.objectValue?["item"]?.stringValue, !e.sources.contains(item),
                    e.sources.count < 100
                {
                    e.sources.append(item)
                }
                // A later sighting may stand on lists the first did not (a rule alert whose value has since been
                // put on a red list): the alert takes the handling of every list behind any of its sightings.
                e.payload = Self.mergingProtections(e.payload, Self.payload(h))
                a = e
                c.events.append(
                    EventDraft(
                        at: now, kind: "suppressed", alertKey: key,
                        reason: e.acks.values.contains { $0.holds(at: now) } ? "acknowledged" : "dedup",
                        detail: JSONObject([
                            ("alert_id", .number(String(e.id))), ("selector", .string(h.id)),
                            ("count", .number(String(e.count))),
                        ])))
            } else {
                let item = h.selector.source?.objectValue?["item"]?.stringValue
                let id: Int64
                if let e = existing { id = e.id } else { id = try newAlertID() }
                a = AlertRecord(
                    id: id, key: key, kind: h.kind.rawValue, priority: h.priority.rawValue,
                    priorityRank: h.priority.rank, state: .firing, labels: Self.labels(h), firstSeen: now,
                    lastSeen: now, count: (existing?.count ?? 0) + 1, sources: item.map { [$0] } ?? [],
                    payload: Self.payload(h), updatedAt: now, version: existing?.version)
                opened.insert(key)
                // Fired again after it resolved: it escalates afresh from its next first notification — its
                // escalation ended when its receivers were told it resolved (`flush`). Not yet told (an operator's
                // resolution, and the alert seen again before a tick), for them it never stopped firing: no new
                // first notification comes, and its escalation goes on.
                c.events.append(
                    EventDraft(
                        at: now, kind: existing == nil ? "alert_opened" : "alert_reopened", alertKey: key,
                        detail: JSONObject([("alert_id", .number(String(a.id))), ("selector", .string(h.id))])))
            }
            if batch[key] == nil { order.append(key) }
            batch[key] = a
        }
        // Several nodes on one database: one node, the dispatcher's lease holder, groups and notifies every alert;
        // another opening one leaves it for that node to gather. A sighting folded into an alert another node holds
        // is counted here and notified there (if at all); the alert is notified once, not per node.
        let mine = shared == nil || lease != nil ? try owned(order.filter { !opened.contains($0) }) : []
        for key in order {
            let a = batch[key]!
            c.alerts.append(a)
            if shared != nil && opened.contains(key) {
                c.holders[key] = lease != nil ? .thisNode : .dispatcher
                if lease == nil { continue }
            }
            if shared != nil && !opened.contains(key) && !mine.contains(key) { continue }
            enqueue(a, now: now, recovering: false, events: &c.events)
        }
    }

    /// Several nodes: alerts taken (adopted or gathered) with what their receivers were told, to be held from this
    /// tick on (again after a rollback: `adopted` is journalled, their escalations kept until a commit).
    private func take(_ g: GatheredAlerts) {
        if g.alerts.isEmpty { return }
        for a in g.alerts {  // as read now: what `refresh` judges their queued views by
            if written.count >= Self.writtenLimit { written.removeAll(keepingCapacity: true) }
            written[a.id] = a
        }
        for n in g.notified { nflog[n.receiver + "\u{0}" + n.key] = n }
        for a in g.alerts { gatheredEscalations[a.key] = [] }
        for e in g.escalations { gatheredEscalations[e.key, default: []].append(e) }
        adopted += g.alerts
        adoptedInBatch += g.alerts
    }

    /// Several nodes: asks for the dispatcher's lease, or renews it. A node that lost it (stopped past it, or the
    /// database unreachable) leaves its open alerts for the node that holds it now, which gathers them with what
    /// their receivers were told; what this node still has queued for them is dropped at its flush (`owned`).
    private func lead(_ shared: any SharedAlerts) throws(StateError) {
        guard let lanes = store as? any SharedOutbox, !stopping else { return }
        let claim = try lanes.claim(lane: AlertHolder.dispatcherLane)
        if claim == nil && lease != nil {
            leaving = true
            // Its groups and escalations are the next holder's now (adopted from the database, with the steps done
            // meanwhile): kept here, they would come back stale if this node took the lease again.
            groups = [:]
            timers = TimerHeap()
            escalations = [:]
            escalationTimers = TimerHeap()
        }
        lease = claim
        if leaving && claim == nil {
            try shared.leaveAlerts()
            leaving = false
        }
    }

    /// Several nodes: whether this node holds the dispatcher's lease now (asked for at once).
    public func leads() throws(StateError) -> Bool {
        guard let shared else { return true }
        try lead(shared)
        return lease != nil
    }

    /// Several nodes, end of input: how many of the alerts this node left for the dispatcher it has not gathered
    /// yet (every ungathered alert when this node opened too many to follow).
    public func ungathered() throws(StateError) -> Int {
        guard let shared else { return 0 }
        return try shared.ungathered(keys: left.map { Array($0) })
    }

    /// Several nodes, end of input (after the last tick): the dispatcher's lease given up and not asked for again;
    /// this node's open alerts left for the node that takes it next (their repeats, escalations and resolution).
    public func stepDown() throws(StateError) {
        stopping = true
        guard let shared, let lanes = store as? any SharedOutbox, let claim = lease else { return }
        lease = nil
        try shared.leaveAlerts()
        try lanes.release(claim)
    }

    /// Which of `keys` this dispatcher's node holds (every key when the store is not shared).
    private func owned(_ keys: [String]) throws(StateError) -> Set<String> {
        guard let shared else { return Set(keys) }
        return try shared.owned(keys: keys)
    }

    /// An adopted alert goes into its groups even when its receivers were told of it already (its dead node told
    /// them): its repeats, acks and resolution are this node's to send now.
    private func hold(_ a: AlertRecord, now: Double) {
        enqueue(a, now: now, recovering: true)
        if a.state == .resolved { return }
        for (route, receiver) in targets(a) {
            let (gid, gl) = groupID(a, route: route, receiver: receiver)
            if groups[gid]?.keys.contains(a.key) == true { continue }
            let oldNext = groups[gid]?.next
            var g =
                takeGroup(gid)
                ?? Group(
                    route: route, receiver: receiver, labels: gl, keys: [], pending: [], pendingSet: [],
                    next: now + route.repeatInterval, nextRepeat: now + route.repeatInterval, rank: a.priorityRank)
            g.keys.insert(a.key)
            // As if just flushed (its dead node told them): a change waits at most `group_interval` from now.
            if !g.lastFlush.isFinite { g.lastFlush = now }
            if g.next != oldNext { timers.push(g.next, gid) }
            groups[gid] = g
        }
    }

    /// The group an alert joins on `route` for `receiver`: its id and its labels (the route's `group_by`).
    private func groupID(_ a: AlertRecord, route: Route, receiver: String) -> (id: String, labels: JSONObject) {
        var gl = JSONObject()
        var gid = "\(route.index)\u{0}\(receiver)\u{0}"
        if route.groupBy == ["..."] {
            // As Alertmanager's '...': no aggregation, a group per alert.
            gl = a.labels
            gid += a.key + "\u{0}"
        } else {
            for name in route.groupBy { gl.append(name, a.labels[name] ?? .string("")) }
        }
        return (gid + JSONWriter.string(.object(gl)), gl)
    }

    private func enqueue(_ a: AlertRecord, now: Double, recovering: Bool) {
        var ignored: [EventDraft] = []
        enqueue(a, now: now, recovering: recovering, events: &ignored)
    }

    /// The receivers an alert goes to (`AlertsConfig.targets`).
    func targets(_ a: AlertRecord) -> [(Route, String)] { config.targets(a) }

    private func enqueue(_ a: AlertRecord, now: Double, recovering: Bool, events: inout [EventDraft]) {
        for (route, receiver) in targets(a) {
            let last = nflog[receiver + "\u{0}" + a.key]
            // The state as this receiver's partner sees it (acknowledged by its partner, or not).
            let state = a.state(for: config.receiver(receiver)?.partner, at: now)
            if recovering && last?.state == state { continue }
            if !recovering, let last, last.state == state { continue }  // dedup: nothing new for this receiver
            let (gid, gl) = groupID(a, route: route, receiver: receiver)
            // Taken out of the table while it changes, so that its sets are changed in place, not copied per alert
            // (a group of 100,000 alerts made alert creation quadratic).
            let oldNext = groups[gid]?.next
            var g =
                takeGroup(gid)
                ?? Group(
                    route: route, receiver: receiver, labels: gl, keys: [], pending: [], pendingSet: [],
                    next: now + route.groupWait, nextRepeat: now + route.groupWait + route.repeatInterval,
                    rank: a.priorityRank)
            g.rank = max(g.rank, a.priorityRank)
            g.keys.insert(a.key)
            if g.pendingSet.insert(a.key).inserted { g.pending.append(a.key) }
            if g.lastFlush.isFinite { g.next = min(g.next, max(now, g.lastFlush + g.route.groupInterval)) }
            if g.next != oldNext { timers.push(g.next, gid) }
            groups[gid] = g
        }
    }

    // MARK: Timers

    /// Flushes due groups, resolves timed-out alerts, picks up operators' changes (acks, resolutions, silences
    /// made with the command line) and sends pending digests. `flushAll` ignores group timers (end of input).
    /// Everything it decides is in the returned commit, for the caller to make durable.
    public func tick(now: Double, flushAll: Bool = false) throws(StateError) -> Commit {
        var c = Commit()
        try refreshRates()
        if let shared, now - lastAdoption >= shared.heartbeatEvery || now < lastAdoption || flushAll {
            // Several nodes: this one is alive, and asks for (or renews) the dispatcher's lease. Its holder takes
            // the alerts of a node that stopped (as a restarted node recovers its own), each adopted by one node.
            lastAdoption = now
            try shared.heartbeat()
            try lead(shared)
            if lease != nil { take(try shared.adoptOrphans(limit: 1000)) }
        }
        // The alerts other nodes opened since the last tick, into this node's groups.
        if let shared, lease != nil { take(try shared.gather(limit: 10_000)) }
        for a in adopted {
            hold(a, now: now)
            // Its escalation goes on here, from the step its last node reached.
            // As stored, not as remembered (a stale step count another node ended or advanced is dropped) — here, so
            // that a tick rolled back and decided again does it again.
            if gatheredEscalations[a.key] != nil {
                for r in escalatingRoutes { setEscalation(Self.escalationID(a.key, r), nil) }
            }
            for e in gatheredEscalations[a.key] ?? [] {  // as stored now: the steps its last node did included
                let id = Self.escalationID(e.key, e.route)
                setEscalation(id, e)
                if let due = dueTime(e) { escalationTimers.push(due, id) }
            }
        }
        adopted = []  // back from the journal if this tick's commit fails
        if now - lastSync >= 1 || flushAll {
            silences = Self.compiled(try store.silences(includeExpired: false))
            // Several nodes: a heartbeat's selectors may arrive at any node; the dispatcher's holder judges it.
            if shared != nil && !config.heartbeats.isEmpty { try loadHeartbeats() }
            let changes = try store.offset(source: Self.changesKey)
            if changes != lastChanges || flushAll {
                // Another process (the command line) changed alerts: their new states go to their receivers.
                let changed = try store.alerts(updatedSince: lastSync - 2, limit: 100_000)
                let mine = try owned(changed.map(\.key))  // several nodes: the holder tells its receivers
                for a in changed {
                    if mine.contains(a.key) { enqueue(a, now: now, recovering: true) }
                    inhibition.update(a)
                }
                lastChanges = changes
            }
            lastSync = now
        }
        if now - lastResolveScan >= 10 || flushAll {
            lastResolveScan = now
            let stale = try store.alerts(
                states: [.firing, .acknowledged], lastSeenBefore: (now - config.resolveTimeout).nextUp, limit: 10_000)
            let mine = try owned(stale.map(\.key))  // several nodes: the holder resolves it
            for var a in stale where mine.contains(a.key) {
                a.state = .resolved
                a.updatedAt = now
                c.alerts.append(a)
                c.events.append(
                    EventDraft(
                        at: now, kind: "alert_resolved", alertKey: a.key, reason: "resolve_timeout",
                        detail: JSONObject([("alert_id", .number(String(a.id)))])))
                enqueue(a, now: now, recovering: false, events: &c.events)
            }
        }
        var due: [String]
        if flushAll {
            due = Array(groups.keys)
        } else {
            var seen = Set<String>()
            due = []
            while let (t, gid) = timers.peek(), t <= now {
                timers.pop()
                if let g = groups[gid], g.next == t, seen.insert(gid).inserted { due.append(gid) }
            }
        }
        due.sort { (groups[$0]!.rank, $1) > (groups[$1]!.rank, $0) }
        var fresh: [String: AlertRecord] = [:]
        for a in c.alerts { fresh[a.key] = a }
        do throws(StateError) {
            for gid in due { try flush(gid, now: now, fresh: fresh, into: &c) }
        } catch {
            // A store read failed: the popped timers go back (the caller rolls the rest back).
            for gid in due { if let g = groups[gid] { timers.push(g.next, gid) } }
            throw error
        }
        try escalate(now: now, fresh: fresh, into: &c)
        if shared == nil || lease != nil { heartbeats(now: now, into: &c) }
        if let w = config.watchdog, config.receiver(w.receiver) != nil, watchdogDue(now, every: w.every) {
            // Always firing: at start, then every `every`. No alert behind it, so nothing to silence or inhibit.
            if now >= (watchdogAt ?? -.infinity) {
                watchdogAt = now
                watchdogBehindAt = nil
                c.offsets.append((Self.watchdogKey, Int64((now * 1000).rounded(.down))))
            } else {
                watchdogBehindAt = now
            }
            queue(
                receiver: w.receiver, views: [], groupLabels: JSONObject([("alertname", .string("Watchdog"))]),
                status: "firing", now: now,
                extra: [("watchdog", .object(JSONObject([("every", .string(Self.durationText(w.every)))])))],
                into: &c)
        }
        for (receiver, ids) in digest where !ids.isEmpty && allowance(receiver, now: now) > 0 {
            queue(receiver: receiver, views: [], groupLabels: JSONObject(), status: "firing", now: now, into: &c)
        }
        persistRates(into: &c)
        // Several nodes: what the dispatcher decided holds only under its lease (refused, and decided again after
        // asking for the lease, when it ran out meanwhile).
        if shared != nil, let lease, !c.isEmpty { c.fence = lease }
        return c
    }

    /// A time in whole milliseconds (as offsets store it).
    static func millis(_ t: Double) -> Int64 { Int64((t * 1000).rounded(.down)) }

    /// The watchdog is due `every` after the last one; on a clock behind the last one (stepped back, or a stored time
    /// ahead of this clock after a restart), at once and then `every` after the last one sent on that clock.
    private func watchdogDue(_ now: Double, every: Double) -> Bool {
        guard let last = watchdogAt else { return true }
        if now >= last { return now - last >= every }
        guard let behind = watchdogBehindAt, behind <= now else { return true }
        return now - behind >= every
    }

    private func allowance(_ receiver: String, now: Double) -> Int {
        guard let limit = config.rateLimits.first(where: { $0.receiver == receiver }) else { return .max }
        let times = sent[receiver] ?? []
        let recent = times.filter { $0 > now - limit.per }
        if recent.count != times.count { setSent(receiver, recent) }
        return max(0, limit.max - recent.count)
    }

    /// `fresh`: alerts this tick changed and has not committed yet (they win over the store's copies).
    private func flush(_ gid: String, now: Double, fresh: [String: AlertRecord], into c: inout Commit)
        throws(StateError)
    {
        guard var g = groups[gid] else { return }
        guard let receiver = config.receiver(g.receiver) else {
            setGroup(gid, nil)
            return
        }
        var entries: [AlertRecord] = []
        var candidates = g.pending
        if now >= g.nextRepeat {
            candidates = Array(g.keys.union(g.pending)).sorted()
            g.nextRepeat = now + g.route.repeatInterval
        }
        g.pending = []
        g.pendingSet = []
        g.lastFlush = now
        // Nothing new waits: wake for the next repeat (a new alert pulls the time in, see `enqueue`).
        g.next = max(now + max(g.route.groupInterval, 0.05), g.nextRepeat)
        if let shared, !candidates.isEmpty {
            // Several nodes: only alerts still this node's. One adopted by another node while this one was stopped
            // (SIGSTOP, a lapsed heartbeat) is that node's to notify now; it leaves this node's group.
            let mine = try shared.owned(keys: candidates.filter { fresh[$0] == nil })
            let lost = candidates.filter { fresh[$0] == nil && !mine.contains($0) }
            if !lost.isEmpty {
                let gone = Set(lost)
                candidates.removeAll { gone.contains($0) }
                g.keys.subtract(gone)
            }
        }
        if candidates.isEmpty {
            setGroup(gid, g)
            return
        }
        let stored = try store.alerts(keys: candidates.filter { fresh[$0] == nil })
        for key in candidates {
            let found = fresh[key] ?? stored[key]
            guard var a = found else { continue }
            let nk = receiver.name + "\u{0}" + key
            let last = nflog[nk]
            // From here `a` is the alert as this receiver's partner sees it: acknowledged when its partner acked.
            a.state = a.state(for: receiver.partner, at: now)
            let changed = last?.state != a.state
            let repeatDue = a.state == .firing && last.map { now - $0.notifiedAt >= g.route.repeatInterval } ?? false
            if a.state == .resolved {
                g.keys.remove(key)
                endEscalations(key, now: now, reason: "resolved", into: &c)
            }
            if !changed && !repeatDue { continue }
            // Step 0 of the route's escalation: the alert's first notification decision for the route's own
            // receiver, on a route it matched (not a jurisdiction or originator copy), also when a silence, an
            // inhibition or a rate limit holds step 0 back — those are the receiving side's, not the others'.
            if a.state == .firing && receiver.name == g.route.receiver && !g.route.escalation.isEmpty
                && config.route.match(a.labels).contains(where: { $0 === g.route })
            {
                startEscalation(a, route: g.route, now: now, into: &c)
            }
            func suppress(_ reason: String, _ detail: [(String, JSONValue)] = []) {
                c.events.append(
                    EventDraft(
                        at: now, kind: "suppressed", alertKey: key, receiver: receiver.name, reason: reason,
                        detail: JSONObject([("alert_id", .number(String(a.id)))] + detail)))
            }
            if a.state == .resolved && !receiver.sendResolved {
                suppress("receiver does not send resolved notifications")
                record(receiver.name, a, now: now, into: &c)
                continue
            }
            if a.state == .acknowledged && last?.state == .acknowledged {
                suppress("acknowledged", [("by", .string(a.acks[receiver.partner]?.by ?? ""))])
                continue
            }
            // A partner's silence matches the labels as that partner sees them (handles where not entitled):
            // a silence must not become a way to probe another partner's list names.
            let seen = renderer.labels(a, access: renderer.access(a, partner: receiver.partner, sink: false))
            if a.state != .resolved,
                let s = silences.first(where: {
                    $0.silence.isActive(at: now) && $0.silence.covers(partner: receiver.partner)
                        && $0.matchers.matches($0.silence.partner == nil ? a.labels : seen)
                })
            {
                suppress("silence", [("silence", .string(s.silence.id))])
                record(receiver.name, a, now: now, into: &c)
                continue
            }
            if a.state == .firing, let source = inhibition.source(inhibiting: a) {
                suppress("inhibition", [("by_alert", .number(String(source)))])
                record(receiver.name, a, now: now, into: &c)
                continue
            }
            entries.append(a)
        }
        setGroup(gid, g.keys.isEmpty ? nil : g)
        if entries.isEmpty { return }
        entries.sort { ($0.priorityRank, $1.id) > ($1.priorityRank, $0.id) }
        let allowed = allowance(receiver.name, now: now)
        if entries.count > allowed {
            for a in entries[allowed...] {
                c.events.append(
                    EventDraft(
                        at: now, kind: "suppressed", alertKey: a.key, receiver: receiver.name, reason: "rate_limit",
                        detail: JSONObject([("alert_id", .number(String(a.id))), ("digest", .bool(true))])))
                setDigest(receiver.name, (digest[receiver.name] ?? []) + [a.id])
                record(receiver.name, a, now: now, into: &c)
            }
            entries = Array(entries.prefix(allowed))
        }
        if entries.isEmpty { return }
        let partner = receiver.partner
        var views: [(AlertRecord, JSONObject)] = []
        for a in entries {
            let v = renderer.view(a, access: renderer.access(a, partner: partner, sink: true))
            views.append((a, linked(v, a, receiver: receiver, now: now)))
            record(receiver.name, a, now: now, into: &c)
        }
        var groupLabels = JSONObject()
        if let first = views.first?.1["labels"]?.objectValue {
            for (k, _) in g.labels { groupLabels.append(k, first[k] ?? .string("")) }
        }
        if views.contains(where: { $0.1["notice"] != nil }) { groupLabels = JSONObject() }
        let status = entries.contains { $0.state != .resolved } ? "firing" : "resolved"
        queue(receiver: receiver.name, views: views, groupLabels: groupLabels, status: status, now: now, into: &c)
    }

    // MARK: Heartbeats (SPEC §11)

    /// A selector arrived: the heartbeats whose field matches are seen now (committed with the batch).
    public func observe(_ s: NormalizedSelector, now: Double) {
        guard !config.heartbeats.isEmpty else { return }
        for h in config.heartbeats where Self.values(of: h.path, in: s).contains(where: h.matches) {
            if heartbeatFiring[h.key] == true && heartbeatResumed.insert(h.key).inserted {
                heartbeatsDirty.insert(h.key)
            }
            guard heartbeatSeen[h.key] != now else { continue }
            heartbeatSeen[h.key] = now
            heartbeatsDirty.insert(h.key)
        }
    }

    /// The text values of a field of a selector (`source.item` and `context.*` walked; arrays give each element).
    static func values(of path: [String], in s: NormalizedSelector) -> [String] {
        switch path.first ?? "" {
        case "id": return [s.id]
        case "type": return [s.type.rawValue]
        case "value": return [s.value]
        case "raw": return [s.raw]
        default:
            var cur: JSONValue? = path.first == "source" ? s.source : s.context
            for k in path.dropFirst() { cur = cur?.objectValue?[k] }
            func texts(_ v: JSONValue?) -> [String] {
                switch v {
                case .string(let t)?: return [t]
                case .number(let n)?: return [n]
                case .bool(let b)?: return [b ? "true" : "false"]
                case .array(let a)?: return a.flatMap { texts($0) }
                default: return []
                }
            }
            return texts(cur)
        }
    }

    /// Fires a heartbeat's notification when its selectors have been silent for `every` (from service start for
    /// one never seen), once; resolves it when one arrives again. No alert record: its notifications and events.
    private func heartbeats(now: Double, into c: inout Commit) {
        // A clock stepped back behind the last selector (or the start): the silence counts from the first tick behind
        // it, so the heartbeat is not mute until the clock catches up; the last-seen time itself stays what it was.
        if started > now { started = now }
        for h in heartbeatsRemoved {
            c.offsets.append(("hb-firing:" + h.key, 0))
            guard config.receiver(h.receiver) != nil else { continue }
            let detail = JSONObject([
                ("field", .string(h.field)), ("match", .string(h.match)),
                ("every", .string(Self.durationText(h.every))), ("why", .string("removed from the configuration")),
            ])
            c.events.append(
                EventDraft(at: now, kind: "heartbeat_removed", alertKey: h.key, receiver: h.receiver, detail: detail))
            queue(
                receiver: h.receiver, views: [],
                groupLabels: JSONObject([("alertname", .string("Heartbeat")), ("heartbeat", .string(h.key))]),
                status: "resolved", now: now, extra: [("heartbeat", .object(detail))], into: &c)
        }
        heartbeatsRemoved = []
        for h in config.heartbeats where config.receiver(h.receiver) != nil {
            var since = heartbeatSeen[h.key] ?? started
            if since > now {
                since = min(heartbeatBehindSince[h.key] ?? now, now)
                heartbeatBehindSince[h.key] = since
            } else {
                heartbeatBehindSince[h.key] = nil
            }
            let silent = now - since >= h.every
            let firing = heartbeatFiring[h.key] ?? false
            // Fires when silent; resolves only on a selector seen since it fired (not on a restart, a clock stepped
            // back or a longer `every`), even when that selector is itself long past (the clock stepped forward).
            // In whole milliseconds, as stored (a holder's own last-seen time keeps its fraction).
            let seenSince =
                heartbeatFiredSeen[h.key].map { fired in
                    heartbeatSeen[h.key].map { Self.millis($0) > Self.millis(fired) } ?? false
                } ?? false
            let resumed = firing && (heartbeatResumed.contains(h.key) || seenSince)
            guard resumed || (!firing && silent) else { continue }
            heartbeatFiring[h.key] = !resumed
            heartbeatResumed.remove(h.key)
            c.offsets.append(("hb-firing:" + h.key, resumed ? 0 : 1))
            if !resumed {
                let at = heartbeatSeen[h.key] ?? -1
                heartbeatFiredSeen[h.key] = at
                c.offsets.append(("hb-fired:" + h.key, Int64((at * 1000).rounded(.down))))
            }
            var detail = JSONObject([
                ("field", .string(h.field)), ("match", .string(h.match)),
                ("every", .string(Self.durationText(h.every))),
            ])
            if let seen = heartbeatSeen[h.key] { detail.append("last_seen", .string(Renderer.time(seen))) }
            c.events.append(
                EventDraft(
                    at: now, kind: resumed ? "heartbeat_resumed" : "heartbeat_missed", alertKey: h.key,
                    receiver: h.receiver, detail: detail))
            queue(
                receiver: h.receiver, views: [],
                groupLabels: JSONObject([("alertname", .string("Heartbeat")), ("heartbeat", .string(h.key))]),
                status: resumed ? "resolved" : "firing", now: now, extra: [("heartbeat", .object(detail))], into: &c)
        }
    }

    // MARK: Escalation (SPEC §11)

    /// `90` → "90s", `900` → "15m", `3600` → "1h".
    static func durationText(_ s: Double) -> String {
        let n = Int(s)
        if Double(n) != s { return "\(s)s" }
        if n % 3600 == 0 { return "\(n / 3600)h" }
        if n % 60 == 0 { return "\(n / 60)m" }
        return "\(n)s"
    }

    static func escalationID(_ key: String, _ route: Int) -> String { key + "\u{0}" + String(route) }

    static func routes(_ root: Route) -> [Int: Route] {
        Dictionary(root.identities.map { ($0.identity, $0.route) }, uniquingKeysWith: { a, _ in a })
    }

    /// When escalation `e`'s next step is due; nil when its steps are done or its route is gone.
    func dueTime(_ e: EscalationState) -> Double? {
        guard let route = routesByIndex[e.route], let step = route.escalationStep(e.done) else { return nil }
        return e.startedAt + step.due
    }

    private func scheduleEscalations() {
        var routes = Set(routesByIndex.filter { !$0.value.escalation.isEmpty }.map(\.key))
        for e in escalations.values { routes.insert(e.route) }
        escalatingRoutes = routes.sorted()
        escalationTimers = TimerHeap()
        for (id, e) in escalations { if let due = dueTime(e) { escalationTimers.push(due, id) } }
    }

    private func startEscalation(_ a: AlertRecord, route: Route, now: Double, into c: inout Commit) {
        guard let identity = identityOf[ObjectIdentifier(route)] else { return }
        let id = Self.escalationID(a.key, identity)
        guard escalations[id] == nil else { return }
        let e = EscalationState(key: a.key, route: identity, startedAt: now, done: 0)
        setEscalation(id, e)
        c.escalations.append(e)
        if let due = dueTime(e) { escalationTimers.push(due, id) }
        c.events.append(
            EventDraft(
                at: now, kind: "escalation_started", alertKey: a.key, receiver: route.receiver,
                detail: JSONObject([
                    ("alert_id", .number(String(a.id))), ("route", .number(String(route.index))),
                    ("route_identity", .number(String(identity))), ("steps", .number(String(route.escalation.count))),
                    ("repeat", .number(String(route.escalationRepeat))),
                ])))
    }

    /// Every escalation of an alert ends (it resolved, or fired again and starts afresh).
    private func endEscalations(_ key: String, now: Double, reason: String, into c: inout Commit) {
        // By the routes that escalate (a few), not by scanning every escalation: this runs for each resolved alert.
        let ids = escalatingRoutes.map { Self.escalationID(key, $0) }.filter { escalations[$0] != nil }
        guard !ids.isEmpty else { return }
        for id in ids {
            c.events.append(
                EventDraft(
                    at: now, kind: "escalation_ended", alertKey: key, reason: reason,
                    detail: JSONObject([
                        ("route", .number(String(escalations[id]!.route))),
                        ("steps_done", .number(String(escalations[id]!.done))),
                    ])))
            setEscalation(id, nil)
        }
        c.escalationsEnded.append(key)
    }

    /// Runs the escalation steps that are due: each step notifies its receivers, but not those whose partner has
    /// acknowledged the alert (an ack stops that partner's steps only); silences, inhibition and rate limits of
    /// the receiving side apply as to any notification, `repeat_interval` does not. Each step is an event.
    private func escalate(now: Double, fresh: [String: AlertRecord], into c: inout Commit) throws(StateError) {
        // Two routes of one alert escalating alike (children inheriting a policy, both matched) page a step's
        // receiver once per tick, not once per route.
        var paged = Set<String>()
        while let (t, id) = escalationTimers.peek(), t <= now {
            escalationTimers.pop()
            guard var e = escalations[id], let route = routesByIndex[e.route], let step = route.escalationStep(e.done),
                e.startedAt + step.due == t
            else { continue }  // a stale timer
            var found = fresh[e.key]
            if found == nil {
                do { found = try store.alert(key: e.key) } catch {
                    escalationTimers.push(t, id)  // read again on the next tick
                    throw error
                }
            }
            guard let a = found, a.state != .resolved else {
                endEscalations(e.key, now: now, reason: "resolved", into: &c)
                continue
            }
            // Several nodes: an alert adopted away (this node was stopped past its heartbeat) escalates there.
            if fresh[e.key] == nil, try !owned([e.key]).contains(e.key) {
                setEscalation(id, nil)
                continue
            }
            var notified: [JSONValue] = []
            var skipped: [JSONValue] = []
            func suppress(_ name: String, _ reason: String, _ more: [(String, JSONValue)] = []) {
                c.events.append(
                    EventDraft(
                        at: now, kind: "suppressed", alertKey: a.key, receiver: name, reason: reason,
                        detail: JSONObject(
                            [("alert_id", .number(String(a.id)))] + more
                                + [("escalation_step", .number(String(step.index + 1)))])))
            }
            for name in step.step.receivers {
                guard let receiver = config.receiver(name) else {
                    skipped.append(.string(name))
                    suppress(name, "receiver removed")
                    continue
                }
                guard paged.insert(name + "\u{0}" + a.key).inserted else {
                    suppress(name, "dedup")
                    continue
                }
                if let ack = a.acks[receiver.partner], ack.holds(at: now) {
                    skipped.append(.string(name))
                    suppress(name, "acknowledged", [("by", .string(ack.by))])
                    continue
                }
                let detail = JSONObject([
                    ("step", .number(String(step.index + 1))), ("round", .number(String(step.round))),
                    ("of", .number(String(route.escalation.count))),
                ])
                if notify(a, escalating: receiver, detail: detail, now: now, into: &c) {
                    notified.append(.string(name))
                }
            }
            c.events.append(
                EventDraft(
                    at: now, kind: "escalation_step", alertKey: a.key,
                    detail: JSONObject([
                        ("alert_id", .number(String(a.id))), ("route", .number(String(route.index))),
                        ("route_identity", .number(String(e.route))),
                        ("step", .number(String(step.index + 1))), ("round", .number(String(step.round))),
                        ("notified", .array(notified)), ("acknowledged", .array(skipped)),
                    ])))
            e.done += 1
            setEscalation(id, e)
            c.escalations.append(e)
            if let due = dueTime(e) { escalationTimers.push(due, id) }
        }
    }

    /// One escalation notification of `a` to `receiver`, rendered for its partner; false when a silence,
    /// inhibition or the receiver's rate limit held it back (recorded as for any notification).
    private func notify(
        _ a: AlertRecord, escalating receiver: Receiver, detail: JSONObject, now: Double, into c: inout Commit
    ) -> Bool {
        var shown = a
        shown.state = a.state(for: receiver.partner, at: now)
        func suppress(_ reason: String, _ more: [(String, JSONValue)] = []) {
            c.events.append(
                EventDraft(
                    at: now, kind: "suppressed", alertKey: a.key, receiver: receiver.name, reason: reason,
                    detail: JSONObject([("alert_id", .number(String(a.id)))] + more + detail.members)))
        }
        let seen = renderer.labels(shown, access: renderer.access(shown, partner: receiver.partner, sink: false))
        if let s = silences.first(where: {
            $0.silence.isActive(at: now) && $0.silence.covers(partner: receiver.partner)
                && $0.matchers.matches($0.silence.partner == nil ? shown.labels : seen)
        }) {
            suppress("silence", [("silence", .string(s.silence.id))])
            return false
        }
        if let source = inhibition.source(inhibiting: shown) {
            suppress("inhibition", [("by_alert", .number(String(source)))])
            return false
        }
        if allowance(receiver.name, now: now) <= 0 {
            suppress("rate_limit", [("digest", .bool(true))])
            setDigest(receiver.name, (digest[receiver.name] ?? []) + [a.id])
            return false
        }
        let view = linked(
            renderer.view(shown, access: renderer.access(shown, partner: receiver.partner, sink: true)), shown,
            receiver: receiver, now: now)
        record(receiver.name, shown, now: now, into: &c)
        queue(
            receiver: receiver.name, views: [(shown, view)], groupLabels: JSONObject(), status: "firing", now: now,
            extra: [("escalation", .object(detail))], into: &c)
        return true
    }

    /// A firing alert's view with its acknowledge link for this receiver (SPEC §11), when links are configured:
    /// bound to the alert, the receiver and its partner, single-use, expiring.
    private func linked(_ v: JSONObject, _ a: AlertRecord, receiver: Receiver, now: Double) -> JSONObject {
        guard a.state == .firing, let links = config.ackLinks else { return v }
        var out = v
        out.append(
            "ack_url",
            .string(links.url(links.claim(alertID: a.id, receiver: receiver.name, partner: receiver.partner, now: now)))
        )
        return out
    }

    /// A silence whose matcher no longer parses never matches (it was validated when added).
    static func compiled(_ ss: [Silence]) -> [(silence: Silence, matchers: [LabelMatcher])] {
        ss.compactMap { s in
            let ms = s.matchers.compactMap { try? LabelMatcher($0) }
            return ms.count == s.matchers.count ? (s, ms) : nil
        }
    }

    private func record(_ receiver: String, _ a: AlertRecord, now: Double, into c: inout Commit) {
        let n = NotifyLogEntry(receiver: receiver, key: a.key, state: a.state, notifiedAt: now)
        setNflog(receiver + "\u{0}" + a.key, n)
        c.notifyLog.append(n)
    }

    /// One notification for `receiver`: an outbox item per integration (each its own lane and retries), resolved
    /// alerts left out for integrations that do not send them.
    private func queue(
        receiver: String, views: [(AlertRecord, JSONObject)], groupLabels: JSONObject, status: String, now: Double,
        extra: [(String, JSONValue)] = [], into c: inout Commit
    ) {
        let id = UUID().uuidString.lowercased()
        let more = digest[receiver]?.count ?? 0
        if more > 0 { setDigest(receiver, []) }
        setSent(receiver, (sent[receiver] ?? []) + [now])
        var integrations: [String] = []
        for integration in config.receiver(receiver)?.integrations ?? [] {
            let shown = integration.sendResolved ? views : views.filter { $0.0.state != .resolved }
            if shown.isEmpty && !views.isEmpty { continue }
            var p = JSONObject()
            p.append("notification_id", .string(id))
            p.append("receiver", .string(receiver))
            p.append(
                "status",
                .string(
                    views.isEmpty
                        ? status : shown.contains { $0.0.state != .resolved } || shown.isEmpty ? "firing" : status))
            p.append("at", .string(Renderer.time(now)))
            p.append("group_labels", .object(groupLabels))
            p.append("alerts", .array(shown.map { .object($0.1) }))
            for (k, v) in extra { p.append(k, v) }
            if more > 0 {
                p.append("more", .number(String(more)))
                p.append("digest", .string("and \(more) more (rate limit)"))
            }
            let rank = shown.map(\.0.priorityRank).max() ?? 0
            c.outbox.append(
                OutboxItem(
                    receiver: receiver, integration: integration.name, priorityRank: rank, createdAt: now,
                    nextAttemptAt: now, payload: p))
            integrations.append(integration.name)
        }
        c.events.append(
            EventDraft(
                at: now, kind: "notification_queued", receiver: receiver,
                detail: JSONObject([
                    ("notification_id", .string(id)),
                    ("alerts", .array(views.map { .number(String($0.0.id)) })),
                    ("states", .array(views.map { .string($0.0.state.rawValue) })),
                    ("more", .number(String(more))),
                    ("integrations", .array(integrations.map { .string($0) })),
                ])))
    }

    // MARK: Delivery

    /// An outbox item as it may go out *now* (SPEC §6: entitlement follows the lists' current handling, also for
    /// notifications already queued, dead, or held): each alert view that the receiver's partner may no longer
    /// see as it was rendered is rendered again, stricter; the ids stay. Nil when that cannot be judged now (an
    /// alert this dispatcher has not written and the state database cannot be read): not to be sent yet.
    public func refresh(_ item: OutboxItem) -> OutboxItem? {
        guard let receiver = config.receiver(item.receiver), var views = item.payload["alerts"]?.arrayValue else {
            return item
        }
        var changed = false
        func id(_ v: JSONValue) -> Int64? { v.objectValue?["alert_id"]?.doubleValue.map { Int64($0) } }
        // Those this dispatcher has not written (another node's, on a shared store) read at once.
        let read: [Int64: AlertRecord]
        do { read = try store.alerts(ids: views.compactMap(id).filter { written[$0] == nil }) } catch { return nil }
        for (i, v) in views.enumerated() {
            guard let o = v.objectValue, let id = id(v), let a = written[id] ?? read[id] else { continue }
            let now = renderer.access(a, partner: receiver.partner, sink: true)
            guard Renderer.strictness(now) > Renderer.strictness(Renderer.access(of: o)) else { continue }
            // Rendered again from the stored alert (an operator's change since is in it).
            var seen = (try? store.alert(id: id)) ?? a
            seen.state = o["state"]?.stringValue.flatMap(AlertState.init(rawValue:)) ?? a.state
            var fresh = renderer.view(seen, access: now)
            if let link = o["ack_url"] { fresh.append("ack_url", link) }  // the link made for it stays
            views[i] = .object(fresh)
            changed = true
        }
        guard changed else { return item }
        var out = item
        out.payload["alerts"] = .array(views)
        let groupKeys = item.payload["group_labels"]?.objectValue?.map(\.key) ?? []
        var group = JSONObject()
        if !views.contains(where: { $0.objectValue?["notice"] != nil }),
            let first = views.first?.objectValue?["labels"]?.objectValue
        {
            for k in groupKeys { group.append(k, first[k] ?? .string("")) }
        }
        out.payload["group_labels"] = .object(group)
        return out
    }

    // MARK: Operator actions

    /// The offset a command commits with an operator's change, so a running service picks it up.
    public static func changed(_ now: Double) -> (source: String, offset: Int64) {
        (changesKey, Int64(now * 1_000_000) &+ Int64.random(in: 0..<1000))
    }

    /// How many times an operator's action is made again on a fresh copy of its alert when the alert changed
    /// between the action's read and its commit (the pipeline folded a sighting into it meanwhile).
    public static let actAttempts = 10

    /// Acknowledge (for the principal's partner: `until` nil means until the alert resolves) or resolve (for
    /// everyone) an alert as a principal, recorded with the reason. Whether the principal may is the policy's
    /// decision, made before. The alert is read, changed and committed over the version read; when another writer
    /// changed it in between (`StateError.conflict`), it is read again and the action — its checks too — judged
    /// and made on the fresh copy, up to `actAttempts` times.
    public static func act(
        on id: Int64, state: AlertState, principal: Principal, reason: String, until: Double? = nil,
        via: [(String, JSONValue)] = [], usedLink: UsedAckLink? = nil, store: any StateStore, now: Double
    ) throws(AlertsError) -> AlertRecord {
        for _ in 0..<actAttempts {
            if let done = try attemptAct(
                on: id, state: state, principal: principal, reason: reason, until: until, via: via,
                usedLink: usedLink, store: store, now: now)
            {
                return done
            }
        }
        throw .state("alert \(id) kept changing while the action was made (\(actAttempts) attempts); try again")
    }

    /// One read, check and commit of an operator's action; nil when the alert changed since it was read.
    private static func attemptAct(
        on id: Int64, state: AlertState, principal: Principal, reason: String, until: Double?,
        via: [(String, JSONValue)], usedLink: UsedAckLink?, store: any StateStore, now: Double
    ) throws(AlertsError) -> AlertRecord? {
        let found: AlertRecord?
        do { found = try store.alert(id: id) } catch { throw .storage(error.description) }
        guard var a = found else { throw .notFound("no alert \(id)") }
        guard a.state != .resolved else { throw .state("alert \(id) is already resolved") }
        var detail = JSONObject([("alert_id", .number(String(id)))])
        if state == .acknowledged {
            if let ack = a.acks[principal.partner], ack.holds(at: now) {
                throw .state("alert \(id) is already acknowledged by \(principal.partner) (\(ack.by))")
            }
            a.acks[principal.partner] = Ack(by: principal.id, at: now, until: until)
            detail.append("partner", .string(principal.partner))
            if let until { detail.append("until", .string(Renderer.time(until))) }
        } else {
            a.state = .resolved
        }
        a.updatedAt = now
        var c = Commit()
        c.alerts = [a]
        // Several nodes: left for the dispatcher to gather and tell (also when the node holding it dies before it
        // has read the change).
        if store is any SharedAlerts { c.holders[a.key] = .dispatcher }
        c.events = [
            EventDraft(
                at: now, kind: state == .acknowledged ? "alert_acknowledged" : "alert_resolved", alertKey: a.key,
                principal: principal.id, reason: reason, detail: JSONObject(detail.members + via))
        ]
        c.offsets = [Self.changed(now)]
        if let usedLink { c.usedAckLinks = [usedLink] }
        do { try store.commit(c) } catch {
            if error.isConflict { return nil }
            if usedLink != nil && error.refusedChange { throw .state("this acknowledge link was used already") }
            throw .storage(error.description)
        }
        a.version = a.version.map { $0 + 1 }
        return a
    }

    /// Schema v4 moved acknowledgements to partners and scoped silences to theirs: alerts left `acknowledged`
    /// become firing with their acknowledging principal's partner's ack (the operating partner's when that
    /// principal is gone), and silences without a scope take their creator's partner (an admin's keep every
    /// receiver). What changed is returned for the caller to commit, each change audited.
    public static func migratePartnerScopes(
        store: any StateStore, config: AlertsConfig, operatorPartner: String, now: Double
    ) throws(StateError) -> Commit {
        var c = Commit()
        for var a in try store.alerts(states: [.acknowledged], limit: Int.max) {
            let by = a.ackedBy ?? "unknown"
            let partner = config.principal(by)?.partner ?? operatorPartner
            a.acks[partner] = Ack(by: by, at: a.updatedAt)
            a.state = .firing
            c.alerts.append(a)
            c.events.append(
                EventDraft(
                    at: now, kind: "ack_migrated", alertKey: a.key,
                    detail: JSONObject([("alert_id", .number(String(a.id))), ("partner", .string(partner))])))
        }
        for var s in try store.silences(includeExpired: false) where s.partner == nil {
            guard let p = config.principal(s.createdBy), p.role != .admin else { continue }
            s.partner = p.partner
            c.silences.append(s)
            c.events.append(
                EventDraft(
                    at: now, kind: "silence_scoped",
                    detail: JSONObject([("silence", .string(s.id)), ("partner", .string(p.partner))])))
        }
        return c
    }
}
