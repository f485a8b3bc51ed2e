import Foundation
import TriplineJSON

/// The in-memory state store: for tests and for runs that need no durability. Same behaviour as the SQLite
/// store, minus surviving the process.
public final class MemoryStateStore: StateStore, @unchecked Sendable {
    private let lock = NSLock()
    private var alertsByID: [Int64: AlertRecord] = [:]
    private var eventLog: [EventRecord] = []
    private var items: [Int64: OutboxItem] = [:]
    private var nextOutboxID: Int64 = 1
    private var nflog: [String: NotifyLogEntry] = [:]
    private var silenceByID: [String: Silence] = [:]
    private var offsets: [String: Int64] = [:]
    private var rates: [String: RateState] = [:]
    private var handlings: [String: JSONObject]?
    private var tokenByID: [String: TokenRecord] = [:]

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
                if let other = alertsByID.values.first(where: { $0.key == a.key && $0.id != a.id }) {
                    throw StateError.database("alert key \(a.key) already belongs to alert \(other.id)")
                }
            }
            for a in c.alerts { alertsByID[a.id] = a }
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
            if let h = c.listHandlings { handlings = h }
            for t in c.tokens { tokenByID[t.id] = t }
        }
    }

    public func alert(id: Int64) throws(StateError) -> AlertRecord? { try locked { alertsByID[id] } }
    public func alert(key: String) throws(StateError) -> AlertRecord? {
        try locked { alertsByID.values.first { $0.key == key } }
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

    public func finishAttempt(_ a: AttemptOutcome) throws(StateError) {
        try locked { () throws(StateError) in
            guard var o = items[a.outboxID] else { throw StateError.database("no outbox item \(a.outboxID)") }
            o.status = a.status
            o.attempts = a.attempts
            o.nextAttemptAt = a.nextAttemptAt
            o.lastError = a.error
            items[o.id] = o
            eventLog.append(EventRecord(seq: Int64(eventLog.count + 1), event: a.event))
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

    public func events(after seq: Int64, limit: Int) throws(StateError) -> [EventRecord] {
        try locked { Array(eventLog.filter { $0.seq > seq }.prefix(limit)) }
    }
}
