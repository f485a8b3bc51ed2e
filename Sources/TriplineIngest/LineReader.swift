#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads newline-delimited records from a file descriptor in large chunks, without per-line copies
/// beyond the record itself. A line over `maxRecord` bytes is reported as oversized and skipped to its end,
/// so one bad record never stops the stream.
public struct LineReader: ~Copyable {
    public enum Line {
        /// The record's bytes (without the newline or a trailing CR) and its 1-based line number.
        case record(ArraySlice<UInt8>, line: Int)
        /// A line over the limit, skipped; `head` is its first bytes (enough to name the record's id).
        case oversized(line: Int, length: Int, head: [UInt8])
    }

    /// How much of an oversized line is kept for its error message.
    public static let headLength = 512

    public static let defaultMaxRecord = 64 * 1024

    private let fd: Int32
    private let ownsFD: Bool
    private let maxRecord: Int
    /// The most one `read` asks for (nil: the free buffer space): small values cut the input anywhere.
    private let readSize: Int?
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    private var lineNumber = 0
    private var skipping = false
    private var skippedLength = 0
    private var skippedHead: [UInt8] = []
    private var totalRead: Int64 = 0
    /// Follow mode (`tail -f`): at the current end of the file `next()` returns nil without ending the input,
    /// and a last line without a newline waits for it.
    public var follow = false
    /// Before each read, check that the bytes just before the read position are still those read there: a file
    /// truncated and written again (even past the old size) or replaced in place throws `IngestError.changed`.
    public var verify = false
    /// The last bytes read (at most `fingerprintLength`), for `verify`.
    private var recent: [UInt8] = []
    public static let fingerprintLength = 64

    /// Byte offset just past the last line returned (where a restart resumes) — never inside a line, not even
    /// an oversized one still being skipped.
    public var position: Int64 { consumed }
    private var consumed: Int64 = 0
    /// Line number of the last line returned.
    public var line: Int { lineNumber }

    /// Reads standard input (fd 0) or any open descriptor.
    /// `readSize` bounds each read (the fuzz target cuts its input at every boundary with it).
    public init(fd: Int32 = 0, maxRecord: Int = LineReader.defaultMaxRecord, ownsFD: Bool = false, readSize: Int? = nil)
    {
        self.fd = fd
        self.ownsFD = ownsFD
        self.maxRecord = maxRecord
        self.readSize = readSize.map { max(1, $0) }
        self.buffer = [UInt8](repeating: 0, count: max(1 << 20, maxRecord * 2))
    }

    /// Opens a file for reading; throws the errno text when it cannot. `offset` and `line` resume a previous read.
    public init(path: String, maxRecord: Int = LineReader.defaultMaxRecord, offset: Int64 = 0, line: Int = 0)
        throws(IngestError)
    {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw IngestError.cannotOpen(path, String(cString: strerror(errno))) }
        if offset > 0 && lseek(fd, off_t(offset), SEEK_SET) < 0 {
            close(fd)
            throw IngestError.cannotOpen(path, String(cString: strerror(errno)))
        }
        self.init(fd: fd, maxRecord: maxRecord, ownsFD: true)
        totalRead = offset
        consumed = offset
        lineNumber = line
    }

    deinit { if ownsFD { close(fd) } }

    /// The open file's device and inode (a followed file replaced by rotation has another).
    public var identity: FileIdentity? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size))
    }

    /// What is at `path` now, if anything.
    public static func identity(path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size))
    }

    /// The next line, or nil at end of input.
    public mutating func next() throws(IngestError) -> Line? { try next(passing: nil) }

    /// How many lines `next(passing:)` passed over.
    public private(set) var passed = 0

    /// The next line `pass` does not pass over, or nil at end of input. `pass` sees runs of up to `run` complete
    /// lines within the size limit in place — the buffer up to the end of what was read, the lines' ranges in it
    /// and the first one's line number; no copy, no reference counting per line — and answers how many of them,
    /// from the first, it passes over; those are consumed and counted in `passed` (the record step's screen,
    /// issue 17).
    public mutating func next(
        passing pass: ((UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<Range<Int>>, Int) -> Int)?, run: Int = 8
    ) throws(IngestError) -> Line? {
        while true {
            if let pass, !skipping { passBuffered(pass, run: max(1, run)) }
            // Look for a newline in what is buffered.
            if let nl = findNewline() {
                let lineStart = start
                start = nl + 1
                lineNumber += 1
                consumed = totalRead - Int64(end - start)
                if skipping {
                    skipping = false
                    return .oversized(line: lineNumber, length: skippedLength + (nl - lineStart), head: skippedHead)
                }
                var lineEnd = nl
                if lineEnd > lineStart && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                if nl - lineStart > maxRecord {
                    return .oversized(
                        line: lineNumber, length: nl - lineStart,
                        head: Array(buffer[lineStart..<lineStart + min(Self.headLength, nl - lineStart)]))
                }
                return .record(buffer[lineStart..<lineEnd], line: lineNumber)
            }
            if eof && follow {
                eof = false
                return nil
            }
            if eof {
                if start < end || skipping {
                    lineNumber += 1
                    let s = start
                    start = end
                    consumed = totalRead
                    if skipping || end - s > maxRecord {
                        let head = skipping ? skippedHead : Array(buffer[s..<s + min(Self.headLength, end - s)])
                        skipping = false
                        return .oversized(line: lineNumber, length: skippedLength + end - s, head: head)
                    }
                    var lineEnd = end
                    if buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                    return .record(buffer[s..<lineEnd], line: lineNumber)
                }
                return nil
            }
            // A line longer than the limit: drop what we have of it and keep reading to its end.
            if end - start > maxRecord {
                if !skipping {
                    skipping = true
                    skippedLength = 0
                    skippedHead = Array(buffer[start..<start + min(Self.headLength, end - start)])
                }
                skippedLength += end - start
                start = 0
                end = 0
            }
            try fill()
        }
    }

    private mutating func passBuffered(
        _ pass: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<Range<Int>>, Int) -> Int, run size: Int
    ) {
        var s = start
        var n = 0
        let (e, limit, first) = (end, maxRecord, lineNumber + 1)
        buffer.withUnsafeBufferPointer { buf in
            withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: size) { run in
                let base = buf.baseAddress!
                while true {
                    // Up to `size` complete lines from s on; `next` is where the line after them starts.
                    var k = 0
                    var next = s
                    while k < size && next < e, let p = memchr(base + next, 0x0A, e - next) {
                        let nl = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
                        if nl - next > limit { break }
                        var lineEnd = nl
                        if lineEnd > next && buf[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                        run[k] = next..<lineEnd
                        k += 1
                        next = nl + 1
                    }
                    if k == 0 { return }
                    // The buffer up to the end of what was read: a screen may look further ahead in it.
                    let read = UnsafeBufferPointer(rebasing: buf[..<e])
                    let passed = min(k, pass(read, UnsafeBufferPointer(rebasing: run[..<k]), first + n))
                    if passed <= 0 { return }
                    // Past the last passed line and its newline (and CR).
                    s = passed == k ? next : run[passed].lowerBound
                    n += passed
                    if passed < k { return }
                }
            }
        }
        if n > 0 {
            start = s
            lineNumber += n
            passed += n
            consumed = totalRead - Int64(end - start)
        }
    }

    /// True when no complete line is buffered and none is ready to be read: `next()` would wait for input (a slow
    /// pipe). A regular file is always ready.
    public var waiting: Bool {
        if findNewline() != nil { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    private func findNewline() -> Int? {
        buffer.withUnsafeBufferPointer { buf -> Int? in
            guard start < end else { return nil }
            let p = memchr(buf.baseAddress! + start, 0x0A, end - start)
            guard let p else { return nil }
            return buf.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
        }
    }

    private mutating func fill() throws(IngestError) {
        if start > 0 {
            let n = end - start
            if n > 0 {
                buffer.withUnsafeMutableBufferPointer { b in
                    _ = memmove(b.baseAddress!, b.baseAddress! + start, n)
                }
            }
            start = 0
            end = n
        }
        if end == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
        if verify && !recent.isEmpty {
            var probe = [UInt8](repeating: 0, count: recent.count)
            let n = probe.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress, recent.count, off_t(totalRead) - off_t(recent.count))
            }
            if n != recent.count || probe != recent { throw IngestError.changed }
        }
        let capacity = min(buffer.count - end, readSize ?? Int.max)
        let got = buffer.withUnsafeMutableBufferPointer { b in read(fd, b.baseAddress! + end, capacity) }
        if got < 0 {
            if errno == EINTR { return }
            throw IngestError.readFailed(String(cString: strerror(errno)))
        }
        if got == 0 {
            eof = true
        } else {
            if verify {
                let k = Self.fingerprintLength
                recent = Array((recent + buffer[max(end, end + got - k)..<(end + got)]).suffix(k))
            }
            end += got
            totalRead += Int64(got)
        }
    }

    /// A hash of the bytes just before `offset` in the open file (up to `fingerprintLength`): committed with the
    /// position, so that a restart can tell the same file from another one that reuses its inode.
    public func fingerprint(at offset: Int64) -> Int64 { Self.fingerprint(fd: fd, at: offset) }

    /// The same for the file at `path` now (nil if it cannot be read).
    public static func fingerprint(path: String, at offset: Int64) -> Int64? {
        let fd = open(path, O_RDONLY)
        if fd < 0 { return nil }
        defer { close(fd) }
        return fingerprint(fd: fd, at: offset)
    }

    static func fingerprint(fd: Int32, at offset: Int64) -> Int64 {
        let k = Int(min(Int64(fingerprintLength), offset))
        var bytes = [UInt8](repeating: 0, count: k)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, k, off_t(offset) - off_t(k)) }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in bytes.prefix(max(0, n)) {
            h ^= UInt64(b)
            h &*= 0x100_0000_01b3
        }
        h ^= UInt64(max(0, n))
        return Int64(bitPattern: h)
    }
}

/// A file's identity for `tail -F`: the same device and inode is the same file; a size below the read position
/// means it was truncated.
public struct FileIdentity: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public func sameFile(as o: FileIdentity) -> Bool { device == o.device && inode == o.inode }
}

/// Ingest failures (I/O, not bad records: those are reported per line).
public enum IngestError: Error, CustomStringConvertible {
    case cannotOpen(String, String)
    case readFailed(String)
    /// The bytes already read are no longer in the file (truncated and rewritten, or replaced in place).
    case changed

    public var description: String {
        switch self {
        case .cannotOpen(let path, let why): "\(path): \(why)"
        case .readFailed(let why): "read failed: \(why)"
        case .changed: "the file changed under the reader (truncated or replaced)"
        }
    }
}
