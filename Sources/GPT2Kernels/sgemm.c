// Fallback single-threaded SGEMM, used only when no BLAS library can be loaded at run time.
// Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, the cblas_sgemm contract.
// Classic Goto/BLIS structure: pack a KC x NC panel of B and an MC x KC block of A into
// contiguous micro-panels, then a 6 x 16 register-blocked micro-kernel written with clang vector
// types (one zmm per row on AVX-512, two ymm on AVX2). Reaches roughly half of OpenBLAS's speed.
#include "GPT2Kernels.h"
#include <stdlib.h>
#include <string.h>

// Shared free list of packing buffers (defined in sgemm_bf16.c); sizes in floats.
float *gpt2k_pack_buffer_take(size_t floats, size_t *capacity);
void gpt2k_pack_buffer_give(float *p, size_t capacity);

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#define MR 6      // micro-kernel rows
#define NR 16     // micro-kernel columns (one 16-float vector)
#define KC 256    // depth of a packed block
#define MC 96     // rows of A per packed block (multiple of MR)
#define NC 2048   // columns of B per packed panel (multiple of NR)

typedef float v16f __attribute__((ext_vector_type(16), aligned(4)));

/// Pack op(B)[pc:pc+kc, jc:jc+nc] into NR-wide panels: Bp[(panel*kc + k)*NR + jj], zero padded.
static inline void pack_b(float *Bp, const float *B, int ldb, int transB, int pc, int kc, int jc, int nc) {
    for (int jp = 0; jp < nc; jp += NR) {
        int w = nc - jp < NR ? nc - jp : NR;
        float *dst = Bp + (size_t)(jp / NR) * kc * NR;
        for (int k = 0; k < kc; k++) {
            float *d = dst + (size_t)k * NR;
            for (int jj = 0; jj < w; jj++) {
                int j = jc + jp + jj, kk = pc + k;
                d[jj] = transB ? B[(size_t)j * ldb + kk] : B[(size_t)kk * ldb + j];
            }
            for (int jj = w; jj < NR; jj++) d[jj] = 0.0f;
        }
    }
}

/// Pack op(A)[ic:ic+mc, pc:pc+kc] into MR-tall panels: Ap[(panel*kc + k)*MR + ii], zero padded.
static inline void pack_a(float *Ap, const float *A, int lda, int transA, int ic, int mc, int pc, int kc) {
    for (int ip = 0; ip < mc; ip += MR) {
        int h = mc - ip < MR ? mc - ip : MR;
        float *dst = Ap + (size_t)(ip / MR) * kc * MR;
        for (int k = 0; k < kc; k++) {
            float *d = dst + (size_t)k * MR;
            for (int ii = 0; ii < h; ii++) {
                int i = ic + ip + ii, kk = pc + k;
                d[ii] = transA ? A[(size_t)kk * lda + i] : A[(size_t)i * lda + kk];
            }
            for (int ii = h; ii < MR; ii++) d[ii] = 0.0f;
        }
    }
}

/// acc (MR x NR) = Ap panel (kc x MR) ^T * Bp panel (kc x NR).
static inline void micro_kernel(float *acc, const float *a, const float *b, int kc) {
    v16f c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0;
    for (int k = 0; k < kc; k++) {
        v16f bv = *(const v16f *)(b + (size_t)k * NR);
        const float *ak = a + (size_t)k * MR;
        c0 += ak[0] * bv; c1 += ak[1] * bv; c2 += ak[2] * bv;
        c3 += ak[3] * bv; c4 += ak[4] * bv; c5 += ak[5] * bv;
    }
    *(v16f *)(acc + 0 * NR) = c0; *(v16f *)(acc + 1 * NR) = c1; *(v16f *)(acc + 2 * NR) = c2;
    *(v16f *)(acc + 3 * NR) = c3; *(v16f *)(acc + 4 * NR) = c4; *(v16f *)(acc + 5 * NR) = c5;
}

CLONES
static void sgemm_generic(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    // C *= beta first (beta == 0 overwrites, so NaNs in uninitialised C do not propagate).
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)N);
        else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
    }
    if (K <= 0 || alpha == 0.0f) return;
    size_t cap;   // packing space from the shared free list (sgemm_bf16.c): no mmap/page faults per call
    float *Bp = gpt2k_pack_buffer_take((size_t)KC * NC + (size_t)KC * MC, &cap);
    float *Ap = Bp + (size_t)KC * NC;
    float acc[MR * NR] __attribute__((aligned(64)));
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC;
            pack_b(Bp, B, ldb, transB, pc, kc, jc, nc);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                pack_a(Ap, A, lda, transA, ic, mc, pc, kc);
                for (int jr = 0; jr < nc; jr += NR) {
                    int w = nc - jr < NR ? nc - jr : NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        int h = mc - ir < MR ? mc - ir : MR;
                        micro_kernel(acc, Ap + (size_t)(ir / MR) * kc * MR, Bp + (size_t)(jr / NR) * kc * NR, kc);
                        for (int ii = 0; ii < h; ii++) {
                            float *c = C + (size_t)(ic + ir + ii) * ldc + jc + jr;
                            const float *s = acc + ii * NR;
                            for (int jj = 0; jj < w; jj++) c[jj] += alpha * s[jj];
                        }
                    }
                }
            }
        }
    }
    gpt2k_pack_buffer_give(Bp, cap);
}

// MARK: - AVX-512 path: 12 x 32 micro-kernel (24 zmm accumulators, 2 B loads and 12 broadcasts
// per k), which keeps the FMA units busy instead of waiting on loads as the 6 x 16 kernel does.

#if defined(__x86_64__) && defined(__clang__)
#define MR5 12
#define NR5 32
#define KC5 256
#define MC5 96     // multiple of MR5
#define NC5 2048   // multiple of NR5
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))

static inline void pack_b5(float *Bp, const float *B, int ldb, int transB, int pc, int kc, int jc, int nc) {
    for (int jp = 0; jp < nc; jp += NR5) {
        int w = nc - jp < NR5 ? nc - jp : NR5;
        float *dst = Bp + (size_t)(jp / NR5) * kc * NR5;
        if (!transB && w == NR5) {   // rows of B are contiguous: copy 32 floats at a time
            for (int k = 0; k < kc; k++) memcpy(dst + (size_t)k * NR5, B + (size_t)(pc + k) * ldb + jc + jp, sizeof(float) * NR5);
            continue;
        }
        for (int k = 0; k < kc; k++) {
            float *d = dst + (size_t)k * NR5;
            for (int jj = 0; jj < w; jj++) {
                int j = jc + jp + jj, kk = pc + k;
                d[jj] = transB ? B[(size_t)j * ldb + kk] : B[(size_t)kk * ldb + j];
            }
            for (int jj = w; jj < NR5; jj++) d[jj] = 0.0f;
        }
    }
}

static inline void pack_a5(float *Ap, const float *A, int lda, int transA, int ic, int mc, int pc, int kc) {
    for (int ip = 0; ip < mc; ip += MR5) {
        int h = mc - ip < MR5 ? mc - ip : MR5;
        float *dst = Ap + (size_t)(ip / MR5) * kc * MR5;
        for (int k = 0; k < kc; k++) {
            float *d = dst + (size_t)k * MR5;
            for (int ii = 0; ii < h; ii++) {
                int i = ic + ip + ii, kk = pc + k;
                d[ii] = transA ? A[(size_t)kk * lda + i] : A[(size_t)i * lda + kk];
            }
            for (int ii = h; ii < MR5; ii++) d[ii] = 0.0f;
        }
    }
}

/// C tile (h x w, leading dimension ldc) += alpha * Ap panel^T (12 x kc) * Bp panel (kc x 32).
AVX512 static inline void micro_12x32(float *C, int ldc, int h, int w, float alpha, const float *a, const float *b, int kc) {
    v16f c[MR5][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR5; i++) { c[i][0] = 0; c[i][1] = 0; }
    for (int k = 0; k < kc; k++) {
        v16f b0 = *(const v16f *)(b + (size_t)k * NR5), b1 = *(const v16f *)(b + (size_t)k * NR5 + 16);
        const float *ak = a + (size_t)k * MR5;
#pragma clang loop unroll(full)
        for (int i = 0; i < MR5; i++) { c[i][0] += ak[i] * b0; c[i][1] += ak[i] * b1; }
    }
    if (h == MR5 && w == NR5) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR5; i++) {
            v16f *row = (v16f *)(C + (size_t)i * ldc);
            row[0] += alpha * c[i][0];
            row[1] += alpha * c[i][1];
        }
        return;
    }
    float acc[MR5 * NR5] __attribute__((aligned(64)));
    for (int i = 0; i < MR5; i++) { *(v16f *)(acc + i * NR5) = c[i][0]; *(v16f *)(acc + i * NR5 + 16) = c[i][1]; }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) C[(size_t)i * ldc + j] += alpha * acc[i * NR5 + j];
}

AVX512 static void sgemm_avx512(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                                const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)N);
        else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
    }
    if (K <= 0 || alpha == 0.0f) return;
    size_t cap;
    float *Bp = gpt2k_pack_buffer_take((size_t)KC5 * NC5 + (size_t)KC5 * MC5, &cap);
    float *Ap = Bp + (size_t)KC5 * NC5;
    for (int jc = 0; jc < N; jc += NC5) {
        int nc = N - jc < NC5 ? N - jc : NC5;
        for (int pc = 0; pc < K; pc += KC5) {
            int kc = K - pc < KC5 ? K - pc : KC5;
            pack_b5(Bp, B, ldb, transB, pc, kc, jc, nc);
            for (int ic = 0; ic < M; ic += MC5) {
                int mc = M - ic < MC5 ? M - ic : MC5;
                pack_a5(Ap, A, lda, transA, ic, mc, pc, kc);
                for (int jr = 0; jr < nc; jr += NR5) {
                    int w = nc - jr < NR5 ? nc - jr : NR5;
                    for (int ir = 0; ir < mc; ir += MR5) {
                        int h = mc - ir < MR5 ? mc - ir : MR5;
                        micro_12x32(C + (size_t)(ic + ir) * ldc + jc + jr, ldc, h, w, alpha,
                                    Ap + (size_t)(ir / MR5) * kc * MR5, Bp + (size_t)(jr / NR5) * kc * NR5, kc);
                    }
                }
            }
        }
    }
    gpt2k_pack_buffer_give(Bp, cap);
}
#endif

void gpt2k_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#if defined(__x86_64__) && defined(__clang__)
    if (__builtin_cpu_supports("avx512f")) {
        sgemm_avx512(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    sgemm_generic(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
