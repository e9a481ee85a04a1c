import ArgumentParser
import Foundation
import GPT2

/// Set by SIGINT/SIGTERM/SIGHUP/SIGUSR1; the run stops at the next micro-step.
nonisolated(unsafe) var stopSignal: Int32 = 0
/// Set once the training loop runs (there is something to checkpoint).
nonisolated(unsafe) var trainingStarted: Int32 = 0

/// Installed before anything else, so a signal during start-up (loading, downloads) never kills
/// the process by default: SIGTERM/SIGHUP/SIGUSR1 then stop the run at its first step. Ctrl-C
/// before training starts, or a second Ctrl-C, ends the process at once (every file is written
/// atomically, so nothing is left half-written under its final name).
func installStopHandlers() {
    for sig in [SIGINT, SIGTERM, SIGHUP, SIGUSR1] {
        signal(sig) { s in
            if s == SIGINT && (stopSignal != 0 || trainingStarted == 0) {
                let msg = stopSignal != 0 ? "\nsecond interrupt: exiting without a checkpoint\n" : "\ninterrupted before training started\n"
                _ = msg.withCString { write(2, $0, strlen($0)) }
                _exit(130)
            }
            stopSignal = 1
        }
    }
}

/// One `gpt train` on one rank: builds the run directory, model, data, engine and trainer, runs
/// the library's `TrainingRun`, and prints what it reports (rank 0 only).
struct TrainSession {
    let command: Train
    let group: ProcessGroup
    let cuda: CUDAContext?
    /// The CPU engine's matmul path (nil on a GPU).
    let cpuPrecision: CPUPrecisionChoice?

    func say(_ line: String) { group.say(line) }

    func run() throws {
        let directory = try openRunDirectory()
        let resuming = command.resume || (command.autoResume && directory.exists && !directory.checkpoints().isEmpty)
        var created = false
        do {
            try runLocked(directory, resuming: resuming, created: &created)
        } catch {
            // A run that failed before writing anything leaves no directory behind.
            if created && group.isMain { removeIfEmpty(directory) }
            throw error
        }
    }

    private func runLocked(_ directory: RunDirectory, resuming: Bool, created: inout Bool) throws {
        if group.isMain {
            created = resuming ? false : try directory.create()
            try directory.lock()
            let stale = directory.removeStaleTemporaries()
            if !stale.isEmpty { say("removed \(stale.count) temporary file(s) of an earlier writer that died: \(stale.joined(separator: ", "))") }
            if !resuming, let existing = directory.checkpoints().last {
                throw CLIError("'\(directory.path)' already holds checkpoints (\(existing)); pass --resume to continue or choose another --out")
            }
        }
        try group.barrier()

        // Model, configuration and trainer state: from the checkpoint on resume.
        var configuration: RunConfiguration
        let gpt: GPT2
        var resumePoint: ResumePoint?
        var notes: [String] = []
        if resuming {
            let point = try ResumePoint.newest(in: directory)
            resumePoint = point
            if command.`init` != nil { notes.append("--init applies to a new run only; resuming \(point.checkpoint)") }
            if let requested = try command.requestedConfig(), requested != point.model.config {
                throw CLIError("'\(point.checkpoint)' holds a model of another shape (\(describe(point.model.config))) than requested (\(describe(requested)))")
            }
            guard point.state.worldSize == group.worldSize else {
                throw CLIError("'\(point.checkpoint)' was written by a run with \(point.state.worldSize) rank(s); resume it with \(point.state.worldSize) (this run has \(group.worldSize)), since each rank's data position depends on the count")
            }
            gpt = point.model
            var saved: RunConfiguration
            if FileManager.default.fileExists(atPath: directory.runFile) {
                let (c, model) = try RunConfiguration.load(path: directory.runFile)
                guard model == gpt.config else {
                    throw CLIError("'\(directory.runFile)' describes a model of another shape (\(describe(model))) than '\(point.checkpoint)' (\(describe(gpt.config)))")
                }
                saved = c
            } else {
                // A run directory from before run.json: cadence from the command line and defaults.
                var o = command.overrides
                o.data = o.data ?? (command.embedded ? "data/shakespeare" : nil)
                saved = RunConfiguration.new(overrides: o, context: RunContext(embedded: command.embedded, model: gpt.config, trainTokens: 0,
                                                                              valTokens: 0, worldSize: group.worldSize, gpu: cuda != nil)).0
                notes.append("'\(directory.runFile)' is missing: cadence from the command line and defaults")
            }
            // The checkpoint's options decide where the data continues.
            saved.options = point.state.options
            let (merged, changes) = try saved.resumed(with: command.overrides)
            notes += changes
            configuration = merged
        } else {
            let dataDir = try prepareDataIfNeeded()
            gpt = try makeModel()
            let (train, val) = try shardTokens(dataDir)
            var o = command.overrides
            o.data = dataDir
            (configuration, notes) = RunConfiguration.new(
                overrides: o, context: RunContext(embedded: command.embedded, model: gpt.config, trainTokens: train, valTokens: val,
                                                  worldSize: group.worldSize, gpu: cuda != nil))
        }
        try configuration.validate()
        if let cpuPrecision { gpt.precision = cpuPrecision.path }
        let c = gpt.config
        let t = configuration.options
        guard t.T <= c.maxSeqLen else { throw CLIError("-T \(t.T) exceeds the model's context of \(c.maxSeqLen)") }
        if configuration.sampleTokens > 0 {
            try c.checkTokens(GPT2Tokenizer.gpt2.encode(configuration.samplePrompt), source: "the sample prompt (--sample-prompt)")
        }
        guard FileManager.default.fileExists(atPath: configuration.data) else {
            throw CLIError("data directory '\(configuration.data)' does not exist")
        }

        // Data, engine, trainer.
        let (rank, world) = (group.rank, group.worldSize)
        let trainLoader = try DataLoader(directory: configuration.data, split: .train, B: t.B, T: t.T, rank: rank, worldSize: world,
                                         shuffle: t.shuffle, seed: t.seed, vocabSize: c.vocabSize)
        let valLoader: DataLoader?   // no val shards: no validation; an unusable one is an error
        do {
            valLoader = try DataLoader(directory: configuration.data, split: .val, B: t.B, T: t.T, rank: rank, worldSize: world,
                                       vocabSize: c.vocabSize)
        } catch DataLoaderError.noShards {
            valLoader = nil
        }
        let engine = try makeEngine(gpt, B: t.B, T: t.T, includeOptimizer: resumePoint != nil)
        let trainer = try Trainer(engine: engine, options: t, train: trainLoader, val: valLoader, reducer: group.gradientReducer)
        trainer.spikeGuard = SpikeGuard(options: configuration.spikeGuard, vocabSize: c.vocabSize)
        if let point = resumePoint { try trainer.restore(point.state) }
        var hellaswag: [HellaSwagExample] = []
        if let path = configuration.hellaswagData {
            hellaswag = try HellaSwag.load(path: path, limit: configuration.hellaswagLimit)
            try HellaSwag.validate(hellaswag, vocabSize: c.vocabSize)
        }

        // Header.
        say("model: \(describe(c)); \(ProcessInfo.processInfo.activeProcessorCount) cores, \(Parallel.threadCount) threads")
        if let cuda { say(describeCUDA(cuda)) } else {
            say("device: CPU, \(cpuPrecision?.description ?? "precision fp32")")
            if let notice = BLAS.notice { say(notice) }
        }
        if world > 1 {
            say("data parallel: \(world) ranks (\(group.launch.launcher.rawValue))" + (group.mpi.map { ", MPI from \($0.libraryPath)" } ?? "")
                + (group.nccl.map { ", NCCL from \($0.libraryPath)" } ?? ""))
        }
        say("data: \(configuration.data) (\(trainLoader.paths.count) train shard(s), \(valLoader == nil ? "no" : "\(valLoader!.paths.count)") val)")
        say("batch: B=\(t.B) T=\(t.T) × \(world) rank(s), total \(t.totalBatch) tokens = \(trainer.gradAccumSteps) micro-step(s); steps \(t.maxSteps); lr \(String(format: "%g", t.maxLR)) → \(String(format: "%g", t.maxLR * t.minLRFrac)), warmup \(t.warmupSteps)")
        say("every: validation \(configuration.valEvery) (\(configuration.valSteps) batches), samples \(configuration.sampleEvery), checkpoint \(configuration.checkpointEvery) (keep \(configuration.keepCheckpoints))"
            + (configuration.hellaswagEvery.map { ", HellaSwag \($0) (\(hellaswag.count) examples)" } ?? ""))
        for n in notes { say("note: \(n)") }
        say("run directory: \(directory.path)" + (configuration.tensorboard ? " (TensorBoard: tensorboard --logdir \(shellQuote((directory.path as NSString).deletingLastPathComponent.isEmpty ? "." : (directory.path as NSString).deletingLastPathComponent)))" : ""))
        if let point = resumePoint { say("resuming from \(point.checkpoint) at step \(point.state.step)") }

        let printer = RunPrinter(group: group, config: c, T: t.T, cuda: cuda)
        let run = try TrainingRun(directory: directory, configuration: configuration, trainer: trainer, host: gpt, hellaswag: hellaswag,
                                  ranks: .init(rank: rank, worldSize: world, reducer: group.reducer), resumedFrom: resumePoint,
                                  peakFLOPS: cuda.flatMap { MFU.peakFLOPS(deviceName: $0.device.name, bf16: $0.precision == .bf16) },
                                  events: printer.handle)
        created = false   // the run has written its files: keep the directory whatever happens now
        trainingStarted = 1
        let outcome = try run.run(stopRequested: { stopSignal != 0 })
        if case .interrupted(let path) = outcome {
            say("interrupted: saved \(path); continue with: \(resumeCommand(directory))")
            run.writePlot()
        }
    }

    // MARK: - Pieces

    /// The run directory: --out, or on resume the newest run holding a checkpoint, or
    /// runs/<date-time> by rank 0's clock.
    private func openRunDirectory() throws -> RunDirectory {
        if let out = command.out {
            let d = RunDirectory(path: out)
            if command.resume { try d.checkExisting() }
            return d
        }
        if command.resume { return try RunDirectory.newestWithCheckpoint(under: "runs") }
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return RunDirectory(path: "runs/" + f.string(from: Date(timeIntervalSince1970: try group.broadcast(Date().timeIntervalSince1970.rounded(.down)))))
    }

    private func removeIfEmpty(_ d: RunDirectory) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? []
        let logged = (try? String(contentsOfFile: d.logFile, encoding: .utf8)).map { !$0.isEmpty } ?? false
        guard !logged, d.checkpoints().isEmpty, names.allSatisfy({ [".lock", "run.json", "log.txt", "metrics.jsonl"].contains($0) }) else { return }
        d.unlock()
        try? FileManager.default.removeItem(atPath: d.path)
    }

    /// The whole command that continues this run, as typed.
    private func resumeCommand(_ d: RunDirectory) -> String {
        let exe = shellQuote(CommandLine.arguments.first ?? "gpt")
        let base = "\(exe) train --resume --out \(shellQuote(d.path))"
        guard group.worldSize > 1 else { return base }
        switch group.launch.launcher {
        case .openMPI: return "mpirun -np \(group.worldSize) \(base)"
        case .torchrun: return "torchrun --nproc_per_node=\(group.worldSize) --no-python \(base)"
        case .slurm: return "srun -n \(group.worldSize) --mpi=pmix \(base)"
        default: return "\(base)   (under the same launcher, \(group.worldSize) ranks)"
        }
    }

    /// The data directory; for the embedded default, data/shakespeare, prepared on first use (by
    /// rank 0, while the others wait).
    private func prepareDataIfNeeded() throws -> String {
        if let data = command.data {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: data, isDirectory: &isDir) else { throw CLIError("data directory '\(data)' does not exist") }
            guard isDir.boolValue else { throw CLIError("--data '\(data)' is a regular file, not a directory; --data takes a directory of shards (gpt prepare --output DIR)") }
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

    private func shardTokens(_ dir: String) throws -> (train: Int, val: Int) {
        let train = try TokenShard.list(directory: dir, split: .train).reduce(0) { $0 + (try TokenShard.tokenCount(path: $1)) }
        let val = try TokenShard.list(directory: dir, split: .val).reduce(0) { $0 + (try TokenShard.tokenCount(path: $1)) }
        return (train, val)
    }

    private func makeModel() throws -> GPT2 {
        if let path = command.`init` { return try loadModel(path: modelPath(path)) }
        let gpt = GPT2(config: try command.requestedConfig() ?? GPT2Config.preset("gpt2")!)
        gpt.initializeRandom(seed: command.seed ?? 1337)
        return gpt
    }

    /// The CPU model itself, or a CUDA engine holding its weights.
    private func makeEngine(_ gpt: GPT2, B: Int, T: Int, includeOptimizer: Bool) throws -> any TrainingEngine {
        guard var ctx = cuda else { return gpt }
        if ctx.headSize != gpt.config.headSize {   // the context was compiled before the model was known
            guard group.worldSize == 1 else { throw CLIError("the model's head size is \(gpt.config.headSize), not \(ctx.headSize): pass --layers/--heads/--embd for it") }
            ctx = try openCUDA(ordinal: ctx.device.ordinal, precision: ctx.precision, headSize: gpt.config.headSize)
        }
        return try makeCUDAEngine(gpt, B: B, T: T, context: ctx, includeOptimizer: includeOptimizer)
    }
}

/// Prints a run's events as build-nanogpt does (rank 0).
final class RunPrinter {
    let group: ProcessGroup
    let config: GPT2Config
    let T: Int
    let cuda: CUDAContext?
    private var progress: ProgressLine?

    init(group: ProcessGroup, config: GPT2Config, T: Int, cuda: CUDAContext?) {
        self.group = group; self.config = config; self.T = T; self.cuda = cuda
    }

    func handle(_ event: TrainingRun.Event) {
        guard group.isMain else { return }
        switch event {
        case .validationProgress(let done, let of):
            if progress == nil { progress = ProgressLine() }
            progress?.update("validation \(done)/\(of)")
        case .hellaswagProgress(let done, let of):
            if progress == nil { progress = ProgressLine() }
            progress?.update("hellaswag \(done)/\(of)")
        case .validation(_, let loss):
            endProgress()
            print(String(format: "validation loss: %.4f", loss))
        case .hellaswag(_, let r):
            endProgress()
            print(String(format: "HellaSwag accuracy: %d/%d=%.4f (acc %.4f)", r.correctNorm, r.total, r.accNorm, r.acc))
        case .samples(_, let texts):
            for (i, s) in texts.enumerated() { print("sample \(i): \(s)") }
        case .step(let s):
            let world = Double(group.worldSize)
            print(String(format: "step %5d | loss: %.6f | lr %.4e | norm: %.4f | dt: %.2fms | tok/sec: %.2f",
                         s.step, s.loss, s.lr, s.norm, s.seconds * 1000, s.tokensPerSecond)
                  + mfuText(cuda, tokensPerSecond: s.tokensPerSecond / world, config: config, T: T)
                  + (s.skipped.map { " | update skipped: \($0)" } ?? ""))
        case .checkpoint(let path):
            print("checkpoint: \(path)")
        case .plot(let path):
            print("plot: \(path)")
        case .warning(let text):
            print("warning: \(text)")
        }
    }

    private func endProgress() {
        progress?.finish(showingLast: false)   // the result line follows
        progress = nil
    }
}

/// `s` quoted for a POSIX shell when it needs it.
func shellQuote(_ s: String) -> String {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@%")
    if !s.isEmpty && s.allSatisfy({ safe.contains($0) }) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
