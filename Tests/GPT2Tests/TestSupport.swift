// Shared helpers for tests: repository paths, a Python with the reference packages, running `gpt`.
import Foundation
import XCTest

enum TestPaths {
    /// The package root (this file is Tests/GPT2Tests/TestSupport.swift).
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures")
    static let reference = root.appendingPathComponent("Tests/reference")
    /// ../shared beside the project (present on developer machines and in CI).
    static let shared = root.deletingLastPathComponent().appendingPathComponent("shared")

    /// The directory holding the built products (`gpt`), next to the test bundle.
    static var products: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        #endif
        return Bundle.main.bundleURL
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct ProcessResult {
    var status: Int32
    var stdout: Data
    var stderr: String
    var text: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs an executable with arguments and optional stdin; captures both streams.
func runProcess(_ executable: String, _ arguments: [String], stdin: Data? = nil,
                environment: [String: String]? = nil, currentDirectory: String? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let currentDirectory { p.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    // stdin and stderr go through files so no pipe can fill up and block the child.
    let dir = try TestPaths.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let inURL = dir.appendingPathComponent("stdin"), errURL = dir.appendingPathComponent("stderr")
    try (stdin ?? Data()).write(to: inURL)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = Pipe()
    p.standardOutput = out
    p.standardError = try FileHandle(forWritingTo: errURL)
    p.standardInput = try FileHandle(forReadingFrom: inURL)
    try p.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let errData = (try? Data(contentsOf: errURL)) ?? Data()
    return ProcessResult(status: p.terminationStatus, stdout: outData, stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs the built `gpt` binary.
func runGPT(_ arguments: [String], stdin: Data? = nil, currentDirectory: String? = nil) throws -> ProcessResult {
    let exe = TestPaths.products.appendingPathComponent("gpt").path
    guard FileManager.default.isExecutableFile(atPath: exe) else { throw XCTSkip("gpt executable not built at \(exe)") }
    return try runProcess(exe, arguments, stdin: stdin, currentDirectory: currentDirectory)
}

/// A Python interpreter that can import `modules` ($GPT2_PYTHON, then python3), or nil.
func referencePython(importing modules: [String]) -> String? {
    var candidates: [String] = []
    if let p = ProcessInfo.processInfo.environment["GPT2_PYTHON"] { candidates.append(p) }
    candidates += [TestPaths.root.appendingPathComponent(".venv/bin/python").path, "/usr/bin/python3", "/usr/local/bin/python3"]
    for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
        if let r = try? runProcess(c, ["-c", "import " + modules.joined(separator: ", ")]), r.status == 0 { return c }
    }
    return nil
}
