// Hot elementwise loops in C: clang vectorises them for AVX-512/AVX2 with target_clones,
// which Swift cannot do portably (no function multiversioning in Swift).
// Gradient convention (as llm.c): parameter grads accumulate (+=); activation grads are written
// (=), except the residual stream (layernorm dinp), which accumulates.
// Reference: https://github.com/karpathy/llm.c/blob/master/train_gpt2.c
#include "GPT2Kernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

// MARK: - Vectorisable math helpers

// sqrtf may set errno (-fmath-errno is the Linux default), which blocks vectorisation.
#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_sqrt)
#define VSQRTF(x) __builtin_elementwise_sqrt(x)
#endif
#endif
#ifndef VSQRTF
#define VSQRTF(x) sqrtf(x)
#endif

/// expf for x in float range, branch-free so loops calling it vectorise (cephes polynomial,
/// Cody-Waite reduction; max relative error ~2 ulp). Inputs below -87.3 give ~1e-38, not 0.
static inline float vexpf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.7f ? 88.7f : x;
    float t = x * 1.44269504088896341f;
    int n = (int)(t + (t >= 0.0f ? 0.5f : -0.5f));   // round to nearest (truncating convert vectorises)
    float fn = (float)n;
    float r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union { int i; float f; } s;
    s.i = (n + 127) << 23;
    return y * s.f;
}

/// tanh(u) = 1 - 2 / (exp(2u) + 1); exact limits at +-inf thanks to vexpf's clamping.
static inline float vtanhf(float u) {
    return 1.0f - 2.0f / (vexpf(2.0f * u) + 1.0f);
}

/// max(x[0..n)); 16 independent lanes so the loop vectorises (a plain float max reduction does
/// not without -ffast-math, because of NaN and signed-zero semantics).
static inline float vmaxf(const float *x, size_t n) {
    float m[16];
    for (int k = 0; k < 16; k++) m[k] = -INFINITY;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    float r = -INFINITY;
    for (int k = 0; k < 16; k++) r = m[k] > r ? m[k] : r;
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

// MARK: - Encoder

CLONES
void gpt2k_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                           size_t row0, size_t N, size_t T, size_t C) {
    for (size_t n = 0; n < N; n++) {
        const float *we = wte + (size_t)inp[n] * C;
        const float *pe = wpe + ((row0 + n) % T) * C;
        float *o = out + n * C;
        for (size_t c = 0; c < C; c++) o[c] = we[c] + pe[c];
    }
}

CLONES
void gpt2k_encoder_backward_wte(float *dwte, const float *dout, const int32_t *inp, size_t N, size_t C,
                                int32_t vlo, int32_t vhi) {
    for (size_t n = 0; n < N; n++) {
        int32_t tok = inp[n];
        if (tok < vlo || tok >= vhi) continue;
        float *dw = dwte + (size_t)tok * C;
        const float *d = dout + n * C;
        for (size_t c = 0; c < C; c++) dw[c] += d[c];
    }
}

CLONES
void gpt2k_encoder_backward_wpe(float *dwpe, const float *dout, size_t B, size_t T, size_t C,
                                size_t t0, size_t t1) {
    for (size_t b = 0; b < B; b++) {
        for (size_t t = t0; t < t1; t++) {
            float *dw = dwpe + t * C;
            const float *d = dout + (b * T + t) * C;
            for (size_t c = 0; c < C; c++) dw[c] += d[c];
        }
    }
}

// MARK: - LayerNorm

CLONES
void gpt2k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, size_t N, size_t C) {
#pragma clang fp reassociate(on)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float s = 0.0f;
        for (size_t c = 0; c < C; c++) s += x[c];
        float m = s / (float)C;
        float v = 0.0f;   // two-pass variance: biased, as torch.nn.LayerNorm
        for (size_t c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        float rs = 1.0f / sqrtf(v / (float)C + 1e-5f);
        float *o = out + n * C;
        for (size_t c = 0; c < C; c++) o[c] = (x[c] - m) * rs * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = rs;
    }
}

CLONES
void gpt2k_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, size_t N, size_t C) {
#pragma clang fp reassociate(on)
    for (size_t n = 0; n < N; n++) {
        const float *d = dout + n * C, *x = inp + n * C;
        float *di = dinp + n * C;
        float m = mean[n], rs = rstd[n];
        // two reductions: mean(dnorm) and mean(dnorm * norm), dnorm = weight * dout
        float dmean = 0.0f, dnx = 0.0f;
        for (size_t c = 0; c < C; c++) {
            float nx = (x[c] - m) * rs;
            float dn = weight[c] * d[c];
            dmean += dn;
            dnx += dn * nx;
        }
        dmean /= (float)C;
        dnx /= (float)C;
        for (size_t c = 0; c < C; c++) {
            float nx = (x[c] - m) * rs;
            float dn = weight[c] * d[c];
            dbias[c] += d[c];
            dweight[c] += nx * d[c];
            di[c] += (dn - dmean - nx * dnx) * rs;
        }
    }
}

// MARK: - GELU (tanh approximation)

#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)

CLONES
void gpt2k_gelu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + vtanhf(u));
    }
}

CLONES
void gpt2k_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = vtanhf(u);
        float sech2 = 1.0f - th * th;
        float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = g * dout[i];
    }
}

// MARK: - Bias / residual

CLONES
void gpt2k_add_bias_residual(float *out, const float *residual, const float *bias, size_t N, size_t OC) {
    for (size_t n = 0; n < N; n++) {
        float *o = out + n * OC;
        if (residual) {
            const float *r = residual + n * OC;
            for (size_t c = 0; c < OC; c++) o[c] += bias[c] + r[c];
        } else {
            for (size_t c = 0; c < OC; c++) o[c] += bias[c];
        }
    }
}

CLONES
void gpt2k_bias_backward(float *dbias, const float *dout, size_t N, size_t OC, size_t o0, size_t o1) {
    // Sum rows into the column range; rows are walked in order so each row slice streams.
    for (size_t n = 0; n < N; n++) {
        const float *d = dout + n * OC;
        for (size_t o = o0; o < o1; o++) dbias[o] += d[o];
    }
}

CLONES
void gpt2k_residual_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

CLONES
void gpt2k_residual_backward(float *da, float *db, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) { da[i] += dout[i]; db[i] += dout[i]; }
}

// MARK: - Softmax / cross-entropy

CLONES
void gpt2k_crossentropy_forward(float *losses, float *lse, const float *logits, const int32_t *targets,
                                size_t N, size_t V, size_t Vp) {
#pragma clang fp reassociate(on)
    for (size_t n = 0; n < N; n++) {
        const float *l = logits + n * Vp;
        float mx = vmaxf(l, V);
        float s = 0.0f;
        for (size_t v = 0; v < V; v++) s += vexpf(l[v] - mx);
        float z = mx + logf(s);
        lse[n] = z;
        if (targets && losses) losses[n] = z - l[targets[n]];
    }
}

CLONES
void gpt2k_crossentropy_softmax_backward(float *logits, const float *lse, const int32_t *targets,
                                         float dloss, size_t N, size_t V, size_t Vp) {
    for (size_t n = 0; n < N; n++) {
        float *l = logits + n * Vp;
        float z = lse[n];
        for (size_t v = 0; v < V; v++) l[v] = vexpf(l[v] - z) * dloss;
        l[targets[n]] -= dloss;
        for (size_t v = V; v < Vp; v++) l[v] = 0.0f;   // padded columns never get gradient
    }
}

CLONES
void gpt2k_softmax(float *probs, const float *logits, size_t V, float temperature) {
#pragma clang fp reassociate(on)
    float inv = 1.0f / temperature;
    float mx = vmaxf(logits, V);
    float s = 0.0f;
    for (size_t v = 0; v < V; v++) { float e = vexpf((logits[v] - mx) * inv); probs[v] = e; s += e; }
    float is = 1.0f / s;
    for (size_t v = 0; v < V; v++) probs[v] *= is;
}

// MARK: - Attention rows

CLONES
void gpt2k_attn_softmax_rows(float *S, size_t ld, size_t nr, size_t row0, float scale, float *lse) {
#pragma clang fp reassociate(on)
    size_t ncols = row0 + nr;
    for (size_t i = 0; i < nr; i++) {
        float *s = S + i * ld;
        size_t len = row0 + i + 1;   // causal: keys 0..row0+i
        float mx = vmaxf(s, len) * scale;   // scale > 0, so max(scale*s) = scale*max(s)
        float sum = 0.0f;
        for (size_t j = 0; j < len; j++) { float e = vexpf(s[j] * scale - mx); s[j] = e; sum += e; }
        float inv = 1.0f / sum;
        for (size_t j = 0; j < len; j++) s[j] *= inv;
        for (size_t j = len; j < ncols; j++) s[j] = 0.0f;
        lse[i] = mx + logf(sum);
    }
}

CLONES
void gpt2k_attn_backward_rows(float *S, float *dP, size_t ld, size_t nr, size_t row0, float scale,
                              const float *lse, const float *D) {
    size_t ncols = row0 + nr;
    for (size_t i = 0; i < nr; i++) {
        float *s = S + i * ld, *dp = dP + i * ld;
        size_t len = row0 + i + 1;
        float z = lse[i], d = D[i];
        for (size_t j = 0; j < len; j++) {
            float p = vexpf(s[j] * scale - z);
            s[j] = p;
            dp[j] = p * (dp[j] - d) * scale;
        }
        for (size_t j = len; j < ncols; j++) { s[j] = 0.0f; dp[j] = 0.0f; }
    }
}

CLONES
void gpt2k_rowdot(float *out, const float *a, size_t lda, const float *b, size_t ldb, size_t nr, size_t n) {
#pragma clang fp reassociate(on)
    for (size_t i = 0; i < nr; i++) {
        const float *x = a + i * lda, *y = b + i * ldb;
        float s = 0.0f;
        for (size_t j = 0; j < n; j++) s += x[j] * y[j];
        out[i] = s;
    }
}

// MARK: - Reductions and optimizer

CLONES
double gpt2k_sumsq(const float *x, size_t n) {
#pragma clang fp reassociate(on)
    // Blocks of 4096 summed in float (vectorised), accumulated in double to keep 124M-element sums exact enough.
    double total = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += 4096) {
        size_t i1 = i0 + 4096 < n ? i0 + 4096 : n;
        float s = 0.0f;
        for (size_t i = i0; i < i1; i++) s += x[i] * x[i];
        total += (double)s;
    }
    return total;
}

CLONES
void gpt2k_scale(float *x, float s, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

CLONES
void gpt2k_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2,
                 float grad_scale) {
    // Same operation order as torch.optim.AdamW (single-tensor path): decay, moments, then
    // p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
    float decay = 1.0f - lr * weight_decay;
    float step = lr / bc1;
    float sbc2 = sqrtf(bc2);
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;   // folds gradient clipping into this pass
        float mi = m[i] + (g - m[i]) * (1.0f - beta1);   // torch: m.lerp_(g, 1 - beta1)
        float vi = v[i] * beta2 + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = VSQRTF(vi) / sbc2 + eps;
        params[i] = params[i] * decay - step * mi / denom;
    }
}

// MARK: - CPU features

int gpt2k_cpu_level(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

// MARK: - Transpose

/// dst (cols, rows) = srcᵀ for src (rows, cols), destination rows [c0, c1): 32 x 32 tiles so both
/// sides stay in cache lines (a naive loop strides one side by a whole row per element).
void gpt2k_transpose(float *dst, const float *src, size_t rows, size_t cols, size_t c0, size_t c1) {
    enum { TILE = 32 };
    for (size_t cb = c0; cb < c1; cb += TILE) {
        size_t ce = cb + TILE < c1 ? cb + TILE : c1;
        for (size_t rb = 0; rb < rows; rb += TILE) {
            size_t re = rb + TILE < rows ? rb + TILE : rows;
            for (size_t c = cb; c < ce; c++)
                for (size_t r = rb; r < re; r++) dst[c * rows + r] = src[r * cols + c];
        }
    }
}
