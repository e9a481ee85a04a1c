// Bias add and bias gradient on the GPU. Forward normally uses cuBLASLt's BIAS epilogue; the
// kernel here is the fallback (and the parity reference). Backward sums dout over rows into the
// fp32 dbias (+=) in two deterministic passes: column partial sums per row chunk into a scratch
// buffer, then `column_sum_kernel` (reduce.cu) adds the chunks in order.
// Mirrors Matmul.forward's bias / gpt2k_bias_backward. Reference: llm.c matmul.cuh (matmul_backward_bias_kernel).
// Legend: N rows (B*T), OC output channels.

extension CUDAKernelSource {
    static let biasKernels = CUDAKernelSource(
        name: "bias",
        kernels: ["add_bias_kernel", "bias_backward_partial_kernel"],
        code: #"""
        // out (N,OC) += bias (OC)
        extern "C" __global__ void add_bias_kernel(floatX* out, const floatX* bias, int N, int OC) {
            size_t total = (size_t)N * OC;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
                out[i] = tox(tof(out[i]) + tof(bias[i % OC]));
            }
        }

        // partial (gridDim.y, OC) = column sums of dout (N,OC) over row chunk blockIdx.y.
        // Block (32, 16): threadIdx.x owns XPACK adjacent columns (one 16-byte load per row when OC
        // is a whole number of packs and dout is aligned, else XPACK scalar loads), so a warp reads
        // 512 contiguous bytes of a row; threadIdx.y splits the chunk's rows 16 ways, and the 16
        // partial sums are added in fixed order in shared memory.
        #define BB_ROWS 16
        extern "C" __global__ void bias_backward_partial_kernel(float* partial, const floatX* dout, int N, int OC) {
            __shared__ float sums[BB_ROWS][32 * XPACK + 1];
            int c0 = (blockIdx.x * 32 + threadIdx.x) * XPACK;
            int rowsPerChunk = (N + gridDim.y - 1) / gridDim.y;
            int r0 = blockIdx.y * rowsPerChunk, r1 = min(N, r0 + rowsPerChunk);
            float s[XPACK];
            #pragma unroll
            for (int k = 0; k < XPACK; k++) s[k] = 0.0f;
            if (OC % XPACK == 0 && aligned16(dout)) {
                if (c0 < OC) {
                    #pragma unroll 4
                    for (int r = r0 + threadIdx.y; r < r1; r += BB_ROWS) {
                        PackX v = *(const PackX*)(dout + (size_t)r * OC + c0);
                        #pragma unroll
                        for (int k = 0; k < XPACK; k++) s[k] += tof(v.v[k]);
                    }
                }
            } else {
                for (int r = r0 + threadIdx.y; r < r1; r += BB_ROWS) {
                    #pragma unroll
                    for (int k = 0; k < XPACK; k++) if (c0 + k < OC) s[k] += tof(dout[(size_t)r * OC + c0 + k]);
                }
            }
            #pragma unroll
            for (int k = 0; k < XPACK; k++) sums[threadIdx.y][threadIdx.x * XPACK + k] = s[k];
            __syncthreads();
            int tid = threadIdx.y * 32 + threadIdx.x, cb = blockIdx.x * 32 * XPACK;
            for (int i = tid; i < 32 * XPACK; i += 32 * BB_ROWS) {
                if (cb + i >= OC) continue;
                float t = 0.0f;
                for (int k = 0; k < BB_ROWS; k++) t += sums[k][i];
                partial[(size_t)blockIdx.y * OC + cb + i] = t;
            }
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// bias_backward_partial_kernel: block (32, 16), each thread over 16 bytes of columns
    /// (`16 / elementSize` of them), so a block covers 32 · that many columns; grid.y row chunks,
    /// about 2 blocks per SM in all (the chunks' partial rows are then added by column_sum_kernel,
    /// so fewer, longer chunks keep that cheap). Its scratch is grid.y × OC floats.
    public static func biasBackward(rows N: Int, OC: Int, elementSize: Int, multiprocessors: Int) -> Launch {
        let columnBlocks = ceilDiv(OC, 32 * (16 / elementSize))
        let wanted = ceilDiv(max(1, multiprocessors) * 2, columnBlocks)
        let chunks = max(1, min(min(ceilDiv(N, 64), wanted), 1024))
        return Launch(grid: Dim3(columnBlocks, chunks), block: Dim3(32, 16))
    }
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// add_bias_kernel: out (N,OC) += bias (OC).
    func addBias(out: CUdeviceptr, bias: CUdeviceptr, N: Int, OC: Int) throws {
        try launch("add_bias_kernel", CUDALaunchConfig.elementwise(count: N * OC, multiprocessors: sms),
                   [.pointer(out), .pointer(bias), .int(N), .int(OC)])
    }

    /// bias_backward_partial_kernel: partial (grid.y, OC) = column sums of dout (N,OC) per row chunk.
    func biasBackwardPartial(partial: CUdeviceptr, dout: CUdeviceptr, N: Int, OC: Int, launch l: CUDALaunchConfig.Launch) throws {
        try launch("bias_backward_partial_kernel", l, [.pointer(partial), .pointer(dout), .int(N), .int(OC)])
    }

    /// fp32 floats of scratch `biasBackward` needs.
    func biasScratchCount(B: Int, T: Int, OC: Int) -> Int {
        Int(CUDALaunchConfig.biasBackward(rows: B * T, OC: OC, elementSize: precision.elementSize, multiprocessors: sms).grid.y) * OC
    }

    /// dbias (OC) += Σ_rows dout (B,T,OC), deterministic: partial sums per row chunk, then their column sum.
    func biasBackward(dbias: CUdeviceptr, dout: CUdeviceptr, B: Int, T: Int, OC: Int, scratch: CUdeviceptr) throws {
        let l = CUDALaunchConfig.biasBackward(rows: B * T, OC: OC, elementSize: precision.elementSize, multiprocessors: sms)
        try biasBackwardPartial(partial: scratch, dout: dout, N: B * T, OC: OC, launch: l)
        try columnSum(out: dbias, partials: scratch, rows: Int(l.grid.y), cols: OC, ld: OC)
    }
}
