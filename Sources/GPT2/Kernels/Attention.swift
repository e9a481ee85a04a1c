// Causal multi-head self-attention on the fused qkv activations, FlashAttention style:
// forward keeps only the output and each query row's log-sum-exp; backward recomputes the
// probabilities. Work runs per (batch, head) on one thread, in blocks of `rowBlock` query
// rows, so a thread never holds more than two (rowBlock × T) score blocks (no (B,NH,T,T) tensor).
// Backward writes dinp (=): the q, k and v gradients of each head.
// Reference: llm.c attention_forward / attention_backward; Dao et al., FlashAttention (2022).
// Legend: B batch, T time, C channels, NH heads, hs = C/NH head size.
import GPT2Kernels

public enum Attention {
    /// Query rows per block.
    static let rowBlock = 64

    /// Floats of scratch one thread needs for sequence length T: two score blocks plus a row vector.
    public static func scratchCount(T: Int, C: Int) -> Int { 2 * min(rowBlock, T) * T + T + 16 }

    /// - Parameters: out (B,T,C) attention output (heads concatenated); lse (B,NH,T) saved for
    ///   backward; inp (B,T,3C) as [q | k | v]; scratch: threadCount × scratchCount(T:C:) floats.
    public static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               inp: UnsafePointer<Float>, B: Int, T: Int, C: Int, NH: Int,
                               scratch: UnsafeMutablePointer<Float>) {
        let hs = C / NH, C3 = 3 * C
        let scale = 1 / Float(hs).squareRoot()
        let nt = min(Parallel.threadCount, B * NH)
        Parallel.forEach(nt) { tid in
            let S = scratch + tid * scratchCount(T: T, C: C)
            for task in stride(from: tid, to: B * NH, by: nt) {
                let b = task / NH, h = task % NH
                let q = inp + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
                let o = out + b * T * C + h * hs
                let l = lse + (b * NH + h) * T
                for r0 in stride(from: 0, to: T, by: rowBlock) {
                    let nr = min(rowBlock, T - r0), nc = r0 + nr   // keys 0..<nc are visible (causal)
                    // S (nr,nc) = q[r0..] (nr,hs) · k[0..nc]ᵀ
                    BLAS.sgemm(transA: false, transB: true, M: nr, N: nc, K: hs, A: q + r0 * C3, lda: C3,
                               B: k, ldb: C3, beta: 0, C: S, ldc: nc)
                    gpt2k_attn_softmax_rows(S, nc, nr, r0, scale, l + r0)
                    // o[r0..] (nr,hs) = P (nr,nc) · v[0..nc] (nc,hs)
                    BLAS.sgemm(transA: false, transB: false, M: nr, N: hs, K: nc, A: S, lda: nc,
                               B: v, ldb: C3, beta: 0, C: o + r0 * C, ldc: C)
                }
            }
        }
    }

    /// - Parameters: dinp (B,T,3C) =; dout (B,T,C); inp (B,T,3C) qkv; out (B,T,C) and
    ///   lse (B,NH,T) from forward; scratch: threadCount × scratchCount(T:C:) floats.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, out: UnsafePointer<Float>, lse: UnsafePointer<Float>,
                                B: Int, T: Int, C: Int, NH: Int, scratch: UnsafeMutablePointer<Float>) {
        let hs = C / NH, C3 = 3 * C
        let scale = 1 / Float(hs).squareRoot()
        let nt = min(Parallel.threadCount, B * NH)
        let blockFloats = min(rowBlock, T) * T
        Parallel.forEach(nt) { tid in
            let P = scratch + tid * scratchCount(T: T, C: C), dP = P + blockFloats, D = dP + blockFloats
            for task in stride(from: tid, to: B * NH, by: nt) {
                let b = task / NH, h = task % NH
                let q = inp + b * T * C3 + h * hs, k = q + C, v = q + 2 * C
                let dq = dinp + b * T * C3 + h * hs, dk = dq + C, dv = dq + 2 * C
                let o = out + b * T * C + h * hs, dO = dout + b * T * C + h * hs
                let l = lse + (b * NH + h) * T
                for t in 0..<T {   // dk, dv accumulate over row blocks
                    (dk + t * C3).update(repeating: 0, count: hs)
                    (dv + t * C3).update(repeating: 0, count: hs)
                }
                gpt2k_rowdot(D, dO, C, o, C, T, hs)   // D[t] = dO[t] · o[t] = Σ_j P dP
                for r0 in stride(from: 0, to: T, by: rowBlock) {
                    let nr = min(rowBlock, T - r0), nc = r0 + nr
                    BLAS.sgemm(transA: false, transB: true, M: nr, N: nc, K: hs, A: q + r0 * C3, lda: C3,
                               B: k, ldb: C3, beta: 0, C: P, ldc: nc)
                    // dP (nr,nc) = dO[r0..] (nr,hs) · v[0..nc]ᵀ
                    BLAS.sgemm(transA: false, transB: true, M: nr, N: nc, K: hs, A: dO + r0 * C, lda: C,
                               B: v, ldb: C3, beta: 0, C: dP, ldc: nc)
                    // P = softmax recomputed from lse; dP <- dS = P ∘ (dP - D) · scale
                    gpt2k_attn_backward_rows(P, dP, nc, nr, r0, scale, l + r0, D + r0)
                    // dq[r0..] = dS · k[0..nc]
                    BLAS.sgemm(transA: false, transB: false, M: nr, N: hs, K: nc, A: dP, lda: nc,
                               B: k, ldb: C3, beta: 0, C: dq + r0 * C3, ldc: C3)
                    // dk[0..nc] += dSᵀ · q[r0..];  dv[0..nc] += Pᵀ · dO[r0..]
                    BLAS.sgemm(transA: true, transB: false, M: nc, N: hs, K: nr, A: dP, lda: nc,
                               B: q + r0 * C3, ldb: C3, beta: 1, C: dk, ldc: C3)
                    BLAS.sgemm(transA: true, transB: false, M: nc, N: hs, K: nr, A: P, lda: nc,
                               B: dO + r0 * C, ldb: C, beta: 1, C: dv, ldc: C3)
                }
            }
        }
    }
}
