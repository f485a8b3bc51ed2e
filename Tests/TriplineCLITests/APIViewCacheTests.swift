import Foundation
import Testing
import TriplineAlerts
import TriplineConfig
import TriplineJSON
import TriplineOperations
import TriplineStores
import TriplineTestSupport

/// The alert list's views are kept rendered per version of the alert, access and state seen (`ViewCache`): what
/// a principal lists must be what it is shown — by need-to-know, and as the alert is now.
extension APITests {
    /// Alert 1 as `who` lists it and as it is shown (`GET /v1/alerts/1`, rendered afresh).
    static func listedAndShown(_ server: Server, _ who: String) throws -> (listed: JSONObject?, shown: JSONObject?) {
        let list = try server.call("GET", "/v1/alerts", as: who, reason: "views")
        let listed = list.json?["alerts"]?.arrayValue?.compactMap(\.objectValue).first {
            $0["alert_id"] == .number("1")
        }
        let show = try server.call("GET", "/v1/alerts/1", as: who, reason: "views")
        return (listed, show.status == 200 ? show.json : nil)
    }

    @Test("listed views equal shown views for each principal, in turns, before and after an ack; no view crosses")
    func listedViewsAreCurrentAndByNeedToKnow() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(dir: dir)
        let who = ["analyst-be", "analyst-ops", "auditor", "partner-be", "analyst-fr"]
        for p in who { try server.issue(p) }
        try server.start()
        defer { server.stop() }

        // Twice round (the second time from the cache), each principal after another's look at the same alert.
        for _ in 0..<2 {
            for p in who {
                let (listed, shown) = try Self.listedAndShown(server, p)
                #expect(listed == shown, "\(p)")
            }
        }
        let be = try #require(try Self.listedAndShown(server, "analyst-be").listed)
        let ops = try #require(try Self.listedAndShown(server, "analyst-ops").listed)
        #expect(be["restricted"] == nil && be["key"]?.stringValue?.hasPrefix("h-") == false)
        #expect(ops["restricted"] == .bool(true) && ops["key"]?.stringValue?.hasPrefix("h-") == true)
        #expect(try Self.listedAndShown(server, "analyst-fr").listed == nil)
        #expect(be["state"] == .string("firing") && ops["state"] == .string("firing"))

        // be-fedpol acknowledges: its principals see it acknowledged, the operating agency still firing.
        let ack = try server.call("POST", "/v1/alerts/1/ack", as: "analyst-be", body: "{}", reason: "views")
        #expect(ack.status == 200, "\(ack.text)")
        for p in who {
            let (listed, shown) = try Self.listedAndShown(server, p)
            #expect(listed == shown, "\(p) after the ack")
        }
        let beAfter = try #require(try Self.listedAndShown(server, "analyst-be").listed)
        #expect(beAfter["state"] == .string("acknowledged"))
        #expect(beAfter["acknowledged_by"]?.arrayValue?.count == 1)
        let opsAfter = try #require(try Self.listedAndShown(server, "analyst-ops").listed)
        #expect(opsAfter["state"] == .string("firing") && opsAfter["acknowledged_by"] == nil)
        let auditor = try #require(try Self.listedAndShown(server, "auditor").listed)
        #expect(auditor["acknowledged_by"]?.arrayValue?.count == 1)
    }
}

/// The listing decision kept per principal must not outlive what the principal is: a request authenticated under the
/// configuration before a reload (the principal then of another partner) is answered by the new operations.
@Suite("View cache: a principal's partner and role are part of what is kept")
struct ViewCachePrincipalTests {
    @Test("a principal seen as be-fedpol's, then as fr-dgsi's, under one configuration: fr-dgsi's lists nothing")
    func principalMovedToAnotherPartner() throws {
        let dir = try AuthorizationTests.deployment()  // alert 1 is on be-fedpol's amber list
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try Configuration.load(config: dir.appendingPathComponent("tripline.yaml").path)
        let store = try StateStores.open(config.state)
        let ops = try Operations(config: config, store: store)
        let asNow = try #require(config.alerts.principal("analyst-fr"))
        #expect(asNow.partner == "fr-dgsi")
        let asBefore = Principal(id: "analyst-fr", partner: "be-fedpol", role: .analyst)
        let first = try ops.listAlertsRendered(Caller(principal: asBefore, reason: "in flight", via: []), .init())
        #expect(first.alerts.count == 1)
        let later = try ops.listAlertsRendered(Caller(principal: asNow, reason: "later", via: []), .init())
        #expect(later.alerts.isEmpty, "\(later.alerts.map { String(decoding: $0, as: UTF8.self) })")
        // And the other way round: the kept "hidden" of fr-dgsi's does not hide the alert from be-fedpol's.
        let again = try ops.listAlertsRendered(Caller(principal: asBefore, reason: "again", via: []), .init())
        #expect(again.alerts.count == 1)
    }
}
