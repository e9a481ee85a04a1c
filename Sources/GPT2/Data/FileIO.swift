// POSIX file helpers for the data pipeline: whole reads that retry on EINTR and short counts.
// (Atomic writes use `AtomicOutputFile`, Formats/SafeTensorsWriter.swift.)
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

/// ("dir/", "name") with the directory keeping its trailing slash; "" for a bare name.
func splitPath(_ path: String) -> (directory: String, base: String) {
    guard let slash = path.lastIndex(of: "/") else { return ("", path) }
    return (String(path[...slash]), String(path[path.index(after: slash)...]))
}
