import Foundation
import TriplineState

/// The records of consultations and refusals made by concurrent API requests, committed together: whatever
/// arrived while one transaction was being written goes into the next, so a hundred looks cost one fsync, not a
/// hundred. A request's answer waits until its own records are durable (`durable(_:)`), so every look is in the
/// audit log before it is seen; when they could not be written the request fails instead (no look unrecorded).
///
/// The writer is a thread of its own (the store blocks on the disk; the cooperative pool must not). Records are
/// committed in the order they were added. A batch the store refuses (a record it will not take) is written again one
/// record at a time, so that one bad record fails its own request only; a failing database fails the whole batch.
public final class AuditBatcher: @unchecked Sendable {
    private let store: any DurableStore
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: [(seq: UInt64, event: EventDraft)] = []
    private var enqueued: UInt64 = 0
    private var written: UInt64 = 0
    private var failed: [UInt64: String] = [:]
    private var waiters: [(seq: UInt64, tickets: [UInt64], resume: CheckedContinuation<Void, any Error>)] = []

    /// The tickets of the records added by the current request (bound by `collecting`).
    @TaskLocal static var tickets: Tickets?

    public final class Tickets: @unchecked Sendable {
        let lock = NSLock()
        var seqs: [UInt64] = []
    }

    public init(store: any DurableStore) {
        self.store = store
        let thread = Thread { [self] in run() }
        thread.name = "tripline-audit-writer"
        thread.start()
    }

    /// Queues `event` (inside `collecting`: the request's answer waits for it).
    public func record(_ event: EventDraft) {
        condition.lock()
        enqueued += 1
        let seq = enqueued
        pending.append((seq, event))
        condition.signal()
        condition.unlock()
        if let t = Self.tickets { t.lock.withLock { t.seqs.append(seq) } }
    }

    /// Runs `body` (a request) collecting the records it adds; answers its result once they are durable, or throws
    /// `OperationError.failed` when one of them could not be written.
    public func collecting<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let tickets = Tickets()
        let result: Result<T, any Error>
        do { result = .success(try await Self.$tickets.withValue(tickets) { try await body() }) } catch {
            result = .failure(error)
        }
        let mine = tickets.lock.withLock { tickets.seqs }
        if let last = mine.max() { try await durable(through: last, mine) }
        return try result.get()
    }

    private func durable(through seq: UInt64, _ mine: [UInt64]) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            condition.lock()
            if written >= seq {
                let problem = mine.lazy.compactMap { self.failed[$0] }.first
                condition.unlock()
                if let problem { c.resume(throwing: OperationError.failed(problem)) } else { c.resume() }
                return
            }
            waiters.append((seq, mine, c))
            condition.unlock()
        }
    }

    private func run() {
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            let batch = pending
            pending = []
            condition.unlock()
            var problems: [UInt64: String] = [:]
            var c = Commit()
            c.events = batch.map(\.event)
            do { try store.commit(c) } catch  where error.refusedChange {
                // One transaction each, so that only the record the store refuses fails (its request with it).
                for (seq, e) in batch {
                    var one = Commit()
                    one.events = [e]
                    do { try store.commit(one) } catch {
                        problems[seq] = "the audit record could not be written: \(error)"
                    }
                }
            } catch {
                // A failing database (busy, locked, full) fails the batch at once: a record at a time would wait out
                // the busy timeout once per record.
                for (seq, _) in batch { problems[seq] = "the audit record could not be written: \(error)" }
            }
            condition.lock()
            written = batch.last!.seq
            failed.merge(problems) { $1 }
            if failed.count > 10_000 { failed = failed.filter { $0.key + 10_000 > written } }
            let ready = waiters.filter { $0.seq <= written }
            waiters.removeAll { $0.seq <= written }
            let outcomes = ready.map { w in (w.resume, w.tickets.lazy.compactMap { self.failed[$0] }.first) }
            condition.unlock()
            for (resume, problem) in outcomes {
                if let problem { resume.resume(throwing: OperationError.failed(problem)) } else { resume.resume() }
            }
        }
    }
}
