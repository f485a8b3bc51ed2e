import TriplineRules
import TriplineSelectors
import TriplineWatchlists
import TriplineYAML

/// The YAML reader, the watchlist loader, the rule loader and the condition parser.
enum YAMLTargets {
    /// Lines as YAML counts them (1.2 §5.4: LF, CR, CR LF; libyaml also NEL, LS and PS), from 1.
    static func yamlLines(_ b: [UInt8]) -> Int {
        var n = 1
        var i = 0
        while i < b.count {
            if b[i] == 0x0A || b[i] == 0x0D && (i + 1 == b.count || b[i + 1] != 0x0A) {
                n += 1
            } else if b[i] == 0xC2 && i + 1 < b.count && b[i + 1] == 0x85 {
                n += 1
            } else if b[i] == 0xE2 && i + 2 < b.count && b[i + 1] == 0x80 && (b[i + 2] == 0xA8 || b[i + 2] == 0xA9) {
                n += 1
            }
            i += 1
        }
        return n
    }

    /// Every error names the file and a place inside the input (line 1 to one past the last, column from 1).
    static func checkLocated(_ errors: [LocatedError], _ file: String, _ bytes: [UInt8], _ target: String)
        throws(FuzzFailure)
    {
        let lines = yamlLines(bytes)
        for e in errors {
            try FuzzTarget.check(e.file == file, target, "error names \(e.file), not \(file): \(e)")
            try FuzzTarget.check(
                e.mark.line >= 1 && e.mark.line <= lines + 1 && e.mark.column >= 1, target,
                "error outside the input (\(lines) lines): \(e)")
        }
    }

    static let yaml = FuzzTarget(name: "yaml", maxLength: 8192) { bytes throws(FuzzFailure) in
        let r = Result { () throws(LocatedError) -> [Node] in try YAMLReader().parseAll(bytes, file: "fuzz.yml") }
        if case .failure(let error) = r { try checkLocated([error], "fuzz.yml", bytes, "yaml") }
    }

    /// A submitted list. Properties: errors and warnings located; an accepted list indexes.
    static let watchlist = FuzzTarget(name: "watchlist", maxLength: 16384) { bytes throws(FuzzFailure) in
        let o = WatchlistLoader(normalizer: SelectorNormalizer()).outcome(
            bytes: bytes, file: "fuzz-a/list.yaml", owner: "fuzz-a", now: FuzzFixtures.now)
        try checkLocated(o.errors + o.warnings, "fuzz-a/list.yaml", bytes, "watchlist")
        if let list = o.list { _ = WatchlistIndex(lists: [list]) }
    }

    /// Rules over the fixed list, then the fixed records through them (regexes and correlation run).
    /// Properties: errors located; a set without errors runs.
    static let rules = FuzzTarget(name: "rules", maxLength: 8192, timeout: 1) { bytes throws(FuzzFailure) in
        let r = RuleLoader(watchlists: [FuzzFixtures.watchlist], now: FuzzFixtures.now).load(
            bytes: bytes, file: "fuzz.yml")
        try checkLocated(r.errors + r.warnings, "fuzz.yml", bytes, "rules")
        guard r.errors.isEmpty else { return }
        var step = RecordStep(
            normalizer: SelectorNormalizer(), matcher: FuzzFixtures.matcher, engine: RuleEngine(r.ruleSet))
        for line in sampleRecords {
            _ = step.run(Array(line.utf8)[...], ingestTime: FuzzFixtures.now, now: FuzzFixtures.now)
        }
    }

    /// The condition parser alone. Property: an error's offset lies within the text.
    static let condition = FuzzTarget(name: "condition", maxLength: 65536, timeout: 1) { bytes throws(FuzzFailure) in
        let text = String(decoding: bytes, as: UTF8.self)
        if let e = SigmaConditionSyntax.check(text) {
            try FuzzTarget.check(
                e.offset >= 0 && e.offset <= text.utf8.count, "condition", "offset \(e.offset) outside the text")
        }
    }

    static let sampleRecords = [
        #"{"id":"s1","type":"username","value":"telegram:@abu_omar.be","source":{"item":"D1","country":"BE"}}"#,
        #"{"id":"s2","type":"phone","value":"+32 2 456 12 34","source":{"item":"D1","country":"IQ"}}"#,
        #"{"id":"s3","type":"email","value":"abou.omar.b@example.org","source":{"item":"D1"}}"#,
        #"{"id":"s4","type":"name","value":"Abdelhamid Abaaoud","source":{"item":"D2"}}"#,
        #"{"id":"s5","type":"ip","value":"192.0.2.77","observed_at":"2026-05-31T23:00:00Z","source":{"item":"D1"}}"#,
        #"{"id":"s6","type":"phone","value":"+964 60 123 4567","source":{"item":"D1","country":"IQ"}}"#,
    ]
}
