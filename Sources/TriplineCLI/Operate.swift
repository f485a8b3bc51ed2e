import ArgumentParser
import Foundation
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplineSelectors
import TriplineService
import TriplineSinks
import TriplineState
import TriplineStateSQLite
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

    func run() async throws {
        var o = Server.Options(configPath: config, follow: follow)
        o.outboxBound = outboxBound
        o.drainTimeout = drainTimeout
        o.maxBackoff = maxBackoff
        o.dbTimeout = dbTimeout
        let status = await Server.run(o)
        if status != 0 { throw ExitCode(status) }
    }
}

/// Who acts on the command line, and why (both recorded).
struct Actor: ParsableArguments {
    @Option(name: .customLong("as"), help: "The principal acting (an id from the configuration's principals).")
    var principal: String
    @Option(help: "Why: a justification or case reference (recorded).") var reason: String
    @Option(help: "Configuration file.") var config: String?
    @Option(help: "The current time, RFC 3339 (tests).") var now: String?

    func open() throws -> (Configuration, Principal, any DurableStore, Double) {
        let c = try loadSettings(config: config)
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

    func renderer(_ c: Configuration) throws -> Renderer {
        var a = c.alerts
        a.handleKey = try c.loadHandleKey()
        return Renderer(config: a)
    }
}

/// What a principal may see of an alert: auditors and admins everything; analysts by need-to-know; partners only
/// alerts on their own lists.
func consult(_ a: AlertRecord, _ p: Principal, _ r: Renderer) -> JSONObject? {
    switch p.role {
    case .auditor, .admin:
        return r.view(a, access: .full)
    case .partner:
        let owners = Set(Protection.from(a.payload).map(\.owner))
        guard owners.contains(p.partner) else { return nil }
        return r.view(a, access: r.access(a, partner: p.partner, sink: false))
    case .analyst:
        return r.view(a, access: r.access(a, partner: p.partner, sink: false))
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
        static let configuration = CommandConfiguration(abstract: "Alerts as NDJSON, newest first.")
        @OptionGroup var actor: Actor
        @Option(help: "Only alerts in this state (firing, acknowledged, resolved).") var state: AlertState?
        @Option(help: "At most this many.") var limit = 100

        func run() throws {
            let (c, p, store, now) = try actor.open()
            let r = try actor.renderer(c)
            let alerts = try store.alerts(states: state.map { [$0] }, limit: limit)
            var shown: [JSONValue] = []
            for a in alerts {
                if let v = consult(a, p, r) {
                    writeJSON(v)
                    shown.append(.number(String(a.id)))
                }
            }
            try record(
                store,
                EventDraft(
                    at: now, kind: "consultation", principal: p.id, reason: actor.reason,
                    detail: JSONObject([("command", .string("alerts list")), ("alerts", .array(shown))])))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One alert, as the principal may see it.")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64

        func run() throws {
            let (c, p, store, now) = try actor.open()
            let r = try actor.renderer(c)
            guard let a = try store.alert(id: id), let v = consult(a, p, r) else {
                try record(
                    store,
                    EventDraft(
                        at: now, kind: "consultation", principal: p.id, reason: actor.reason,
                        detail: JSONObject([
                            ("command", .string("alerts show")), ("alert_id", .number(String(id))),
                            ("found", .bool(false)),
                        ])))
                printError("tripline: no alert \(id) visible to \(p.id)")
                throw ExitCode(1)
            }
            writeJSON(v)
            try record(
                store,
                EventDraft(
                    at: now, kind: "consultation", alertKey: a.key, principal: p.id, reason: actor.reason,
                    detail: JSONObject([("command", .string("alerts show")), ("alert_id", .number(String(id)))])))
        }
    }

    struct Ack: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Acknowledge an alert.")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64
        func run() throws { try act(actor, id, .acknowledged) }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resolve an alert.")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64
        func run() throws { try act(actor, id, .resolved) }
    }

    static func act(_ actor: Actor, _ id: Int64, _ state: AlertState) throws {
        let (c, p, store, now) = try actor.open()
        guard p.role == .analyst || p.role == .admin else {
            printError("tripline: \(p.id) (\(p.role.rawValue)) may not change alerts")
            throw ExitCode(1)
        }
        guard let a = try store.alert(id: id), consult(a, p, try actor.renderer(c)) != nil else {
            printError("tripline: no alert \(id) visible to \(p.id)")
            throw ExitCode(1)
        }
        do {
            let done = try Dispatcher.act(
                on: id, state: state, principal: p.id, reason: actor.reason, store: store, now: now)
            printError("alert \(done.id) \(done.state.rawValue) by \(p.id)")
        } catch {
            printError("tripline: \(error)")
            throw ExitCode(1)
        }
    }
}

struct Silences: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silence", abstract: "Add, list and expire silences.",
        subcommands: [Add.self, List.self, Expire.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Silence alerts whose labels match every matcher, e.g. 'owner=\"be-fedpol\"' 'priority=~\"low|medium\"'."
        )
        @OptionGroup var actor: Actor
        @Option(help: "How long: 30m, 2h, 1d.") var duration = "2h"
        @Option(help: "Comment (shown with the silence).") var comment: String
        @Argument(help: "Label matchers.") var matchers: [String]

        func run() throws {
            let (_, p, store, now) = try actor.open()
            for m in matchers {
                do { _ = try LabelMatcher(m) } catch { throw ValidationError("\(error)") }
            }
            guard !matchers.isEmpty else { throw ValidationError("a silence needs at least one matcher") }
            guard let d = parseDuration(duration), d > 0 else {
                throw ValidationError("--duration like 30m or 2h")
            }
            let s = Silence(
                id: UUID().uuidString.lowercased(), matchers: matchers, startsAt: now, endsAt: now + d,
                createdBy: p.id, comment: comment)
            var c = Commit()
            c.silences = [s]
            c.events = [
                EventDraft(
                    at: now, kind: "silence_added", principal: p.id, reason: actor.reason,
                    detail: JSONObject([
                        ("silence", .string(s.id)), ("matchers", .array(matchers.map { .string($0) })),
                        ("ends_at", .string(Renderer.time(s.endsAt))), ("comment", .string(comment)),
                    ]))
            ]
            try store.commit(c)
            print(s.id)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Silences as NDJSON.")
        @OptionGroup var actor: Actor
        @Flag(help: "Include expired silences.") var expired = false
        func run() throws {
            let (_, p, store, now) = try actor.open()
            for s in try store.silences(includeExpired: expired) {
                var o = JSONObject()
                o.append("id", .string(s.id))
                o.append("matchers", .array(s.matchers.map { .string($0) }))
                o.append("starts_at", .string(Renderer.time(s.startsAt)))
                o.append("ends_at", .string(Renderer.time(s.endsAt)))
                o.append("created_by", .string(s.createdBy))
                o.append("comment", .string(s.comment))
                o.append("active", .bool(s.isActive(at: now)))
                writeJSON(o)
            }
            try record(
                store,
                EventDraft(
                    at: now, kind: "consultation", principal: p.id, reason: actor.reason,
                    detail: JSONObject([("command", .string("silence list"))])))
        }
    }

    struct Expire: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a silence now.")
        @OptionGroup var actor: Actor
        @Argument(help: "Silence id.") var id: String
        func run() throws {
            let (_, p, store, now) = try actor.open()
            guard var s = try store.silences(includeExpired: false).first(where: { $0.id == id }) else {
                printError("tripline: no active silence \(id)")
                throw ExitCode(1)
            }
            s.expiredAt = now
            var c = Commit()
            c.silences = [s]
            c.events = [
                EventDraft(
                    at: now, kind: "silence_expired", principal: p.id, reason: actor.reason,
                    detail: JSONObject([("silence", .string(id))]))
            ]
            try store.commit(c)
        }
    }
}

struct Outbox: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the outbox and retry dead letters.", subcommands: [List.self, Retry.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Outbox items as NDJSON (metadata, not content).")
        @OptionGroup var actor: Actor
        @Flag(help: "Dead letters only.") var dead = false
        @Option(help: "At most this many.") var limit = 1000
        func run() throws {
            let (_, p, store, now) = try actor.open()
            for i in try store.outbox(status: dead ? .dead : nil, limit: limit) {
                var o = JSONObject()
                o.append("id", .number(String(i.id)))
                o.append("receiver", .string(i.receiver))
                o.append("status", .string(i.status.rawValue))
                o.append("priority_rank", .number(String(i.priorityRank)))
                o.append("attempts", .number(String(i.attempts)))
                o.append("created_at", .string(Renderer.time(i.createdAt)))
                o.append("next_attempt_at", .string(Renderer.time(i.nextAttemptAt)))
                if let n = i.payload["notification_id"] { o.append("notification_id", n) }
                if let e = i.lastError { o.append("last_error", .string(e)) }
                writeJSON(o)
            }
            try record(
                store,
                EventDraft(
                    at: now, kind: "consultation", principal: p.id, reason: actor.reason,
                    detail: JSONObject([("command", .string("outbox list"))])))
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a dead letter again.")
        @OptionGroup var actor: Actor
        @Argument(help: "Outbox id.") var id: Int64
        func run() throws {
            let (_, p, store, now) = try actor.open()
            let ok = try store.retry(
                outboxID: id,
                event: EventDraft(
                    at: now, kind: "outbox_retry", principal: p.id, reason: actor.reason,
                    detail: JSONObject([("outbox_id", .number(String(id)))])))
            if !ok {
                printError("tripline: outbox item \(id) is not a dead letter")
                throw ExitCode(1)
            }
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
            let (c, p, store, now) = try actor.open()
            guard c.alerts.receiver(name) != nil else {
                throw ValidationError("no receiver \(name) in the configuration")
            }
            var commit = Commit()
            commit.offsets =
                [(DeliveryFailure.disabledKey(name), 0)]
                + c.alerts.receiver(name)!.integrations.map {
                    (DeliveryFailure.disabledKey(OutboxLane(receiver: name, integration: $0.name)), 0)
                }
            commit.events = [
                EventDraft(at: now, kind: "receiver_enabled", receiver: name, principal: p.id, reason: actor.reason)
            ]
            try store.commit(commit)
        }
    }
}
