// The inference seam: what evaluation and sampling need from a model, implemented by the CPU
// engine (`GPT2`) and the CUDA engine (`CUDABackend`). Validation, `gpt eval loss`, HellaSwag and
// sampling go through it only, so every job runs on whichever engine holds the weights — during
// training, the training engine itself (no host copy).
// Two operations: batched per-token losses (scoring) and incremental decoding with a KV cache.
import Foundation

/// A model that can score tokens and decode.
public protocol InferenceEngine: AnyObject {
    /// Model shape.
    var config: GPT2Config { get }
    /// B·T tokens per `tokenLosses` call that use the engine well (batched scoring packs rows up
    /// to this many; a single longer row is still accepted).
    var preferredTokensPerCall: Int { get }
    /// Next-token cross-entropy at every position of (B,T) `inputs` against (B,T) `targets`,
    /// B·T values row-major. A negative target marks a position that is not scored: its loss is
    /// 0 and the engine may skip its LM head. Throws `InferenceError.tokenOutOfVocabulary` for an
    /// input outside [0, vocabSize) or a target at or above vocabSize, and `.tooLong` for T
    /// beyond the context.
    func tokenLosses(inputs: [Int32], targets: [Int32], B: Int, T: Int) throws -> [Float]
    /// The losses of each item's continuations given its context: result[i][k][j] is the loss
    /// of continuation k's token j (token 0 predicted from the context's last token), in calls of
    /// about `maxTokensPerCall` tokens. Default: whole rows through `tokenLosses`.
    func continuationLosses(_ items: [ContinuationItem], maxTokensPerCall: Int) throws -> [[[Float]]]
    /// A decoder with a KV cache for `samples` sequences of at most `maxLength` positions
    /// (1 ≤ maxLength ≤ config.maxSeqLen).
    func makeDecoder(samples: Int, maxLength: Int) throws -> any TokenDecoder
}

/// Incremental decoding over a KV cache: each call appends tokens and picks the next ones.
public protocol TokenDecoder: AnyObject {
    /// Sequences decoded together (S).
    var samples: Int { get }
    /// Capacity of the cache in positions.
    var maxLength: Int { get }
    /// Positions already in the cache.
    var length: Int { get }
    /// Empties the cache (the next call starts at position 0).
    func reset()
    /// Appends `n` tokens per sample (`tokens` is (S, n), row-major) at positions
    /// length..<length+n, then returns each sample's next token chosen by `sampler` from the
    /// logits of its last position. Random draws: exactly one `rng.nextFloat()` per sample, in
    /// sample order, when `sampler.temperature > 0`; none when greedy (so every engine consumes
    /// the stream identically). Requires length + n ≤ maxLength.
    func next(tokens: [Int32], n: Int, sampler: Sampler, rng: inout SplitMix64) throws -> [Int32]
}

/// Inputs the seam refuses (they come from users: prompts, text files, HellaSwag data).
public enum InferenceError: Error, Equatable, CustomStringConvertible {
    case tokenOutOfVocabulary(id: Int32, index: Int, vocabSize: Int)
    case tooLong(T: Int, maxSeqLen: Int)
    case badShape(String)

    public var description: String {
        switch self {
        case let .tokenOutOfVocabulary(id, index, vocabSize):
            return "token id \(id) at position \(index) is outside the model's vocabulary of \(vocabSize)"
        case let .tooLong(T, maxSeqLen):
            return "\(T) positions exceed the model's context of \(maxSeqLen)"
        case let .badShape(what):
            return what
        }
    }
}

extension InferenceError: LocalizedError {
    public var errorDescription: String? { description }
}

extension InferenceEngine {
    /// Throws unless every id is in [0, vocabSize).
    public func checkTokens(_ ids: [Int32]) throws {
        let V = config.vocabSize
        if let i = ids.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
            throw InferenceError.tokenOutOfVocabulary(id: ids[i], index: i, vocabSize: V)
        }
    }

    /// Checks a `tokenLosses` call's arguments (shared by the engines).
    public func checkScoring(inputs: [Int32], targets: [Int32], B: Int, T: Int) throws {
        guard B >= 1, T >= 1, inputs.count == B * T, targets.count == B * T else {
            throw InferenceError.badShape("tokenLosses: expected B·T = \(B)·\(T) inputs and targets, got \(inputs.count) and \(targets.count)")
        }
        guard T <= config.maxSeqLen else { throw InferenceError.tooLong(T: T, maxSeqLen: config.maxSeqLen) }
        try checkTokens(inputs)
        let V = config.vocabSize
        if let i = targets.firstIndex(where: { Int($0) >= V }) {
            throw InferenceError.tokenOutOfVocabulary(id: targets[i], index: i, vocabSize: V)
        }
    }
}
