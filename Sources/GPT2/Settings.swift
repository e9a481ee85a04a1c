// Every GPT2_* environment variable, read in this one place (README "Environment variables"
// lists them). Code takes its value from `Settings.current` (the process environment, read once)
// or from a `Settings` built from an explicit dictionary in tests.
import Foundation

public struct Settings: Sendable, Equatable {
    /// GPT2_NUM_THREADS: worker threads of the CPU engine (default: all cores).
    public var numThreads: Int?
    /// GPT2_BLAS: the BLAS library to dlopen (a path or soname), or `none`/`fallback` for the
    /// built-in SGEMM.
    public var blas: String?
    /// GPT2_BLAS_THREADS: threads inside one BLAS call (default 1: the engine splits matmuls).
    public var blasThreads: Int?
    /// GPT2_POOL=gcd: the CPU engine's fork-joins through GCD's concurrentPerform instead of our
    /// own pool (for comparisons).
    public var pool: String?
    /// GPT2_CUDA_AUTO=0: `--device auto` stays on the CPU even when a GPU is usable.
    public var cudaAuto: Bool
    /// GPT2_CUDA_CACHE: NVRTC's compiled-kernel cache directory ("" or `none` disables it).
    public var cudaCache: String?
    /// GPT2_CUDA_INCLUDE: the directory holding cuda_bf16.h (else searched).
    public var cudaInclude: String?
    /// GPT2_CUDA_LIB_DIRS: colon-separated directories searched first for CUDA libraries.
    public var cudaLibDirs: [String]
    /// GPT2_CUDA_NO_PYTHON=1: never run Python to find the nvidia-* wheels.
    public var cudaNoPython: Bool
    /// GPT2_PYTHON: the Python whose site-packages hold the nvidia-* wheels (and, in tests, the
    /// reference packages).
    public var python: String?
    /// GPT2_CUDA_PROFILE=1: time every CUDA launch (slow; `gpt bench train --profile`).
    public var cudaProfile: Bool
    /// GPT2_ATTENTION=tc|simt: the CUDA attention kernels (tensor cores by default).
    public var attention: String?
    /// GPT2_GELU_EPILOGUE=0: no GELU fused into the CUDA MLP matmuls.
    public var geluEpilogue: Bool
    /// GPT2_LN_BACKWARD=block: the block-per-chunk CUDA LayerNorm backward.
    public var layerNormBackward: String?
    /// GPT2_MPI_LIBRARY: the MPI library to dlopen.
    public var mpiLibrary: String?
    /// GPT2_NCCL_ID_FILE: a shared file through which ranks exchange the NCCL id.
    public var ncclIdFile: String?
    /// GPT2_NCCL_PORT: the TCP port of the NCCL id exchange (default MASTER_PORT + 1).
    public var ncclPort: Int?
    /// GPT2_NCCL_TIMEOUT: seconds to wait for the other ranks (default 300).
    public var ncclTimeout: Double?
    /// GPT2_LIBCURL: the libcurl to dlopen for hub downloads (default libcurl.so.4, then libcurl-gnutls.so.4).
    public var libcurl: String?
    /// GPT2_COLLECTIVE_TIMEOUT: seconds an MPI all-reduce or barrier may wait for the other ranks
    /// before this rank gives up and exits (default 600; 0: wait forever).
    public var collectiveTimeout: Double?

    /// The variables' names, for help texts and the README check.
    public static let names = ["GPT2_NUM_THREADS", "GPT2_BLAS", "GPT2_BLAS_THREADS", "GPT2_POOL", "GPT2_CUDA_AUTO", "GPT2_CUDA_CACHE",
                               "GPT2_CUDA_INCLUDE", "GPT2_CUDA_LIB_DIRS", "GPT2_CUDA_NO_PYTHON", "GPT2_PYTHON",
                               "GPT2_CUDA_PROFILE", "GPT2_ATTENTION", "GPT2_GELU_EPILOGUE", "GPT2_LN_BACKWARD",
                               "GPT2_MPI_LIBRARY", "GPT2_NCCL_ID_FILE", "GPT2_NCCL_PORT", "GPT2_NCCL_TIMEOUT", "GPT2_LIBCURL",
                               "GPT2_COLLECTIVE_TIMEOUT"]

    public init(environment env: [String: String]) {
        func positive(_ k: String) -> Int? { env[k].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } }
        func nonEmpty(_ k: String) -> String? { env[k].flatMap { $0.isEmpty ? nil : $0 } }
        numThreads = positive("GPT2_NUM_THREADS")
        blas = nonEmpty("GPT2_BLAS")
        blasThreads = positive("GPT2_BLAS_THREADS")
        pool = nonEmpty("GPT2_POOL")
        cudaAuto = env["GPT2_CUDA_AUTO"] != "0"
        cudaCache = env["GPT2_CUDA_CACHE"]
        cudaInclude = nonEmpty("GPT2_CUDA_INCLUDE")
        cudaLibDirs = (env["GPT2_CUDA_LIB_DIRS"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
        cudaNoPython = env["GPT2_CUDA_NO_PYTHON"] == "1"
        python = nonEmpty("GPT2_PYTHON")
        cudaProfile = env["GPT2_CUDA_PROFILE"] == "1"
        attention = nonEmpty("GPT2_ATTENTION")
        geluEpilogue = env["GPT2_GELU_EPILOGUE"] != "0"
        layerNormBackward = nonEmpty("GPT2_LN_BACKWARD")
        mpiLibrary = nonEmpty("GPT2_MPI_LIBRARY")
        ncclIdFile = nonEmpty("GPT2_NCCL_ID_FILE")
        ncclPort = env["GPT2_NCCL_PORT"].flatMap { Int($0) }.flatMap { $0 > 0 && $0 < 65536 ? $0 : nil }
        ncclTimeout = env["GPT2_NCCL_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil }
        libcurl = nonEmpty("GPT2_LIBCURL")
        collectiveTimeout = env["GPT2_COLLECTIVE_TIMEOUT"].flatMap(Double.init).flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
    }

    /// The process environment's settings, read once.
    public static let current = Settings(environment: ProcessInfo.processInfo.environment)
}
