import ArgumentParser
import Foundation
import TriplineAlerts
import TriplineAudit
import TriplineConfig
import TriplineJSON
import TriplineSelectors
import TriplineState
import TriplineStateSQLite

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The tamper-evident audit log: keys, checkpoints, verification, proofs, queries, export.",
        subcommands: [Keygen.self, Checkpoint_.self, Verify.self, Prove.self, Query.self, Export.self, Erase.self])

    struct Common: ParsableArguments {
        @Option(help: "Configuration file.") var config: String?

        func open() throws -> (Configuration, any DurableStore) {
            let c = try loadSettings(config: config)
            do {
                return (c, try StateStores.open(c.state))
            } catch {
                printError("tripline: \(error)")
                throw ExitCode(2)
            }
        }

        func signer(_ c: Configuration) throws -> NoteSigner {
            guard let path = c.audit["key_file"] else {
                throw ValidationError(
                    "the configuration names no audit.key_file (make one with `tripline audit keygen`)")
            }
            guard let d = FileManager.default.contents(atPath: path) else {
                printError("tripline: cannot read the audit key \(path)")
                throw ExitCode(2)
            }
            do { return try NoteSigner(text: String(decoding: d, as: UTF8.self)) } catch {
                printError("tripline: \(path): \(error)")
                throw ExitCode(1)
            }
        }

        func origin(_ c: Configuration) -> String { c.audit["origin"] ?? "tripline.local/audit" }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new Ed25519 signed-note key to a file (mode 0600) and print its verifier key.")
        @OptionGroup var common: Common
        @Option(help: "Key name (default: the configuration's audit.origin).") var name: String?
        @Option(help: "Private key file (default: the configuration's audit.key_file).") var out: String?

        func run() throws {
            let c = try loadSettings(config: common.config)
            guard let path = out ?? c.audit["key_file"] else { throw ValidationError("--out FILE or audit.key_file") }
            if FileManager.default.fileExists(atPath: path) {
                throw ValidationError("\(path) exists: not overwriting an audit key")
            }
            let signer = try NoteSigner(name: name ?? common.origin(c))
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            guard
                FileManager.default.createFile(
                    atPath: path, contents: Data((signer.text + "\n").utf8), attributes: [.posixPermissions: 0o600])
            else {
                printError("tripline: cannot write \(path)")
                throw ExitCode(2)
            }
            print(signer.verifier.text)
        }
    }

    struct Checkpoint_: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "checkpoint", abstract: "Sign the current tree head and print the checkpoint (a signed note).")
        @OptionGroup var common: Common
        func run() throws {
            let (c, store) = try common.open()
            let note = try store.checkpoint(
                origin: common.origin(c), signer: try common.signer(c), at: Date().timeIntervalSince1970)
            print(note, terminator: "")
        }
    }

    /// `--vkey` takes the key itself or a file holding it.
    static func fileOrText(_ v: String) -> String {
        FileManager.default.contents(atPath: v).map { String(decoding: $0, as: UTF8.self) } ?? v
    }

    static func readVerifier(_ text: String?, _ common: Common, _ c: Configuration) throws -> NoteVerifier? {
        if let text {
            do { return try NoteVerifier(text: fileOrText(text)) } catch { throw ValidationError("--vkey: \(error)") }
        }
        if c.audit["key_file"] != nil { return try common.signer(c).verifier }
        return nil
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the log and its tree; exit 1 naming the first bad record and why.")
        @OptionGroup var common: Common
        @Option(help: "Verifier key (text or file); default: from the configuration's key.") var vkey: String?
        @Option(help: "An earlier checkpoint (signed note file) the log must extend.") var checkpoint: String?
        @Option(help: "Verify an exported bundle directory offline instead of the state database.") var bundle: String?

        func run() throws {
            if let bundle { return try verifyBundle(bundle) }
            let (c, store) = try common.open()
            guard let key = try Audit.readVerifier(vkey, common, c) else {
                throw ValidationError("--vkey is needed: no audit key in the configuration")
            }
            var extra: [String] = []
            if let checkpoint {
                guard let d = FileManager.default.contents(atPath: checkpoint) else {
                    throw ValidationError("cannot read \(checkpoint)")
                }
                extra.append(String(decoding: d, as: UTF8.self))
            }
            var v = AuditVerifier(vkey: key, origin: common.origin(c))
            switch v.verify(try store.auditLog(), checkpoints: extra) {
            case .success(let r):
                print(
                    "ok: \(r.size) records, root \(Data(r.root).base64EncodedString()), \(r.checkpointsVerified) checkpoints verified, \(r.erased) payloads erased"
                )
            case .failure(let f):
                printError("tripline: audit log verification FAILED: \(f)")
                throw ExitCode(1)
            }
        }

        func verifyBundle(_ dir: String) throws {
            func read(_ name: String) throws -> String {
                guard let d = FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(name))
                else {
                    printError("tripline: bundle has no \(name)")
                    throw ExitCode(1)
                }
                return String(decoding: d, as: UTF8.self)
            }
            let keyText = try vkey.map(Audit.fileOrText) ?? read("vkey")
            func fail(_ m: String) throws -> Never {
                printError("tripline: bundle verification FAILED: \(m)")
                throw ExitCode(1)
            }
            let key: NoteVerifier
            do { key = try NoteVerifier(text: keyText) } catch { try fail("vkey: \(error)") }
            let cp: Checkpoint
            do { cp = try Checkpoint(text: try key.open(try read("checkpoint"))) } catch {
                try fail("checkpoint: \(error)")
            }
            let proofs = try read("proofs.ndjson").split(separator: "\n").map {
                try JSONParser.parse(String($0)).objectValue ?? JSONObject()
            }
            let records = try read("records.ndjson").split(separator: "\n").map {
                try JSONParser.parse(String($0)).objectValue ?? JSONObject()
            }
            guard proofs.count == records.count else { try fail("\(records.count) records but \(proofs.count) proofs") }
            for (r, p) in zip(records, proofs) {
                guard case .number(let n)? = r["index"], let i = Int(n), let record = r["record"]?.stringValue else {
                    try fail("a record line without index and record")
                }
                if let payload = r["payload"]?.stringValue,
                    let salt = r["salt"]?.stringValue.flatMap({ Data(base64Encoded: $0) })
                {
                    let want = (try? JSONParser.parse(record).objectValue?["payload_sha256"]?.stringValue) ?? nil
                    if AuditEntry.payloadHash(salt: Array(salt), payload: payload) != want {
                        try fail("record \(i): payload does not match its record")
                    }
                }
                let path = (p["proof"]?.arrayValue ?? []).compactMap {
                    $0.stringValue.flatMap { Data(base64Encoded: $0) }.map(Array.init)
                }
                if !Merkle.verifyInclusion(
                    leaf: Merkle.leafHash(Array(record.utf8)), index: i, size: cp.size, proof: path, root: cp.root)
                {
                    try fail("record \(i): inclusion proof does not lead to the checkpoint's root")
                }
            }
            print("ok: \(records.count) records included in the checkpoint of \(cp.origin) at size \(cp.size)")
        }
    }

    struct Prove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an RFC 6962 proof, one base64 hash per line, leaf to root.")
        @OptionGroup var common: Common
        @Option(help: "Inclusion proof of record N.") var inclusion: Int?
        @Option(help: "Tree size for --inclusion (default: the current size).") var size: Int?
        @Option(parsing: .upToNextOption, help: "Consistency proof between two tree sizes: OLD NEW.") var consistency:
            [Int] = []

        func run() throws {
            let (_, store) = try common.open()
            let current = try store.auditSize()
            let n = size ?? current
            let proof: [Hash]
            if let i = inclusion {
                guard i >= 0, i < n, n <= current else { throw ValidationError("record \(i) is not in a tree of \(n)") }
                proof = try store.inclusionProof(index: i, size: n)
            } else if consistency.count == 2 {
                let (a, b) = (consistency[0], consistency[1])
                guard 0 < a, a <= b, b <= current else { throw ValidationError("need 0 < OLD <= NEW <= size") }
                proof = try store.consistencyProof(old: a, new: b)
            } else {
                throw ValidationError("--inclusion N or --consistency OLD NEW")
            }
            for h in proof { print(Data(h).base64EncodedString()) }
        }
    }

    /// Filters shared by query and export.
    struct Filters: ParsableArguments {
        @Option(help: "From this time (RFC 3339).") var from: String?
        @Option(help: "Until this time (RFC 3339).") var to: String?
        @Option(help: "Records mentioning this selector (id or value).") var selector: String?
        @Option(help: "Records about this partner (its lists, receivers or principals).") var partner: String?
        @Option(help: "Records about this watchlist.") var list: String?
        @Option(help: "Records about this rule id.") var rule: String?
        @Option(help: "Records about this receiver.") var receiver: String?

        func matching(_ log: AuditLog, _ c: Configuration) throws -> [Int] {
            let lo = try from.map { t -> Double in
                guard let v = Timestamp.parse(t) else { throw ValidationError("--from must be RFC 3339") }
                return v
            }
            let hi = try to.map { t -> Double in
                guard let v = Timestamp.parse(t) else { throw ValidationError("--to must be RFC 3339") }
                return v
            }
            var out: [Int] = []
            for (i, e) in log.entries.enumerated() {
                guard let rec = try? JSONParser.parse(e.record).objectValue else { continue }
                var at = 0.0
                if case .number(let us)? = rec["at_us"] { at = (Double(us) ?? 0) / 1e6 }
                if let lo, at < lo { continue }
                if let hi, at > hi { continue }
                let payload = e.payload ?? ""
                let p = (try? JSONParser.parse(payload).objectValue) ?? JSONObject()
                let key = p["alert_key"]?.stringValue ?? ""
                let rx = p["receiver"]?.stringValue
                if let selector, !payload.contains(selector) { continue }
                if let list, !key.contains("/\(list)/") && !payload.contains("\"list\":\"\(list)\"") { continue }
                if let rule, !key.hasPrefix("rule:\(rule):") && !payload.contains(rule) { continue }
                if let receiver, rx != receiver { continue }
                if let partner {
                    let viaReceiver = rx.flatMap { c.alerts.receiver($0)?.partner } == partner
                    let viaPrincipal =
                        p["principal"]?.stringValue.flatMap { c.alerts.principal($0)?.partner } == partner
                    if !(key.hasPrefix("wl:\(partner)/") || viaReceiver || viaPrincipal) { continue }
                }
                out.append(i)
            }
            return out
        }

        var description: JSONObject {
            var o = JSONObject()
            for (k, v) in [
                ("from", from), ("to", to), ("selector", selector), ("partner", partner), ("list", list),
                ("rule", rule),
                ("receiver", receiver),
            ] {
                if let v { o.append(k, .string(v)) }
            }
            return o
        }
    }

    /// Auditors and admins read the log; others are refused (exit 1).
    static func requireAuditor(_ p: Principal, _ what: String) throws {
        guard p.role == .auditor || p.role == .admin else {
            printError("tripline: \(p.id) (\(p.role.rawValue)) may not \(what)")
            throw ExitCode(1)
        }
    }

    static func line(_ i: Int, _ e: AuditEntry) -> JSONObject {
        var o = JSONObject()
        o.append("index", .number(String(i)))
        o.append("record", .string(e.record))
        if let s = e.salt { o.append("salt", .string(Data(s).base64EncodedString())) }
        if let p = e.payload { o.append("payload", .string(p)) } else { o.append("erased", .bool(true)) }
        return o
    }

    static func consultation(
        _ store: any DurableStore, _ actor: Actor, _ p: String, _ command: String, _ f: Filters, _ n: Int
    )
        throws
    {
        var c = Commit()
        c.events = [
            EventDraft(
                at: Date().timeIntervalSince1970, kind: "audit_consultation", principal: p, reason: actor.reason,
                detail: JSONObject([
                    ("command", .string(command)), ("filters", .object(f.description)), ("records", .number(String(n))),
                ]))
        ]
        try store.commit(c)
    }

    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Audit records as NDJSON (a recorded consultation).")
        @OptionGroup var actor: Actor
        @OptionGroup var filters: Filters

        func run() throws {
            let (c, p, store, _) = try actor.open()
            try Audit.requireAuditor(p, "read the audit log")
            let log = try store.auditLog()
            let hits = try filters.matching(log, c)
            for i in hits { writeJSON(Audit.line(i, log.entries[i])) }
            try Audit.consultation(store, actor, p.id, "audit query", filters, hits.count)
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a bundle (records.ndjson, proofs.ndjson, checkpoint, vkey) that verifies offline.")
        @OptionGroup var actor: Actor
        @OptionGroup var filters: Filters
        @Option(help: "Bundle directory to create.") var out: String

        func run() throws {
            let (c, p, store, _) = try actor.open()
            try Audit.requireAuditor(p, "export the audit log")
            let common = Common(config: actor.config)
            let signer = try common.signer(c)
            let note = try store.checkpoint(origin: common.origin(c), signer: signer, at: Date().timeIntervalSince1970)
            let cp = try Checkpoint(text: try signer.verifier.open(note))
            let log = try store.auditLog()
            let hits = try filters.matching(log, c).filter { $0 < cp.size }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            var records = ""
            var proofs = ""
            for i in hits {
                records += JSONWriter.string(.object(Audit.line(i, log.entries[i]))) + "\n"
                let path = try store.inclusionProof(index: i, size: cp.size).map {
                    JSONValue.string(Data($0).base64EncodedString())
                }
                proofs +=
                    JSONWriter.string(
                        .object(
                            JSONObject([
                                ("index", .number(String(i))), ("size", .number(String(cp.size))),
                                ("proof", .array(path)),
                            ]))) + "\n"
            }
            func write(_ name: String, _ text: String) throws {
                try text.write(
                    toFile: (out as NSString).appendingPathComponent(name), atomically: true, encoding: .utf8)
            }
            try write("records.ndjson", records)
            try write("proofs.ndjson", proofs)
            try write("checkpoint", note)
            try write("vkey", signer.verifier.text + "\n")
            try Audit.consultation(store, actor, p.id, "audit export", filters, hits.count)
            printError(
                "exported \(hits.count) records with inclusion proofs against the checkpoint at size \(cp.size) to \(out)"
            )
        }
    }
}

extension Audit {
    struct Erase: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a record's personal data (its payload); proofs stay valid; the erasure is audited.")
        @OptionGroup var actor: Actor
        @Argument(help: "Record index.") var index: Int

        func run() throws {
            let (_, p, store, now) = try actor.open()
            guard p.role == .admin || p.role == .auditor else {
                printError("tripline: \(p.id) (\(p.role.rawValue)) may not erase audit data")
                throw ExitCode(1)
            }
            let ok = try store.erasePayload(
                index: index,
                event: EventDraft(
                    at: now, kind: "payload_erased", principal: p.id, reason: actor.reason,
                    detail: JSONObject([("index", .number(String(index)))])))
            if !ok {
                printError("tripline: record \(index) has no payload to erase")
                throw ExitCode(1)
            }
        }
    }
}

extension Audit.Common {
    init(config: String?) {
        self.init()
        self.config = config
    }
}
