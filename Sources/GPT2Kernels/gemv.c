// Few-row matmul for KV-cache generation: sgemm packs the whole weight matrix on every call,
// which dominates when only 1-8 rows are multiplied. Here each weight row is streamed once and
// dotted with every input row (memory-bound: the weights are read exactly once per step).
#include "GPT2GEMV.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#pragma clang fp reassociate(on)

CLONES
void gpt2k_gemv_rows(float *out, const float *inp, const float *weight, const float *bias,
                     size_t R, size_t C, size_t OC, size_t o0, size_t o1) {
    for (size_t o = o0; o < o1; o++) {
        const float *w = weight + o * C;
        float b = bias ? bias[o] : 0.0f;
        for (size_t r = 0; r < R; r++) {
            const float *x = inp + r * C;
            float acc = 0.0f;
            for (size_t i = 0; i < C; i++) acc += w[i] * x[i];
            out[r * OC + o] = acc + b;
        }
    }
}
