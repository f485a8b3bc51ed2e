import Foundation
import TriplineJSON
import TriplineState
import TriplineStatePostgres
import TriplineStateSQLite

/// Opens the state store a configuration names (a SQLite file, or a PostgreSQL database by URL), migrated. Files of the state
/// that are readable by others (a deployment from before, a copy) are tightened once, with an audit record.
public enum StateStores {
    /// The location for logs and messages: a file path as it is, a URL without its parameters.
    public static func describe(_ location: String) -> String {
        if case .postgres(let l)? = try? StateLocation.parse(location) { return l.description }
        return location
    }

    public static func open(_ location: String, busyTimeout: Double = 10) throws(StateError) -> any DurableStore {
        if case .postgres(let l) = try StateLocation.parse(location) {
            let s = try PostgresStateStore(location: l, busyTimeout: busyTimeout)
            try s.migrate()
            return s
        }
        let dir = (location as NSString).deletingLastPathComponent
        var tightened: [String] = []
        if !dir.isEmpty && PrivateFiles.tighten(dir, directory: true) { tightened.append(dir) }
        let s = try SQLiteStateStore(path: location, busyTimeout: busyTimeout)
        for f in [
            location, location + "-wal", location + "-shm", (dir as NSString).appendingPathComponent("handle.key"),
        ]
        where PrivateFiles.tighten(f) {
            tightened.append(f)
        }
        try s.migrate()
        if !tightened.isEmpty {
            var c = Commit()
            c.events = [
                EventDraft(
                    at: Date().timeIntervalSince1970, kind: "file_modes_tightened",
                    detail: JSONObject([
                        ("files", .array(tightened.map { .string($0) })), ("mode", .string("0600/0700")),
                    ]))
            ]
            try s.commit(c)
        }
        return s
    }
}
