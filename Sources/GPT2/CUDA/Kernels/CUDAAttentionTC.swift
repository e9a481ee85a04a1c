// Causal attention on the tensor cores (bf16 in, fp32 accumulate): a drop-in alternative to the
// SIMT kernels of CUDAAttentionKernels.swift with the same arguments, layouts and lse convention
// (lse = max(scale·s) + log Σ exp(scale·s − max), natural log, over the visible keys), for bf16
// training where attention is otherwise the slowest op. FlashAttention-2's partitioning: each warp
// owns 16 rows for the whole kernel (a forward / dQ block of 8 warps takes 128 queries, a dK/dV
// block of 4 warps 64 keys), so the scores, the online softmax and the accumulators live in
// registers; key (or query) tiles of 64 rows are staged through shared memory as bf16, each tile
// serving all the block's warps (128 queries: half the staging per FLOP of 64-query blocks).
// The products are PTX mma.sync.m16n8k16 (bf16 × bf16 → fp32) with the PTX ISA's documented
// fragment layouts, so an accumulator tile of S (or P, dS) is reused in registers as the A operand
// of the next product, as FlashAttention-2 does. Inline PTX rather than <mma.h> (nvcuda::wmma):
// the pip NVRTC wheels ship mma.h without the crt/mma.h it includes, and wmma's accumulator layout
// is unspecified, which would force the softmax through shared memory.
// Data movement: every tile is stored row-major, exactly as in global
// memory, and the MMA operands come from ldmatrix.x4 (A fragments, and B fragments whose k runs
// along a tile row: K for S = Q·Kᵀ) or ldmatrix.x4.trans (B fragments whose k runs down the tile:
// V for O = P·V, K for dQ = dS·K, dO and Q for dV = Pᵀ·dO and dK = dSᵀ·Q), so no tile is ever
// transposed in shared memory; one ldmatrix.x4 feeds two MMAs. Global → shared copies are 16-byte
// cp.async (zero-filled past T) into two stages: tile i+1 is in flight while tile i is computed,
// with one __syncthreads per tile. The block's own rows (Q, or K and V; for dQ Q and dO, which
// fill both stages, so key tile 0 is loaded after them) arrive before the loop and move to
// registers, so shared memory is only the two stages.
// Causal skipping: a warp skips the key tiles wholly after its rows, masks only the tile holding
// its diagonal, and there skips its fully masked 16-column sub-blocks (the products, not just the
// exponentials); key tiles past the block's last live row are not loaded. Scores are pre-multiplied by
// scale·log2(e) so that every exponential is one exp2f (lse converted back to natural log).
// Precision: scores, softmax, lse, D and dS in fp32; P and dS are rounded to bf16 as MMA operands
// (as FlashAttention does); outputs are rounded to bf16 once. Backward = dQ (a block per 128
// queries), which also computes D = rowsum(dO ∘ O) of its rows from its dO fragments and writes it
// to Dbuf (no separate preprocess pass), then dK/dV (a block per key tile, walking the query tiles
// at or after it), which reads D: no atomics, every element of dinp and Dbuf is written once (=).
// Real kernels only for -DGPT2_BF16, ATT_HS == 64 and sm_80+ (cp.async, ldmatrix, bf16 mma);
// otherwise the entry points exist (the loader looks every one up) and trap: the host picks this
// path only when CUDAContext.attentionTCAvailable.
// Shared memory, static: forward and dQ 36,864 B per 256-thread block, dK/dV 37,888 B per 128.
// References: Dao, FlashAttention-2 (2023) §3; NVIDIA PTX ISA, "Matrix Fragments for mma.m16n8k16",
// "ldmatrix", "cp.async"; llm.c attention (cuDNN path) for the lse/D convention.
// Legend: B batch, T time, C channels, NH heads, HS = 64; inp (B,T,3C) = [q | k | v]; S scores,
// P probabilities, dP = dO·Vᵀ, dS = P∘(dP − D)·scale, D = rowsum(dO∘O); g = lane/4, t = lane%4
// (a lane's rows g and g+8, columns 2t, 2t+1 of every 16×8 accumulator tile); sl2 = scale·log2(e).

extension CUDAKernelSource {
    /// Tiling constants of the tensor-core attention kernels and their launch configuration.
    public enum AttentionTCTiling {
        /// Rows per staged tile, and key rows per dK/dV block.
        public static let rows = 64
        /// Threads per dK/dV block: 4 warps of 16 key rows each.
        public static let threads = 128
        /// Query rows per forward / dQ block (each staged key tile serves twice the rows).
        public static let queryRows = 128
        /// Threads per forward / dQ block: 8 warps of 16 query rows each.
        public static let queryThreads = 256
        /// The only head size these kernels implement.
        public static let headSize = 64
    }

    static let attentionTCKernels = CUDAKernelSource(
        name: "attention_tc",
        kernels: ["attention_forward_tc_kernel", "attention_backward_dkdv_tc_kernel", "attention_backward_dq_tc_kernel"],
        code: #"""
        #ifndef ATT_HS
        #define ATT_HS 64                  // head size; the host passes -DATT_HS=C/NH
        #endif
        #if defined(GPT2_BF16) && ATT_HS == 64 && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
        #define ATT_TC 1                   // the real kernels; else trapping stubs
        #endif

        #ifdef ATT_TC
        #define TC_HS 64                   // head size
        #define TC_R 64                    // rows per staged tile and per dK/dV block (AttentionTCTiling.rows)
        #define TC_LD 72                   // shared row length in bf16: +8 keeps rows 16-byte aligned, ldmatrix conflict-free
        #define TC_THREADS 128             // dK/dV block (AttentionTCTiling.threads)
        #define TC_QR 128                  // query rows per forward / dQ block (AttentionTCTiling.queryRows)
        #define TC_QTHREADS 256            // forward / dQ block (AttentionTCTiling.queryThreads)
        #define TC_TILE_BYTES (TC_R * TC_LD * 2)
        #define TC_LOG2E 1.4426950408889634f
        #define TC_LN2 0.6931471805599453f
        // Blocks per SM the register allocation must allow (ptxas -v, sm_80/sm_90, no spills): forward and dQ 2 of
        // 256 threads (≤ 128 regs), dK/dV 2 of 128 (~220 regs; -DTC_DKDV_BLOCKS=3 caps it at 168 with ~80 B of spills).
        #ifndef TC_DKDV_BLOCKS
        #define TC_DKDV_BLOCKS 2
        #endif
        #define TC_BOUNDS(threads, minBlocks) __launch_bounds__(threads, minBlocks)

        typedef unsigned int u32;
        typedef __nv_bfloat16 Tile[TC_R][TC_LD];   // one staged 64×64 tile, row-major as in global memory

        __device__ __forceinline__ u32 pack2(float lo, float hi) {
            __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);   // .x (lo) at the lower address = low 16 bits
            return *reinterpret_cast<u32*>(&v);
        }

        // d (16×8 fp32) += a (16×16 bf16, row-major fragment) · b (16×8 bf16, column fragment). Layouts (PTX ISA):
        // a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..];
        // b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]; d0,d1 = D[g][2t..2t+1], d2,d3 = D[g+8][2t..2t+1].
        __device__ __forceinline__ void mma16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                         "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                         : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
        }

        __device__ __forceinline__ u32 smemAddr(const void* p) {
            u32 a;
            asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }\n" : "=r"(a) : "l"(p));
            return a;
        }

        // ldmatrix.x4: lanes 8i..8i+7 give the row addresses of 8×8 matrix i (16 bytes each); r[i] receives
        // matrix i's row lane/4, columns 2(lane%4), +1 (.trans: column lane/4, rows 2(lane%4), +1), low half first.
        // With the per-lane offsets below, for a row-major tile X and a 16×16 block at (r, c):
        //   ldsm4 (X + offA)  = A fragment of X[r.., c..]                         (a0..a3)
        //   ldsm4 (X + offB)  = B fragments of B[k][n] = X[r + n][c + k] for n-tiles r and r+8 (b0,b1, b0,b1)
        //   ldsm4t(X + offA)  = B fragments of B[k][n] = X[r + k][c + n] for n-tiles c and c+8 (b0,b1, b0,b1)
        // offA: row lane%16, column 8·(lane/16); offB: row lane%8 + 8·(lane/16), column 8·(lane/8 % 2).
        __device__ __forceinline__ void ldsm4(u32 (&r)[4], u32 addr) {
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
        }
        __device__ __forceinline__ void ldsm4t(u32 (&r)[4], u32 addr) {
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
        }
        // Byte offset of element (r, c) of a tile starting at shared address s.
        __device__ __forceinline__ u32 at(u32 s, int r, int c) { return s + (u32)((r * TC_LD + c) * 2); }

        // 16-byte global → shared copy, asynchronous until cpWait; bytes = 0 fills the 16 bytes with zeros.
        __device__ __forceinline__ void cpAsync16(u32 dst, const void* src, int bytes) {
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(bytes) : "memory");
        }
        __device__ __forceinline__ void cpCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
        __device__ __forceinline__ void cpWait() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

        __device__ __forceinline__ bool aligned16(const void* p, int stride) {
            return ((reinterpret_cast<size_t>(p) & 15) == 0) && ((stride & 7) == 0);
        }

        // dst[r][c] = src[(r0 + r)·stride + c] for r < TC_R, c < TC_HS; rows >= T are 0. vec: cp.async (complete
        // after cpWait), else plain 2-byte copies (complete at once); either is visible after the next __syncthreads.
        // NT: the block's thread count.
        template <int NT>
        __device__ __forceinline__ void loadTile(Tile& dst, const __nv_bfloat16* src, int stride, int r0, int T, bool vec) {
            if (vec) {
                #pragma unroll
                for (int i = 0; i < TC_R * (TC_HS / 8) / NT; i++) {
                    int v = threadIdx.x + i * NT, r = v / (TC_HS / 8), c = (v % (TC_HS / 8)) * 8;
                    bool live = r0 + r < T;
                    cpAsync16(smemAddr(&dst[r][c]), src + (size_t)(live ? r0 + r : 0) * stride + c, live ? 16 : 0);
                }
            } else {
                for (int v = threadIdx.x; v < TC_R * TC_HS; v += NT) {
                    int r = v / TC_HS, c = v % TC_HS;
                    dst[r][c] = r0 + r < T ? src[(size_t)(r0 + r) * stride + c] : __float2bfloat16_rn(0.0f);
                }
            }
        }

        // p[0], p[1] = a, b as bf16; packed 4-byte store when p is 4-byte aligned (al4), else two 2-byte stores.
        __device__ __forceinline__ void store2(__nv_bfloat16* p, float a, float b, bool al4) {
            if (al4) *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
            else { p[0] = __float2bfloat16_rn(a); p[1] = __float2bfloat16_rn(b); }
        }

        // Sum / max over the 4 lanes (t = 0..3) that share a row.
        __device__ __forceinline__ float quadSum(float v) {
            v += __shfl_xor_sync(FULL_MASK, v, 1);
            return v + __shfl_xor_sync(FULL_MASK, v, 2);
        }
        __device__ __forceinline__ float quadMax(float v) {
            v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, 1));
            return fmaxf(v, __shfl_xor_sync(FULL_MASK, v, 2));
        }
        // The bf16 pair p[0], p[1] as one u32 (p[0] in the low half); one 4-byte load when p is 4-byte aligned (al4).
        __device__ __forceinline__ u32 load2(const __nv_bfloat16* p, bool al4) {
            if (al4) return *reinterpret_cast<const u32*>(p);
            return (u32)__bfloat16_as_ushort(p[0]) | ((u32)__bfloat16_as_ushort(p[1]) << 16);
        }
        // x.lo·y.lo + x.hi·y.hi in fp32 for two bf16 pairs packed as by load2 / ldmatrix.
        __device__ __forceinline__ float dot2(u32 x, u32 y) {
            return __uint_as_float(x << 16) * __uint_as_float(y << 16) + __uint_as_float(x & 0xffff0000u) * __uint_as_float(y & 0xffff0000u);
        }
        #else
        #define TC_BOUNDS(threads, minBlocks)
        #endif  // ATT_TC

        // Declarations carrying the register bounds (the definitions below keep the plain signature).
        extern "C" __global__ TC_BOUNDS(TC_QTHREADS, 2) void attention_forward_tc_kernel(floatX*, float*, const floatX*, int, int, int, int);
        extern "C" __global__ TC_BOUNDS(TC_THREADS, TC_DKDV_BLOCKS) void attention_backward_dkdv_tc_kernel(floatX*, const floatX*, const floatX*,
                                                                                                         const float*, const float*,
                                                                                                         int, int, int, int);
        extern "C" __global__ TC_BOUNDS(TC_QTHREADS, 2) void attention_backward_dq_tc_kernel(floatX*, const floatX*, const floatX*, const floatX*,
                                                                                           const float*, float*, int, int, int, int);

        // out (B,T,C); lse (B,NH,T); inp (B,T,3C). Grid (ceil(T/128), B·NH), block 256.
        // Warp w: query rows q0+16w .. +15; walks the key tiles (64 rows) up to the block's last row with an online
        // softmax (base 2: m is the running max of sl2·s). rel = q0+16w − k0 (the warp's first row relative to the
        // tile's first key): rel < 0, the tile is fully masked for the warp (skipped); 0 <= rel < 64, the tile holds
        // the warp's diagonal: it computes only key sub-blocks 0..rel/16 and masks key j > row; rel >= 64, unmasked.
        extern "C" __global__ void attention_forward_tc_kernel(floatX* out, float* lse, const floatX* inp, int B, int T, int C, int NH) {
        #ifdef ATT_TC
            __shared__ __align__(128) Tile Ks[2];                      // K tiles (stage 1 first holds Q rows 0..63)
            __shared__ __align__(128) Tile Vs[2];                      // V tiles, row-major [key][d] (stage 1: Q rows 64..127)
            int qb = gridDim.x - 1 - blockIdx.x;                       // longest (latest) query tiles first
            int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
            int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
            int q0 = qb * TC_QR, wr = warp * 16;
            int nk = (min(q0 + TC_QR, T) + TC_R - 1) / TC_R;          // key tiles up to the last live query row
            const __nv_bfloat16* base = inp + (size_t)b * T * C3 + h * TC_HS;
            const bool vec = aligned16(base, C3);
            const float sl2 = TC_LOG2E / sqrtf((float)TC_HS);
            const int offA = (lane & 15) * TC_LD + (lane >> 4) * 8;
            const int offB = ((lane & 7) + (lane >> 4) * 8) * TC_LD + ((lane >> 3) & 1) * 8;
            const u32 ks0 = smemAddr(&Ks[0][0][0]), vs0 = smemAddr(&Vs[0][0][0]);
            loadTile<TC_QTHREADS>(Ks[1], base, C3, q0, T, vec);
            loadTile<TC_QTHREADS>(Vs[1], base, C3, q0 + TC_R, T, vec);
            loadTile<TC_QTHREADS>(Ks[0], base + C, C3, 0, T, vec);
            loadTile<TC_QTHREADS>(Vs[0], base + 2 * C, C3, 0, T, vec);
            cpCommit();
            cpWait();
            __syncthreads();
            u32 qa[4][4];
            {
                const u32 qsrc = (warp < 4 ? ks0 : vs0) + TC_TILE_BYTES + (u32)((offA + (wr & (TC_R - 1)) * TC_LD) * 2);
                #pragma unroll
                for (int kk = 0; kk < 4; kk++) ldsm4(qa[kk], qsrc + kk * 32);
            }
            float o[8][4];
            #pragma unroll
            for (int dt = 0; dt < 8; dt++) { o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f; }
            float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};   // l: this lane's partial row sums
            for (int kt = 0; kt < nk; kt++) {
                cpWait();
                __syncthreads();                                       // tile kt landed; tile kt-1 (and Q) consumed
                if (kt + 1 < nk) {                                     // prefetch tile kt+1 into the other stage
                    int st = (kt + 1) & 1, k1 = (kt + 1) * TC_R;
                    loadTile<TC_QTHREADS>(Ks[st], base + C, C3, k1, T, vec);
                    loadTile<TC_QTHREADS>(Vs[st], base + 2 * C, C3, k1, T, vec);
                    cpCommit();
                }
                const int rel = q0 + wr - kt * TC_R;                   // tile 0 has rel >= 0: m is finite after it
                if (rel < 0) continue;                                 // every key after every row of this warp
                const bool diag = rel < TC_R;                          // some key of the tile after some row of the warp
                const int lim = rel >> 4;                              // last key sub-block with a visible key
                const u32 ks = ks0 + (kt & 1) * TC_TILE_BYTES, vs = vs0 + (kt & 1) * TC_TILE_BYTES;
                float s[8][4];
                #pragma unroll
                for (int c = 0; c < 4; c++) {                          // S = Q·Kᵀ, 16 keys at a time
                    #pragma unroll
                    for (int e = 0; e < 4; e++) { s[2 * c][e] = 0.0f; s[2 * c + 1][e] = 0.0f; }
                    if (c > lim) continue;                             // fully masked for this warp
                    #pragma unroll
                    for (int kk = 0; kk < 4; kk++) {
                        u32 kf[4];
                        ldsm4(kf, at(ks, 16 * c, 16 * kk) + offB * 2);
                        mma16816(s[2 * c], qa[kk], kf[0], kf[1]);
                        mma16816(s[2 * c + 1], qa[kk], kf[2], kf[3]);
                    }
                }
                float mx[2] = {NEG_INF, NEG_INF};
                #pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    #pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float x = s[nt][e] * sl2;
                        if (diag && nt * 8 + 2 * t + (e & 1) > rel + g + 8 * (e >> 1)) x = NEG_INF;   // causal mask
                        s[nt][e] = x;
                        mx[e >> 1] = fmaxf(mx[e >> 1], x);
                    }
                }
                float corr[2];
                #pragma unroll
                for (int r = 0; r < 2; r++) {
                    // key 0 is visible to every row, so m is finite from the first tile on
                    float mNew = fmaxf(m[r], quadMax(mx[r]));
                    corr[r] = exp2f(m[r] - mNew);                     // 0 on the first tile (m = -inf)
                    m[r] = mNew;
                    l[r] *= corr[r];
                }
                #pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    #pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float p = exp2f(s[nt][e] - m[e >> 1]);         // masked: exp2(-inf) = 0
                        s[nt][e] = p;
                        l[e >> 1] += p;
                    }
                }
                #pragma unroll
                for (int dt = 0; dt < 8; dt++) {
                    #pragma unroll
                    for (int e = 0; e < 4; e++) o[dt][e] *= corr[e >> 1];
                }
                #pragma unroll
                for (int kc = 0; kc < 4; kc++) {                       // O += P·V, 16 keys at a time
                    if (kc > lim) continue;
                    u32 pa[4] = {pack2(s[2 * kc][0], s[2 * kc][1]), pack2(s[2 * kc][2], s[2 * kc][3]),
                                 pack2(s[2 * kc + 1][0], s[2 * kc + 1][1]), pack2(s[2 * kc + 1][2], s[2 * kc + 1][3])};
                    #pragma unroll
                    for (int dp = 0; dp < 4; dp++) {
                        u32 vf[4];
                        ldsm4t(vf, at(vs, 16 * kc, 16 * dp) + offA * 2);
                        mma16816(o[2 * dp], pa, vf[0], vf[1]);
                        mma16816(o[2 * dp + 1], pa, vf[2], vf[3]);
                    }
                }
            }
            floatX* ob = out + (size_t)b * T * C + h * TC_HS;
            const bool al4 = (reinterpret_cast<size_t>(ob) & 3) == 0;  // every offset below is even
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                float lr = quadSum(l[r]);
                int row = q0 + wr + g + 8 * r;
                if (row < T) {
                    float inv = 1.0f / lr;
                    floatX* orow = ob + (size_t)row * C;
                    #pragma unroll
                    for (int dt = 0; dt < 8; dt++) store2(orow + dt * 8 + 2 * t, o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv, al4);
                    if (t == 0) lse[(size_t)bh * T + row] = m[r] * TC_LN2 + logf(lr);
                }
            }
        #else
            __trap();   // needs GPT2_BF16, ATT_HS == 64 and sm_80+ (CUDAContext.attentionTCAvailable)
        #endif
        }

        // dinp's k and v parts (B,T,3C) =; dout (B,T,C); inp (B,T,3C); lse, Dbuf (B,NH,T) (D, written by the dQ kernel).
        // Grid (ceil(T/64), B·NH), block 128. Warp w: key rows k0+16w .. +15; walks the query tiles at or
        // after the block's keys: Sᵀ = K·Qᵀ, Pᵀ = exp2(sl2·Sᵀ − lse·log2e), dPᵀ = V·dOᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q.
        // On the diagonal tile warp w computes only query sub-blocks w..3; masks apply there and on a ragged last tile.
        extern "C" __global__ void attention_backward_dkdv_tc_kernel(floatX* dinp, const floatX* dout, const floatX* inp, const float* lse,
                                                                     const float* Dbuf, int B, int T, int C, int NH) {
        #ifdef ATT_TC
            __shared__ __align__(128) Tile Qs[2];                      // Q tiles (stage 1 first holds this block's K)
            __shared__ __align__(128) Tile Os[2];                      // dO tiles (stage 1 first holds this block's V)
            __shared__ float Ls[2][TC_R], Ds[2][TC_R];                 // lse·log2(e) and D of the staged queries
            int kb = blockIdx.x;                                       // first blocks have the most query tiles
            int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
            int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
            int k0 = kb * TC_R, wr = warp * 16, nq = (T + TC_R - 1) / TC_R;
            const __nv_bfloat16* base = inp + (size_t)b * T * C3 + h * TC_HS;
            const __nv_bfloat16* obase = dout + (size_t)b * T * C + h * TC_HS;
            const bool vecI = aligned16(base, C3), vecO = aligned16(obase, C);
            const float scale = 1.0f / sqrtf((float)TC_HS), sl2 = scale * TC_LOG2E;
            const int offA = (lane & 15) * TC_LD + (lane >> 4) * 8;
            const int offB = ((lane & 7) + (lane >> 4) * 8) * TC_LD + ((lane >> 3) & 1) * 8;
            const u32 qs0 = smemAddr(&Qs[0][0][0]), os0 = smemAddr(&Os[0][0][0]);
            const float* lrow = lse + (size_t)bh * T;
            const float* drow = Dbuf + (size_t)bh * T;
            // lse·log2e (threads 0..63) or D (64..127) of query q0 + threadIdx.x % 64; 0 past T
            #define TC_LD_ROWSTAT(q0) (threadIdx.x < TC_R ? ((q0) + (int)threadIdx.x < T ? lrow[(q0) + threadIdx.x] * TC_LOG2E : 0.0f) \
                                                          : ((q0) + (int)threadIdx.x - TC_R < T ? drow[(q0) + threadIdx.x - TC_R] : 0.0f))
            loadTile<TC_THREADS>(Qs[1], base + C, C3, k0, T, vecI);
            loadTile<TC_THREADS>(Os[1], base + 2 * C, C3, k0, T, vecI);
            loadTile<TC_THREADS>(Qs[0], base, C3, k0, T, vecI);
            loadTile<TC_THREADS>(Os[0], obase, C, k0, T, vecO);
            cpCommit();
            {
                float v = TC_LD_ROWSTAT(k0);
                if (threadIdx.x < TC_R) Ls[0][threadIdx.x] = v; else Ds[0][threadIdx.x - TC_R] = v;
            }
            cpWait();
            __syncthreads();
            u32 ka[4][4], va[4][4];
            #pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                ldsm4(ka[kk], qs0 + TC_TILE_BYTES + (u32)((offA + wr * TC_LD + kk * 16) * 2));
                ldsm4(va[kk], os0 + TC_TILE_BYTES + (u32)((offA + wr * TC_LD + kk * 16) * 2));
            }
            float dk[8][4], dv[8][4];
            #pragma unroll
            for (int dt = 0; dt < 8; dt++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) { dk[dt][e] = 0.0f; dv[dt][e] = 0.0f; }
            }
            for (int qt = kb; qt < nq; qt++) {
                int q0 = qt * TC_R, st = (qt - kb) & 1;
                cpWait();
                __syncthreads();                                       // tile qt landed; tile qt-1 (and K, V) consumed
                const bool more = qt + 1 < nq;
                float stat = 0.0f;
                if (more) {                                            // prefetch tile qt+1 into the other stage
                    loadTile<TC_THREADS>(Qs[st ^ 1], base, C3, q0 + TC_R, T, vecI);
                    loadTile<TC_THREADS>(Os[st ^ 1], obase, C, q0 + TC_R, T, vecO);
                    cpCommit();
                    stat = TC_LD_ROWSTAT(q0 + TC_R);                   // stored after this tile's products
                }
                const bool diag = qt == kb;                            // q0 == k0
                const bool mask = diag || q0 + TC_R > T;               // causal and/or tail queries
                const u32 qs = qs0 + st * TC_TILE_BYTES, os = os0 + st * TC_TILE_BYTES;
                #pragma unroll
                for (int qc = 0; qc < 4; qc++) {                       // 16 queries at a time
                    if (diag && qc < warp) continue;                   // fully masked for this warp
                    float s[2][4], dp[2][4];
                    #pragma unroll
                    for (int e = 0; e < 4; e++) { s[0][e] = s[1][e] = dp[0][e] = dp[1][e] = 0.0f; }
                    #pragma unroll
                    for (int kk = 0; kk < 4; kk++) {
                        u32 f[4];
                        ldsm4(f, at(qs, 16 * qc, 16 * kk) + offB * 2);
                        mma16816(s[0], ka[kk], f[0], f[1]);
                        mma16816(s[1], ka[kk], f[2], f[3]);
                        ldsm4(f, at(os, 16 * qc, 16 * kk) + offB * 2);
                        mma16816(dp[0], va[kk], f[0], f[1]);
                        mma16816(dp[1], va[kk], f[2], f[3]);
                    }
                    #pragma unroll
                    for (int n = 0; n < 2; n++) {
                        #pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int ii = qc * 16 + n * 8 + 2 * t + (e & 1);    // local query; local key wr + g + 8(e/2)
                            float p = exp2f(s[n][e] * sl2 - Ls[st][ii]);
                            // causal only on the diagonal tile (elsewhere every query follows every key)
                            if (mask && ((diag && ii < wr + g + 8 * (e >> 1)) || q0 + ii >= T)) p = 0.0f;
                            s[n][e] = p;
                            dp[n][e] = p * (dp[n][e] - Ds[st][ii]) * scale;   // dSᵀ
                        }
                    }
                    u32 pa[4] = {pack2(s[0][0], s[0][1]), pack2(s[0][2], s[0][3]), pack2(s[1][0], s[1][1]), pack2(s[1][2], s[1][3])};
                    u32 dsa[4] = {pack2(dp[0][0], dp[0][1]), pack2(dp[0][2], dp[0][3]), pack2(dp[1][0], dp[1][1]), pack2(dp[1][2], dp[1][3])};
                    #pragma unroll
                    for (int d2 = 0; d2 < 4; d2++) {
                        u32 f[4];
                        ldsm4t(f, at(os, 16 * qc, 16 * d2) + offA * 2);
                        mma16816(dv[2 * d2], pa, f[0], f[1]);
                        mma16816(dv[2 * d2 + 1], pa, f[2], f[3]);
                        ldsm4t(f, at(qs, 16 * qc, 16 * d2) + offA * 2);
                        mma16816(dk[2 * d2], dsa, f[0], f[1]);
                        mma16816(dk[2 * d2 + 1], dsa, f[2], f[3]);
                    }
                }
                if (more) { if (threadIdx.x < TC_R) Ls[st ^ 1][threadIdx.x] = stat; else Ds[st ^ 1][threadIdx.x - TC_R] = stat; }
            }
            #undef TC_LD_ROWSTAT
            floatX* dbase = dinp + (size_t)b * T * C3 + h * TC_HS;
            const bool al4 = (reinterpret_cast<size_t>(dbase) & 3) == 0;   // every offset below is even
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                int key = k0 + wr + g + 8 * r;
                if (key < T) {
                    floatX* d = dbase + (size_t)key * C3;
                    #pragma unroll
                    for (int dt = 0; dt < 8; dt++) {
                        int c = dt * 8 + 2 * t;
                        store2(d + C + c, dk[dt][2 * r], dk[dt][2 * r + 1], al4);
                        store2(d + 2 * C + c, dv[dt][2 * r], dv[dt][2 * r + 1], al4);
                    }
                }
            }
        #else
            __trap();
        #endif
        }

        // dinp's q part (B,T,3C) =; dout (B,T,C); inp (B,T,3C); out (B,T,C) and lse (B,NH,T) from forward;
        // Dbuf (B,NH,T) = D = rowsum(dout ∘ out) of this block's rows, written here for the dK/dV kernel (which must
        // run after this one). Grid (ceil(T/128), B·NH), block 256. Warp w: query rows q0+16w .. +15; D from its dO
        // fragments (registers) and out; then walks the key tiles up to the block's last row: S = Q·Kᵀ, dP = dO·Vᵀ,
        // dQ += dS·K, skipping and masking as the forward (rel = q0+16w − k0).
        extern "C" __global__ void attention_backward_dq_tc_kernel(floatX* dinp, const floatX* dout, const floatX* inp, const floatX* out,
                                                                   const float* lse, float* Dbuf, int B, int T, int C, int NH) {
        #ifdef ATT_TC
            __shared__ __align__(128) Tile Ks[2];                      // K tiles (first: Q rows 0..63, dO rows 0..63)
            __shared__ __align__(128) Tile Vs[2];                      // V tiles (first: Q rows 64..127, dO rows 64..127)
            int qb = gridDim.x - 1 - blockIdx.x;
            int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
            int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
            int q0 = qb * TC_QR, wr = warp * 16;
            int nk = (min(q0 + TC_QR, T) + TC_R - 1) / TC_R;          // key tiles up to the last live query row
            const __nv_bfloat16* base = inp + (size_t)b * T * C3 + h * TC_HS;
            const __nv_bfloat16* obase = dout + (size_t)b * T * C + h * TC_HS;
            const __nv_bfloat16* outbase = out + (size_t)b * T * C + h * TC_HS;
            const bool vecI = aligned16(base, C3), vecO = aligned16(obase, C);
            const bool al4out = (reinterpret_cast<size_t>(outbase) & 3) == 0;   // every offset below is even
            const float scale = 1.0f / sqrtf((float)TC_HS), sl2 = scale * TC_LOG2E;
            const int offA = (lane & 15) * TC_LD + (lane >> 4) * 8;
            const int offB = ((lane & 7) + (lane >> 4) * 8) * TC_LD + ((lane >> 3) & 1) * 8;
            const u32 ks0 = smemAddr(&Ks[0][0][0]), vs0 = smemAddr(&Vs[0][0][0]);
            loadTile<TC_QTHREADS>(Ks[1], base, C3, q0, T, vecI);
            loadTile<TC_QTHREADS>(Vs[1], base, C3, q0 + TC_R, T, vecI);
            loadTile<TC_QTHREADS>(Ks[0], obase, C, q0, T, vecO);
            loadTile<TC_QTHREADS>(Vs[0], obase, C, q0 + TC_R, T, vecO);
            cpCommit();
            float Li[2];                                               // lse·log2(e) of rows g, g+8
            u32 ov[2][4][2];                                           // out[row g+8r][16kk + 8hf + 2t, +1], as the dO fragments
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = q0 + wr + g + 8 * r;
                Li[r] = row < T ? lse[(size_t)bh * T + row] * TC_LOG2E : 0.0f;
                const __nv_bfloat16* orow = outbase + (size_t)(row < T ? row : 0) * C + 2 * t;
                #pragma unroll
                for (int kk = 0; kk < 4; kk++) {
                    #pragma unroll
                    for (int hf = 0; hf < 2; hf++) ov[r][kk][hf] = row < T ? load2(orow + 16 * kk + 8 * hf, al4out) : 0u;
                }
            }
            cpWait();
            __syncthreads();
            u32 qa[4][4], da[4][4];
            {
                const u32 rowOff = (u32)((offA + (wr & (TC_R - 1)) * TC_LD) * 2);
                const u32 qsrc = (warp < 4 ? ks0 : vs0) + TC_TILE_BYTES + rowOff, dsrc = (warp < 4 ? ks0 : vs0) + rowOff;
                #pragma unroll
                for (int kk = 0; kk < 4; kk++) {
                    ldsm4(qa[kk], qsrc + kk * 32);
                    ldsm4(da[kk], dsrc + kk * 32);
                }
            }
            __syncthreads();                                           // Q and dO consumed: stage 0 takes key tile 0
            loadTile<TC_QTHREADS>(Ks[0], base + C, C3, 0, T, vecI);
            loadTile<TC_QTHREADS>(Vs[0], base + 2 * C, C3, 0, T, vecI);
            cpCommit();
            float Di[2];                                               // D of rows g, g+8 (0 past T: dO rows are 0 there)
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                // da[kk][r] = dO[g+8r][16kk + 2t, +1], da[kk][2 + r] = dO[g+8r][16kk + 8 + 2t, +1] (A fragment layout)
                float d = 0.0f;
                #pragma unroll
                for (int kk = 0; kk < 4; kk++) d += dot2(da[kk][r], ov[r][kk][0]) + dot2(da[kk][2 + r], ov[r][kk][1]);
                Di[r] = quadSum(d);
                int row = q0 + wr + g + 8 * r;
                if (t == 0 && row < T) Dbuf[(size_t)bh * T + row] = Di[r];
            }
            float dq[8][4];
            #pragma unroll
            for (int dt = 0; dt < 8; dt++) { dq[dt][0] = dq[dt][1] = dq[dt][2] = dq[dt][3] = 0.0f; }
            for (int kt = 0; kt < nk; kt++) {
                cpWait();
                __syncthreads();                                       // tile kt landed; tile kt-1 consumed
                if (kt + 1 < nk) {
                    int st = (kt + 1) & 1, k1 = (kt + 1) * TC_R;
                    loadTile<TC_QTHREADS>(Ks[st], base + C, C3, k1, T, vecI);
                    loadTile<TC_QTHREADS>(Vs[st], base + 2 * C, C3, k1, T, vecI);
                    cpCommit();
                }
                const int rel = q0 + wr - kt * TC_R;
                if (rel < 0) continue;                                 // every key after every row of this warp
                const bool diag = rel < TC_R;                          // some key of the tile after some row of the warp
                const int lim = rel >> 4;                              // last key sub-block with a visible key
                const u32 ks = ks0 + (kt & 1) * TC_TILE_BYTES, vs = vs0 + (kt & 1) * TC_TILE_BYTES;
                #pragma unroll
                for (int kc = 0; kc < 4; kc++) {                       // 16 keys at a time
                    if (kc > lim) continue;                            // fully masked for this warp
                    float s[2][4], dp[2][4];
                    #pragma unroll
                    for (int e = 0; e < 4; e++) { s[0][e] = s[1][e] = dp[0][e] = dp[1][e] = 0.0f; }
                    #pragma unroll
                    for (int kk = 0; kk < 4; kk++) {
                        u32 f[4];
                        ldsm4(f, at(ks, 16 * kc, 16 * kk) + offB * 2);
                        mma16816(s[0], qa[kk], f[0], f[1]);
                        mma16816(s[1], qa[kk], f[2], f[3]);
                        ldsm4(f, at(vs, 16 * kc, 16 * kk) + offB * 2);
                        mma16816(dp[0], da[kk], f[0], f[1]);
                        mma16816(dp[1], da[kk], f[2], f[3]);
                    }
                    #pragma unroll
                    for (int n = 0; n < 2; n++) {
                        #pragma unroll
                        for (int e = 0; e < 4; e++) {
                            float p = exp2f(s[n][e] * sl2 - Li[e >> 1]);
                            if (diag && kc * 16 + n * 8 + 2 * t + (e & 1) > rel + g + 8 * (e >> 1)) p = 0.0f;   // causal mask
                            dp[n][e] = p * (dp[n][e] - Di[e >> 1]) * scale;   // dS
                        }
                    }
                    u32 dsa[4] = {pack2(dp[0][0], dp[0][1]), pack2(dp[0][2], dp[0][3]), pack2(dp[1][0], dp[1][1]), pack2(dp[1][2], dp[1][3])};
                    #pragma unroll
                    for (int d2 = 0; d2 < 4; d2++) {
                        u32 f[4];
                        ldsm4t(f, at(ks, 16 * kc, 16 * d2) + offA * 2);
                        mma16816(dq[2 * d2], dsa, f[0], f[1]);
                        mma16816(dq[2 * d2 + 1], dsa, f[2], f[3]);
                    }
                }
            }
            floatX* dbase = dinp + (size_t)b * T * C3 + h * TC_HS;
            const bool al4 = (reinterpret_cast<size_t>(dbase) & 3) == 0;   // every offset below is even
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = q0 + wr + g + 8 * r;
                if (row < T) {
                    floatX* d = dbase + (size_t)row * C3;
                    #pragma unroll
                    for (int dt = 0; dt < 8; dt++) store2(d + dt * 8 + 2 * t, dq[dt][2 * r], dq[dt][2 * r + 1], al4);
                }
            }
        #else
            __trap();
        #endif
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// attention_forward_tc_kernel and attention_backward_dq_tc_kernel: a block of 8 warps per
    /// (128-query tile, b·h); the kernels walk the tiles in reverse (longest first).
    public static func attentionTCQueryTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTCTiling.self
        return Launch(grid: Dim3(max(1, ceilDiv(T, t.queryRows)), B * NH), block: Dim3(t.queryThreads))
    }

    /// attention_backward_dkdv_tc_kernel: a block of 4 warps per (64-key tile, b·h).
    public static func attentionTCKeyTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTCTiling.self
        return Launch(grid: Dim3(max(1, ceilDiv(T, t.rows)), B * NH), block: Dim3(t.threads))
    }

    /// Whether the tensor-core kernels are real (not trapping stubs) for this build: bf16
    /// activations, head size 64, and a device of compute capability 8.0 or newer (mma.sync bf16).
    public static func attentionTCSupported(precision: CUDAPrecision, headSize: Int, deviceArch: Int) -> Bool {
        precision == .bf16 && headSize == CUDAKernelSource.AttentionTCTiling.headSize && deviceArch >= 80
    }
}

// MARK: - Launchers

extension CUDAContext {
    /// True when attentionForwardTC / attentionBackwardTC may be called on this context.
    public var attentionTCAvailable: Bool {
        CUDALaunchConfig.attentionTCSupported(precision: precision, headSize: headSize, deviceArch: device.arch)
    }
}

extension CUDAKernelLauncher {
    /// attention_forward_tc_kernel: out (B,T,C); lse (B,NH,T) fp32; inp (B,T,3C). Same contract as attentionForward.
    func attentionForwardTC(out: CUdeviceptr, lse: CUdeviceptr, inp: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        precondition(attentionTCAvailable, "tensor-core attention needs bf16, head size 64 and sm_80+")
        try launch("attention_forward_tc_kernel", CUDALaunchConfig.attentionTCQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(out), .pointer(lse), .pointer(inp), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// attention_backward_dq_tc_kernel: the dQ part of dinp (B,T,3C) =, and D (B,NH,T) = rowsum(dout ∘ out).
    func attentionBackwardDQTC(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, out: CUdeviceptr, lse: CUdeviceptr,
                               D: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        try launch("attention_backward_dq_tc_kernel", CUDALaunchConfig.attentionTCQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(out), .pointer(lse), .pointer(D),
                    .int(B), .int(T), .int(C), .int(NH)])
    }

    /// attention_backward_dkdv_tc_kernel: the dK, dV parts of dinp (B,T,3C) =, reading D.
    func attentionBackwardDKDVTC(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, lse: CUdeviceptr, D: CUdeviceptr,
                                 B: Int, T: Int, C: Int, NH: Int) throws {
        try launch("attention_backward_dkdv_tc_kernel", CUDALaunchConfig.attentionTCKeyTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(lse), .pointer(D), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// dinp (B,T,3C) =; dout (B,T,C); inp (B,T,3C); out (B,T,C) and lse (B,NH,T) from forward;
    /// scratch: B·NH·T floats. dQ runs first and writes D = rowsum(dout ∘ out) for every row, which
    /// dK/dV (after it on the same stream) reads: no preprocess pass. Same contract as attentionBackward.
    func attentionBackwardTC(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, out: CUdeviceptr, lse: CUdeviceptr,
                                    B: Int, T: Int, C: Int, NH: Int, scratch: CUdeviceptr) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        precondition(attentionTCAvailable, "tensor-core attention needs bf16, head size 64 and sm_80+")
        try attentionBackwardDQTC(dinp: dinp, dout: dout, inp: inp, out: out, lse: lse, D: scratch, B: B, T: T, C: C, NH: NH)
        try attentionBackwardDKDVTC(dinp: dinp, dout: dout, inp: inp, lse: lse, D: scratch, B: B, T: T, C: C, NH: NH)
    }
}
