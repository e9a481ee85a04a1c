// bf16 support for the CPU engine: rounding helpers, the single-threaded bf16 GEMM call
// (Sources/GPT2Kernels/sgemm_bf16.c, sgemm_amx.c), and the bf16 copies of the matmul weights.
// The copies are refreshed by AdamW (fused: the new fp32 value is rounded while in a register),
// so once per optimizer step, not per micro-step; activations are rounded while GEMM panels are packed.
import Foundation
import GPT2Kernels

/// bf16 helpers.
public enum BF16 {
    /// fp32 → bf16 bits, round to nearest even (zero and denormals to signed zero, as VCVTNEPS2BF16).
    public static func round(_ x: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { gpt2k_f32_to_bf16($0.baseAddress!, s.baseAddress!, s.count) } }
        return out
    }

    /// bf16 bits → fp32 (exact).
    @inline(__always)
    public static func float(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// One GEMM operand: fp32 (rounded to bf16 while packing) or bf16 bits.
    enum Operand {
        case f32(UnsafePointer<Float>)
        case bf16(UnsafePointer<UInt16>)

        func advanced(by n: Int) -> Operand {
            switch self {
            case .f32(let p): return .f32(p + n)
            case .bf16(let p): return .bf16(p + n)
            }
        }
    }

    /// Row-major `C (M,N) = alpha · op(A) · op(B) + beta · C` on the calling thread, bf16 operands
    /// and fp32 accumulation, on `path`'s kernel (which must be available: see `CPUMatmulPath`).
    static func gemm(path: CPUMatmulPath, transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
                     A: Operand, lda: Int, B: Operand, ldb: Int, beta: Float,
                     C: UnsafeMutablePointer<Float>, ldc: Int) {
        if M == 0 || N == 0 { return }
        precondition(M <= Int(Int32.max) && N <= Int(Int32.max) && K <= Int(Int32.max), "bf16 gemm: dimensions exceed Int32")
        func raw(_ o: Operand) -> (UnsafeRawPointer, Int32) {
            switch o {
            case .f32(let p): return (UnsafeRawPointer(p), 0)
            case .bf16(let p): return (UnsafeRawPointer(p), 1)
            }
        }
        let (a, abf) = raw(A), (b, bbf) = raw(B)
        let rc = gpt2k_gemm_bf16(path.kernel, transA ? 1 : 0, transB ? 1 : 0, Int32(M), Int32(N), Int32(K), alpha,
                                 a, abf, Int32(lda), b, bbf, Int32(ldb), beta, C, Int32(ldc))
        precondition(rc == 0, "bf16 gemm: the \(path.rawValue) kernel cannot run on this CPU (\(path.unavailableReason ?? "refused"))")
    }
}

/// bf16 copies of a model's matmul weights (wte for the tied LM head, qkvw, attprojw, fcw,
/// fcprojw), at the same offsets as in `ParameterTensors`.
final class BF16WeightCopy {
    /// The tensors used as matmul operands.
    static let matrices: [ParameterName] = [.wte, .qkvw, .attprojw, .fcw, .fcprojw]

    let memory: UnsafeMutablePointer<UInt16>
    let count: Int
    /// Sampled fp32 parameter bits when the copy was last made: a different value at any sample
    /// (a checkpoint load, `loadState`, a new initialisation) means the copy is stale.
    private var fingerprint: [UInt32] = []
    private var stale = true

    init(count: Int) {
        self.count = count
        memory = .allocate(capacity: count)
    }

    deinit { memory.deallocate() }

    /// Marks the copy stale (after in-place edits that the fingerprint might miss).
    func invalidate() { stale = true }

    /// Remakes the copy from `params` when it is stale or the parameters changed since.
    func ensureFresh(_ params: ParameterTensors) {
        if !stale && fingerprint == Self.sample(params) { return }
        for name in Self.matrices {
            let o = params.offset(name), n = params.count(name)
            Parallel.chunks(n, minChunk: 1 << 16, align: 16) { r in
                gpt2k_f32_to_bf16(memory + o + r.lowerBound, params.memory + o + r.lowerBound, r.count)
            }
        }
        markFresh(params)
    }

    /// Records that the copy matches `params` (after AdamW wrote both).
    func markFresh(_ params: ParameterTensors) {
        fingerprint = Self.sample(params)
        stale = false
    }

    /// The copy of `name` (the given layer's slice for per-layer tensors).
    func pointer(_ params: ParameterTensors, _ name: ParameterName, layer: Int? = nil) -> UnsafePointer<UInt16> {
        let base = layer.map { params.pointer(name, layer: $0) } ?? params.pointer(name)
        return UnsafePointer(memory + (base - params.memory))
    }

    /// 64 spread-out parameter bit patterns per matrix.
    private static func sample(_ params: ParameterTensors) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(64 * matrices.count)
        for name in matrices {
            let p = params.pointer(name), n = params.count(name)
            for i in 0..<64 { out.append(p[(i &* 2_654_435_761 &+ i * (n / 64)) % n].bitPattern) }
        }
        return out
    }
}

extension AdamW {
    /// `update`, also writing bf16(new parameter) to `bf16Copy` in the same pass (the matmul
    /// weight copy, refreshed once per optimizer step). The fp32 results are identical to `update`'s.
    static func updateBF16(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                           m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, N: Int,
                           learningRate: Float, beta1: Float, beta2: Float, eps: Float,
                           weightDecay: Float, step: Int, gradScale: Float, bf16Copy: UnsafeMutablePointer<UInt16>) {
        precondition(step >= 1, "AdamW.updateBF16: step must be >= 1 (got \(step))")
        let bc1 = Float(1 - pow(Double(beta1), Double(step)))   // as AdamW.update
        let bc2 = Float(1 - pow(Double(beta2), Double(step)))
        Parallel.chunks(N, minChunk: 1 << 16, align: 16) { r in
            let o = r.lowerBound
            gpt2k_adamw_bf16(params + o, grads + o, m + o, v + o, r.count, learningRate, beta1, beta2, eps,
                             weightDecay, bc1, bc2, gradScale, bf16Copy + o)
        }
    }
}
