// AdamW on the GPU with torch.optim.AdamW semantics, on fp32 master weights and fp32 moments;
// writes the floatX copy the forward pass reads (bf16: rounded to nearest even; fp32 mode may
// pass the master buffer itself). Gradient clipping is folded in as grads * gradScale. Same
// operation order as gpt2k_adamw (Kernels/AdamW.swift), so fp32 results match the CPU to rounding.
// Reference: llm.c adamw.cuh (adamw_kernel3).
// The hyperparameters come from the caller (AdamWDefaults, OptimizerDefaults.swift, for training);
// the kernel has no constants of its own.
// Legend: N = number of parameters in the slice.
import Foundation

extension CUDAKernelSource {
    static let adamWKernels = CUDAKernelSource(
        name: "adamw",
        kernels: ["adamw_kernel"],
        code: #"""
        // params, m, v (N) updated; paramsOut (N) = floatX(params) after the update; grads (N).
        // bc1, bc2: bias corrections 1 - beta^step (computed on the host in double, as the CPU).
        extern "C" __global__ void adamw_kernel(float* params, floatX* paramsOut, const float* grads, float* m, float* v,
                                                size_t N, float lr, float beta1, float beta2, float eps,
                                                float weightDecay, float bc1, float bc2, float gradScale) {
            float decay = 1.0f - lr * weightDecay;
            float step = lr / bc1;
            float sbc2 = sqrtf(bc2);
            for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
                float g = grads[i] * gradScale;
                float mi = m[i] + (g - m[i]) * (1.0f - beta1);   // torch: m.lerp_(g, 1 - beta1)
                float vi = v[i] * beta2 + (1.0f - beta2) * g * g;
                m[i] = mi;
                v[i] = vi;
                float denom = sqrtf(vi) / sbc2 + eps;
                float p = params[i] * decay - step * mi / denom;
                params[i] = p;
                paramsOut[i] = tox(p);
            }
        }
        """#)
}

// MARK: - Launchers

extension CUDAKernelLauncher {
    /// adamw_kernel: AdamW over N fp32 params (with m, v) from fp32 grads · gradScale; paramsOut (N)
    /// floatX copy (may be params itself in fp32 mode). Bias corrections in Double on the host, like
    /// AdamW.update.
    func adamW(params: CUdeviceptr, paramsOut: CUdeviceptr, grads: CUdeviceptr, m: CUdeviceptr, v: CUdeviceptr, N: Int,
                      learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int,
                      gradScale: Float = 1) throws {
        precondition(step >= 1, "AdamW: step must be >= 1 (got \(step))")
        let bc1 = Float(1 - Foundation.pow(Double(beta1), Double(step)))
        let bc2 = Float(1 - Foundation.pow(Double(beta2), Double(step)))
        try launch("adamw_kernel", CUDALaunchConfig.elementwise(count: N, multiprocessors: sms),
                   [.pointer(params), .pointer(paramsOut), .pointer(grads), .pointer(m), .pointer(v), .size(N),
                    .float(learningRate), .float(beta1), .float(beta2), .float(eps), .float(weightDecay),
                    .float(bc1), .float(bc2), .float(gradScale)])
    }
}
