// Shared by the Parquet* tests: the pyarrow-written fixture matrix (one Python call per test run,
// Tests/reference/parquet_reference.py) and reading a whole column with `ParquetFile`.
import Foundation
import XCTest
@testable import GPT2

enum ParquetTestSupport {
    /// One entry of manifest.json: a file and pyarrow's reading of its text column (nil = null row).
    struct Entry: Decodable {
        var file: String
        var values: [String?]
        var nulls: Int
        var tokens: Int
    }

    struct Matrix {
        /// OUT/files: the readable files (what `gpt prepare` gets as a directory).
        var files: String
        /// OUT/unsupported: LZ4_RAW and BROTLI files.
        var unsupported: String
        var entries: [Entry]
        /// EOT + encode_ordinary(text) of every non-null row, files in path order (tiktoken).
        var expected: [UInt16]
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var generated: Result<Matrix, Error>?

    /// The fixture matrix, written by pyarrow once per process; skips the test without Python + pyarrow.
    static func matrix() throws -> Matrix {
        lock.lock()
        defer { lock.unlock() }
        if generated == nil { generated = Result { try generate() } }
        return try generated!.get()
    }

    private static func generate() throws -> Matrix {
        guard let python = referencePython(importing: ["pyarrow", "tiktoken", "numpy"]) else {
            throw XCTSkip("no Python with pyarrow, tiktoken and numpy (set GPT2_PYTHON)")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-parquet-\(UUID().uuidString)").path
        let script = TestPaths.reference.appendingPathComponent("parquet_reference.py").path
        let r = try runProcess(python, [script, "matrix", out])
        guard r.status == 0 else { throw NSError(domain: "parquet_reference.py", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
        let manifest = try JSONDecoder().decode([String: [Entry]].self, from: Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json")))
        let raw = try Data(contentsOf: URL(fileURLWithPath: out + "/expected.u16"))
        let expected = raw.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }.map { UInt16(littleEndian: $0) }
        directories.append(out)
        if directories.count == 1 { atexit { ParquetTestSupport.cleanUp() } }
        return Matrix(files: out + "/files", unsupported: out + "/unsupported", entries: manifest["files"] ?? [], expected: expected)
    }

    nonisolated(unsafe) private static var directories: [String] = []

    /// Removes the generated matrix (at exit: the Parquet* test classes share it).
    static func cleanUp() {
        lock.lock()
        defer { lock.unlock() }
        for d in directories { try? FileManager.default.removeItem(atPath: d) }
        directories = []
        generated = nil
    }

    /// Every value of `column` (nil for nulls, in row order) read with `ParquetFile`, row group by row group.
    static func readColumn(_ path: String, column: String = "text") throws -> [String?] {
        let file = try ParquetFile(path: path)
        let c = try file.stringColumn(named: column)
        var all: [String?] = []
        for g in 0..<file.rowGroupCount {
            let strings = try file.readStrings(c, rowGroup: g)
            var rows = [String?](repeating: nil, count: strings.rowCount)
            for i in 0..<strings.count { rows[strings.row(i)] = String(decoding: strings.value(i), as: UTF8.self) }
            XCTAssertEqual(rows.filter { $0 == nil }.count, strings.nullCount, "\(path) row group \(g)")
            XCTAssertEqual(strings.rowCount, file.rowCount(rowGroup: g))
            all += rows
        }
        XCTAssertEqual(all.count, file.rowCount)
        return all
    }

    /// The fixtures committed under Tests/Fixtures/parquet.
    static let committed = TestPaths.fixtures.appendingPathComponent("parquet").path
}
