// The CUDA emulator's stand-in for <cuda_bf16.h>: the bfloat16 type and the conversions the
// kernels use, with the same rounding (round to nearest even) as the device intrinsics.
// Test infrastructure only (see gpt2_cuda_emu.h).
#pragma once
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
    unsigned short x;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    __nv_bfloat16 h;
    if ((bits & 0x7fffffffu) > 0x7f800000u) {   // NaN stays a quiet NaN
        h.x = (unsigned short)((bits >> 16) | 0x40u);
        return h;
    }
    bits += 0x7fffu + ((bits >> 16) & 1u);
    h.x = (unsigned short)(bits >> 16);
    return h;
}

inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t bits = (uint32_t)h.x << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
    __nv_bfloat162 v;
    v.x = __float2bfloat16_rn(lo);
    v.y = __float2bfloat16_rn(hi);
    return v;
}

inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
