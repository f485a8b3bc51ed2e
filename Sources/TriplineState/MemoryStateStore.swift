import Foundation
import TriplineJSON

/// The in-memory state store: for tests and for runs that need no durability. Same behaviour as the SQLite
/// store, minus surviving the process.
public final class MemoryStateStore: StateStore, @unchecked Sendable {
    private let lock = NSLock()
    private var alertsByID: [Int64: AlertRecord] = [:]
    /// Alert ids by key (a key belongs to one alert).
    private var idByKey: [String: Int64] = [:]
    private var eventLog: [EventRecord] = []
    private var items: [Int64: OutboxItem] = [:]
    private var nextOutboxID: Int64 = 1
    private var nflog: [String: NotifyLogEntry] = [:]
    private var silenceByID: [String: Silence] = [:]
    private var offsets: [String: Int64] = [:]
    private var rates: [String: RateState] = [:]
    private var escalationByID: [String: EscalationState] = [:]
    private var usedLinks: [String: UsedAckLink] = [:]
    private var handlings: [String: JSONObject]?
    private var tokenByID: [String: TokenRecord] = [:]
    /// Submitted list versions and the order in which each became current.
    private var submitted: [(seq: Int, list: SubmittedList)] = []
    private var submittedSeq = 0

    public init() {}

    private func locked<T>(_ body: () throws(StateError) -> T) throws(StateError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public func migrate() throws(StateError) {}

    public func commit(_ c: Commit) throws(StateError) {
        try locked { () throws(StateError) in
            for a in c.alerts {
                // Another writer's alert for the same thing: a conflict, as in the durable stores.
                if let other = idByKey[a.key], other != a.id {
                    throw StateError.conflict("alert \(a.key) was created by another writer")
                }
            }
            // Each alert only over the version it was read at (as the SQLite store), checked in order against what
            // the commit itself wrote before it, all before anything changes.
            var versions: [Int64: Int64] = [:]
            for a in c.alerts {
                let stored = versions[a.id] ?? alertsByID[a.id]?.version
                guard a.version == stored else {
                    throw StateError.conflict(Self.conflictMessage(a, stored: stored))
                }
                versions[a.id] = a.version.map { $0 + 1 } ?? 0
            }
            if let g = c.offsetGuard { try c.checkOffsetGuard(stored: offsets[g.source]) }
            for u in c.usedAckLinks where usedLinks[u.nonce] != nil {
                throw StateError.record("acknowledge link \(u.nonce) was used already")
            }
            for u in c.usedAckLinks { usedLinks[u.nonce] = u }
            for var a in c.alerts {
                a.version = versions[a.id]
                alertsByID[a.id] = a
                idByKey[a.key] = a.id
            }
            for e in c.events { eventLog.append(EventRecord(seq: Int64(eventLog.count + 1), event: e)) }
            for var o in c.outbox {
                o.id = nextOutboxID
                nextOutboxID += 1
                items[o.id] = o
            }
            for n in c.notifyLog { nflog[n.receiver + "\u{0}" + n.key] = n }
            for s in c.silences { silenceByID[s.id] = s }
            for (source, offset) in c.offsets { offsets[source] = offset }
            for r in c.rateStates { rates[r.receiver] = r }
            for e in c.escalations { escalationByID[e.key + "\u{0}" + String(e.route)] = e }
            if !c.escalationsEnded.isEmpty {
                let ended = Set(c.escalationsEnded)
                escalationByID = escalationByID.filter { !ended.contains($0.value.key) }
            }
            if let h = c.listHandlings { handlings = h }
            for t in c.tokens { tokenByID[t.id] = t }
            for change in c.listSubmissions {
                switch change {
                case .submit(let l):
                    submittedSeq += 1
                    submitted.removeAll {
                        $0.list.owner == l.owner && $0.list.list == l.list && $0.list.version == l.version
                    }
                    submitted.append((submittedSeq, l))
                case .withdraw(let owner, let list, let at):
                    if let i = submitted.lastIndex(where: { $0.list.owner == owner && $0.list.list == list }) {
                        submitted[i].list.withdrawnAt = at
                    }
                }
            }
        }
    }

    static func conflictMessage(_ a: AlertRecord, stored: Int64?) -> String {
        guard let read = a.version else { return "alert \(a.id) (\(a.key)) is stored already" }
        guard let stored else { return "alert \(a.id) (\(a.key)) is not stored" }
        return "alert \(a.id) (\(a.key)) changed since it was read (version \(read), now \(stored))"
    }

    public func submittedLists(content: Bool) throws(StateError) -> [SubmittedList] {
        try locked {
            var current: [String: SubmittedList] = [:]
            var order: [String] = []
            for (_, l) in submitted {
                let key = l.owner + "/" + l.list
                order.removeAll { $0 == key }
                order.append(key)
                var v = l
                if !content { v.yaml = [] }
                current[key] = v
            }
            return order.compactMap { current[$0] }
        }
    }

    public func submittedVersions(owner: String, list: String) throws(StateError) -> [SubmittedList] {
        try locked {
            submitted.filter { $0.list.owner == owner && $0.list.list == list }.map {
                var v = $0.list
                v.yaml = []
                return v
            }
        }
    }

    public func submittedList(owner: String, list: String, version: String) throws(StateError) -> SubmittedList? {
        try locked {
            submitted.first { $0.list.owner == owner && $0.list.list == list && $0.list.version == version }?.list
        }
    }

    public func alert(id: Int64) throws(StateError) -> AlertRecord? { try locked { alertsByID[id] } }
    public func alert(key: String) throws(StateError) -> AlertRecord? {
        try locked { idByKey[key].flatMap { alertsByID[$0] } }
    }

    public func alerts(states: Set<AlertState>?, limit: Int) throws(StateError) -> [AlertRecord] {
        try locked {
            Array(
                alertsByID.values.filter { states?.contains($0.state) ?? true }
                    .sorted { ($0.updatedAt, $0.id) > ($1.updatedAt, $1.id) }.prefix(limit))
        }
    }

    public func alerts(idBelow: Int64?, limit: Int) throws(StateError) -> [AlertRecord] {
        try locked {
            Array(
                alertsByID.values.filter { a in idBelow.map { a.id < $0 } ?? true }.sorted { $0.id > $1.id }
                    .prefix(limit))
        }
    }

    public func alerts(updatedSince since: Double, limit: Int) throws(StateError) -> [AlertRecord] {
        try locked {
            Array(
                alertsByID.values.filter { $0.updatedAt >= since }.sorted {
                    ($0.updatedAt, $0.id) < ($1.updatedAt, $1.id)
                }
                .prefix(limit))
        }
    }

    public func alerts(states: Set<AlertState>, lastSeenBefore before: Double, limit: Int) throws(StateError)
        -> [AlertRecord]
    {
        try locked {
            Array(
                alertsByID.values.filter { states.contains($0.state) && $0.lastSeen < before }
                    .sorted { ($0.lastSeen, $0.id) < ($1.lastSeen, $1.id) }.prefix(limit))
        }
    }

    public func maxAlertID() throws(StateError) -> Int64 { try locked { alertsByID.keys.max() ?? 0 } }
    public func notifyLog() throws(StateError) -> [NotifyLogEntry] {
        try locked { nflog.values.sorted { ($0.receiver, $0.key) < ($1.receiver, $1.key) } }
    }

    public func dueOutbox(now: Double, limit: Int) throws(StateError) -> [OutboxItem] {
        try locked {
            Array(
                items.values.filter { $0.status == .pending && $0.nextAttemptAt <= now }
                    .sorted { ($1.priorityRank, $0.createdAt, $0.id) < ($0.priorityRank, $1.createdAt, $1.id) }
                    .prefix(limit))
        }
    }

    public func dueLanes(now: Double) throws(StateError) -> [OutboxLane] {
        try locked {
            var oldest: [OutboxLane: OutboxItem] = [:]
            for i in items.values where i.status == .pending {
                if let o = oldest[i.lane], o.id < i.id { continue }
                oldest[i.lane] = i
            }
            return oldest.values.filter { $0.nextAttemptAt <= now }.sorted { $0.id < $1.id }.map(\.lane)
        }
    }

    public func dueOutbox(lane: OutboxLane, now: Double, limit: Int) throws(StateError) -> [OutboxItem] {
        try locked {
            Array(
                items.values.filter { $0.lane == lane && $0.status == .pending }.sorted { $0.id < $1.id }
                    .prefix(limit).prefix { $0.nextAttemptAt <= now })
        }
    }

    public func outbox(status: OutboxStatus?, limit: Int) throws(StateError) -> [OutboxItem] {
        try locked {
            Array(items.values.filter { status == nil || $0.status == status }.sorted { $0.id < $1.id }.prefix(limit))
        }
    }

    public func pendingOutboxCount() throws(StateError) -> Int {
        try locked { items.values.filter { $0.status == .pending }.count }
    }

    public func metricCounts() throws(StateError) -> MetricCounts {
        try locked {
            var m = MetricCounts()
            for a in alertsByID.values { m.alerts[.init(a.state.rawValue, a.priority), default: 0] += 1 }
            for o in items.values { m.outbox[.init(o.receiver, o.status.rawValue), default: 0] += 1 }
            return m
        }
    }

    public func finishAttempts(_ outcomes: [AttemptOutcome]) throws(StateError) {
        try locked { () throws(StateError) in
            for a in outcomes where items[a.outboxID] == nil {
                throw StateError.database("no outbox item \(a.outboxID)")
            }
            for a in outcomes {
                guard var o = items[a.outboxID] else { continue }
                o.status = a.status
                o.attempts = a.attempts
                o.nextAttemptAt = a.nextAttemptAt
                o.lastError = a.error
                items[o.id] = o
                eventLog.append(EventRecord(seq: Int64(eventLog.count + 1), event: a.event))
            }
        }
    }

    public func retry(outboxID: Int64, event: EventDraft) throws(StateError) -> Bool {
        try locked {
            guard var o = items[outboxID], o.status == .dead else { return false }
            o.status = .pending
            o.nextAttemptAt = event.at
            items[o.id] = o
            eventLog.append(EventRecord(seq: Int64(eventLog.count + 1), event: event))
            return true
        }
    }

    public func silences(includeExpired: Bool) throws(StateError) -> [Silence] {
        try locked {
            silenceByID.values.filter { includeExpired || $0.expiredAt == nil }.sorted { $0.startsAt < $1.startsAt }
        }
    }

    public func offset(source: String) throws(StateError) -> Int64? { try locked { offsets[source] } }

    public func listHandlings() throws(StateError) -> [String: JSONObject]? { try locked { handlings } }

    public func token(hash: String) throws(StateError) -> TokenRecord? {
        try locked { tokenByID.values.first { $0.hash == hash } }
    }

    public func tokens() throws(StateError) -> [TokenRecord] {
        try locked { tokenByID.values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) } }
    }

    public func rateStates() throws(StateError) -> [RateState] {
        try locked { rates.values.sorted { $0.receiver < $1.receiver } }
    }

    public func usedAckLink(nonce: String) throws(StateError) -> UsedAckLink? { try locked { usedLinks[nonce] } }

    public func escalations() throws(StateError) -> [EscalationState] {
        try locked { escalationByID.values.sorted { ($0.key, $0.route) < ($1.key, $1.route) } }
    }

    public func escalations(key: String) throws(StateError) -> [EscalationState] {
        try locked { escalationByID.values.filter { $0.key == key }.sorted { $0.route < $1.route } }
    }

    public func events(after seq: Int64, limit: Int) throws(StateError) -> [EventRecord] {
        try locked { Array(eventLog.filter { $0.seq > seq }.prefix(limit)) }
    }
}
