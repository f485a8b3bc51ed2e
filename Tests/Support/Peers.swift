import Foundation
import TriplineJSON

// What several test suites share: scratch directories, waiting, and the real peers the tests talk to (an SMTP
// server, a webhook receiver), started by a test and stopped after it.

public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

public func scratchDirectory(_ tag: String) -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-\(tag)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

public func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

public func readRecords(_ path: String) -> [JSONObject] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)).objectValue }
}

/// A peer process (one of the Python test peers in scripts/) that writes the port it listens on to a file and
/// logs what it receives as NDJSON; started by a test, stopped after it.
public class Peer {
    let process = Process()
    public let dir: URL
    public let port: Int
    public let log: String

    /// Runs `script` with the port file and log path placed by `arguments(portfile, log)`.
    init(script: String, what: String, arguments: (String, String) -> [String]) throws {
        dir = scratchDirectory("peer")
        log = dir.appendingPathComponent("received.ndjson").path
        let portfile = dir.appendingPathComponent("port").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            ["python3", repositoryRoot.appendingPathComponent("scripts/" + script).path] + arguments(portfile, log)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        guard waitUntil(15, { FileManager.default.fileExists(atPath: portfile) }) else {
            process.terminate()
            throw TestFailure("the \(what) did not start (are the test peers installed? scripts/setup.sh --peers)")
        }
        self.port = Int((try? String(contentsOfFile: portfile, encoding: .utf8)) ?? "") ?? 0
    }

    /// Every record logged so far.
    public var received: [JSONObject] { readRecords(log) }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: dir)
    }
}

/// A real SMTP server (aiosmtpd, scripts/smtp_receiver.py): each accepted message parsed back by Python's
/// `email` package and logged.
public final class SMTPServer: Peer {
    public init(_ arguments: [String] = [], port: Int = 0) throws {
        try super.init(script: "smtp_receiver.py", what: "SMTP server") { portfile, log in
            [portfile, log, "--port", String(port)] + arguments
        }
    }
}

/// An SMTP server that breaks the rules on purpose (scripts/smtp_misbehave.py): `mode` is `silent`, `endless`,
/// `trickle`, `slow`, `echo-auth` or `starttls-junk`; it logs the commands it gets and the messages it accepts.
public final class MisbehavingSMTPServer: Peer {
    public init(_ mode: String, delay: Double? = nil, tls: (cert: String, key: String)? = nil) throws {
        try super.init(script: "smtp_misbehave.py", what: "misbehaving SMTP server") { portfile, log in
            [portfile, log, mode] + (delay.map { ["--delay", String($0)] } ?? [])
                + (tls.map { ["--tls", $0.cert, $0.key] } ?? [])
        }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A self-signed certificate for `localhost` (openssl), as CA file and server certificate at once.
public func localhostCertificate(_ dir: URL) throws -> (cert: String, key: String) {
    let cert = dir.appendingPathComponent("cert.pem").path
    let key = dir.appendingPathComponent("key.pem").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
    ]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw TestFailure("openssl could not make a certificate") }
    return (cert, key)
}

public func header(_ record: JSONObject, _ name: String) -> String? {
    record["headers"]?.arrayValue?.compactMap(\.arrayValue).first {
        $0.first?.stringValue?.lowercased() == name.lowercased()
    }?.last?.stringValue
}

/// A real HTTP webhook receiver (scripts/webhook_receiver.py) checking every signature with the
/// `standardwebhooks` package; answers with `statuses` in turn, then 200.
public final class WebhookReceiver: Peer {
    public init(secret: String, statuses: String = "", arguments: [String] = []) throws {
        try super.init(script: "webhook_receiver.py", what: "webhook receiver") { portfile, log in
            [portfile, secret, log, statuses] + arguments
        }
    }
}

/// A loopback TCP socket bound to a free port, listening when `listen` (it accepts into the backlog and never
/// answers: a silent server); the caller closes `fd`.
public func loopbackSocket(listen: Bool) -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    if listen { _ = Glibc.listen(fd, 4) }
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

/// A TCP port nobody listens on right now (bound, read, released), for a peer that starts later.
public func freePort() -> Int {
    let (fd, port) = loopbackSocket(listen: false)
    close(fd)
    return port
}

/// Another process (Python's sqlite3) holding a database's write lock (`BEGIN IMMEDIATE`) until `release()`: the
/// locked database of the fault tests.
public final class DatabaseLocker {
    let process = Process()
    let input = Pipe()
    public init(_ path: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import signal, sqlite3, sys
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
            c.execute('BEGIN IMMEDIATE')
            print('locked', flush=True)
            sys.stdin.readline()
            c.execute('ROLLBACK')
            """,
            path,
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = input
        try process.run()
        let said = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        guard said.hasPrefix("locked") else { throw TestFailure("the locker did not lock: \(said)") }
    }

    public func release() {
        try? input.fileHandleForWriting.write(contentsOf: Data("\n".utf8))
        process.waitUntilExit()
    }
}

/// `python3 ARGS…`: its standard output; a non-zero exit throws with the arguments (stderr passes through).
public func python3(_ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3"] + args
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let d = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw TestFailure("python3 \(args) exited \(p.terminationStatus)") }
    return String(decoding: d, as: UTF8.self)
}
