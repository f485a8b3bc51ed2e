import Foundation
import Testing
import TriplineJSON

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

func scratchDirectory(_ tag: String) -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-\(tag)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

func readRecords(_ path: String) -> [JSONObject] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)).objectValue }
}

/// A real SMTP server (aiosmtpd, scripts/smtp_receiver.py) started for a test and stopped after it.
final class SMTPServer {
    let process = Process()
    let dir: URL
    let port: Int
    let log: String

    init(_ arguments: [String] = [], port: Int = 0) throws {
        dir = scratchDirectory("smtp")
        log = dir.appendingPathComponent("received.ndjson").path
        let portfile = dir.appendingPathComponent("port").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", repositoryRoot.appendingPathComponent("scripts/smtp_receiver.py").path, portfile, log,
                "--port", String(port),
            ] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        guard waitUntil(15, { FileManager.default.fileExists(atPath: portfile) }) else {
            process.terminate()
            throw TestFailure("the SMTP server did not start (is aiosmtpd installed? scripts/setup.sh --peers)")
        }
        self.port = Int((try? String(contentsOfFile: portfile, encoding: .utf8)) ?? "") ?? 0
    }

    var received: [JSONObject] { readRecords(log) }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: dir)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A self-signed certificate for `localhost` (openssl), as CA file and server certificate at once.
func localhostCertificate(_ dir: URL) throws -> (cert: String, key: String) {
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

func header(_ record: JSONObject, _ name: String) -> String? {
    record["headers"]?.arrayValue?.compactMap(\.arrayValue).first {
        $0.first?.stringValue?.lowercased() == name.lowercased()
    }?.last?.stringValue
}
