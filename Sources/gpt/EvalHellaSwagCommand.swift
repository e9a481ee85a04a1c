import ArgumentParser
import Foundation
import GPT2

struct EvalHellaSwag: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hellaswag",
        abstract: "HellaSwag accuracy, scored as build-nanogpt's hellaswag.py; prints acc and acc_norm.",
        discussion: """
        Each ending is appended (as " " + ending) to the context; acc counts the ending with the \
        smallest summed cross-entropy over its tokens, acc_norm the smallest mean (the number \
        build-nanogpt and llm.c report: GPT-2 124M scores 0.2955). --data takes the official \
        jsonl or llm.c's hellaswag_val.bin. Rows longer than the model's context keep their last \
        tokens (the start of the context is dropped). Under mpirun/srun the examples are split \
        across ranks. --download DIR fetches the official validation file (needs curl or wget).
        """)

    @Option(help: "Model: an HF GPT-2 directory, an llm.c .bin, our checkpoint, or a preset.")
    var model: String?

    @Option(help: "hellaswag_val.jsonl (official) or hellaswag_val.bin (llm.c dev/data/hellaswag.py).")
    var data: String?

    @Option(parsing: .unconditional, help: "Score only the first N examples.")
    var limit: Int?

    @Option(help: "Fetch the official validation set into this directory and exit.")
    var download: String?

    @Option(help: "URL for --download.")
    var url: String = HellaSwag.officialURL

    @Option(parsing: .unconditional, help: "Most tokens (rows × length) per forward pass; examples are packed up to it (default: what the engine prefers, 1024 on the CPU).")
    var tokensPerForward: Int?

    @OptionGroup var deviceOptions: DeviceOptions

    @Flag(help: "No progress line on stderr.")
    var quiet = false

    func validate() throws {
        if download == nil && (model == nil || data == nil) {
            throw ValidationError("give --model and --data, or --download DIR")
        }
        if download != nil && (model != nil || data != nil) {
            throw ValidationError("--download only fetches the file; run again with --model and --data to score it")
        }
        try NumberOption.check("--limit", limit, atLeast: 1)
        try NumberOption.check("--tokens-per-forward", tokensPerForward, atLeast: 1, atMost: NumberLimit.tokens * NumberLimit.batch)
    }

    func run() throws {
        if let download {
            let path = try HellaSwag.download(url: url, directory: download)
            print("downloaded \(url) to \(path)")
            return
        }
        let group = try ProcessGroup.start()
        try group.run {
            let gpt = try resolveModel(model!)
            let examples = try HellaSwag.load(path: data!, limit: limit)
            try HellaSwag.validate(examples, vocabSize: gpt.config.vocabSize)
            let mine = (examples.count - group.rank + group.worldSize - 1) / group.worldSize
            let showProgress = !quiet && group.isMain
            let progress = ProgressLine()
            let engine = try makeInferenceEngine(gpt, deviceOptions)
            let t0 = Date()
            let local = try evaluateHellaSwag(engine: engine, examples: examples, rank: group.rank, worldSize: group.worldSize,
                                          maxTokensPerForward: tokensPerForward) { r in
                guard showProgress else { return }
                let rate = Double(r.total) / max(Date().timeIntervalSince(t0), 1e-9)
                progress.update(String(format: "hellaswag %d/%d | acc_norm %.4f | %.1f examples/s", r.total, mine, r.accNorm, rate))
            }
            progress.finish(showingLast: false)
            let seconds = Date().timeIntervalSince(t0)
            let r = try local.summed(over: group.reducer)
            if showProgress {
                // Scoring alone (after loading), as benchmarks of hellaswag.py time their loop.
                FileHandle.standardError.write(Data(String(format: "scored %d examples in %.2f s (%.1f examples/s)\n",
                                                           r.total, seconds, Double(r.total) / max(seconds, 1e-9)).utf8))
            }
            group.say("examples \(r.total)")
            group.say(String(format: "acc %.4f (%d/%d)", r.acc, r.correct, r.total))
            group.say(String(format: "acc_norm %.4f (%d/%d)", r.accNorm, r.correctNorm, r.total))
        }
    }
}
