// A training run, as build-nanogpt's main loop: at each step, validation, HellaSwag and samples
// on their cadence (through the engine's inference side: on a GPU, the training weights
// themselves), then one optimizer step; checkpoints on their cadence, rotated, never deleting the
// newest healthy one; logs and TensorBoard on rank 0. A stop request (Ctrl-C, SIGTERM, Slurm's
// USR1) is honoured between micro-steps on every rank at once: the run checkpoints its last whole
// step and returns. Everything is reported to a sink; the library itself never prints.
import Foundation

public final class TrainingRun {
    /// What happened, for the caller to print.
    public enum Event {
        case validationProgress(done: Int, of: Int)
        case validation(step: Int, loss: Float)
        case hellaswagProgress(done: Int, of: Int)
        case hellaswag(step: Int, result: HellaSwagResult)
        case samples(step: Int, texts: [String])
        case step(StepStats)
        case checkpoint(path: String)
        case plot(path: String)
        /// A problem that does not stop the run (e.g. the plot could not be drawn).
        case warning(String)
    }

    public enum Outcome: Equatable {
        case finished
        /// Stopped on request after a checkpoint at `path`.
        case interrupted(checkpoint: String)
    }

    /// Rank layout and host collectives of a data-parallel run (one process: rank 0 of 1, nil).
    public struct Ranks {
        public var rank: Int
        public var worldSize: Int
        /// Sums over ranks (stop agreement, HellaSwag counts); nil for one process.
        public var reducer: GradientReducer?
        public var isMain: Bool { rank == 0 }
        public init(rank: Int = 0, worldSize: Int = 1, reducer: GradientReducer? = nil) {
            self.rank = rank; self.worldSize = worldSize; self.reducer = reducer
        }
    }

    public let directory: RunDirectory
    public let configuration: RunConfiguration
    public let trainer: Trainer
    /// The host model checkpoints are written from (the CPU engine itself, or a copy the GPU
    /// engine downloads into at each checkpoint).
    public let host: GPT2
    public let ranks: Ranks
    private let hellaswag: [HellaSwagExample]
    private let log: RunLog?
    private let tensorboard: TensorBoardWriter?
    /// Peak FLOP/s of the device, for the MFU scalar (nil: not logged).
    private let peakFLOPS: Double?
    private let events: (Event) -> Void
    private let tokenizer: GPT2Tokenizer
    /// The newest checkpoint whose weights were seen to give a healthy loss (the step after it
    /// was finite, under the guard's ceiling and not skipped).
    public private(set) var lastSaneCheckpoint: String?
    /// The newest checkpoint, until the next step confirms it.
    private var unconfirmedCheckpoint: String?

    /// - Parameters:
    ///   - directory: the run directory (rank 0 holds its lock).
    ///   - resumed: the run continues from a checkpoint at `trainer.step`: logs are trimmed to
    ///     the steps before it and appended to.
    ///   - resumedFrom: on resume, the checkpoint resumed from (its trainer state names the run's
    ///     last healthy checkpoint; the first step confirms or not the one resumed from).
    ///   - peakFLOPS: the device's peak, to log `train/mfu` (nil: no MFU).
    ///   - events: called for everything worth printing (on every rank; rank 0's matter).
    public init(directory: RunDirectory, configuration: RunConfiguration, trainer: Trainer, host: GPT2,
                hellaswag: [HellaSwagExample] = [], ranks: Ranks = Ranks(), resumedFrom: ResumePoint? = nil,
                peakFLOPS: Double? = nil, tokenizer: GPT2Tokenizer = .gpt2, events: @escaping (Event) -> Void) throws {
        precondition(host.config == trainer.engine.config, "TrainingRun: host and engine shapes differ")
        self.directory = directory
        self.configuration = configuration
        self.trainer = trainer
        self.host = host
        self.hellaswag = hellaswag
        self.ranks = ranks
        self.events = events
        self.tokenizer = tokenizer
        self.peakFLOPS = peakFLOPS
        let resumed = resumedFrom != nil
        if let point = resumedFrom {
            unconfirmedCheckpoint = point.checkpoint
            lastSaneCheckpoint = point.state.healthyCheckpoint.map { directory.path + "/" + $0 }
                .flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        }
        if ranks.isMain {
            if resumed { try RunLog.trim(directory: directory.path, before: trainer.step) }
            try configuration.save(to: directory.runFile, model: host.config)
            log = try RunLog(directory: directory.path, truncate: !resumed)
            if configuration.tensorboard {
                // On resume, TensorBoard drops what earlier files logged from this step on.
                let tb = try TensorBoardWriter(directory: directory.path, purgeStep: resumed ? trainer.step : nil)
                try tb.text("options", Self.markdown(configuration: configuration, model: host.config), step: trainer.step)
                try tb.flush()
                tensorboard = tb
            } else {
                tensorboard = nil
            }
        } else {
            log = nil
            tensorboard = nil
        }
    }

    // MARK: - The loop

    /// Trains until `maxSteps` or until `stopRequested` answers true (asked between micro-steps
    /// and after every step; every rank must get the same answer, which `ranks.reducer` ensures).
    /// - Throws: `TrainingRunError.diverged` (naming the newest healthy checkpoint) when the loss
    ///   or gradient is not finite or the spike guard gives up; I/O errors naming their file.
    public func run(stopRequested: @escaping () -> Bool) throws -> Outcome {
        do {
            defer { try? tensorboard?.close() }
            return try loop(stopRequested: stopRequested)
        } catch let e where e is RunLogError || e is TensorBoardError {
            // A log cannot be written (disk full?): keep the training done so far if possible.
            let saved = Result { try checkpoint() }
            throw TrainingRunError.logFailed(reason: e.localizedDescription, checkpoint: try? saved.get(),
                                             checkpointError: saved.failureReason)
        }
    }

    private func loop(stopRequested: @escaping () -> Bool) throws -> Outcome {
        let c = configuration, maxSteps = c.options.maxSteps
        let agreedStop: () throws -> Bool = { [ranks] in
            guard let r = ranks.reducer, ranks.worldSize > 1 else { return stopRequested() }
            return try r.sum([stopRequested() ? 1 : 0])[0] > 0
        }
        while trainer.step < maxSteps {
            let step = trainer.step
            let last = step == maxSteps - 1
            if trainer.val != nil && (step % c.valEvery == 0 || last) { try validate(step: step) }
            if let every = c.hellaswagEvery, !hellaswag.isEmpty, step % every == 0 || last { try scoreHellaSwag(step: step) }
            if ranks.isMain && step > 0 && c.sampleTokens > 0 && (step % c.sampleEvery == 0 || last) {
                do { try sample(step: step) } catch { events(.warning("no samples at step \(step): \(error.localizedDescription)")) }
            }

            let stats: StepStats?
            do {
                stats = try trainer.trainStep(shouldStop: agreedStop)
            } catch let e as TrainingError {
                throw TrainingRunError.diverged(reason: e.localizedDescription, lastGoodCheckpoint: lastSaneCheckpoint)
            }
            guard let s = stats else { return .interrupted(checkpoint: try checkpoint()) }
            if s.skipped == nil, s.loss.isFinite, Double(s.loss) <= (trainer.spikeGuard?.lossCeiling ?? .infinity),
               let confirmed = unconfirmedCheckpoint {
                lastSaneCheckpoint = confirmed
                unconfirmedCheckpoint = nil
            }
            events(.step(s))
            try log?.record(step: s.step, kind: "train", value: Double(s.loss),
                            fields: ["lr": s.lr, "norm": Double(s.norm), "ms": s.seconds * 1000, "tok_per_sec": s.tokensPerSecond,
                                     "skipped": s.skipped == nil ? 0 : 1])
            if let tb = tensorboard {
                try tb.scalar("train/loss", Double(s.loss), step: s.step)
                try tb.scalar("train/lr", s.lr, step: s.step)
                try tb.scalar("train/grad_norm", Double(s.norm), step: s.step)
                try tb.scalar("train/tokens_per_sec", s.tokensPerSecond, step: s.step)
                if let peak = peakFLOPS {
                    let perDevice = s.tokensPerSecond / Double(ranks.worldSize)
                    try tb.scalar("train/mfu", MFU.utilisation(tokensPerSecond: perDevice, config: host.config, T: c.options.T, peakFLOPS: peak), step: s.step)
                }
                try tb.flush()   // a crash loses at most this step
            }
            if try agreedStop() { return .interrupted(checkpoint: try checkpoint()) }
            if trainer.step % c.checkpointEvery == 0 || trainer.step == maxSteps { _ = try checkpoint() }
        }
        writePlot()
        return .finished
    }

    // MARK: - Evaluation

    private func validate(step: Int) throws {
        guard let v = try trainer.validationLoss(steps: configuration.valSteps, progress: { [events] done, of in
            events(.validationProgress(done: done, of: of))
        }) else { return }
        events(.validation(step: step, loss: v))
        try log?.record(step: step, kind: "val", value: Double(v))
        try tensorboard?.scalar("val/loss", Double(v), step: step)
        try tensorboard?.flush()
    }

    private func scoreHellaSwag(step: Int) throws {
        let mine = (hellaswag.count - ranks.rank + ranks.worldSize - 1) / ranks.worldSize
        let local = try evaluateHellaSwag(engine: trainer.engine, examples: hellaswag, rank: ranks.rank, worldSize: ranks.worldSize) {
            [events] r in events(.hellaswagProgress(done: r.total, of: mine))
        }
        let r = try local.summed(over: ranks.worldSize > 1 ? ranks.reducer : nil)
        events(.hellaswag(step: step, result: r))
        try log?.record(step: step, kind: "hella", value: r.accNorm,
                        fields: ["acc": r.acc, "total": Double(r.total), "correct": Double(r.correct), "correct_norm": Double(r.correctNorm)])
        try tensorboard?.scalar("val/hellaswag_acc_norm", r.accNorm, step: step)
        try tensorboard?.flush()
    }

    /// Four samples of the prompt with their own RNG (a fixed seed, like build-nanogpt's
    /// sample_rng), so sampling never changes training.
    private func sample(step: Int) throws {
        let prompt = tokenizer.encode(configuration.samplePrompt)
        guard !prompt.isEmpty else { return }
        let out = try Generator(engine: trainer.engine, samples: 4)
            .generate(prompt: prompt, maxNewTokens: configuration.sampleTokens, sampler: Sampler(topK: 50, temperature: 1), seed: 42)
        let texts = out.map { (try? tokenizer.decode(prompt + $0)) ?? "" }
        events(.samples(step: step, texts: texts))
        // Markdown: each sample as a code block, so its line breaks and spacing survive.
        try tensorboard?.text("samples", texts.enumerated().map { "sample \($0.offset):\n\n```\n\($0.element)\n```" }.joined(separator: "\n\n"), step: step)
        try tensorboard?.flush()
    }

    // MARK: - Checkpoints

    /// Writes `checkpoint_<step>.safetensors` (rank 0; the others return its path) and rotates.
    @discardableResult
    public func checkpoint() throws -> String {
        let path = directory.checkpointPath(step: trainer.step)
        guard ranks.isMain else { return path }
        var state = trainer.state
        state.healthyCheckpoint = lastSaneCheckpoint.map { ($0 as NSString).lastPathComponent }
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        let json = String(decoding: try enc.encode(state), as: UTF8.self)
        try trainer.engine.copyState(to: host, includeOptimizer: true)
        try saveCheckpoint(host, includeOptimizer: true, metadata: ["trainer": json], to: path)
        unconfirmedCheckpoint = path
        events(.checkpoint(path: path))
        rotate()
        return path
    }

    /// Keeps the newest `keepCheckpoints`, and always the newest healthy one.
    private func rotate() {
        let all = directory.checkpoints()
        let keep = Set(all.suffix(configuration.keepCheckpoints) + [lastSaneCheckpoint].compactMap { $0 })
        for old in all where !keep.contains(old) { try? FileManager.default.removeItem(atPath: old) }
    }

    /// The run's options as a markdown table (TensorBoard's text tab).
    static func markdown(configuration c: RunConfiguration, model: GPT2Config) -> String {
        let t = c.options
        let rows: [(String, String)] = [
            ("model", "\(model.numLayers) layers, \(model.numHeads) heads, \(model.channels) channels, context \(model.maxSeqLen), vocab \(model.vocabSize)"),
            ("data", c.data), ("B × T", "\(t.B) × \(t.T)"), ("total batch", "\(t.totalBatch)"), ("max steps", "\(t.maxSteps)"),
            ("max lr", "\(t.maxLR)"), ("min lr", "\(t.maxLR * t.minLRFrac)"), ("warmup", "\(t.warmupSteps)"),
            ("weight decay", "\(t.weightDecay)"), ("grad clip", "\(t.gradClip)"), ("seed", "\(t.seed)"), ("shuffle", "\(t.shuffle)"),
            ("val every", "\(c.valEvery) (\(c.valSteps) batches)"), ("samples every", "\(c.sampleEvery)"),
            ("checkpoint every", "\(c.checkpointEvery) (keep \(c.keepCheckpoints))"),
            ("hellaswag", c.hellaswagEvery.map { "every \($0): \(c.hellaswagData ?? "")" } ?? "off"),
            ("spike guard", "loss z \(c.spikeGuard.lossZ), grad z \(c.spikeGuard.gradZ), stop after \(c.spikeGuard.maxConsecutive)"),
        ]
        return "| option | value |\n|---|---|\n" + rows.map { "| \($0.0) | \($0.1.replacingOccurrences(of: "|", with: "\\|")) |" }.joined(separator: "\n")
    }

    // MARK: - Plot

    /// loss.svg from log.txt (rank 0). A plot that cannot be drawn is a warning, not a failure.
    public func writePlot() {
        guard ranks.isMain else { return }
        do {
            let series = try RunLog.read(path: directory.logFile)
            let svg = SVGPlot.render(series, title: "GPT-2 training: \(directory.path)", dataset: ReferenceDataset.forRun(directory: directory.path))
            try AtomicOutputFile.write(to: directory.plotFile) { try $0.write(Array(svg.utf8)) }
            events(.plot(path: directory.plotFile))
        } catch {
            events(.warning("no plot: \(error.localizedDescription)"))
        }
    }
}

public enum TrainingRunError: LocalizedError, Equatable {
    case diverged(reason: String, lastGoodCheckpoint: String?)
    case logFailed(reason: String, checkpoint: String?, checkpointError: String?)

    public var errorDescription: String? {
        switch self {
        case let .diverged(reason, last):
            return "\(reason); last good checkpoint: \(last ?? "none")"
        case let .logFailed(reason, checkpoint, checkpointError):
            return reason + (checkpoint.map { "; the training so far is saved in \($0)" }
                             ?? "; no checkpoint could be written either (\(checkpointError ?? "unknown error"))")
        }
    }
}

private extension Result where Failure == Error {
    var failureReason: String? {
        if case .failure(let e) = self { return e.localizedDescription }
        return nil
    }
}
