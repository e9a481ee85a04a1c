// Activations saved by the forward pass for backward, and backward's scratch buffers, for one
// (B, T). Unlike llm.c's CPU code there is no (L,B,NH,T,T) preatt/att: attention keeps only its
// per-row log-sum-exp and recomputes probabilities in backward (FlashAttention style), and the
// residual adds are fused into the projection matmuls (no attproj/fcproj buffers). The
// LayerNorm outputs and the GELU output are cheap to recompute, so only the current layer's copy
// is kept (backward recomputes them): 10C floats per token and layer instead of llm.c's 16C + 2·NH·T.
// Legend: L layers, B batch, T time, C channels, NH heads, Vp padded vocab.

/// Named views into one allocation holding the forward activations for (B, T).
final class ActivationTensors {
    let B: Int, T: Int
    let buffer: FlatBuffer

    let encoded: UnsafeMutablePointer<Float>    // (B, T, C)
    let ln1: UnsafeMutablePointer<Float>        // (B, T, C)     current layer only (recomputed in backward)
    let ln1Mean: UnsafeMutablePointer<Float>    // (L, B, T)
    let ln1Rstd: UnsafeMutablePointer<Float>    // (L, B, T)
    let qkv: UnsafeMutablePointer<Float>        // (L, B, T, 3C)
    let atty: UnsafeMutablePointer<Float>       // (L, B, T, C)  attention output before c_proj
    let attLse: UnsafeMutablePointer<Float>     // (L, B, NH, T) softmax log-sum-exp per query row
    let residual2: UnsafeMutablePointer<Float>  // (L, B, T, C)  residual + attention branch
    let ln2: UnsafeMutablePointer<Float>        // (B, T, C)     current layer only (recomputed in backward)
    let ln2Mean: UnsafeMutablePointer<Float>    // (L, B, T)
    let ln2Rstd: UnsafeMutablePointer<Float>    // (L, B, T)
    let fch: UnsafeMutablePointer<Float>        // (L, B, T, 4C) MLP pre-activation
    let fchGelu: UnsafeMutablePointer<Float>    // (B, T, 4C)    current layer only (recomputed in backward)
    let residual3: UnsafeMutablePointer<Float>  // (L, B, T, C)  residual2 + MLP branch
    let lnf: UnsafeMutablePointer<Float>        // (B, T, C)
    let lnfMean: UnsafeMutablePointer<Float>    // (B, T)
    let lnfRstd: UnsafeMutablePointer<Float>    // (B, T)
    let logits: UnsafeMutablePointer<Float>     // (B, T, Vp)  overwritten by dlogits in backward
    let lse: UnsafeMutablePointer<Float>        // (B, T) log-sum-exp of each logits row over V
    let losses: UnsafeMutablePointer<Float>     // (B, T)
    let attScratch: UnsafeMutablePointer<Float> // (threads, Attention.scratchCount) per-thread score blocks

    init(config c: GPT2Config, B: Int, T: Int) {
        self.B = B
        self.T = T
        let L = c.numLayers, C = c.channels, NH = c.numHeads, BT = B * T
        let sizes = [BT * C, BT * C, L * BT, L * BT, L * BT * 3 * C, L * BT * C, L * B * NH * T,
                     L * BT * C, BT * C, L * BT, L * BT, L * BT * 4 * C, BT * 4 * C, L * BT * C,
                     BT * C, BT, BT, BT * c.paddedVocabSize, BT, BT,
                     Parallel.threadCount * Attention.scratchCount(T: T, C: C)]
        // Round each slice to 16 floats so every buffer starts 64-byte aligned.
        let padded = sizes.map { ($0 + 15) / 16 * 16 }
        buffer = FlatBuffer(count: padded.reduce(0, +))
        var p = buffer.memory
        func next(_ i: Int) -> UnsafeMutablePointer<Float> { defer { p += padded[i] }; return p }
        encoded = next(0); ln1 = next(1); ln1Mean = next(2); ln1Rstd = next(3); qkv = next(4)
        atty = next(5); attLse = next(6); residual2 = next(7); ln2 = next(8); ln2Mean = next(9)
        ln2Rstd = next(10); fch = next(11); fchGelu = next(12); residual3 = next(13); lnf = next(14)
        lnfMean = next(15); lnfRstd = next(16); logits = next(17); lse = next(18); losses = next(19)
        attScratch = next(20)
    }
}

/// Backward scratch for one (B, T): the residual-stream gradient plus reusable per-layer
/// buffers (llm.c's CUDA version does the same; the CPU version keeps a full copy per layer).
final class GradientScratch {
    let B: Int, T: Int
    let buffer: FlatBuffer
    let dresidual: UnsafeMutablePointer<Float>  // (B, T, C)  gradient of the residual stream
    let dbtc: UnsafeMutablePointer<Float>       // (B, T, C)  dlnf / datty / dln2 / dln1
    let dqkv: UnsafeMutablePointer<Float>       // (B, T, 3C)
    let dfch: UnsafeMutablePointer<Float>       // (B, T, 4C)
    let lnScratch: UnsafeMutablePointer<Float>  // (threads, 2C) LayerNorm dweight/dbias partials

    init(config c: GPT2Config, B: Int, T: Int) {
        self.B = B
        self.T = T
        let C = c.channels, BT = B * T, nt = Parallel.threadCount
        let sizes = [BT * C, BT * C, BT * 3 * C, BT * 4 * C, nt * 2 * C]
        let padded = sizes.map { ($0 + 15) / 16 * 16 }
        buffer = FlatBuffer(count: padded.reduce(0, +))
        var p = buffer.memory
        func next(_ i: Int) -> UnsafeMutablePointer<Float> { defer { p += padded[i] }; return p }
        dresidual = next(0); dbtc = next(1); dqkv = next(2); dfch = next(3); lnScratch = next(4)
    }
}
