// GELU, tanh approximation, on the GPU: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Backward writes dinp = gelu'(inp) * dout (=, may alias dout). fp32 arithmetic on floatX data.
// Mirrors Kernels/GELU.swift. Reference: llm.c gelu.cuh. In bf16 training the MLP fuses GELU into
// its matmuls instead (cuBLASLt epilogues, CUDAMatmul.swift); these kernels serve fp32 and the checks.
// Legend: N = number of elements (B*T*4C).

extension CUDAKernelSource {
    static let geluKernels = CUDAKernelSource(
        name: "gelu",
        kernels: ["gelu_forward_kernel", "gelu_backward_kernel"],
        code: #"""
        #define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)

        __device__ __forceinline__ float geluF(float x) {
            float u = GELU_SCALE * (x + 0.044715f * x * x * x);
            return 0.5f * x * (1.0f + tanhf(u));
        }
        __device__ __forceinline__ float geluGrad(float x) {
            float u = GELU_SCALE * (x + 0.044715f * x * x * x);
            float th = tanhf(u);
            float sech2 = 1.0f - th * th;
            return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        }

        // out (N); inp (N). 16-byte packs when both are aligned, then the scalar tail.
        extern "C" __global__ void gelu_forward_kernel(floatX* out, const floatX* inp, size_t N) {
            size_t stride = (size_t)gridDim.x * blockDim.x, first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
            size_t packs = (aligned16(out) && aligned16(inp)) ? N / XPACK : 0;
            for (size_t p = first; p < packs; p += stride) {
                PackX a = ((const PackX*)inp)[p], o;
                #pragma unroll
                for (int k = 0; k < XPACK; k++) o.v[k] = tox(geluF(tof(a.v[k])));
                ((PackX*)out)[p] = o;
            }
            for (size_t i = packs * XPACK + first; i < N; i += stride) out[i] = tox(geluF(tof(inp[i])));
        }

        // dinp (N) =; inp (N) pre-activation; dout (N). dinp may be dout (in place).
        extern "C" __global__ void gelu_backward_kernel(floatX* dinp, const floatX* inp, const floatX* dout, size_t N) {
            size_t stride = (size_t)gridDim.x * blockDim.x, first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
            size_t packs = (aligned16(dinp) && aligned16(inp) && aligned16(dout)) ? N / XPACK : 0;
            for (size_t p = first; p < packs; p += stride) {
                PackX a = ((const PackX*)inp)[p], d = ((const PackX*)dout)[p], o;
                #pragma unroll
                for (int k = 0; k < XPACK; k++) o.v[k] = tox(geluGrad(tof(a.v[k])) * tof(d.v[k]));
                ((PackX*)dinp)[p] = o;
            }
            for (size_t i = packs * XPACK + first; i < N; i += stride) dinp[i] = tox(geluGrad(tof(inp[i])) * tof(dout[i]));
        }
        """#)
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// gelu_forward_kernel: out (N) = gelu(inp (N)); out may be inp.
    func geluForward(out: CUdeviceptr, inp: CUdeviceptr, N: Int) throws {
        try launch("gelu_forward_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(out), .pointer(inp), .size(N)])
    }

    /// gelu_backward_kernel: dinp (N) = gelu'(inp) · dout (dinp may be dout itself).
    func geluBackward(dinp: CUdeviceptr, inp: CUdeviceptr, dout: CUdeviceptr, N: Int) throws {
        try launch("gelu_backward_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(dinp), .pointer(inp), .pointer(dout), .size(N)])
    }
}
