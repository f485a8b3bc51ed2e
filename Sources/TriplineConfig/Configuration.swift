import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineRules
import TriplineSelectors
import TriplineSinks
import TriplineState
import TriplineYAML

/// `tripline.yaml` (SPEC §6), read strictly: every error names `file:line:col`. Paths are relative to the file.
/// Secrets only by reference: `*_file` or `*_env` keys, never inline.
public struct Configuration: Sendable {
    public var rules = "Rules"
    public var watchlists = "Watchlists"
    public var defaultRegion: String?
    public var configFile: String?
    public var correlation = CorrelationOptions()
    /// SQLite file of the state (outbox, alerts, events).
    public var state = ".tripline/state.sqlite"
    public var handleKeyFile: String?
    public var alerts: AlertsConfig
    /// The `audit` section as read (the audit issue uses it).
    public var audit: [String: String] = [:]
    /// The operating partner (SPEC §8 `operator:`): the only partner by default; required with several.
    public var operatorPartner = "local"
    /// The HTTP API (SPEC §10), off unless configured.
    public var http: HTTPSettings?

    public struct HTTPSettings: Sendable {
        public var host: String
        public var port: Int
        /// TLS: certificate chain and key files; clients verified against `clientCAFile` when set.
        public var certFile: String?
        public var keyFile: String?
        public var clientCAFile: String?
        public var externalURL: String?
        public var linkKeyFile: String?
        /// Requests per second per principal, and the burst above it.
        public var rateLimit = 100.0
        public var rateBurst = 200.0
        /// Seconds a connection may stay silent before the server closes it (`idle_timeout`).
        public var idleTimeout = 60.0
        /// Seconds a request body may take before it must keep up an average of `APIServices.minBodyRate` bytes per
        /// second (`body_timeout`): a body trickled just faster than the idle timeout is cut off (408).
        public var bodyTimeout = 30.0
    }

    /// The longest value each duration key takes (SPEC §6: network deadlines at most 24 h, every other duration
    /// a documented maximum); `check` refuses longer ones at file:line:col.
    public static let durationMaxima: [(key: String, seconds: Double, text: String)] = [
        ("timeout", SinkConfig.maxNetworkDeadline, "24h"),
        ("transaction_timeout", SinkConfig.maxNetworkDeadline, "24h"),
        ("group_wait", 86_400, "24h"),
        ("group_interval", 86_400, "24h"),
        ("repeat_interval", 365 * 86_400, "365d"),
        ("resolve_timeout", 365 * 86_400, "365d"),
        ("allowed_lateness", 3650 * 86_400, "3650d"),
        ("max_future_skew", 7 * 86_400, "7d"),
        ("max_idle", 3650 * 86_400, "3650d"),
        ("per", 7 * 86_400, "7d"),
        ("checkpoint_interval", 86_400, "24h"),
        ("idle_timeout", 86_400, "24h"),
        ("body_timeout", 86_400, "24h"),
    ]

    /// Embedded defaults: one local partner whose receiver writes `.tripline/alerts.ndjson`.
    public init() {
        let route = Route(
            receiver: "log", matchers: [], groupBy: ["owner", "list"], groupWait: 0, groupInterval: 60,
            repeatInterval: 4 * 3600, continue: false, routes: [], index: 0)
        var a = AlertsConfig(route: route, handleKey: [])
        a.partners = [Partner(id: "local", name: "Operating agency", countries: [], contact: "operations desk")]
        var log = Receiver(name: "log", partner: "local")
        log.add("file", JSONObject([("path", .string(".tripline/alerts.ndjson"))]), sendResolved: true)
        a.receivers = [log]
        alerts = a
    }

    /// `--config F`, else `tripline.yaml` in the working directory, else the embedded defaults.
    public static func load(config: String?, sinks: SinkRegistry = .standard) throws(LocatedError) -> Configuration {
        let path: String
        if let config {
            path = config
        } else if FileManager.default.fileExists(atPath: "tripline.yaml") {
            path = "tripline.yaml"
        } else {
            return Configuration()
        }
        guard let root = try YAMLReader().read(path: path) else { return Configuration() }
        var r = Reader(base: (path as NSString).deletingLastPathComponent, sinks: sinks)
        var c = try r.read(root)
        c.configFile = path
        return c
    }

    /// The key for opaque handles: the file named by `handle_key_file`, else `handle.key` beside the state
    /// database, created (random, mode 0600) on first use.
    public func loadHandleKey() throws -> [UInt8] {
        let path =
            handleKeyFile
            ?? ((state as NSString).deletingLastPathComponent as NSString)
            .appendingPathComponent("handle.key")
        if let d = FileManager.default.contents(atPath: path) {
            // A short key would make the opaque handles guessable: an error to fix, never silently replaced.
            guard d.count >= 16 else {
                throw PrivateFileError("\(path): the handle key has \(d.count) bytes; it needs 16 or more")
            }
            return Array(d)
        }
        var key = [UInt8](repeating: 0, count: 32)
        var g = SystemRandomNumberGenerator()
        for i in key.indices { key[i] = UInt8.random(in: 0...255, using: &g) }
        try PrivateFiles.create(path, contents: key)  // 0600 from the start
        return key
    }

    /// Acknowledge links (SPEC §11): with `http.external_url` and `http.link_key_file`, the key read (made, 32
    /// random bytes 0600, when the file does not exist yet; refused under 32 bytes); nil without them.
    public func loadAckLinks() throws -> AckLinks? {
        guard let base = http?.externalURL, let path = http?.linkKeyFile else { return nil }
        var key: [UInt8]
        if let d = FileManager.default.contents(atPath: path) {
            key = Array(d)
        } else {
            key = [UInt8](repeating: 0, count: 32)
            var g = SystemRandomNumberGenerator()
            for i in key.indices { key[i] = UInt8.random(in: 0...255, using: &g) }
            try PrivateFiles.create(path, contents: key)
        }
        guard let links = AckLinks(baseURL: base, key: key) else {
            throw PrivateFileError("\(path): the link key has \(key.count) bytes; it needs 32 or more")
        }
        return links
    }
}

private struct Reader {
    let base: String
    let sinks: SinkRegistry

    func resolve(_ p: String) -> String { p.hasPrefix("/") || base.isEmpty ? p : base + "/" + p }

    func string(_ n: Node, _ what: String) throws(LocatedError) -> String {
        guard let s = n.scalar, !n.isNull else { throw n.error("\"\(what)\" must be a string") }
        return s
    }

    func strings(_ n: Node, _ what: String) throws(LocatedError) -> [String] {
        guard let seq = n.sequence else { throw n.error("\"\(what)\" must be a list") }
        var out: [String] = []
        for i in seq { out.append(try string(i, what)) }
        return out
    }

    /// A duration key, within its documented maximum (`Configuration.durationMaxima`).
    func duration(_ n: Node, _ what: String) throws(LocatedError) -> Double {
        guard let s = n.scalar, let d = parseDuration(s) else {
            throw n.error("\"\(what)\" must be a duration such as 0s, 30s, 5m, 4h")
        }
        if let limit = Configuration.durationMaxima.first(where: { $0.key == what }), d > limit.seconds {
            throw n.error("\"\(what)\" is at most \(limit.text) (\(s) is longer)")
        }
        return d
    }

    func mapping(_ n: Node, _ what: String, keys: [String]) throws(LocatedError) -> [(key: Node, value: Node)] {
        guard let m = n.mapping else { throw n.error("\"\(what)\" must be a mapping") }
        for (k, _) in m where !keys.contains(k.scalar ?? "") {
            throw k.error("unknown key \"\(k.scalar ?? "?")\" in \(what) (\(keys.joined(separator: ", ")))")
        }
        return m
    }

    func matchers(_ n: Node, _ what: String) throws(LocatedError) -> [LabelMatcher] {
        guard let seq = n.sequence else {
            throw n.error("\"\(what)\" must be a list of matchers like 'priority=\"critical\"'")
        }
        var out: [LabelMatcher] = []
        for i in seq {
            do { out.append(try LabelMatcher(try string(i, what))) } catch let e as LocatedError { throw e } catch {
                throw i.error("\(error)")
            }
        }
        return out
    }

    var routeIndex = 0

    mutating func route(_ n: Node, parent: Route?, receivers: Set<String>) throws(LocatedError) -> Route {
        let m = try mapping(
            n, "route",
            keys: [
                "receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval", "continue",
                "routes", "escalation", "escalation_repeat",
            ])
        var receiver = parent?.receiver
        var ms: [LabelMatcher] = []
        var groupBy = parent?.groupBy ?? []
        var wait = parent?.groupWait ?? 30
        var interval = parent?.groupInterval ?? 300
        var rep = parent?.repeatInterval ?? 4 * 3600
        var cont = false
        var children: [Node] = []
        var escalation = parent?.escalation ?? []
        var escalationRepeat = parent?.escalationRepeat ?? 0
        for (k, v) in m {
            switch k.scalar {
            case "receiver":
                let r = try string(v, "receiver")
                guard receivers.contains(r) else { throw v.error("route names unknown receiver \"\(r)\"") }
                receiver = r
            case "matchers": ms = try matchers(v, "matchers")
            case "group_by":
                groupBy = try strings(v, "group_by")
                if groupBy.contains("...") && groupBy.count > 1 {
                    throw v.error("group_by '...' (one group per alert) stands alone")
                }
            case "group_wait": wait = try duration(v, "group_wait")
            case "group_interval":
                interval = try duration(v, "group_interval")
                // As Alertmanager: zero would flush a group on every tick.
                guard interval > 0 else { throw v.error("\"group_interval\" must be longer than 0s") }
            case "repeat_interval":
                rep = try duration(v, "repeat_interval")
                guard rep > 0 else { throw v.error("\"repeat_interval\" must be longer than 0s") }
            case "continue":
                guard let s = v.scalar, s == "true" || s == "false" else {
                    throw v.error("\"continue\" is true or false")
                }
                cont = s == "true"
            case "routes":
                guard let seq = v.sequence else { throw v.error("\"routes\" must be a list") }
                children = seq
            case "escalation": escalation = try escalationSteps(v, receivers: receivers)
            case "escalation_repeat":
                guard let s = v.scalar, let n = Int(s), n >= 0, n <= 100 else {
                    throw v.error("\"escalation_repeat\" is a whole number from 0 to 100")
                }
                escalationRepeat = n
            default: break
            }
        }
        guard let receiver else { throw n.error("the root route needs a \"receiver\"") }
        let index = routeIndex
        routeIndex += 1
        let shell = Route(
            receiver: receiver, matchers: ms, groupBy: groupBy, groupWait: wait, groupInterval: interval,
            repeatInterval: rep, continue: cont, routes: [], index: index, escalation: escalation,
            escalationRepeat: escalationRepeat)
        var subs: [Route] = []
        for c in children { subs.append(try route(c, parent: shell, receivers: receivers)) }
        return Route(
            receiver: receiver, matchers: ms, groupBy: groupBy, groupWait: wait, groupInterval: interval,
            repeatInterval: rep, continue: cont, routes: subs, index: index, escalation: escalation,
            escalationRepeat: escalationRepeat)
    }

    /// `escalation: [{after: 15m, receivers: [be-duty-officer]}, ...]`: steps in increasing order of `after`
    /// (counted from the alert's first notification on the route), each with known receivers.
    func escalationSteps(_ n: Node, receivers: Set<String>) throws(LocatedError) -> [EscalationStep] {
        guard let seq = n.sequence else { throw n.error("\"escalation\" must be a list of steps") }
        var steps: [EscalationStep] = []
        for item in seq {
            let m = try mapping(item, "escalation step", keys: ["after", "receivers"])
            var after: Double?
            var names: [String] = []
            for (k, v) in m {
                switch k.scalar {
                case "after":
                    let d = try duration(v, "after")
                    guard d > 0 else { throw v.error("an escalation step's \"after\" must be longer than 0s") }
                    if let previous = steps.last, d <= previous.after {
                        throw v.error("escalation steps go in increasing order of \"after\"")
                    }
                    after = d
                case "receivers":
                    names = try strings(v, "receivers")
                    guard !names.isEmpty else { throw v.error("an escalation step needs at least one receiver") }
                    for r in names where !receivers.contains(r) {
                        throw v.error("escalation step names unknown receiver \"\(r)\"")
                    }
                default: break
                }
            }
            guard let after else { throw item.error("an escalation step needs \"after\"") }
            guard !names.isEmpty else { throw item.error("an escalation step needs \"receivers\"") }
            steps.append(EscalationStep(after: after, receivers: names))
        }
        return steps  // empty: no escalation (a child route turning off its parent's)
    }

    mutating func read(_ root: Node) throws(LocatedError) -> Configuration {
        var c = Configuration()
        guard let top = root.mapping else { throw root.error("the configuration must be a mapping") }
        var partnersNode: Node?
        var stateNode: Node?
        var principalsNode: Node?
        var receiversNode: Node?
        var routeNode: Node?
        var inhibitNode: Node?
        var rateNode: Node?
        var watchdogNode: Node?
        var heartbeatsNode: Node?
        var templatesNode: Node?
        var operatorNode: Node?
        for (k, v) in top {
            switch k.scalar {
            case "rules": c.rules = resolve(try string(v, "rules"))
            case "watchlists": c.watchlists = resolve(try string(v, "watchlists"))
            case "state":
                let s = try string(v, "state")
                if StateLocation.isPostgres(s) {
                    // Checked here so that a bad URL is an error at its line (the database is reached at start).
                    do { _ = try StateLocation.parse(s) } catch { throw v.error("\(error)") }
                    c.state = s
                    stateNode = v
                } else {
                    c.state = resolve(s)
                }
            case "handle_key_file": c.handleKeyFile = resolve(try string(v, "handle_key_file"))
            case "default_region":
                guard let r = v.scalar?.uppercased(), PhoneNormalizer.shared.knowsRegion(r) else {
                    throw v.error("\"default_region\" must be an ISO 3166 region code with a numbering plan")
                }
                c.defaultRegion = r
            case "resolve_timeout": c.alerts.resolveTimeout = try duration(v, "resolve_timeout")
            case "correlation":
                for (ck, cv) in try mapping(
                    v, "correlation",
                    keys: ["allowed_lateness", "max_future_skew", "max_idle", "max_groups", "max_entries_per_group"])
                {
                    switch ck.scalar {
                    case "allowed_lateness": c.correlation.allowedLateness = try duration(cv, "allowed_lateness")
                    case "max_future_skew": c.correlation.maxFutureSkew = try duration(cv, "max_future_skew")
                    case "max_idle": c.correlation.maxIdle = try duration(cv, "max_idle")
                    default:
                        guard let n = cv.scalar.flatMap({ Int($0) }), n > 0 else {
                            throw cv.error("\"\(ck.scalar!)\" must be a positive integer")
                        }
                        if ck.scalar == "max_groups" {
                            c.correlation.maxGroups = n
                        } else {
                            c.correlation.maxEntriesPerGroup = n
                        }
                    }
                }
            case "http":
                var h = Configuration.HTTPSettings(host: "127.0.0.1", port: 9466)
                for (hk, hv) in try mapping(
                    v, "http",
                    keys: [
                        "listen", "tls", "external_url", "link_key_file", "rate_limit", "rate_burst", "idle_timeout",
                        "body_timeout",
                    ])
                {
                    switch hk.scalar {
                    case "listen":
                        let l = try string(hv, "listen")
                        guard let colon = l.lastIndex(of: ":"), let port = Int(l[l.index(after: colon)...]),
                            (1...65535).contains(port), colon > l.startIndex
                        else { throw hv.error("\"listen\" is host:port, like 127.0.0.1:9466") }
                        h.host = String(l[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                        h.port = port
                    case "tls":
                        for (tk, tv) in try mapping(hv, "tls", keys: ["cert_file", "key_file", "client_ca_file"]) {
                            let f = resolve(try string(tv, tk.scalar!))
                            switch tk.scalar {
                            case "cert_file": h.certFile = f
                            case "key_file": h.keyFile = f
                            default: h.clientCAFile = f
                            }
                        }
                        // Without both, a client_ca_file alone would leave the API on plain HTTP without a word.
                        if h.certFile == nil || h.keyFile == nil {
                            throw hv.error("\"tls\" needs both cert_file and key_file")
                        }
                    case "external_url": h.externalURL = try string(hv, "external_url")
                    case "link_key_file": h.linkKeyFile = resolve(try string(hv, "link_key_file"))
                    case "idle_timeout":
                        h.idleTimeout = try duration(hv, "idle_timeout")
                        guard h.idleTimeout > 0 else { throw hv.error("\"idle_timeout\" must be longer than 0s") }
                    case "body_timeout":
                        h.bodyTimeout = try duration(hv, "body_timeout")
                        guard h.bodyTimeout > 0 else { throw hv.error("\"body_timeout\" must be longer than 0s") }
                    default:
                        guard let n = hv.scalar.flatMap(Double.init), n > 0, n <= 100_000 else {
                            throw hv.error("\"\(hk.scalar!)\" is a number of requests, 1 to 100000")
                        }
                        if hk.scalar == "rate_limit" { h.rateLimit = n } else { h.rateBurst = n }
                    }
                }
                c.http = h
            case "audit":
                for (ak, av) in try mapping(v, "audit", keys: ["origin", "key_file", "checkpoint_interval"]) {
                    let s = try string(av, ak.scalar!)
                    if ak.scalar == "checkpoint_interval" {
                        guard try duration(av, "checkpoint_interval") > 0 else {
                            throw av.error("\"checkpoint_interval\" must be longer than 0s")
                        }
                    }
                    c.audit[ak.scalar!] = ak.scalar == "key_file" ? resolve(s) : s
                }
            case "operator": operatorNode = v
            case "partners": partnersNode = v
            case "principals": principalsNode = v
            case "receivers": receiversNode = v
            case "route": routeNode = v
            case "inhibit_rules": inhibitNode = v
            case "rate_limits": rateNode = v
            case "watchdog": watchdogNode = v
            case "heartbeats": heartbeatsNode = v
            case "templates": templatesNode = v
            default: throw k.error("unknown configuration key \"\(k.scalar ?? "?")\"")
            }
        }
        // Partners, then what refers to them.
        if let p = partnersNode {
            guard let seq = p.sequence else { throw p.error("\"partners\" must be a list") }
            var partners: [Partner] = []
            for n in seq {
                var id: String?
                var name = ""
                var countries: [String] = []
                var contact = ""
                for (k, v) in try mapping(n, "partner", keys: ["id", "name", "countries", "contact"]) {
                    switch k.scalar {
                    case "id": id = try string(v, "id")
                    case "name": name = try string(v, "name")
                    case "countries": countries = try strings(v, "countries").map { $0.uppercased() }
                    default: contact = try string(v, "contact")
                    }
                }
                guard let id else { throw n.error("a partner needs an \"id\"") }
                if partners.contains(where: { $0.id == id }) { throw n.error("duplicate partner \"\(id)\"") }
                partners.append(Partner(id: id, name: name, countries: countries, contact: contact))
            }
            c.alerts.partners = partners
        }
        let partnerIDs = Set(c.alerts.partners.map(\.id))
        if let o = operatorNode {
            let id = try string(o, "operator")
            guard partnerIDs.contains(id) else { throw o.error("\"operator\" names unknown partner \"\(id)\"") }
            c.operatorPartner = id
        } else if c.alerts.partners.count == 1 {
            c.operatorPartner = c.alerts.partners[0].id
        } else {
            throw (partnersNode ?? root).error(
                "with several partners, \"operator\" must name the operating partner (the agency that runs Tripline)")
        }
        if let t = templatesNode {
            guard let seq = t.sequence else { throw t.error("\"templates\" must be a list of {name, text}") }
            var ts: [Template] = []
            for n in seq {
                var name: String?
                var text: String?
                for (k, v) in try mapping(n, "template", keys: ["name", "text"]) {
                    if k.scalar == "name" { name = try string(v, "name") } else { text = try string(v, "text") }
                }
                guard let name, let text else { throw n.error("a template needs \"name\" and \"text\"") }
                do { ts.append(try Template(name: name, text: text)) } catch { throw n.error(error.description) }
            }
            c.alerts.templates = ts
        }
        if let r = receiversNode {
            guard let seq = r.sequence else { throw r.error("\"receivers\" must be a list") }
            var receivers: [Receiver] = []
            for n in seq {
                var name: String?
                var partner: String?
                var rec = Receiver(name: "", partner: "")
                let integrations = sinks.types.map { $0 + "_configs" }
                for (k, v) in try mapping(n, "receiver", keys: ["name", "partner"] + integrations) {
                    switch k.scalar {
                    case "name": name = try string(v, "name")
                    case "partner":
                        let p = try string(v, "partner")
                        guard partnerIDs.contains(p) else {
                            throw v.error("receiver belongs to unknown partner \"\(p)\"")
                        }
                        partner = p
                    default:
                        let type = String(k.scalar!.dropLast("_configs".count))
                        try sinks.read(
                            type, v, into: &rec,
                            context: SinkConfigContext(resolve: resolve, templates: c.alerts.templates))
                    }
                }
                guard let name else { throw n.error("a receiver needs a \"name\"") }
                guard let partner else { throw n.error("receiver \"\(name)\" needs the \"partner\" it belongs to") }
                if receivers.contains(where: { $0.name == name }) { throw n.error("duplicate receiver \"\(name)\"") }
                rec.name = name
                rec.partner = partner
                receivers.append(rec)
            }
            c.alerts.receivers = receivers
        }
        let receiverNames = Set(c.alerts.receivers.map(\.name))
        if let p = principalsNode {
            guard let seq = p.sequence else { throw p.error("\"principals\" must be a list") }
            for n in seq {
                var id: String?
                var partner: String?
                var role: Principal.Role?
                var subject: (name: SubjectName, node: Node)?
                for (k, v) in try mapping(n, "principal", keys: ["id", "partner", "role", "subject"]) {
                    switch k.scalar {
                    case "id": id = try string(v, "id")
                    case "subject":
                        guard let name = SubjectName(parsing: try string(v, "subject")) else {
                            throw v.error(
                                "\"subject\" is a distinguished name as RFC 4514 writes it, like \"CN=partner-be,O=Federal Police,C=BE\""
                            )
                        }
                        subject = (name, v)
                    case "partner":
                        let s = try string(v, "partner")
                        guard partnerIDs.contains(s) else { throw v.error("principal of unknown partner \"\(s)\"") }
                        partner = s
                    default:
                        guard let r = Principal.Role(rawValue: v.scalar ?? "") else {
                            throw v.error("\"role\" is one of partner, analyst, auditor, admin, ingest")
                        }
                        role = r
                    }
                }
                guard let id, let partner, let role else { throw n.error("a principal needs id, partner and role") }
                // A credential names one principal: two with one id would share (and confuse) every token.
                if c.alerts.principals.contains(where: { $0.id == id }) {
                    throw n.error("duplicate principal \"\(id)\"")
                }
                // One certificate subject stands for one principal.
                if let subject, let other = c.alerts.principals.first(where: { $0.subject == subject.name }) {
                    throw subject.node.error(
                        "principals \"\(other.id)\" and \"\(id)\" have the same subject \"\(subject.name)\"")
                }
                c.alerts.principals.append(Principal(id: id, partner: partner, role: role, subject: subject?.name))
            }
        }
        if let r = routeNode {
            c.alerts.route = try route(r, parent: nil, receivers: receiverNames)
        } else if receiversNode != nil {
            throw root.error("a configuration with receivers needs a \"route\"")
        }
        if let n = inhibitNode {
            guard let seq = n.sequence else { throw n.error("\"inhibit_rules\" must be a list") }
            for i in seq {
                var rule = InhibitRule(sourceMatchers: [], targetMatchers: [], equal: [])
                for (k, v) in try mapping(i, "inhibit rule", keys: ["source_matchers", "target_matchers", "equal"]) {
                    switch k.scalar {
                    case "source_matchers": rule.sourceMatchers = try matchers(v, "source_matchers")
                    case "target_matchers": rule.targetMatchers = try matchers(v, "target_matchers")
                    default: rule.equal = try strings(v, "equal")
                    }
                }
                c.alerts.inhibitRules.append(rule)
            }
        }
        if let n = rateNode {
            guard let seq = n.sequence else { throw n.error("\"rate_limits\" must be a list") }
            for i in seq {
                var receiver: String?
                var max: Int?
                var per: Double?
                for (k, v) in try mapping(i, "rate limit", keys: ["receiver", "max", "per"]) {
                    switch k.scalar {
                    case "receiver":
                        let r = try string(v, "receiver")
                        guard receiverNames.contains(r) else {
                            throw v.error("rate limit for unknown receiver \"\(r)\"")
                        }
                        receiver = r
                    case "max":
                        guard let m = v.scalar.flatMap({ Int($0) }), m > 0 else {
                            throw v.error("\"max\" must be a positive integer")
                        }
                        max = m
                    default:
                        per = try duration(v, "per")
                    }
                }
                guard let receiver, let max, let per, per > 0 else {
                    throw i.error("a rate limit needs receiver, max and per")
                }
                c.alerts.rateLimits.append(RateLimit(receiver: receiver, max: max, per: per))
            }
        }
        if let n = watchdogNode {
            var receiver: String?
            var every: Double?
            for (k, v) in try mapping(n, "watchdog", keys: ["receiver", "every"]) {
                if k.scalar == "receiver" {
                    let r = try string(v, "receiver")
                    guard receiverNames.contains(r) else { throw v.error("watchdog names unknown receiver \"\(r)\"") }
                    receiver = r
                } else {
                    let d = try duration(v, "every")
                    guard d >= 1 else { throw v.error("the watchdog's \"every\" must be at least 1s") }
                    every = d
                }
            }
            guard let receiver, let every else { throw n.error("\"watchdog\" needs receiver and every") }
            c.alerts.watchdog = (receiver, every)
        }
        if let n = heartbeatsNode {
            guard let seq = n.sequence else { throw n.error("\"heartbeats\" must be a list") }
            for item in seq {
                var field: String?
                var match: String?
                var every: Double?
                var receiver: String?
                for (k, v) in try mapping(item, "heartbeat", keys: ["field", "match", "every", "receiver"]) {
                    switch k.scalar {
                    case "field":
                        let f = try string(v, "field")
                        let known =
                            ["id", "type", "value", "raw"].contains(f) || f.hasPrefix("source.")
                            || f.hasPrefix("context.")
                        guard known, !f.hasSuffix("."), !f.contains("..") else {
                            throw v.error(
                                "a heartbeat's \"field\" is id, type, value, raw, source.NAME or context.NAME")
                        }
                        field = f
                    case "match":
                        let m = try string(v, "match")
                        guard !m.isEmpty else { throw v.error("a heartbeat's \"match\" is a non-empty glob") }
                        match = m
                    case "every":
                        let d = try duration(v, "every")
                        guard d >= 1 else { throw v.error("a heartbeat's \"every\" must be at least 1s") }
                        every = d
                    default:
                        let r = try string(v, "receiver")
                        guard receiverNames.contains(r) else {
                            throw v.error("heartbeat names unknown receiver \"\(r)\"")
                        }
                        receiver = r
                    }
                }
                guard let field, let match, let every, let receiver else {
                    throw item.error("a heartbeat needs field, match, every and receiver")
                }
                let h = Heartbeat(field: field, match: match, every: every, receiver: receiver)
                if c.alerts.heartbeats.contains(where: { $0.key == h.key }) {
                    throw item.error("a second heartbeat on \(field) matching \"\(match)\"")
                }
                c.alerts.heartbeats.append(h)
            }
        }
        // Nodes sharing one PostgreSQL database must make the same opaque handles: the key is named, never made
        // beside a state file that is not there.
        if let stateNode, c.handleKeyFile == nil {
            throw stateNode.error("state on PostgreSQL needs handle_key_file: the same key file on every node")
        }
        return c
    }
}
