// The CUDA C kernel sources, embedded in the binary as Swift string literals (a static `gpt`
// copied to a GPU machine needs no files beside it) and compiled by NVRTC at start-up for the
// device's architecture (NVRTCCompiler.swift caches the result on disk).
// Every source is compiled twice in CI (CUDAKernelCompileTests): with `-DGPT2_BF16` (floatX =
// __nv_bfloat16, the training precision) and without (floatX = float, the parity-test precision).

/// Activation / matmul precision of the CUDA backend. Master weights, AdamW moments and
/// parameter gradients are fp32 in both; softmax, LayerNorm and loss accumulate in fp32.
public enum CUDAPrecision: String, Sendable, CaseIterable, Codable {
    /// floatX = float: bit-for-bit the CPU engine's arithmetic up to summation order (parity tests).
    case fp32
    /// floatX = __nv_bfloat16: llm.c's mixed precision (the default for training).
    case bf16

    /// The preprocessor defines that select this precision in the kernel sources.
    public var defines: [String] { self == .bf16 ? ["GPT2_BF16"] : [] }
    /// Bytes per activation element.
    public var elementSize: Int { self == .bf16 ? 2 : 4 }
}

/// One CUDA C translation unit: a group of related kernels (one op's forward and backward).
public struct CUDAKernelSource: Sendable, Hashable {
    /// Short name, also the NVRTC program name ("layernorm" → "layernorm.cu").
    public let name: String
    /// The `extern "C" __global__` entry points this unit defines.
    public let kernels: [String]
    /// CUDA C code, without the common prelude.
    public let code: String

    /// The complete program text NVRTC compiles: the prelude then this unit's code.
    public var program: String { CUDAKernelSource.prelude + "\n" + code }

    /// Every kernel source, in dependency-free order.
    public static let all: [CUDAKernelSource] = [
        encoderKernels, layerNormKernels, geluKernels, biasKernels, classifierKernels,
        attentionKernels, attentionTCKernels, adamWKernels, reduceKernels, convertKernels, decodeKernels,
        samplingKernels,
    ]

    /// Shared by every unit: the floatX typedef, fp32 <-> floatX conversion and warp/block
    /// reductions (inline device functions: each unit is compiled on its own).
    public static let prelude = #"""
    // ---- gpt2-swift CUDA prelude: floatX selected by -DGPT2_BF16 ----
    #include <cuda_bf16.h>
    #ifdef GPT2_BF16
    typedef __nv_bfloat16 floatX;
    #else
    typedef float floatX;
    #endif
    #define WARP_SIZE 32
    #define FULL_MASK 0xffffffffu
    #define NEG_INF __int_as_float(0xff800000)   // NVRTC has no <math.h> INFINITY

    // fp32 view of an activation, and rounding back (round-to-nearest-even for bf16)
    __device__ __forceinline__ float tof(float x) { return x; }
    __device__ __forceinline__ float tof(__nv_bfloat16 x) { return __bfloat162float(x); }
    __device__ __forceinline__ floatX tox(float x) {
    #ifdef GPT2_BF16
        return __float2bfloat16_rn(x);
    #else
        return x;
    #endif
    }

    // 16 bytes of floatX (8 bf16 or 4 fp32): one vector load or store for memory-bound kernels,
    // used where the address is 16-byte aligned (checked at run time, with a scalar fallback).
    #define XPACK (16 / (int)sizeof(floatX))
    struct __align__(16) PackX { floatX v[XPACK]; };
    __device__ __forceinline__ bool aligned16(const void* p) { return ((size_t)p & 15) == 0; }

    __device__ __forceinline__ float warpSum(float v) {
        for (int o = WARP_SIZE / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
        return v;
    }
    __device__ __forceinline__ float warpMax(float v) {
        for (int o = WARP_SIZE / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
        return v;
    }
    // Sum over the whole block (blockDim.x a multiple of 32), result in every thread. `buf` holds >= 32 floats of shared
    // memory; the fixed tree order makes the result deterministic.
    __device__ inline float blockSum(float v, float* buf) {
        int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
        int nwarps = (blockDim.x + WARP_SIZE - 1) / WARP_SIZE;
        v = warpSum(v);
        __syncthreads();                 // buf may still be read by a previous call
        if (lane == 0) buf[warp] = v;
        __syncthreads();
        v = lane < nwarps ? buf[lane] : 0.0f;
        return warpSum(v);
    }
    __device__ inline float blockMax(float v, float* buf) {
        int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
        int nwarps = (blockDim.x + WARP_SIZE - 1) / WARP_SIZE;
        v = warpMax(v);
        __syncthreads();
        if (lane == 0) buf[warp] = v;
        __syncthreads();
        v = lane < nwarps ? buf[lane] : NEG_INF;
        return warpMax(v);
    }
    """#
}
