import Foundation
import PanListCore
#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over the system calls the Local driver needs. All of them block: call through `blocking`.
enum Posix {
    struct Stat: Sendable {
        var isDir: Bool
        var size: Int64
        var modified: Date
        /// For a symbolic link in a listing: where it resolves to (inside the root).
        var realPath: String? = nil
    }

    static func realpath(_ path: String) -> String? {
        guard let p = Glibc.realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func stat(_ path: String) -> Stat? {
        var st = Glibc.stat()
        guard fstatat(AT_FDCWD, path, &st, 0) == 0 else { return nil }
        return make(st)
    }

    static func make(_ st: Glibc.stat) -> Stat {
        Stat(isDir: (st.st_mode & S_IFMT) == S_IFDIR, size: Int64(st.st_size),
             modified: Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9))
    }

    static func isDirectory(_ path: String) -> Bool { stat(path)?.isDir ?? false }

    /// What changes when a folder's entries change: its modification and change times (nanoseconds), inode and device.
    struct Stamp: Equatable, Sendable {
        var mtime: Int64, mtimeNanos: Int64, ctime: Int64, ctimeNanos: Int64, inode: UInt64, device: UInt64

        /// Whether the folder changed so recently (within `window` seconds of `now`, or in the future) that
        /// another change in the same clock tick would not move its times: such a listing is not kept (as git
        /// treats a "racy" index entry).
        func isRecent(now: timespec, window: Double = 0.05) -> Bool {
            let n = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
            let latest = max(Double(mtime) + Double(mtimeNanos) / 1e9, Double(ctime) + Double(ctimeNanos) / 1e9)
            return latest > n - window
        }
    }

    static func stamp(_ path: String) -> Stamp? {
        var st = Glibc.stat()
        guard fstatat(AT_FDCWD, path, &st, 0) == 0 else { return nil }
        return Stamp(mtime: Int64(st.st_mtim.tv_sec), mtimeNanos: Int64(st.st_mtim.tv_nsec),
                     ctime: Int64(st.st_ctim.tv_sec), ctimeNanos: Int64(st.st_ctim.tv_nsec),
                     inode: UInt64(st.st_ino), device: UInt64(st.st_dev))
    }

    /// True when something (a dangling link included) exists at `path`.
    static func exists(_ path: String) -> Bool {
        var st = Glibc.stat()
        return lstat(path, &st) == 0
    }

    /// The entries of a folder with their stats. Symbolic links are followed only when they resolve inside `root`;
    /// others (and dangling ones) are left out. Only files and folders are listed.
    static func listDirectory(_ path: String, root: String) -> [(String, Stat)]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        let fd = dirfd(dir)
        var result: [(String, Stat)] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            var st = Glibc.stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            var resolved: String?
            if (st.st_mode & S_IFMT) == S_IFLNK {
                let full = path == "/" ? "/" + name : path + "/" + name
                guard let real = realpath(full), VirtualPath.isWithin(real, root), fstatat(AT_FDCWD, real, &st, 0) == 0 else { continue }
                resolved = real
            }
            let type = st.st_mode & S_IFMT
            guard type == S_IFREG || type == S_IFDIR else { continue }
            var s = make(st)
            s.realPath = resolved
            result.append((name, s))
        }
        return result
    }

    static func space(_ path: String) -> StorageDetails? {
        var vfs = statvfs()
        guard statvfs(path, &vfs) == 0 else { return nil }
        let block = Int64(vfs.f_frsize)
        return StorageDetails(totalSpace: Int64(vfs.f_blocks) * block, freeSpace: Int64(vfs.f_bavail) * block)
    }

    static func setModified(_ path: String, _ date: Date) {
        let t = ModifiedTime.clamped(date).timeIntervalSince1970
        let sec = Int(t.rounded(.down))
        let ts = timespec(tv_sec: sec, tv_nsec: Int((t - Double(sec)) * 1e9))
        var times = [ts, ts]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    static func error(_ what: String) -> FSError {
        let code = errno
        let text = String(cString: strerror(code))
        switch code {
        case ENOENT: return .notFound("\(what): \(text)")
        case EEXIST, ENOTEMPTY: return .alreadyExists("\(what): \(text)")
        case EACCES, EPERM: return .permissionDenied("\(what): \(text)")
        case ENOSPC: return .tooLarge("\(what): no space left on the disk")
        default: return .internalError("\(what): \(text)")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? FSError { return e.message }
        return "\(error)"
    }
}
