import Foundation
import Logging
import Testing
import TriplineAlerts
import TriplineJSON
import TriplineService
import TriplineState
import TriplineStateSQLite
import TriplineTestSupport

/// A state store that forwards everything to `base` and, before a commit that `hook` picks, runs the hook: another
/// writer's change made exactly between a writer's read and its commit. It keeps what each commit of an alert came
/// to (the keys of its alerts, and its error).
final class RacingStore: StateStore, @unchecked Sendable {
    let base: any StateStore
    private let lock = NSLock()
    /// Runs before a commit is forwarded; true when it acted (it is then disarmed unless `repeating`).
    private var hook: ((Commit) throws -> Bool)?
    private var repeating = false
    private var log: [(keys: [String], error: StateError?)] = []

    init(_ base: any StateStore) { self.base = base }

    func arm(repeating: Bool = false, _ hook: @escaping (Commit) throws -> Bool) {
        lock.withLock {
            self.hook = hook
            self.repeating = repeating
        }
    }

    /// The commits carrying the alert `key`, in order: nil where it landed, else its error.
    func commits(of key: String) -> [StateError?] {
        lock.withLock { log.filter { $0.keys.contains(key) }.map(\.error) }
    }

    func migrate() throws(StateError) { try base.migrate() }

    func commit(_ c: Commit) throws(StateError) {
        let h = lock.withLock { hook }
        if let h {
            let acted: Bool
            do { acted = try h(c) } catch { throw .database("the racing writer failed: \(error)") }
            if acted && !repeating { lock.withLock { hook = nil } }
        }
        do throws(StateError) {
            try base.commit(c)
            if !c.alerts.isEmpty { lock.withLock { log.append((c.alerts.map(\.key), nil)) } }
        } catch {
            if !c.alerts.isEmpty { lock.withLock { log.append((c.alerts.map(\.key), error)) } }
            throw error
        }
    }

    func alert(id: Int64) throws(StateError) -> AlertRecord? { try base.alert(id: id) }
    func alert(key: String) throws(StateError) -> AlertRecord? { try base.alert(key: key) }
    func alerts(states: Set<AlertState>?, limit: Int) throws(StateError) -> [AlertRecord] {
        try base.alerts(states: states, limit: limit)
    }
    func alerts(idBelow: Int64?, limit: Int) throws(StateError) -> [AlertRecord] {
        try base.alerts(idBelow: idBelow, limit: limit)
    }
    func alerts(updatedSince since: Double, limit: Int) throws(StateError) -> [AlertRecord] {
        try base.alerts(updatedSince: since, limit: limit)
    }
    func alerts(states: Set<AlertState>, lastSeenBefore before: Double, limit: Int) throws(StateError)
        -> [AlertRecord]
    {
        try base.alerts(states: states, lastSeenBefore: before, limit: limit)
    }
    func maxAlertID() throws(StateError) -> Int64 { try base.maxAlertID() }
    func notifyLog() throws(StateError) -> [NotifyLogEntry] { try base.notifyLog() }
    func dueOutbox(now: Double, limit: Int) throws(StateError) -> [OutboxItem] {
        try base.dueOutbox(now: now, limit: limit)
    }
    func dueLanes(now: Double) throws(StateError) -> [OutboxLane] { try base.dueLanes(now: now) }
    func dueOutbox(lane: OutboxLane, now: Double, limit: Int) throws(StateError) -> [OutboxItem] {
        try base.dueOutbox(lane: lane, now: now, limit: limit)
    }
    func outbox(status: OutboxStatus?, limit: Int) throws(StateError) -> [OutboxItem] {
        try base.outbox(status: status, limit: limit)
    }
    func pendingOutboxCount() throws(StateError) -> Int { try base.pendingOutboxCount() }
    func metricCounts() throws(StateError) -> MetricCounts { try base.metricCounts() }
    func finishAttempts(_ outcomes: [AttemptOutcome]) throws(StateError) { try base.finishAttempts(outcomes) }
    func retry(outboxID: Int64, event: EventDraft) throws(StateError) -> Bool {
        try base.retry(outboxID: outboxID, event: event)
    }
    func silences(includeExpired: Bool) throws(StateError) -> [Silence] {
        try base.silences(includeExpired: includeExpired)
    }
    func rateStates() throws(StateError) -> [RateState] { try base.rateStates() }
    func escalations() throws(StateError) -> [EscalationState] { try base.escalations() }
    func escalations(key: String) throws(StateError) -> [EscalationState] { try base.escalations(key: key) }
    func usedAckLink(nonce: String) throws(StateError) -> UsedAckLink? { try base.usedAckLink(nonce: nonce) }
    func listHandlings() throws(StateError) -> [String: JSONObject]? { try base.listHandlings() }
    func token(hash: String) throws(StateError) -> TokenRecord? { try base.token(hash: hash) }
    func tokens() throws(StateError) -> [TokenRecord] { try base.tokens() }
    func submittedLists(content: Bool) throws(StateError) -> [SubmittedList] {
        try base.submittedLists(content: content)
    }
    func submittedVersions(owner: String, list: String) throws(StateError) -> [SubmittedList] {
        try base.submittedVersions(owner: owner, list: list)
    }
    func submittedList(owner: String, list: String, version: String) throws(StateError) -> SubmittedList? {
        try base.submittedList(owner: owner, list: list, version: version)
    }
    func offset(source: String) throws(StateError) -> Int64? { try base.offset(source: source) }
    func events(after seq: Int64, limit: Int) throws(StateError) -> [EventRecord] {
        try base.events(after: seq, limit: limit)
    }
}

/// Where the operator's action comes from: the command line in another process (a second connection to the
/// file), or the HTTP API in the service's process (the service's own connection).
enum OperatorConnection: String, CaseIterable, CustomTestStringConvertible {
    case second, same
    var testDescription: String { rawValue + " connection" }
    func store(_ service: SQLiteStateStore, path: String) throws -> SQLiteStateStore {
        switch self {
        case .same: return service
        case .second:
            let s = try SQLiteStateStore(path: path, busyTimeout: 5)
            try s.migrate()
            return s
        }
    }
}

/// A flag set on one thread and awaited on another.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false
    func raise() { lock.withLock { set = true } }
    var isRaised: Bool { lock.withLock { set } }
    /// Waits (without holding a thread of the cooperative pool) until raised or `seconds` passed.
    func wait(_ seconds: Double) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while !isRaised && Date() < end { try? await Task.sleep(nanoseconds: 2_000_000) }
        return isRaised
    }
    /// Blocks this (non-pool) thread until raised or `seconds` passed.
    func block(_ seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while !isRaised && Date() < end { usleep(1000) }
        return isRaised
    }
}

final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T?
    func put(_ x: T) { lock.withLock { v = x } }
    var value: T? { lock.withLock { v } }
}

let analystBE = Principal(id: "analyst-be", partner: "be-fedpol", role: .analyst)
let entryKey = "wl:be-fedpol/l/E1"

@Suite("Lost updates: alerts are written over the version read", .serialized)
struct LostUpdateTests {
    static let principals = "principals: [{id: analyst-be, partner: be-fedpol, role: analyst}]"

    /// A deployment whose pipeline writes through a `RacingStore`, and alert E1 opened by a first batch at t0.
    static func opened(retries: Int = 100, retryFor: Double = 30) async throws -> (
        Deployment, Pipeline, RacingStore, SQLiteStateStore
    ) {
        let d = try Deployment(entries: 2, extra: principals)
        let (loaded, errors, _) = Loaded.load(d.config, now: t0)
        guard let loaded else { throw TestFailure("\(errors)") }
        let base = try SQLiteStateStore(path: d.statePath, busyTimeout: 5)
        try base.migrate()
        let racing = RacingStore(base)
        var durability = Durability(retryFor: retryFor)
        durability.conflictRetries = retries
        let pipeline = try Pipeline(
            loaded: loaded, store: racing, logger: Logger(label: "test"), now: t0, durability: durability)
        try await pipeline.process(batch([phone("a", "+32470000001")]), now: t0)
        let a = try #require(try base.alert(key: entryKey))
        #expect(a.count == 1 && a.version == 0)
        return (d, pipeline, racing, base)
    }

    static func events(_ s: SQLiteStateStore, _ kind: String) throws -> [EventDraft] {
        try s.events(after: 0, limit: 100_000).map(\.event).filter { $0.kind == kind }
    }

    /// The fold records of E1 (a sighting folded into the open alert; receivers' suppressions name a receiver).
    static func folds(_ s: SQLiteStateStore) throws -> [EventDraft] {
        try events(s, "suppressed").filter { $0.alertKey == entryKey && $0.receiver == nil }
    }

    @Test(
        "an ack landing between the pipeline's read and its commit: the batch is processed again, both land",
        arguments: OperatorConnection.allCases)
    func ackDuringFold(connection: OperatorConnection) async throws {
        let (d, pipeline, racing, base) = try await Self.opened()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let op = try connection.store(base, path: d.statePath)
        let id = try #require(try base.alert(key: entryKey)).id
        racing.arm { c in
            guard c.alerts.contains(where: { $0.key == entryKey }) else { return false }
            _ = try Dispatcher.act(
                on: id, state: .acknowledged, principal: analystBE, reason: "case 42", store: op, now: t0 + 0.5)
            return true
        }
        let second = batch([phone("b", "+32470000001", item: "P-2")], first: 2)
        let outcome = try await pipeline.process(second, now: t0 + 1)
        #expect(outcome.accepted == 1 && outcome.rejected.isEmpty)

        // Retried exactly once: the commit from the stale copy refused as a conflict, the second one landed.
        #expect(await pipeline.conflicts == 1)
        let commits = racing.commits(of: entryKey)
        #expect(commits.count == 3)  // the first batch's, the refused one, the retry
        #expect(commits[0] == nil && commits[1]?.isConflict == true && commits[2] == nil)

        // The ack and the fold, both.
        let a = try #require(try base.alert(key: entryKey))
        #expect(a.acks == ["be-fedpol": Ack(by: "analyst-be", at: t0 + 0.5)])
        #expect(a.state == .firing && a.count == 2 && a.lastSeen == t0 + 1 && a.updatedAt == t0 + 1)
        #expect(a.sources == ["P-1", "P-2"])
        #expect(a.version == 2)  // opened, acked, folded

        // The audit log: one ack, the sighting folded once (judged on the fresh row: already acknowledged), one
        // record of each batch; nothing of the refused attempt.
        let acks = try Self.events(base, "alert_acknowledged")
        #expect(acks.count == 1 && acks.first?.principal == "analyst-be" && acks.first?.reason == "case 42")
        let folds = try Self.folds(base)
        #expect(folds.count == 1)
        #expect(folds.first?.reason == "acknowledged")
        #expect(folds.first?.detail["selector"] == .string("b") && folds.first?.detail["count"] == .number("2"))
        #expect(try Self.events(base, "ingest_batch").count == 2)
        #expect(try Self.events(base, "alert_opened").count == 1)
        #expect(try base.offset(source: "test") == second.offset)
        #expect(try base.offset(source: "test#line") == 2)
        #expect(await pipeline.healthy)

        // The pipeline's memory agrees with the database: the next sighting folds in as the third.
        try await pipeline.process(batch([phone("c", "+32470000001", item: "P-3")], first: 3), now: t0 + 2)
        let c = try #require(try base.alert(key: entryKey))
        #expect(c.count == 3 && c.acks.count == 1 && c.version == 3)
        #expect(try Self.folds(base).count == 2)
        #expect(await pipeline.conflicts == 1)
    }

    @Test(
        "a fold landing between an ack's read and its commit: the ack is made again on the fresh row, both land",
        arguments: OperatorConnection.allCases)
    func foldDuringAck(connection: OperatorConnection) async throws {
        let (d, pipeline, _, base) = try await Self.opened()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let op = RacingStore(try connection.store(base, path: d.statePath))
        let id = try #require(try base.alert(key: entryKey)).id
        let read = Flag()
        let folded = Flag()
        op.arm { _ in
            // The ack has read the alert and made its change: the pipeline commits a fold now.
            read.raise()
            guard folded.block(60) else { throw TestFailure("the fold did not come") }
            return true
        }
        let result = Box<Result<AlertRecord, AlertsError>>()
        let finished = Flag()
        let t = Thread {
            do throws(AlertsError) {
                result.put(
                    .success(
                        try Dispatcher.act(
                            on: id, state: .acknowledged, principal: analystBE, reason: "case 43", store: op,
                            now: t0 + 2)))
            } catch { result.put(.failure(error)) }
            finished.raise()
        }
        t.start()
        #expect(await read.wait(60))
        try await pipeline.process(batch([phone("b", "+32470000001", item: "P-2")], first: 2), now: t0 + 1)
        folded.raise()
        #expect(await finished.wait(60))

        // The ack's first commit refused (its copy predates the fold), the second landed.
        #expect(op.commits(of: entryKey).count == 2)
        #expect(op.commits(of: entryKey).first??.isConflict == true && op.commits(of: entryKey).last! == nil)
        let done = try #require(try result.value?.get())
        #expect(done.count == 2 && done.acks["be-fedpol"]?.by == "analyst-be")  // made on the fresh row
        #expect(done.version == 2)

        let a = try #require(try base.alert(key: entryKey))
        #expect(a == done)
        #expect(a.acks == ["be-fedpol": Ack(by: "analyst-be", at: t0 + 2)])
        #expect(a.count == 2 && a.lastSeen == t0 + 1 && a.sources == ["P-1", "P-2"])
        #expect(try Self.events(base, "alert_acknowledged").count == 1)
        let folds = try Self.folds(base)
        #expect(folds.count == 1 && folds.first?.reason == "dedup")  // the fold came before the ack
        #expect(await pipeline.conflicts == 0)
    }

    @Test("an ack retried on the fresh row judges it afresh: an alert resolved meanwhile is not acknowledged")
    func ackJudgedOnTheFreshRow() async throws {
        let (d, _, _, base) = try await Self.opened()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let op = RacingStore(base)
        let id = try #require(try base.alert(key: entryKey)).id
        op.arm { _ in
            _ = try Dispatcher.act(
                on: id, state: .resolved, principal: Principal(id: "analyst-ops", partner: "ops", role: .analyst),
                reason: "done", store: base, now: t0 + 1)
            return true
        }
        do {
            _ = try Dispatcher.act(
                on: id, state: .acknowledged, principal: analystBE, reason: "late", store: op, now: t0 + 2)
            Issue.record("a resolved alert was acknowledged")
        } catch { #expect(error.description == "alert \(id) is already resolved") }
        // One commit of the ack, refused; the fresh read found the alert resolved, and nothing more was committed.
        #expect(op.commits(of: entryKey).count == 1 && op.commits(of: entryKey).first??.isConflict == true)
        let a = try #require(try base.alert(id: id))
        #expect(a.state == .resolved && a.acks.isEmpty && a.version == 1)
        #expect(try Self.events(base, "alert_acknowledged").isEmpty)
        #expect(try Self.events(base, "alert_resolved").count == 1)
    }

    @Test("an alert that keeps changing: the ack gives up after its attempts, changing nothing")
    func ackGivesUp() async throws {
        let (d, _, _, base) = try await Self.opened()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let op = RacingStore(base)
        let id = try #require(try base.alert(key: entryKey)).id
        op.arm(repeating: true) { _ in
            // Another writer moves the row on before every commit of the ack.
            var c = Commit()
            c.alerts = [try #require(try base.alert(id: id))]
            try base.commit(c)
            return true
        }
        do {
            _ = try Dispatcher.act(
                on: id, state: .acknowledged, principal: analystBE, reason: "busy", store: op, now: t0 + 1)
            Issue.record("the ack landed")
        } catch {
            #expect(error.description == "alert \(id) kept changing while the action was made (10 attempts); try again")
        }
        #expect(op.commits(of: entryKey).count == Dispatcher.actAttempts)
        #expect(op.commits(of: entryKey).allSatisfy { $0?.isConflict == true })
        let a = try #require(try base.alert(id: id))
        #expect(a.acks.isEmpty && a.version == Int64(Dispatcher.actAttempts))
        #expect(try Self.events(base, "alert_acknowledged").isEmpty)
    }

    @Test("a batch whose alert keeps changing: bounded immediate retries, then a failing database (stop, input kept)")
    func batchGivesUp() async throws {
        let (d, pipeline, racing, base) = try await Self.opened(retries: 3, retryFor: 0.3)
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let id = try #require(try base.alert(key: entryKey)).id
        racing.arm(repeating: true) { c in
            guard c.alerts.contains(where: { $0.key == entryKey }) else { return false }
            var bump = Commit()
            bump.alerts = [try #require(try base.alert(id: id))]
            try base.commit(bump)
            return true
        }
        await #expect(throws: PipelineFailure.self) {
            try await pipeline.process(batch([phone("b", "+32470000001")], first: 2), now: t0 + 1)
        }
        // 1 + 3 at once, then with backoff until --db-timeout.
        #expect(await pipeline.conflicts >= 5)
        #expect(await !pipeline.healthy)
        let a = try #require(try base.alert(id: id))
        #expect(a.count == 1)
        #expect(try Self.folds(base).isEmpty)
        #expect(try Self.events(base, "ingest_batch").count == 1)
        #expect(try base.offset(source: "test#line") == 1)
    }

    @Test(
        "an ack landing between a resolve timeout's read and its commit: the timer decides again, the ack stays",
        arguments: OperatorConnection.allCases)
    func ackDuringResolveTimeout(connection: OperatorConnection) async throws {
        let (d, pipeline, racing, base) = try await Self.opened()
        defer { try? FileManager.default.removeItem(at: d.dir) }
        let op = try connection.store(base, path: d.statePath)
        let id = try #require(try base.alert(key: entryKey)).id
        let late = t0 + 86_400 + 20  // past the default resolve_timeout (24h) since the last sighting
        racing.arm { c in
            guard c.alerts.contains(where: { $0.key == entryKey && $0.state == .resolved }) else { return false }
            _ = try Dispatcher.act(
                on: id, state: .acknowledged, principal: analystBE, reason: "case 44", store: op, now: late - 1)
            return true
        }
        try await pipeline.tick(now: late)
        #expect(await pipeline.conflicts == 1)
        #expect(await pipeline.healthy)
        let a = try #require(try base.alert(id: id))
        #expect(a.state == .resolved && a.updatedAt == late)
        #expect(a.acks == ["be-fedpol": Ack(by: "analyst-be", at: late - 1)])
        #expect(a.version == 2)
        let resolved = try Self.events(base, "alert_resolved")
        #expect(resolved.count == 1 && resolved.first?.reason == "resolve_timeout")
        #expect(try Self.events(base, "alert_acknowledged").count == 1)
    }
}
