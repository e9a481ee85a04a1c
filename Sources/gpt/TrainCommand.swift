import ArgumentParser
import Foundation
import GPT2

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a GPT-2 (build-nanogpt's recipe). With no arguments: a small GPT on the embedded Shakespeare.",
        discussion: """
        With no --data, the embedded Shakespeare is prepared into data/shakespeare and a 4-layer, \
        256-wide GPT is trained for 500 steps (about 5 minutes on 2 CPU cores). With --data DIR \
        the defaults follow build-nanogpt's 124M recipe (total batch 524,288 tokens, max-lr 6e-4, \
        min 10%, warmup 715 of 19,073 steps, weight decay 0.1, clip 1.0) scaled to the data: one \
        epoch, at most 1% of the data per step, warmup 3.75% of the steps; the header says what \
        was chosen and why.

        RUN_DIR (--out, default runs/<date-time>) gets run.json (everything needed to continue), \
        log.txt (build-nanogpt's format), metrics.jsonl, TensorBoard event files (`tensorboard \
        --logdir runs`; --no-tensorboard), checkpoints (the newest --keep-checkpoints, and always \
        the newest healthy one) and loss.svg. One process at a time owns a run directory (a lock; \
        a second gpt train on it stops with the holder's pid).

        Stopping and resuming: Ctrl-C, SIGTERM, SIGHUP or SIGUSR1 (Slurm's --signal=USR1@N before \
        a time limit) stop at the next micro-step: the partial step is dropped, a checkpoint of \
        the last whole step is written, and the command to continue is printed. A second Ctrl-C \
        exits at once without a checkpoint (files are written atomically: nothing is damaged). \
        --resume continues the run in --out (default: the newest run under runs/ that holds a \
        checkpoint) with everything from its run.json: data, schedule, cadence, prompt, HellaSwag \
        settings. Options given again override them (with a note); batch shape, seed and \
        shuffling cannot change. Logs are trimmed to the checkpoint's step, so each step appears \
        once; on the CPU the continuation is bit-identical. --auto-resume --out RUN resumes when RUN \
        holds a checkpoint and starts the run otherwise (the same command for every requeue of a \
        cluster job; --model/--init only apply to the start).

        Loss-spike guard (llm.c -sl/-sg): an update is skipped when the loss z-score over the last \
        128 steps exceeds --skip-loss-z (default 6), or the gradient-norm z-score exceeds \
        --skip-grad-z (default 0: off), or the loss exceeds twice ln(vocab); after --max-skips \
        skips in a row the run stops and names the newest healthy checkpoint. --skip-loss-z 0 \
        --skip-grad-z 0 turns the guard off.

        Data parallel (build-nanogpt's DDP): `mpirun -np N gpt train ...`, `srun gpt train ...` or \
        torchrun-style variables start N ranks; each reads its own stride of the data, gradients \
        are averaged once per step, only rank 0 prints and writes. --total-batch counts all ranks. \
        Resume with the same number of ranks.
        """)

    @Option(help: "Directory of *_train_*/*_val_* shards (.npy or .bin). Default: the embedded Shakespeare.")
    var data: String?

    @Option(help: "Model preset (gpt2, gpt2-medium, gpt2-large, gpt2-xl, dN) for random init.")
    var model: String?

    @Option(help: "Start from weights: HF directory, hf://OWNER/NAME, llm.c .bin, checkpoint or run directory (replaces --model).")
    var `init`: String?

    @Option(parsing: .unconditional, help: "Layers (with --heads/--embd: an explicit shape instead of a preset).")
    var layers: Int?
    @Option(parsing: .unconditional, help: "Attention heads.")
    var heads: Int?
    @Option(parsing: .unconditional, help: "Channels (embedding width).")
    var embd: Int?
    @Option(parsing: .unconditional, help: "Context length of a new model.")
    var seq: Int?

    @Option(name: .customShort("B"), parsing: .unconditional, help: "Micro-batch size (llm.c -b). Default: 4 on the CPU, 64 on a GPU (16 above 200M parameters).")
    var batch: Int?
    @Option(name: .customShort("T"), parsing: .unconditional, help: "Sequence length (llm.c -t). Default: 1024 or the model's context.")
    var seqLen: Int?
    @Option(parsing: .unconditional, help: "Tokens per optimizer step, all ranks and micro-steps (llm.c -d).")
    var totalBatch: Int?
    @Option(parsing: .unconditional, help: "Optimizer steps (llm.c -x). Default: one epoch of the data.")
    var maxSteps: Int?
    @Option(parsing: .unconditional, help: "Peak learning rate (llm.c -l).")
    var maxLr: Double?
    @Option(parsing: .unconditional, help: "Final learning rate as a fraction of --max-lr (llm.c -q).")
    var minLrFrac: Double?
    @Option(parsing: .unconditional, help: "Linear warmup steps (llm.c -u).")
    var warmupSteps: Int?
    @Option(parsing: .unconditional, help: "AdamW weight decay on 2-D tensors (llm.c -c).")
    var weightDecay: Double?
    @Option(parsing: .unconditional, help: "Gradient clipping by global norm.")
    var gradClip: Double?
    @Option(parsing: .unconditional, help: "Validation every N steps (llm.c -v).")
    var valEvery: Int?
    @Option(parsing: .unconditional, help: "Validation batches (llm.c -m).")
    var valSteps: Int?
    @Option(parsing: .unconditional, help: "Samples every N steps (llm.c -s).")
    var sampleEvery: Int?
    @Option(help: "Prompt for samples.")
    var samplePrompt: String?
    @Option(parsing: .unconditional, help: "New tokens per sample (0: no samples).")
    var sampleTokens: Int?
    @Option(parsing: .unconditional, help: "Checkpoint every N steps (llm.c -n); one is always written at the end.")
    var checkpointEvery: Int?
    @Option(parsing: .unconditional, help: "Keep the newest K checkpoints (and always the newest healthy one).")
    var keepCheckpoints: Int?
    @Option(help: "Run directory (default: runs/<date-time>; with --resume: the newest run under runs/ holding a checkpoint).")
    var out: String?
    @Flag(help: "Continue the run in --out from its newest checkpoint, with its saved options.")
    var resume = false
    @Flag(help: "Resume the run in --out when it holds a checkpoint, else start it (for requeued cluster jobs, llm.c -y 1).")
    var autoResume = false
    @Option(parsing: .unconditional, help: "Random seed (initialisation, shuffling).")
    var seed: UInt64?
    @Flag(help: "Permute shards and documents every epoch (avoids build-nanogpt's periodic loss).")
    var shuffle = false
    @OptionGroup var deviceOptions: DeviceOptions
    @Flag(help: "Train on one batch over and over (a sanity check: the loss should go to ~0).")
    var overfitBatch = false
    @Option(parsing: .unconditional, help: "HellaSwag every N steps (build-nanogpt: 250); needs --hellaswag-data.")
    var hellaswagEvery: Int?
    @Option(help: "HellaSwag file: the official jsonl or llm.c's hellaswag_val.bin ('gpt eval hellaswag --download DIR').")
    var hellaswagData: String?
    @Option(parsing: .unconditional, help: "Score only the first N HellaSwag examples.")
    var hellaswagLimit: Int?
    @Flag(help: "Do not write TensorBoard event files.")
    var noTensorboard = false
    @Option(parsing: .unconditional, help: "Skip the update when the loss z-score over the last 128 steps exceeds this (llm.c -sl; 0: off).")
    var skipLossZ: Double?
    @Option(parsing: .unconditional, help: "Skip the update when the gradient-norm z-score exceeds this (llm.c -sg; 0: off).")
    var skipGradZ: Double?
    @Option(parsing: .unconditional, help: "Stop after this many skipped updates in a row.")
    var maxSkips: Int?

    /// The embedded default: small enough for minutes on 2 cores, big enough to learn words.
    var embedded: Bool { data == nil }

    /// What the command line gave explicitly.
    var overrides: RunOverrides {
        var o = RunOverrides()
        o.data = data
        o.B = batch; o.T = seqLen; o.totalBatch = totalBatch; o.maxSteps = maxSteps
        o.maxLR = maxLr; o.minLRFrac = minLrFrac; o.warmupSteps = warmupSteps; o.weightDecay = weightDecay; o.gradClip = gradClip
        o.seed = seed; o.shuffle = shuffle ? true : nil; o.overfitBatch = overfitBatch ? true : nil
        o.valEvery = valEvery; o.valSteps = valSteps; o.sampleEvery = sampleEvery; o.samplePrompt = samplePrompt
        o.sampleTokens = sampleTokens; o.checkpointEvery = checkpointEvery; o.keepCheckpoints = keepCheckpoints
        o.hellaswagEvery = hellaswagEvery; o.hellaswagData = hellaswagData; o.hellaswagLimit = hellaswagLimit
        o.tensorboard = noTensorboard ? false : nil
        o.skipLossZ = skipLossZ; o.skipGradZ = skipGradZ; o.maxSkips = maxSkips
        return o
    }

    func validate() throws {
        if model != nil && `init` != nil { throw ValidationError("give --model or --init, not both") }
        if (layers != nil || heads != nil || embd != nil) && (layers == nil || heads == nil || embd == nil) {
            throw ValidationError("--layers, --heads and --embd go together")
        }
        let steps = 1 << 30   // steps and cadences: far beyond any run
        try NumberOption.check("-B", batch, atLeast: 1, atMost: NumberLimit.batch)
        try NumberOption.check("-T", seqLen, atLeast: 1, atMost: NumberLimit.tokens)
        try NumberOption.check("--total-batch", totalBatch, atLeast: 1, atMost: 1 << 34)
        try NumberOption.check("--max-steps", maxSteps, atLeast: 1, atMost: steps)
        try NumberOption.check("--warmup-steps", warmupSteps, atLeast: 0, atMost: steps)
        for (name, v) in [("--val-every", valEvery), ("--val-steps", valSteps), ("--sample-every", sampleEvery),
                          ("--checkpoint-every", checkpointEvery), ("--keep-checkpoints", keepCheckpoints),
                          ("--hellaswag-every", hellaswagEvery), ("--hellaswag-limit", hellaswagLimit), ("--max-skips", maxSkips)] {
            try NumberOption.check(name, v, atLeast: 1, atMost: steps)
        }
        try NumberOption.check("--sample-tokens", sampleTokens, atLeast: 0, atMost: NumberLimit.tokens)
        try NumberOption.check("--layers", layers, atLeast: 1, atMost: 1024)
        try NumberOption.check("--heads", heads, atLeast: 1, atMost: 1024)
        try NumberOption.check("--embd", embd, atLeast: 1, atMost: 65536)
        try NumberOption.check("--seq", seq, atLeast: 1, atMost: NumberLimit.tokens)
        try NumberOption.check("--max-lr", maxLr, above: 0, atMost: 100)
        try NumberOption.check("--min-lr-frac", minLrFrac, atLeast: 0, atMost: 1)
        try NumberOption.check("--weight-decay", weightDecay, atLeast: 0, atMost: 100)
        try NumberOption.check("--grad-clip", gradClip, atLeast: 0)
        try NumberOption.check("--skip-loss-z", skipLossZ, atLeast: 0)
        try NumberOption.check("--skip-grad-z", skipGradZ, atLeast: 0)
        if !resume && (hellaswagEvery == nil) != (hellaswagData == nil) {
            throw ValidationError("--hellaswag-every and --hellaswag-data go together")
        }
        if autoResume && (resume || out == nil) { throw ValidationError("--auto-resume needs --out RUN_DIR (and replaces --resume)") }
        if resume && (model != nil || `init` != nil) {
            throw ValidationError("--resume continues the run's own model; drop --model/--init")
        }
    }

    func run() throws {
        installStopHandlers()
        let report = try deviceOptions.cudaReport()   // --device cuda without a usable GPU throws the `gpt info` report
        var group = try ProcessGroup.start(mpiOptional: report != nil)
        var context: CUDAContext?
        if let report {
            do {
                let ordinal = deviceOrdinal(localRank: group.launch.localRank, visibleDevices: report.devices.count)
                context = try openCUDA(ordinal: ordinal, precision: deviceOptions.cudaPrecision, headSize: try requestedConfig()?.headSize ?? 64)
                try group.attachNCCL(context: context!)
            } catch {
                if group.launch.isDistributed {
                    FileHandle.standardError.write(Data("error (rank \(group.launch.rank) of \(group.launch.worldSize)): \(error)\n".utf8))
                    group.mpi?.abort(errorCode: 1)
                }
                throw error
            }
        }
        // On the CPU, auto is the fastest path that passes its start-up check (bf16 where the
        // CPU has AMX or AVX512-BF16): measured within 0.2% of fp32 over 300 steps.
        let cpu = context == nil ? try deviceOptions.cpuPrecision(autoOnCPU: .auto) : nil
        let g = group
        try g.run { try TrainSession(command: self, group: g, cuda: context, cpuPrecision: cpu).run() }
    }

    /// The model shape asked for on the command line (nil: none given).
    func requestedConfig() throws -> GPT2Config? {
        if let layers, let heads, let embd {
            let c = GPT2Config(maxSeqLen: seq ?? 1024, numLayers: layers, numHeads: heads, channels: embd)
            let flags: [GPT2ConfigField: String] = [.numLayers: "--layers", .numHeads: "--heads", .channels: "--embd", .maxSeqLen: "--seq"]
            if let problem = c.problem(naming: { flags[$0] ?? $0.rawValue }) { throw ValidationError(problem) }
            return c
        }
        if let model {
            guard var c = GPT2Config.preset(model) else {
                throw ValidationError("unknown --model '\(model)'; presets: \(GPT2Config.presetNames.joined(separator: ", "))")
            }
            if let seq { c.maxSeqLen = seq }
            return c
        }
        if embedded && `init` == nil && !resume {
            return GPT2Config(maxSeqLen: seq ?? 256, numLayers: 4, numHeads: 4, channels: 256)
        }
        return nil
    }
}
