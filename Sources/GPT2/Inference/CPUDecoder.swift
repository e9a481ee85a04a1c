// The CPU engine's KV-cache decoder: the prompt is run once for all samples (prefill), then each
// call feeds one new token per sample. Layers reuse the training kernels on (S·n) rows; attention
// reads keys and values from the cache instead of recomputing them.
// Legend: S samples (batch), P cached positions, C channels, NH heads, hs head size.
import Foundation
import GPT2Kernels

/// Decodes several sequences at once on the CPU model `model`.
public final class CPUDecoder: TokenDecoder {
    public let model: GPT2
    private let S: Int
    public let maxLength: Int
    private let keys: UnsafeMutablePointer<Float>      // (L, S, maxLength, C)
    private let values: UnsafeMutablePointer<Float>    // (L, S, maxLength, C)
    private var scratch: [UnsafeMutablePointer<Float>] = []
    private var scratchRows = 0
    public private(set) var length = 0                  // positions already in the cache
    public var samples: Int { S }

    /// - Parameters: samples: sequences decoded together; maxLength: cache capacity (≤ the model's context).
    public init(model: GPT2, samples: Int, maxLength: Int) throws {
        guard samples >= 1, maxLength >= 1, maxLength <= model.config.maxSeqLen else {
            throw InferenceError.badShape("decoder: need samples >= 1 and 1 <= maxLength <= \(model.config.maxSeqLen) (got \(samples), \(maxLength))")
        }
        self.model = model
        S = samples
        self.maxLength = maxLength
        let n = model.config.numLayers * samples * maxLength * model.config.channels
        keys = .allocate(capacity: n)
        values = .allocate(capacity: n)
        prepareHead()
    }

    deinit {
        keys.deallocate()
        values.deallocate()
        for p in scratch { p.deallocate() }
        headBF16?.deallocate()
        prefillBuffer?.deallocate()
    }

    /// Buffers for `rows` = S·n positions: x, h, qkv, att, fc (4C), mean, rstd, logits, x2, exact logits.
    private func buffers(rows: Int) -> [UnsafeMutablePointer<Float>] {
        if rows <= scratchRows { return scratch }
        for p in scratch { p.deallocate() }
        let C = model.config.channels, Vp = model.config.paddedVocabSize
        let sizes = [rows * C, rows * C, rows * 3 * C, rows * C, rows * 4 * C, rows, rows, S * Vp, rows * C, S * Vp]
        scratch = sizes.map { UnsafeMutablePointer<Float>.allocate(capacity: $0) }
        scratchRows = rows
        return scratch
    }

    /// Runs `n` new tokens per sample and returns the final-LayerNorm output of each sample's
    /// last position, (S, C).
    private func hiddenStep(tokens: [Int32], n: Int) -> UnsafePointer<Float> {
        let c = model.config
        precondition(tokens.count == S * n && length + n <= maxLength, "CPUDecoder: cache full or bad token count")
        let C = c.channels, NH = c.numHeads, hs = C / NH, L = c.numLayers
        let rows = S * n
        let buf = buffers(rows: rows)
        let (x, h, qkv, att, fc, mean, rstd, x2) = (buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[8])
        let p = model.params
        let pos0 = length
        // Embeddings: token + position.
        let wte = p.pointer(.wte), wpe = p.pointer(.wpe)
        for r in 0..<rows {
            let tok = Int(tokens[r]), t = pos0 + r % n
            precondition(tok >= 0 && tok < c.vocabSize, "CPUDecoder: token \(tok) outside the vocabulary")
            for i in 0..<C { x[r * C + i] = wte[tok * C + i] + wpe[t * C + i] }
        }
        // The block writes its output over its input (read only before the MLP); norms share h.
        let io = TransformerBlock.Buffers(ln1: h, ln1Mean: mean, ln1Rstd: rstd, qkv: qkv, atty: att, residual2: x2, ln2: h,
                                          ln2Mean: mean, ln2Rstd: rstd, fch: fc, fchGelu: fc, output: x)
        let w16 = model.bf16MatmulWeights()
        for l in 0..<L {
            let kc = keys + l * S * maxLength * C, vc = values + l * S * maxLength * C
            TransformerBlock.forward(p, layer: l, input: x, buffers: io, N: rows, C: C, bf16: { w16($0, l) }) { qkv, att in
                for r in 0..<rows {
                    let s = r / n, t = pos0 + r % n
                    (kc + (s * maxLength + t) * C).update(from: qkv + r * 3 * C + C, count: C)
                    (vc + (s * maxLength + t) * C).update(from: qkv + r * 3 * C + 2 * C, count: C)
                }
                if pos0 == 0 {
                    // Prefill from an empty cache: the training kernel's causal attention.
                    let (lse, scratch) = prefillScratch(n: n)
                    Attention.forward(out: att, lse: lse, inp: qkv, B: S, T: n, C: C, NH: NH, scratch: scratch)
                } else {
                    cacheAttention(out: att, qkv: qkv, keys: kc, values: vc, n: n, pos0: pos0, C: C, NH: NH, hs: hs)
                }
            }
        }
        // Final LayerNorm for each sample's last position only.
        for s in 0..<S { (h + s * C).update(from: x + (s * n + n - 1) * C, count: C) }
        LayerNorm.forward(out: x2, mean: mean, rstd: rstd, inp: h, weight: p.pointer(.lnfw), bias: p.pointer(.lnfb), B: 1, T: S, C: C)
        length += n
        return UnsafePointer(x2)
    }

    private var prefillBuffer: UnsafeMutablePointer<Float>?
    private var prefillCapacity = 0

    /// lse (S,NH,n) and the attention kernel's per-thread scratch for a prefill of n positions.
    private func prefillScratch(n: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        let c = model.config
        let lseCount = S * c.numHeads * n, count = lseCount + Parallel.threadCount * Attention.scratchCount(T: n, C: c.channels)
        if prefillCapacity < count {
            prefillBuffer?.deallocate()
            prefillBuffer = .allocate(capacity: count)
            prefillCapacity = count
        }
        return (prefillBuffer!, prefillBuffer! + lseCount)
    }

    /// Attention of the n new positions of each sample over the cache (positions 0...own), one
    /// (sample, head) per task.
    private func cacheAttention(out att: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, keys kc: UnsafePointer<Float>,
                                values vc: UnsafePointer<Float>, n: Int, pos0: Int, C: Int, NH: Int, hs: Int) {
        let scale = 1 / Float(hs).squareRoot()
        let maxLength = self.maxLength
        let box = UncheckedSendable(value: (qkv, att, kc, vc))
        Parallel.forEach(S * NH) { task in
            let (qkv, att, kc, vc) = box.value
            let s = task / NH, head = task % NH
            var scores = [Float](repeating: 0, count: pos0 + n)
            for j in 0..<n {
                let r = s * n + j, t = pos0 + j
                let q = qkv + r * 3 * C + head * hs
                var mx = -Float.infinity
                for u in 0...t {
                    let k = kc + (s * maxLength + u) * C + head * hs
                    var d: Float = 0
                    for i in 0..<hs { d += q[i] * k[i] }
                    scores[u] = d * scale
                    mx = max(mx, scores[u])
                }
                var sum: Float = 0
                for u in 0...t { scores[u] = Foundation.exp(scores[u] - mx); sum += scores[u] }
                let out = att + r * C + head * hs
                for i in 0..<hs { out[i] = 0 }
                for u in 0...t {
                    let w = scores[u] / sum
                    let v = vc + (s * maxLength + u) * C + head * hs
                    for i in 0..<hs { out[i] += w * v[i] }
                }
            }
        }
    }

    /// Runs `n` new tokens per sample (`tokens` is (S, n)) at positions length..<length+n and
    /// returns the logits of each sample's last position, (S, Vp).
    func step(tokens: [Int32], n: Int) -> UnsafePointer<Float> {
        let c = model.config
        let hidden = hiddenStep(tokens: tokens, n: n)
        let logits = scratch[7]
        Linear.forward(out: logits, inp: hidden, weight: model.params.pointer(.wte), bias: nil, N: S, C: c.channels, OC: c.paddedVocabSize)
        return UnsafePointer(logits)
    }

    // MARK: - Two-pass LM head
    // The tied LM head streams all of wte (Vp x C floats) per token, which bounds generation by
    // memory bandwidth. For greedy and top-k sampling only the k best logits matter, so: (1) score
    // every token with a bf16 copy of wte (half the bytes), (2) keep every token whose score could
    // still reach the k best (|error| <= (2^-9 + 2^-12) * |w_row| * |x|, rounding plus
    // accumulation), (3) recompute those exactly in fp32 with the same kernel as the full head.
    // The sampled token is therefore exactly the one the full fp32 head gives.

    private var headBF16: UnsafeMutablePointer<UInt16>?
    private var headNorms: [Float] = []

    private func prepareHead() {
        guard headBF16 == nil else { return }
        let c = model.config, C = c.channels, Vp = c.paddedVocabSize
        let w = UnsafeMutablePointer<UInt16>.allocate(capacity: Vp * C)
        headNorms = [Float](repeating: 0, count: Vp)
        let box = UncheckedSendable(value: (w, model.params.pointer(.wte)))
        headNorms.withUnsafeMutableBufferPointer { norms in
            let nb = UncheckedSendable(value: norms.baseAddress!)
            Parallel.chunks(Vp, minChunk: 1024) { r in
                gpt2k_to_bf16_rows(box.value.0, nb.value, box.value.1, C, r.lowerBound, r.upperBound)
            }
        }
        headBF16 = w
    }

    /// Exact (logit, id) candidates, in id order, that contain the `k` best tokens of sample `s`.
    private func headCandidates(hidden: UnsafePointer<Float>, k: Int) -> [[(Float, Int32)]] {
        prepareHead()
        let c = model.config, C = c.channels, V = c.vocabSize, Vp = c.paddedVocabSize
        let approx = scratch[7], exact = scratch[9]
        let box = UncheckedSendable(value: (approx, hidden, headBF16!))
        Parallel.chunks(V, minChunk: 1024, align: 16) { r in
            let (approx, hidden, w) = box.value
            gpt2k_gemv_bf16_rows(approx, hidden, w, S, C, Vp, r.lowerBound, r.upperBound)
        }
        let wte = model.params.pointer(.wte)
        return (0..<S).map { s in
            let x = hidden + s * C, a = approx + s * Vp
            var xx: Float = 0
            for i in 0..<C { xx += x[i] * x[i] }
            let scale = (Float(1) / 512 + Float(1) / 4096) * xx.squareRoot() * 1.001
            // The k-th largest lower bound: every token above it in the upper bound stays.
            var lows = [Float](repeating: -.infinity, count: k)   // descending
            for i in 0..<V {
                let low = a[i] - scale * headNorms[i]
                if low <= lows[k - 1] { continue }
                var j = k - 1
                while j > 0 && lows[j - 1] < low { lows[j] = lows[j - 1]; j -= 1 }
                lows[j] = low
            }
            let threshold = lows[k - 1]
            var out: [(Float, Int32)] = []
            for i in 0..<V where a[i] + scale * headNorms[i] >= threshold {
                gpt2k_gemv_rows(exact + s * Vp, x, wte, nil, 1, C, Vp, i, i + 1)
                out.append((exact[s * Vp + i], Int32(i)))
            }
            return out
        }
    }

    /// Use the two-pass LM head for greedy and top-k sampling (same tokens, about half the bytes).
    public var twoPassHead = true

    public func reset() { length = 0 }

    public func next(tokens: [Int32], n: Int, sampler: Sampler, rng: inout SplitMix64) throws -> [Int32] {
        guard n >= 1, tokens.count == S * n else {
            throw InferenceError.badShape("decoder: expected \(S)·\(n) tokens, got \(tokens.count)")
        }
        guard length + n <= maxLength else { throw InferenceError.tooLong(T: length + n, maxSeqLen: maxLength) }
        try model.checkTokens(tokens)
        let V = model.config.vocabSize, Vp = model.config.paddedVocabSize
        var next = [Int32](repeating: 0, count: S)
        if twoPassHead, let decisive = sampler.decisiveCount(V: V) {
            let candidates = headCandidates(hidden: hiddenStep(tokens: tokens, n: n), k: decisive)
            for s in 0..<S { next[s] = sampler.sample(candidates: candidates[s], rng: &rng) }
        } else {
            let logits = step(tokens: tokens, n: n)
            for s in 0..<S { next[s] = sampler.sample(logits + s * Vp, V: V, rng: &rng) }
        }
        return next
    }
}
