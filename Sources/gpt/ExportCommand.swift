import ArgumentParser
import Foundation
import GPT2

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a Hugging Face directory (--hf) or an llm.c model file (--llmc).",
        discussion: """
        MODEL: a checkpoint .safetensors, a run directory (its newest checkpoint), a Hugging Face \
        directory, an llm.c .bin, or hf://OWNER/NAME[@REVISION].

        --hf DIR writes config.json, model.safetensors (F32, lm_head tied to wte), \
        generation_config.json and GPT-2's tokenizer (vocab.json, merges.txt, \
        tokenizer_config.json, special_tokens_map.json) for a model with GPT-2's vocabulary, so \
        GPT2LMHeadModel.from_pretrained(DIR) and AutoTokenizer.from_pretrained(DIR) load it. \
        --llmc FILE writes llm.c's model file (train_gpt2.c / train_gpt2.cu load it): version 3 \
        (fp32, vocabulary padded to a multiple of 128), or version 5 (bf16) with --bf16. \
        Every file is written to a temporary name and renamed into place.
        """)

    @Argument(help: "The model to export (checkpoint, run directory, HF directory, llm.c .bin, or hf://).")
    var model: String

    @Option(help: "Write a Hugging Face GPT-2 directory here (created if needed).")
    var hf: String?

    @Option(help: "Write an llm.c model .bin here (llm.c's gpt2_124M.bin format).")
    var llmc: String?

    @Flag(help: "With --llmc: bf16 weights (llm.c version 5, as gpt2_124M_bf16.bin) instead of fp32.")
    var bf16 = false

    func validate() throws {
        if hf == nil && llmc == nil { throw ValidationError("give --hf DIR and/or --llmc FILE") }
        if bf16 && llmc == nil { throw ValidationError("--bf16 applies to --llmc") }
    }

    func run() throws {
        let path = try modelPath(model)
        let gpt = try loadModel(path: path)
        FileHandle.standardError.write(Data("loaded \(path): \(describe(gpt.config))\n".utf8))
        if let dir = hf {
            try exportHFDirectory(gpt, to: dir)
            print("wrote \(dir)")
        }
        if let file = llmc {
            try saveLlmcModel(gpt, to: file, bf16: bf16)
            print("wrote \(file)")
        }
    }

    /// Tokenizer and generation files first, then the weights and config.json (last, so a folder
    /// with a config always has complete weights).
    private func exportHFDirectory(_ gpt: GPT2, to dir: String) throws {
        if gpt.config.vocabSize == GPT2Tokenizer.gpt2.vocabSize {
            try exportHFTokenizer(to: dir, maxLength: gpt.config.maxSeqLen)
        } else {
            FileHandle.standardError.write(Data("note: vocabulary of \(gpt.config.vocabSize) tokens is not GPT-2's; no tokenizer files written\n".utf8))
        }
        try exportHFGenerationConfig(gpt.config, to: dir)
        try exportHFModel(gpt, to: dir)
    }
}
