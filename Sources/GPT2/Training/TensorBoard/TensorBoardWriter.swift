// TensorBoard event files without TensorFlow or protobuf libraries: scalars and markdown text, as
// torch.utils.tensorboard's SummaryWriter writes them (add_scalar, add_text, purge_step).
// Records are buffered and written by `flush()`; a failed write is cut back to the last whole
// record, so the file always ends on a record boundary that TensorBoard can read.
// File name and framing: https://github.com/tensorflow/tensorboard (summary/writer/event_file_writer.py).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors writing a TensorBoard event file; each names the file or directory.
public enum TensorBoardError: LocalizedError, Equatable {
    case cannotCreateDirectory(path: String, reason: String)
    case cannotCreate(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case closed(path: String)

    public var errorDescription: String? {
        switch self {
        case .cannotCreateDirectory(let path, let reason):
            return "cannot create the TensorBoard directory '\(path)': \(reason)"
        case .cannotCreate(let path, let reason):
            return "cannot create the TensorBoard event file '\(path)': \(reason); check that the directory is writable (or turn TensorBoard logging off)"
        case .writeFailed(let path, let reason):
            return "writing the TensorBoard event file '\(path)' failed: \(reason) (check free disk space); the file keeps every whole record written before"
        case .closed(let path):
            return "the TensorBoard event file '\(path)' was already closed"
        }
    }
}

/// Writes one TensorBoard event file (`events.out.tfevents.<time>.<host>.<pid>.<n>`) in a log
/// directory. Not thread-safe: use it from one thread (rank 0's training loop).
public final class TensorBoardWriter {
    /// The event file being written.
    public let path: String
    private var fd: Int32
    private var pending: [UInt8] = []
    private var written: off_t = 0   // bytes of whole records on disk

    /// Files created by this process, so two writers opened in the same second get distinct names.
    private static let counter = Counter()

    /// Creates a new event file in `directory` (created if missing); with `purgeStep`, first
    /// marks a restart there (a SessionLog START at that step), so TensorBoard drops the events
    /// earlier files recorded at steps >= `purgeStep` (torch's `SummaryWriter(purge_step:)`).
    public init(directory: String, purgeStep: Int? = nil) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TensorBoardError.cannotCreateDirectory(path: directory, reason: Self.reason(error))
        }
        // TensorBoard reads a directory's files in name order and never goes back to an earlier
        // one, so the new file's time field must sort after every file already there.
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let latest = existing.compactMap(Self.fileTime).max() ?? 0
        let time = max(Int(Date().timeIntervalSince1970), latest + 1)
        let name = String(format: "events.out.tfevents.%010d.%@.%d.%d", time, Self.hostName(), Int(getpid()), Self.counter.next())
        path = (directory.hasSuffix("/") ? directory : directory + "/") + name
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TensorBoardError.cannotCreate(path: path, reason: String(cString: strerror(errno))) }
        let now = Date().timeIntervalSince1970
        append(EventRecord.fileVersion(wallTime: now, step: 0))
        if let purgeStep { append(EventRecord.sessionStart(wallTime: now, step: purgeStep)) }
        try flush()
    }

    deinit {
        if fd >= 0 {
            try? flush()
            Glibc_close(fd)
        }
    }

    /// Logs a scalar (stored as a 32-bit float, as `add_scalar`).
    public func scalar(_ tag: String, _ value: Double, step: Int) throws {
        try checkOpen()
        append(EventRecord.scalar(tag: tag, value: value, wallTime: Date().timeIntervalSince1970, step: step))
    }

    /// Logs markdown text, shown by TensorBoard's text dashboard under `tag` (as `add_text`,
    /// without torch's "/text_summary" suffix on the tag).
    public func text(_ tag: String, _ text: String, step: Int) throws {
        try checkOpen()
        append(EventRecord.text(tag: tag, text: text, wallTime: Date().timeIntervalSince1970, step: step))
    }

    /// Writes the buffered records to the file (the run calls this every step: a crash loses at
    /// most one step). On failure the file is cut back to its last whole record and the buffered
    /// records are dropped.
    public func flush() throws {
        try checkOpen()
        guard !pending.isEmpty else { return }
        defer { pending.removeAll(keepingCapacity: true) }
        var done = 0
        while done < pending.count {
            let n = pending.withUnsafeBytes { Glibc_write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                _ = ftruncate(fd, written)
                throw TensorBoardError.writeFailed(path: path, reason: reason)
            }
            done += n
        }
        written += off_t(done)
    }

    /// Flushes, syncs and closes the file. Later calls throw `TensorBoardError.closed`.
    public func close() throws {
        try flush()
        let syncFailed = fsync(fd) != 0 && errno != EINVAL
        let reason = String(cString: strerror(errno))
        Glibc_close(fd)
        fd = -1
        if syncFailed { throw TensorBoardError.writeFailed(path: path, reason: "fsync: " + reason) }
    }

    // MARK: - Helpers

    /// Points the open descriptor at another file (tests use /dev/full to simulate a full disk).
    func redirectForTesting(to other: String) throws {
        let o = open(other, O_WRONLY | O_CLOEXEC)
        guard o >= 0, dup2(o, fd) >= 0 else { throw TensorBoardError.cannotCreate(path: other, reason: String(cString: strerror(errno))) }
        Glibc_close(o)
    }

    private func append(_ event: [UInt8]) {
        pending += EventRecord.framed(event)
    }

    private func checkOpen() throws {
        if fd < 0 { throw TensorBoardError.closed(path: path) }
    }

    /// The time field of an event file name, or nil for other files.
    static func fileTime(_ name: String) -> Int? {
        let prefix = "events.out.tfevents."
        guard name.hasPrefix(prefix) else { return nil }
        return Int(name.dropFirst(prefix.count).prefix { $0 != "." })
    }

    private static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "localhost" }
        let host = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return host.isEmpty ? "localhost" : host.replacingOccurrences(of: "/", with: "_")
    }

    private static func reason(_ error: Error) -> String {
        ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription ?? error.localizedDescription
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func next() -> Int {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return value
        }
    }
}

@inline(__always)
private func Glibc_write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buf, count) }

@inline(__always)
private func Glibc_close(_ fd: Int32) { _ = close(fd) }
