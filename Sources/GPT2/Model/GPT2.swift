// GPT-2 on the CPU, llm.c style: flat parameter/gradient/moment buffers, explicit kernels, no
// autograd. `forward` is a straight list of kernel calls per layer; `backward` is the same list
// reversed. Reference: https://github.com/karpathy/llm.c/blob/master/train_gpt2.c
// Legend: B batch, T time, C channels, L layers, NH heads, V vocab, Vp padded vocab.
import Foundation
import GPT2Kernels

/// A GPT-2 model with its parameters, gradients, AdamW state and activations for one (B, T).
/// Not thread-safe: use one instance from one thread at a time (the kernels themselves run
/// multi-threaded). It is `@unchecked Sendable` so it can be handed to another task or thread.
public final class GPT2: @unchecked Sendable {
    /// Model shape.
    public let config: GPT2Config
    /// Parameters in llm.c order and layout.
    public let params: ParameterTensors
    private var _grads: ParameterTensors?
    // Deferred gradient work, so a training step touches the big gradient buffer as few times as
    // possible: zeroGrad only sets `gradsZeroPending` (backward then overwrites the weight-matrix
    // gradients instead of accumulating), and clipGradients only records `gradScale`, which
    // AdamW applies on the fly. Reading `grads` makes both explicit first.
    private var gradsZeroPending = false
    private var gradScale: Float = 1
    private var _m: ParameterTensors?
    private var _v: ParameterTensors?
    private var bf16Weights: BF16WeightCopy?
    private var acts: ActivationTensors?
    private var scratch: GradientScratch?
    private var inputs: [Int32] = []
    private var targets: [Int32] = []
    private var hasTargets = false
    private var logitsConsumed = false

    /// Batch size and sequence length of the last forward pass (0 before any).
    public private(set) var B = 0
    public private(set) var T = 0
    /// Mean loss of the last forward pass with targets (NaN otherwise).
    public private(set) var meanLoss: Float = .nan

    /// Matmul arithmetic of forward, backward and the LM head (default fp32, the reference). With a
    /// bf16 path the matmul operands are bf16 (weights from a copy that AdamW refreshes, activations
    /// rounded while packing), accumulation is fp32, and everything else (master weights, moments,
    /// gradients, LayerNorm, softmax, loss) stays fp32. Get a path with `CPUPrecision.resolve()`.
    public var precision: CPUMatmulPath = .fp32 {
        didSet {
            precondition(precision.unavailableReason == nil, "GPT2.precision: \(precision.rawValue) cannot run here: \(precision.unavailableReason ?? "")")
            if !precision.isBF16 { bf16Weights = nil }
        }
    }

    /// Tells a bf16 model that parameters were edited in place, so its bf16 weight copy is remade
    /// before the next forward. Loads that replace the parameters are noticed without it (a
    /// sampled fingerprint); edits of a few values need it. No effect in fp32.
    public func parametersDidChange() { bf16Weights?.invalidate() }

    /// `Matmul.forward`'s `bf16:` argument for weight `name` (the given layer's slice for per-layer
    /// tensors) under this model's `precision`: nil in fp32. Makes the bf16 copy fresh first, so
    /// other engines over this model (e.g. the generator's prompt pass) can run bf16 matmuls.
    public func bf16MatmulWeight(_ name: ParameterName, layer: Int? = nil) -> Matmul.BF16Weight? {
        bf16(freshBF16Weights(), name, layer: layer)
    }

    /// Matmul's bf16 arguments for one pass over the model (nil in fp32), the copy made fresh once.
    func bf16MatmulWeights() -> (ParameterName, Int?) -> Matmul.BF16Weight? {
        let w16 = freshBF16Weights()
        return { name, layer in self.bf16(w16, name, layer: layer) }
    }

    /// The bf16 weight copy as it stands (for the selftest and tests).
    var bf16WeightCopyForTesting: BF16WeightCopy? { bf16Weights }

    /// The bf16 copy, fresh, when `precision` is bf16 (nil in fp32).
    private func freshBF16Weights() -> BF16WeightCopy? {
        guard precision.isBF16 else { return nil }
        let w = bf16Weights ?? BF16WeightCopy(count: params.count)
        bf16Weights = w
        w.ensureFresh(params)
        return w
    }

    /// Matmul's bf16 argument for `name` (layer `layer`), or nil in fp32.
    private func bf16(_ w: BF16WeightCopy?, _ name: ParameterName, layer: Int? = nil) -> Matmul.BF16Weight? {
        w.map { Matmul.BF16Weight(path: precision, weight: $0.pointer(params, name, layer: layer)) }
    }

    /// Creates a model with all parameters zero.
    public init(config: GPT2Config) {
        if let problem = config.validationError { preconditionFailure("GPT2Config: \(problem)") }
        self.config = config
        params = ParameterTensors(config: config)
    }

    /// Gradients, same layout as `params` (allocated, zeroed, on first use). `zeroGrad` and
    /// `clipGradients` are applied lazily, when this property is read: read it again after them
    /// rather than keeping an old reference.
    public var grads: ParameterTensors {
        let g = gradStorage
        if gradsZeroPending {
            g.zero()
        } else if gradScale != 1 {
            let s = gradScale
            Parallel.chunks(g.count, minChunk: 1 << 16, align: 16) { r in gpt2k_scale(g.memory + r.lowerBound, s, r.count) }
        }
        gradsZeroPending = false
        gradScale = 1
        return g
    }

    /// The gradient buffer as stored (possibly with deferred zeroing or scaling).
    private var gradStorage: ParameterTensors {
        if let g = _grads { return g }
        let g = ParameterTensors(config: config)
        _grads = g
        return g
    }

    /// AdamW first and second moments, same layout as `params` (allocated on first use).
    public var adamM: ParameterTensors {
        if let t = _m { return t }
        let t = ParameterTensors(config: config); _m = t; return t
    }
    public var adamV: ParameterTensors {
        if let t = _v { return t }
        let t = ParameterTensors(config: config); _v = t; return t
    }

    /// Number of trainable parameters (wte counted with V rows).
    public var parameterCount: Int { config.parameterCount }

    // MARK: - Initialisation

    /// GPT-2 initialisation (nanoGPT `_init_weights`): weights and embeddings N(0, 0.02),
    /// residual projections (attprojw, fcprojw) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weight 1
    /// and bias 0; padded `wte` rows stay 0. Deterministic for a given seed.
    public func initializeRandom(seed: UInt64) {
        parametersDidChange()
        let residualStd = 0.02 / Float(2 * config.numLayers).squareRoot()
        for name in ParameterName.allCases {
            let p = params.pointer(name), n = params.count(name)
            switch name {
            case .ln1w, .ln2w, .lnfw:
                p.update(repeating: 1, count: n)
            case .ln1b, .ln2b, .lnfb, .qkvb, .attprojb, .fcb, .fcprojb:
                p.update(repeating: 0, count: n)
            default:
                let real = name == .wte ? config.vocabSize * config.channels : n
                let std: Float = name.isResidualProjection ? residualStd : 0.02
                (p + real).update(repeating: 0, count: n - real)   // padded wte rows
                // Fixed-size chunks, each with its own stream: the result depends only on the
                // seed, not on the thread count.
                let chunk = 1 << 16, chunks = (real + chunk - 1) / chunk
                Parallel.forEach(min(Parallel.threadCount, chunks)) { tid in
                    for c in stride(from: tid, to: chunks, by: Parallel.threadCount) {
                        var rng = NormalRNG(seed: seed &+ UInt64(name.rawValue) << 40 &+ UInt64(c) &* 0x9E37_79B9)
                        for i in c * chunk..<min(real, (c + 1) * chunk) { p[i] = std * rng.next() }
                    }
                }
            }
        }
    }

    // MARK: - Forward

    /// Reserves activations for (B, T); reuses the current ones when the shape is unchanged.
    private func ensureActivations(B: Int, T: Int) -> ActivationTensors {
        if let a = acts, a.B == B, a.T == T { return a }
        acts = nil            // free the old buffers before allocating the new ones
        scratch = nil
        let a = ActivationTensors(config: config, B: B, T: T)
        acts = a
        return a
    }

    /// Runs the model on `inputs` (B,T) token ids.
    /// - Parameters:
    ///   - inputs: B·T token ids in [0, vocabSize).
    ///   - targets: B·T next-token ids, or nil for inference.
    /// - Returns: the mean cross-entropy over B·T positions, or NaN without targets.
    ///   Logits (`logits(b:t:)`) stay valid until `backward`, which overwrites them with their gradient.
    @discardableResult
    public func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, B: Int, T: Int) -> Float {
        let c = config
        precondition(B >= 1 && T >= 1 && T <= c.maxSeqLen, "forward: need 1 <= T <= maxSeqLen \(c.maxSeqLen), B >= 1 (got B=\(B) T=\(T))")
        let L = c.numLayers, C = c.channels, NH = c.numHeads, V = c.vocabSize, Vp = c.paddedVocabSize
        let BT = B * T
        for i in 0..<BT {
            precondition(inputs[i] >= 0 && Int(inputs[i]) < V, "forward: input token \(inputs[i]) at \(i) outside [0, \(V))")
            if let targets {
                precondition(targets[i] >= 0 && Int(targets[i]) < V, "forward: target \(targets[i]) at \(i) outside [0, \(V))")
            }
        }
        let a = ensureActivations(B: B, T: T)
        self.B = B
        self.T = T
        self.inputs = Array(UnsafeBufferPointer(start: inputs, count: BT))
        hasTargets = targets != nil
        self.targets = targets.map { Array(UnsafeBufferPointer(start: $0, count: BT)) } ?? []
        logitsConsumed = false
        let p = params
        let w16 = freshBF16Weights()

        Encoder.forward(out: a.encoded, inp: inputs, wte: p.pointer(.wte), wpe: p.pointer(.wpe), B: B, T: T, C: C)
        for l in 0..<L {
            // Layer l's activations land in their slices, kept for backward (ln1, ln2 and the
            // GELU output are recomputed there, so one buffer serves every layer).
            let io = TransformerBlock.Buffers(
                ln1: a.ln1, ln1Mean: a.ln1Mean + l * BT, ln1Rstd: a.ln1Rstd + l * BT, qkv: a.qkv + l * BT * 3 * C,
                atty: a.atty + l * BT * C, residual2: a.residual2 + l * BT * C, ln2: a.ln2, ln2Mean: a.ln2Mean + l * BT,
                ln2Rstd: a.ln2Rstd + l * BT, fch: a.fch + l * BT * 4 * C, fchGelu: a.fchGelu, output: a.residual3 + l * BT * C)
            let lse = a.attLse + l * B * NH * T
            TransformerBlock.forward(p, layer: l, input: l == 0 ? a.encoded : a.residual3 + (l - 1) * BT * C, buffers: io, N: BT, C: C,
                                     bf16: { self.bf16(w16, $0, layer: l) }) { qkv, atty in
                Attention.forward(out: atty, lse: lse, inp: qkv, B: B, T: T, C: C, NH: NH, scratch: a.attScratch)
            }
        }
        let last = a.residual3 + (L - 1) * BT * C
        LayerNorm.forward(out: a.lnf, mean: a.lnfMean, rstd: a.lnfRstd, inp: last,
                          weight: p.pointer(.lnfw), bias: p.pointer(.lnfb), B: B, T: T, C: C)
        // LM head tied to wte: logits (B,T,Vp) = lnf · wteᵀ
        Matmul.forward(out: a.logits, inp: a.lnf, weight: p.pointer(.wte), bias: nil, B: B, T: T, C: C, OC: Vp,
                       bf16: bf16(w16, .wte))

        guard let targets else {
            meanLoss = .nan
            return .nan
        }
        CrossEntropy.forward(losses: a.losses, lse: a.lse, logits: a.logits, targets: targets, B: B, T: T, V: V, Vp: Vp)
        var sum = 0.0
        for i in 0..<BT { sum += Double(a.losses[i]) }
        meanLoss = Float(sum / Double(BT))
        return meanLoss
    }

    /// Convenience overload taking arrays of B·T ids.
    @discardableResult
    public func forward(inputs: [Int32], targets: [Int32]?, B: Int, T: Int) -> Float {
        precondition(inputs.count == B * T && (targets == nil || targets!.count == B * T),
                     "forward: expected \(B * T) ids (got \(inputs.count), \(targets?.count ?? 0))")
        return inputs.withUnsafeBufferPointer { i in
            if let targets {
                return targets.withUnsafeBufferPointer { forward(inputs: i.baseAddress!, targets: $0.baseAddress!, B: B, T: T) }
            }
            return forward(inputs: i.baseAddress!, targets: nil, B: B, T: T)
        }
    }

    /// Logits of batch row `b`, position `t` from the last forward pass: paddedVocabSize values,
    /// of which only the first vocabSize are meaningful.
    public func logits(b: Int, t: Int) -> UnsafeBufferPointer<Float> {
        guard let a = acts else { preconditionFailure("logits: call forward first") }
        precondition(b >= 0 && b < B && t >= 0 && t < T, "logits: (b \(b), t \(t)) outside (B \(B), T \(T))")
        precondition(!logitsConsumed, "logits: backward() has overwritten the logits with their gradient")
        let Vp = config.paddedVocabSize
        return UnsafeBufferPointer(start: a.logits + (b * T + t) * Vp, count: Vp)
    }

    /// Per-position losses (B·T) of the last forward pass with targets.
    public var losses: UnsafeBufferPointer<Float> {
        guard let a = acts, hasTargets else { preconditionFailure("losses: call forward with targets first") }
        return UnsafeBufferPointer(start: a.losses, count: B * T)
    }

    // MARK: - Backward

    /// Sets all parameter gradients to zero (deferred: the next backward overwrites them).
    public func zeroGrad() {
        _ = gradStorage
        gradsZeroPending = true
        gradScale = 1
    }

    /// Backpropagates the mean loss of the last forward pass (which must have had targets),
    /// accumulating (+=) into `grads`, so gradient accumulation works by calling
    /// forward/backward per micro-step with `lossScale = 1 / microSteps`.
    /// Overwrites the logits with their gradient.
    public func backward(lossScale: Float = 1) {
        guard let a = acts, hasTargets else { preconditionFailure("backward: call forward with targets first") }
        precondition(!logitsConsumed, "backward: already called for this forward pass")
        logitsConsumed = true
        let c = config, L = c.numLayers, C = c.channels, NH = c.numHeads, V = c.vocabSize, Vp = c.paddedVocabSize
        let B = self.B, T = self.T, BT = B * T
        // Pending clip scale: make it explicit before accumulating more (rare).
        let fresh = gradsZeroPending
        let g = fresh ? gradStorage : grads
        if fresh {   // weight matrices are overwritten below; zero the small tensors they don't cover
            for name in ParameterName.allCases where ![.wte, .qkvw, .attprojw, .fcw, .fcprojw].contains(name) {
                g.pointer(name).update(repeating: 0, count: g.count(name))
            }
            gradsZeroPending = false
        }
        let p = params
        let w16 = precision.isBF16 ? bf16Weights : nil   // made fresh by forward
        if scratch == nil || scratch!.B != B || scratch!.T != T { scratch = GradientScratch(config: c, B: B, T: T) }
        let s = scratch!

        // dlogits in place, then the tied LM head: dlnf = dlogits · wte, dwte += dlogitsᵀ · lnf
        targets.withUnsafeBufferPointer { tg in
            CrossEntropy.backward(logits: a.logits, lse: a.lse, targets: tg.baseAddress!, dloss: lossScale / Float(BT),
                                  B: B, T: T, V: V, Vp: Vp)
        }
        Matmul.backward(dinp: s.dbtc, dweight: g.pointer(.wte), dbias: nil, dout: a.logits, inp: a.lnf,
                        weight: p.pointer(.wte), B: B, T: T, C: C, OC: Vp, accumulateWeight: !fresh, bf16: bf16(w16, .wte))
        s.dresidual.update(repeating: 0, count: BT * C)
        LayerNorm.backward(dinp: s.dresidual, dweight: g.pointer(.lnfw), dbias: g.pointer(.lnfb), dout: s.dbtc,
                           inp: a.residual3 + (L - 1) * BT * C, weight: p.pointer(.lnfw), mean: a.lnfMean,
                           rstd: a.lnfRstd, B: B, T: T, C: C, scratch: s.lnScratch)

        for l in stride(from: L - 1, through: 0, by: -1) {
            let residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * BT * C
            let ln1 = a.ln1, ln1Mean = a.ln1Mean + l * BT, ln1Rstd = a.ln1Rstd + l * BT
            let qkv = a.qkv + l * BT * 3 * C, atty = a.atty + l * BT * C, lse = a.attLse + l * B * NH * T
            let residual2 = a.residual2 + l * BT * C
            let ln2 = a.ln2, ln2Mean = a.ln2Mean + l * BT, ln2Rstd = a.ln2Rstd + l * BT
            let fch = a.fch + l * BT * 4 * C, fchGelu = a.fchGelu

            // recompute this layer's ln2 and gelu outputs (forward keeps only the last layer's)
            LayerNorm.forward(out: ln2, mean: ln2Mean, rstd: ln2Rstd, inp: residual2,
                              weight: p.pointer(.ln2w, layer: l), bias: p.pointer(.ln2b, layer: l), B: B, T: T, C: C)
            GELU.forward(out: fchGelu, inp: fch, N: BT * 4 * C)
            // MLP branch; dresidual holds d(residual3) and flows straight through the residual add
            Matmul.backward(dinp: s.dfch, dweight: g.pointer(.fcprojw, layer: l), dbias: g.pointer(.fcprojb, layer: l),
                            dout: s.dresidual, inp: fchGelu, weight: p.pointer(.fcprojw, layer: l), B: B, T: T, C: 4 * C, OC: C, accumulateWeight: !fresh,
                            bf16: bf16(w16, .fcprojw, layer: l))
            GELU.backward(dinp: s.dfch, inp: fch, dout: s.dfch, N: BT * 4 * C)
            Matmul.backward(dinp: s.dbtc, dweight: g.pointer(.fcw, layer: l), dbias: g.pointer(.fcb, layer: l),
                            dout: s.dfch, inp: ln2, weight: p.pointer(.fcw, layer: l), B: B, T: T, C: C, OC: 4 * C, accumulateWeight: !fresh,
                            bf16: bf16(w16, .fcw, layer: l))
            LayerNorm.backward(dinp: s.dresidual, dweight: g.pointer(.ln2w, layer: l), dbias: g.pointer(.ln2b, layer: l),
                               dout: s.dbtc, inp: residual2, weight: p.pointer(.ln2w, layer: l), mean: ln2Mean,
                               rstd: ln2Rstd, B: B, T: T, C: C, scratch: s.lnScratch)
            // attention branch; dresidual now holds d(residual2)
            Matmul.backward(dinp: s.dbtc, dweight: g.pointer(.attprojw, layer: l), dbias: g.pointer(.attprojb, layer: l),
                            dout: s.dresidual, inp: atty, weight: p.pointer(.attprojw, layer: l), B: B, T: T, C: C, OC: C, accumulateWeight: !fresh,
                            bf16: bf16(w16, .attprojw, layer: l))
            Attention.backward(dinp: s.dqkv, dout: s.dbtc, inp: qkv, out: atty, lse: lse, B: B, T: T, C: C, NH: NH,
                               scratch: a.attScratch)
            LayerNorm.forward(out: ln1, mean: ln1Mean, rstd: ln1Rstd, inp: residual,
                              weight: p.pointer(.ln1w, layer: l), bias: p.pointer(.ln1b, layer: l), B: B, T: T, C: C)
            Matmul.backward(dinp: s.dbtc, dweight: g.pointer(.qkvw, layer: l), dbias: g.pointer(.qkvb, layer: l),
                            dout: s.dqkv, inp: ln1, weight: p.pointer(.qkvw, layer: l), B: B, T: T, C: C, OC: 3 * C, accumulateWeight: !fresh,
                            bf16: bf16(w16, .qkvw, layer: l))
            LayerNorm.backward(dinp: s.dresidual, dweight: g.pointer(.ln1w, layer: l), dbias: g.pointer(.ln1b, layer: l),
                               dout: s.dbtc, inp: residual, weight: p.pointer(.ln1w, layer: l), mean: ln1Mean,
                               rstd: ln1Rstd, B: B, T: T, C: C, scratch: s.lnScratch)
        }
        inputs.withUnsafeBufferPointer { inp in
            Encoder.backward(dwte: g.pointer(.wte), dwpe: g.pointer(.wpe), dout: s.dresidual, inp: inp.baseAddress!,
                             B: B, T: T, C: C, Vp: Vp)
        }
    }

    // MARK: - Optimizer

    /// Global L2 norm of all gradients.
    public func gradNorm() -> Float {
        if gradsZeroPending { return 0 }
        let g = gradStorage
        let parts = Parallel.threadCount
        var partial = [Double](repeating: 0, count: parts)
        partial.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            Parallel.forEach(parts) { i in
                let r = Matmul.split(g.count, parts: parts, i)
                o[i] = gpt2k_sumsq(g.memory + r.lowerBound, r.count)
            }
        }
        return Float(partial.reduce(0, +).squareRoot()) * gradScale
    }

    /// Scales the gradients so their global norm is at most `maxNorm`, as
    /// `torch.nn.utils.clip_grad_norm_` (coefficient maxNorm / (norm + 1e-6), applied when < 1).
    /// - Returns: the norm before clipping.
    @discardableResult
    public func clipGradients(maxNorm: Float) -> Float {
        let norm = gradNorm()
        gradScale *= GradientClipping.scale(norm: norm, maxNorm: maxNorm)   // applied by update() or when `grads` is read
        return norm
    }

    /// One AdamW step over all parameters (torch.optim.AdamW semantics). Weight decay applies
    /// only to 2-D tensors (wte, wpe, qkvw, attprojw, fcw, fcprojw).
    /// - Parameter step: 1-based step count, for bias correction.
    public func update(learningRate: Float, beta1: Float = AdamWDefaults.beta1, beta2: Float = AdamWDefaults.beta2, eps: Float = AdamWDefaults.eps,
                       weightDecay: Float = 0.0, step: Int) {
        let g = gradsZeroPending ? grads : gradStorage, m = adamM, v = adamV
        let w16 = precision.isBF16 ? bf16Weights : nil
        for name in ParameterName.allCases {
            let o = params.offset(name)
            if let w16, BF16WeightCopy.matrices.contains(name) {   // also rounds the new weights into the copy
                AdamW.updateBF16(params: params.memory + o, grads: g.memory + o, m: m.memory + o, v: v.memory + o,
                                 N: params.count(name), learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
                                 weightDecay: name.isDecayed ? weightDecay : 0, step: step, gradScale: gradScale,
                                 bf16Copy: w16.memory + o)
                continue
            }
            AdamW.update(params: params.memory + o, grads: g.memory + o, m: m.memory + o, v: v.memory + o,
                         N: params.count(name), learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
                         weightDecay: name.isDecayed ? weightDecay : 0, step: step, gradScale: gradScale)
        }
        w16?.markFresh(params)
    }
}

/// xoshiro256** with Box-Muller, for reproducible N(0,1) initialisation.
struct NormalRNG {
    var s: (UInt64, UInt64, UInt64, UInt64)
    var spare: Float?

    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    mutating func nextUInt64() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3; s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in (0, 1].
    mutating func uniform() -> Double { (Double(nextUInt64() >> 11) + 1) * 0x1.0p-53 }

    /// Standard normal sample.
    mutating func next() -> Float {
        if let z = spare { spare = nil; return z }
        let u1 = uniform(), u2 = uniform()
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spare = Float(r * sin(2 * .pi * u2))
        return Float(r * cos(2 * .pi * u2))
    }
}
