import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineState
import TriplineYAML

/// A type of integration (Alertmanager's notifier): how its `<type>_configs` entries are read, whether it sends
/// resolved notifications by default, and how it takes one outbox item (already rendered for its receiver) to its
/// destination. A new sink is one file conforming to this and one line in `SinkRegistry.standard`.
public protocol Sink: Sendable {
    /// The integration type: the receiver key `<type>_configs`, and the lanes' `type/index`.
    static var type: String { get }
    /// Whether an entry without `send_resolved` gets resolved notifications.
    static var resolvedByDefault: Bool { get }
    /// Validates one entry into its settings; every error at its file:line:col.
    static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject
    /// Delivers through the receiver's integrations of this type (the delivery service passes one at a time).
    /// Failures say whether to retry (and when), give up (dead letter), or hold the lane (gone).
    func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure)
}

/// Why a delivery failed, and whether trying again can help.
public struct DeliveryFailure: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// No retry helps (rejected for good): the item goes to dead letters.
    public var permanent: Bool
    /// The destination asked to wait this long (seconds).
    public var retryAfter: Double?
    /// The endpoint is gone (HTTP 410): the receiver is disabled until an operator enables it.
    public var gone: Bool
    public init(_ message: String, permanent: Bool = false, retryAfter: Double? = nil, gone: Bool = false) {
        self.message = message
        self.permanent = permanent
        self.retryAfter = retryAfter
        self.gone = gone
    }

    /// The state-store key that marks a receiver disabled (before integrations had lanes).
    public static func disabledKey(_ receiver: String) -> String { "receiver-disabled:" + receiver }
    /// The state-store key that marks one integration of a receiver disabled (a 410 from its endpoint).
    public static func disabledKey(_ lane: OutboxLane) -> String {
        disabledKey(lane.receiver) + (lane.integration.isEmpty ? "" : "/" + lane.integration)
    }
    public var description: String { message }
}

/// The log-file receiver: one NDJSON line per notification per `file_configs` entry, appended and flushed to
/// disk before the delivery counts. A template, when set, adds its text (rendered from the same filtered view).
public struct FileSink: Sink {
    public init() {}

    public static let type = "file"
    public static let resolvedByDefault = true

    /// `file_configs` entries: `path` (relative to the configuration), `template`, `send_resolved`.
    public static func settings(_ entry: Node, _ context: SinkConfigContext) throws(LocatedError) -> JSONObject {
        var spec = SinkConfigSpec(keys: ["path", "template", "send_resolved"])
        spec.required = ["path"]
        return try SinkConfig.read(entry, type: type, spec: spec, context: context)
    }

    public func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        for fc in receiver.integrations where fc.type == "file" {
            if item.payload["status"] == .string("resolved") && !fc.sendResolved { continue }
            guard let path = fc.settings["path"]?.stringValue else { continue }
            var o = item.payload
            if let t = config.template(fc.settings["template"]?.stringValue) {
                o.append("text", .string(t.render(Templates.view(item.payload))))
            }
            var line = Array(JSONWriter.string(.object(o)).utf8)
            line.append(0x0A)
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o640)
            if fd < 0 { throw DeliveryFailure("\(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n != line.count { throw DeliveryFailure("\(path): short write") }
            if fsync(fd) != 0 { throw DeliveryFailure("\(path): fsync: \(String(cString: strerror(errno)))") }
        }
    }
}
