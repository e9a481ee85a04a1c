// Hugging Face GPT-2 directories: config.json + model.safetensors (or a sharded
// model.safetensors.index.json). Accepts both key layouts: "transformer.h.0.attn.c_attn.weight"
// (files saved by recent transformers) and "h.0.attn.c_attn.weight" (the hub's original
// checkpoints, which also carry the non-parameter buffers attn.bias / attn.masked_bias).
// Conv1D weights are stored (in, out) and transposed into llm.c's (out, in); wte gets zero
// padding rows up to paddedVocabSize. Reference: nanoGPT GPT.from_pretrained.
import Foundation
import GPT2Kernels

/// Errors loading or saving a Hugging Face GPT-2 directory.
public enum HFModelError: LocalizedError {
    case missingFile(path: String)
    /// The path exists but cannot be read as a file (a directory, a FIFO, permission denied...).
    case unreadable(path: String, reason: String)
    case badConfig(path: String, detail: String)
    case unsupportedConfig(path: String, detail: String)
    case badIndex(path: String, detail: String)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        switch self {
        case .missingFile(let path):
            return "'\(path)' not found; a Hugging Face GPT-2 directory needs config.json and model.safetensors (save_pretrained writes both)"
        case .unreadable(let path, let reason):
            return "cannot read '\(path)': \(reason); a Hugging Face GPT-2 directory needs config.json and model.safetensors files"
        case .badConfig(let path, let detail):
            return "bad GPT-2 config '\(path)': \(detail)"
        case .unsupportedConfig(let path, let detail):
            return "unsupported GPT-2 config '\(path)': \(detail)"
        case .badIndex(let path, let detail):
            return "bad safetensors index '\(path)': \(detail)"
        }
    }
}

/// The keys HF's GPT2Config uses for each size (the first is the current name).
private let hfConfigKeys: [GPT2ConfigField: [String]] = [
    .maxSeqLen: ["n_positions", "n_ctx"], .vocabSize: ["vocab_size"], .numLayers: ["n_layer", "num_hidden_layers"],
    .numHeads: ["n_head", "num_attention_heads"], .channels: ["n_embd", "hidden_size"],
]

/// The contents of a file that must be a regular file of an HF directory (never blocks on a FIFO).
private func readHFFile(_ path: String) throws -> Data {
    switch FileKind(path: path) {
    case .regular: break
    case .missing: throw HFModelError.missingFile(path: path)
    case let kind: throw HFModelError.unreadable(path: path, reason: FileKind.regularFileProblem(path) ?? kind.description)
    }
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw HFModelError.unreadable(path: path, reason: (error as NSError).localizedDescription)
    }
}

/// Reads the model shape from an HF GPT-2 `config.json`
/// (n_layer, n_head, n_embd, n_positions or n_ctx, vocab_size). Every size is bounded
/// (`GPT2ConfigField.limit`) before it is used.
public func readHFConfig(path: String) throws -> GPT2Config {
    let data = try readHFFile(path)
    guard let obj = try? JSONSerialization.jsonObject(with: data), let json = obj as? [String: Any] else {
        throw HFModelError.badConfig(path: path, detail: "not a JSON object")
    }
    func size(_ field: GPT2ConfigField) throws -> Int {
        let keys = hfConfigKeys[field]!
        guard let key = keys.first(where: { json[$0] != nil && !(json[$0] is NSNull) }) else {
            throw HFModelError.badConfig(path: path, detail: "missing '\(keys[0])'")
        }
        guard let n = json[key] as? NSNumber else {
            throw HFModelError.badConfig(path: path, detail: "'\(key)' is not a number")
        }
        if let problem = GPT2ConfigField.sizeProblem(n.doubleValue, field: field, naming: { _ in key }) {
            throw HFModelError.badConfig(path: path, detail: problem)
        }
        return Int(n.doubleValue)
    }
    let maxSeqLen = try size(.maxSeqLen), vocabSize = try size(.vocabSize), numLayers = try size(.numLayers)
    let numHeads = try size(.numHeads), channels = try size(.channels)
    if let inner = json["n_inner"], !(inner is NSNull) {
        guard let n = inner as? NSNumber, n.doubleValue == Double(4 * channels) else {
            throw HFModelError.unsupportedConfig(path: path, detail: "n_inner \(inner) (this engine uses 4 * n_embd = \(4 * channels))")
        }
    }
    if let act = json["activation_function"] as? String, !["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(act) {
        throw HFModelError.unsupportedConfig(path: path, detail: "activation_function '\(act)' (this engine implements the tanh GELU, 'gelu_new')")
    }
    if let eps = json["layer_norm_epsilon"] as? NSNumber, !(abs(eps.doubleValue - 1e-5) <= 1e-9) {
        throw HFModelError.unsupportedConfig(path: path, detail: "layer_norm_epsilon \(eps) (this engine uses 1e-5)")
    }
    for flag in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] where (json[flag] as? Bool) == true {
        throw HFModelError.unsupportedConfig(path: path, detail: "\(flag) = true")
    }
    let config = GPT2Config(maxSeqLen: maxSeqLen, vocabSize: vocabSize, numLayers: numLayers, numHeads: numHeads, channels: channels)
    let names: (GPT2ConfigField) -> String = { hfConfigKeys[$0]?.first ?? "padded vocab_size" }
    if let problem = config.problem(naming: names) { throw HFModelError.badConfig(path: path, detail: problem) }
    return config
}

/// Loads a Hugging Face GPT-2 directory (config.json + model.safetensors or a sharded index).
/// Every tensor's shape is checked against config.json before the model is allocated, so a
/// config that does not match its weights cannot request a huge allocation. Tensors carrying a
/// CRC-32C (files written by `exportHFModel`) are verified.
/// - Parameter directory: the folder written by `save_pretrained`.
/// - Returns: a model with the file's parameters (F32, F16 or BF16 are converted to Float).
/// - Throws: `HFModelError` or `SafeTensorsError` naming the file and tensor.
public func loadHFModel(directory: String) throws -> GPT2 {
    switch FileKind(path: directory) {
    case .directory: break
    case .missing: throw HFModelError.missingFile(path: directory)
    case let kind: throw HFModelError.unreadable(path: directory, reason: "it is \(kind.description), not a Hugging Face model directory")
    }
    let dir = URL(fileURLWithPath: directory)
    let config = try readHFConfig(path: dir.appendingPathComponent("config.json").path)
    let source = try HFTensorSource(directory: dir)
    // "transformer." prefix (GPT2LMHeadModel) or none (GPT2Model / original hub files)
    let prefix = source.has("transformer.wte.weight") ? "transformer." : ""
    let C = config.channels
    /// The shape HF stores: wte (V, C), Conv1D weights (in, out), the rest as ours per layer.
    func storedShape(_ name: ParameterName) -> [Int] {
        let layerShape = name.layerShape(config)
        if name == .wte { return [config.vocabSize, C] }
        return name.isTransposedInHF ? [layerShape[1], layerShape[0]] : layerShape
    }
    for name in ParameterName.allCases {
        for l in 0..<(name.isPerLayer ? config.numLayers : 1) {
            let key = prefix + name.hfKey(layer: l)
            let file = try source.file(for: key)
            let found = try file.info(key).shape
            if found != storedShape(name) {
                throw SafeTensorsError.shapeMismatch(path: file.path, tensor: key, found: found, expected: storedShape(name))
            }
        }
    }
    let model = GPT2(config: config)
    for name in ParameterName.allCases {
        let layers = name.isPerLayer ? config.numLayers : 1
        let shape = storedShape(name)
        for l in 0..<layers {
            let key = prefix + name.hfKey(layer: l)
            let file = try source.file(for: key)
            let dst = name.isPerLayer ? model.params.pointer(name, layer: l) : model.params.pointer(name)
            if name.isTransposedInHF {
                // Conv1D (in, out) -> (out, in)
                let inDim = shape[0], outDim = shape[1]
                let tmp = try file.floats(key, expectedShape: shape)
                tmp.withUnsafeBufferPointer { src in
                    let box = UncheckedSendable(value: (dst, src.baseAddress!))
                    Parallel.chunks(outDim, minChunk: 64, align: 32) { r in
                        gpt2k_transpose(box.value.0, box.value.1, inDim, outDim, r.lowerBound, r.upperBound)
                    }
                }
            } else {
                // wte: (V, C) into the first V rows of (Vp, C); padding rows stay 0
                try file.read(key, expectedShape: shape, into: dst)
            }
        }
    }
    return model
}

/// Maps tensor names to the (possibly sharded) safetensors files of an HF directory.
struct HFTensorSource {
    var files: [String: SafeTensorsFile] = [:]   // by file name
    var owner: [String: String] = [:]            // tensor -> file name
    let primary: String

    init(directory: URL) throws {
        let single = directory.appendingPathComponent("model.safetensors").path
        let index = directory.appendingPathComponent("model.safetensors.index.json").path
        if FileKind(path: single) != .missing {
            let f = try SafeTensorsFile(path: single)
            files["model.safetensors"] = f
            for k in f.tensors.keys { owner[k] = "model.safetensors" }
            primary = single
        } else if FileKind(path: index) != .missing {
            let data = try readHFFile(index)
            guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String] else {
                throw HFModelError.badIndex(path: index, detail: "missing 'weight_map' object")
            }
            for (tensor, file) in map {
                guard !file.contains("/") else { throw HFModelError.badIndex(path: index, detail: "shard name '\(file)' has a path separator") }
                if files[file] == nil { files[file] = try SafeTensorsFile(path: directory.appendingPathComponent(file).path) }
                owner[tensor] = file
            }
            primary = index
        } else {
            throw HFModelError.missingFile(path: single)
        }
    }

    func has(_ key: String) -> Bool { owner[key] != nil }

    func file(for key: String) throws -> SafeTensorsFile {
        guard let name = owner[key], let f = files[name] else {
            throw SafeTensorsError.missingTensor(path: primary, tensor: key)
        }
        return f
    }
}
