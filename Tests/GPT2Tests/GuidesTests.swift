// The reference guides in docs/guides run as written: every ```sh {runnable} block runs, in
// order, in a fresh directory per guide with the built `gpt` first on PATH (sh -e: any failing
// command fails the test). A ```text {expected} block right after a runnable block is checked
// against that block's standard output, line by line:
//   a plain line    must equal the output line (trailing spaces ignored)
//   "text..."       the output line must start with "text"
//   "~ anything"    one output line, not checked (values that vary: timings, float noise)
//   "..."           any number of output lines, also none
// Every figure a guide shows (![...](figures/NAME.svg)) must be written by its commands as NAME.svg
// in the working directory; GPT2_UPDATE_GUIDE_FIGURES=1 copies them into docs/guides/figures.
import Foundation
import XCTest

final class GuidesTests: XCTestCase {
    static let guides = ["1-data.md", "2-attention.md", "3-loss.md", "4-transformer.md", "5-training.md", "6-logging.md"]
    static let directory = TestPaths.root.appendingPathComponent("docs/guides")

    struct Block {
        var line: Int
        var script: String
        var expected: [String]?
    }

    enum GuideError: Error, CustomStringConvertible {
        case malformed(String)
        var description: String { if case .malformed(let s) = self { return s }; return "" }
    }

    /// The runnable blocks of a guide with their expected output.
    static func blocks(_ markdown: String, name: String) throws -> [Block] {
        var blocks: [Block] = []
        let lines = markdown.components(separatedBy: "\n")
        var i = 0, blankSinceRunnable = true
        while i < lines.count {
            let line = lines[i]
            guard line.hasPrefix("```") else {
                if !line.trimmingCharacters(in: .whitespaces).isEmpty { blankSinceRunnable = false }
                i += 1
                continue
            }
            let info = line.dropFirst(3).trimmingCharacters(in: .whitespaces)
            let start = i + 1
            var end = start
            while end < lines.count && !lines[end].hasPrefix("```") { end += 1 }
            guard end < lines.count else { throw GuideError.malformed("\(name):\(i + 1): unclosed code block") }
            let body = Array(lines[start..<end])
            if info.contains("{runnable}") {
                blocks.append(Block(line: i + 1, script: body.joined(separator: "\n")))
                blankSinceRunnable = true
            } else if info.contains("{expected}") {
                guard !blocks.isEmpty, blocks[blocks.count - 1].expected == nil, blankSinceRunnable else {
                    throw GuideError.malformed("\(name):\(i + 1): an {expected} block must follow a runnable block directly")
                }
                blocks[blocks.count - 1].expected = body
                blankSinceRunnable = false
            } else {
                blankSinceRunnable = false
            }
            i = end + 1
        }
        return blocks
    }

    /// Whether `output` matches `expected` under the rules in the file header.
    static func matches(_ expected: ArraySlice<String>, _ output: ArraySlice<String>) -> Bool {
        guard let e = expected.first.map(trimmed) else { return output.isEmpty }
        if e == "..." {
            return (0...output.count).contains { matches(expected.dropFirst(), output.dropFirst($0)) }
        }
        guard let o = output.first.map(trimmed) else { return false }
        let ok = e.hasPrefix("~") || (e.hasSuffix("...") ? o.hasPrefix(String(e.dropLast(3))) : o == e)
        return ok && matches(expected.dropFirst(), output.dropFirst())
    }

    private static func trimmed(_ s: String) -> String {
        var s = s
        while s.last == " " || s.last == "\t" || s.last == "\r" { s.removeLast() }
        return s
    }

    /// Runs one guide; returns the seconds it took.
    @discardableResult
    private func run(_ name: String) throws -> Double {
        let products = TestPaths.products.path
        guard FileManager.default.isExecutableFile(atPath: products + "/gpt") else { throw XCTSkip("gpt executable not built in \(products)") }
        let markdown = try String(contentsOf: Self.directory.appendingPathComponent(name), encoding: .utf8)
        let blocks = try Self.blocks(markdown, name: name)
        XCTAssertFalse(blocks.isEmpty, "\(name) has no runnable blocks")
        let work = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let start = Date()
        let env = ["PATH": products + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                   "GPT2_CUDA_AUTO": "0"]   // the guides describe CPU runs
        for block in blocks {
            let quoted = "'" + work.path.replacingOccurrences(of: "'", with: "'\\''") + "'"
            let r = try runProcess("/bin/sh", ["-e", "-c", "cd \(quoted)\n" + block.script], environment: env)
            guard r.status == 0 else {
                XCTFail("\(name):\(block.line): exit status \(r.status)\n\(block.script)\nstderr: \(r.stderr.suffix(2000))\nstdout: \(r.text.suffix(2000))")
                return Date().timeIntervalSince(start)
            }
            if let expected = block.expected {
                var output = r.text.components(separatedBy: "\n")
                if output.last == "" { output.removeLast() }
                XCTAssertTrue(Self.matches(expected[...], output[...]),
                              "\(name):\(block.line): output does not match the guide\n--- expected\n\(expected.joined(separator: "\n"))\n--- got\n\(output.joined(separator: "\n"))")
            }
        }
        // Figures: produced by the guide's own commands.
        let figures = markdown.matches(of: /!\[[^\]]*\]\(figures\/([^)\s]+)\)/).map { String($0.output.1) }
        let update = ProcessInfo.processInfo.environment["GPT2_UPDATE_GUIDE_FIGURES"] == "1"
        for figure in figures {
            let made = work.appendingPathComponent(figure).path
            XCTAssertTrue(FileManager.default.fileExists(atPath: made), "\(name) shows figures/\(figure) but its commands do not write \(figure)")
            let committed = Self.directory.appendingPathComponent("figures/" + figure).path
            if update, FileManager.default.fileExists(atPath: made) {
                try? FileManager.default.createDirectory(atPath: Self.directory.appendingPathComponent("figures").path, withIntermediateDirectories: true)
                try? FileManager.default.removeItem(atPath: committed)
                try FileManager.default.copyItem(atPath: made, toPath: committed)
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: committed), "figures/\(figure) is not committed; run the test with GPT2_UPDATE_GUIDE_FIGURES=1")
        }
        let seconds = Date().timeIntervalSince(start)
        print("guide \(name): \(blocks.count) blocks in \(String(format: "%.1f", seconds)) s")
        return seconds
    }

    func testGuide1Data() throws { try run("1-data.md") }
    func testGuide2Attention() throws { try run("2-attention.md") }
    func testGuide3Loss() throws { try run("3-loss.md") }
    func testGuide4Transformer() throws { try run("4-transformer.md") }
    func testGuide5Training() throws { try run("5-training.md") }
    func testGuide6Logging() throws { try run("6-logging.md") }

    func testEveryGuideIsTestedAndLinkedFromTheReadme() throws {
        let present = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path)
            .filter { $0.hasSuffix(".md") && $0 != "README.md" }.sorted()
        XCTAssertEqual(present, Self.guides, "a guide in docs/guides without a test (or the reverse)")
        let readme = try String(contentsOf: TestPaths.root.appendingPathComponent("README.md"), encoding: .utf8)
        let index = try String(contentsOf: Self.directory.appendingPathComponent("README.md"), encoding: .utf8)
        for g in Self.guides {
            XCTAssertTrue(readme.contains("docs/guides/\(g)"), "README.md does not link docs/guides/\(g)")
            XCTAssertTrue(index.contains("(\(g))"), "docs/guides/README.md does not link \(g)")
        }
    }

    func testExpectedOutputRules() throws {
        func m(_ e: [String], _ o: [String]) -> Bool { Self.matches(e[...], o[...]) }
        XCTAssertTrue(m(["a", "b"], ["a", "b  "]))
        XCTAssertFalse(m(["a", "b"], ["a", "c"]))
        XCTAssertFalse(m(["a"], ["a", "b"]), "every output line must be accounted for")
        XCTAssertTrue(m(["loss 10.8..."], ["loss 10.8249"]))
        XCTAssertFalse(m(["loss 10.8..."], ["loss 9.1"]))
        XCTAssertTrue(m(["~ 12 ms"], ["3 ms"]))
        XCTAssertFalse(m(["~ 12 ms"], []))
        XCTAssertTrue(m(["first", "...", "last"], ["first", "x", "y", "last"]))
        XCTAssertTrue(m(["first", "...", "last"], ["first", "last"]))
        XCTAssertFalse(m(["first", "...", "last"], ["first", "x"]))
        let md = "text\n```sh {runnable}\ngpt x\n```\n\n```text {expected}\nout\n```\n```sh\nnot run\n```\n```sh {runnable}\ngpt y\n```\n"
        let b = try Self.blocks(md, name: "t")
        XCTAssertEqual(b.map(\.script), ["gpt x", "gpt y"])
        XCTAssertEqual(b.map(\.expected), [["out"], nil])
        XCTAssertThrowsError(try Self.blocks("```text {expected}\nx\n```\n", name: "t"))
        XCTAssertThrowsError(try Self.blocks("```sh {runnable}\ngpt\n```\nprose\n```text {expected}\nx\n```\n", name: "t"))
    }
}
