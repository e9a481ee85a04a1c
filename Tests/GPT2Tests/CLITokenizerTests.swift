// The `gpt encode` / `gpt decode` command-line contract (scripts depend on it).
import Foundation
import XCTest

final class CLITokenizerTests: XCTestCase {
    func testEncodeStdinPrintsSpaceSeparatedIdsAndOneNewline() throws {
        let r = try runGPT(["encode"], stdin: Data("Hello, I'm a language model,".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.text, "15496 11 314 1101 257 3303 2746 11\n")
        let empty = try runGPT(["encode"], stdin: Data())
        XCTAssertEqual(empty.text, "\n")
    }

    func testEncodeFileAllowSpecialAndDecodeRoundTrip() throws {
        let dir = try TestPaths.temporaryDirectory()
        let file = dir.appendingPathComponent("t.txt")
        let text = "a<|endoftext|>b naïve 😀\r\n  end  "
        try Data(text.utf8).write(to: file)
        let plain = try runGPT(["encode", file.path, "--threads", "1"])
        let special = try runGPT(["encode", file.path, "--allow-special"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertFalse(plain.text.split(separator: " ").contains("50256"))
        XCTAssertTrue(special.text.split(separator: " ").contains("50256"))
        for ids in [plain.stdout, special.stdout] {
            let back = try runGPT(["decode"], stdin: ids)
            XCTAssertEqual(back.status, 0, back.stderr)
            XCTAssertEqual(back.text, text)
        }
    }

    func testEncodeRawOutput() throws {
        let dir = try TestPaths.temporaryDirectory()
        let file = dir.appendingPathComponent("t.txt")
        try Data("Hello, I'm".utf8).write(to: file)
        let out16 = dir.appendingPathComponent("ids.u16"), out32 = dir.appendingPathComponent("ids.u32")
        XCTAssertEqual(try runGPT(["encode", file.path, "--output", out16.path, "--format", "u16"]).status, 0)
        XCTAssertEqual(try runGPT(["encode", file.path, "--output", out32.path, "--format", "u32"]).status, 0)
        XCTAssertEqual([UInt8](try Data(contentsOf: out16)), [0x88, 0x3C, 11, 0, 58, 1, 77, 4])  // 15496 11 314 1101
        XCTAssertEqual([UInt8](try Data(contentsOf: out32)), [0x88, 0x3C, 0, 0, 11, 0, 0, 0, 58, 1, 0, 0, 77, 4, 0, 0])
        let empty = dir.appendingPathComponent("empty.txt"), outEmpty = dir.appendingPathComponent("empty.u16")
        try Data().write(to: empty)
        XCTAssertEqual(try runGPT(["encode", empty.path, "--output", outEmpty.path]).status, 0)
        XCTAssertEqual(try Data(contentsOf: outEmpty).count, 0)
    }

    func testBadInputFailsWithOneLineErrorNamingTheFile() throws {
        let missing = try runGPT(["encode", "/nonexistent/x.txt"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/x.txt"), missing.stderr)

        let dir = try TestPaths.temporaryDirectory()
        let bad = dir.appendingPathComponent("bad.txt")
        try Data([0x61, 0x62, 0x20, 0xC3, 0x28, 0x0A]).write(to: bad)
        let r = try runGPT(["encode", bad.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(bad.path) && r.stderr.contains("offset 3"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

        let out = dir.appendingPathComponent("out.u16")
        XCTAssertNotEqual(try runGPT(["encode", bad.path, "--output", out.path]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no partial output under the final name")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }, [])

        let junk = try runGPT(["decode"], stdin: Data("12 abc".utf8))
        XCTAssertNotEqual(junk.status, 0)
        let unknown = try runGPT(["decode"], stdin: Data("99999".utf8))
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("99999"), unknown.stderr)
    }
}
