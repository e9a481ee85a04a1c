// LayerNorm over the last dimension on the GPU (eps 1e-5, biased variance), fp32 statistics.
// Forward: one warp per row; saves mean and rstd (fp32) for backward. The fused variant first
// writes residual = inp1 + inp2 (the residual connection) and normalises that, as llm.c's
// fused_residual_forward5. Backward: dinp accumulates (+=, the residual stream); dweight/dbias
// (fp32) accumulate (+=) deterministically: each block owns a chunk of rows and writes its
// per-column partial sums to a scratch buffer, which `column_sum_kernel` (reduce.cu) adds in order.
// Mirrors Kernels/LayerNorm.swift. Reference: llm.c layernorm.cuh.
// Legend: N rows (B*T), C channels.

extension CUDAKernelSource {
    static let layerNormKernels = CUDAKernelSource(
        name: "layernorm",
        kernels: ["layernorm_forward_kernel", "fused_residual_layernorm_forward_kernel", "layernorm_backward_kernel",
                  "layernorm_backward_warp_kernel"],
        code: #"""
        #define LN_EPS 1e-5f
        // Most columns one backward thread keeps in registers: C <= LN_MAX_COLS * blockDim.x.
        #define LN_MAX_COLS 8

        // layernormRow with 16-byte packs (C % XPACK == 0, every address aligned): lane l owns
        // packs l, l + 32, ...; the row is read three times, from L1 after the first.
        __device__ inline void layernormRowPacked(floatX* out, float* mean, float* rstd, const floatX* x,
                                                  const floatX* weight, const floatX* bias, int row, int C) {
            int lane = threadIdx.x % WARP_SIZE, packs = C / XPACK;
            const PackX* xp = (const PackX*)x;
            float s = 0.0f;
            for (int p = lane; p < packs; p += WARP_SIZE) {
                PackX a = xp[p];
                #pragma unroll
                for (int k = 0; k < XPACK; k++) s += tof(a.v[k]);
            }
            float m = warpSum(s) / C;
            float v = 0.0f;
            for (int p = lane; p < packs; p += WARP_SIZE) {
                PackX a = xp[p];
                #pragma unroll
                for (int k = 0; k < XPACK; k++) { float d = tof(a.v[k]) - m; v += d * d; }
            }
            float rs = 1.0f / sqrtf(warpSum(v) / C + LN_EPS);
            for (int p = lane; p < packs; p += WARP_SIZE) {
                PackX a = xp[p], w = ((const PackX*)weight)[p], b = ((const PackX*)bias)[p], o;
                #pragma unroll
                for (int k = 0; k < XPACK; k++) o.v[k] = tox((tof(a.v[k]) - m) * rs * tof(w.v[k]) + tof(b.v[k]));
                ((PackX*)out)[p] = o;
            }
            if (lane == 0) {
                if (mean) mean[row] = m;
                if (rstd) rstd[row] = rs;
            }
        }

        // One warp normalises row `row` of x (already rounded to floatX) into out.
        __device__ inline void layernormRow(floatX* out, float* mean, float* rstd, const floatX* x,
                                            const floatX* weight, const floatX* bias, int row, int C) {
            if (C % XPACK == 0 && aligned16(out) && aligned16(x) && aligned16(weight) && aligned16(bias)) {
                layernormRowPacked(out, mean, rstd, x, weight, bias, row, C);
                return;
            }
            int lane = threadIdx.x % WARP_SIZE;
            float s = 0.0f;
            for (int c = lane; c < C; c += WARP_SIZE) s += tof(x[c]);
            float m = warpSum(s) / C;
            float v = 0.0f;                       // two-pass variance, as the CPU kernel
            for (int c = lane; c < C; c += WARP_SIZE) { float d = tof(x[c]) - m; v += d * d; }
            float rs = 1.0f / sqrtf(warpSum(v) / C + LN_EPS);
            for (int c = lane; c < C; c += WARP_SIZE) {
                float n = (tof(x[c]) - m) * rs;
                out[c] = tox(n * tof(weight[c]) + tof(bias[c]));
            }
            if (lane == 0) {
                if (mean) mean[row] = m;
                if (rstd) rstd[row] = rs;
            }
        }

        // out (N,C); mean, rstd (N) or NULL; inp (N,C); weight, bias (C). Warp per row.
        extern "C" __global__ void layernorm_forward_kernel(floatX* out, float* mean, float* rstd, const floatX* inp,
                                                            const floatX* weight, const floatX* bias, int N, int C) {
            int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
            if (row >= N) return;   // whole warp leaves together
            layernormRow(out + (size_t)row * C, mean, rstd, inp + (size_t)row * C, weight, bias, row, C);
        }

        // residual (N,C) = inp1 + inp2; out (N,C) = layernorm(residual); mean, rstd (N).
        extern "C" __global__ void fused_residual_layernorm_forward_kernel(floatX* residual, floatX* out, float* mean,
                                                                           float* rstd, const floatX* inp1,
                                                                           const floatX* inp2, const floatX* weight,
                                                                           const floatX* bias, int N, int C) {
            int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
            if (row >= N) return;
            int lane = threadIdx.x % WARP_SIZE;
            size_t o = (size_t)row * C;
            if (C % XPACK == 0 && aligned16(residual + o) && aligned16(inp1 + o) && aligned16(inp2 + o)) {
                const PackX *a = (const PackX*)(inp1 + o), *b = (const PackX*)(inp2 + o);
                for (int p = lane; p < C / XPACK; p += WARP_SIZE) {
                    PackX x = a[p], y = b[p], r;
                    #pragma unroll
                    for (int k = 0; k < XPACK; k++) r.v[k] = tox(tof(x.v[k]) + tof(y.v[k]));
                    ((PackX*)(residual + o))[p] = r;
                }
            } else {
                for (int c = lane; c < C; c += WARP_SIZE) residual[o + c] = tox(tof(inp1[o + c]) + tof(inp2[o + c]));
            }
            __syncwarp();   // each lane reads back only what it wrote, but keep the warp in step
            layernormRow(out + o, mean, rstd, residual + o, weight, bias, row, C);
        }

        // dinp (N,C) +=; scratch (gridDim.x, 2C) = this block's [dweight | dbias] partial sums;
        // dout, inp (N,C); weight (C); mean, rstd (N). Block b owns rows [b*chunk, (b+1)*chunk);
        // thread t owns columns t, t+blockDim.x, ... (at most LN_MAX_COLS of them) and keeps
        // their dweight/dbias sums in registers; per row, one block reduction gives the two means.
        extern "C" __global__ void layernorm_backward_kernel(floatX* dinp, float* scratch, const floatX* dout,
                                                             const floatX* inp, const floatX* weight,
                                                             const float* mean, const float* rstd, int N, int C) {
            __shared__ float buf[32];
            int chunk = (N + gridDim.x - 1) / gridDim.x;
            int r0 = blockIdx.x * chunk, r1 = min(N, r0 + chunk);
            float dw[LN_MAX_COLS], db[LN_MAX_COLS], nx[LN_MAX_COLS], dn[LN_MAX_COLS];
            #pragma unroll
            for (int k = 0; k < LN_MAX_COLS; k++) { dw[k] = 0.0f; db[k] = 0.0f; }
            for (int r = r0; r < r1; r++) {
                const floatX* d = dout + (size_t)r * C;
                const floatX* x = inp + (size_t)r * C;
                float m = mean[r], rs = rstd[r];
                float dmean = 0.0f, dnx = 0.0f;
                #pragma unroll
                for (int k = 0; k < LN_MAX_COLS; k++) {
                    int c = threadIdx.x + k * blockDim.x;
                    nx[k] = 0.0f; dn[k] = 0.0f;
                    if (c < C) {
                        float g = tof(d[c]);
                        nx[k] = (tof(x[c]) - m) * rs;
                        dn[k] = tof(weight[c]) * g;
                        dmean += dn[k];
                        dnx += dn[k] * nx[k];
                        db[k] += g;
                        dw[k] += nx[k] * g;
                    }
                }
                dmean = blockSum(dmean, buf) / C;
                dnx = blockSum(dnx, buf) / C;
                floatX* di = dinp + (size_t)r * C;
                #pragma unroll
                for (int k = 0; k < LN_MAX_COLS; k++) {
                    int c = threadIdx.x + k * blockDim.x;
                    if (c < C) di[c] = tox(tof(di[c]) + (dn[k] - dmean - nx[k] * dnx) * rs);
                }
            }
            float* out = scratch + (size_t)blockIdx.x * 2 * C;
            #pragma unroll
            for (int k = 0; k < LN_MAX_COLS; k++) {
                int c = threadIdx.x + k * blockDim.x;
                if (c < C) { out[c] = dw[k]; out[C + c] = db[k]; }
            }
        }

        // The same as layernorm_backward_kernel, one warp per row, for C % XPACK == 0 with 16-byte
        // aligned rows (every GPT-2 size): no block barriers per row, 16-byte loads. Rows are
        // dealt to warps round-robin over the grid. Each warp adds its rows' dweight/dbias terms
        // into its own slice of dynamic shared memory (warps × 2C floats; only its lanes touch it,
        // laid out [k][pack] so a warp's stores hit 32 different banks), and at the end the block
        // adds its warps' slices in order into scratch row blockIdx.x: deterministic, no atomics.
        extern "C" __global__ void layernorm_backward_warp_kernel(floatX* dinp, float* scratch, const floatX* dout,
                                                                  const floatX* inp, const floatX* weight,
                                                                  const float* mean, const float* rstd, int N, int C) {
            extern __shared__ float acc[];        // (warps, 2, XPACK, packs)
            int warps = blockDim.x / WARP_SIZE, warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
            int packs = C / XPACK;
            float* mine = acc + (size_t)warp * 2 * C;
            for (int c = lane; c < 2 * C; c += WARP_SIZE) mine[c] = 0.0f;
            const PackX* w = (const PackX*)weight;
            for (int r = blockIdx.x * warps + warp; r < N; r += gridDim.x * warps) {
                const PackX* d = (const PackX*)(dout + (size_t)r * C);
                const PackX* x = (const PackX*)(inp + (size_t)r * C);
                float m = mean[r], rs = rstd[r];
                float dmean = 0.0f, dnx = 0.0f;
                for (int p = lane; p < packs; p += WARP_SIZE) {
                    PackX dp = d[p], xp = x[p], wp = w[p];
                    #pragma unroll
                    for (int k = 0; k < XPACK; k++) {
                        float dn = tof(wp.v[k]) * tof(dp.v[k]);
                        dmean += dn;
                        dnx += dn * (tof(xp.v[k]) - m) * rs;
                    }
                }
                dmean = warpSum(dmean) / C;
                dnx = warpSum(dnx) / C;
                PackX* di = (PackX*)(dinp + (size_t)r * C);
                for (int p = lane; p < packs; p += WARP_SIZE) {
                    PackX dp = d[p], xp = x[p], wp = w[p], ip = di[p], op;
                    #pragma unroll
                    for (int k = 0; k < XPACK; k++) {
                        float g = tof(dp.v[k]), nx = (tof(xp.v[k]) - m) * rs, dn = tof(wp.v[k]) * g;
                        mine[k * packs + p] += nx * g;          // dweight
                        mine[C + k * packs + p] += g;           // dbias
                        op.v[k] = tox(tof(ip.v[k]) + (dn - dmean - nx * dnx) * rs);
                    }
                    di[p] = op;
                }
            }
            __syncthreads();
            float* out = scratch + (size_t)blockIdx.x * 2 * C;
            for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) {
                int half = i / C, c = i % C, slot = half * C + (c % XPACK) * packs + c / XPACK;
                float s = 0.0f;
                for (int v = 0; v < warps; v++) s += acc[(size_t)v * 2 * C + slot];
                out[i] = s;
            }
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// Columns one LayerNorm-backward thread keeps in registers (LN_MAX_COLS in layernorm.cu).
    public static let layerNormMaxColumnsPerThread = 8

    /// layernorm_forward_kernel / fused_residual_layernorm_forward_kernel: one warp per row, 8 warps per block.
    public static func layerNormForward(rows N: Int) -> Launch {
        Launch(grid: Dim3(max(1, ceilDiv(N, 8))), block: Dim3(256))
    }

    /// layernorm_backward_kernel: a block per chunk of rows; each thread holds at most
    /// `layerNormMaxColumnsPerThread` columns, so the block has ceil(C/8) threads rounded up to a
    /// warp (at least 128, at most 1024). Its scratch is grid.x × 2C floats.
    public static func layerNormBackward(rows N: Int, C: Int, multiprocessors: Int) -> Launch {
        precondition(C <= 1024 * layerNormMaxColumnsPerThread, "LayerNorm backward supports C <= 8192 (got \(C))")
        let threads = min(1024, max(128, ceilDiv(ceilDiv(C, layerNormMaxColumnsPerThread), 32) * 32))
        let blocks = max(1, min(N, max(1, multiprocessors) * 8))
        return Launch(grid: Dim3(blocks), block: Dim3(threads))
    }

    /// layernorm_backward_warp_kernel: warps of one row each, 8 per block or fewer so that their
    /// dynamic shared memory (warps × 2C floats) stays within the default 48 KiB; 4 blocks per SM.
    /// nil when the kernel does not apply (C not a whole number of 16-byte packs, or C too large).
    /// Its scratch is grid.x × 2C floats.
    public static func layerNormBackwardWarp(rows N: Int, C: Int, elementSize: Int, multiprocessors: Int) -> Launch? {
        let pack = 16 / elementSize
        let warps = min(8, 49152 / (8 * C))
        guard C % pack == 0, warps >= 1 else { return nil }
        let blocks = max(1, min(ceilDiv(N, warps), max(1, multiprocessors) * 4))
        return Launch(grid: Dim3(blocks), block: Dim3(warps * 32), sharedBytes: warps * 2 * C * 4)
    }
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// layernorm_forward_kernel: out (N,C); mean, rstd (N) fp32; inp (N,C); weight, bias (C). N = B·T.
    func layerNormForward(out: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr, inp: CUdeviceptr,
                                 weight: CUdeviceptr, bias: CUdeviceptr, B: Int, T: Int, C: Int) throws {
        try launch("layernorm_forward_kernel", CUDALaunchConfig.layerNormForward(rows: B * T),
                   [.pointer(out), .pointer(mean), .pointer(rstd), .pointer(inp), .pointer(weight), .pointer(bias),
                    .int(B * T), .int(C)])
    }

    /// fused_residual_layernorm_forward_kernel: residual (N,C) = inp1 + inp2; out = layernorm(residual);
    /// mean, rstd (N).
    func fusedResidualLayerNormForward(residual: CUdeviceptr, out: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr,
                                              inp1: CUdeviceptr, inp2: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr,
                                              B: Int, T: Int, C: Int) throws {
        try launch("fused_residual_layernorm_forward_kernel", CUDALaunchConfig.layerNormForward(rows: B * T),
                   [.pointer(residual), .pointer(out), .pointer(mean), .pointer(rstd), .pointer(inp1), .pointer(inp2),
                    .pointer(weight), .pointer(bias), .int(B * T), .int(C)])
    }

    /// layernorm_backward_kernel (a block per chunk of rows): dinp (N,C) +=; scratch (grid.x, 2C)
    /// per-block dweight | dbias partials; dout, inp (N,C); weight (C); mean, rstd (N).
    func layerNormBackwardBlocks(dinp: CUdeviceptr, scratch: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr,
                                 mean: CUdeviceptr, rstd: CUdeviceptr, N: Int, C: Int, launch l: CUDALaunchConfig.Launch) throws {
        try launch("layernorm_backward_kernel", l,
                   [.pointer(dinp), .pointer(scratch), .pointer(dout), .pointer(inp), .pointer(weight),
                    .pointer(mean), .pointer(rstd), .int(N), .int(C)])
    }

    /// layernorm_backward_warp_kernel (a warp per row): the same arguments and scratch as
    /// layerNormBackwardBlocks, with its own launch (CUDALaunchConfig.layerNormBackwardWarp).
    func layerNormBackwardWarps(dinp: CUdeviceptr, scratch: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr,
                                mean: CUdeviceptr, rstd: CUdeviceptr, N: Int, C: Int, launch l: CUDALaunchConfig.Launch) throws {
        try launch("layernorm_backward_warp_kernel", l,
                   [.pointer(dinp), .pointer(scratch), .pointer(dout), .pointer(inp), .pointer(weight),
                    .pointer(mean), .pointer(rstd), .int(N), .int(C)])
    }
}

extension CUDAContext {
    /// The warp-per-row LayerNorm backward's launch when it applies to these addresses, else nil.
    func layerNormBackwardWarpLaunch(B: Int, T: Int, C: Int, pointers: [CUdeviceptr] = []) -> CUDALaunchConfig.Launch? {
        guard pointers.allSatisfy({ $0 % 16 == 0 }) else { return nil }
        return CUDALaunchConfig.layerNormBackwardWarp(rows: B * T, C: C, elementSize: precision.elementSize, multiprocessors: sms)
    }

    /// fp32 floats of scratch `layerNormBackward` needs (either kernel).
    public func layerNormScratchCount(B: Int, T: Int, C: Int) -> Int {
        let block = Int(CUDALaunchConfig.layerNormBackward(rows: B * T, C: C, multiprocessors: sms).grid.x)
        let warp = layerNormBackwardWarpLaunch(B: B, T: T, C: C).map { Int($0.grid.x) } ?? 0
        return max(block, warp) * 2 * C
    }

    /// dinp (B,T,C) +=; dweight, dbias (C) += fp32; dout, inp (B,T,C); weight (C); mean, rstd (B,T);
    /// scratch: layerNormScratchCount floats. Warp per row where it applies (GPT2_LN_BACKWARD=block
    /// forces the block-per-chunk kernel), then the column sums of the partials.
    public func layerNormBackward(dinp: CUdeviceptr, dweight: CUdeviceptr, dbias: CUdeviceptr, dout: CUdeviceptr,
                                  inp: CUdeviceptr, weight: CUdeviceptr, mean: CUdeviceptr, rstd: CUdeviceptr,
                                  B: Int, T: Int, C: Int, scratch: CUdeviceptr) throws {
        let l: CUDALaunchConfig.Launch
        if !useBlockLayerNormBackward, let warp = layerNormBackwardWarpLaunch(B: B, T: T, C: C, pointers: [dinp, dout, inp, weight]) {
            l = warp
            try layerNormBackwardWarps(dinp: dinp, scratch: scratch, dout: dout, inp: inp, weight: weight, mean: mean, rstd: rstd,
                                       N: B * T, C: C, launch: l)
        } else {
            l = CUDALaunchConfig.layerNormBackward(rows: B * T, C: C, multiprocessors: sms)
            try layerNormBackwardBlocks(dinp: dinp, scratch: scratch, dout: dout, inp: inp, weight: weight, mean: mean, rstd: rstd,
                                        N: B * T, C: C, launch: l)
        }
        let rows = Int(l.grid.x)
        try columnSum(out: dweight, partials: scratch, rows: rows, cols: C, ld: 2 * C)
        try columnSum(out: dbias, partials: scratch + CUdeviceptr(C * 4), rows: rows, cols: C, ld: 2 * C)
    }
}
