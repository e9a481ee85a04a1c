// `gpt prepare` on Parquet: the pyarrow fixture matrix gives, token for token, EOT + tiktoken's
// encode_ordinary of every non-null row (binary and library), the same bytes for any thread count
// and piece size; committed fixtures without Python; truncated, byte-flipped and non-Parquet files
// and unknown codecs fail with one line naming the file, exit status 1, no signal, no shard left.
import Foundation
import XCTest
@testable import GPT2

final class ParquetPrepareTests: XCTestCase {
    private func allTokens(_ shards: [String]) throws -> [UInt16] {
        try shards.flatMap { try TokenShard.read(path: $0) }
    }

    /// The whole matrix through the binary: `gpt prepare DIR`.
    func testBinaryMatchesTiktoken() throws {
        let m = try ParquetTestSupport.matrix()
        let out = try DataTestSupport.makeDirectory(self)
        let shardTokens = m.expected.count / 3 + 1
        let r = try runGPT(["prepare", m.files, "-o", out, "--name", "pq", "--shard-tokens", "\(shardTokens)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let shards = (try FileManager.default.contentsOfDirectory(atPath: out)).sorted().map { out + "/" + $0 }
        XCTAssertEqual(shards.map { splitPath($0).base }, ["pq_train_000001.npy", "pq_train_000002.npy", "pq_val_000000.npy"])
        let ordered = [shards[2], shards[0], shards[1]]
        XCTAssertEqual(try allTokens(ordered), m.expected)
        let nulls = m.entries.reduce(0) { $0 + $1.nulls }
        let documents = m.entries.reduce(0) { $0 + $1.values.count } - nulls
        XCTAssertTrue(r.text.contains("\(documents) documents (\(nulls) null rows skipped), \(m.expected.count) tokens"), r.text)
    }

    /// Library: identical bytes for any thread count and piece size (long values cut into pieces),
    /// equal to tiktoken's ids, with the built-in Snappy decoder too.
    func testIdenticalBytesForAnyThreadCount() throws {
        let m = try ParquetTestSupport.matrix()
        let names = ["fallback_v1.parquet", "fallback_v2.parquet", "long.parquet", "manypages.parquet"]
        var expected: [UInt16] = []
        var offset = 0
        for e in m.entries {
            if names.contains(e.file) { expected += m.expected[offset..<(offset + e.tokens)] }
            offset += e.tokens
        }
        var reference: [[UInt8]]?
        for (threads, pieceBytes, builtinSnappy) in [(1, 1 << 20, false), (2, 4096, false), (4, 64 << 10, true)] {
            Snappy.useSystemLibrary = !builtinSnappy
            defer { Snappy.useSystemLibrary = true }
            let out = try DataTestSupport.makeDirectory(self)
            let summary = try DatasetPreparer.prepare(inputs: names.map { m.files + "/" + $0 }, outputDirectory: out, name: "pq",
                                                      shardTokens: 200_000, threads: threads, pieceBytes: pieceBytes)
            let files = try summary.shards.map { try DataTestSupport.bytes($0) }
            if let reference {
                XCTAssertEqual(files, reference, "threads \(threads), pieces of \(pieceBytes) bytes")
            } else {
                reference = files
                XCTAssertEqual(try allTokens(summary.shards), expected)
                XCTAssertGreaterThan(summary.shards.count, 3)
            }
        }
    }

    /// Committed fixtures through the library (no Python): the tokens of expected.json, files in path order.
    func testCommittedFixtures() throws {
        struct Expected: Decodable { var nulls: Int; var tokens: [UInt16] }
        let dir = ParquetTestSupport.committed
        let expected = try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/expected.json")))
        let names = expected.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let out = try DataTestSupport.makeDirectory(self)
        let summary = try DatasetPreparer.prepare(inputs: names.map { dir + "/" + $0 }, outputDirectory: out, name: "pq",
                                                  valTokens: 0, threads: 2)
        XCTAssertEqual(try allTokens(summary.shards), names.flatMap { expected[$0]!.tokens })
        XCTAssertEqual(summary.nullRows, expected.values.reduce(0) { $0 + $1.nulls })
    }

    // MARK: - Bad input

    /// Runs `gpt prepare FILE` and checks: exit status 1 (not a signal), one error line naming the
    /// file (and `mustContain`), no shard and no temporary file left.
    private func assertBinaryFails(_ path: String, mustContain: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let out = try DataTestSupport.makeDirectory(self)
        let r = try runGPT(["prepare", path, "-o", out, "--shard-tokens", "1000"])
        XCTAssertEqual(r.status, 1, "\(path): \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("\r") && !$0.isEmpty }
        XCTAssertEqual(lines.count, 1, r.stderr, file: file, line: line)
        for part in [path] + mustContain { XCTAssertTrue(r.stderr.contains(part), "\(part) not in: \(r.stderr)", file: file, line: line) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), [], file: file, line: line)
    }

    func testBadFilesThroughBinary() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let good = try DataTestSupport.bytes(ParquetTestSupport.committed + "/snappy_dict_v1_nulls.parquet")
        // Not Parquet at all, empty, magic only, a JSON file named .parquet.
        let cases: [(String, [UInt8], String)] = [
            ("text.parquet", Array("just some text, not a Parquet file\n".utf8), "not a Parquet file"),
            ("empty.parquet", [], "not a Parquet file"),
            ("magic.parquet", Array("PAR1PAR1".utf8), "not a Parquet file"),
            ("footer-length.parquet", Array("PAR1".utf8) + [0xFF, 0xFF, 0xFF, 0x7F] + Array("PAR1".utf8) + [0x10, 0, 0, 0] + Array("PAR1".utf8), "corrupt Parquet file"),
        ]
        for (name, bytes, message) in cases {
            try DataTestSupport.write(bytes, to: dir + "/" + name)
            try assertBinaryFails(dir + "/" + name, mustContain: [message])
        }
        // Truncated at a few places (the tail magic is gone) and byte-flipped inside the footer.
        for cut in [good.count / 5, good.count / 2, good.count - 9, good.count - 1] {
            let path = dir + "/cut-\(cut).parquet"
            try DataTestSupport.write(Array(good.prefix(cut)), to: path)
            try assertBinaryFails(path)
        }
        let footerLength = Int(good[good.count - 8]) | Int(good[good.count - 7]) << 8
        for k in 0..<4 {
            var bytes = good
            bytes[good.count - 8 - footerLength + 3 + k * 7] ^= 0xFF
            let path = dir + "/flip-\(k).parquet"
            try DataTestSupport.write(bytes, to: path)
            let out = try DataTestSupport.makeDirectory(self)
            let r = try runGPT(["prepare", path, "-o", out])
            XCTAssertTrue(r.status == 0 || r.status == 1, "status \(r.status): \(r.stderr)")  // never a signal
            if r.status != 0 { try assertBinaryFails(path) }
        }
        // An unknown codec names the file, the column and the codec.
        try assertBinaryFails(ParquetTestSupport.committed + "/brotli.parquet", mustContain: ["'text'", "BROTLI"])
        if let m = try? ParquetTestSupport.matrix() {
            try assertBinaryFails(m.unsupported + "/lz4.parquet", mustContain: ["'text'", "LZ4_RAW"])
        }
        // A missing column lists the available ones.
        let out = try DataTestSupport.makeDirectory(self)
        let r = try runGPT(["prepare", ParquetTestSupport.committed + "/gzip_plain_v2_required.parquet", "-o", out, "--column", "content"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("no column 'content'") && r.stderr.contains("'text'"), r.stderr)
    }

    /// Truncations and many random single-byte flips of small files: each read ends in success or a
    /// one-line error naming the file, never a trap. Flips go through `ParquetFile` (every row group,
    /// UTF-8 checked as prepare does), truncations through `prepare` (no partial shard left).
    func testTruncatedAndFlippedFilesNeverTrap() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        var rng = SplitMix64(seed: 1234)
        var failures = 0, successes = 0
        func check(_ error: Error, _ path: String) {
            failures += 1
            let message = (error as? LocalizedError)?.errorDescription ?? ""
            XCTAssertTrue(message.contains(path), "\(error)")
            XCTAssertFalse(message.contains("\n"), message)
            XCTAssertTrue(error is DocumentError || error is PrepareError || error is ParquetError, "\(error)")
        }
        for name in ["snappy_dict_v1_nulls.parquet", "gzip_plain_v2_required.parquet", "zstd_dict_v2_nulls_around.parquet", "none_fallback_v1.parquet",
                     "none_delta_length_v1.parquet", "none_delta_byte_array_v2.parquet"] {
            let good = try DataTestSupport.bytes(ParquetTestSupport.committed + "/" + name)
            let path = dir + "/" + name
            for _ in 0..<300 {
                var bytes = good
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes[at] ^= UInt8(truncatingIfNeeded: rng.next() % 255 + 1)
                try DataTestSupport.write(bytes, to: path)
                do {
                    let file = try ParquetFile(path: path)
                    let column = try file.stringColumn(named: "text")
                    for g in 0..<file.rowGroupCount {
                        let strings = try file.readStrings(column, rowGroup: g)
                        for i in 0..<strings.count {
                            if case .invalid = strings.value(i).withUnsafeBufferPointer({ UTF8Validator.check($0) }) {
                                throw ParquetError.invalidUTF8(path: path, column: "text", row: strings.row(i))
                            }
                        }
                    }
                    successes += 1
                } catch {
                    check(error, path)
                }
            }
            for cut in stride(from: 0, to: good.count, by: max(1, good.count / 12)) {
                try DataTestSupport.write(Array(good.prefix(cut)), to: path)
                let out = dir + "/out"
                try? FileManager.default.removeItem(atPath: out)
                XCTAssertThrowsError(try DatasetPreparer.prepare(inputs: [path], outputDirectory: out, name: "f", threads: 2)) { check($0, path) }
                XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? [], [])
            }
        }
        XCTAssertGreaterThan(failures, 300)
        XCTAssertGreaterThan(successes, 20)  // flips inside text values can still decode
    }
}
