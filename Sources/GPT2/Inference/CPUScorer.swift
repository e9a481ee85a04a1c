// Per-token losses on the CPU without training's bookkeeping: one set of block buffers reused
// from layer to layer (no activations kept for backward), and the LM head (most of a small
// model's work: Vp·C per row) run only on the positions that are scored. HellaSwag scores only
// the endings, so most context rows never reach the head.
// Legend: B batch, T time, C channels, NH heads, Vp padded vocab, N = B·T rows, n scored rows.
import Foundation

enum CPUScorer {
    /// Rows of logits computed at once (bounds the (rows, Vp) buffer).
    static let headRows = 256

    /// Losses of (B,T) `inputs` against `targets`; a negative target is not scored (loss 0).
    /// Ids must already be checked against the vocabulary.
    static func tokenLosses(model: GPT2, inputs: [Int32], targets: [Int32], B: Int, T: Int) -> [Float] {
        let c = model.config, p = model.params
        let C = c.channels, NH = c.numHeads, N = B * T
        let scored = targets.indices.filter { targets[$0] >= 0 }
        var out = [Float](repeating: 0, count: N)
        guard !scored.isEmpty else { return out }

        // x, ln, qkv, atty, residual2, fch (GELU in place), means/rstds, attention lse and scratch.
        let sizes = [N * C, N * C, N * 3 * C, N * C, N * C, N * 4 * C, N, N, B * NH * T, Parallel.threadCount * Attention.scratchCount(T: T, C: C)]
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: sizes.reduce(0, +))
        defer { memory.deallocate() }
        var parts: [UnsafeMutablePointer<Float>] = []
        var offset = 0
        for s in sizes { parts.append(memory + offset); offset += s }
        let (x, ln, qkv, atty, res2, fch, mean, rstd, lse, scratch) =
            (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7], parts[8], parts[9])

        inputs.withUnsafeBufferPointer { Encoder.forward(out: x, inp: $0.baseAddress!, wte: p.pointer(.wte), wpe: p.pointer(.wpe), B: B, T: T, C: C) }
        let io = TransformerBlock.Buffers(ln1: ln, ln1Mean: mean, ln1Rstd: rstd, qkv: qkv, atty: atty, residual2: res2, ln2: ln,
                                          ln2Mean: mean, ln2Rstd: rstd, fch: fch, fchGelu: fch, output: x)
        let w16 = model.bf16MatmulWeights()
        for l in 0..<c.numLayers {
            TransformerBlock.forward(p, layer: l, input: x, buffers: io, N: N, C: C, bf16: { w16($0, l) }) { qkv, atty in
                Attention.forward(out: atty, lse: lse, inp: qkv, B: B, T: T, C: C, NH: NH, scratch: scratch)
            }
        }

        // Final LayerNorm, LM head and cross-entropy on the scored rows only.
        let losses = headLosses(model: model, rows: scored.map { UnsafePointer(x + $0 * C) }, targets: scored.map { targets[$0] },
                                bf16: w16(.wte, nil))
        for (j, i) in scored.enumerated() { out[i] = losses[j] }
        return out
    }

    /// Final LayerNorm, LM head and cross-entropy of `rows` (each C floats of the last block's
    /// output) against `targets`, a block of rows at a time (bounds the (rows, Vp) logits).
    static func headLosses(model: GPT2, rows: [UnsafePointer<Float>], targets: [Int32], bf16: Matmul.BF16Weight?) -> [Float] {
        let c = model.config, p = model.params, C = c.channels, V = c.vocabSize, Vp = c.paddedVocabSize
        var out = [Float](repeating: 0, count: rows.count)
        guard !rows.isEmpty else { return out }
        let block = min(headRows, rows.count)
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: 2 * block * C + block * Vp + 4 * block)
        defer { memory.deallocate() }
        let gathered = memory, normed = memory + block * C, logits = normed + block * C
        let losses = logits + block * Vp, lse = losses + block, mean = lse + block, rstd = mean + block
        for b0 in stride(from: 0, to: rows.count, by: block) {
            let n = min(block, rows.count - b0)
            for j in 0..<n { (gathered + j * C).update(from: rows[b0 + j], count: C) }
            LayerNorm.forward(out: normed, mean: mean, rstd: rstd, inp: gathered, weight: p.pointer(.lnfw), bias: p.pointer(.lnfb), B: 1, T: n, C: C)
            Linear.forward(out: logits, inp: normed, weight: p.pointer(.wte), bias: nil, N: n, C: C, OC: Vp, bf16: bf16)
            Array(targets[b0..<b0 + n]).withUnsafeBufferPointer {
                CrossEntropy.forward(losses: losses, lse: lse, logits: logits, targets: $0.baseAddress!, B: 1, T: n, V: V, Vp: Vp)
            }
            for j in 0..<n { out[b0 + j] = losses[j] }
        }
        return out
    }
}
