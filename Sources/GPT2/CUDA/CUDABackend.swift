// GPT-2 training on one GPU with llm.c's mixed precision: fp32 master weights, fp32 gradients and
// AdamW moments; floatX (bf16, or fp32 for parity tests) activations and weight copies; cuBLASLt
// matmuls with fp32 accumulation; fp32 statistics in LayerNorm, softmax and loss. The LM head and
// cross-entropy run over vocabulary chunks (no (B,T,Vp) logits buffer): backward recomputes each
// chunk's logits. `forward` / `backward` are the same straight lists of kernel calls as GPT2.swift.
// `gpt selftest --device cuda` compares it with the CPU engine.
// Reference: llm.c train_gpt2.cu (gpt2_forward, gpt2_backward_and_reduce, gpt2_update).
// Legend: B batch, T time, C channels, L layers, NH heads, V vocab, Vp padded vocab, Vc vocab chunk.
import Foundation

/// The model's parameters, gradients, optimizer state and activations in device memory.
public final class CUDABackend: @unchecked Sendable {
    public let config: GPT2Config
    public let B: Int, T: Int
    public let context: CUDAContext
    /// Vocabulary columns per LM-head chunk.
    public let vocabChunk: Int
    /// Total parameter count (ParameterTensors layout, padded wte).
    public let parameterCount: Int
    /// Element offset and count of every tensor, by `ParameterName.rawValue`.
    let offsets: [Int], counts: [Int]
    // fp32 master weights, gradients, AdamW moments (P each)
    let master: CUDABuffer, grads: CUDABuffer, adamM: CUDABuffer, adamV: CUDABuffer
    /// floatX copy of the weights the forward pass reads (nil in fp32 mode: the master is used).
    let paramsX: CUDABuffer?
    /// The floatX weights the forward pass reads: paramsX, or the fp32 master in fp32 mode.
    let weights: CUDAWeights
    // activations (floatX unless marked f32); per-layer tensors hold all L layers
    let tokens, targetIDs: CUDABuffer                      // (B,T) int32
    let encoded, lnf, projOut: CUDABuffer                  // (BT,C)
    let ln1, atty, residual2, ln2, residual3: CUDABuffer   // (L,BT,C)
    let qkv: CUDABuffer                                    // (L,BT,3C)
    let fch, fchGelu: CUDABuffer                           // (L,BT,4C)
    let ln1Mean, ln1Rstd, ln2Mean, ln2Rstd: CUDABuffer     // (L,BT) f32
    let lnfMean, lnfRstd, losses, lse: CUDABuffer          // (BT) f32
    let attLse: CUDABuffer                                 // (L,B,NH,T) f32
    let logits: CUDABuffer                                 // (BT,Vc)
    let classifier: CUDAContext.ClassifierScratch
    // backward scratch
    let dresidual, dbtc: CUDABuffer                        // (BT,C)
    let dfch: CUDABuffer                                   // (BT,4C)
    let dqkv: CUDABuffer                                   // (BT,3C)
    let dlnf32: CUDABuffer                                 // (BT,C) f32: accumulates over vocab chunks
    let attD, lnScratch, biasScratch, normScratch: CUDABuffer
    private var buckets: CUDAContext.DeviceBuckets?
    private var hasTargets = false
    private var forwardDone = false
    /// Pending factor on the gradients (clipping, 1/worldSize after an all-reduce), applied by AdamW.
    var gradScale: Float = 1
    /// Mean loss of the last forward pass with targets.
    public private(set) var meanLoss: Float = .nan
    /// Scoring on the training weights (validation, HellaSwag): its own scratch, made on first use.
    lazy var scorer = CUDAScorer(context: context, config: config)

    /// Whether attention runs on the tensor cores (Kernels/CUDAAttentionTC.swift): bf16,
    /// head size 64, sm_80+, unless GPT2_ATTENTION=simt. Else the fp32-math SIMT kernels.
    public var tensorCoreAttention: Bool { context.usesTensorCoreAttention }

    /// Whether the MLP's GELU is fused into its matmuls (bf16 and `context.fuseGELU`).
    var fusedGELU: Bool { context.fusesGELU }

    /// Whether the LM head runs as one chunk: its logits then survive from forward to backward,
    /// which skips recomputing them.
    public var singleHeadChunk: Bool { vocabChunk >= config.paddedVocabSize }

    /// Allocates everything for batches of (B, T).
    /// - Parameter vocabChunk: LM-head columns per chunk; nil: the whole (padded) vocabulary when
    ///   its floatX logits take at most a quarter of the free device memory (6.6 GB for GPT-2 at
    ///   B=64, T=1024, bf16), else 8192.
    public init(config: GPT2Config, B: Int, T: Int, context: CUDAContext, vocabChunk: Int? = nil) throws {
        precondition(T <= config.maxSeqLen && B >= 1 && T >= 1, "CUDABackend: need 1 <= T <= \(config.maxSeqLen), B >= 1")
        precondition(config.headSize == context.headSize, "context compiled for head size \(context.headSize), model has \(config.headSize)")
        self.config = config; self.B = B; self.T = T; self.context = context
        let chunk: Int
        if let vocabChunk {
            chunk = vocabChunk
        } else {
            let fullBytes = B * T * config.paddedVocabSize * context.precision.elementSize
            chunk = fullBytes <= (try context.memoryInfo().free) / 4 ? config.paddedVocabSize : 8192
        }
        self.vocabChunk = CUDALaunchConfig.vocabChunk(Vp: config.paddedVocabSize, maxChunk: chunk)
        offsets = CUDAWeights.offsets(config)
        counts = ParameterName.allCases.map { $0.count(config) }
        let total = counts.reduce(0, +)
        parameterCount = total
        let c = context, L = config.numLayers, C = config.channels, NH = config.numHeads, BT = B * T
        let masterBuffer = try c.allocateF(total)
        master = masterBuffer; grads = try c.allocateF(total)
        adamM = try c.allocateF(total); adamV = try c.allocateF(total)
        let copyX = c.precision == .fp32 ? nil : try c.allocateX(total)
        paramsX = copyX
        weights = CUDAWeights(config: config, base: copyX?.pointer ?? masterBuffer.pointer, elementSize: copyX == nil ? 4 : c.precision.elementSize)
        tokens = try c.allocate(bytes: BT * 4); targetIDs = try c.allocate(bytes: BT * 4)
        encoded = try c.allocateX(BT * C); lnf = try c.allocateX(BT * C); projOut = try c.allocateX(BT * C)
        ln1 = try c.allocateX(L * BT * C); atty = try c.allocateX(L * BT * C); residual2 = try c.allocateX(L * BT * C)
        ln2 = try c.allocateX(L * BT * C); residual3 = try c.allocateX(L * BT * C)
        qkv = try c.allocateX(L * BT * 3 * C); fch = try c.allocateX(L * BT * 4 * C); fchGelu = try c.allocateX(L * BT * 4 * C)
        ln1Mean = try c.allocateF(L * BT); ln1Rstd = try c.allocateF(L * BT); ln2Mean = try c.allocateF(L * BT); ln2Rstd = try c.allocateF(L * BT)
        lnfMean = try c.allocateF(BT); lnfRstd = try c.allocateF(BT); losses = try c.allocateF(BT); lse = try c.allocateF(BT)
        attLse = try c.allocateF(L * B * NH * T)
        logits = try c.allocateX(BT * self.vocabChunk)
        classifier = try .init(context: c, rows: BT)
        dresidual = try c.allocateX(BT * C); dbtc = try c.allocateX(BT * C); dfch = try c.allocateX(BT * 4 * C)
        dqkv = try c.allocateX(BT * 3 * C); dlnf32 = try c.allocateF(BT * C)
        attD = try c.allocateF(B * NH * T)
        lnScratch = try c.allocateF(c.layerNormScratchCount(B: B, T: T, C: C))
        biasScratch = try c.allocateF([C, 3 * C, 4 * C].map { c.biasScratchCount(B: B, T: T, OC: $0) }.max()!)
        normScratch = try c.allocateF(CUDALaunchConfig.gradNormBlocks + 1)
        try c.zero(grads.pointer, bytes: total * 4)
        try c.zero(adamM.pointer, bytes: total * 4)
        try c.zero(adamV.pointer, bytes: total * 4)
    }

    // MARK: Addresses

    /// floatX weights read by the forward pass.
    func w(_ name: ParameterName, _ layer: Int? = nil) -> CUdeviceptr { weights.w(name, layer) }
    /// fp32 gradient.
    func g(_ name: ParameterName, _ layer: Int? = nil) -> CUdeviceptr { grads.at(weights.elementOffset(name, layer) * 4) }
    /// Layer l's slice of a per-layer floatX activation with `per` elements per layer.
    func x(_ buf: CUDABuffer, _ l: Int, _ per: Int) -> CUdeviceptr { buf.at(l * per * context.precision.elementSize) }
    func f(_ buf: CUDABuffer, _ l: Int, _ per: Int) -> CUdeviceptr { buf.at(l * per * 4) }

    // MARK: Parameters

    /// Uploads `params` as the fp32 master weights (and their floatX copy); zeroes the AdamW moments.
    public func loadParameters(from params: ParameterTensors) throws {
        precondition(params.config == config && params.count == parameterCount, "loadParameters: config mismatch")
        try context.upload(master.pointer, params.memory, bytes: parameterCount * 4)
        if let paramsX {
            try context.floatToFloatX(out: paramsX.pointer, inp: master.pointer, N: parameterCount)
        }
        try context.zero(adamM.pointer, bytes: parameterCount * 4)
        try context.zero(adamV.pointer, bytes: parameterCount * 4)
        try context.synchronize()
    }

    public func downloadParameters(into t: ParameterTensors) throws { try context.download(t.memory, master.pointer, bytes: parameterCount * 4) }
    /// Raw gradients (without a pending clip scale).
    public func downloadGradients(into t: ParameterTensors) throws { try context.download(t.memory, grads.pointer, bytes: parameterCount * 4) }
    public func downloadMoments(m: ParameterTensors, v: ParameterTensors) throws {
        try context.download(m.memory, adamM.pointer, bytes: parameterCount * 4)
        try context.download(v.memory, adamV.pointer, bytes: parameterCount * 4)
    }
    public func uploadMoments(m: ParameterTensors, v: ParameterTensors) throws {
        precondition(m.count == parameterCount && v.count == parameterCount, "uploadMoments: config mismatch")
        try context.upload(adamM.pointer, m.memory, bytes: parameterCount * 4)
        try context.upload(adamV.pointer, v.memory, bytes: parameterCount * 4)
    }
    /// Per-position losses of the last forward pass with targets.
    public func downloadLosses() throws -> [Float] {
        var out = [Float](repeating: 0, count: B * T)
        try out.withUnsafeMutableBytes { try context.download($0.baseAddress!, losses.pointer, bytes: $0.count) }
        return out
    }

    // MARK: Forward

    /// Runs the model on (B,T) `inputs`; with `targets`, returns the mean loss (NaN without).
    @discardableResult
    public func forward(inputs: [Int32], targets: [Int32]?) throws -> Float {
        let c = context, L = config.numLayers, C = config.channels, NH = config.numHeads, V = config.vocabSize
        let Vp = config.paddedVocabSize, BT = B * T
        precondition(inputs.count == BT && (targets?.count ?? BT) == BT, "forward: expected \(BT) ids")
        precondition(inputs.allSatisfy { $0 >= 0 && Int($0) < V } && (targets ?? []).allSatisfy { $0 >= 0 && Int($0) < V },
                     "forward: token outside [0, \(V))")
        try inputs.withUnsafeBytes { try c.upload(tokens.pointer, $0.baseAddress!, bytes: $0.count) }
        if let targets { try targets.withUnsafeBytes { try c.upload(targetIDs.pointer, $0.baseAddress!, bytes: $0.count) } }
        buckets = try c.uploadBuckets(EncoderBuckets(inputs: inputs))
        hasTargets = targets != nil

        try c.encoderForward(out: encoded.pointer, inp: tokens.pointer, wte: w(.wte), wpe: w(.wpe), B: B, T: T, C: C)
        try c.layerNormForward(out: ln1.pointer, mean: ln1Mean.pointer, rstd: ln1Rstd.pointer, inp: encoded.pointer,
                               weight: w(.ln1w, 0), bias: w(.ln1b, 0), B: B, T: T, C: C)
        for l in 0..<L {
            let residual = l == 0 ? encoded.pointer : x(residual3, l - 1, BT * C)
            let qkvL = x(qkv, l, BT * 3 * C), attyL = x(atty, l, BT * C), fchL = x(fch, l, BT * 4 * C), geluL = x(fchGelu, l, BT * 4 * C)
            try c.matmulForward(out: qkvL, inp: x(ln1, l, BT * C), weight: w(.qkvw, l), bias: w(.qkvb, l), B: B, T: T, C: C, OC: 3 * C)
            if tensorCoreAttention {
                try c.attentionForwardTC(out: attyL, lse: f(attLse, l, B * NH * T), inp: qkvL, B: B, T: T, C: C, NH: NH)
            } else {
                try c.attentionForward(out: attyL, lse: f(attLse, l, B * NH * T), inp: qkvL, B: B, T: T, C: C, NH: NH)
            }
            try c.matmulForward(out: projOut.pointer, inp: attyL, weight: w(.attprojw, l), bias: w(.attprojb, l), B: B, T: T, C: C, OC: C)
            try c.fusedResidualLayerNormForward(residual: x(residual2, l, BT * C), out: x(ln2, l, BT * C), mean: f(ln2Mean, l, BT),
                                                rstd: f(ln2Rstd, l, BT), inp1: residual, inp2: projOut.pointer,
                                                weight: w(.ln2w, l), bias: w(.ln2b, l), B: B, T: T, C: C)
            if fusedGELU {
                try c.matmulForwardGELU(out: geluL, preGelu: fchL, inp: x(ln2, l, BT * C), weight: w(.fcw, l), bias: w(.fcb, l),
                                        B: B, T: T, C: C, OC: 4 * C)
            } else {
                try c.matmulForward(out: fchL, inp: x(ln2, l, BT * C), weight: w(.fcw, l), bias: w(.fcb, l), B: B, T: T, C: C, OC: 4 * C)
                try c.geluForward(out: geluL, inp: fchL, N: BT * 4 * C)
            }
            try c.matmulForward(out: projOut.pointer, inp: geluL, weight: w(.fcprojw, l), bias: w(.fcprojb, l), B: B, T: T, C: 4 * C, OC: C)
            // residual3 = residual2 + mlp, then the next LayerNorm (ln1 of layer l+1, or lnf)
            let last = l == L - 1
            try c.fusedResidualLayerNormForward(
                residual: x(residual3, l, BT * C), out: last ? lnf.pointer : x(ln1, l + 1, BT * C),
                mean: last ? lnfMean.pointer : f(ln1Mean, l + 1, BT), rstd: last ? lnfRstd.pointer : f(ln1Rstd, l + 1, BT),
                inp1: x(residual2, l, BT * C), inp2: projOut.pointer,
                weight: last ? w(.lnfw) : w(.ln1w, l + 1), bias: last ? w(.lnfb) : w(.ln1b, l + 1), B: B, T: T, C: C)
        }
        // LM head (tied to wte) and cross-entropy, one vocabulary chunk at a time
        try c.classifierInit(classifier, N: BT)
        for v0 in stride(from: 0, to: Vp, by: vocabChunk) {
            let Vc = min(vocabChunk, Vp - v0)
            try c.matmulForward(out: logits.pointer, inp: lnf.pointer, weight: w(.wte) + CUdeviceptr(v0 * C * c.precision.elementSize),
                                bias: nil, B: B, T: T, C: C, OC: Vc)
            try c.classifierChunkForward(classifier, logits: logits.pointer, targets: targets == nil ? nil : targetIDs.pointer,
                                         N: BT, Vc: Vc, v0: v0, V: V)
        }
        try c.classifierFinalize(classifier, losses: targets == nil ? 0 : losses.pointer, lse: lse.pointer, N: BT)
        forwardDone = true
        guard targets != nil else { meanLoss = .nan; return .nan }
        let l = try downloadLosses()
        meanLoss = Float(l.reduce(0.0) { $0 + Double($1) } / Double(BT))
        return meanLoss
    }

    // MARK: Backward

    /// Sets all gradients to zero and forgets a pending clip scale.
    public func zeroGrad() throws {
        try context.zero(grads.pointer, bytes: parameterCount * 4)
        gradScale = 1
    }

    /// Backpropagates the mean loss of the last forward pass (with targets), accumulating (+=)
    /// into the fp32 gradients, as GPT2.backward(lossScale:).
    public func backward(lossScale: Float = 1) throws {
        precondition(forwardDone && hasTargets, "backward: call forward with targets first")
        forwardDone = false
        let c = context, L = config.numLayers, C = config.channels, NH = config.numHeads, V = config.vocabSize
        let Vp = config.paddedVocabSize, BT = B * T, es = c.precision.elementSize
        guard let buckets else { preconditionFailure("backward: no encoder buckets") }
        // LM head: per chunk, logits again, then dlogits in place, dlnf (+)= dlogits·wte, dwte += dlogitsᵀ·lnf
        for v0 in stride(from: 0, to: Vp, by: vocabChunk) {
            let Vc = min(vocabChunk, Vp - v0)
            let wte = w(.wte) + CUdeviceptr(v0 * C * es)
            if !singleHeadChunk {   // one chunk: the forward pass's logits are still there
                try c.matmulForward(out: logits.pointer, inp: lnf.pointer, weight: wte, bias: nil, B: B, T: T, C: C, OC: Vc)
            }
            try c.classifierChunkBackward(logits: logits.pointer, lse: lse.pointer, targets: targetIDs.pointer,
                                          dloss: lossScale / Float(BT), N: BT, Vc: Vc, v0: v0, V: V)
            try c.gemm(transA: false, transB: false, m: C, n: BT, k: Vc, a: wte, lda: C, b: logits.pointer, ldb: Vc,
                       beta: v0 == 0 ? 0 : 1, d: dlnf32.pointer, ldd: C, fp32Output: true)
            try c.gemm(transA: false, transB: true, m: C, n: Vc, k: BT, a: lnf.pointer, lda: C, b: logits.pointer, ldb: Vc,
                       beta: 1, d: g(.wte) + CUdeviceptr(v0 * C * 4), ldd: C, fp32Output: true)
        }
        try c.floatToFloatX(out: dbtc.pointer, inp: dlnf32.pointer, N: BT * C)
        try c.zero(dresidual.pointer, bytes: BT * C * es)
        try c.layerNormBackward(dinp: dresidual.pointer, dweight: g(.lnfw), dbias: g(.lnfb), dout: dbtc.pointer,
                                inp: x(residual3, L - 1, BT * C), weight: w(.lnfw), mean: lnfMean.pointer, rstd: lnfRstd.pointer,
                                B: B, T: T, C: C, scratch: lnScratch.pointer)
        for l in stride(from: L - 1, through: 0, by: -1) {
            let residual = l == 0 ? encoded.pointer : x(residual3, l - 1, BT * C)
            let bs = biasScratch.pointer
            // MLP branch; dresidual holds d(residual3) and flows straight through the residual add
            try c.matmulBackward(dinp: dfch.pointer, dweight: g(.fcprojw, l), dbias: g(.fcprojb, l), dout: dresidual.pointer,
                                 inp: x(fchGelu, l, BT * 4 * C), weight: w(.fcprojw, l), B: B, T: T, C: 4 * C, OC: C,
                                 dinpGELU: fusedGELU ? x(fch, l, BT * 4 * C) : nil, scratch: bs)
            if !fusedGELU { try c.geluBackward(dinp: dfch.pointer, inp: x(fch, l, BT * 4 * C), dout: dfch.pointer, N: BT * 4 * C) }
            try c.matmulBackward(dinp: dbtc.pointer, dweight: g(.fcw, l), dbias: g(.fcb, l), dout: dfch.pointer,
                                 inp: x(ln2, l, BT * C), weight: w(.fcw, l), B: B, T: T, C: C, OC: 4 * C, scratch: bs)
            try c.layerNormBackward(dinp: dresidual.pointer, dweight: g(.ln2w, l), dbias: g(.ln2b, l), dout: dbtc.pointer,
                                    inp: x(residual2, l, BT * C), weight: w(.ln2w, l), mean: f(ln2Mean, l, BT),
                                    rstd: f(ln2Rstd, l, BT), B: B, T: T, C: C, scratch: lnScratch.pointer)
            // attention branch; dresidual now holds d(residual2)
            try c.matmulBackward(dinp: dbtc.pointer, dweight: g(.attprojw, l), dbias: g(.attprojb, l), dout: dresidual.pointer,
                                 inp: x(atty, l, BT * C), weight: w(.attprojw, l), B: B, T: T, C: C, OC: C, scratch: bs)
            let qkvL = x(qkv, l, BT * 3 * C), attyL = x(atty, l, BT * C), lseL = f(attLse, l, B * NH * T)
            if tensorCoreAttention {
                try c.attentionBackwardTC(dinp: dqkv.pointer, dout: dbtc.pointer, inp: qkvL, out: attyL, lse: lseL,
                                          B: B, T: T, C: C, NH: NH, scratch: attD.pointer)
            } else {
                try c.attentionBackward(dinp: dqkv.pointer, dout: dbtc.pointer, inp: qkvL, out: attyL, lse: lseL,
                                        B: B, T: T, C: C, NH: NH, scratch: attD.pointer)
            }
            try c.matmulBackward(dinp: dbtc.pointer, dweight: g(.qkvw, l), dbias: g(.qkvb, l), dout: dqkv.pointer,
                                 inp: x(ln1, l, BT * C), weight: w(.qkvw, l), B: B, T: T, C: C, OC: 3 * C, scratch: bs)
            try c.layerNormBackward(dinp: dresidual.pointer, dweight: g(.ln1w, l), dbias: g(.ln1b, l), dout: dbtc.pointer,
                                    inp: residual, weight: w(.ln1w, l), mean: f(ln1Mean, l, BT), rstd: f(ln1Rstd, l, BT),
                                    B: B, T: T, C: C, scratch: lnScratch.pointer)
        }
        try c.encoderBackward(dwte: g(.wte), dwpe: g(.wpe), dout: dresidual.pointer, buckets: buckets, B: B, T: T, C: C)
        try c.synchronize()
    }

    // MARK: Optimizer

    /// Global L2 norm of the gradients (times a pending clip scale).
    public func gradNorm() throws -> Float {
        try context.sumOfSquares(grads.pointer, N: parameterCount, scratch: normScratch.pointer).squareRoot() * gradScale
    }

    /// As GPT2.clipGradients: records the scale maxNorm / (norm + 1e-6) when < 1; returns the norm.
    @discardableResult
    public func clipGradients(maxNorm: Float) throws -> Float {
        let norm = try gradNorm()
        gradScale *= GradientClipping.scale(norm: norm, maxNorm: maxNorm)
        return norm
    }

    /// One AdamW step over every tensor (weight decay on the 2-D ones), as GPT2.update.
    public func update(learningRate: Float, beta1: Float = AdamWDefaults.beta1, beta2: Float = AdamWDefaults.beta2, eps: Float = AdamWDefaults.eps,
                       weightDecay: Float = 0, step: Int) throws {
        for name in ParameterName.allCases {
            let o = offsets[name.rawValue], n = counts[name.rawValue]
            let out = paramsX.map { $0.at(o * context.precision.elementSize) } ?? master.at(o * 4)
            try context.adamW(params: master.at(o * 4), paramsOut: out, grads: grads.at(o * 4), m: adamM.at(o * 4),
                              v: adamV.at(o * 4), N: n, learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
                              weightDecay: name.isDecayed ? weightDecay : 0, step: step, gradScale: gradScale)
        }
        try context.synchronize()
    }
}

// MARK: - TrainingEngine

/// A data-parallel reducer that works on device memory (NCCL): `Trainer` hands it the fp32
/// gradient buffer directly instead of a host copy.
public protocol DeviceGradientReducer: GradientReducer {
    /// Sums `count` fp32 values at `values` (device memory of `context`) over all ranks, in place.
    func sumInPlace(device values: CUdeviceptr, count: Int, context: CUDAContext) throws
}

extension CUDABackend: TrainingEngine {
    public func forward(inputs: [Int32], targets: [Int32]?, B: Int, T: Int) throws -> Float {
        precondition(B == self.B && T == self.T, "CUDABackend was allocated for B=\(self.B) T=\(self.T), got B=\(B) T=\(T)")
        return try forward(inputs: inputs, targets: targets)
    }

    /// NCCL: sum on the device, then fold 1/worldSize into the pending gradient scale (AdamW and
    /// the norm apply it: no extra pass). Any other reducer (MPI): through a host copy.
    public func averageGradients(over reducer: GradientReducer) throws {
        if let device = reducer as? DeviceGradientReducer {
            try context.synchronize()
            try device.sumInPlace(device: grads.pointer, count: parameterCount, context: context)
            gradScale /= Float(reducer.worldSize)
            return
        }
        var host = [Float](repeating: 0, count: parameterCount)
        try host.withUnsafeMutableBufferPointer { h in
            try context.download(h.baseAddress!, grads.pointer, bytes: parameterCount * 4)
            try reducer.averageInPlace(h.baseAddress!, count: parameterCount)
            try context.upload(grads.pointer, h.baseAddress!, bytes: parameterCount * 4)
        }
    }

    public func copyState(to model: GPT2, includeOptimizer: Bool) throws {
        precondition(model.config == config, "copyState: config mismatch")
        try downloadParameters(into: model.params)
        if includeOptimizer { try downloadMoments(m: model.adamM, v: model.adamV) }
    }

    public func loadState(from model: GPT2, includeOptimizer: Bool) throws {
        precondition(model.config == config, "loadState: config mismatch")
        try loadParameters(from: model.params)   // zeroes the moments
        if includeOptimizer { try uploadMoments(m: model.adamM, v: model.adamV) }
    }
}
