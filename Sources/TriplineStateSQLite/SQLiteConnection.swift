import CSQLite
import Foundation
import TriplineState

extension SQLiteStateStore {
    /// One SQLite connection with its compiled statements; used by one thread at a time (its owner's lock).
    final class Connection {
        let db: OpaquePointer
        private var statements: [String: OpaquePointer] = [:]

        /// `readOnly`: a connection for reads only (`PRAGMA query_only`), opened on a database that exists.
        init(path: String, busyTimeout: Double, readOnly: Bool = false) throws(StateError) {
            var handle: OpaquePointer?
            let flags =
                readOnly
                ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX
                : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
            guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
                let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
                if let handle { sqlite3_close(handle) }
                throw .database("\(path): \(message)")
            }
            db = handle
            sqlite3_busy_timeout(db, Int32(max(0, min(busyTimeout, 3600)) * 1000))
            if readOnly { try exec("PRAGMA query_only=1") }
        }

        deinit {
            for s in statements.values { sqlite3_finalize(s) }
            sqlite3_close_v2(db)
        }

        /// The connection's last error; a constraint or size violation is the change's own fault (`record`),
        /// anything else (busy, locked, I/O, full disk) is the database's.
        func error(_ what: String) -> StateError {
            let code = sqlite3_errcode(db)
            let message = "\(what): \(String(cString: sqlite3_errmsg(db)))"
            switch code {
            case SQLITE_CONSTRAINT, SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE: return .record(message)
            default: return .database(message)
            }
        }

        func exec(_ sql: String) throws(StateError) {
            var message: UnsafeMutablePointer<CChar>?
            if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
                let text = message.map { String(cString: $0) } ?? "error"
                sqlite3_free(message)
                throw .database(text)
            }
        }

        /// Runs `sql` with `values` bound, calling `each` for every row; the number of rows changed.
        @discardableResult
        func run(_ sql: String, _ values: [Value] = [], _ each: ((Row) -> Void)? = nil) throws(StateError) -> Int {
            // Statements are compiled once and kept (the connection is used under its owner's lock).
            let stmt: OpaquePointer
            if let cached = statements[sql] {
                stmt = cached
            } else {
                var s: OpaquePointer?
                guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK, let s else { throw error("prepare") }
                statements[sql] = s
                stmt = s
            }
            defer {
                sqlite3_reset(stmt)
                sqlite3_clear_bindings(stmt)
            }
            let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
            for (i, v) in values.enumerated() {
                let k = Int32(i + 1)
                switch v {
                case .int(let n): sqlite3_bind_int64(stmt, k, n)
                case .real(let d): sqlite3_bind_double(stmt, k, d)
                case .text(let s):
                    // Bound with its length: text after a NUL byte is part of the value (keys that differ only
                    // after a NUL must not collide).
                    var s = s
                    s.withUTF8 { u in
                        let empty: StaticString = ""
                        let p = UnsafeRawPointer(
                            u.baseAddress ?? UnsafeRawPointer(empty.utf8Start).assumingMemoryBound(to: UInt8.self))
                        _ = sqlite3_bind_text(stmt, k, p.assumingMemoryBound(to: CChar.self), Int32(u.count), transient)
                    }
                case .blob(let b):
                    _ = b.withUnsafeBytes { sqlite3_bind_blob(stmt, k, $0.baseAddress, Int32(b.count), transient) }
                case .null: sqlite3_bind_null(stmt, k)
                }
            }
            let row = Row(stmt)
            while true {
                let rc = sqlite3_step(stmt)
                if rc == SQLITE_ROW {
                    each?(row)
                } else if rc == SQLITE_DONE {
                    return Int(sqlite3_changes(db))
                } else {
                    throw error("step")
                }
            }
        }
    }

    /// A few read-only connections for reads outside transactions (one per core, 2 to 4). A read takes a free one
    /// (or waits for one); each opens on first use. In WAL mode a read sees the last commit and never waits for
    /// the writer: an API page is not held up by another request's fsync.
    final class Readers: @unchecked Sendable {
        final class Slot {
            let lock = NSLock()
            var connection: Connection?
        }
        let path: String
        let busyTimeout: Double
        private let slots: [Slot]
        private let turn = NSLock()
        private var next = 0

        init(path: String, busyTimeout: Double) {
            self.path = path
            self.busyTimeout = busyTimeout
            slots = (0..<max(2, min(4, ProcessInfo.processInfo.activeProcessorCount))).map { _ in Slot() }
        }

        func read<T>(_ body: (Connection) throws(StateError) -> T) throws(StateError) -> T {
            let slot: Slot
            if let free = slots.first(where: { $0.lock.try() }) {
                slot = free
            } else {
                let i = turn.withLock {
                    next = (next + 1) % slots.count
                    return next
                }
                slot = slots[i]
                slot.lock.lock()
            }
            defer { slot.lock.unlock() }
            let c: Connection
            if let open = slot.connection {
                c = open
            } else {
                c = try Connection(path: path, busyTimeout: busyTimeout, readOnly: true)
                slot.connection = c
            }
            return try body(c)
        }
    }
}
