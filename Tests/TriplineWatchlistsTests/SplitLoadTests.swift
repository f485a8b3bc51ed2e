import Foundation
import Testing
import TriplineSelectors
import TriplineYAML

@testable import TriplineWatchlists

/// A long list read on several threads (issue 17, item 3): its `entries` cut into runs of items, each parsed and
/// validated on its own thread. Whatever the file, the outcome — list, errors and warnings, with their file:line:col —
/// is the one-thread outcome; a file the cut cannot take (aliases across runs, a quoted scalar over a cut, another
/// document) is read whole.
@Suite("Watchlist loader: a long list on several threads")
struct SplitLoadTests {
    static let head = "watchlist: long\nowner: be-fedpol\nreview_by: 2099-01-01\nentries:\n"

    /// `n` entries at indentation `indent`; every 997th has a bad value, a repeated ref (also of an entry in another
    /// run) or an expired date.
    static func body(_ n: Int, indent: String = "  ", eol: String = "\n") -> String {
        var body = ""
        for k in 0..<n {
            switch k % 997 {
            case 5: body += "\(indent)- {ref: R\(k), selectors: [{type: phone, value: \"not a number\"}]}\(eol)"
            case 6:
                body += "\(indent)- {ref: R\(k - 1), selectors: [{type: email, value: \"x\(k)@example.org\"}]}\(eol)"
            case 7:
                body +=
                    "\(indent)- {ref: R\(k), expires: 2001-01-01, selectors: [{type: email, value: \"E\(k)@Example.org\"}]}\(eol)"
            case 8:
                body +=
                    "\(indent)- {ref: R\(k % 4000), selectors: [{type: phone, value: \"+32470\(100_000 + k)\"}]}\(eol)"
            case 9: body += "# a comment at column 1\(eol)\(eol)"
            default:
                body += "\(indent)- {ref: R\(k), selectors: [{type: phone, value: \"+32470\(100_000 + k)\"}]}\(eol)"
            }
        }
        return body
    }

    /// `split`: whether the cut must be taken (nil: either, as the cut falls).
    static func compare(
        _ text: String, threads: [Int] = [2, 3], split expected: Bool?, _ c: SourceLocation = #_sourceLocation
    ) {
        var whole = WatchlistLoader()
        whole.handOffBytes = .max
        whole.splitBytes = .max
        let a = whole.outcome(bytes: Array(text.utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
        for n in threads {
            var cut = WatchlistLoader()
            cut.splitThreads = n
            let b = cut.outcome(splitting: Array(text.utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
            if let expected { #expect((b != nil) == expected, "split taken with \(n) threads", sourceLocation: c) }
            guard let b else { continue }
            #expect(a.errors.map(\.description) == b.errors.map(\.description), sourceLocation: c)
            #expect(a.warnings.map(\.description) == b.warnings.map(\.description), sourceLocation: c)
            #expect(a.list?.entries.map(\.ref) == b.list?.entries.map(\.ref), sourceLocation: c)
            #expect(
                a.list?.entries.map { $0.selectors.map { "\($0.kind)|\($0.value)|\($0.line)" } }
                    == b.list?.entries.map { $0.selectors.map { "\($0.kind)|\($0.value)|\($0.line)" } },
                sourceLocation: c)
            #expect(a.accepted == b.accepted && a.name == b.name && a.version == b.version, sourceLocation: c)
            // And through the public door, as the loader decides.
            cut.splitBytes = 0
            let d = cut.outcome(bytes: Array(text.utf8), file: "long.yaml", owner: "be-fedpol", now: now2030)
            #expect(a.errors.map(\.description) == d.errors.map(\.description), sourceLocation: c)
            #expect(a.list?.entries.map(\.ref) == d.list?.entries.map(\.ref), sourceLocation: c)
        }
    }

    @Test func theOutcomeIsTheOneThreadOutcome() {
        let good = (0..<20_000).map {
            "  - {ref: G\($0), selectors: [{type: phone, value: \"+32470\(100_000 + $0)\"}]}\n"
        }
        .joined()
        Self.compare(Self.head + good, split: true)
        Self.compare(Self.head + Self.body(20_000), split: true)
        // Items at the key's own indentation; fields after the entries; CRLF lines; a comment after the key.
        Self.compare(Self.head + Self.body(9_000, indent: ""), split: true)
        Self.compare(
            "watchlist: long\nentries:   # the list\n" + Self.body(9_000) + "owner: be-fedpol\nreview_by: 2099-01-01\n",
            split: true)
        Self.compare(
            Self.head.replacingOccurrences(of: "\n", with: "\r\n") + Self.body(9_000, eol: "\r\n"), split: true)
        // Errors in the fields after the entries keep their lines.
        Self.compare(Self.head + Self.body(9_000) + "handling: {tlp: purple}\nmin_score: 2\n", split: true)
        // Entries spanning lines, a block scalar label.
        let multi = (0..<6_000).map {
            "  - ref: M\($0)\n    label: |\n      - not an item\n    selectors:\n      - {type: email, value: m\($0)@example.org}\n"
        }.joined()
        Self.compare(Self.head + multi, split: true)
    }

    @Test func whatTheCutCannotTakeIsReadWhole() {
        let body = Self.body(9_000)
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false)
        let half = lines.count / 2
        func with(_ middle: String) -> String {
            Self.head + lines[..<half].joined(separator: "\n") + "\n" + middle + lines[half...].joined(separator: "\n")
        }
        // An anchor in one run used in another, and in the fields before: refused by the cut, read whole.
        Self.compare(
            Self.head + "  - {ref: A, selectors: [&s {type: phone, value: \"+32470999999\"}]}\n" + body
                + "  - {ref: B, selectors: [*s]}\n", split: false)
        Self.compare(
            "watchlist: long\nowner: be-fedpol\nreview_by: &d 2099-01-01\nentries:\n" + body
                + "  - {ref: B, expires: *d, selectors: [{type: phone, value: \"+32470999998\"}]}\n", split: false)
        // A quoted scalar whose second line looks like an item; a flow sequence over lines (taken when no cut falls
        // inside them); YAML broken half-way.
        Self.compare(
            with("  - {ref: Q, label: \"two\n  - lines\", selectors: [{type: phone, value: \"+32470999997\"}]}\n"),
            split: nil)
        Self.compare(with("  - {ref: F, selectors: [\n  - {type: phone, value: \"+32470999996\"}]}\n"), split: nil)
        Self.compare(with("  - {ref: [unclosed\n"), split: false)
        // A second document, a duplicate key after the entries, a second entries key.
        Self.compare(with("---\n"), split: false)
        Self.compare(Self.head + body + "owner: again\n", split: false)
        Self.compare(
            Self.head + body + "entries:\n  - {ref: Z, selectors: [{type: phone, value: \"+32470999995\"}]}\n",
            split: false)
        // Not a sequence: a mapping, a flow sequence; a key that is not at column 1.
        Self.compare(Self.head.replacingOccurrences(of: "entries:\n", with: "entries: [\n") + "]\n", split: false)
        Self.compare(" " + Self.head + body, threads: [2], split: false)
    }

    /// A cut inside a quoted scalar whose next line looks like an item: that part does not parse on its own, and the
    /// file is read whole. The cut for two parts falls on the first item start past the middle: here, "  - lines".
    @Test func aCutInsideAScalarIsReadWhole() throws {
        let item = { (r: String) in "  - {ref: \(r), selectors: [{type: phone, value: \"+32470999990\"}]}\n" }
        let long = String(repeating: "x", count: 2_000)
        let text =
            Self.head + item("A")
            + "  - {ref: Q, label: \"\(long)\n  - lines\", selectors: [{type: email, value: q@q.org}]}\n"
            + item("B") + item("C")
        let reader = YAMLReader(limits: WatchlistLoader.limits)
        let split = try #require(reader.split(Array(text.utf8), key: "entries", parts: 2))
        #expect(split.parts.map(\.line) == [5, 7])
        Self.compare(text, threads: [2], split: false)
    }

    /// The limits count the whole file: a split list is refused at the same node count as a whole one.
    @Test func theLimitsCountTheWholeFile() {
        var small = WatchlistLoader.limits
        small.maxNodes = 100_000
        let body = (0..<12_000).map {
            "  - {ref: G\($0), selectors: [{type: phone, value: \"+32470\(100_000 + $0)\"}]}\n"
        }
        .joined()
        var cut = WatchlistLoader(reader: YAMLReader(limits: small))
        cut.splitBytes = 0
        cut.splitThreads = 2
        #expect(cut.outcome(splitting: Array((Self.head + body).utf8), file: "l.yaml", owner: nil, now: now2030) == nil)
        let o = cut.outcome(bytes: Array((Self.head + body).utf8), file: "l.yaml", owner: nil, now: now2030)
        #expect(
            o.errors.map(\.message) == [
                "more than 100000 nodes (after alias expansion): refusing a document this large"
            ])
    }
}

/// The review's end-to-end cases for `FlowItems`: an entry with a key over 1,024 characters, and one whose label is a
/// mapping of 20,000 keys on one line — the split reading gives the whole reading's outcome, in comparable time.
@Suite("Watchlist loader: split reading at the flow items' edges")
struct SplitFlowEdgeTests {
    static let good = (0..<20_000).map {
        "  - {ref: G\($0), selectors: [{type: phone, value: \"+32470\(100_000 + $0)\"}]}\n"
    }

    @Test func aKeyOver1024Characters() {
        let key = String(repeating: "k", count: 1_025)
        SplitLoadTests.compare(
            SplitLoadTests.head + Self.good[..<10_000].joined()
                + "  - {ref: LONG, selectors: [{type: phone, value: \"+32470999991\", \(key): x}]}\n"
                + Self.good[10_000...].joined(), split: nil)
    }

    @Test func aLabelOfManyKeys() {
        let keys = (0..<20_000).map { "k\($0): v" }.joined(separator: ", ")
        let text =
            SplitLoadTests.head + Self.good[..<10_000].joined()
            + "  - {ref: BIG, label: {\(keys)}, selectors: [{type: phone, value: \"+32470999991\"}]}\n"
            + Self.good[10_000...].joined()
        let start = Date()
        SplitLoadTests.compare(text, threads: [2], split: nil)
        #expect(Date().timeIntervalSince(start) < 20)  // 25 s for the split reading alone before
    }
}
