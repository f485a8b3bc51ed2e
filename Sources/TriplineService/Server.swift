import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization
import TriplineAudit
import TriplineConfig
import TriplineHTTP
import TriplineJSON
import TriplineOperations
import TriplineRules
import TriplineState
import TriplineStores
import TriplineYAML

/// `tripline serve`: the long-running parts as ServiceLifecycle services in one group, in dependency order —
/// delivery, timers, reload, then ingest — so that shutdown (reverse order) stops ingest first and drains
/// deliveries last.
public enum Server {
    public struct Options: Sendable {
        public var configPath: String?
        public var follow: String?
        public var outboxBound = 10_000
        public var drainTimeout = 10.0
        public var maxBackoff = 6 * 3600.0
        /// How long a failing state database is retried before `serve` stops with exit 2.
        public var dbTimeout = 60.0
        /// Read standard input also when the HTTP API is on.
        public var stdin = false
        /// The service's clock: ingest times, timers (group waits, repeats, escalation steps, resolve timeouts) and
        /// delivery. Tests make minutes pass in seconds with `TRIPLINE_TEST_CLOCK=EPOCH:RATE` (`testClock`).
        public var clock: WallClock = systemClock
        public init(configPath: String?, follow: String?) {
            self.configPath = configPath
            self.follow = follow
        }
    }

    /// `TRIPLINE_TEST_CLOCK=EPOCH:RATE`: time runs RATE times as fast from EPOCH (seconds since 1970, at or before
    /// now) — the same virtual time in every process given the same value, so a test can stop `serve` with kill -9
    /// and start it again between two escalation steps. Nil (real time) when unset; an error when malformed.
    public static func testClock(_ value: String?) throws(TestClockError) -> WallClock? {
        guard let value else { return nil }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let epoch = Double(parts[0]), let rate = Double(parts[1]), rate >= 1, rate <= 10_000,
            epoch <= Date().timeIntervalSince1970
        else { throw TestClockError() }
        return { epoch + (Date().timeIntervalSince1970 - epoch) * rate }
    }

    public struct TestClockError: Error, CustomStringConvertible {
        public var description: String {
            "TRIPLINE_TEST_CLOCK is EPOCH:RATE (an epoch not in the future, a rate from 1 to 10000)"
        }
    }

    /// Lines per transaction of HTTP ingest (standard input's: `IngestService.batchLines`).
    static let httpBatchLines = 32_768

    /// HTTP ingest: the lines through the pipeline in batches, answered once committed (backpressure as for files).
    /// Each batch is made as a reading thread makes one (`InputBatch.screened`): on the request's task, screened and
    /// hashed, so the pipeline runs only the lines that need the full step — and as many lines per transaction as
    /// standard input's.
    static func ingest(
        _ lines: [[UInt8]], _ caller: Caller, pipeline: Pipeline, store: any DurableStore, options: Options
    ) async throws -> IngestOutcome {
        var outcome = IngestOutcome(accepted: 0, rejected: [])
        let source = "http:" + caller.principal.id
        var n = 0
        for chunk in stride(from: 0, to: lines.count, by: httpBatchLines) {
            while ((try? store.pendingOutboxCount()) ?? 0) > options.outboxBound {
                try await Task.sleep(nanoseconds: 20_000_000)
            }
            let part = lines[chunk..<min(chunk + httpBatchLines, lines.count)]
            let batch = InputBatch.screened(part, firstNumber: n + 1, source: source, screens: pipeline.screens)
            n += part.count
            let done = try await pipeline.process(batch, now: Date().timeIntervalSince1970)
            outcome.accepted += done.accepted
            outcome.rejected += done.rejected
        }
        return outcome
    }

    /// Exit status: 0 after a clean end of input or shutdown, 1 for an invalid configuration, 2 for a runtime failure.
    public static func run(_ options: Options) async -> Int32 {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        // A file past its size limit fails the write (the log receiver cuts it back and retries) instead of
        // killing the service.
        signal(SIGXFSZ, SIG_IGN)
        APIServer.raiseOpenFileLimit()
        var logger = Logger(label: "tripline")
        logger.logLevel = .info
        let now = Date().timeIntervalSince1970
        let config: Configuration
        do { config = try Configuration.load(config: options.configPath) } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            return 1
        }
        // The API's TLS from the files named (SPEC §10): one missing or unusable stops serve before anything starts.
        var tls: TLSConfiguration?
        if let http = config.http, let cert = http.certFile, let key = http.keyFile {
            do {
                tls = try APIServer.tlsConfiguration(certFile: cert, keyFile: key, clientCAFile: http.clientCAFile)
            } catch {
                FileHandle.standardError.write(Data("tripline: http.tls: \(error)\n".utf8))
                return 2
            }
        }
        // Lists partners submitted through the API (SPEC §10) load with the files, before rules that may expand them.
        let submitted: [SubmittedList]
        do { submitted = try SubmittedLists.stored(config.state, busyTimeout: min(0.5, options.dbTimeout / 4)) } catch {
            FileHandle.standardError.write(Data("tripline: \(error)\n".utf8))
            return 2
        }
        let (loaded, errors, warnings) = Loaded.load(config, now: now, submitted: submitted)
        for w in warnings + (loaded?.indexWarnings ?? []) { logger.warning("\(w)") }
        if let loaded, !errors.isEmpty {
            // One partner's invalid list is refused alone: the service starts with the others.
            for e in errors { FileHandle.standardError.write(Data((e + "\n").utf8)) }
            logger.error("\(loaded.refused.count) watchlists refused; serving the others")
        }
        guard let loaded else {
            for e in errors { FileHandle.standardError.write(Data((e + "\n").utf8)) }
            FileHandle.standardError.write(Data("tripline: \(errors.count) errors; not starting\n".utf8))
            return 1
        }
        do {
            let store = try StateStores.open(config.state, busyTimeout: min(0.5, options.dbTimeout / 4))
            // Keys outside the state directory (the audit key, a handle key file) are private too.
            let keys = [config.audit["key_file"], config.handleKeyFile].compactMap { $0 }
            let tightened = keys.filter { PrivateFiles.tighten($0) }
            if !tightened.isEmpty {
                var c = Commit()
                c.events = [
                    EventDraft(
                        at: now, kind: "file_modes_tightened",
                        detail: JSONObject([
                            ("files", .array(tightened.map { .string($0) })), ("mode", .string("0600")),
                        ]))
                ]
                try store.commit(c)
            }
            let endpoint = MetricsEndpoint()
            let pipeline = try Pipeline(
                loaded: loaded, store: store, logger: logger, now: now,
                durability: Durability(retryFor: options.dbTimeout), metrics: endpoint.metrics)
            // With the API on, standard input is read only when asked (`--stdin`); a followed file when named.
            let source: (any IngestSource)? =
                options.follow.map { FollowedFileSource(path: $0) }
                ?? (config.http == nil || options.stdin ? StandardInputSource() : nil)
            let delivery = DeliveryService(
                store: store, config: { await pipeline.alertsConfig }, logger: logger,
                drainTimeout: options.drainTimeout, maxBackoff: options.maxBackoff, clock: options.clock,
                refresh: { await pipeline.refresh($0) }, metrics: endpoint.metrics)
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            var signer: NoteSigner?
            if let keyFile = config.audit["key_file"] {
                guard let text = FileManager.default.contents(atPath: keyFile) else {
                    FileHandle.standardError.write(Data("tripline: cannot read the audit key \(keyFile)\n".utf8))
                    return 1
                }
                let key = try NoteSigner(text: String(decoding: text, as: UTF8.self))
                signer = key
                let interval = config.audit["checkpoint_interval"].flatMap(parseDuration) ?? 60
                // First in the group: stopped last, so its final checkpoint covers everything.
                services.append(
                    .init(
                        service: CheckpointService(
                            store: store, origin: config.audit["origin"] ?? "tripline.local/audit", signer: key,
                            interval: interval, logger: logger), successTerminationBehavior: .ignore))
            }
            services += [
                .init(service: delivery, successTerminationBehavior: .ignore),
                .init(
                    service: TickService(pipeline: pipeline, clock: options.clock), successTerminationBehavior: .ignore),
                .init(
                    service: ReloadService(pipeline: pipeline, configPath: options.configPath),
                    successTerminationBehavior: .ignore),
            ]
            if let http = config.http {
                // The API before ingest in the group: it stops right after ingest, before deliveries drain.
                let built = OperationsCache()
                let batcher = AuditBatcher(store: store)
                var api = APIServices(
                    operations: {
                        let (generation, config) = pipeline.published.now
                        return try built.get(generation) { () throws(OperationError) in
                            var ops = try Operations(config: config, store: store)
                            ops.batcher = batcher
                            return ops
                        }
                    },
                    ingest: { lines, caller in
                        try await Self.ingest(lines, caller, pipeline: pipeline, store: store, options: options)
                    },
                    reload: {
                        await pipeline.reload(configPath: options.configPath, now: Date().timeIntervalSince1970)
                    },
                    ready: { await pipeline.healthy },
                    signer: signer, openAPI: APIServer.openAPIDocument,
                    metrics: {
                        endpoint.text(store: store, receivers: await pipeline.alertsConfig.receivers.map(\.name))
                    })
                api.rate = (http.rateLimit, http.rateBurst)
                api.bodyTimeout = http.bodyTimeout
                api.audit = batcher
                api.lists = ListServices(
                    catalog: { await pipeline.listCatalog },
                    reload: { await pipeline.reloadLists(now: Date().timeIntervalSince1970) })
                api.clientCertificates = tls != nil && http.clientCAFile != nil
                let host = http.host
                let scheme = tls == nil ? "http" : "https"
                let apiLogger = logger
                services.append(
                    .init(
                        service: try APIServer.application(
                            api, host: http.host, port: http.port, tls: tls, idleTimeout: http.idleTimeout,
                            logger: logger,
                            onRunning: { port in apiLogger.info("API listening on \(scheme)://\(host):\(port)") }),
                        successTerminationBehavior: .gracefullyShutdownGroup))
            }
            if let source {
                services.append(
                    .init(
                        service: IngestService(
                            source: source, pipeline: pipeline, store: store, logger: logger,
                            outboxBound: options.outboxBound,
                            drainTimeout: options.drainTimeout, clock: options.clock),
                        successTerminationBehavior: .gracefullyShutdownGroup))
            }
            logger.info(
                "serving: \(loaded.rules.rules.count) rules, state \(StateStores.describe(config.state)), input \(source?.name ?? "the API only")"
            )
            let group = ServiceGroup(
                configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            return 0
        } catch {
            FileHandle.standardError.write(Data("tripline: \(error)\n".utf8))
            return 2
        }
    }
}

/// The operations the API acts through, built once per generation of what the pipeline has loaded (a reload, a
/// list submitted or withdrawn) rather than per request: building reads the handle key and the lists' handlings.
final class OperationsCache: Sendable {
    private let current = Mutex<(generation: Int, operations: Operations)?>(nil)

    func get(_ generation: Int, build: () throws(OperationError) -> Operations) throws(OperationError) -> Operations {
        if let c = current.withLock({ $0 }), c.generation == generation { return c.operations }
        let ops = try build()
        current.withLock { $0 = (generation, ops) }
        return ops
    }
}
