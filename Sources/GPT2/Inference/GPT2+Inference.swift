// The CPU engine on the inference seam: scoring through a forward-only pass (`CPUScorer`),
// decoding through `CPUDecoder`.
import Foundation

extension GPT2: InferenceEngine {
    /// B·T of one scoring call: about as many rows as the training micro-batches use.
    public var preferredTokensPerCall: Int { 1024 }

    public func tokenLosses(inputs: [Int32], targets: [Int32], B: Int, T: Int) throws -> [Float] {
        try checkScoring(inputs: inputs, targets: targets, B: B, T: T)
        return CPUScorer.tokenLosses(model: self, inputs: inputs, targets: targets, B: B, T: T)
    }

    /// Each context once, its continuations over its cached keys and values.
    public func continuationLosses(_ items: [ContinuationItem], maxTokensPerCall: Int) throws -> [[[Float]]] {
        try checkContinuations(items)
        return CPUContinuationScorer.losses(model: self, items: items, maxTokensPerCall: maxTokensPerCall)
    }

    public func makeDecoder(samples: Int, maxLength: Int) throws -> any TokenDecoder {
        try CPUDecoder(model: self, samples: samples, maxLength: maxLength)
    }
}
