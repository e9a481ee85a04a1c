import ArgumentParser
import Foundation
import GPT2

/// `--model PRESET|PATH`: a preset name gives a randomly initialised model (GPT-2 init, `seed`);
/// a path loads an HF GPT-2 directory, an llm.c .bin or one of our checkpoints.
func resolveModel(_ spec: String, seed: UInt64 = 1337) throws -> GPT2 {
    if let config = GPT2Config.preset(spec) {
        let model = GPT2(config: config)
        model.initializeRandom(seed: seed)
        return model
    }
    guard FileManager.default.fileExists(atPath: spec) else {
        throw CLIError("'\(spec)' is neither a preset (\(GPT2Config.presetNames.joined(separator: ", "))) nor an existing file or directory")
    }
    return try loadModel(path: spec)
}

/// Human-readable model size, e.g. "124.44M parameters, 12 layers, 12 heads, 768 channels".
func describe(_ c: GPT2Config) -> String {
    String(format: "%.2fM parameters, %d layers, %d heads, %d channels, context %d, vocab %d (padded %d)",
           Double(c.parameterCount) / 1e6, c.numLayers, c.numHeads, c.channels, c.maxSeqLen, c.vocabSize, c.paddedVocabSize)
}
