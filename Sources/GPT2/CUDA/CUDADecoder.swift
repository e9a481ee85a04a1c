// The GPU's KV-cache decoder (the inference seam's `TokenDecoder`): each call embeds the new
// tokens at their positions, runs the forward-only layer stack (CUDAForward.swift) on the S·n new
// rows with attention over the cache (kv_cache_write_kernel then decode_attention_kernel; a
// prefill into an empty cache uses the training attention kernels), computes the fp32 logits of
// each sample's last position only (one cuBLASLt call reading those rows with a stride) and picks
// the next tokens with sample_kernel. Only the S chosen ids come back to the host; the host draws
// the S uniforms (one rng.nextFloat() per sample, in sample order, when sampling) and uploads them
// with the tokens, so the random stream is consumed exactly as by the CPU decoder. A top-k above
// SamplingTiling.maxTopK (and below V) is drawn on the host from downloaded logits.
// Legend: S samples, n new tokens per sample, L layers, C channels, NH heads, V vocab, Vp padded vocab.
import Foundation

/// Decodes `samples` sequences at once on the GPU, reading weights through `CUDAWeights`.
final class CUDADecoder: TokenDecoder {
    let context: CUDAContext
    let weights: CUDAWeights
    /// Keeps the weights' buffer alive (the engine that made this decoder).
    let owner: AnyObject
    let samples: Int
    let maxLength: Int
    private(set) var length = 0
    private let kcache, vcache: CUDABuffer       // (L, S, maxLength, C) floatX each
    private let logits: CUDABuffer               // (S, Vp) fp32
    private let uniforms, ids: CUDABuffer        // (S) fp32, (S) int32
    private var drawWeights: CUDABuffer?         // (S, Vp) fp32, for draws over the whole vocabulary
    private var scratch: CUDAForwardScratch?

    init(context: CUDAContext, weights: CUDAWeights, owner: AnyObject, samples: Int, maxLength: Int) throws {
        let c = weights.config
        guard samples >= 1, maxLength >= 1, maxLength <= c.maxSeqLen else {
            throw InferenceError.badShape("decoder: need samples >= 1 and 1 <= maxLength <= \(c.maxSeqLen) (got \(samples), \(maxLength))")
        }
        guard samples * c.numHeads <= 65535 else {   // the prefill's attention grid has samples·NH blocks in y
            throw InferenceError.badShape("the CUDA decoder takes at most \(65535 / c.numHeads) samples at once (got \(samples))")
        }
        guard maxLength <= CUDAKernelSource.DecodeTiling.maxPositions else {
            throw InferenceError.badShape("the CUDA decoder holds at most \(CUDAKernelSource.DecodeTiling.maxPositions) positions (got \(maxLength))")
        }
        precondition(c.headSize == context.headSize, "context compiled for head size \(context.headSize), model has \(c.headSize)")
        self.context = context
        self.weights = weights
        self.owner = owner
        self.samples = samples
        self.maxLength = maxLength
        let cache = c.numLayers * samples * maxLength * c.channels
        kcache = try context.allocateX(cache)
        vcache = try context.allocateX(cache)
        logits = try context.allocateF(samples * c.paddedVocabSize)
        uniforms = try context.allocateF(samples)
        ids = try context.allocate(bytes: samples * 4)
    }

    func reset() { length = 0 }

    /// Layer l's slice of a cache.
    private func cache(_ b: CUDABuffer, _ l: Int) -> CUdeviceptr {
        let c = weights.config
        return b.at(l * samples * maxLength * c.channels * context.precision.elementSize)
    }

    func next(tokens: [Int32], n: Int, sampler: Sampler, rng: inout SplitMix64) throws -> [Int32] {
        let c = weights.config, ctx = context, S = samples
        let C = c.channels, NH = c.numHeads, V = c.vocabSize, Vp = c.paddedVocabSize
        let ws = weights.elementSize, xs = ctx.precision.elementSize   // bytes per weight, per activation
        guard n >= 1, tokens.count == S * n else {
            throw InferenceError.badShape("decoder: expected \(S)·\(n) tokens, got \(tokens.count)")
        }
        guard length + n <= maxLength else { throw InferenceError.tooLong(T: length + n, maxSeqLen: maxLength) }
        if let i = tokens.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
            throw InferenceError.tokenOutOfVocabulary(id: tokens[i], index: i, vocabSize: V)
        }
        let rows = S * n, pos0 = length
        if scratch == nil || scratch!.rows < rows {
            scratch = nil
            scratch = try CUDAForwardScratch(context: ctx, config: c, rows: rows, scoring: false)
        }
        let s = scratch!
        try tokens.withUnsafeBytes { try ctx.upload(s.tokens.pointer, $0.baseAddress!, bytes: $0.count) }
        // the rows of each sample sit at positions pos0 ..< pos0+n: wpe from row pos0
        try ctx.encoderForward(out: s.x0.pointer, inp: s.tokens.pointer, wte: weights.w(.wte),
                               wpe: weights.w(.wpe) + CUdeviceptr(pos0 * C * ws), B: S, T: n, C: C)
        try ctx.transformerForward(weights: weights, scratch: s, B: S, T: n) { l, qkv, out in
            let kc = cache(kcache, l), vc = cache(vcache, l)
            try ctx.kvCacheWrite(kcache: kc, vcache: vc, qkv: qkv, S: S, n: n, pos0: pos0, maxLength: maxLength, C: C)
            if pos0 == 0 {   // nothing cached before: causal attention over the new rows alone
                try ctx.causalAttention(out: out, lse: s.attLse.pointer, qkv: qkv, B: S, T: n, C: C, NH: NH)
            } else {
                try ctx.decodeAttention(out: out, qkv: qkv, kcache: kc, vcache: vc, S: S, n: n, pos0: pos0, maxLength: maxLength, C: C, NH: NH)
            }
        }
        length += n
        // logits (S, Vp) fp32 of each sample's last row: column-major lnf rows with stride n·C
        try ctx.gemm(transA: true, transB: false, m: Vp, n: S, k: C, a: weights.w(.wte), lda: C,
                     b: s.ln.pointer + CUdeviceptr((n - 1) * C * xs), ldb: n * C, d: logits.pointer, ldd: Vp, fp32Output: true)
        return try choose(sampler: sampler, rng: &rng)
    }

    /// The next token of every sample from `logits`, by `sampler`, consuming `rng` as the CPU does.
    private func choose(sampler: Sampler, rng: inout SplitMix64) throws -> [Int32] {
        let c = weights.config, ctx = context, S = samples, V = c.vocabSize, Vp = c.paddedVocabSize
        let k = sampler.topK, greedy = sampler.temperature <= 0
        if !greedy && k > CUDAKernelSource.SamplingTiling.maxTopK && k < V {
            // a top-k too large for the device's sort: the host's sampler on the downloaded logits
            var host = [Float](repeating: 0, count: S * Vp)
            try host.withUnsafeMutableBytes { try ctx.download($0.baseAddress!, logits.pointer, bytes: $0.count) }
            return host.withUnsafeBufferPointer { h in (0..<S).map { sampler.sample(h.baseAddress! + $0 * Vp, V: V, rng: &rng) } }
        }
        var weightsScratch: CUdeviceptr = 0
        if !greedy {
            let draws = (0..<S).map { _ in rng.nextFloat() }
            try draws.withUnsafeBytes { try ctx.upload(uniforms.pointer, $0.baseAddress!, bytes: $0.count) }
            if k == 0 || k >= V {
                if drawWeights == nil { drawWeights = try ctx.allocateF(S * Vp) }
                weightsScratch = drawWeights!.pointer
            }
        }
        try ctx.sample(ids: ids.pointer, weights: weightsScratch, logits: logits.pointer, uniforms: greedy ? 0 : uniforms.pointer,
                       S: S, V: V, Vp: Vp, topK: k, temperature: sampler.temperature)
        var out = [Int32](repeating: 0, count: S)
        try out.withUnsafeMutableBytes { try ctx.download($0.baseAddress!, ids.pointer, bytes: $0.count) }
        return out
    }

    /// The fp32 logits (S, Vp) of the last call (for the selftest).
    func downloadLogits() throws -> [Float] {
        var host = [Float](repeating: 0, count: samples * weights.config.paddedVocabSize)
        try host.withUnsafeMutableBytes { try context.download($0.baseAddress!, logits.pointer, bytes: $0.count) }
        return host
    }
}
