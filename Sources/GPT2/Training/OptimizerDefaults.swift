// What the CPU and CUDA engines must agree on about the optimizer, written once: AdamW's
// hyperparameters (build-nanogpt's fused AdamW), the weight-decay mask (`ParameterName.isDecayed`:
// 2-D tensors only) and gradient clipping (torch.nn.utils.clip_grad_norm_).

/// build-nanogpt's AdamW: betas (0.9, 0.95), eps 1e-8.
public enum AdamWDefaults {
    public static let beta1: Float = 0.9
    public static let beta2: Float = 0.95
    public static let eps: Float = 1e-8
}

public enum GradientClipping {
    /// The factor that brings a global norm `norm` down to at most `maxNorm`:
    /// maxNorm / (norm + 1e-6) when that is below 1, else 1 (torch's clip_grad_norm_).
    @inlinable
    public static func scale(norm: Float, maxNorm: Float) -> Float {
        let coef = maxNorm / (norm + 1e-6)
        return coef < 1 ? coef : 1
    }
}
