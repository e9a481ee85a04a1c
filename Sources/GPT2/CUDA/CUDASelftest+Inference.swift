// The inference paths in `gpt selftest --device cuda`, against the CPU engine on the same weights:
// the decode kernels (cache write, attention over the cache) and the sampling kernel on random
// inputs with planted ties; per-token losses of the scorer on calls of changing shape, through
// both GPU engines (the weights-only `CUDAInferenceEngine` and the training `CUDABackend`, which
// must agree bit for bit); HellaSwag predictions on synthetic examples; the KV-cache decoder's
// greedy and seeded top-k / full-vocabulary / host-drawn choices step by step (teacher-forced on
// the CPU's tokens) and its logits; and whole `Generator` runs that cross the context. A GPU choice
// that differs from the CPU's passes only when the arithmetic explains it (CUDASelftest+Agreement).
// Tolerances are in docs/GPU.md.
// Legend: S samples, n new tokens per sample, V vocab, Vp padded vocab, C channels, NH heads.
import Foundation

extension CUDASelftest {
    /// Logit tolerance (relative to the largest |logit|): fp32 rounding, or bf16 weights and
    /// activations through the whole model.
    static func logitTolerance(_ precision: CUDAPrecision) -> Float { precision == .fp32 ? 1e-5 : 5e-2 }

    /// The decode kernels and the sampling kernel alone.
    public static func runInferenceKernels(context ctx: CUDAContext, seed: UInt64 = 21, record: @escaping (CUDASelftestResult) -> Void) throws {
        var h = Harness(ctx: ctx, rng: NormalRNG(seed: seed), record: record)
        try checkDecodeKernels(&h)
        try checkSampleKernel(&h)
    }

    /// Cache write then attention over the cache for n = 3 new rows after pos0 = 5, against the
    /// CPU decoder's loop on the values as the device holds them.
    static func checkDecodeKernels(_ h: inout Harness) throws {
        let ctx = h.ctx, S = 3, n = 3, pos0 = 5, maxLength = 12, NH = 4, hs = ctx.headSize, C = NH * hs
        let (qkvD, qkv) = try h.devX(h.randn(S * n * 3 * C))
        let (kD, k0) = try h.devX(h.randn(S * maxLength * C)), (vD, v0) = try h.devX(h.randn(S * maxLength * C))
        let outD = try ctx.allocateX(S * n * C)
        try ctx.kvCacheWrite(kcache: kD.pointer, vcache: vD.pointer, qkv: qkvD.pointer, S: S, n: n, pos0: pos0, maxLength: maxLength, C: C)
        try ctx.decodeAttention(out: outD.pointer, qkv: qkvD.pointer, kcache: kD.pointer, vcache: vD.pointer, S: S, n: n, pos0: pos0,
                                maxLength: maxLength, C: C, NH: NH)
        var kc = k0, vc = v0
        for s in 0..<S {
            for j in 0..<n {
                for c in 0..<C {
                    kc[(s * maxLength + pos0 + j) * C + c] = qkv[(s * n + j) * 3 * C + C + c]
                    vc[(s * maxLength + pos0 + j) * C + c] = qkv[(s * n + j) * 3 * C + 2 * C + c]
                }
            }
        }
        h.check("kv_cache_write_kernel keys", try h.readX(kD, kc.count), kc, .elementwise)
        h.check("kv_cache_write_kernel values", try h.readX(vD, vc.count), vc, .elementwise)
        var out = [Float](repeating: 0, count: S * n * C)
        let scale = 1 / Float(hs).squareRoot()
        for s in 0..<S {
            for j in 0..<n {
                let t = pos0 + j
                for head in 0..<NH {
                    var scores = (0...t).map { u -> Float in
                        var d: Float = 0
                        for i in 0..<hs { d += qkv[(s * n + j) * 3 * C + head * hs + i] * kc[(s * maxLength + u) * C + head * hs + i] }
                        return d * scale
                    }
                    let mx = scores.max()!
                    scores = scores.map { Foundation.exp($0 - mx) }
                    let sum = scores.reduce(0, +)
                    for i in 0..<hs {
                        var o: Float = 0
                        for u in 0...t { o += scores[u] / sum * vc[(s * maxLength + u) * C + head * hs + i] }
                        out[(s * n + j) * C + head * hs + i] = o
                    }
                }
            }
        }
        h.check("decode_attention_kernel (3 rows after 5 cached)", try h.readX(outD, out.count), out, .attention)
    }

    /// sample_kernel against `Sampler` on the same fp32 logits and uniforms, for greedy, top-k
    /// (k = 1, 7, 50, 1024 with ties planted at the top and across the k-th place) and every token.
    /// Error = the number of samples whose ids differ (tolerance 0).
    static func checkSampleKernel(_ h: inout Harness) throws {
        let ctx = h.ctx, S = 6
        for (V, Vp) in [(1000, 1024), (5000, 5120)] {
            var logits = h.randn(S * Vp, 2)
            for s in 0..<S {
                let row = s * Vp
                // ties: the max repeated at a higher id, a run of equal values, and -0 beside +0
                logits[row + 17] = 9; logits[row + 3] = 9
                for i in 0..<12 { logits[row + 100 + 7 * i] = 4.25 }
                logits[row + 40] = -0.0; logits[row + 41] = 0.0
                for i in V..<Vp { logits[row + i] = 50 }   // padding must never be chosen
            }
            let logitsD = try h.devF(logits)
            let idsD = try ctx.allocate(bytes: S * 4), uniD = try ctx.allocateF(S), wD = try ctx.allocateF(S * Vp)
            let cases: [Sampler] = [Sampler(topK: 50, temperature: 0), Sampler(topK: 1, temperature: 1), Sampler(topK: 7, temperature: 0.7),
                                    Sampler(topK: 15, temperature: 1.3), Sampler(topK: 50, temperature: 1),
                                    Sampler(topK: min(1024, V - 1), temperature: 2), Sampler(topK: 0, temperature: 1),
                                    Sampler(topK: V, temperature: 0.5)]
            for (ci, sampler) in cases.enumerated() {
                var hostRng = SplitMix64(seed: 1000 + UInt64(ci)), devRng = hostRng
                let expected = logits.withUnsafeBufferPointer { l in (0..<S).map { sampler.sample(l.baseAddress! + $0 * Vp, V: V, rng: &hostRng) } }
                let draws = (0..<S).map { _ in devRng.nextFloat() }
                try draws.withUnsafeBytes { try ctx.upload(uniD.pointer, $0.baseAddress!, bytes: $0.count) }
                try ctx.sample(ids: idsD.pointer, weights: wD.pointer, logits: logitsD.pointer, uniforms: uniD.pointer, S: S, V: V, Vp: Vp,
                               topK: sampler.topK, temperature: sampler.temperature)
                var got = [Int32](repeating: -1, count: S)
                try got.withUnsafeMutableBytes { try ctx.download($0.baseAddress!, idsD.pointer, bytes: $0.count) }
                let wrong = zip(got, expected).filter { $0 != $1 }.count
                h.record(CUDASelftestResult(name: "sample_kernel V=\(V) top-k \(sampler.topK) T=\(sampler.temperature): ids differing",
                                            maxRelativeError: Float(wrong), tolerance: 0))
            }
        }
    }

    // MARK: - Engines

    /// The scorer, HellaSwag and the decoder of both GPU engines against the CPU engine.
    /// Model: 2 layers, NH = 4, C = 4·headSize, V = 1500 (above the device's top-k limit, so the
    /// host-drawn path runs too), context 64.
    public static func runInference(context ctx: CUDAContext, seed: UInt64 = 5, record: @escaping (CUDASelftestResult) -> Void) throws {
        let NH = 4, C = NH * ctx.headSize
        let config = GPT2Config(maxSeqLen: 64, vocabSize: 1500, numLayers: 2, numHeads: NH, channels: C)
        let cpu = GPT2(config: config)
        cpu.initializeRandom(seed: seed)
        let engine = try CUDAInferenceEngine(model: cpu, context: ctx)
        let training = try CUDABackend(config: config, B: 2, T: 16, context: ctx)
        try training.loadState(from: cpu, includeOptimizer: false)
        var rng = NormalRNG(seed: seed ^ 0x1234)
        try checkScoring(cpu: cpu, engine: engine, training: training, rng: &rng, record: record)
        try checkHellaSwag(cpu: cpu, engine: engine, rng: &rng, record: record)
        try checkDecoding(cpu: cpu, gpu: engine, label: "inference engine", rng: &rng, record: record)
        try checkDecoding(cpu: cpu, gpu: training, label: "training engine", rng: &rng, record: record, short: true)
        try checkGenerator(cpu: cpu, gpu: engine, rng: &rng, record: record)
    }

    static func randomTokens(_ n: Int, V: Int, rng: inout NormalRNG) -> [Int32] { (0..<n).map { _ in Int32(rng.nextUInt64() % UInt64(V)) } }

    /// Per-token losses for calls of growing, then shrinking shape (the scratch grows once, then is reused).
    static func checkScoring(cpu: GPT2, engine: CUDAInferenceEngine, training: CUDABackend, rng: inout NormalRNG,
                             record: (CUDASelftestResult) -> Void) throws {
        let V = cpu.config.vocabSize, tol = tolerance(.modelLoss, precision: engine.context.precision)
        for (B, T) in [(3, 37), (5, 64), (1, 5), (16, 64), (13, 9)] {
            // the last call in passes of 5 rows, as calls of more rows than one attention grid holds are
            let passes = B == 13 ? 5 : nil
            if let passes { engine.scorer.maxRows = passes; training.scorer.maxRows = passes }
            defer { engine.scorer.maxRows = 65535 / cpu.config.numHeads; training.scorer.maxRows = 65535 / cpu.config.numHeads }
            let inputs = randomTokens(B * T, V: V, rng: &rng), targets = randomTokens(B * T, V: V, rng: &rng)
            let want = try cpu.tokenLosses(inputs: inputs, targets: targets, B: B, T: T)
            let got = try engine.tokenLosses(inputs: inputs, targets: targets, B: B, T: T)
            record(CUDASelftestResult(name: "scorer per-token losses B=\(B) T=\(T)" + (passes.map { " in passes of \($0) rows" } ?? ""),
                                      maxRelativeError: relError(got, want), tolerance: tol))
            let viaTraining = try training.tokenLosses(inputs: inputs, targets: targets, B: B, T: T)
            record(CUDASelftestResult(name: "scorer B=\(B) T=\(T): training engine = inference engine (bitwise)",
                                      maxRelativeError: relError(viaTraining, got), tolerance: 0))
        }
        do {   // the seam's input checks hold on the GPU too
            _ = try engine.tokenLosses(inputs: [Int32(V)], targets: [0], B: 1, T: 1)
            record(CUDASelftestResult(name: "scorer rejects a token outside the vocabulary", maxRelativeError: 1, tolerance: 0))
        } catch InferenceError.tokenOutOfVocabulary {
            record(CUDASelftestResult(name: "scorer rejects a token outside the vocabulary", maxRelativeError: 0, tolerance: 0))
        }
    }

    /// 40 synthetic examples (contexts of 8–40 tokens, endings of 2–12), scored in calls of at
    /// most 700 tokens so that the packed shapes vary. Error: predictions that differ where the
    /// CPU's scores do not explain it (tolerance 0); the scores themselves against the CPU's.
    static func checkHellaSwag(cpu: GPT2, engine: CUDAInferenceEngine, rng: inout NormalRNG,
                               record: (CUDASelftestResult) -> Void) throws {
        let V = cpu.config.vocabSize, tol = tolerance(.modelLoss, precision: engine.context.precision)
        let examples = (0..<40).map { i -> HellaSwagExample in
            let context = randomTokens(8 + Int(rng.nextUInt64() % 33), V: V, rng: &rng)
            let endings = (0..<4).map { _ in randomTokens(2 + Int(rng.nextUInt64() % 11), V: V, rng: &rng) }
            return HellaSwagExample(index: i, label: Int(rng.nextUInt64() % 4), context: context, endings: endings)
        }
        let want = try evaluateHellaSwag(engine: cpu, examples: examples)
        let got = try evaluateHellaSwag(engine: engine, examples: examples, maxTokensPerForward: 700)
        var unexplained = 0, differing = 0
        for (w, g) in zip(want.predictions, got.predictions) {
            if w.pred != g.pred || w.predNorm != g.predNorm { differing += 1 }
            if !argminAgrees(scores: w.sumLosses, pick: g.pred, tol: Double(tol)) { unexplained += 1 }
            if !argminAgrees(scores: w.meanLosses, pick: g.predNorm, tol: Double(tol)) { unexplained += 1 }
        }
        record(CUDASelftestResult(name: "HellaSwag (40 synthetic) predictions: \(differing) differ, unexplained",
                                  maxRelativeError: Float(unexplained), tolerance: 0))
        let ws = want.predictions.flatMap { $0.sumLosses.map(Float.init) }, gs = got.predictions.flatMap { $0.sumLosses.map(Float.init) }
        record(CUDASelftestResult(name: "HellaSwag ending losses (sums)", maxRelativeError: relError(gs, ws), tolerance: tol))
    }

    /// Teacher-forced decoding: S = 3 different prompts of 7 tokens, then 8 single-token steps, each
    /// fed the CPU's choice, for greedy, top-k 20, top-k above the device limit (drawn on the host)
    /// and the whole vocabulary. At every step: the GPU's logits against the CPU's; the GPU's picks
    /// against `Sampler` run on the GPU's own logits with the same random draws (exact: the device
    /// sampling and the RNG contract); and against the CPU's picks, where a difference must be
    /// explained by the logits' observed difference (CUDASelftest+Agreement).
    static func checkDecoding(cpu: GPT2, gpu: any InferenceEngine, label: String, rng: inout NormalRNG,
                              record: (CUDASelftestResult) -> Void, short: Bool = false) throws {
        let c = cpu.config, V = c.vocabSize, Vp = c.paddedVocabSize, S = 3
        let samplers = short ? [Sampler(topK: 0, temperature: 0)]
            : [Sampler(topK: 0, temperature: 0), Sampler(topK: 20, temperature: 0.9), Sampler(topK: 1100, temperature: 1.1),
               Sampler(topK: 0, temperature: 0.8)]
        for sampler in samplers {
            let kind = sampler.temperature <= 0 ? "greedy" : sampler.topK == 0 ? "all tokens T=\(sampler.temperature)"
                : "top-k \(sampler.topK) T=\(sampler.temperature)"
            let cpuDecoder = try CPUDecoder(model: cpu, samples: S, maxLength: 20)
            guard let gpuDecoder = try gpu.makeDecoder(samples: S, maxLength: 20) as? CUDADecoder else {
                preconditionFailure("checkDecoding: not a CUDA engine")
            }
            var draws = SplitMix64(seed: 77)
            var tokens = randomTokens(S * 7, V: V, rng: &rng), n = 7
            var logitErr: Float = 0, notHost = 0, unexplained = 0, differing = 0
            for _ in 0..<9 {
                let before = draws
                let picks = try gpuDecoder.next(tokens: tokens, n: n, sampler: sampler, rng: &draws)
                let gpuLogits = try gpuDecoder.downloadLogits()
                let cpuLogits = Array(UnsafeBufferPointer(start: cpuDecoder.step(tokens: tokens, n: n), count: S * Vp))
                var replayCPU = before, replayGPU = before, next: [Int32] = []
                for s in 0..<S {
                    let row = Array(cpuLogits[s * Vp..<(s * Vp + V)]), gpuRow = Array(gpuLogits[s * Vp..<(s * Vp + V)])
                    logitErr = max(logitErr, relError(gpuRow, row))
                    let delta = zip(gpuRow, row).map { abs($0 - $1) }.max() ?? 0
                    let want = row.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, V: V, rng: &replayCPU) }
                    let host = gpuRow.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, V: V, rng: &replayGPU) }
                    if picks[s] != host { notHost += 1 }
                    if picks[s] != want { differing += 1 }
                    let ok = sampler.temperature <= 0
                        ? greedyAgrees(logits: row, V: V, pick: picks[s], delta: delta)
                        : sampleAgrees(logits: row, V: V, sampler: sampler, rng: rngBefore(sample: s, from: before), pick: picks[s], delta: delta)
                    if !ok { unexplained += 1 }
                    next.append(want)
                }
                tokens = next
                n = 1
            }
            let tolLogits = logitTolerance(gpuDecoder.context.precision)
            record(CUDASelftestResult(name: "decoder (\(label)) \(kind): logits", maxRelativeError: logitErr, tolerance: tolLogits))
            record(CUDASelftestResult(name: "decoder (\(label)) \(kind): picks differing from Sampler on the GPU's logits",
                                      maxRelativeError: Float(notHost), tolerance: 0))
            record(CUDASelftestResult(name: "decoder (\(label)) \(kind): \(differing)/\(9 * S) picks differ from the CPU's, unexplained",
                                      maxRelativeError: Float(unexplained), tolerance: 0))
        }
    }

    /// The RNG as it is before sample `s` draws (one float per earlier sample).
    static func rngBefore(sample s: Int, from start: SplitMix64) -> SplitMix64 {
        var r = start
        for _ in 0..<s { _ = r.nextFloat() }
        return r
    }

    /// Whole runs through `Generator` with a prompt of 50 tokens and 30 new ones in a context of 64
    /// (the cache is refilled with the last 64 tokens every step past it). fp32: the ids must equal
    /// the CPU's (greedy and seeded top-k). Both precisions: every greedy GPU token must be a near
    /// argmax of the CPU's logits for the GPU's own history.
    static func checkGenerator(cpu: GPT2, gpu: CUDAInferenceEngine, rng: inout NormalRNG, record: (CUDASelftestResult) -> Void) throws {
        let c = cpu.config, V = c.vocabSize, Vp = c.paddedVocabSize, S = 2
        let prompt = randomTokens(50, V: V, rng: &rng)
        let greedy = Sampler(topK: 0, temperature: 0)
        let gpuIds = try Generator(engine: gpu, samples: S).generate(prompt: prompt, maxNewTokens: 30, sampler: greedy, seed: 1)
        var unexplained = 0
        for s in 0..<S {
            var history = prompt
            for t in gpuIds[s] {
                let window = Array(history.suffix(c.maxSeqLen))
                let d = try CPUDecoder(model: cpu, samples: 1, maxLength: window.count)
                let row = Array(UnsafeBufferPointer(start: d.step(tokens: window, n: window.count), count: Vp))
                if !greedyAgrees(logits: row, V: V, pick: t, delta: logitTolerance(gpu.context.precision) * (row.map(abs).max() ?? 1)) {
                    unexplained += 1
                }
                history.append(t)
            }
        }
        record(CUDASelftestResult(name: "Generator greedy past the context: GPU tokens not near the CPU's argmax",
                                  maxRelativeError: Float(unexplained), tolerance: 0))
        guard gpu.context.precision == .fp32 else { return }
        for sampler in [greedy, Sampler(topK: 20, temperature: 0.9)] {
            let want = try Generator(engine: cpu, samples: S).generate(prompt: prompt, maxNewTokens: 30, sampler: sampler, seed: 3)
            let got = try Generator(engine: gpu, samples: S).generate(prompt: prompt, maxNewTokens: 30, sampler: sampler, seed: 3)
            let wrong = zip(want.joined(), got.joined()).filter { $0 != $1 }.count
            record(CUDASelftestResult(name: "Generator past the context, top-k \(sampler.topK) T=\(sampler.temperature): ids differing from the CPU",
                                      maxRelativeError: Float(wrong), tolerance: 0))
        }
    }
}
