import ArgumentParser
import Foundation
import GPT2

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput (tokenizer, training step, generation).",
        subcommands: [BenchTokenizer.self, BenchTrain.self, BenchGenerate.self])
}

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Encode a UTF-8 file held in memory; last line: `MB/s <number>`.")

    @Argument(help: "UTF-8 text file.")
    var file: String

    @Option(parsing: .unconditional, help: "Encoding threads.")
    var threads: Int = 1

    @Option(parsing: .unconditional, help: "Repetitions (the best is reported).")
    var repeats: Int = 1

    func validate() throws {
        try NumberOption.check("--threads", threads, atLeast: 1, atMost: NumberLimit.count)
        try NumberOption.check("--repeats", repeats, atLeast: 1, atMost: NumberLimit.count)
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read '\(file)'") }
        let bytes = [UInt8](data)
        let tok = GPT2Tokenizer.gpt2
        _ = tok.encode("warm up the tables: é")
        var best = Double.infinity
        var count = 0
        for _ in 0..<max(1, repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            let ids = bytes.withUnsafeBufferPointer { tok.encode(utf8: $0, threads: threads) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = min(best, seconds)
            count = ids.count
        }
        let mbps = Double(bytes.count) / best / 1e6
        print("bytes \(bytes.count) tokens \(count) seconds \(String(format: "%.3f", best)) threads \(threads)")
        print("MB/s \(String(format: "%.2f", mbps))")
    }
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps (forward, backward, AdamW) on random tokens; last line: `tok/s <number>`.")

    @Option(help: "Preset or model path.")
    var model: String = "gpt2"

    @Option(name: .customShort("B"), parsing: .unconditional, help: "Batch size.")
    var batch: Int = 4

    @Option(name: .customShort("T"), parsing: .unconditional, help: "Sequence length.")
    var seq: Int = 64

    @Option(parsing: .unconditional, help: "Timed steps (after one warm-up step).")
    var steps: Int = 5

    @Option(help: "Device: cpu, cuda, or auto (CUDA when usable, else the CPU).")
    var device: ComputeDevice = .cpu

    @Option(help: "CUDA precision: bf16 or fp32.")
    var precision: CUDAPrecision = .bf16

    @Flag(help: "CUDA: after the timed steps, time one step op by op and print the table.")
    var profile = false

    func validate() throws {
        try NumberOption.check("-B", batch, atLeast: 1, atMost: NumberLimit.batch)
        try NumberOption.check("-T", seq, atLeast: 1, atMost: NumberLimit.tokens)
        try NumberOption.check("--steps", steps, atLeast: 1, atMost: NumberLimit.count)
    }

    func run() throws {
        let gpt = try resolveModel(model)
        let c = gpt.config
        guard seq <= c.maxSeqLen else { throw ValidationError("-T \(seq) exceeds the model's context \(c.maxSeqLen)") }
        var rng = SplitMix64(seed: 1)
        let n = batch * seq
        let tokens = (0...n).map { _ in Int32(rng.next() % UInt64(c.vocabSize)) }
        let inputs = Array(tokens[0..<n]), targets = Array(tokens[1...n])
        var engine: any TrainingEngine = gpt
        var context: CUDAContext?
        if try wantsCUDA(device) != nil {
            let ctx = try openCUDA(ordinal: 0, precision: precision, headSize: c.headSize)
            engine = try makeCUDAEngine(gpt, B: batch, T: seq, context: ctx)
            context = ctx
            print("model: \(describe(c)); B=\(batch) T=\(seq); \(describeCUDA(ctx))")
        } else {
            print("model: \(describe(c)); B=\(batch) T=\(seq); threads \(Parallel.threadCount); BLAS: \(BLAS.backendDescription)")
        }
        var times: [Double] = []
        for step in 0...steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let loss = try engine.forward(inputs: inputs, targets: targets, B: batch, T: seq)
            try engine.zeroGrad()
            try engine.backward(lossScale: 1)
            _ = try engine.clipGradients(maxNorm: 1.0)
            try engine.update(learningRate: 1e-4, weightDecay: 0.1, step: step + 1)   // CUDA: synchronises
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if step > 0 { times.append(dt) }
            print(String(format: "step %d loss %.4f %.1f ms", step, loss, dt * 1000))
        }
        let mean = times.reduce(0, +) / Double(max(1, times.count))
        if let context, profile {
            // one more step with every launch and matmul timed on its own (synchronised)
            context.profiling = true
            context.resetProfile()
            _ = try engine.forward(inputs: inputs, targets: targets, B: batch, T: seq)
            try engine.zeroGrad()
            try engine.backward(lossScale: 1)
            _ = try engine.clipGradients(maxNorm: 1.0)
            try engine.update(learningRate: 1e-4, weightDecay: 0.1, step: steps + 2)
            context.profiling = false
            print("profile of one step (each op synchronised):")
            for line in context.profileReport() { print("  " + line) }
        }
        if let context {
            let (free, total) = try context.memoryInfo()
            print(String(format: "GPU memory used %.1f GiB of %.1f", Double(total - free) / 1_073_741_824, Double(total) / 1_073_741_824))
            let mfu = mfuText(context, tokensPerSecond: Double(n) / mean, config: c, T: seq)
            if !mfu.isEmpty { print("MFU" + mfu.dropFirst(6)) }
        } else {
            print(String(format: "peak RSS %.0f MB", peakRSSMegabytes()))
        }
        print(String(format: "tok/s %.1f", Double(n) / mean))
    }
}

struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Time generation with the KV cache (one sample, top-k 50); last line: `tok/s <number>` (new tokens per second).")

    @Option(help: "Preset or model path.")
    var model: String = "gpt2"

    @Option(parsing: .unconditional, help: "Prompt length in tokens.")
    var promptTokens: Int = 8

    @Option(parsing: .unconditional, help: "New tokens.")
    var maxTokens: Int = 64

    @Option(parsing: .unconditional, help: "Repetitions (the best is reported).")
    var repeats: Int = 3

    @Flag(help: "Score the whole vocabulary in fp32 every step (no two-pass LM head), for comparison.")
    var fullHead = false

    func validate() throws {
        try NumberOption.check("--prompt-tokens", promptTokens, atLeast: 1, atMost: NumberLimit.tokens)
        try NumberOption.check("--max-tokens", maxTokens, atLeast: 1, atMost: NumberLimit.tokens)
        try NumberOption.check("--repeats", repeats, atLeast: 1, atMost: NumberLimit.count)
    }

    func run() throws {
        let gpt = try resolveModel(model)
        let c = gpt.config
        guard promptTokens >= 1, promptTokens + maxTokens <= c.maxSeqLen else {
            throw ValidationError("need 1 <= prompt-tokens and prompt-tokens + max-tokens <= \(c.maxSeqLen)")
        }
        let prompt = Array(GPT2Tokenizer.gpt2.encode(String(repeating: "Hello, I'm a language model, ", count: promptTokens)).prefix(promptTokens))
        try c.checkTokens(prompt, source: "the benchmark prompt")
        print("model: \(describe(c)); prompt \(promptTokens) tokens, \(maxTokens) new; threads \(Parallel.threadCount)")
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let decoder = try CPUDecoder(model: gpt, samples: 1, maxLength: promptTokens + maxTokens)
            decoder.twoPassHead = !fullHead
            let t0 = DispatchTime.now().uptimeNanoseconds
            var rng = SplitMix64(seed: 42)
            let sampler = Sampler(topK: 50, temperature: 1)
            var next = try decoder.next(tokens: prompt, n: prompt.count, sampler: sampler, rng: &rng)
            for _ in 1..<max(1, maxTokens) { next = try decoder.next(tokens: next, n: 1, sampler: sampler, rng: &rng) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        print(String(format: "tok/s %.1f", Double(maxTokens) / best))
    }
}

/// Peak resident set size of this process (VmHWM), in MB.
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}
