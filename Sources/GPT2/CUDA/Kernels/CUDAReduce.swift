// Deterministic reductions on the GPU: the global gradient norm in two passes (fixed grid,
// per-block partial sums of squares, then one block adds them in order), and the column sums
// that finish the LayerNorm and bias gradients (partials (rows, ld) → out (cols) +=).
// Mirrors GPT2.gradNorm (gpt2k_sumsq). Reference: llm.c global_norm.cuh.
// Legend: N elements, rows × cols partial sums with row stride ld.

extension CUDAKernelSource {
    static let reduceKernels = CUDAKernelSource(
        name: "reduce",
        kernels: ["grad_norm_partial_kernel", "grad_norm_final_kernel", "column_sum_kernel"],
        code: #"""
        // partials (gridDim.x) = per-block sum of grads[i]^2 over a grid-stride walk of N.
        extern "C" __global__ void grad_norm_partial_kernel(float* partials, const float* grads, size_t N) {
            __shared__ float buf[32];
            float s = 0.0f;
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                float g = grads[i];
                s += g * g;
            }
            s = blockSum(s, buf);
            if (threadIdx.x == 0) partials[blockIdx.x] = s;
        }

        // out[0] = sum of partials (n); launched as one block. The host takes the square root.
        extern "C" __global__ void grad_norm_final_kernel(float* out, const float* partials, int n) {
            __shared__ float buf[32];
            float s = 0.0f;
            for (int i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
            s = blockSum(s, buf);
            if (threadIdx.x == 0) out[0] = s;
        }

        // out (cols) += sum over r of partials[r * ld + c], rows added in order.
        extern "C" __global__ void column_sum_kernel(float* out, const float* partials, int rows, int cols, int ld) {
            int c = blockIdx.x * blockDim.x + threadIdx.x;
            if (c >= cols) return;
            float s = 0.0f;
            for (int r = 0; r < rows; r++) s += partials[(size_t)r * ld + c];
            out[c] += s;
        }
        """#)
}

// MARK: - Launch sizes

extension CUDALaunchConfig {
    /// column_sum_kernel over `cols` columns.
    public static func columnSum(cols: Int) -> Launch { cover(count: cols) }

    /// Blocks of the first gradient-norm pass (fixed, so the sum order never changes).
    public static let gradNormBlocks = 1024

    /// grad_norm_partial_kernel (grid) then grad_norm_final_kernel (one block).
    public static func gradNorm() -> (partial: Launch, final: Launch) {
        (Launch(grid: Dim3(gradNormBlocks), block: Dim3(256)), Launch(grid: Dim3(1), block: Dim3(1024)))
    }
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// grad_norm_partial_kernel: partials (gradNormBlocks) = per-block Σ grads² over N fp32 values.
    func gradNormPartial(partials: CUdeviceptr, grads: CUdeviceptr, N: Int) throws {
        try launch("grad_norm_partial_kernel", CUDALaunchConfig.gradNorm().partial, [.pointer(partials), .pointer(grads), .size(N)])
    }

    /// grad_norm_final_kernel: out[0] = Σ partials (n), one block.
    func gradNormFinal(out: CUdeviceptr, partials: CUdeviceptr, n: Int) throws {
        try launch("grad_norm_final_kernel", CUDALaunchConfig.gradNorm().final, [.pointer(out), .pointer(partials), .int(n)])
    }

    /// column_sum_kernel: out (cols) += Σ_r partials[r·ld + c], rows in order.
    func columnSum(out: CUdeviceptr, partials: CUdeviceptr, rows: Int, cols: Int, ld: Int) throws {
        try launch("column_sum_kernel", CUDALaunchConfig.columnSum(cols: cols),
                   [.pointer(out), .pointer(partials), .int(rows), .int(cols), .int(ld)])
    }
}

extension CUDAContext {
    /// Σ grads² over N fp32 values; scratch: gradNormBlocks + 1 floats. Synchronises.
    public func sumOfSquares(_ grads: CUdeviceptr, N: Int, scratch: CUdeviceptr) throws -> Float {
        let out = scratch + CUdeviceptr(CUDALaunchConfig.gradNormBlocks * 4)
        try gradNormPartial(partials: scratch, grads: grads, N: N)
        try gradNormFinal(out: out, partials: scratch, n: CUDALaunchConfig.gradNormBlocks)
        var s: Float = 0
        try download(&s, out, bytes: 4)
        return s
    }
}
