import Foundation
import TriplineAlerts
import TriplineState

/// Alert views as JSON text (and who may list them), by what a view is a function of: the alert's row (its id, version and update time —
/// every write of the row moves the version on), the access of the one who looks and the state its partner sees.
/// One per loaded configuration (the renderer, handles and partners are the configuration's). Bounded: when full
/// it starts again empty.
final class ViewCache: @unchecked Sendable {
    struct Key: Hashable {
        var id: Int64
        var version: Int64
        var updatedAt: Double
        var access: Access
        var state: AlertState
    }

    /// Whether a principal may list an alert, and its access: a function of the row and the principal — its id,
    /// partner and role, all three (a request authenticated under the configuration before a reload may still be
    /// answered under the new one) — the policy and renderer being the configuration's.
    struct SightKey: Hashable {
        var id: Int64
        var version: Int64
        var updatedAt: Double
        var principal: String
        var partner: String
        var role: String
    }

    static let limit = 16_384
    private let lock = NSLock()
    private var views: [Key: [UInt8]] = [:]
    private var sights: [SightKey: (listable: Bool, access: Access)] = [:]

    func get(_ key: SightKey) -> (listable: Bool, access: Access)? { lock.withLock { sights[key] } }

    func put(_ key: SightKey, _ sight: (listable: Bool, access: Access)) {
        lock.withLock {
            if sights.count >= Self.limit { sights.removeAll(keepingCapacity: true) }
            sights[key] = sight
        }
    }

    func get(_ key: Key) -> [UInt8]? { lock.withLock { views[key] } }

    func put(_ key: Key, _ json: [UInt8]) {
        lock.withLock {
            if views.count >= Self.limit { views.removeAll(keepingCapacity: true) }
            views[key] = json
        }
    }
}
