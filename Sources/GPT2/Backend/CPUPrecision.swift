// CPU matmul precision: what the user asks for (`auto`, `fp32`, `bf16`) and the path the engine
// runs (fp32 SGEMM, or bf16 operands with fp32 accumulation on AMX or AVX512-BF16), chosen at run
// time from CPUID and a start-up self-check of the kernel (a few small GEMMs, about a millisecond).
// bf16 is llm.c's mixed precision: only matmul operands are bf16; master weights, AdamW moments,
// gradients, LayerNorm statistics, softmax and the loss stay fp32.
import Foundation
import GPT2Kernels

/// The precision requested for the CPU engine (`--precision`).
public enum CPUPrecision: String, CaseIterable, Sendable, Codable {
    /// The fastest path that passes the start-up self-check (bf16 where the CPU has it).
    case auto
    /// fp32 everywhere (the reference).
    case fp32
    /// bf16 matmul operands, fp32 accumulation; an error where the CPU has no bf16 instructions.
    case bf16
}

/// The matmul arithmetic the CPU engine runs.
public enum CPUMatmulPath: String, CaseIterable, Sendable, Codable {
    /// fp32 SGEMM (BLAS or the built-in kernel, see `BLAS.backendDescription`).
    case fp32
    /// bf16 operands, fp32 accumulation: VDPBF16PS, 12 x 32 register tile.
    case bf16AVX512 = "bf16-avx512"
    /// bf16 operands, fp32 accumulation: AMX tiles (TDPBF16PS).
    case bf16AMX = "bf16-amx"

    /// Whether matmul operands are rounded to bf16.
    public var isBF16: Bool { self != .fp32 }

    /// gpt2k_gemm_bf16's kernel number (0 for fp32).
    var kernel: Int32 {
        switch self {
        case .fp32: return 0
        case .bf16AVX512: return Int32(GPT2K_BF16_AVX512)
        case .bf16AMX: return Int32(GPT2K_BF16_AMX)
        }
    }

    /// Why this path cannot run on this CPU (nil when it can).
    public var unavailableReason: String? {
        let f = CPUFeatures.current
        switch self {
        case .fp32: return nil
        case .bf16AVX512: return f.avx512BF16Problem
        case .bf16AMX: return f.amxProblem
        }
    }

    /// Human-readable name, e.g. "bf16 on AVX512-BF16 (VDPBF16PS)".
    public var displayName: String {
        switch self {
        case .fp32: return "fp32 (\(BLAS.backendDescription))"
        case .bf16AVX512: return "bf16 on AVX512-BF16 (VDPBF16PS)"
        case .bf16AMX: return "bf16 on AMX (TDPBF16PS)"
        }
    }
}

/// A resolved precision: the path to run and a one-line reason for the run's header.
public struct CPUPrecisionChoice: Sendable, CustomStringConvertible {
    public let path: CPUMatmulPath
    public let reason: String
    public var description: String { "precision \(path.rawValue): \(reason)" }
}

/// Why a requested CPU precision cannot be used.
public enum CPUPrecisionError: LocalizedError, Equatable {
    case bf16Unavailable(reasons: [String])
    case selfCheckFailed(path: CPUMatmulPath, error: Float)

    public var errorDescription: String? {
        switch self {
        case .bf16Unavailable(let reasons):
            return "bf16 is unavailable on this CPU (\(reasons.joined(separator: "; "))); use --precision fp32 or auto"
        case .selfCheckFailed(let path, let error):
            return "the \(path.rawValue) kernel failed its start-up self-check (max rel err \(error)); use --precision fp32 and report the CPU ('gpt info')"
        }
    }
}

extension CPUPrecision {
    /// Resolves this request into the path to use on this CPU.
    /// - Returns: the path and a one-line reason (e.g. for the run's header line).
    /// - Throws: `CPUPrecisionError` when `bf16` was requested and no bf16 kernel can run here.
    public func resolve() throws -> CPUPrecisionChoice {
        if self == .fp32 { return CPUPrecisionChoice(path: .fp32, reason: "fp32 matmuls (\(BLAS.backendDescription)), as requested") }
        var notes: [String] = []
        var failed: (CPUMatmulPath, Float)?
        for path in [CPUMatmulPath.bf16AMX, .bf16AVX512] {
            if let why = path.unavailableReason { notes.append("\(path == .bf16AMX ? "AMX" : "AVX512-BF16"): \(why)"); continue }
            let err = BF16SelfCheck.maxRelativeError(path)
            guard err <= BF16SelfCheck.tolerance else {
                notes.append("\(path.rawValue) failed its self-check (max rel err \(err))")
                failed = failed ?? (path, err)
                continue
            }
            let also = notes.isEmpty ? "" : " (\(notes.joined(separator: "; ")))"
            let how = self == .auto ? "auto: fastest path here" : "as requested"
            return CPUPrecisionChoice(path: path, reason: "\(path.displayName), fp32 accumulation and master weights, \(how)\(also); self-check max rel err \(String(format: "%.1e", err))")
        }
        if self == .bf16 {
            if let (path, err) = failed, notes.count == 1 { throw CPUPrecisionError.selfCheckFailed(path: path, error: err) }
            throw CPUPrecisionError.bf16Unavailable(reasons: notes)
        }
        return CPUPrecisionChoice(path: .fp32, reason: "fp32 matmuls (\(BLAS.backendDescription)); bf16 unavailable: \(notes.joined(separator: "; "))")
    }
}

/// The start-up check behind `CPUPrecision.resolve`: the bf16 kernel against an fp64 product of
/// the same bf16-rounded operands, at odd shapes in the transpose variants the model uses.
enum BF16SelfCheck {
    /// Max |kernel − reference| / max |reference| allowed (fp32 accumulation of ≤ 70 terms).
    static let tolerance: Float = 1e-5

    nonisolated(unsafe) private static var cache: [CPUMatmulPath: Float] = [:]
    private static let lock = NSLock()

    /// Max relative error over the check's GEMMs (cached per path; .infinity when the kernel refused).
    static func maxRelativeError(_ path: CPUMatmulPath) -> Float {
        lock.lock()
        defer { lock.unlock() }
        if let e = cache[path] { return e }
        var worst: Float = 0
        // (transA, transB, aIsBF16, bIsBF16): forward (weights bf16), dinp, dweight
        for (ta, tb, abf, bbf) in [(false, true, false, true), (false, false, false, true), (true, false, false, false)] {
            worst = max(worst, check(path, M: 19, N: 35, K: 67, transA: ta, transB: tb, aBF16: abf, bBF16: bbf))
        }
        cache[path] = worst
        return worst
    }

    private static func check(_ path: CPUMatmulPath, M: Int, N: Int, K: Int, transA: Bool, transB: Bool,
                              aBF16: Bool, bBF16: Bool) -> Float {
        var rng = NormalRNG(seed: 0xBF16)
        let a = (0..<M * K).map { _ in rng.next() }, b = (0..<K * N).map { _ in rng.next() }
        let ab = BF16.round(a), bb = BF16.round(b)
        let lda = transA ? M : K, ldb = transB ? K : N
        var ref = [Double](repeating: 0, count: M * N)
        for i in 0..<M {
            for j in 0..<N {
                var s = 0.0
                for k in 0..<K {
                    let x = BF16.float(ab[transA ? k * lda + i : i * lda + k])
                    let y = BF16.float(bb[transB ? j * ldb + k : k * ldb + j])
                    s += Double(x) * Double(y)
                }
                ref[i * N + j] = s
            }
        }
        var c = [Float](repeating: .nan, count: M * N)
        let rc: Int32 = a.withUnsafeBufferPointer { af in ab.withUnsafeBufferPointer { ah in
            b.withUnsafeBufferPointer { bf in bb.withUnsafeBufferPointer { bh in
                c.withUnsafeMutableBufferPointer { cp in
                    gpt2k_gemm_bf16(path.kernel, transA ? 1 : 0, transB ? 1 : 0, Int32(M), Int32(N), Int32(K), 1,
                                    aBF16 ? UnsafeRawPointer(ah.baseAddress!) : UnsafeRawPointer(af.baseAddress!), aBF16 ? 1 : 0, Int32(lda),
                                    bBF16 ? UnsafeRawPointer(bh.baseAddress!) : UnsafeRawPointer(bf.baseAddress!), bBF16 ? 1 : 0, Int32(ldb),
                                    0, cp.baseAddress!, Int32(N))
                }
            } }
        } }
        if rc != 0 { return .infinity }
        var maxDiff = 0.0, maxRef = 0.0
        for i in 0..<M * N {
            let d = abs(Double(c[i]) - ref[i])
            if d.isNaN { return .infinity }
            maxDiff = max(maxDiff, d)
            maxRef = max(maxRef, abs(ref[i]))
        }
        return Float(maxDiff / max(maxRef, 1e-30))
    }
}
