import TriplineJSON

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Buffered output to a file descriptor (standard output, standard error or a file).
final class OutputStream {
    private let fd: Int32
    private let owns: Bool
    private var buffer: [UInt8] = []
    private(set) var failed: String?

    init(fd: Int32) {
        self.fd = fd
        self.owns = false
        buffer.reserveCapacity(1 << 16)
    }

    init(path: String) throws(CLIError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw CLIError.io("\(path): \(String(cString: strerror(errno)))") }
        self.fd = fd
        self.owns = true
    }

    deinit {
        flush()
        if owns { close(fd) }
    }

    func write(_ bytes: [UInt8]) {
        buffer += bytes
        if buffer.count >= 1 << 16 { flush() }
    }

    func write(_ s: String) { write(Array(s.utf8)) }

    func writeLine(_ o: JSONObject) {
        var w = JSONWriter()
        w.write(o)
        w.bytes.append(0x0A)
        write(w.bytes)
    }

    func flush() {
        var off = 0
        while off < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, buffer.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                failed = String(cString: strerror(errno))
                break
            }
            off += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Command-line failures that end a command with exit status 2 (I/O) or 1 (invalid input).
enum CLIError: Error, CustomStringConvertible {
    case io(String)
    case invalid(String)
    var description: String {
        switch self {
        case .io(let s), .invalid(let s): s
        }
    }
}
