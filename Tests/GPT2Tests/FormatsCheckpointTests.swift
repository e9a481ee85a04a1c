// Training checkpoints (safetensors + metadata): bit-exact round trips with and without AdamW
// state, metadata handling, loadModel's format detection, and corrupt copies.
import Foundation
import XCTest
@testable import GPT2

final class FormatsCheckpointTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try FormatsFixtures.scratch() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static let trainerState = ["trainer": "{\"step\":42,\"position\":{\"shard\":1,\"offset\":123456},\"rng\":[1,2,3,4]}",
                               "note": "résumé \"quoted\""]

    func testRoundTripWithOptimizerIsBitExact() throws {
        let model = FormatsFixtures.randomModel(seed: 10)
        FormatsFixtures.fillRandom(model.adamM, seed: 11)
        FormatsFixtures.fillRandom(model.adamV, seed: 12)
        let path = dir.appendingPathComponent("ckpt.safetensors").path
        try saveCheckpoint(model, includeOptimizer: true, metadata: Self.trainerState, to: path)

        let (loaded, metadata) = try loadCheckpoint(path: path)
        XCTAssertEqual(metadata, Self.trainerState)
        XCTAssertEqual(loaded.config, model.config)
        assertSameBits(loaded.params, model.params, "params")
        assertSameBits(loaded.adamM, model.adamM, "adam_m")
        assertSameBits(loaded.adamV, model.adamV, "adam_v")

        // Any safetensors reader sees the documented layout.
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.metadata["format"], "gpt2-swift-checkpoint")
        XCTAssertEqual(f.metadata["version"], "1")
        let config = try JSONDecoder().decode(GPT2Config.self, from: Data(f.metadata["config"]!.utf8))
        XCTAssertEqual(config, model.config)
        XCTAssertEqual(f.tensors.count, 48)
        XCTAssertEqual(try f.info("wte").shape, [128, 32])
        XCTAssertEqual(try f.info("adam_v.qkvw").shape, [2, 96, 32])
        XCTAssertEqual(try f.info("lnfb").dtype, .F32)
    }

    func testRoundTripWithoutOptimizer() throws {
        let model = FormatsFixtures.randomModel(seed: 13)
        let path = dir.appendingPathComponent("params.safetensors").path
        try saveCheckpoint(model, includeOptimizer: false, metadata: [:], to: path)
        XCTAssertEqual(try SafeTensorsFile(path: path).tensors.count, 16)
        let (loaded, metadata) = try loadCheckpoint(path: path)
        XCTAssertEqual(metadata, [:])
        assertSameBits(loaded.params, model.params, "params")
        assertSameBits(try loadModel(path: path).params, model.params, "loadModel(checkpoint)")
    }

    func testLoadModelRecognisesEveryFormat() throws {
        let model = FormatsFixtures.randomModel(seed: 14)
        let hf = dir.appendingPathComponent("hf").path
        try exportHFModel(model, to: hf)
        let fromDir = try loadModel(path: hf)
        let fromFile = try loadModel(path: hf + "/model.safetensors")
        for m in [fromDir, fromFile] {
            XCTAssertEqual(m.config, model.config)
            // HF files hold V rows of wte: the padding rows load as zero.
            let real = model.config.vocabSize * model.config.channels
            XCTAssertEqual(memcmp(m.params.pointer(.wte), model.params.pointer(.wte), 4 * real), 0)
            XCTAssertEqual(memcmp(m.params.pointer(.wpe), model.params.pointer(.wpe), 4 * (model.params.count - model.params.offset(.wpe))), 0)
        }
        let bin = dir.appendingPathComponent("m.bin").path
        try saveLlmcModel(model, to: bin, bf16: false)
        assertSameBits(try loadModel(path: bin).params, model.params, "loadModel(llm.c)")

        // Things that are not models.
        let plain = dir.appendingPathComponent("plain.safetensors").path
        try writeSafeTensors([SafeTensorsOutputTensor(name: "x", shape: [32], data: UnsafeBufferPointer(model.params.buffer(.lnfw)))],
                             metadata: ["format": "pt"], to: plain)
        assertThrowsNaming(plain, "plain safetensors") { _ = try loadModel(path: plain) }
        assertThrowsNaming(plain, "plain safetensors as checkpoint") { _ = try loadCheckpoint(path: plain) }
        let shard = dir.appendingPathComponent("tokens.bin").path
        var words = [Int32](repeating: 0, count: 256)
        words[0] = 20240520; words[1] = 1
        try words.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: shard)) }
        assertThrowsNaming(shard, "token shard") { _ = try loadModel(path: shard) }
        let text = dir.appendingPathComponent("notes.txt").path
        try Data("hello world, not a model".utf8).write(to: URL(fileURLWithPath: text))
        assertThrowsNaming(text, "text file") { _ = try loadModel(path: text) }
        let empty = dir.appendingPathComponent("empty").path
        try Data().write(to: URL(fileURLWithPath: empty))
        assertThrowsNaming(empty, "empty file") { _ = try loadModel(path: empty) }
        let missing = dir.appendingPathComponent("missing").path
        assertThrowsNaming(missing, "missing") { _ = try loadModel(path: missing) }
        let emptyDir = dir.appendingPathComponent("emptydir").path
        try FileManager.default.createDirectory(atPath: emptyDir, withIntermediateDirectories: true)
        assertThrowsNaming(emptyDir, "directory without config.json") { _ = try loadModel(path: emptyDir) }
    }

    func testInconsistentCheckpointsAreRejected() throws {
        let model = FormatsFixtures.randomModel(seed: 15)
        func write(_ name: String, tensors: [ParameterName: [Int]] = [:], skip: Set<String> = [],
                   extra: [String] = [], metadata: [String: String]) throws -> String {
            let path = dir.appendingPathComponent(name).path
            var list: [SafeTensorsOutputTensor] = []
            for p in ParameterName.allCases where !skip.contains(p.name) {
                list.append(SafeTensorsOutputTensor(name: p.name, shape: tensors[p] ?? p.shape(model.config),
                                                    data: UnsafeBufferPointer(model.params.buffer(p))))
            }
            for e in extra {
                list.append(SafeTensorsOutputTensor(name: e, shape: [32], data: UnsafeBufferPointer(model.params.buffer(.lnfw))))
            }
            try writeSafeTensors(list, metadata: metadata, to: path)
            return path
        }
        let good = ["format": "gpt2-swift-checkpoint", "version": "1", "config": checkpointConfigJSON(model.config)]
        var md = good
        md["version"] = "2"
        let v2 = try write("v2.safetensors", metadata: md)
        assertThrowsNaming(v2, "version 2") { _ = try loadCheckpoint(path: v2) }
        md = good
        md["config"] = "{\"channels\": 32}"
        let badConfig = try write("config.safetensors", metadata: md)
        assertThrowsNaming(badConfig, "partial config") { _ = try loadCheckpoint(path: badConfig) }
        md["config"] = checkpointConfigJSON(GPT2Config(maxSeqLen: 32, vocabSize: 64, numLayers: 2000, numHeads: 4, channels: 4096))
        let huge = try write("huge.safetensors", metadata: md)
        assertThrowsNaming(huge, "config larger than the tensors") { _ = try loadCheckpoint(path: huge) }
        md["config"] = checkpointConfigJSON(GPT2Config(maxSeqLen: 32, vocabSize: 64, numLayers: 2, numHeads: 5, channels: 32))
        let heads = try write("heads.safetensors", metadata: md)
        assertThrowsNaming(heads, "C not divisible by NH") { _ = try loadCheckpoint(path: heads) }
        let missing = try write("missing.safetensors", skip: ["fcb"], metadata: good)
        assertThrowsNaming(missing, "missing tensor") { _ = try loadCheckpoint(path: missing) }
        let shape = try write("shape.safetensors", tensors: [.qkvw: [2, 32, 96]], metadata: good)
        assertThrowsNaming(shape, "wrong shape") { _ = try loadCheckpoint(path: shape) }
        let partial = try write("partial.safetensors", extra: ["adam_m.lnfw"], metadata: good)
        assertThrowsNaming(partial, "partial optimizer state") { _ = try loadCheckpoint(path: partial) }
    }

    func testCorruptCopiesThrowNamingTheFile() throws {
        let model = FormatsFixtures.randomModel(seed: 16)
        FormatsFixtures.fillRandom(model.adamM, seed: 17)
        FormatsFixtures.fillRandom(model.adamV, seed: 18)
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try saveCheckpoint(model, includeOptimizer: true, metadata: ["trainer": "{\"step\":1}"], to: url.path)
        let sweep = try CorruptionSweep(file: url, scratch: dir) { _ = try loadCheckpoint(path: $0) }
        let n = sweep.original.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        try sweep.truncations(sampledPositions(end: 8 + n + 64, dense: 24, count: 150)
                              + sampledPositions(end: sweep.original.count, dense: 0, count: 20))
        try sweep.trailingJunk()
        // 0xFF anywhere in the length or JSON header gives a wrong length or invalid UTF-8: always an error.
        try sweep.flips(sampledPositions(end: 8 + n, dense: 16, count: 400), mustThrow: { _ in true })
        try sweep.flips(sampledPositions(end: 8 + n, dense: 16, count: 250), mask: 0x01)
        // The same copies through loadModel's sniffing.
        let viaLoadModel = try CorruptionSweep(file: url, scratch: dir) { _ = try loadModel(path: $0) }
        try viaLoadModel.truncations(sampledPositions(end: sweep.original.count, dense: 16, count: 20))
        try viaLoadModel.flips(sampledPositions(end: 8 + n, dense: 16, count: 60), mustThrow: { $0 <= 8 })
    }
}
