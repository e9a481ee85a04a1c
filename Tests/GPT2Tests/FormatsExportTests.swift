// HF export: the exported directory reloads bit-exactly and runs the same forward pass, and
// transformers' GPT2LMHeadModel.from_pretrained gives identical parameters and logits for the
// original fixture and our export (Tests/reference/check_formats.py). Fixtures come from
// Tests/reference/make_model_fixtures.py.
import Foundation
import XCTest
@testable import GPT2

final class FormatsExportTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try FormatsFixtures.scratch() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func fixture(_ name: String) throws -> String {
        let path = ModelFixtures.dir(name)
        guard FileManager.default.fileExists(atPath: path + "/model.safetensors") else {
            throw XCTSkip("fixture \(path) missing (run Tests/reference/make_model_fixtures.py)")
        }
        return path
    }

    func testExportReloadsBitExactAndRunsTheSameForward() throws {
        let original = try loadHFModel(directory: try fixture("tiny_v96"))
        let out = dir.appendingPathComponent("export").path
        try exportHFModel(original, to: out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["config.json", "model.safetensors"])
        XCTAssertEqual(try readHFConfig(path: out + "/config.json"), original.config)

        let f = try SafeTensorsFile(path: out + "/model.safetensors")
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(f.tensors.count, 4 + 12 * original.config.numLayers, "no lm_head, no buffers")
        XCTAssertEqual(try f.info("transformer.wte.weight").shape, [96, 64], "wte cut to vocab_size rows")
        XCTAssertEqual(try f.info("transformer.h.1.attn.c_attn.weight").shape, [64, 192], "Conv1D (in, out)")
        XCTAssertEqual(try f.info("transformer.h.0.mlp.c_proj.weight").shape, [256, 64])
        XCTAssertNil(f.tensors["lm_head.weight"])
        // The exported tensors equal the fixture's own, byte for byte.
        let ref = try SafeTensorsFile(path: try fixture("tiny_v96") + "/model.safetensors")
        for (name, info) in f.tensors {
            XCTAssertEqual(ref.tensors[name]?.shape, info.shape, name)
            XCTAssertEqual(Array(try ref.rawBytes(name)), Array(try f.rawBytes(name)), name)
        }

        let reloaded = try loadHFModel(directory: out)
        assertSameBits(reloaded.params, original.params, "export -> loadHFModel")
        let reference = try SafeTensorsFile(path: try fixture("tiny_v96") + "/reference.safetensors")
        let inputs = try int32Tensor(reference, "inputs")
        let B = 2, T = inputs.count / 2
        original.forward(inputs: inputs, targets: nil, B: B, T: T)
        reloaded.forward(inputs: inputs, targets: nil, B: B, T: T)
        for b in 0..<B {
            for t in 0..<T {
                XCTAssertEqual(Array(original.logits(b: b, t: t)), Array(reloaded.logits(b: b, t: t)), "logits (\(b), \(t))")
            }
        }
    }

    func testExportIsLoadedIdenticallyByTransformers() throws {
        guard let python = referencePython(importing: ["torch", "transformers", "safetensors"]) else {
            throw XCTSkip("no Python with torch + transformers (set GPT2_PYTHON)")
        }
        var args = [TestPaths.reference.appendingPathComponent("check_formats.py").path, "hf"]
        // tiny_v96: "transformer." keys, F32; hub_v50257_bf16: hub layout with buffers, BF16, real vocab.
        for name in ["tiny_v96", "hub_v50257_bf16"] {
            let src = try fixture(name)
            let out = dir.appendingPathComponent(name).path
            try exportHFModel(try loadHFModel(directory: src), to: out)
            args += [src, out]
        }
        let r = try runProcess(python, args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.text.trimmingCharacters(in: .whitespacesAndNewlines), "ok", r.stderr)
    }

    func testExportOfRandomModelCutsPaddingAndRoundTrips() throws {
        let model = FormatsFixtures.randomModel(seed: 20)
        let out = dir.appendingPathComponent("random").path
        try exportHFModel(model, to: out)
        try exportHFModel(model, to: out)   // overwriting an export works
        let reloaded = try loadHFModel(directory: out)
        let c = model.config
        XCTAssertEqual(reloaded.config, c)
        for p in ParameterName.allCases {
            let n = p == .wte ? c.vocabSize * c.channels : model.params.count(p)
            XCTAssertEqual(memcmp(reloaded.params.pointer(p), model.params.pointer(p), 4 * n), 0, p.name)
        }
        let padding = reloaded.params.buffer(.wte)[(c.vocabSize * c.channels)...]
        XCTAssert(padding.allSatisfy { $0 == 0 }, "padding rows are not exported")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as! [String: Any]
        XCTAssertEqual(config["model_type"] as? String, "gpt2")
        XCTAssertEqual(config["architectures"] as? [String], ["GPT2LMHeadModel"])
        XCTAssertEqual(config["activation_function"] as? String, "gelu_new")
        XCTAssertEqual(config["n_ctx"] as? Int, 32)
        XCTAssertEqual(config["resid_pdrop"] as? Double, 0)
        XCTAssertNil(config["eos_token_id"], "vocab 64 has no <|endoftext|>")

        let blocker = dir.appendingPathComponent("file").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: blocker))
        assertThrowsNaming(blocker, "export into a path that is a file") { try exportHFModel(model, to: blocker) }
    }

    func testCorruptExportsThrowNamingTheFile() throws {
        let out = dir.appendingPathComponent("export")
        try exportHFModel(FormatsFixtures.randomModel(seed: 21), to: out.path)
        let weights = out.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: weights)
        let n = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        // Corrupt copies of model.safetensors, loaded as the directory's weights.
        let scratch = dir.appendingPathComponent("scratch")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: out.appendingPathComponent("config.json"), to: scratch.appendingPathComponent("config.json"))
        let sweep = try CorruptionSweep(file: weights, scratch: scratch, name: "model.safetensors") { _ in
            _ = try loadHFModel(directory: scratch.path)
        }
        try sweep.truncations(sampledPositions(end: 8 + n + 16, dense: 16, count: 150)
                              + sampledPositions(end: bytes.count, dense: 0, count: 20))
        try sweep.flips(sampledPositions(end: 8 + n, dense: 16, count: 250), mustThrow: { $0 <= 8 })
        // Corrupt config.json
        let config = try Data(contentsOf: out.appendingPathComponent("config.json"))
        let configPath = scratch.appendingPathComponent("config.json").path
        try? FileManager.default.removeItem(at: scratch.appendingPathComponent("model.safetensors"))
        try FileManager.default.copyItem(at: weights, to: scratch.appendingPathComponent("model.safetensors"))
        for i in 0..<config.count {
            var c = config
            c[i] ^= 0xFF
            writeFileBytes(c, to: configPath)
            do { _ = try loadHFModel(directory: scratch.path) } catch {
                XCTAssert(error.localizedDescription.contains(scratch.path), "config byte \(i): \(error.localizedDescription)")
            }
        }
    }
}
