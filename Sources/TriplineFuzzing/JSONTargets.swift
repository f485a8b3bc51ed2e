import Glibc
import TriplineIngest
import TriplineJSON

/// The NDJSON line reader and the JSON parser.
enum JSONTargets {
    /// One JSON document. Properties: input that is not UTF-8 is refused; what is accepted and written out again
    /// reads back as the same value (key order and number text kept).
    static let json = FuzzTarget(name: "json", maxLength: 8192) { bytes throws(FuzzFailure) in
        let parsed: JSONValue
        do { parsed = try JSONParser.parse(bytes) } catch { return }
        try FuzzTarget.check(
            String(validating: bytes, as: UTF8.self) != nil, "json", "accepted input that is not UTF-8")
        var w = JSONWriter()
        w.write(parsed)
        let again: JSONValue
        do { again = try JSONParser.parse(w.bytes) } catch {
            throw FuzzFailure(target: "json", message: "its own output does not parse: \(error)")
        }
        try FuzzTarget.check(again == parsed, "json", "written and read again, the value changed")
    }

    /// A stream through the line reader, cut into reads of 1–64 bytes (the first input byte chooses), records of at
    /// most 48 bytes, each record through the JSON parser. Property: the reader returns exactly the input's lines —
    /// numbered from 1, a trailing CR dropped, lines over the limit reported as oversized with their full length
    /// and a head that starts them — whatever the cuts.
    static let ndjson = FuzzTarget(name: "ndjson", maxLength: 4096) { input throws(FuzzFailure) in
        guard let first = input.first else { return }
        let bytes = Array(input.dropFirst())
        let maxRecord = 48
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fatalError("pipe: \(errno)") }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
            if n <= 0 { fatalError("write to pipe: \(errno)") }
            written += n
        }
        close(fds[1])
        var reader = LineReader(fd: fds[0], maxRecord: maxRecord, ownsFD: true, readSize: Int(first % 64) + 1)
        var expected = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if expected.last?.isEmpty == true { expected.removeLast() }
        var number = 0
        while true {
            let line: LineReader.Line?
            do { line = try reader.next() } catch {
                throw FuzzFailure(target: "ndjson", message: "reading a pipe failed: \(error)")
            }
            guard let line else { break }
            number += 1
            try FuzzTarget.check(number <= expected.count, "ndjson", "more lines than the input has")
            let want = expected[number - 1]
            switch line {
            case .record(let record, let n):
                try FuzzTarget.check(n == number, "ndjson", "line \(number) numbered \(n)")
                try FuzzTarget.check(want.count <= maxRecord, "ndjson", "line \(n) over the limit returned")
                let body = want.last == 0x0D ? want.dropLast() : want
                try FuzzTarget.check(record.elementsEqual(body), "ndjson", "line \(n) read as other bytes")
                _ = try? JSONParser.parse(Array(record))
            case .oversized(let n, let length, let head):
                try FuzzTarget.check(n == number, "ndjson", "line \(number) numbered \(n)")
                try FuzzTarget.check(
                    length == want.count && length > maxRecord, "ndjson",
                    "oversized line \(n) of \(want.count) bytes reported as \(length)")
                try FuzzTarget.check(
                    !head.isEmpty && head.count <= LineReader.headLength && want.starts(with: head), "ndjson",
                    "oversized line \(n): head is not its start")
            }
        }
        try FuzzTarget.check(number == expected.count, "ndjson", "\(number) lines of \(expected.count) read")
    }
}
