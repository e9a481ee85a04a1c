// When a GPU choice may differ from the CPU's: the rules `gpt selftest --device cuda` uses to tell
// a disagreement the arithmetic explains (the two engines' logits or losses differ by rounding,
// within a stated bound) from a wrong result. Pure functions of the CPU's numbers, unit-tested
// without a GPU. Bounds: every GPU logit within `delta` of the CPU's (checked separately), every
// loss within a relative `tol`.
import Foundation

extension CUDASelftest {
    /// Whether `pick` is an acceptable greedy choice for `logits[0..<V]`: the first maximum, or a
    /// token whose logit is within 2·delta of the maximum (each side may be off by delta).
    public static func greedyAgrees(logits: [Float], V: Int, pick: Int32, delta: Float) -> Bool {
        let p = Int(pick)
        guard p >= 0 && p < V else { return false }
        let best = logits[0..<V].max()!
        return logits[p] >= best - 2 * delta
    }

    /// The CPU's candidate list for a draw: the top-k (larger logit first, lower id among equals)
    /// or every token in id order, as `Sampler` builds it.
    static func drawList(logits: [Float], V: Int, topK: Int) -> [(logit: Float, id: Int)] {
        let all = (0..<V).map { (logit: logits[$0], id: $0) }
        guard topK > 0 && topK < V else { return all }
        return Array(all.sorted { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }.prefix(topK))
    }

    /// Whether `pick` is an explained draw from `logits[0..<V]` with `sampler` (temperature > 0)
    /// and `rng` as it was before the draw, when each GPU logit may differ from the CPU's by up to
    /// `delta`. The draw lands at u·total in the cumulative weights of the candidate list. Top-k
    /// lists are sorted by logit, so tokens within 2·delta of the pick's logit may precede it or
    /// not: the pick's span runs from the weight of the tokens surely before it to that of every
    /// token possibly before it, itself included (in id order, the span is its own interval); a
    /// top-k pick outside the CPU's list must be within 2·delta of the k-th logit. Every weight may
    /// also scale by exp(±2·delta/t), which widens the span by a relative eps.
    public static func sampleAgrees(logits: [Float], V: Int, sampler: Sampler, rng: SplitMix64, pick: Int32, delta: Float) -> Bool {
        var draw = rng, replay = rng
        let u = draw.nextFloat()
        let cpu = logits.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, V: V, rng: &replay) }
        if cpu == pick { return true }
        let p = Int(pick)
        guard p >= 0 && p < V else { return false }
        let list = drawList(logits: logits, V: V, topK: sampler.topK)
        let sorted = sampler.topK > 0 && sampler.topK < V
        let t = Double(sampler.temperature), mx = Double(list.map(\.logit).max()!), d = 2 * Double(delta)
        let weights = list.map { Foundation.exp((Double($0.logit) - mx) / t) }
        let total = weights.reduce(0, +)
        var lo = 0.0, hi = 0.0
        if sorted {
            let xp = Double(logits[p])
            if !list.contains(where: { $0.id == p }) && xp < Double(list.last!.logit) - d { return false }
            for (c, w) in zip(list, weights) {
                if Double(c.logit) > xp + d { lo += w }
                if Double(c.logit) >= xp - d { hi += w }
            }
            if !list.contains(where: { $0.id == p }) { hi = total }
        } else {
            let j = list.firstIndex { $0.id == p }!
            lo = weights[..<j].reduce(0, +)
            hi = lo + weights[j]
        }
        let target = Double(u) * total
        let eps = total * 2 * (Foundation.exp(d / t) - 1) + 1e-6 * total
        return target >= lo - eps && target < hi + eps
    }

    /// Whether a HellaSwag choice `pick` (argmin of `scores`) is explained when each score may be
    /// off by a relative `tol`: the CPU's argmin, or a score within 2·tol of it.
    public static func argminAgrees(scores: [Double], pick: Int, tol: Double) -> Bool {
        guard pick >= 0 && pick < scores.count else { return false }
        let best = scores.indices.min { scores[$0] < scores[$1] }!
        if best == pick { return true }
        return abs(scores[pick] - scores[best]) <= 2 * tol * max(abs(scores[pick]), abs(scores[best]))
    }
}
