import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

/// Pages of `GET /v1/alerts` and `GET /v1/audit/records`: the `next` link carries the request's filters and page
/// size with the cursor, and following it visits every item once, in order, then stops.
extension APITests {
    /// Follows `next` links from `path` as `who`; the items of every page under `key`, and the links followed.
    static func pages(_ server: Server, _ path: String, as who: String, key: String) throws -> (
        pages: [[JSONObject]], links: [String]
    ) {
        var pages: [[JSONObject]] = []
        var links: [String] = []
        var next: String? = path
        while let p = next, pages.count < 100 {
            let r = try server.call("GET", p, as: who)
            guard r.status == 200, let o = r.json else { throw TestFailure("\(p): \(r.status) \(r.text)") }
            pages.append((o[key]?.arrayValue ?? []).compactMap(\.objectValue))
            next = o["next"]?.stringValue
            if let n = next { links.append(n) }
        }
        return (pages, links)
    }

    @Test("pages of alerts and of audit records: next keeps the filters, every item once, in order")
    func pagination() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        for p in ["admin", "auditor", "partner-be"] { try server.issue(p) }
        try server.start()
        defer { server.stop() }
        // Five alerts on a list submitted by be-fedpol: five entries, one selector each.
        let entries = (1...5).map { ("P-\($0)", "+3247000010\($0)") }
        let put = try server.call(
            "PUT", "/v1/watchlists/be-fedpol/paged", as: "partner-be",
            body: WatchlistAPITests.list("paged", entries: entries))
        #expect(put.status == 201, "\(put.text)")
        let lines = entries.map { #"{"id":"\#($0.0)","type":"phone","value":"\#($0.1)"}"# }.joined(separator: "\n")
        let ingest = try server.call("POST", "/v1/selectors", as: "admin", body: lines + "\n")
        #expect(ingest.status == 202)
        #expect(ingest.json?["accepted"] == .number("5"))

        // One page of everything, then pages of two: the same alerts in the same order (newest first).
        let full = try Self.pages(server, "/v1/alerts?state=firing&owner=be-fedpol", as: "partner-be", key: "alerts")
        let every = full.pages.joined().compactMap { integer($0["alert_id"]) }
        #expect(full.pages.count == 1)
        #expect(every.count == 6)  // the deployment's own alert and the five above
        let alerts = try Self.pages(
            server, "/v1/alerts?state=firing&owner=be-fedpol&limit=2", as: "partner-be", key: "alerts")
        #expect(alerts.pages.map(\.count) == [2, 2, 2])
        let ids = alerts.pages.joined().compactMap { integer($0["alert_id"]) }
        #expect(ids == every)
        #expect(ids == ids.sorted(by: >))
        #expect(
            alerts.links == [ids[1], ids[3]].map { "/v1/alerts?limit=2&owner=be-fedpol&state=firing&before=\($0)" })
        // A filter nothing passes: one empty page, no link.
        let none = try Self.pages(server, "/v1/alerts?state=resolved&limit=2", as: "partner-be", key: "alerts")
        #expect(none.pages.map(\.count) == [0])

        // Audit records about be-fedpol, three a page: indexes strictly increasing across pages, the same as one
        // unpaged query of the records present before paging began.
        let whole = try server.call("GET", "/v1/audit/records?partner=be-fedpol&limit=10000", as: "auditor")
        let all = (whole.json?["records"]?.arrayValue ?? []).compactMap { integer($0.objectValue?["index"]) }
        #expect(whole.json?["next"] == nil)
        #expect(all.count >= 7)
        let audit = try Self.pages(
            server, "/v1/audit/records?partner=be-fedpol&limit=3", as: "auditor", key: "records")
        let seen = audit.pages.joined().compactMap { integer($0["index"]) }
        #expect(Array(seen.prefix(all.count)) == all)
        #expect(seen == seen.sorted())
        #expect(Set(seen).count == seen.count)
        #expect(audit.pages.dropLast().allSatisfy { $0.count == 3 })
        for link in audit.links {
            #expect(link.hasPrefix("/v1/audit/records?limit=3&partner=be-fedpol&after="))
        }
        // Bad cursors are refused as bad input.
        #expect(try server.call("GET", "/v1/audit/records?after=-1", as: "auditor").status == 400)
        #expect(try server.call("GET", "/v1/audit/records?limit=0", as: "auditor").status == 400)
        #expect(try server.call("GET", "/v1/alerts?before=x", as: "partner-be").status == 400)
    }
}

/// A JSON number as an integer.
private func integer(_ v: JSONValue?) -> Int64? {
    if case .number(let n)? = v { return Int64(n) }
    return nil
}
