// The GPU on the inference seam. `CUDAInferenceEngine` holds only a floatX copy of the weights
// (no gradients, no AdamW moments, no training activations): `gpt eval loss`, `gpt eval
// hellaswag` and `gpt sample` with `--device cuda`. The training engine `CUDABackend` conforms too,
// reading its own live weights, so validation, HellaSwag and samples during CUDA training never
// copy the model to the host. Both score with `CUDAScorer` (CUDAForward.swift) and decode with
// `CUDADecoder`.
import Foundation

/// A model's weights on the GPU, for scoring and decoding.
public final class CUDAInferenceEngine: InferenceEngine, @unchecked Sendable {
    public let config: GPT2Config
    public let context: CUDAContext
    /// floatX weights in ParameterTensors layout.
    let parameters: CUDABuffer
    let weights: CUDAWeights
    let scorer: CUDAScorer

    /// Uploads `model`'s weights (rounded to floatX on the device).
    public init(model: GPT2, context: CUDAContext) throws {
        let c = model.config
        precondition(c.headSize == context.headSize, "context compiled for head size \(context.headSize), model has \(c.headSize)")
        config = c
        self.context = context
        let count = model.params.count
        parameters = try context.allocateX(count)
        try context.uploadX(parameters.pointer, model.params.memory, count: count)
        weights = CUDAWeights(config: c, base: parameters.pointer, elementSize: context.precision.elementSize)
        scorer = CUDAScorer(context: context, config: c)
    }

}

/// An inference engine on the GPU of `context` holding `model`'s weights.
public func makeCUDAInferenceEngine(model: GPT2, context: CUDAContext) throws -> any InferenceEngine {
    try CUDAInferenceEngine(model: model, context: context)
}

/// What both GPU engines hold: the seam's scoring and decoding read `weights` where they are.
/// For `CUDABackend` those are the live training weights, so scores and samples see the latest
/// update with no host copy.
protocol CUDAWeightsOnDevice: InferenceEngine, AnyObject {
    var context: CUDAContext { get }
    var weights: CUDAWeights { get }
    var scorer: CUDAScorer { get }
}

extension CUDAWeightsOnDevice {
    public var preferredTokensPerCall: Int { scorer.preferredTokensPerCall }

    public func tokenLosses(inputs: [Int32], targets: [Int32], B: Int, T: Int) throws -> [Float] {
        try checkScoring(inputs: inputs, targets: targets, B: B, T: T)
        return try scorer.tokenLosses(weights: weights, inputs: inputs, targets: targets, B: B, T: T)
    }

    public func makeDecoder(samples: Int, maxLength: Int) throws -> any TokenDecoder {
        try CUDADecoder(context: context, weights: weights, owner: self, samples: samples, maxLength: maxLength)
    }
}

extension CUDAInferenceEngine: CUDAWeightsOnDevice {}
extension CUDABackend: CUDAWeightsOnDevice {}
