// Every GPT2_* variable is read through Settings and documented in README.
import Foundation
import XCTest
@testable import GPT2

final class SettingsTests: XCTestCase {
    func testEveryVariableIsDocumentedInTheReadme() throws {
        let readme = try String(contentsOf: TestPaths.root.appendingPathComponent("README.md"), encoding: .utf8)
        for name in Settings.names { XCTAssertTrue(readme.contains("`\(name)`"), "\(name) is not in README.md") }
    }

    /// No source file but Settings.swift reads a GPT2_* variable from the environment.
    func testVariablesAreReadInOnePlace() throws {
        let sources = TestPaths.root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!.compactMap { $0 as? URL }
            .filter { $0.pathExtension == "swift" && $0.lastPathComponent != "Settings.swift" }
        for f in files {
            let text = try String(contentsOf: f, encoding: .utf8)
            for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                let reads = ["environment[\"GPT2_", "env[\"GPT2_", "getenv(\"GPT2_", "pathList(\"GPT2_"]
                XCTAssertFalse(reads.contains { line.contains($0) }, "\(f.lastPathComponent): \(line)")
            }
        }
        for name in Settings.names {
            XCTAssertTrue(try String(contentsOf: sources.appendingPathComponent("GPT2/Settings.swift"), encoding: .utf8).contains("\"\(name)\""))
        }
    }

    func testParsing() {
        let s = Settings(environment: ["GPT2_NUM_THREADS": "3", "GPT2_CUDA_AUTO": "0", "GPT2_NCCL_PORT": "70000",
                                       "GPT2_CUDA_LIB_DIRS": "/a::/b", "GPT2_NCCL_TIMEOUT": "-1"])
        XCTAssertEqual(s.numThreads, 3)
        XCTAssertFalse(s.cudaAuto)
        XCTAssertNil(s.ncclPort)
        XCTAssertEqual(s.cudaLibDirs, ["/a", "/b"])
        XCTAssertNil(s.ncclTimeout)
        XCTAssertTrue(Settings(environment: [:]).cudaAuto)
    }
}
