// The run directory's logs: log.txt in build-nanogpt's format (`<step> train <loss>`,
// `<step> val <loss>`, `<step> hella <acc>`) and metrics.jsonl (one JSON object per event, every
// field). Lines are appended and flushed as they happen, so a crash loses nothing logged.
import Foundation

public final class RunLog {
    public let directory: String
    private let text: FileHandle
    private let jsonl: FileHandle

    /// Opens (appending) or creates the logs in `directory`. `truncate` starts them afresh.
    public init(directory: String, truncate: Bool) throws {
        self.directory = directory
        func open(_ name: String) throws -> FileHandle {
            let path = directory + "/" + name
            if truncate || !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
                }
            }
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try h.seekToEnd()
            return h
        }
        text = try open("log.txt")
        jsonl = try open("metrics.jsonl")
    }

    deinit {
        try? text.close()
        try? jsonl.close()
    }

    /// Appends `<step> <kind> <value>` to log.txt and the fields to metrics.jsonl.
    public func record(step: Int, kind: String, value: Double, fields: [String: Double] = [:]) throws {
        let digits = kind == "train" ? 6 : 4
        try text.write(contentsOf: Data("\(step) \(kind) \(String(format: "%.\(digits)f", value))\n".utf8))
        var all: [String: Any] = ["step": step, "kind": kind, "value": value, "time": Date().timeIntervalSince1970]
        for (k, v) in fields { all[k] = v.isFinite ? v : nil }
        let json = try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])
        try jsonl.write(contentsOf: json + Data("\n".utf8))
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
