// DocumentReader: text / JSONL / directory / stdin inputs, pieces cut at safe boundaries (encoding
// them separately gives the ids of the whole document), UTF-8 and JSONL errors with file and position.
import Foundation
import XCTest
@testable import GPT2

final class DataDocumentTests: XCTestCase {
    private func readAll(_ inputs: [String], pieceBytes: Int = 1 << 20, stdinFormat: InputFormat = .text) throws -> [DocumentPiece] {
        let reader = try DocumentReader(inputs: inputs, stdinFormat: stdinFormat, pieceBytes: pieceBytes)
        var pieces: [DocumentPiece] = []
        while let p = try reader.next() { pieces.append(p) }
        return pieces
    }

    /// Documents as byte arrays (pieces joined).
    private func documents(_ pieces: [DocumentPiece]) -> [[UInt8]] {
        var docs: [[UInt8]] = []
        for p in pieces {
            if p.startsDocument { docs.append(p.bytes) } else { docs[docs.count - 1] += p.bytes }
        }
        return docs
    }

    /// Text that exercises the pre-tokenizer: contractions, runs of spaces and newlines, digits, tabs,
    /// CRLF, non-ASCII letters and whitespace (U+00A0, U+3000), emoji, and the special-token literal.
    static let trickyText: String = {
        let shakespeare = DatasetPreparer.shakespeareSplit().val.prefix(6000)
        var s = String(decoding: shakespeare, as: UTF8.self)
        s += "\nI'm sure you'll   say \"don't\"\n\n\n  indented\tTab 12345 678.9 x\r\nCRLF line\r\n"
        s += "café naïve Ünïcödé 中文字符 テスト a\u{00A0}b c\u{3000}d 🙂🙂 e  \u{00A0} f <|endoftext|> g\n"
        s += String(repeating: "word ", count: 50) + "\n" + String(repeating: "x", count: 300) + " end.\n\n"
        return s
    }()

    func testPiecesEncodeLikeTheWholeDocument() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let path = dir + "/doc.txt"
        try DataTestSupport.write(Self.trickyText, to: path)
        let tokenizer = GPT2Tokenizer.gpt2
        let whole = tokenizer.encode(Self.trickyText)
        for pieceBytes in [16, 37, 64, 1000, 1 << 20] {
            let pieces = try readAll([path], pieceBytes: pieceBytes)
            XCTAssertEqual(documents(pieces), [Array(Self.trickyText.utf8)], "pieceBytes \(pieceBytes)")
            XCTAssertEqual(pieces.filter(\.startsDocument).count, 1)
            if pieceBytes < 1000 { XCTAssertGreaterThan(pieces.count, 10) }
            var ids: [Int32] = []
            for p in pieces { p.bytes.withUnsafeBufferPointer { tokenizer.encode(utf8: $0, into: &ids) } }
            XCTAssertEqual(ids, whole, "pieceBytes \(pieceBytes)")
        }
    }

    /// Text with no safe boundary is still read in bounded pieces, cut at character boundaries.
    func testTextWithoutSafeBoundaries() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let path = dir + "/unbroken.txt"
        let text = String(repeating: "é中", count: 1000)  // 5000 bytes, no ASCII at all
        try DataTestSupport.write(text, to: path)
        let pieces = try readAll([path], pieceBytes: 16)  // at most 64 × 16 bytes buffered
        XCTAssertGreaterThanOrEqual(pieces.count, 4)
        for p in pieces {
            XCTAssertLessThanOrEqual(p.bytes.count, 64 * 16 + 16)
            XCTAssertNotNil(String(validating: p.bytes, as: UTF8.self))
        }
        XCTAssertEqual(documents(pieces), [Array(text.utf8)])
    }

    func testSafeCutRule() {
        func cut(_ s: String, _ target: Int) -> Int? {
            Array(s.utf8).withUnsafeBufferPointer { PieceSplitter.cut($0, target: target) }
        }
        XCTAssertEqual(cut("ab cd", 2), 2)  // before the space
        XCTAssertEqual(cut("ab\ncd", 3), 3)  // after the newline
        XCTAssertNil(cut("ab  cd", 3))  // double space: the space run joins
        XCTAssertNil(cut("ab\n\ncd", 3))
        XCTAssertNil(cut("ab \ncd", 3))
        XCTAssertNil(cut("é éé", 2))  // non-ASCII neighbours are not trusted
        XCTAssertNil(cut("abcdef", 3))
        // The last safe cut at or before the target is preferred; else the first after it.
        XCTAssertEqual(cut("aa bb cc dd", 7), 5)
        XCTAssertEqual(cut("aaaaaaaa bb", 4), 8)
    }

    func testUTF8Validator() {
        func check(_ b: [UInt8]) -> UTF8Validator.Result { b.withUnsafeBufferPointer { UTF8Validator.check($0) } }
        XCTAssertEqual(check(Array("héllo 中文 🙂 plain ascii text".utf8)), .valid)
        XCTAssertEqual(check([0x61, 0xC0, 0x80]), .invalid(at: 1))  // overlong
        XCTAssertEqual(check([0x61, 0x62, 0xED, 0xA0, 0x80]), .invalid(at: 2))  // surrogate
        XCTAssertEqual(check([0xF4, 0x90, 0x80, 0x80]), .invalid(at: 0))  // > U+10FFFF
        XCTAssertEqual(check([0xF5]), .invalid(at: 0))
        XCTAssertEqual(check([0xE4, 0x41, 0x41]), .invalid(at: 0))  // bad continuation
        XCTAssertEqual(check([0x61, 0xF0, 0x9F, 0x99]), .incomplete(at: 1))  // emoji cut short
        XCTAssertEqual(check(Array(repeating: 0x61, count: 20) + [0xFF]), .invalid(at: 20))
    }

    func testInvalidUTF8ReportsFileAndOffset() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let path = dir + "/bad.txt"
        // Multi-byte characters straddle many block boundaries before the bad byte at offset 10_001.
        var bytes = Array(String(repeating: "é", count: 5000).utf8) + [0x20]
        bytes += [0xFF] + Array("tail".utf8)
        try DataTestSupport.write(bytes, to: path)
        DataTestSupport.assertThrows(DocumentError.invalidUTF8(path: path, offset: 10_001, line: nil), naming: path) {
            _ = try readAll([path], pieceBytes: 64)
        }
        // A character cut short by the end of the file.
        try DataTestSupport.write(Array("abc ".utf8) + [0xE4, 0xB8], to: path)
        DataTestSupport.assertThrows(DocumentError.invalidUTF8(path: path, offset: 4, line: nil), naming: path) {
            _ = try readAll([path], pieceBytes: 16)
        }
    }

    func testJSONL() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let path = dir + "/docs.jsonl"
        let long = String(repeating: "lorem ipsum ", count: 40)
        try DataTestSupport.write("""
        {"text": "first doc", "id": 1, "meta": {"x": [1, 2]}}

        {"id": 2, "text": "second\\ndoc \\u00e9 \\ud83d\\ude42"}
        {"text": ""}
        {"text": "\(long)"}
        """, to: path)  // no final newline
        let pieces = try readAll([path], pieceBytes: 64)
        let docs = documents(pieces).map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(docs, ["first doc", "second\ndoc é 🙂", "", long])
        XCTAssertGreaterThan(pieces.count, 5)  // the long text is cut into pieces

        // .json is read as JSONL too.
        try FileManager.default.moveItem(atPath: path, toPath: dir + "/docs.json")
        XCTAssertEqual(documents(try readAll([dir + "/docs.json"])).count, 4)
    }

    func testBadJSONLReportsLineNumber() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let path = dir + "/bad.jsonl"
        let cases: [(String, String)] = [
            ("[1, 2]", "not a JSON object"),
            ("{\"text\": 5}", "\"text\" is not a string"),
            ("{\"txt\": \"a\"}", "no \"text\" field"),
            ("{\"text\": \"unterminated", "invalid JSON"),
            ("\"just a string\"", "not a JSON object"),
        ]
        for (line, reason) in cases {
            try DataTestSupport.write("{\"text\": \"ok\"}\n\n{\"text\": \"ok\"}\n\(line)\n{\"text\": \"ok\"}\n", to: path)
            DataTestSupport.assertThrows(DocumentError.badJSONLine(path: path, line: 4, reason: reason), naming: path) {
                _ = try readAll([path])
            }
        }
        // Invalid UTF-8 inside a JSONL line: line number and file offset.
        try DataTestSupport.write(Array("{\"text\": \"ok\"}\n{\"text\": \"a".utf8) + [0xC3, 0x28] + Array("\"}\n".utf8), to: path)
        DataTestSupport.assertThrows(DocumentError.invalidUTF8(path: path, offset: 26, line: 2), naming: path) {
            _ = try readAll([path])
        }
    }

    func testMissingAndUnsupportedInputs() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let missing = dir + "/nope.txt"
        DataTestSupport.assertThrows(DocumentError.cannotOpen(path: missing, reason: "No such file or directory"), naming: missing) {
            _ = try DocumentReader(inputs: [missing])
        }
        DataTestSupport.assertThrows(DocumentError.noInputs, naming: nil) { _ = try DocumentReader(inputs: []) }
        let gz = dir + "/data.jsonl.gz"
        try DataTestSupport.write([0x1F, 0x8B], to: gz)
        XCTAssertThrowsError(try DocumentReader(inputs: [gz])) { error in
            guard case .unsupportedInput(gz, _)? = error as? DocumentError else { return XCTFail("\(error)") }
        }
        let emptyDir = dir + "/empty"
        try FileManager.default.createDirectory(atPath: emptyDir + "/.hidden", withIntermediateDirectories: true)
        try DataTestSupport.write("x", to: emptyDir + "/.hidden/file.txt")
        DataTestSupport.assertThrows(DocumentError.emptyDirectory(path: emptyDir), naming: emptyDir) {
            _ = try DocumentReader(inputs: [emptyDir])
        }
        // A file that disappears between listing and reading.
        let vanishing = dir + "/vanishing.txt"
        try DataTestSupport.write("x", to: vanishing)
        let reader = try DocumentReader(inputs: [vanishing])
        try FileManager.default.removeItem(atPath: vanishing)
        DataTestSupport.assertThrows(DocumentError.cannotOpen(path: vanishing, reason: "No such file or directory"), naming: vanishing) {
            _ = try reader.next()
        }
    }

    func testDirectoriesAreExpandedInPathOrder() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/corpus/b", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/corpus/.git", withIntermediateDirectories: true)
        try DataTestSupport.write("B1", to: dir + "/corpus/b/1.txt")
        try DataTestSupport.write("{\"text\": \"J1\"}\n{\"text\": \"J2\"}\n", to: dir + "/corpus/a.jsonl")
        try DataTestSupport.write("C", to: dir + "/corpus/c.md")
        try DataTestSupport.write("", to: dir + "/corpus/b-empty.txt")
        try DataTestSupport.write("hidden", to: dir + "/corpus/.DS_Store")
        try DataTestSupport.write("git", to: dir + "/corpus/.git/HEAD")
        try fm.createSymbolicLink(atPath: dir + "/corpus/loop", withDestinationPath: dir + "/corpus")
        try fm.createSymbolicLink(atPath: dir + "/corpus/link.txt", withDestinationPath: dir + "/corpus/c.md")

        let sources = try DocumentReader.resolve(inputs: [dir + "/corpus/", dir + "/corpus/c.md"])
        XCTAssertEqual(sources.map { $0.path.replacingOccurrences(of: dir + "/corpus/", with: "") },
                       ["a.jsonl", "b-empty.txt", "b/1.txt", "c.md", "link.txt", "c.md"])
        XCTAssertEqual(sources.map(\.format), [.jsonl, .text, .text, .text, .text, .text])
        let docs = documents(try readAll([dir + "/corpus"])).map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(docs, ["J1", "J2", "", "B1", "C", "C"])
    }

    /// `-` reads standard input: text by default, JSONL when asked.
    func testStandardInput() throws {
        let dir = try DataTestSupport.makeDirectory(self)
        let path = dir + "/stdin.jsonl"
        try DataTestSupport.write("{\"text\": \"a b\"}\n{\"text\": \"c\"}\n", to: path)
        func withStdin<T>(_ body: () throws -> T) throws -> T {
            let saved = dup(0)
            let fd = open(path, O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            dup2(fd, 0)
            close(fd)
            defer { dup2(saved, 0); close(saved) }
            return try body()
        }
        let asText = try withStdin { try readAll(["-"]) }
        XCTAssertEqual(documents(asText), [Array("{\"text\": \"a b\"}\n{\"text\": \"c\"}\n".utf8)])
        let asJSONL = try withStdin { try readAll(["-"], stdinFormat: .jsonl) }
        XCTAssertEqual(documents(asJSONL).map { String(decoding: $0, as: UTF8.self) }, ["a b", "c"])
        XCTAssertEqual(try DocumentReader.resolve(inputs: ["-"]).first?.displayName, "<stdin>")
    }
}
