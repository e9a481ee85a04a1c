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
        pick(count: V, selectTopK: topK > 0 && topK < V, logit: { logits[$0] }, id: { Int32($0) }, rng: &rng)
    }

    /// Picks from (exact logit, id) candidates in increasing id order. Gives the same token as
    /// `sample` on the full logits whenever the candidates include the `topK` best (1 if greedy).
    public func sample(candidates: [(Float, Int32)], rng: inout SplitMix64) -> Int32 {
        // The vocabulary is larger than k here (see `decisiveCount`), so top-k always applies.
        pick(count: candidates.count, selectTopK: topK > 0, logit: { candidates[$0].0 }, id: { candidates[$0].1 }, rng: &rng)
    }

    /// How many of the best tokens decide the draw: 1 when greedy, k with top-k, nil when all do.
    public func decisiveCount(V: Int) -> Int? {
        if temperature <= 0 { return 1 }
        return topK > 0 && topK < V ? topK : nil
    }

    @inline(__always)
    private func pick(count: Int, selectTopK: Bool, logit: (Int) -> Float, id: (Int) -> Int32, rng: inout SplitMix64) -> Int32 {
        if temperature <= 0 {
            var best = 0
            for i in 1..<count where logit(i) > logit(best) { best = i }   // first max wins, as torch.argmax
            return id(best)
        }
        // The k largest logits, largest first (all, in id order, when k is 0 or covers the vocabulary).
        var top: [(Float, Int32)]
        if selectTopK {
            top = []
            top.reserveCapacity(topK + 1)
            for i in 0..<count {
                let x = logit(i)
                if top.count == topK && x <= top[topK - 1].0 { continue }
                var j = top.count
                while j > 0 && top[j - 1].0 < x { j -= 1 }
                top.insert((x, id(i)), at: j)
                if top.count > topK { top.removeLast() }
            }
        } else {
            top = (0..<count).map { (logit($0), id($0)) }
        }
        let maxLogit = top.reduce(-Float.infinity) { max($0, $1.0) }
        var total: Float = 0
        var weights = [Float](repeating: 0, count: top.count)
        for (i, c) in top.enumerated() {
            weights[i] = ((c.0 - maxLogit) / temperature).exp()
            total += weights[i]
        }
        let u = rng.nextFloat() * total
        var acc: Float = 0
        for (i, w) in weights.enumerated() {
            acc += w
            if u < acc { return top[i].1 }
        }
        return top[top.count - 1].1
    }
}

private extension Float {
    func exp() -> Float { Float(Foundation.exp(Double(self))) }
}

import Foundation
