// Private to sgemm_bf16.c and sgemm_amx.c: operand description and panel packing for the bf16
// GEMMs. Both instruction sets multiply K in pairs, so every packed panel is made of 32-bit
// "pair" words: the bf16 of (x, k = 2p) in the low half and (x, 2p + 1) in the high half, with x a
// row of op(A) or a column of op(B). fp32 operands are rounded to bf16 (nearest even, denormals to
// zero, as VCVTNEPS2BF16) while packing; bf16 operands are copied. Out-of-range x and k read as 0.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

/// One GEMM operand as the packers see it: element (x, k) lives at p[x*ld + k] when kcontig,
/// else at p[k*ld + x]; elements are float, or bf16 bits when bf16 != 0.
typedef struct {
    const void *p;
    int bf16;
    int kcontig;
    size_t ld;
} bf16_operand;

/// The AMX kernel (sgemm_amx.c): C += alpha * op(A) op(B); 0, or -1 when tiles are unavailable.
int gpt2k_gemm_amx_bf16(const bf16_operand *A, const bf16_operand *B, int M, int N, int K, float alpha,
                        float *C, int ldc);

/// Packing space of at least `words` words from a process-wide free list (no allocation or page
/// fault per call once warm); give it back with its capacity when done.
uint32_t *gpt2k_bf16_scratch_take(size_t words, size_t *capacity);
void gpt2k_bf16_scratch_give(uint32_t *p, size_t capacity);

/// Rows x0..x0+15 (x >= nx reads 0) of 16 pairs starting at k0 (k >= kend reads 0), x-major:
/// r[x] holds the 16 pair words of row x.
BF16_TARGET static inline void bf16_block_xmajor(__m512i r[16], const bf16_operand *op, size_t x0, int nx,
                                                 size_t k0, size_t kend) {
    // kcontig only: 32 consecutive k of one row
    size_t avail = kend > k0 ? kend - k0 : 0;
    __mmask32 km = avail >= 32 ? 0xFFFFFFFFu : (__mmask32)((1ull << avail) - 1);
    __mmask16 klo = (__mmask16)km, khi = (__mmask16)(km >> 16);
    for (int x = 0; x < 16; x++) {
        if (x >= nx || avail == 0) { r[x] = _mm512_setzero_si512(); continue; }
        if (op->bf16) {
            const uint16_t *s = (const uint16_t *)op->p + (x0 + x) * op->ld + k0;
            r[x] = _mm512_maskz_loadu_epi16(km, s);
        } else {
            const float *s = (const float *)op->p + (x0 + x) * op->ld + k0;
            __m512 lo = _mm512_maskz_loadu_ps(klo, s), hi = _mm512_maskz_loadu_ps(khi, s + 16);
            r[x] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);   // words k0..k0+31 in order
        }
    }
}

/// Same block, pair-major: r[p] holds pair p of the 16 rows x0..x0+15.
BF16_TARGET static inline void bf16_block_pmajor_direct(__m512i r[16], const bf16_operand *op, size_t x0, int nx,
                                                        size_t k0, size_t kend) {
    // !kcontig only: rows k of the source are contiguous in x
    __mmask16 xm = nx >= 16 ? 0xFFFF : (__mmask16)((1u << nx) - 1);
    for (int p = 0; p < 16; p++) {
        size_t ke = k0 + 2 * (size_t)p, ko = ke + 1;
        __m512i e = _mm512_setzero_si512(), o = _mm512_setzero_si512();
        if (op->bf16) {
            const uint16_t *s = (const uint16_t *)op->p + x0;
            if (ke < kend) e = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(xm, s + ke * op->ld));
            if (ko < kend) o = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(xm, s + ko * op->ld));
        } else {
            const float *s = (const float *)op->p + x0;
            if (ke < kend) e = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(xm, s + ke * op->ld)));
            if (ko < kend) o = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(xm, s + ko * op->ld)));
        }
        r[p] = _mm512_or_si512(e, _mm512_slli_epi32(o, 16));
    }
}

/// In-register transpose of a 16x16 matrix of 32-bit words (r[i] = row i).
BF16_TARGET static inline void bf16_transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {             // 2x2 blocks of words inside each 128-bit lane
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {             // 4x4 blocks inside each 128-bit lane
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; i++) {                 // exchange 128-bit lanes between row groups
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    }
}

/// Pair-major block from any operand.
BF16_TARGET static inline void bf16_block_pmajor(__m512i r[16], const bf16_operand *op, size_t x0, int nx,
                                                 size_t k0, size_t kend) {
    if (op->kcontig) {
        bf16_block_xmajor(r, op, x0, nx, k0, kend);
        bf16_transpose16(r);
    } else {
        bf16_block_pmajor_direct(r, op, x0, nx, k0, kend);
    }
}

/// Packs x in [x0, x0+nx) and k in [k0, kend) into width-`W` panels (W a multiple of 16, or 12):
/// dst[(panel * npad + p) * W + xx] for panel = (x - x0) / W, with npad pairs per panel
/// (a multiple of 16; pairs beyond kend are 0).
BF16_TARGET static inline void bf16_pack_panels(uint32_t *dst, const bf16_operand *op, size_t x0, int nx, int W,
                                                size_t k0, size_t kend, int npad) {
    __m512i r[16];
    for (int panel = 0; panel * W < nx; panel++) {
        uint32_t *d = dst + (size_t)panel * npad * W;
        for (int sub = 0; sub < W; sub += 16) {   // 16 columns of the panel at a time
            int lanes = W - sub < 16 ? W - sub : 16;
            int xs = panel * W + sub;
            int n = nx - xs < lanes ? nx - xs : lanes;
            __mmask16 sm = lanes == 16 ? 0xFFFF : (__mmask16)((1u << lanes) - 1);
            for (int p0 = 0; p0 < npad; p0 += 16) {
                if (n > 0) bf16_block_pmajor(r, op, x0 + xs, n, k0 + 2 * (size_t)p0, kend);
                for (int p = 0; p < 16; p++) {
                    __m512i v = n > 0 ? r[p] : _mm512_setzero_si512();
                    _mm512_mask_storeu_epi32(d + (size_t)(p0 + p) * W + sub, sm, v);
                }
            }
        }
    }
}
#endif
