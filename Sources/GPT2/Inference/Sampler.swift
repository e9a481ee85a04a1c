// Choosing the next token from logits: greedy (temperature 0), or top-k then temperature then a
// draw from the softmax, as transformers' generate(do_sample=True, top_k=k, temperature=t).
// Only the first vocabSize logits are candidates (padded rows are never sampled).

/// SplitMix64: small, fast, deterministic for a given seed (no global state).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 24 bits, like llm.c's random_f32.
    public mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

public struct Sampler: Sendable {
    /// 0 keeps every token.
    public var topK: Int
    /// 0 means greedy (argmax).
    public var temperature: Float

    public init(topK: Int = 50, temperature: Float = 1) {
        self.topK = topK
        self.temperature = temperature
    }

    /// Picks a token from `logits[0..<V]`.
    public func sample(_ logits: UnsafePointer<Float>, V: Int, rng: inout SplitMix64) -> Int32 {
        if temperature <= 0 {
            var best = 0
            for i in 1..<V where logits[i] > logits[best] { best = i }   // first max wins, as torch.argmax
            return Int32(best)
        }
        // Candidates: the k largest logits (all when k is 0 or >= V).
        var candidates: [(Float, Int32)]
        if topK > 0 && topK < V {
            candidates = topKLogits(logits, V: V, k: topK)
        } else {
            candidates = (0..<V).map { (logits[$0], Int32($0)) }
        }
        let maxLogit = candidates.reduce(-Float.infinity) { max($0, $1.0) }
        var total: Float = 0
        var weights = [Float](repeating: 0, count: candidates.count)
        for (i, c) in candidates.enumerated() {
            weights[i] = ((c.0 - maxLogit) / temperature).exp()
            total += weights[i]
        }
        let u = rng.nextFloat() * total
        var acc: Float = 0
        for (i, w) in weights.enumerated() {
            acc += w
            if u < acc { return candidates[i].1 }
        }
        return candidates[candidates.count - 1].1
    }

    /// The k largest logits with their ids, largest first (a bounded insertion pass: k is small).
    func topKLogits(_ logits: UnsafePointer<Float>, V: Int, k: Int) -> [(Float, Int32)] {
        var top: [(Float, Int32)] = []
        top.reserveCapacity(k + 1)
        for i in 0..<V {
            let x = logits[i]
            if top.count == k && x <= top[k - 1].0 { continue }
            var j = top.count
            while j > 0 && top[j - 1].0 < x { j -= 1 }
            top.insert((x, Int32(i)), at: j)
            if top.count > k { top.removeLast() }
        }
        return top
    }
}

private extension Float {
    func exp() -> Float { Float(Foundation.exp(Double(self))) }
}

import Foundation
