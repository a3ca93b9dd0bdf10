import Foundation

/// Files only the server's own user may read: the data folder (0700), `config.json`, the database and its
/// `-wal` / `-shm` files (0600). They hold the JWT secret, the admin token, storage secrets and cloud
/// tokens. Created that way (no moment where they are readable by others) and tightened when an older
/// installation left them wider.
public enum PrivateFiles {
    /// Creates `path` (and missing parents) as a folder with mode 0700; an existing one is tightened only
    /// with `tightenExisting` (callers say so only for folders that are PanList's own).
    public static func makeFolder(_ path: String, tightenExisting: Bool = true) throws {
        let existed = FileManager.default.fileExists(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        if !existed || tightenExisting { tighten(path, to: 0o700) }
    }

    /// Whether `path` is a folder with nothing in it but the names in `ignoring` (or does not exist).
    public static func isEmptyFolder(_ path: String, ignoring: Set<String> = []) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).allSatisfy { ignoring.contains($0) }
    }

    /// Takes group and other bits away from `path` when it exists and has any (`mode` is what it becomes).
    public static func tighten(_ path: String, to mode: mode_t) {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & 0o077 != 0 else { return }
        _ = chmod(path, mode)
    }

    /// Creates an empty file with mode 0600 when `path` does not exist; tightens it when it does.
    public static func touch(_ path: String) throws {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd); return }
        guard errno == EEXIST else { throw FSError.internalError("cannot create \(path): \(String(cString: strerror(errno)))") }
        tighten(path, to: 0o600)
    }

    /// Writes `data` to `path` atomically (a temporary file in the same folder, renamed into place), mode 0600.
    public static func write(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp-" + RandomString.make(8)
        let fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FSError.internalError("cannot write \(path): \(String(cString: strerror(errno)))") }
        var ok = true
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, base + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; ok = false; break }
                off += n
            }
        }
        if ok && fsync(fd) != 0 { ok = false }
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw FSError.internalError("cannot write \(path): \(reason)")
        }
    }

    /// The database file and the files SQLite keeps beside it.
    public static func databaseFiles(_ db: String) -> [String] { [db, db + "-wal", db + "-shm", db + "-journal"] }
}
