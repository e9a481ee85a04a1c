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

typedef unsigned short u16x16 __attribute__((ext_vector_type(16), aligned(2)));
typedef unsigned int u32x16 __attribute__((ext_vector_type(16)));
typedef float f32x16 __attribute__((ext_vector_type(16), aligned(4)));

typedef float f32x8 __attribute__((ext_vector_type(8)));
typedef float f32x4 __attribute__((ext_vector_type(4)));

// Macros, not functions: 512-bit vector arguments would change the ABI of the default clone.
/// Tree sum of 16 lanes (a sequential sum costs as much as the dot product for C = 256).
#define HSUM16(v) ({ f32x16 v_ = (v); f32x8 a_ = v_.lo + v_.hi; f32x4 b_ = a_.lo + a_.hi; (b_.x + b_.z) + (b_.y + b_.w); })
/// 16 bf16 weights as fp32: bf16 -> fp32 is a 16-bit left shift of the bits.
#define BF16X16(w) ((f32x16)(__builtin_convertvector(*(const u16x16 *)(w), u32x16) << 16))

static inline float bf16_dot_tail(const unsigned short *w, const float *x, size_t i0, size_t C) {
    float sum = 0.0f;
    for (size_t i = i0; i < C; i++) {
        union { unsigned int u; float f; } v = { .u = (unsigned int)w[i] << 16 };
        sum += v.f * x[i];
    }
    return sum;
}

CLONES
void gpt2k_gemv_bf16_rows(float *out, const float *inp, const unsigned short *weight,
                          size_t R, size_t C, size_t OC, size_t o0, size_t o1) {
    size_t C16 = C & ~(size_t)15;
    for (size_t r = 0; r < R; r++) {
        const float *x = inp + r * C;
        size_t o = o0;
        // Two weight rows at a time: independent FMA chains keep more loads in flight.
        for (; o + 2 <= o1; o += 2) {
            const unsigned short *w0 = weight + o * C, *w1 = w0 + C;
            f32x16 a0 = 0, a1 = 0;
            for (size_t i = 0; i < C16; i += 16) {
                f32x16 xv = *(const f32x16 *)(x + i);
                a0 += BF16X16(w0 + i) * xv;
                a1 += BF16X16(w1 + i) * xv;
            }
            out[r * OC + o] = HSUM16(a0) + bf16_dot_tail(w0, x, C16, C);
            out[r * OC + o + 1] = HSUM16(a1) + bf16_dot_tail(w1, x, C16, C);
        }
        for (; o < o1; o++) {
            const unsigned short *w0 = weight + o * C;
            f32x16 a0 = 0;
            for (size_t i = 0; i < C16; i += 16) a0 += BF16X16(w0 + i) * *(const f32x16 *)(x + i);
            out[r * OC + o] = HSUM16(a0) + bf16_dot_tail(w0, x, C16, C);
        }
    }
}

void gpt2k_to_bf16_rows(unsigned short *out, float *norms, const float *weight, size_t C, size_t o0, size_t o1) {
    for (size_t o = o0; o < o1; o++) {
        double ss = 0;
        for (size_t i = 0; i < C; i++) {
            union { float f; unsigned int u; } v = { .f = weight[o * C + i] };
            unsigned int u = v.u;
            if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) out[o * C + i] = 0x7FC0;   // NaN
            else out[o * C + i] = (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);     // round to nearest even
            ss += (double)weight[o * C + i] * weight[o * C + i];
        }
        norms[o] = (float)__builtin_sqrt(ss);
    }
}
