import ArgumentParser
import Foundation
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplineOperations
import TriplinePolicy
import TriplineSelectors
import TriplineService
import TriplineSinks
import TriplineState
import TriplineStores
import TriplineYAML

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the service: ingest, match, alert, deliver (standard input, or --follow FILE).")

    @Option(help: "Configuration file (default: tripline.yaml if present, else embedded defaults).")
    var config: String?
    @Option(help: "Read this file as it grows, from the offset committed with the outbox.") var follow: String?
    @Option(help: "Outbox size past which ingest waits.") var outboxBound = 10_000
    @Option(help: "Seconds to keep delivering at shutdown or at the end of input.") var drainTimeout = 10.0
    @Option(help: "Longest wait between delivery attempts, in seconds (retries go on until delivered).")
    var maxBackoff = 6 * 3600.0
    @Option(help: "Seconds a failing state database is retried (nothing skipped) before serve stops with exit 2.")
    var dbTimeout = 60.0
    @Flag(help: "Read standard input also when the HTTP API is on (it is read by default only without it).")
    var stdin = false

    func run() async throws {
        var o = Server.Options(configPath: config, follow: follow)
        o.outboxBound = outboxBound
        o.drainTimeout = drainTimeout
        o.maxBackoff = maxBackoff
        o.dbTimeout = dbTimeout
        o.stdin = stdin
        do {
            if let c = try Server.testClock(ProcessInfo.processInfo.environment["TRIPLINE_TEST_CLOCK"]) { o.clock = c }
        } catch {
            printError("tripline: \(error)")
            throw ExitCode(1)
        }
        let status = await Server.run(o)
        if status != 0 { throw ExitCode(status) }
    }
}

/// Who acts on the command line, and why (both recorded, with the operating-system user). Without `--server` the
/// command acts on the local state database (SPEC §10: only the operating-system user that owns it can open it).
struct Actor: ParsableArguments {
    @Option(
        name: .customLong("as"),
        help: "The principal acting, on the local database (an id from the configuration's principals).")
    var principal: String?
    @Option(help: "Why: a justification or case reference (recorded).") var reason: String
    @Option(help: "Configuration file.") var config: String?
    @Option(help: "The current time, RFC 3339 (tests).") var now: String?
    @Option(
        help: "The HTTP API to act through (https://host:port; http:// to this machine), with a token instead of --as.")
    var server: String?
    @Option(help: "File holding the API token (default: the TRIPLINE_TOKEN variable).") var tokenFile: String?

    func open() throws -> (Configuration, Principal, any DurableStore, Double) {
        let c = try loadSettings(config: config)
        guard let principal else { throw ValidationError("--as names the principal acting (or use --server)") }
        guard let p = c.alerts.principal(principal) else {
            throw ValidationError("--as \(principal) is not a principal of \(c.configFile ?? "the embedded defaults")")
        }
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must not be empty") }
        let t: Double
        if let now {
            guard let v = TriplineSelectors.Timestamp.parse(now) else {
                throw ValidationError("--now must be RFC 3339")
            }
            t = v
        } else {
            t = Date().timeIntervalSince1970
        }
        do {
            return (c, p, try StateStores.open(c.state), t)
        } catch {
            printError("tripline: \(error)")
            throw ExitCode(2)
        }
    }

    /// The operations on the local state database, as this principal.
    func operations() throws -> (Operations, Caller) {
        let (c, p, store, t) = try open()
        let fixed = now != nil
        let clock: @Sendable () -> Double = { fixed ? t : Date().timeIntervalSince1970 }
        do {
            return (
                try Operations(config: c, store: store, clock: clock),
                Caller(principal: p, reason: reason, via: [("os_user", .string(Self.osUser))])
            )
        } catch {
            printError("tripline: \(error)")
            throw ExitCode(2)
        }
    }

    func policy(_ c: Configuration) -> Policy { Policy(config: c.alerts, operatorPartner: c.operatorPartner) }

    /// The operating-system user running the command (SPEC §10: recorded beside the principal).
    static var osUser: String {
        if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
        return "uid:\(getuid())"
    }

    /// An audit record of this principal's action or consultation, with the reason and the OS user.
    func event(
        _ kind: String, _ p: Principal, at now: Double, alertKey: String? = nil, receiver: String? = nil,
        _ detail: [(String, JSONValue)]
    ) -> EventDraft {
        EventDraft(
            at: now, kind: kind, alertKey: alertKey, receiver: receiver, principal: p.id, reason: reason,
            detail: JSONObject(detail + [("os_user", .string(Self.osUser))]))
    }

    /// Applies the policy's decision: a refusal is audited (principal, reason, why), printed, and exits 1.
    func require(
        _ d: Policy.Decision, _ p: Principal, _ action: Policy.Action, _ store: any DurableStore, at now: Double,
        object: [(String, JSONValue)] = []
    ) throws {
        guard let why = d.reason else { return }
        try record(
            store,
            event(
                "refused", p, at: now,
                [("command", .string(action.rawValue)), ("why", .string(why))] + object))
        printError("tripline: \(why)")
        throw ExitCode(1)
    }
}

/// Runs an operation: a refusal, a hidden object, a conflict or bad input exits 1 with its message (the
/// operation audited it); a failing database exits 2.
func run<T>(_ body: () throws(OperationError) -> T) throws -> T {
    do { return try body() } catch {
        printError("tripline: \(error)")
        switch error {
        case .failed: throw ExitCode(2)
        case .invalid: throw ExitCode(64)
        default: throw ExitCode(1)
        }
    }
}

func writeJSON(_ o: JSONObject) { FileHandle.standardOutput.write(Data((JSONWriter.string(.object(o)) + "\n").utf8)) }

func record(_ store: any DurableStore, _ e: EventDraft) throws {
    var c = Commit()
    c.events = [e]
    do { try store.commit(c) } catch {
        printError("tripline: \(error)")
        throw ExitCode(2)
    }
}

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, acknowledge and resolve alerts (as a principal, with a reason).",
        subcommands: [List.self, Show.self, Ack.self, Resolve.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Alerts the principal may list (SPEC §8), as it may see them, as NDJSON, newest first.")
        @OptionGroup var actor: Actor
        @Option(help: "Only alerts in this state as the principal sees it (firing, acknowledged, resolved).")
        var state: AlertState?
        @Option(help: "At most this many.") var limit = 100

        func run() throws {
            if let api = try actor.remote() {
                var q = [("limit", String(limit))]
                if let state { q.append(("state", state.rawValue)) }
                for a in try api.call("GET", "/v1/alerts", query: q)?.objectValue?["alerts"]?.arrayValue ?? [] {
                    if let o = a.objectValue { writeJSON(o) }
                }
                return
            }
            let (ops, caller) = try actor.operations()
            var f = Operations.AlertFilter()
            f.state = state
            f.limit = limit
            for v in try TriplineCLI.run({ () throws(OperationError) in try ops.listAlerts(caller, f).alerts }) {
                writeJSON(v)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One alert, as the principal may see it.")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64

        func run() throws {
            if let api = try actor.remote() {
                if let o = try api.call("GET", "/v1/alerts/\(id)")?.objectValue { writeJSON(o) }
                return
            }
            let (ops, caller) = try actor.operations()
            writeJSON(try TriplineCLI.run({ () throws(OperationError) in try ops.showAlert(caller, id: id) }))
        }
    }

    struct Ack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Acknowledge an alert for your partner: its receivers get no more repeats.")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64
        @Option(help: "resolved (the default: until the alert resolves) or a duration such as 4h.")
        var until = "resolved"
        func run() throws {
            var limit: Double?
            if until != "resolved" {
                guard let d = parseDuration(until), d > 0, d <= Policy.maxSilence else {
                    throw ValidationError("--until is resolved or a duration up to 365d, like 4h")
                }
                limit = d
            }
            if let api = try actor.remote() {
                _ = try api.call("POST", "/v1/alerts/\(id)/ack", body: JSONObject([("until", .string(until))]))
                printError("alert \(id) acknowledged")
                return
            }
            let (ops, caller) = try actor.operations()
            let done = try TriplineCLI.run { () throws(OperationError) in
                try ops.act(caller, id: id, resolve: false, until: limit.map { ops.clock() + $0 })
            }
            printError("alert \(id) acknowledged for \(caller.principal.partner) by \(caller.principal.id)")
            _ = done
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resolve an alert (for everyone).")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64
        func run() throws {
            if let api = try actor.remote() {
                _ = try api.call("POST", "/v1/alerts/\(id)/resolve")
                printError("alert \(id) resolved")
                return
            }
            let (ops, caller) = try actor.operations()
            _ = try TriplineCLI.run { () throws(OperationError) in try ops.act(caller, id: id, resolve: true) }
            printError("alert \(id) resolved by \(caller.principal.id)")
        }
    }
}

struct Silences: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silence", abstract: "Add, list and expire silences (scoped to your partner's receivers).",
        subcommands: [Add.self, List.self, Expire.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Silence alerts whose labels match every matcher, e.g. 'owner=\"be-fedpol\"' 'priority=~\"low|medium\"', "
                + "for your partner's receivers (an admin's: every receiver)."
        )
        @OptionGroup var actor: Actor
        @Option(help: "How long: 30m, 2h, 1d (at most 365d).") var duration = "2h"
        @Option(help: "Comment (shown with the silence).") var comment: String
        @Argument(help: "Label matchers.") var matchers: [String]

        func run() throws {
            for m in matchers {
                do { _ = try LabelMatcher(m) } catch { throw ValidationError("\(error)") }
            }
            guard !matchers.isEmpty else { throw ValidationError("a silence needs at least one matcher") }
            guard let d = parseDuration(duration), d > 0 else { throw ValidationError("--duration like 30m or 2h") }
            guard d <= Policy.maxSilence else { throw ValidationError("--duration is at most 365d") }
            if let api = try actor.remote() {
                let body = JSONObject([
                    ("matchers", .array(matchers.map { .string($0) })), ("duration", .string(duration)),
                    ("comment", .string(comment)),
                ])
                print(try api.call("POST", "/v1/silences", body: body)?.objectValue?["id"]?.stringValue ?? "")
                return
            }
            let (ops, caller) = try actor.operations()
            let s = try TriplineCLI.run { () throws(OperationError) in
                try ops.addSilence(caller, matchers: matchers, duration: d, comment: comment)
            }
            print(s["id"]?.stringValue ?? "")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Silences you may see (SPEC §8), as NDJSON.")
        @OptionGroup var actor: Actor
        @Flag(help: "Include expired silences.") var expired = false
        func run() throws {
            if let api = try actor.remote() {
                let q = expired ? [("expired", "true")] : []
                for s in try api.call("GET", "/v1/silences", query: q)?.objectValue?["silences"]?.arrayValue ?? [] {
                    if let o = s.objectValue { writeJSON(o) }
                }
                return
            }
            let (ops, caller) = try actor.operations()
            for s in try TriplineCLI.run({ () throws(OperationError) in try ops.listSilences(caller, expired: expired) }
            ) {
                writeJSON(s)
            }
        }
    }

    struct Expire: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a silence now.")
        @OptionGroup var actor: Actor
        @Argument(help: "Silence id.") var id: String
        func run() throws {
            if let api = try actor.remote() {
                _ = try api.call("DELETE", "/v1/silences/\(id)")
                return
            }
            let (ops, caller) = try actor.operations()
            try TriplineCLI.run { () throws(OperationError) in try ops.expireSilence(caller, id: id) }
        }
    }
}

struct Outbox: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the outbox and retry dead letters.", subcommands: [List.self, Retry.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Outbox items of the receivers you may see, as NDJSON (metadata, not content).")
        @OptionGroup var actor: Actor
        @Flag(help: "Dead letters only.") var dead = false
        @Option(help: "At most this many.") var limit = 1000
        func run() throws {
            if let api = try actor.remote() {
                var q = [("limit", String(limit))]
                if dead { q.append(("status", "dead")) }
                for i in try api.call("GET", "/v1/outbox", query: q)?.objectValue?["items"]?.arrayValue ?? [] {
                    if let o = i.objectValue { writeJSON(o) }
                }
                return
            }
            let (ops, caller) = try actor.operations()
            for o in try TriplineCLI.run({ () throws(OperationError) in
                try ops.listOutbox(caller, dead: dead, limit: limit)
            }) {
                writeJSON(o)
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a dead letter again.")
        @OptionGroup var actor: Actor
        @Argument(help: "Outbox id.") var id: Int64
        func run() throws {
            if let api = try actor.remote() {
                _ = try api.call("POST", "/v1/outbox/\(id)/retry")
                return
            }
            let (ops, caller) = try actor.operations()
            try TriplineCLI.run { () throws(OperationError) in try ops.retryOutbox(caller, id: id) }
        }
    }
}

extension AlertState: ExpressibleByArgument {}

struct Receivers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receivers: enable one that a 410 (Gone) disabled.", subcommands: [Enable.self])

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enable a receiver again (its held notifications go out).")
        @OptionGroup var actor: Actor
        @Argument(help: "Receiver name.") var name: String
        func run() throws {
            if let api = try actor.remote() {
                _ = try api.call("POST", "/v1/receivers/\(name)/enable")
                return
            }
            let (ops, caller) = try actor.operations()
            try TriplineCLI.run { () throws(OperationError) in try ops.enableReceiver(caller, name: name) }
        }
    }
}

struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "API tokens for the configuration's principals (admin).",
        subcommands: [Issue.self, List.self, Revoke.self])

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a token for a principal; it is printed once (only its hash is kept).")
        @OptionGroup var actor: Actor
        @Option(help: "The principal the token stands for.") var principal: String
        @Option(help: "How long it is valid: 90d (default), 12h, ... at most 3650d.") var expires = "90d"
        func run() throws {
            guard let d = parseDuration(expires), d > 0 else { throw ValidationError("--expires like 90d") }
            let (ops, caller) = try actor.operations()
            let (token, view) = try TriplineCLI.run { () throws(OperationError) in
                try ops.issueToken(caller, principal: principal, expiresIn: d)
            }
            print(token)
            printError(
                "token \(view["id"]?.stringValue ?? "") for \(principal), valid until \(view["expires_at"]?.stringValue ?? "")"
            )
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tokens (never their secrets) as NDJSON.")
        @OptionGroup var actor: Actor
        func run() throws {
            let (ops, caller) = try actor.operations()
            for t in try TriplineCLI.run({ () throws(OperationError) in try ops.listTokens(caller) }) { writeJSON(t) }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id.")
        @OptionGroup var actor: Actor
        @Argument(help: "Token id (tok_...).") var id: String
        func run() throws {
            let (ops, caller) = try actor.operations()
            try TriplineCLI.run { () throws(OperationError) in try ops.revokeToken(caller, id: id) }
        }
    }
}
