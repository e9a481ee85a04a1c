// POSIX file helpers for the data pipeline: whole reads and writes that retry on EINTR and
// short counts, and an atomic writer (temporary file in the same directory, fsync, rename,
// fsync of the directory) so a crash never leaves a partial file under its final name.
// Internal: callers turn `POSIXFailure` into their own domain errors (ShardError, DocumentError).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: the call's name and `errno`.
struct POSIXFailure: Error {
    var call: String
    var code: Int32

    init(_ call: String, _ code: Int32 = errno) {
        self.call = call
        self.code = code
    }

    /// "No such file or directory" etc.
    var reason: String { String(cString: strerror(code)) }
}

// MARK: - Reading

/// An open file descriptor for reading, closed on deinit. `-` means standard input (not closed).
final class InputFile {
    let fd: Int32
    private let owned: Bool

    init(path: String) throws(POSIXFailure) {
        if path == "-" {
            fd = 0
            owned = false
            return
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXFailure("open") }
        // Reading a directory fails later with EISDIR; report it now with a clear reason.
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw POSIXFailure("open", EISDIR)
        }
        self.fd = fd
        owned = true
    }

    deinit {
        if owned { close(fd) }
    }

    /// Size in bytes (`st_size`).
    func size() throws(POSIXFailure) -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw POSIXFailure("fstat") }
        return Int(st.st_size)
    }

    /// Reads up to `count` bytes at the current position; fewer only at end of file. Returns the count read.
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws(POSIXFailure) -> Int {
        var done = 0
        while done < count {
            let n = Glibc_read(fd, buffer + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXFailure("read")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads up to `count` bytes at byte `offset` (pread); fewer only at end of file.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws(POSIXFailure) -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXFailure("pread")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

// `read` is shadowed by the method above inside InputFile.
@inline(__always)
private func Glibc_read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buf, count)
}

// MARK: - Atomic writing

/// Writes a file under a temporary name (`.NAME.tmp` beside it), fsyncs it, renames it into place and
/// fsyncs the directory. On any failure the temporary file is removed and the final name is untouched.
struct AtomicFileWriter {
    /// The path the file will have once committed.
    let path: String
    /// The temporary path written first.
    let temporaryPath: String
    private var fd: Int32 = -1

    static func temporaryPath(for path: String) -> String {
        let (dir, base) = splitPath(path)
        return dir + "." + base + ".tmp"
    }

    init(path: String) throws(POSIXFailure) {
        self.path = path
        temporaryPath = AtomicFileWriter.temporaryPath(for: path)
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXFailure("open") }
        self.fd = fd
    }

    /// Appends `count` bytes.
    func write(_ bytes: UnsafeRawPointer, count: Int) throws(POSIXFailure) {
        var done = 0
        while done < count {
            // Large writes are split so no single call exceeds what every platform accepts.
            let n = Glibc_write(fd, bytes + done, min(count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXFailure("write")
            }
            done += n
        }
    }

    /// Appends `bytes`.
    func write(_ bytes: [UInt8]) throws(POSIXFailure) {
        var failure: POSIXFailure?
        bytes.withUnsafeBytes { b in
            do throws(POSIXFailure) {
                if let base = b.baseAddress { try write(base, count: b.count) }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// fsync, close, rename into place, fsync the directory.
    mutating func commit() throws(POSIXFailure) {
        guard fsync(fd) == 0 else { throw POSIXFailure("fsync") }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw POSIXFailure("close") }
        guard rename(temporaryPath, path) == 0 else { throw POSIXFailure("rename") }
        // Make the rename itself durable; failure here (e.g. a filesystem without directory fsync) is harmless.
        let directory = AtomicFileWriter.splitPath(path).directory
        let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    /// Closes and removes the temporary file (after a failure).
    mutating func abandon() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(temporaryPath)
    }

    /// ("dir/", "name") with the directory keeping its trailing slash; "" for a bare name.
    static func splitPath(_ path: String) -> (directory: String, base: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[...slash]), String(path[path.index(after: slash)...]))
    }
}

@inline(__always)
private func Glibc_write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buf, count)
}
