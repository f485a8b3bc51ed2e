import TriplineAlerts
import TriplineJSON
import TriplineState

/// The one authorisation policy (SPEC §8): every command, and every API route, asks it whether a principal may
/// take an action on an object. The table below is SPEC §8's, row for row; the functions only apply a scope to an
/// object. Refusals carry the reason that is audited; `hidden` is a refusal that must not reveal that the object
/// exists (another partner's list or alert answers as if there were none).
public struct Policy: Sendable {
    public enum Action: String, Sendable, CaseIterable {
        case listWatchlists = "watchlists list"
        case readWatchlist = "watchlists read"
        case submitWatchlist = "watchlists submit"
        case withdrawWatchlist = "watchlists withdraw"
        case listAlerts = "alerts list"
        case showAlert = "alerts show"
        case ackAlert = "alerts ack"
        case resolveAlert = "alerts resolve"
        case addSilence = "silence add"
        case listSilences = "silence list"
        case expireSilence = "silence expire"
        case listOutbox = "outbox list"
        case retryOutbox = "outbox retry"
        case enableReceiver = "receivers enable"
        case queryAudit = "audit query"
        case exportAudit = "audit export"
        case proveAudit = "audit prove"
        case verifyAudit = "audit verify"
        case eraseAudit = "audit erase"
        case ingest = "selectors ingest"
        case manageTokens = "tokens"
        case reload = "config reload"
        case operations = "operations"
    }

    /// How far a role's permission reaches.
    public enum Scope: Sendable, Equatable {
        /// Objects of its own partner: its lists, the alerts on them, its receivers, its silences.
        case own
        /// Alerts routed to its partner's receivers or on its partner's lists.
        case routedOrOwn
        /// Alerts it may list, when its partner owns the lists behind them or is the operating partner.
        case resolvable
        /// Everything.
        case all
    }

    public enum Decision: Sendable, Equatable {
        case allow
        /// Refused (403).
        case deny(String)
        /// Refused without revealing the object (404).
        case hidden(String)
        public var allowed: Bool { self == .allow }
        public var reason: String? {
            switch self {
            case .allow: nil
            case .deny(let r), .hidden(let r): r
            }
        }
    }

    /// SPEC §8: what each role may do, and how far (a role absent from a row may not).
    public static let table: [Action: [Principal.Role: Scope]] = [
        .listWatchlists: [.partner: .own, .auditor: .all],
        .readWatchlist: [.partner: .own, .auditor: .all],
        .submitWatchlist: [.partner: .own],
        .withdrawWatchlist: [.partner: .own],
        .listAlerts: [.partner: .own, .analyst: .routedOrOwn, .auditor: .all],
        .showAlert: [.partner: .own, .analyst: .routedOrOwn, .auditor: .all],
        .ackAlert: [.analyst: .routedOrOwn],
        .resolveAlert: [.partner: .own, .analyst: .resolvable],
        .addSilence: [.analyst: .own, .admin: .all],
        .listSilences: [.analyst: .own, .auditor: .all, .admin: .all],
        .expireSilence: [.analyst: .own, .admin: .all],
        .listOutbox: [.analyst: .own, .auditor: .all, .admin: .all],
        .retryOutbox: [.analyst: .own, .admin: .all],
        .enableReceiver: [.analyst: .own, .admin: .all],
        .queryAudit: [.auditor: .all],
        .exportAudit: [.auditor: .all],
        .proveAudit: [.auditor: .all],
        .verifyAudit: [.auditor: .all],
        .eraseAudit: [.auditor: .all],
        .ingest: [.admin: .all, .ingest: .all],
        .manageTokens: [.admin: .all],
        .reload: [.admin: .all],
        .operations: [.partner: .all, .analyst: .all, .auditor: .all, .admin: .all, .ingest: .all],
    ]

    /// The longest silence (SPEC §8: a silence's length has a documented maximum).
    public static let maxSilence = 365 * 86_400.0

    public let config: AlertsConfig
    /// The operating partner (config `operator:`).
    public let operatorPartner: String

    public init(config: AlertsConfig, operatorPartner: String) {
        self.config = config
        self.operatorPartner = operatorPartner
    }

    /// The scope a role has for an action, or nil.
    public static func scope(_ role: Principal.Role, _ action: Action) -> Scope? { table[action]?[role] }

    /// Whether the role may take the action at all (before any object is known).
    public func decide(_ p: Principal, _ action: Action) -> Decision {
        Self.scope(p.role, action) == nil
            ? .deny("\(p.id) (\(p.role.rawValue)) may not \(action.rawValue)") : .allow
    }

    /// The partners owning the lists behind an alert (its protections).
    public static func owners(_ a: AlertRecord) -> Set<String> { Set(Protection.from(a.payload).map(\.owner)) }

    /// The partners whose receivers the alert is routed to under the current routing.
    public func routedPartners(_ a: AlertRecord) -> Set<String> {
        Set(config.targets(a).compactMap { config.receiver($0.1)?.partner })
    }

    /// An action on one alert. Alerts a principal may not list are hidden (their existence is protected).
    public func decide(_ p: Principal, _ action: Action, alert a: AlertRecord) -> Decision {
        guard let scope = Self.scope(p.role, action) else {
            return .deny("\(p.id) (\(p.role.rawValue)) may not \(action.rawValue)")
        }
        let own = Self.owners(a).contains(p.partner)
        let listable: Bool
        switch p.role {
        case .auditor: listable = true
        case .partner: listable = own
        case .analyst: listable = own || routedPartners(a).contains(p.partner)
        default: listable = false
        }
        guard listable else { return .hidden("no alert \(a.id) visible to \(p.id)") }
        switch scope {
        case .all, .routedOrOwn: return .allow
        case .own: return own ? .allow : .hidden("no alert \(a.id) visible to \(p.id)")
        case .resolvable:
            return own || p.partner == operatorPartner
                ? .allow
                : .deny(
                    "\(p.id) may resolve only alerts on \(p.partner)'s lists (resolving is for everyone: the owner or "
                        + "the operating partner decides)")
        }
    }

    /// An action on a receiver (its outbox, its enabling).
    public func decide(_ p: Principal, _ action: Action, receiver name: String) -> Decision {
        guard let scope = Self.scope(p.role, action) else {
            return .deny("\(p.id) (\(p.role.rawValue)) may not \(action.rawValue)")
        }
        if scope == .all { return .allow }
        guard let r = config.receiver(name), r.partner == p.partner else {
            return .hidden("no receiver \(name)")  // the same words as for a receiver that does not exist
        }
        return .allow
    }

    /// An action on a silence (its partner scope: nil is an operator's silence over every receiver).
    public func decide(_ p: Principal, _ action: Action, silence s: Silence) -> Decision {
        guard let scope = Self.scope(p.role, action) else {
            return .deny("\(p.id) (\(p.role.rawValue)) may not \(action.rawValue)")
        }
        if scope == .all { return .allow }
        return s.partner == p.partner ? .allow : .hidden("no silence \(s.id) of \(p.partner)")
    }

    /// An action on a partner's list.
    public func decide(_ p: Principal, _ action: Action, listOwner: String) -> Decision {
        guard let scope = Self.scope(p.role, action) else {
            return .deny("\(p.id) (\(p.role.rawValue)) may not \(action.rawValue)")
        }
        if scope == .all || listOwner == p.partner { return .allow }
        return .hidden("no list of \(listOwner) visible to \(p.id)")
    }

    /// The receivers a new silence by `p` applies to: its partner's (nil: every receiver, an operator's silence).
    public func silenceScope(_ p: Principal) -> String? { p.role == .admin ? nil : p.partner }
}
