// GPT-2 hyperparameters (llm.c's GPT2Config) and named presets.
// The vocabulary is padded to a multiple of 128 for compute (llm.c: 50257 -> 50304); padded
// logits are never sampled and never enter the loss.

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
        (v + multiple - 1) / multiple * multiple
    }

    /// Channels per head (C / NH).
    public var headSize: Int { channels / numHeads }

    /// Checks the invariants the kernels rely on; returns a description of the first violation.
    public var validationError: String? {
        if numLayers < 1 || numHeads < 1 || channels < 1 || maxSeqLen < 1 || vocabSize < 1 {
            return "all sizes must be positive (\(self))"
        }
        if channels % numHeads != 0 { return "channels \(channels) not divisible by heads \(numHeads)" }
        if paddedVocabSize < vocabSize { return "paddedVocabSize \(paddedVocabSize) < vocabSize \(vocabSize)" }
        return nil
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
