import Foundation
import Logging
import ServiceLifecycle
import TriplineAlerts
import TriplineJSON
import TriplineSinks
import TriplineState

/// Takes due outbox items to their sinks. Each lane — one integration of one receiver: its mail, its webhook, its
/// log file — is delivered by a task of its own, in order (a resolve never overtakes its trigger) and with its own
/// retries, so a receiver or an integration that is slow, silent, disabled or failing never delays another
/// (SPEC §6 "Delivery isolation"). Retries back off exponentially with jitter (`Retry-After` honoured, capped at
/// 24 h); permanent failures go to dead letters; a 410 holds the lane until an operator enables the receiver, at
/// no cost while nothing changes. Every attempt is an audit record. On shutdown it keeps delivering what is due
/// until the drain timeout, then cancels what is still in flight (kept for the next run, same ids).
public struct DeliveryService: Service {
    let store: any StateStore
    let config: @Sendable () async -> AlertsConfig
    let logger: Logger
    let drainTimeout: Double
    let maxBackoff: Double
    let sinks: SinkRegistry
    let clock: WallClock
    /// The item as it may go out now (rendered again when a list became stricter since it was queued).
    /// Nil: the item's entitlement cannot be judged now (the state database unreadable); it is not sent yet.
    let refresh: @Sendable (OutboxItem) async -> OutboxItem?
    let metrics: ServiceMetrics

    /// `Retry-After` and network deadlines are capped here (SPEC §6).
    public static let maxRetryAfter = 86_400.0

    public init(
        store: any StateStore, config: @escaping @Sendable () async -> AlertsConfig, logger: Logger,
        drainTimeout: Double, maxBackoff: Double = 6 * 3600, sinks: SinkRegistry = .standard,
        clock: @escaping WallClock = systemClock,
        refresh: @escaping @Sendable (OutboxItem) async -> OutboxItem? = { $0 },
        metrics: ServiceMetrics = ServiceMetrics()
    ) {
        self.metrics = metrics
        self.refresh = refresh
        self.store = store
        self.config = config
        self.logger = logger
        self.drainTimeout = drainTimeout
        self.maxBackoff = maxBackoff
        self.sinks = sinks
        self.clock = clock
    }

    /// 2^attempts seconds from 1 s up to `cap` (6 h by default), times a jitter in [0.5, 1.5): with the outbox
    /// kept until delivered, a schedule that goes on for days.
    public static func backoff(attempts: Int, cap: Double = 6 * 3600) -> Double {
        let base = min(pow(2, Double(min(max(0, attempts - 1), 62))), cap)
        return base * Double.random(in: 0.5..<1.5)
    }

    /// Outcomes that could not be recorded (the database failing): the delivery happened, so the item is not sent
    /// again — its outcome is recorded first when the lane comes back, and the lane waits a little meanwhile.
    final class Unrecorded: @unchecked Sendable {
        private let lock = NSLock()
        private var outcomes: [Int64: AttemptOutcome] = [:]
        private var pausedUntil: [OutboxLane: Double] = [:]
        func put(_ o: AttemptOutcome, lane: OutboxLane, until: Double) {
            lock.lock()
            outcomes[o.outboxID] = o
            pausedUntil[lane] = until
            lock.unlock()
        }
        func has(_ id: Int64) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            return outcomes[id] != nil
        }
        func take(_ id: Int64) -> AttemptOutcome? {
            lock.lock()
            defer { lock.unlock() }
            return outcomes.removeValue(forKey: id)
        }
        func pause(_ lane: OutboxLane, until: Double) {
            lock.lock()
            pausedUntil[lane] = until
            lock.unlock()
        }
        private var unjudged = Set<OutboxLane>()
        /// True the first time in a row a lane's item cannot be judged (it is logged once, not every second).
        func warnUnjudged(_ lane: OutboxLane) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            return unjudged.insert(lane).inserted
        }
        func judged(_ lane: OutboxLane) {
            lock.lock()
            unjudged.remove(lane)
            lock.unlock()
        }
        /// No outcome waits to be recorded.
        var isEmpty: Bool {
            lock.lock()
            defer { lock.unlock() }
            return outcomes.isEmpty
        }
        func paused(_ lane: OutboxLane, now: Double) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            return (pausedUntil[lane] ?? 0) > now
        }
    }
    let unrecorded = Unrecorded()

    /// The lanes being delivered now.
    final class Busy: @unchecked Sendable {
        private let lock = NSLock()
        private var lanes = Set<OutboxLane>()
        func claim(_ l: OutboxLane) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            return lanes.insert(l).inserted
        }
        func release(_ l: OutboxLane) {
            lock.lock()
            lanes.remove(l)
            lock.unlock()
        }
        var isEmpty: Bool {
            lock.lock()
            defer { lock.unlock() }
            return lanes.isEmpty
        }
    }

    public func run() async throws {
        let busy = Busy()
        var shutdownAt: Double?
        let wake = store as? any OutboxWakeups
        var seen = -1
        var asked = -Double.infinity
        var idleBefore = true
        await withDiscardingTaskGroup { group in
            while true {
                if Task.isCancelled {  // another service failed: the group is going down now
                    group.cancelAll()
                    return
                }
                if Task.isShuttingDownGracefully && shutdownAt == nil { shutdownAt = clock() }
                if let s = shutdownAt, clock() - s > drainTimeout {
                    if !busy.isEmpty || !((try? store.dueLanes(now: clock())) ?? []).isEmpty {
                        logger.warning("shutdown: notifications left in the outbox for the next run (same ids)")
                    }
                    group.cancelAll()
                    return
                }
                let now = clock()
                if let wake {
                    // Told of new work by the store (another node's commit, a lane released), or once a second for
                    // retries coming due and lanes paused here: the database is not asked every few milliseconds.
                    let g = wake.outboxGeneration
                    // (`abs`: a clock set back must not hold the next look off until it has caught up.)
                    if g == seen && abs(now - asked) < 1 && busy.isEmpty == idleBefore && shutdownAt == nil {
                        try? await Task.sleep(nanoseconds: 5_000_000)
                        continue
                    }
                    seen = g
                    asked = now
                    idleBefore = busy.isEmpty
                }
                let lanes = ((try? store.dueLanes(now: now)) ?? []).filter {
                    !held($0) && !unrecorded.paused($0, now: now)
                }
                // Not while an outcome waits to be recorded (its lane paused): a node that stopped with it unrecorded
                // would leave the item pending, and another node would send it again.
                if lanes.isEmpty && busy.isEmpty && shutdownAt != nil && unrecorded.isEmpty { return }
                if !lanes.isEmpty {
                    let cfg = await config()
                    for lane in lanes where busy.claim(lane) {
                        group.addTask {
                            await deliver(lane: lane, cfg)
                            busy.release(lane)
                        }
                    }
                }
                try? await Task.sleep(nanoseconds: 5_000_000)
            }
        }
    }

    /// A lane disabled by a 410 (or its receiver, from before lanes): its items wait, without attempts or records.
    func held(_ lane: OutboxLane) -> Bool {
        (try? store.offset(source: DeliveryFailure.disabledKey(lane))) == 1
            || (try? store.offset(source: DeliveryFailure.disabledKey(lane.receiver))) == 1
    }

    /// Delivers one lane's due items in order, until none is due, the lane is held, or the task is cancelled; as many
    /// at once as the lane's sink takes (`Sink.batchLimit`: a log file takes a run of them in one write, one flush
    /// and one commit of their outcomes).
    func deliver(lane: OutboxLane, _ cfg: AlertsConfig) async {
        // On a store several nodes share, the lane is delivered by the node holding its lease: taken here (or left to
        // the node delivering it), renewed before each send, given up when nothing is due.
        let shared = store as? any SharedOutbox
        var claim: LaneClaim?
        if let shared {
            guard let c = (try? shared.claim(lane: lane)) ?? nil else {
                unrecorded.pause(lane, until: clock() + 0.25)  // not asked again at every turn of the loop
                return
            }
            claim = c
        }
        defer { if let shared, let claim { try? shared.release(claim) } }
        let limit = batchLimit(lane, cfg)
        while !Task.isCancelled {
            let items = (try? store.dueOutbox(lane: lane, now: clock(), limit: max(16, limit))) ?? []
            if items.isEmpty { return }
            var i = 0
            while i < items.count {
                if Task.isCancelled { return }
                if var pending = unrecorded.take(items[i].id) {
                    // Attempted before, its outcome not yet recorded: record it, do not send it again. One waiting
                    // for its retry (or held by a 410) still holds the lane: nothing overtakes it.
                    pending.fence = claim
                    if !record([pending], lane: lane) { return }
                    if pending.status == .pending { return }
                    i += 1
                    continue
                }
                if let shared {
                    // Fencing: still this node's lane (a node paused past its lease finds it taken, sends nothing).
                    guard let c = (try? shared.claim(lane: lane)) ?? nil else {
                        claim = nil
                        logger.info("outbox lane \(lane) is delivered by another node now")
                        return
                    }
                    claim = c
                }
                var j = i + 1
                while j < items.count && j - i < limit && !unrecorded.has(items[j].id) { j += 1 }
                let (taken, goOn) = await deliver(Array(items[i..<j]), cfg, fence: claim)
                if !goOn { return }
                i += taken
            }
        }
    }

    /// How many items the lane's sink takes at once (one for a lane from before lanes: all of its receiver's
    /// integrations in turn).
    func batchLimit(_ lane: OutboxLane, _ cfg: AlertsConfig) -> Int {
        guard !lane.integration.isEmpty, let i = cfg.receiver(lane.receiver)?.integration(lane.integration) else {
            return 1
        }
        return sinks.batchLimit(i)
    }

    /// Records attempts' outcomes in one transaction; when the database refuses, keeps them for the lane's next turn
    /// and pauses the lane (false).
    func record(_ outcomes: [AttemptOutcome], lane: OutboxLane) -> Bool {
        if outcomes.isEmpty { return true }
        do {
            try store.finishAttempts(outcomes)
            return true
        } catch {
            let ids = outcomes.map { String($0.outboxID) }.joined(separator: ", ")
            if error.isConflict {
                // The lane's lease ran out while they were sent and another node holds it now: it sends them
                // again, under the same ids; these outcomes are not this node's to record.
                logger.warning("outbox: item(s) \(ids) sent, but \(error); the lane's new holder sends them again")
                unrecorded.pause(lane, until: clock() + 1)
                return false
            }
            logger.error("outbox: cannot record the outcome of item(s) \(ids) (\(error)); not sending them again")
            for o in outcomes { unrecorded.put(o, lane: lane, until: clock() + 1) }
            return false
        }
    }

    /// One attempt at a run of one lane's items: how many of them were taken (delivered, or failed for good or for
    /// now), and whether the lane goes on: not when an item waits for a retry (nothing overtakes it), the lane is
    /// held after a 410, or the outcomes could not be recorded.
    func deliver(_ queued: [OutboxItem], _ cfg: AlertsConfig, fence: LaneClaim? = nil) async -> (
        taken: Int, goOn: Bool
    ) {
        var items: [OutboxItem] = []
        for q in queued {
            guard let r = await refresh(q) else { break }  // the batch ends before an item not to be sent yet
            items.append(r)
        }
        let now = clock()
        let lane = queued[0].lane
        if items.isEmpty {
            // Not an attempt (nothing was sent): no record; the lane waits a second, told once per episode.
            unrecorded.pause(lane, until: now + 1)
            if unrecorded.warnUnjudged(lane) {
                logger.warning(
                    "delivery to \(lane) waits: entitlement cannot be judged now (the state database cannot be read)")
            }
            return (0, false)
        }
        unrecorded.judged(lane)
        func all(_ error: String) -> (Int, Bool) {
            let outcomes = items.map { outcome($0, .dead, now: now, error: error, fence: fence) }
            return (items.count, record(outcomes, lane: lane))
        }
        guard let receiver = cfg.receiver(lane.receiver) else {
            return all("receiver \(lane.receiver) is no longer configured")
        }
        let integrations: [Integration]
        if lane.integration.isEmpty {
            integrations = receiver.integrations  // queued before lanes: all of the receiver's, in turn
        } else if let i = receiver.integration(lane.integration) {
            integrations = [i]
        } else {
            return all("receiver \(lane.receiver) has no \(lane.integration) integration any more")
        }
        if integrations.isEmpty { return all("receiver has no email, webhook or file configs") }
        let started = ContinuousClock.now
        func took() -> Double {
            let d = ContinuousClock.now - started
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        var result = BatchDelivery(delivered: items.count, failure: nil)
        if integrations.count == 1 {
            result = await sinks.deliver(batch: items, to: receiver, integration: integrations[0], config: cfg)
        } else {
            for i in integrations {  // one item (batchLimit)
                do throws(DeliveryFailure) {
                    try await sinks.deliver(items[0], to: receiver, integration: i, config: cfg)
                } catch {
                    result = BatchDelivery(delivered: 0, failure: error)
                    break
                }
            }
        }
        let seconds = took()
        let done = clock()
        var outcomes: [AttemptOutcome] = []
        for item in items.prefix(result.delivered) {
            metrics.attempt(receiver: receiver.name, outcome: "delivered", seconds: seconds)
            outcomes.append(outcome(item, .delivered, now: done, error: nil, fence: fence))
        }
        guard let error = result.failure, result.delivered < items.count else {
            return (result.delivered, record(outcomes, lane: lane))
        }
        // Shutdown: the failed item's outcome is unknown, it stays as it was.
        if Task.isCancelled {
            _ = record(outcomes, lane: lane)
            return (result.delivered, false)
        }
        let item = items[result.delivered]
        let kind = error.gone ? "disabled" : error.permanent ? "dead" : "failed"
        metrics.attempt(receiver: receiver.name, outcome: kind, seconds: seconds)
        if error.gone {
            var c = Commit()
            c.offsets = [(DeliveryFailure.disabledKey(item.lane), 1)]
            c.events = [
                EventDraft(
                    at: clock(), kind: "receiver_disabled", receiver: receiver.name, reason: error.message,
                    detail: JSONObject([("integration", .string(item.integration))]))
            ]
            try? store.commit(c)
            logger.warning("receiver \(item.lane) disabled (410 Gone); its notifications are held until enabled")
            outcomes.append(outcome(item, .pending, now: clock(), error: error.message, retryAfter: 0, fence: fence))
            _ = record(outcomes, lane: lane)
            return (result.delivered + 1, false)
        }
        outcomes.append(
            outcome(
                item, error.permanent ? .dead : .pending, now: clock(), error: error.message,
                retryAfter: error.retryAfter, fence: fence))
        let recorded = record(outcomes, lane: lane)
        // A dead letter lets the lane go on; an item waiting for its retry holds it (first in, first out).
        return (result.delivered + 1, recorded && error.permanent)
    }

    /// An attempt's outcome and its audit event.
    func outcome(
        _ item: OutboxItem, _ status: OutboxStatus, now: Double, error: String?, retryAfter: Double? = nil,
        fence: LaneClaim? = nil
    ) -> AttemptOutcome {
        let nid = item.payload["notification_id"] ?? .null
        var detail = JSONObject([("outbox_id", .number(String(item.id))), ("notification_id", nid)])
        if !item.integration.isEmpty { detail.append("integration", .string(item.integration)) }
        detail.append("attempt", .number(String(item.attempts + 1)))
        let attempts = item.attempts + 1
        var wait = Self.backoff(attempts: attempts, cap: maxBackoff)
        if let r = retryAfter, !r.isNaN, r >= 0 { wait = min(r, Self.maxRetryAfter) }  // 1e309 is 24 h, not never
        let next = status == .pending ? now + wait : now
        let kind =
            switch status {
            case .delivered: "delivered"
            case .dead: "dead_letter"
            case .pending: "delivery_failed"
            }
        let ev = EventDraft(at: now, kind: kind, receiver: item.receiver, reason: error, detail: detail)
        if let error { logger.warning("delivery to \(item.lane) \(kind): \(error)") }
        return AttemptOutcome(
            outboxID: item.id, status: status, attempts: attempts, nextAttemptAt: next, error: error, event: ev,
            fence: fence)
    }
}
