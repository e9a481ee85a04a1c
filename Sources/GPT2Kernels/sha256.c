// SHA-256 (FIPS 180-4), used to check files downloaded from the Hugging Face hub against the
// sha256 the hub lists for LFS files. x86-64 CPUs with the SHA extensions (Intel since Ice Lake /
// Goldmont, AMD since Zen) run the sha256rnds2/msg1/msg2 instructions (about 2 GB/s per core);
// others take the portable C rounds. Reference: https://csrc.nist.gov/pubs/fips/180-4/upd1/final
// ("abc" -> ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad).
#include "GPT2Kernels.h"
#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// MARK: - Portable rounds

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void blocksPortable(uint32_t state[8], const uint8_t *data, size_t blocks) {
    for (; blocks; blocks--, data += 64) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++)
            w[t] = (uint32_t)data[4 * t] << 24 | (uint32_t)data[4 * t + 1] << 16 | (uint32_t)data[4 * t + 2] << 8 | data[4 * t + 3];
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ror(w[t - 15], 7) ^ ror(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ror(w[t - 2], 17) ^ ror(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
            uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
    }
}

// MARK: - SHA extensions (x86-64)

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <cpuid.h>
#include <immintrin.h>

// The instructions keep the state as ABEF / CDGH register pairs; each sha256rnds2 does two rounds
// with the low two words of its message operand (W + K), so four words feed two calls.
__attribute__((target("sha,sse4.1,ssse3")))
static void blocksSHANI(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i byteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xB1);   // CDAB
    __m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1B);  // EFGH
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);      // ABEF
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);          // CDGH

// Four rounds with schedule words m (group g): W + K, then two sha256rnds2.
#define SHA_ROUNDS(m, g) do { \
        __m128i wk = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
        state1 = _mm_sha256rnds2_epu32(state1, state0, wk); \
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(wk, 0x0E)); \
    } while (0)
// w0 (W[t-16..]) becomes the next group: W[t] = W[t-16] + s0(W[t-15]) (msg1) + W[t-7] (alignr of
// the groups w3, w2) + s1(W[t-2]) (msg2 with w3).
#define SHA_SCHEDULE(w0, w1, w2, w3) \
    w0 = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)), w3)

    for (; blocks; blocks--, data += 64) {
        __m128i abef = state0, cdgh = state1;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), byteSwap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), byteSwap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), byteSwap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), byteSwap);
        SHA_ROUNDS(m0, 0); SHA_ROUNDS(m1, 1); SHA_ROUNDS(m2, 2); SHA_ROUNDS(m3, 3);
        for (int g = 4; g < 16; g += 4) {
            SHA_SCHEDULE(m0, m1, m2, m3); SHA_ROUNDS(m0, g);
            SHA_SCHEDULE(m1, m2, m3, m0); SHA_ROUNDS(m1, g + 1);
            SHA_SCHEDULE(m2, m3, m0, m1); SHA_ROUNDS(m2, g + 2);
            SHA_SCHEDULE(m3, m0, m1, m2); SHA_ROUNDS(m3, g + 3);
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
    }
#undef SHA_ROUNDS
#undef SHA_SCHEDULE

    tmp = _mm_shuffle_epi32(state0, 0x1B);        // FEBA
    state1 = _mm_shuffle_epi32(state1, 0xB1);     // DCHG
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);  // DCBA
    state1 = _mm_alignr_epi8(state1, tmp, 8);     // HGFE
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

static int hasSHANI(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return sse41 && ssse3 && ((b >> 29) & 1);
}
#endif

typedef void (*BlockFunction)(uint32_t state[8], const uint8_t *data, size_t blocks);
static BlockFunction chosen;
static int forcePortable;

static BlockFunction blockFunction(void) {
    BlockFunction f = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (f) return f;
    f = blocksPortable;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (!forcePortable && hasSHANI()) f = blocksSHANI;
#endif
    __atomic_store_n(&chosen, f, __ATOMIC_RELEASE);   // a race stores the same value
    return f;
}

// MARK: - Streaming interface

void gpt2k_sha256_init(gpt2k_sha256_ctx *ctx) {
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->state, initial, sizeof initial);
    ctx->length = 0;
    ctx->buffered = 0;
}

void gpt2k_sha256_update(gpt2k_sha256_ctx *ctx, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    BlockFunction blocks = blockFunction();
    ctx->length += n;
    if (ctx->buffered) {
        size_t take = 64 - ctx->buffered < n ? 64 - ctx->buffered : n;
        memcpy(ctx->buffer + ctx->buffered, p, take);
        ctx->buffered += (uint32_t)take; p += take; n -= take;
        if (ctx->buffered < 64) return;
        blocks(ctx->state, ctx->buffer, 1);
        ctx->buffered = 0;
    }
    if (n >= 64) {
        blocks(ctx->state, p, n / 64);
        p += n & ~(size_t)63; n &= 63;
    }
    memcpy(ctx->buffer, p, n);
    ctx->buffered = (uint32_t)n;
}

void gpt2k_sha256_final(gpt2k_sha256_ctx *ctx, uint8_t digest[32]) {
    uint64_t bits = ctx->length * 8;
    uint8_t pad[72] = {0x80};
    // 0x80, zeros up to 56 mod 64, then the bit length big-endian
    size_t padLength = (ctx->buffered < 56 ? 56 : 120) - ctx->buffered;
    for (int i = 0; i < 8; i++) pad[padLength + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t length = ctx->length;
    gpt2k_sha256_update(ctx, pad, padLength + 8);
    ctx->length = length;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(ctx->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)ctx->state[i];
    }
}

int gpt2k_sha256_accelerated(void) { return blockFunction() != blocksPortable; }

void gpt2k_sha256_force_portable(int portable) {
    forcePortable = portable;
    __atomic_store_n(&chosen, (BlockFunction)0, __ATOMIC_RELEASE);
}
