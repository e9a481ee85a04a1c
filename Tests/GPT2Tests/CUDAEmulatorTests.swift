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
        try body { results.append($0) }
        XCTAssertFalse(results.isEmpty, "\(label): nothing compared")
        for r in results where !r.passed {
            XCTFail("\(label): \(r.name): error \(r.maxRelativeError) > tolerance \(r.tolerance)")
        }
    }

    func testKernelsFP32() throws {
        let ctx = try CUDAEmulator.context(.fp32)
        try expectPass("fp32 kernels") { try CUDASelftest.runKernels(context: ctx, record: $0) }
    }
}
