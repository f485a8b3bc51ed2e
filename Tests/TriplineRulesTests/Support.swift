import Foundation
import Testing
import TriplineJSON
import TriplineMatch
import TriplineSelectors
import TriplineWatchlists
import TriplineYAML

@testable import TriplineRules

/// Writes rule text to a temporary file and loads it.
func loadRules(_ text: String, watchlists: [Watchlist] = [], name: String = "rule.yml") -> RuleLoader.Result {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-rules-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    defer { try? FileManager.default.removeItem(at: dir) }
    return RuleLoader(watchlists: watchlists, now: 1_900_000_000).load(files: [path])
}

/// A rule with the given detection block (indented by two spaces already).
func rule(_ detection: String, id: String = "r1", level: String = "medium", extra: String = "") -> String {
    """
    title: Test rule \(id)
    id: \(id)
    \(extra)logsource: {product: tripline, category: selector}
    level: \(level)
    detection:
    \(detection)
    """
}

func selector(_ json: String, region: String? = nil) -> NormalizedSelector {
    let v = try! JSONParser.parse(json)
    return try! SelectorNormalizer(defaultRegion: region).normalize(try! SelectorInput(json: v.objectValue!))
}

/// Detection rule ids matching one event, through the indexed path; also checks the unindexed reference agrees.
func matches(_ set: RuleSet, _ sel: NormalizedSelector, watchlist: [Hit] = []) -> [String] {
    var fast = RuleEvaluator(set)
    var slow = RuleEvaluator(set, prefilter: false)
    let ev = RuleEvent(selector: sel, watchlist: watchlist)
    let a = fast.evaluate(ev)
    let b = slow.evaluate(ev)
    #expect(a == b, "prefilter \(a) and reference \(b) disagree on \(sel.id)")
    return a.map { set.rules[$0].id }
}
