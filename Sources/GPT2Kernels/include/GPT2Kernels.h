// Portable vectorised C kernels (hot loops) called from Swift. See kernels.c and sgemm.c.
// Each function works on a contiguous range of rows; the Swift side (Sources/GPT2/Kernels)
// splits work across threads and calls these on disjoint slices.
// Legend: N = rows (B*T or a slice of it), C = channels, V = real vocab, Vp = padded vocab.
// Conventions as llm.c: parameter gradients accumulate (+=), activation gradients are written (=)
// unless a comment says otherwise.
#pragma once
#include <stddef.h>
#include <stdint.h>

// MARK: - Encoder
/// out (N,C) = wte[inp[n]] + wpe[pos[n]] where pos[n] = (row0 + n) % T.
void gpt2k_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                           size_t row0, size_t N, size_t T, size_t C);
/// dwte[inp[n]] += dout[n] for rows whose token lies in [vlo, vhi) (threads own disjoint vocab ranges).
void gpt2k_encoder_backward_wte(float *dwte, const float *dout, const int32_t *inp, size_t N, size_t C,
                                int32_t vlo, int32_t vhi);
/// dwpe[t] += sum_b dout[b, t] for t in [t0, t1).
void gpt2k_encoder_backward_wpe(float *dwpe, const float *dout, size_t B, size_t T, size_t C,
                                size_t t0, size_t t1);

// MARK: - LayerNorm (eps 1e-5)
void gpt2k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, size_t N, size_t C);
/// dinp += ..., dweight += ..., dbias += ... (dinp accumulates: it is the residual stream).
void gpt2k_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, size_t N, size_t C);

// MARK: - GELU (tanh approximation, "gelu_new")
void gpt2k_gelu_forward(float *out, const float *inp, size_t n);
/// dinp = gelu'(inp) * dout (dinp may alias dout).
void gpt2k_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

// MARK: - Bias / residual
/// out (N,OC) += bias (OC) [+ residual (N,OC) when residual != NULL].
void gpt2k_add_bias_residual(float *out, const float *residual, const float *bias, size_t N, size_t OC);
/// dbias[o] += sum_n dout[n, o] for o in [o0, o1).
void gpt2k_bias_backward(float *dbias, const float *dout, size_t N, size_t OC, size_t o0, size_t o1);
/// out = a + b.
void gpt2k_residual_forward(float *out, const float *a, const float *b, size_t n);
/// da += dout; db += dout.
void gpt2k_residual_backward(float *da, float *db, const float *dout, size_t n);

// MARK: - Softmax / cross-entropy over the first V of Vp columns
/// For each row: lse = logsumexp(logits[0..V)); losses[n] = lse - logits[target] (when targets).
void gpt2k_crossentropy_forward(float *losses, float *lse, const float *logits, const int32_t *targets,
                                size_t N, size_t V, size_t Vp);
/// In place: logits[n, v] <- (softmax - onehot(target)) * dloss for v < V, 0 for V <= v < Vp.
void gpt2k_crossentropy_softmax_backward(float *logits, const float *lse, const int32_t *targets,
                                         float dloss, size_t N, size_t V, size_t Vp);
/// probs (V) = softmax(logits (V) / temperature).
void gpt2k_softmax(float *probs, const float *logits, size_t V, float temperature);

// MARK: - Attention row helpers (one row block of one head)
/// S (nr, ld) holds raw scores for query rows row0..row0+nr over keys 0..row0+nr. In place:
/// P = softmax(scale * S) over the causal prefix j <= row0+i, zero beyond; lse[i] = its log-sum-exp.
void gpt2k_attn_softmax_rows(float *S, size_t ld, size_t nr, size_t row0, float scale, float *lse);
/// S (raw scores) -> P = exp(scale*S - lse) (causal, zeros beyond); dP -> dS = P*(dP - D)*scale.
void gpt2k_attn_backward_rows(float *S, float *dP, size_t ld, size_t nr, size_t row0, float scale,
                              const float *lse, const float *D);
/// out[i] = dot(a + i*lda, b + i*ldb, n) for i < nr.
void gpt2k_rowdot(float *out, const float *a, size_t lda, const float *b, size_t ldb, size_t nr, size_t n);

// MARK: - Reductions and optimizer
double gpt2k_sumsq(const float *x, size_t n);
void gpt2k_scale(float *x, float s, size_t n);
/// torch.optim.AdamW step on a slice with g = grads * grad_scale: p -= lr*wd*p; m,v moments;
/// p -= lr * (m/bc1) / (sqrt(v/bc2) + eps).
void gpt2k_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2,
                 float grad_scale);

// MARK: - Fallback SGEMM (used when no BLAS library can be loaded)
/// Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C; op = transpose when trans != 0.
void gpt2k_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
#include "GPT2GEMV.h"

// MARK: - CPU features
/// 2 = AVX-512 (F, BW, DQ, VL), 1 = AVX2 + FMA, 0 = neither (or not x86-64).
int gpt2k_cpu_level(void);

// MARK: - NCCL ABI type
/// nccl.h's `typedef struct { char internal[128]; } ncclUniqueId;`, declared in C so Swift can pass
/// it by value to ncclCommInitRank through a @convention(c) function type (no NCCL is linked).
typedef struct { char internal[128]; } gpt2_nccl_unique_id;

// MARK: - Transpose
/// dst (cols, rows) = srcᵀ for src (rows, cols), for destination rows [c0, c1) (threads split them).
void gpt2k_transpose(float *dst, const float *src, size_t rows, size_t cols, size_t c0, size_t c1);

// MARK: - CRC-32C (Castagnoli)
/// Continues a CRC-32C: pass 0 to start; gpt2k_crc32c_update(0, "123456789", 9) == 0xE3069283.
uint32_t gpt2k_crc32c_update(uint32_t crc, const void *data, size_t n);

// MARK: - Process set-up
/// Makes C's stdout line-buffered (Swift's print writes through it).
void gpt2k_line_buffer_stdout(void);

// MARK: - SHA-256
/// Streaming SHA-256 state (gpt2k_sha256_init, then update any number of times, then final).
typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t buffer[64];
    uint32_t buffered;
} gpt2k_sha256_ctx;
void gpt2k_sha256_init(gpt2k_sha256_ctx *ctx);
void gpt2k_sha256_update(gpt2k_sha256_ctx *ctx, const void *data, size_t n);
/// Writes the 32-byte digest; the context must be initialised again before reuse.
void gpt2k_sha256_final(gpt2k_sha256_ctx *ctx, uint8_t digest[32]);
/// 1 when the x86 SHA extensions are used, 0 for the portable rounds.
int gpt2k_sha256_accelerated(void);
/// Tests: 1 selects the portable rounds, 0 the fastest available.
void gpt2k_sha256_force_portable(int portable);

// MARK: - libcurl calls (variadic in curl.h)
/// curl_easy_setopt / curl_easy_getinfo are C variadic functions, which Swift cannot call through
/// a function pointer: these call `fn` (the dlsym'd symbol) with the right variadic prototype.
int gpt2k_curl_setopt_pointer(void *fn, void *handle, int option, const void *value);
int gpt2k_curl_setopt_long(void *fn, void *handle, int option, long value);
int gpt2k_curl_setopt_offset(void *fn, void *handle, int option, int64_t value);
int gpt2k_curl_getinfo_long(void *fn, void *handle, int info, long *value);
int gpt2k_curl_getinfo_string(void *fn, void *handle, int info, const char **value);

// MARK: - bf16 mixed precision (sgemm_bf16.c, sgemm_amx.c)
/// What this CPU and OS offer for bf16 matmuls (see gpt2k_bf16_probe).
typedef struct {
    int avx512;            // AVX-512 F, DQ, BW, VL, with the OS saving the ZMM state
    int avx512_bf16;       // CPUID.(EAX=7,ECX=1):EAX[5] (VDPBF16PS, VCVTNE2PS2BF16)
    int amx_bf16;          // CPUID.(EAX=7,ECX=0):EDX[22] and [24] (AMX-BF16, AMX-TILE)
    int os_amx;            // XCR0 has XTILECFG and XTILEDATA enabled
    int amx_permission;    // 0: Linux granted the tile state (arch_prctl); errno if refused; -1 not asked
} gpt2k_bf16_info;

/// Fills `info`; on Linux with AMX present, also asks the kernel for the tile state (once is enough).
void gpt2k_bf16_probe(gpt2k_bf16_info *info);
/// The CPUID brand string (48 characters, NUL-terminated; empty when unavailable).
void gpt2k_cpu_brand(char out[49]);

#define GPT2K_BF16_AVX512 1   // VDPBF16PS, 12 x 32 register tile
#define GPT2K_BF16_AMX 2      // TDPBF16PS, 32 x 32 in four tiles

/// Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C with bf16 operands and fp32
/// accumulation. A and B are float (rounded to bf16, nearest even, while packing) or, when
/// a_bf16 / b_bf16, bf16 bits (uint16_t). Single-threaded. Returns 0, or -1 when `kernel`
/// cannot run on this CPU (nothing is written then).
int gpt2k_gemm_bf16(int kernel, int transA, int transB, int M, int N, int K, float alpha,
                    const void *A, int a_bf16, int lda, const void *B, int b_bf16, int ldb,
                    float beta, float *C, int ldc);

/// out[i] = bf16(x[i]): round to nearest even, zero/denormal to signed zero (as VCVTNEPS2BF16).
void gpt2k_f32_to_bf16(uint16_t *out, const float *x, size_t n);
/// gpt2k_adamw, plus params_bf16[i] = bf16(new params[i]) (the matmul copy, refreshed per update).
void gpt2k_adamw_bf16(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2,
                      float grad_scale, uint16_t *params_bf16);

// MARK: - Fork-join pool (pool.c)
typedef void (*gpt2k_pool_fn)(void *ctx, long i);
/// Runs fn(ctx, i) for i in [0, n) on the calling thread and up to threads - 1 pool workers
/// (started on first use), claiming iterations dynamically; returns when all have finished.
/// Returns -1 without running anything when the pool is already running a job (nested or
/// concurrent use) or threads < 2: the caller runs the iterations another way.
int gpt2k_pool_run(int threads, long n, gpt2k_pool_fn fn, void *ctx);
