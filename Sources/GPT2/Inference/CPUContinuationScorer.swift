// Continuation scoring on the CPU with a shared context: each context runs through the blocks
// once (its keys and values kept per layer), then all continuations of a group of items run as one
// batch whose rows attend over their item's cached context and their own earlier tokens. Causal
// attention makes this exactly the whole-row computation, with the context computed once instead
// of once per continuation (HellaSwag: about 2.2 times fewer tokens).
// Legend: G items in a group, Tc longest context, R continuation rows, Tn longest continuation
// minus one (tokens fed), C channels, NH heads, hs head size.
import Foundation
import GPT2Kernels

enum CPUContinuationScorer {
    static func losses(model: GPT2, items: [ContinuationItem], maxTokensPerCall: Int) -> [[[Float]]] {
        var out: [[[Float]]] = []
        var start = 0
        while start < items.count {
            var end = start, tokens = 0
            while end < items.count {
                let n = items[end].context.count + items[end].continuations.reduce(0) { $0 + $1.count }
                if end > start && tokens + n > maxTokensPerCall { break }
                tokens += n
                end += 1
            }
            out += group(model: model, items: Array(items[start..<end]))
            start = end
        }
        return out
    }

    /// Block buffers for N rows, one allocation.
    private final class Buffers {
        let memory: UnsafeMutablePointer<Float>
        let x, ln, qkv, atty, res2, fch, mean, rstd: UnsafeMutablePointer<Float>
        init(N: Int, C: Int) {
            let sizes = [N * C, N * C, N * 3 * C, N * C, N * C, N * 4 * C, N, N]
            memory = .allocate(capacity: sizes.reduce(0, +))
            var p = memory, parts: [UnsafeMutablePointer<Float>] = []
            for s in sizes { parts.append(p); p += s }
            (x, ln, qkv, atty, res2, fch, mean, rstd) = (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7])
        }
        deinit { memory.deallocate() }
        var io: TransformerBlock.Buffers {
            TransformerBlock.Buffers(ln1: ln, ln1Mean: mean, ln1Rstd: rstd, qkv: qkv, atty: atty, residual2: res2, ln2: ln,
                                     ln2Mean: mean, ln2Rstd: rstd, fch: fch, fchGelu: fch, output: x)
        }
    }

    private static func group(model: GPT2, items: [ContinuationItem]) -> [[[Float]]] {
        let c = model.config, p = model.params
        let C = c.channels, NH = c.numHeads, hs = C / NH, L = c.numLayers
        let G = items.count, Tc = items.map(\.context.count).max()!
        let w16 = model.bf16MatmulWeights()

        // 1. The contexts, as G rows of Tc (padded at the end, which no real position sees),
        //    keeping each layer's keys and values.
        let ctx = Buffers(N: G * Tc, C: C)
        let keys = UnsafeMutablePointer<Float>.allocate(capacity: L * G * Tc * C)     // (L, G, Tc, C)
        let values = UnsafeMutablePointer<Float>.allocate(capacity: L * G * Tc * C)
        defer { keys.deallocate(); values.deallocate() }
        var inputs = [Int32](repeating: 0, count: G * Tc)
        for (g, item) in items.enumerated() { for (t, id) in item.context.enumerated() { inputs[g * Tc + t] = id } }
        inputs.withUnsafeBufferPointer { Encoder.forward(out: ctx.x, inp: $0.baseAddress!, wte: p.pointer(.wte), wpe: p.pointer(.wpe), B: G, T: Tc, C: C) }
        let lse = UnsafeMutablePointer<Float>.allocate(capacity: G * NH * Tc)
        let attScratch = UnsafeMutablePointer<Float>.allocate(capacity: Parallel.threadCount * Attention.scratchCount(T: Tc, C: C))
        defer { lse.deallocate(); attScratch.deallocate() }
        for l in 0..<L {
            let kc = keys + l * G * Tc * C, vc = values + l * G * Tc * C
            TransformerBlock.forward(p, layer: l, input: ctx.x, buffers: ctx.io, N: G * Tc, C: C, bf16: { w16($0, l) }) { qkv, atty in
                for r in 0..<G * Tc {
                    (kc + r * C).update(from: qkv + r * 3 * C + C, count: C)
                    (vc + r * C).update(from: qkv + r * 3 * C + 2 * C, count: C)
                }
                Attention.forward(out: atty, lse: lse, inp: qkv, B: G, T: Tc, C: C, NH: NH, scratch: attScratch)
            }
        }

        // 2. The continuations: one row per (item, continuation) of Tn fed tokens at positions
        //    after the item's context, attending over that context's cache and their own prefix.
        var rowItem: [Int] = [], rowTokens: [[Int32]] = []
        for (g, item) in items.enumerated() { for cont in item.continuations { rowItem.append(g); rowTokens.append(cont) } }
        let R = rowItem.count, Tn = rowTokens.map { $0.count - 1 }.max()!
        var cont: Buffers?
        if Tn > 0 {
            let b = Buffers(N: R * Tn, C: C)
            cont = b
            let wte = p.pointer(.wte), wpe = p.pointer(.wpe)
            for r in 0..<R {
                let ctxLen = items[rowItem[r]].context.count
                for j in 0..<Tn {
                    let id = j < rowTokens[r].count - 1 ? Int(rowTokens[r][j]) : 0     // padding: token 0
                    let pos = min(ctxLen + j, c.maxSeqLen - 1)                         // padding may run past the window
                    let dst = b.x + (r * Tn + j) * C
                    for i in 0..<C { dst[i] = wte[id * C + i] + wpe[pos * C + i] }
                }
            }
            let contexts = items.map(\.context.count)
            let scratchCount = Tn * (Tc + Tn) + Tn
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Parallel.threadCount * scratchCount)
            defer { scratch.deallocate() }
            for l in 0..<L {
                let kc = UnsafePointer(keys + l * G * Tc * C), vc = UnsafePointer(values + l * G * Tc * C)
                TransformerBlock.forward(p, layer: l, input: b.x, buffers: b.io, N: R * Tn, C: C, bf16: { w16($0, l) }) { qkv, atty in
                    let box = UncheckedSendable(value: (qkv, atty, kc, vc, scratch))
                    let tasks = R * NH, nt = min(Parallel.threadCount, tasks)
                    Parallel.forEach(nt) { tid in
                        let (qkv, atty, kc, vc, scratch) = box.value
                        let S = scratch + tid * scratchCount
                        for task in stride(from: tid, to: tasks, by: nt) {
                            let r = task / NH, h = task % NH, g = rowItem[r], n = contexts[g]
                            prefixAttention(out: atty + r * Tn * C + h * hs, qkv: qkv + r * Tn * 3 * C + h * hs,
                                            keys: kc + g * Tc * C + h * hs, values: vc + g * Tc * C + h * hs,
                                            context: n, rows: Tn, C: C, hs: hs, scratch: S)
                        }
                    }
                }
            }
        }

        // 3. Losses: continuation token 0 from the context's last position, token j+1 from the
        //    continuation's position j.
        var sources: [UnsafePointer<Float>] = [], targets: [Int32] = []
        for r in 0..<R {
            let g = rowItem[r]
            sources.append(UnsafePointer(ctx.x + (g * Tc + items[g].context.count - 1) * C))
            targets.append(rowTokens[r][0])
            for j in 0..<rowTokens[r].count - 1 {
                sources.append(UnsafePointer(cont!.x + (r * Tn + j) * C))
                targets.append(rowTokens[r][j + 1])
            }
        }
        let flat = CPUScorer.headLosses(model: model, rows: sources, targets: targets, bf16: w16(.wte, nil))
        var out = items.map { $0.continuations.map { [Float](repeating: 0, count: $0.count) } }
        var k = 0
        for (g, item) in items.enumerated() {
            for (ci, contTokens) in item.continuations.enumerated() {
                for j in 0..<contTokens.count { out[g][ci][j] = flat[k]; k += 1 }
            }
        }
        withExtendedLifetime(cont) {}
        return out
    }

    /// One head of `rows` query rows attending causally over `context` cached positions and then
    /// their own keys (row i sees the context and own positions 0...i): scores by two GEMMs, the
    /// training kernel's causal softmax with the context as the first `context` columns, then the
    /// output by two GEMMs. qkv rows have stride 3C, the cache rows stride C, out rows stride C.
    private static func prefixAttention(out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, keys: UnsafePointer<Float>,
                                        values: UnsafePointer<Float>, context n: Int, rows: Int, C: Int, hs: Int,
                                        scratch: UnsafeMutablePointer<Float>) {
        let ld = n + rows, S = scratch, lse = scratch + rows * ld
        let q = qkv, k = qkv + C, v = qkv + 2 * C
        BLAS.sgemm(transA: false, transB: true, M: rows, N: n, K: hs, A: q, lda: 3 * C, B: keys, ldb: C, beta: 0, C: S, ldc: ld)
        BLAS.sgemm(transA: false, transB: true, M: rows, N: rows, K: hs, A: q, lda: 3 * C, B: k, ldb: 3 * C, beta: 0, C: S + n, ldc: ld)
        gpt2k_attn_softmax_rows(S, ld, rows, n, 1 / Float(hs).squareRoot(), lse)
        BLAS.sgemm(transA: false, transB: false, M: rows, N: hs, K: n, A: S, lda: ld, B: values, ldb: C, beta: 0, C: out, ldc: C)
        BLAS.sgemm(transA: false, transB: false, M: rows, N: hs, K: rows, A: S + n, lda: ld, B: v, ldb: 3 * C, beta: 1, C: out, ldc: C)
    }
}
