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
import UnixSignals

/// The wall clock the services read (tests may pass another).
public typealias WallClock = @Sendable () -> Double
public let systemClock: WallClock = { Date().timeIntervalSince1970 }

/// Feeds one source's batches to the pipeline: the next batch is taken only when the previous one is committed
/// and the outbox is under its bound (backpressure: nothing is dropped, ingest slows down). A source that ends
/// (standard input) is followed by sending what is pending and waiting for delivery, up to the drain timeout.
public struct IngestService: Service {
    let source: any IngestSource
    let pipeline: Pipeline
    let store: any StateStore
    let logger: Logger
    let outboxBound: Int
    let drainTimeout: Double
    let clock: WallClock
    /// Lines per transaction at most: a fast stream commits (and fsyncs) every 32,768 lines, not every 512 (issue 17:
    /// at 512, waiting for fsync capped `serve` near 200,000 selectors/s); a slow one (a followed
    /// file at its end, standard input that pauses) still commits what it has.
    let batchLines = 32_768

    public init(
        source: any IngestSource, pipeline: Pipeline, store: any StateStore, logger: Logger, outboxBound: Int,
        drainTimeout: Double, clock: @escaping WallClock = systemClock
    ) {
        self.source = source
        self.pipeline = pipeline
        self.store = store
        self.logger = logger
        self.outboxBound = outboxBound
        self.drainTimeout = drainTimeout
        self.clock = clock
    }

    public func run() async throws {
        let feed = try source.open(store: store, batchLines: batchLines, screens: pipeline.screens, logger: logger)
        try await withGracefulShutdownHandler {
            for await batch in feed.batches {
                while ((try? store.pendingOutboxCount()) ?? 0) > outboxBound && !Task.isShuttingDownGracefully
                    && !Task.isCancelled
                {
                    try? await Task.sleep(nanoseconds: 20_000_000)
                }
                do { try await pipeline.process(batch, now: clock()) } catch let error as PipelineFailure {
                    feed.stop()
                    if error.stopped {
                        logger.warning("\(error)")
                        return
                    }
                    logger.critical("\(error)")
                    throw error
                }
                feed.resume()
                if Task.isShuttingDownGracefully { break }
            }
        } onGracefulShutdown: {
            feed.stop()
        }
        feed.stop()
        if Task.isShuttingDownGracefully || !source.ends { return }
        // End of standard input: the shared correlation feed read to its end (by this node when it keeps the
        // correlations), what is pending sent now, and delivery waited for (up to the drain timeout).
        await pipeline.drainCorrelations(until: clock() + drainTimeout, clock: clock)
        await pipeline.drainAlerts(until: clock() + drainTimeout, clock: clock)
        try await pipeline.tick(now: clock(), flushAll: true)
        await pipeline.stepDown()
        let deadline = Date().addingTimeInterval(drainTimeout)
        // Lanes, not items: an item's payload (every alert of its group) is not read back to be waited for.
        while ((try? store.dueLanes(now: clock() + drainTimeout)) ?? []).isEmpty == false
            && !Task.isCancelled
        {
            if Date() > deadline {
                let left = (try? store.pendingOutboxCount()) ?? 0
                logger.warning("end of input: \(left) notifications still in the outbox (kept for the next run)")
                break
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
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
    let clock: WallClock
    public init(pipeline: Pipeline, clock: @escaping WallClock = systemClock) {
        self.pipeline = pipeline
        self.clock = clock
    }
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try await pipeline.tick(now: clock())
            await pipeline.correlate(now: clock())
            try? await cancelWhenGracefulShutdown { try await Task.sleep(nanoseconds: 50_000_000) }  // not at exit
        }
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
    let store: any AuditStore
    let origin: String
    let signer: NoteSigner
    let interval: Double
    let logger: Logger

    public init(store: any AuditStore, origin: String, signer: NoteSigner, interval: Double, logger: Logger) {
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
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(nanoseconds: 100_000_000) }
            if Task.isShuttingDownGracefully { break }
            if Date().timeIntervalSince(last) >= interval {
                sign()
                last = Date()
            }
        }
        sign()
    }
}
