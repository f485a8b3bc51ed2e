import Foundation
import NIOCore
import NIOSSL
import TriplineAlerts
import TriplineJSON
import TriplineState
import TriplineYAML

/// Sends notifications to `email_configs` (Alertmanager's keys: `to`, `from`, `smarthost`, `hello`,
/// `auth_username`, `auth_password_file`/`_env`, `require_tls`, `tls_config`, `send_resolved`; and Tripline's
/// `implicit_tls`, `auth_mechanism`, `template`, `timeout`). The Message-ID is the notification id, so a
/// redelivery after a crash or a 4xx carries the same one.
public struct MailSink: Sink {
    public init() {}

    public func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        for ec in receiver.emailConfigs {
            // As in Alertmanager, mail leaves resolved notifications out unless asked.
            if item.payload["status"] == .string("resolved") && ec["send_resolved"]?.stringValue != "true" { continue }
            let settings = try Self.settings(ec)
            guard let from = ec["from"]?.stringValue, let toText = ec["to"]?.stringValue else {
                throw DeliveryFailure("email config needs \"to\" and \"from\"", permanent: true)
            }
            let to = toText.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
            let addr = SMTPClient.addrSpec(from)
            let domain = addr.split(separator: "@").last.map(String.init) ?? "tripline.local"
            let text = ec["template"]?.stringValue.flatMap { config.template($0) }.map {
                $0.render(Templates.view(item.payload))
            }
            let message = MailMessage(payload: item.payload, from: from, to: to, domain: domain, templateText: text)
            try await SMTPClient.send(from: from, to: to, message: message.bytes(), settings: settings)
        }
    }

    /// The client settings an email config asks for.
    public static func settings(_ ec: JSONObject) throws(DeliveryFailure) -> SMTPSettings {
        guard let smarthost = ec["smarthost"]?.stringValue else {
            throw DeliveryFailure("email config needs a \"smarthost\" (host:port)", permanent: true)
        }
        guard let (host, port) = Self.hostPort(smarthost) else {
            throw DeliveryFailure("smarthost \"\(smarthost)\" is not host:port", permanent: true)
        }
        var s = SMTPSettings(host: host, port: port)
        if let h = ec["hello"]?.stringValue { s.hello = h }
        let implicit = ec["implicit_tls"]?.stringValue.map { $0 == "true" } ?? (port == 465)
        let requireTLS = ec["require_tls"]?.stringValue.map { $0 == "true" } ?? true
        s.security = implicit ? .implicitTLS : requireTLS ? .startTLS : .none
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = ec["tls_config.ca_file"]?.stringValue { tls.trustRoots = .file(ca) }
        if ec["tls_config.insecure_skip_verify"]?.stringValue == "true" { tls.certificateVerification = .none }
        if let cert = ec["tls_config.cert_file"]?.stringValue, let key = ec["tls_config.key_file"]?.stringValue {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw DeliveryFailure("tls_config: cannot read \(cert) or \(key): \(error)", permanent: true)
            }
        }
        s.tls = tls
        s.serverName = ec["tls_config.server_name"]?.stringValue
        if let user = ec["auth_username"]?.stringValue {
            s.username = user
            var pw = try Secrets.read(ec, "auth_password", what: "SMTP password")
            while pw.hasSuffix("\n") || pw.hasSuffix("\r") { pw.removeLast() }
            s.password = pw
        }
        s.mechanism = ec["auth_mechanism"]?.stringValue
        // Network deadlines: `timeout` each reply (default 30 s), `transaction_timeout` connect to QUIT (default
        // max(5 min, 10 × timeout)); both at most 24 h (`check` refuses longer ones).
        for (key, what) in [("timeout", "each reply"), ("transaction_timeout", "the whole transaction")] {
            guard let t = ec[key]?.stringValue else { continue }
            guard let d = parseDuration(t), d > 0 else {
                throw DeliveryFailure("email config \(key) \"\(t)\" (\(what)) is not a duration", permanent: true)
            }
            let amount = TimeAmount.milliseconds(Int64(min(d, 86_400) * 1000))
            if key == "timeout" { s.timeout = amount } else { s.transactionTimeout = amount }
        }
        return s
    }

    /// `host:port`, `[v6]:port`.
    static func hostPort(_ s: String) -> (String, Int)? {
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
            let host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
            return (host, p)
        }
        guard let colon = s.lastIndex(of: ":"), let p = Int(s[s.index(after: colon)...]), (1...65535).contains(p),
            colon > s.startIndex
        else { return nil }
        return (String(s[..<colon]), p)
    }
}

/// Secrets named by `KEY_file` (a path) or `KEY_env` (a variable): never inline (SPEC §6).
public enum Secrets {
    public static func read(_ config: JSONObject, _ key: String, what: String) throws(DeliveryFailure) -> String {
        if let f = config[key + "_file"]?.stringValue {
            guard let d = FileManager.default.contents(atPath: f) else {
                throw DeliveryFailure("cannot read the \(what) file \(f)")
            }
            return String(decoding: d, as: UTF8.self)
        }
        if let e = config[key + "_env"]?.stringValue {
            guard let v = ProcessInfo.processInfo.environment[e] else {
                throw DeliveryFailure("\(what): environment variable \(e) is not set")
            }
            return v
        }
        throw DeliveryFailure("no \(what): set \(key)_file or \(key)_env", permanent: true)
    }
}

/// What a template sees: the notification, with its first alert's fields at the top level.
public enum Templates {
    public static func view(_ payload: JSONObject) -> JSONObject {
        var view = payload
        if let first = payload["alerts"]?.arrayValue?.first?.objectValue {
            for (k, v) in first where view[k] == nil { view.append(k, v) }
        }
        return view
    }
}

extension MailSink {
    public static let type = "email"
    /// As Alertmanager's email: no resolved notifications unless `send_resolved: true`.
    public static let resolvedByDefault = false

    /// `email_configs` entries: Alertmanager's keys (`to`, `from`, `smarthost` required) plus `implicit_tls`,
    /// `auth_mechanism`, `template`, `timeout` (each reply) and `transaction_timeout` (connect to QUIT), both at
    /// most 24 h; `tls_config` is a mapping; the password only from a file or a variable.
    public static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject {
        var spec = SinkConfigSpec(keys: [
            "to", "from", "smarthost", "hello", "auth_username", "auth_password_file", "auth_password_env",
            "auth_mechanism", "require_tls", "implicit_tls", "tls_config.ca_file", "tls_config.cert_file",
            "tls_config.key_file", "tls_config.server_name", "tls_config.insecure_skip_verify", "send_resolved",
            "template", "timeout", "transaction_timeout",
        ])
        spec.nested = ["tls_config"]
        spec.required = ["to", "from", "smarthost"]
        spec.booleans = ["send_resolved", "require_tls", "implicit_tls", "insecure_skip_verify"]
        spec.deadlines = ["timeout", "transaction_timeout"]
        spec.check = { key, value, node throws(LocatedError) in
            switch key {
            case "auth_mechanism":
                guard ["PLAIN", "LOGIN"].contains(value.uppercased()) else {
                    throw node.error("\"auth_mechanism\" is PLAIN or LOGIN")
                }
            case "smarthost":
                guard hostPort(value) != nil else { throw node.error("\"smarthost\" is host:port") }
            default: break
            }
        }
        spec.checkEntry = { s, node throws(LocatedError) in
            if s["auth_username"] != nil && s["auth_password_file"] == nil && s["auth_password_env"] == nil {
                throw node.error("auth_username needs auth_password_file or auth_password_env")
            }
        }
        return try SinkConfig.read(entry, type: type, spec: spec, context: context)
    }
}
