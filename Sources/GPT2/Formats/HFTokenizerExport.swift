// The tokenizer and generation files of an exported Hugging Face GPT-2 directory, so that
// `AutoTokenizer.from_pretrained(dir)` (GPT2Tokenizer / GPT2TokenizerFast) and
// `GenerationConfig.from_pretrained(dir)` work: vocab.json and merges.txt (OpenAI's encoder.json
// and vocab.bpe, embedded in the binary; the same content HF ships), tokenizer_config.json,
// special_tokens_map.json and generation_config.json. Each file is written atomically.
// Reference: transformers GPT2Tokenizer (vocab_file, merges_file, errors="replace",
// unk/bos/eos "<|endoftext|>", add_prefix_space=False).
import Foundation
import GPT2Resources

/// Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (GPT-2's
/// byte-level BPE) into `directory` (created if missing).
/// - Parameter maxLength: `model_max_length` (the model's context).
/// - Throws: `FormatWriteError` naming the file.
public func exportHFTokenizer(to directory: String, maxLength: Int) throws {
    try createExportDirectory(directory)
    var n1 = 0, n2 = 0
    let encoder = gpt2_resource_encoder_json(&n1)!, merges = gpt2_resource_vocab_bpe(&n2)!
    try AtomicOutputFile.write(to: directory + "/vocab.json") { try $0.write(encoder, count: n1) }
    try AtomicOutputFile.write(to: directory + "/merges.txt") { try $0.write(merges, count: n2) }
    let eot = GPT2Tokenizer.endOfTextString
    let config = """
    {
      "add_bos_token": false,
      "add_prefix_space": false,
      "bos_token": "\(eot)",
      "clean_up_tokenization_spaces": false,
      "eos_token": "\(eot)",
      "errors": "replace",
      "model_max_length": \(maxLength),
      "pad_token": null,
      "tokenizer_class": "GPT2Tokenizer",
      "unk_token": "\(eot)"
    }

    """
    try AtomicOutputFile.write(to: directory + "/tokenizer_config.json") { try $0.write(Array(config.utf8)) }
    let special = "{\n  \"bos_token\": \"\(eot)\",\n  \"eos_token\": \"\(eot)\",\n  \"unk_token\": \"\(eot)\"\n}\n"
    try AtomicOutputFile.write(to: directory + "/special_tokens_map.json") { try $0.write(Array(special.utf8)) }
}

/// Writes generation_config.json (transformers' GenerationConfig: bos/eos = <|endoftext|> when the
/// vocabulary has it).
public func exportHFGenerationConfig(_ config: GPT2Config, to directory: String) throws {
    try createExportDirectory(directory)
    let ids = config.vocabSize > 50256 ? "  \"bos_token_id\": 50256,\n  \"eos_token_id\": 50256\n" : ""
    let text = "{\n" + ids + "}\n"
    try AtomicOutputFile.write(to: directory + "/generation_config.json") { try $0.write(Array(text.utf8)) }
}

private func createExportDirectory(_ directory: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
        throw FormatWriteError.cannotCreateDirectory(path: directory, reason: error.localizedDescription)
    }
}
