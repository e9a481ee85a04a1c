// Autoregressive generation on any engine (the inference seam's decoder): prefill the prompt,
// then one token per sample per step. Past the context, as nanoGPT's generate does, each token is
// predicted from the last block_size tokens: the cache is refilled with that window every step
// (the same cost as nanoGPT, which has no cache at all).
import Foundation

/// Generates continuations of one prompt for several samples at once.
public final class Generator {
    public let engine: any InferenceEngine
    public let samples: Int

    public init(engine: any InferenceEngine, samples: Int) {
        self.engine = engine
        self.samples = samples
    }

    /// A generator on the CPU model `model` (the decoder is sized per call).
    public convenience init(model: GPT2, samples: Int) {
        self.init(engine: model, samples: samples)
    }

    /// Generates `maxNewTokens` tokens after `prompt` for every sample; returns the new ids per
    /// sample. Deterministic for a given seed (the RNG is SplitMix64(seed), one draw per sample
    /// and token when sampling).
    public func generate(prompt: [Int32], maxNewTokens: Int, sampler: Sampler, seed: UInt64) throws -> [[Int32]] {
        guard !prompt.isEmpty else { throw InferenceError.badShape("generate: the prompt is empty") }
        try engine.checkTokens(prompt)
        var out = [[Int32]](repeating: [], count: samples)
        guard maxNewTokens > 0 else { return out }
        let block = engine.config.maxSeqLen
        let decoder = try engine.makeDecoder(samples: samples, maxLength: min(block, prompt.count + maxNewTokens))
        var rng = SplitMix64(seed: seed)
        // The first call: the prompt (its last `block` tokens when longer than the context).
        let start = Array(prompt.suffix(decoder.maxLength))
        var next = try decoder.next(tokens: Array(repeating: start, count: samples).flatMap { $0 }, n: start.count,
                                    sampler: sampler, rng: &rng)
        var history = Array(repeating: prompt, count: samples)
        for _ in 0..<maxNewTokens {
            for s in 0..<samples { out[s].append(next[s]); history[s].append(next[s]) }
            if out[0].count == maxNewTokens { break }
            if decoder.length < decoder.maxLength {
                next = try decoder.next(tokens: next, n: 1, sampler: sampler, rng: &rng)
            } else {
                // Context full: predict from the last `block` tokens, refilled into an empty cache.
                decoder.reset()
                let window = history.flatMap { $0.suffix(decoder.maxLength) }
                next = try decoder.next(tokens: window, n: decoder.maxLength, sampler: sampler, rng: &rng)
            }
        }
        return out
    }
}
