import TriplineIngest
import TriplineJSON
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

    private mutating func consume(_ reader: inout LineReader, file: String?, _ each: (NormalizedSelector) -> Void)
        throws(CLIError)
    {
        while true {
            let next: LineReader.Line?
            do { next = try reader.next() } catch { throw CLIError.io(error.description) }
            guard let next else { return }
            switch next {
            case .oversized(let line, let length):
                reject(file: file, line: line, id: nil, "record of \(length) bytes is over the 64 KiB limit")
            case .record(let bytes, let line):
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }  // blank line
                let parsed = bytes.withUnsafeBufferPointer { buf in
                    Result { () throws(JSONError) -> JSONValue in try JSONParser.parse(buf) }
                }
                let value: JSONValue
                switch parsed {
                case .failure(let e):
                    reject(file: file, line: line, id: Self.salvageID(bytes), "invalid JSON: \(e.description)")
                    continue
                case .success(let v): value = v
                }
                guard case .object(let o) = value else {
                    reject(
                        file: file, line: line, id: nil,
                        "a selector record must be a JSON object, not \(value.typeName)")
                    continue
                }
                let id = o["id"]?.stringValue
                do {
                    let input = try SelectorInput(json: o)
                    let n = try normalizer.normalize(input)
                    accepted += 1
                    each(n)
                } catch {
                    reject(file: file, line: line, id: id, error.message)
                }
            }
        }
    }

    /// Best effort for a line that is not valid JSON: the text of a leading `"id": "..."` member, when it is
    /// plain valid UTF-8 without escapes, so the error still names the record.
    static func salvageID(_ bytes: ArraySlice<UInt8>) -> String? {
        let key = Array(#""id""#.utf8)
        guard let start = bytes.indices.first(where: { bytes[$0...].starts(with: key) }) else { return nil }
        var i = start + key.count
        while i < bytes.endIndex && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
        guard i < bytes.endIndex, bytes[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        while i < bytes.endIndex && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
        guard i < bytes.endIndex, bytes[i] == UInt8(ascii: "\"") else { return nil }
        let from = i + 1
        var j = from
        while j < bytes.endIndex && bytes[j] != UInt8(ascii: "\"") && bytes[j] != UInt8(ascii: "\\") && j - from < 256 {
            j += 1
        }
        guard j < bytes.endIndex, bytes[j] == UInt8(ascii: "\""), j > from else { return nil }
        return String(validating: bytes[from..<j], as: UTF8.self)
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
