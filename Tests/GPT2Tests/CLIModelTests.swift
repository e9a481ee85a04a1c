// `gpt sample`, `gpt eval loss`, `gpt prepare`, `gpt train`, `gpt plot` end to end, against
// transformers' outputs (Tests/reference/generate_reference.py) where there is a reference.
import Foundation
import XCTest
@testable import GPT2

final class CLIModelTests: XCTestCase {
    static let hubModel = TestPaths.fixtures.appendingPathComponent("model/hub_v50257_bf16").path

    func reference() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("generate/reference.json"))) as! [String: Any]
    }

    func testGreedySampleEqualsTransformersGenerate() throws {
        let ref = try reference()
        let want = (ref["greedy_ids"] as! [Int]).map(String.init).joined(separator: " ")
        let r = try runGPT(["sample", "--model", Self.hubModel, "--prompt", ref["prompt"] as! String, "--temperature", "0",
                            "--num-samples", "3", "--max-tokens", String((ref["greedy_ids"] as! [Int]).count), "--ids"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.text, String(repeating: want + "\n", count: 3))
    }

    func testSamplingIsSeededAndPrintsText() throws {
        let a = try runGPT(["sample", "--model", Self.hubModel, "--num-samples", "2", "--max-tokens", "5", "--seed", "7", "--ids"])
        let b = try runGPT(["sample", "--model", Self.hubModel, "--num-samples", "2", "--max-tokens", "5", "--seed", "7", "--ids"])
        let c = try runGPT(["sample", "--model", Self.hubModel, "--num-samples", "2", "--max-tokens", "5", "--seed", "8", "--ids"])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.text, b.text)
        XCTAssertNotEqual(a.text, c.text)
        let lines = a.text.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        for l in lines { XCTAssertEqual(l.split(separator: " ").count, 5); XCTAssertTrue(l.split(separator: " ").allSatisfy { Int($0)! < 50257 }) }
        let text = try runGPT(["sample", "--model", Self.hubModel, "--num-samples", "2", "--max-tokens", "5"])
        XCTAssertTrue(text.text.hasPrefix("> Hello, I'm a language model,"), text.text)
    }

    func testEvalLossMatchesTransformers() throws {
        let ref = try reference()
        let file = try TestPaths.temporaryDirectory().appendingPathComponent("text.txt")
        try Data((ref["text"] as! String).utf8).write(to: file)
        let r = try runGPT(["eval", "loss", "--model", Self.hubModel, "--text", file.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = r.text.split(separator: "\n").last!
        XCTAssertTrue(line.hasPrefix("loss "), r.text)
        let loss = Double(line.dropFirst(5))!
        let want = ref["loss"] as! Double
        XCTAssertLessThan(abs(loss - want) / want, 1e-4, "ours \(loss) vs transformers \(want)")
    }

    func testModelErrorsAreOneLine() throws {
        let r = try runGPT(["sample", "--model", "/nonexistent/model"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("/nonexistent/model"), r.stderr)
        let junk = try TestPaths.temporaryDirectory().appendingPathComponent("junk.bin")
        try Data(repeating: 7, count: 2000).write(to: junk)
        let j = try runGPT(["eval", "loss", "--model", junk.path, "--text", junk.path])
        XCTAssertNotEqual(j.status, 0)
        XCTAssertTrue(j.stderr.contains(junk.path), j.stderr)
    }

    // MARK: - prepare / train / plot

    func testPrepareShakespeareAndTrainTinyModelEndToEnd() throws {
        let dir = try TestPaths.temporaryDirectory()
        let data = dir.appendingPathComponent("data").path, run = dir.appendingPathComponent("run").path
        let p = try runGPT(["prepare", "--shakespeare", "--output", data, "--format", "bin"])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(try TokenShard.list(directory: data, split: .train).count, 1)
        XCTAssertEqual(try TokenShard.list(directory: data, split: .val).count, 1)

        let args = ["train", "--data", data, "--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "2", "-T", "16",
                    "--total-batch", "64", "--max-steps", "6", "--val-every", "3", "--val-steps", "2", "--sample-every", "5",
                    "--warmup-steps", "2", "--out", run]
        let t = try runGPT(args)
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertTrue(t.text.contains("step     5 | loss:"), t.text)
        XCTAssertTrue(t.text.contains("sample 0:"), t.text)
        let log = try String(contentsOfFile: run + "/log.txt", encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").filter { $0.contains(" train ") }.count, 6)
        XCTAssertEqual(log.split(separator: "\n").filter { $0.contains(" val ") }.count, 3)   // steps 0, 3, 5
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.count, 9)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(metrics[1].utf8)) as? [String: Any])
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/loss.svg"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/checkpoint_000006.safetensors"))

        // the run continues bit-identically: 6 straight steps vs 3 + resume to 6
        let run2 = dir.appendingPathComponent("run2").path
        var a2 = args; a2[a2.firstIndex(of: run)!] = run2
        a2[a2.firstIndex(of: "6")!] = "3"
        XCTAssertEqual(try runGPT(a2).status, 0)
        var a3 = args; a3[a3.firstIndex(of: run)!] = run2
        a3.append("--resume")
        let resumed = try runGPT(a3)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        func trainLines(_ path: String) throws -> [Substring] {
            try String(contentsOfFile: path + "/log.txt", encoding: .utf8).split(separator: "\n").filter { $0.contains(" train ") }
        }
        XCTAssertEqual(try trainLines(run2), try trainLines(run))

        // gpt plot writes a well-formed SVG
        let svg = dir.appendingPathComponent("plot.svg").path
        XCTAssertEqual(try runGPT(["plot", run, "-o", svg]).status, 0)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("data-series=\"val loss\""))

        // the trained checkpoint is a model for sample / eval
        let ck = run + "/checkpoint_000006.safetensors"
        XCTAssertEqual(try runGPT(["sample", "--model", ck, "--max-tokens", "4", "--num-samples", "1"]).status, 0)
    }

    func testTrainingBadInputFailsBeforeAnyWork() throws {
        let dir = try TestPaths.temporaryDirectory()
        let empty = dir.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let tiny = ["--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "2", "-T", "16", "--total-batch", "32"]
        let e = try runGPT(["train", "--data", empty, "--out", dir.appendingPathComponent("r1").path] + tiny)
        XCTAssertNotEqual(e.status, 0)
        XCTAssertTrue(e.stderr.contains(empty) && e.stderr.contains("gpt prepare"), e.stderr)

        let mixed = try TrainingTests.makeShards(tokens: 2000, vocab: 50257)
        try TokenShard.write([1, 2, 3, 4], to: mixed + "/t_train_000002.bin", format: .bin)
        let m = try runGPT(["train", "--data", mixed, "--out", dir.appendingPathComponent("r2").path] + tiny)
        XCTAssertNotEqual(m.status, 0)
        XCTAssertTrue(m.stderr.contains("mixes"), m.stderr)

        let data = try TrainingTests.makeShards(tokens: 2000, vocab: 50257)
        let longT = try runGPT(["train", "--data", data, "--out", dir.appendingPathComponent("r3").path,
                                "--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "1", "-T", "64", "--total-batch", "64"])
        XCTAssertNotEqual(longT.status, 0)
        XCTAssertTrue(longT.stderr.contains("context"), longT.stderr)

        let indivisible = try runGPT(["train", "--data", data, "--out", dir.appendingPathComponent("r4").path,
                                      "--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "2", "-T", "16", "--total-batch", "40"])
        XCTAssertNotEqual(indivisible.status, 0)
        XCTAssertTrue(indivisible.stderr.contains("divisible"), indivisible.stderr)

        // a checkpoint of one shape, resumed with another
        let run = dir.appendingPathComponent("r5").path
        XCTAssertEqual(try runGPT(["train", "--data", data, "--out", run, "--max-steps", "1"] + tiny).status, 0)
        let other = try runGPT(["train", "--data", data, "--out", run, "--resume", "--layers", "2", "--heads", "2", "--embd", "64",
                                "-B", "2", "-T", "16", "--total-batch", "32"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("another shape"), other.stderr)
        // and a run directory with checkpoints is not overwritten without --resume
        let again = try runGPT(["train", "--data", data, "--out", run, "--max-steps", "1"] + tiny)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--resume"), again.stderr)
    }

    func testInterruptWritesACheckpointAndExitsZero() throws {
        let dir = try TestPaths.temporaryDirectory()
        let data = try TrainingTests.makeShards(tokens: 20000, vocab: 50257)
        let run = dir.appendingPathComponent("run").path
        let exe = TestPaths.products.appendingPathComponent("gpt").path
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw XCTSkip("gpt not built") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["train", "--data", data, "--out", run, "--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32",
                       "-B", "2", "-T", "16", "--total-batch", "32", "--max-steps", "100000", "--val-every", "100000",
                       "--sample-every", "100000", "--checkpoint-every", "100000"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // wait until training is under way
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let log = try? String(contentsOfFile: run + "/log.txt", encoding: .utf8),
               log.split(separator: "\n").count >= 3 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: run)
        XCTAssertTrue(files.contains { $0.hasPrefix("checkpoint_") && $0.hasSuffix(".safetensors") }, "\(files)")
        XCTAssertFalse(files.contains { $0.hasPrefix(".") && $0 != ".lock" }, "temporary files left: \(files)")
    }
}
