import Foundation

/// Files only the operating-system user that runs Tripline may read (SPEC §8): the state directory 0700; the
/// database, keys, exports and bundles 0600 — created with that mode (never written first and restricted after),
/// and existing looser ones tightened.
public enum PrivateFiles {
    /// Creates `path` (and missing parents) as a directory with mode 0700; an existing one is left as it is.
    public static func directory(_ path: String) throws {
        if path.isEmpty || FileManager.default.fileExists(atPath: path) { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try directory(parent) }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw PrivateFileError("\(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Creates `path` with mode 0600 holding `contents`; fails if it exists.
    public static func create(_ path: String, contents: [UInt8]) throws {
        try directory((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 { throw PrivateFileError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var off = 0
        while off < contents.count {
            let n = contents[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { throw PrivateFileError("\(path): \(String(cString: strerror(errno)))") }
            off += n
        }
        if fsync(fd) != 0 { throw PrivateFileError("\(path): fsync: \(String(cString: strerror(errno)))") }
    }

    /// Creates an empty file with mode 0600 if there is none (so that a library opening it later keeps the mode).
    public static func touch(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw PrivateFileError("\(path): \(String(cString: strerror(errno)))") }
        close(fd)
    }

    /// Removes group and other permissions from `path` if it has any; true when it did (to be audited).
    @discardableResult
    public static func tighten(_ path: String, directory: Bool = false) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        let mode = st.st_mode & 0o777
        let wanted: mode_t = directory ? 0o700 : 0o600
        guard mode & 0o077 != 0 else { return false }
        return chmod(path, mode & wanted) == 0
    }

    /// The permission bits of `path`, or nil.
    public static func mode(_ path: String) -> mode_t? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return st.st_mode & 0o777
    }
}

public struct PrivateFileError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
