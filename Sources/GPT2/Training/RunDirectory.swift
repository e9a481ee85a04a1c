// A run directory (runs/NAME): run.json (everything needed to continue the run), log.txt,
// metrics.jsonl, TensorBoard event files, checkpoint_NNNNNN.safetensors, loss.svg, and `.lock`,
// held with flock by the one process that writes there. flock is released by the kernel when its
// holder dies, so a lock left by a killed run never blocks anyone.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum RunDirectoryError: LocalizedError, Equatable {
    case missing(path: String)
    case notADirectory(path: String)
    case cannotCreate(path: String, reason: String)
    case notWritable(path: String)
    case locked(path: String, holder: String)
    case lockFailed(path: String, reason: String)
    case noRunWithCheckpoint(parent: String)
    case badRunFile(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .missing(let p):
            return "run directory '\(p)' does not exist (nothing to resume; check the path, or drop --resume to start a new run)"
        case .notADirectory(let p):
            return "'\(p)' is not a directory; --out takes a run directory"
        case .cannotCreate(let p, let r):
            return "cannot create run directory '\(p)': \(r)"
        case .notWritable(let p):
            return "run directory '\(p)' is not writable"
        case .locked(let p, let holder):
            return "run directory '\(p)' is in use by another gpt train (\(holder)); wait for it to finish or stop it first"
        case .lockFailed(let p, let r):
            return "cannot lock run directory '\(p)': \(r)"
        case .noRunWithCheckpoint(let parent):
            return "no run under '\(parent)' holds a checkpoint; pass --out RUN_DIR to choose the run to resume"
        case .badRunFile(let p, let r):
            return "'\(p)': \(r)"
        }
    }
}

public final class RunDirectory {
    public let path: String
    private var lockFD: Int32 = -1

    /// A run directory at `path` (nothing is created or locked yet).
    public init(path: String) {
        self.path = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
    }

    deinit { unlock() }

    public var runFile: String { path + "/run.json" }
    public var logFile: String { path + "/log.txt" }
    public var metricsFile: String { path + "/metrics.jsonl" }
    public var plotFile: String { path + "/loss.svg" }
    public var lockFile: String { path + "/.lock" }

    /// Whether `path` exists as a directory.
    public var exists: Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Checks an existing directory to resume (missing or not a directory: an error naming it).
    public func checkExisting() throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw RunDirectoryError.missing(path: path) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw RunDirectoryError.notADirectory(path: path) }
    }

    /// Creates the directory (and parents) if needed; returns whether it was created by this call.
    @discardableResult
    public func create() throws -> Bool {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw RunDirectoryError.notADirectory(path: path) }
            guard access(path, W_OK) == 0 else { throw RunDirectoryError.notWritable(path: path) }
            return false
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw RunDirectoryError.cannotCreate(path: path, reason: (error as NSError).localizedDescription)
        }
        return true
    }

    // MARK: - Lock

    /// Takes the exclusive lock for the life of this object (or until `unlock`). Another live
    /// holder: an error naming its pid.
    public func lock() throws {
        guard lockFD < 0 else { return }
        let fd = open(lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunDirectoryError.lockFailed(path: path, reason: String(cString: strerror(errno))) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            var buf = [UInt8](repeating: 0, count: 64)
            let n = pread(fd, &buf, buf.count, 0)
            close(fd)
            guard err == EWOULDBLOCK else { throw RunDirectoryError.lockFailed(path: path, reason: String(cString: strerror(err))) }
            let holder = n > 0 ? String(decoding: buf[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            throw RunDirectoryError.locked(path: path, holder: holder.isEmpty ? "pid unknown" : "pid \(holder)")
        }
        // The holder's pid, for the other process's message (the lock itself is the flock).
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        lockFD = fd
    }

    /// Releases the lock (also done when the process exits, however it exits).
    public func unlock() {
        guard lockFD >= 0 else { return }
        _ = ftruncate(lockFD, 0)
        close(lockFD)
        lockFD = -1
    }

    // MARK: - Checkpoints and stale temporary files

    /// `checkpoint_NNNNNN.safetensors` paths, oldest first.
    public func checkpoints() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { Self.checkpointStep($0) != nil }
            .sorted { Self.checkpointStep($0)! < Self.checkpointStep($1)! }
            .map { path + "/" + $0 }
    }

    /// The path of the checkpoint for `step`.
    public func checkpointPath(step: Int) -> String { path + "/" + String(format: "checkpoint_%06d.safetensors", step) }

    /// The step in a checkpoint's file name, or nil for any other name.
    public static func checkpointStep(_ name: String) -> Int? {
        let base = (name as NSString).lastPathComponent
        guard base.hasPrefix("checkpoint_"), base.hasSuffix(".safetensors") else { return nil }
        return Int(base.dropFirst("checkpoint_".count).dropLast(".safetensors".count))
    }

    /// Removes temporary files of our atomic writer (`.NAME.tmp-PID-RANDOM`) left by writers that
    /// died, e.g. a checkpoint cut by kill -9. Call with the lock held: then no other process
    /// writes here, so every such file not of this process is stale. Returns the names removed.
    @discardableResult
    public func removeStaleTemporaries() -> [String] {
        let mine = "\(getpid())"
        var removed: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            guard let pid = Self.temporaryWriterPID(name), pid != mine else { continue }
            if unlink(path + "/" + name) == 0 { removed.append(name) }
        }
        return removed.sorted()
    }

    /// The writer's pid in a temporary name `.NAME.tmp-PID-RANDOM`, or nil for any other name.
    static func temporaryWriterPID(_ name: String) -> String? {
        guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards), r.lowerBound > name.index(after: name.startIndex) else { return nil }
        let parts = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }) else { return nil }
        return String(parts[0])
    }

    // MARK: - Finding runs

    /// The run under `parent` holding at least one checkpoint whose newest checkpoint was written
    /// last (a newer directory without a checkpoint, e.g. a run that failed at once, is skipped).
    public static func newestWithCheckpoint(under parent: String) throws -> RunDirectory {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        var best: (Date, RunDirectory)?
        for name in names {
            let run = RunDirectory(path: parent + "/" + name)
            guard run.exists, let newest = run.checkpoints().last else { continue }
            let attrs = try? FileManager.default.attributesOfItem(atPath: newest)
            let date = (attrs?[.modificationDate] as? Date) ?? .distantPast
            if best == nil || date > best!.0 { best = (date, run) }
        }
        guard let best else { throw RunDirectoryError.noRunWithCheckpoint(parent: parent) }
        return best.1
    }
}
