import ArgumentParser
import Foundation
import GPT2

/// Set by SIGINT/SIGTERM; the loop finishes the current step, checkpoints and exits 0.
nonisolated(unsafe) var stopSignal: Int32 = 0

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a GPT-2 (build-nanogpt's recipe). With no arguments: a small GPT on the embedded Shakespeare.",
        discussion: """
        With --data DIR of FineWeb-Edu shards the defaults reproduce build-nanogpt's 124M run \
        (total batch 524,288 tokens, max-lr 6e-4, min 10%, warmup 715, 19,073 steps, weight decay \
        0.1, clip 1.0). With no --data, the embedded Shakespeare is prepared into data/shakespeare \
        and a 4-layer, 256-wide GPT is trained for 500 steps (about 5 minutes on 2 CPU cores).
        RUN_DIR gets log.txt (build-nanogpt's format), metrics.jsonl, checkpoints and loss.svg.
        Ctrl-C finishes the current step, writes a checkpoint and exits; --resume continues it.
        Data parallel (build-nanogpt's DDP): `mpirun -np N gpt train ...` or `srun gpt train ...`
        starts N ranks; each reads its own stride of the data, gradients are averaged with
        MPI_Allreduce once per step, and only rank 0 prints and writes files. --total-batch counts
        all ranks. Resume with the same number of ranks. --hellaswag-every N with
        --hellaswag-data FILE logs `<step> hella <acc_norm>`, the examples split across ranks.
        """)

    @Option(help: "Directory of *_train_*/*_val_* shards (.npy or .bin). Default: the embedded Shakespeare.")
    var data: String?

    @Option(help: "Model preset (gpt2, gpt2-medium, gpt2-large, gpt2-xl, dN) for random init.")
    var model: String?

    @Option(help: "Start from weights: HF directory, hf://OWNER/NAME, llm.c .bin, checkpoint or run directory (replaces --model).")
    var `init`: String?

    @Option(help: "Layers (with --heads/--embd: an explicit shape instead of a preset).")
    var layers: Int?
    @Option(help: "Attention heads.")
    var heads: Int?
    @Option(help: "Channels (embedding width).")
    var embd: Int?
    @Option(help: "Context length of a new model.")
    var seq: Int?

    @Option(name: .customShort("B"), help: "Micro-batch size (llm.c -b).")
    var batch: Int?
    @Option(name: .customShort("T"), help: "Sequence length (llm.c -t).")
    var seqLen: Int?
    @Option(help: "Tokens per optimizer step, all ranks and micro-steps (llm.c -d).")
    var totalBatch: Int?
    @Option(help: "Optimizer steps (llm.c -x).")
    var maxSteps: Int?
    @Option(help: "Peak learning rate (llm.c -l).")
    var maxLr: Double?
    @Option(help: "Final learning rate as a fraction of --max-lr (llm.c -q).")
    var minLrFrac: Double?
    @Option(help: "Linear warmup steps (llm.c -u).")
    var warmupSteps: Int?
    @Option(help: "AdamW weight decay on 2-D tensors (llm.c -c).")
    var weightDecay: Double?
    @Option(help: "Gradient clipping by global norm.")
    var gradClip: Double?
    @Option(help: "Validation every N steps (llm.c -v).")
    var valEvery: Int?
    @Option(help: "Validation batches (llm.c -m).")
    var valSteps: Int?
    @Option(help: "Samples every N steps (llm.c -s).")
    var sampleEvery: Int?
    @Option(help: "Prompt for samples.")
    var samplePrompt: String?
    @Option(help: "Checkpoint every N steps (llm.c -n); one is always written at the end.")
    var checkpointEvery: Int?
    @Option(help: "Keep the newest K checkpoints.")
    var keepCheckpoints: Int = 2
    @Option(help: "Run directory (default: runs/<date-time>; with --resume: the newest under runs/).")
    var out: String?
    @Flag(help: "Continue from the newest checkpoint in the run directory.")
    var resume = false
    @Option(help: "Random seed (initialisation, shuffling).")
    var seed: UInt64 = 1337
    @Flag(help: "Permute shards and documents every epoch (avoids build-nanogpt's periodic loss).")
    var shuffle = false
    @Option(help: "Device: auto (CUDA when `gpt info` finds a usable GPU, else the CPU; GPT2_CUDA_AUTO=0 keeps the CPU), cpu, or cuda (see 'gpt info'; one GPU per rank, LOCAL_RANK picks it).")
    var device: ComputeDevice = .auto
    @Option(help: "CUDA precision: bf16 (llm.c's mixed precision: bf16 activations, fp32 master weights) or fp32 (no TF32; parity).")
    var precision: CUDAPrecision = .bf16
    @Flag(help: "Train on one batch over and over (a sanity check: the loss should go to ~0).")
    var overfitBatch = false
    @Option(help: "HellaSwag every N steps (build-nanogpt: 250); needs --hellaswag-data.")
    var hellaswagEvery: Int?
    @Option(help: "HellaSwag file: the official jsonl or llm.c's hellaswag_val.bin ('gpt eval hellaswag --download DIR').")
    var hellaswagData: String?
    @Option(help: "Score only the first N HellaSwag examples.")
    var hellaswagLimit: Int?

    /// The embedded default: small enough for ~10 minutes on 2 cores, big enough to learn words.
    var embedded: Bool { data == nil }

    func validate() throws {
        if model != nil && `init` != nil { throw ValidationError("give --model or --init, not both") }
        if (layers != nil || heads != nil || embd != nil) && (layers == nil || heads == nil || embd == nil) {
            throw ValidationError("--layers, --heads and --embd go together")
        }
        for (name, v) in [("-B", batch), ("-T", seqLen), ("--total-batch", totalBatch), ("--max-steps", maxSteps),
                          ("--val-every", valEvery), ("--val-steps", valSteps), ("--sample-every", sampleEvery),
                          ("--checkpoint-every", checkpointEvery), ("--hellaswag-every", hellaswagEvery),
                          ("--hellaswag-limit", hellaswagLimit)] {
            if let v, v < 1 { throw ValidationError("\(name) must be at least 1") }
        }
        if keepCheckpoints < 1 { throw ValidationError("--keep-checkpoints must be at least 1") }
        if (hellaswagEvery == nil) != (hellaswagData == nil) {
            throw ValidationError("--hellaswag-every and --hellaswag-data go together")
        }
    }

    func run() throws {
        let report = try wantsCUDA(device)   // --device cuda without a usable GPU throws the `gpt info` report
        var group = try ProcessGroup.start(mpiOptional: report != nil)
        var context: CUDAContext?
        if let report {
            do {
                let ordinal = deviceOrdinal(localRank: group.launch.localRank, visibleDevices: report.devices.count)
                context = try openCUDA(ordinal: ordinal, precision: precision, headSize: try requestedConfig()?.headSize ?? 64)
                try group.attachNCCL(context: context!)
            } catch {
                if group.launch.isDistributed {
                    FileHandle.standardError.write(Data("error (rank \(group.launch.rank) of \(group.launch.worldSize)): \(error)\n".utf8))
                    group.mpi?.abort(errorCode: 1)
                }
                throw error
            }
        }
        let g = group
        try g.run { try train(g, cuda: context) }
    }

    /// The run on one rank; with several ranks only rank 0 (`group.isMain`) prints and writes.
    /// `cuda`: train on that GPU (the `GPT2` stays the host copy for checkpoints, samples, HellaSwag).
    func train(_ group: ProcessGroup, cuda: CUDAContext?) throws {
        let say = group.say
        let dataDir = try prepareDataIfNeeded(group)
        let runDir = try resolveRunDirectory(group)
        let latest = resume ? try newestCheckpoint(in: runDir) : nil
        if resume && latest == nil { say("no checkpoint in \(runDir): starting a new run there") }

        // Model and options: a checkpoint's own options win on resume (bit-identical continuation).
        let gpt: GPT2
        var opts = defaultOptions(worldSize: group.worldSize)
        var restoredState: Trainer.State?
        if let latest {
            let (m, meta) = try loadCheckpoint(path: latest)
            guard let json = meta["trainer"], let state = try? JSONDecoder().decode(Trainer.State.self, from: Data(json.utf8)) else {
                throw CLIError("'\(latest)' has no trainer state; it is not a training checkpoint")
            }
            if let requested = try requestedConfig(), requested != m.config {
                throw CLIError("'\(latest)' holds a model of another shape (\(describe(m.config))) than requested (\(describe(requested)))")
            }
            guard state.worldSize == group.worldSize else {
                throw CLIError("'\(latest)' was written by a run with \(state.worldSize) rank(s); resume it with \(state.worldSize) (this run has \(group.worldSize)), since each rank's data position depends on the count")
            }
            gpt = m
            opts = state.options
            if let maxSteps { opts.maxSteps = maxSteps }
            restoredState = state
            say("resuming from \(latest) at step \(state.step)")
        } else if let path = `init` {
            gpt = try loadModel(path: modelPath(path))
        } else {
            gpt = GPT2(config: try requestedConfig() ?? GPT2Config.preset("gpt2")!)
            gpt.initializeRandom(seed: seed)
        }
        let c = gpt.config
        guard opts.T <= c.maxSeqLen else { throw ValidationError("-T \(opts.T) exceeds the model's context of \(c.maxSeqLen)") }

        let (rank, world) = (group.rank, group.worldSize)
        let trainLoader = try DataLoader(directory: dataDir, split: .train, B: opts.B, T: opts.T, rank: rank, worldSize: world,
                                         shuffle: opts.shuffle, seed: opts.seed)
        // No val shards: train without validation; a val shard that is unusable is an error.
        let valLoader: DataLoader?
        do {
            valLoader = try DataLoader(directory: dataDir, split: .val, B: opts.B, T: opts.T, rank: rank, worldSize: world)
        } catch DataLoaderError.noShards {
            valLoader = nil
        }
        var engine: CUDABackend?
        if var ctx = cuda {
            if ctx.headSize != c.headSize {   // the context was compiled before the model was known
                guard world == 1 else { throw CLIError("the model's head size is \(c.headSize), not \(ctx.headSize): pass --layers/--heads/--embd for it") }
                ctx = try openCUDA(ordinal: ctx.device.ordinal, precision: ctx.precision, headSize: c.headSize)
            }
            engine = try makeCUDAEngine(gpt, B: opts.B, T: opts.T, context: ctx, includeOptimizer: restoredState != nil)
        }
        /// Brings the host `gpt` up to date with the GPU (checkpoints, samples, HellaSwag).
        func syncHost(optimizer: Bool) throws { try engine?.copyState(to: gpt, includeOptimizer: optimizer) }
        let trainer = try Trainer(engine: engine ?? gpt, options: opts, train: trainLoader, val: valLoader, reducer: group.gradientReducer)
        if let restoredState { try trainer.restore(restoredState) }
        let log = group.isMain ? try RunLog(directory: runDir, truncate: restoredState == nil) : nil
        var hellaswag: [HellaSwagExample] = []
        if let path = hellaswagData {
            hellaswag = try HellaSwag.load(path: path, limit: hellaswagLimit)
            try HellaSwag.validate(hellaswag, vocabSize: c.vocabSize)
        }

        let valEvery = self.valEvery ?? (embedded ? 50 : 250)
        let valSteps = self.valSteps ?? (embedded ? 8 : 20)
        let sampleEvery = self.sampleEvery ?? (embedded ? 100 : 250)
        let checkpointEvery = self.checkpointEvery ?? (embedded ? 250 : 5000)
        let prompt = samplePrompt ?? (embedded ? "ROMEO:" : "Hello, I'm a language model,")

        say("model: \(describe(c)); \(ProcessInfo.processInfo.activeProcessorCount) cores, \(Parallel.threadCount) threads")
        if let notice = BLAS.notice { say(notice) }
        if let engine { say(describeCUDA(engine.context)) }
        if world > 1 {
            say("data parallel: \(world) ranks (\(group.launch.launcher.rawValue))" + (group.mpi.map { ", MPI from \($0.libraryPath)" } ?? "")
                + (group.nccl.map { ", NCCL from \($0.libraryPath)" } ?? ""))
        }
        say("data: \(dataDir) (\(trainLoader.paths.count) train shard(s), \(valLoader == nil ? "no" : "\(valLoader!.paths.count)") val)")
        say("batch: B=\(opts.B) T=\(opts.T) × \(world) rank(s), total \(opts.totalBatch) tokens = \(trainer.gradAccumSteps) micro-step(s); steps \(opts.maxSteps); lr \(opts.maxLR) → \(opts.maxLR * opts.minLRFrac), warmup \(opts.warmupSteps)")
        if let path = hellaswagData { say("hellaswag: \(hellaswag.count) examples from \(path) every \(hellaswagEvery!) steps") }
        say("run directory: \(runDir)")

        signal(SIGINT) { _ in stopSignal = 1 }
        signal(SIGTERM) { _ in stopSignal = 1 }
        var lastCheckpoint: String? = latest
        func checkpoint() throws {
            guard group.isMain else { return }
            let path = runDir + "/" + String(format: "checkpoint_%06d.safetensors", trainer.step)
            let state = String(decoding: try JSONEncoder().encode(trainer.state), as: UTF8.self)
            try syncHost(optimizer: true)
            try saveCheckpoint(gpt, includeOptimizer: true, metadata: ["trainer": state], to: path)
            lastCheckpoint = path
            print("checkpoint: \(path)")
            let all = try checkpoints(in: runDir)
            for old in all.dropLast(keepCheckpoints) { try? FileManager.default.removeItem(atPath: old) }
        }

        while trainer.step < opts.maxSteps {
            let step = trainer.step
            let last = step == opts.maxSteps - 1
            let valProgress = group.isMain ? ProgressLine() : nil
            if valLoader != nil && (step % valEvery == 0 || last),
               let v = try trainer.validationLoss(steps: valSteps, progress: { valProgress?.update("validation \($0)/\($1)") }) {
                valProgress?.finish()
                say(String(format: "validation loss: %.4f", v))
                try log?.record(step: step, kind: "val", value: Double(v))
            }
            if let every = hellaswagEvery, step % every == 0 || last {
                try syncHost(optimizer: false)   // on CUDA: scored on the CPU copy (no GPU HellaSwag yet)
                let r = try evaluateHellaSwag(model: gpt, examples: hellaswag, rank: rank, worldSize: world).summed(over: group.reducer)
                say(String(format: "HellaSwag accuracy: %d/%d=%.4f (acc %.4f)", r.correctNorm, r.total, r.accNorm, r.acc))
                try log?.record(step: step, kind: "hella", value: r.accNorm,
                                fields: ["acc": r.acc, "total": Double(r.total), "correct": Double(r.correct), "correct_norm": Double(r.correctNorm)])
            }
            if group.isMain && step > 0 && (step % sampleEvery == 0 || last) {
                try syncHost(optimizer: false)
                printSamples(gpt, prompt: prompt)
            }
            let s: StepStats
            do {
                s = try trainer.trainStep()
            } catch let e as TrainingError {
                throw CLIError("\(e.localizedDescription); last good checkpoint: \(lastCheckpoint ?? "none")")
            }
            say(String(format: "step %5d | loss: %.6f | lr %.4e | norm: %.4f | dt: %.2fms | tok/sec: %.2f",
                       s.step, s.loss, s.lr, s.norm, s.seconds * 1000, s.tokensPerSecond)
                + mfuText(engine?.context, tokensPerSecond: s.tokensPerSecond / Double(world), config: c, T: opts.T))
            try log?.record(step: s.step, kind: "train", value: Double(s.loss),
                            fields: ["lr": s.lr, "norm": Double(s.norm), "ms": s.seconds * 1000, "tok_per_sec": s.tokensPerSecond])
            // Every rank must stop after the same step: a signal seen by any rank stops all.
            let stop = group.reducer == nil ? stopSignal != 0 : try group.reducer!.sum([Double(stopSignal)])[0] > 0
            if stop {
                say("interrupted: saving a checkpoint; continue with --resume --out \(runDir)")
                try checkpoint()
                try writePlot(runDir, group)
                return
            }
            if trainer.step % checkpointEvery == 0 || trainer.step == opts.maxSteps { try checkpoint() }
        }
        try writePlot(runDir, group)
    }

    // MARK: - Set-up

    func defaultOptions(worldSize: Int = 1) -> TrainOptions {
        var o = TrainOptions()
        if embedded {
            o.B = batch ?? 8; o.T = seqLen ?? 128
            o.totalBatch = totalBatch ?? o.B * o.T * worldSize
            o.maxSteps = maxSteps ?? 500
            o.maxLR = maxLr ?? 1e-3
            o.warmupSteps = warmupSteps ?? 30
        } else {
            // build-nanogpt: B=64 T=1024 on a GPU; on CPU a micro-batch that fits in memory.
            o.B = batch ?? 4; o.T = seqLen ?? 1024
            o.totalBatch = totalBatch ?? 524_288
            o.maxSteps = maxSteps ?? 19_073
            o.maxLR = maxLr ?? 6e-4
            o.warmupSteps = warmupSteps ?? 715
        }
        o.minLRFrac = minLrFrac ?? 0.1
        o.weightDecay = weightDecay ?? 0.1
        o.gradClip = gradClip ?? 1.0
        o.seed = seed
        o.shuffle = shuffle
        o.overfitBatch = overfitBatch
        return o
    }

    /// The model shape asked for on the command line (nil: none given).
    func requestedConfig() throws -> GPT2Config? {
        if let layers, let heads, let embd {
            let c = GPT2Config(maxSeqLen: seq ?? 1024, numLayers: layers, numHeads: heads, channels: embd)
            if let problem = c.validationError { throw ValidationError(problem) }
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

    /// The data directory; for the embedded default, data/shakespeare, prepared on first use
    /// (by rank 0, while the others wait).
    func prepareDataIfNeeded(_ group: ProcessGroup) throws -> String {
        if let data {
            guard FileManager.default.fileExists(atPath: data) else { throw CLIError("data directory '\(data)' does not exist") }
            return data
        }
        let dir = "data/shakespeare"
        if group.isMain && (try? TokenShard.list(directory: dir, split: .train))?.isEmpty ?? true {
            print("preparing the embedded Shakespeare corpus into \(dir)")
            _ = try DatasetPreparer.prepareShakespeare(outputDirectory: dir)
        }
        try group.barrier()
        return dir
    }

    /// The run directory, created; every rank gets rank 0's (the default name is rank 0's clock).
    func resolveRunDirectory(_ group: ProcessGroup) throws -> String {
        var dir = out
        if dir == nil && resume {
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: "runs"))?.sorted() ?? []
            if let newest = runs.last { dir = "runs/" + newest }
        }
        if dir == nil {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            dir = "runs/" + f.string(from: Date(timeIntervalSince1970: try group.broadcast(Date().timeIntervalSince1970.rounded(.down))))
        }
        let path = dir!
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot create run directory '\(path)': \(error.localizedDescription)")
        }
        guard access(path, W_OK) == 0 else { throw CLIError("run directory '\(path)' is not writable") }
        if !resume, let existing = try checkpoints(in: path).last {
            throw CLIError("'\(path)' already holds checkpoints (\(existing)); pass --resume to continue or choose another --out")
        }
        return path
    }

    func checkpoints(in dir: String) throws -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("checkpoint_") && $0.hasSuffix(".safetensors") }.sorted().map { dir + "/" + $0 }
    }

    func newestCheckpoint(in dir: String) throws -> String? { try checkpoints(in: dir).last }

    func printSamples(_ gpt: GPT2, prompt: String) {
        let tok = GPT2Tokenizer.gpt2
        let ids = tok.encode(prompt)
        let total = min(gpt.config.maxSeqLen, ids.count + 32)
        guard ids.count < total else { return }
        // Its own RNG (fixed seed, like build-nanogpt's sample_rng): sampling never changes training.
        let samples = Generator(model: gpt, samples: 4, maxLength: total)
            .generate(prompt: ids, maxNewTokens: total - ids.count, sampler: Sampler(topK: 50, temperature: 1), seed: 42)
        for (i, s) in samples.enumerated() {
            print("sample \(i): \((try? tok.decode(ids + s)) ?? "")")
        }
    }

    func writePlot(_ runDir: String, _ group: ProcessGroup) throws {
        guard group.isMain else { return }
        let series = try RunLog.read(path: runDir + "/log.txt")
        let svg = SVGPlot.render(series, title: "GPT-2 training: \(runDir)")
        try Data(svg.utf8).write(to: URL(fileURLWithPath: runDir + "/loss.svg"), options: .atomic)
        print("plot: \(runDir)/loss.svg")
    }
}
