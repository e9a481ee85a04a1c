// Matrix-vector products for generation (few rows): see gemv.c.
#pragma once
#include <stddef.h>

/// out[r, o] = bias[o] (or 0) + dot(weight[o, :], inp[r, :]) for r < R, o in [o0, o1).
/// weight (OC, C) row-major; inp (R, C); out (R, OC). R <= 8.
void gpt2k_gemv_rows(float *out, const float *inp, const float *weight, const float *bias,
                     size_t R, size_t C, size_t OC, size_t o0, size_t o1);

/// Approximate out[r, o] = dot(weight_bf16[o, :], inp[r, :]) with bf16 weights (fp32 accumulation).
void gpt2k_gemv_bf16_rows(float *out, const float *inp, const unsigned short *weight,
                          size_t R, size_t C, size_t OC, size_t o0, size_t o1);

/// weight rows [o0, o1) of (OC, C) fp32 -> bf16 (round to nearest even), and their L2 norms.
void gpt2k_to_bf16_rows(unsigned short *out, float *norms, const float *weight, size_t C, size_t o0, size_t o1);
