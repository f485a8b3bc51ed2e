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
    let refresh: @Sendable (OutboxItem) async -> OutboxItem
    let metrics: ServiceMetrics

    /// `Retry-After` and network deadlines are capped here (SPEC §6).
    public static let maxRetryAfter = 86_400.0

    public init(
        store: any StateStore, config: @escaping @Sendable () async -> AlertsConfig, logger: Logger,
        drainTimeout: Double, maxBackoff: Double = 6 * 3600, sinks: SinkRegistry = .standard,
        clock: @escaping WallClock = systemClock,
        refresh: @escaping @Sendable (OutboxItem) async -> OutboxItem = { $0 },
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
        func take(_ id: Int64) -> AttemptOutcome? {
            lock.lock()
            defer { lock.unlock() }
            return outcomes.removeValue(forKey: id)
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
                let lanes = ((try? store.dueLanes(now: now)) ?? []).filter {
                    !held($0) && !unrecorded.paused($0, now: now)
                }
                if lanes.isEmpty && busy.isEmpty && shutdownAt != nil { return }
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

    /// Delivers one lane's due items in order, until none is due, the lane is held, or the task is cancelled.
    func deliver(lane: OutboxLane, _ cfg: AlertsConfig) async {
        while !Task.isCancelled {
            let items = (try? store.dueOutbox(lane: lane, now: clock(), limit: 16)) ?? []
            if items.isEmpty { return }
            for item in items {
                if Task.isCancelled { return }
                if let pending = unrecorded.take(item.id) {
                    // Delivered before, its outcome not yet recorded: record it, do not send it again.
                    if !record(pending, lane: lane) { return }
                    continue
                }
                if await !deliver(item, cfg) { return }
            }
        }
    }

    /// Records an attempt's outcome; when the database refuses, keeps it for the lane's next turn and pauses the
    /// lane (false).
    func record(_ outcome: AttemptOutcome, lane: OutboxLane) -> Bool {
        do {
            try store.finishAttempt(outcome)
            return true
        } catch {
            logger.error(
                "outbox: cannot record the outcome of item \(outcome.outboxID) (\(error)); not sending it again")
            unrecorded.put(outcome, lane: lane, until: clock() + 1)
            return false
        }
    }

    /// One attempt; false when the lane must stop: the item waits for a retry (nothing overtakes it), the lane is
    /// held after a 410, or the outcome could not be recorded.
    func deliver(_ queued: OutboxItem, _ cfg: AlertsConfig) async -> Bool {
        let item = await refresh(queued)
        let now = clock()
        let nid = item.payload["notification_id"] ?? .null
        var detail = JSONObject([("outbox_id", .number(String(item.id))), ("notification_id", nid)])
        if !item.integration.isEmpty { detail.append("integration", .string(item.integration)) }
        detail.append("attempt", .number(String(item.attempts + 1)))
        guard let receiver = cfg.receiver(item.receiver) else {
            return finish(item, .dead, now: now, error: "receiver \(item.receiver) is no longer configured", detail)
        }
        let integrations: [Integration]
        if item.integration.isEmpty {
            integrations = receiver.integrations  // queued before lanes: all of the receiver's, in turn
        } else if let i = receiver.integration(item.integration) {
            integrations = [i]
        } else {
            return finish(
                item, .dead, now: now,
                error: "receiver \(item.receiver) has no \(item.integration) integration any more", detail)
        }
        if integrations.isEmpty {
            return finish(item, .dead, now: now, error: "receiver has no email, webhook or file configs", detail)
        }
        let started = ContinuousClock.now
        func took() -> Double {
            let d = ContinuousClock.now - started
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        do {
            for i in integrations { try await sinks.deliver(item, to: receiver, integration: i, config: cfg) }
            metrics.attempt(receiver: receiver.name, outcome: "delivered", seconds: took())
            return finish(item, .delivered, now: clock(), error: nil, detail)
        } catch {
            if Task.isCancelled { return false }  // shutdown: the outcome is unknown, the item stays as it was
            let outcome = error.gone ? "disabled" : error.permanent ? "dead" : "failed"
            metrics.attempt(receiver: receiver.name, outcome: outcome, seconds: took())
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
                _ = finish(item, .pending, now: clock(), error: error.message, detail, retryAfter: 0)
                return false
            }
            let recorded = finish(
                item, error.permanent ? .dead : .pending, now: clock(), error: error.message, detail,
                retryAfter: error.retryAfter)
            // A dead letter lets the lane go on; an item waiting for its retry holds it (first in, first out).
            return recorded && error.permanent
        }
    }

    /// Records the attempt; false when it could not be recorded (the lane pauses, see `record`).
    func finish(
        _ item: OutboxItem, _ status: OutboxStatus, now: Double, error: String?, _ detail: JSONObject,
        retryAfter: Double? = nil
    ) -> Bool {
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
        return record(
            AttemptOutcome(
                outboxID: item.id, status: status, attempts: attempts, nextAttemptAt: next, error: error, event: ev),
            lane: item.lane)
    }
}
