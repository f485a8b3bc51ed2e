import Foundation
import TriplineJSON

/// Checks a checkpoint note and proofs with Go's golang.org/x/mod (sumdb/note, sumdb/tlog) through
/// scripts/tlogcheck.go — the independent checker. `proofs`: {"inclusion": [{index, leaf, proof}], "consistency":
/// [{size, root, proof}]}, hashes in base64. The checker's exit status and output.
public func tlogCheck(vkey: String, note: String, proofs: JSONValue) throws -> (Int32, String) {
    let dir = scratchDirectory("tlog")
    defer { try? FileManager.default.removeItem(at: dir) }
    try note.write(to: dir.appendingPathComponent("note"), atomically: true, encoding: .utf8)
    try JSONWriter.string(proofs).write(
        to: dir.appendingPathComponent("proofs.json"), atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [
        "go", "run", repositoryRoot.appendingPathComponent("scripts/tlogcheck.go").path, vkey,
        dir.appendingPathComponent("note").path, dir.appendingPathComponent("proofs.json").path,
    ]
    var env = ProcessInfo.processInfo.environment
    env["GO111MODULE"] = "off"
    env["GOPATH"] = "/usr/share/gocode"
    env["GOCACHE"] = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-gocache").path
    env.removeValue(forKey: "GOFLAGS")
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

/// Whether Go and golang.org/x/mod are installed (scripts/setup.sh --peers).
public var tlogCheckerInstalled: Bool {
    FileManager.default.fileExists(atPath: "/usr/share/gocode/src/golang.org/x/mod/sumdb/note")
}
