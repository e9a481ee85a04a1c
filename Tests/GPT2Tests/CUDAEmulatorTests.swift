// `gpt selftest --device cuda`'s checks on the CUDA emulator (CUDAEmulatorSupport.swift): every
// kernel, the training steps and every inference path of the GPU engine run on the CPU against
// the CPU engine, in fp32 and bf16 (without the tensor-core kernels, which need sm_80 PTX). This
// exercises the host code (buffers, offsets, launch arguments, cuBLASLt layouts) and the kernels'
// logic in CI; speed and real-GPU concurrency are left to a GPU run.
import Foundation
import XCTest
@testable import GPT2

final class CUDAEmulatorTests: XCTestCase {
    /// Runs `body` with a recorder; fails the test for every comparison out of tolerance.
    func expectPass(_ label: String, _ body: (@escaping (CUDASelftestResult) -> Void) throws -> Void) throws {
        var results: [CUDASelftestResult] = []
        try body { r in
            results.append(r)
            print(String(format: "  %@  %-90@ %.3e (tol %.0e)", r.passed ? "PASS" : "FAIL", r.name, r.maxRelativeError, r.tolerance))
        }
        XCTAssertFalse(results.isEmpty, "\(label): nothing compared")
        for r in results where !r.passed {
            XCTFail("\(label): \(r.name): error \(r.maxRelativeError) > tolerance \(r.tolerance)")
        }
    }

    func testKernelsFP32() throws {
        let ctx = try CUDAEmulator.context(.fp32)
        try expectPass("fp32 kernels") { try CUDASelftest.runKernels(context: ctx, record: $0) }
    }

    func testKernelsBF16() throws {
        let ctx = try CUDAEmulator.context(.bf16)
        try expectPass("bf16 kernels") { try CUDASelftest.runKernels(context: ctx, record: $0) }
    }

    /// Three training steps against the CPU engine (LM head in chunks, then in one chunk), then
    /// every inference path (CUDASelftest+Inference.swift): scorer, HellaSwag, decoder, Generator.
    func testModelAndInferenceFP32() throws {
        let ctx = try CUDAEmulator.context(.fp32)
        try expectPass("fp32 model, chunked head") { try CUDASelftest.runModel(context: ctx, vocabChunk: 256, record: $0) }
        try expectPass("fp32 model and inference") { try CUDASelftest.runModel(context: ctx, vocabChunk: nil, record: $0) }
    }

    func testModelAndInferenceBF16() throws {
        let ctx = try CUDAEmulator.context(.bf16)
        try expectPass("bf16 model, chunked head") { try CUDASelftest.runModel(context: ctx, vocabChunk: 256, record: $0) }
        try expectPass("bf16 model and inference") { try CUDASelftest.runModel(context: ctx, vocabChunk: nil, record: $0) }
    }
}

/// `gpt sample`, `gpt eval loss` and `gpt eval hellaswag` with `--device cuda` on the emulator,
/// against transformers' references (the same fixtures as CLIModelTests and HellaSwagTests) and
/// against `--device cpu`.
final class CUDAEmulatorCLITests: XCTestCase {
    func gpt(_ arguments: [String]) throws -> ProcessResult {
        let exe = TestPaths.products.appendingPathComponent("gpt").path
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw XCTSkip("gpt executable not built at \(exe)") }
        return try runProcess(exe, arguments, environment: try CUDAEmulator.environment())
    }

    func reference() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("generate/reference.json"))) as! [String: Any]
    }

    func testSampleOnTheGPUEqualsTransformersAndTheCPU() throws {
        let ref = try reference()
        let model = CLIModelTests.hubModel
        let greedy = try gpt(["sample", "--model", model, "--prompt", ref["prompt"] as! String, "--temperature", "0",
                              "--max-tokens", "24", "--num-samples", "1", "--ids", "--device", "cuda", "--precision", "fp32"])
        XCTAssertEqual(greedy.status, 0, greedy.stderr)
        XCTAssertEqual(greedy.text, (ref["greedy_ids"] as! [Int]).map(String.init).joined(separator: " ") + "\n")
        // seeded top-k, 3 samples, 30 new tokens after 8: past the context of 32
        let args = ["sample", "--model", model, "--top-k", "40", "--seed", "9", "--max-tokens", "30", "--num-samples", "3", "--ids"]
        let gpu = try gpt(args + ["--device", "cuda", "--precision", "fp32"]), cpu = try gpt(args + ["--device", "cpu"])
        XCTAssertEqual(gpu.status, 0, gpu.stderr)
        XCTAssertEqual(gpu.text, cpu.text)
        XCTAssertEqual(gpu.text.split(separator: "\n").count, 3)
        let bf16 = try gpt(args + ["--device", "cuda", "--precision", "bf16"])
        XCTAssertEqual(bf16.status, 0, bf16.stderr)
        XCTAssertEqual(bf16.text.split(separator: "\n").map { $0.split(separator: " ").count }, [30, 30, 30])
    }

    func testEvalLossAndHellaSwagOnTheGPU() throws {
        let ref = try reference()
        let file = try TestPaths.temporaryDirectory().appendingPathComponent("text.txt")
        try Data((ref["text"] as! String).utf8).write(to: file)
        let r = try gpt(["eval", "loss", "--model", CLIModelTests.hubModel, "--text", file.path, "--device", "cuda", "--precision", "fp32"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let loss = Double(r.text.split(separator: "\n").last!.dropFirst(5))!
        let want = ref["loss"] as! Double
        XCTAssertLessThan(abs(loss - want) / want, 1e-4, "GPU \(loss) vs transformers \(want)")

        let expected = try HellaSwagTests.expected()
        let h = try gpt(["eval", "hellaswag", "--model", HellaSwagTests.model, "--data", HellaSwagTests.bin, "--device", "cuda",
                         "--precision", "fp32"])
        XCTAssertEqual(h.status, 0, h.stderr)
        XCTAssertEqual(h.text, """
            examples \(expected.num_total)
            acc \(String(format: "%.4f", Double(expected.num_correct) / 20)) (\(expected.num_correct)/20)
            acc_norm \(String(format: "%.4f", Double(expected.num_correct_norm) / 20)) (\(expected.num_correct_norm)/20)

            """)
    }
}
