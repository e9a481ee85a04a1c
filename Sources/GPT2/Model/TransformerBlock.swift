// One transformer block's forward pass on the CPU, written once and used three ways: training
// (the outputs land in per-layer activation slices kept for backward), scoring (buffers reused
// from layer to layer) and decoding (attention reads a KV cache). Only the attention differs, so
// the caller passes it in. llm.c order: ln1 → qkv → attention → proj (+ residual) → ln2 → fc →
// GELU → fcproj (+ residual).
// Legend: N rows (B·T, or samples × new tokens), C channels.
import GPT2Kernels

enum TransformerBlock {
    /// Where one block writes, N rows each (fch/fchGelu may be the same buffer when the pre-GELU
    /// values need not be kept).
    struct Buffers {
        var ln1: UnsafeMutablePointer<Float>        // (N,C)
        var ln1Mean: UnsafeMutablePointer<Float>    // (N)
        var ln1Rstd: UnsafeMutablePointer<Float>    // (N)
        var qkv: UnsafeMutablePointer<Float>        // (N,3C)
        var atty: UnsafeMutablePointer<Float>       // (N,C)
        var residual2: UnsafeMutablePointer<Float>  // (N,C)
        var ln2: UnsafeMutablePointer<Float>        // (N,C)
        var ln2Mean: UnsafeMutablePointer<Float>    // (N)
        var ln2Rstd: UnsafeMutablePointer<Float>    // (N)
        var fch: UnsafeMutablePointer<Float>        // (N,4C) before GELU
        var fchGelu: UnsafeMutablePointer<Float>    // (N,4C) after GELU
        var output: UnsafeMutablePointer<Float>     // (N,C) residual3, the block's output
    }

    /// Runs layer `l` of `p` on `input` (N,C). `bf16(name)` gives the bf16 copy of a weight of
    /// this layer (nil: fp32 matmuls); `attention(qkv, atty)` fills atty (N,C) from qkv (N,3C).
    static func forward(_ p: ParameterTensors, layer l: Int, input: UnsafePointer<Float>, buffers o: Buffers, N: Int, C: Int,
                        bf16: (ParameterName) -> Matmul.BF16Weight? = { _ in nil },
                        attention: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        LayerNorm.forward(out: o.ln1, mean: o.ln1Mean, rstd: o.ln1Rstd, inp: input,
                          weight: p.pointer(.ln1w, layer: l), bias: p.pointer(.ln1b, layer: l), B: 1, T: N, C: C)
        Linear.forward(out: o.qkv, inp: o.ln1, weight: p.pointer(.qkvw, layer: l), bias: p.pointer(.qkvb, layer: l), N: N, C: C, OC: 3 * C,
                       bf16: bf16(.qkvw))
        attention(o.qkv, o.atty)
        Linear.forward(out: o.residual2, inp: o.atty, weight: p.pointer(.attprojw, layer: l), bias: p.pointer(.attprojb, layer: l),
                       N: N, C: C, OC: C, residual: input, bf16: bf16(.attprojw))
        LayerNorm.forward(out: o.ln2, mean: o.ln2Mean, rstd: o.ln2Rstd, inp: o.residual2,
                          weight: p.pointer(.ln2w, layer: l), bias: p.pointer(.ln2b, layer: l), B: 1, T: N, C: C)
        Linear.forward(out: o.fch, inp: o.ln2, weight: p.pointer(.fcw, layer: l), bias: p.pointer(.fcb, layer: l), N: N, C: C, OC: 4 * C,
                       bf16: bf16(.fcw))
        GELU.forward(out: o.fchGelu, inp: o.fch, N: N * 4 * C)
        Linear.forward(out: o.output, inp: o.fchGelu, weight: p.pointer(.fcprojw, layer: l), bias: p.pointer(.fcprojb, layer: l),
                       N: N, C: 4 * C, OC: C, residual: o.residual2, bf16: bf16(.fcprojw))
    }
}

/// A linear layer for any row count: GEMM (Matmul; bf16 when given the weight's bf16 copy) for
/// many rows; for a few rows (decoding) an fp32 weight-streaming GEMV, since a GEMM would re-pack
/// the whole weight matrix for each call.
enum Linear {
    static let gemvRows = 8

    /// out (N,OC) = inp (N,C) · weightᵀ + bias (+ residual).
    static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>?, N: Int, C: Int, OC: Int, residual: UnsafePointer<Float>? = nil,
                        bf16: Matmul.BF16Weight? = nil) {
        guard N <= gemvRows else {
            Matmul.forward(out: out, inp: inp, weight: weight, bias: bias, B: 1, T: N, C: C, OC: OC, residual: residual, bf16: bf16)
            return
        }
        let box = UncheckedSendable(value: (out, inp, weight, bias))
        Parallel.chunks(OC, minChunk: 256, align: 16) { r in
            let (out, inp, weight, bias) = box.value
            gpt2k_gemv_rows(out, inp, weight, bias, N, C, OC, r.lowerBound, r.upperBound)
        }
        if let residual {
            for i in 0..<N * OC { out[i] += residual[i] }
        }
    }
}
