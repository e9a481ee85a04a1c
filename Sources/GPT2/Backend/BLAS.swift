// SGEMM provider: a system BLAS found at run time with dlopen (OpenBLAS, the libblas.so.3
// alternative, or Accelerate), else the built-in C fallback (Sources/GPT2Kernels/sgemm.c).
// BLAS is pinned to one thread: the engine splits every matmul across its own pool
// (Parallel.swift), so OpenBLAS's spinning workers never fight our threads.
// Set GPT2_BLAS=none to force the fallback, or GPT2_BLAS=/path/lib.so to pick a library.
// OPENBLAS_CORETYPE is respected when set; otherwise it is set from CPUID (see `loaded`).
import Foundation
import GPT2Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Row-major single-precision matrix multiply used by every kernel.
public enum BLAS {
    // cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
    typealias CblasSgemm = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                           UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
                                           Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    // Fortran sgemm_(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), column-major
    typealias FortranSgemm = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?,
                                             UnsafePointer<Int32>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?,
                                             UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Int32>?,
                                             UnsafePointer<Float>?, UnsafePointer<Int32>?, UnsafePointer<Float>?,
                                             UnsafeMutablePointer<Float>?, UnsafePointer<Int32>?) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void

    enum Provider {
        case cblas(CblasSgemm)
        case fortran(FortranSgemm)
        case fallback
    }

    struct Loaded: @unchecked Sendable {
        let provider: Provider
        let description: String
        /// The built-in kernel was chosen over a library that was found (not a missing-BLAS fallback).
        var preferred = false
    }

    /// OpenBLAS core names whose sgemm uses AVX-512.
    static let avx512Cores = ["skylakex", "cooperlake", "sapphirerapids"]

    static let candidates: [String] = {
        #if canImport(Darwin)
        return ["/System/Library/Frameworks/Accelerate.framework/Accelerate", "libopenblas.dylib"]
        #else
        return ["libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0", "libblas.so.3", "libblas.so",
                "libcblas.so.3", "libcblas.so"]
        #endif
    }()

    /// Threads BLAS may use inside one call: 1 (the engine splits matmuls itself) unless
    /// GPT2_BLAS_THREADS says otherwise, in which case matmuls are not split (for comparisons).
    static let threads: Int = {
        if let n = Settings.current.blasThreads { return n }
        return 1
    }()

    static let loaded: Loaded = {
        let env = Settings.current.blas
        if env == "none" || env == "fallback" {
            return Loaded(provider: .fallback, description: "built-in SGEMM (GPT2_BLAS=\(env!))")
        }
        let names = env.map { [$0] } ?? candidates
        // OpenBLAS picks its kernels from CPUID at load time; in some VMs it misdetects the CPU
        // (e.g. as "Prescott", SSE3 only: 5-10x slower). Unless the user chose a core type,
        // name one from the features we detect ourselves. Read once, when the library loads.
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil {
            switch gpt2k_cpu_level() {
            case 2: setenv("OPENBLAS_CORETYPE", "SkylakeX", 0)
            case 1: setenv("OPENBLAS_CORETYPE", "Haswell", 0)
            default: break
            }
        }
        for name in names {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            // One BLAS thread: matmuls are split across the engine's own pool.
            for setter in ["openblas_set_num_threads", "goto_set_num_threads", "bli_thread_set_num_threads"] {
                if let sym = dlsym(handle, setter) {
                    unsafeBitCast(sym, to: SetThreads.self)(Int32(threads))
                    break
                }
            }
            var core = ""
            if let sym = dlsym(handle, "openblas_get_corename"),
               let s = unsafeBitCast(sym, to: (@convention(c) () -> UnsafePointer<CChar>?).self)() {
                core = ", core \(String(cString: s))"
            }
            // On AVX-512 CPUs our own 12x32 AVX-512 kernel (sgemm.c) reaches ~90-95% of OpenBLAS's
            // SkylakeX kernels, well ahead of the AVX2 ones a preset OPENBLAS_CORETYPE=Haswell (or a
            // misdetection) selects, and of a reference libblas: use it unless GPT2_BLAS names a library.
            if env == nil && gpt2k_cpu_level() == 2 && !avx512Cores.contains(where: { core.lowercased().contains($0) }) {
                dlclose(handle)
                let why = core.isEmpty ? "\(name) is not OpenBLAS" : "\(name) runs\(core.dropFirst(1))"
                return Loaded(provider: .fallback, description: "built-in AVX-512 SGEMM (faster than \(why))", preferred: true)
            }
            if let sym = dlsym(handle, "cblas_sgemm") {
                return Loaded(provider: .cblas(unsafeBitCast(sym, to: CblasSgemm.self)), description: "\(name) (cblas_sgemm\(core))")
            }
            if let sym = dlsym(handle, "sgemm_") {
                return Loaded(provider: .fortran(unsafeBitCast(sym, to: FortranSgemm.self)), description: "\(name) (sgemm_)")
            }
            dlclose(handle)
        }
        return Loaded(provider: .fallback, description: "built-in SGEMM")
    }()

    /// Which SGEMM the engine uses, e.g. "libopenblas.so.0 (cblas_sgemm)".
    public static var backendDescription: String { loaded.description }

    /// A one-line notice for the CLI to print when no BLAS library was found (nil otherwise).
    /// The library itself never prints.
    public static var notice: String? {
        if case .fallback = loaded.provider, !loaded.preferred, Settings.current.blas == nil {
            return "note: no BLAS library found (tried \(candidates.joined(separator: ", "))); using the slower built-in SGEMM. Install libopenblas (apt-get install libopenblas0) for full speed."
        }
        return nil
    }

    /// Whether a system BLAS was loaded.
    public static var isSystemBLAS: Bool {
        if case .fallback = loaded.provider { return false }
        return true
    }

    /// Row-major `C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C` on the calling thread.
    /// - Parameters:
    ///   - transA: use A as stored (K,M) and transpose it.
    ///   - transB: use B as stored (N,K) and transpose it.
    ///   - useFallback: force the built-in kernel (tests compare both).
    @inline(__always)
    static func sgemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
                      A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                      beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int, useFallback: Bool = false) {
        if M == 0 || N == 0 { return }
        precondition(M <= Int(Int32.max) && N <= Int(Int32.max) && K <= Int(Int32.max), "sgemm: dimensions exceed Int32")
        let provider = useFallback ? .fallback : loaded.provider
        switch provider {
        case .cblas(let f):
            f(101, transA ? 112 : 111, transB ? 112 : 111, Int32(M), Int32(N), Int32(K), alpha,
              A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
        case .fortran(let f):
            // Row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T.
            var m = Int32(N), n = Int32(M), k = Int32(K), al = alpha, be = beta
            var la = Int32(ldb), lb = Int32(lda), lc = Int32(ldc)
            var ta: CChar = transB ? 84 : 78, tb: CChar = transA ? 84 : 78   // 'T' / 'N'
            f(&ta, &tb, &m, &n, &k, &al, B, &la, A, &lb, &be, C, &lc)
        case .fallback:
            gpt2k_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(M), Int32(N), Int32(K), alpha,
                        A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
        }
    }
}
