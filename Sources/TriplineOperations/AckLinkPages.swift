import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineSinks
import TriplineState

/// An acknowledge-link page (SPEC §11): its HTTP status and its HTML.
public struct AckLinkPage: Sendable {
    public var status: Int
    public var html: String
    /// Set when the page is not given: a link that does not verify, beyond the caller's budget (429, seconds to wait).
    public var retryAfter: Double?
}

/// Whether a page that changes nothing — any refusal, a look at the confirmation page — is audited: within the
/// caller's budget, with what its record adds (peer address, pages not audited since), or the budget is spent. Beyond
/// it a verified link's page is still shown (whoever is on call must reach the button) but not audited, and counted
/// into the next record; a link that does not verify gets 429. A link is no login: neither a stranger nor whoever
/// holds one (a forwarded mail, a scanner replaying it) can fill the audit log through these pages.
public enum AckLinkBudget: Sendable {
    case audit([(String, JSONValue)])
    case exhausted(wait: Double)
}

extension Operations {
    /// `GET /v1/ack/{token}` (`post` false): a confirmation page showing the alert as that receiver may see it,
    /// with a button that POSTs; never acknowledges (mail scanners follow links). `POST`: acknowledges the alert
    /// for the receiver's partner (until it resolves) as principal `receiver:NAME` with reason "ack link", and
    /// uses the link up. A forged, expired, used or no longer valid link gets a page saying which and changes
    /// nothing. Every look and every refusal is audited within the caller's `budget` (beyond it counted into the next
    /// record: a verified link's page still shown, a link that does not verify refused with 429); an acknowledgement
    /// always (a link acknowledges once). The page's texts are fixed: they name no principal and nothing the link's
    /// receiver may not see.
    public func ackLink(
        token: String, post: Bool, via: [(String, JSONValue)] = [],
        budget: () -> AckLinkBudget = { .audit([]) }
    ) -> AckLinkPage {
        let now = clock()
        let action = post ? "acknowledge" : "view"
        /// `audited`: what the record says when it says more than the page.
        func refuse(_ status: Int, _ why: String, _ claim: AckLinkClaim? = nil, audited: String? = nil)
            -> AckLinkPage
        {
            var detail: [(String, JSONValue)] = [("action", .string(action)), ("why", .string(audited ?? why))]
            if let claim { detail.append(("alert_id", .number(String(claim.alertID)))) }
            let page = AckLinkPage(status: status, html: Self.page("Not acknowledged", "<p>\(Self.escape(why)).</p>"))
            switch budget() {
            case .exhausted(let wait): return claim == nil ? AckLinkPage(status: 429, html: "", retryAfter: wait) : page
            case .audit(let more): detail += more
            }
            let principal = claim.map { "receiver:" + $0.receiver } ?? "anonymous"
            try? record(
                EventDraft(
                    at: now, kind: "ack_link_refused", receiver: claim?.receiver, principal: principal,
                    reason: "ack link", detail: JSONObject(detail + via)))
            return page
        }
        guard let links = ackLinks else { return refuse(400, "acknowledge links are not configured here") }
        let claim: AckLinkClaim
        switch links.verify(token, now: now) {
        case .success(let c): claim = c
        case .failure(.expired): return refuse(410, AckLinkError.expired.description)
        case .failure(let e): return refuse(400, e.description)
        }
        // The receiver must still exist for the same partner: a link outlives no change of who receives what.
        guard let receiver = config.alerts.receiver(claim.receiver), receiver.partner == claim.partner else {
            return refuse(403, "this acknowledge link is no longer valid", claim)
        }
        let used: UsedAckLink?
        do { used = try store.usedAckLink(nonce: claim.nonce) } catch {
            return AckLinkPage(status: 503, html: Self.page("Try again", "<p>The state database is unavailable.</p>"))
        }
        if used != nil { return refuse(409, "this acknowledge link was used already", claim) }
        let found: AlertRecord?
        do { found = try store.alert(id: claim.alertID) } catch {
            return AckLinkPage(status: 503, html: Self.page("Try again", "<p>The state database is unavailable.</p>"))
        }
        guard let a = found else { return refuse(404, "there is no such alert", claim) }
        let principal = Principal(id: "receiver:" + claim.receiver, partner: claim.partner, role: .partner)
        let caller = Caller(principal: principal, reason: "ack link", via: via)
        // What the receiver's notification showed: the view for its partner, as a sink sees it.
        let view = renderer.view(a, access: renderer.access(a, partner: claim.partner, sink: true))
        if a.state == .resolved { return refuse(409, "the alert is resolved", claim) }
        if let ack = a.acks[claim.partner], ack.holds(at: now) {
            return refuse(409, "the alert is already acknowledged for \(claim.partner)", claim)
        }
        if !post {
            if case .audit(let more) = budget() {
                try? record(
                    event(
                        "ack_link_viewed", caller, alertKey: a.key, receiver: claim.receiver,
                        [("alert_id", .number(String(a.id)))] + more))
            }
            let body =
                "<p>Acknowledge this alert for \(Self.escape(claim.partner)) (until it resolves)?</p>\n"
                + Self.table(view)
                + "<form method=\"post\"><button type=\"submit\">Acknowledge</button></form>\n"
            return AckLinkPage(status: 200, html: Self.page("Acknowledge alert \(a.id)", body))
        }
        do {
            _ = try Dispatcher.act(
                on: a.id, state: .acknowledged, principal: principal, reason: "ack link", via: via,
                usedLink: UsedAckLink(nonce: claim.nonce, alertID: a.id, receiver: claim.receiver, usedAt: now),
                store: store, now: now)
        } catch {
            if error.isStorage {
                return AckLinkPage(
                    status: 503, html: Self.page("Try again", "<p>The state database is unavailable.</p>"))
            }
            // Its own texts name who acknowledged: the page says what happened in fixed words, the record all of it.
            return refuse(
                409, "the alert changed while it was being acknowledged, or this link was used already", claim,
                audited: error.description)
        }
        return AckLinkPage(
            status: 200,
            html: Self.page(
                "Acknowledged",
                "<p>Alert \(a.id) is acknowledged for \(Self.escape(claim.partner)) until it resolves.</p>\n"
                    + Self.table(view)))
    }

    static func table(_ view: JSONObject) -> String {
        var s = "<table>\n"
        for k in ["alert_id", "state", "priority", "kind", "notice"] {
            guard let v = view[k], v != .null else { continue }
            s += "<tr><th align=\"left\">\(escape(k))</th><td>\(escape(text(v)))</td></tr>\n"
        }
        for (k, v) in view["labels"]?.objectValue ?? JSONObject() {
            s += "<tr><th align=\"left\">\(escape(k))</th><td>\(escape(text(v)))</td></tr>\n"
        }
        return s + "</table>\n"
    }

    static func text(_ v: JSONValue) -> String { v.stringValue ?? JSONWriter.string(v) }

    static func page(_ title: String, _ body: String) -> String {
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>\(escape(title))</title></head><body>\n"
            + "<h1>\(escape(title))</h1>\n" + body + "</body></html>\n"
    }

    static func escape(_ s: String) -> String { MailMessage.escape(s) }
}
