// Export to a Hugging Face GPT-2 directory that `GPT2LMHeadModel.from_pretrained` loads:
// config.json (transformers' GPT2Config) and model.safetensors with "transformer."-prefixed keys,
// Conv1D weights transposed back to (in, out), wte cut to the real vocabulary (V rows, no padding),
// lm_head omitted (tied to wte). Both files are written atomically.
// Reference: transformers GPT2LMHeadModel.save_pretrained, nanoGPT from_pretrained (the inverse).
import Foundation

/// Writes `model` as a Hugging Face GPT-2 directory (config.json + model.safetensors, F32),
/// loadable with `GPT2LMHeadModel.from_pretrained(directory)` and with `loadHFModel(directory:)`.
/// - Parameters:
///   - model: the model to export.
///   - directory: destination folder, created if missing; existing files of the same names are
///     replaced only once the new ones are complete.
/// - Throws: `FormatWriteError` naming the file that could not be written.
public func exportHFModel(_ model: GPT2, to directory: String) throws {
    let c = model.config
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
        throw FormatWriteError.cannotCreateDirectory(path: directory, reason: error.localizedDescription)
    }
    let dir = directory.hasSuffix("/") ? directory : directory + "/"

    var tensors: [SafeTensorsOutputTensor] = []
    for name in ParameterName.allCases {
        let shape = name.layerShape(c)
        for l in 0..<(name.isPerLayer ? c.numLayers : 1) {
            let src = name.isPerLayer ? model.params.pointer(name, layer: l) : model.params.pointer(name)
            let key = "transformer." + name.hfKey(layer: l)
            if name == .wte {
                // (Vp, C) -> first V rows
                let n = c.vocabSize * c.channels
                tensors.append(SafeTensorsOutputTensor(name: key, shape: [c.vocabSize, c.channels],
                                                       data: UnsafeBufferPointer(start: src, count: n)))
            } else if name.isTransposedInHF {
                // ours (out, in) -> Conv1D (in, out), transposed while writing
                let n = shape[0] * shape[1]
                tensors.append(SafeTensorsOutputTensor(name: key, shape: [shape[1], shape[0]],
                                                       data: UnsafeBufferPointer(start: src, count: n), transposed: true))
            } else {
                tensors.append(SafeTensorsOutputTensor(name: key, shape: shape,
                                                       data: UnsafeBufferPointer(start: src, count: shape.reduce(1, *))))
            }
        }
    }
    // "format": "pt" is what transformers checks before loading safetensors weights.
    try writeSafeTensors(tensors, metadata: ["format": "pt"], to: dir + "model.safetensors")
    // config.json last: a directory with a config always has complete weights.
    let config = Array(hfConfigJSON(c).utf8)
    try AtomicOutputFile.write(to: dir + "config.json") { try $0.write(config) }
}

/// transformers' GPT2Config for `c` as pretty-printed JSON (inference settings: dropouts 0).
func hfConfigJSON(_ c: GPT2Config) -> String {
    var fields: [(String, String)] = [
        ("activation_function", "\"gelu_new\""),
        ("architectures", "[\"GPT2LMHeadModel\"]"),
        ("attn_pdrop", "0.0"),
        ("embd_pdrop", "0.0"),
        ("initializer_range", "0.02"),
        ("layer_norm_epsilon", "1e-05"),
        ("model_type", "\"gpt2\""),
        ("n_ctx", "\(c.maxSeqLen)"),
        ("n_embd", "\(c.channels)"),
        ("n_head", "\(c.numHeads)"),
        ("n_inner", "null"),
        ("n_layer", "\(c.numLayers)"),
        ("n_positions", "\(c.maxSeqLen)"),
        ("reorder_and_upcast_attn", "false"),
        ("resid_pdrop", "0.0"),
        ("scale_attn_by_inverse_layer_idx", "false"),
        ("scale_attn_weights", "true"),
        ("summary_first_dropout", "0.0"),
        ("tie_word_embeddings", "true"),
        ("use_cache", "true"),
        ("vocab_size", "\(c.vocabSize)"),
    ]
    // <|endoftext|> only exists in the GPT-2 vocabulary
    if c.vocabSize > 50256 { fields += [("bos_token_id", "50256"), ("eos_token_id", "50256")] }
    fields.sort { $0.0 < $1.0 }
    return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
}
