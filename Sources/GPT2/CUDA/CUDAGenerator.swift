// Sampling on the CUDA engine without a KV cache: every new token re-runs the whole (S, maxLength)
// batch (causal attention: the unused tail positions, filled with token 0, never affect the ones
// before them), downloads the final LayerNorm's rows at the current position and applies the tied
// LM head on the host (S GEMVs of (Vp, C)). Same sampler and RNG order as `Generator`, so the two
// agree up to floating-point noise. O(maxLength) forwards: fine for samples, not for serving.
// Greedy ids equal the CPU engine's on an H100 (bench/RESULTS.md); no KV cache yet.
import Foundation
import GPT2Kernels

public final class CUDAGenerator {
    public let engine: CUDABackend
    /// Host copy of the weights (only wte is read: the LM head).
    public let host: GPT2

    /// `engine` must be allocated for B = samples, T = prompt + new tokens, and hold `host`'s weights.
    public init(engine: CUDABackend, host: GPT2) {
        precondition(engine.config == host.config, "CUDAGenerator: config mismatch")
        self.engine = engine
        self.host = host
    }

    /// New ids per sample, as `Generator.generate`.
    public func generate(prompt: [Int32], maxNewTokens: Int, sampler: Sampler, seed: UInt64) throws -> [[Int32]] {
        precondition(!prompt.isEmpty && prompt.count <= engine.T, "generate: prompt must have 1...\(engine.T) tokens")
        let S = engine.B, T = engine.T, C = host.config.channels, V = host.config.vocabSize, Vp = host.config.paddedVocabSize
        var rng = SplitMix64(seed: seed)
        var out = [[Int32]](repeating: [], count: S)
        var tokens = [Int32](repeating: 0, count: S * T)
        for s in 0..<S { for (i, t) in prompt.enumerated() { tokens[s * T + i] = t } }
        var n = prompt.count
        let steps = min(maxNewTokens, T - prompt.count)
        var logits = [Float](repeating: 0, count: 8 * Vp)
        var rows = [Float](repeating: 0, count: 8 * C)
        for _ in 0..<max(0, steps) {
            try engine.forward(inputs: tokens, targets: nil)
            let lnf = try engine.downloadLnf()   // (S, T, C)
            for s0 in stride(from: 0, to: S, by: 8) {
                let R = min(8, S - s0)
                for r in 0..<R { for c in 0..<C { rows[r * C + c] = lnf[((s0 + r) * T + n - 1) * C + c] } }
                logits.withUnsafeMutableBufferPointer { lo in
                    rows.withUnsafeBufferPointer { ro in
                        gpt2k_gemv_rows(lo.baseAddress!, ro.baseAddress!, host.params.pointer(.wte), nil, R, C, Vp, 0, Vp)
                    }
                }
                for r in 0..<R {
                    let next = logits.withUnsafeBufferPointer { sampler.sample($0.baseAddress! + r * Vp, V: V, rng: &rng) }
                    out[s0 + r].append(next)
                    tokens[(s0 + r) * T + n] = next
                }
            }
            n += 1
        }
        return out
    }
}
