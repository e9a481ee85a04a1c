// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by TFRecord framing
// (TensorBoard event files) and our per-tensor checkpoint checksums. SSE4.2's crc32 instruction
// on x86-64 (three interleaved streams hide its 3-cycle latency), else slicing-by-8 tables.
// Reference: https://github.com/google/crc32c (the same function; "123456789" -> 0xE3069283).
#include "GPT2Kernels.h"
#include <string.h>

static uint32_t table[8][256];
static int tableReady;

static void buildTable(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int s = 1; s < 8; s++) table[s][i] = (table[s - 1][i] >> 8) ^ table[0][table[s - 1][i] & 0xFF];
    __atomic_store_n(&tableReady, 1, __ATOMIC_RELEASE);
}

static uint32_t crcSoftware(uint32_t crc, const uint8_t *p, size_t n) {
    if (!__atomic_load_n(&tableReady, __ATOMIC_ACQUIRE)) buildTable();   // idempotent: a race writes the same values
    while (n && ((uintptr_t)p & 7)) { crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF]; n--; }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^ table[4][(w >> 24) & 0xFF]
            ^ table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^ table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
        p += 8; n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <nmmintrin.h>

enum { LANE = 8192 };
static uint32_t shiftTable[4][256];   // register -> register after LANE zero bytes (linear in the bits)
static int shiftReady;

static void buildShift(void) {
    if (!__atomic_load_n(&tableReady, __ATOMIC_ACQUIRE)) buildTable();
    uint32_t basis[32];
    for (int i = 0; i < 32; i++) {
        uint32_t c = 1u << i;
        for (int k = 0; k < LANE; k++) c = (c >> 8) ^ table[0][c & 0xFF];
        basis[i] = c;
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++) if (b & (1u << j)) v ^= basis[8 * k + j];
            shiftTable[k][b] = v;
        }
    __atomic_store_n(&shiftReady, 1, __ATOMIC_RELEASE);
}

/// The register after LANE zero bytes: used to combine the three interleaved streams.
static inline uint32_t shiftLane(uint32_t c) {
    return shiftTable[0][c & 0xFF] ^ shiftTable[1][(c >> 8) & 0xFF] ^ shiftTable[2][(c >> 16) & 0xFF] ^ shiftTable[3][c >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crcHardware(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); n--; }
    // Three streams over consecutive thirds of each 24 KiB block, combined by shifting the first
    // two past the bytes that follow them.
    if (n >= 3 * LANE && !__atomic_load_n(&shiftReady, __ATOMIC_ACQUIRE)) buildShift();
    while (n >= 3 * LANE) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *p1 = p + LANE, *p2 = p + 2 * LANE;
        for (size_t i = 0; i < LANE; i += 8) {
            uint64_t w0, w1, w2;
            memcpy(&w0, p + i, 8); memcpy(&w1, p1 + i, 8); memcpy(&w2, p2 + i, 8);
            c = _mm_crc32_u64(c, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
        }
        // crc(A||B) = shift(crc(A), |B|) ^ crc0(B), with crc0 started from 0 (no pre/post inversion here).
        c = shiftLane((uint32_t)c) ^ (uint32_t)c1;
        c = shiftLane((uint32_t)c) ^ (uint32_t)c2;
        p += 3 * LANE; n -= 3 * LANE;
    }
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; n -= 8; }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

uint32_t gpt2k_crc32c_update(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = ~crc;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (__builtin_cpu_supports("sse4.2")) return ~crcHardware(c, p, n);
#endif
    return ~crcSoftware(c, p, n);
}
