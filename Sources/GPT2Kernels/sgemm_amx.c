// AMX-BF16 GEMM (TDPBF16PS), reached through gpt2k_gemm_bf16's run-time dispatch on Xeons with
// AMX (Sapphire Rapids and later). A 32 x 32 block of C lives in four 16 x 16 fp32 tiles
// (tmm0-3); each 32-k step loads two 16-row A tiles (tmm4-5: 16 rows x 32 bf16) and two B tiles
// (tmm6-7: 16 k pairs x 16 columns, pair words as VDPBF16PS uses), then issues four TDPBF16PS.
// B panels are the AVX512 kernel's ([pair][32 columns] words; a tile is read with a 128-byte
// stride); A is packed tile by tile. The caller (sgemm_bf16.c) has scaled C by beta.
// Reference: Intel SDM vol. 2 (LDTILECFG, TILELOADD, TDPBF16PS), Intel's AMX intrinsics guide;
// Linux's Documentation/arch/x86/xstate.rst for the ARCH_REQ_XCOMP_PERM permission.
#include "GPT2Kernels.h"
#include "bf16_pack.h"

#if defined(__x86_64__) && defined(__clang__)
#if defined(GPT2K_AMX_EMULATE)
// Tests/native/amx_emulation.c compiles this file with the tile instructions emulated in C (the
// SDM's pseudo-code), to check the packing and tiling on CPUs without AMX.
#include "amx_emulate.h"
#define AMX_TARGET BF16_TARGET
#else
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#endif

/// LDTILECFG's 64-byte operand (palette 1).
typedef struct {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];   // bytes per row of each tile
    uint8_t rows[16];
} tile_config;

#define AKC 512    // k per packed block (256 pairs = 16 tile steps)
#define AMC 128    // rows of A per packed block (multiple of 32)
#define ANC 1024   // columns of B per packed block (multiple of 32)

/// Packs rows [i0, i0+mc) of op(A), k in [k0, kend), as 16-row strips (rounded up to an even
/// number of strips, extra rows 0): dst[(strip * npad/16 + q) * 256 + row * 16 + pair], so each
/// (strip, q) is one 1 KB tile with 64-byte rows.
AMX_TARGET static void pack_a_tiles(uint32_t *dst, const bf16_operand *A, size_t i0, int mc, size_t k0,
                                    size_t kend, int npad) {
    int strips = (mc + 31) / 32 * 2;
    __m512i r[16];
    for (int s = 0; s < strips; s++) {
        int n = mc - s * 16 < 16 ? mc - s * 16 : 16;
        uint32_t *d = dst + (size_t)s * npad * 16;
        for (int q = 0; q < npad / 16; q++) {
            if (n <= 0) {
                memset(d + (size_t)q * 256, 0, 1024);
                continue;
            }
            if (A->kcontig) {
                bf16_block_xmajor(r, A, i0 + (size_t)s * 16, n, k0 + 32 * (size_t)q, kend);
            } else {
                bf16_block_pmajor_direct(r, A, i0 + (size_t)s * 16, n, k0 + 32 * (size_t)q, kend);
                bf16_transpose16(r);
            }
            for (int x = 0; x < 16; x++) _mm512_storeu_si512(d + (size_t)q * 256 + x * 16, r[x]);
        }
    }
}

/// C (h x w, ldc) += alpha * acc (32 x 32, row-major).
AMX_TARGET static void add_block(float *C, int ldc, int h, int w, float alpha, const float *acc) {
    __m512 va = _mm512_set1_ps(alpha);
    __mmask16 m0 = w >= 16 ? 0xFFFF : (__mmask16)((1u << w) - 1);
    __mmask16 m1 = w >= 32 ? 0xFFFF : w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
    for (int i = 0; i < h; i++) {
        float *row = C + (size_t)i * ldc;
        const float *a = acc + i * 32;
        _mm512_mask_storeu_ps(row, m0, _mm512_fmadd_ps(va, _mm512_loadu_ps(a), _mm512_maskz_loadu_ps(m0, row)));
        if (m1) _mm512_mask_storeu_ps(row + 16, m1, _mm512_fmadd_ps(va, _mm512_loadu_ps(a + 16), _mm512_maskz_loadu_ps(m1, row + 16)));
    }
}

AMX_TARGET int gpt2k_gemm_amx_bf16(const bf16_operand *A, const bf16_operand *B, int M, int N, int K, float alpha,
                                   float *C, int ldc) {
    int npmax = AKC / 2;
    size_t bwords = (size_t)npmax * ANC, awords = (size_t)npmax * AMC;
    size_t cap;
    uint32_t *buf = gpt2k_bf16_scratch_take(bwords + awords, &cap);
    if (!buf) abort();   // out of memory for about 1.5 MB of packing space
    uint32_t *Bp = buf, *Ap = buf + bwords;
    float acc[32 * 32] __attribute__((aligned(64)));

    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    _tile_loadconfig(&cfg);

    for (int jc = 0; jc < N; jc += ANC) {
        int nc = N - jc < ANC ? N - jc : ANC;
        for (int pc = 0; pc < K; pc += AKC) {
            int kc = K - pc < AKC ? K - pc : AKC;
            int np = (kc + 1) / 2, npad = (np + 15) / 16 * 16, steps = npad / 16;
            bf16_pack_panels(Bp, B, (size_t)jc, nc, 32, (size_t)pc, (size_t)(pc + kc), npad);
            for (int ic = 0; ic < M; ic += AMC) {
                int mc = M - ic < AMC ? M - ic : AMC;
                pack_a_tiles(Ap, A, (size_t)ic, mc, (size_t)pc, (size_t)(pc + kc), npad);
                for (int jr = 0; jr < nc; jr += 32) {
                    int w = nc - jr < 32 ? nc - jr : 32;
                    const uint32_t *bp = Bp + (size_t)(jr / 32) * npad * 32;
                    for (int ir = 0; ir < mc; ir += 32) {
                        int h = mc - ir < 32 ? mc - ir : 32;
                        const uint32_t *a0 = Ap + (size_t)(ir / 16) * npad * 16, *a1 = a0 + (size_t)npad * 16;
                        _tile_zero(0);
                        _tile_zero(1);
                        _tile_zero(2);
                        _tile_zero(3);
                        for (int q = 0; q < steps; q++) {
                            _tile_loadd(4, a0 + (size_t)q * 256, 64);
                            _tile_loadd(5, a1 + (size_t)q * 256, 64);
                            _tile_loadd(6, bp + (size_t)q * 16 * 32, 128);        // columns 0-15
                            _tile_loadd(7, bp + (size_t)q * 16 * 32 + 16, 128);   // columns 16-31
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                        _tile_stored(0, acc, 128);
                        _tile_stored(1, acc + 16, 128);
                        _tile_stored(2, acc + 16 * 32, 128);
                        _tile_stored(3, acc + 16 * 32 + 16, 128);
                        add_block(C + (size_t)(ic + ir) * ldc + jc + jr, ldc, h, w, alpha, acc);
                    }
                }
            }
        }
    }
    _tile_release();   // back to the init state: smaller context switches for this thread
    gpt2k_bf16_scratch_give(buf, cap);
    return 0;
}
#endif
