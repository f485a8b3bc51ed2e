import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineState

/// A delivery integration: takes one outbox item (already rendered for its receiver) to its destination.
public protocol Sink: Sendable {
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
