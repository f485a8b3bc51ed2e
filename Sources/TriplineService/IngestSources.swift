import Crypto
import Foundation
import Logging
import TriplineIngest
import TriplineRules
import TriplineState

/// Where selectors come from (SPEC §2): standard input, a followed file, and the HTTP endpoint — each feeding the
/// one record step through the pipeline. A source reads on its own thread and hands over batches of lines with the
/// position after them; it reads the next batch only once the previous one is taken (`resume()`), so a slow
/// pipeline slows the reading (backpressure), and nothing is dropped.
public protocol IngestSource: Sendable {
    /// The name positions are committed under (`stdin`, `file:PATH`).
    var name: String { get }
    /// Whether the input ends (standard input) rather than runs until shutdown (a followed file).
    var ends: Bool { get }
    /// Starts reading where the committed position says (`store`), in batches of at most `batchLines`.
    /// `screens`: the pipeline's screen, applied by the reading thread as it reads (nil: none).
    func open(store: any StateStore, batchLines: Int, screens: ScreenSource?, logger: Logger) throws -> IngestFeed
}

/// A running source: its batches, and the controls the ingest service uses.
public final class IngestFeed: Sendable {
    public let batches: AsyncStream<InputBatch>
    private let gate: DispatchSemaphore
    private let stopFlag: StopFlag

    init(batches: AsyncStream<InputBatch>, gate: DispatchSemaphore, stop: StopFlag) {
        self.batches = batches
        self.gate = gate
        self.stopFlag = stop
    }

    /// The batch handed over is committed: the reader may hand over another.
    public func resume() { gate.signal() }

    /// Stops reading (shutdown, or a fatal error).
    public func stop() {
        stopFlag.stop()
        gate.signal()
        gate.signal()
    }
}

/// The gate between a reading thread and the pipeline: two batches may be outstanding. Made at value 0 and
/// signalled twice, because a semaphore freed below its initial value traps (the service stopping on a failing
/// database leaves a batch unresumed).
func makeGate() -> DispatchSemaphore {
    let gate = DispatchSemaphore(value: 0)
    gate.signal()
    gate.signal()
    return gate
}

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

/// Collects lines into batches and hands each over, waiting while two are outstanding. A batch's lines are copied
/// back to back into one buffer (no allocation per line) and screened here, on the reading thread; the pipeline
/// hashes the buffer in one pass (with the screen in front, this thread is the one that bounds `serve`, issue 17).
struct Batcher {
    let source: String
    let batchLines: Int
    let continuation: AsyncStream<InputBatch>.Continuation
    let gate: DispatchSemaphore
    private var chunk: [UInt8] = []
    private var pending: [(range: Range<Int>, number: Int, end: Int64, oversized: Int?)] = []
    /// The pipeline's screen, taken once per batch: the batch says which generation screened it.
    let screens: ScreenSource?
    private var screen: (generation: Int, screen: RecordScreen)?
    private var screened: [Bool] = []

    init(
        source: String, batchLines: Int, continuation: AsyncStream<InputBatch>.Continuation, gate: DispatchSemaphore,
        screens: ScreenSource? = nil
    ) {
        self.source = source
        self.batchLines = batchLines
        self.continuation = continuation
        self.gate = gate
        self.screens = screens
    }

    mutating func add(_ next: LineReader.Line, end: Int64) {
        let start = chunk.count
        if pending.isEmpty { screen = screens?.now }
        switch next {
        case .record(let bytes, let n):
            chunk.append(contentsOf: bytes)
            pending.append((start..<chunk.count, n, end, nil))
            screened.append(
                screen?.screen.active == true && bytes.withUnsafeBufferPointer { screen!.screen.screen($0) })
        case .oversized(let n, let length, let head):
            chunk.append(contentsOf: head)
            pending.append((start..<chunk.count, n, end, length))
            screened.append(false)
        }
    }

    /// A batch's bytes at most (besides `batchLines`): lines near the 64 KiB limit would otherwise make a batch of
    /// 2 GiB, three of them in memory at once.
    static let batchBytes = 32 << 20

    var full: Bool { pending.count >= batchLines || chunk.count >= Self.batchBytes }

    /// Hands over what is collected (if anything) as consumed up to `offset`/`line`.
    mutating func send(offset: Int64, line: Int, marks: [(String, Int64)]) {
        if pending.isEmpty { return }
        // Not hashed here: the pipeline hashes the buffer in one pass (this thread is the one that bounds `serve`; the
        // pipeline's has room).
        let bytes = chunk
        let lines = zip(pending, screened).map { p, screened in
            var l = InputLine(bytes: bytes[p.range], number: p.number, end: p.end, oversized: p.oversized)
            l.screened = screened
            return l
        }
        chunk = []
        chunk.reserveCapacity(bytes.count)
        pending.removeAll(keepingCapacity: true)
        screened.removeAll(keepingCapacity: true)
        gate.wait()
        var batch = InputBatch(source: source, lines: lines, offset: offset, lineNumber: line, marks: marks)
        batch.chunk = bytes
        batch.screenGeneration = screen?.generation
        continuation.yield(batch)
    }
}

/// A buffer pointer handed to the threads of one `concurrentPerform`, each of which touches its own part.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

extension InputBatch {
    /// A batch of `lines` (numbered from `firstNumber`) made as a reading thread makes one: the lines copied into one
    /// buffer (each a slice of it; an oversized line by its first 512 bytes), hashed, and screened with the
    /// pipeline's current screen (the batch says which generation).
    public static func screened(
        _ lines: ArraySlice<[UInt8]>, firstNumber: Int, source: String, screens: ScreenSource
    ) -> InputBatch {
        let screen = screens.now
        var chunk: [UInt8] = []
        chunk.reserveCapacity(lines.reduce(0) { $0 + min($1.count, LineLimits.maxRecord) })
        var made: [(range: Range<Int>, oversized: Int?)] = []
        made.reserveCapacity(lines.count)
        for l in lines {
            let start = chunk.count
            if l.count > LineLimits.maxRecord {
                chunk.append(contentsOf: l.prefix(512))
                made.append((start..<chunk.count, l.count))
            } else {
                chunk.append(contentsOf: l)
                made.append((start..<chunk.count, nil))
            }
        }
        var digest = SHA256()
        digest.update(data: chunk)
        // Screened on both cores when the request is large (the pipeline waits for the batch either way).
        var passed = [Bool](repeating: false, count: made.count)
        let ranges = made
        if screen.screen.active {
            let parts = made.count >= 4_096 ? 2 : 1
            chunk.withUnsafeBufferPointer { buffer in
                passed.withUnsafeMutableBufferPointer { flags in
                    let out = UnsafeSendable(flags)
                    let input = UnsafeSendable(buffer)
                    let each = (made.count + parts - 1) / parts
                    DispatchQueue.concurrentPerform(iterations: parts) { part in
                        for k in (part * each)..<min(ranges.count, (part + 1) * each) where ranges[k].oversized == nil {
                            out.value[k] = screen.screen.screen(
                                UnsafeBufferPointer(rebasing: input.value[ranges[k].range]))
                        }
                    }
                }
            }
        }
        var out: [InputLine] = []
        out.reserveCapacity(made.count)
        for (k, m) in made.enumerated() {
            var line = InputLine(bytes: chunk[m.range], number: firstNumber + k, end: 0, oversized: m.oversized)
            line.screened = passed[k]
            out.append(line)
        }
        var batch = InputBatch(
            source: source, lines: out, offset: 0, lineNumber: firstNumber + lines.count - 1,
            digest: Array(digest.finalize()))
        batch.chunk = chunk
        batch.screenGeneration = screen.generation
        return batch
    }
}

/// Standard input, to its end.
public struct StandardInputSource: IngestSource {
    public init() {}
    public var name: String { "stdin" }
    public var ends: Bool { true }

    public func open(store: any StateStore, batchLines: Int, screens: ScreenSource?, logger: Logger) throws
        -> IngestFeed
    {
        let (stream, continuation) = AsyncStream.makeStream(of: InputBatch.self, bufferingPolicy: .unbounded)
        let gate = makeGate()
        let stop = StopFlag()
        let name = self.name
        let thread = Thread {
            var reader = LineReader(fd: 0)
            var batcher = Batcher(
                source: name, batchLines: batchLines, continuation: continuation, gate: gate, screens: screens)
            while !stop.isStopped {
                let next: LineReader.Line?
                do { next = try reader.next() } catch {
                    logger.error("ingest: standard input: \(error)")
                    break
                }
                guard let next else { break }
                batcher.add(next, end: reader.position)
                // Full, or the input paused (a slow pipe): what is read is not held back for the next line.
                if batcher.full || reader.waiting {
                    batcher.send(offset: reader.position, line: reader.line, marks: [])
                }
            }
            if !stop.isStopped { batcher.send(offset: reader.position, line: reader.line, marks: []) }
            continuation.finish()
        }
        thread.start()
        return IngestFeed(batches: stream, gate: gate, stop: stop)
    }
}

/// A file followed as it grows (`tail -F`): resumed at the committed offset when it is still the same file; a file
/// replaced (rotation: another inode at the path) or truncated (smaller than the position) is read from its start.
public struct FollowedFileSource: IngestSource {
    public let path: String
    /// How often the end of the file is polled.
    public var poll: Double = 0.005
    public init(path: String) { self.path = path }
    public var name: String { "file:" + path }
    public var ends: Bool { false }

    static func inodeKey(_ name: String) -> String { name + "#inode" }
    static func tailKey(_ name: String) -> String { name + "#tail" }

    public func open(store: any StateStore, batchLines: Int, screens: ScreenSource?, logger: Logger) throws
        -> IngestFeed
    {
        var offset = try store.offset(source: name) ?? 0
        var line = Int(try store.offset(source: name + "#line") ?? 0)
        let inode = try store.offset(source: Self.inodeKey(name))
        let tail = try store.offset(source: Self.tailKey(name))
        guard let now = LineReader.identity(path: path) else {
            throw IngestError.cannotOpen(path, "no such file")
        }
        if offset > 0, let inode, UInt64(bitPattern: inode) != now.inode {
            logger.warning("\(path) was replaced since the last run (rotation): reading the new file from its start")
            offset = 0
            line = 0
        } else if offset > 0 && offset <= now.size, let tail, LineReader.fingerprint(path: path, at: offset) != tail {
            // Same inode, other content before the position (replaced and the inode reused, or rewritten).
            logger.warning("\(path) is not the file read before (its content changed): reading it from its start")
            offset = 0
            line = 0
        } else if offset > now.size {
            logger.warning("\(path) is shorter than the committed position (truncated): reading it from its start")
            offset = 0
            line = 0
        }
        let first = try LineReader(path: path, offset: offset, line: line)  // fail here, not in the thread
        if offset > 0 { logger.info("resuming \(path) at byte \(offset) (line \(line + 1))") }
        let (stream, continuation) = AsyncStream.makeStream(of: InputBatch.self, bufferingPolicy: .unbounded)
        let gate = makeGate()
        let stop = StopFlag()
        let name = self.name
        let path = self.path
        let pause = useconds_t(poll * 1_000_000)
        let box = ReaderBox(first)
        let thread = Thread {
            var reader = box.take()
            reader.follow = true
            reader.verify = true
            var id = reader.identity
            var batcher = Batcher(
                source: name, batchLines: batchLines, continuation: continuation, gate: gate, screens: screens)
            func marks() -> [(String, Int64)] {
                (id.map { [(Self.inodeKey(name), Int64(bitPattern: $0.inode))] } ?? [])
                    + [(Self.tailKey(name), reader.fingerprint(at: reader.position))]
            }
            /// The file at `path` again, from its start (rotated, truncated, changed); false when it cannot be opened.
            func reopen(_ why: String) -> Bool {
                do {
                    reader = try LineReader(path: path)
                } catch {
                    logger.warning("\(path): \(error); waiting for it")
                    return false
                }
                reader.follow = true
                reader.verify = true
                id = reader.identity
                logger.warning("\(path) \(why): reading it from its start")
                return true
            }
            while !stop.isStopped {
                let next: LineReader.Line?
                do { next = try reader.next() } catch IngestError.changed {
                    // Truncated and written again, or replaced in place: what is buffered may mix old and new.
                    batcher.send(offset: reader.position, line: reader.line, marks: marks())
                    if reopen("changed under the reader (truncated or replaced)") { continue }
                    break
                } catch {
                    logger.error("ingest: \(path): \(error)")
                    break
                }
                if let next {
                    batcher.add(next, end: reader.position)
                    if batcher.full { batcher.send(offset: reader.position, line: reader.line, marks: marks()) }
                    continue
                }
                // At the end of what is there: hand over what is collected, then look for rotation or truncation.
                batcher.send(offset: reader.position, line: reader.line, marks: marks())
                if let current = LineReader.identity(path: path), let open = id {
                    let replaced = !current.sameFile(as: open)
                    let truncated = !replaced && current.size < reader.position
                    if replaced || truncated, reopen(replaced ? "was replaced (rotation)" : "was truncated") {
                        continue
                    }
                }
                usleep(pause)
            }
            continuation.finish()
        }
        thread.start()
        return IngestFeed(batches: stream, gate: gate, stop: stop)
    }
}

/// Moves a non-copyable reader into the reading thread.
final class ReaderBox: @unchecked Sendable {
    private var reader: LineReader?
    init(_ r: consuming LineReader) { reader = consume r }
    func take() -> LineReader {
        guard let r = reader.take() else { fatalError("reader taken twice") }
        return r
    }
}
