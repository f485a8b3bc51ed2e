import Foundation
import TriplineAlerts
import TriplineAudit
import TriplineConfig
import TriplineJSON
import TriplinePolicy
import TriplineSelectors
import TriplineSinks
import TriplineState
import TriplineYAML

/// Who asks, why, and through what (SPEC §8, §10): the principal, the reason every consultation and action carries,
/// and how it came — the operating-system user on the command line, the credential over the API — all audited.
public struct Caller: Sendable {
    public var principal: Principal
    public var reason: String
    public var via: [(String, JSONValue)]
    public init(principal: Principal, reason: String, via: [(String, JSONValue)]) {
        self.principal = principal
        self.reason = reason
        self.via = via
    }
}

/// Why an operation did not happen: refused (403), hidden (404: its existence is protected, or it does not exist),
/// invalid (400/422), a conflict (409), or the state failing (500 / exit 2).
public enum OperationError: Error, CustomStringConvertible, Sendable {
    case refused(String)
    case hidden(String)
    case invalid(String)
    case conflict(String)
    case failed(String)
    public var description: String {
        switch self {
        case .refused(let m), .hidden(let m), .invalid(let m), .conflict(let m), .failed(let m): m
        }
    }
}

/// The operator actions (SPEC §8 table, §10 routes) in one place, for the command line on the local database and
/// for the HTTP API alike: each asks the one policy, renders by need-to-know, and audits the consultation, the
/// action or the refusal with its principal, reason and channel.
public struct Operations: Sendable {
    public let config: Configuration
    public let store: any DurableStore
    public let policy: Policy
    public let renderer: Renderer
    /// Acknowledge links (SPEC §11), when configured.
    public let ackLinks: AckLinks?
    public let clock: @Sendable () -> Double
    /// Over the API: records go to the batcher (one transaction for concurrent requests' records), and each
    /// request's answer waits until its own are durable (`AuditBatcher.collecting`). Nil: each record is committed
    /// at once (the command line).
    public var batcher: AuditBatcher?
    /// Alert views rendered for this configuration (see `rendered`).
    let views = ViewCache()

    public init(
        config: Configuration, store: any DurableStore,
        clock: @escaping @Sendable () -> Double = {
            Date().timeIntervalSince1970
        }
    ) throws(OperationError) {
        self.config = config
        self.store = store
        self.clock = clock
        policy = Policy(config: config.alerts, operatorPartner: config.operatorPartner)
        var a = config.alerts
        do {
            a.handleKey = try config.loadHandleKey()
            a.ackLinks = try config.loadAckLinks()
            ackLinks = a.ackLinks
            renderer = Renderer(config: a, handlings: try store.listHandlings())
        } catch { throw .failed("\(error)") }
    }

    // MARK: Audit of what happens here

    /// An audit record of the caller's consultation or action.
    public func event(
        _ kind: String, _ c: Caller, alertKey: String? = nil, receiver: String? = nil, _ detail: [(String, JSONValue)]
    ) -> EventDraft {
        EventDraft(
            at: clock(), kind: kind, alertKey: alertKey, receiver: receiver, principal: c.principal.id,
            reason: c.reason,
            detail: JSONObject(detail + c.via))
    }

    public func record(_ e: EventDraft) throws(OperationError) {
        if let batcher, AuditBatcher.tickets != nil {
            batcher.record(e)
            return
        }
        var c = Commit()
        c.events = [e]
        do { try store.commit(c) } catch { throw .failed(error.description) }
    }

    /// Applies a decision of the policy: a refusal is audited (principal, reason, why) and thrown.
    public func require(
        _ d: Policy.Decision, _ c: Caller, _ action: Policy.Action, object: [(String, JSONValue)] = []
    ) throws(OperationError) {
        guard let why = d.reason else { return }
        try record(event("refused", c, [("command", .string(action.rawValue)), ("why", .string(why))] + object))
        switch d {
        case .hidden: throw .hidden(why)
        default: throw .refused(why)
        }
    }

    /// The longest reason, in bytes (SPEC §8: fields have size limits; every audit record of the request keeps it).
    public static let maxReason = 1024

    /// Checks the reason given: every consultation and action carries one, of at most `maxReason` bytes.
    /// A request without a usable reason is refused — and, like every refusal, audited (with the reason cut to its
    /// limit, so that the refusal of a huge reason does not write it whole).
    func reasoned(_ c: Caller) throws(OperationError) {
        let why: String
        if c.reason.trimmingCharacters(in: .whitespaces).isEmpty {
            why = "a reason is required (Tripline-Reason header, --reason)"
        } else if c.reason.utf8.count > Self.maxReason {
            why = "a reason is at most \(Self.maxReason) bytes"
        } else {
            return
        }
        var cut = c
        cut.reason = String(decoding: c.reason.utf8.prefix(Self.maxReason), as: UTF8.self)
        try record(
            event("refused", cut, [("why", .string(why)), ("reason_length", .number(String(c.reason.utf8.count)))]))
        throw .invalid(why)
    }

    // MARK: Configuration

    /// SIGHUP's work asked for by a principal (admin, with a reason): `run` reloads; the request and its outcome
    /// are audited with the principal and reason (the reload's own `config_reloaded` record names neither).
    public func reload(_ c: Caller, _ run: () async -> Bool) async throws(OperationError) -> Bool {
        try reasoned(c)
        try require(policy.decide(c.principal, .reload), c, .reload)
        let ok = await run()
        try record(
            event(
                "reload_requested", c,
                [
                    ("command", .string(Policy.Action.reload.rawValue)),
                    ("outcome", .string(ok ? "reloaded" : "refused")),
                ]
            ))
        return ok
    }

    // MARK: Alerts

    /// What a principal may see of an alert: auditors everything; partners and analysts by need-to-know, with the
    /// state as their partner sees it.
    public func view(_ a: AlertRecord, for p: Principal) -> JSONObject { view(a, for: p, at: clock()) }

    /// How a principal sees an alert at `now`: its access and the state its partner sees.
    func sight(_ a: AlertRecord, for p: Principal, at now: Double) -> (access: Access, state: AlertState) {
        (access(a, for: p), seenState(a, for: p, at: now))
    }

    func access(_ a: AlertRecord, for p: Principal) -> Access {
        p.role == .auditor ? .full : renderer.access(a, partner: p.partner, sink: false)
    }

    func seenState(_ a: AlertRecord, for p: Principal, at now: Double) -> AlertState {
        a.state(for: p.role == .auditor ? nil : p.partner, at: now)
    }

    func view(_ a: AlertRecord, for p: Principal, at now: Double) -> JSONObject {
        view(a, sight(a, for: p, at: now))
    }

    /// The view of an alert seen with `sight`: a function of the record (its version), the access and the state
    /// seen only — which is what `views` caches.
    func view(_ a: AlertRecord, _ sight: (access: Access, state: AlertState)) -> JSONObject {
        var seen = a
        seen.state = sight.state
        var v = renderer.view(seen, access: sight.access)
        if sight.access == .full && !a.acks.isEmpty {
            v.append(
                "acknowledged_by",
                .array(
                    a.acks.sorted { $0.key < $1.key }.map { partner, ack in
                        var o = JSONObject([
                            ("partner", .string(partner)), ("by", .string(ack.by)),
                            ("at", .string(Renderer.time(ack.at))),
                        ])
                        o.append("until", ack.until.map { .string(Renderer.time($0)) } ?? .string("resolved"))
                        return .object(o)
                    }))
        }
        return v
    }

    public struct AlertFilter: Sendable {
        public var state: AlertState?
        public var priority: String?
        public var owner: String?
        public var since: Double?
        public var limit = 100
        /// Page after this alert id (newest first: ids below it).
        public var before: Int64?
        public init() {}
    }

    /// Alerts the principal may list, as it may see them, newest update first; `next` is the cursor of the next
    /// page, if any.
    public func listAlerts(_ c: Caller, _ f: AlertFilter) throws(OperationError) -> (
        alerts: [JSONObject], next: Int64?
    ) {
        let page = try alertsPage(c, f)
        return (page.alerts.map { view($0.alert, $0.sight) }, page.next)
    }

    /// `listAlerts` with each alert's view as JSON text (for the API's answer): a view rendered before for the same
    /// version of the alert, access and state seen is taken from `views`, not rendered again.
    public func listAlertsRendered(_ c: Caller, _ f: AlertFilter) throws(OperationError) -> (
        alerts: [[UInt8]], next: Int64?
    ) {
        let page = try alertsPage(c, f)
        return (page.alerts.map { rendered($0.alert, $0.sight) }, page.next)
    }

    /// The JSON text of `view(a, sight)`, from `views` when rendered before.
    func rendered(_ a: AlertRecord, _ sight: (access: Access, state: AlertState)) -> [UInt8] {
        // No closure is kept in a local here or in `listable`: one that captures `self` copies the whole
        // `Operations` (configuration, store, policy...) into a box on every call — a third of a page's time.
        guard let version = a.version else { return renderedNow(a, sight) }  // a copy not read from the store
        return views.views.value(
            ViewCache.Key(id: a.id, version: version, updatedAt: a.updatedAt, access: sight.access, state: sight.state)
        ) { renderedNow(a, sight) }
    }

    func renderedNow(_ a: AlertRecord, _ sight: (access: Access, state: AlertState)) -> [UInt8] {
        var w = JSONWriter()
        w.write(view(a, sight))
        return w.bytes
    }

    /// How `p` sees `a` if it may list it (nil: hidden); the policy's answer and the access come from `views` for a
    /// version of the row seen before.
    func listable(_ a: AlertRecord, by p: Principal, _ looker: ViewCache.Looker, at now: Double) -> (
        access: Access, state: AlertState
    )? {
        let known: (listable: Bool, access: Access)
        if let version = a.version {
            known = views.sights.value(
                ViewCache.SightKey(id: a.id, version: version, updatedAt: a.updatedAt, looker: looker)
            ) { decideListing(a, by: p) }
        } else {
            known = decideListing(a, by: p)
        }
        return known.listable ? (known.access, seenState(a, for: p, at: now)) : nil
    }

    func decideListing(_ a: AlertRecord, by p: Principal) -> (listable: Bool, access: Access) {
        let allowed = policy.decide(p, .listAlerts, alert: a).allowed
        return (allowed, allowed ? access(a, for: p) : .notice)
    }

    /// The page `listAlerts` answers: the alerts with how the caller sees each; the consultation audited.
    func alertsPage(_ c: Caller, _ f: AlertFilter) throws(OperationError) -> (
        alerts: [(alert: AlertRecord, sight: (access: Access, state: AlertState))], next: Int64?
    ) {
        try reasoned(c)
        try require(policy.decide(c.principal, .listAlerts), c, .listAlerts)
        let now = clock()
        var out: [(alert: AlertRecord, sight: (access: Access, state: AlertState))] = []
        var shown: [JSONValue] = []
        var next: Int64?
        var cursor = f.before
        // Pages of the store, newest first, until the page the caller asked for is full of alerts it may list.
        // The first read asks for one more than a page (enough when the caller may list most alerts); later reads
        // grow, up to 1000 at a time, when filters or entitlement skip many.
        var size = f.limit + 1
        let looker = ViewCache.Looker(c.principal)
        scan: while true {
            let page: [AlertRecord]
            do { page = try store.alerts(idBelow: cursor, limit: size) } catch { throw .failed(error.description) }
            for a in page {
                cursor = a.id
                if let since = f.since, a.updatedAt < since { continue }
                if let p = f.priority, a.priority != p { continue }
                if let o = f.owner, !Policy.owners(a).contains(o) { continue }
                guard let sight = listable(a, by: c.principal, looker, at: now) else { continue }
                if let s = f.state, sight.state != s { continue }
                if out.count == f.limit {
                    next = Int64(shown.last.flatMap { $0.doubleValue } ?? 0)
                    break scan
                }
                out.append((a, sight))
                shown.append(.number(String(a.id)))
            }
            if page.count < size { break }
            size = min(1000, size * 2)
        }
        try record(event("consultation", c, [("command", .string("alerts list")), ("alerts", .array(shown))]))
        return (out, next)
    }

    public func showAlert(_ c: Caller, id: Int64) throws(OperationError) -> JSONObject {
        try reasoned(c)
        let object: [(String, JSONValue)] = [("alert_id", .number(String(id)))]
        try require(policy.decide(c.principal, .showAlert), c, .showAlert, object: object)
        let a = try alert(id, c, .showAlert, object)
        let now = clock()
        var v = view(a, for: c.principal, at: now)
        // Escalation names receivers of other partners: shown where the whole alert is (as acknowledged_by).
        if sight(a, for: c.principal, at: now).access == .full {
            let steps = try escalation(of: a)
            if !steps.isEmpty { v.append("escalation", .array(steps.map { .object($0) })) }
        }
        try record(event("consultation", c, alertKey: a.key, [("command", .string("alerts show"))] + object))
        return v
    }

    /// An alert's escalations (SPEC §11), one per route: when it started, the steps done, the next step due.
    func escalation(of a: AlertRecord) throws(OperationError) -> [JSONObject] {
        let states: [EscalationState]
        do { states = try store.escalations(key: a.key) } catch { throw .failed(error.description) }
        let routes = config.alerts.route.identities
        return states.map { e in
            let route = routes.first(where: { $0.identity == e.route })?.route
            var o = JSONObject([
                ("route", route.map { .number(String($0.index)) } ?? .string("no longer configured")),
                ("started_at", .string(Renderer.time(e.startedAt))), ("steps_done", .number(String(e.done))),
            ])
            if let route, let next = route.escalationStep(e.done), a.state != .resolved {
                o.append("next_step", .number(String(next.index + 1)))
                o.append("next_round", .number(String(next.round)))
                o.append("next_at", .string(Renderer.time(e.startedAt + next.due)))
                o.append("next_receivers", .array(next.step.receivers.map { .string($0) }))
            } else {
                o.append("finished", .bool(true))
            }
            return o
        }
    }

    func alert(_ id: Int64, _ c: Caller, _ action: Policy.Action, _ object: [(String, JSONValue)])
        throws(OperationError) -> AlertRecord
    {
        let found: AlertRecord?
        do { found = try store.alert(id: id) } catch { throw .failed(error.description) }
        guard let a = found else {
            try require(.hidden("no alert \(id) visible to \(c.principal.id)"), c, action, object: object)
            throw .hidden("no alert \(id)")
        }
        try require(policy.decide(c.principal, action, alert: a), c, action, object: object)
        return a
    }

    /// Acknowledges (for the caller's partner; `until` nil: until resolved) or resolves (for everyone) an alert.
    public func act(_ c: Caller, id: Int64, resolve: Bool, until: Double? = nil) throws(OperationError) -> JSONObject {
        try reasoned(c)
        let action: Policy.Action = resolve ? .resolveAlert : .ackAlert
        let object: [(String, JSONValue)] = [("alert_id", .number(String(id)))]
        try require(policy.decide(c.principal, action), c, action, object: object)
        _ = try alert(id, c, action, object)
        let done: AlertRecord
        do {
            done = try Dispatcher.act(
                on: id, state: resolve ? .resolved : .acknowledged, principal: c.principal, reason: c.reason,
                until: until, via: c.via, store: store, now: clock())
        } catch { throw error.isStorage ? .failed(error.description) : .conflict(error.description) }
        return view(done, for: c.principal)
    }

    // MARK: Silences

    public func silenceView(_ s: Silence) -> JSONObject {
        var o = JSONObject()
        o.append("id", .string(s.id))
        o.append("matchers", .array(s.matchers.map { .string($0) }))
        o.append("starts_at", .string(Renderer.time(s.startsAt)))
        o.append("ends_at", .string(Renderer.time(s.endsAt)))
        o.append("created_by", .string(s.createdBy))
        o.append("comment", .string(s.comment))
        o.append("receivers_of", .string(s.partner ?? "every partner"))
        o.append("active", .bool(s.isActive(at: clock())))
        return o
    }

    /// The most matchers of a silence, and the longest matcher and comment in bytes (SPEC §8: fields have size
    /// limits; the silence's audit record keeps them all).
    public static let maxSilenceText = (matchers: 64, matcher: 1024, comment: 4096)

    /// A silence over the caller's partner's receivers (an admin's: every receiver), at most 365 days.
    public func addSilence(_ c: Caller, matchers: [String], duration: Double, comment: String) throws(OperationError)
        -> JSONObject
    {
        try reasoned(c)
        guard !matchers.isEmpty else { throw .invalid("a silence needs at least one matcher") }
        let most = Self.maxSilenceText
        guard matchers.count <= most.matchers, matchers.allSatisfy({ $0.utf8.count <= most.matcher }),
            comment.utf8.count <= most.comment
        else {
            throw .invalid(
                "a silence has at most \(most.matchers) matchers of at most \(most.matcher) bytes, and a comment of at "
                    + "most \(most.comment) bytes")
        }
        for m in matchers {
            do { _ = try LabelMatcher(m) } catch { throw .invalid(error.description) }
        }
        guard duration > 0, duration.isFinite else { throw .invalid("a silence's duration must be longer than 0s") }
        guard duration <= Policy.maxSilence else { throw .invalid("a silence lasts at most 365d") }
        try require(policy.decide(c.principal, .addSilence), c, .addSilence)
        let now = clock()
        let scope = policy.silenceScope(c.principal)
        let s = Silence(
            id: UUID().uuidString.lowercased(), matchers: matchers, startsAt: now, endsAt: now + duration,
            createdBy: c.principal.id, comment: comment, partner: scope)
        var commit = Commit()
        commit.silences = [s]
        commit.events = [
            event(
                "silence_added", c,
                [
                    ("silence", .string(s.id)), ("matchers", .array(matchers.map { .string($0) })),
                    ("ends_at", .string(Renderer.time(s.endsAt))), ("comment", .string(comment)),
                    ("receivers_of", .string(scope ?? "every partner")),
                ])
        ]
        commit.offsets = [Dispatcher.changed(now)]
        do { try store.commit(commit) } catch { throw .failed(error.description) }
        return silenceView(s)
    }

    public func listSilences(_ c: Caller, expired: Bool) throws(OperationError) -> [JSONObject] {
        try reasoned(c)
        try require(policy.decide(c.principal, .listSilences), c, .listSilences)
        let all: [Silence]
        do { all = try store.silences(includeExpired: expired) } catch { throw .failed(error.description) }
        let visible = all.filter { policy.decide(c.principal, .listSilences, silence: $0).allowed }
        try record(
            event(
                "consultation", c,
                [("command", .string("silence list")), ("silences", .array(visible.map { .string($0.id) }))]))
        return visible.map(silenceView)
    }

    public func expireSilence(_ c: Caller, id: String) throws(OperationError) {
        try reasoned(c)
        let object: [(String, JSONValue)] = [("silence", .string(id))]
        try require(policy.decide(c.principal, .expireSilence), c, .expireSilence, object: object)
        let active: [Silence]
        do { active = try store.silences(includeExpired: false) } catch { throw .failed(error.description) }
        guard var s = active.first(where: { $0.id == id }),
            policy.decide(c.principal, .expireSilence, silence: s).allowed
        else {
            try require(.hidden("no active silence \(id)"), c, .expireSilence, object: object)
            return
        }
        s.expiredAt = clock()
        var commit = Commit()
        commit.silences = [s]
        commit.events = [event("silence_expired", c, object)]
        commit.offsets = [Dispatcher.changed(clock())]
        do { try store.commit(commit) } catch { throw .failed(error.description) }
    }

    // MARK: Outbox and receivers

    /// Outbox metadata (receiver, state, attempts, error; no rendered content) of the receivers the caller may see.
    public func listOutbox(_ c: Caller, dead: Bool, limit: Int) throws(OperationError) -> [JSONObject] {
        try reasoned(c)
        try require(policy.decide(c.principal, .listOutbox), c, .listOutbox)
        let items: [OutboxItem]
        do { items = try store.outbox(status: dead ? .dead : nil, limit: Int.max) } catch {
            throw .failed(error.description)
        }
        var out: [JSONObject] = []
        for i in items where out.count < limit {
            guard policy.decide(c.principal, .listOutbox, receiver: i.receiver).allowed else { continue }
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
            out.append(o)
        }
        try record(event("consultation", c, [("command", .string("outbox list"))]))
        return out
    }

    public func retryOutbox(_ c: Caller, id: Int64) throws(OperationError) {
        try reasoned(c)
        let object: [(String, JSONValue)] = [("outbox_id", .number(String(id)))]
        try require(policy.decide(c.principal, .retryOutbox), c, .retryOutbox, object: object)
        let dead: [OutboxItem]
        do { dead = try store.outbox(status: .dead, limit: Int.max) } catch { throw .failed(error.description) }
        guard let item = dead.first(where: { $0.id == id }),
            policy.decide(c.principal, .retryOutbox, receiver: item.receiver).allowed
        else {
            try require(.hidden("outbox item \(id) is not a dead letter"), c, .retryOutbox, object: object)
            return
        }
        let ok: Bool
        do {
            ok = try store.retry(outboxID: id, event: event("outbox_retry", c, receiver: item.receiver, object))
        } catch { throw .failed(error.description) }
        if !ok { throw .conflict("outbox item \(id) is not a dead letter") }
    }

    /// Enables a receiver (all its integrations) that a 410 disabled: its held notifications go out.
    public func enableReceiver(_ c: Caller, name: String) throws(OperationError) {
        try reasoned(c)
        let object: [(String, JSONValue)] = [("receiver", .string(name))]
        try require(policy.decide(c.principal, .enableReceiver), c, .enableReceiver, object: object)
        guard let r = config.alerts.receiver(name) else {
            try require(.hidden("no receiver \(name)"), c, .enableReceiver, object: object)
            return
        }
        try require(policy.decide(c.principal, .enableReceiver, receiver: name), c, .enableReceiver, object: object)
        var commit = Commit()
        commit.offsets =
            [(DeliveryFailure.disabledKey(name), 0)]
            + r.integrations.map {
                (DeliveryFailure.disabledKey(OutboxLane(receiver: name, integration: $0.name)), 0)
            }
        commit.events = [event("receiver_enabled", c, receiver: name, [])]
        do { try store.commit(commit) } catch { throw .failed(error.description) }
    }
}
