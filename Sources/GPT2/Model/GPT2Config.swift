// GPT-2 hyperparameters (llm.c's GPT2Config) and named presets.
// The vocabulary is padded to a multiple of 128 for compute (llm.c: 50257 -> 50304); padded
// logits are never sampled and never enter the loss.
import Foundation

/// Shape of a GPT-2 model.
public struct GPT2Config: Codable, Equatable, Sendable {
    /// Maximum sequence length (positions in `wpe`), 1024 for GPT-2.
    public var maxSeqLen: Int
    /// Real vocabulary size, 50257 for GPT-2.
    public var vocabSize: Int
    /// Vocabulary rounded up to a multiple of 128 (50304), the row count of `wte` and of the logits.
    public var paddedVocabSize: Int
    /// Number of transformer blocks (L).
    public var numLayers: Int
    /// Attention heads per block (NH).
    public var numHeads: Int
    /// Embedding width (C).
    public var channels: Int

    /// - Parameter paddedVocabSize: defaults to `vocabSize` rounded up to a multiple of 128.
    public init(maxSeqLen: Int = 1024, vocabSize: Int = 50257, paddedVocabSize: Int? = nil,
                numLayers: Int, numHeads: Int, channels: Int) {
        self.maxSeqLen = maxSeqLen
        self.vocabSize = vocabSize
        self.paddedVocabSize = paddedVocabSize ?? GPT2Config.padVocab(vocabSize)
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.channels = channels
    }

    /// `v` rounded up to a multiple of `multiple` (128, as llm.c).
    public static func padVocab(_ v: Int, multiple: Int = 128) -> Int {
        v > Int.max - multiple ? v : (v + multiple - 1) / multiple * multiple
    }

    /// Channels per head (C / NH).
    public var headSize: Int { channels / numHeads }

    /// Checks the invariants the kernels rely on and the bounds of `GPT2ConfigField.limit`;
    /// returns a description of the first violation.
    public var validationError: String? { problem() }

    /// The first violated bound or invariant, described with the names a file uses for the
    /// fields (HF's "n_embd", llm.c's header words...), or nil. This is the one check every
    /// model loader applies before allocating.
    /// - Parameter name: the name of each field in the source (default: the property name).
    public func problem(naming name: (GPT2ConfigField) -> String = { $0.rawValue }) -> String? {
        for field in GPT2ConfigField.allCases {
            if let p = GPT2ConfigField.sizeProblem(self[field], field: field, naming: name) { return p }
        }
        if channels % numHeads != 0 {
            return "\(name(.channels)) \(channels) is not divisible by \(name(.numHeads)) \(numHeads)"
        }
        if paddedVocabSize < vocabSize {
            return "\(name(.paddedVocabSize)) \(paddedVocabSize) is smaller than \(name(.vocabSize)) \(vocabSize)"
        }
        return nil
    }

    /// The value of `field`.
    public subscript(field: GPT2ConfigField) -> Int {
        switch field {
        case .maxSeqLen: return maxSeqLen
        case .vocabSize: return vocabSize
        case .paddedVocabSize: return paddedVocabSize
        case .numLayers: return numLayers
        case .numHeads: return numHeads
        case .channels: return channels
        }
    }

    /// Checks that every id in `ids` is a token of this model, `0 ..< vocabSize`: ids that come
    /// from a tokenizer, a file or a user can exceed a small model's vocabulary, and the kernels
    /// only check them with a precondition.
    /// - Parameters:
    ///   - ids: token ids.
    ///   - source: what the ids are, for the message ("the prompt", "'val.txt'", ...).
    /// - Throws: `TokenRangeError.outOfVocabulary` naming the source, the position and the id.
    public func checkTokens<C: Collection>(_ ids: C, source: String) throws(TokenRangeError) where C.Element: BinaryInteger {
        let v = vocabSize
        for (i, t) in ids.enumerated() where t < 0 || t >= v {
            throw .outOfVocabulary(source: source, index: i, token: Int(t), vocabSize: v)
        }
    }

    /// Number of trainable parameters, counting `wte` with `vocabSize` rows (as nanoGPT reports
    /// it: 124,439,808 for GPT-2 small).
    public var parameterCount: Int {
        ParameterName.allCases.reduce(0) { $0 + $1.count(self) } - (paddedVocabSize - vocabSize) * channels
    }

    /// Named configurations: "gpt2" (124M), "gpt2-medium" (350M), "gpt2-large" (774M),
    /// "gpt2-xl" (1558M), and "dN" for N layers, N heads and 64·N channels ("d12" = "gpt2").
    /// All use vocab 50257 (padded 50304) and 1024 positions.
    public static func preset(_ name: String) -> GPT2Config? {
        switch name.lowercased() {
        case "gpt2", "gpt2-small", "124m": return GPT2Config(numLayers: 12, numHeads: 12, channels: 768)
        case "gpt2-medium", "350m": return GPT2Config(numLayers: 24, numHeads: 16, channels: 1024)
        case "gpt2-large", "774m": return GPT2Config(numLayers: 36, numHeads: 20, channels: 1280)
        case "gpt2-xl", "1558m": return GPT2Config(numLayers: 48, numHeads: 25, channels: 1600)
        default:
            let s = name.lowercased()
            guard s.hasPrefix("d"), let n = Int(s.dropFirst()), n >= 1, n <= 64 else { return nil }
            return GPT2Config(numLayers: n, numHeads: n, channels: 64 * n)
        }
    }

    /// Names `preset(_:)` understands, for help texts.
    public static let presetNames = ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "d2", "d4", "d6", "d12", "d24", "d36", "d48"]
}

/// A size of a `GPT2Config`, with the bound that sizes read from files (config.json, llm.c
/// headers, checkpoints) and command lines must respect: far above any GPT-2, low enough that no
/// parameter or activation size can overflow `Int`.
public enum GPT2ConfigField: String, CaseIterable, Sendable {
    case maxSeqLen, vocabSize, paddedVocabSize, numLayers, numHeads, channels

    /// The largest accepted value (the smallest is 1).
    public var limit: Int {
        switch self {
        case .maxSeqLen: return 1 << 20
        case .vocabSize: return 1 << 24
        case .paddedVocabSize: return (1 << 24) + 1024
        case .numLayers: return 1 << 12
        case .numHeads: return 1 << 12
        case .channels: return 1 << 16
        }
    }

    /// Describes a value outside `1 ... limit`, or nil. Takes a Double so that sizes read from
    /// JSON (1e13, 2^62, 1.5) are checked before they are converted to Int.
    public static func sizeProblem(_ value: Double, field: GPT2ConfigField,
                                   naming name: (GPT2ConfigField) -> String = { $0.rawValue }) -> String? {
        let shown = value.rounded() == value && abs(value) <= 9.2e18 ? String(Int64(value)) : "\(value)"
        if value.rounded() != value { return "\(name(field)) \(shown) is not an integer" }
        if value < 1 || value > Double(field.limit) { return "\(name(field)) \(shown) is outside [1, \(field.limit)]" }
        return nil
    }

    /// The same check for an Int.
    public static func sizeProblem(_ value: Int, field: GPT2ConfigField,
                                   naming name: (GPT2ConfigField) -> String = { $0.rawValue }) -> String? {
        value >= 1 && value <= field.limit ? nil : "\(name(field)) \(value) is outside [1, \(field.limit)]"
    }
}

/// A token id outside a model's vocabulary.
public enum TokenRangeError: LocalizedError, Equatable {
    /// Id `token` at position `index` of `source` is not in `0 ..< vocabSize`.
    case outOfVocabulary(source: String, index: Int, token: Int, vocabSize: Int)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        switch self {
        case let .outOfVocabulary(source, index, token, vocabSize):
            return "\(source): token \(token) at position \(index) is outside the model's vocabulary of \(vocabSize) "
                + "(ids 0...\(vocabSize - 1)); use a model made for this tokenizer (GPT-2: vocab_size 50257)"
        }
    }
}
