// The tensor-core attention kernels (Kernels/CUDAAttentionTC.swift) in the GPU-vs-CPU parity
// check: forward and backward on random bf16 inputs against the CPU Attention kernel fed the same
// bf16-rounded inputs (and the GPU's own out, as runKernels does for the SIMT kernels), and against
// the SIMT GPU kernels on the same inputs. Sizes: (B=2, T=96, NH=4) as runKernels, and
// (B=1, T=200, NH=2), whose last 64-key tile holds only 8 rows (and last 128-query block 72). Runs only where the path is real
// (bf16, head size 64, sm_80+). Error metric: max |gpu − ref| / max |ref| over the tensor.
// Legend: B batch, T time, C channels, NH heads; dqkv = dinp (B,T,3C) split into its q, k, v parts.
import Foundation

extension CUDASelftest {
    /// Records the tensor-core attention's errors; records nothing when `context.attentionTCAvailable` is false.
    public static func runAttentionTC(context ctx: CUDAContext, seed: UInt64 = 7, record: @escaping (CUDASelftestResult) -> Void) throws {
        guard ctx.precision == .bf16, ctx.headSize == 64, ctx.attentionTCAvailable else { return }
        var h = Harness(ctx: ctx, rng: NormalRNG(seed: seed), record: record)
        for (B, T, NH) in [(2, 96, 4), (1, 200, 2)] {
            try checkAttentionTC(&h, B: B, T: T, NH: NH)
        }
    }

    /// Splits (B,T,3C) rows into their q, k, v parts.
    static func qkvParts(_ x: [Float], BT: Int, C: Int) -> [[Float]] {
        (0..<3).map { p in
            var part = [Float](repeating: 0, count: BT * C)
            for r in 0..<BT { for c in 0..<C { part[r * C + c] = x[r * 3 * C + p * C + c] } }
            return part
        }
    }

    static func checkAttentionTC(_ h: inout Harness, B: Int, T: Int, NH: Int) throws {
        let ctx = h.ctx, C = NH * ctx.headSize, BT = B * T
        let label = "attention_tc B=\(B) T=\(T) NH=\(NH)"
        let (qkvD, qkv) = try h.devX(h.randn(BT * 3 * C))
        let (doutD, dout) = try h.devX(h.randn(BT * C))

        // tensor cores
        let outD = try ctx.allocateX(BT * C), lseD = try ctx.allocateF(B * NH * T)
        try ctx.attentionForwardTC(out: outD.pointer, lse: lseD.pointer, inp: qkvD.pointer, B: B, T: T, C: C, NH: NH)
        let outGPU = try h.readX(outD, BT * C), lseGPU = try h.readF(lseD, B * NH * T)
        let dqkvD = try ctx.allocateX(BT * 3 * C), scratchD = try ctx.allocateF(B * NH * T)
        try ctx.zero(dqkvD.pointer, bytes: BT * 3 * C * ctx.precision.elementSize)
        try ctx.attentionBackwardTC(dinp: dqkvD.pointer, dout: doutD.pointer, inp: qkvD.pointer, out: outD.pointer, lse: lseD.pointer,
                                    B: B, T: T, C: C, NH: NH, scratch: scratchD.pointer)
        let dqkvGPU = try h.readX(dqkvD, BT * 3 * C)

        // CPU reference on the inputs as the device holds them (backward from the GPU's out, as runKernels)
        var out = [Float](repeating: 0, count: BT * C), lse = [Float](repeating: 0, count: B * NH * T)
        var scratch = [Float](repeating: 0, count: Parallel.threadCount * Attention.scratchCount(T: T, C: C))
        Attention.forward(out: &out, lse: &lse, inp: qkv, B: B, T: T, C: C, NH: NH, scratch: &scratch)
        var dqkv = [Float](repeating: 0, count: BT * 3 * C)
        Attention.backward(dinp: &dqkv, dout: dout, inp: qkv, out: outGPU, lse: lse, B: B, T: T, C: C, NH: NH, scratch: &scratch)
        h.check("\(label) forward out", outGPU, out, .attention)
        h.check("\(label) forward lse", lseGPU, lse, .fp32State)
        let gpuParts = qkvParts(dqkvGPU, BT: BT, C: C), cpuParts = qkvParts(dqkv, BT: BT, C: C)
        for (p, name) in ["dq", "dk", "dv"].enumerated() {
            h.check("\(label) backward \(name)", gpuParts[p], cpuParts[p], .attention)
        }

        // the SIMT GPU kernels on the same inputs
        let sOutD = try ctx.allocateX(BT * C), sLseD = try ctx.allocateF(B * NH * T), sdqkvD = try ctx.allocateX(BT * 3 * C)
        try ctx.attentionForward(out: sOutD.pointer, lse: sLseD.pointer, inp: qkvD.pointer, B: B, T: T, C: C, NH: NH)
        try ctx.attentionBackward(dinp: sdqkvD.pointer, dout: doutD.pointer, inp: qkvD.pointer, out: sOutD.pointer, lse: sLseD.pointer,
                                  B: B, T: T, C: C, NH: NH, scratch: scratchD.pointer)
        h.check("\(label) vs SIMT forward out", outGPU, try h.readX(sOutD, BT * C), .attention)
        h.check("\(label) vs SIMT forward lse", lseGPU, try h.readF(sLseD, B * NH * T), .fp32State)
        h.check("\(label) vs SIMT backward dqkv", dqkvGPU, try h.readX(sdqkvD, BT * 3 * C), .attention)
    }
}
