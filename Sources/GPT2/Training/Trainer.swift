// One optimizer step, llm.c style: for each micro-step nextBatch → forward → backward (scaled so
// the accumulated gradient is the full-batch mean), then all-reduce (data parallel), clip, AdamW.
// Reference: build-nanogpt train_gpt2.py's training loop.
import Foundation

/// Hyperparameters of a run (saved in checkpoints).
public struct TrainOptions: Codable, Equatable, Sendable {
    public var B = 4
    public var T = 64
    public var totalBatch = 256
    public var maxSteps = 100
    public var maxLR = 6e-4
    public var minLRFrac = 0.1
    public var warmupSteps = 10
    public var weightDecay = 0.1
    public var gradClip = 1.0
    public var seed: UInt64 = 1337
    public var shuffle = false
    public var overfitBatch = false
    public init() {}

    public var schedule: LRSchedule {
        LRSchedule(maxLR: maxLR, minLR: maxLR * minLRFrac, warmupSteps: warmupSteps, maxSteps: maxSteps)
    }
}

public struct StepStats: Sendable {
    public var step: Int
    public var loss: Float
    public var lr: Double
    public var norm: Float
    public var seconds: Double
    public var tokens: Int
    /// Why the spike guard skipped this step's update (nil: the update was taken).
    public var skipped: String?
    public var tokensPerSecond: Double { Double(tokens) / seconds }
}

public enum TrainingError: LocalizedError, Equatable {
    case indivisibleBatch(total: Int, B: Int, T: Int, world: Int)
    case nonFinite(step: Int, what: String, value: Float)
    case diverged(step: Int, reason: String)
    case badState(what: String)

    public var errorDescription: String? {
        switch self {
        case .indivisibleBatch(let total, let B, let T, let w):
            return "--total-batch \(total) is not divisible by B*T*world = \(B)*\(T)*\(w) = \(B * T * w)"
        case .nonFinite(let s, let what, let v):
            return "\(what) is \(v) at step \(s): training stopped before the update (lower --max-lr or check the data)"
        case .diverged(let s, let reason):
            return "training diverged at step \(s): \(reason); stopped (lower --max-lr, or raise --skip-loss-z / --max-skips)"
        case .badState(let what):
            return "the checkpoint's trainer state is unusable: \(what)"
        }
    }
}

/// Data-parallel hooks (MPI/NCCL); identity for one process. `MPIReducer` implements it.
public protocol GradientReducer: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// Replaces `values` with their mean over all ranks (gradients, losses).
    func averageInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) throws
    /// Replaces `values` with their sum over all ranks (counts such as HellaSwag's, exact in a
    /// Double up to 2^53; also a barrier, and a broadcast when every other rank sends 0).
    func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) throws
}

extension GradientReducer {
    /// Sums an array over all ranks.
    public func sum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try sumInPlace($0.baseAddress!, count: $0.count) }
        return v
    }
}

public final class Trainer {
    /// The model being trained (the CPU `GPT2` or a `CUDABackend`).
    public let engine: any TrainingEngine
    /// The engine as the CPU model; only for a Trainer made with `init(model:...)`.
    public var model: GPT2 {
        guard let m = engine as? GPT2 else { preconditionFailure("Trainer.model: the engine is not a GPT2; use engine.copyState(to:includeOptimizer:)") }
        return m
    }
    public let options: TrainOptions
    public let train: DataLoader
    public let val: DataLoader?
    public let gradAccumSteps: Int
    public let reducer: GradientReducer?
    /// Optimizer steps completed.
    public private(set) var step = 0
    /// llm.c's loss-spike guard (nil: every finite step updates).
    public var spikeGuard: SpikeGuard?

    private var inputs: [Int32] = []
    private var targets: [Int32] = []
    private var fixedBatch: ([Int32], [Int32])?

    /// Trains the CPU model `model`.
    public convenience init(model: GPT2, options: TrainOptions, train: DataLoader, val: DataLoader?, reducer: GradientReducer? = nil) throws {
        try self.init(engine: model, options: options, train: train, val: val, reducer: reducer)
    }

    /// Trains `engine`; `reducer` averages gradients and losses over data-parallel ranks.
    public init(engine: any TrainingEngine, options: TrainOptions, train: DataLoader, val: DataLoader?, reducer: GradientReducer? = nil) throws {
        let world = reducer?.worldSize ?? 1
        let perStep = options.B * options.T * world
        guard options.totalBatch % perStep == 0, options.totalBatch >= perStep else {
            throw TrainingError.indivisibleBatch(total: options.totalBatch, B: options.B, T: options.T, world: world)
        }
        self.engine = engine
        self.options = options
        self.train = train
        self.val = val
        self.reducer = reducer
        gradAccumSteps = options.totalBatch / perStep
    }

    /// One optimizer step over `totalBatch` tokens (all ranks together). Throws before updating
    /// the weights when the loss or the gradient norm is not finite, or when the spike guard
    /// has skipped too many updates in a row.
    /// - Parameter shouldStop: asked between micro-steps (every rank asks equally often); when it
    ///   answers true, the partial accumulation is dropped, the data rewinds to where this step
    ///   began, and nil is returned: the model is as after the last whole step.
    public func trainStep(shouldStop: () throws -> Bool = { false }) throws -> StepStats? {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let B = options.B, T = options.T
        let model = engine
        let start = train.state
        try model.zeroGrad()
        var lossSum: Double = 0
        for micro in 0..<gradAccumSteps {
            if micro > 0, try shouldStop() {
                try train.restore(start)
                try model.zeroGrad()
                return nil
            }
            if options.overfitBatch {
                if fixedBatch == nil { try train.next(inputs: &inputs, targets: &targets); fixedBatch = (inputs, targets) }
                (inputs, targets) = fixedBatch!
            } else {
                try train.next(inputs: &inputs, targets: &targets)
            }
            let loss = try model.forward(inputs: inputs, targets: targets, B: B, T: T)
            lossSum += Double(loss)
            try model.backward(lossScale: 1 / Float(gradAccumSteps))
        }
        var loss = Float(lossSum / Double(gradAccumSteps))
        if let reducer, reducer.worldSize > 1 {
            try model.averageGradients(over: reducer)
            try withUnsafeMutablePointer(to: &loss) { try reducer.averageInPlace($0, count: 1) }
        }
        guard loss.isFinite else { throw TrainingError.nonFinite(step: step, what: "the loss", value: loss) }
        let norm = try model.clipGradients(maxNorm: Float(options.gradClip))
        guard norm.isFinite else { throw TrainingError.nonFinite(step: step, what: "the gradient norm", value: norm) }
        let lr = options.schedule(step)
        var skipped: String?
        switch spikeGuard?.judge(loss: Double(loss), gradNorm: Double(norm)) ?? .update {
        case .update:
            try model.update(learningRate: Float(lr), weightDecay: Float(options.weightDecay), step: updates + 1)
            updates += 1
        case .skip(let reason):
            skipped = reason
        case .stop(let reason):
            throw TrainingError.diverged(step: step, reason: reason)
        }
        step += 1
        lastLoss = loss
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return StepStats(step: step - 1, loss: loss, lr: lr, norm: norm, seconds: seconds,
                         tokens: options.totalBatch, skipped: skipped)
    }

    /// Mean validation loss over `steps` batches from the start of the validation split
    /// (averaged over ranks when data parallel).
    /// `progress(done, steps)` is called after each batch.
    public func validationLoss(steps: Int, progress: ((Int, Int) -> Void)? = nil) throws -> Float? {
        guard let val else { return nil }
        try val.reset()
        var sum: Double = 0
        var x: [Int32] = [], y: [Int32] = []
        for i in 0..<steps {
            try val.next(inputs: &x, targets: &y)
            let losses = try engine.tokenLosses(inputs: x, targets: y, B: val.B, T: val.T)
            sum += losses.reduce(0.0) { $0 + Double($1) } / Double(losses.count)
            progress?(i + 1, steps)
        }
        var loss = Float(sum / Double(steps))
        if let reducer, reducer.worldSize > 1 {
            try withUnsafeMutablePointer(to: &loss) { try reducer.averageInPlace($0, count: 1) }
        }
        return loss
    }

    // MARK: - Checkpoint state

    /// AdamW updates taken (the bias-correction count; fewer than `step` when the guard skipped some).
    public private(set) var updates = 0
    /// The last step's loss (nil before any).
    public private(set) var lastLoss: Float?

    /// Everything besides the tensors that a resumed run needs.
    public struct State: Codable, Equatable {
        public var step: Int
        public var data: DataPosition
        public var options: TrainOptions
        public var worldSize: Int
        /// AdamW updates taken (absent in older checkpoints: equal to `step`).
        public var updates: Int?
        public var spikeGuard: SpikeGuard?
        /// The loss of the step before the checkpoint.
        public var loss: Float?
        /// The file name of the newest checkpoint of the run whose weights were seen to give a
        /// healthy loss (set by `TrainingRun`; rotation never deletes it).
        public var healthyCheckpoint: String?
    }

    /// The state to save; `data` is rank 0's position (rank r reads B·T·r tokens further on).
    public var state: State {
        var d = train.state
        d.position -= options.B * options.T * train.rank
        return State(step: step, data: d, options: options, worldSize: reducer?.worldSize ?? 1, updates: updates,
                     spikeGuard: spikeGuard, loss: lastLoss)
    }

    /// Continues from a checkpoint's state (the model's tensors are restored by the caller).
    /// Every field is checked against the data and the options first: a state from a damaged
    /// or foreign checkpoint throws `TrainingError.badState` rather than reading out of bounds.
    public func restore(_ s: State) throws {
        guard s.step >= 0 else { throw TrainingError.badState(what: "step \(s.step) is negative") }
        if let u = s.updates, u < 0 || u > s.step { throw TrainingError.badState(what: "\(u) updates for \(s.step) steps") }
        guard s.options.B == options.B, s.options.T == options.T, s.options.totalBatch == options.totalBatch else {
            throw TrainingError.badState(what: "its batch shape B=\(s.options.B) T=\(s.options.T) total \(s.options.totalBatch) differs from this run's B=\(options.B) T=\(options.T) total \(options.totalBatch)")
        }
        var d = s.data
        try train.check(d)
        d.position += options.B * options.T * train.rank
        step = s.step
        updates = s.updates ?? s.step
        lastLoss = s.loss
        if let g = s.spikeGuard { spikeGuard = g.with(options: spikeGuard?.options ?? g.options) }
        try train.restore(d)
    }
}
