// Running `gpt` on hostile input: a time limit (a FIFO must not block it), how it ended (exit
// status or signal), and the checks every failure must pass: it exits by itself with status 1
// (64 for a bad command line), and stderr is one line naming the offending path.
import Foundation
import XCTest
@testable import GPT2

struct GuardedResult {
    /// Exit status, or the signal number when `signaled`.
    var status: Int32
    var signaled: Bool
    var timedOut: Bool
    var stdout: String
    var stderr: String
    var summary: String { "status \(status)\(signaled ? " (signal)" : "")\(timedOut ? " (timed out)" : ""), stderr: \(stderr)" }
}

/// Runs the built `gpt` with `arguments`, killing it after `timeout` seconds. Crash backtraces
/// are turned off so that a crash costs no time.
func runGPTGuarded(_ arguments: [String], timeout: TimeInterval = 60, stdin: Data? = nil) throws -> GuardedResult {
    let exe = TestPaths.products.appendingPathComponent("gpt").path
    guard FileManager.default.isExecutableFile(atPath: exe) else { throw XCTSkip("gpt executable not built at \(exe)") }
    let dir = try TestPaths.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let inURL = dir.appendingPathComponent("stdin"), outURL = dir.appendingPathComponent("stdout")
    let errURL = dir.appendingPathComponent("stderr")
    try (stdin ?? Data()).write(to: inURL)
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 }
    p.standardInput = try FileHandle(forReadingFrom: inURL)
    p.standardOutput = try FileHandle(forWritingTo: outURL)
    p.standardError = try FileHandle(forWritingTo: errURL)
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    while p.isRunning {
        if Date() > deadline {
            timedOut = true
            kill(p.processIdentifier, SIGKILL)
            break
        }
        usleep(5_000)
    }
    p.waitUntilExit()
    let out = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
    let err = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
    return GuardedResult(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal, timedOut: timedOut,
                         stdout: out, stderr: err)
}

/// Asserts that `r` is a clean failure: exited by itself with `status`, stderr one line that
/// contains every string of `naming`.
func assertCleanFailure(_ r: GuardedResult, status: Int32 = 1, naming: [String], _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "\(what): did not exit within the time limit", file: file, line: line)
    XCTAssertFalse(r.signaled, "\(what): killed by signal \(r.status); stderr: \(r.stderr.prefix(600))", file: file, line: line)
    XCTAssertEqual(r.status, status, "\(what): \(r.summary.prefix(600))", file: file, line: line)
    let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
    if status == 1 {
        XCTAssertEqual(lines.count, 1, "\(what): stderr is not one line: \(r.stderr.prefix(600))", file: file, line: line)
    }
    for s in naming {
        XCTAssertTrue(r.stderr.contains(s), "\(what): stderr does not name '\(s)': \(r.stderr.prefix(600))", file: file, line: line)
    }
}

/// Creates a FIFO (named pipe) at `path`.
func makeFIFO(_ path: String) {
    precondition(mkfifo(path, 0o644) == 0, "mkfifo \(path): \(String(cString: strerror(errno)))")
}

/// A small byte-level BPE vocabulary in GPT-2's formats: the 256 byte tokens (GPT-2's ranks), one
/// merge per added character of a few words (so every merge joins two existing tokens), then
/// `<|endoftext|>`. Written as encoder.json + vocab.bpe (OpenAI), vocab.json + merges.txt (HF) or
/// a tiktoken rank file.
enum ToyTokenizer {
    enum Layout: String, CaseIterable {
        case openai, huggingface, tiktoken
        var files: [String] {
            switch self {
            case .openai: return ["encoder.json", "vocab.bpe"]
            case .huggingface: return ["vocab.json", "merges.txt"]
            case .tiktoken: return ["toy.tiktoken"]
            }
        }
    }

    static let words = ["Ġthe", "Ġquick", "Ġbrown", "Ġfox", "Ġand", "Ġlazy", "Ġdog", "Ġthere", "Hello", "ing", "tion", "er", "Ċ"]

    /// (left, right) pairs in rank order, and the byte-level strings of all mergeable tokens.
    static func vocabulary() -> (merges: [(String, String)], tokens: [String]) {
        var tokens = ByteLevel.bytesInRankOrder.map { String(Character(ByteLevel.byteToScalar[Int($0)])) }
        var known = Set(tokens)
        var merges: [(String, String)] = []
        for w in words {
            var prefix = String(w.first!)
            for c in w.dropFirst() {
                let next = prefix + String(c)
                if known.insert(next).inserted {
                    merges.append((prefix, String(c)))
                    tokens.append(next)
                }
                prefix = next
            }
        }
        return (merges, tokens)
    }

    static func write(_ layout: Layout, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (merges, tokens) = vocabulary()
        switch layout {
        case .openai, .huggingface:
            var entries = tokens.enumerated().map { "\(jsonQuoted($0.element)): \($0.offset)" }
            entries.append("\"<|endoftext|>\": \(tokens.count)")
            let encoder = "{" + entries.joined(separator: ", ") + "}"
            let bpe = "#version: 0.2\n" + merges.map { "\($0.0) \($0.1)\n" }.joined()
            try Data(encoder.utf8).write(to: URL(fileURLWithPath: dir + "/" + layout.files[0]))
            try Data(bpe.utf8).write(to: URL(fileURLWithPath: dir + "/" + layout.files[1]))
        case .tiktoken:
            let lines = tokens.enumerated().map { rank, t in
                Data(ByteLevel.bytes(of: Substring(t))!).base64EncodedString() + " \(rank)\n"
            }
            try Data(lines.joined().utf8).write(to: URL(fileURLWithPath: dir + "/" + layout.files[0]))
        }
    }
}
