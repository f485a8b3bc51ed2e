import Foundation
import TriplineConfig
import TriplineMatch
import TriplineOperations
import TriplineRules
import TriplineSelectors
import TriplineState
import TriplineStores
import TriplineWatchlists
import TriplineYAML

/// Lists submitted through the API (SPEC §10) in the service: stored in the state database with every version,
/// loaded beside the file lists (a list comes from one source: where a file of the watchlist directory names a
/// list, the file is that list), and loaded again when a partner submits or withdraws one.
public enum SubmittedLists {
    /// The current versions stored in the state database at `location` (none when there is no database yet), read
    /// before the lists and rules load at start (a rule may expand a submitted list).
    public static func stored(_ location: String, busyTimeout: Double) throws -> [SubmittedList] {
        guard FileManager.default.fileExists(atPath: location) else { return [] }
        return try StateStores.open(location, busyTimeout: busyTimeout).submittedLists(content: true)
    }
}

extension Loaded {
    /// `owner/list` → file for every list file of the watchlist directory, accepted or refused (a file whose
    /// `watchlist:` could not be read is taken by its file name).
    static func fileManaged(_ files: [WatchlistLoader.FileOutcome]) -> [String: String] {
        var out: [String: String] = [:]
        for f in files {
            guard let owner = f.owner else { continue }
            let name = f.name ?? ((f.path as NSString).lastPathComponent as NSString).deletingPathExtension
            if out[owner + "/" + name] == nil { out[owner + "/" + name] = f.path }
        }
        return out
    }

    /// The submitted lists' current versions (withdrawn ones left out, and those of a list a file manages),
    /// validated again as at submission; one refused now (its owner no longer a partner) keeps its `previous`
    /// version in force, as a refused file does.
    static func submittedLists(
        _ submitted: [SubmittedList], managed: [String: String], previous: Loaded?, config c: Configuration,
        normalizer: SelectorNormalizer, now: Double
    ) -> (lists: [Watchlist], refused: [(file: String, errors: Int)], errors: [String], warnings: [String]) {
        let loader = WatchlistLoader(normalizer: normalizer)
        let partners = Set(c.alerts.partners.map(\.id))
        var lists: [Watchlist] = []
        var refused: [(file: String, errors: Int)] = []
        var errors: [String] = []
        var warnings: [String] = []
        for s in submitted where s.withdrawnAt == nil && managed[s.owner + "/" + s.list] == nil {
            let file = "\(s.owner)/\(s.list).yaml"
            let one = loader.outcome(bytes: s.yaml, file: file, owner: s.owner, now: now)
            var errs = one.errors
            if c.configFile != nil && !partners.contains(s.owner) {
                errs.append(
                    LocatedError(
                        file: file, mark: Mark(line: 1, column: 1),
                        message: "the list's owner \"\(s.owner)\" is not a partner of the configuration"))
            }
            if let name = one.name, name != s.list {
                errs.append(
                    LocatedError(
                        file: file, mark: Mark(line: 1, column: 1),
                        message: "\"watchlist\" is not \(s.list), the name the list was submitted under"))
            }
            warnings += one.warnings.map { "\($0.file):\($0.mark.line):\($0.mark.column): warning: \($0.message)" }
            if errs.isEmpty, let list = one.list {
                lists.append(list)
                continue
            }
            refused.append((file, errs.count))
            errors += errs.map(\.description)
            if let kept = previous?.lists.first(where: { $0.owner == s.owner && $0.name == s.list }) {
                lists.append(kept)
            }
        }
        return (lists, refused, errors, warnings)
    }

    /// This load with the submitted lists' current versions in place of those it has: the file lists as loaded
    /// (no file is read again), a new index, and rules that expand lists compiled again (their previous compilation
    /// stays when that fails). `refused` is what this merge refused.
    public func merging(_ submitted: [SubmittedList], now: Double) -> (Loaded, errors: [String], warnings: [String]) {
        let s = Self.submittedLists(
            submitted, managed: fileManaged, previous: self, config: configuration, normalizer: normalizer, now: now)
        var l = self
        l.lists = fileLists + s.lists
        l.refused = s.refused
        l.rulesRefused = []
        l.matcher = Matcher(index: WatchlistIndex(lists: l.lists), now: now)
        var errors = s.errors
        if expands, let source = ruleSource {
            let r = RuleLoader(watchlists: l.lists, now: now).recompile(source)
            if r.errors.isEmpty {
                l.rules = r.ruleSet
            } else {
                l.rulesRefused = r.errors.map(\.description)
                errors += l.rulesRefused
            }
        }
        l.files = l.lists.map { ($0.file, $0.version) } + (ruleSource?.files ?? [])
        l.indexWarnings = l.matcher.index.warnings
        return (l, errors, s.warnings)
    }
}

extension Pipeline {
    /// Where the lists in force come from (for the API's list routes).
    public var listCatalog: ListCatalog {
        var inForce: [String: String] = [:]
        for l in loaded.lists { inForce[l.owner + "/" + l.name] = l.version }
        return ListCatalog(files: loaded.fileManaged, inForce: inForce)
    }
}
