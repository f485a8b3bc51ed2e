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
        try await append([item], to: receiver, config: config)
    }

    public func deliver(batch items: [OutboxItem], to receiver: Receiver, config: AlertsConfig) async -> BatchDelivery {
        do throws(DeliveryFailure) {
            try await append(items, to: receiver, config: config)
            return BatchDelivery(delivered: items.count, failure: nil)
        } catch {
            return BatchDelivery(delivered: 0, failure: error)  // some lines may be there: the retry has the same ids
        }
    }

    /// One line per item per `file_configs` entry, appended in one write and flushed to disk.
    func append(_ items: [OutboxItem], to receiver: Receiver, config: AlertsConfig) async throws(DeliveryFailure) {
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
            try await Self.appendWhole(bytes, to: path)
        }
    }

    /// Appends are one at a time per file (by device and inode) in this process: two receivers may log to one file,
    /// and a failed append is cut back to where the file ended (below), which must not cut another's lines. Other
    /// files are not held up: a log on a stalled mount or a FIFO without a reader delays its own lane only.
    static let appending = FileLocks()

    final class FileLocks: @unchecked Sendable {
        private let lock = NSLock()
        private var locks: [FileID: NSLock] = [:]
        struct FileID: Hashable {
            var device: UInt64
            var inode: UInt64
        }
        func lock(_ id: FileID) -> NSLock {
            lock.withLock {
                if let l = locks[id] { return l }
                let l = NSLock()
                locks[id] = l
                return l
            }
        }
    }

    /// `appendWhole` on a thread of its own (it blocks on the disk, or on a FIFO's reader), not on the cooperative
    /// pool that every other lane and the pipeline share.
    static func appendWhole(_ bytes: [UInt8], to path: String) async throws(DeliveryFailure) {
        let result: Result<Void, DeliveryFailure> = await withCheckedContinuation { done in
            Thread.detachNewThread {
                do throws(DeliveryFailure) {
                    try appendWholeBlocking(bytes, to: path)
                    done.resume(returning: .success(()))
                } catch {
                    done.resume(returning: .failure(error))
                }
            }
        }
        try result.get()
    }

    /// Appends `bytes` and flushes them to disk, or leaves the file as it was: a short write (a full disk, a size
    /// limit) or a failed flush is cut back to the size the file had, so no line is torn and no notification is in the
    /// file unless its attempt is recorded as delivered (the retry writes them again, whole). The cut is made only on
    /// the same file grown since (never growing it): a log file has this service as its one writer and is rotated by
    /// renaming it (a `copytruncate` rotation racing a failed append can leave a fragment; README).
    static func appendWholeBlocking(_ bytes: [UInt8], to path: String) throws(DeliveryFailure) {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        // Not blocking on a FIFO without a reader (ENXIO: the lane retries later).
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0o640)
        if fd < 0 { throw DeliveryFailure("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw DeliveryFailure("\(path): \(String(cString: strerror(errno)))") }
        let regular = (st.st_mode & S_IFMT) == S_IFREG
        if !regular { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) }
        let lock = appending.lock(.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
        lock.lock()
        defer { lock.unlock() }
        if regular && fstat(fd, &st) != 0 { throw DeliveryFailure("\(path): \(String(cString: strerror(errno)))") }
        let size = st.st_size
        let inode = st.st_ino
        func fail(_ why: String) -> DeliveryFailure {
            var now = stat()
            if regular && fstat(fd, &now) == 0 && now.st_ino == inode && now.st_size > size {
                _ = ftruncate(fd, size)
                _ = fsync(fd)
            }
            return DeliveryFailure("\(path): \(why)")
        }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw fail(n < 0 ? String(cString: strerror(errno)) : "short write") }
            written += n
        }
        if regular && fsync(fd) != 0 { throw fail("fsync: \(String(cString: strerror(errno)))") }
    }
}
