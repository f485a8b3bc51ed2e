import Foundation

/// Two cores on one list (issue 17): the YAML reader on the calling thread hands the entries it reads, in batches
/// and in order, to one worker thread that validates and normalises them. A bounded queue keeps memory to a few
/// batches; `finish` waits for the worker and returns what it built. Done batches come back to the producing
/// thread to be freed there: memory freed on the thread that allocated it costs no lock (glibc's arenas), and the
/// items' reference counts stay on one core (freeing them on the worker made malloc and free half of the time).
final class HandOff<Item: Sendable, Worker>: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [[Item]] = []
    private var returned: [[Item]] = []
    private var done = false
    private var finished = false
    private var worker: Worker
    private let work: (inout Worker, Item) -> Void
    private var batch: [Item] = []

    static var batchSize: Int { 256 }
    static var depth: Int { 8 }

    init(_ worker: Worker, work: @escaping (inout Worker, Item) -> Void) {
        self.worker = worker
        self.work = work
        batch.reserveCapacity(Self.batchSize)
        let t = Thread { [self] in run() }
        t.stackSize = 8 << 20
        t.start()
    }

    /// Queues one item (on the producing thread); waits while the worker is `depth` batches behind.
    func put(_ item: Item) {
        batch.append(item)
        if batch.count < Self.batchSize { return }
        flush()
    }

    private func flush() {
        condition.lock()
        while queue.count >= Self.depth { condition.wait() }
        queue.append(batch)
        var done = returned
        returned = []
        condition.broadcast()
        condition.unlock()
        batch = done.popLast() ?? []
        batch.removeAll(keepingCapacity: true)
        done.removeAll()  // the items die here, on the thread that made them
    }

    /// Hands over the last items, waits until the worker has done them all, and returns it.
    func finish() -> Worker {
        if !batch.isEmpty { flush() }
        condition.lock()
        done = true
        condition.broadcast()
        while !finished { condition.wait() }
        let done = returned
        returned = []
        condition.unlock()
        _ = consume done
        return worker
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !done { condition.wait() }
            if queue.isEmpty {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let items = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            for item in items { work(&worker, item) }
            condition.lock()
            returned.append(items)
            condition.unlock()
        }
    }
}
