import ArgumentParser
import Foundation
import GPT2

/// `--model PRESET|PATH|hf://OWNER/NAME[@REV]`: a preset name gives a randomly initialised model
/// (GPT-2 init, `seed`); anything else goes through `modelPath` and `loadModel(path:)`.
func resolveModel(_ spec: String, seed: UInt64 = 1337) throws -> GPT2 {
    if let config = GPT2Config.preset(spec) {
        let model = GPT2(config: config)
        model.initializeRandom(seed: seed)
        return model
    }
    return try loadModel(path: modelPath(spec))
}

/// The local file or folder a model argument names:
/// - `hf://OWNER/NAME[@REVISION][/SUBFOLDER]`: config.json and safetensors weights fetched into the
///   Hugging Face cache (HF_HOME / HF_HUB_CACHE; HF_TOKEN; HF_HUB_OFFLINE=1 uses the cache only);
/// - a run directory (checkpoint_NNNNNN.safetensors files, no config.json): its newest checkpoint;
/// - any other existing path as it is (HF directory, llm.c .bin, checkpoint).
func modelPath(_ spec: String) throws -> String {
    if HubURI.isHubURI(spec) {
        var uri = try HubURI.parse(spec)
        if uri.repo.kind == .dataset { throw CLIError("'\(spec)' is a dataset; --model takes a model repository (hf://OWNER/NAME)") }
        uri.repo.kind = .model
        let printer = HubProgressPrinter(verb: "fetching \(uri.repo)")
        defer { printer.finish() }
        return try HubClient().fetchModel(uri, progress: printer.callback)
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: spec, isDirectory: &isDirectory) else {
        throw CLIError("'\(spec)' is neither a preset (\(GPT2Config.presetNames.joined(separator: ", "))), an hf:// model nor an existing file or directory")
    }
    if isDirectory.boolValue, !FileManager.default.fileExists(atPath: spec + "/config.json") {
        let checkpoints = ((try? FileManager.default.contentsOfDirectory(atPath: spec)) ?? [])
            .filter { $0.hasPrefix("checkpoint_") && $0.hasSuffix(".safetensors") }.sorted()
        if let newest = checkpoints.last { return (spec.hasSuffix("/") ? spec : spec + "/") + newest }
    }
    return spec
}

/// Human-readable model size, e.g. "124.44M parameters, 12 layers, 12 heads, 768 channels".
func describe(_ c: GPT2Config) -> String {
    String(format: "%.2fM parameters, %d layers, %d heads, %d channels, context %d, vocab %d (padded %d)",
           Double(c.parameterCount) / 1e6, c.numLayers, c.numHeads, c.channels, c.maxSeqLen, c.vocabSize, c.paddedVocabSize)
}
