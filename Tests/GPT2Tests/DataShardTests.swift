// Token shards: .npy (byte-identical to np.save) and llm.c .bin round trips, numpy reading them back,
// and one-line errors naming the file for every malformed case. Also the helpers the Data* tests share.
import Foundation
import XCTest
@testable import GPT2

// MARK: - Shared helpers for the Data* tests

enum DataTestSupport {
    /// A fresh temporary directory, removed by the test's teardown.
    static func makeDirectory(_ test: XCTestCase) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-data-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// A Python that imports numpy: $GPT2_PYTHON, /work/venv, ./.venv, then python3 on PATH.
    static let python: String? = {
        var candidates: [String] = []
        if let p = ProcessInfo.processInfo.environment["GPT2_PYTHON"] { candidates.append(p) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates += ["/work/venv/bin/python", root.appendingPathComponent(".venv/bin/python").path,
                       "/usr/bin/python3", "/usr/local/bin/python3", "/opt/homebrew/bin/python3"]
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
            if let r = try? run(c, ["-c", "import numpy"]), r.status == 0 { return c }
        }
        return nil
    }()

    /// Runs a program; returns its status and combined output.
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs a Python script with numpy (skips the test without one); fails the test on a non-zero exit.
    static func runPython(_ script: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let python else { throw XCTSkip("no Python with numpy (set GPT2_PYTHON)") }
        let r = try run(python, ["-c", script] + arguments)
        XCTAssertEqual(r.status, 0, r.output, file: file, line: line)
        return r.output
    }

    /// Deterministic tokens covering the full uint16 range.
    static func tokens(_ n: Int) -> [UInt16] {
        (0..<n).map { UInt16(truncatingIfNeeded: $0 &* 7919 &+ 65535) }
    }

    /// Asserts `body` throws exactly `expected`, and that its message is one line naming `path`.
    static func assertThrows<E: Error & Equatable & LocalizedError>(_ expected: E, naming path: String?,
                                                                   file: StaticString = #filePath, line: UInt = #line,
                                                                   _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected \(expected), nothing thrown", file: file, line: line)
        } catch let error as E {
            XCTAssertEqual(error, expected, file: file, line: line)
            let message = error.errorDescription ?? ""
            XCTAssertFalse(message.contains("\n"), "multi-line message: \(message)", file: file, line: line)
            if let path { XCTAssertTrue(message.contains(path), "message does not name '\(path)': \(message)", file: file, line: line) }
        } catch {
            XCTFail("expected \(expected), got \(error)", file: file, line: line)
        }
    }

    /// Temporary files left in `directory` (`.NAME.tmp-<pid>-<random>`).
    static func temporaryFiles(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(".") && $0.contains(".tmp") }
    }
}

// MARK: - Tests

final class DataShardTests: XCTestCase {
    func testNpyHeaderLayout() {
        for n in [0, 1, 9, 10, 12345, 100_000_000, 9_999_999_999] {
            let h = ShardHeader.encode(format: .npy, tokenCount: n)
            XCTAssertEqual(h.count % 64, 0, "n=\(n)")
            XCTAssertEqual(Array(h[0..<8]), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
            XCTAssertEqual(Int(h[8]) | Int(h[9]) << 8, h.count - 10)
            XCTAssertEqual(h.last, 0x0A)
            let text = String(decoding: h[10...], as: UTF8.self)
            XCTAssertTrue(text.hasPrefix("{'descr': '<u2', 'fortran_order': False, 'shape': (\(n),), }"), text)
        }
        let b = ShardHeader.encode(format: .bin, tokenCount: 77)
        XCTAssertEqual(b.count, 1024)
        XCTAssertEqual(Array(b[0..<12]), [0x88, 0xD8, 0x34, 0x01, 1, 0, 0, 0, 77, 0, 0, 0])  // 20240520 = 0x0134D888
        XCTAssertTrue(b[12...].allSatisfy { $0 == 0 })
    }

    func testRoundTripBothFormats() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        for format in ShardFormat.allCases {
            for n in [0, 1, 1000] {
                let tokens = DataTestSupport.tokens(n)
                let path = dir + "/t\(n).\(format.fileExtension)"
                try TokenShard.write(tokens, to: path, format: format)
                XCTAssertEqual(try TokenShard.read(path: path), tokens)
                XCTAssertEqual(try TokenShard.tokenCount(path: path), n)
                let header = try TokenShard.header(path: path)
                XCTAssertEqual(header.format, format)
                XCTAssertEqual(header.fileSize, try DataTestSupport.bytes(path).count)
                let mapped = try MappedTokenShard(path: path)
                XCTAssertEqual(mapped.count, n)
                mapped.withTokens { XCTAssertEqual(Array($0), tokens) }
                if n > 0 { XCTAssertEqual(mapped[n - 1], tokens[n - 1]) }
            }
        }
        XCTAssertEqual(DataTestSupport.temporaryFiles(in: dir), [])
    }

    func testFileNamesAndListing() throws {
        XCTAssertEqual(TokenShard.fileName(name: "edufineweb", split: .val, index: 0, format: .npy), "edufineweb_val_000000.npy")
        XCTAssertEqual(TokenShard.fileName(name: "x", split: .train, index: 12, format: .bin), "x_train_000012.bin")
        let dir = try DataTestSupport.makeDirectory(self)
        for name in ["a_train_000002.npy", "a_train_000001.npy", "a_val_000000.npy", "b_train_000001.bin", ".a_train_000003.npy.tmp", "notes.txt"] {
            try DataTestSupport.write([], to: dir + "/" + name)
        }
        XCTAssertEqual(try TokenShard.list(directory: dir, split: .train, name: "a"), [dir + "/a_train_000001.npy", dir + "/a_train_000002.npy"])
        XCTAssertEqual(try TokenShard.list(directory: dir, split: .train).count, 3)
        XCTAssertEqual(try TokenShard.list(directory: dir, split: .val), [dir + "/a_val_000000.npy"])
    }

    /// Our .npy bytes equal np.save's, and numpy reads our .npy and .bin back.
    func testNumpyAgreesByteForByte() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let sizes = [0, 1, 7, 1000, 65536]
        for n in sizes {
            try TokenShard.write(DataTestSupport.tokens(n), to: "\(dir)/ours_\(n).npy", format: .npy)
            try TokenShard.write(DataTestSupport.tokens(n), to: "\(dir)/ours_\(n).bin", format: .bin)
        }
        let script = """
        import sys, numpy as np
        d = sys.argv[1]
        for n in map(int, sys.argv[2:]):
            ref = ((np.arange(n, dtype=np.int64) * 7919 + 65535) % 65536).astype(np.uint16)
            np.save(f"{d}/numpy_{n}.npy", ref)
            a = np.load(f"{d}/ours_{n}.npy")
            assert a.dtype == np.uint16 and a.shape == (n,), (a.dtype, a.shape)
            assert (a == ref).all()
            with open(f"{d}/ours_{n}.bin", "rb") as f:
                h = np.frombuffer(f.read(1024), dtype=np.int32)
                t = np.frombuffer(f.read(), dtype=np.uint16)
            assert h[0] == 20240520 and h[1] == 1 and h[2] == n and (h[3:] == 0).all(), h[:4]
            assert t.shape == (n,) and (t == ref).all()
        print("ok")
        """
        let out = try DataTestSupport.runPython(script, [dir] + sizes.map(String.init))
        XCTAssertTrue(out.contains("ok"), out)
        for n in sizes {
            XCTAssertEqual(try DataTestSupport.bytes("\(dir)/ours_\(n).npy"), try DataTestSupport.bytes("\(dir)/numpy_\(n).npy"), "n=\(n)")
            XCTAssertEqual(try TokenShard.read(path: "\(dir)/numpy_\(n).npy"), DataTestSupport.tokens(n))
        }
    }

    /// Files numpy writes that are not token shards are rejected with the right error; format 2.0 is read.
    func testNumpyFilesOfOtherKinds() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let script = """
        import sys, numpy as np
        d = sys.argv[1]
        np.save(f"{d}/i32.npy", np.arange(5, dtype=np.int32))
        np.save(f"{d}/u16_2d.npy", np.zeros((2, 3), dtype=np.uint16))
        with open(f"{d}/v2.npy", "wb") as f:
            np.lib.format.write_array(f, np.arange(4, dtype=np.uint16), version=(2, 0))
        """
        _ = try DataTestSupport.runPython(script, [dir])
        DataTestSupport.assertThrows(ShardError.unsupportedDType(path: dir + "/i32.npy", found: "<i4"), naming: dir + "/i32.npy") {
            _ = try TokenShard.read(path: dir + "/i32.npy")
        }
        DataTestSupport.assertThrows(ShardError.badShape(path: dir + "/u16_2d.npy", shape: "(2, 3)"), naming: dir + "/u16_2d.npy") {
            _ = try TokenShard.tokenCount(path: dir + "/u16_2d.npy")
        }
        XCTAssertEqual(try TokenShard.read(path: dir + "/v2.npy"), [0, 1, 2, 3])
    }

    func testMalformedShards() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        for format in ShardFormat.allCases {
            let good = dir + "/good.\(format.fileExtension)"
            try TokenShard.write(DataTestSupport.tokens(100), to: good, format: format)
            let bytes = try DataTestSupport.bytes(good)
            let headerSize = bytes.count - 200

            let truncated = dir + "/truncated.\(format.fileExtension)"
            try DataTestSupport.write(Array(bytes.dropLast(3)), to: truncated)
            let expectTruncated = ShardError.truncated(path: truncated, tokenCount: 100, expectedBytes: bytes.count, actualBytes: bytes.count - 3)
            DataTestSupport.assertThrows(expectTruncated, naming: truncated) { _ = try TokenShard.read(path: truncated) }
            DataTestSupport.assertThrows(expectTruncated, naming: truncated) { _ = try TokenShard.tokenCount(path: truncated) }
            DataTestSupport.assertThrows(expectTruncated, naming: truncated) { _ = try MappedTokenShard(path: truncated) }

            let trailing = dir + "/trailing.\(format.fileExtension)"
            try DataTestSupport.write(bytes + [1, 2], to: trailing)
            DataTestSupport.assertThrows(
                ShardError.trailingBytes(path: trailing, tokenCount: 100, expectedBytes: bytes.count, actualBytes: bytes.count + 2),
                naming: trailing) { _ = try TokenShard.read(path: trailing) }

            let headerOnly = dir + "/cut_header.\(format.fileExtension)"
            try DataTestSupport.write(Array(bytes.prefix(headerSize / 2)), to: headerOnly)
            XCTAssertThrowsError(try TokenShard.read(path: headerOnly)) { error in
                guard case .badHeader(headerOnly, _)? = error as? ShardError else { return XCTFail("\(error)") }
            }
        }

        let badMagic = dir + "/bad_magic.bin"
        var header = [Int32](repeating: 0, count: 256)
        header[0] = 1234
        try DataTestSupport.write(header.withUnsafeBytes { Array($0) }, to: badMagic)
        DataTestSupport.assertThrows(ShardError.badMagic(path: badMagic, found: 1234, expected: 20240520), naming: badMagic) {
            _ = try TokenShard.read(path: badMagic)
        }
        header[0] = 20240326  // an llm.c model file
        try DataTestSupport.write(header.withUnsafeBytes { Array($0) }, to: badMagic)
        XCTAssertThrowsError(try TokenShard.read(path: badMagic)) {
            XCTAssertTrue(($0 as? ShardError)?.errorDescription?.contains("model checkpoint") ?? false, "\($0)")
        }

        let badVersion = dir + "/bad_version.bin"
        header[0] = 20240520
        header[1] = 2
        try DataTestSupport.write(header.withUnsafeBytes { Array($0) }, to: badVersion)
        DataTestSupport.assertThrows(ShardError.unsupportedVersion(path: badVersion, found: 2, expected: 1), naming: badVersion) {
            _ = try TokenShard.read(path: badVersion)
        }

        let empty = dir + "/empty.bin"
        try DataTestSupport.write([], to: empty)
        XCTAssertThrowsError(try TokenShard.read(path: empty)) { error in
            guard case .badHeader(empty, _)? = error as? ShardError else { return XCTFail("\(error)") }
        }

        let missing = dir + "/missing.npy"
        DataTestSupport.assertThrows(ShardError.cannotOpen(path: missing, reason: "No such file or directory"), naming: missing) {
            _ = try TokenShard.read(path: missing)
        }
        DataTestSupport.assertThrows(ShardError.cannotOpen(path: dir, reason: "Is a directory"), naming: dir) {
            _ = try TokenShard.read(path: dir)
        }
    }

    func testNpyHeaderVariants() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        // A hand-written header: double quotes, other key order, no growth padding, fortran_order True.
        func npy(_ dict: String, tokens: [UInt16]) -> [UInt8] {
            var header = Array(dict.utf8)
            while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
            header.append(0x0A)
            var b: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)]
            b += header
            for t in tokens { b += [UInt8(t & 0xFF), UInt8(t >> 8)] }
            return b
        }
        let path = dir + "/variant.npy"
        try DataTestSupport.write(npy("{\"shape\": (3,), \"fortran_order\": True, \"descr\": \"<u2\"}", tokens: [5, 6, 7]), to: path)
        XCTAssertEqual(try TokenShard.read(path: path), [5, 6, 7])
        try DataTestSupport.write(npy("{'descr': '>u2', 'fortran_order': False, 'shape': (3,), }", tokens: [5, 6, 7]), to: path)
        DataTestSupport.assertThrows(ShardError.unsupportedDType(path: path, found: ">u2"), naming: path) { _ = try TokenShard.read(path: path) }
        try DataTestSupport.write(npy("{'descr': '<u2', 'shape': (3,}", tokens: [5, 6, 7]), to: path)
        XCTAssertThrowsError(try TokenShard.read(path: path)) { error in
            guard case .badHeader(path, _)? = error as? ShardError else { return XCTFail("\(error)") }
        }
    }

    func testWriteFailureLeavesNothing() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let path = dir + "/no/such/dir/x.npy"
        XCTAssertThrowsError(try TokenShard.write([1, 2, 3], to: path, format: .npy)) { error in
            guard case .cannotOpen? = error as? ShardError else { return XCTFail("\(error)") }
            XCTAssertTrue((error as? ShardError)?.errorDescription?.contains("x.npy") ?? false)
        }
        // Overwriting an existing shard replaces it atomically and leaves no temporary file.
        let shard = dir + "/a.bin"
        try TokenShard.write([1, 2, 3], to: shard, format: .bin)
        try TokenShard.write([4, 5], to: shard, format: .bin)
        XCTAssertEqual(try TokenShard.read(path: shard), [4, 5])
        XCTAssertEqual(DataTestSupport.temporaryFiles(in: dir), [])
    }
}
