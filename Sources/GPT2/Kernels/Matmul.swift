// Linear layer out = inp · weightᵀ + bias with weight (OC, C) as nn.Linear / llm.c.
// Backward: dinp = dout · weight (=, written); dweight += doutᵀ · inp and dbias += Σ dout
// (parameter grads accumulate). Each call is split across the pool in blocks of output
// rows/columns, each block one single-threaded SGEMM (BLAS.swift), or with `bf16` a bf16 GEMM
// (bf16 weight copy, activations rounded while packing, fp32 accumulation; Backend/BF16.swift).
// Reference: llm.c matmul_forward / matmul_backward.
// Legend: B batch, T time, C input channels, OC output channels.
import GPT2Kernels

public enum Matmul {
    /// bf16 arithmetic for one call: the kernel to run and the bf16 copy of `weight` (same layout).
    public struct BF16Weight {
        let path: CPUMatmulPath
        let weight: UnsafePointer<UInt16>
    }

    /// Block `i` of `parts` over 0..<n, boundaries rounded to `align`.
    @inline(__always)
    static func split(_ n: Int, parts: Int, _ i: Int, align: Int = 16) -> Range<Int> {
        func edge(_ k: Int) -> Int { k == parts ? n : min(n, (n * k / parts + align / 2) / align * align) }
        return edge(i)..<edge(i + 1)
    }

    /// Number of blocks worth splitting `flops` of work into.
    @inline(__always)
    static func parts(flops: Int, bf16: Bool = false) -> Int {
        if flops < 1 << 18 || (BLAS.threads > 1 && !bf16) || Parallel.threadCount == 1 { return 1 }
        // two blocks per thread for big products: blocks are claimed dynamically, so a thread
        // that loses its CPU for a while leaves its second block to the others
        return flops >= 1 << 26 ? 2 * Parallel.threadCount : Parallel.threadCount
    }

    /// One block of `C = op(A) · op(B) + beta · C`: SGEMM, or bf16 with `w16` the bf16 copy of the
    /// weight operand (`weightIsB`: B is the weight, else A and B are both activations).
    @inline(__always)
    static func gemm(_ w16: BF16Weight?, transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
                     A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                     weightOffset: Int = 0, weightIsB: Bool = true,
                     beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
        guard let w16 else {
            BLAS.sgemm(transA: transA, transB: transB, M: M, N: N, K: K, A: A, lda: lda, B: B, ldb: ldb, beta: beta, C: C, ldc: ldc)
            return
        }
        let b: BF16.Operand = weightIsB ? .bf16(w16.weight + weightOffset) : .f32(B)
        BF16.gemm(path: w16.path, transA: transA, transB: transB, M: M, N: N, K: K, A: .f32(A), lda: lda,
                  B: b, ldb: ldb, beta: beta, C: C, ldc: ldc)
    }

    /// - Parameters: out (B,T,OC); inp (B,T,C); weight (OC,C); bias (OC) or nil;
    ///   residual (B,T,OC) added to the output when non-nil (fuses the residual connection);
    ///   bf16: the bf16 path and weight copy, or nil for fp32.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               B: Int, T: Int, C: Int, OC: Int, residual: UnsafePointer<Float>? = nil,
                               bf16: BF16Weight? = nil) {
        let BT = B * T
        let np = parts(flops: BT * C * OC, bf16: bf16 != nil)
        Parallel.forEach(np) { i in
            if OC >= BT {   // split the weight rows: each thread streams half the weights once
                let r = split(OC, parts: np, i)
                gemm(bf16, transA: false, transB: true, M: BT, N: r.count, K: C, A: inp, lda: C,
                     B: weight + r.lowerBound * C, ldb: C, weightOffset: r.lowerBound * C, beta: 0, C: out + r.lowerBound, ldc: OC)
            } else {
                let r = split(BT, parts: np, i)
                gemm(bf16, transA: false, transB: true, M: r.count, N: OC, K: C, A: inp + r.lowerBound * C, lda: C,
                     B: weight, ldb: C, beta: 0, C: out + r.lowerBound * OC, ldc: OC)
            }
        }
        if let bias {
            Parallel.chunks(BT, minChunk: max(1, (1 << 15) / OC)) { r in
                gpt2k_add_bias_residual(out + r.lowerBound * OC, residual.map { $0 + r.lowerBound * OC },
                                        bias, r.count, OC)
            }
        } else {
            precondition(residual == nil, "Matmul.forward: residual without bias is not supported")
        }
    }

    /// - Parameters: dinp (B,T,C) = (skipped when nil); dweight (OC,C) += (= when
    ///   `accumulateWeight` is false, which saves zeroing it first); dbias (OC) += (skipped when
    ///   nil); dout (B,T,OC); inp (B,T,C); weight (OC,C); bf16: the bf16 path and weight copy, or
    ///   nil for fp32.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                B: Int, T: Int, C: Int, OC: Int, accumulateWeight: Bool = true,
                                bf16: BF16Weight? = nil) {
        let BT = B * T
        let np = parts(flops: BT * C * OC, bf16: bf16 != nil)
        Parallel.forEach(np) { i in
            if let dinp {   // dinp (BT,C) = dout (BT,OC) · weight (OC,C)
                if BT >= C {
                    let r = split(BT, parts: np, i)
                    gemm(bf16, transA: false, transB: false, M: r.count, N: C, K: OC, A: dout + r.lowerBound * OC, lda: OC,
                         B: weight, ldb: C, beta: 0, C: dinp + r.lowerBound * C, ldc: C)
                } else {
                    let r = split(C, parts: np, i)
                    gemm(bf16, transA: false, transB: false, M: BT, N: r.count, K: OC, A: dout, lda: OC,
                         B: weight + r.lowerBound, ldb: C, weightOffset: r.lowerBound, beta: 0, C: dinp + r.lowerBound, ldc: C)
                }
            }
            // dweight (OC,C) += doutᵀ (OC,BT) · inp (BT,C), split over output rows
            let r = split(OC, parts: np, i)
            gemm(bf16, transA: true, transB: false, M: r.count, N: C, K: BT, A: dout + r.lowerBound, lda: OC,
                 B: inp, ldb: C, weightIsB: false, beta: accumulateWeight ? 1 : 0, C: dweight + r.lowerBound * C, ldc: C)
            if let dbias {
                gpt2k_bias_backward(dbias, dout, BT, OC, r.lowerBound, r.upperBound)
            }
        }
    }
}
