// Models from a (fake) hub through `gpt`: `--model hf://OWNER/NAME` gives the same greedy ids as
// the directory it was made from (single and sharded safetensors), a second run and
// HF_HUB_OFFLINE=1 download nothing, `gpt train --init hf://...` starts from the same weights as
// the directory, and a run directory as --model means its newest checkpoint.
import Foundation
import XCTest
@testable import GPT2

final class HubModelTests: XCTestCase {
    static let fixture = TestPaths.fixtures.appendingPathComponent("model/hub_v50257_bf16")
    var scratch: URL!

    override func setUpWithError() throws { scratch = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    var gpt: String { TestPaths.products.appendingPathComponent("gpt").path }

    func runGPT(_ args: [String], _ env: [String: String]) throws -> ProcessResult {
        guard FileManager.default.isExecutableFile(atPath: gpt) else { throw XCTSkip("gpt not built") }
        return try runProcess(gpt, args, environment: env)
    }

    /// models/acme/tiny: the fixture's config.json + model.safetensors; models/acme/sharded: the same
    /// weights in two BF16 shards with a model.safetensors.index.json.
    func startHub() throws -> FakeHub {
        try FakeHub { root in
            let tiny = root.appendingPathComponent("models/acme/tiny")
            try FileManager.default.createDirectory(at: tiny, withIntermediateDirectories: true)
            for f in ["config.json", "model.safetensors"] {
                try FileManager.default.copyItem(at: Self.fixture.appendingPathComponent(f), to: tiny.appendingPathComponent(f))
            }
            try writeRepoFile(root, "models/acme/tiny/README.md", Data("tiny\n".utf8))
            let sharded = root.appendingPathComponent("models/acme/sharded")
            try FileManager.default.createDirectory(at: sharded, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.fixture.appendingPathComponent("config.json"), to: sharded.appendingPathComponent("config.json"))
            let source = try SafeTensorsFile(path: Self.fixture.appendingPathComponent("model.safetensors").path)
            var map: [String: String] = [:]
            let names = source.tensors.keys.filter { !$0.hasSuffix(".attn.bias") && !$0.hasSuffix("masked_bias") }.sorted()
            for (shard, keys) in [("model-00001-of-00002.safetensors", names.filter { !$0.hasPrefix("h.1.") && !$0.hasPrefix("ln_f") }),
                                  ("model-00002-of-00002.safetensors", names.filter { $0.hasPrefix("h.1.") || $0.hasPrefix("ln_f") })] {
                let buffers = try keys.map { k -> UnsafeMutableBufferPointer<Float> in
                    let values = try source.floats(k)
                    let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
                    _ = b.initialize(from: values)
                    return b
                }
                defer { buffers.forEach { $0.deallocate() } }
                let tensors = try zip(keys, buffers).map { k, b in
                    SafeTensorsOutputTensor(name: k, shape: try source.info(k).shape, data: UnsafeBufferPointer(b), dtype: .BF16)
                }
                try writeSafeTensors(tensors, metadata: ["format": "pt"], to: sharded.appendingPathComponent(shard).path)
                for k in keys { map[k] = shard }
            }
            let index = try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": map], options: [.sortedKeys])
            try index.write(to: sharded.appendingPathComponent("model.safetensors.index.json"))
            try writeRepoFile(root, "models/acme/pt-only/config.json", Data("{}".utf8))
            try writeRepoFile(root, "models/acme/pt-only/pytorch_model.bin", Data(count: 10))
        }
    }

    func sampleArgs(_ model: String) -> [String] {
        ["sample", "--model", model, "--temperature", "0", "--ids", "--num-samples", "1", "--max-tokens", "12"]
    }

    func testHubModelSamplesLikeItsDirectoryAndIsCached() throws {
        let hub = try startHub()
        let cache = scratch.appendingPathComponent("cache")
        let env = hub.environment(cache: cache)
        let local = try runGPT(sampleArgs(Self.fixture.path), env)
        XCTAssertEqual(local.status, 0, local.stderr)
        XCTAssertEqual(local.text.split(separator: " ").count, 12)

        let remote = try runGPT(sampleArgs("hf://acme/tiny"), env)
        XCTAssertEqual(remote.status, 0, remote.stderr)
        XCTAssertEqual(remote.text, local.text)
        XCTAssertEqual(try hub.requests("resolve"), 2, "config.json and model.safetensors only")

        let again = try runGPT(sampleArgs("hf://acme/tiny@main"), env)
        XCTAssertEqual(again.text, local.text)
        XCTAssertEqual(try hub.requests("resolve"), 2, "nothing downloaded the second time")
        XCTAssertEqual(try hub.requests("cdn"), 1)

        let api = try hub.requests("api")
        let offline = try runGPT(sampleArgs("hf://models/acme/tiny"), hub.environment(cache: cache, offline: true))
        XCTAssertEqual(offline.status, 0, offline.stderr)
        XCTAssertEqual(offline.text, local.text)
        XCTAssertEqual(try hub.requests("api"), api, "offline: no request")

        let sharded = try runGPT(sampleArgs("hf://acme/sharded"), env)
        XCTAssertEqual(sharded.status, 0, sharded.stderr)
        XCTAssertEqual(sharded.text, local.text)

        let missing = try runGPT(sampleArgs("hf://acme/pt-only"), env)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssert(missing.stderr.contains("pytorch_model.bin") && missing.stderr.contains("safetensors"), missing.stderr)
        let notCached = try runGPT(sampleArgs("hf://acme/sharded"), hub.environment(cache: scratch.appendingPathComponent("empty"), offline: true))
        XCTAssertNotEqual(notCached.status, 0)
        XCTAssert(notCached.stderr.contains("HF_HUB_OFFLINE"), notCached.stderr)
        let dataset = try runGPT(sampleArgs("hf://datasets/acme/tiny"), env)
        XCTAssertNotEqual(dataset.status, 0)
        XCTAssert(dataset.stderr.contains("dataset"), dataset.stderr)
    }

    func testTrainInitFromHubAndRunDirectoryAsModel() throws {
        let hub = try startHub()
        let env = hub.environment(cache: scratch.appendingPathComponent("cache"))
        let data = scratch.appendingPathComponent("data").path
        let p = try runGPT(["prepare", "--shakespeare", "--output", data], env)
        XCTAssertEqual(p.status, 0, p.stderr)
        func train(_ initFrom: String, _ out: String) throws -> String {
            let r = try runGPT(["train", "--data", data, "--init", initFrom, "-B", "2", "-T", "16", "--total-batch", "32",
                                "--max-steps", "2", "--val-every", "100", "--val-steps", "1", "--sample-every", "100", "--warmup-steps", "1",
                                "--out", scratch.appendingPathComponent(out).path], env)
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.text.split(separator: "\n").filter { $0.hasPrefix("step ") }.map { String($0.split(separator: "|")[1]) }.joined(separator: ";")
        }
        let local = try train(Self.fixture.path, "run-local")
        XCTAssertTrue(local.contains("loss"), local)
        XCTAssertEqual(try train("hf://acme/tiny", "run-hub"), local, "same losses from the hub copy")

        // The run directory means its newest checkpoint.
        let run = scratch.appendingPathComponent("run-hub").path
        let newest = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: run)
            .filter { $0.hasPrefix("checkpoint_") }.sorted().last)
        let a = try runGPT(sampleArgs(run), env), b = try runGPT(sampleArgs(run + "/" + newest), env)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.text, b.text)
        XCTAssertFalse(a.text.isEmpty)
    }
}
