// Matmuls on the GPU through cuBLASLt (fp32 accumulation, CUBLAS_COMPUTE_32F: no TF32), with the
// bias added by the BIAS epilogue and, in bf16, the MLP's GELU fused as GELU_AUX_BIAS (forward)
// and DGELU (backward). Row-major (rows, OC) activations are column-major (OC, rows) to cuBLAS, so
// out = inp · Wᵀ is D = Wᵀ·X with W (OC, C) row-major = (C, OC) column-major. Parameter gradients
// are fp32 and accumulate (+=); dinp is floatX and written (=). Mirrors Kernels/Matmul.swift.
// Reference: llm.c matmul.cuh (matmul_cublaslt).
// Legend: B batch, T time, C input channels, OC output channels.
import Foundation

extension CUDAContext {
    /// out (B,T,OC) = inp (B,T,C) · weight (OC,C)ᵀ + bias (OC); bias by the BIAS epilogue, or by
    /// add_bias_kernel when `biasEpilogue` is false.
    public func matmulForward(out: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr?,
                              B: Int, T: Int, C: Int, OC: Int, biasEpilogue: Bool = true) throws {
        let BT = B * T
        try gemm(transA: true, transB: false, m: OC, n: BT, k: C, a: weight, lda: C, b: inp, ldb: C, d: out, ldd: OC,
                 bias: biasEpilogue ? (bias ?? 0) : 0)
        if let bias, !biasEpilogue { try addBias(out: out, bias: bias, N: BT, OC: OC) }
    }

    /// out (B,T,OC) = gelu(inp (B,T,C) · weight (OC,C)ᵀ + bias), preGelu (B,T,OC) = the argument
    /// of the GELU, in one cuBLASLt call (GELU_AUX_BIAS epilogue).
    public func matmulForwardGELU(out: CUdeviceptr, preGelu: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr,
                                  bias: CUdeviceptr, B: Int, T: Int, C: Int, OC: Int) throws {
        try gemm(transA: true, transB: false, m: OC, n: B * T, k: C, a: weight, lda: C, b: inp, ldb: C, d: out, ldd: OC,
                 bias: bias, gelu: .forward(aux: preGelu, ld: OC))
    }

    /// dinp (B,T,C) = dout · weight (skipped when nil); dweight (OC,C) += doutᵀ · inp (fp32; = when
    /// `accumulateWeight` is false); dbias (OC) += Σ dout (skipped when nil); scratch for the bias.
    /// - Parameter dinpGELU: the pre-activation of a GELU whose output was `inp`'s producer: dinp
    ///   then leaves as dinp ∘ gelu'(dinpGELU) (DGELU epilogue), the gradient of the GELU's input.
    public func matmulBackward(dinp: CUdeviceptr?, dweight: CUdeviceptr, dbias: CUdeviceptr?, dout: CUdeviceptr,
                               inp: CUdeviceptr, weight: CUdeviceptr, B: Int, T: Int, C: Int, OC: Int,
                               accumulateWeight: Bool = true, dinpGELU: CUdeviceptr? = nil, scratch: CUdeviceptr) throws {
        let BT = B * T
        if let dinp {   // column-major dinp (C,BT) = W (C,OC) · dout (OC,BT)
            try gemm(transA: false, transB: false, m: C, n: BT, k: OC, a: weight, lda: C, b: dout, ldb: OC, d: dinp, ldd: C,
                     gelu: dinpGELU.map { .backward(aux: $0, ld: C) })
        }
        // column-major dweight (C,OC) = inp (C,BT) · dout (OC,BT)ᵀ, fp32 output
        try gemm(transA: false, transB: true, m: C, n: OC, k: BT, a: inp, lda: C, b: dout, ldb: OC,
                 beta: accumulateWeight ? 1 : 0, d: dweight, ldd: C, fp32Output: true)
        if let dbias { try biasBackward(dbias: dbias, dout: dout, B: B, T: T, OC: OC, scratch: scratch) }
    }
}
