// Hostile input through the real `gpt` binary (issue 11): numbers on the command line, token ids
// outside a model's vocabulary, absurd sizes in config.json, FIFOs and directories where files are
// expected, corrupt token shards and checkpoints. Every case must end with a clean exit (status 1,
// or 64 for a rejected option) and a message naming the option or the file, never a signal or a hang.
import Foundation
import XCTest
@testable import GPT2

final class RobustCLITests: XCTestCase {
    static let tinyModel = TestPaths.fixtures.appendingPathComponent("model/tiny_v96").path
    static let hubModel = TestPaths.fixtures.appendingPathComponent("model/hub_v50257_bf16").path
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    // MARK: - numbers on the command line

    func testNegativeAndAbsurdNumbersAreRejectedNamingTheOption() throws {
        let text = path("t.txt")
        try Data("hello world".utf8).write(to: URL(fileURLWithPath: text))
        let m = Self.tinyModel
        let cases: [(args: [String], option: String, shown: String)] = [
            (["sample", "--model", m, "--max-tokens", "-5"], "--max-tokens", "-5"),
            (["sample", "--model", m, "--num-samples", "-1"], "--num-samples", "-1"),
            (["sample", "--model", m, "--num-samples", "0"], "--num-samples", "0"),
            (["sample", "--model", m, "--num-samples", "1000000000"], "--num-samples", "1000000000"),
            (["sample", "--model", m, "--top-k", "-3"], "--top-k", "-3"),
            (["sample", "--model", m, "--temperature", "-1"], "--temperature", "-1"),
            (["sample", "--model", m, "--temperature=-0.5"], "--temperature", "-0.5"),
            (["sample", "--model", m, "--temperature", "nan"], "--temperature", "nan"),
            (["sample", "--model", m, "--max-tokens", "9223372036854775807"], "--max-tokens", "9223372036854775807"),
            (["eval", "hellaswag", "--model", m, "--data", text, "--limit", "-2"], "--limit", "-2"),
            (["eval", "hellaswag", "--model", m, "--data", text, "--tokens-per-forward", "-1"], "--tokens-per-forward", "-1"),
            (["encode", "--threads", "-1", text], "--threads", "-1"),
            (["encode", "--threads", "0", text], "--threads", "0"),
            (["bench", "tokenizer", text, "--threads", "-2"], "--threads", "-2"),
            (["bench", "tokenizer", text, "--repeats", "-1"], "--repeats", "-1"),
            (["bench", "train", "--model", m, "-B", "-1"], "-B", "-1"),
            (["bench", "train", "--model", m, "-T", "-4"], "-T", "-4"),
            (["bench", "train", "--model", m, "--steps", "-2"], "--steps", "-2"),
            (["bench", "train", "--model", m, "--steps", "0"], "--steps", "0"),
            (["bench", "generate", "--model", m, "--prompt-tokens", "-1"], "--prompt-tokens", "-1"),
            (["bench", "generate", "--model", m, "--max-tokens", "-5"], "--max-tokens", "-5"),
            (["bench", "generate", "--model", m, "--repeats", "-1"], "--repeats", "-1"),
            (["selftest", "--gpu", "-1"], "--gpu", "-1"),
            (["selftest", "--steps", "-3"], "--steps", "-3"),
        ]
        for c in cases {
            let r = try runGPTGuarded(c.args, timeout: 60)
            let what = c.args.joined(separator: " ")
            assertCleanFailure(r, status: 64, naming: [c.option, "got \(c.shown)"], what)
            XCTAssertFalse(r.stderr.contains("Missing value"), "\(what): \(r.stderr)")
        }
    }

    // MARK: - token ids and the model's vocabulary

    func testTokensOutsideASmallVocabularyAreRejected() throws {
        let text = path("t.txt")
        try Data("Hello, I'm a language model, and this text has GPT-2 ids far above 96.".utf8).write(to: URL(fileURLWithPath: text))
        let sample = try runGPTGuarded(["sample", "--model", Self.tinyModel, "--max-tokens", "2", "--num-samples", "1"])
        assertCleanFailure(sample, naming: ["prompt", "vocabulary of 96"], "sample with a 96-token model")
        let eval = try runGPTGuarded(["eval", "loss", "--model", Self.tinyModel, "--text", text])
        assertCleanFailure(eval, naming: [text, "vocabulary of 96"], "eval loss with a 96-token model")
        let bench = try runGPTGuarded(["bench", "generate", "--model", Self.tinyModel, "--prompt-tokens", "4", "--max-tokens", "2", "--repeats", "1"])
        assertCleanFailure(bench, naming: ["prompt", "vocabulary of 96"], "bench generate with a 96-token model")
    }

    func testShardIdsAboveTheVocabularyStopTrainingWithTheShardAndOffset() throws {
        for (format, bad) in [(ShardFormat.npy, UInt16(50300)), (.bin, 65535), (.npy, 50257)] {
            let data = path("data-\(format.rawValue)-\(bad)")
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            var tokens = (0..<4000).map { UInt16(1 + $0 % 200) }
            tokens[1234] = bad
            let shard = data + "/t_train_000001.\(format.rawValue)"
            try TokenShard.write(tokens, to: shard, format: format)
            try TokenShard.write(Array(tokens[0..<1000]).map { min($0, 200) }, to: data + "/t_val_000000.\(format.rawValue)", format: format)
            let run = path("run-\(format.rawValue)-\(bad)")
            let r = try runGPTGuarded(["train", "--data", data, "--out", run, "--layers", "2", "--heads", "2", "--embd", "32",
                                       "--seq", "32", "-B", "2", "-T", "16", "--total-batch", "32", "--max-steps", "1"])
            assertCleanFailure(r, naming: [shard, "\(bad)", "1234"], "train on a shard holding \(bad)")
        }
    }

    // MARK: - sizes in config.json

    func testAbsurdSizesInConfigJSONAreRejectedNamingTheField() throws {
        let base = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.tinyModel + "/config.json"))) as! [String: Any]
        let cases: [(key: String, value: Any)] = [
            ("n_embd", 1 << 31), ("vocab_size", 1 << 62), ("n_positions", 1e13), ("n_layer", -2), ("n_head", 0),
            ("n_embd", 64.5), ("n_positions", "64"), ("vocab_size", 1e300), ("n_inner", 1 << 62),
        ]
        for (i, c) in cases.enumerated() {
            let model = path("hf\(i)")
            try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Self.tinyModel + "/model.safetensors", toPath: model + "/model.safetensors")
            var config = base
            config[c.key] = c.value
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: model + "/config.json"))
            let r = try runGPTGuarded(["sample", "--model", model, "--max-tokens", "1", "--num-samples", "1"])
            assertCleanFailure(r, naming: [model + "/config.json", c.key], "config.json with \(c.key) = \(c.value)")
        }
        // Consistent but absurd: n_positions 1e6 with weights for 64 positions is a shape mismatch,
        // found before anything is allocated.
        let model = path("hf-positions")
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.tinyModel + "/model.safetensors", toPath: model + "/model.safetensors")
        var config = base
        config["n_positions"] = 1 << 20
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: model + "/config.json"))
        let r = try runGPTGuarded(["sample", "--model", model, "--max-tokens", "1", "--num-samples", "1"])
        assertCleanFailure(r, naming: [model + "/model.safetensors", "wpe"], "n_positions larger than the weights")
    }

    // MARK: - paths that are not regular files

    func testFIFOsAndDirectoriesWhereFilesAreExpected() throws {
        let fifo = path("fifo")
        makeFIFO(fifo)
        let model = try runGPTGuarded(["sample", "--model", fifo], timeout: 20)
        assertCleanFailure(model, naming: [fifo, "FIFO"], "--model FIFO")
        let text = try runGPTGuarded(["eval", "loss", "--model", Self.tinyModel, "--text", fifo], timeout: 20)
        assertCleanFailure(text, naming: [fifo, "FIFO"], "--text FIFO")
        let hella = try runGPTGuarded(["eval", "hellaswag", "--model", Self.tinyModel, "--data", fifo], timeout: 20)
        assertCleanFailure(hella, naming: [fifo, "FIFO"], "hellaswag --data FIFO")

        // config.json that is a directory or a FIFO
        for kind in ["directory", "FIFO"] {
            let hf = path("hf-\(kind)")
            try FileManager.default.createDirectory(atPath: hf, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Self.tinyModel + "/model.safetensors", toPath: hf + "/model.safetensors")
            if kind == "FIFO" { makeFIFO(hf + "/config.json") } else {
                try FileManager.default.createDirectory(atPath: hf + "/config.json", withIntermediateDirectories: true)
            }
            let r = try runGPTGuarded(["sample", "--model", hf], timeout: 20)
            assertCleanFailure(r, naming: [hf + "/config.json", kind], "config.json that is a \(kind)")
            XCTAssertFalse(r.stderr.contains("not found"), r.stderr)
        }

        // a tokenizer file that is a FIFO
        let tok = path("tok")
        try FileManager.default.createDirectory(atPath: tok, withIntermediateDirectories: true)
        makeFIFO(tok + "/encoder.json")
        _ = FileManager.default.createFile(atPath: tok + "/vocab.bpe", contents: Data("#version: 0.2\n".utf8))
        let enc = try runGPTGuarded(["encode", "--tokenizer", tok], timeout: 20, stdin: Data("hi".utf8))
        assertCleanFailure(enc, naming: [tok + "/encoder.json", "FIFO"], "encoder.json FIFO")

        // token shards: --data that is a file, a shard that is a FIFO
        let tiny = ["--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "2", "-T", "16", "--total-batch", "32", "--max-steps", "1"]
        let file = path("notes.txt")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let asFile = try runGPTGuarded(["train", "--data", file, "--out", path("r1")] + tiny, timeout: 30)
        assertCleanFailure(asFile, naming: [file, "regular file, not a directory", "--data"], "--data FILE")
        XCTAssertFalse(asFile.stderr.contains("cannot list directory"), asFile.stderr)
        let data = path("shards")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try TokenShard.write((0..<1000).map { UInt16($0 % 200) }, to: data + "/t_val_000000.npy", format: .npy)
        makeFIFO(data + "/t_train_000001.npy")
        let shardFIFO = try runGPTGuarded(["train", "--data", data, "--out", path("r2")] + tiny, timeout: 30)
        assertCleanFailure(shardFIFO, naming: [data + "/t_train_000001.npy", "FIFO"], "shard FIFO")
    }

    // MARK: - checkpoint integrity

    func testFlippedBytesInACheckpointAreReportedWithTheTensor() throws {
        let model = GPT2(config: GPT2Config(maxSeqLen: 32, vocabSize: 50257, numLayers: 1, numHeads: 2, channels: 16))
        model.initializeRandom(seed: 3)
        let ck = path("ck.safetensors")
        try saveCheckpoint(model, includeOptimizer: false, metadata: [:], to: ck)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ck)))
        let file = try SafeTensorsFile(path: ck)
        let headerEnd = bytes.count - file.tensors.values.map(\.dataRange.upperBound).max()!
        let wpe = file.tensors["wpe"]!.dataRange
        // 2,000 flipped bytes, all inside wpe's data
        var rng = SplitMix(99)
        for _ in 0..<2000 { bytes[headerEnd + wpe.lowerBound + Int(rng.next() % UInt64(wpe.count))] ^= 0x5A }
        writeFileBytes(bytes, to: ck)
        let r = try runGPTGuarded(["sample", "--model", ck, "--max-tokens", "1", "--num-samples", "1"])
        assertCleanFailure(r, naming: [ck, "'wpe'", "CRC-32C"], "checkpoint with 2000 flipped bytes")
    }
}
