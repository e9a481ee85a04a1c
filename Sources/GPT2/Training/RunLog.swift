// The run directory's logs: log.txt in build-nanogpt's format (`<step> train <loss>`,
// `<step> val <loss>`, `<step> hella <acc>`) and metrics.jsonl (one JSON object per event, every
// field). Each line goes out in one write(2) as it happens, so a crash loses nothing logged; a
// write that fails part-way (disk full) is cut back to the last whole line, and the error names
// the file. A resumed run first trims both files to the steps before its checkpoint.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum RunLogError: LocalizedError, Equatable {
    case cannotOpen(path: String, reason: String)
    case writeFailed(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .cannotOpen(let p, let r): return "cannot open log '\(p)': \(r)"
        case .writeFailed(let p, let r): return "cannot append to log '\(p)': \(r) (the file keeps its whole lines; free some space and resume)"
        }
    }
}

/// A file appended to a whole line at a time.
final class LineAppender {
    let path: String
    private let fd: Int32
    private var size: off_t

    init(path: String, truncate: Bool) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0o644)
        guard fd >= 0 else { throw RunLogError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        size = lseek(fd, 0, SEEK_END)
    }

    deinit { close(fd) }

    /// Appends `line` (which ends in a newline) whole, or not at all.
    func append(_ line: String) throws {
        let bytes = Array(line.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, size + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let reason = n < 0 ? String(cString: strerror(errno)) : "nothing written"
                _ = ftruncate(fd, size)   // drop the partial line
                throw RunLogError.writeFailed(path: path, reason: reason)
            }
            done += n
        }
        size += off_t(bytes.count)
    }
}

public final class RunLog {
    public let directory: String
    private let text: LineAppender
    private let jsonl: LineAppender

    /// Opens (appending) or creates the logs in `directory`. `truncate` starts them afresh.
    public init(directory: String, truncate: Bool) throws {
        self.directory = directory
        text = try LineAppender(path: directory + "/log.txt", truncate: truncate)
        jsonl = try LineAppender(path: directory + "/metrics.jsonl", truncate: truncate)
    }

    /// Appends `<step> <kind> <value>` to log.txt and the fields to metrics.jsonl.
    public func record(step: Int, kind: String, value: Double, fields: [String: Double] = [:]) throws {
        let digits = kind == "train" ? 6 : 4
        try text.append("\(step) \(kind) \(String(format: "%.\(digits)f", value))\n")
        var all: [String: Any] = ["step": step, "kind": kind, "time": Date().timeIntervalSince1970]
        if value.isFinite { all["value"] = value }
        for (k, v) in fields where v.isFinite { all[k] = v }
        let json = try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])
        try jsonl.append(String(decoding: json, as: UTF8.self) + "\n")
    }

    /// Removes every line of log.txt and metrics.jsonl at `step` or later (a resumed run's steps
    /// will be logged again), rewriting each file atomically. Missing files are left missing.
    public static func trim(directory: String, before step: Int) throws {
        for name in ["log.txt", "metrics.jsonl"] {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            var kept: [UInt8] = []
            kept.reserveCapacity(data.count)
            for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
                guard let s = lineStep(Data(line), json: name.hasSuffix(".jsonl")), s < step else { continue }
                kept += line
                kept.append(UInt8(ascii: "\n"))
            }
            if kept.count == data.count { continue }
            do {
                try AtomicOutputFile.write(to: path) { try $0.write(kept) }
            } catch {
                throw RunLogError.writeFailed(path: path, reason: error.localizedDescription)
            }
        }
    }

    /// The step of a log line (nil for a line that is not a whole record, e.g. cut by a crash).
    private static func lineStep(_ line: Data, json: Bool) -> Int? {
        if json {
            guard let o = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { return nil }
            return (o["step"] as? NSNumber)?.intValue
        }
        let f = line.split(separator: UInt8(ascii: " "))
        guard f.count == 3, Double(String(decoding: f[2], as: UTF8.self)) != nil else { return nil }
        return Int(String(decoding: f[0], as: UTF8.self))
    }

    /// Parses a log.txt into series by kind: kind -> [(step, value)], in file order.
    public static func read(path: String) throws -> [String: [(Int, Double)]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var series: [String: [(Int, Double)]] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let s = Int(f[0]), let v = Double(f[2]) else { continue }
            series[String(f[1]), default: []].append((s, v))
        }
        return series
    }
}
