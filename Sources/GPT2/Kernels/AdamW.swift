// AdamW with torch.optim.AdamW semantics: decoupled weight decay p ← p·(1 − lr·wd), bias-corrected
// moments, p ← p − (lr/bc1)·m / (sqrt(v)/sqrt(bc2) + eps). Updates params, m and v in place.
// Reference: llm.c adamw_kernel; torch/optim/adamw.py (single-tensor path).
// Legend: N = number of parameters in the slice.
import Foundation
import GPT2Kernels

public enum AdamW {
    /// - Parameters: params, m, v (N) updated; grads (N), used as grads · gradScale (gradient
    ///   clipping folded into this pass); step ≥ 1 (for bias correction).
    public static func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                              m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, N: Int,
                              learningRate: Float, beta1: Float, beta2: Float, eps: Float,
                              weightDecay: Float, step: Int, gradScale: Float = 1) {
        precondition(step >= 1, "AdamW.update: step must be >= 1 (got \(step))")
        // bias corrections in Double, like torch's Python-side math
        let bc1 = Float(1 - pow(Double(beta1), Double(step)))
        let bc2 = Float(1 - pow(Double(beta2), Double(step)))
        Parallel.chunks(N, minChunk: 1 << 16, align: 16) { r in
            let o = r.lowerBound
            gpt2k_adamw(params + o, grads + o, m + o, v + o, r.count, learningRate, beta1, beta2, eps,
                        weightDecay, bc1, bc2, gradScale)
        }
    }
}
