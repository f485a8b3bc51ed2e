import Foundation
import Testing
import TriplineSelectors
import TriplineYAML

@testable import TriplineWatchlists

/// Inputs built to make the cut of a long list (`YAMLReader.split`) read differently from the whole file (from the
/// session's adversarial review): line breaks libyaml counts and the cut did not, directives, anchors shadowed across
/// a cut, a cut past the last item with three or more threads, chomping, depth. For each, the split path either is
/// not taken or gives exactly the whole-file outcome: errors, warnings, every entry's fields.
@Suite("Watchlist loader: the cut against the whole file, hostile inputs")
struct SplitReviewTests {
    static let head = "watchlist: long\nowner: be-fedpol\nreview_by: 2099-01-01\nentries:\n"

    static func item(_ k: Int, indent: String = "  ") -> String {
        "\(indent)- {ref: R\(k), selectors: [{type: phone, value: \"+32470\(100_000 + k)\"}]}\n"
    }
    /// Items with an error (bad phone) every 50th and an expired one every 70th: line-bearing messages everywhere.
    static func items(_ r: Range<Int>, indent: String = "  ") -> String {
        r.map { k in
            if k % 50 == 7 {
                return "\(indent)- {ref: R\(k), selectors: [{type: phone, value: \"not a number\"}]}\n"
            }
            if k % 70 == 9 {
                return
                    "\(indent)- {ref: R\(k), expires: 2001-01-01, selectors: [{type: email, value: \"e\(k)@example.org\"}]}\n"
            }
            return item(k, indent: indent)
        }.joined()
    }

    static func dump(_ o: WatchlistLoader.FileOutcome) -> [String] {
        var out = o.errors.map { "E \($0)" } + o.warnings.map { "W \($0)" }
        out.append("accepted=\(o.accepted) name=\(o.name ?? "-") owner=\(o.owner ?? "-") version=\(o.version ?? "-")")
        if let l = o.list {
            out.append(
                "list owner=\(l.owner) desc=\(l.description ?? "-") review=\(l.reviewBy) prio=\(l.defaultPriority)")
            for e in l.entries {
                out.append(
                    "entry \(e.ref) label=\(e.label ?? "nil") prio=\(e.priority.map { "\($0)" } ?? "nil") exp=\(e.expires.map { "\($0)" } ?? "nil") "
                        + e.selectors.map { "\($0)" }.joined(separator: ";"))
            }
        }
        return out
    }

    /// Whether the split was taken and gave another outcome than the whole file (the differences are printed).
    @discardableResult
    static func diff(_ name: String, _ text: String, threads: [Int] = [2], owner: String? = "be-fedpol") -> Bool {
        var whole = WatchlistLoader()
        whole.handOffBytes = .max
        whole.splitBytes = .max
        let bytes = Array(text.utf8)
        let a = dump(whole.outcome(bytes: bytes, file: "long.yaml", owner: owner, now: now2030))
        var differed = false
        for n in threads {
            var cut = WatchlistLoader()
            cut.splitThreads = n
            guard let o = cut.outcome(splitting: bytes, file: "long.yaml", owner: owner, now: now2030) else { continue }
            let b = dump(o)
            if a == b {
                continue
            }
            differed = true
            let sa = Set(a)
            let sb = Set(b)
            for l in a where !sb.contains(l) { print("   whole only: \(l.prefix(220))") }
            for l in b where !sa.contains(l) { print("   split only: \(l.prefix(220))") }
            if sa == sb { print("   same lines, different order") }
        }
        return differed
    }

    @Test func lineBreaksLibyamlCountsButSplitDoesNot() {
        // A lone CR inside a comment in part 0 (libyaml: two line breaks, the split: one).
        let cr = Self.head + Self.items(0..<10) + "  # a comment\r# and another\n" + Self.items(10..<400)
        #expect(!Self.diff("lone CR in a comment", cr))
        // NEL (U+0085) at the end of a comment.
        let nel = Self.head + Self.items(0..<10) + "  # a comment\u{85}\n" + Self.items(10..<400)
        #expect(!Self.diff("NEL in a comment", nel))
        // LS (U+2028) inside a double-quoted label.
        let ls =
            Self.head + Self.items(0..<10)
            + "  - {ref: LS, label: \"a\u{2028}b\", selectors: [{type: email, value: ls@example.org}]}\n"
            + Self.items(10..<400)
        #expect(!Self.diff("LS in a quoted label", ls))
        // PS (U+2029) in a comment, with fields after the entries (their errors' lines).
        let ps =
            Self.head + Self.items(0..<10) + "  # x\u{2029}\n" + Self.items(10..<400) + "handling: {tlp: purple}\n"
        #expect(!Self.diff("PS in a comment, a field after", ps))
    }

    @Test func tagDirectives() {
        // `%TAG !!` redefined: `!!str` no longer the core string tag in the whole file, but it is in a part.
        let body =
            Self.items(0..<200) + "  - {ref: !!str ~, selectors: [{type: email, value: t@example.org}]}\n"
            + "  - {ref: T2, label: !!str null, selectors: [{type: email, value: t2@example.org}]}\n"
            + Self.items(200..<400)
        #expect(!Self.diff("%TAG !! redefined", "%TAG !! tag:example.com,2000:\n---\n" + Self.head + body))
        // `%TAG !` to the core schema: `!str` is a string tag in the whole file only.
        let body2 =
            Self.items(0..<200) + "  - {ref: !str null, selectors: [{type: email, value: t@example.org}]}\n"
            + Self.items(200..<400)
        #expect(!Self.diff("%TAG ! core", "%TAG ! tag:yaml.org,2002:\n---\n" + Self.head + body2))
    }

    @Test func anchorRedefinedInTheEntriesUsedAfter() {
        // `&o` defined before the entries, redefined inside them, used after them.
        let text =
            "watchlist: &o be-fedpol\nreview_by: 2099-01-01\nentries:\n" + Self.items(0..<200)
            + "  - {ref: AN, label: &o \"not an id\", selectors: [{type: email, value: an@example.org}]}\n"
            + Self.items(200..<400) + "owner: *o\n"
        #expect(!Self.diff("anchor shadowed, owner after", text))
        let text2 =
            "watchlist: long\nowner: be-fedpol\nreview_by: &d 2099-01-01\nentries:\n" + Self.items(0..<200)
            + "  - {ref: AN, expires: &d 2001-01-01, selectors: [{type: email, value: an@example.org}]}\n"
            + Self.items(200..<400) + "description: *d\n"
        #expect(!Self.diff("anchor shadowed, description after", text2))
    }

    @Test func others() {
        // Keep-chomped block scalar at the end of a part, with trailing blanks and comments.
        let keep = (0..<400).map {
            "  - ref: K\($0)\n    label: |+\n      text\n\n# c\n\n    selectors: [{type: email, value: k\($0)@example.org}]\n"
        }.joined()
        #expect(!Self.diff("keep chomping", Self.head + keep))
        let keep2 = (0..<400).map {
            "  - ref: K\($0)\n    selectors: [{type: email, value: k\($0)@example.org}]\n    label: |+\n      text\n\n   \n# c\n\n"
        }.joined()
        #expect(!Self.diff("keep chomping last", Self.head + keep2 + "description: x\n"))
        // Duplicate refs across parts, with aliases.
        let dups =
            Self.items(0..<150) + "  - {ref: &r D, selectors: [{type: email, value: d1@example.org}]}\n"
            + "  - {ref: *r, selectors: [{type: email, value: d2@example.org}]}\n" + Self.items(150..<300)
            + "  - {ref: D, selectors: [{type: email, value: d3@example.org}]}\n"
            + "  - {ref: R3, selectors: [{type: email, value: d4@example.org}]}\n"
            + "  - {ref: &q D, selectors: [{type: email, value: d5@example.org}]}\n"
            + "  - {ref: *q, selectors: [{type: email, value: d6@example.org}]}\n" + Self.items(300..<450)
            + "  - {ref: R3, selectors: [{type: email, value: d7@example.org}]}\n"
        #expect(!Self.diff("duplicates", Self.head + dups, threads: [2, 3, 4]))
        // Document end after the entries; a trailing comment.
        #expect(!Self.diff("doc end", Self.head + Self.items(0..<400) + "...\n# bye\n"))
        // Items at indentation 0, fields after, a comment at column 0 between.
        #expect(!Self.diff("indent 0", Self.head + Self.items(0..<400, indent: "") + "description: d\nmin_score: 2\n"))
        // One odd item among 400 ordinary ones: a tab after the dash, a BOM starting a line, null, scalar and nested
        // items, a plain scalar over two lines inside a flow mapping, nesting at the depth limit and one past it.
        let odd: [(String, String)] = [
            ("tab dash", "  -\t{ref: TB, selectors: [{type: email, value: tb@example.org}]}\n"),
            ("BOM mid", "\u{FEFF}  - {ref: BM, selectors: [{type: email, value: bm@example.org}]}\n"),
            ("odd items", "  -\n  - ~\n  - just text\n  - - nested\n    - more\n"),
            (
                "plain over lines",
                "  - {ref: PL, label: one\n  two, selectors: [{type: email, value: pl@example.org}]}\n"
            ),
            ("depth", Self.nested(61)), ("depth+1", Self.nested(62)),
        ]
        for (name, item) in odd {
            #expect(!Self.diff(name, Self.head + Self.items(0..<200) + item + Self.items(200..<400)))
        }
        // Explicit document start and end, a directive.
        #expect(!Self.diff("%YAML", "%YAML 1.1\n---\n" + Self.head + Self.items(0..<400) + "...\n"))
        // Entries key with trailing spaces and CRLF, a comment line with only spaces.
        #expect(
            !Self.diff(
                "crlf mixed",
                (Self.head + Self.items(0..<200)).replacingOccurrences(of: "\n", with: "\r\n") + "   \n"
                    + Self.items(200..<400)))
    }

    /// An entry whose label nests `depth` flow sequences.
    static func nested(_ depth: Int) -> String {
        "  - {ref: DP, selectors: [{type: email, value: dp@example.org}], label: "
            + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}\n"
    }

    /// A last item much longer than the rest, three threads: the cut runs past the last item.
    @Test func longLastItemThreeThreads() {
        let long = String(repeating: "x", count: 200_000)
        let text =
            Self.head + Self.items(0..<6)
            + "  - {ref: L, label: \"\(long)\", selectors: [{type: email, value: l@example.org}]}\n"
        #expect(!Self.diff("long last item", text, threads: [3]))
    }
}

extension SplitReviewTests {
    /// Through the public door at the default size threshold: 20 entries, then 4.5 MB of comment lines.
    @Test func commentTrailerPublicDoor() {
        let comment = String(repeating: "# " + String(repeating: "c", count: 88) + "\n", count: 50_000)
        let text = Self.head + Self.items(0..<20) + comment + "description: x\n"
        var l = WatchlistLoader()
        l.splitThreads = 3
        let o = l.outcome(bytes: Array(text.utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
        var whole = WatchlistLoader()
        whole.splitBytes = .max
        let w = whole.outcome(bytes: Array(text.utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
        #expect(o.errors.map(\.description) == w.errors.map(\.description) && o.errors.count == 1)
        #expect(!Self.diff("comment trailer", text, threads: [3, 8]))
    }
}
