// HellaSwag: scores against build-nanogpt's hellaswag.py method run with transformers
// (Tests/reference/hellaswag_reference.py), llm.c's .bin reader, malformed inputs, truncation,
// the CLI and --download against a local HTTP server.
import Foundation
import XCTest
@testable import GPT2

final class HellaSwagTests: XCTestCase {
    static let dir = TestPaths.fixtures.appendingPathComponent("hellaswag")
    static var jsonl: String { dir.appendingPathComponent("hellaswag_20.jsonl").path }
    static var bin: String { dir.appendingPathComponent("hellaswag_20.bin").path }
    static var model: String { dir.appendingPathComponent("model").path }

    struct Expected: Decodable {
        struct Example: Decodable {
            var label: Int, pred: Int, pred_norm: Int
            var sum_losses: [Double], mean_losses: [Double]
        }
        var num_total: Int, num_correct: Int, num_correct_norm: Int
        var examples: [Example]
    }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
    }

    func testScoresMatchHellaswagPy() throws {
        let want = try Self.expected()
        let gpt = try loadModel(path: Self.model)
        let examples = try HellaSwag.load(path: Self.jsonl)
        XCTAssertEqual(examples.count, 20)
        try HellaSwag.validate(examples, vocabSize: gpt.config.vocabSize)
        // Two "ranks" cover the 20 examples once: rank 0 packs several examples per forward,
        // rank 1 runs one example (4 rows) per forward, as hellaswag.py does.
        var calls = 0
        let r0 = try evaluateHellaSwag(engine: gpt, examples: examples, rank: 0, worldSize: 2) { _ in calls += 1 }
        let r1 = try evaluateHellaSwag(engine: gpt, examples: examples, rank: 1, worldSize: 2, maxTokensPerForward: 1)
        XCTAssertEqual(r0.total, 10)
        XCTAssertEqual(r1.total, 10)
        XCTAssertLessThan(calls, 10, "rank 0 should pack several examples per forward")
        XCTAssertEqual(r0.predictions.map(\.index), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
        XCTAssertEqual(r0.total + r1.total, want.num_total)
        XCTAssertEqual(r0.correct + r1.correct, want.num_correct)
        XCTAssertEqual(r0.correctNorm + r1.correctNorm, want.num_correct_norm)
        var worst = 0.0
        for p in (r0.predictions + r1.predictions) {
            let e = want.examples[p.index]
            XCTAssertEqual(p.label, e.label)
            XCTAssertEqual(p.pred, e.pred, "example \(p.index): pred (sum)")
            XCTAssertEqual(p.predNorm, e.pred_norm, "example \(p.index): pred_norm (mean)")
            for k in 0..<4 {
                worst = max(worst, abs(p.meanLosses[k] - e.mean_losses[k]))
                XCTAssertEqual(p.meanLosses[k], e.mean_losses[k], accuracy: 1e-4, "example \(p.index) ending \(k) mean loss")
                XCTAssertEqual(p.sumLosses[k], e.sum_losses[k], accuracy: 1e-4 * abs(e.sum_losses[k]) / e.mean_losses[k] + 1e-4,
                               "example \(p.index) ending \(k) summed loss")
            }
        }
        print("hellaswag: largest mean-loss difference from PyTorch \(worst)")
    }

    func testBinFileMatchesJSONL() throws {
        // hellaswag_20.bin was written by the reference script with llm.c's write_evalfile and
        // tiktoken, so equal tokens also check our tokenizer on these sentences.
        let fromJSON = try HellaSwag.load(path: Self.jsonl)
        let fromBin = try HellaSwag.load(path: Self.bin)
        XCTAssertEqual(fromBin, fromJSON)
        XCTAssertEqual(try HellaSwag.load(path: Self.bin, limit: 3), Array(fromJSON.prefix(3)))
        XCTAssertEqual(try HellaSwag.load(path: Self.jsonl, limit: 3), Array(fromJSON.prefix(3)))
        // Our writer produces the same bytes as llm.c's.
        let out = try TestPaths.temporaryDirectory().appendingPathComponent("h.bin").path
        try HellaSwag.writeBin(fromJSON, to: out)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), try Data(contentsOf: URL(fileURLWithPath: Self.bin)))
    }

    func testMalformedJSONLNamesFileAndLine() throws {
        let dir = try TestPaths.temporaryDirectory()
        let good = #"{"ctx": "A man sits.", "endings": ["a", "b", "c", "d"], "label": 1}"#
        let cases: [(String, String)] = [
            ("not json", "line 2: not a JSON object"),
            ("[1, 2]", "line 2: not a JSON object"),
            (#"{"ctx": "x", "label": 0}"#, "line 2: missing field 'endings'"),
            (#"{"ctx": "x", "endings": ["a", "b", "c", "d"]}"#, "line 2: missing field 'label'"),
            (#"{"ctx": "x", "endings": ["a", "b", "c", "d"], "label": "2"}"#, "line 2: field 'label' has the wrong type"),
            (#"{"ctx": "x", "endings": ["a", "b", 3, "d"], "label": 2}"#, "line 2: field 'endings.[2]' has the wrong type"),
            (#"{"ctx": "x", "endings": ["a", "b", "c"], "label": 0}"#, "line 2: 3 endings (expected 4)"),
            (#"{"ctx": "x", "endings": ["a", "b", "c", "d"], "label": 4}"#, "line 2: label 4 outside 0..<4"),
        ]
        for (i, (line, message)) in cases.enumerated() {
            let path = dir.appendingPathComponent("bad\(i).jsonl").path
            try Data((good + "\n" + line + "\n").utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try HellaSwag.load(path: path)) { e in
                XCTAssertEqual(e.localizedDescription, "'\(path)' \(message)")
            }
        }
        let empty = dir.appendingPathComponent("empty.jsonl").path
        try Data("\n\n".utf8).write(to: URL(fileURLWithPath: empty))
        XCTAssertThrowsError(try HellaSwag.load(path: empty)) { XCTAssertEqual($0 as? HellaSwagError, .empty(path: empty)) }
        XCTAssertThrowsError(try HellaSwag.load(path: dir.path + "/missing.jsonl")) { e in
            XCTAssertTrue(e.localizedDescription.hasPrefix("cannot read HellaSwag file '\(dir.path)/missing.jsonl'"), e.localizedDescription)
        }
        // Tokens outside a small model's vocabulary are refused before scoring.
        let ex = try HellaSwag.load(path: Self.jsonl, limit: 1)
        XCTAssertThrowsError(try HellaSwag.validate(ex, vocabSize: 96)) { e in
            XCTAssertTrue(e.localizedDescription.contains("outside the model's vocabulary of 96"), e.localizedDescription)
        }
    }

    func testMalformedBinNamesFileAndExample() throws {
        let dir = try TestPaths.temporaryDirectory()
        let good = try Data(contentsOf: URL(fileURLWithPath: Self.bin))
        func expectError(_ name: String, _ mutate: (inout [UInt8]) -> Void, _ message: String, line: UInt = #line) throws {
            var bytes = [UInt8](good)
            mutate(&bytes)
            let path = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try HellaSwag.parseBin(Data(bytes), path: path), line: line) { e in
                XCTAssertEqual(e.localizedDescription, "'\(path)'" + (message.hasPrefix(":") ? "" : " ") + message, line: line)
            }
        }
        func put16(_ b: inout [UInt8], _ index: Int, _ v: UInt16) { b[1024 + 2 * index] = UInt8(v & 0xff); b[1024 + 2 * index + 1] = UInt8(v >> 8) }
        func put32(_ b: inout [UInt8], _ index: Int, _ v: Int32) { withUnsafeBytes(of: v.littleEndian) { for k in 0..<4 { b[4 * index + k] = $0[k] } } }
        try expectError("magic.bin", { put32(&$0, 0, 20240520) }, ": bad magic 20240520 (expected 20240522); not an llm.c HellaSwag file")
        try expectError("version.bin", { put32(&$0, 1, 2) }, ": version 2 is not supported (expected 1: uint16 GPT-2 tokens)")
        try expectError("short.bin", { $0 = Array($0.prefix(100)) }, ": 100 bytes, shorter than the 1024-byte header")
        try expectError("delim.bin", { put16(&$0, 0, 7) }, "example 0: found 7 where the <START_EXAMPLE> delimiter 65535 should be")
        try expectError("ncomp.bin", { put16(&$0, 4, 5) }, "example 0: 5 completions (expected 4)")
        try expectError("label.bin", { put16(&$0, 3, 4) }, "example 0: label 4 outside 0..<4")
        try expectError("size.bin", { put16(&$0, 1, 10) }, "example 0: holds \(Int(good[1026]) + 256 * Int(good[1027])) bytes but its size field says 10")
        try expectError("truncated.bin", { $0 = Array($0.dropLast(6)) }, "example 19: file ends inside the completion 3 (\(try lastCompletionLength()) tokens)")
        try expectError("count.bin", { put32(&$0, 2, 21) }, "example 20: file ends inside the example (reading the delimiter); the header promises 21 examples")
        try expectError("extra.bin", { put32(&$0, 2, 19) }, ": \(try lastExampleSize() / 2) uint16 values after the 19 examples the header announces")
    }

    private func lastCompletionLength() throws -> Int { try HellaSwag.load(path: Self.bin)[19].endings[3].count }
    private func lastExampleSize() throws -> Int {
        let e = try HellaSwag.load(path: Self.bin)[19]
        return 2 * (6 + e.context.count + e.endings.reduce(0) { $0 + 1 + $1.count })
    }

    func testRowsLongerThanTheContextAreTruncatedFromTheLeft() throws {
        // Row of 12 tokens, context 8: the last 9 tokens stay, the first 3 context tokens go.
        let r = HellaSwag.render(context: Array(0..<10), ending: [10, 11], maxSeqLen: 8)
        XCTAssertEqual(Array(r.tokens), Array(3..<12))
        XCTAssertEqual(r.scoreFrom, 7)          // tokens[7...] = 10, 11
        // An ending longer than the context: its first tokens become context, at least one is scored.
        let long = HellaSwag.render(context: [1, 2], ending: Array(100..<120), maxSeqLen: 8)
        XCTAssertEqual(Array(long.tokens), Array(111..<120))
        XCTAssertEqual(long.scoreFrom, 1)
        // Scoring a long example on a short-context model equals scoring the truncated example.
        let model = GPT2(config: GPT2Config(maxSeqLen: 8, vocabSize: 96, numLayers: 1, numHeads: 2, channels: 16))
        model.initializeRandom(seed: 3)
        let ex = HellaSwagExample(index: 0, label: 2, context: (0..<10).map { Int32($0 * 7 % 96) },
                                  endings: [[1, 2], [3], [4, 5, 6], [7, 8]])
        let got = try evaluateHellaSwag(engine: model, examples: [ex]).predictions[0]
        let bigger = GPT2(config: GPT2Config(maxSeqLen: 16, vocabSize: 96, numLayers: 1, numHeads: 2, channels: 16))
        bigger.initializeRandom(seed: 3)
        // Same weights; wpe rows 0..<8 are what the small model uses.
        let small = model.params, big = bigger.params
        for name in ParameterName.allCases where name != .wpe {
            big.pointer(name).update(from: small.pointer(name), count: small.count(name))
        }
        big.pointer(.wpe).update(from: small.pointer(.wpe), count: small.count(.wpe))
        for (k, e) in ex.endings.enumerated() {
            let row = HellaSwag.render(context: ex.context, ending: e, maxSeqLen: 8)
            let toks = Array(row.tokens)
            let truncated = HellaSwagExample(index: 0, label: 0, context: Array(toks[..<row.scoreFrom]), endings: [Array(toks[row.scoreFrom...])])
            let want = try evaluateHellaSwag(engine: bigger, examples: [truncated]).predictions[0]
            XCTAssertEqual(got.meanLosses[k], want.meanLosses[0], accuracy: 1e-5, "ending \(k)")
        }
    }

    func testCommandLine() throws {
        let want = try Self.expected()
        let r = try runGPT(["eval", "hellaswag", "--model", Self.model, "--data", Self.bin, "--limit", "4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let first4 = want.examples.prefix(4)
        let acc = first4.filter { $0.pred == $0.label }.count, norm = first4.filter { $0.pred_norm == $0.label }.count
        XCTAssertEqual(r.text, """
            examples 4
            acc \(String(format: "%.4f", Double(acc) / 4)) (\(acc)/4)
            acc_norm \(String(format: "%.4f", Double(norm) / 4)) (\(norm)/4)

            """)
        XCTAssertTrue(r.stderr.contains("scored 4 examples in "), r.stderr)
        let bad = try runGPT(["eval", "hellaswag", "--model", Self.model])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("give --model and --data, or --download DIR"), bad.stderr)
    }

    func testDownloadFromLocalServer() throws {
        guard let python = referencePython(importing: ["http.server"]) else { throw XCTSkip("no python3 for the local HTTP server") }
        let served = try TestPaths.temporaryDirectory()
        try FileManager.default.copyItem(atPath: Self.jsonl, toPath: served.appendingPathComponent("hellaswag_val.jsonl").path)
        try Data("<html>not found</html>\n".utf8).write(to: served.appendingPathComponent("page.html"))
        let server = Process()
        server.executableURL = URL(fileURLWithPath: python)
        server.currentDirectoryURL = served
        server.arguments = ["-c", """
            import http.server, sys
            class Quiet(http.server.SimpleHTTPRequestHandler):
                def log_message(self, *a): pass
            s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
            print(s.server_address[1], flush=True)
            s.serve_forever()
            """]
        let out = Pipe()
        server.standardOutput = out
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        var portText = Data()
        while !portText.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            portText += chunk
        }
        guard let port = Int(String(decoding: portText, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return XCTFail("the test server did not report a port")
        }
        let base = "http://127.0.0.1:\(port)/"
        let dest = try TestPaths.temporaryDirectory().appendingPathComponent("hs")

        let ok = try runGPT(["eval", "hellaswag", "--download", dest.path, "--url", base + "hellaswag_val.jsonl"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let file = dest.appendingPathComponent("hellaswag_val.jsonl")
        XCTAssertEqual(try Data(contentsOf: file), try Data(contentsOf: URL(fileURLWithPath: Self.jsonl)))
        XCTAssertEqual(ok.text, "downloaded \(base)hellaswag_val.jsonl to \(file.path)\n")

        let missing = try runGPT(["eval", "hellaswag", "--download", dest.path, "--url", base + "nothing.jsonl"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("download of \(base)nothing.jsonl failed: "), missing.stderr)
        let html = try runGPT(["eval", "hellaswag", "--download", dest.path, "--url", base + "page.html"])
        XCTAssertNotEqual(html.status, 0)
        XCTAssertTrue(html.stderr.contains("the response is not HellaSwag jsonl"), html.stderr)
        // Failures leave nothing behind; the earlier download is untouched.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dest.path), ["hellaswag_val.jsonl"])
    }
}
