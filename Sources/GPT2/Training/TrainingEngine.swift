// What `Trainer` needs from a model that trains: the CPU engine (`GPT2`) and the CUDA engine
// (`CUDABackend`) both conform. One optimizer step is llm.c's list: zeroGrad → (forward →
// backward) per micro-step → averageGradients (data parallel) → clipGradients → update.
// Parameters and AdamW moments move to and from a host `GPT2`, which checkpoints, sampling and
// HellaSwag use. Reference: llm.c train_gpt2.cu's main loop.
import Foundation

/// A model that can take optimizer steps. Methods run in the order above, from one thread.
/// Validation, HellaSwag and samples during training go through its inference side.
public protocol TrainingEngine: InferenceEngine {
    /// Runs (B,T) `inputs`; with `targets`, returns the mean cross-entropy (NaN without).
    func forward(inputs: [Int32], targets: [Int32]?, B: Int, T: Int) throws -> Float
    /// Sets the parameter gradients to zero.
    func zeroGrad() throws
    /// Backpropagates the last forward pass's mean loss times `lossScale`, accumulating (+=).
    func backward(lossScale: Float) throws
    /// Replaces the gradients with their mean over `reducer`'s ranks (called once per step, after
    /// the last micro-step, only when `reducer.worldSize > 1`).
    func averageGradients(over reducer: GradientReducer) throws
    /// Clips the global gradient norm to `maxNorm` (torch's clip_grad_norm_); returns the norm before.
    func clipGradients(maxNorm: Float) throws -> Float
    /// One AdamW step (weight decay on 2-D tensors only); `step` is 1-based.
    func update(learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int) throws
    /// Copies the parameters (and, with `includeOptimizer`, the AdamW moments) into `model`.
    func copyState(to model: GPT2, includeOptimizer: Bool) throws
    /// Replaces the parameters (and, with `includeOptimizer`, the AdamW moments; else they are
    /// zeroed) with `model`'s.
    func loadState(from model: GPT2, includeOptimizer: Bool) throws
}

extension TrainingEngine {
    /// AdamW with build-nanogpt's betas (0.9, 0.95) and eps 1e-8.
    public func update(learningRate: Float, weightDecay: Float, step: Int) throws {
        try update(learningRate: learningRate, beta1: AdamWDefaults.beta1, beta2: AdamWDefaults.beta2, eps: AdamWDefaults.eps,
                   weightDecay: weightDecay, step: step)
    }
}

extension GPT2: TrainingEngine {
    public func averageGradients(over reducer: GradientReducer) throws {
        let g = grads   // applies a pending zero / clip scale first
        try reducer.averageInPlace(g.memory, count: g.count)
    }

    public func copyState(to model: GPT2, includeOptimizer: Bool) throws {
        guard model !== self else { return }
        precondition(model.config == config, "copyState: config mismatch")
        model.params.copy(from: params)
        if includeOptimizer { model.adamM.copy(from: adamM); model.adamV.copy(from: adamV) }
    }

    public func loadState(from model: GPT2, includeOptimizer: Bool) throws {
        guard model !== self else { return }
        precondition(model.config == config, "loadState: config mismatch")
        params.copy(from: model.params)
        if includeOptimizer {
            adamM.copy(from: model.adamM); adamV.copy(from: model.adamV)
        } else {
            adamM.zero(); adamV.zero()
        }
    }
}
