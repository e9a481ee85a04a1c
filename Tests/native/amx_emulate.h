// AMX tile instructions emulated in C from the Intel SDM's pseudo-code (LDTILECFG, TILEZERO,
// TILELOADD, TDPBF16PS, TILESTORED, TILERELEASE), so Sources/GPT2Kernels/sgemm_amx.c's packing
// and tiling can be checked on a CPU without AMX. Only for Tests/native/amx_emulation.c.
#pragma once
#include <stdint.h>
#include <string.h>

static struct { uint8_t rows; uint16_t colsb; uint8_t data[16][64]; } emu_tiles[8];

static inline float emu_bf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

static inline void emu_loadconfig(const void *cfg) {
    const uint8_t *c = (const uint8_t *)cfg;
    for (int t = 0; t < 8; t++) {
        memcpy(&emu_tiles[t].colsb, c + 16 + 2 * t, 2);
        emu_tiles[t].rows = c[48 + t];
        memset(emu_tiles[t].data, 0, sizeof emu_tiles[t].data);
    }
}
static inline void emu_zero(int t) { memset(emu_tiles[t].data, 0, sizeof emu_tiles[t].data); }
static inline void emu_load(int t, const void *base, long stride) {
    for (int r = 0; r < emu_tiles[t].rows; r++) memcpy(emu_tiles[t].data[r], (const uint8_t *)base + r * stride, emu_tiles[t].colsb);
}
static inline void emu_store(int t, void *base, long stride) {
    for (int r = 0; r < emu_tiles[t].rows; r++) memcpy((uint8_t *)base + r * stride, emu_tiles[t].data[r], emu_tiles[t].colsb);
}
/// TDPBF16PS: dst.row[m].fp32[n] += a.row[m].bf16[2k] * b.row[k].bf16[2n] + (2k+1, 2n+1 likewise).
static inline void emu_dpbf16ps(int d, int a, int b) {
    for (int m = 0; m < emu_tiles[d].rows; m++) {
        float acc[16];
        memcpy(acc, emu_tiles[d].data[m], 64);
        for (int k = 0; k < emu_tiles[a].colsb / 4; k++) {
            for (int n = 0; n < emu_tiles[d].colsb / 4; n++) {
                uint16_t a0, a1, b0, b1;
                memcpy(&a0, emu_tiles[a].data[m] + 4 * k, 2); memcpy(&a1, emu_tiles[a].data[m] + 4 * k + 2, 2);
                memcpy(&b0, emu_tiles[b].data[k] + 4 * n, 2); memcpy(&b1, emu_tiles[b].data[k] + 4 * n + 2, 2);
                acc[n] += emu_bf16(a0) * emu_bf16(b0);
                acc[n] += emu_bf16(a1) * emu_bf16(b1);
            }
        }
        memcpy(emu_tiles[d].data[m], acc, 64);
    }
}
#undef _tile_loadconfig
#undef _tile_zero
#undef _tile_loadd
#undef _tile_stored
#undef _tile_dpbf16ps
#undef _tile_release
#define _tile_loadconfig(cfg) emu_loadconfig(cfg)
#define _tile_zero(t) emu_zero(t)
#define _tile_loadd(t, base, stride) emu_load(t, base, stride)
#define _tile_stored(t, base, stride) emu_store(t, base, stride)
#define _tile_dpbf16ps(d, a, b) emu_dpbf16ps(d, a, b)
#define _tile_release() ((void)0)
