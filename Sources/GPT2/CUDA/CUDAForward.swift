// The forward-only pass on the GPU, shared by every inference job: scoring (per-token losses for
// validation, `gpt eval loss`, HellaSwag) and the KV-cache decoder. It keeps no activations for
// backward: one set of per-layer buffers for N = B·T rows serves every layer in turn (two
// residual buffers in ping-pong), sized for the largest N seen and grown when a call needs more.
// The layer list and kernels are the training forward's (CUDABackend.forward), so a scoring call
// gives the training pass's numbers; the per-token losses come from the chunked classifier, on
// the device. Weights are read through `CUDAWeights`, which both the training engine (its live
// floatX copy) and the inference engine (its own copy) provide.
// Legend: B batch, T time, N = B·T rows, C channels, L layers, NH heads, Vp padded vocab, Vc chunk.
import Foundation

/// Device addresses of a model's floatX weights in `ParameterTensors` layout.
struct CUDAWeights {
    let config: GPT2Config
    /// Start of the (padded) parameter buffer, floatX.
    let base: CUdeviceptr
    let elementSize: Int
    /// Element offset of each tensor, and of one layer's slice within it, by `ParameterName.rawValue`.
    let offsets: [Int], layerStrides: [Int]

    init(config: GPT2Config, base: CUdeviceptr, elementSize: Int) {
        self.config = config
        self.base = base
        self.elementSize = elementSize
        offsets = CUDAWeights.offsets(config)
        layerStrides = ParameterName.allCases.map { $0.count(config) / config.numLayers }
    }

    /// Element offsets of every tensor and the total count.
    static func offsets(_ config: GPT2Config) -> [Int] {
        var offs: [Int] = [], total = 0
        for name in ParameterName.allCases { offs.append(total); total += name.count(config) }
        return offs
    }

    /// Element offset of `name` (of layer `layer` for per-layer tensors).
    func elementOffset(_ name: ParameterName, _ layer: Int? = nil) -> Int {
        var o = offsets[name.rawValue]
        if let layer { o += layer * layerStrides[name.rawValue] }
        return o
    }

    /// Address of `name` (of layer `layer`).
    func w(_ name: ParameterName, _ layer: Int? = nil) -> CUdeviceptr {
        base + CUdeviceptr(elementOffset(name, layer) * elementSize)
    }
}

/// Forward-only activations for up to `rows` positions, reused by every layer.
final class CUDAForwardScratch {
    let rows: Int
    let tokens, targets: CUDABuffer             // (N) int32
    let x0, x1, ln, atty, proj: CUDABuffer       // (N, C): residual ping-pong, LayerNorm output, attention, projections
    let qkv: CUDABuffer                          // (N, 3C)
    let fch, fchGelu: CUDABuffer                 // (N, 4C)
    let mean, rstd: CUDABuffer                   // (N) f32
    let attLse: CUDABuffer                       // (N·NH) f32, written by the attention kernels
    let logits: CUDABuffer                       // (N, Vc)
    let classifier: CUDAContext.ClassifierScratch
    let losses, lse: CUDABuffer                  // (N) f32

    /// LM-head columns per chunk while scoring.
    static func vocabChunk(_ config: GPT2Config) -> Int { CUDALaunchConfig.vocabChunk(Vp: config.paddedVocabSize, maxChunk: 8192) }

    /// Device bytes per row of this scratch.
    static func bytesPerRow(config: GPT2Config, elementSize: Int) -> Int {
        let C = config.channels
        return elementSize * (16 * C + vocabChunk(config)) + 4 * (7 + config.numHeads) + 8
    }

    /// - Parameter scoring: whether the LM head and loss buffers are needed (the decoder has its own).
    init(context c: CUDAContext, config: GPT2Config, rows N: Int, scoring: Bool = true) throws {
        let C = config.channels, S = scoring ? N : 1
        rows = N
        tokens = try c.allocate(bytes: N * 4); targets = try c.allocate(bytes: S * 4)
        x0 = try c.allocateX(N * C); x1 = try c.allocateX(N * C); ln = try c.allocateX(N * C)
        atty = try c.allocateX(N * C); proj = try c.allocateX(N * C)
        qkv = try c.allocateX(N * 3 * C)
        fch = try c.allocateX(N * 4 * C); fchGelu = try c.allocateX(N * 4 * C)
        mean = try c.allocateF(N); rstd = try c.allocateF(N)
        attLse = try c.allocateF(N * config.numHeads)
        logits = try c.allocateX(S * CUDAForwardScratch.vocabChunk(config))
        classifier = try .init(context: c, rows: S)
        losses = try c.allocateF(S); lse = try c.allocateF(S)
    }
}

extension CUDAContext {
    /// Whether the MLP's GELU is fused into its matmuls (bf16 and `fuseGELU`).
    var fusesGELU: Bool { precision == .bf16 && fuseGELU }

    /// Whether causal attention runs on the tensor cores (bf16, head size 64, sm_80+, unless GPT2_ATTENTION=simt).
    var usesTensorCoreAttention: Bool { attentionTCAvailable && attentionKernels != .simt }

    /// Causal self-attention of (B, T) rows with the training kernels: out (B,T,C); lse (B,NH,T); qkv (B,T,3C).
    func causalAttention(out: CUdeviceptr, lse: CUdeviceptr, qkv: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        if usesTensorCoreAttention {
            try attentionForwardTC(out: out, lse: lse, inp: qkv, B: B, T: T, C: C, NH: NH)
        } else {
            try attentionForward(out: out, lse: lse, inp: qkv, B: B, T: T, C: C, NH: NH)
        }
    }

    /// The transformer blocks and the final LayerNorm on N = B·T rows whose embeddings are in
    /// `s.x0`; leaves lnf (N, C) in `s.ln`. `attention(l, qkv, out)` fills out (N, C) from layer
    /// l's qkv (N, 3C).
    func transformerForward(weights wt: CUDAWeights, scratch s: CUDAForwardScratch, B: Int, T: Int,
                            attention: (_ layer: Int, _ qkv: CUdeviceptr, _ out: CUdeviceptr) throws -> Void) throws {
        let c = wt.config, L = c.numLayers, C = c.channels
        precondition(B * T <= s.rows, "transformerForward: \(B * T) rows in a scratch of \(s.rows)")
        let x = s.x0.pointer, y = s.x1.pointer, ln = s.ln.pointer, mean = s.mean.pointer, rstd = s.rstd.pointer
        try layerNormForward(out: ln, mean: mean, rstd: rstd, inp: x, weight: wt.w(.ln1w, 0), bias: wt.w(.ln1b, 0), B: B, T: T, C: C)
        for l in 0..<L {
            try matmulForward(out: s.qkv.pointer, inp: ln, weight: wt.w(.qkvw, l), bias: wt.w(.qkvb, l), B: B, T: T, C: C, OC: 3 * C)
            try attention(l, s.qkv.pointer, s.atty.pointer)
            try matmulForward(out: s.proj.pointer, inp: s.atty.pointer, weight: wt.w(.attprojw, l), bias: wt.w(.attprojb, l),
                              B: B, T: T, C: C, OC: C)
            // y = x + attention; ln = layernorm2(y)
            try fusedResidualLayerNormForward(residual: y, out: ln, mean: mean, rstd: rstd, inp1: x, inp2: s.proj.pointer,
                                              weight: wt.w(.ln2w, l), bias: wt.w(.ln2b, l), B: B, T: T, C: C)
            if fusesGELU {
                try matmulForwardGELU(out: s.fchGelu.pointer, preGelu: s.fch.pointer, inp: ln, weight: wt.w(.fcw, l),
                                      bias: wt.w(.fcb, l), B: B, T: T, C: C, OC: 4 * C)
            } else {
                try matmulForward(out: s.fch.pointer, inp: ln, weight: wt.w(.fcw, l), bias: wt.w(.fcb, l), B: B, T: T, C: C, OC: 4 * C)
                try geluForward(out: s.fchGelu.pointer, inp: s.fch.pointer, N: B * T * 4 * C)
            }
            try matmulForward(out: s.proj.pointer, inp: s.fchGelu.pointer, weight: wt.w(.fcprojw, l), bias: wt.w(.fcprojb, l),
                              B: B, T: T, C: 4 * C, OC: C)
            // x = y + mlp; ln = the next block's first LayerNorm, or the final one
            let last = l == L - 1
            try fusedResidualLayerNormForward(residual: x, out: ln, mean: mean, rstd: rstd, inp1: y, inp2: s.proj.pointer,
                                              weight: last ? wt.w(.lnfw) : wt.w(.ln1w, l + 1),
                                              bias: last ? wt.w(.lnfb) : wt.w(.ln1b, l + 1), B: B, T: T, C: C)
        }
    }
}

/// Per-token losses on the GPU for any `CUDAWeights`: the scratch, grown to the largest call.
final class CUDAScorer {
    let context: CUDAContext
    let config: GPT2Config
    private var scratch: CUDAForwardScratch?
    /// B·T per call that keeps the scratch within a quarter of the device memory free when first
    /// asked (between 1 context and 128K tokens).
    private(set) lazy var preferredTokensPerCall: Int = {
        let free = (try? context.memoryInfo().free) ?? 0
        let perRow = CUDAForwardScratch.bytesPerRow(config: config, elementSize: context.precision.elementSize)
        return CUDAScorer.preferredTokens(freeBytes: free, bytesPerRow: perRow, maxSeqLen: config.maxSeqLen)
    }()

    /// Rows per forward pass: attention grids have B·NH blocks in y (at most 65535), so many short
    /// rows go in several passes.
    var maxRows: Int

    init(context: CUDAContext, config: GPT2Config) {
        self.context = context
        self.config = config
        maxRows = 65535 / config.numHeads
    }

    /// Scoring rows that fit a quarter of `freeBytes`, clamped to [maxSeqLen, 131072].
    static func preferredTokens(freeBytes: Int, bytesPerRow: Int, maxSeqLen: Int) -> Int {
        min(131_072, max(maxSeqLen, freeBytes / 4 / max(1, bytesPerRow)))
    }

    /// The scratch for at least `rows` rows. It grows only when a call needs more than any before,
    /// to the next power of two (at least 1024 rows) up to the preferred size, so a run of calls of
    /// growing size reallocates a few times at most.
    func scratch(rows: Int) throws -> CUDAForwardScratch {
        if let s = scratch, s.rows >= rows { return s }
        var size = 1024
        while size < rows { size *= 2 }
        size = min(size, max(rows, preferredTokensPerCall))
        scratch = nil   // free the old buffers before allocating the larger ones
        let s = try CUDAForwardScratch(context: context, config: config, rows: size)
        scratch = s
        return s
    }

    /// Next-token cross-entropy at every position of (B,T) inputs against targets (validated by the
    /// caller); a negative target is not scored (loss 0: the classifier never finds it in a chunk).
    func tokenLosses(weights wt: CUDAWeights, inputs: [Int32], targets: [Int32], B: Int, T: Int) throws -> [Float] {
        var out = try allLosses(weights: wt, inputs: inputs, targets: targets, B: B, T: T)
        for i in targets.indices where targets[i] < 0 { out[i] = 0 }
        return out
    }

    private func allLosses(weights wt: CUDAWeights, inputs: [Int32], targets: [Int32], B: Int, T: Int) throws -> [Float] {
        let N = B * T
        precondition(inputs.count == N && targets.count == N && T <= config.maxSeqLen, "tokenLosses: bad shape")
        guard B <= maxRows else {
            var out: [Float] = []
            out.reserveCapacity(N)
            for r0 in stride(from: 0, to: B, by: maxRows) {
                let rows = min(maxRows, B - r0)
                out += try allLosses(weights: wt, inputs: Array(inputs[r0 * T..<(r0 + rows) * T]),
                                       targets: Array(targets[r0 * T..<(r0 + rows) * T]), B: rows, T: T)
            }
            return out
        }
        return try losses(weights: wt, inputs: inputs, targets: targets, B: B, T: T)
    }

    /// `tokenLosses` for B·NH within the attention grid's limit.
    private func losses(weights wt: CUDAWeights, inputs: [Int32], targets: [Int32], B: Int, T: Int) throws -> [Float] {
        let c = context, C = config.channels, NH = config.numHeads, V = config.vocabSize, Vp = config.paddedVocabSize
        let N = B * T
        let s = try scratch(rows: N)
        try inputs.withUnsafeBytes { try c.upload(s.tokens.pointer, $0.baseAddress!, bytes: $0.count) }
        try targets.withUnsafeBytes { try c.upload(s.targets.pointer, $0.baseAddress!, bytes: $0.count) }
        try c.encoderForward(out: s.x0.pointer, inp: s.tokens.pointer, wte: wt.w(.wte), wpe: wt.w(.wpe), B: B, T: T, C: C)
        try c.transformerForward(weights: wt, scratch: s, B: B, T: T) { _, qkv, out in
            try c.causalAttention(out: out, lse: s.attLse.pointer, qkv: qkv, B: B, T: T, C: C, NH: NH)
        }
        let Vc = CUDAForwardScratch.vocabChunk(config)
        try c.classifierInit(s.classifier, N: N)
        for v0 in stride(from: 0, to: min(V, Vp), by: Vc) {   // chunks of padding only are skipped
            let cols = min(Vc, Vp - v0)
            try c.matmulForward(out: s.logits.pointer, inp: s.ln.pointer, weight: wt.w(.wte) + CUdeviceptr(v0 * C * wt.elementSize),
                                bias: nil, B: B, T: T, C: C, OC: cols)
            try c.classifierChunkForward(s.classifier, logits: s.logits.pointer, targets: s.targets.pointer, N: N, Vc: cols, v0: v0, V: V)
        }
        try c.classifierFinalize(s.classifier, losses: s.losses.pointer, lse: s.lse.pointer, N: N)
        var out = [Float](repeating: 0, count: N)
        try out.withUnsafeMutableBytes { try c.download($0.baseAddress!, s.losses.pointer, bytes: $0.count) }
        return out
    }
}
