import Foundation
import Logging
import ServiceLifecycle
import TriplineAlerts
import TriplineAudit
import TriplineConfig
import TriplineIngest
import TriplineJSON
import TriplineSinks
import TriplineState
import TriplineStateSQLite
import UnixSignals

/// A flag the reading thread polls.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }
    var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }
}

/// Reads NDJSON from standard input or a followed file on a thread of its own, in batches, and hands each batch to
/// the pipeline; the next batch is read only when the previous one is committed and the outbox is under its bound
/// (backpressure: nothing is dropped, ingest slows down).
public struct IngestService: Service {
    public enum Input: Sendable {
        case standardInput
        case follow(String)
    }
    let input: Input
    let pipeline: Pipeline
    let store: any StateStore
    let logger: Logger
    let outboxBound: Int
    let drainTimeout: Double
    let batchLines = 512

    public init(
        input: Input, pipeline: Pipeline, store: any StateStore, logger: Logger, outboxBound: Int, drainTimeout: Double
    ) {
        self.input = input
        self.pipeline = pipeline
        self.store = store
        self.logger = logger
        self.outboxBound = outboxBound
        self.drainTimeout = drainTimeout
    }

    struct Batch: Sendable {
        var lines: [Pipeline.Line]
        var offset: Int64
        var lineNumber: Int
    }

    public func run() async throws {
        let source: String
        var path: String?
        var offset: Int64 = 0
        var line = 0
        switch input {
        case .standardInput:
            source = "stdin"
        case .follow(let p):
            source = "file:" + p
            path = p
            offset = try store.offset(source: source) ?? 0
            line = Int(try store.offset(source: source + "#line") ?? 0)
            _ = try LineReader(path: p, offset: offset, line: line)  // fail here, not in the thread
            if offset > 0 { logger.info("resuming \(p) at byte \(offset) (line \(line + 1))") }
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Batch.self, bufferingPolicy: .unbounded)
        let gate = DispatchSemaphore(value: 2)
        let stop = StopFlag()
        let follow: Bool
        if case .follow = input { follow = true } else { follow = false }
        let logger = self.logger
        let thread = Thread { [path, offset, line] in
            var reader: LineReader
            if let path {
                do { reader = try LineReader(path: path, offset: offset, line: line) } catch {
                    logger.error("ingest: \(error)")
                    continuation.finish()
                    return
                }
                reader.follow = true
            } else {
                reader = LineReader(fd: 0)
            }
            var lines: [Pipeline.Line] = []
            func send() {
                if lines.isEmpty { return }
                gate.wait()
                continuation.yield(Batch(lines: lines, offset: reader.position, lineNumber: reader.line))
                lines = []
            }
            while !stop.isStopped {
                let next: LineReader.Line?
                do { next = try reader.next() } catch {
                    continuation.finish()
                    return
                }
                guard let next else {
                    send()
                    if !follow { break }
                    usleep(5_000)
                    continue
                }
                switch next {
                case .record(let bytes, let n): lines.append(Pipeline.Line(bytes: Array(bytes), number: n))
                case .oversized(let n, let length):
                    lines.append(Pipeline.Line(bytes: Array("{\"oversized\": \(length)}".utf8), number: n))
                }
                if lines.count >= batchLines { send() }
            }
            continuation.finish()
        }
        thread.start()
        await withGracefulShutdownHandler {
            for await batch in stream {
                do {
                    while try store.pendingOutboxCount() > outboxBound && !Task.isShuttingDownGracefully {
                        try await Task.sleep(nanoseconds: 20_000_000)
                    }
                    try await pipeline.process(
                        batch.lines, source: source, offset: batch.offset, lineNumber: batch.lineNumber,
                        now: Date().timeIntervalSince1970)
                } catch {
                    logger.error("ingest: \(error)")
                }
                gate.signal()
                if Task.isShuttingDownGracefully { break }
            }
        } onGracefulShutdown: {
            stop.stop()
            gate.signal()
            gate.signal()
        }
        stop.stop()
        if Task.isShuttingDownGracefully { return }
        // End of standard input: send what is pending now, and wait for delivery (up to the drain timeout).
        do {
            try await pipeline.tick(now: Date().timeIntervalSince1970, flushAll: true)
            let deadline = Date().addingTimeInterval(drainTimeout)
            while try !store.dueOutbox(now: Date().timeIntervalSince1970 + drainTimeout, limit: 1).isEmpty {
                if Date() > deadline {
                    let left = try store.pendingOutboxCount()
                    logger.warning("end of input: \(left) notifications still in the outbox (kept for the next run)")
                    break
                }
                try await Task.sleep(nanoseconds: 10_000_000)
            }
        } catch {
            logger.error("end of input: \(error)")
        }
        let rejected = await pipeline.rejected
        let accepted = await pipeline.accepted
        let hits = await pipeline.hits
        logger.info("end of input: \(accepted) selectors, \(hits) hits, \(rejected) rejected lines")
    }
}

/// Timers: group waits and intervals, repeat intervals, resolve timeouts, operators' changes.
public struct TickService: Service {
    let pipeline: Pipeline
    let logger: Logger
    public init(pipeline: Pipeline, logger: Logger) {
        self.pipeline = pipeline
        self.logger = logger
    }
    public func run() async throws {
        while !Task.isShuttingDownGracefully {
            do { try await pipeline.tick(now: Date().timeIntervalSince1970) } catch {
                logger.error("timers: \(error)")
            }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }
}

/// Takes due outbox items, highest priority first, to their receivers' sinks; retries with exponential backoff
/// and jitter; permanent failures go to dead letters. Every attempt is an event. On shutdown it keeps delivering
/// what is due until the drain timeout.
public struct DeliveryService: Service {
    let store: any StateStore
    let config: @Sendable () async -> AlertsConfig
    let logger: Logger
    let drainTimeout: Double
    let maxBackoff: Double
    let fileSink = FileSink()
    let webhookSink = WebhookSink()
    let mailSink = MailSink()

    public init(
        store: any StateStore, config: @escaping @Sendable () async -> AlertsConfig, logger: Logger,
        drainTimeout: Double, maxBackoff: Double = 6 * 3600
    ) {
        self.store = store
        self.config = config
        self.logger = logger
        self.drainTimeout = drainTimeout
        self.maxBackoff = maxBackoff
    }

    /// 2^attempts seconds from 1 s up to `cap` (6 h by default), times a jitter in [0.5, 1.5): with the outbox
    /// kept until delivered, a schedule that goes on for days.
    public static func backoff(attempts: Int, cap: Double = 6 * 3600) -> Double {
        let base = min(pow(2, Double(max(0, attempts - 1))), cap)
        return base * Double.random(in: 0.5..<1.5)
    }

    public func run() async throws {
        var shutdownAt: Date?
        while true {
            if Task.isShuttingDownGracefully && shutdownAt == nil { shutdownAt = Date() }
            let now = Date().timeIntervalSince1970
            let due = (try? store.dueOutbox(now: now, limit: 64)) ?? []
            if due.isEmpty {
                if shutdownAt != nil { return }
                try? await Task.sleep(nanoseconds: 5_000_000)
                continue
            }
            if let s = shutdownAt, Date().timeIntervalSince(s) > drainTimeout {
                logger.warning("shutdown: \(due.count)+ notifications left in the outbox for the next run")
                return
            }
            let cfg = await config()
            // Receivers in parallel; each receiver's notifications in order (a resolve never overtakes its trigger).
            var byReceiver: [String: [OutboxItem]] = [:]
            var order: [String] = []
            for item in due {
                if byReceiver[item.receiver] == nil { order.append(item.receiver) }
                byReceiver[item.receiver, default: []].append(item)
            }
            await withTaskGroup(of: Void.self) { group in
                for r in order {
                    let items = byReceiver[r]!
                    group.addTask { for item in items { await deliver(item, cfg) } }
                }
            }
        }
    }

    func deliver(_ item: OutboxItem, _ cfg: AlertsConfig) async {
        let now = Date().timeIntervalSince1970
        let nid = item.payload["notification_id"] ?? .null
        var detail = JSONObject([("outbox_id", .number(String(item.id))), ("notification_id", nid)])
        detail.append("attempt", .number(String(item.attempts + 1)))
        guard let receiver = cfg.receiver(item.receiver) else {
            finish(item, .dead, now: now, error: "receiver \(item.receiver) is no longer configured", detail)
            return
        }
        if (try? store.offset(source: DeliveryFailure.disabledKey(receiver.name))) == 1 {
            // Disabled after a 410: held until `tripline receivers enable` (no attempt, so no event).
            try? store.finishAttempt(
                AttemptOutcome(
                    outboxID: item.id, status: .pending, attempts: item.attempts, nextAttemptAt: now + 2,
                    error: "receiver disabled",
                    event: EventDraft(at: now, kind: "delivery_held", receiver: item.receiver)))
            return
        }
        if receiver.fileConfigs.isEmpty && receiver.webhookConfigs.isEmpty && receiver.emailConfigs.isEmpty {
            finish(item, .dead, now: now, error: "receiver has no email, webhook or file configs", detail)
            return
        }
        do {
            // Each integration of a receiver, in turn; a retry sends again to all of them with the same ids
            // (webhook-id, Message-ID), so a receiver that already has it can drop it.
            if !receiver.fileConfigs.isEmpty { try await fileSink.deliver(item, to: receiver, config: cfg) }
            if !receiver.webhookConfigs.isEmpty { try await webhookSink.deliver(item, to: receiver, config: cfg) }
            if !receiver.emailConfigs.isEmpty { try await mailSink.deliver(item, to: receiver, config: cfg) }
            finish(item, .delivered, now: now, error: nil, detail)
        } catch {
            if error.gone {
                var c = Commit()
                c.offsets = [(DeliveryFailure.disabledKey(receiver.name), 1)]
                c.events = [
                    EventDraft(at: now, kind: "receiver_disabled", receiver: receiver.name, reason: error.message)
                ]
                try? store.commit(c)
            }
            finish(
                item, error.permanent ? .dead : .pending, now: now, error: error.message, detail,
                retryAfter: error.retryAfter)
        }
    }

    func finish(
        _ item: OutboxItem, _ status: OutboxStatus, now: Double, error: String?, _ detail: JSONObject,
        retryAfter: Double? = nil
    ) {
        let attempts = item.attempts + 1
        let next = status == .pending ? now + (retryAfter ?? Self.backoff(attempts: attempts, cap: maxBackoff)) : now
        let kind =
            switch status {
            case .delivered: "delivered"
            case .dead: "dead_letter"
            case .pending: "delivery_failed"
            }
        let ev = EventDraft(at: now, kind: kind, receiver: item.receiver, reason: error, detail: detail)
        do {
            try store.finishAttempt(
                AttemptOutcome(
                    outboxID: item.id, status: status, attempts: attempts, nextAttemptAt: next, error: error, event: ev)
            )
        } catch {
            logger.error("outbox: \(error)")
        }
        if let error { logger.warning("delivery to \(item.receiver) \(kind): \(error)") }
    }
}

/// SIGHUP: reload configuration, lists and rules; the running set stays when the new one is invalid.
public struct ReloadService: Service {
    let pipeline: Pipeline
    let configPath: String?
    public init(pipeline: Pipeline, configPath: String?) {
        self.pipeline = pipeline
        self.configPath = configPath
    }
    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            await pipeline.reload(configPath: configPath, now: Date().timeIntervalSince1970)
        }
    }
}

/// Signs a checkpoint of the audit log every `interval` seconds and once more at shutdown (SPEC §7).
public struct CheckpointService: Service {
    let store: SQLiteStateStore
    let origin: String
    let signer: NoteSigner
    let interval: Double
    let logger: Logger

    public init(store: SQLiteStateStore, origin: String, signer: NoteSigner, interval: Double, logger: Logger) {
        self.store = store
        self.origin = origin
        self.signer = signer
        self.interval = interval
        self.logger = logger
    }

    func sign() {
        do { _ = try store.checkpoint(origin: origin, signer: signer, at: Date().timeIntervalSince1970) } catch {
            logger.error("audit checkpoint: \(error)")
        }
    }

    public func run() async throws {
        var last = Date()
        while !Task.isShuttingDownGracefully {
            try? await Task.sleep(nanoseconds: 100_000_000)
            if Date().timeIntervalSince(last) >= interval {
                sign()
                last = Date()
            }
        }
        sign()
    }
}
