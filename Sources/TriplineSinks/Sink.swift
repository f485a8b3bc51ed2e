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
    /// How many items of one lane it takes at once (1: one at a time, each outcome recorded before the next is sent).
    static var batchLimit: Int { get }
    /// Delivers `items` (at most `batchLimit`, in order) through the receiver's integrations of this type: how many
    /// of them were delivered, and why the next one failed. What comes after a failure is not attempted.
    func deliver(batch items: [OutboxItem], to receiver: Receiver, config: AlertsConfig) async -> BatchDelivery
}

/// How a batch went: the first `delivered` items are delivered; `failure`, if any, is the next item's.
public struct BatchDelivery: Sendable {
    public var delivered: Int
    public var failure: DeliveryFailure?
    public init(delivered: Int, failure: DeliveryFailure?) {
        self.delivered = delivered
        self.failure = failure
    }
}

extension Sink {
    public static var batchLimit: Int { 1 }
    /// One at a time, stopping at the first failure.
    public func deliver(batch items: [OutboxItem], to receiver: Receiver, config: AlertsConfig) async -> BatchDelivery {
        for (n, item) in items.enumerated() {
            do throws(DeliveryFailure) {
                try await deliver(item, to: receiver, config: config)
            } catch {
                return BatchDelivery(delivered: n, failure: error)
            }
        }
        return BatchDelivery(delivered: items.count, failure: nil)
    }
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

    /// A lane's due items go to the file in one write and one flush to disk.
    public static let batchLimit = 64

    public func deliver(_ item: OutboxItem, to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
        try append([item], to: receiver, config: config)
    }

    public func deliver(batch items: [OutboxItem], to receiver: Receiver, config: AlertsConfig) async -> BatchDelivery {
        do throws(DeliveryFailure) {
            try append(items, to: receiver, config: config)
            return BatchDelivery(delivered: items.count, failure: nil)
        } catch {
            return BatchDelivery(delivered: 0, failure: error)  // some lines may be there: the retry has the same ids
        }
    }

    /// One line per item per `file_configs` entry, appended in one write and flushed to disk.
    func append(_ items: [OutboxItem], to receiver: Receiver, config: AlertsConfig) throws(DeliveryFailure) {
        for fc in receiver.integrations where fc.type == "file" {
            guard let path = fc.settings["path"]?.stringValue else { continue }
            let template = config.template(fc.settings["template"]?.stringValue)
            var bytes: [UInt8] = []
            for item in items {
                if item.payload["status"] == .string("resolved") && !fc.sendResolved { continue }
                if template == nil, let text = item.payloadText {
                    bytes.append(contentsOf: text.utf8)  // as stored: the same bytes the writer would make again
                } else {
                    var o = item.payload
                    if let t = template { o.append("text", .string(t.render(Templates.view(item.payload)))) }
                    bytes.append(contentsOf: JSONWriter.string(.object(o)).utf8)
                }
                bytes.append(0x0A)
            }
            if bytes.isEmpty { continue }
            try Self.appendWhole(bytes, to: path)
        }
    }

    /// Appends are one at a time per file in this process: two receivers may log to one file, and a failed append
    /// is cut back to where the file ended (below), which must not cut another's lines.
    static let appending = NSLock()

    /// Appends `bytes` and flushes them to disk, or leaves the file as it was: a short write (a full disk, a size
    /// limit) or a failed flush is cut back, so no line is torn and no notification is in the file unless its
    /// attempt is recorded as delivered (the retry writes them again, whole).
    static func appendWhole(_ bytes: [UInt8], to path: String) throws(DeliveryFailure) {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        appending.lock()
        defer { appending.unlock() }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        if fd < 0 { throw DeliveryFailure("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw DeliveryFailure("\(path): \(String(cString: strerror(errno)))") }
        let size = st.st_size
        func fail(_ why: String) -> DeliveryFailure {
            _ = ftruncate(fd, size)
            _ = fsync(fd)
            return DeliveryFailure("\(path): \(why)")
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw fail(n < 0 ? String(cString: strerror(errno)) : "short write") }
            written += n
        }
        if fsync(fd) != 0 { throw fail("fsync: \(String(cString: strerror(errno)))") }
    }
}
