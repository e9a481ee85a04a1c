// Precision conversion on the GPU: fp32 master weights → the floatX copy the forward reads, and
// floatX activations → fp32 (for the fp32 dlnf accumulator and for reading results back).
// Legend: N elements.

extension CUDAKernelSource {
    static let convertKernels = CUDAKernelSource(
        name: "convert",
        kernels: ["float_to_floatx_kernel", "floatx_to_float_kernel"],
        code: #"""
        // out (N) = floatX(inp)
        extern "C" __global__ void float_to_floatx_kernel(floatX* out, const float* inp, size_t N) {
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x)
                out[i] = tox(inp[i]);
        }

        // out (N) = float(inp)
        extern "C" __global__ void floatx_to_float_kernel(float* out, const floatX* inp, size_t N) {
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x)
                out[i] = tof(inp[i]);
        }
        """#)
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// float_to_floatx_kernel: out (N) floatX = inp (N) fp32, rounded to nearest even in bf16.
    func floatToFloatX(out: CUdeviceptr, inp: CUdeviceptr, N: Int) throws {
        try launch("float_to_floatx_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(out), .pointer(inp), .size(N)])
    }

    /// floatx_to_float_kernel: out (N) fp32 = inp (N) floatX.
    func floatXToFloat(out: CUdeviceptr, inp: CUdeviceptr, N: Int) throws {
        try launch("floatx_to_float_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(out), .pointer(inp), .size(N)])
    }
}
