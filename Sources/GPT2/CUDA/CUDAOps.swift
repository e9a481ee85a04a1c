// Launchers: one Swift method per op, taking the CPU kernel's arguments in the CPU kernel's order
// (outputs, inputs, weights, dimensions; device addresses instead of host pointers) and queuing
// the CUDA kernels / cuBLASLt calls on the context's stream. Parameter gradients are fp32 and
// accumulate (+=); activation gradients are floatX and are written (=), except LayerNorm's dinp
// (+=, the residual stream) — the same conventions as Kernels/*.swift.
// Checked on H100 and H200 by `gpt selftest --device cuda`.
// Legend: B batch, T time, C channels, OC output channels, NH heads, Vp padded vocab.
import Foundation

extension CUDAContext {
    var sms: Int { device.multiprocessors }

    // MARK: Encoder

    /// out (B,T,C); inp (B,T) int32; wte (Vp,C), wpe (maxT,C) floatX.
    public func encoderForward(out: CUdeviceptr, inp: CUdeviceptr, wte: CUdeviceptr, wpe: CUdeviceptr, B: Int, T: Int, C: Int) throws {
        try launch("encoder_forward_kernel", CUDALaunchConfig.elementwise(count: B * T * C, multiprocessors: sms),
                   [.pointer(out), .pointer(inp), .pointer(wte), .pointer(wpe), .int(B), .int(T), .int(C)])
    }

    /// Device copies of `EncoderBuckets`: starts (n+1), positions (B·T), tokens (n).
    public struct DeviceBuckets {
        public let starts: CUDABuffer, positions: CUDABuffer, tokens: CUDABuffer
        public let count: Int
    }

    public func uploadBuckets(_ b: EncoderBuckets) throws -> DeviceBuckets {
        let s = try allocate(bytes: b.starts.count * 4), p = try allocate(bytes: max(1, b.positions.count) * 4)
        let t = try allocate(bytes: max(1, b.tokens.count) * 4)
        try b.starts.withUnsafeBytes { try upload(s.pointer, $0.baseAddress!, bytes: $0.count) }
        if !b.positions.isEmpty { try b.positions.withUnsafeBytes { try upload(p.pointer, $0.baseAddress!, bytes: $0.count) } }
        if !b.tokens.isEmpty { try b.tokens.withUnsafeBytes { try upload(t.pointer, $0.baseAddress!, bytes: $0.count) } }
        return DeviceBuckets(starts: s, positions: p, tokens: t, count: b.count)
    }

    /// dwte (Vp,C) +=, dwpe (maxT,C) += (fp32); dout (B,T,C); buckets of the inputs (B,T).
    public func encoderBackward(dwte: CUdeviceptr, dwpe: CUdeviceptr, dout: CUdeviceptr, buckets: DeviceBuckets,
                                B: Int, T: Int, C: Int) throws {
        try launch("encoder_backward_wpe_kernel", CUDALaunchConfig.elementwise(count: T * C, multiprocessors: sms),
                   [.pointer(dwpe), .pointer(dout), .int(B), .int(T), .int(C)])
        if buckets.count > 0 {
            try launch("encoder_backward_wte_kernel", CUDALaunchConfig.encoderBackwardWTE(buckets: buckets.count, C: C),
                       [.pointer(dwte), .pointer(dout), .pointer(buckets.starts.pointer), .pointer(buckets.positions.pointer),
                        .pointer(buckets.tokens.pointer), .int(buckets.count), .int(C)])
        }
    }

    // MARK: LayerNorm

    /// out (B,T,C); mean, rstd (B,T) fp32; inp (B,T,C); weight, bias (C).
    public func layerNormForward(out: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr, inp: CUdeviceptr,
                                 weight: CUdeviceptr, bias: CUdeviceptr, B: Int, T: Int, C: Int) throws {
        try launch("layernorm_forward_kernel", CUDALaunchConfig.layerNormForward(rows: B * T),
                   [.pointer(out), .pointer(mean), .pointer(rstd), .pointer(inp), .pointer(weight), .pointer(bias),
                    .int(B * T), .int(C)])
    }

    /// residual (B,T,C) = inp1 + inp2; out = layernorm(residual); mean, rstd (B,T).
    public func fusedResidualLayerNormForward(residual: CUdeviceptr, out: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr,
                                              inp1: CUdeviceptr, inp2: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr,
                                              B: Int, T: Int, C: Int) throws {
        try launch("fused_residual_layernorm_forward_kernel", CUDALaunchConfig.layerNormForward(rows: B * T),
                   [.pointer(residual), .pointer(out), .pointer(mean), .pointer(rstd), .pointer(inp1), .pointer(inp2),
                    .pointer(weight), .pointer(bias), .int(B * T), .int(C)])
    }

    /// The warp-per-row LayerNorm backward's launch when it applies to these addresses, else nil.
    func layerNormBackwardWarpLaunch(B: Int, T: Int, C: Int, pointers: [CUdeviceptr] = []) -> CUDALaunchConfig.Launch? {
        guard pointers.allSatisfy({ $0 % 16 == 0 }) else { return nil }
        return CUDALaunchConfig.layerNormBackwardWarp(rows: B * T, C: C, elementSize: precision.elementSize, multiprocessors: sms)
    }

    /// fp32 floats of scratch `layerNormBackward` needs (either kernel).
    public func layerNormScratchCount(B: Int, T: Int, C: Int) -> Int {
        let block = Int(CUDALaunchConfig.layerNormBackward(rows: B * T, C: C, multiprocessors: sms).grid.x)
        let warp = layerNormBackwardWarpLaunch(B: B, T: T, C: C).map { Int($0.grid.x) } ?? 0
        return max(block, warp) * 2 * C
    }

    /// dinp (B,T,C) +=; dweight, dbias (C) += fp32; dout, inp (B,T,C); weight (C); mean, rstd (B,T);
    /// scratch: layerNormScratchCount floats. Warp per row where it applies (GPT2_LN_BACKWARD=block
    /// forces the block-per-chunk kernel).
    public func layerNormBackward(dinp: CUdeviceptr, dweight: CUdeviceptr, dbias: CUdeviceptr, dout: CUdeviceptr,
                                  inp: CUdeviceptr, weight: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr,
                                  B: Int, T: Int, C: Int, scratch: CUdeviceptr) throws {
        let args: [CUDAKernelArg] = [.pointer(dinp), .pointer(scratch), .pointer(dout), .pointer(inp), .pointer(weight),
                                     .pointer(mean), .pointer(rstd), .int(B * T), .int(C)]
        let l: CUDALaunchConfig.Launch
        if !useBlockLayerNormBackward, let warp = layerNormBackwardWarpLaunch(B: B, T: T, C: C, pointers: [dinp, dout, inp, weight]) {
            l = warp
            try launch("layernorm_backward_warp_kernel", l, args)
        } else {
            l = CUDALaunchConfig.layerNormBackward(rows: B * T, C: C, multiprocessors: sms)
            try launch("layernorm_backward_kernel", l, args)
        }
        let rows = Int(l.grid.x)
        try launch("column_sum_kernel", CUDALaunchConfig.columnSum(cols: C),
                   [.pointer(dweight), .pointer(scratch), .int(rows), .int(C), .int(2 * C)])
        try launch("column_sum_kernel", CUDALaunchConfig.columnSum(cols: C),
                   [.pointer(dbias), .pointer(scratch + CUdeviceptr(C * 4)), .int(rows), .int(C), .int(2 * C)])
    }

    // MARK: GELU

    public func geluForward(out: CUdeviceptr, inp: CUdeviceptr, N: Int) throws {
        try launch("gelu_forward_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(out), .pointer(inp), .size(N)])
    }

    /// dinp (N) = gelu'(inp) · dout (may be dout itself).
    public func geluBackward(dinp: CUdeviceptr, inp: CUdeviceptr, dout: CUdeviceptr, N: Int) throws {
        try launch("gelu_backward_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(dinp), .pointer(inp), .pointer(dout), .size(N)])
    }

    // MARK: Matmul (cuBLASLt) and bias

    /// out (B,T,OC) = inp (B,T,C) · weight (OC,C)ᵀ + bias (OC). Row-major out is column-major
    /// (OC, BT), so this is D = Wᵀ·X with W stored (C,OC) column-major; bias by the BIAS epilogue,
    /// or by add_bias_kernel when `biasEpilogue` is false.
    public func matmulForward(out: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr?,
                              B: Int, T: Int, C: Int, OC: Int, biasEpilogue: Bool = true) throws {
        let BT = B * T
        try gemm(transA: true, transB: false, m: OC, n: BT, k: C, a: weight, lda: C, b: inp, ldb: C, d: out, ldd: OC,
                 bias: biasEpilogue ? (bias ?? 0) : 0)
        if let bias, !biasEpilogue {
            try launch("add_bias_kernel", CUDALaunchConfig.elementwise(count: BT * OC, multiprocessors: sms),
                       [.pointer(out), .pointer(bias), .int(BT), .int(OC)])
        }
    }

    /// out (B,T,OC) = gelu(inp (B,T,C) · weight (OC,C)ᵀ + bias), preGelu (B,T,OC) = the argument
    /// of the GELU, in one cuBLASLt call (GELU_AUX_BIAS epilogue).
    public func matmulForwardGELU(out: CUdeviceptr, preGelu: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr,
                                  bias: CUdeviceptr, B: Int, T: Int, C: Int, OC: Int) throws {
        try gemm(transA: true, transB: false, m: OC, n: B * T, k: C, a: weight, lda: C, b: inp, ldb: C, d: out, ldd: OC,
                 bias: bias, gelu: .forward(aux: preGelu, ld: OC))
    }

    /// fp32 floats of scratch `biasBackward` needs.
    public func biasScratchCount(B: Int, T: Int, OC: Int) -> Int {
        Int(CUDALaunchConfig.biasBackward(rows: B * T, OC: OC, elementSize: precision.elementSize, multiprocessors: sms).grid.y) * OC
    }

    /// dbias (OC) += Σ_rows dout (B,T,OC), deterministic.
    public func biasBackward(dbias: CUdeviceptr, dout: CUdeviceptr, B: Int, T: Int, OC: Int, scratch: CUdeviceptr) throws {
        let l = CUDALaunchConfig.biasBackward(rows: B * T, OC: OC, elementSize: precision.elementSize, multiprocessors: sms)
        try launch("bias_backward_partial_kernel", l, [.pointer(scratch), .pointer(dout), .int(B * T), .int(OC)])
        try launch("column_sum_kernel", CUDALaunchConfig.columnSum(cols: OC),
                   [.pointer(dbias), .pointer(scratch), .int(Int(l.grid.y)), .int(OC), .int(OC)])
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

    // MARK: Attention

    /// out (B,T,C); lse (B,NH,T) fp32; inp (B,T,3C).
    public func attentionForward(out: CUdeviceptr, lse: CUdeviceptr, inp: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        try launch("attention_forward_kernel", CUDALaunchConfig.attentionQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(out), .pointer(lse), .pointer(inp), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// dinp (B,T,3C) =; dout (B,T,C); inp (B,T,3C); out (B,T,C) and lse (B,NH,T) from forward;
    /// scratch: B·NH·T floats (D = rowsum(dout ∘ out)).
    public func attentionBackward(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, out: CUdeviceptr, lse: CUdeviceptr,
                                  B: Int, T: Int, C: Int, NH: Int, scratch: CUdeviceptr) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        let dims: [CUDAKernelArg] = [.int(B), .int(T), .int(C), .int(NH)]
        try attentionBackwardPreprocess(D: scratch, dout: dout, out: out, B: B, T: T, C: C, NH: NH)
        try launch("attention_backward_dkdv_kernel", CUDALaunchConfig.attentionKeyTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(lse), .pointer(scratch)] + dims)
        try launch("attention_backward_dq_kernel", CUDALaunchConfig.attentionQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(lse), .pointer(scratch)] + dims)
    }

    /// D (B,NH,T) fp32 = rowsum(dout ∘ out) per head row, the first pass of every attention backward.
    func attentionBackwardPreprocess(D: CUdeviceptr, dout: CUdeviceptr, out: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        try launch("attention_backward_preprocess_kernel", CUDALaunchConfig.warpPerRow(rows: B * NH * T),
                   [.pointer(D), .pointer(dout), .pointer(out), .int(B), .int(T), .int(C), .int(NH)])
    }

    // MARK: Classifier (chunked softmax + cross-entropy)

    /// Scratch of the chunked classifier: (runMax, runSum, targetLogit) fp32 (B·T each).
    public struct ClassifierScratch {
        public let runMax: CUDABuffer, runSum: CUDABuffer, targetLogit: CUDABuffer
    }

    public func classifierInit(_ s: ClassifierScratch, N: Int) throws {
        try launch("classifier_init_kernel", CUDALaunchConfig.cover(count: N),
                   [.pointer(s.runMax.pointer), .pointer(s.runSum.pointer), .pointer(s.targetLogit.pointer), .int(N)])
    }

    /// Folds the logits chunk (N, Vc) = vocab columns v0 ..< v0+Vc into the running softmax.
    public func classifierChunkForward(_ s: ClassifierScratch, logits: CUdeviceptr, targets: CUdeviceptr?,
                                       N: Int, Vc: Int, v0: Int, V: Int) throws {
        guard v0 < V else { return }   // only padding in this chunk
        try launch("classifier_chunk_forward_kernel", CUDALaunchConfig.classifierRows(N: N),
                   [.pointer(s.runMax.pointer), .pointer(s.runSum.pointer), .pointer(s.targetLogit.pointer),
                    .pointer(logits), .pointer(targets ?? 0), .int(N), .int(Vc), .int(v0), .int(V)])
    }

    /// losses (N) (0 to skip), lse (N) from the running softmax.
    public func classifierFinalize(_ s: ClassifierScratch, losses: CUdeviceptr, lse: CUdeviceptr, N: Int) throws {
        try launch("classifier_finalize_kernel", CUDALaunchConfig.cover(count: N),
                   [.pointer(losses), .pointer(lse), .pointer(s.runMax.pointer), .pointer(s.runSum.pointer),
                    .pointer(s.targetLogit.pointer), .int(N)])
    }

    /// In place: the logits chunk (N, Vc) becomes dlogits = (softmax − onehot)·dloss.
    public func classifierChunkBackward(logits: CUdeviceptr, lse: CUdeviceptr, targets: CUdeviceptr, dloss: Float,
                                        N: Int, Vc: Int, v0: Int, V: Int) throws {
        try launch("classifier_chunk_backward_kernel", CUDALaunchConfig.classifierRows(N: N),
                   [.pointer(logits), .pointer(lse), .pointer(targets), .float(dloss), .int(N), .int(Vc), .int(v0), .int(V)])
    }

    // MARK: Optimizer and norms

    /// AdamW over N fp32 params (with m, v) from fp32 grads · gradScale; paramsOut (N) floatX copy.
    public func adamW(params: CUdeviceptr, paramsOut: CUdeviceptr, grads: CUdeviceptr, m: CUdeviceptr, v: CUdeviceptr, N: Int,
                      learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int,
                      gradScale: Float = 1) throws {
        precondition(step >= 1, "AdamW: step must be >= 1 (got \(step))")
        // bias corrections in Double on the host, like AdamW.update
        let bc1 = Float(1 - Foundation.pow(Double(beta1), Double(step)))
        let bc2 = Float(1 - Foundation.pow(Double(beta2), Double(step)))
        try launch("adamw_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(params), .pointer(paramsOut), .pointer(grads), .pointer(m), .pointer(v), .size(N),
                    .float(learningRate), .float(beta1), .float(beta2), .float(eps), .float(weightDecay),
                    .float(bc1), .float(bc2), .float(gradScale)])
    }

    /// Σ grads² over N fp32 values; scratch: gradNormBlocks + 1 floats. Synchronises.
    public func sumOfSquares(_ grads: CUdeviceptr, N: Int, scratch: CUdeviceptr) throws -> Float {
        let (partial, final) = CUDALaunchConfig.gradNorm()
        let out = scratch + CUdeviceptr(CUDALaunchConfig.gradNormBlocks * 4)
        try launch("grad_norm_partial_kernel", partial, [.pointer(scratch), .pointer(grads), .size(N)])
        try launch("grad_norm_final_kernel", final, [.pointer(out), .pointer(scratch), .int(CUDALaunchConfig.gradNormBlocks)])
        var s: Float = 0
        try download(&s, out, bytes: 4)
        return s
    }
}
