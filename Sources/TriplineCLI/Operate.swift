import ArgumentParser
import Foundation
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplinePolicy
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

/// Who acts on the command line, and why (both recorded, with the operating-system user).
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

    func renderer(_ c: Configuration, _ store: any DurableStore) throws -> Renderer {
        var a = c.alerts
        a.handleKey = try c.loadHandleKey()
        return Renderer(config: a, handlings: try store.listHandlings())
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

/// What a principal may see of an alert: auditors everything; partners and analysts by need-to-know, and the
/// state as their partner sees it (acknowledged when their partner acknowledged it).
func consult(_ a: AlertRecord, _ p: Principal, _ r: Renderer, now: Double) -> JSONObject {
    var seen = a
    seen.state = a.state(for: p.role == .auditor ? nil : p.partner, at: now)
    let access: Access = p.role == .auditor ? .full : r.access(a, partner: p.partner, sink: false)
    var v = r.view(seen, access: access)
    if access == .full && !a.acks.isEmpty {
        v.append(
            "acknowledged_by",
            .array(
                a.acks.sorted { $0.key < $1.key }.map { partner, ack in
                    var o = JSONObject([
                        ("partner", .string(partner)), ("by", .string(ack.by)), ("at", .string(Renderer.time(ack.at))),
                    ])
                    o.append("until", ack.until.map { .string(Renderer.time($0)) } ?? .string("resolved"))
                    return .object(o)
                }))
    }
    return v
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
            let (c, p, store, now) = try actor.open()
            let policy = actor.policy(c)
            try actor.require(policy.decide(p, .listAlerts), p, .listAlerts, store, at: now)
            let r = try actor.renderer(c, store)
            var shown: [JSONValue] = []
            for a in try store.alerts(states: nil, limit: Int.max) where shown.count < limit {
                guard policy.decide(p, .listAlerts, alert: a).allowed else { continue }
                let v = consult(a, p, r, now: now)
                if let state, v["state"] != .string(state.rawValue) { continue }
                writeJSON(v)
                shown.append(.number(String(a.id)))
            }
            try record(
                store,
                actor.event(
                    "consultation", p, at: now, [("command", .string("alerts list")), ("alerts", .array(shown))]))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One alert, as the principal may see it.")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64

        func run() throws {
            let (c, p, store, now) = try actor.open()
            let policy = actor.policy(c)
            try actor.require(policy.decide(p, .showAlert), p, .showAlert, store, at: now)
            let object: [(String, JSONValue)] = [("alert_id", .number(String(id)))]
            guard let a = try store.alert(id: id) else {
                try actor.require(
                    .hidden("no alert \(id) visible to \(p.id)"), p, .showAlert, store, at: now, object: object)
                return
            }
            try actor.require(policy.decide(p, .showAlert, alert: a), p, .showAlert, store, at: now, object: object)
            writeJSON(consult(a, p, try actor.renderer(c, store), now: now))
            try record(
                store,
                actor.event(
                    "consultation", p, at: now, alertKey: a.key, [("command", .string("alerts show"))] + object))
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
            try act(actor, id, .acknowledged, .ackAlert, until: limit)
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resolve an alert (for everyone).")
        @OptionGroup var actor: Actor
        @Argument(help: "Alert id.") var id: Int64
        func run() throws { try act(actor, id, .resolved, .resolveAlert) }
    }

    static func act(
        _ actor: Actor, _ id: Int64, _ state: AlertState, _ action: Policy.Action, until: Double? = nil
    ) throws {
        let (c, p, store, now) = try actor.open()
        let policy = actor.policy(c)
        let object: [(String, JSONValue)] = [("alert_id", .number(String(id)))]
        try actor.require(policy.decide(p, action), p, action, store, at: now, object: object)
        guard let a = try store.alert(id: id) else {
            try actor.require(.hidden("no alert \(id) visible to \(p.id)"), p, action, store, at: now, object: object)
            return
        }
        try actor.require(policy.decide(p, action, alert: a), p, action, store, at: now, object: object)
        do {
            let done = try Dispatcher.act(
                on: id, state: state, principal: p, reason: actor.reason, until: until.map { now + $0 },
                store: store, now: now)
            printError(
                "alert \(done.id) \(state == .resolved ? "resolved" : "acknowledged for \(p.partner)") by \(p.id)")
        } catch {
            printError("tripline: \(error)")
            throw ExitCode(1)
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
            let (c, p, store, now) = try actor.open()
            let policy = actor.policy(c)
            try actor.require(policy.decide(p, .addSilence), p, .addSilence, store, at: now)
            let scope = policy.silenceScope(p)
            let s = Silence(
                id: UUID().uuidString.lowercased(), matchers: matchers, startsAt: now, endsAt: now + d,
                createdBy: p.id, comment: comment, partner: scope)
            var commit = Commit()
            commit.silences = [s]
            commit.events = [
                actor.event(
                    "silence_added", p, at: now,
                    [
                        ("silence", .string(s.id)), ("matchers", .array(matchers.map { .string($0) })),
                        ("ends_at", .string(Renderer.time(s.endsAt))), ("comment", .string(comment)),
                        ("receivers_of", .string(scope ?? "every partner")),
                    ])
            ]
            commit.offsets = [Dispatcher.changed(now)]
            try store.commit(commit)
            print(s.id)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Silences you may see (SPEC §8), as NDJSON.")
        @OptionGroup var actor: Actor
        @Flag(help: "Include expired silences.") var expired = false
        func run() throws {
            let (c, p, store, now) = try actor.open()
            let policy = actor.policy(c)
            try actor.require(policy.decide(p, .listSilences), p, .listSilences, store, at: now)
            var shown: [JSONValue] = []
            for s in try store.silences(includeExpired: expired)
            where policy.decide(p, .listSilences, silence: s).allowed {
                var o = JSONObject()
                o.append("id", .string(s.id))
                o.append("matchers", .array(s.matchers.map { .string($0) }))
                o.append("starts_at", .string(Renderer.time(s.startsAt)))
                o.append("ends_at", .string(Renderer.time(s.endsAt)))
                o.append("created_by", .string(s.createdBy))
                o.append("comment", .string(s.comment))
                o.append("receivers_of", .string(s.partner ?? "every partner"))
                o.append("active", .bool(s.isActive(at: now)))
                writeJSON(o)
                shown.append(.string(s.id))
            }
            try record(
                store,
                actor.event(
                    "consultation", p, at: now, [("command", .string("silence list")), ("silences", .array(shown))]))
        }
    }

    struct Expire: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a silence now.")
        @OptionGroup var actor: Actor
        @Argument(help: "Silence id.") var id: String
        func run() throws {
            let (c, p, store, now) = try actor.open()
            let policy = actor.policy(c)
            let object: [(String, JSONValue)] = [("silence", .string(id))]
            try actor.require(policy.decide(p, .expireSilence), p, .expireSilence, store, at: now, object: object)
            guard var s = try store.silences(includeExpired: false).first(where: { $0.id == id }) else {
                try actor.require(.hidden("no active silence \(id)"), p, .expireSilence, store, at: now, object: object)
                return
            }
            try actor.require(
                policy.decide(p, .expireSilence, silence: s).allowed ? .allow : .hidden("no active silence \(id)"),
                p, .expireSilence, store, at: now, object: object)
            s.expiredAt = now
            var commit = Commit()
            commit.silences = [s]
            commit.events = [actor.event("silence_expired", p, at: now, object)]
            commit.offsets = [Dispatcher.changed(now)]
            try store.commit(commit)
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
            let (c, p, store, now) = try actor.open()
            let policy = actor.policy(c)
            try actor.require(policy.decide(p, .listOutbox), p, .listOutbox, store, at: now)
            var n = 0
            for i in try store.outbox(status: dead ? .dead : nil, limit: Int.max) where n < limit {
                guard policy.decide(p, .listOutbox, receiver: i.receiver).allowed else { continue }
                n += 1
                var o = JSONObject()
                o.append("id", .number(String(i.id)))
                o.append("receiver", .string(i.receiver))
                if !i.integration.isEmpty { o.append("integration", .string(i.integration)) }
                o.append("status", .string(i.status.rawValue))
                o.append("priority_rank", .number(String(i.priorityRank)))
                o.append("attempts", .number(String(i.attempts)))
                o.append("created_at", .string(Renderer.time(i.createdAt)))
                o.append("next_attempt_at", .string(Renderer.time(i.nextAttemptAt)))
                if let n = i.payload["notification_id"] { o.append("notification_id", n) }
                if let e = i.lastError { o.append("last_error", .string(e)) }
                writeJSON(o)
            }
            try record(store, actor.event("consultation", p, at: now, [("command", .string("outbox list"))]))
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a dead letter again.")
        @OptionGroup var actor: Actor
        @Argument(help: "Outbox id.") var id: Int64
        func run() throws {
            let (c, p, store, now) = try actor.open()
            let policy = actor.policy(c)
            let object: [(String, JSONValue)] = [("outbox_id", .number(String(id)))]
            try actor.require(policy.decide(p, .retryOutbox), p, .retryOutbox, store, at: now, object: object)
            guard let item = try store.outbox(status: .dead, limit: Int.max).first(where: { $0.id == id }) else {
                try actor.require(
                    .hidden("outbox item \(id) is not a dead letter"), p, .retryOutbox, store, at: now, object: object)
                return
            }
            try actor.require(
                policy.decide(p, .retryOutbox, receiver: item.receiver).allowed
                    ? .allow : .hidden("outbox item \(id) is not a dead letter"),
                p, .retryOutbox, store, at: now, object: object)
            let ok = try store.retry(
                outboxID: id, event: actor.event("outbox_retry", p, at: now, receiver: item.receiver, object))
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
            let policy = actor.policy(c)
            let object: [(String, JSONValue)] = [("receiver", .string(name))]
            try actor.require(policy.decide(p, .enableReceiver), p, .enableReceiver, store, at: now, object: object)
            guard c.alerts.receiver(name) != nil else {
                try actor.require(.hidden("no receiver \(name)"), p, .enableReceiver, store, at: now, object: object)
                return
            }
            try actor.require(
                policy.decide(p, .enableReceiver, receiver: name), p, .enableReceiver, store, at: now, object: object)
            var commit = Commit()
            commit.offsets =
                [(DeliveryFailure.disabledKey(name), 0)]
                + c.alerts.receiver(name)!.integrations.map {
                    (DeliveryFailure.disabledKey(OutboxLane(receiver: name, integration: $0.name)), 0)
                }
            commit.events = [actor.event("receiver_enabled", p, at: now, receiver: name, [])]
            try store.commit(commit)
        }
    }
}
