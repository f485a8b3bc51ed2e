import ArgumentParser
import Foundation
import TriplineAlerts
import TriplineAudit
import TriplineConfig
import TriplineJSON
import TriplineOperations
import TriplinePolicy
import TriplineSelectors
import TriplineState
import TriplineStores

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
            if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
                try FileManager.default.createDirectory(
                    atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            try Audit.createPrivateFile(path, Array((signer.text + "\n").utf8))
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
            func read(_ name: String) throws -> [UInt8] {
                guard let d = FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(name))
                else {
                    printError("tripline: bundle verification FAILED: the bundle has no \(name)")
                    throw ExitCode(1)
                }
                return Array(d)
            }
            let keyText = try vkey.map(Audit.fileOrText) ?? String(decoding: read(AuditBundle.vkeyFile), as: UTF8.self)
            let key: NoteVerifier
            do { key = try NoteVerifier(text: keyText) } catch {
                printError("tripline: bundle verification FAILED: vkey: \(error)")
                throw ExitCode(1)
            }
            let result = AuditBundle.verify(
                records: try read(AuditBundle.recordsFile), proofs: try read(AuditBundle.proofsFile),
                checkpoint: try read(AuditBundle.checkpointFile), vkey: key)
            switch result {
            case .success(let r):
                print(
                    "ok: \(r.records) records included in the checkpoint of \(r.checkpoint.origin) at size \(r.checkpoint.size), \(r.erased) payloads erased"
                )
            case .failure(let f):
                printError("tripline: bundle verification FAILED: \(f)")
                throw ExitCode(1)
            }
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

        /// The filters as the operations take them.
        func filter() throws -> AuditFilter {
            var f = AuditFilter()
            f.from = try from.map { t -> Double in
                guard let v = Timestamp.parse(t) else { throw ValidationError("--from must be RFC 3339") }
                return v
            }
            f.to = try to.map { t -> Double in
                guard let v = Timestamp.parse(t) else { throw ValidationError("--to must be RFC 3339") }
                return v
            }
            f.selector = selector
            f.partner = partner
            f.list = list
            f.rule = rule
            f.receiver = receiver
            return f
        }

        func matching(_ log: AuditLog, _ c: Configuration) throws -> [Int] { try filter().matching(log, c) }

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
    /// Creates `path` with mode 0600 from the start (O_CREAT|O_EXCL: never an existing file or link, never a
    /// chmod after writing) and writes `bytes` to it, synced.
    static func createPrivateFile(_ path: String, _ bytes: [UInt8]) throws {
        func failed(_ what: String) throws -> Never {
            printError("tripline: \(what) \(path): \(String(cString: strerror(errno)))")
            throw ExitCode(2)
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { try failed("cannot create") }
        defer { close(fd) }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                try failed("cannot write")
            }
            off += n
        }
        if fsync(fd) != 0 { try failed("cannot sync") }
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
            let f = try filters.filter()
            if let api = try actor.remote() {
                var q: [(String, String)] = []
                for (k, v) in f.description { if let s = v.stringValue { q.append((k, s)) } }
                // Page after page (each page is a consultation of its own in the audit log).
                var after: String?
                var problem: String?
                repeat {
                    let page = q + [("limit", "10000")] + (after.map { [("after", $0)] } ?? [])
                    let answer = try api.call("GET", "/v1/audit/records", query: page)?.objectValue
                    for r in answer?["records"]?.arrayValue ?? [] { if let o = r.objectValue { writeJSON(o) } }
                    problem = problem ?? answer?["verification_failed"]?.stringValue
                    after = answer?["next"]?.stringValue.flatMap {
                        URLComponents(string: $0)?.queryItems?.first { $0.name == "after" }?.value
                    }
                } while after != nil
                if let problem {
                    printError("tripline: audit log verification FAILED: \(problem)")
                    throw ExitCode(1)
                }
                return
            }
            let (ops, caller) = try actor.operations()
            let (lines, problem, _) = try TriplineCLI.run { () throws(OperationError) in
                try ops.auditRecords(caller, f)
            }
            for l in lines { writeJSON(l) }
            // A payload neither intact nor erased by an audited erasure is never passed off as genuine.
            if let problem {
                printError("tripline: audit log verification FAILED: \(problem)")
                throw ExitCode(1)
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a bundle (records.ndjson, proofs.ndjson, checkpoint, vkey) that verifies offline.")
        @OptionGroup var actor: Actor
        @OptionGroup var filters: Filters
        @Option(help: "Bundle directory to create.") var out: String

        func run() throws {
            let f = try filters.filter()
            let (ops, caller) = try actor.operations()
            try TriplineCLI.run { () throws(OperationError) in
                try ops.require(ops.policy.decide(caller.principal, .exportAudit), caller, .exportAudit)
            }
            let signer = try Common(config: actor.config).signer(ops.config)
            if FileManager.default.fileExists(atPath: out) {
                throw ValidationError("\(out) exists: an export bundle is a new directory")
            }
            let (bundle, problem) = try TriplineCLI.run { () throws(OperationError) in
                try ops.exportAudit(caller, f, signer: signer)
            }
            guard let bundle else {
                printError("tripline: audit log verification FAILED: \(problem ?? "?"); nothing exported")
                throw ExitCode(1)
            }
            try Audit.writeBundle(bundle, to: out)
            printError(
                "exported \(bundle.records.count) records with inclusion proofs against the checkpoint at size \(bundle.size) to \(out)"
            )
        }
    }

    /// Writes a bundle as its directory: the directory 0700 and its files 0600, each created with its mode (never
    /// loosened, then chmodded).
    static func writeBundle(_ bundle: AuditExport, to out: String) throws {
        let parent = (out as NSString).deletingLastPathComponent
        if !parent.isEmpty && !FileManager.default.fileExists(atPath: parent) {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        if mkdir(out, 0o700) != 0 {
            printError("tripline: cannot create \(out): \(String(cString: strerror(errno)))")
            throw ExitCode(2)
        }
        func write(_ name: String, _ bytes: [UInt8]) throws {
            try Audit.createPrivateFile((out as NSString).appendingPathComponent(name), bytes)
        }
        try write(AuditBundle.recordsFile, AuditExport.ndjson(bundle.records))
        try write(AuditBundle.proofsFile, AuditExport.ndjson(bundle.proofs))
        try write(AuditBundle.checkpointFile, Array(bundle.checkpoint.utf8))
        try write(AuditBundle.vkeyFile, Array((bundle.vkey + "\n").utf8))
    }
}

extension Audit {
    struct Erase: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Erase a record's personal data (its payload); proofs stay valid; the erasure is audited. Auditors only; never an erasure record, never one's own consultations."
        )
        @OptionGroup var actor: Actor
        @Argument(help: "Record index.") var index: Int

        func run() throws {
            let (c, p, store, now) = try actor.open()
            try actor.require(actor.policy(c).decide(p, .eraseAudit), p, .eraseAudit, store, at: now)
            /// A refusal is itself audited (principal, reason, why), then the command exits 1.
            func refuse(_ why: String) throws -> Never {
                try record(
                    store,
                    EventDraft(
                        at: now, kind: "audit_erase_refused", principal: p.id, reason: actor.reason,
                        detail: JSONObject([("index", .number(String(index))), ("refusal", .string(why))])))
                printError("tripline: refused: \(why)")
                throw ExitCode(1)
            }
            guard p.role == .auditor else {
                try refuse("\(p.id) (\(p.role.rawValue)) may not erase audit data: only auditors erase")
            }
            guard index >= 0, let target = try store.events(after: Int64(index), limit: 1).first,
                target.seq == Int64(index) + 1
            else {
                printError("tripline: record \(index) is not in the audit log")
                throw ExitCode(1)
            }
            if let why = Erasures.refusal(
                index: index, kind: target.event.kind, principal: target.event.principal, caller: p.id)
            {
                try refuse(why)
            }
            let erased = Result { () throws(StateError) -> Bool in
                try store.erasePayload(
                    index: index,
                    event: EventDraft(
                        at: now, kind: Erasures.kind, principal: p.id, reason: actor.reason,
                        detail: JSONObject([("index", .number(String(index)))])))
            }
            // The store refuses too, inside its transaction (another caller, or a race with this check).
            if case .failure(let e) = erased, e.refusedChange { try refuse("\(e)") }
            if try !erased.get() {
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
