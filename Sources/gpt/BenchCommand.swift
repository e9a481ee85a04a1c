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

    @OptionGroup var deviceOptions: DeviceOptions

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
        if try deviceOptions.cudaReport() != nil {
            let ctx = try openCUDA(ordinal: 0, precision: deviceOptions.cudaPrecision, headSize: c.headSize)
            engine = try makeCUDAEngine(gpt, B: batch, T: seq, context: ctx)
            context = ctx
            print("model: \(describe(c)); B=\(batch) T=\(seq); \(describeCUDA(ctx))")
        } else {
            let choice = try deviceOptions.cpuPrecision()
            gpt.precision = choice.path
            print("model: \(describe(c)); B=\(batch) T=\(seq); threads \(Parallel.threadCount); BLAS: \(BLAS.backendDescription)")
            print(choice.description)
        }
        var times: [Double] = []
        var usage = StepUsage()
        var waits: [Double] = [], cpus: [Double] = []
        for step in 0...steps {
            if step == 1 { usage = StepUsage() }   // count the timed steps only
            let s0 = SchedStat.read()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let loss = try engine.forward(inputs: inputs, targets: targets, B: batch, T: seq)
            try engine.zeroGrad()
            try engine.backward(lossScale: 1)
            _ = try engine.clipGradients(maxNorm: 1.0)
            try engine.update(learningRate: 1e-4, weightDecay: 0.1, step: step + 1)   // CUDA: synchronises
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if step > 0 { times.append(dt) }
            if let s0, let s1 = SchedStat.read() {
                // CPU time of all our threads, and their time runnable but waiting for a CPU
                let cpu = (s1.cpu - s0.cpu) / 1e6, wait = (s1.wait - s0.wait) / 1e6
                if step > 0 { waits.append(wait / 1000); cpus.append(cpu / 1000) }
                print(String(format: "step %d loss %.4f %.1f ms (threads: cpu %.0f ms, waiting for a CPU %.0f ms)", step, loss, dt * 1000, cpu, wait))
            } else {
                print(String(format: "step %d loss %.4f %.1f ms", step, loss, dt * 1000))
            }
        }
        let mean = times.reduce(0, +) / Double(max(1, times.count))
        let spread = StepSpread(times)
        print(spread.description)
        if waits.count == times.count, times.count >= 2 {
            // Separates our own variance (CPU time of the work) from time lost to other processes.
            let c = StepSpread(cpus)
            print(String(format: "CPU time of our threads per step: median %.1f ms, IQR %.1f%% of median; run-queue wait: median %.1f ms, max %.1f ms; corr(step time, wait) %.2f",
                         c.median * 1000, (c.q3 - c.q1) / c.median * 100, StepSpread(waits).median * 1000,
                         StepSpread(waits).max * 1000, correlation(times, waits)))
        }
        if context == nil { print(usage.perStep(steps)) }
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
        print(String(format: "tok/s mean %.1f, median %.1f", Double(n) / mean, Double(n) / spread.median))
        print(String(format: "tok/s %.1f", Double(n) / spread.median))
    }
}

/// Pearson correlation of two equally long series (NaN when either is constant).
func correlation(_ x: [Double], _ y: [Double]) -> Double {
    let n = Double(x.count), mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
    var sxy = 0.0, sxx = 0.0, syy = 0.0
    for i in 0..<x.count { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my) }
    return sxy / (sxx * syy).squareRoot()
}

/// Median, min–max and interquartile range of step times.
struct StepSpread: CustomStringConvertible {
    let median: Double, min: Double, max: Double, q1: Double, q3: Double

    init(_ seconds: [Double]) {
        let s = seconds.sorted()
        func quantile(_ q: Double) -> Double {
            guard !s.isEmpty else { return .nan }
            let x = q * Double(s.count - 1), lo = Int(x), hi = Swift.min(lo + 1, s.count - 1)
            return s[lo] + (s[hi] - s[lo]) * (x - Double(lo))
        }
        median = quantile(0.5); min = s.first ?? .nan; max = s.last ?? .nan; q1 = quantile(0.25); q3 = quantile(0.75)
    }

    var description: String {
        String(format: "step time: median %.1f ms, min-max %.1f-%.1f ms (%+.0f%%/%+.0f%% of median), IQR %.1f-%.1f ms (%.1f%% of median)",
               median * 1000, min * 1000, max * 1000, (min / median - 1) * 100, (max / median - 1) * 100,
               q1 * 1000, q3 * 1000, (q3 - q1) / median * 100)
    }
}

/// Sum over this process's threads of /proc/<pid>/task/<tid>/schedstat (Linux): nanoseconds on a
/// CPU and nanoseconds runnable but waiting in a run queue.
struct SchedStat {
    let cpu: Double, wait: Double

    static func read() -> SchedStat? {
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
        var cpu = 0.0, wait = 0.0
        for t in tids {
            guard let s = try? String(contentsOfFile: "/proc/self/task/\(t)/schedstat", encoding: .utf8) else { continue }
            let f = s.split(separator: " ")
            guard f.count >= 2, let c = Double(f[0]), let w = Double(f[1]) else { continue }
            cpu += c
            wait += w
        }
        return SchedStat(cpu: cpu, wait: wait)
    }
}

/// Page faults and context switches of this process between construction and `perStep`.
struct StepUsage {
    private let start = StepUsage.now()

    private static func now() -> rusage {
        var u = rusage()
        #if canImport(Glibc)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        #else
        getrusage(RUSAGE_SELF, &u)
        #endif
        return u
    }

    func perStep(_ steps: Int) -> String {
        let e = StepUsage.now(), n = Double(Swift.max(1, steps))
        return String(format: "per timed step: %.0f minor page faults, %.0f voluntary + %.0f involuntary context switches",
                      Double(e.ru_minflt - start.ru_minflt) / n, Double(e.ru_nvcsw - start.ru_nvcsw) / n,
                      Double(e.ru_nivcsw - start.ru_nivcsw) / n)
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

    @OptionGroup var deviceOptions: DeviceOptions

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
        let engine = try makeInferenceEngine(gpt, deviceOptions)
        print("model: \(describe(c)); prompt \(promptTokens) tokens, \(maxTokens) new; threads \(Parallel.threadCount)")
        if engine === gpt { print(gpt.precision.isBF16 ? "precision \(gpt.precision.rawValue): prompt pass in bf16, one-token steps in fp32 (GEMV)" : "precision fp32") }
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let decoder = try engine.makeDecoder(samples: 1, maxLength: promptTokens + maxTokens)
            (decoder as? CPUDecoder)?.twoPassHead = !fullHead
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
