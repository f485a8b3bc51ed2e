import Foundation
import TriplineIngest
import TriplineRules

/// `match` on two cores (issue 17). A reading thread reads the input in blocks of lines, copied out of the reader's
/// buffer in order, and screens a block itself whenever the calling thread has blocks waiting; the calling thread
/// takes the blocks in order, screens those still unscreened, and runs the full record step on the lines the screen
/// did not pass. Records, hits, rejections and their order are those of one thread, and every piece of state (the
/// step, its rules and correlation windows, the output) stays on the calling thread: only bytes cross.
final class BlockFeed: @unchecked Sendable {
    struct Block: Sendable {
        var bytes: [UInt8] = []
        /// Each line's bytes in `bytes` (without its newline or a trailing CR); line k is number `firstLine + k`.
        var lines: [Range<Int>] = []
        var firstLine = 1
        var file: String?
        /// Indexes of the lines the screen did not pass, in order; nil: not screened yet.
        var pending: [Int32]?
        /// Instead of lines: one line over the size limit, or the reader's error (the input ends there).
        var oversized: (line: Int, length: Int, head: [UInt8])?
        var error: String?
    }

    /// Lines and bytes per block (whichever comes first: 2,048 lines of 64 KiB would be 128 MiB a block), and
    /// blocks the reader may be ahead; a spare block bigger than `spareBytes` is freed, not kept.
    static let blockLines = 2_048
    static let blockBytes = 1 << 20
    static let depth = 8
    static let spareBytes = 4 << 20

    private let condition = NSCondition()
    private var queue: [Block] = []
    private var spare: [Block] = []
    private var finished = false
    private let screen: RecordScreen

    /// Starts reading `files` (standard input when empty or `["-"]`) on a thread of its own.
    init(files: [String], screen: RecordScreen) {
        self.screen = screen
        let t = Thread { [self] in read(files.isEmpty || files == ["-"] ? [nil] : files.map { Optional($0) }) }
        t.stackSize = 8 << 20
        t.start()
    }

    /// The next block in input order, or nil when the input is done. On the calling thread.
    func next() -> Block? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished { condition.wait() }
        if queue.isEmpty { return nil }
        let b = queue.removeFirst()
        condition.broadcast()
        return b
    }

    /// Gives a done block's buffers back to the reader to fill again (memory is then freed on the thread that
    /// allocated it, and allocated once).
    func recycle(_ b: consuming Block) {
        guard b.bytes.capacity <= Self.spareBytes else { return }
        condition.lock()
        if spare.count < Self.depth + 1 { spare.append(b) }
        condition.unlock()
    }

    /// Screens the block's lines, in runs of `RecordScreen.batch`, recording the ones not passed.
    static func screen(_ b: inout Block, with screen: RecordScreen) {
        var pending: [Int32] = []
        if !screen.active {
            b.pending = b.lines.indices.map { Int32($0) }
            return
        }
        b.bytes.withUnsafeBufferPointer { buf in
            b.lines.withUnsafeBufferPointer { lines in
                var i = 0
                while i < lines.count {
                    let run = min(RecordScreen.batch, lines.count - i)
                    let n = screen.screen(buf, lines: UnsafeBufferPointer(rebasing: lines[i..<(i + run)]))
                    i += n
                    if n < run {
                        pending.append(Int32(i))
                        i += 1
                    }
                }
            }
        }
        b.pending = pending
    }

    private func read(_ files: [String?]) {
        defer {
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        for file in files {
            var reader: LineReader
            if let file {
                do { reader = try LineReader(path: file) } catch {
                    push(Block(file: file, error: error.description))
                    return
                }
            } else {
                reader = LineReader(fd: 0)
            }
            var block = fresh(file)
            func submit() {
                if block.lines.isEmpty { return }
                push(block)
                block = fresh(file)
            }
            func add(_ bytes: UnsafeBufferPointer<UInt8>, line: Int) {
                if block.lines.isEmpty {
                    block.firstLine = line
                } else if line != block.firstLine + block.lines.count {
                    submit()
                    block.firstLine = line
                }
                let s = block.bytes.count
                block.bytes.append(contentsOf: bytes)
                block.bytes.append(0x0A)
                block.lines.append(s..<(s + bytes.count))
                if block.lines.count >= Self.blockLines || block.bytes.count >= Self.blockBytes { submit() }
            }
            while true {
                let next: LineReader.Line?
                do {
                    next = try reader.next(
                        passing: { buf, ranges, first in
                            for (k, r) in ranges.enumerated() {
                                add(UnsafeBufferPointer(rebasing: buf[r]), line: first + k)
                            }
                            return ranges.count
                        }, run: 64)
                } catch {
                    submit()
                    push(Block(file: file, error: error.description))
                    return
                }
                guard let next else { break }
                switch next {
                case .record(let bytes, let line):
                    bytes.withUnsafeBufferPointer { add($0, line: line) }
                case .oversized(let line, let length, let head):
                    submit()
                    push(Block(file: file, oversized: (line, length, head)))
                }
            }
            submit()
        }
    }

    private func fresh(_ file: String?) -> Block {
        condition.lock()
        var b = spare.popLast() ?? Block()
        condition.unlock()
        b.bytes.removeAll(keepingCapacity: true)
        b.lines.removeAll(keepingCapacity: true)
        b.pending = nil
        b.file = file
        return b
    }

    /// Queues a block; screens it first when the calling thread has two blocks or more waiting (it is the busier one
    /// then; at one, the reader screening a block left the other thread idle ~150 times in a 3M-line stream).
    private func push(_ block: Block) {
        var b = block
        condition.lock()
        let behind = queue.count >= 2
        condition.unlock()
        if behind && b.oversized == nil && b.error == nil { Self.screen(&b, with: screen) }
        condition.lock()
        while queue.count >= Self.depth { condition.wait() }
        queue.append(b)
        condition.broadcast()
        condition.unlock()
    }
}
