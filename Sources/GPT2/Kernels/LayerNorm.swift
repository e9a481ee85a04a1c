// LayerNorm over the last dimension (eps 1e-5, biased variance, as torch.nn.LayerNorm).
// Backward: dinp accumulates (+=, it is the residual stream), dweight/dbias accumulate (+=);
// each thread sums its rows' dweight/dbias into a private slice that is reduced at the end.
// Reference: llm.c layernorm_forward / layernorm_backward.
// Legend: B batch, T time, C channels.
import GPT2Kernels

public enum LayerNorm {
    /// - Parameters: out (B,T,C); mean, rstd (B,T) saved for backward; inp (B,T,C); weight, bias (C).
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, B: Int, T: Int, C: Int) {
        Parallel.chunks(B * T, minChunk: 16) { r in
            let o = r.lowerBound
            gpt2k_layernorm_forward(out + o * C, mean + o, rstd + o, inp + o * C, weight, bias, r.count, C)
        }
    }

    /// - Parameters: dinp (B,T,C) +=; dweight, dbias (C) +=; dout (B,T,C); inp (B,T,C);
    ///   weight (C); mean, rstd (B,T); scratch: at least threadCount * 2C floats.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                B: Int, T: Int, C: Int, scratch: UnsafeMutablePointer<Float>) {
        let N = B * T
        let parts = max(1, min(Parallel.threadCount, N / 16))
        if parts == 1 {
            gpt2k_layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C)
            return
        }
        scratch.update(repeating: 0, count: parts * 2 * C)
        Parallel.forEach(parts) { p in
            let lo = N * p / parts, hi = N * (p + 1) / parts
            let dw = scratch + p * 2 * C
            gpt2k_layernorm_backward(dinp + lo * C, dw, dw + C, dout + lo * C, inp + lo * C, weight,
                                     mean + lo, rstd + lo, hi - lo, C)
        }
        for p in 0..<parts {   // reduce the per-thread partial sums (2C floats each)
            let dw = scratch + p * 2 * C
            for c in 0..<C { dweight[c] += dw[c]; dbias[c] += dw[C + c] }
        }
    }
}
