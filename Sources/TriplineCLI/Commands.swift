import ArgumentParser
import Foundation
import TriplineConfig
import TriplineJSON
import TriplineMatch
import TriplineRules
import TriplineSelectors
import TriplineWatchlists
import TriplineYAML

/// The `tripline` command line (SPEC §9).
public struct Tripline: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tripline",
        abstract: "Streaming selector-watchlist matcher.",
        subcommands: [
            Check.self, Normalize.self, Match.self, RuleTest.self, Serve.self, Alerts.self, Silences.self, Outbox.self,
            Audit.self, Receivers.self, TokensCommand.self,
        ]
    )
    public init() {}

    /// Parses the command line and runs the command, awaiting the asynchronous ones (`serve`).
    public static func entry() async {
        do {
            var command = try parseAsRoot()
            if var a = command as? any AsyncParsableCommand {
                try await a.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Configuration file (default: tripline.yaml if present, else embedded defaults).")
    var config: String?

    @Option(help: "Rules directory (overrides the configuration).")
    var rules: String?

    @Option(help: "Watchlists directory (overrides the configuration).")
    var watchlists: String?

    @Option(help: "The current time, RFC 3339 (for tests and replays).")
    var now: String?

    func settings() throws -> Settings {
        var s = try loadSettings(config: config)
        if let rules { s.rules = rules }
        if let watchlists { s.watchlists = watchlists }
        return s
    }

    func clock() throws -> Double {
        guard let now else { return Date().timeIntervalSince1970 }
        guard let t = Timestamp.parse(now) else {
            throw ValidationError("--now must be an RFC 3339 time, like 2030-06-01T00:00:00Z")
        }
        return t
    }
}

/// The configuration, or exit 1 after printing its `file:line:col` error.
func loadSettings(config: String?) throws -> Settings {
    do { return try Settings.load(config: config) } catch {
        printError(error.description)
        throw ExitCode(1)
    }
}

func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Loads watchlists, printing every error and warning as `file:line:col: ...` on standard error.
/// What a one-shot command built is not freed object by object when it returns: the process ends right after and
/// the kernel takes the memory back at once (freeing a 720,000-entry list's objects one by one took ~0.2 s of `match`).
nonisolated(unsafe) private var keptUntilExit: [Any] = []
func keepUntilExit(_ x: Any) { keptUntilExit.append(x) }

func loadWatchlists(_ dir: String, now: Double, normalizer: SelectorNormalizer, quiet: Bool = false)
    -> WatchlistLoader.Result
{
    let r = WatchlistLoader(normalizer: normalizer).load(directory: dir, now: now)
    keepUntilExit(r.lists)
    for e in r.errors { printError(e.description) }
    if !quiet { for w in r.warnings { printError("\(w.file):\(w.mark.line):\(w.mark.column): warning: \(w.message)") } }
    return r
}

/// Loads and compiles the rules, printing every error (and, unless quiet, every warning) on standard error.
func loadRules(_ dir: String, watchlists: [Watchlist], now: Double, quiet: Bool = false) -> RuleLoader.Result {
    let r = RuleLoader(watchlists: watchlists, now: now).load(directory: dir)
    for e in r.errors { printError(e.description) }
    if !quiet { for w in r.warnings { printError(w.description) } }
    return r
}

struct RegionOption: ParsableArguments {
    @Option(help: "Region for national phone numbers without a hint in the record (ISO 3166 alpha-2).")
    var region: String?

    func validated(default d: String?) throws -> String? {
        guard let r = region?.uppercased() ?? d else { return nil }
        guard PhoneNormalizer.shared.knowsRegion(r) else {
            throw ValidationError("--region \(r) is not a region with a numbering plan")
        }
        return r
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the configuration, rules and watchlists; print file:line:col: message per error.")

    @OptionGroup var common: CommonOptions

    func run() throws {
        let s = try common.settings()
        let now = try common.clock()
        var errors = 0
        var r = WatchlistLoader(normalizer: SelectorNormalizer(defaultRegion: s.defaultRegion))
            .load(directory: s.watchlists, now: now)
        if s.configFile != nil { r.refuse(ownersNotIn: Set(s.alerts.partners.map(\.id))) }
        keepUntilExit(r.lists)
        for e in r.errors { printError(e.description) }
        for w in r.warnings { printError("\(w.file):\(w.mark.line):\(w.mark.column): warning: \(w.message)") }
        errors += r.errors.count
        let rules = loadRules(s.rules, watchlists: r.lists, now: now)
        errors += rules.errors.count
        // How the names compile (keys left out, crowded terms): what `serve` would warn of.
        let indexWarnings = WatchlistIndex.warnings(WatchlistIndex.names(of: r.lists), lists: r.lists)
        for w in indexWarnings { printError("tripline: warning: \(w)") }
        let entries = r.lists.reduce(0) { $0 + $1.entries.count }
        let summary =
            "checked \(s.configFile ?? "embedded defaults"): \(r.lists.count) watchlists, \(entries) entries; "
            + "\(rules.ruleSet.rules.count) rules, \(rules.ruleSet.correlations.count) correlations; "
            + "\(errors) errors, \(r.warnings.count + rules.warnings.count + indexWarnings.count) warnings"
        printError(summary)
        if errors > 0 { throw ExitCode(1) }
    }
}

struct Normalize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "NDJSON selectors in, normalised and enriched selectors out.")

    @Option(help: "Configuration file.") var config: String?
    @OptionGroup var region: RegionOption
    @Option(help: "Write rejected lines here instead of standard error.") var rejects: String?
    @Argument(help: "Input files (default: standard input).") var files: [String] = []

    func run() throws {
        let s = try loadSettings(config: config)
        let normalizer = SelectorNormalizer(defaultRegion: try region.validated(default: s.defaultRegion))
        let out = OutputStream(fd: 1)
        let rej = try rejects.map { try OutputStream(path: $0) } ?? OutputStream(fd: 2)
        var stream = SelectorStream(normalizer: normalizer, rejects: rej)
        do { try stream.run(files: files) { out.writeLine($0.json) } } catch {
            out.flush()
            printError("tripline: \(error)")
            throw ExitCode(2)
        }
        out.flush()
        if stream.rejected > 0 { throw ExitCode(1) }
    }
}

struct Match: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "NDJSON selectors in, one NDJSON object per watchlist or rule hit out.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var region: RegionOption
    @Option(help: "Write rejected lines here instead of standard error.") var rejects: String?
    @Option(
        help:
            "Threads: 1, or 2 (one reads and screens, the other runs the record step; the same output). Default: 2 on a machine with two cores or more."
    ) var threads: Int?
    @Argument(help: "Input files (default: standard input).") var files: [String] = []

    func run() throws {
        let s = try common.settings()
        let now = try common.clock()
        let normalizer = SelectorNormalizer(defaultRegion: try region.validated(default: s.defaultRegion))
        let r = loadWatchlists(s.watchlists, now: now, normalizer: normalizer, quiet: true)
        if !r.errors.isEmpty {
            printError("tripline: \(r.errors.count) watchlist errors; not reading input")
            throw ExitCode(1)
        }
        let rules = loadRules(s.rules, watchlists: r.lists, now: now, quiet: true)
        if !rules.errors.isEmpty {
            printError("tripline: \(rules.errors.count) rule errors; not reading input")
            throw ExitCode(1)
        }
        let index = WatchlistIndex(lists: r.lists)
        for w in index.warnings { printError("tripline: warning: \(w)") }
        var step = RecordStep(
            normalizer: normalizer, matcher: Matcher(index: index, now: now),
            engine: RuleEngine(rules.ruleSet, options: s.correlation))
        let out = OutputStream(fd: 1)
        let rej = try rejects.map { try OutputStream(path: $0) } ?? OutputStream(fd: 2)
        var stream = SelectorStream(normalizer: normalizer, rejects: rej)
        keepUntilExit(step.matcher)
        let screening = step.screening
        stream.screen = { buffer, lines, _ in screening.screen(buffer, lines: lines) }
        // Without --now, time is the clock's at each selector (an entry expires mid-stream); with it, fixed.
        let fixed = common.now != nil
        let cores = threads ?? min(2, ProcessInfo.processInfo.activeProcessorCount)
        guard cores == 1 || cores == 2 else {
            printError("tripline: --threads takes 1 or 2")
            throw ExitCode(2)
        }
        do {
            let each = { (sel: NormalizedSelector) in
                let t = fixed ? now : Date().timeIntervalSince1970
                for h in step.match(sel, ingestTime: t, now: t, problem: { printError("tripline: \($0)") }) {
                    out.writeLine(h.json)
                }
            }
            if cores == 2 {
                try stream.run(files: files, twoCores: screening, each)
            } else {
                try stream.run(files: files, each)
            }
        } catch {
            out.flush()
            printError("tripline: \(error)")
            throw ExitCode(2)
        }
        out.flush()
        let c = step.engine.correlation
        if c.lateEvents > 0 {
            printError(
                "tripline: \(c.lateEvents) events arrived more than the allowed lateness behind their group's newest "
                    + "event time: matched, but left out of correlation windows")
        }
        if c.droppedEntries + c.droppedGroups > 0 {
            printError(
                "tripline: correlation limits dropped \(c.droppedEntries) window entries and \(c.droppedGroups) groups")
        }
        if step.engine.evaluator.limitHits > 0 {
            printError(
                "tripline: \(step.engine.evaluator.limitHits) regex matches stopped by a PCRE2 limit (see above)")
        }
        if stream.rejected > 0 { throw ExitCode(1) }
    }
}

struct RuleTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test", abstract: "Run rule unit tests (default: the tests directory of the rules directory).")

    @Option(help: "Configuration file.") var config: String?
    @Argument(help: "Test directory or files (default: <rules>/tests).") var paths: [String] = []

    func run() throws {
        let s = try loadSettings(config: config)
        var files: [String] = []
        for p in paths.isEmpty ? [(s.rules as NSString).appendingPathComponent("tests")] : paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                printError("\(p):1:1: not found")
                throw ExitCode(1)
            }
            files += isDir.boolValue ? RuleTestRunner.files(in: p) : [p]
        }
        let outcome = RuleTestRunner().run(files: files)
        for line in outcome.report { printError(line) }
        printError(
            "\(files.count) test files: \(outcome.passed) passed, \(outcome.failed) failed, \(outcome.errors) errors")
        if outcome.failed > 0 || outcome.errors > 0 || files.isEmpty { throw ExitCode(1) }
    }
}
