// Hugging Face GPT-2 directories: config.json + model.safetensors (or a sharded
// model.safetensors.index.json). Accepts both key layouts: "transformer.h.0.attn.c_attn.weight"
// (files saved by recent transformers) and "h.0.attn.c_attn.weight" (the hub's original
// checkpoints, which also carry the non-parameter buffers attn.bias / attn.masked_bias).
// Conv1D weights are stored (in, out) and transposed into llm.c's (out, in); wte gets zero
// padding rows up to paddedVocabSize. Reference: nanoGPT GPT.from_pretrained.
import Foundation

/// Errors loading or saving a Hugging Face GPT-2 directory.
public enum HFModelError: LocalizedError {
    case missingFile(path: String)
    case badConfig(path: String, detail: String)
    case unsupportedConfig(path: String, detail: String)
    case badIndex(path: String, detail: String)

    public var errorDescription: String? {
        switch self {
        case .missingFile(let path):
            return "'\(path)' not found; a Hugging Face GPT-2 directory needs config.json and model.safetensors (save_pretrained writes both)"
        case .badConfig(let path, let detail):
            return "bad GPT-2 config '\(path)': \(detail)"
        case .unsupportedConfig(let path, let detail):
            return "unsupported GPT-2 config '\(path)': \(detail)"
        case .badIndex(let path, let detail):
            return "bad safetensors index '\(path)': \(detail)"
        }
    }
}

/// Reads the model shape from an HF GPT-2 `config.json`
/// (n_layer, n_head, n_embd, n_positions or n_ctx, vocab_size).
public func readHFConfig(path: String) throws -> GPT2Config {
    guard let data = FileManager.default.contents(atPath: path) else { throw HFModelError.missingFile(path: path) }
    guard let obj = try? JSONSerialization.jsonObject(with: data), let json = obj as? [String: Any] else {
        throw HFModelError.badConfig(path: path, detail: "not a JSON object")
    }
    func int(_ keys: String...) throws -> Int {
        for k in keys { if let n = json[k] as? NSNumber, n.doubleValue == n.doubleValue.rounded(), n.intValue > 0 { return n.intValue } }
        throw HFModelError.badConfig(path: path, detail: "missing or non-positive integer '\(keys[0])'")
    }
    if let inner = json["n_inner"] as? NSNumber, let embd = json["n_embd"] as? NSNumber, inner.intValue != 4 * embd.intValue {
        throw HFModelError.unsupportedConfig(path: path, detail: "n_inner \(inner) (this engine uses 4 * n_embd)")
    }
    if let act = json["activation_function"] as? String, !["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(act) {
        throw HFModelError.unsupportedConfig(path: path, detail: "activation_function '\(act)' (this engine implements the tanh GELU, 'gelu_new')")
    }
    if let eps = json["layer_norm_epsilon"] as? NSNumber, abs(eps.doubleValue - 1e-5) > 1e-9 {
        throw HFModelError.unsupportedConfig(path: path, detail: "layer_norm_epsilon \(eps) (this engine uses 1e-5)")
    }
    for flag in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] where (json[flag] as? Bool) == true {
        throw HFModelError.unsupportedConfig(path: path, detail: "\(flag) = true")
    }
    let config = GPT2Config(maxSeqLen: try int("n_positions", "n_ctx"), vocabSize: try int("vocab_size"),
                            numLayers: try int("n_layer", "num_hidden_layers"), numHeads: try int("n_head", "num_attention_heads"),
                            channels: try int("n_embd", "hidden_size"))
    if let problem = config.validationError { throw HFModelError.badConfig(path: path, detail: problem) }
    return config
}

/// Loads a Hugging Face GPT-2 directory (config.json + model.safetensors or a sharded index).
/// - Parameter directory: the folder written by `save_pretrained`.
/// - Returns: a model with the file's parameters (F32, F16 or BF16 are converted to Float).
/// - Throws: `HFModelError` or `SafeTensorsError` naming the file and tensor.
public func loadHFModel(directory: String) throws -> GPT2 {
    let dir = URL(fileURLWithPath: directory)
    let config = try readHFConfig(path: dir.appendingPathComponent("config.json").path)
    let model = GPT2(config: config)
    let source = try HFTensorSource(directory: dir)
    // "transformer." prefix (GPT2LMHeadModel) or none (GPT2Model / original hub files)
    let prefix = source.has("transformer.wte.weight") ? "transformer." : ""
    let C = config.channels
    for name in ParameterName.allCases {
        let layers = name.isPerLayer ? config.numLayers : 1
        let layerShape = name.layerShape(config)
        for l in 0..<layers {
            let key = prefix + name.hfKey(layer: l)
            let file = try source.file(for: key)
            let dst = name.isPerLayer ? model.params.pointer(name, layer: l) : model.params.pointer(name)
            switch name {
            case .wte:   // (V, C) into the first V rows of (Vp, C); padding rows stay 0
                try file.read(key, expectedShape: [config.vocabSize, C], into: dst)
            case _ where name.isTransposedInHF:
                // Conv1D (in, out) -> (out, in)
                let outDim = layerShape[0], inDim = layerShape[1]
                let tmp = try file.floats(key, expectedShape: [inDim, outDim])
                tmp.withUnsafeBufferPointer { src in
                    for i in 0..<inDim { for o in 0..<outDim { dst[o * inDim + i] = src[i * outDim + o] } }
                }
            default:
                try file.read(key, expectedShape: layerShape, into: dst)
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
        if FileManager.default.fileExists(atPath: single) {
            let f = try SafeTensorsFile(path: single)
            files["model.safetensors"] = f
            for k in f.tensors.keys { owner[k] = "model.safetensors" }
            primary = single
        } else if let data = FileManager.default.contents(atPath: index) {
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
