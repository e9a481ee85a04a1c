// Everything a training run needs to continue as it started, saved as run.json in the run
// directory: the data, the optimizer recipe, the cadence of validation, samples, HellaSwag and
// checkpoints, logging and the spike guard. A resume restores it; options given again on the
// command line override it (with a note). Defaults for a new run are derived from the model and
// the data (build-nanogpt's recipe when the data is large enough for it).
import Foundation

public struct RunConfiguration: Codable, Equatable, Sendable {
    /// Directory of *_train_* / *_val_* shards.
    public var data: String
    /// Batch shape, schedule, seed, shuffling (the trainer's options).
    public var options: TrainOptions
    public var valEvery: Int
    public var valSteps: Int
    public var sampleEvery: Int
    public var samplePrompt: String
    /// New tokens per sample.
    public var sampleTokens: Int
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    public var hellaswagEvery: Int?
    public var hellaswagData: String?
    public var hellaswagLimit: Int?
    public var tensorboard: Bool
    public var spikeGuard: SpikeGuardOptions

    public init(data: String, options: TrainOptions, valEvery: Int, valSteps: Int, sampleEvery: Int, samplePrompt: String,
                sampleTokens: Int = 32, checkpointEvery: Int, keepCheckpoints: Int = 2, hellaswagEvery: Int? = nil,
                hellaswagData: String? = nil, hellaswagLimit: Int? = nil, tensorboard: Bool = true,
                spikeGuard: SpikeGuardOptions = SpikeGuardOptions()) {
        self.data = data
        self.options = options
        self.valEvery = valEvery
        self.valSteps = valSteps
        self.sampleEvery = sampleEvery
        self.samplePrompt = samplePrompt
        self.sampleTokens = sampleTokens
        self.checkpointEvery = checkpointEvery
        self.keepCheckpoints = keepCheckpoints
        self.hellaswagEvery = hellaswagEvery
        self.hellaswagData = hellaswagData
        self.hellaswagLimit = hellaswagLimit
        self.tensorboard = tensorboard
        self.spikeGuard = spikeGuard
    }
}

/// What the command line gave explicitly (nil: not given).
public struct RunOverrides: Equatable, Sendable {
    public var data: String?
    public var B: Int?, T: Int?, totalBatch: Int?, maxSteps: Int?
    public var maxLR: Double?, minLRFrac: Double?, warmupSteps: Int?, weightDecay: Double?, gradClip: Double?
    public var seed: UInt64?, shuffle: Bool?, overfitBatch: Bool?
    public var valEvery: Int?, valSteps: Int?, sampleEvery: Int?, samplePrompt: String?, sampleTokens: Int?
    public var checkpointEvery: Int?, keepCheckpoints: Int?
    public var hellaswagEvery: Int?, hellaswagData: String?, hellaswagLimit: Int?
    public var tensorboard: Bool?
    public var skipLossZ: Double?, skipGradZ: Double?, maxSkips: Int?
    public init() {}
}

/// What the defaults of a new run are derived from.
public struct RunContext: Sendable {
    /// The embedded Shakespeare default run (a small model, short steps).
    public var embedded: Bool
    public var model: GPT2Config
    /// Tokens in the train and val shards.
    public var trainTokens: Int
    public var valTokens: Int
    public var worldSize: Int
    /// Training on a GPU (bigger micro-batches).
    public var gpu: Bool
    public init(embedded: Bool, model: GPT2Config, trainTokens: Int, valTokens: Int, worldSize: Int, gpu: Bool) {
        self.embedded = embedded; self.model = model; self.trainTokens = trainTokens; self.valTokens = valTokens
        self.worldSize = worldSize; self.gpu = gpu
    }
}

public enum RunConfigurationError: LocalizedError, Equatable {
    case cannotChangeOnResume(option: String, saved: String, given: String)
    case badValue(option: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case let .cannotChangeOnResume(option, saved, given):
            return "\(option) \(given) differs from the run's \(saved); a resumed run keeps its batch shape, seed and shuffling (they decide which data comes next). Drop \(option) or start a new run"
        case let .badValue(option, reason):
            return "\(option) \(reason)"
        }
    }
}

extension RunConfiguration {
    /// build-nanogpt's 124M recipe, for data big enough for it.
    public static let recipeTotalBatch = 524_288
    static let recipeSteps = 19_073, recipeWarmup = 715

    /// The configuration of a new run: what `overrides` gives, the rest derived from `context`.
    /// - Returns: the configuration and notes saying what was derived and why (for the header).
    public static func new(overrides o: RunOverrides, context c: RunContext) -> (RunConfiguration, [String]) {
        var notes: [String] = []
        var t = TrainOptions()
        let world = max(1, c.worldSize)
        if c.embedded {
            t.B = o.B ?? 8
            t.T = o.T ?? min(128, c.model.maxSeqLen)
            t.totalBatch = o.totalBatch ?? t.B * t.T * world
            t.maxSteps = o.maxSteps ?? 500
            t.maxLR = o.maxLR ?? 1e-3
            t.warmupSteps = o.warmupSteps ?? min(30, max(1, t.maxSteps / 10))
        } else {
            t.B = o.B ?? (c.gpu ? (c.model.parameterCount <= 200_000_000 ? 64 : 16) : 4)
            t.T = o.T ?? min(1024, c.model.maxSeqLen)
            let micro = t.B * t.T * world
            if let tb = o.totalBatch {
                t.totalBatch = tb
            } else if c.trainTokens >= 100 * recipeTotalBatch {
                t.totalBatch = max(micro, recipeTotalBatch / micro * micro)
            } else {
                // Small data: at most 1% of it per step (so an epoch is 100 steps or more), in
                // whole micro-steps, doubling the accumulation while that holds.
                var tb = micro
                while tb * 2 <= c.trainTokens / 100 && tb * 2 <= recipeTotalBatch { tb *= 2 }
                t.totalBatch = tb
                notes.append("total batch \(tb) tokens (\(tb / micro) micro-step(s) of B=\(t.B) T=\(t.T)): the \(c.trainTokens) train tokens are too few for build-nanogpt's 524,288 per step")
            }
            if let m = o.maxSteps {
                t.maxSteps = m
            } else {
                t.maxSteps = max(1, c.trainTokens / t.totalBatch)
                var note = "max steps \(t.maxSteps): one epoch of \(c.trainTokens) train tokens at \(t.totalBatch) per step"
                if t.totalBatch == recipeTotalBatch { note += " (build-nanogpt runs \(recipeSteps) on its 10B tokens: pass --max-steps \(recipeSteps) to match it)" }
                notes.append(note)
            }
            t.maxLR = o.maxLR ?? 6e-4
            if let w = o.warmupSteps {
                t.warmupSteps = w
            } else {
                // build-nanogpt warms up for 715 of 19,073 steps (3.75%).
                t.warmupSteps = t.maxSteps == recipeSteps ? recipeWarmup
                    : max(1, Int((Double(t.maxSteps) * Double(recipeWarmup) / Double(recipeSteps)).rounded()))
                if t.maxSteps != recipeSteps { notes.append("warmup \(t.warmupSteps) steps: 3.75% of \(t.maxSteps), as build-nanogpt's 715 of 19,073") }
            }
        }
        t.minLRFrac = o.minLRFrac ?? 0.1
        t.weightDecay = o.weightDecay ?? 0.1
        t.gradClip = o.gradClip ?? 1.0
        t.seed = o.seed ?? 1337
        t.shuffle = o.shuffle ?? false
        t.overfitBatch = o.overfitBatch ?? false

        // Cadence: build-nanogpt's (val and samples every 250 steps, checkpoints every 5000) for
        // long runs, about 20 validations and 4 checkpoints per run for short ones.
        let every = c.embedded ? 50 : min(250, max(1, t.maxSteps / 20))
        let valBatches = max(1, c.valTokens / max(1, t.B * t.T * world + 1))
        var g = SpikeGuardOptions()
        if let z = o.skipLossZ { g.lossZ = z }
        if let z = o.skipGradZ { g.gradZ = z }
        if let k = o.maxSkips { g.maxConsecutive = k }
        let config = RunConfiguration(
            data: o.data ?? "", options: t,
            valEvery: o.valEvery ?? every,
            valSteps: o.valSteps ?? min(c.embedded ? 8 : 20, valBatches),
            sampleEvery: o.sampleEvery ?? (c.embedded ? 100 : every),
            samplePrompt: o.samplePrompt ?? (c.embedded ? "ROMEO:" : "Hello, I'm a language model,"),
            sampleTokens: o.sampleTokens ?? 32,
            checkpointEvery: o.checkpointEvery ?? (c.embedded ? 250 : min(5000, max(every, t.maxSteps / 4))),
            keepCheckpoints: o.keepCheckpoints ?? 2,
            hellaswagEvery: o.hellaswagEvery, hellaswagData: o.hellaswagData, hellaswagLimit: o.hellaswagLimit,
            tensorboard: o.tensorboard ?? true, spikeGuard: g)
        return (config, notes)
    }

    /// The saved configuration with the options given again on the command line. Batch shape,
    /// seed and shuffling cannot change (they decide which data comes next).
    /// - Returns: the configuration and a note per changed value.
    public func resumed(with o: RunOverrides) throws -> (RunConfiguration, [String]) {
        var c = self
        var notes: [String] = []
        func fixed<V: Equatable>(_ name: String, _ given: V?, _ saved: V) throws {
            if let given, given != saved { throw RunConfigurationError.cannotChangeOnResume(option: name, saved: "\(saved)", given: "\(given)") }
        }
        try fixed("-B", o.B, options.B)
        try fixed("-T", o.T, options.T)
        try fixed("--total-batch", o.totalBatch, options.totalBatch)
        try fixed("--seed", o.seed, options.seed)
        try fixed("--shuffle", o.shuffle.map { $0 || options.shuffle }, options.shuffle)
        try fixed("--overfit-batch", o.overfitBatch.map { $0 || options.overfitBatch }, options.overfitBatch)
        func take<V: Equatable>(_ name: String, _ given: V?, _ keyPath: WritableKeyPath<RunConfiguration, V>) {
            guard let given, given != c[keyPath: keyPath] else { return }
            notes.append("\(name) \(given) replaces the run's \(c[keyPath: keyPath])")
            c[keyPath: keyPath] = given
        }
        func takeOptional<V: Equatable>(_ name: String, _ given: V?, _ keyPath: WritableKeyPath<RunConfiguration, V?>) {
            guard let given, given != c[keyPath: keyPath] else { return }
            notes.append("\(name) \(given) replaces the run's \(c[keyPath: keyPath].map { "\($0)" } ?? "none")")
            c[keyPath: keyPath] = given
        }
        take("--data", o.data, \.data)
        take("--max-steps", o.maxSteps, \.options.maxSteps)
        take("--max-lr", o.maxLR, \.options.maxLR)
        take("--min-lr-frac", o.minLRFrac, \.options.minLRFrac)
        take("--warmup-steps", o.warmupSteps, \.options.warmupSteps)
        take("--weight-decay", o.weightDecay, \.options.weightDecay)
        take("--grad-clip", o.gradClip, \.options.gradClip)
        take("--val-every", o.valEvery, \.valEvery)
        take("--val-steps", o.valSteps, \.valSteps)
        take("--sample-every", o.sampleEvery, \.sampleEvery)
        take("--sample-prompt", o.samplePrompt, \.samplePrompt)
        take("--sample-tokens", o.sampleTokens, \.sampleTokens)
        take("--checkpoint-every", o.checkpointEvery, \.checkpointEvery)
        take("--keep-checkpoints", o.keepCheckpoints, \.keepCheckpoints)
        takeOptional("--hellaswag-every", o.hellaswagEvery, \.hellaswagEvery)
        takeOptional("--hellaswag-data", o.hellaswagData, \.hellaswagData)
        takeOptional("--hellaswag-limit", o.hellaswagLimit, \.hellaswagLimit)
        take("--tensorboard", o.tensorboard, \.tensorboard)
        take("--skip-loss-z", o.skipLossZ, \.spikeGuard.lossZ)
        take("--skip-grad-z", o.skipGradZ, \.spikeGuard.gradZ)
        take("--max-skips", o.maxSkips, \.spikeGuard.maxConsecutive)
        return (c, notes)
    }

    /// Checks values a file or the command line could have made nonsensical.
    public func validate() throws {
        func positive(_ name: String, _ v: Int) throws {
            if v < 1 { throw RunConfigurationError.badValue(option: name, reason: "must be at least 1 (got \(v))") }
        }
        let t = options
        try positive("-B", t.B); try positive("-T", t.T); try positive("--total-batch", t.totalBatch)
        try positive("--max-steps", t.maxSteps); try positive("--val-every", valEvery); try positive("--val-steps", valSteps)
        try positive("--sample-every", sampleEvery); try positive("--checkpoint-every", checkpointEvery)
        try positive("--keep-checkpoints", keepCheckpoints)
        if sampleTokens < 0 { throw RunConfigurationError.badValue(option: "--sample-tokens", reason: "must not be negative (got \(sampleTokens))") }
        if t.warmupSteps < 0 { throw RunConfigurationError.badValue(option: "--warmup-steps", reason: "must not be negative (got \(t.warmupSteps))") }
        for (name, v) in [("--max-lr", t.maxLR), ("--min-lr-frac", t.minLRFrac), ("--weight-decay", t.weightDecay), ("--grad-clip", t.gradClip),
                          ("--skip-loss-z", spikeGuard.lossZ), ("--skip-grad-z", spikeGuard.gradZ)] where !(v.isFinite && v >= 0) {
            throw RunConfigurationError.badValue(option: name, reason: "must be a finite number >= 0 (got \(v))")
        }
        if t.maxLR == 0 { throw RunConfigurationError.badValue(option: "--max-lr", reason: "must be positive (got 0)") }
        if t.minLRFrac > 1 { throw RunConfigurationError.badValue(option: "--min-lr-frac", reason: "is a fraction of --max-lr: at most 1 (got \(t.minLRFrac))") }
        if spikeGuard.maxConsecutive < 1 { throw RunConfigurationError.badValue(option: "--max-skips", reason: "must be at least 1 (got \(spikeGuard.maxConsecutive))") }
        if let h = hellaswagEvery { try positive("--hellaswag-every", h) }
        if let h = hellaswagLimit { try positive("--hellaswag-limit", h) }
        if (hellaswagEvery == nil) != (hellaswagData == nil) {
            throw RunConfigurationError.badValue(option: "--hellaswag-every", reason: "and --hellaswag-data go together")
        }
    }

    // MARK: - run.json

    /// What run.json holds: this configuration and the model's shape.
    struct File: Codable {
        var format = "gpt2-swift-run"
        var version = 1
        var model: GPT2Config
        var configuration: RunConfiguration
    }

    /// Writes run.json atomically.
    public func save(to path: String, model: GPT2Config) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(File(model: model, configuration: self))
        try AtomicOutputFile.write(to: path) { f in try f.write(Array(data) + [10]) }
    }

    /// Reads run.json.
    public static func load(path: String) throws -> (RunConfiguration, GPT2Config) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RunDirectoryError.badRunFile(path: path, reason: "cannot read it: \((error as NSError).localizedDescription)")
        }
        do {
            let f = try JSONDecoder().decode(File.self, from: data)
            guard f.format == "gpt2-swift-run" else { throw RunDirectoryError.badRunFile(path: path, reason: "not a gpt2-swift run file") }
            try f.configuration.validate()
            return (f.configuration, f.model)
        } catch let e as RunDirectoryError {
            throw e
        } catch let e as RunConfigurationError {
            throw RunDirectoryError.badRunFile(path: path, reason: e.localizedDescription)
        } catch {
            throw RunDirectoryError.badRunFile(path: path, reason: "not a valid run file (\(error))")
        }
    }
}
