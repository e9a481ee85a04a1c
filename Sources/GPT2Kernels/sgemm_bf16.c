// Mixed-precision GEMM for the CPU engine (llm.c's bf16 matmuls, on the CPU): bf16 operands,
// fp32 accumulation and output. Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C,
// where A and B are each fp32 (rounded to bf16 while packing) or already bf16 (the weight copies).
// This file: CPU/OS probing, fp32 -> bf16 conversion (also fused into AdamW), and the AVX512-BF16
// kernel: a 12 x 32 register tile of VDPBF16PS (each instruction multiplies one k pair for 16
// columns), packed as in sgemm.c's 12 x 32 fp32 kernel. The AMX kernel is in sgemm_amx.c.
// Reference: Intel SDM vol. 2 (VDPBF16PS, VCVTNE2PS2BF16); Goto/BLIS blocking as sgemm.c.
#include "GPT2Kernels.h"
#include "bf16_pack.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

// MARK: - fp32 -> bf16

/// Round to nearest even; zero and denormal inputs give a signed zero and NaNs stay quiet NaNs,
/// exactly as VCVTNEPS2BF16, so weights and activations are rounded the same way.
static inline uint16_t bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t exp = u & 0x7F800000u;
    if (exp == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if (exp == 0x7F800000u && (u & 0x007FFFFFu)) return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

CLONES
void gpt2k_f32_to_bf16(uint16_t *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = bf16_round(x[i]);
}

CLONES
void gpt2k_adamw_bf16(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2,
                      float grad_scale, uint16_t *params_bf16) {
    // Operation for operation the same as gpt2k_adamw (kernels.c), so fp32 results are identical;
    // the bf16 copy is written while the new parameter is still in a register.
    float decay = 1.0f - lr * weight_decay;
    float step = lr / bc1;
    float sbc2 = sqrtf(bc2);
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        float mi = m[i] + (g - m[i]) * (1.0f - beta1);
        float vi = v[i] * beta2 + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
#if defined(__has_builtin) && __has_builtin(__builtin_elementwise_sqrt)
        float denom = __builtin_elementwise_sqrt(vi) / sbc2 + eps;
#else
        float denom = sqrtf(vi) / sbc2 + eps;
#endif
        float p = params[i] * decay - step * mi / denom;
        params[i] = p;
        params_bf16[i] = bf16_round(p);
    }
}

// MARK: - CPU and OS support

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target("xsave")))
static uint64_t read_xcr0(void) { return _xgetbv(0); }
#endif

void gpt2k_bf16_probe(gpt2k_bf16_info *info) {
    memset(info, 0, sizeof *info);
    info->amx_permission = -1;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    // XCR0: SSE (1), AVX (2), opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7); XTILECFG (17), XTILEDATA (18)
    int os_avx512 = (xcr0 & 0xE6) == 0xE6;
    info->os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);
    if (__get_cpuid_max(0, 0) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    info->avx512 = f && dq && bw && vl && os_avx512;
    info->amx_bf16 = ((d >> 22) & 1) && ((d >> 24) & 1);   // AMX-BF16 and AMX-TILE
    __cpuid_count(7, 1, a, b, c, d);
    info->avx512_bf16 = (a >> 5) & 1;
#if defined(__linux__)
    if (info->amx_bf16 && info->os_amx) {
        // Linux keeps AMX state off until the process asks (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
        // a tile instruction before that raises SIGILL. The permission covers every thread.
        long rc = syscall(SYS_arch_prctl, 0x1023, 18);
        info->amx_permission = rc == 0 ? 0 : errno;
    }
#else
    if (info->amx_bf16 && info->os_amx) info->amx_permission = 0;
#endif
#endif
}

void gpt2k_cpu_brand(char out[49]) {
    memset(out, 0, 49);
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    unsigned r[12];
    if (__get_cpuid_max(0x80000000, 0) < 0x80000004) return;
    for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(out, r, 48);
#endif
}

// MARK: - Scratch

#include <pthread.h>

// Packing buffers are kept in a small process-wide free list rather than per thread: pool threads
// come and go (GCD retires idle workers), and a buffer per thread would leak or be faulted in
// again for every new thread (sgemm.c's fp32 kernels allocated per call: over 1000 page faults per
// GPT-2 124M step). A call takes one buffer and gives it back; an uncontended lock costs ~20 ns.
#define SCRATCH_SLOTS 64
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *scratch_free[SCRATCH_SLOTS];
static size_t scratch_free_cap[SCRATCH_SLOTS];
static int scratch_free_count;

static uint32_t *scratch_take(size_t words, size_t *capacity) {
    uint32_t *p = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&scratch_lock);
    if (scratch_free_count > 0) {
        scratch_free_count--;
        p = scratch_free[scratch_free_count];
        cap = scratch_free_cap[scratch_free_count];
    }
    pthread_mutex_unlock(&scratch_lock);
    if (p && cap < words) { free(p); p = NULL; }
    if (!p) {
        cap = words;
        p = aligned_alloc(64, (cap * 4 + 63) / 64 * 64);
        if (p) memset(p, 0, cap * 4);   // fault the pages in once, here
    }
    *capacity = cap;
    return p;
}

static void scratch_give(uint32_t *p, size_t capacity) {
    pthread_mutex_lock(&scratch_lock);
    if (scratch_free_count < SCRATCH_SLOTS) {
        scratch_free[scratch_free_count] = p;
        scratch_free_cap[scratch_free_count] = capacity;
        scratch_free_count++;
        p = NULL;
    }
    pthread_mutex_unlock(&scratch_lock);
    free(p);
}

float *gpt2k_pack_buffer_take(size_t floats, size_t *capacity) { return (float *)scratch_take(floats, capacity); }
void gpt2k_pack_buffer_give(float *p, size_t capacity) { scratch_give((uint32_t *)p, capacity); }

#if defined(__x86_64__) && defined(__clang__)
uint32_t *gpt2k_bf16_scratch_take(size_t words, size_t *capacity) { return scratch_take(words, capacity); }
void gpt2k_bf16_scratch_give(uint32_t *p, size_t capacity) { scratch_give(p, capacity); }

/// C (M,N) *= beta (beta == 0 overwrites, so NaNs in uninitialised C do not propagate).
static void scale_c(float *C, int ldc, int M, int N, float beta) {
    if (beta == 1.0f) return;
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)N);
        else for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

// MARK: - AVX512-BF16 kernel

#define MR 12
#define NR 32
#define KC 512    // k per packed block (256 pairs; measured 5-10% faster than 256: fewer passes over C)
#define MC 96     // multiple of MR
#define NC 1024   // multiple of NR (a packed B block is 1 MB)

/// C tile (h x w, ldc) += alpha * A panel (np pairs x 12 rows) . B panel (np pairs x 32 columns).
BF16_TARGET static void kernel_12x32(float *C, int ldc, int h, int w, float alpha, const uint32_t *a,
                                     const uint32_t *b, int np) {
    __m512 c[MR][2];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) { c[i][0] = _mm512_setzero_ps(); c[i][1] = _mm512_setzero_ps(); }
    for (int p = 0; p < np; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + (size_t)p * NR);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + (size_t)p * NR + 16);
        const uint32_t *ap = a + (size_t)p * MR;
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)ap[i]);   // (A[i][2p], A[i][2p+1]) in every lane
            c[i][0] = _mm512_dpbf16_ps(c[i][0], ai, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], ai, b1);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    __mmask16 m0 = w >= 16 ? 0xFFFF : (__mmask16)((1u << w) - 1);
    __mmask16 m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i >= h) break;
        float *row = C + (size_t)i * ldc;
        _mm512_mask_storeu_ps(row, m0, _mm512_fmadd_ps(va, c[i][0], _mm512_maskz_loadu_ps(m0, row)));
        if (m1) _mm512_mask_storeu_ps(row + 16, m1, _mm512_fmadd_ps(va, c[i][1], _mm512_maskz_loadu_ps(m1, row + 16)));
    }
}

BF16_TARGET static void gemm_avx512bf16(const bf16_operand *A, const bf16_operand *B, int M, int N, int K,
                                        float alpha, float *C, int ldc) {
    int npmax = (KC / 2 + 15) / 16 * 16;
    size_t bwords = (size_t)npmax * ((NC + NR - 1) / NR) * NR;
    size_t awords = (size_t)npmax * MC;
    size_t cap;
    uint32_t *buf = gpt2k_bf16_scratch_take(bwords + awords, &cap);
    if (!buf) abort();   // out of memory for about 1 MB of packing space
    uint32_t *Bp = buf, *Ap = buf + bwords;
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC;
            int np = (kc + 1) / 2, npad = (np + 15) / 16 * 16;
            bf16_pack_panels(Bp, B, (size_t)jc, nc, NR, (size_t)pc, (size_t)(pc + kc), npad);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                bf16_pack_panels(Ap, A, (size_t)ic, mc, MR, (size_t)pc, (size_t)(pc + kc), npad);
                for (int jr = 0; jr < nc; jr += NR) {
                    int w = nc - jr < NR ? nc - jr : NR;
                    const uint32_t *bp = Bp + (size_t)(jr / NR) * npad * NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        int h = mc - ir < MR ? mc - ir : MR;
                        kernel_12x32(C + (size_t)(ic + ir) * ldc + jc + jr, ldc, h, w, alpha,
                                     Ap + (size_t)(ir / MR) * npad * MR, bp, np);
                    }
                }
            }
        }
    }
    gpt2k_bf16_scratch_give(buf, cap);
}

#endif

// MARK: - Entry point

#if defined(__x86_64__) && defined(__clang__)
/// Whether `kernel` can run here (probed once; the AMX permission request happens then).
static int kernel_usable(int kernel) {
    static int state[3];   // 0 unknown, 1 usable, -1 not
    int s = __atomic_load_n(&state[kernel], __ATOMIC_ACQUIRE);
    if (s == 0) {
        gpt2k_bf16_info i;
        gpt2k_bf16_probe(&i);
        int avx = i.avx512 && i.avx512_bf16;   // the packers use AVX512-BF16 for both kernels
        int ok = kernel == GPT2K_BF16_AMX ? avx && i.amx_bf16 && i.os_amx && i.amx_permission == 0 : avx;
        s = ok ? 1 : -1;
        __atomic_store_n(&state[kernel], s, __ATOMIC_RELEASE);
    }
    return s == 1;
}
#endif

int gpt2k_gemm_bf16(int kernel, int transA, int transB, int M, int N, int K, float alpha,
                    const void *A, int a_bf16, int lda, const void *B, int b_bf16, int ldb,
                    float beta, float *C, int ldc) {
#if defined(__x86_64__) && defined(__clang__)
    if (kernel != GPT2K_BF16_AVX512 && kernel != GPT2K_BF16_AMX) return -1;
    if (!kernel_usable(kernel)) return -1;
    if (M <= 0 || N <= 0) return 0;
    scale_c(C, ldc, M, N, beta);
    if (K <= 0 || alpha == 0.0f) return 0;
    // op(A) row i = x, op(B) column j = x; see bf16_operand
    bf16_operand a = {A, a_bf16, !transA, (size_t)lda};
    bf16_operand b = {B, b_bf16, transB, (size_t)ldb};
    if (kernel == GPT2K_BF16_AMX) return gpt2k_gemm_amx_bf16(&a, &b, M, N, K, alpha, C, ldc);
    gemm_avx512bf16(&a, &b, M, N, K, alpha, C, ldc);
    return 0;
#else
    (void)kernel; (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)a_bf16;
    (void)lda; (void)B; (void)b_bf16; (void)ldb; (void)beta; (void)C; (void)ldc;
    return -1;
#endif
}
