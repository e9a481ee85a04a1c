// The tokenizer against tiktoken: committed reference ids (Tests/reference/tiktoken_reference.py),
// and, when a Python with tiktoken is present, freshly generated random Unicode strings.
import Foundation
import XCTest
@testable import GPT2

final class TokenizerTests: XCTestCase {
    let tok = GPT2Tokenizer.gpt2

    struct Case { var text: String; var ids: [Int32]; var idsSpecial: [Int32]? }

    private func loadCases(_ url: URL) throws -> (encode: [Case], decode: [([Int32], String)]) {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let enc = (json["encode"] as! [[String: Any]]).map {
            Case(text: $0["text"] as! String, ids: ($0["ids"] as! [Int]).map(Int32.init),
                 idsSpecial: ($0["ids_special"] as? [Int])?.map(Int32.init))
        }
        let dec = (json["decode"] as? [[String: Any]] ?? []).map { (($0["ids"] as! [Int]).map(Int32.init), $0["text"] as! String) }
        return (enc, dec)
    }

    func testGolden() throws {
        XCTAssertEqual(tok.encode("Hello, I'm a language model,"), [15496, 11, 314, 1101, 257, 3303, 2746, 11])
        XCTAssertEqual(tok.vocabSize, 50257)
        XCTAssertEqual(tok.endOfTextId, 50256)
    }

    func testCommittedReferenceCases() throws {
        let (cases, decodes) = try loadCases(TestPaths.fixtures.appendingPathComponent("tokenizer/cases.json"))
        XCTAssertGreaterThan(cases.count, 40)
        for c in cases {
            XCTAssertEqual(tok.encode(c.text), c.ids, "encode_ordinary of \(c.text.debugDescription)")
            if let s = c.idsSpecial {
                XCTAssertEqual(tok.encode(c.text, allowSpecial: true), s, "encode(allowed_special=all) of \(c.text.debugDescription)")
            }
            XCTAssertEqual(try tok.decode(c.ids), c.text)
        }
        XCTAssertGreaterThan(decodes.count, 10)
        for (ids, text) in decodes {
            XCTAssertEqual(try tok.decode(ids), text, "decode(errors=replace) of \(ids)")
        }
    }

    func testRandomStringsAgainstTiktoken() throws {
        guard let python = referencePython(importing: ["tiktoken"]) else { throw XCTSkip("no Python with tiktoken") }
        let out = try TestPaths.temporaryDirectory().appendingPathComponent("random.json")
        let seed = Int.random(in: 0..<1_000_000)
        let r = try runProcess(python, [TestPaths.reference.appendingPathComponent("tiktoken_reference.py").path,
                                        "random", "400", String(seed), out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let (cases, _) = try loadCases(out)
        XCTAssertEqual(cases.count, 400)
        var failures = 0
        for c in cases where tok.encode(c.text) != c.ids {
            failures += 1
            if failures <= 3 { XCTFail("seed \(seed): \(c.text.debugDescription) -> \(tok.encode(c.text)) != tiktoken \(c.ids)") }
        }
        XCTAssertEqual(failures, 0, "seed \(seed)")
    }

    func testSpecialTokenIsOrdinaryByDefault() {
        XCTAssertEqual(tok.encode("<|endoftext|>", allowSpecial: true), [50256])
        XCTAssertEqual(tok.encode("<|endoftext|>"), [27, 91, 437, 1659, 5239, 91, 29])
    }

    func testDecodeRejectsUnknownIds() {
        XCTAssertThrowsError(try tok.decode([50257]))
        XCTAssertThrowsError(try tok.decode([-1]))
    }

    func testThreadedEncodingEqualsSingleThreaded() throws {
        let text = try shakespeare()
        text.withUnsafeBufferPointer { b in
            var one: [Int32] = []
            tok.encode(utf8: b, into: &one)
            for threads in [2, 3, 8] {
                XCTAssertEqual(tok.encode(utf8: b, threads: threads), one, "threads \(threads)")
            }
        }
    }

    func testStreamingInSmallBlocksEqualsOneShot() throws {
        let text = Array(try shakespeare().prefix(200_000)) + Array(" tail  \n\n".utf8)
        var one: [Int32] = []
        text.withUnsafeBufferPointer { tok.encode(utf8: $0, into: &one) }
        let url = try TestPaths.temporaryDirectory().appendingPathComponent("in.txt")
        try Data(text).write(to: url)
        for block in [1000, 4099] {
            let fd = open(url.path, O_RDONLY)
            defer { close(fd) }
            var streamed: [Int32] = []
            try tok.encodeStream(fd: fd, path: url.path, threads: 2, blockSize: block) { streamed += $0 }
            XCTAssertEqual(streamed, one, "block \(block)")
        }
    }

    func testInvalidUTF8IsReportedWithOffset() throws {
        let url = try TestPaths.temporaryDirectory().appendingPathComponent("bad.txt")
        var bytes = Array(String(repeating: "word ", count: 3000).utf8)
        bytes[12_345] = 0xFF
        try Data(bytes).write(to: url)
        let fd = open(url.path, O_RDONLY)
        defer { close(fd) }
        XCTAssertThrowsError(try tok.encodeStream(fd: fd, path: url.path, blockSize: 1024) { _ in }) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidUTF8(path: url.path, offset: 12_345))
        }
    }

    func testUTF8Validation() {
        func check(_ b: [UInt8]) -> UTF8Validator.Result { b.withUnsafeBufferPointer { UTF8Validator.check($0) } }
        XCTAssertEqual(check(Array("héllo €😀".utf8)), .valid)
        XCTAssertEqual(check([0x61, 0xC0, 0xAF]), .invalid(at: 1))          // overlong
        XCTAssertEqual(check([0x61, 0x62, 0xED, 0xA0, 0x80]), .invalid(at: 2))  // surrogate
        XCTAssertEqual(check([0xF4, 0x90, 0x80, 0x80]), .invalid(at: 0))    // > U+10FFFF
        XCTAssertEqual(check([0x61, 0xE2, 0x82]), .incomplete(at: 1))       // truncated
        XCTAssertEqual(check(Array(repeating: 0x41, count: 17) + [0x80]), .invalid(at: 17))
    }

    func testLoadsAllFileFormats() throws {
        let res = TestPaths.root.appendingPathComponent("Sources/GPT2Resources")
        let dir = try TestPaths.temporaryDirectory()
        // HF names, same formats
        try FileManager.default.copyItem(at: res.appendingPathComponent("encoder.json"), to: dir.appendingPathComponent("vocab.json"))
        try FileManager.default.copyItem(at: res.appendingPathComponent("vocab.bpe"), to: dir.appendingPathComponent("merges.txt"))
        let sample = "Hello, I'm a language model, naïve café 😀 <|endoftext|>"
        let want = tok.encode(sample, allowSpecial: true)
        XCTAssertEqual(try GPT2Tokenizer(directory: dir.path).encode(sample, allowSpecial: true), want)
        XCTAssertEqual(try GPT2Tokenizer(directory: res.path).encode(sample, allowSpecial: true), want)
        let tiktokenFile = TestPaths.shared.appendingPathComponent("data/gpt2-tokenizer/gpt2.tiktoken")
        if FileManager.default.fileExists(atPath: tiktokenFile.path) {
            let t = try GPT2Tokenizer(tiktokenFile: tiktokenFile.path)
            XCTAssertEqual(t.encode(sample, allowSpecial: true), want)
            XCTAssertEqual(t.vocabSize, 50257)
        }
        XCTAssertThrowsError(try GPT2Tokenizer(directory: dir.appendingPathComponent("nope").path))
        let empty = try TestPaths.temporaryDirectory()
        XCTAssertThrowsError(try GPT2Tokenizer(directory: empty.path)) { error in
            XCTAssertEqual(error as? TokenizerError, .missingFiles(directory: empty.path))
        }
        // a corrupt merges file names the line
        try "#version: 0.2\nĠ t\nbroken-line\n".write(to: empty.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: res.appendingPathComponent("encoder.json"), to: empty.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try GPT2Tokenizer(directory: empty.path)) { error in
            XCTAssertTrue("\(error.localizedDescription)".contains("line 3"), "\(error.localizedDescription)")
        }
    }

    private func shakespeare() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: TestPaths.root.appendingPathComponent("Sources/GPT2Resources/shakespeare.txt")))
    }
}
