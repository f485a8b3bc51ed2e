import Foundation
import TriplineAlerts
import TriplineState

/// Alert views as JSON text (and who may list them), by what each is a function of: the alert's row (its id,
/// version and update time — every write of the row moves the version on), and the access of the one who looks and
/// the state its partner sees (views), or the principal with its partner and role (listing decisions). One per
/// loaded configuration (the renderer, handles and partners are the configuration's).
final class ViewCache: Sendable {
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
        var looker: Looker
    }

    /// The principal's part of a `SightKey`, its hash taken once per page rather than once per alert.
    struct Looker: Hashable {
        let principal: String
        let partner: String
        let role: String
        private let hash: Int

        init(_ p: Principal) {
            principal = p.id
            partner = p.partner
            role = p.role.rawValue
            var h = Hasher()
            h.combine(principal)
            h.combine(partner)
            h.combine(role)
            hash = h.finalize()
        }

        static func == (a: Looker, b: Looker) -> Bool {
            a.hash == b.hash && a.principal == b.principal && a.partner == b.partner && a.role == b.role
        }

        func hash(into h: inout Hasher) { h.combine(hash) }
    }

    let views = Bounded<Key, [UInt8]>()
    let sights = Bounded<SightKey, (listable: Bool, access: Access)>()

    /// A map of at most `limit` entries; when full it starts again empty.
    final class Bounded<K: Hashable & Sendable, V: Sendable>: @unchecked Sendable {
        static var limit: Int { 16_384 }
        private let lock = NSLock()
        private var map: [K: V] = [:]

        /// The value kept for `key`, or `make()`'s, kept.
        func value(_ key: K, _ make: () -> V) -> V {
            if let hit = lock.withLock({ map[key] }) { return hit }
            let v = make()
            lock.withLock {
                if map.count >= Self.limit { map.removeAll(keepingCapacity: true) }
                map[key] = v
            }
            return v
        }
    }
}
