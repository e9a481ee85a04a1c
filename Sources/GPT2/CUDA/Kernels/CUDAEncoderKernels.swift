// Token + position embedding on the GPU: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:].
// Backward accumulates (+=) into the fp32 gradients dwte and dwpe without atomics: dwpe sums over
// the batch per (t, c); dwte walks host-built buckets (every position of one token, in order,
// see EncoderBuckets), so the result is deterministic. Mirrors Kernels/Encoder.swift.
// Reference: llm.c encoder.cuh (encoder_forward_kernel3, wte_backward_kernel).
// Legend: B batch, T time, C channels.

extension CUDAKernelSource {
    static let encoderKernels = CUDAKernelSource(
        name: "encoder",
        kernels: ["encoder_forward_kernel", "encoder_backward_wpe_kernel", "encoder_backward_wte_kernel"],
        code: #"""
        // out (B,T,C); inp (B,T) token ids; wte (Vp,C); wpe (maxT,C). One thread per element.
        extern "C" __global__ void encoder_forward_kernel(floatX* out, const int* inp, const floatX* wte,
                                                          const floatX* wpe, int B, int T, int C) {
            size_t N = (size_t)B * T * C;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                size_t bt = i / C;
                int c = (int)(i % C), t = (int)(bt % T);
                int ix = inp[bt];
                out[i] = tox(tof(wte[(size_t)ix * C + c]) + tof(wpe[(size_t)t * C + c]));
            }
        }

        // dwpe (maxT,C) +=; dout (B,T,C). One thread per (t, c), summing over b in order.
        extern "C" __global__ void encoder_backward_wpe_kernel(float* dwpe, const floatX* dout, int B, int T, int C) {
            size_t N = (size_t)T * C;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                float s = 0.0f;
                for (int b = 0; b < B; b++) s += tof(dout[(size_t)b * T * C + i]);
                dwpe[i] += s;
            }
        }

        // dwte (Vp,C) +=; dout (B,T,C). Bucket k holds token tokens[k] and the positions
        // positions[starts[k] ..< starts[k+1]] (indices into B*T). One block per bucket; the
        // threads stride over channels, so each dwte row is written by exactly one block.
        extern "C" __global__ void encoder_backward_wte_kernel(float* dwte, const floatX* dout, const int* starts,
                                                               const int* positions, const int* tokens,
                                                               int numBuckets, int C) {
            int k = blockIdx.x;
            if (k >= numBuckets) return;
            int lo = starts[k], hi = starts[k + 1];
            float* row = dwte + (size_t)tokens[k] * C;
            for (int c = threadIdx.x; c < C; c += blockDim.x) {
                float s = 0.0f;
                for (int p = lo; p < hi; p++) s += tof(dout[(size_t)positions[p] * C + c]);
                row[c] += s;
            }
        }
        """#)
}
