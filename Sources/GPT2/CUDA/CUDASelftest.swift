// GPU-vs-CPU parity check behind `gpt selftest --device cuda`: every kernel on random inputs
// against the CPU kernel with the same arguments (llm.c's validate_result), then full
// forward/backward/AdamW steps of a small model against the GPT2 class. In bf16 mode the CPU
// reference is fed the bf16-rounded inputs the GPU actually saw, so the error measures the
// kernel, not the input rounding. Error metric: max |gpu − cpu| / max |cpu| over the tensor.
// Tolerances, and the errors seen on a GPU, are tabled in docs/GPU.md.
import Foundation

/// One compared tensor.
public struct CUDASelftestResult: Sendable {
    public let name: String
    /// max |gpu − cpu| / max |cpu|.
    public let maxRelativeError: Float
    public let tolerance: Float
    public var passed: Bool { maxRelativeError <= tolerance && maxRelativeError.isFinite }
}

public enum CUDASelftest {
    /// Tolerances: fp32 mode 1e-5 everywhere; bf16 by how many roundings a value goes through.
    public static func tolerance(_ kind: ToleranceKind, precision: CUDAPrecision) -> Float {
        // Adam turns near-zero gradients into ±lr steps, so summation-order noise in such a
        // gradient can flip a whole step: parameter updates get a looser bound in both modes.
        if precision == .fp32 { return kind == .modelParams ? 1e-3 : 1e-5 }
        switch kind {
        case .elementwise: return 1e-2       // one bf16 rounding of the output (2^-8 relative)
        case .reduction: return 2e-2         // fp32 statistics, bf16 output
        case .matmul: return 2e-2            // bf16 inputs/outputs, fp32 accumulate
        case .attention: return 3e-2
        case .fp32State: return 1e-4         // fp32 in, fp32 out (AdamW, norms, losses)
        case .modelLoss: return 2e-2         // whole forward in bf16 vs fp32 CPU
        case .modelGrad: return 1.5e-1       // bf16 activations through every layer
        case .modelParams: return 2.5e-1     // L2 over the update; see runModel
        }
    }

    public enum ToleranceKind: Sendable { case elementwise, reduction, matmul, attention, fp32State, modelLoss, modelGrad, modelParams }

    static func relError(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Float {
        SelftestMetrics.maxRelativeError(a, b)
    }

    static func relError(_ a: [Float], _ b: [Float]) -> Float { SelftestMetrics.maxRelativeError(a, b) }

    static func l2RelError(_ a: [Float], _ b: [Float]) -> Float { SelftestMetrics.l2RelativeError(a, b) }

    /// Host helpers bound to one context.
    struct Harness {
        let ctx: CUDAContext
        var rng: NormalRNG
        let record: (CUDASelftestResult) -> Void

        mutating func randn(_ n: Int, _ scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.next() * scale } }

        /// Uploads as floatX; returns the buffer and the values as the device holds them.
        func devX(_ h: [Float]) throws -> (CUDABuffer, [Float]) {
            let b = try ctx.allocateX(h.count)
            try ctx.uploadX(b.pointer, h, count: h.count)
            return (b, try readX(b, h.count))
        }
        func devF(_ h: [Float]) throws -> CUDABuffer {
            let b = try ctx.allocateF(h.count)
            try h.withUnsafeBytes { try ctx.upload(b.pointer, $0.baseAddress!, bytes: $0.count) }
            return b
        }
        func devI(_ h: [Int32]) throws -> CUDABuffer {
            let b = try ctx.allocate(bytes: h.count * 4)
            try h.withUnsafeBytes { try ctx.upload(b.pointer, $0.baseAddress!, bytes: $0.count) }
            return b
        }
        func readX(_ b: CUDABuffer, _ n: Int) throws -> [Float] {
            var out = [Float](repeating: 0, count: n)
            try ctx.downloadX(&out, b.pointer, count: n)
            return out
        }
        func readF(_ b: CUDABuffer, _ n: Int) throws -> [Float] {
            var out = [Float](repeating: 0, count: n)
            try out.withUnsafeMutableBytes { try ctx.download($0.baseAddress!, b.pointer, bytes: $0.count) }
            return out
        }
        func check(_ name: String, _ gpu: [Float], _ cpu: [Float], _ kind: ToleranceKind) {
            record(CUDASelftestResult(name: name, maxRelativeError: relError(gpu, cpu), tolerance: tolerance(kind, precision: ctx.precision)))
        }
    }

    // MARK: - Kernels

    /// Runs every kernel once on random data and records its error against the CPU kernel.
    /// Sizes: B=2, T=96 (three attention tiles), NH=4, C = 4·headSize, V=1000 (Vp 1024, 4 chunks).
    public static func runKernels(context ctx: CUDAContext, seed: UInt64 = 1337, record: @escaping (CUDASelftestResult) -> Void) throws {
        var h = Harness(ctx: ctx, rng: NormalRNG(seed: seed), record: record)
        let B = 2, T = 96, NH = 4, C = NH * ctx.headSize, BT = B * T, V = 1000, Vp = 1024, OC = 3 * C

        // encoder
        let inp: [Int32] = (0..<BT).map { _ in Int32(h.rng.nextUInt64() % 50) }   // repeats on purpose
        let (wteD, wte) = try h.devX(h.randn(Vp * C)), (wpeD, wpe) = try h.devX(h.randn(T * C))
        let inpD = try h.devI(inp)
        let encD = try ctx.allocateX(BT * C)
        try ctx.encoderForward(out: encD.pointer, inp: inpD.pointer, wte: wteD.pointer, wpe: wpeD.pointer, B: B, T: T, C: C)
        var enc = [Float](repeating: 0, count: BT * C)
        Encoder.forward(out: &enc, inp: inp, wte: wte, wpe: wpe, B: B, T: T, C: C)
        h.check("encoder_forward", try h.readX(encD, BT * C), enc, .elementwise)
        let (doutD, dout) = try h.devX(h.randn(BT * C))
        var dwte = h.randn(Vp * C), dwpe = h.randn(T * C)
        let dwteD = try h.devF(dwte), dwpeD = try h.devF(dwpe)
        try ctx.encoderBackward(dwte: dwteD.pointer, dwpe: dwpeD.pointer, dout: doutD.pointer,
                                buckets: try ctx.uploadBuckets(EncoderBuckets(inputs: inp)), B: B, T: T, C: C)
        Encoder.backward(dwte: &dwte, dwpe: &dwpe, dout: dout, inp: inp, B: B, T: T, C: C, Vp: Vp)
        h.check("encoder_backward dwte", try h.readF(dwteD, Vp * C), dwte, .fp32State)
        h.check("encoder_backward dwpe", try h.readF(dwpeD, T * C), dwpe, .fp32State)

        // layernorm, fused residual + layernorm
        let (xD, xs) = try h.devX(h.randn(BT * C, 2)), (lwD, lw) = try h.devX(h.randn(C)), (lbD, lb) = try h.devX(h.randn(C))
        let outD = try ctx.allocateX(BT * C), meanD = try ctx.allocateF(BT), rstdD = try ctx.allocateF(BT)
        try ctx.layerNormForward(out: outD.pointer, mean: meanD.pointer, rstd: rstdD.pointer, inp: xD.pointer, weight: lwD.pointer,
                                 bias: lbD.pointer, B: B, T: T, C: C)
        var lnOut = [Float](repeating: 0, count: BT * C), mean = [Float](repeating: 0, count: BT), rstd = mean
        LayerNorm.forward(out: &lnOut, mean: &mean, rstd: &rstd, inp: xs, weight: lw, bias: lb, B: B, T: T, C: C)
        h.check("layernorm_forward out", try h.readX(outD, BT * C), lnOut, .reduction)
        h.check("layernorm_forward mean", try h.readF(meanD, BT), mean, .fp32State)
        h.check("layernorm_forward rstd", try h.readF(rstdD, BT), rstd, .fp32State)
        let (_, dinp0) = try h.devX(h.randn(BT * C))
        let dlw0 = h.randn(C), dlb0 = h.randn(C)
        var dinp = dinp0, dlw = dlw0, dlb = dlb0
        var cpuScratch = [Float](repeating: 0, count: Parallel.threadCount * 2 * C)
        LayerNorm.backward(dinp: &dinp, dweight: &dlw, dbias: &dlb, dout: dout, inp: xs, weight: lw, mean: mean, rstd: rstd,
                           B: B, T: T, C: C, scratch: &cpuScratch)
        let lnScratch = try ctx.allocateF(ctx.layerNormScratchCount(B: B, T: T, C: C))
        let useBlock = ctx.useBlockLayerNormBackward
        defer { ctx.useBlockLayerNormBackward = useBlock }
        for block in [false, true] {   // warp per row, then block per chunk of rows
            ctx.useBlockLayerNormBackward = block
            let name = block ? "layernorm_backward_kernel" : "layernorm_backward_warp_kernel"
            let (dinpD, _) = try h.devX(dinp0)
            let dlwD = try h.devF(dlw0), dlbD = try h.devF(dlb0)
            try ctx.layerNormBackward(dinp: dinpD.pointer, dweight: dlwD.pointer, dbias: dlbD.pointer, dout: doutD.pointer, inp: xD.pointer,
                                      weight: lwD.pointer, mean: meanD.pointer, rstd: rstdD.pointer, B: B, T: T, C: C, scratch: lnScratch.pointer)
            h.check(name + " dinp", try h.readX(dinpD, BT * C), dinp, .reduction)
            h.check(name + " dweight", try h.readF(dlwD, C), dlw, .reduction)
            h.check(name + " dbias", try h.readF(dlbD, C), dlb, .reduction)
        }
        let (x2D, _) = try h.devX(h.randn(BT * C))
        let resD = try ctx.allocateX(BT * C)
        try ctx.fusedResidualLayerNormForward(residual: resD.pointer, out: outD.pointer, mean: meanD.pointer, rstd: rstdD.pointer,
                                              inp1: xD.pointer, inp2: x2D.pointer, weight: lwD.pointer, bias: lbD.pointer, B: B, T: T, C: C)
        let x2 = try h.readX(x2D, BT * C), resGPU = try h.readX(resD, BT * C)
        var res = [Float](repeating: 0, count: BT * C)
        Residual.forward(out: &res, inp1: xs, inp2: x2, N: BT * C)
        h.check("fused_residual_layernorm residual", resGPU, res, .elementwise)
        LayerNorm.forward(out: &lnOut, mean: &mean, rstd: &rstd, inp: resGPU, weight: lw, bias: lb, B: B, T: T, C: C)
        h.check("fused_residual_layernorm out", try h.readX(outD, BT * C), lnOut, .reduction)

        // gelu
        let (fD, fh) = try h.devX(h.randn(BT * 4 * C, 2)), (gdD, gd) = try h.devX(h.randn(BT * 4 * C))
        let gD = try ctx.allocateX(BT * 4 * C)
        try ctx.geluForward(out: gD.pointer, inp: fD.pointer, N: BT * 4 * C)
        var gout = [Float](repeating: 0, count: BT * 4 * C)
        GELU.forward(out: &gout, inp: fh, N: BT * 4 * C)
        h.check("gelu_forward", try h.readX(gD, BT * 4 * C), gout, .elementwise)
        try ctx.geluBackward(dinp: gD.pointer, inp: fD.pointer, dout: gdD.pointer, N: BT * 4 * C)
        GELU.backward(dinp: &gout, inp: fh, dout: gd, N: BT * 4 * C)
        h.check("gelu_backward", try h.readX(gD, BT * 4 * C), gout, .elementwise)

        // matmul (cuBLASLt) + bias epilogue, the bias kernel, and backward
        let (wD, wm) = try h.devX(h.randn(OC * C, 0.05)), (bD, bm) = try h.devX(h.randn(OC))
        let mmD = try ctx.allocateX(BT * OC)
        var mm = [Float](repeating: 0, count: BT * OC)
        Matmul.forward(out: &mm, inp: xs, weight: wm, bias: bm, B: B, T: T, C: C, OC: OC)
        for epilogue in [true, false] {
            try ctx.matmulForward(out: mmD.pointer, inp: xD.pointer, weight: wD.pointer, bias: bD.pointer, B: B, T: T, C: C, OC: OC,
                                  biasEpilogue: epilogue)
            h.check(epilogue ? "matmul_forward (bias epilogue)" : "matmul_forward + add_bias_kernel", try h.readX(mmD, BT * OC), mm, .matmul)
        }
        let (mdD, md) = try h.devX(h.randn(BT * OC))
        var mdinp = [Float](repeating: 0, count: BT * C), mdw = h.randn(OC * C), mdb = h.randn(OC)
        let mdinpD = try ctx.allocateX(BT * C), mdwD = try h.devF(mdw), mdbD = try h.devF(mdb)
        let bScratch = try ctx.allocateF(ctx.biasScratchCount(B: B, T: T, OC: OC))
        try ctx.matmulBackward(dinp: mdinpD.pointer, dweight: mdwD.pointer, dbias: mdbD.pointer, dout: mdD.pointer, inp: xD.pointer,
                               weight: wD.pointer, B: B, T: T, C: C, OC: OC, scratch: bScratch.pointer)
        Matmul.backward(dinp: &mdinp, dweight: &mdw, dbias: &mdb, dout: md, inp: xs, weight: wm, B: B, T: T, C: C, OC: OC)
        h.check("matmul_backward dinp", try h.readX(mdinpD, BT * C), mdinp, .matmul)
        h.check("matmul_backward dweight", try h.readF(mdwD, OC * C), mdw, .matmul)
        h.check("bias_backward dbias", try h.readF(mdbD, OC), mdb, .matmul)
        if ctx.precision == .bf16 {
            // the bf16 MLP's fused GELU: forward GELU_AUX_BIAS (output and pre-activation), then
            // the DGELU backward, here with x as the pre-activation of the GELU before the matmul
            let geluD = try ctx.allocateX(BT * OC), preD = try ctx.allocateX(BT * OC)
            try ctx.matmulForwardGELU(out: geluD.pointer, preGelu: preD.pointer, inp: xD.pointer, weight: wD.pointer, bias: bD.pointer,
                                      B: B, T: T, C: C, OC: OC)
            let pre = try h.readX(preD, BT * OC)
            h.check("matmul_forward + GELU epilogue: pre-activation", pre, mm, .matmul)
            var gl = [Float](repeating: 0, count: BT * OC)
            GELU.forward(out: &gl, inp: pre, N: BT * OC)
            h.check("matmul_forward + GELU epilogue: gelu", try h.readX(geluD, BT * OC), gl, .matmul)
            let dgD = try ctx.allocateX(BT * C), dwScratch = try ctx.allocateF(OC * C)
            try ctx.matmulBackward(dinp: dgD.pointer, dweight: dwScratch.pointer, dbias: nil, dout: mdD.pointer, inp: xD.pointer,
                                   weight: wD.pointer, B: B, T: T, C: C, OC: OC, accumulateWeight: false, dinpGELU: xD.pointer,
                                   scratch: bScratch.pointer)
            var dg = [Float](repeating: 0, count: BT * C)
            GELU.backward(dinp: &dg, inp: xs, dout: mdinp, N: BT * C)
            h.check("matmul_backward dinp + DGELU epilogue", try h.readX(dgD, BT * C), dg, .matmul)
        }

        // attention
        let (qkvD, qkv) = try h.devX(h.randn(BT * 3 * C))
        let aoD = try ctx.allocateX(BT * C), lseD = try ctx.allocateF(B * NH * T)
        try ctx.attentionForward(out: aoD.pointer, lse: lseD.pointer, inp: qkvD.pointer, B: B, T: T, C: C, NH: NH)
        var ao = [Float](repeating: 0, count: BT * C), alse = [Float](repeating: 0, count: B * NH * T)
        var attScratch = [Float](repeating: 0, count: Parallel.threadCount * Attention.scratchCount(T: T, C: C))
        Attention.forward(out: &ao, lse: &alse, inp: qkv, B: B, T: T, C: C, NH: NH, scratch: &attScratch)
        let aoGPU = try h.readX(aoD, BT * C)
        h.check("attention_forward out", aoGPU, ao, .attention)
        h.check("attention_forward lse", try h.readF(lseD, B * NH * T), alse, .fp32State)
        let (adoD, ado) = try h.devX(h.randn(BT * C))
        let adqkvD = try ctx.allocateX(BT * 3 * C), aD = try ctx.allocateF(B * NH * T)
        try ctx.attentionBackward(dinp: adqkvD.pointer, dout: adoD.pointer, inp: qkvD.pointer, out: aoD.pointer, lse: lseD.pointer,
                                  B: B, T: T, C: C, NH: NH, scratch: aD.pointer)
        var adqkv = [Float](repeating: 0, count: BT * 3 * C)
        Attention.backward(dinp: &adqkv, dout: ado, inp: qkv, out: aoGPU, lse: alse, B: B, T: T, C: C, NH: NH, scratch: &attScratch)
        h.check("attention_backward dqkv", try h.readX(adqkvD, BT * 3 * C), adqkv, .attention)

        // chunked softmax + cross-entropy (4 chunks of 256 over Vp 1024, V 1000)
        let targets: [Int32] = (0..<BT).map { i in i == 0 ? Int32(V - 1) : Int32(h.rng.nextUInt64() % UInt64(V)) }
        let tgtD = try h.devI(targets)
        let logitsHost = h.randn(BT * Vp, 3)
        let Vc = 256
        let scratch = try CUDAContext.ClassifierScratch(context: ctx, rows: BT)
        let lossD = try ctx.allocateF(BT), clseD = try ctx.allocateF(BT)
        var chunks: [(CUDABuffer, Int)] = []
        var seen = [Float](repeating: 0, count: BT * Vp)   // the logits as the device holds them
        try ctx.classifierInit(scratch, N: BT)
        for v0 in stride(from: 0, to: Vp, by: Vc) {
            var chunk = [Float](repeating: 0, count: BT * Vc)
            for r in 0..<BT { for j in 0..<Vc { chunk[r * Vc + j] = logitsHost[r * Vp + v0 + j] } }
            let (cD, cs) = try h.devX(chunk)
            for r in 0..<BT { for j in 0..<Vc { seen[r * Vp + v0 + j] = cs[r * Vc + j] } }
            try ctx.classifierChunkForward(scratch, logits: cD.pointer, targets: tgtD.pointer, N: BT, Vc: Vc, v0: v0, V: V)
            chunks.append((cD, v0))
        }
        try ctx.classifierFinalize(scratch, losses: lossD.pointer, lse: clseD.pointer, N: BT)
        var closs = [Float](repeating: 0, count: BT), clse = closs
        CrossEntropy.forward(losses: &closs, lse: &clse, logits: seen, targets: targets, B: B, T: T, V: V, Vp: Vp)
        h.check("classifier losses", try h.readF(lossD, BT), closs, .fp32State)
        h.check("classifier lse", try h.readF(clseD, BT), clse, .fp32State)
        let dloss = 1 / Float(BT)
        var dl = [Float](repeating: 0, count: BT * Vp)
        for (cD, v0) in chunks {
            try ctx.classifierChunkBackward(logits: cD.pointer, lse: clseD.pointer, targets: tgtD.pointer, dloss: dloss, N: BT, Vc: Vc, v0: v0, V: V)
            let g = try h.readX(cD, BT * Vc)
            for r in 0..<BT { for j in 0..<Vc { dl[r * Vp + v0 + j] = g[r * Vc + j] } }
        }
        CrossEntropy.backward(logits: &seen, lse: clse, targets: targets, dloss: dloss, B: B, T: T, V: V, Vp: Vp)
        h.check("classifier dlogits", dl, seen, .elementwise)

        // AdamW (fp32 in, fp32 + floatX out) and the gradient norm
        let N = 10_000
        var p = h.randn(N), gr = h.randn(N), m = h.randn(N, 0.1), v = h.randn(N).map { $0 * $0 * 0.01 }
        let pD = try h.devF(p), gD2 = try h.devF(gr), mD = try h.devF(m), vD = try h.devF(v), pxD = try ctx.allocateX(N)
        try ctx.adamW(params: pD.pointer, paramsOut: pxD.pointer, grads: gD2.pointer, m: mD.pointer, v: vD.pointer, N: N,
                      learningRate: 1e-3, beta1: AdamWDefaults.beta1, beta2: AdamWDefaults.beta2, eps: AdamWDefaults.eps,
                      weightDecay: 0.1, step: 3, gradScale: 0.5)
        AdamW.update(params: &p, grads: gr, m: &m, v: &v, N: N, learningRate: 1e-3, beta1: AdamWDefaults.beta1,
                     beta2: AdamWDefaults.beta2, eps: AdamWDefaults.eps,
                     weightDecay: 0.1, step: 3, gradScale: 0.5)
        h.check("adamw params", try h.readF(pD, N), p, .fp32State)
        h.check("adamw m", try h.readF(mD, N), m, .fp32State)
        h.check("adamw v", try h.readF(vD, N), v, .fp32State)
        h.check("adamw params (floatX copy)", try h.readX(pxD, N), p, .elementwise)
        let nScratch = try ctx.allocateF(CUDALaunchConfig.gradNormBlocks + 1)
        let norm = try ctx.sumOfSquares(gD2.pointer, N: N, scratch: nScratch.pointer).squareRoot()
        let cpuNorm = Float(gr.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
        h.check("grad_norm", [norm], [cpuNorm], .fp32State)

        // decoding and sampling (CUDASelftest+Inference.swift)
        try runInferenceKernels(context: ctx, record: record)
    }

    // MARK: - Model

    /// Trains the same small model for `steps` steps on the GPU and with the GPT2 class, from the
    /// same initialisation and batch, comparing the loss of every step, every gradient tensor of
    /// the first step and each tensor's total parameter change after the last update. The run
    /// with the whole vocabulary in one chunk then checks the inference paths (`runInference`).
    /// - Parameter vocabChunk: LM-head columns per chunk (256: four chunks; nil: the whole vocabulary at once).
    public static func runModel(context ctx: CUDAContext, steps: Int = 3, seed: UInt64 = 1337, vocabChunk: Int? = 256,
                                record outer: @escaping (CUDASelftestResult) -> Void) throws {
        let tag = vocabChunk.map { "[head in chunks of \($0)] " } ?? "[head in one chunk] "
        let record: (CUDASelftestResult) -> Void = { r in
            outer(CUDASelftestResult(name: tag + r.name, maxRelativeError: r.maxRelativeError, tolerance: r.tolerance))
        }
        let NH = 4, C = NH * ctx.headSize
        let config = GPT2Config(maxSeqLen: 64, vocabSize: 1000, numLayers: 2, numHeads: NH, channels: C)
        let B = 4, T = 64, BT = B * T
        let cpu = GPT2(config: config)
        cpu.initializeRandom(seed: seed)
        let gpu = try CUDABackend(config: config, B: B, T: T, context: ctx, vocabChunk: vocabChunk ?? config.paddedVocabSize)
        try gpu.loadParameters(from: cpu.params)
        let initial = ParameterTensors(config: config)
        initial.copy(from: cpu.params)
        var rng = NormalRNG(seed: seed ^ 0xABCD)
        let tokens: [Int32] = (0...BT).map { _ in Int32(rng.nextUInt64() % UInt64(config.vocabSize)) }
        let inputs = Array(tokens[0..<BT]), targets = Array(tokens[1...BT])
        let lr: Float = 1e-4, wd: Float = 0.1
        func tol(_ k: ToleranceKind) -> Float { tolerance(k, precision: ctx.precision) }
        for step in 1...steps {
            let lc = cpu.forward(inputs: inputs, targets: targets, B: B, T: T)
            let lg = try gpu.forward(inputs: inputs, targets: targets)
            record(CUDASelftestResult(name: "model step \(step) loss (cpu \(lc), gpu \(lg))",
                                      maxRelativeError: abs(lg - lc) / abs(lc), tolerance: tol(.modelLoss)))
            cpu.zeroGrad(); try gpu.zeroGrad()
            cpu.backward(); try gpu.backward()
            if step == 1 {
                let gg = ParameterTensors(config: config)
                try gpu.downloadGradients(into: gg)
                let cg = cpu.grads
                for name in ParameterName.allCases {
                    let e = relError(UnsafeBufferPointer(gg.buffer(name)), UnsafeBufferPointer(cg.buffer(name)))
                    record(CUDASelftestResult(name: "model grad \(name)", maxRelativeError: e, tolerance: tol(.modelGrad)))
                }
                let nc = cpu.gradNorm(), ng = try gpu.gradNorm()
                record(CUDASelftestResult(name: "model grad norm", maxRelativeError: abs(ng - nc) / nc, tolerance: tol(.modelLoss)))
            }
            cpu.clipGradients(maxNorm: 1); try gpu.clipGradients(maxNorm: 1)
            cpu.update(learningRate: lr, weightDecay: wd, step: step)
            try gpu.update(learningRate: lr, weightDecay: wd, step: step)
        }
        // Adam scales every element's step to about ±lr whatever its gradient's size, so an element
        // whose gradient is near zero can take a step of the other sign from summation-order noise
        // alone: the max-element metric says nothing here. The updates are compared by
        // ‖Δgpu − Δcpu‖₂ / ‖Δcpu‖₂; the losses of steps 2… above (computed from the updated
        // weights) are the tight check of the whole step.
        // The key part of qkvb has a true gradient of exactly 0 (softmax ignores a constant added
        // to every score of a row), so its updates are Adam steps on rounding noise on both sides:
        // those are only checked to be no larger than Adam's bound (about lr per step).
        let gp = ParameterTensors(config: config)
        try gpu.downloadParameters(into: gp)
        for name in ParameterName.allCases {
            let p0 = initial.buffer(name), pg = gp.buffer(name), pc = cpu.params.buffer(name)
            let isKeyBias: (Int) -> Bool = { i in name == .qkvb && (i % (3 * C)) / C == 1 }
            let kept = (0..<p0.count).filter { !isKeyBias($0) }
            let dg = kept.map { pg[$0] - p0[$0] }, dc = kept.map { pc[$0] - p0[$0] }
            record(CUDASelftestResult(name: "model update after \(steps) AdamW steps (L2): \(name)\(name == .qkvb ? " (q, v)" : "")",
                                      maxRelativeError: l2RelError(dg, dc), tolerance: tol(.modelParams)))
            if name == .qkvb {
                let keyStep = (0..<p0.count).filter(isKeyBias).map { abs(pg[$0] - p0[$0]) }.max() ?? 0
                record(CUDASelftestResult(name: "model update after \(steps) AdamW steps: qkvb (k) max |step| / (2·steps·lr)",
                                          maxRelativeError: keyStep / (2 * Float(steps) * lr), tolerance: 1))
            }
        }
        if vocabChunk == nil { try runInference(context: ctx, record: outer) }
    }
}
