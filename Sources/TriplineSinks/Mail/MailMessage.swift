import Crypto
import Foundation
import TriplineAlerts
import TriplineJSON

/// An RFC 5322 message for one notification, made from the receiver's need-to-know view only: Date,
/// Message-ID (the notification id, so a redelivery is recognisable), In-Reply-To naming the first alert's thread
/// and References naming each alert's thread, ending with that one, `Auto-Submitted: auto-generated`, the
/// priority in the subject (RFC 2047 encoded when not ASCII or when a word is too long to fold), every header line
/// folded within 998 octets, and a multipart/alternative body with text and HTML parts in quoted-printable.
public struct MailMessage: Sendable {
    public var headers: [(String, String)]
    public var text: String
    public var html: String

    /// `domain` names the Message-IDs' right-hand side (the sender's domain).
    public init(
        payload: JSONObject, from: String, to: [String], domain: String, templateText: String? = nil,
        date: Date = Date()
    ) {
        let views = (payload["alerts"]?.arrayValue ?? []).compactMap(\.objectValue)
        let status = (payload["status"]?.stringValue ?? "firing").uppercased()
        let ranks = ["info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4]
        let top =
            views.compactMap { $0["priority"]?.stringValue }.max { (ranks[$0] ?? 0) < (ranks[$1] ?? 0) } ?? "info"
        var subject = "[\(top.uppercased())] \(status): "
        if let e = payload["escalation"]?.objectValue, let step = e["step"]?.doubleValue {
            subject = "[\(top.uppercased())] \(status), ESCALATION step \(Int(step)): "
        }
        if payload["watchdog"] != nil {
            subject += "Watchdog: Tripline is running"
        } else {
            subject += views.first.map(Self.summary) ?? "notification"
        }
        let more = views.count - 1 + Int(payload["more"]?.doubleValue ?? 0)
        if more > 0 { subject += " (+\(more) more)" }

        let nid = payload["notification_id"]?.stringValue ?? UUID().uuidString.lowercased()
        var threads: [String] = []
        for v in views {
            let t = "<" + Self.threadID(v) + "@" + domain + ">"
            if !threads.contains(t) { threads.append(t) }
        }
        var h: [(String, String)] = [
            ("Date", Self.rfc5322Date(date)),
            ("From", from),
            ("To", to.joined(separator: ", ")),
            ("Subject", Self.encodeHeader(subject)),
            ("Message-ID", "<\(nid)@\(domain)>"),
        ]
        // The message answers the first alert's thread; References names the other alerts' threads (at most 19)
        // and ends with the In-Reply-To id, as RFC 5322 §3.6.4 has it.
        if let first = threads.first {
            h.append(("In-Reply-To", first))
            h.append(("References", (threads.dropFirst().prefix(19) + [first]).joined(separator: " ")))
        }
        h += [
            ("Auto-Submitted", "auto-generated"),
            ("X-Auto-Response-Suppress", "All"),
            ("X-Tripline-Priority", top),
            ("X-Tripline-Status", status.lowercased()),
            ("MIME-Version", "1.0"),
        ]
        if top == "critical" || top == "high" { h.append(("Importance", "high")) }
        headers = h
        text = Self.text(views, payload: payload, templateText: templateText)
        html = Self.html(views, payload: payload, templateText: templateText)
    }

    /// A short title for one alert view: the notice, the list entry's label, the rule's title, or the key.
    static func summary(_ v: JSONObject) -> String {
        let id = v["alert_id"].map { JSONWriter.string($0) } ?? "?"
        if v["notice"] != nil { return "restricted alert \(id)" }
        if let l = v["watchlist"]?.objectValue?["label"]?.stringValue, !l.isEmpty { return l }
        if let t = v["rule"]?.objectValue?["title"]?.stringValue { return t }
        if v["restricted"] == .bool(true) { return "match on a partner's list, alert \(id)" }
        return v["key"]?.stringValue ?? "alert \(id)"
    }

    /// The thread an alert's messages share: a hash of the key as this receiver sees it (opaque keys are
    /// already handles), or of the alert id for notices.
    static func threadID(_ v: JSONObject) -> String {
        let basis = v["key"]?.stringValue ?? ("alert-" + (v["alert_id"].map { JSONWriter.string($0) } ?? ""))
        return "alert." + SHA256.hash(data: Data(basis.utf8)).prefix(12).map { hex2($0) }.joined()
    }

    static func hex2(_ b: UInt8) -> String {
        let d = Array("0123456789abcdef".utf8)
        return String(decoding: [d[Int(b >> 4)], d[Int(b & 15)]], as: UTF8.self)
    }

    static func lines(_ v: JSONObject) -> [(String, String)] {
        var out: [(String, String)] = []
        func add(_ k: String, _ val: JSONValue?) {
            guard let val else { return }
            switch val {
            case .string(let s): out.append((k, s))
            case .null: break
            default: out.append((k, JSONWriter.string(val)))
            }
        }
        add("alert", v["alert_id"])
        add("state", v["state"])
        add("priority", v["priority"])
        add("notice", v["notice"])
        add("key", v["key"])
        add("kind", v["kind"])
        for (k, val) in v["labels"]?.objectValue ?? JSONObject() { add("label \(k)", val) }
        add("count", v["count"])
        add("first seen", v["first_seen"])
        add("last seen", v["last_seen"])
        for (k, val) in v["selector"]?.objectValue ?? JSONObject() { add("selector \(k)", val) }
        for (k, val) in v["watchlist"]?.objectValue ?? JSONObject() { add("watchlist \(k)", val) }
        for (k, val) in v["rule"]?.objectValue ?? JSONObject() { add("rule \(k)", val) }
        for c in v["contact"]?.arrayValue ?? [] {
            if let o = c.objectValue {
                out.append(
                    (
                        "contact",
                        [o["partner"]?.stringValue, o["contact"]?.stringValue].compactMap { $0 }.joined(
                            separator: ": ")
                    ))
            }
        }
        return out
    }

    static func text(_ views: [JSONObject], payload: JSONObject, templateText: String?) -> String {
        var s = ""
        if let t = templateText { s += t + "\n\n" }
        for v in views {
            s += summary(v) + "\n"
            for (k, val) in lines(v) { s += "  \(k): \(val)\n" }
            if let link = v["ack_url"]?.stringValue { s += "  Acknowledge: \(link)\n" }
            s += "\n"
        }
        if let d = payload["digest"]?.stringValue { s += d + "\n" }
        if let w = payload["watchdog"]?.objectValue {
            s += "Watchdog: Tripline is running; the next one within \(w["every"]?.stringValue ?? "its interval").\n"
        }
        s += "-- \nTripline notification \(payload["notification_id"]?.stringValue ?? "")\n"
        return s
    }

    /// HTML text and attribute escaping (the mail's HTML part, the acknowledge-link pages).
    public static func escape(_ s: String) -> String {
        var o = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.unicodeScalars.append(c)
            }
        }
        return o
    }

    static func html(_ views: [JSONObject], payload: JSONObject, templateText: String?) -> String {
        var s = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
        if let t = templateText { s += "<pre>\(escape(t))</pre>\n" }
        for v in views {
            s += "<h3>\(escape(summary(v)))</h3>\n<table>\n"
            for (k, val) in lines(v) { s += "<tr><th align=\"left\">\(escape(k))</th><td>\(escape(val))</td></tr>\n" }
            s += "</table>\n"
            if let link = v["ack_url"]?.stringValue {
                s += "<p><a href=\"\(escape(link))\">Acknowledge</a></p>\n"
            }
        }
        if let d = payload["digest"]?.stringValue { s += "<p>\(escape(d))</p>\n" }
        if let w = payload["watchdog"]?.objectValue {
            s +=
                "<p>Watchdog: Tripline is running; the next one within \(escape(w["every"]?.stringValue ?? "its interval")).</p>\n"
        }
        s += "</body></html>\n"
        return s
    }

    /// The whole message, CRLF line endings, 7-bit.
    public func bytes() -> [UInt8] {
        let boundary = "=_tripline_" + (headers.first { $0.0 == "Message-ID" }.map { Self.hash($0.1) } ?? "b")
        var s = ""
        for (k, v) in headers { s += Self.fold(k + ": " + v) + "\r\n" }
        s += "Content-Type: multipart/alternative; boundary=\"\(boundary)\"\r\n\r\n"
        s += "This is a multi-part message in MIME format.\r\n"
        for (type, body) in [("text/plain", text), ("text/html", html)] {
            s += "--\(boundary)\r\n"
            s += "Content-Type: \(type); charset=utf-8\r\n"
            s += "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            s += Self.quotedPrintable(body) + "\r\n"
        }
        s += "--\(boundary)--\r\n"
        return Array(s.utf8)
    }

    static func hash(_ s: String) -> String {
        SHA256.hash(data: Data(s.utf8)).prefix(8).map { hex2($0) }.joined()
    }

    private static let dateFormatter: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return f
    }()

    static func rfc5322Date(_ d: Date) -> String { dateFormatter.string(from: d) }

    /// The longest run of printable ASCII without a space that a header keeps as it is: folding happens only at
    /// spaces, so a longer one (with its header name) could pass RFC 5322's 998-octet line limit.
    static let longestPlainWord = 900

    /// RFC 2047: text with anything but printable ASCII — or with a word longer than `longestPlainWord` — becomes
    /// `=?UTF-8?B?...?=` words of at most 75 characters, split between characters (control characters become
    /// spaces), separated by folding white space; decoders join adjacent encoded words without the space, so the
    /// whole text comes back however long it is.
    public static func encodeHeader(_ s: String) -> String {
        if s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) && !s.contains("=?")
            && s.split(separator: " ").allSatisfy({ $0.utf8.count <= longestPlainWord })
        {
            return s
        }
        var words: [String] = []
        var chunk: [UInt8] = []
        for c in s.unicodeScalars {
            let u = Array(String(c).utf8)
            if chunk.count + u.count > 39 {
                words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += u.map { $0 < 0x20 || $0 == 0x7F ? 0x20 : $0 }
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words.joined(separator: " ")
    }

    /// Folds a header line at spaces so lines stay within 78 characters where possible (RFC 5322 §2.2.3); no line
    /// passes 998 octets as long as no word does (subjects see to that through `encodeHeader`).
    static func fold(_ line: String) -> String {
        guard line.utf8.count > 78 else { return line }
        var out = ""
        var current = ""
        for (i, part) in line.split(separator: " ", omittingEmptySubsequences: false).enumerated() {
            if i == 0 {
                current = String(part)
            } else if current.utf8.count + 1 + part.utf8.count > 78
                && !current.trimmingCharacters(in: .whitespaces)
                    .isEmpty
            {
                out += current + "\r\n"
                current = " " + part
            } else {
                current += " " + part
            }
        }
        return out + current
    }

    /// Quoted-printable (RFC 2045 §6.7) with CRLF line breaks and soft breaks keeping lines within 76.
    public static func quotedPrintable(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        let lines = s.replacingOccurrences(of: "\r\n", with: "\n").split(
            separator: "\n", omittingEmptySubsequences: false)
        for (li, line) in lines.enumerated() {
            if li > 0 { out += [0x0D, 0x0A] }
            let bytes = Array(line.utf8)
            var col = 0
            for (i, b) in bytes.enumerated() {
                let last = i == bytes.count - 1
                var enc: [UInt8]
                if (b >= 33 && b <= 126 && b != 0x3D) || ((b == 0x20 || b == 0x09) && !last) {
                    enc = [b]
                } else {
                    enc = [0x3D, hex[Int(b >> 4)], hex[Int(b & 15)]]
                }
                // Leave room for the soft break's "=" unless this is the line's last piece.
                let limit = last ? 76 : 75
                if col + enc.count > limit {
                    out += [0x3D, 0x0D, 0x0A]
                    col = 0
                }
                out += enc
                col += enc.count
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
