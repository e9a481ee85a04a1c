// Bias add and bias gradient on the GPU. Forward normally uses cuBLASLt's BIAS epilogue; the
// kernel here is the fallback (and the parity reference). Backward sums dout over rows into the
// fp32 dbias (+=) in two deterministic passes: column partial sums per row chunk into a scratch
// buffer, then `column_sum_kernel` (reduce.cu) adds the chunks in order.
// Mirrors Matmul.forward's bias / gpt2k_bias_backward. Reference: llm.c matmul.cuh (matmul_backward_bias_kernel).
// Legend: N rows (B*T), OC output channels.

extension CUDAKernelSource {
    static let biasKernels = CUDAKernelSource(
        name: "bias",
        kernels: ["add_bias_kernel", "bias_backward_partial_kernel"],
        code: #"""
        // out (N,OC) += bias (OC)
        extern "C" __global__ void add_bias_kernel(floatX* out, const floatX* bias, int N, int OC) {
            size_t total = (size_t)N * OC;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
                out[i] = tox(tof(out[i]) + tof(bias[i % OC]));
            }
        }

        // partial (gridDim.y, OC) = column sums of dout (N,OC) over row chunk blockIdx.y.
        // Block (32, 8): threadIdx.x walks 32 adjacent columns (coalesced), threadIdx.y splits the
        // chunk's rows 8 ways; the 8 partial sums are added in fixed order in shared memory.
        extern "C" __global__ void bias_backward_partial_kernel(float* partial, const floatX* dout, int N, int OC) {
            __shared__ float sums[8][33];
            int c = blockIdx.x * 32 + threadIdx.x;
            int rowsPerChunk = (N + gridDim.y - 1) / gridDim.y;
            int r0 = blockIdx.y * rowsPerChunk, r1 = min(N, r0 + rowsPerChunk);
            float s = 0.0f;
            if (c < OC) {
                for (int r = r0 + threadIdx.y; r < r1; r += 8) s += tof(dout[(size_t)r * OC + c]);
            }
            sums[threadIdx.y][threadIdx.x] = s;
            __syncthreads();
            if (threadIdx.y == 0 && c < OC) {
                float t = 0.0f;
                for (int k = 0; k < 8; k++) t += sums[k][threadIdx.x];
                partial[(size_t)blockIdx.y * OC + c] = t;
            }
        }
        """#)
}
