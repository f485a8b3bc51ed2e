import TriplineIngest
import TriplineJSON
import TriplineRules
import TriplineSelectors

/// Reads NDJSON selector records from files or standard input; every bad line becomes one error object
/// (`{"line", "id", "error"}`, plus `"file"` for named files) and the stream goes on.
struct SelectorStream {
    let normalizer: SelectorNormalizer
    let rejects: OutputStream
    private(set) var rejected = 0
    private(set) var accepted = 0

    init(normalizer: SelectorNormalizer, rejects: OutputStream) {
        self.normalizer = normalizer
        self.rejects = rejects
    }

    /// Lines `screen` passes (accepted, nothing to do) skip the full step; `each` gets every other accepted record.
    var screen: ((UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<Range<Int>>, Int) -> Int)?

    mutating func run(files: [String], _ each: (NormalizedSelector) -> Void) throws(CLIError) {
        if files.isEmpty || files == ["-"] {
            var reader = LineReader(fd: 0)
            try consume(&reader, file: nil, each)
        } else {
            for f in files {
                var reader: LineReader
                do { reader = try LineReader(path: f) } catch { throw CLIError.io(error.description) }
                try consume(&reader, file: f, each)
            }
        }
        rejects.flush()
    }

    /// `run` on two cores (`BlockFeed`): reading and part of the screening on a second thread; `each` is still
    /// called on this thread, in input order, with the same records as `run`.
    mutating func run(files: [String], twoCores screen: RecordScreen, _ each: (NormalizedSelector) -> Void)
        throws(CLIError)
    {
        let feed = BlockFeed(files: files, screen: screen)
        defer { rejects.flush() }
        while var b = feed.next() {
            if let e = b.error {
                while feed.next() != nil {}  // the reader has stopped; let its thread end
                throw CLIError.io(e)
            }
            if let o = b.oversized {
                let r = RecordStep.oversized(length: o.length, head: o.head[...])
                reject(file: b.file, line: o.line, id: r.id, r.message)
                continue
            }
            if b.pending == nil { BlockFeed.screen(&b, with: screen) }
            let pending = b.pending!
            accepted += b.lines.count - pending.count
            for k in pending {
                let line = b.firstLine + Int(k)
                do {
                    guard let n = try RecordStep.prepare(b.bytes[b.lines[Int(k)]], normalizer: normalizer) else {
                        continue
                    }
                    accepted += 1
                    each(n)
                } catch {
                    reject(file: b.file, line: line, id: error.id, error.message)
                }
            }
            feed.recycle(b)
        }
    }

    private mutating func consume(_ reader: inout LineReader, file: String?, _ each: (NormalizedSelector) -> Void)
        throws(CLIError)
    {
        while true {
            let next: LineReader.Line?
            let before = reader.passed
            do { next = try reader.next(passing: screen) } catch { throw CLIError.io(error.description) }
            accepted += reader.passed - before
            guard let next else { return }
            switch next {
            case .oversized(let line, let length, let head):
                let r = RecordStep.oversized(length: length, head: head[...])
                reject(file: file, line: line, id: r.id, r.message)
            case .record(let bytes, let line):
                do {
                    guard let n = try RecordStep.prepare(bytes, normalizer: normalizer) else { continue }
                    accepted += 1
                    each(n)
                } catch {
                    reject(file: file, line: line, id: error.id, error.message)
                }
            }
        }
    }

    private mutating func reject(file: String?, line: Int, id: String?, _ message: String) {
        rejected += 1
        var o = JSONObject()
        if let file { o.append("file", .string(file)) }
        o.append("line", .number(String(line)))
        if let id { o.append("id", .string(id)) }
        o.append("error", .string(message))
        rejects.writeLine(o)
    }
}
