// The check behind `gpt selftest --device cpu --precision bf16`: every bf16 matmul variant the
// model uses, then full training steps of a small model, against the fp32 engine (the reference).
// Kernels are compared twice: with the fp32 SGEMM fed the same bf16-rounded operands (this
// isolates the kernel: only summation order differs) and with the fp32 originals (the cost of
// rounding). Error metric as the CUDA selftest: max |bf16 − fp32| / max |fp32| over the tensor;
// parameter changes as ‖Δbf16 − Δfp32‖₂ / ‖Δfp32‖₂. Tolerances and seen values: README.md.
import Foundation

/// One compared tensor.
public struct CPUSelftestResult: Sendable {
    public let name: String
    public let maxRelativeError: Float
    public let tolerance: Float
    public var passed: Bool { maxRelativeError <= tolerance && maxRelativeError.isFinite }
}

public enum CPUSelftest {
    public enum ToleranceKind: Sendable { case sameOperands, roundedOperands, weightCopy, modelLoss, modelGrad, modelParams }

    /// Allowed error per comparison kind.
    public static func tolerance(_ kind: ToleranceKind) -> Float {
        switch kind {
        case .sameOperands: return 1e-5     // fp32 accumulation either side, different order
        case .roundedOperands: return 2e-2  // two operands with 2^-9 relative rounding each
        case .weightCopy: return 0          // the AdamW-refreshed copy is exactly bf16(fp32 weight)
        case .modelLoss: return 2e-3        // loss and grad norm of every step, bf16 model vs fp32 model
        case .modelGrad: return 5e-2        // every gradient tensor after one backward
        case .modelParams: return 2.5e-1    // L2 over the AdamW updates (Adam amplifies noise; see docs/GPU.md)
        }
    }

    /// Matmul forward and backward at odd shapes (BT = 74, K = 72 and 288, N = 131 and 216), each
    /// split across the pool as in training.
    public static func runKernels(path: CPUMatmulPath, record: (CPUSelftestResult) -> Void) {
        precondition(path.isBF16, "CPUSelftest.runKernels: needs a bf16 path")
        var rng = NormalRNG(seed: 42)
        let B = 2, T = 37, BT = B * T
        func randn(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { _ in rng.next() * s } }
        func rounded(_ x: [Float]) -> [Float] { BF16.round(x).map(BF16.float) }
        // (name, C, OC, bias, residual)
        for (name, C, OC, hasBias, hasResidual) in [("qkv-like 72->216 +bias", 72, 216, true, false),
                                                     ("fcproj-like 288->72 +bias +residual", 288, 72, true, true),
                                                     ("LM-head-like 72->131", 72, 131, false, false)] {
            let x = randn(BT * C, 1), w = randn(OC * C, 0.05), bias = hasBias ? randn(OC, 0.1) : [], res = hasResidual ? randn(BT * OC, 1) : []
            let dout = randn(BT * OC, 0.1)
            let w16 = BF16.round(w)
            let xr = rounded(x), wr = rounded(w), doutr = rounded(dout)
            func forward(_ xin: [Float], _ win: [Float], bf16: Bool) -> [Float] {
                var out = [Float](repeating: 0, count: BT * OC)
                w16.withUnsafeBufferPointer { h in
                    let b16 = bf16 ? Matmul.BF16Weight(path: path, weight: h.baseAddress!) : nil
                    Matmul.forward(out: &out, inp: xin, weight: win, bias: hasBias ? bias : nil, B: B, T: T, C: C, OC: OC,
                                   residual: hasResidual ? res : nil, bf16: b16)
                }
                return out
            }
            func backward(_ d: [Float], _ xin: [Float], _ win: [Float], bf16: Bool) -> ([Float], [Float], [Float]) {
                var dinp = [Float](repeating: 0, count: BT * C), dw = [Float](repeating: 0.5, count: OC * C)
                var db = [Float](repeating: 0, count: OC)
                w16.withUnsafeBufferPointer { h in
                    let b16 = bf16 ? Matmul.BF16Weight(path: path, weight: h.baseAddress!) : nil
                    db.withUnsafeMutableBufferPointer { dbp in
                        Matmul.backward(dinp: &dinp, dweight: &dw, dbias: hasBias ? dbp.baseAddress! : nil, dout: d, inp: xin,
                                        weight: win, B: B, T: T, C: C, OC: OC, accumulateWeight: true, bf16: b16)
                    }
                }
                return (dinp, dw, db)
            }
            let yb = forward(x, w, bf16: true)
            record(result("\(name) forward vs fp32 on the same bf16 operands", yb, forward(xr, wr, bf16: false), .sameOperands))
            record(result("\(name) forward vs fp32", yb, forward(x, w, bf16: false), .roundedOperands))
            let gb = backward(dout, x, w, bf16: true), gs = backward(doutr, xr, wr, bf16: false), gf = backward(dout, x, w, bf16: false)
            record(result("\(name) backward dinp (same operands)", gb.0, gs.0, .sameOperands))
            record(result("\(name) backward dweight += (same operands)", gb.1, gs.1, .sameOperands))
            record(result("\(name) backward dinp vs fp32", gb.0, gf.0, .roundedOperands))
            record(result("\(name) backward dweight vs fp32", gb.1, gf.1, .roundedOperands))
            if hasBias { record(result("\(name) backward dbias (fp32 either way)", gb.2, gf.2, .sameOperands)) }
        }
    }

    /// `steps` training steps (forward, backward, clip, AdamW) of a 2-layer model in fp32 and in
    /// bf16 from the same weights on the same batches.
    public static func runModel(path: CPUMatmulPath, steps: Int, record: (CPUSelftestResult) -> Void) {
        let config = GPT2Config(maxSeqLen: 32, vocabSize: 300, numLayers: 2, numHeads: 4, channels: 64)
        let B = 4, T = 32
        let ref = GPT2(config: config), low = GPT2(config: config)
        ref.initializeRandom(seed: 7)
        low.params.copy(from: ref.params)
        low.precision = path
        let start = Array(UnsafeBufferPointer(start: ref.params.memory, count: ref.params.count))
        var rng = NormalRNG(seed: 99)
        for step in 1...steps {
            let tokens = (0...B * T).map { _ in Int32(rng.nextUInt64() % UInt64(config.vocabSize)) }
            let x = Array(tokens[0..<B * T]), y = Array(tokens[1...])
            let lr = ref.forward(inputs: x, targets: y, B: B, T: T), lb = low.forward(inputs: x, targets: y, B: B, T: T)
            record(result("model loss, step \(step)", [lb], [lr], .modelLoss))
            for m in [ref, low] { m.zeroGrad(); m.backward() }
            if step == 1 {
                for name in ParameterName.allCases {
                    let o = ref.params.offset(name), n = ref.params.count(name)
                    let g1 = Array(UnsafeBufferPointer(start: low.grads.memory + o, count: n))
                    let g0 = Array(UnsafeBufferPointer(start: ref.grads.memory + o, count: n))
                    record(result("model gradient \(name), step 1", g1, g0, .modelGrad))
                }
            }
            let nr = ref.clipGradients(maxNorm: 1), nb = low.clipGradients(maxNorm: 1)
            record(result("model grad norm, step \(step)", [nb], [nr], .modelLoss))
            for m in [ref, low] { m.update(learningRate: 1e-3, weightDecay: 0.1, step: step) }
        }
        let count = ref.params.count
        let d0 = (0..<count).map { ref.params.memory[$0] - start[$0] }, d1 = (0..<count).map { low.params.memory[$0] - start[$0] }
        record(CPUSelftestResult(name: "model parameter change after \(steps) steps (L2)", maxRelativeError: l2RelError(d1, d0),
                                 tolerance: tolerance(.modelParams)))
        // the weight copy AdamW refreshed equals the rounding of the fp32 weights it wrote
        if let copy = low.bf16WeightCopyForTesting {
            var mismatches = 0, total = 0
            for name in BF16WeightCopy.matrices {
                let o = low.params.offset(name), n = low.params.count(name)
                let expect = BF16.round(Array(UnsafeBufferPointer(start: low.params.memory + o, count: n)))
                for i in 0..<n where copy.memory[o + i] != expect[i] { mismatches += 1 }
                total += n
            }
            record(CPUSelftestResult(name: "bf16 weight copy after AdamW = bf16(fp32 weights) (\(total) values)",
                                     maxRelativeError: Float(mismatches) / Float(max(1, total)), tolerance: tolerance(.weightCopy)))
        }
    }

    static func result(_ name: String, _ a: [Float], _ b: [Float], _ kind: ToleranceKind) -> CPUSelftestResult {
        CPUSelftestResult(name: name, maxRelativeError: SelftestMetrics.maxRelativeError(a, b), tolerance: tolerance(kind))
    }

    static func l2RelError(_ a: [Float], _ b: [Float]) -> Float { SelftestMetrics.l2RelativeError(a, b) }
}
