// GELU, tanh approximation, on the GPU: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Backward writes dinp = gelu'(inp) * dout (=, may alias dout). fp32 arithmetic on floatX data.
// Mirrors Kernels/GELU.swift. Reference: llm.c gelu.cuh.
// Legend: N = number of elements (B*T*4C).

extension CUDAKernelSource {
    static let geluKernels = CUDAKernelSource(
        name: "gelu",
        kernels: ["gelu_forward_kernel", "gelu_backward_kernel"],
        code: #"""
        #define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)

        // out (N); inp (N)
        extern "C" __global__ void gelu_forward_kernel(floatX* out, const floatX* inp, size_t N) {
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                float x = tof(inp[i]);
                float u = GELU_SCALE * (x + 0.044715f * x * x * x);
                out[i] = tox(0.5f * x * (1.0f + tanhf(u)));
            }
        }

        // dinp (N) =; inp (N) pre-activation; dout (N). dinp may be dout (in place).
        extern "C" __global__ void gelu_backward_kernel(floatX* dinp, const floatX* inp, const floatX* dout, size_t N) {
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                float x = tof(inp[i]);
                float u = GELU_SCALE * (x + 0.044715f * x * x * x);
                float th = tanhf(u);
                float sech2 = 1.0f - th * th;
                float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
                dinp[i] = tox(g * tof(dout[i]));
            }
        }
        """#)
}
