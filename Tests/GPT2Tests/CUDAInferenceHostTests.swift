// Host-side logic of the GPU inference paths, no GPU needed: the selftest's rules for explained
// disagreements (greedy near-ties, draws near a cumulative boundary or across reordered top-k
// neighbours, HellaSwag near-ties), the scorer's batch sizing, the weights' layout and the
// decode kernels' launch limits.
import Foundation
import XCTest
@testable import GPT2

final class CUDAInferenceHostTests: XCTestCase {
    func testGreedyAgreement() {
        let logits: [Float] = [0.5, 2.0, 1.999, -1, 2.0, 9]   // the 9 is padding (V = 5)
        XCTAssertTrue(CUDASelftest.greedyAgrees(logits: logits, V: 5, pick: 1, delta: 0))
        XCTAssertTrue(CUDASelftest.greedyAgrees(logits: logits, V: 5, pick: 4, delta: 0), "an equal maximum is a tie")
        XCTAssertFalse(CUDASelftest.greedyAgrees(logits: logits, V: 5, pick: 2, delta: 0.0001))
        XCTAssertTrue(CUDASelftest.greedyAgrees(logits: logits, V: 5, pick: 2, delta: 0.001))
        XCTAssertFalse(CUDASelftest.greedyAgrees(logits: logits, V: 5, pick: 0, delta: 0.1))
        XCTAssertFalse(CUDASelftest.greedyAgrees(logits: logits, V: 5, pick: 5, delta: 100), "padding is never a choice")
    }

    /// The CPU's own draw always agrees; another token only when the observed logit error could
    /// move the cumulative boundary (or reorder the top-k) far enough.
    func testSampleAgreement() {
        var g = NormalRNG(seed: 3)
        let V = 200
        let logits = (0..<V).map { _ in g.next() }
        for (k, t) in [(0, Float(1)), (10, 0.7), (150, 1.5)] {
            let sampler = Sampler(topK: k, temperature: t)
            var unexplainedFar = 0
            for seed in 0..<200 as Range<UInt64> {
                let rng = SplitMix64(seed: seed)
                var replay = rng
                let cpu = logits.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, V: V, rng: &replay) }
                XCTAssertTrue(CUDASelftest.sampleAgrees(logits: logits, V: V, sampler: sampler, rng: rng, pick: cpu, delta: 0))
                // perturb the logits slightly: the perturbed draw must be explained by the perturbation's size
                let delta: Float = 1e-3
                var h = NormalRNG(seed: seed)
                let moved = logits.map { $0 + delta * max(-1, min(1, h.next())) }
                var again = rng
                let pick = moved.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, V: V, rng: &again) }
                XCTAssertTrue(CUDASelftest.sampleAgrees(logits: logits, V: V, sampler: sampler, rng: rng, pick: pick, delta: delta),
                              "k \(k) seed \(seed): a draw from logits moved by \(delta) must be explained")
                // a token far from the CPU's draw is not explained by a tiny error
                let far = Int32((Int(cpu) + V / 2) % V)
                if !CUDASelftest.sampleAgrees(logits: logits, V: V, sampler: sampler, rng: rng, pick: far, delta: 1e-6) { unexplainedFar += 1 }
            }
            XCTAssertGreaterThan(unexplainedFar, 190, "k \(k): distant picks must fail")
        }
        // outside the top-k: only when close to the k-th logit
        let sorted = (0..<V).sorted { logits[$0] > logits[$1] }
        let sampler = Sampler(topK: 10, temperature: 1)
        XCTAssertFalse(CUDASelftest.sampleAgrees(logits: logits, V: V, sampler: sampler, rng: SplitMix64(seed: 1),
                                                 pick: Int32(sorted[150]), delta: 1e-3))
        XCTAssertFalse(CUDASelftest.sampleAgrees(logits: logits, V: V, sampler: sampler, rng: SplitMix64(seed: 1), pick: Int32(V), delta: 1))
    }

    func testArgminAgreement() {
        let scores = [10.0, 9.0, 9.0001, 12]
        XCTAssertTrue(CUDASelftest.argminAgrees(scores: scores, pick: 1, tol: 0))
        XCTAssertFalse(CUDASelftest.argminAgrees(scores: scores, pick: 2, tol: 1e-7))
        XCTAssertTrue(CUDASelftest.argminAgrees(scores: scores, pick: 2, tol: 1e-5))
        XCTAssertFalse(CUDASelftest.argminAgrees(scores: scores, pick: 3, tol: 1e-2))
        XCTAssertFalse(CUDASelftest.argminAgrees(scores: scores, pick: 4, tol: 1))
    }

    /// HellaSwag-sized batches: a quarter of the free memory, between one context and 128K tokens.
    func testScorerBatchSizing() {
        let gpt2 = GPT2Config(numLayers: 12, numHeads: 12, channels: 768)
        let perRow = CUDAForwardScratch.bytesPerRow(config: gpt2, elementSize: 2)
        // bf16 GPT-2 124M: 16 activations of C per row, one 8192-column logits chunk, fp32 statistics
        XCTAssertEqual(perRow, 2 * (16 * 768 + 8192) + 4 * (7 + 12) + 8)
        XCTAssertEqual(CUDAScorer.preferredTokens(freeBytes: 79 << 30, bytesPerRow: perRow, maxSeqLen: 1024), 131_072)
        XCTAssertEqual(CUDAScorer.preferredTokens(freeBytes: 8 << 30, bytesPerRow: perRow, maxSeqLen: 1024), (8 << 30) / 4 / perRow)
        XCTAssertEqual(CUDAScorer.preferredTokens(freeBytes: 1 << 20, bytesPerRow: perRow, maxSeqLen: 1024), 1024)
        XCTAssertEqual(CUDAForwardScratch.vocabChunk(gpt2), 8192)
        XCTAssertEqual(CUDAForwardScratch.vocabChunk(GPT2Config(maxSeqLen: 64, vocabSize: 1000, numLayers: 2, numHeads: 4, channels: 256)), 1024)
    }

    /// The weights view's addresses follow ParameterTensors' layout exactly.
    func testWeightsViewMatchesParameterTensors() {
        let config = GPT2Config(maxSeqLen: 32, vocabSize: 300, numLayers: 3, numHeads: 2, channels: 16)
        let params = ParameterTensors(config: config)
        let base = UInt64(UInt(bitPattern: params.memory))
        for es in [2, 4] {
            let w = CUDAWeights(config: config, base: 1 << 32, elementSize: es)
            for name in ParameterName.allCases {
                let host = UInt64(UInt(bitPattern: params.pointer(name))) - base
                XCTAssertEqual(w.w(name) - (1 << 32), host / 4 * UInt64(es), "\(name)")
                guard name.isPerLayer else { continue }
                for layer in [0, 2] {
                    let h = UInt64(UInt(bitPattern: params.pointer(name, layer: layer))) - base
                    XCTAssertEqual(w.w(name, layer) - (1 << 32), h / 4 * UInt64(es), "\(name) layer \(layer)")
                }
            }
        }
    }

    func testDecodeLaunchLimits() {
        let l = CUDALaunchConfig.decodeAttention(rows: 15, NH: 12, positions: 1024)
        XCTAssertEqual(l.grid, CUDALaunchConfig.Dim3(15, 12))
        XCTAssertEqual(l.block.count, CUDAKernelSource.DecodeTiling.threads)
        XCTAssertEqual(l.sharedBytes, 4096)
        XCTAssertLessThanOrEqual(CUDAKernelSource.DecodeTiling.maxPositions * 4 + CUDAKernelSource.DecodeTiling.staticSharedBytes, 49152)
        XCTAssertEqual(CUDALaunchConfig.sample(samples: 5).block.count, CUDAKernelSource.SamplingTiling.threads)
        XCTAssertLessThanOrEqual(CUDAKernelSource.SamplingTiling.maxTopK, CUDAKernelSource.SamplingTiling.threads)
    }
}

extension CUDAInferenceHostTests {
    /// cuBLASLt is told the real alignment of a matrix only when it is below its default of 256 bytes.
    func testMatmulAlignmentPreference() {
        XCTAssertEqual(CuBLASLt.alignment(0x7f00_0000_0000), 256)
        XCTAssertEqual(CuBLASLt.alignment(0x7f00_0000_0600), 256)   // 1536 = 6 · 256: a row of GPT-2's C = 768 in bf16
        XCTAssertEqual(CuBLASLt.alignment(0x7f00_0000_0040), 64)    // a row of C = 32 in bf16
        XCTAssertEqual(CuBLASLt.alignment(0x7f00_0000_0002), 2)
    }
}
