import ArgumentParser
import Foundation
import GPT2

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt (KV cache; all samples decoded as one batch).",
        discussion: "Top-k then temperature sampling; --temperature 0 is greedy, as transformers' generate(do_sample=False).")

    @Option(help: "Model: an HF GPT-2 directory, an llm.c .bin, our checkpoint, or a preset (random weights).")
    var model: String

    @Option(help: "Prompt text.")
    var prompt: String = "Hello, I'm a language model,"

    @Option(parsing: .unconditional, help: "Number of samples.")
    var numSamples: Int = 5

    @Option(parsing: .unconditional, help: "New tokens per sample.")
    var maxTokens: Int = 30

    @Option(parsing: .unconditional, help: "Sample from the k most likely tokens (0: all).")
    var topK: Int = 50

    @Option(parsing: .unconditional, help: "Softmax temperature; 0 means greedy.")
    var temperature: Float = 1.0

    @Option(parsing: .unconditional, help: "Random seed.")
    var seed: UInt64 = 42

    @OptionGroup var deviceOptions: DeviceOptions

    @Flag(help: "Print each sample's new token ids (space-separated, one line per sample) instead of text.")
    var ids = false

    func validate() throws {
        try NumberOption.check("--num-samples", numSamples, atLeast: 1, atMost: NumberLimit.batch)
        try NumberOption.check("--max-tokens", maxTokens, atLeast: 0, atMost: NumberLimit.tokens)
        try NumberOption.check("--top-k", topK, atLeast: 0)
        try NumberOption.check("--temperature", temperature, atLeast: 0)
    }

    func run() throws {
        let gpt = try resolveModel(model)
        let tok = GPT2Tokenizer.gpt2
        let promptIds = tok.encode(prompt)
        guard !promptIds.isEmpty else { throw ValidationError("--prompt is empty") }
        try gpt.config.checkTokens(promptIds, source: "the prompt (--prompt)")
        let sampler = Sampler(topK: topK, temperature: temperature)
        let engine = try makeInferenceEngine(gpt, deviceOptions)
        let samples = try Generator(engine: engine, samples: numSamples).generate(prompt: promptIds, maxNewTokens: maxTokens,
                                                                                sampler: sampler, seed: seed)
        for s in samples {
            if ids {
                print(s.map(String.init).joined(separator: " "))
            } else {
                print("> " + (try tok.decode(promptIds + s)))
            }
        }
    }
}
