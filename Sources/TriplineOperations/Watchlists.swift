import Foundation
import TriplineAlerts
import TriplineJSON
import TriplinePolicy
import TriplineSelectors
import TriplineState
import TriplineWatchlists
import TriplineYAML

/// Where the lists in force come from, as the running service loaded them: a list comes from one source (SPEC
/// §10), a file under the watchlist directory (managed by the operator) or submissions through the API.
public struct ListCatalog: Sendable {
    /// `owner/list` → the file managing it, for every list file of the watchlist directory (in force or refused).
    public var files: [String: String]
    /// `owner/list` → the version in force now (files and submissions alike).
    public var inForce: [String: String]
    public init(files: [String: String] = [:], inForce: [String: String] = [:]) {
        self.files = files
        self.inForce = inForce
    }
}

/// Partners' lists through the API (SPEC §4, §10): submit (validated, stored with every version, replacing the
/// previous one atomically), read (current or any version), list, withdraw. Each asks the policy — another
/// partner's list is hidden (404), never refused (403) — and each submission, refusal, withdrawal and reading is
/// audited with the owner, list, version and counts, never the list's content (SPEC §6).
extension Operations {
    /// SPEC §4: a list file (and a submission) is at most 256 MiB.
    public static let maxListBytes = WatchlistLoader.limits.maxBytes

    /// What a submission came to.
    public enum Submission: Sendable {
        /// Stored and made current (201): owner, list, version, previous version, entries, warnings.
        case accepted(JSONObject)
        /// Refused (422) with every error located as `{owner}/{list}.yaml:line:col`; the previous version stays.
        case refused(version: String, errors: [String], warnings: [String])
    }

    /// The name a submitted list's messages use.
    static func listFile(_ owner: String, _ list: String) -> String { "\(owner)/\(list).yaml" }

    /// An owner or list name as the URL gives it: letters, digits, '-', '_' or '.' (not only dots).
    static func isListName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 200 && !s.allSatisfy { $0 == "." }
            && s.unicodeScalars.allSatisfy {
                ($0.value < 0x80 && CharacterSet.alphanumerics.contains($0)) || $0 == "-" || $0 == "_" || $0 == "."
            }
    }

    func listObject(_ owner: String, _ list: String, version: String? = nil) -> [(String, JSONValue)] {
        [("owner", .string(owner)), ("list", .string(list))] + (version.map { [("version", .string($0))] } ?? [])
    }

    /// The policy for an action on `owner`'s list: the role first (403), then the owner (404: another partner's
    /// list is answered as if there were none).
    public func requireList(_ c: Caller, _ action: Policy.Action, _ owner: String, _ list: String)
        throws(OperationError)
    {
        try reasoned(c)
        let object = listObject(owner, list)
        try require(policy.decide(c.principal, action), c, action, object: object)
        try require(policy.decide(c.principal, action, listOwner: owner), c, action, object: object)
        guard Self.isListName(owner), Self.isListName(list) else {
            try require(.hidden("no list \(owner)/\(list)"), c, action, object: object)
            return
        }
    }

    /// Whether a file of the watchlist directory manages the list: as loaded, or placed there since.
    func fileManaged(_ owner: String, _ list: String, _ catalog: ListCatalog) -> Bool {
        if catalog.files[owner + "/" + list] != nil { return true }
        let dir = (config.watchlists as NSString).appendingPathComponent(owner)
        return ["yaml", "yml"].contains {
            FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("\(list).\($0)"))
        }
    }

    /// PUT or DELETE on a list a file manages: 409, audited.
    func refuseFileManaged(_ c: Caller, _ action: Policy.Action, _ owner: String, _ list: String) throws(OperationError)
    {
        let why =
            "\(owner)/\(list) is managed by the operator as a file of the watchlist directory; it cannot be "
            + "replaced or withdrawn through the API"
        try record(
            event(
                "refused", c,
                [("command", .string(action.rawValue)), ("why", .string(why))] + listObject(owner, list)))
        throw .conflict(why)
    }

    func submitted() throws(OperationError) -> [SubmittedList] {
        do { return try store.submittedLists(content: false) } catch { throw .failed(error.description) }
    }

    // MARK: Routes

    /// The lists the caller may list (a partner: its own; an auditor: all), files' and submitted ones, by owner
    /// and name.
    public func listWatchlists(_ c: Caller, catalog: ListCatalog) throws(OperationError) -> [JSONObject] {
        try reasoned(c)
        try require(policy.decide(c.principal, .listWatchlists), c, .listWatchlists)
        var rows: [String: JSONObject] = [:]
        for (key, file) in catalog.files {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            var o = JSONObject([("owner", .string(parts[0])), ("list", .string(parts[1])), ("source", .string("file"))])
            o.append("version", catalog.inForce[key].map { .string($0) } ?? .null)
            o.append("in_force", .bool(catalog.inForce[key] != nil))
            o.append("file", .string(file))
            rows[key] = o
        }
        for s in try submitted() where catalog.files[s.owner + "/" + s.list] == nil {
            let key = s.owner + "/" + s.list
            var o = JSONObject([("owner", .string(s.owner)), ("list", .string(s.list)), ("source", .string("api"))])
            o.append("version", .string(s.version))
            o.append("in_force", .bool(s.withdrawnAt == nil && catalog.inForce[key] == s.version))
            o.append("size", .number(String(s.size)))
            o.append("submitted_at", .string(Renderer.time(s.submittedAt)))
            o.append("submitted_by", .string(s.submittedBy))
            if let w = s.withdrawnAt { o.append("withdrawn_at", .string(Renderer.time(w))) }
            rows[key] = o
        }
        let visible = rows.filter { key, _ in
            policy.decide(c.principal, .listWatchlists, listOwner: String(key.split(separator: "/")[0])).allowed
        }.sorted { $0.key < $1.key }
        try record(
            event(
                "consultation", c,
                [
                    ("command", .string(Policy.Action.listWatchlists.rawValue)),
                    ("lists", .array(visible.map { .string($0.key) })),
                ]))
        return visible.map(\.value)
    }

    /// A new version of `owner`'s list `list` (the YAML of SPEC §4): validated as a list file is, its `owner:` and
    /// `watchlist:` those of the URL; stored and made current in one transaction with its audit record, or refused
    /// with every error (the previous version stays). The caller makes the running service load it.
    public func submitWatchlist(
        _ c: Caller, owner: String, list: String, yaml: [UInt8], catalog: ListCatalog
    ) throws(OperationError) -> Submission {
        try requireList(c, .submitWatchlist, owner, list)
        let key = owner + "/" + list
        if fileManaged(owner, list, catalog) { try refuseFileManaged(c, .submitWatchlist, owner, list) }
        let file = Self.listFile(owner, list)
        let now = clock()
        let loader = WatchlistLoader(normalizer: SelectorNormalizer(defaultRegion: config.defaultRegion))
        // The reader refuses more than the limit of a list file before parsing anything.
        let one = loader.outcome(bytes: yaml, file: file, owner: nil, now: now)
        var errors = one.errors
        // The list's own `owner:` and `watchlist:` must be the URL's (located at the field).
        if (one.owner.map { $0 != owner } ?? false) || (one.name.map { $0 != list } ?? false),
            let root = try? loader.reader.parse(yaml, file: file)
        {
            if let o = one.owner, o != owner, let n = root["owner"] {
                errors.append(n.error("\"owner\" must be \(owner), the owner the URL names"))
            }
            if let l = one.name, l != list, let n = root["watchlist"] {
                errors.append(n.error("\"watchlist\" must be \(list), the list the URL names"))
            }
            errors.sort { ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column) }
        }
        let version = one.version ?? WatchlistLoader.sha256Hex(yaml)
        let warnings = one.warnings.map(\.description)
        guard errors.isEmpty, let accepted = one.list else {
            if errors.isEmpty {
                errors.append(LocatedError(file: file, mark: Mark(line: 1, column: 1), message: "not a valid list"))
            }
            try record(
                event(
                    "watchlist_refused", c,
                    listObject(owner, list, version: version) + [
                        ("source", .string("api")), ("errors", .number(String(errors.count))),
                        ("warnings", .number(String(warnings.count))),
                        ("previous_version_kept", catalog.inForce[key].map { .string($0) } ?? .null),
                    ]))
            return .refused(version: version, errors: errors.map(\.description), warnings: warnings)
        }
        let previous = catalog.inForce[key]
        var commit = Commit()
        commit.listSubmissions = [
            .submit(
                SubmittedList(
                    owner: owner, list: list, version: version, yaml: yaml, submittedAt: now,
                    submittedBy: c.principal.id))
        ]
        commit.events = [
            event(
                "watchlist_submitted", c,
                listObject(owner, list, version: version) + [
                    ("source", .string("api")), ("previous_version", previous.map { .string($0) } ?? .null),
                    ("entries", .number(String(accepted.entries.count))), ("size", .number(String(yaml.count))),
                    ("errors", .number("0")), ("warnings", .number(String(warnings.count))),
                ])
        ]
        do { try store.commit(commit) } catch { throw .failed(error.description) }
        var o = JSONObject(listObject(owner, list, version: version))
        o.append("previous_version", previous.map { .string($0) } ?? .null)
        o.append("entries", .number(String(accepted.entries.count)))
        o.append("warnings", .array(warnings.map { .string($0) }))
        return .accepted(o)
    }

    /// The YAML of a list: its current version, or the version asked for (submitted lists keep every version; a
    /// file's list is the file as it is now).
    public func readWatchlist(
        _ c: Caller, owner: String, list: String, version: String?, catalog: ListCatalog
    ) throws(OperationError) -> (version: String, yaml: [UInt8]) {
        try requireList(c, .readWatchlist, owner, list)
        let key = owner + "/" + list
        let object = listObject(owner, list)
        var found: (version: String, yaml: [UInt8])?
        do {
            if let version {
                found = try store.submittedList(owner: owner, list: list, version: version).map {
                    ($0.version, $0.yaml)
                }
            } else if let file = catalog.files[key] {
                found = FileManager.default.contents(atPath: file).map {
                    (WatchlistLoader.sha256Hex([UInt8]($0)), [UInt8]($0))
                }
            } else if let current = try store.submittedLists(content: false).first(where: {
                $0.owner == owner && $0.list == list && $0.withdrawnAt == nil
            }) {
                found = try store.submittedList(owner: owner, list: list, version: current.version).map {
                    ($0.version, $0.yaml)
                }
            }
        } catch { throw .failed(error.description) }
        guard let found else {
            let what = version.map { "no version \($0) of \(key)" } ?? "no list \(key) in force"
            try require(.hidden(what), c, .readWatchlist, object: object)
            throw .hidden(what)
        }
        try record(
            event(
                "consultation", c,
                [("command", .string(Policy.Action.readWatchlist.rawValue))]
                    + listObject(owner, list, version: found.version)))
        return found
    }

    /// Every version of a list, oldest first (the current one last): a submitted list's stored versions, and a
    /// file's list the version in force.
    public func watchlistVersions(_ c: Caller, owner: String, list: String, catalog: ListCatalog)
        throws(OperationError) -> [JSONObject]
    {
        try requireList(c, .readWatchlist, owner, list)
        let key = owner + "/" + list
        let stored: [SubmittedList]
        do { stored = try store.submittedVersions(owner: owner, list: list) } catch { throw .failed(error.description) }
        var out: [JSONObject] = stored.map { s in
            var o = JSONObject([("version", .string(s.version)), ("source", .string("api"))])
            o.append("size", .number(String(s.size)))
            o.append("submitted_at", .string(Renderer.time(s.submittedAt)))
            o.append("submitted_by", .string(s.submittedBy))
            if let w = s.withdrawnAt { o.append("withdrawn_at", .string(Renderer.time(w))) }
            o.append("in_force", .bool(catalog.files[key] == nil && s.withdrawnAt == nil && s == stored.last))
            return o
        }
        if catalog.files[key] != nil {
            var o = JSONObject([("version", catalog.inForce[key].map { .string($0) } ?? .null)])
            o.append("source", .string("file"))
            o.append("in_force", .bool(catalog.inForce[key] != nil))
            out.append(o)
        }
        guard !out.isEmpty else {
            try require(.hidden("no list \(key)"), c, .readWatchlist, object: listObject(owner, list))
            throw .hidden("no list \(key)")
        }
        try record(
            event(
                "consultation", c,
                [("command", .string("watchlists versions"))] + listObject(owner, list)))
        return out
    }

    /// Withdraws a submitted list: it stops matching once the caller has the running service load the lists again
    /// (its open alerts then follow entitlement as for a withdrawn list: the owner alone); its versions stay stored.
    public func withdrawWatchlist(_ c: Caller, owner: String, list: String, catalog: ListCatalog)
        throws(OperationError) -> String
    {
        try requireList(c, .withdrawWatchlist, owner, list)
        let key = owner + "/" + list
        if fileManaged(owner, list, catalog) { try refuseFileManaged(c, .withdrawWatchlist, owner, list) }
        guard let current = try submitted().first(where: { $0.owner == owner && $0.list == list }),
            current.withdrawnAt == nil
        else {
            try require(.hidden("no list \(key) in force"), c, .withdrawWatchlist, object: listObject(owner, list))
            throw .hidden("no list \(key) in force")
        }
        var commit = Commit()
        commit.listSubmissions = [.withdraw(owner: owner, list: list, at: clock())]
        commit.events = [
            event(
                "watchlist_withdrawn", c,
                listObject(owner, list, version: current.version) + [("source", .string("api"))])
        ]
        do { try store.commit(commit) } catch { throw .failed(error.description) }
        return current.version
    }
}
