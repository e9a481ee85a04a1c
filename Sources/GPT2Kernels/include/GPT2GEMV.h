// Matrix-vector products for generation (few rows): see gemv.c.
#pragma once
#include <stddef.h>

/// out[r, o] = bias[o] (or 0) + dot(weight[o, :], inp[r, :]) for r < R, o in [o0, o1).
/// weight (OC, C) row-major; inp (R, C); out (R, OC). R <= 8.
void gpt2k_gemv_rows(float *out, const float *inp, const float *weight, const float *bias,
                     size_t R, size_t C, size_t OC, size_t o0, size_t o1);
