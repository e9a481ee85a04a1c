// Causal multi-head self-attention on the GPU, FlashAttention style (our own kernels): the
// forward pass streams key/value tiles through shared memory with an online softmax and keeps
// only the output and each query row's log-sum-exp (no (B,NH,T,T) matrix); the backward pass
// recomputes the probabilities from lse: a preprocess kernel computes D = rowsum(dO ∘ O), one
// kernel accumulates dK and dV per key row over query tiles, another dQ per query row over key
// tiles (no atomics: every element of dinp is written once, =). Scores, softmax and gradients
// are fp32 whatever floatX is. ATT_TPR threads share one row, each holding ATT_HS/ATT_TPR of its
// dimensions (interleaved, so shared-memory reads are conflict-free broadcasts); dot products
// are finished with shuffles inside the group. ATT_HS (head size) is a compile-time -D.
// Mirrors Kernels/Attention.swift (same lse convention: lse = max(scale·s) + log Σ exp).
// References: Dao et al., FlashAttention (2022) and FlashAttention-2 (2023); llm.c attention.cuh.
// Legend: B batch, T time, C channels, NH heads, HS = C/NH; inp (B,T,3C) = [q | k | v].

extension CUDAKernelSource {
    /// Tiling constants shared by the kernels below and their launch configuration.
    public enum AttentionTiling {
        /// Query rows per block (forward, dQ).
        public static let queryRows = 32
        /// Key rows per block (dK/dV) and per shared-memory tile.
        public static let keyRows = 32
        /// Threads per row.
        public static let threadsPerRow = 4
    }

    static let attentionKernels = CUDAKernelSource(
        name: "attention",
        kernels: ["attention_forward_kernel", "attention_backward_preprocess_kernel",
                  "attention_backward_dkdv_kernel", "attention_backward_dq_kernel"],
        code: #"""
        #ifndef ATT_HS
        #define ATT_HS 64                 // head size; the host passes -DATT_HS=C/NH
        #endif
        #define ATT_TPR 4                 // threads per row (AttentionTiling.threadsPerRow)
        #define ATT_D (ATT_HS / ATT_TPR)  // dimensions each thread holds
        #define ATT_BQ 32                 // query rows per block (AttentionTiling.queryRows)
        #define ATT_BK 32                 // key rows per tile (AttentionTiling.keyRows)
        #if (ATT_HS % ATT_TPR) != 0
        #error "ATT_HS must be a multiple of ATT_TPR"
        #endif

        // Sum over the ATT_TPR lanes of one row group (all 32 lanes of the warp take part).
        __device__ __forceinline__ float groupSum(float v) {
            #pragma unroll
            for (int o = 1; o < ATT_TPR; o <<= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
            return v;
        }

        // Loads rows [r0, r0 + rows) of one head's k or v (offset C or 2C inside each 3C row),
        // or of q / dout, into a shared (rows, ATT_HS) fp32 tile; rows >= T become 0.
        __device__ inline void loadTile(float (*tile)[ATT_HS], const floatX* base, size_t stride, int r0, int rows, int T) {
            for (int i = threadIdx.x; i < rows * ATT_HS; i += blockDim.x) {
                int rr = i / ATT_HS, d = i % ATT_HS, r = r0 + rr;
                tile[rr][d] = r < T ? tof(base[(size_t)r * stride + d]) : 0.0f;
            }
        }

        // out (B,T,C) attention output; lse (B,NH,T); inp (B,T,3C).
        // Grid (ceil(T/ATT_BQ), B*NH), block ATT_BQ*ATT_TPR threads.
        extern "C" __global__ void attention_forward_kernel(floatX* out, float* lse, const floatX* inp,
                                                            int B, int T, int C, int NH) {
            __shared__ float Ks[ATT_BK][ATT_HS];
            __shared__ float Vs[ATT_BK][ATT_HS];
            int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
            int g = threadIdx.x / ATT_TPR, part = threadIdx.x % ATT_TPR;
            int row = blockIdx.x * ATT_BQ + g;
            bool live = row < T;
            int rowc = live ? row : T - 1;   // dead rows compute on a copy, never write
            const floatX* base = inp + (size_t)b * T * C3 + h * ATT_HS;
            float scale = 1.0f / sqrtf((float)ATT_HS);
            float q[ATT_D], acc[ATT_D];
            #pragma unroll
            for (int k = 0; k < ATT_D; k++) { q[k] = tof(base[(size_t)rowc * C3 + k * ATT_TPR + part]); acc[k] = 0.0f; }
            float m = NEG_INF, l = 0.0f;     // running max and sum of exp for this row
            int lastKey = min(T - 1, blockIdx.x * ATT_BQ + ATT_BQ - 1);
            for (int kt = 0; kt <= lastKey / ATT_BK; kt++) {
                __syncthreads();             // previous tile fully consumed
                loadTile(Ks, base + C, C3, kt * ATT_BK, ATT_BK, T);
                loadTile(Vs, base + 2 * C, C3, kt * ATT_BK, ATT_BK, T);
                __syncthreads();
                float s[ATT_BK];
                float tileMax = NEG_INF;
                #pragma unroll
                for (int jj = 0; jj < ATT_BK; jj++) {
                    float dot = 0.0f;
                    #pragma unroll
                    for (int k = 0; k < ATT_D; k++) dot += q[k] * Ks[jj][k * ATT_TPR + part];
                    dot = groupSum(dot) * scale;
                    s[jj] = (kt * ATT_BK + jj <= rowc) ? dot : NEG_INF;   // causal mask
                    tileMax = fmaxf(tileMax, s[jj]);
                }
                if (tileMax == NEG_INF) continue;   // nothing visible in this tile (uniform per group)
                float mNew = fmaxf(m, tileMax);
                float corr = expf(m - mNew);         // rescale what was accumulated so far
                l *= corr;
                #pragma unroll
                for (int k = 0; k < ATT_D; k++) acc[k] *= corr;
                #pragma unroll
                for (int jj = 0; jj < ATT_BK; jj++) {
                    float p = expf(s[jj] - mNew);
                    l += p;
                    #pragma unroll
                    for (int k = 0; k < ATT_D; k++) acc[k] += p * Vs[jj][k * ATT_TPR + part];
                }
                m = mNew;
            }
            if (live) {
                floatX* o = out + (size_t)b * T * C + (size_t)row * C + h * ATT_HS;
                float inv = 1.0f / l;
                #pragma unroll
                for (int k = 0; k < ATT_D; k++) o[k * ATT_TPR + part] = tox(acc[k] * inv);
                if (part == 0) lse[(size_t)bh * T + row] = m + logf(l);
            }
        }

        // Dbuf (B,NH,T) = Σ_d dout·out per head row; dout, out (B,T,C). One warp per (b,h,t).
        extern "C" __global__ void attention_backward_preprocess_kernel(float* Dbuf, const floatX* dout, const floatX* out,
                                                                        int B, int T, int C, int NH) {
            int idx = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
            int lane = threadIdx.x % WARP_SIZE;
            if (idx >= B * NH * T) return;   // whole warp leaves together
            int t = idx % T, bh = idx / T, b = bh / NH, h = bh % NH;
            size_t o = (size_t)b * T * C + (size_t)t * C + h * ATT_HS;
            float s = 0.0f;
            for (int d = lane; d < ATT_HS; d += WARP_SIZE) s += tof(dout[o + d]) * tof(out[o + d]);
            s = warpSum(s);
            if (lane == 0) Dbuf[idx] = s;
        }

        // dinp's k and v parts (B,T,3C) =; dout (B,T,C); inp (B,T,3C); lse, Dbuf (B,NH,T).
        // Grid (ceil(T/ATT_BK), B*NH), block ATT_BK*ATT_TPR: a group per key row j walks the query
        // tiles at or after j: P = exp(scale q·k - lse), dV += P dO, dS = P (dO·v - D) scale, dK += dS q.
        extern "C" __global__ void attention_backward_dkdv_kernel(floatX* dinp, const floatX* dout, const floatX* inp,
                                                                  const float* lse, const float* Dbuf,
                                                                  int B, int T, int C, int NH) {
            __shared__ float Qs[ATT_BQ][ATT_HS];
            __shared__ float dOs[ATT_BQ][ATT_HS];
            __shared__ float Ls[ATT_BQ], Ds[ATT_BQ];
            int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
            int g = threadIdx.x / ATT_TPR, part = threadIdx.x % ATT_TPR;
            int key = blockIdx.x * ATT_BK + g;
            bool live = key < T;
            int keyc = live ? key : T - 1;
            const floatX* base = inp + (size_t)b * T * C3 + h * ATT_HS;
            const floatX* obase = dout + (size_t)b * T * C + h * ATT_HS;
            float scale = 1.0f / sqrtf((float)ATT_HS);
            float kr[ATT_D], vr[ATT_D], dk[ATT_D], dv[ATT_D];
            #pragma unroll
            for (int k = 0; k < ATT_D; k++) {
                kr[k] = tof(base[(size_t)keyc * C3 + C + k * ATT_TPR + part]);
                vr[k] = tof(base[(size_t)keyc * C3 + 2 * C + k * ATT_TPR + part]);
                dk[k] = 0.0f; dv[k] = 0.0f;
            }
            for (int qt = (blockIdx.x * ATT_BK) / ATT_BQ; qt <= (T - 1) / ATT_BQ; qt++) {
                __syncthreads();
                loadTile(Qs, base, C3, qt * ATT_BQ, ATT_BQ, T);
                loadTile(dOs, obase, C, qt * ATT_BQ, ATT_BQ, T);
                for (int ii = threadIdx.x; ii < ATT_BQ; ii += blockDim.x) {
                    int i = qt * ATT_BQ + ii;
                    Ls[ii] = i < T ? lse[(size_t)bh * T + i] : 0.0f;
                    Ds[ii] = i < T ? Dbuf[(size_t)bh * T + i] : 0.0f;
                }
                __syncthreads();
                #pragma unroll 4
                for (int ii = 0; ii < ATT_BQ; ii++) {
                    int i = qt * ATT_BQ + ii;
                    float sd = 0.0f, pd = 0.0f;
                    #pragma unroll
                    for (int k = 0; k < ATT_D; k++) {
                        sd += Qs[ii][k * ATT_TPR + part] * kr[k];
                        pd += dOs[ii][k * ATT_TPR + part] * vr[k];
                    }
                    float s = groupSum(sd) * scale, dp = groupSum(pd);
                    float p = (i < T && i >= keyc) ? expf(s - Ls[ii]) : 0.0f;
                    float ds = p * (dp - Ds[ii]) * scale;
                    #pragma unroll
                    for (int k = 0; k < ATT_D; k++) {
                        dv[k] += p * dOs[ii][k * ATT_TPR + part];
                        dk[k] += ds * Qs[ii][k * ATT_TPR + part];
                    }
                }
            }
            if (live) {
                floatX* d = dinp + (size_t)b * T * C3 + (size_t)key * C3 + h * ATT_HS;
                #pragma unroll
                for (int k = 0; k < ATT_D; k++) {
                    d[C + k * ATT_TPR + part] = tox(dk[k]);
                    d[2 * C + k * ATT_TPR + part] = tox(dv[k]);
                }
            }
        }

        // dinp's q part (B,T,3C) =; same inputs. Grid (ceil(T/ATT_BQ), B*NH), block ATT_BQ*ATT_TPR:
        // a group per query row i walks the key tiles up to i: dQ += dS k.
        extern "C" __global__ void attention_backward_dq_kernel(floatX* dinp, const floatX* dout, const floatX* inp,
                                                                const float* lse, const float* Dbuf,
                                                                int B, int T, int C, int NH) {
            __shared__ float Ks[ATT_BK][ATT_HS];
            __shared__ float Vs[ATT_BK][ATT_HS];
            int bh = blockIdx.y, b = bh / NH, h = bh % NH, C3 = 3 * C;
            int g = threadIdx.x / ATT_TPR, part = threadIdx.x % ATT_TPR;
            int row = blockIdx.x * ATT_BQ + g;
            bool live = row < T;
            int rowc = live ? row : T - 1;
            const floatX* base = inp + (size_t)b * T * C3 + h * ATT_HS;
            const floatX* obase = dout + (size_t)b * T * C + h * ATT_HS;
            float scale = 1.0f / sqrtf((float)ATT_HS);
            float q[ATT_D], dO[ATT_D], dq[ATT_D];
            #pragma unroll
            for (int k = 0; k < ATT_D; k++) {
                q[k] = tof(base[(size_t)rowc * C3 + k * ATT_TPR + part]);
                dO[k] = tof(obase[(size_t)rowc * C + k * ATT_TPR + part]);
                dq[k] = 0.0f;
            }
            float li = lse[(size_t)bh * T + rowc], di = Dbuf[(size_t)bh * T + rowc];
            int lastKey = min(T - 1, blockIdx.x * ATT_BQ + ATT_BQ - 1);
            for (int kt = 0; kt <= lastKey / ATT_BK; kt++) {
                __syncthreads();
                loadTile(Ks, base + C, C3, kt * ATT_BK, ATT_BK, T);
                loadTile(Vs, base + 2 * C, C3, kt * ATT_BK, ATT_BK, T);
                __syncthreads();
                #pragma unroll 4
                for (int jj = 0; jj < ATT_BK; jj++) {
                    int j = kt * ATT_BK + jj;
                    float sd = 0.0f, pd = 0.0f;
                    #pragma unroll
                    for (int k = 0; k < ATT_D; k++) {
                        sd += q[k] * Ks[jj][k * ATT_TPR + part];
                        pd += dO[k] * Vs[jj][k * ATT_TPR + part];
                    }
                    float s = groupSum(sd) * scale, dp = groupSum(pd);
                    float p = j <= rowc ? expf(s - li) : 0.0f;
                    float ds = p * (dp - di) * scale;
                    #pragma unroll
                    for (int k = 0; k < ATT_D; k++) dq[k] += ds * Ks[jj][k * ATT_TPR + part];
                }
            }
            if (live) {
                floatX* d = dinp + (size_t)b * T * C3 + (size_t)row * C3 + h * ATT_HS;
                #pragma unroll
                for (int k = 0; k < ATT_D; k++) d[k * ATT_TPR + part] = tox(dq[k]);
            }
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// One warp per row, 8 rows per block (attention_backward_preprocess_kernel).
    public static func warpPerRow(rows N: Int) -> Launch {
        Launch(grid: Dim3(max(1, ceilDiv(N, 8))), block: Dim3(256))
    }

    /// attention_forward_kernel and attention_backward_dq_kernel: a block per (query tile, b·h).
    public static func attentionQueryTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTiling.self
        return Launch(grid: Dim3(ceilDiv(T, t.queryRows), B * NH), block: Dim3(t.queryRows * t.threadsPerRow))
    }

    /// attention_backward_dkdv_kernel: a block per (key tile, b·h).
    public static func attentionKeyTiles(B: Int, T: Int, NH: Int) -> Launch {
        let t = CUDAKernelSource.AttentionTiling.self
        return Launch(grid: Dim3(ceilDiv(T, t.keyRows), B * NH), block: Dim3(t.keyRows * t.threadsPerRow))
    }
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// attention_forward_kernel: out (B,T,C); lse (B,NH,T) fp32; inp (B,T,3C).
    func attentionForward(out: CUdeviceptr, lse: CUdeviceptr, inp: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        try launch("attention_forward_kernel", CUDALaunchConfig.attentionQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(out), .pointer(lse), .pointer(inp), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// attention_backward_preprocess_kernel: D (B,NH,T) fp32 = rowsum(dout ∘ out) per head row.
    func attentionBackwardPreprocess(D: CUdeviceptr, dout: CUdeviceptr, out: CUdeviceptr, B: Int, T: Int, C: Int, NH: Int) throws {
        try launch("attention_backward_preprocess_kernel", CUDALaunchConfig.warpPerRow(rows: B * NH * T),
                   [.pointer(D), .pointer(dout), .pointer(out), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// attention_backward_dkdv_kernel: the dK, dV parts of dinp (B,T,3C) =, per key tile.
    func attentionBackwardDKDV(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, lse: CUdeviceptr, D: CUdeviceptr,
                               B: Int, T: Int, C: Int, NH: Int) throws {
        try launch("attention_backward_dkdv_kernel", CUDALaunchConfig.attentionKeyTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(lse), .pointer(D), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// attention_backward_dq_kernel: the dQ part of dinp (B,T,3C) =, per query tile.
    func attentionBackwardDQ(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, lse: CUdeviceptr, D: CUdeviceptr,
                             B: Int, T: Int, C: Int, NH: Int) throws {
        try launch("attention_backward_dq_kernel", CUDALaunchConfig.attentionQueryTiles(B: B, T: T, NH: NH),
                   [.pointer(dinp), .pointer(dout), .pointer(inp), .pointer(lse), .pointer(D), .int(B), .int(T), .int(C), .int(NH)])
    }

    /// dinp (B,T,3C) =; dout (B,T,C); inp (B,T,3C); out (B,T,C) and lse (B,NH,T) from forward;
    /// scratch: B·NH·T floats (D = rowsum(dout ∘ out)).
    func attentionBackward(dinp: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, out: CUdeviceptr, lse: CUdeviceptr,
                                  B: Int, T: Int, C: Int, NH: Int, scratch: CUdeviceptr) throws {
        precondition(C / NH == headSize, "attention compiled for head size \(headSize), model has \(C / NH)")
        try attentionBackwardPreprocess(D: scratch, dout: dout, out: out, B: B, T: T, C: C, NH: NH)
        try attentionBackwardDKDV(dinp: dinp, dout: dout, inp: inp, lse: lse, D: scratch, B: B, T: T, C: C, NH: NH)
        try attentionBackwardDQ(dinp: dinp, dout: dout, inp: inp, lse: lse, D: scratch, B: B, T: T, C: C, NH: NH)
    }
}
