import Foundation
import Testing
import TriplineState
import TriplineStateSQLite

/// Lists submitted through the API, in every store alike: each version kept, the last one made current is the
/// list's, a withdrawal marks it, and submitting a stored version again makes it current anew.
@Suite("Submitted lists in the state store")
struct SubmittedListTests {
    static func version(_ owner: String, _ list: String, _ v: String, at: Double) -> SubmittedList {
        SubmittedList(
            owner: owner, list: list, version: v, yaml: Array("watchlist: \(list) # \(v)\n".utf8), submittedAt: at,
            submittedBy: "p-\(owner)")
    }

    @Test(arguments: StoreKind.allCases)
    func versionsCurrentAndWithdrawal(kind: StoreKind) throws {
        let (s, cleanup) = try kind.make()
        defer { cleanup() }
        #expect(try s.submittedLists(content: true) == [])
        var c = Commit()
        c.listSubmissions = [
            .submit(Self.version("be", "a", "v1", at: 1)), .submit(Self.version("fr", "b", "w1", at: 2)),
            .submit(Self.version("be", "a", "v2", at: 3)),
        ]
        #expect(!c.isEmpty)
        try s.commit(c)
        let current = try s.submittedLists(content: true)
        #expect(current.map(\.version) == ["w1", "v2"])
        #expect(current.last?.yaml == Array("watchlist: a # v2\n".utf8))
        #expect(try s.submittedLists(content: false).map(\.yaml) == [[], []])
        #expect(try s.submittedLists(content: false).map(\.size) == [18, 18])
        #expect(try s.submittedVersions(owner: "be", list: "a").map(\.version) == ["v1", "v2"])
        #expect(try s.submittedList(owner: "be", list: "a", version: "v1") == Self.version("be", "a", "v1", at: 1))
        #expect(try s.submittedList(owner: "fr", list: "a", version: "v1") == nil)

        var w = Commit()
        w.listSubmissions = [.withdraw(owner: "be", list: "a", at: 9)]
        try s.commit(w)
        #expect(try s.submittedLists(content: false).map(\.withdrawnAt) == [nil, 9])
        #expect(try s.submittedVersions(owner: "be", list: "a").map(\.withdrawnAt) == [nil, 9])

        // Version 1 again: current anew (no longer withdrawn), recorded with who and when, stored once.
        var again = Commit()
        again.listSubmissions = [.submit(Self.version("be", "a", "v1", at: 10))]
        try s.commit(again)
        #expect(try s.submittedVersions(owner: "be", list: "a").map(\.version) == ["v2", "v1"])
        let a = try s.submittedLists(content: false).last
        #expect(a?.version == "v1" && a?.withdrawnAt == nil && a?.submittedAt == 10)
    }
}
